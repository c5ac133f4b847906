//! One connection to one broker (plain TCP or TLS, see `transport`):
//! frames written by a writer task,
//! responses read by a reader task and matched, in order, to the requests in
//! flight by correlation id.
//!
//! Callers never touch the socket: they hand a finished frame to the writer
//! task and wait on a oneshot. Dropping that wait (cancelling the request)
//! leaves the connection consistent: the response is read and discarded.

use crate::error::Error;
use bytes::Bytes;
use kpax_proto::buffer_pool::BufferPool;
use kpax_proto::generated::{ApiKey, ResponseHeader};
use kpax_proto::wire::FrameBuf;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// What a request waits for.
pub(crate) struct Pending {
    pub correlation_id: i32,
    pub api: ApiKey,
    pub version: i16,
    pub response_header_version: i16,
    pub reply: oneshot::Sender<Result<Bytes, Error>>,
    pub _permit: OwnedSemaphorePermit,
}

struct Outgoing {
    frame: FrameBuf,
    pending: Option<Pending>,
    /// Told once the frame is written to the socket (or could not be): for
    /// requests no response acknowledges (Produce with acks=0).
    written: Option<oneshot::Sender<Result<(), Error>>>,
}

/// Requests in flight, and why the connection closed once it has.
struct State {
    pending: VecDeque<Pending>,
    closed: Option<Error>,
}

/// An open connection.
pub(crate) struct Connection {
    addr: String,
    tx: mpsc::UnboundedSender<Outgoing>,
    state: Arc<Mutex<State>>,
    in_flight: Arc<Semaphore>,
    /// The reader, the writer, and tasks adopted for the connection's
    /// lifetime; all aborted when it closes or is dropped.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().unwrap_or_else(|e| e.into_inner()) {
            t.abort();
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave State half-updated in a
    // way that matters here; keep going with the data.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Closes the connection state with `why`, failing every request in flight.
fn fail_all(state: &Mutex<State>, addr: &str, why: Error, eof: bool) {
    let pending: Vec<Pending> = {
        let mut s = lock(state);
        if s.closed.is_none() {
            s.closed = Some(why.clone());
        }
        s.pending.drain(..).collect()
    };
    for p in pending {
        let e = if eof {
            Error::ClosedOnRequest {
                broker: addr.to_string(),
                api: p.api,
                version: p.version,
            }
        } else {
            match &why {
                Error::Network { reason, .. } => Error::Network {
                    broker: addr.to_string(),
                    api: Some(p.api),
                    reason: reason.clone(),
                },
                other => other.clone(),
            }
        };
        let _ = p.reply.send(Err(e));
    }
}

impl Connection {
    /// Starts the reader and writer tasks over an open stream to `addr`
    /// (no Kafka handshake yet): `rd` and `wr` are its two halves.
    pub(crate) fn start<R, W>(
        rd: R,
        wr: W,
        addr: &str,
        max_in_flight: usize,
        max_frame: usize,
    ) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::new(Mutex::new(State {
            pending: VecDeque::new(),
            closed: None,
        }));
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(rd, state.clone(), addr.to_string(), max_frame));
        let writer = tokio::spawn(write_loop(wr, rx, state.clone(), addr.to_string()));
        tracing::debug!(broker = addr, "connected");
        Connection {
            addr: addr.to_string(),
            tx,
            state,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            tasks: Mutex::new(vec![reader, writer]),
        }
    }

    /// Whether the connection has closed (it is then replaced on the next request).
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).closed.is_some()
    }

    /// Closes the connection, failing what is in flight with `why`.
    pub(crate) fn close(&self, why: Error) {
        fail_all(&self.state, &self.addr, why, false);
        for t in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            t.abort();
        }
    }

    /// Ties `task` to the connection: aborted when it closes or is dropped.
    #[cfg_attr(not(feature = "sasl"), allow(dead_code))]
    pub(crate) fn adopt(&self, task: JoinHandle<()>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_closed() {
            task.abort();
        }
        tasks.push(task);
    }

    /// Waits for a slot among the requests in flight.
    pub(crate) async fn permit(&self) -> OwnedSemaphorePermit {
        self.in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore is never closed")
    }

    /// Queues a frame; with `pending`, its response is delivered there.
    pub(crate) fn send(&self, frame: FrameBuf, pending: Option<Pending>) -> Result<(), Error> {
        if let Some(why) = lock(&self.state).closed.clone() {
            return Err(why);
        }
        self.tx
            .send(Outgoing {
                frame,
                pending,
                written: None,
            })
            .map_err(|_| Error::Network {
                broker: self.addr.clone(),
                api: None,
                reason: "connection closed".into(),
            })
    }

    /// Queues a frame no response will follow, and waits until the writer
    /// has handed it to the socket (so a caller that then exits does not
    /// drop it unsent).
    ///
    /// # Errors
    /// [`Error::Network`] when the connection is closed or the write fails.
    pub(crate) async fn send_written(&self, frame: FrameBuf) -> Result<(), Error> {
        if let Some(why) = lock(&self.state).closed.clone() {
            return Err(why);
        }
        let closed = || Error::Network {
            broker: self.addr.clone(),
            api: None,
            reason: "connection closed before the request was written".into(),
        };
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Outgoing {
                frame,
                pending: None,
                written: Some(tx),
            })
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    state: Arc<Mutex<State>>,
    addr: String,
) {
    let mut frames: Vec<FrameBuf> = Vec::new();
    let mut written_acks: Vec<oneshot::Sender<Result<(), Error>>> = Vec::new();
    while let Some(first) = rx.recv().await {
        // Gather what is queued into one vectored write (no copy; the
        // record batches of a Produce frame are the producer's own bytes).
        let mut slices = 0;
        {
            let mut s = lock(&state);
            let mut next = Some(first);
            while let Some(o) = next.take() {
                let keep = match o.pending {
                    Some(p) => match s.closed.clone() {
                        Some(why) => {
                            let _ = p.reply.send(Err(why));
                            false
                        }
                        None => {
                            s.pending.push_back(p);
                            true
                        }
                    },
                    None => true,
                };
                if keep {
                    slices += o.frame.slice_count();
                    frames.push(o.frame);
                    written_acks.extend(o.written);
                }
                if slices < MAX_SLICES_PER_WRITE {
                    next = rx.try_recv().ok();
                }
            }
        }
        let written = match write_frames(&mut wr, &frames).await {
            // TLS buffers inside the stream: push it out.
            Ok(()) => wr.flush().await,
            Err(e) => Err(e),
        };
        // Written frames let go of the batches they shared at once, so the
        // producer can reuse their buffers.
        frames.clear();
        if let Err(e) = written {
            let why = Error::Network {
                broker: addr.clone(),
                api: None,
                reason: format!("write: {e}"),
            };
            for ack in written_acks.drain(..) {
                let _ = ack.send(Err(why.clone()));
            }
            fail_all(&state, &addr, why, false);
            return;
        }
        for ack in written_acks.drain(..) {
            let _ = ack.send(Ok(()));
        }
    }
}

