//! Where the brokers are and how to talk to them: `--brokers`, the
//! `KPAX_BROKERS` environment variable, or a Java-style properties file
//! (`--config`); TLS and SASL (flags or the file's `security.protocol`,
//! `ssl.*` and `sasl.*` keys, librdkafka's names); and the time bound of a
//! command.

use crate::error::{CliError, Result};
use clap::Args;
use kpax::properties::Properties;
use kpax::{ClientConfig, Cluster, Pem, SaslConfig, SaslMechanism, SecurityProtocol, TlsConfig};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable naming the bootstrap brokers.
pub const BROKERS_VAR: &str = "KPAX_BROKERS";

/// The environment variable holding the SASL password (so it is not on the
/// command line, where `ps` shows it).
pub const SASL_PASSWORD_VAR: &str = "KPAX_SASL_PASSWORD";

/// The largest configuration file read (bytes).
/// The connection flags every command that talks to Kafka takes.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Bootstrap brokers, host:port[,host:port..] (else $KPAX_BROKERS, else
    /// bootstrap.servers from --config).
    #[arg(short = 'b', long = "brokers", value_name = "HOST:PORT,..")]
    pub brokers: Option<String>,
    /// A Java-style properties file: bootstrap.servers, client.id,
    /// request.timeout.ms, security.protocol, ssl.ca.location,
    /// ssl.certificate.location, ssl.key.location, sasl.mechanism,
    /// sasl.username, sasl.password; produce also reads the producer's keys
    /// (acks, linger.ms, compression.type, ...), consume the consumer's
    /// (isolation.level, fetch.max.bytes, session.timeout.ms, ...).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A named profile of the profiles file (~/.config/kpax/profiles, or
    /// $KPAX_PROFILES): its settings under those of --config and -X, its
    /// brokers over $KPAX_BROKERS (else $KPAX_PROFILE).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Ignore $KPAX_PROFILE (a command that names both sides' settings
    /// itself, as mirror does).
    #[arg(skip)]
    pub no_env_profile: bool,
    /// One client setting, KEY=VALUE, with the keys --config takes
    /// (librdkafka's and Java's names, e.g. -X security.protocol=SSL);
    /// repeatable; overrides the file.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub client_settings: Vec<String>,
    /// Bound on the whole command (for consume --follow: on connecting).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::when::parse_duration)]
    pub timeout: Duration,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (default: from the TLS and
    /// SASL flags given, else security.protocol from --config, else
    /// PLAINTEXT).
    #[arg(long, value_name = "PROTOCOL")]
    pub security_protocol: Option<String>,
    /// Use TLS (same as --security-protocol SSL, or SASL_SSL with SASL).
    #[arg(long)]
    pub tls: bool,
    /// CA certificates to trust, a PEM file (else the platform's roots).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs --tls-key.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// The name to check the broker's certificate against.
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Accept any broker certificate (tests only: no protection against a
    /// man in the middle).
    #[arg(long)]
    pub tls_insecure: bool,
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (whose bearer
    /// token comes from the password sources; no user needed).
    #[arg(long, value_name = "MECHANISM")]
    pub sasl_mechanism: Option<String>,
    /// The SASL user; the password comes from $KPAX_SASL_PASSWORD,
    /// --sasl-password-file or sasl.password in --config.
    #[arg(long, value_name = "USER")]
    pub sasl_username: Option<String>,
    /// A file whose first line is the SASL password.
    #[arg(long, value_name = "FILE")]
    pub sasl_password_file: Option<PathBuf>,
}

/// Settings read from a `--config` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileConfig {
    /// `bootstrap.servers`.
    pub bootstrap_servers: Option<String>,
    /// `client.id`.
    pub client_id: Option<String>,
    /// `request.timeout.ms`.
    pub request_timeout: Option<Duration>,
    /// `security.protocol`.
    pub security_protocol: Option<String>,
    /// `ssl.ca.location`.
    pub ssl_ca_location: Option<PathBuf>,
    /// `ssl.certificate.location`.
    pub ssl_certificate_location: Option<PathBuf>,
    /// `ssl.key.location`.
    pub ssl_key_location: Option<PathBuf>,
    /// `sasl.mechanism` (or librdkafka's `sasl.mechanisms`).
    pub sasl_mechanism: Option<String>,
    /// `sasl.username`.
    pub sasl_username: Option<String>,
    /// `sasl.password`.
    pub sasl_password: Option<String>,
}

/// The connection settings of `props`.
///
/// # Errors
/// [`CliError::Config`] for a key no kpax configuration reads or a bad
/// `request.timeout.ms`.
pub fn file_config(props: &Properties) -> Result<FileConfig> {
    if let Some((key, at)) = props.unknown_keys().first() {
        return Err(CliError::Config(format!(
            "{at}: unknown key {key:?} (known: {})",
            kpax::properties::CLIENT_KEYS.join(", ")
        )));
    }
    let request_timeout = props
        .positive_millis("request.timeout.ms")
        .map_err(CliError::config)?;
    let s = |k: &str| props.get(k).map(str::to_string);
    Ok(FileConfig {
        bootstrap_servers: s("bootstrap.servers"),
        client_id: s("client.id"),
        request_timeout,
        security_protocol: s("security.protocol"),
        ssl_ca_location: s("ssl.ca.location").map(PathBuf::from),
        ssl_certificate_location: s("ssl.certificate.location").map(PathBuf::from),
        ssl_key_location: s("ssl.key.location").map(PathBuf::from),
        sasl_mechanism: s("sasl.mechanism"),
        sasl_username: s("sasl.username"),
        sasl_password: s("sasl.password"),
    })
}

/// The sources of settings, lowest first.
struct Layers {
    /// The profile asked for, and its settings.
    profile: Option<(String, Properties)>,
    /// `--config`'s settings.
    file: Properties,
    /// `-X`'s settings.
    set: Properties,
}

impl Layers {
    /// Each layer over the one before.
    fn merged(&self) -> Properties {
        self.profile
            .as_ref()
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
            .overlaid(self.file.clone())
            .overlaid(self.set.clone())
    }
}

/// Reads a configuration file's properties (at most 1 MiB).
///
/// # Errors
/// [`CliError::Config`] when it cannot be read, is too large, or does not
/// parse.
pub fn read_properties(path: &Path) -> Result<Properties> {
    let shown = format!("config file {}", path.display());
    let text = kpax::properties::read_file(path, &shown).map_err(CliError::config)?;
    Properties::parse(&text, &shown).map_err(CliError::config)
}

/// Splits and checks a `host:port,...` list.
///
/// # Errors
/// [`CliError::Usage`] for an empty list or an entry without a numeric
/// port.
pub fn parse_brokers(list: &str, origin: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for b in list.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        let b = b.strip_prefix("tcp://").unwrap_or(b);
        let ok = b
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(CliError::Usage(format!("{origin}: {b:?} is not host:port")));
        }
        out.push(b.to_string());
    }
    if out.is_empty() {
        return Err(CliError::Usage(format!("{origin}: no brokers listed")));
    }
    Ok(out)
}

