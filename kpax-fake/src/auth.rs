//! TLS and SASL for the fake's listeners, so that clients can be tested
//! against a broker that asks for them: a rustls server configuration, and
//! the broker side of SaslHandshake/SaslAuthenticate with PLAIN and
//! SCRAM-SHA-256/512 (RFC 5802), sessions with a lifetime, and KIP-368
//! re-authentication on the same connection.
//!
//! Like Kafka, a SASL listener closes the connection on any request other
//! than ApiVersions/SaslHandshake before authentication, on a request other
//! than the SASL exchange once the session has expired or while a
//! re-authentication is under way, and after a failed authentication.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use kpax_proto::generated::{
    ApiKey, ErrorCode, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kpax_proto::wire::StrBytes;
use sha2::{Digest, Sha256, Sha512};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The SASL mechanisms the fake can serve.
pub const MECHANISMS: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// Iterations the fake's SCRAM credentials use (Kafka's minimum).
const ITERATIONS: u32 = 4096;

/// TLS for the fake's listeners: a certificate chain and key, and
/// optionally the CA client certificates must chain to (mutual TLS).
#[derive(Clone)]
pub struct FakeTls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for FakeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeTls(..)")
    }
}

fn invalid(what: &str, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}: {e}"))
}

fn certs(pem: &[u8]) -> std::io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("certificate PEM", e))?;
    if certs.is_empty() {
        return Err(invalid("certificate PEM", "no certificate found"));
    }
    Ok(certs)
}

impl FakeTls {
    /// Serves TLS with `cert_chain_pem` (leaf first) and `key_pem`.
    ///
    /// # Errors
    /// When the PEM does not hold a certificate and a key rustls accepts.
    pub fn new(cert_chain_pem: &[u8], key_pem: &[u8]) -> std::io::Result<FakeTls> {
        FakeTls::build(cert_chain_pem, key_pem, None)
    }

    /// As [`FakeTls::new`], and requires client certificates signed by a
    /// CA of `client_ca_pem` (mutual TLS).
    ///
    /// # Errors
    /// As [`FakeTls::new`], or an unusable CA.
    pub fn with_client_auth(
        cert_chain_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: &[u8],
    ) -> std::io::Result<FakeTls> {
        FakeTls::build(cert_chain_pem, key_pem, Some(client_ca_pem))
    }

