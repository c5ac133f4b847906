//! Client settings from Java-style properties, under the names the Java
//! client and librdkafka use (`bootstrap.servers`, `acks`, `group.id`,
//! `security.protocol`, ...), so one file serves kpax, the `kpax` CLI and
//! the other clients of a deployment.
//!
//! [`Properties`] parses the text (`key=value`, `key: value` or
//! `key value`; `#` and `!` comments; a trailing `\` continues a line);
//! [`ClientConfig::from_properties`](crate::ClientConfig::from_properties),
//! [`ProducerConfig::from_properties`](crate::ProducerConfig::from_properties)
//! and [`ConsumerConfig::from_properties`](crate::ConsumerConfig::from_properties)
//! each read the keys they know (listed in [`CLIENT_KEYS`],
//! [`PRODUCER_KEYS`] and [`CONSUMER_KEYS`]). A key none of them knows is
//! left alone (a Java file's `key.serializer`, say);
//! [`Properties::unknown_keys`] lists them for callers that want to refuse
//! typos. Bad values are [`Error::Config`] naming the file, the line and
//! the key.
//!
//! ```
//! use kpax::properties::Properties;
//! let props = Properties::parse(
//!     "bootstrap.servers=localhost:9092\nacks=all\nlinger.ms=20\ngroup.id=billing\n",
//!     "app.properties",
//! )?;
//! let client = kpax::ClientConfig::from_properties(&props)?;
//! let producer = kpax::ProducerConfig::from_properties(&props)?;
//! let consumer = kpax::ConsumerConfig::from_properties(&props)?;
//! assert_eq!(props.bootstrap_servers()?, Some(vec!["localhost:9092".to_string()]));
//! assert_eq!(producer.linger, std::time::Duration::from_millis(20));
//! assert_eq!(consumer.group_id.as_deref(), Some("billing"));
//! # let _ = client;
//! # Ok::<(), kpax::Error>(())
//! ```

use crate::error::{Error, Result};
use std::path::Path;
use std::time::Duration;

/// The largest properties file read (bytes).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a small text file of settings (a properties file, a profiles
/// file, a password file): at most [`MAX_FILE_BYTES`], whatever the file
/// claims its size is, as UTF-8. `shown` names it in errors
/// (`"config file a.properties"`).
///
/// # Errors
/// [`Error::Config`] naming `shown` when it cannot be opened or read, is
/// larger than [`MAX_FILE_BYTES`], or is not UTF-8.
pub fn read_file(path: &Path, shown: &str) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::Config(format!("{shown}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Config(format!("{shown}: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::Config(format!(
            "{shown}: more than the {MAX_FILE_BYTES} bytes accepted"
        )));
    }
    String::from_utf8(bytes).map_err(|e| Error::Config(format!("{shown}: not UTF-8 ({e})")))
}

/// The keys [`ClientConfig::from_properties`](crate::ClientConfig::from_properties) reads.
pub const CLIENT_KEYS: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "request.timeout.ms",
    "socket.connection.setup.timeout.ms",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "metadata.max.age.ms",
    "allow.auto.create.topics",
    "security.protocol",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
];

/// The keys [`ProducerConfig::from_properties`](crate::ProducerConfig::from_properties) reads.
pub const PRODUCER_KEYS: &[&str] = &[
    "acks",
    "enable.idempotence",
    "linger.ms",
    "batch.size",
    "buffer.memory",
    "max.request.size",
    "compression.type",
    "partitioner",
    "partitioner.class",
    "delivery.timeout.ms",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "max.in.flight.requests.per.connection",
    "max.block.ms",
    "transactional.id",
    "transaction.timeout.ms",
];

/// The keys [`ConsumerConfig::from_properties`](crate::ConsumerConfig::from_properties) reads.
pub const CONSUMER_KEYS: &[&str] = &[
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.remote.assignor",
    "auto.offset.reset",
    "isolation.level",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.wait.ms",
    "partition.assignment.strategy",
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: String,
    value: String,
    /// Where it was given: "app.properties line 3", "-X".
    at: String,
}

