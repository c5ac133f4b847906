//! Client settings shared by brokers and the cluster.

use crate::versions::LegacyVersion;
use kpax_proto::generated::ApiKey;
use std::path::PathBuf;
use std::time::Duration;

/// Settings for connections and metadata. Build with `ClientConfig::default()`
/// and the `with_*` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The client id sent in every request header.
    pub client_id: String,
    /// How long a request may wait for its response.
    pub request_timeout: Duration,
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
    /// Most requests in flight on one connection.
    pub max_in_flight: usize,
    /// The largest response frame accepted (bytes).
    pub max_response_size: usize,
    /// Highest version to use per API (caps negotiation).
    pub version_caps: Vec<(ApiKey, i16)>,
    /// For brokers that predate ApiVersions (0.8/0.9): the versions to assume
    /// when the broker closes the connection on ApiVersions.
    pub broker_version_fallback: Option<LegacyVersion>,
    /// First wait before reconnecting to a broker that failed.
    pub reconnect_backoff: Duration,
    /// Longest wait before reconnecting.
    pub reconnect_backoff_max: Duration,
    /// Metadata older than this is reloaded on the next lookup.
    pub metadata_max_age: Duration,
    /// Ask brokers to create topics that metadata requests name (v4+;
    /// older brokers decide by their own setting).
    pub allow_auto_topic_creation: bool,
    /// How connections are secured (Kafka's `security.protocol`).
    pub security_protocol: SecurityProtocol,
    /// TLS settings, used by [`SecurityProtocol::Ssl`] and
    /// [`SecurityProtocol::SaslSsl`].
    pub tls: TlsConfig,
    /// SASL settings, required by [`SecurityProtocol::SaslPlaintext`] and
    /// [`SecurityProtocol::SaslSsl`].
    pub sasl: Option<SaslConfig>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            client_id: "kpax".into(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_in_flight: 64,
            max_response_size: 128 * 1024 * 1024,
            version_caps: Vec::new(),
            broker_version_fallback: None,
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            metadata_max_age: Duration::from_secs(300),
            allow_auto_topic_creation: false,
            security_protocol: SecurityProtocol::Plaintext,
            tls: TlsConfig::default(),
            sasl: None,
        }
    }
}

impl ClientConfig {
    /// Sets the client id.
    pub fn with_client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// Sets the request timeout.
    pub fn with_request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Sets the most requests in flight per connection (at least 1).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Caps the version used for `api`.
    pub fn with_version_cap(mut self, api: ApiKey, max: i16) -> Self {
        self.version_caps.retain(|(a, _)| *a != api);
        self.version_caps.push((api, max));
        self
    }

    /// Assumes these versions for brokers that do not answer ApiVersions.
    pub fn with_broker_version_fallback(mut self, v: LegacyVersion) -> Self {
        self.broker_version_fallback = Some(v);
        self
    }

    /// Sets the reconnect backoff range.
    pub fn with_reconnect_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.reconnect_backoff = first;
        self.reconnect_backoff_max = max.max(first);
        self
    }

    /// Sets the metadata max age.
    pub fn with_metadata_max_age(mut self, t: Duration) -> Self {
        self.metadata_max_age = t;
        self
    }

    /// Sets whether metadata requests may auto-create topics.
    pub fn with_allow_auto_topic_creation(mut self, allow: bool) -> Self {
        self.allow_auto_topic_creation = allow;
        self
    }

    /// Sets how connections are secured (Kafka's `security.protocol`).
    pub fn with_security_protocol(mut self, p: SecurityProtocol) -> Self {
        self.security_protocol = p;
        self
    }

    /// Sets the TLS settings (used when the security protocol is
    /// [`SecurityProtocol::Ssl`] or [`SecurityProtocol::SaslSsl`]).
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the SASL mechanism and credentials (used when the security
    /// protocol is [`SecurityProtocol::SaslPlaintext`] or
    /// [`SecurityProtocol::SaslSsl`]).
    pub fn with_sasl(mut self, sasl: SaslConfig) -> Self {
        self.sasl = Some(sasl);
        self
    }

    pub(crate) fn cap(&self, api: ApiKey) -> Option<i16> {
        self.version_caps
            .iter()
            .find(|(a, _)| *a == api)
            .map(|(_, v)| *v)
    }
}