    fn build(
        cert_chain_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: Option<&[u8]>,
    ) -> std::io::Result<FakeTls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("TLS versions", e))?;
        let builder = match client_ca_pem {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs(ca)? {
                    roots.add(c).map_err(|e| invalid("client CA", e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| invalid("client verifier", e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| invalid("key PEM", e))?;
        let config = builder
            .with_single_cert(certs(cert_chain_pem)?, key)
            .map_err(|e| invalid("certificate and key", e))?;
        Ok(FakeTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// SASL on the fake's listeners: enabled mechanisms, users, and the
/// session lifetime (Kafka's `connections.max.reauth.ms`). `Debug` never
/// shows passwords.
#[derive(Clone)]
pub struct FakeSasl {
    mechanisms: Vec<String>,
    users: Vec<(String, String)>,
    session_lifetime: Option<Duration>,
    /// OAUTHBEARER tokens accepted (none: every token is refused).
    tokens: Vec<String>,
    /// OAUTHBEARER SASL extensions of every accepted login, in order.
    extensions_seen: Arc<std::sync::Mutex<Vec<Extensions>>>,
}

impl std::fmt::Debug for FakeSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("FakeSasl")
            .field("mechanisms", &self.mechanisms)
            .field("users", &users)
            .field("session_lifetime", &self.session_lifetime)
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl Default for FakeSasl {
    /// Every mechanism, no users, sessions that never expire.
    fn default() -> Self {
        FakeSasl {
            mechanisms: MECHANISMS.iter().map(|m| m.to_string()).collect(),
            users: Vec::new(),
            session_lifetime: None,
            tokens: Vec::new(),
            extensions_seen: Arc::default(),
        }
    }
}

impl FakeSasl {
    /// Every mechanism, no users, sessions that never expire.
    pub fn new() -> FakeSasl {
        FakeSasl::default()
    }

    /// Adds a user (for every mechanism).
    pub fn with_user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }

    /// Enables only `mechanisms` (names outside [`MECHANISMS`] are kept
    /// and advertised, but never succeed).
    pub fn with_mechanisms(mut self, mechanisms: &[&str]) -> Self {
        self.mechanisms = mechanisms.iter().map(|m| m.to_string()).collect();
        self
    }

    /// Gives each session this lifetime: SaslAuthenticate v1+ reports it,
    /// and a request other than the SASL exchange after it has passed
    /// closes the connection.
    pub fn with_session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = Some(lifetime);
        self
    }

    /// Accepts `token` for OAUTHBEARER (KIP-255; the fake does not
    /// validate JWTs, it compares the whole token).
    pub fn with_oauthbearer_token(mut self, token: impl Into<String>) -> Self {
        self.tokens.push(token.into());
        self
    }

    /// The SASL extensions sent with each accepted OAUTHBEARER login.
    pub fn oauthbearer_extensions_seen(&self) -> Vec<Extensions> {
        self.extensions_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn password(&self, user: &str) -> Option<&str> {
        self.users
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, p)| p.as_str())
    }
}

/// One OAUTHBEARER login's SASL extensions, in the order sent.
pub type Extensions = Vec<(String, String)>;

/// Where a connection's SASL exchange stands.
enum Stage {
    /// Nothing yet.
    Fresh,
    /// SaslHandshake chose `mechanism`; SaslAuthenticate comes next.
    Chosen { mechanism: String },
    /// SCRAM: the server-first message was sent.
    ScramSent(Box<ScramServer>),
    /// OAUTHBEARER: the token was refused and the error challenge sent;
    /// the client's `%x01` completes the failure (RFC 7628 3.2.2).
    OAuthRefused(String),
    /// Authenticated until `expires` (never when `None`).
    Done { expires: Option<Instant> },
}

/// One connection's SASL state.
pub(crate) struct Session {
    sasl: Arc<FakeSasl>,
    stage: Stage,
    /// Whether the connection was authenticated before (a re-authentication
    /// is under way when not `Done`).
    was_authenticated: bool,
}

/// What to do after answering a SASL request.
pub(crate) enum After {
    Continue,
    Close(String),
}

impl Session {
    pub(crate) fn new(sasl: Arc<FakeSasl>) -> Session {
        Session {
            sasl,
            stage: Stage::Fresh,
            was_authenticated: false,
        }
    }

    /// Whether a request of `api` may be served now; `Err` says why the
    /// connection closes instead.
    pub(crate) fn admit(&self, api: ApiKey) -> Result<(), String> {
        match (&self.stage, api) {
            (Stage::Fresh, ApiKey::ApiVersions) => Ok(()),
            (Stage::Done { .. }, ApiKey::ApiVersions) => Ok(()),
            (Stage::Done { expires }, _) => match expires {
                Some(at) if Instant::now() >= *at => Err(format!(
                    "{} after the SASL session expired (no re-authentication)",
                    api.name()
                )),
                _ => Ok(()),
            },
            (_, _) if self.was_authenticated => Err(format!(
                "{} while re-authentication is in progress",
                api.name()
            )),
            (_, _) => Err(format!("{} before SASL authentication", api.name())),
        }
    }

    /// Answers SaslHandshake (v1).
    pub(crate) fn handshake(
        &mut self,
        req: &SaslHandshakeRequest,
    ) -> (SaslHandshakeResponse, After) {
        let mut r = SaslHandshakeResponse::default();
        r.mechanisms = self
            .sasl
            .mechanisms
            .iter()
            .map(|m| StrBytes::from(m.clone()))
            .collect();
        match self.stage {
            Stage::Fresh | Stage::Done { .. } => {}
            _ => {
                r.error_code = ErrorCode::ILLEGAL_SASL_STATE;
                return (
                    r,
                    After::Close("SaslHandshake in the middle of an exchange".into()),
                );
            }
        }
        let mechanism = req.mechanism.to_string();
        if !self.sasl.mechanisms.contains(&mechanism) {
            r.error_code = ErrorCode::UNSUPPORTED_SASL_MECHANISM;
            return (
                r,
                After::Close(format!("unsupported SASL mechanism {mechanism}")),
            );
        }
        if matches!(self.stage, Stage::Done { .. }) {
            self.was_authenticated = true;
        }
        self.stage = Stage::Chosen { mechanism };
        (r, After::Continue)
    }

    /// Answers SaslAuthenticate at `version`; `authenticated` is set when
    /// this completed an authentication.
    pub(crate) fn authenticate(
        &mut self,
        req: &SaslAuthenticateRequest,
        version: i16,
        authenticated: &mut bool,
    ) -> (SaslAuthenticateResponse, After) {
        let mut r = SaslAuthenticateResponse::default();
        let stage = std::mem::replace(&mut self.stage, Stage::Fresh);
        let outcome: Result<Option<Bytes>, (ErrorCode, String)> = match stage {
            Stage::Chosen { mechanism } => match mechanism.as_str() {
                "PLAIN" => self.plain(&req.auth_bytes).map(|()| Some(Bytes::new())),
                "SCRAM-SHA-256" | "SCRAM-SHA-512" => {
                    let hash = if mechanism == "SCRAM-SHA-256" {
                        Hash::Sha256
                    } else {
                        Hash::Sha512
                    };
                    match ScramServer::first(hash, &self.sasl, &req.auth_bytes) {
                        Ok((server, msg)) => {
                            self.stage = Stage::ScramSent(Box::new(server));
                            r.auth_bytes = Bytes::from(msg);
                            return (r, After::Continue);
                        }
                        Err(e) => Err(e),
                    }
                }
                "OAUTHBEARER" => match self.oauthbearer(&req.auth_bytes) {
                    Ok(()) => Ok(Some(Bytes::new())),
                    Err(why) => {
                        self.stage = Stage::OAuthRefused(why);
                        r.auth_bytes = Bytes::from_static(
                            br#"{"status":"invalid_token","scope":"","openid-configuration":""}"#,
                        );
                        return (r, After::Continue);
                    }
                },
                other => Err((
                    ErrorCode::UNSUPPORTED_SASL_MECHANISM,
                    format!("mechanism {other} is advertised but not implemented"),
                )),
            },
            Stage::ScramSent(server) => server.finish(&req.auth_bytes).map(Some),
            Stage::OAuthRefused(why) => Err((
                ErrorCode::SASL_AUTHENTICATION_FAILED,
                format!("Authentication failed: {why}"),
            )),
            Stage::Fresh | Stage::Done { .. } => Err((
                ErrorCode::ILLEGAL_SASL_STATE,
                "SaslAuthenticate without SaslHandshake".into(),
            )),
        };
        match outcome {
            Ok(bytes) => {
                *authenticated = true;
                let lifetime = self.sasl.session_lifetime;
                self.stage = Stage::Done {
                    expires: lifetime.map(|l| Instant::now() + l),
                };
                if version >= 1 {
                    r.session_lifetime_ms = lifetime.map(|l| l.as_millis() as i64).unwrap_or(0);
                }
                r.auth_bytes = bytes.unwrap_or_default();
                (r, After::Continue)
            }
            Err((code, message)) => {
                r.error_code = code;
                r.error_message = Some(StrBytes::from(message.clone()));
                (
                    r,
                    After::Close(format!("SASL authentication failed: {message}")),
                )
            }
        }
    }

    /// The OAUTHBEARER client-first message (RFC 7628):
    /// `n,[a=authzid],` `%x01` then `key=value%x01` pairs, one of them
    /// `auth=Bearer <token>`, then a final `%x01`.
    fn oauthbearer(&self, msg: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(msg).map_err(|_| "the message is not UTF-8".to_string())?;
        let rest = text
            .strip_prefix("n,")
            .ok_or("the GS2 header must start with `n,`")?;
        let (_authzid, rest) = rest.split_once(',').ok_or("the GS2 header has no end")?;
        let body = rest
            .strip_prefix('\u{1}')
            .and_then(|b| b.strip_suffix("\u{1}\u{1}"))
            .ok_or("the key/value pairs must be framed by %x01")?;
        let mut token = None;
        let mut extensions = Vec::new();
        for kv in body.split('\u{1}') {
            let (k, v) = kv.split_once('=').ok_or("a pair without `=`")?;
            if k == "auth" {
                token = Some(
                    v.strip_prefix("Bearer ")
                        .ok_or("auth must be `Bearer <token>`")?,
                );
            } else if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("invalid extension key {k:?}"));
            } else {
                extensions.push((k.to_string(), v.to_string()));
            }
        }
        let token = token.ok_or("no auth=Bearer pair")?;
        if !self.sasl.tokens.iter().any(|t| t == token) {
            return Err("invalid token".into());
        }
        self.sasl
            .extensions_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(extensions);
        Ok(())
    }

    fn plain(&self, token: &[u8]) -> Result<(), (ErrorCode, String)> {
        let failed = || {
            (
                ErrorCode::SASL_AUTHENTICATION_FAILED,
                "Authentication failed: Invalid username or password".to_string(),
            )
        };
        // [authzid] NUL authcid NUL passwd
        let mut parts = token.split(|&b| b == 0);
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err((
                ErrorCode::SASL_AUTHENTICATION_FAILED,
                "Invalid SASL/PLAIN response: expected 3 tokens".into(),
            ));
        };
        let user = std::str::from_utf8(user).map_err(|_| failed())?;
        if !authzid.is_empty() && authzid != user.as_bytes() {
            return Err((
                ErrorCode::SASL_AUTHENTICATION_FAILED,
                "Authentication failed: Client requested an authorization id that is different from username".into(),
            ));
        }
        match self.sasl.password(user) {
            Some(p) if p.as_bytes() == password => Ok(()),
            _ => Err(failed()),
        }
    }
}