/// Frames are gathered into one write until they hold this many slices
/// (well under IOV_MAX, 1024; a frame may go over it, and `writev` then
/// takes what it can and the rest follows).
const MAX_SLICES_PER_WRITE: usize = 512;

/// Writes every frame, in order, with vectored writes (`writev`): queued
/// requests go out together without being copied into one buffer first.
async fn write_frames<W: AsyncWrite + Unpin>(
    wr: &mut W,
    frames: &[FrameBuf],
) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = Vec::new();
    for f in frames {
        f.push_io_slices(&mut slices);
    }
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = wr.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut rd: R,
    state: Arc<Mutex<State>>,
    addr: String,
    max_frame: usize,
) {
    let pool = BufferPool::new(POOLED_MIN, POOLED_IDLE_MAX);
    let why = loop {
        match read_frame(&mut rd, &pool, &addr, max_frame).await {
            Ok(frame) => {
                if let Err(e) = deliver(frame, &state, &addr) {
                    break (e, false);
                }
            }
            Err(e) => break e,
        }
    };
    tracing::debug!(broker = %addr, error = %why.0, "connection closed");
    fail_all(&state, &addr, why.0, why.1);
}

/// Response frames at least this large are read into the connection's
/// pooled buffers.
const POOLED_MIN: usize = 64 * 1024;

/// The most buffer capacity a connection keeps idle for its next frames.
const POOLED_IDLE_MAX: usize = 32 * 1024 * 1024;

/// Reads one frame; the error says whether the peer closed cleanly (EOF
/// between frames).
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    pool: &BufferPool,
    addr: &str,
    max_frame: usize,
) -> Result<Bytes, (Error, bool)> {
    let net = |reason: String| Error::Network {
        broker: addr.to_string(),
        api: None,
        reason,
    };
    let mut size = [0u8; 4];
    if let Err(e) = rd.read_exact(&mut size).await {
        let eof = e.kind() == std::io::ErrorKind::UnexpectedEof;
        return Err((net(format!("read: {e}")), eof));
    }
    let n = i32::from_be_bytes(size);
    if n < 4 || n as usize > max_frame {
        return Err((
            Error::Protocol {
                broker: addr.to_string(),
                reason: format!("response frame size {n} outside 4..={max_frame}"),
            },
            false,
        ));
    }
    // Grow the buffer as bytes arrive, so a lying size cannot make us
    // allocate what the peer never sends. Large frames go into the
    // connection's pooled buffers (pages already touched, see
    // `kpax_proto::buffer_pool`).
    let n = n as usize;
    let mut buf = if n >= POOLED_MIN {
        pool.take(n)
    } else {
        Vec::with_capacity(n)
    };
    while buf.len() < n {
        let want = (n - buf.len()).min(1 << 20);
        buf.reserve(want);
        let got = rd.read_buf(&mut bytes::BufMut::limit(&mut buf, want)).await;
        match got {
            Ok(0) => {
                return Err((
                    net(format!(
                        "connection closed inside a frame ({} of {n} bytes)",
                        buf.len()
                    )),
                    false,
                ))
            }
            Ok(_) => {}
            Err(e) => return Err((net(format!("read: {e}")), false)),
        }
    }
    Ok(pool.freeze(buf))
}