/// How connections to brokers are secured, in Kafka's words
/// (`security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SecurityProtocol {
    /// Plain TCP (`PLAINTEXT`).
    #[default]
    Plaintext,
    /// TLS (`SSL`); needs the `tls` feature.
    Ssl,
    /// SASL over plain TCP (`SASL_PLAINTEXT`); needs the `sasl` feature.
    SaslPlaintext,
    /// SASL over TLS (`SASL_SSL`); needs the `tls` and `sasl` features.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether connections use TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl std::str::FromStr for SecurityProtocol {
    type Err = crate::Error;

    /// Parses Kafka's names: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`,
    /// `SASL_SSL` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(crate::Error::Config(format!(
                "unknown security protocol {s:?} (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"
            ))),
        }
    }
}

/// PEM data: a file to read when connecting, or the bytes themselves.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pem {
    /// A PEM file, read when the first connection opens.
    File(PathBuf),
    /// PEM text held in memory.
    Inline(Vec<u8>),
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pem::File(p) => f.debug_tuple("File").field(p).finish(),
            // May hold a private key: never printed.
            Pem::Inline(b) => write!(f, "Inline(<{} bytes>)", b.len()),
        }
    }
}

/// TLS settings (Kafka's `ssl.*`). Build with `TlsConfig::default()` and the
/// `with_*` methods. With no CA given, the platform's trusted roots are used.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TlsConfig {
    /// CA certificates to trust (`ssl.truststore.*`), in PEM.
    pub ca: Vec<Pem>,
    /// Whether to trust the platform's root certificates as well; they are
    /// always used when `ca` is empty.
    pub platform_roots: bool,
    /// A client certificate chain and its private key, for mutual TLS
    /// (`ssl.keystore.*`).
    pub client_cert: Option<(Pem, Pem)>,
    /// The name to verify the broker's certificate against, instead of the
    /// host of its address.
    pub server_name: Option<String>,
    /// Accepts any certificate without verifying it. For tests only:
    /// a connection made this way is open to anyone in the middle.
    pub dangerous_skip_verification_for_tests_only: bool,
}

impl TlsConfig {
    /// Trusts the CA certificates in a PEM file.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca.push(Pem::File(path.into()));
        self
    }

    /// Trusts the CA certificates in PEM text.
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca.push(Pem::Inline(pem.into()));
        self
    }

    /// Trusts the platform's root certificates too (they are the default
    /// when no CA is given).
    pub fn with_platform_roots(mut self, on: bool) -> Self {
        self.platform_roots = on;
        self
    }

    /// Presents a client certificate chain and key (mutual TLS).
    pub fn with_client_cert(mut self, chain: Pem, key: Pem) -> Self {
        self.client_cert = Some((chain, key));
        self
    }

    /// Verifies brokers' certificates against `name` instead of the host
    /// of their address.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Skips certificate verification entirely. For tests only.
    pub fn dangerous_skip_verification_for_tests_only(mut self) -> Self {
        self.dangerous_skip_verification_for_tests_only = true;
        self
    }
}

/// A SASL mechanism kpax speaks (Kafka's `sasl.mechanism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaslMechanism {
    /// `PLAIN` (RFC 4616): the password is sent as is; use it over TLS.
    Plain,
    /// `SCRAM-SHA-256` (RFC 5802, RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-512` (RFC 5802).
    ScramSha512,
    /// `OAUTHBEARER` (RFC 7628, KIP-255): a bearer token from a
    /// [`OAuthBearerTokenProvider`], asked again at every
    /// re-authentication; use it over TLS.
    OAuthBearer,
}

impl SaslMechanism {
    /// The mechanism's name as SaslHandshake sends it.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

impl std::str::FromStr for SaslMechanism {
    type Err = crate::Error;

    /// Parses `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER`
    /// (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            "OAUTHBEARER" => Ok(SaslMechanism::OAuthBearer),
            _ => Err(crate::Error::Config(format!(
                "unknown SASL mechanism {s:?} (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)"
            ))),
        }
    }
}

/// A bearer token for SASL/OAUTHBEARER, with optional SASL extensions
/// (KIP-342). Its `Debug` output never shows the token.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OAuthBearerToken {
    /// The token (a JWT for most identity providers).
    pub value: String,
    /// SASL extensions sent beside it: keys of letters only, not `auth`.
    pub extensions: std::collections::BTreeMap<String, String>,
}

