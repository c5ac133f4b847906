//! Test harness: gives an integration test a running Kafka-protocol cluster
//! and fresh topics on it, and cleans up afterwards.
//!
//! Backends (see docs/testing.md):
//! - [`Cluster::mock`]: librdkafka's mock cluster, in-process, always there,
//!   with fault injection ([`MockKafka`]);
//! - [`Cluster::fake`]: kpax-fake, the in-process fake cluster written on
//!   kpax-proto, always there, with fault injection and the admin APIs;
//! - [`Cluster::kafka`]: Apache Kafka 4.x, the broker of record: the
//!   3-node KRaft cluster `scripts/kafka.sh start` runs, found through its
//!   state file (`KPAX_KAFKA=<dir>/state`), with node control
//!   ([`KafkaNodes`]); or, when only `KPAX_BROKERS` is set, that cluster,
//!   without node control;
//! - [`Cluster::kafka_3_9`]: the 1-node Kafka 3.9 cluster (`KPAX_KAFKA_3_9`),
//!   for the old protocol versions 4.0 removed;
//! - [`Cluster::external`]: any Kafka cluster, `KPAX_BROKERS=host:port[,..]`.
//!
//! An external backend whose variable is unset is skipped with a printed
//! reason, except under CI (`CI` set), where that is a test failure.
//!
//! Fault injection common to the mock and the fake is [`Faults`]
//! ([`Cluster::inject`]); [`backends!`](crate::backends) turns one async
//! test body into one test per backend.
//!
//! Each test file declares `mod harness;` and uses the parts it needs.
#![allow(dead_code)]

pub mod client;
pub mod fake;
pub mod faults;
pub mod interop;
pub mod java;
pub mod kafka;
pub mod mock;
pub mod security;

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kpax_fake::FakeCluster;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

#[allow(unused_imports)]
pub use faults::Faults;

#[allow(unused_imports)]
pub use interop::{Codec, Consumed, Delivered, ProduceOptions, Record, Until};
#[allow(unused_imports)]
pub use kafka::{KafkaNodes, Listener, NodeAction};
#[allow(unused_imports)]
pub use mock::{api_key, error_code, MockKafka};

/// Environment variable naming the state file of the Kafka 4.x cluster
/// `scripts/kafka.sh start` runs (`.ci/run` sets it).
pub const KAFKA_VAR: &str = "KPAX_KAFKA";
/// Environment variable naming the state file of the 1-node Kafka 3.9
/// cluster (`.ci/run` sets it).
pub const KAFKA_3_9_VAR: &str = "KPAX_KAFKA_3_9";
/// Environment variable naming any other Kafka cluster to test against.
pub const BROKERS_VAR: &str = "KPAX_BROKERS";

/// Bound on admin operations (topic create/delete, metadata waits).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

enum Backend {
    Mock(MockKafka),
    Fake(FakeCluster),
    /// A broker that serves CreateTopics/DeleteTopics; `nodes` when the
    /// harness started it and can control its nodes.
    Admin {
        replication: i32,
        nodes: Option<KafkaNodes>,
    },
}

/// Which implementation a [`Cluster`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// librdkafka's mock cluster.
    Mock,
    /// kpax-fake.
    Fake,
    /// Apache Kafka (`KPAX_KAFKA`, `KPAX_KAFKA_3_9`, or `KPAX_BROKERS`
    /// through the kafka backend).
    Kafka,
    /// Any other cluster (`KPAX_BROKERS`).
    External,
}

/// A running cluster a test can use.
pub struct Cluster {
    name: &'static str,
    kind: Kind,
    bootstrap: String,
    backend: Backend,
}

impl Cluster {
    /// A fresh in-process librdkafka mock cluster of `brokers` brokers
    /// (ids `1..=brokers`).
    pub fn mock(brokers: i32) -> Cluster {
        init_log();
        let mock = MockKafka::start(brokers);
        Cluster {
            name: "librdkafka mock",
            kind: Kind::Mock,
            bootstrap: mock.bootstrap(),
            backend: Backend::Mock(mock),
        }
    }

    /// A fresh kpax-fake cluster of `brokers` brokers (ids
    /// `1..=brokers`), running on the calling test's tokio runtime.
    pub async fn fake(brokers: i32) -> Cluster {
        init_log();
        let fake = fake::start(brokers).await;
        Cluster {
            name: "fake",
            kind: Kind::Fake,
            bootstrap: fake.bootstrap(),
            backend: Backend::Fake(fake),
        }
    }