impl ConnectArgs {
    /// The bootstrap brokers and client settings these flags name.
    ///
    /// # Errors
    /// [`CliError::Usage`] when no brokers are named anywhere or a list is
    /// malformed; [`CliError::Config`] for a bad config file.
    pub fn resolve(&self) -> Result<(Vec<String>, ClientConfig)> {
        let layers = self.layers()?;
        let merged = layers.merged();
        let file = file_config(&merged)?;
        let env = std::env::var(BROKERS_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty());
        let bootstrap = |p: &Properties| p.get("bootstrap.servers").map(str::to_string);
        // Most explicit first; a profile that was asked for beats the
        // environment's brokers.
        let mut candidates: Vec<(Option<String>, String)> = vec![
            (self.brokers.clone(), "--brokers".into()),
            (bootstrap(&layers.set), "-X bootstrap.servers".into()),
        ];
        match &layers.profile {
            Some((name, profile)) => {
                candidates.push((bootstrap(&layers.file), "bootstrap.servers".into()));
                candidates.push((
                    bootstrap(profile),
                    format!("bootstrap.servers of profile {name}"),
                ));
                candidates.push((env, BROKERS_VAR.into()));
            }
            None => {
                candidates.push((env, BROKERS_VAR.into()));
                candidates.push((bootstrap(&layers.file), "bootstrap.servers".into()));
            }
        }
        let brokers = match candidates.into_iter().find_map(|(b, from)| b.map(|b| (b, from))) {
            Some((b, from)) => parse_brokers(&b, &from)?,
            None => {
                return Err(CliError::Usage(format!(
                    "no brokers: pass --brokers HOST:PORT, set {BROKERS_VAR}, use --profile NAME, or give --config FILE with bootstrap.servers"
                )))
            }
        };
        // The client keys (client.id, timeouts, backoffs, metadata age,
        // auto-creation) as the library reads them; security comes from
        // the flags and the same keys below, where a password may come
        // from the environment.
        let general = merged.retained(|k| {
            !(k == "security.protocol" || k.starts_with("ssl.") || k.starts_with("sasl."))
        });
        let mut config = ClientConfig::from_properties(&general).map_err(CliError::config)?;
        let request_timeout = config.request_timeout.min(self.timeout);
        let connect_timeout = if general.get("socket.connection.setup.timeout.ms").is_some() {
            config.connect_timeout.min(self.timeout)
        } else {
            self.timeout.min(Duration::from_secs(10))
        };
        config = config
            .with_request_timeout(request_timeout)
            .with_connect_timeout(connect_timeout);
        let config = self.secure(config, &file)?;
        Ok((brokers, config))
    }