/// Parsed properties: keys and values in the order given, each with where
/// it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    entries: Vec<Entry>,
}

impl Properties {
    /// Parses properties text; `origin` (a file name, `-X`) goes into
    /// errors.
    ///
    /// # Errors
    /// [`Error::Config`] naming `origin` and the line for a line without a
    /// value, an empty value, or a key given twice (`sasl.mechanism` and
    /// librdkafka's `sasl.mechanisms` count as one).
    pub fn parse(text: &str, origin: &str) -> Result<Properties> {
        Properties::parse_from_line(text, origin, 1)
    }

    /// As [`Properties::parse`], for text that starts at line `first_line`
    /// of `origin` (a section of a larger file), so errors name the line
    /// of the file.
    ///
    /// # Errors
    /// As [`Properties::parse`].
    pub fn parse_from_line(text: &str, origin: &str, first_line: usize) -> Result<Properties> {
        let mut props = Properties::default();
        let mut lines = text.lines().enumerate();
        while let Some((i, raw)) = lines.next() {
            let at = format!("{origin} line {}", i + first_line);
            let mut line = raw.trim_start().to_string();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            while line.ends_with('\\') && !line.ends_with("\\\\") {
                line.pop();
                match lines.next() {
                    Some((_, more)) => line.push_str(more.trim_start()),
                    None => break,
                }
            }
            let err = |why: String| Error::Config(format!("{at}: {why}"));
            let split = line.find(['=', ':', ' ', '\t']).ok_or_else(|| {
                err(format!(
                    "{:?} has no value (expected key=value)",
                    line.trim()
                ))
            })?;
            let key = line[..split].trim();
            let mut rest = line[split..].trim_start();
            if let Some(r) = rest.strip_prefix(['=', ':']) {
                rest = r.trim_start();
            }
            let value = rest.trim_end();
            if value.is_empty() {
                return Err(err(format!("key {key:?} has an empty value")));
            }
            if let Some(e) = props.entry(key) {
                return Err(err(if e.key == key {
                    format!("key {key:?} given twice")
                } else {
                    format!("{key:?} and {:?} are the same setting", e.key)
                }));
            }
            props.entries.push(Entry {
                key: key.to_string(),
                value: value.to_string(),
                at,
            });
        }
        Ok(props)
    }