    /// The Apache Kafka 4.x cluster of `KPAX_KAFKA` (a state file written
    /// by `scripts/kafka.sh start`), or, when that is unset, the cluster at
    /// `KPAX_BROKERS` (without node control); `None` (after printing why)
    /// when neither is set outside CI.
    pub fn kafka() -> Option<Cluster> {
        if std::env::var(KAFKA_VAR).map_or(true, |v| v.trim().is_empty()) {
            if let Ok(b) = std::env::var(BROKERS_VAR) {
                if !b.trim().is_empty() {
                    let mut c = Cluster::from_env(BROKERS_VAR, "kafka", Kind::Kafka, "")?;
                    c.name = "kafka (KPAX_BROKERS)";
                    return Some(c);
                }
            }
        }
        Cluster::from_state(KAFKA_VAR, "kafka 4")
    }

    /// The 1-node Apache Kafka 3.9 cluster of `KPAX_KAFKA_3_9`; `None`
    /// (after printing why) when unset outside CI.
    pub fn kafka_3_9() -> Option<Cluster> {
        Cluster::from_state(KAFKA_3_9_VAR, "kafka 3.9")
    }

    fn from_state(var: &str, name: &'static str) -> Option<Cluster> {
        init_log();
        let path = match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => {
                skip_or_fail(&format!(
                    "{var} is not set (start Kafka with `scripts/kafka.sh start` and set {var} to the state file it prints, or run `bash .ci/run`; see docs/testing.md)"
                ));
                return None;
            }
        };
        let nodes =
            KafkaNodes::read(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{var}: {e}"));
        // A test before this one may have left a node down or paused.
        nodes.heal();
        let bootstrap = nodes.bootstrap(Listener::Plaintext);
        let first = bootstrap.split(',').next().unwrap_or_default().to_string();
        assert!(
            reachable(&first),
            "{var}={path}: cannot connect to {first} within 3 s"
        );
        Some(Cluster {
            name,
            kind: Kind::Kafka,
            bootstrap,
            backend: Backend::Admin {
                replication: nodes.node_count().min(3),
                nodes: Some(nodes),
            },
        })
    }

    /// The Kafka cluster's nodes, to read its listeners and credentials and
    /// to kill, pause and restart nodes; `None` unless the harness started
    /// this cluster (`KPAX_KAFKA`, `KPAX_KAFKA_3_9`).
    pub fn kafka_nodes(&self) -> Option<&KafkaNodes> {
        match &self.backend {
            Backend::Admin { nodes, .. } => nodes.as_ref(),
            _ => None,
        }
    }

    /// The cluster at `KPAX_BROKERS`; `None` (after printing why) when
    /// unset outside CI.
    pub fn external() -> Option<Cluster> {
        Cluster::from_env(
            BROKERS_VAR,
            "external Kafka cluster",
            Kind::External,
            "set it to host:port[,host:port..] of a Kafka cluster to test against",
        )
    }