    /// Every setting of the profile, `--config` and `-X`, each layer over
    /// the one before, for the producer's and consumer's keys
    /// (`linger.ms`, `isolation.level`, ...).
    ///
    /// # Errors
    /// [`CliError::Config`] or [`CliError::Usage`] as [`ConnectArgs::resolve`].
    pub fn properties(&self) -> Result<Properties> {
        let merged = self.layers()?.merged();
        file_config(&merged)?;
        Ok(merged)
    }

    /// The profile named (flag, else environment), if any.
    fn profile_name(&self) -> Option<String> {
        self.profile.clone().or_else(|| {
            if self.no_env_profile {
                return None;
            }
            std::env::var(crate::profiles::PROFILE_VAR)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim().to_string())
        })
    }

    /// The settings, layer by layer.
    fn layers(&self) -> Result<Layers> {
        let profile = match self.profile_name() {
            Some(name) => {
                let (_, profiles) = crate::profiles::load()?;
                let p = profiles.get(&name)?;
                Some((name, p))
            }
            None => None,
        };
        let file = match &self.config {
            Some(p) => read_properties(p)?,
            None => Properties::default(),
        };
        for x in &self.client_settings {
            if !x.contains('=') || x.contains(['\n', '\r']) {
                return Err(CliError::Usage(format!("-X {x:?}: expected KEY=VALUE")));
            }
        }
        let set =
            Properties::parse(&self.client_settings.join("\n"), "-X").map_err(CliError::config)?;
        Ok(Layers { profile, file, set })
    }

    /// Adds the TLS and SASL settings the flags and file name.
    fn secure(&self, mut config: ClientConfig, file: &FileConfig) -> Result<ClientConfig> {
        let usage = |m: String| CliError::Usage(m);
        let ca = self.tls_ca.clone().or_else(|| file.ssl_ca_location.clone());
        let cert = self
            .tls_cert
            .clone()
            .or_else(|| file.ssl_certificate_location.clone());
        let key = self
            .tls_key
            .clone()
            .or_else(|| file.ssl_key_location.clone());
        let mechanism = self
            .sasl_mechanism
            .clone()
            .or_else(|| file.sasl_mechanism.clone());
        let username = self
            .sasl_username
            .clone()
            .or_else(|| file.sasl_username.clone());
        let wants_tls = self.tls
            || ca.is_some()
            || cert.is_some()
            || self.tls_server_name.is_some()
            || self.tls_insecure;
        let wants_sasl = mechanism.is_some() || username.is_some();
        let protocol: SecurityProtocol = match self
            .security_protocol
            .as_deref()
            .or(file.security_protocol.as_deref())
        {
            Some(p) => p
                .parse()
                .map_err(|e: kpax::Error| usage(format!("--security-protocol: {e}")))?,
            None => match (wants_tls, wants_sasl) {
                (false, false) => SecurityProtocol::Plaintext,
                (true, false) => SecurityProtocol::Ssl,
                (false, true) => SecurityProtocol::SaslPlaintext,
                (true, true) => SecurityProtocol::SaslSsl,
            },
        };
        config = config.with_security_protocol(protocol);
        if protocol.uses_tls() {
            let mut tls = TlsConfig::default();
            if let Some(ca) = ca {
                if !ca.is_file() {
                    return Err(usage(format!(
                        "TLS CA file {} does not exist",
                        ca.display()
                    )));
                }
                tls = tls.with_ca_file(ca);
            }
            match (cert, key) {
                (Some(c), Some(k)) => tls = tls.with_client_cert(Pem::File(c), Pem::File(k)),
                (None, None) => {}
                _ => {
                    return Err(usage(
                        "mutual TLS needs both --tls-cert and --tls-key".into(),
                    ))
                }
            }
            if let Some(name) = &self.tls_server_name {
                tls = tls.with_server_name(name.clone());
            }
            if self.tls_insecure {
                tls = tls.dangerous_skip_verification_for_tests_only();
            }
            config = config.with_tls(tls);
        } else if wants_tls {
            return Err(usage(format!(
                "TLS flags given but the security protocol is {protocol:?}"
            )));
        }
        if protocol.uses_sasl() {
            let mechanism: SaslMechanism = mechanism
                .ok_or_else(|| usage("SASL needs --sasl-mechanism".into()))?
                .parse()
                .map_err(|e: kpax::Error| usage(format!("--sasl-mechanism: {e}")))?;
            // OAUTHBEARER: the token names the principal, and comes from
            // the password sources.
            let username = match username {
                Some(u) => u,
                None if mechanism == SaslMechanism::OAuthBearer => String::new(),
                None => return Err(usage("SASL needs --sasl-username".into())),
            };
            let password = self.sasl_password(file)?;
            config = config.with_sasl(SaslConfig::new(mechanism, username, password));
        } else if wants_sasl {
            return Err(usage(format!(
                "SASL flags given but the security protocol is {protocol:?}"
            )));
        }
        Ok(config)
    }

    /// The SASL password: the environment, a file, or the config file.
    fn sasl_password(&self, file: &FileConfig) -> Result<String> {
        if let Ok(p) = std::env::var(SASL_PASSWORD_VAR) {
            if !p.is_empty() {
                return Ok(p);
            }
        }
        if let Some(path) = &self.sasl_password_file {
            let shown = format!("password file {}", path.display());
            let text = kpax::properties::read_file(path, &shown).map_err(CliError::config)?;
            let line = text.lines().next().unwrap_or("").to_string();
            if line.is_empty() {
                return Err(CliError::Config(format!("{shown} is empty")));
            }
            return Ok(line);
        }
        if let Some(p) = &file.sasl_password {
            return Ok(p.clone());
        }
        Err(CliError::Usage(format!(
            "SASL needs a password: set {SASL_PASSWORD_VAR}, or give --sasl-password-file or sasl.password in --config"
        )))
    }

    /// A cluster handle (nothing is connected until first use).
    ///
    /// # Errors
    /// As [`ConnectArgs::resolve`], and the client's configuration errors.
    pub fn cluster(&self) -> Result<Cluster> {
        let (brokers, config) = self.resolve()?;
        Cluster::new(brokers, config).map_err(|source| CliError::Kafka {
            context: "connecting".into(),
            source,
        })
    }

    /// Runs `fut` within this command's time bound.
    ///
    /// # Errors
    /// `fut`'s error, or [`CliError::Timeout`] naming `what`.
    pub async fn bounded<T>(&self, what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        bounded(self.timeout, what, fut).await
    }
}