impl OAuthBearerToken {
    /// A token without extensions.
    pub fn new(value: impl Into<String>) -> OAuthBearerToken {
        OAuthBearerToken {
            value: value.into(),
            extensions: Default::default(),
        }
    }

    /// Adds a SASL extension (e.g. `logicalCluster` for some clouds).
    pub fn with_extension(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.insert(key.into(), value.into());
        self
    }

    /// The client's first (and only) message (RFC 7628 3.1):
    /// `n,,` `%x01` `auth=Bearer <token>` `%x01` (`key=value` `%x01`)* `%x01`.
    ///
    /// # Errors
    /// A message for an empty token, a token or value with control
    /// characters, or an extension key that is not letters only or is `auth`.
    pub fn client_first_message(&self) -> Result<Vec<u8>, String> {
        let printable = |v: &str| {
            v.chars().all(|c| {
                c == ' ' || c == '\t' || c == '\r' || c == '\n' || (' '..='~').contains(&c)
            })
        };
        if self.value.is_empty() {
            return Err("the token is empty".into());
        }
        if !self.value.chars().all(|c| ('!'..='~').contains(&c)) {
            return Err("the token has characters a bearer token cannot have".into());
        }
        let mut out = String::from("n,,\u{1}auth=Bearer ");
        out.push_str(&self.value);
        out.push('\u{1}');
        for (k, v) in &self.extensions {
            if k.is_empty() || k == "auth" || !k.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("invalid SASL extension key {k:?}"));
            }
            if !printable(v) {
                return Err(format!("SASL extension {k} has a control character"));
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
            out.push('\u{1}');
        }
        out.push('\u{1}');
        Ok(out.into_bytes())
    }
}

impl std::fmt::Debug for OAuthBearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthBearerToken")
            .field("value", &"<redacted>")
            .field("extensions", &self.extensions.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The future of [`OAuthBearerTokenProvider::token`].
pub type TokenFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<OAuthBearerToken, String>> + Send + 'a>,
>;

/// Where OAUTHBEARER tokens come from: asked at every authentication and
/// re-authentication (KIP-368), so a provider can refresh its token from
/// an identity provider. An `Err` fails that login with the message.
pub trait OAuthBearerTokenProvider: Send + Sync {
    /// The token to log in with now.
    fn token(&self) -> TokenFuture<'_>;
}

/// A token that never changes (`SaslConfig::oauthbearer_token`).
struct StaticToken(OAuthBearerToken);

impl OAuthBearerTokenProvider for StaticToken {
    fn token(&self) -> TokenFuture<'_> {
        let t = self.0.clone();
        Box::pin(async move { Ok(t) })
    }
}

/// SASL credentials and mechanism. Its `Debug` output never shows the
/// password or token.
#[derive(Clone)]
#[non_exhaustive]
pub struct SaslConfig {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// The user name (unused by OAUTHBEARER: the token names the principal).
    pub username: String,
    password: String,
    token_provider: Option<std::sync::Arc<dyn OAuthBearerTokenProvider>>,
}

