//! A broker: a lazy, asynchronous and recoverable round tripper to one Kafka
//! broker.
//!
//! - lazy: the connection opens on the first request;
//! - asynchronous: many requests are pipelined on one connection (up to
//!   `max_in_flight`), matched to their responses by correlation id;
//! - recoverable: a broken connection fails its requests at once with a
//!   retriable error and is reopened, after a backoff, by the next request.
//!
//! On connect it asks ApiVersions (retrying at v0 when the broker answers
//! UNSUPPORTED_VERSION, as librdkafka's mock does for v3+), and every request
//! then uses the highest version both sides support.
//!
//! Connections are TLS when the security protocol says so (feature `tls`),
//! and authenticate with SASL right after ApiVersions (feature `sasl`),
//! re-authenticating on the same connection before the session the broker
//! granted runs out (KIP-368).
//!
//! A broker has up to three connections, its [`Lane`]s, each opened on
//! first use, so that requests the broker holds on purpose (a long-polling
//! Fetch, a JoinGroup waiting for the rebalance) do not hold up the others:
//! a Kafka broker answers one request at a time per connection.

mod connection;
#[cfg(feature = "sasl")]
mod sasl;
#[cfg(feature = "sasl")]
mod scram;
#[doc(hidden)]
pub use connection::fuzz_read as fuzz_read_frames;
#[cfg(feature = "sasl")]
#[doc(hidden)]
pub use scram::fuzz_exchange as fuzz_scram_exchange;
#[cfg(feature = "tls")]
mod tls;
mod transport;

pub use crate::versions::{client_cap, client_caps, client_range, ApiVersions, LegacyVersion};

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use connection::{Connection, Pending};
use kpax_proto::generated::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ErrorCode, ListGroupsRequest, MetadataRequest,
    RequestHeader,
};
use kpax_proto::message::{Message, Request};
use kpax_proto::wire::StrBytes;
use kpax_proto::wire::{put_i32, FrameBuf, Sink};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Mutex, RwLock};
use tokio::task::JoinHandle;
use transport::Transport;

/// Which of a broker's connections a request travels on. Each lane is
/// opened on first use and reconnects on its own; the versions negotiated
/// by ApiVersions are shared.
///
/// Kafka answers one request at a time per connection, so a request the
/// broker holds on purpose holds up everything behind it on its
/// connection: hence the lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Lane {
    /// Produce, Metadata, offsets, admin: everything short.
    Default,
    /// Fetch requests, which the broker holds up to their max wait.
    Fetch,
    /// Group requests of clients that are not members (admin's group
    /// calls, share-group heartbeats).
    Group,
    /// One group member's own connection ([`Lane::new_member`]): a
    /// member's JoinGroup is held until the group rebalances, which waits
    /// for the *other* members' JoinGroups; were two members of one
    /// process on one connection, the second's Heartbeat would wait behind
    /// the first's JoinGroup until the rebalance timed out. A share
    /// consumer's ShareFetch and ShareAcknowledge travel on one too: Kafka
    /// drops a share group's cached partition state when its connections
    /// close, so closing the member closes exactly its own.
    Member(MemberLane),
}

/// How [`Broker::send_with`] sends one request; every field is optional,
/// and [`SendOptions::default`] is what [`Broker::send`] does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendOptions {
    /// The version to send, which must be one the broker supports
    /// (default: the highest both sides know).
    pub version: Option<i16>,
    /// How long to wait for the response (default: the client's request
    /// timeout). A request the broker holds on purpose (JoinGroup waits for
    /// the rebalance) needs longer.
    pub timeout: Option<Duration>,
    /// The connection to send on (default: [`Lane::for_api`]).
    pub lane: Option<Lane>,
}

impl SendOptions {
    /// Options that send at `version`.
    pub fn version(version: i16) -> SendOptions {
        SendOptions::default().with_version(version)
    }

