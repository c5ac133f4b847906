//! Opening a broker connection's byte stream: TCP, then TLS when the
//! security protocol asks for it. The connection's reader and writer tasks
//! run over either through the same generic code.

use super::connection::Connection;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use tokio::net::TcpStream;

/// How a broker opens its streams; holds the TLS connector once built.
#[derive(Default)]
pub(crate) struct Transport {
    #[cfg(feature = "tls")]
    tls: std::sync::OnceLock<super::tls::Connector>,
}

impl Transport {
    /// Connects to `addr` and, for `SSL`/`SASL_SSL`, completes the TLS
    /// handshake; the Kafka handshake (ApiVersions, SASL) comes after.
    ///
    /// # Errors
    /// [`Error::Network`] when the TCP connect fails or times out,
    /// [`Error::Tls`] when the TLS handshake fails, [`Error::Config`] for
    /// unusable TLS settings or a build without the `tls` feature.
    pub(crate) async fn open(&self, addr: &str, cfg: &ClientConfig) -> Result<Connection> {
        let net = |reason: String| Error::Network {
            broker: addr.to_string(),
            api: None,
            reason,
        };
        let timeout = cfg.connect_timeout;
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| net(format!("connect timed out after {timeout:?}")))?
            .map_err(|e| net(format!("connect: {e}")))?;
        let _ = stream.set_nodelay(true);
        if !cfg.security_protocol.uses_tls() {
            let (rd, wr) = stream.into_split();
            return Ok(Connection::start(
                rd,
                wr,
                addr,
                cfg.max_in_flight,
                cfg.max_response_size,
            ));
        }
        self.open_tls(stream, addr, cfg).await
    }

    #[cfg(feature = "tls")]
    async fn open_tls(
        &self,
        stream: TcpStream,
        addr: &str,
        cfg: &ClientConfig,
    ) -> Result<Connection> {
        let connector = match self.tls.get() {
            Some(c) => c,
            None => {
                let built = super::tls::Connector::new(&cfg.tls)?;
                let _ = self.tls.set(built);
                self.tls.get().expect("set just above")
            }
        };
        let timeout = cfg.connect_timeout;
        let tls = tokio::time::timeout(timeout, connector.handshake(stream, addr))
            .await
            .map_err(|_| Error::Network {
                broker: addr.to_string(),
                api: None,
                reason: format!("TLS handshake timed out after {timeout:?}"),
            })??;
        let (rd, wr) = tokio::io::split(tls);
        Ok(Connection::start(
            rd,
            wr,
            addr,
            cfg.max_in_flight,
            cfg.max_response_size,
        ))
    }

    #[cfg(not(feature = "tls"))]
    async fn open_tls(
        &self,
        _stream: TcpStream,
        _addr: &str,
        cfg: &ClientConfig,
    ) -> Result<Connection> {
        Err(Error::Config(format!(
            "security protocol {:?} needs TLS, and kpax was built without its `tls` feature",
            cfg.security_protocol
        )))
    }
}