    /// Reads and parses a properties file (at most [`MAX_FILE_BYTES`]).
    ///
    /// # Errors
    /// [`Error::Config`] when it cannot be read, is too large, or does not
    /// parse.
    pub fn read(path: impl AsRef<Path>) -> Result<Properties> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        Properties::parse(&read_file(path, &shown)?, &shown)
    }

    /// These properties with `over`'s on top (each key of `over` replaces
    /// the same key here).
    pub fn overlaid(mut self, over: Properties) -> Properties {
        for e in over.entries {
            let key = canonical(&e.key).to_string();
            self.entries.retain(|x| canonical(&x.key) != key);
            self.entries.push(e);
        }
        self
    }

    /// The entries whose key `keep` accepts, each with where it was given.
    pub fn retained(&self, keep: impl Fn(&str) -> bool) -> Properties {
        Properties {
            entries: self
                .entries
                .iter()
                .filter(|e| keep(&e.key))
                .cloned()
                .collect(),
        }
    }

    /// Sets one key (replacing it where given).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let canonical_key = canonical(key);
        self.entries.retain(|x| canonical(&x.key) != canonical_key);
        self.entries.push(Entry {
            key: key.to_string(),
            value: value.into(),
            at: "set".into(),
        });
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        let key = canonical(key);
        self.entries.iter().find(|e| canonical(&e.key) == key)
    }

    /// The value of `key` (`sasl.mechanism` also finds `sasl.mechanisms`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entry(key).map(|e| e.value.as_str())
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys in the order given.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.key.as_str())
    }

    /// The keys that neither the client, the producer nor the consumer
    /// reads, each with where it was given.
    pub fn unknown_keys(&self) -> Vec<(&str, &str)> {
        self.entries
            .iter()
            .filter(|e| {
                ![CLIENT_KEYS, PRODUCER_KEYS, CONSUMER_KEYS]
                    .iter()
                    .any(|ks| ks.contains(&e.key.as_str()))
            })
            .map(|e| (e.key.as_str(), e.at.as_str()))
            .collect()
    }

    /// `bootstrap.servers` split into `host:port` entries (a `tcp://` or
    /// listener-name prefix such as `PLAINTEXT://` is dropped).
    ///
    /// # Errors
    /// [`Error::Config`] for an empty list or an entry without a numeric
    /// port.
    pub fn bootstrap_servers(&self) -> Result<Option<Vec<String>>> {
        let Some(e) = self.entry("bootstrap.servers") else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for b in e.value.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            let b = b.split_once("://").map_or(b, |(_, rest)| rest);
            let ok = b
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(e.error(format!("{b:?} is not host:port")));
            }
            out.push(b.to_string());
        }
        if out.is_empty() {
            return Err(e.error("no brokers listed".into()));
        }
        Ok(Some(out))
    }

    /// The value of `key` through `parse`, whose error message is put in
    /// context.
    pub(crate) fn parsed<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        match self.entry(key) {
            None => Ok(None),
            Some(e) => parse(&e.value).map(Some).map_err(|why| e.error(why)),
        }
    }

    /// `key` as a duration in milliseconds.
    ///
    /// # Errors
    /// [`Error::Config`] naming the place and the key when it is not a
    /// whole number.
    pub fn millis(&self, key: &str) -> Result<Option<Duration>> {
        self.parsed(key, |v| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("expected a whole number of milliseconds, got {v:?}"))
        })
    }

    /// `key` as a duration in milliseconds, above zero.
    ///
    /// # Errors
    /// [`Error::Config`] naming the place and the key when it is not a
    /// whole number or is 0.
    pub fn positive_millis(&self, key: &str) -> Result<Option<Duration>> {
        match self.millis(key)? {
            Some(d) if d.is_zero() => Err(self.error(key, "must be above 0".into())),
            other => Ok(other),
        }
    }

    /// A count or size, at least `min`.
    pub(crate) fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
        &self,
        key: &str,
        min: T,
    ) -> Result<Option<T>> {
        self.parsed(key, |v| match v.parse::<T>() {
            Ok(n) if n >= min => Ok(n),
            Ok(_) => Err(format!("must be at least {min}, got {v}")),
            Err(_) => Err(format!("expected a whole number, got {v:?}")),
        })
    }

    /// `true` or `false`.
    pub(crate) fn flag(&self, key: &str) -> Result<Option<bool>> {
        self.parsed(key, |v| match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("expected true or false, got {v:?}")),
        })
    }

    /// A string value.
    pub(crate) fn string(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_string)
    }

    /// An error about `key` at the place it was given.
    pub(crate) fn error(&self, key: &str, why: String) -> Error {
        match self.entry(key) {
            Some(e) => e.error(why),
            None => Error::Config(format!("{key}: {why}")),
        }
    }
}

impl Entry {
    fn error(&self, why: String) -> Error {
        Error::Config(format!("{}: {}: {why}", self.at, self.key))
    }
}