    /// Sends at `version`.
    pub fn with_version(mut self, version: i16) -> SendOptions {
        self.version = Some(version);
        self
    }

    /// Waits `timeout` for the response.
    pub fn with_timeout(mut self, timeout: Duration) -> SendOptions {
        self.timeout = Some(timeout);
        self
    }

    /// Sends on `lane`.
    pub fn with_lane(mut self, lane: Lane) -> SendOptions {
        self.lane = Some(lane);
        self
    }
}

/// The identity of a [`Lane::Member`]; unique in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberLane(u64);

impl Lane {
    /// The lane a request of `api` takes unless its caller names one:
    /// [`Lane::Fetch`] for the requests a broker holds up to their max wait
    /// (Fetch, ShareFetch, ShareAcknowledge), [`Lane::Group`] for group
    /// membership (JoinGroup, SyncGroup, Heartbeat, LeaveGroup and the
    /// KIP-848 and share-group heartbeats), [`Lane::Default`] for the rest.
    /// A group member sends its own on its [`Lane::new_member`].
    pub fn for_api(api: ApiKey) -> Lane {
        match api {
            ApiKey::Fetch | ApiKey::ShareFetch | ApiKey::ShareAcknowledge => Lane::Fetch,
            ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::ConsumerGroupHeartbeat
            | ApiKey::ShareGroupHeartbeat => Lane::Group,
            _ => Lane::Default,
        }
    }

