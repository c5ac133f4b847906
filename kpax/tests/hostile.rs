//! The broker against a hostile (or merely slow) server on loopback: junk,
//! truncated frames, huge sizes, wrong correlation ids, closes, timeouts and
//! cancelled requests. Every case is a typed error, never a panic, and the
//! next request reconnects.

use bytes::{BufMut, BytesMut};
use kpax::proto::generated::api_versions::ApiVersionsResponseApiKey;
use kpax::proto::generated::{
    ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
};
use kpax::{Broker, ClientConfig, Error};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one request.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// A well-formed response (ApiVersions or Metadata, by API key).
    Answer,
    /// The same, after a delay.
    AnswerAfter(Duration),
    /// A frame whose correlation id is wrong.
    WrongCorrelation,
    /// A size prefix of 2^31-1 and nothing else.
    HugeSize,
    /// A size of 100 then 10 bytes, then close.
    Truncated,
    /// 16 bytes of junk in a frame with the right correlation id.
    JunkBody,
    /// Close without answering.
    Close,
}

struct Req {
    api_key: i16,
    version: i16,
    correlation_id: i32,
}

async fn read_request(s: &mut TcpStream) -> Option<Req> {
    let n = s.read_i32().await.ok()?;
    let mut body = vec![0u8; usize::try_from(n).ok()?.min(1 << 20)];
    s.read_exact(&mut body).await.ok()?;
    Some(Req {
        api_key: i16::from_be_bytes([body[0], body[1]]),
        version: i16::from_be_bytes([body[2], body[3]]),
        correlation_id: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
    })
}

fn response(req: &Req, correlation_id: i32) -> BytesMut {
    let mut body = BytesMut::new();
    body.put_i32(correlation_id);
    if req.api_key == 18 {
        // ApiVersions: header v0 always
        let resp = ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersionsResponseApiKey::default()
                .with_api_key(18)
                .with_max_version(3),
            ApiVersionsResponseApiKey::default()
                .with_api_key(3)
                .with_max_version(9),
        ]);
        resp.encode(&mut body, req.version).unwrap();
    } else {
        // Metadata v9 (flexible): header v1 has a tag byte
        body.put_u8(0);
        MetadataResponse::default()
            .encode(&mut body, req.version)
            .unwrap();
    }
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame
}

/// Serves connections; `script(request number over all connections)` says
/// what to do. Returns the address and a counter of accepted connections.
async fn server(script: fn(usize, &Req) -> Act) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let conns = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let requests = requests.clone();
            tokio::spawn(async move {
                while let Some(req) = read_request(&mut s).await {
                    let i = requests.fetch_add(1, Ordering::SeqCst);
                    match script(i, &req) {
                        Act::Answer => s
                            .write_all(&response(&req, req.correlation_id))
                            .await
                            .unwrap(),
                        Act::AnswerAfter(d) => {
                            tokio::time::sleep(d).await;
                            if s.write_all(&response(&req, req.correlation_id))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Act::WrongCorrelation => s
                            .write_all(&response(&req, req.correlation_id + 1000))
                            .await
                            .unwrap(),
                        Act::HugeSize => {
                            let _ = s.write_all(&i32::MAX.to_be_bytes()).await;
                        }
                        Act::Truncated => {
                            let mut f = BytesMut::new();
                            f.put_i32(100);
                            f.put_i32(req.correlation_id);
                            f.put_slice(&[0; 6]);
                            let _ = s.write_all(&f).await;
                            return;
                        }
                        Act::JunkBody => {
                            let mut f = BytesMut::new();
                            f.put_i32(20);
                            f.put_i32(req.correlation_id);
                            f.put_slice(&[0xff; 16]);
                            let _ = s.write_all(&f).await;
                        }
                        Act::Close => return,
                    }
                }
            });
        }
    });
    (addr, conns)
}

fn broker(addr: &str) -> Broker {
    let cfg = ClientConfig::default()
        .with_request_timeout(Duration::from_millis(500))
        .with_reconnect_backoff(Duration::from_millis(1), Duration::from_millis(5));
    Broker::new(addr, None, Arc::new(cfg))
}