    fn from_env(var: &str, name: &'static str, kind: Kind, hint: &str) -> Option<Cluster> {
        init_log();
        let bootstrap = match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => {
                skip_or_fail(&format!("{var} is not set ({hint})"));
                return None;
            }
        };
        // A set variable is a promise: an unreachable broker is a failure
        // wherever the test runs.
        let first = bootstrap.split(',').next().unwrap_or_default();
        assert!(
            reachable(first),
            "{var}={bootstrap}: cannot connect to {first} within 3 s"
        );
        Some(Cluster {
            name,
            kind,
            bootstrap,
            backend: Backend::Admin {
                replication: 1,
                nodes: None,
            },
        })
    }

    /// What kind of cluster this is, for messages.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Which implementation this is, for the few checks that differ.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// `host:port,...` to bootstrap a client from.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The mock's own controls; `None` unless this is the mock.
    pub fn mock_controls(&self) -> Option<&MockKafka> {
        match &self.backend {
            Backend::Mock(m) => Some(m),
            _ => None,
        }
    }

    /// The mock's own controls (all of librdkafka's mock faults; for the
    /// ones the fake has too, prefer [`inject`](Self::inject)).
    ///
    /// # Panics
    /// If this cluster is not the mock.
    pub fn faults(&self) -> &MockKafka {
        self.mock_controls()
            .unwrap_or_else(|| panic!("{} is not the librdkafka mock", self.name))
    }

    /// The fake cluster itself; `None` unless this is the fake.
    pub fn fake_controls(&self) -> Option<&FakeCluster> {
        match &self.backend {
            Backend::Fake(f) => Some(f),
            _ => None,
        }
    }

    /// The backend-neutral fault controls of the mock or the fake.
    ///
    /// # Panics
    /// If this cluster has no fault injection (Kafka, external: Kafka's
    /// faults are its nodes, [`kafka_nodes`](Self::kafka_nodes)).
    pub fn inject(&self) -> Faults<'_> {
        match &self.backend {
            Backend::Mock(m) => Faults::Mock(m),
            Backend::Fake(f) => Faults::Fake(f),
            Backend::Admin { .. } => panic!("{} has no fault injection", self.name),
        }
    }

    /// Number of brokers, where the harness knows it (mock, fake).
    pub fn broker_count(&self) -> Option<i32> {
        match &self.backend {
            Backend::Mock(m) => Some(m.brokers()),
            Backend::Fake(f) => Some(f.broker_count() as i32),
            Backend::Admin { nodes, .. } => nodes.as_ref().map(KafkaNodes::node_count),
        }
    }

    /// Creates a topic with a fresh random name and `partitions`
    /// partitions, waits until every partition has a leader, and returns
    /// it; the topic is deleted when the returned value is dropped.
    pub async fn topic(&self, partitions: i32) -> Topic {
        let name = unique_name("topic");
        match &self.backend {
            Backend::Mock(mock) => {
                mock.create_topic(&name, partitions, mock.brokers().min(3));
            }
            Backend::Fake(f) => fake::create_topic(f, &name, partitions),
            Backend::Admin { replication, .. } => {
                create_topic(&self.bootstrap, &name, partitions, *replication).await;
            }
        }
        self.await_leaders(&name, partitions).await;
        Topic {
            name,
            partitions,
            delete_from: match self.backend {
                // in-process clusters die with the test
                Backend::Mock(_) | Backend::Fake(_) => None,
                Backend::Admin { .. } => Some(self.bootstrap.clone()),
            },
        }
    }

    async fn await_leaders(&self, topic: &str, partitions: i32) {
        let deadline = tokio::time::Instant::now() + ADMIN_TIMEOUT;
        loop {
            let last = match interop::leaders(&self.bootstrap, topic).await {
                Ok(l) if l.len() == partitions as usize && l.values().all(|&b| b >= 0) => return,
                other => format!("{other:?}"),
            };
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: topic {topic} has no leader for all {partitions} partitions after {ADMIN_TIMEOUT:?}: {last}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A fresh consumer group id for this test.
    pub fn group_id(&self) -> String {
        unique_name("group")
    }
}

/// A topic created for one test; deleted (where the cluster can) on drop.
pub struct Topic {
    pub name: String,
    pub partitions: i32,
    delete_from: Option<String>,
}

impl Drop for Topic {
    fn drop(&mut self) {
        let Some(bootstrap) = self.delete_from.take() else {
            return;
        };
        let name = self.name.clone();
        // Drop can't await, and may run inside the test's runtime: delete on
        // a thread of our own with its own small runtime.
        let joined = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime for topic deletion");
            rt.block_on(delete_topic(&bootstrap, &name))
        })
        .join();
        if let Ok(Err(e)) = joined {
            note(&format!("could not delete topic {}: {e}", self.name));
        }
    }
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("librdkafka admin client")
}

fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(ADMIN_TIMEOUT))
        .request_timeout(Some(ADMIN_TIMEOUT))
}

/// Creates a topic through librdkafka's admin client (CreateTopics);
/// panics on any error.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, replication: i32) {
    let new = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
    let results = tokio::time::timeout(
        ADMIN_TIMEOUT + Duration::from_secs(5),
        admin(bootstrap).create_topics(&[new], &admin_options()),
    )
    .await
    .unwrap_or_else(|_| panic!("CreateTopics {name} at {bootstrap} timed out"))
    .unwrap_or_else(|e| panic!("CreateTopics {name} at {bootstrap}: {e}"));
    for r in results {
        if let Err((topic, code)) = r {
            panic!("CreateTopics {topic} at {bootstrap}: {code}");
        }
    }
}

/// Deletes a topic through librdkafka's admin client (DeleteTopics).
pub async fn delete_topic(bootstrap: &str, name: &str) -> Result<(), String> {
    let results = tokio::time::timeout(
        ADMIN_TIMEOUT + Duration::from_secs(5),
        admin(bootstrap).delete_topics(&[name], &admin_options()),
    )
    .await
    .map_err(|_| "DeleteTopics timed out".to_string())?
    .map_err(|e| e.to_string())?;
    for r in results {
        r.map_err(|(topic, code)| format!("{topic}: {code}"))?;
    }
    Ok(())
}