    /// A member lane no other caller has: one per group member (consumer
    /// or share consumer). Close it with [`Broker::release_lane`] on every
    /// broker when the member ends.
    pub fn new_member() -> Lane {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Lane::Member(MemberLane(NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

/// A handle to one broker; cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("addr", &self.inner.addr)
            .field("node_id", &self.inner.node_id)
            .finish()
    }
}

struct Inner {
    addr: String,
    node_id: Option<i32>,
    config: Arc<ClientConfig>,
    client_id: StrBytes,
    correlation: AtomicI32,
    /// The connections of [`Lane::Default`], [`Lane::Fetch`] and
    /// [`Lane::Group`].
    lanes: [Arc<Mutex<Slot>>; 3],
    /// The connections of the member lanes in use.
    members: std::sync::Mutex<HashMap<MemberLane, Arc<Mutex<Slot>>>>,
    /// The versions the broker last advertised, shared by the lanes.
    versions: std::sync::Mutex<Option<ApiVersions>>,
    transport: Transport,
    /// Requests closed unanswered in a row, per (API key, version).
    refusals: std::sync::Mutex<HashMap<(i16, i16), u32>>,
    /// The release found by probing a broker that predates ApiVersions
    /// (so reconnects do not probe again).
    legacy: std::sync::Mutex<Option<LegacyVersion>>,
    /// Per API key, the size of the last frame encoded: the next frame of
    /// that API starts with room for it, so a large request (Produce)
    /// is not grown by doubling, copying itself each time.
    frame_sizes: [AtomicUsize; FRAME_SIZE_SLOTS],
}

/// How many requests of one API and version in a row a broker may close
/// unanswered before kpax takes it to mean "not served" and stops retrying
/// ([`Error::Refused`]): one close may be a broker going down, three in a
/// row on fresh connections are a refusal.
pub const REFUSALS_BEFORE_GIVING_UP: u32 = 3;

/// How long a broker that let ApiVersions time out, and then answered
/// Metadata v0 and ListGroups v0 like Kafka 0.9, is given to answer
/// ApiVersions v0 (a slow modern broker does; 0.9 never does).
const LEGACY_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// API keys with a remembered frame size (keys at or past it start small).
const FRAME_SIZE_SLOTS: usize = 96;
/// The most room a remembered size reserves up front.
const MAX_FRAME_HINT: usize = 16 << 20;

/// The `tracing` target of the per-request protocol trace (debug level):
/// each request's API, version, correlation id, sizes and latency. The
/// CLI's `-d protocol` turns it on; so does `RUST_LOG=kpax::protocol=debug`.
pub const PROTOCOL_TARGET: &str = "kpax::protocol";

#[derive(Default)]
struct Slot {
    conn: Option<Arc<Live>>,
    failures: u32,
    retry_at: Option<Instant>,
}

/// An open connection and the versions negotiated on it.
struct Live {
    conn: Connection,
    versions: ApiVersions,
    /// Senders hold it shared while they queue a frame; re-authentication
    /// holds it exclusively, so no request slips between its round trips.
    #[cfg_attr(not(feature = "sasl"), allow(dead_code))]
    gate: RwLock<()>,
}

impl Live {
    fn new(conn: Connection, versions: ApiVersions) -> Live {
        Live {
            conn,
            versions,
            gate: RwLock::new(()),
        }
    }

    /// Ties `task` to this connection: it is aborted when the connection goes.
    #[cfg_attr(not(feature = "sasl"), allow(dead_code))]
    fn adopt(&self, task: JoinHandle<()>) {
        self.conn.adopt(task);
    }
}

impl Broker {
    /// A broker at `addr` (`host:port`); nothing is opened until the first request.
    pub fn new(addr: impl Into<String>, node_id: Option<i32>, config: Arc<ClientConfig>) -> Broker {
        Broker {
            inner: Arc::new(Inner {
                addr: addr.into(),
                node_id,
                client_id: StrBytes::from(config.client_id.clone()),
                config,
                correlation: AtomicI32::new(1),
                lanes: Default::default(),
                members: Default::default(),
                versions: std::sync::Mutex::new(None),
                transport: Transport::default(),
                refusals: std::sync::Mutex::new(HashMap::new()),
                legacy: std::sync::Mutex::new(None),
                frame_sizes: std::array::from_fn(|_| AtomicUsize::new(0)),
            }),
        }
    }

    /// The broker's address.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The broker's node id, when known from metadata.
    pub fn node_id(&self) -> Option<i32> {
        self.inner.node_id
    }

    /// The versions the broker advertised (connecting if needed).
    ///
    /// # Errors
    /// As [`Broker::send`] for the connection and handshake.
    pub async fn api_versions(&self) -> Result<ApiVersions> {
        if let Some(v) = self.cached_versions() {
            return Ok(v);
        }
        Ok(self.live(Lane::Default).await?.versions.clone())
    }

    fn cached_versions(&self) -> Option<ApiVersions> {
        self.inner
            .versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The version that `R` would be sent with (connecting if needed).
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] when no version is common, or a
    /// connection error.
    pub async fn version_for<R: Request>(&self) -> Result<i16> {
        let versions = self.api_versions().await?;
        self.pick::<R>(&versions)
    }

    fn pick<R: Request>(&self, versions: &ApiVersions) -> Result<i16> {
        let cap = self
            .inner
            .config
            .cap(R::API_KEY)
            .unwrap_or(R::MAX_VERSION)
            .min(client_cap(R::API_KEY).unwrap_or(R::MAX_VERSION))
            .min(R::MAX_VERSION);
        let ours = (R::MIN_VERSION, cap);
        versions
            .pick(R::API_KEY, ours)
            .ok_or_else(|| Error::UnsupportedVersion {
                broker: self.inner.addr.clone(),
                api: R::API_KEY,
                ours,
                theirs: versions.range(R::API_KEY),
            })
    }

    /// Sends `req` at the highest common version on the lane its API
    /// belongs to ([`Lane::for_api`]) and waits for its response.
    ///
    /// # Errors
    /// [`Error::Network`] / [`Error::ClosedOnRequest`] / [`Error::Protocol`]
    /// when the connection fails (it is reopened next time),
    /// [`Error::Timeout`] after the request timeout (the connection is then
    /// closed, as its answers would be out of step), [`Error::Decode`],
    /// [`Error::Encode`], [`Error::UnsupportedVersion`]; when connecting,
    /// [`Error::Tls`], [`Error::Authentication`], [`Error::Config`].
    pub async fn send<R: Request>(&self, req: &R) -> Result<R::Response> {
        self.send_with(req, SendOptions::default()).await
    }

    /// As [`Broker::send`], with a version, timeout or lane of the caller's
    /// choosing (see [`SendOptions`]).
    ///
    /// # Errors
    /// As [`Broker::send`].
    pub async fn send_with<R: Request>(
        &self,
        req: &R,
        options: SendOptions,
    ) -> Result<R::Response> {
        let lane = options.lane.unwrap_or(Lane::for_api(R::API_KEY));
        let live = self.live(lane).await?;
        let version = match options.version {
            Some(v) => v,
            None => self.pick::<R>(&live.versions)?,
        };
        let timeout = options.timeout.unwrap_or(self.inner.config.request_timeout);
        self.round_trip(&live, req, version, timeout).await
    }

    /// Sends a request that gets no response (a Produce with `acks = 0`);
    /// returns the version used once the frame is written to the socket
    /// (so a producer closed right after has not dropped it unsent).
    ///
    /// # Errors
    /// As [`Broker::send`], without timeouts.
    pub async fn send_no_response<R: Request>(&self, req: &R) -> Result<i16> {
        let live = self.live(Lane::for_api(R::API_KEY)).await?;
        let version = self.pick::<R>(&live.versions)?;
        let (frame, _) = self.frame(req, version)?;
        let _gate = live.gate.read().await;
        live.conn.send_written(frame).await?;
        Ok(version)
    }

    fn frame<R: Request>(&self, req: &R, version: i16) -> Result<(FrameBuf, i32)> {
        let correlation_id = self.inner.correlation.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let header = RequestHeader::default()
            .with_request_api_key(R::API_KEY as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.inner.client_id.clone()));
        let enc = |source| Error::Encode {
            broker: self.inner.addr.clone(),
            api: R::API_KEY,
            version,
            source,
        };
        let slot = self.inner.frame_sizes.get(R::API_KEY as usize);
        let hint = slot.map_or(0, |s| s.load(Ordering::Relaxed));
        // The frame's own bytes: record batches are shared, not counted here.
        let mut frame = FrameBuf::with_capacity((hint + hint / 8).clamp(256, MAX_FRAME_HINT));
        put_i32(&mut frame, 0);
        header
            .encode(frame.bytes_mut(), R::request_header_version(version))
            .map_err(enc)?;
        req.encode_to_frame(&mut frame, version).map_err(enc)?;
        let size = i32::try_from(frame.len() - 4).map_err(|_| {
            enc(kpax_proto::wire::EncodeError {
                message: R::NAME,
                field: "",
                version,
                kind: kpax_proto::wire::WireError::TooLong(frame.len() - 4),
            })
        })?;
        frame.set_i32_at(0, size);
        if let Some(s) = slot {
            s.store(frame.written().len(), Ordering::Relaxed);
        }
        Ok((frame, correlation_id))
    }

    /// One request and its response on an established connection.
    async fn round_trip<R: Request>(
        &self,
        live: &Live,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let result = self.exchange(live, req, version, timeout, true).await;
        let key = (R::API_KEY as i16, version);
        let mut refusals = self
            .inner
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match &result {
            Err(Error::ClosedOnRequest { .. }) => {
                let times = refusals.entry(key).or_insert(0);
                *times += 1;
                if *times >= REFUSALS_BEFORE_GIVING_UP {
                    return Err(Error::Refused {
                        broker: self.inner.addr.clone(),
                        api: R::API_KEY,
                        version,
                        times: *times,
                        advertised: live.versions.range(R::API_KEY),
                    });
                }
            }
            Ok(_) if !refusals.is_empty() => {
                refusals.remove(&key);
            }
            _ => {}
        }
        result
    }

    /// One request and its response; `gated`: wait while the connection
    /// re-authenticates (everything but the handshake itself).
    async fn exchange<R: Request>(
        &self,
        live: &Live,
        req: &R,
        version: i16,
        timeout: Duration,
        gated: bool,
    ) -> Result<R::Response> {
        let (frame, correlation_id) = self.frame(req, version)?;
        let request_bytes = frame.len();
        let started =
            tracing::enabled!(target: PROTOCOL_TARGET, tracing::Level::DEBUG).then(Instant::now);
        // The gate before the permit: a request held while the connection
        // re-authenticates must not hold a permit the exchange needs.
        let gate = if gated {
            Some(live.gate.read().await)
        } else {
            None
        };
        let permit = live.conn.permit().await;
        let (reply, rx) = oneshot::channel();
        let queued = live.conn.send(
            frame,
            Some(Pending {
                correlation_id,
                api: R::API_KEY,
                version,
                response_header_version: R::response_header_version(version),
                reply,
                _permit: permit,
            }),
        );
        drop(gate);
        queued?;
        let answer = tokio::time::timeout(timeout, rx).await;
        if let Some(t) = started {
            self.trace_exchange::<R>(version, correlation_id, request_bytes, &answer, t);
        }
        let mut body = match answer {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => {
                return Err(Error::Network {
                    broker: self.inner.addr.clone(),
                    api: Some(R::API_KEY),
                    reason: "connection closed".into(),
                })
            }
            Err(_) => {
                let e = Error::Timeout {
                    broker: self.inner.addr.clone(),
                    api: R::API_KEY,
                    version,
                    after: timeout,
                };
                live.conn.close(Error::Network {
                    broker: self.inner.addr.clone(),
                    api: None,
                    reason: format!(
                        "connection closed after a {:?} request timed out",
                        R::API_KEY
                    ),
                });
                return Err(e);
            }
        };
        R::Response::decode(&mut body, version).map_err(|source| Error::Decode {
            broker: self.inner.addr.clone(),
            api: R::API_KEY,
            version,
            source,
        })
    }

    /// One exchange as `-d protocol` shows it: API, version, correlation
    /// id, sizes, latency (or the failure).
    fn trace_exchange<R: Request>(
        &self,
        version: i16,
        correlation_id: i32,
        request_bytes: usize,
        answer: &std::result::Result<
            std::result::Result<Result<bytes::Bytes>, oneshot::error::RecvError>,
            tokio::time::error::Elapsed,
        >,
        started: Instant,
    ) {
        let latency_us = started.elapsed().as_micros() as u64;
        let broker = self.inner.addr.as_str();
        match answer {
            Ok(Ok(Ok(body))) => tracing::debug!(
                target: PROTOCOL_TARGET,
                broker, api = ?R::API_KEY, version, correlation_id, request_bytes,
                response_bytes = body.len() + 4, latency_us, "response"
            ),
            Ok(Ok(Err(e))) => tracing::debug!(
                target: PROTOCOL_TARGET,
                broker, api = ?R::API_KEY, version, correlation_id, request_bytes,
                latency_us, error = %e, "no response"
            ),
            Ok(Err(_)) => tracing::debug!(
                target: PROTOCOL_TARGET,
                broker, api = ?R::API_KEY, version, correlation_id, request_bytes,
                latency_us, "no response: connection closed"
            ),
            Err(_) => tracing::debug!(
                target: PROTOCOL_TARGET,
                broker, api = ?R::API_KEY, version, correlation_id, request_bytes,
                latency_us, "no response: timed out"
            ),
        }
    }

    /// The open connection of `lane`, opening it (after any backoff) when
    /// needed.
    async fn live(&self, lane: Lane) -> Result<Arc<Live>> {
        let slot = self.slot(lane);
        let mut slot = slot.lock().await;
        if let Some(live) = &slot.conn {
            if !live.conn.is_closed() {
                return Ok(live.clone());
            }
            slot.conn = None;
        }
        if let Some(at) = slot.retry_at {
            tokio::time::sleep_until(at.into()).await;
        }
        match self.connect(lane).await {
            Ok(live) => {
                slot.conn = Some(live.clone());
                slot.failures = 0;
                slot.retry_at = None;
                Ok(live)
            }
            Err(e) => {
                let cfg = &self.inner.config;
                // Refused credentials or certificates will not change by
                // themselves: wait the longest backoff before trying again.
                let wait = if matches!(e, Error::Authentication { .. } | Error::Tls { .. }) {
                    cfg.reconnect_backoff_max
                } else {
                    backoff(
                        slot.failures,
                        cfg.reconnect_backoff,
                        cfg.reconnect_backoff_max,
                    )
                };
                slot.failures += 1;
                slot.retry_at = Some(Instant::now() + wait);
                tracing::debug!(broker = %self.inner.addr, ?lane, error = %e, ?wait, "connect failed");
                Err(e)
            }
        }
    }

    /// Opens a byte stream (TCP, TLS) with its reader and writer tasks.
    async fn open(&self) -> Result<Connection> {
        self.inner
            .transport
            .open(&self.inner.addr, &self.inner.config)
            .await
    }

    /// Opens a connection for `lane`: transport, versions (asked on the
    /// default lane, shared with the others), then SASL.
    async fn connect(&self, lane: Lane) -> Result<Arc<Live>> {
        let sasl = self.sasl_settings()?;
        let cached = match lane {
            Lane::Default => None,
            _ => self.cached_versions(),
        };
        let live = match cached {
            Some(versions) => Live::new(self.open().await?, versions),
            None => {
                let live = self.negotiate().await?;
                *self
                    .inner
                    .versions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(live.versions.clone());
                live
            }
        };
        let live = Arc::new(live);
        if let Some(sasl) = sasl {
            self.sign_in(&live, sasl).await?;
        }
        Ok(live)
    }

    /// The SASL settings when the security protocol asks for SASL.
    fn sasl_settings(&self) -> Result<Option<&crate::config::SaslConfig>> {
        let cfg = &self.inner.config;
        if !cfg.security_protocol.uses_sasl() {
            return Ok(None);
        }
        match &cfg.sasl {
            Some(s) => Ok(Some(s)),
            None => Err(Error::Config(format!(
                "security protocol {:?} needs SASL settings (ClientConfig::with_sasl)",
                cfg.security_protocol
            ))),
        }
    }

    #[cfg(feature = "sasl")]
    async fn sign_in(&self, live: &Arc<Live>, sasl: &crate::config::SaslConfig) -> Result<()> {
        let lifetime = self.authenticate(live, sasl).await;
        if let Err(e) = &lifetime {
            live.conn.close(e.clone());
        }
        if let Some(lifetime) = lifetime? {
            self.keep_authenticated(live, lifetime);
        }
        Ok(())
    }

    #[cfg(not(feature = "sasl"))]
    async fn sign_in(&self, _live: &Arc<Live>, _sasl: &crate::config::SaslConfig) -> Result<()> {
        Err(Error::Config(
            "SASL was asked for, and kpax was built without its `sasl` feature".into(),
        ))
    }

    /// Opens a connection and negotiates versions.
    async fn negotiate(&self) -> Result<Live> {
        if let Some(legacy) = self.legacy() {
            return Ok(Live::new(self.open().await?, legacy.api_versions()));
        }
        let conn = self.open().await?;
        let probe = Live::new(
            conn,
            ApiVersions::from_ranges([(
                ApiKey::ApiVersions as i16,
                0,
                client_range(ApiKey::ApiVersions).1,
            )]),
        );
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static("kpax"))
            .with_client_software_version(StrBytes::from_static(env!("CARGO_PKG_VERSION")));
        let first = self
            .round_trip(
                &probe,
                &req,
                client_range(ApiKey::ApiVersions).1,
                self.inner.config.request_timeout,
            )
            .await;
        let resp = match first {
            Ok(r) if r.error_code == ErrorCode::UNSUPPORTED_VERSION => {
                self.api_versions_v0(probe.conn).await?
            }
            Ok(r) if r.error_code.is_ok() => Live::new(probe.conn, ranges_of(&r)),
            Ok(r) => {
                return Err(Error::Broker {
                    broker: self.inner.addr.clone(),
                    api: ApiKey::ApiVersions,
                    code: r.error_code,
                    message: None,
                })
            }
            // A reply we cannot read (a broker that answers v3+ in an old
            // layout): ask again at v0 on a fresh connection.
            Err(Error::Decode { .. }) => {
                let conn = self.open().await?;
                self.api_versions_v0(conn).await?
            }
            // Brokers before 0.10 close the connection on ApiVersions
            // (0.8.2) or never answer it (0.9): use the release configured,
            // else find which one it is.
            Err(
                e @ (Error::ClosedOnRequest { .. }
                | Error::Refused { .. }
                | Error::Timeout {
                    api: ApiKey::ApiVersions,
                    ..
                }),
            ) => {
                let timed_out = matches!(e, Error::Timeout { .. });
                let legacy = match self.inner.config.broker_version_fallback {
                    Some(v) => v,
                    None => match self.detect_legacy(e, timed_out).await? {
                        Ok(legacy) => legacy,
                        Err(modern) => return Ok(modern),
                    },
                };
                tracing::info!(broker = %self.inner.addr, ?legacy, "broker closed on ApiVersions; using the versions of that release");
                *self.inner.legacy.lock().unwrap_or_else(|e| e.into_inner()) = Some(legacy);
                Live::new(self.open().await?, legacy.api_versions())
            }
            Err(e) => return Err(e),
        };
        Ok(resp)
    }

