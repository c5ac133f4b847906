//! Apache Kafka clusters started by `scripts/kafka.sh start` (KRaft,
//! combined controller+broker nodes on loopback), found through the state
//! file the script writes (`KPAX_KAFKA=<dir>/state` for the 4.x cluster,
//! `KPAX_KAFKA_3_9=<dir>/state` for the 3.9 one), and controlled through the
//! same script (`scripts/kafka.sh node --dir D ID kill|pause|resume|term|start`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A listener every node of the cluster has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `PLAINTEXT`.
    Plaintext,
    /// `SSL` (client certificates requested, not required).
    Ssl,
    /// `SASL_PLAINTEXT` (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER).
    SaslPlaintext,
    /// `SASL_SSL` (the same mechanisms over TLS).
    SaslSsl,
}

impl Listener {
    fn key(self) -> &'static str {
        match self {
            Listener::Plaintext => "plaintext",
            Listener::Ssl => "ssl",
            Listener::SaslPlaintext => "sasl_plaintext",
            Listener::SaslSsl => "sasl_ssl",
        }
    }
}

/// What the state file says of a running cluster.
#[derive(Debug, Clone)]
pub struct KafkaNodes {
    state: PathBuf,
    values: BTreeMap<String, String>,
}

/// What to do to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeAction {
    /// SIGKILL: the process dies at once (no controlled shutdown).
    Kill,
    /// SIGSTOP: the process hangs, its sockets stay open.
    Pause,
    /// SIGCONT after [`Pause`](Self::Pause).
    Resume,
    /// SIGTERM, waiting for the controlled shutdown to finish.
    Term,
    /// Starts the node again (same ports, same data) and waits until the
    /// cluster lists every broker.
    Start,
}

impl NodeAction {
    fn arg(self) -> &'static str {
        match self {
            NodeAction::Kill => "kill",
            NodeAction::Pause => "pause",
            NodeAction::Resume => "resume",
            NodeAction::Term => "term",
            NodeAction::Start => "start",
        }
    }
}

impl KafkaNodes {
    /// Reads the state file at `path`.
    pub fn read(path: &Path) -> Result<KafkaNodes, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read Kafka state file {}: {e}", path.display()))?;
        let mut values = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| {
                format!(
                    "{}:{}: not a key=value line: {line:?}",
                    path.display(),
                    i + 1
                )
            })?;
            values.insert(k.to_string(), v.to_string());
        }
        let nodes = KafkaNodes {
            state: path.to_path_buf(),
            values,
        };
        nodes.get("version")?;
        nodes.node_count_checked()?;
        Ok(nodes)
    }

    fn get(&self, key: &str) -> Result<&str, String> {
        self.values
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("{}: no {key}", self.state.display()))
    }

    fn value(&self, key: &str) -> &str {
        self.get(key).unwrap_or_else(|e| panic!("{e}"))
    }

    fn node_count_checked(&self) -> Result<i32, String> {
        self.get("nodes")?
            .parse()
            .map_err(|e| format!("{}: nodes: {e}", self.state.display()))
    }

    /// The folder of the release's jars (`lib=` in the state file, else
    /// `$KPAX_TOOLS/kafka-<version>/lib`), where kafka-clients is too.
    pub fn lib(&self) -> PathBuf {
        match self.get("lib") {
            Ok(l) => PathBuf::from(l),
            Err(_) => {
                let tools = std::env::var_os("KPAX_TOOLS")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| {
                        PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                            .join(".local/kpax-tools")
                    });
                tools.join(format!("kafka-{}", self.version())).join("lib")
            }
        }
    }

    /// The Kafka release, e.g. `4.4.0`.
    pub fn version(&self) -> &str {
        self.value("version")
    }

    /// The major version (3 or 4).
    pub fn major(&self) -> u32 {
        self.version()
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    /// How many nodes (ids `1..=n`) the cluster has.
    pub fn node_count(&self) -> i32 {
        self.node_count_checked().unwrap_or_else(|e| panic!("{e}"))
    }

    /// `host:port,...` of every node on `listener`.
    pub fn bootstrap(&self, listener: Listener) -> String {
        self.value(&format!("bootstrap.{}", listener.key()))
            .to_string()
    }

    /// `host:port` of node `id` on `listener`.
    pub fn address(&self, id: i32, listener: Listener) -> String {
        self.value(&format!("node.{id}.{}", listener.key()))
            .to_string()
    }

    /// The test CA's certificate (PEM file).
    pub fn ca(&self) -> PathBuf {
        PathBuf::from(self.value("ca"))
    }

    /// The client certificate and key (PEM files), signed by [`ca`](Self::ca).
    pub fn client_cert(&self) -> (PathBuf, PathBuf) {
        (
            PathBuf::from(self.value("client_cert")),
            PathBuf::from(self.value("client_key")),
        )
    }

    /// The PLAIN user and password the brokers accept.
    pub fn plain_user(&self) -> (String, String) {
        (
            self.value("plain_user").to_string(),
            self.value("plain_password").to_string(),
        )
    }

    /// The SCRAM-SHA-256/512 user and password written at format time.
    pub fn scram_user(&self) -> (String, String) {
        (
            self.value("scram_user").to_string(),
            self.value("scram_password").to_string(),
        )
    }

    /// The node's own log file (`server.log`), for messages.
    pub fn log_of(&self, id: i32) -> PathBuf {
        PathBuf::from(self.value(&format!("node.{id}.log_dir"))).join("server.log")
    }

    /// Does `action` to node `id` through `scripts/kafka.sh node`; panics
    /// with the script's output if it fails.
    pub fn node(&self, id: i32, action: NodeAction) {
        let dir = self.value("dir");
        let out = Command::new("bash")
            .arg(self.value("script"))
            .args(["node", "--dir", dir, &id.to_string(), action.arg()])
            .output()
            .unwrap_or_else(|e| panic!("cannot run scripts/kafka.sh: {e}"));
        assert!(
            out.status.success(),
            "kafka.sh node {id} {}: {}\n{}{}",
            action.arg(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Whether node `id`'s process is running (a paused one counts).
    pub fn alive(&self, id: i32) -> bool {
        Command::new("bash")
            .arg(self.value("script"))
            .args(["node", "--dir", self.value("dir"), &id.to_string(), "alive"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Resumes and restarts every node that a test left paused or stopped,
    /// so the next test finds the whole cluster.
    pub fn heal(&self) {
        for id in 1..=self.node_count() {
            if self.alive(id) {
                self.node(id, NodeAction::Resume);
            } else {
                self.node(id, NodeAction::Start);
            }
        }
    }
}
