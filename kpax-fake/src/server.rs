//! The network side: one accept loop per broker, one task per connection
//! (over TLS when the options ask for it), reading size-prefixed frames,
//! answering them in order; the SASL exchange is answered here, before any
//! handler sees a request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kpax_proto::generated::{
    api_versions::ApiVersionsResponseApiKey, ApiKey, ApiVersionsResponse, ErrorCode, RequestHeader,
    RequestKind, ResponseHeader, ResponseKind, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::auth::{After, Session};
use crate::Shared;

/// The versions served for the SASL exchange when SASL is on: SaslHandshake
/// v1 only (v0 sends raw tokens outside Kafka frames), SaslAuthenticate
/// v0..v2.
const SASL_HANDSHAKE: (i16, i16) = (1, 1);
const SASL_AUTHENTICATE: (i16, i16) = (0, 2);

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds a listener with `SO_REUSEADDR`, so that a broker brought back up
/// gets its old port even while old connections linger in TIME_WAIT.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts connections for broker `node` until it goes down.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    node: i32,
    listener: TcpListener,
    up: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(node, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let mut up = up.clone();
        tokio::spawn(async move {
            let connection = async {
                match shared.tls.clone() {
                    None => serve(shared, node, stream, peer).await,
                    Some(tls) => {
                        let stream = tokio::time::timeout(
                            TLS_HANDSHAKE_TIMEOUT,
                            tls.acceptor.accept(stream),
                        )
                        .await
                        .map_err(|_| "TLS handshake timed out".to_string())?
                        .map_err(|e| format!("TLS handshake: {e}"))?;
                        serve(shared, node, stream, peer).await
                    }
                }
            };
            tokio::select! {
                r = connection => {
                    if let Err(reason) = r {
                        tracing::info!(node, %peer, %reason, "connection closed");
                    }
                }
                _ = up.wait_for(|up| !*up) => {
                    tracing::debug!(node, %peer, "broker down: connection closed");
                }
            }
        });
    }
}

/// Why a connection ended.
type Closed = String;