impl PartialEq for SaslConfig {
    fn eq(&self, other: &Self) -> bool {
        self.mechanism == other.mechanism
            && self.username == other.username
            && self.password == other.password
            && match (&self.token_provider, &other.token_provider) {
                (None, None) => true,
                (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Eq for SaslConfig {}

impl SaslConfig {
    /// `mechanism` with `username` and `password` (for `OAuthBearer`, the
    /// password is the bearer token, used as is every time).
    pub fn new(
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> SaslConfig {
        SaslConfig {
            mechanism,
            username: username.into(),
            password: password.into(),
            token_provider: None,
        }
    }

    /// `OAUTHBEARER` with tokens from `provider`, asked at every
    /// (re-)authentication.
    pub fn oauthbearer(provider: std::sync::Arc<dyn OAuthBearerTokenProvider>) -> SaslConfig {
        SaslConfig {
            mechanism: SaslMechanism::OAuthBearer,
            username: String::new(),
            password: String::new(),
            token_provider: Some(provider),
        }
    }

    /// `OAUTHBEARER` with one fixed token (and its extensions).
    pub fn oauthbearer_token(token: OAuthBearerToken) -> SaslConfig {
        SaslConfig::oauthbearer(std::sync::Arc::new(StaticToken(token)))
    }

    /// The OAUTHBEARER token to log in with now: the provider's, else the
    /// password as a token.
    #[cfg_attr(not(feature = "sasl"), allow(dead_code))]
    pub(crate) async fn oauthbearer_token_now(&self) -> Result<OAuthBearerToken, String> {
        match &self.token_provider {
            Some(p) => p.token().await,
            None => Ok(OAuthBearerToken::new(self.password.clone())),
        }
    }

    /// `PLAIN` with `username` and `password`.
    pub fn plain(username: impl Into<String>, password: impl Into<String>) -> SaslConfig {
        SaslConfig::new(SaslMechanism::Plain, username, password)
    }

    /// `SCRAM-SHA-256` with `username` and `password`.
    pub fn scram_sha_256(username: impl Into<String>, password: impl Into<String>) -> SaslConfig {
        SaslConfig::new(SaslMechanism::ScramSha256, username, password)
    }

    /// `SCRAM-SHA-512` with `username` and `password`.
    pub fn scram_sha_512(username: impl Into<String>, password: impl Into<String>) -> SaslConfig {
        SaslConfig::new(SaslMechanism::ScramSha512, username, password)
    }

    #[cfg_attr(not(feature = "sasl"), allow(dead_code))]
    pub(crate) fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("token_provider", &self.token_provider.is_some())
            .finish()
    }
}

impl ClientConfig {
    /// The client settings in `props` (the keys in
    /// [`crate::properties::CLIENT_KEYS`], Java's and librdkafka's names),
    /// over the defaults. Without `security.protocol`, the protocol follows
    /// from what is given: `ssl.*` keys mean TLS, `sasl.*` keys SASL.
    /// `bootstrap.servers` is read by
    /// [`Properties::bootstrap_servers`](crate::properties::Properties::bootstrap_servers).
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming the line and key of a bad value, a
    /// TLS CA file that does not exist, a certificate without its key, or
    /// SASL without a mechanism, user or password.
    pub fn from_properties(props: &crate::properties::Properties) -> crate::Result<ClientConfig> {
        let mut c = ClientConfig::default();
        if let Some(id) = props.string("client.id") {
            c.client_id = id;
        }
        if let Some(t) = props.positive_millis("request.timeout.ms")? {
            c.request_timeout = t;
        }
        if let Some(t) = props.positive_millis("socket.connection.setup.timeout.ms")? {
            c.connect_timeout = t;
        }
        if let Some(t) = props.millis("reconnect.backoff.ms")? {
            c.reconnect_backoff = t;
        }
        if let Some(t) = props.millis("reconnect.backoff.max.ms")? {
            c.reconnect_backoff_max = t;
        }
        if c.reconnect_backoff_max < c.reconnect_backoff {
            return Err(props.error(
                "reconnect.backoff.max.ms",
                "must be at least reconnect.backoff.ms".into(),
            ));
        }
        if let Some(t) = props.positive_millis("metadata.max.age.ms")? {
            c.metadata_max_age = t;
        }
        if let Some(on) = props.flag("allow.auto.create.topics")? {
            c.allow_auto_topic_creation = on;
        }
        let ca = props.string("ssl.ca.location");
        let cert = props.string("ssl.certificate.location");
        let key = props.string("ssl.key.location");
        let mechanism = props.string("sasl.mechanism");
        let username = props.string("sasl.username");
        let password = props.string("sasl.password");
        let wants_tls = ca.is_some() || cert.is_some() || key.is_some();
        let wants_sasl = mechanism.is_some() || username.is_some() || password.is_some();
        let protocol = match props.parsed("security.protocol", |v| {
            v.parse::<SecurityProtocol>().map_err(|e| e.to_string())
        })? {
            Some(p) => p,
            None => match (wants_tls, wants_sasl) {
                (false, false) => SecurityProtocol::Plaintext,
                (true, false) => SecurityProtocol::Ssl,
                (false, true) => SecurityProtocol::SaslPlaintext,
                (true, true) => SecurityProtocol::SaslSsl,
            },
        };
        c.security_protocol = protocol;
        if protocol.uses_tls() {
            if let Some(ca) = ca {
                if !std::path::Path::new(&ca).is_file() {
                    return Err(props.error("ssl.ca.location", format!("no such file {ca}")));
                }
                c.tls = c.tls.with_ca_file(ca);
            }
            match (cert, key) {
                (Some(cert), Some(key)) => {
                    c.tls = c
                        .tls
                        .with_client_cert(Pem::File(cert.into()), Pem::File(key.into()))
                }
                (None, None) => {}
                (Some(_), None) => {
                    return Err(props.error(
                        "ssl.certificate.location",
                        "needs ssl.key.location too".into(),
                    ))
                }
                (None, Some(_)) => {
                    return Err(props.error(
                        "ssl.key.location",
                        "needs ssl.certificate.location too".into(),
                    ))
                }
            }
        } else if wants_tls {
            return Err(props.error(
                "security.protocol",
                format!("ssl.* keys given but the security protocol is {protocol:?}"),
            ));
        }
        if protocol.uses_sasl() {
            let mechanism = props
                .parsed("sasl.mechanism", |v| {
                    v.parse::<SaslMechanism>().map_err(|e| e.to_string())
                })?
                .ok_or_else(|| {
                    crate::Error::Config(format!("{protocol:?} needs sasl.mechanism"))
                })?;
            let username = match username {
                Some(u) => u,
                None if mechanism == SaslMechanism::OAuthBearer => String::new(),
                None => {
                    return Err(crate::Error::Config(format!(
                        "SASL {} needs sasl.username",
                        mechanism.name()
                    )))
                }
            };
            let password = password.ok_or_else(|| {
                crate::Error::Config(format!("SASL {} needs sasl.password", mechanism.name()))
            })?;
            c.sasl = Some(SaslConfig::new(mechanism, username, password));
        } else if wants_sasl {
            return Err(props.error(
                "security.protocol",
                format!("sasl.* keys given but the security protocol is {protocol:?}"),
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let c = ClientConfig::default()
            .with_security_protocol(SecurityProtocol::SaslSsl)
            .with_sasl(SaslConfig::scram_sha_512("alice", "s3cr3t-Pa55"))
            .with_tls(TlsConfig::default().with_client_cert(
                Pem::Inline(b"CERT".to_vec()),
                Pem::Inline(b"-----BEGIN PRIVATE KEY-----hush".to_vec()),
            ));
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("hush"), "{shown}");
        assert!(
            shown.contains("alice") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn oauthbearer_messages_follow_rfc_7628_and_hide_the_token() {
        let t = OAuthBearerToken::new("eyJ.abc.def").with_extension("logicalCluster", "lkc-1");
        assert_eq!(
            t.client_first_message().unwrap(),
            b"n,,\x01auth=Bearer eyJ.abc.def\x01logicalCluster=lkc-1\x01\x01".to_vec()
        );
        assert!(!format!("{t:?}").contains("eyJ"));
        let c = SaslConfig::oauthbearer_token(t.clone());
        assert!(!format!("{c:?}").contains("eyJ"));
        assert_eq!(c, c.clone(), "the same provider");
        assert_ne!(c, SaslConfig::oauthbearer_token(t), "another provider");
        for bad in [
            OAuthBearerToken::new(""),
            OAuthBearerToken::new("two words"),
            OAuthBearerToken::new("t").with_extension("auth", "x"),
            OAuthBearerToken::new("t").with_extension("bad key", "x"),
            OAuthBearerToken::new("t").with_extension("k", "\u{1}"),
        ] {
            assert!(bad.client_first_message().is_err(), "{bad:?}");
        }
        assert_eq!(
            "oauthbearer".parse::<SaslMechanism>().unwrap(),
            SaslMechanism::OAuthBearer
        );
    }

    #[test]
    fn kafka_names_parse() {
        assert_eq!(
            "sasl_ssl".parse::<SecurityProtocol>().unwrap(),
            SecurityProtocol::SaslSsl
        );
        assert_eq!(
            "SCRAM-SHA-256".parse::<SaslMechanism>().unwrap(),
            SaslMechanism::ScramSha256
        );
        assert!(matches!(
            "GSSAPI".parse::<SaslMechanism>(),
            Err(crate::Error::Config(_))
        ));
        assert!("TLS".parse::<SecurityProtocol>().is_err());
    }
}