#[derive(Clone, Copy)]
enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key size");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Hash::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("any key size");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, ITERATIONS, &mut out);
                out.to_vec()
            }
            Hash::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, ITERATIONS, &mut out);
                out.to_vec()
            }
        }
    }
}

/// The server side of one SCRAM exchange, after the server-first message.
struct ScramServer {
    hash: Hash,
    /// `None` for an unknown user: the exchange goes on and fails at the
    /// proof, so that user names cannot be probed.
    salted: Option<Vec<u8>>,
    nonce: String,
    /// client-first-bare `,` server-first.
    auth_prefix: String,
}

fn scram_failed(why: &str) -> (ErrorCode, String) {
    (
        ErrorCode::SASL_AUTHENTICATION_FAILED,
        format!("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM ({why})"),
    )
}

impl ScramServer {
    /// Reads the client-first message; returns the server-first message.
    fn first(
        hash: Hash,
        sasl: &FakeSasl,
        msg: &[u8],
    ) -> Result<(ScramServer, Vec<u8>), (ErrorCode, String)> {
        let text = std::str::from_utf8(msg).map_err(|_| scram_failed("client-first not UTF-8"))?;
        let bare = text
            .strip_prefix("n,,")
            .or_else(|| text.strip_prefix("y,,"))
            .ok_or_else(|| scram_failed("unsupported GS2 header"))?;
        let mut user = None;
        let mut client_nonce = None;
        for attr in bare.split(',') {
            match attr.split_once('=') {
                Some(("n", v)) => user = Some(v.replace("=2C", ",").replace("=3D", "=")),
                Some(("r", v)) => client_nonce = Some(v.to_string()),
                _ => {}
            }
        }
        let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
            return Err(scram_failed("client-first lacks n= or r="));
        };
        if client_nonce.is_empty() {
            return Err(scram_failed("empty client nonce"));
        }
        let salt: [u8; 16] = rand::random();
        let server_nonce: [u8; 18] = rand::random();
        let nonce = format!("{client_nonce}{}", BASE64.encode(server_nonce));
        let server_first = format!("r={nonce},s={},i={ITERATIONS}", BASE64.encode(salt));
        let salted = sasl
            .password(&user)
            .map(|p| hash.salted_password(p.as_bytes(), &salt));
        Ok((
            ScramServer {
                hash,
                salted,
                nonce,
                auth_prefix: format!("{bare},{server_first}"),
            },
            server_first.into_bytes(),
        ))
    }

    /// Checks the client-final message; returns the server-final message.
    fn finish(&self, msg: &[u8]) -> Result<Bytes, (ErrorCode, String)> {
        let text = std::str::from_utf8(msg).map_err(|_| scram_failed("client-final not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| scram_failed("client-final lacks p="))?;
        let mut channel = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            match attr.split_once('=') {
                Some(("c", v)) => channel = Some(v),
                Some(("r", v)) => nonce = Some(v),
                _ => {}
            }
        }
        if channel != Some("biws") && channel != Some("eSws") {
            return Err(scram_failed("unexpected channel binding"));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(scram_failed("nonce mismatch"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| scram_failed("proof is not base64"))?;
        let Some(salted) = &self.salted else {
            return Err(scram_failed("unknown user"));
        };
        let h = self.hash;
        let auth_message = format!("{},{without_proof}", self.auth_prefix);
        let stored_key = h.digest(&h.hmac(salted, b"Client Key"));
        let signature = h.hmac(&stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(scram_failed("bad proof length"));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if h.digest(&client_key) != stored_key {
            return Err(scram_failed("wrong password"));
        }
        let server_signature = h.hmac(&h.hmac(salted, b"Server Key"), auth_message.as_bytes());
        Ok(Bytes::from(format!(
            "v={}",
            BASE64.encode(server_signature)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_passwords() {
        let s = FakeSasl::new().with_user("alice", "hunter2-secret");
        let shown = format!("{s:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn plain_checks_the_password_and_closes_on_failure() {
        let sasl = Arc::new(FakeSasl::new().with_user("alice", "pw"));
        let mut s = Session::new(sasl);
        assert!(s.admit(ApiKey::Metadata).is_err());
        assert!(s.admit(ApiKey::ApiVersions).is_ok());
        let mut hs = SaslHandshakeRequest::default();
        hs.mechanism = StrBytes::from_static("PLAIN");
        assert!(matches!(s.handshake(&hs).1, After::Continue));
        let mut req = SaslAuthenticateRequest::default();
        req.auth_bytes = Bytes::from_static(b"\0alice\0wrong");
        let mut ok = false;
        let (r, after) = s.authenticate(&req, 2, &mut ok);
        assert_eq!(r.error_code, ErrorCode::SASL_AUTHENTICATION_FAILED);
        assert!(!ok && matches!(after, After::Close(_)));
        let mut s = Session::new(Arc::new(FakeSasl::new().with_user("alice", "pw")));
        s.handshake(&hs);
        req.auth_bytes = Bytes::from_static(b"\0alice\0pw");
        let (r, _) = s.authenticate(&req, 2, &mut ok);
        assert_eq!(r.error_code, ErrorCode::NONE);
        assert!(ok && s.admit(ApiKey::Metadata).is_ok());
    }
}
