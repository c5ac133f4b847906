//! SASL on a broker connection: SaslHandshake v1 then SaslAuthenticate
//! (v0..v2), right after ApiVersions and before any other request; and
//! KIP-368 re-authentication on the same connection when the broker gives
//! the session a lifetime.

use super::scram::{ScramClient, ScramHash};
use super::{Broker, Live};
use crate::config::{SaslConfig, SaslMechanism};
use crate::error::{Error, Result};
use bytes::Bytes;
use kpax_proto::generated::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
};
use kpax_proto::message::Message;
use kpax_proto::wire::StrBytes;
use std::sync::{Arc, Weak};
use std::time::Duration;

impl Broker {
    /// Authenticates `live` with the configured mechanism. Returns the
    /// session lifetime the broker set (SaslAuthenticate v1+), if any.
    ///
    /// The caller makes sure nothing else is sent on the connection while
    /// this runs (a fresh connection, or the re-authentication gate held).
    ///
    /// # Errors
    /// [`Error::Authentication`] for a refused mechanism or credentials, a
    /// broker without SaslHandshake v1 / SaslAuthenticate, or a SCRAM
    /// server signature that does not verify; connection errors as
    /// [`Broker::send`].
    pub(super) async fn authenticate(
        &self,
        live: &Live,
        sasl: &SaslConfig,
    ) -> Result<Option<Duration>> {
        let mechanism = sasl.mechanism;
        let fail = |message: String| Error::Authentication {
            broker: self.inner.addr.clone(),
            mechanism: mechanism.name().to_string(),
            message,
        };
        let timeout = self.inner.config.request_timeout;
        // v0 of SaslHandshake sends raw tokens outside Kafka frames; kpax
        // speaks only the framed exchange (KIP-152, Kafka 1.0+).
        let cfg = &self.inner.config;
        let cap = |api: ApiKey, max: i16| cfg.cap(api).unwrap_or(max).min(max);
        let handshake_version = live
            .versions
            .pick(
                ApiKey::SaslHandshake,
                (
                    1,
                    cap(ApiKey::SaslHandshake, SaslHandshakeRequest::MAX_VERSION),
                ),
            )
            .ok_or_else(|| {
                fail("the broker does not offer SaslHandshake v1 (is its listener SASL?)".into())
            })?;
        let auth_version = live
            .versions
            .pick(
                ApiKey::SaslAuthenticate,
                (
                    0,
                    cap(
                        ApiKey::SaslAuthenticate,
                        SaslAuthenticateRequest::MAX_VERSION,
                    ),
                ),
            )
            .ok_or_else(|| fail("the broker does not offer SaslAuthenticate".into()))?;
        let hs = self
            .exchange(
                live,
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static(mechanism.name())),
                handshake_version,
                timeout,
                false,
            )
            .await?;
        if !hs.error_code.is_ok() {
            let enabled: Vec<String> = hs.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(fail(format!(
                "SaslHandshake: {} (the broker enables {enabled:?})",
                hs.error_code
            )));
        }
        let step = |bytes: Vec<u8>| {
            let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
            async move {
                let r: SaslAuthenticateResponse = self
                    .exchange(live, &req, auth_version, timeout, false)
                    .await?;
                if !r.error_code.is_ok() {
                    let why = r
                        .error_message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default();
                    return Err(fail(
                        format!("{} {why}", r.error_code).trim_end().to_string(),
                    ));
                }
                Ok(r)
            }
        };
        let last = match mechanism {
            SaslMechanism::Plain => {
                let mut token = Vec::new();
                token.push(0);
                token.extend_from_slice(sasl.username.as_bytes());
                token.push(0);
                token.extend_from_slice(sasl.password().as_bytes());
                step(token).await?
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let hash = if mechanism == SaslMechanism::ScramSha256 {
                    ScramHash::Sha256
                } else {
                    ScramHash::Sha512
                };
                let mut scram = ScramClient::new(hash, &sasl.username, sasl.password());
                let first = step(scram.client_first()).await?;
                let fin = scram.client_final(&first.auth_bytes).map_err(&fail)?;
                let last = step(fin).await?;
                scram.verify_server_final(&last.auth_bytes).map_err(&fail)?;
                last
            }
            SaslMechanism::OAuthBearer => {
                let token = sasl
                    .oauthbearer_token_now()
                    .await
                    .map_err(|e| fail(format!("no token: {e}")))?;
                let first = step(token.client_first_message().map_err(&fail)?).await?;
                if !first.auth_bytes.is_empty() {
                    // The token was refused: the broker sent its error as a
                    // challenge; %x01 completes the exchange (RFC 7628 3.2.3)
                    // and the broker then fails it.
                    let why = String::from_utf8_lossy(&first.auth_bytes).into_owned();
                    let closing = step(vec![0x01]).await;
                    return Err(match closing {
                        Err(Error::Authentication { message, .. }) => {
                            fail(format!("token refused: {why}; {message}"))
                        }
                        _ => fail(format!("token refused: {why}")),
                    });
                }
                first
            }
        };
        tracing::debug!(
            broker = %self.inner.addr,
            mechanism = mechanism.name(),
            session_lifetime_ms = last.session_lifetime_ms,
            "authenticated"
        );
        Ok((last.session_lifetime_ms > 0)
            .then(|| Duration::from_millis(last.session_lifetime_ms as u64)))
    }

    /// Re-authenticates `live` before each session lifetime runs out
    /// (KIP-368), at a random 85–95% of it, until the connection or the
    /// broker is dropped. New requests wait at the connection's gate while
    /// the exchange runs; requests already sent are answered first, in
    /// order, as the broker processes one request at a time.
    pub(super) fn keep_authenticated(&self, live: &Arc<Live>, lifetime: Duration) {
        let Some(sasl) = self.inner.config.sasl.clone() else {
            return;
        };
        let broker = Arc::downgrade(&self.inner);
        let weak: Weak<Live> = Arc::downgrade(live);
        let task = tokio::spawn(async move {
            let mut lifetime = lifetime;
            loop {
                tokio::time::sleep(reauthentication_delay(lifetime)).await;
                let (Some(inner), Some(live)) = (broker.upgrade(), weak.upgrade()) else {
                    return;
                };
                if live.conn.is_closed() {
                    return;
                }
                let broker = Broker { inner };
                let gate = live.gate.write().await;
                let outcome = broker.authenticate(&live, &sasl).await;
                drop(gate);
                match outcome {
                    Ok(Some(next)) => lifetime = next,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(broker = %broker.inner.addr, error = %e, "re-authentication failed; connection closed");
                        live.conn.close(e);
                        return;
                    }
                }
            }
        });
        live.adopt(task);
    }
}

/// When to re-authenticate: a random 85–95% of the session lifetime, as
/// the Java client does, so that many connections do not all go at once.
pub(super) fn reauthentication_delay(lifetime: Duration) -> Duration {
    let share = 0.85 + 0.10 * rand::random::<f64>();
    lifetime.mul_f64(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reauthentication_comes_at_85_to_95_percent() {
        let life = Duration::from_secs(100);
        for _ in 0..1000 {
            let d = reauthentication_delay(life);
            assert!(
                d >= Duration::from_secs(85) && d <= Duration::from_secs(95),
                "{d:?}"
            );
        }
    }
}