/// One name per setting: librdkafka's `sasl.mechanisms` is `sasl.mechanism`.
fn canonical(key: &str) -> &str {
    match key {
        "sasl.mechanisms" => "sasl.mechanism",
        k => k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_up_to_the_bound_and_as_utf8() {
        let dir = std::env::temp_dir().join(format!("kpax-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok.properties");
        std::fs::write(&ok, "acks=all\n").unwrap();
        assert_eq!(read_file(&ok, "config file ok").unwrap(), "acks=all\n");
        let big = dir.join("big.properties");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let e = read_file(&big, "config file big").unwrap_err().to_string();
        assert!(e.contains("config file big: more than the"), "{e}");
        let bin = dir.join("bin.properties");
        std::fs::write(&bin, [0xff, 0xfe, b'a']).unwrap();
        let e = read_file(&bin, "config file bin").unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
        let e = read_file(&dir.join("missing"), "config file missing").unwrap_err();
        assert!(e.to_string().contains("config file missing: "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_java_syntax() {
        let p = Properties::parse(
            "# a comment\n! another\nbootstrap.servers = PLAINTEXT://a:1,b:2\nclient.id: app\nlinger.ms 5\nsasl.password=p\\\n  w=d\n",
            "f",
        )
        .unwrap();
        assert_eq!(
            p.bootstrap_servers().unwrap(),
            Some(vec!["a:1".to_string(), "b:2".to_string()])
        );
        assert_eq!(p.get("client.id"), Some("app"));
        assert_eq!(p.get("linger.ms"), Some("5"));
        assert_eq!(p.get("sasl.password"), Some("pw=d"));
        assert!(p.unknown_keys().is_empty());
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        for (text, want) in [
            ("a=1\nnovalue\n", "f line 2: \"novalue\" has no value"),
            ("a=\n", "f line 1: key \"a\" has an empty value"),
            ("a=1\na=2\n", "f line 2: key \"a\" given twice"),
            (
                "sasl.mechanism=PLAIN\nsasl.mechanisms=PLAIN\n",
                "are the same setting",
            ),
        ] {
            let e = Properties::parse(text, "f").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let p = Properties::parse("linger.ms=soon\nbootstrap.servers=nohost\n", "f").unwrap();
        let e = p.millis("linger.ms").unwrap_err().to_string();
        assert!(
            e.contains("f line 1: linger.ms: expected a whole number"),
            "{e}"
        );
        let e = p.bootstrap_servers().unwrap_err().to_string();
        assert!(
            e.contains("f line 2: bootstrap.servers: \"nohost\" is not host:port"),
            "{e}"
        );
    }

    #[test]
    fn overlay_replaces_keys_and_unknown_keys_are_listed() {
        let file = Properties::parse("client.id=file\nkey.serializer=x\n", "f").unwrap();
        let flags = Properties::parse("client.id=flag\n", "-X").unwrap();
        let p = file.overlaid(flags);
        assert_eq!(p.get("client.id"), Some("flag"));
        assert_eq!(p.unknown_keys(), vec![("key.serializer", "f line 2")]);
    }

    #[test]
    fn configs_read_their_keys() {
        use crate::consumer::{GroupProtocol, IsolationLevel, OffsetReset};
        use crate::producer::Acks;
        use kpax_proto::records::Compression;
        let p = Properties::parse(
            "client.id=app\nrequest.timeout.ms=5000\nmetadata.max.age.ms=1000\n\
             acks=1\nlinger.ms=20\nbatch.size=1000\ncompression.type=zstd\n\
             group.id=g\ngroup.protocol=consumer\nauto.offset.reset=earliest\n\
             isolation.level=read_committed\nenable.auto.commit=false\n\
             session.timeout.ms=10000\nheartbeat.interval.ms=1000\n\
             partition.assignment.strategy=org.apache.kafka.clients.consumer.CooperativeStickyAssignor, range\n\
             key.deserializer=x\n",
            "f",
        )
        .unwrap();
        let c = crate::ClientConfig::from_properties(&p).unwrap();
        assert_eq!(c.client_id, "app");
        assert_eq!(c.request_timeout, Duration::from_secs(5));
        assert_eq!(c.metadata_max_age, Duration::from_secs(1));
        assert_eq!(c.security_protocol, crate::SecurityProtocol::Plaintext);
        let pc = crate::ProducerConfig::from_properties(&p).unwrap();
        assert_eq!(pc.acks, Acks::Leader);
        assert!(!pc.idempotence, "acks=1 turns idempotence off");
        assert_eq!(pc.linger, Duration::from_millis(20));
        assert_eq!(pc.batch_size, 1000);
        assert_eq!(pc.compression, Compression::Zstd);
        let cc = crate::ConsumerConfig::from_properties(&p).unwrap();
        assert_eq!(cc.group_id.as_deref(), Some("g"));
        assert_eq!(cc.group_protocol, GroupProtocol::Consumer);
        assert_eq!(cc.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(cc.isolation_level, IsolationLevel::ReadCommitted);
        assert!(!cc.enable_auto_commit);
        assert_eq!(cc.session_timeout, Duration::from_secs(10));
        let names: Vec<&str> = cc.assignors.iter().map(|a| a.name()).collect();
        assert_eq!(names, ["cooperative-sticky", "range"]);
        assert_eq!(p.unknown_keys(), vec![("key.deserializer", "f line 16")]);
    }

    #[test]
    fn bad_settings_are_errors_with_their_place() {
        for (text, want) in [
            ("acks=2\n", "f line 1: acks: expected 0, 1, all or -1"),
            (
                "acks=1\nenable.idempotence=true\n",
                "enable.idempotence: needs acks=all",
            ),
            (
                "acks=0\ntransactional.id=t\n",
                "transactional.id: needs acks=all",
            ),
            (
                "compression.type=brotli\n",
                "compression.type: expected none",
            ),
            (
                "auto.offset.reset=smallest\n",
                "auto.offset.reset: expected earliest",
            ),
            (
                "session.timeout.ms=1000\nheartbeat.interval.ms=3000\n",
                "must be below session.timeout.ms",
            ),
            (
                "partition.assignment.strategy=fair\n",
                "unknown assignor \"fair\"",
            ),
            (
                "request.timeout.ms=0\n",
                "request.timeout.ms: must be above 0",
            ),
            ("security.protocol=TLS\n", "unknown security protocol"),
            (
                "ssl.ca.location=/no/such/ca.pem\n",
                "f line 1: ssl.ca.location: no such file",
            ),
            (
                "ssl.certificate.location=c.pem\n",
                "needs ssl.key.location too",
            ),
            (
                "security.protocol=PLAINTEXT\nsasl.username=u\n",
                "sasl.* keys given",
            ),
            (
                "sasl.mechanism=PLAIN\nsasl.username=u\n",
                "needs sasl.password",
            ),
            (
                "sasl.mechanism=SCRAM-SHA-256\nsasl.password=p\n",
                "needs sasl.username",
            ),
            (
                "sasl.mechanism=GSSAPI\nsasl.username=u\nsasl.password=p\n",
                "sasl.mechanism",
            ),
        ] {
            let p = Properties::parse(text, "f").unwrap();
            let e = crate::ClientConfig::from_properties(&p)
                .err()
                .or_else(|| crate::ProducerConfig::from_properties(&p).err())
                .or_else(|| crate::ConsumerConfig::from_properties(&p).err())
                .unwrap_or_else(|| panic!("{text:?} accepted"))
                .to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn security_follows_from_the_keys_given() {
        let p = Properties::parse(
            "sasl.mechanisms=SCRAM-SHA-512\nsasl.username=u\nsasl.password=p\n",
            "f",
        )
        .unwrap();
        let c = crate::ClientConfig::from_properties(&p).unwrap();
        assert_eq!(c.security_protocol, crate::SecurityProtocol::SaslPlaintext);
        let sasl = c.sasl.expect("sasl");
        assert_eq!(sasl.mechanism, crate::SaslMechanism::ScramSha512);
    }
}