    /// The release of a broker that closed the connection on ApiVersions,
    /// or let it time out (`closed`): a Kafka broker before 0.10 answers
    /// Metadata v0; one that answers ListGroups v0 too is 0.9, else 0.8.2.
    /// A listener that closes on Metadata v0 as well is not a Kafka broker
    /// speaking this security protocol: that is an error saying so. After a
    /// timeout (which a slow modern broker may cause too) a 0.9 answer is
    /// checked by asking ApiVersions v0 again briefly: a broker that answers
    /// it now is modern, and its connection (`Err`) is used as it is.
    async fn detect_legacy(
        &self,
        closed: Error,
        timed_out: bool,
    ) -> Result<std::result::Result<LegacyVersion, Live>> {
        let timeout = self.inner.config.request_timeout;
        let probe = Live::new(
            self.open().await?,
            ApiVersions::from_ranges([
                (ApiKey::Metadata as i16, 0, 0),
                (ApiKey::ListGroups as i16, 0, 0),
            ]),
        );
        let metadata = self
            .exchange(
                &probe,
                &MetadataRequest::default().with_topics(Some(Vec::new())),
                0,
                timeout,
                true,
            )
            .await;
        match metadata {
            Ok(_) => {}
            Err(Error::ClosedOnRequest { .. }) => {
                return Err(Error::Protocol {
                    broker: self.inner.addr.clone(),
                    reason: format!(
                        "the broker closed the connection on ApiVersions ({closed}) and on Metadata v0: \
                         either this listener wants another security protocol (TLS or SASL: check \
                         security_protocol), or it is not a Kafka broker; a Kafka broker before 0.10 \
                         answers Metadata v0 (to name its release, set broker_version_fallback)"
                    ),
                })
            }
            Err(e) => return Err(e),
        }
        let groups = self
            .exchange(&probe, &ListGroupsRequest::default(), 0, timeout, true)
            .await;
        let found = match groups {
            Ok(_) => LegacyVersion::V0_9_0,
            Err(Error::ClosedOnRequest { .. }) => return Ok(Ok(LegacyVersion::V0_8_2)),
            Err(e) => return Err(e),
        };
        if timed_out {
            let check = Live::new(
                probe.conn,
                ApiVersions::from_ranges([(ApiKey::ApiVersions as i16, 0, 0)]),
            );
            let again = self
                .exchange(
                    &check,
                    &ApiVersionsRequest::default(),
                    0,
                    timeout.min(LEGACY_CHECK_TIMEOUT),
                    true,
                )
                .await;
            if let Ok(r) = again {
                if r.error_code.is_ok() {
                    return Ok(Err(Live::new(check.conn, ranges_of(&r))));
                }
            }
            check.conn.close(Error::Network {
                broker: self.inner.addr.clone(),
                api: None,
                reason: "probe for the broker's release done".into(),
            });
        } else {
            probe.conn.close(Error::Network {
                broker: self.inner.addr.clone(),
                api: None,
                reason: "probe for the broker's release done".into(),
            });
        }
        Ok(Ok(found))
    }