/// Prints kpax's traces on stderr when `KPAX_TEST_LOG` is set (to a
/// filter such as `kpax=debug`); called by every cluster constructor.
pub fn init_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("KPAX_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .try_init();
        }
    });
}

/// Whether this run is CI's (`CI` set to anything but empty/false/0).
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
        .unwrap_or(false)
}

/// A required broker is missing: fail under CI, otherwise print why the
/// test is skipped.
pub fn skip_or_fail(reason: &str) {
    if in_ci() {
        panic!("{reason}; CI is set, so a missing broker is a failure");
    }
    note(&format!("SKIPPED: {reason}"));
}

/// Prints to the real stderr, past the test runner's output capture, so a
/// skip is visible in a plain `cargo test`.
fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "harness: {msg}");
}

fn reachable(addr: &str) -> bool {
    let Ok(addrs) = addr.to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok())
}

/// A name no other test (in this or another run) uses:
/// `kpax-<kind>-<pid>-<nanos>-<counter>`.
pub fn unique_name(kind: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "kpax-{kind}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The interop check every backend runs: a topic with `partitions`
/// partitions, `n` numbered records produced by librdkafka round-robin over
/// the partitions (idempotent, so in order) with `codec`, read back by
/// librdkafka: counts, offsets and order per partition must match.
pub async fn check_roundtrip(cluster: &Cluster, partitions: i32, n: usize, codec: Codec) {
    let topic = cluster.topic(partitions).await;
    let records = interop::numbered(n);
    let options = ProduceOptions {
        codec,
        idempotent: true,
        ..ProduceOptions::default()
    };
    let delivered = interop::produce(
        cluster.bootstrap(),
        &topic.name,
        &records,
        |i| (i % partitions as usize) as i32,
        &options,
    )
    .await
    .unwrap_or_else(|e| panic!("{}: librdkafka produce: {e}", cluster.name()));
    let read = interop::consume(
        cluster.bootstrap(),
        &topic.name,
        partitions,
        Until::End,
        Duration::from_secs(20),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: {e}", cluster.name()));
    interop::assert_read_back(&records, &delivered, &read);
    for p in 0..partitions {
        let want = n / partitions as usize + usize::from((p as usize) < n % partitions as usize);
        assert_eq!(read[&p].len(), want, "partition {p} holds its share");
    }
}

/// Turns one async test body into one test per backend: a module named
/// after the body holding a `#[tokio::test]` per backend, so the tests are
/// `<body>::fake`, `<body>::mock`, `<body>::kafka` (run one backend's
/// with `cargo test --test kpax_consumer -- ::fake`).
///
/// ```ignore
/// async fn survives_a_retriable_error(tc: &TestCluster) { /* tc.inject()... */ }
/// backends!(survives_a_retriable_error: fake(3), mock(3), kafka);
/// ```
///
/// `fake(n)` and `mock(n)` start an in-process cluster of `n` brokers;
/// `kafka` (Apache Kafka 4.x) and `kafka_3_9` are skipped (or fail, in CI)
/// like [`Cluster::kafka`]. List only
/// the backends the body supports, and say at the call why one is left out.
#[macro_export]
macro_rules! backends {
    ($body:ident: $($kind:ident $(($n:expr))?),+ $(,)?) => {
        mod $body {
            $( $crate::backends!(@test $body $kind $(($n))?); )+
        }
    };
    (@test $body:ident fake($n:expr)) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn fake() {
            let tc = $crate::harness::Cluster::fake($n).await;
            super::$body(&tc).await;
        }
    };
    (@test $body:ident mock($n:expr)) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn mock() {
            let tc = $crate::harness::Cluster::mock($n);
            super::$body(&tc).await;
        }
    };
    (@test $body:ident kafka) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn kafka() {
            let Some(tc) = $crate::harness::Cluster::kafka() else {
                return;
            };
            super::$body(&tc).await;
        }
    };
    (@test $body:ident kafka_3_9) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn kafka_3_9() {
            let Some(tc) = $crate::harness::Cluster::kafka_3_9() else {
                return;
            };
            super::$body(&tc).await;
        }
    };
}

/// Prints a test's figures (counts of records, faults) on stderr and, when
/// `KPAX_TEST_REPORT` names a file, appends them there: `.ci/run` prints
/// that file after the suite, since passing tests' output is captured.
pub fn report(test: &str, line: &str) {
    eprintln!("{test}: {line}");
    if let Some(path) = std::env::var_os("KPAX_TEST_REPORT") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{test}: {line}");
        }
    }
}
