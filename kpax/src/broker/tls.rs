//! TLS for broker connections: rustls with the ring crypto provider, roots
//! from PEM files/text and/or the platform, optional client certificates.

use crate::config::{Pem, TlsConfig};
use crate::error::{Error, Result};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

/// A ready TLS client configuration.
pub(crate) struct Connector {
    inner: TlsConnector,
    server_name: Option<String>,
}

impl Connector {
    /// Builds the rustls configuration from `cfg` (reading PEM files).
    ///
    /// # Errors
    /// [`Error::Config`] naming the file or setting that is unusable.
    pub(crate) fn new(cfg: &TlsConfig) -> Result<Connector> {
        let provider = Arc::new(crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?;
        let builder = if cfg.dangerous_skip_verification_for_tests_only {
            tracing::warn!(
                "TLS certificate verification is OFF (dangerous_skip_verification_for_tests_only)"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        } else {
            builder.with_root_certificates(roots(cfg)?)
        };
        let config = match &cfg.client_cert {
            Some((chain, key)) => builder
                .with_client_auth_cert(certificates(chain)?, private_key(key)?)
                .map_err(|e| Error::Config(format!("TLS client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Connector {
            inner: TlsConnector::from(Arc::new(config)),
            server_name: cfg.server_name.clone(),
        })
    }

    /// Runs the TLS handshake over `tcp` to the broker at `addr`.
    ///
    /// # Errors
    /// [`Error::Tls`] when rustls refuses the peer (certificate, protocol),
    /// [`Error::Network`] when the connection breaks, [`Error::Config`]
    /// when the name to verify is not a valid DNS name or IP address.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        addr: &str,
    ) -> Result<TlsStream<TcpStream>> {
        let name = self
            .server_name
            .clone()
            .unwrap_or_else(|| host_of(addr).to_string());
        let server_name = ServerName::try_from(name.clone())
            .map_err(|e| Error::Config(format!("TLS server name {name:?}: {e}")))?;
        self.inner
            .connect(server_name, tcp)
            .await
            .map_err(|e| classify(e, addr))
    }
}

/// The host part of `host:port` (`[v6]:port` too).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A handshake error: rustls' own errors are TLS failures, the rest are
/// network ones.
fn classify(e: std::io::Error, addr: &str) -> Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => Error::Tls {
            broker: addr.to_string(),
            reason: tls.to_string(),
        },
        None => Error::Network {
            broker: addr.to_string(),
            api: None,
            reason: format!("TLS handshake: {e}"),
        },
    }
}

fn roots(cfg: &TlsConfig) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for pem in &cfg.ca {
        for cert in certificates(pem)? {
            roots
                .add(cert)
                .map_err(|e| Error::Config(format!("TLS CA {}: {e}", describe(pem))))?;
        }
    }
    if cfg.ca.is_empty() || cfg.platform_roots {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "platform root certificates: some could not be loaded");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "platform root certificates");
    }
    if roots.is_empty() {
        return Err(Error::Config(
            "TLS: no trusted root certificates (give a CA file or enable the platform roots)"
                .into(),
        ));
    }
    Ok(roots)
}

fn describe(pem: &Pem) -> String {
    match pem {
        Pem::File(p) => p.display().to_string(),
        Pem::Inline(_) => "(inline PEM)".into(),
    }
}

fn certificates(pem: &Pem) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |e: rustls::pki_types::pem::Error| {
        Error::Config(format!("TLS certificates in {}: {e}", describe(pem)))
    };
    let certs: Vec<CertificateDer<'static>> = match pem {
        Pem::File(p) => CertificateDer::pem_file_iter(p)
            .map_err(bad)?
            .collect::<Result<_, _>>()
            .map_err(bad)?,
        Pem::Inline(b) => CertificateDer::pem_slice_iter(b)
            .collect::<Result<_, _>>()
            .map_err(bad)?,
    };
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "TLS: no certificate found in {}",
            describe(pem)
        )));
    }
    Ok(certs)
}

fn private_key(pem: &Pem) -> Result<PrivateKeyDer<'static>> {
    // The error never quotes the key's bytes.
    let bad = |e: rustls::pki_types::pem::Error| {
        Error::Config(format!("TLS private key in {}: {e}", describe(pem)))
    };
    match pem {
        Pem::File(p) => PrivateKeyDer::from_pem_file(p).map_err(bad),
        Pem::Inline(b) => PrivateKeyDer::from_pem_slice(b).map_err(bad),
    }
}

/// Accepts every certificate; signatures are still checked so that the
/// handshake itself is sound. Only for `dangerous_skip_verification_for_tests_only`.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_the_port() {
        assert_eq!(host_of("broker-1.example:9093"), "broker-1.example");
        assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9093"), "::1");
    }

    #[test]
    fn bad_settings_are_config_errors() {
        let missing = TlsConfig::default().with_ca_file("/nonexistent/kpax-ca.pem");
        let e = Connector::new(&missing).err().expect("missing file");
        assert!(
            matches!(&e, Error::Config(m) if m.contains("/nonexistent/kpax-ca.pem")),
            "{e}"
        );
        let junk = TlsConfig::default().with_ca_pem("not a certificate");
        let e = Connector::new(&junk).err().expect("no certificate");
        assert!(
            matches!(&e, Error::Config(m) if m.contains("no certificate")),
            "{e}"
        );
    }
}