    /// The release this broker was found to be, when it predates
    /// ApiVersions (Kafka 0.8.2 or 0.9) and kpax probed it; `None` for a
    /// broker that answers ApiVersions or one not yet connected.
    pub fn legacy(&self) -> Option<LegacyVersion> {
        *self.inner.legacy.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn api_versions_v0(&self, conn: Connection) -> Result<Live> {
        let probe = Live::new(
            conn,
            ApiVersions::from_ranges([(ApiKey::ApiVersions as i16, 0, 0)]),
        );
        let r = self
            .round_trip(
                &probe,
                &ApiVersionsRequest::default(),
                0,
                self.inner.config.request_timeout,
            )
            .await?;
        if !r.error_code.is_ok() {
            return Err(Error::Broker {
                broker: self.inner.addr.clone(),
                api: ApiKey::ApiVersions,
                code: r.error_code,
                message: None,
            });
        }
        Ok(Live::new(probe.conn, ranges_of(&r)))
    }

    /// The connection slot of `lane` (a member lane's is made on first use).
    fn slot(&self, lane: Lane) -> Arc<Mutex<Slot>> {
        match lane {
            Lane::Default => self.inner.lanes[0].clone(),
            Lane::Fetch => self.inner.lanes[1].clone(),
            Lane::Group => self.inner.lanes[2].clone(),
            Lane::Member(m) => self
                .inner
                .members
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(m)
                .or_default()
                .clone(),
        }
    }

    /// Closes the current connections of every lane, if any (the next
    /// request reopens them).
    pub async fn disconnect(&self) {
        let members: Vec<Lane> = self
            .inner
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .map(|m| Lane::Member(*m))
            .collect();
        for lane in [Lane::Default, Lane::Fetch, Lane::Group]
            .into_iter()
            .chain(members)
        {
            self.disconnect_lane(lane).await;
        }
    }

    /// Closes the current connection of `lane`, if any (the next request
    /// on it reopens it).
    pub async fn disconnect_lane(&self, lane: Lane) {
        if let Some(live) = self.slot(lane).lock().await.conn.take() {
            live.conn.close(Error::Network {
                broker: self.inner.addr.clone(),
                api: None,
                reason: "disconnected by the client".into(),
            });
        }
    }

    /// Closes a member lane's connection and forgets the lane (its member
    /// has ended); for the other lanes, as [`Broker::disconnect_lane`].
    pub async fn release_lane(&self, lane: Lane) {
        self.disconnect_lane(lane).await;
        if let Lane::Member(m) = lane {
            self.inner
                .members
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&m);
        }
    }
}

fn ranges_of(r: &ApiVersionsResponse) -> ApiVersions {
    ApiVersions::from_ranges(
        r.api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version)),
    )
}

/// The wait before attempt `attempt + 1`: doubling from `first`, at most `max`.
pub(crate) fn backoff(attempt: u32, first: Duration, max: Duration) -> Duration {
    first.saturating_mul(1 << attempt.min(16)).min(max)
}