async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    max: usize,
) -> Result<Option<Bytes>, Closed> {
    let mut size = [0u8; 4];
    match stream.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(format!("read: {e}")),
    }
    let size = i32::from_be_bytes(size);
    if size < 8 || size as usize > max {
        return Err(format!("bad frame size {size}"));
    }
    let size = size as usize;
    // Grow as bytes arrive rather than trusting the size prefix up front.
    let mut buf = BytesMut::with_capacity(size.min(64 << 10));
    let mut limited = (&mut *stream).take(size as u64);
    while buf.len() < size {
        let n = limited
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("eof inside a frame".into());
        }
    }
    Ok(Some(buf.freeze()))
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    node: i32,
    mut stream: S,
    peer: SocketAddr,
) -> Result<(), Closed> {
    let mut session = shared.sasl.clone().map(Session::new);
    loop {
        let Some(mut frame) = read_frame(&mut stream, shared.max_frame_bytes).await? else {
            return Ok(());
        };
        let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let api = ApiKey::try_from(raw_key).map_err(|_| format!("unknown API key {raw_key}"))?;
        if let Some(session) = &mut session {
            if matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
                *shared.lock().faults.seen.entry(api).or_default() += 1;
                let after =
                    sasl_exchange(&shared, session, api, version, frame, &mut stream).await?;
                if let After::Close(why) = after {
                    return Err(why);
                }
                continue;
            }
            session.admit(api)?;
        }
        let (range, injected, dropped, delay) = {
            let mut s = shared.lock();
            *s.faults.seen.entry(api).or_default() += 1;
            let range = s.versions.range(api);
            let dropped = range.is_some() && s.take_drop(api);
            let injected = if range.is_some() && !dropped {
                s.take_error(api)
            } else {
                None
            };
            let delay = s.faults.delays.get(&api).copied().unwrap_or_default()
                + s.broker(node).map(|b| b.delay).unwrap_or_default();
            (range, injected, dropped, delay)
        };
        let Some((min, max)) = range else {
            return Err(format!("{} is not served", api.name()));
        };
        if dropped {
            return Err(format!("fault: dropped on {}", api.name()));
        }
        if api == ApiKey::ApiVersions && version > max {
            // Kafka answers an ApiVersions it does not know in the v0
            // layout, with UNSUPPORTED_VERSION and its own range, so that
            // the client can retry at a version both know.
            let mut r = ApiVersionsResponse::default();
            r.error_code = ErrorCode::UNSUPPORTED_VERSION;
            let mut k = ApiVersionsResponseApiKey::default();
            k.api_key = ApiKey::ApiVersions as i16;
            k.min_version = min;
            k.max_version = max;
            r.api_keys = vec![k];
            let mut out = BytesMut::new();
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&correlation_id.to_be_bytes());
            r.encode(&mut out, 0)
                .map_err(|e| format!("encode ApiVersions error: {e}"))?;
            write_frame(&mut stream, out).await?;
            continue;
        }
        if version < min || version > max {
            return Err(format!("{} v{version} is not served", api.name()));
        }
        let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
            .map_err(|e| format!("bad request header: {e}"))?;
        let request = RequestKind::decode(raw_key, version, &mut frame)
            .map_err(|e| format!("bad {} v{version} request: {e}", api.name()))?;
        if frame.has_remaining() {
            tracing::debug!(
                node,
                api = api.name(),
                extra = frame.remaining(),
                "bytes after the request body ignored"
            );
        }
        let ctx = crate::context::Context {
            shared: &shared,
            node,
            version,
            injected: injected.map(|e| e.0),
            client_id: header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            peer,
        };
        let mut response = crate::handlers::handle(&ctx, request).await;
        if let (Some(ResponseKind::ApiVersions(r)), true) = (&mut response, shared.sasl.is_some()) {
            for (key, (min, max)) in [
                (ApiKey::SaslHandshake, SASL_HANDSHAKE),
                (ApiKey::SaslAuthenticate, SASL_AUTHENTICATE),
            ] {
                let mut k = ApiVersionsResponseApiKey::default();
                k.api_key = key as i16;
                k.min_version = min;
                k.max_version = max;
                r.api_keys.push(k);
            }
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let Some(response) = response else {
            continue; // acks=0
        };
        let mut out = BytesMut::with_capacity(256);
        out.extend_from_slice(&[0; 4]);
        let mut rh = ResponseHeader::default();
        rh.correlation_id = header.correlation_id;
        rh.encode(&mut out, api.response_header_version(version))
            .map_err(|e| format!("encode response header: {e}"))?;
        response
            .encode(&mut out, version)
            .map_err(|e| format!("encode {} v{version} response: {e}", api.name()))?;
        write_frame(&mut stream, out).await?;
    }
}

async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    mut out: BytesMut,
) -> Result<(), Closed> {
    let len = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&len.to_be_bytes());
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("write: {e}"))?;
    // TLS buffers inside the stream: push it out.
    stream.flush().await.map_err(|e| format!("write: {e}"))
}

/// Answers a SaslHandshake or SaslAuthenticate request on a SASL listener.
async fn sasl_exchange<S: AsyncWrite + Unpin>(
    shared: &Shared,
    session: &mut Session,
    api: ApiKey,
    version: i16,
    mut frame: Bytes,
    stream: &mut S,
) -> Result<After, Closed> {
    let (min, max) = if api == ApiKey::SaslHandshake {
        SASL_HANDSHAKE
    } else {
        SASL_AUTHENTICATE
    };
    if version < min || version > max {
        return Err(format!("{} v{version} is not served", api.name()));
    }
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| format!("bad request header: {e}"))?;
    let mut out = BytesMut::with_capacity(128);
    out.extend_from_slice(&[0; 4]);
    let mut rh = ResponseHeader::default();
    rh.correlation_id = header.correlation_id;
    rh.encode(&mut out, api.response_header_version(version))
        .map_err(|e| format!("encode response header: {e}"))?;
    let bad = |e| format!("bad {} v{version} request: {e}", api.name());
    let encode = |e| format!("encode {} v{version} response: {e}", api.name());
    let after = if api == ApiKey::SaslHandshake {
        let req = SaslHandshakeRequest::decode(&mut frame, version).map_err(bad)?;
        let (resp, after) = session.handshake(&req);
        resp.encode(&mut out, version).map_err(encode)?;
        after
    } else {
        let req = SaslAuthenticateRequest::decode(&mut frame, version).map_err(bad)?;
        let mut done = false;
        let (resp, after) = session.authenticate(&req, version, &mut done);
        if done {
            shared
                .authentications
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        resp.encode(&mut out, version).map_err(encode)?;
        after
    };
    write_frame(stream, out).await?;
    Ok(after)
}