/// Runs `fut` for at most `after`.
///
/// # Errors
/// `fut`'s error, or [`CliError::Timeout`] naming `what`.
pub async fn bounded<T>(
    after: Duration,
    what: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(after, fut).await {
        Ok(r) => r,
        Err(_) => Err(CliError::Timeout {
            what: what.to_string(),
            after,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_properties(text: &str, origin: &str) -> Result<FileConfig> {
        file_config(&Properties::parse(text, origin).map_err(CliError::config)?)
    }

    #[test]
    fn reads_java_properties() {
        let text = "# a comment\n! another\n\nbootstrap.servers = a:9092,\\\n    b:9092\nclient.id: me\nrequest.timeout.ms 5000\n";
        let c = parse_properties(text, "f").unwrap();
        assert_eq!(c.bootstrap_servers.as_deref(), Some("a:9092,b:9092"));
        assert_eq!(c.client_id.as_deref(), Some("me"));
        assert_eq!(c.request_timeout, Some(Duration::from_millis(5000)));
    }

    #[test]
    fn rejects_unknown_keys_naming_key_and_line() {
        let e = parse_properties("client.id=x\nsasl.jaas.config=PLAIN\n", "f.properties")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.properties line 2"), "{e}");
        assert!(e.contains("\"sasl.jaas.config\""), "{e}");
    }

    #[test]
    fn reads_tls_and_sasl_keys() {
        let c = parse_properties(
            "security.protocol=SASL_SSL\nssl.ca.location=/ca.pem\nsasl.mechanisms=PLAIN\nsasl.username=u\nsasl.password=p\n",
            "f",
        )
        .unwrap();
        assert_eq!(c.security_protocol.as_deref(), Some("SASL_SSL"));
        assert_eq!(c.ssl_ca_location, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.sasl_mechanism.as_deref(), Some("PLAIN"));
        assert_eq!(c.sasl_password.as_deref(), Some("p"));
        let e = parse_properties("sasl.mechanism=PLAIN\nsasl.mechanisms=PLAIN\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn rejects_bad_values() {
        for text in [
            "request.timeout.ms=soon",
            "client.id=",
            "client.id=a\nclient.id=b",
            "lonely",
        ] {
            assert!(parse_properties(text, "f").is_err(), "{text}");
        }
    }

    #[test]
    fn checks_broker_lists() {
        assert_eq!(
            parse_brokers("a:1, b:2", "x").unwrap(),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert!(parse_brokers("a", "x").is_err());
        assert!(parse_brokers("a:port", "x").is_err());
        assert!(parse_brokers(" , ", "x").is_err());
    }

    fn args(brokers: Option<&str>, set: &[&str]) -> ConnectArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            c: ConnectArgs,
        }
        let mut argv = vec!["t".to_string()];
        if let Some(b) = brokers {
            argv.extend(["-b".to_string(), b.to_string()]);
        }
        for x in set {
            argv.extend(["-X".to_string(), x.to_string()]);
        }
        T::parse_from(argv).c
    }

    #[test]
    fn dash_x_sets_what_a_config_file_sets() {
        let (brokers, config) = args(None, &["bootstrap.servers=h:1,k:2", "client.id=mine"])
            .resolve()
            .unwrap();
        assert_eq!(brokers, ["h:1", "k:2"]);
        assert_eq!(config.client_id, "mine");
        // --brokers wins over bootstrap.servers, as over the file's
        let (brokers, _) = args(Some("b:9"), &["bootstrap.servers=h:1"])
            .resolve()
            .unwrap();
        assert_eq!(brokers, ["b:9"]);
        let e = |set: &[&str]| args(Some("b:9"), set).resolve().unwrap_err().to_string();
        assert!(e(&["client.id"]).contains("expected KEY=VALUE"));
        assert!(e(&["client.id=a\nsasl.password=x"]).contains("expected KEY=VALUE"));
        assert!(e(&["sasl.jaas.config=x"]).contains("-X line 1: unknown key \"sasl.jaas.config\""));
        // producer and consumer keys are accepted, and reach properties()
        let a = args(
            Some("b:9"),
            &["linger.ms=5", "isolation.level=read_committed"],
        );
        a.resolve().unwrap();
        let p = a.properties().unwrap();
        assert_eq!(p.get("linger.ms"), Some("5"));
        let c = kpax::ConsumerConfig::from_properties(&p).unwrap();
        assert_eq!(
            c.isolation_level,
            kpax::consumer::IsolationLevel::ReadCommitted
        );
        let bad = args(Some("b:9"), &["linger.ms=soon"]).properties().unwrap();
        let why = kpax::ProducerConfig::from_properties(&bad)
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("-X line 1: linger.ms: expected a whole number"),
            "{why}"
        );
        assert!(e(&["client.id=a", "client.id=b"]).contains("given twice"));
        // every client key reaches the client's configuration
        let (_, c) = args(
            Some("b:9"),
            &[
                "metadata.max.age.ms=1234",
                "reconnect.backoff.ms=7",
                "allow.auto.create.topics=true",
                "socket.connection.setup.timeout.ms=2500",
            ],
        )
        .resolve()
        .unwrap();
        assert_eq!(c.metadata_max_age, Duration::from_millis(1234));
        assert_eq!(c.reconnect_backoff, Duration::from_millis(7));
        assert!(c.allow_auto_topic_creation);
        assert_eq!(c.connect_timeout, Duration::from_millis(2500));
        assert!(e(&["reconnect.backoff.ms=soon"]).contains("-X line 1: reconnect.backoff.ms"));
        assert!(e(&["security.protocol=SASL_SSL"]).contains("SASL needs --sasl-mechanism"));
    }

    #[test]
    fn settings_override_the_files() {
        let path =
            std::env::temp_dir().join(format!("kpax-connect-{}.properties", std::process::id()));
        std::fs::write(
            &path,
            "client.id=file\nsasl.username=u\nbootstrap.servers=f:1\n",
        )
        .unwrap();
        let mut a = args(None, &["client.id=flag"]);
        a.config = Some(path.clone());
        a.no_env_profile = true;
        let p = a.properties().unwrap();
        assert_eq!(p.get("client.id"), Some("flag"));
        assert_eq!(p.get("sasl.username"), Some("u"));
        let e = a.resolve().unwrap_err().to_string();
        assert!(e.contains("SASL needs --sasl-mechanism"), "{e}");
        std::fs::write(&path, "client.id=file\nbootstrap.servers=f:1\n").unwrap();
        let (brokers, config) = a.resolve().unwrap();
        assert_eq!(config.client_id, "flag");
        if std::env::var(BROKERS_VAR).is_err() {
            assert_eq!(brokers, ["f:1"]);
        }
        let _ = std::fs::remove_file(&path);
    }
}