fn metadata() -> MetadataRequest {
    MetadataRequest::default().with_topics(Some(Vec::new()))
}

#[tokio::test]
async fn wrong_correlation_id_breaks_the_connection_then_reconnects() {
    let (addr, conns) = server(|i, _| {
        if i == 1 {
            Act::WrongCorrelation
        } else {
            Act::Answer
        }
    })
    .await;
    let b = broker(&addr);
    let e = b.send(&metadata()).await.unwrap_err();
    assert!(
        matches!(&e, Error::Protocol { reason, .. } if reason.contains("correlation id")),
        "{e}"
    );
    assert!(e.is_retriable());
    b.send(&metadata()).await.unwrap();
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_2_gib_frame_size_is_refused_without_allocating() {
    let (addr, _) = server(|i, _| if i == 1 { Act::HugeSize } else { Act::Answer }).await;
    let b = broker(&addr);
    let e = b.send(&metadata()).await.unwrap_err();
    assert!(
        matches!(&e, Error::Protocol { reason, .. } if reason.contains("2147483647")),
        "{e}"
    );
    b.send(&metadata()).await.unwrap();
}

#[tokio::test]
async fn a_truncated_frame_is_a_network_error() {
    let (addr, _) = server(|i, _| if i == 1 { Act::Truncated } else { Act::Answer }).await;
    let b = broker(&addr);
    let e = b.send(&metadata()).await.unwrap_err();
    assert!(
        matches!(&e, Error::Network { reason, .. } if reason.contains("inside a frame")),
        "{e}"
    );
    b.send(&metadata()).await.unwrap();
}

#[tokio::test]
async fn junk_in_a_frame_is_a_decode_error_naming_the_field() {
    let (addr, _) = server(|i, _| if i == 1 { Act::JunkBody } else { Act::Answer }).await;
    let b = broker(&addr);
    let e = b.send(&metadata()).await.unwrap_err();
    let Error::Decode {
        source, version, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(*version, 9);
    assert!(
        source.message.starts_with("Metadata") || source.message == "ResponseHeader",
        "{e}"
    );
    // the connection itself stays usable: the frame boundary was respected
    b.send(&metadata()).await.unwrap();
}

#[tokio::test]
async fn close_on_request_names_the_api_and_version() {
    let (addr, _) = server(|i, _| if i == 1 { Act::Close } else { Act::Answer }).await;
    let b = broker(&addr);
    let e = b.send(&metadata()).await.unwrap_err();
    assert!(
        matches!(e, Error::ClosedOnRequest { version: 9, .. }),
        "{e}"
    );
    b.send(&metadata()).await.unwrap();
}

#[tokio::test]
async fn timeout_then_cancelled_request_leaves_the_connection_consistent() {
    // request 1 is slow (timeout); request 3 is slow but its caller gives up
    // (cancelled); request 4 must get its own answer, not request 3's.
    let (addr, conns) = server(|i, _| match i {
        1 => Act::AnswerAfter(Duration::from_secs(2)),
        3 => Act::AnswerAfter(Duration::from_millis(200)),
        _ => Act::Answer,
    })
    .await;
    let b = broker(&addr);
    let e = b.send(&metadata()).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.is_retriable());
    // the timed-out connection was closed: this reconnects (ApiVersions is request 2)
    let cancelled = tokio::time::timeout(Duration::from_millis(50), b.send(&metadata())).await;
    assert!(cancelled.is_err(), "should have been cancelled");
    let ok: MetadataResponse = b.send(&metadata()).await.unwrap();
    assert!(ok.brokers.is_empty());
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn refused_connections_back_off_instead_of_spinning() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let cfg = ClientConfig::default()
        .with_reconnect_backoff(Duration::from_millis(100), Duration::from_millis(100));
    let b = Broker::new(addr, None, Arc::new(cfg));
    let t0 = std::time::Instant::now();
    for _ in 0..3 {
        let e = b.send(&ApiVersionsRequest::default()).await.unwrap_err();
        assert!(matches!(e, Error::Network { .. }), "{e}");
    }
    // three attempts, two backoffs between them
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t0.elapsed()
    );
}