fn deliver(mut frame: Bytes, state: &Mutex<State>, addr: &str) -> Result<(), Error> {
    let protocol = |reason: String| Error::Protocol {
        broker: addr.to_string(),
        reason,
    };
    let corr = i32::from_be_bytes(frame[..4].try_into().expect("frame has 4 bytes"));
    let p = {
        let mut s = lock(state);
        match s.pending.front() {
            None => {
                return Err(protocol(format!(
                    "response with correlation id {corr} but no request in flight"
                )))
            }
            Some(p) if p.correlation_id != corr => {
                return Err(protocol(format!(
                    "correlation id {corr} where {} was expected (responses out of order)",
                    p.correlation_id
                )));
            }
            Some(_) => s.pending.pop_front().expect("front exists"),
        }
    };
    let result = ResponseHeader::decode(&mut frame, p.response_header_version)
        .map(|_| frame)
        .map_err(|source| Error::Decode {
            broker: addr.to_string(),
            api: p.api,
            version: p.version,
            source,
        });
    // The caller may have gone (cancelled): the response is dropped.
    let _ = p.reply.send(result);
    Ok(())
}

/// An in-memory peer for [`fuzz_read`]: hands out `chunk` bytes per read,
/// then end of stream.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        let (now, later) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = later;
        std::task::Poll::Ready(Ok(()))
    }
}

/// For the fuzz targets only (`kpax-proto/fuzz`, target `frames`): runs
/// the connection's reader over `data` as a hostile broker could send it,
/// with requests in flight. The first byte sets the reads' size (low four
/// bits + 1 bytes per read) and the number of requests waiting (high four
/// bits, correlation ids 0, 1, …, response headers v0 and v1 in turn); the
/// frames follow, then the connection closes. Returns how many requests
/// got a response.
///
/// # Panics
/// When a request in flight was neither answered nor failed once the
/// connection ended (a caller left waiting for ever), or the connection is
/// not marked closed: the properties the fuzzer checks.
#[doc(hidden)]
pub fn fuzz_read(data: &[u8]) -> usize {
    use std::future::Future;
    let Some((&setup, frames)) = data.split_first() else {
        return 0;
    };
    let chunk = usize::from(setup & 0x0f) + 1;
    let in_flight = usize::from(setup >> 4);
    let permits = Arc::new(Semaphore::new(in_flight.max(1)));
    let mut pending = VecDeque::new();
    let mut replies = Vec::new();
    for i in 0..in_flight {
        let (reply, rx) = oneshot::channel();
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            return 0;
        };
        pending.push_back(Pending {
            correlation_id: i as i32,
            api: ApiKey::Metadata,
            version: 12,
            response_header_version: (i % 2) as i16,
            reply,
            _permit: permit,
        });
        replies.push(rx);
    }
    let state = Arc::new(Mutex::new(State {
        pending,
        closed: None,
    }));
    let peer = Chunked {
        data: frames,
        chunk,
    };
    let reader = read_loop(peer, state.clone(), "fuzz:9092".into(), 1 << 20);
    let mut reader = std::pin::pin!(reader);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        reader.as_mut().poll(&mut cx).is_ready(),
        "an in-memory peer never makes the reader wait"
    );
    assert!(
        lock(&state).closed.is_some(),
        "the connection ended unmarked"
    );
    let mut answered = 0;
    for mut rx in replies {
        match rx.try_recv() {
            Ok(Ok(_)) => answered += 1,
            Ok(Err(_)) => {}
            Err(e) => panic!("a request in flight was left waiting: {e}"),
        }
    }
    answered
}

#[cfg(test)]
mod fuzz_read_tests {
    use super::fuzz_read;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn answers_in_order_then_fails_the_rest() {
        // two requests waiting (ids 0 and 1, header v0 then v1), one byte per read
        let mut data = vec![0x20];
        data.extend(frame(&[0, 0, 0, 0, 0xaa]));
        // header v1: id 1, an empty tag section
        data.extend(frame(&[0, 0, 0, 1, 0]));
        assert_eq!(fuzz_read(&data), 2);
        // only the first answered: the second is failed at end of stream
        assert_eq!(fuzz_read(&data[..10]), 1);
    }

    #[test]
    fn a_wrong_correlation_id_or_size_fails_every_request() {
        let mut data = vec![0x3f];
        data.extend(frame(&[0, 0, 0, 7]));
        assert_eq!(fuzz_read(&data), 0);
        let mut data = vec![0x3f];
        data.extend_from_slice(&i32::MAX.to_be_bytes());
        data.extend_from_slice(&[0; 64]);
        assert_eq!(fuzz_read(&data), 0);
        let mut data = vec![0x3f];
        data.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(fuzz_read(&data), 0);
    }
}
