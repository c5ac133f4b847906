//! An in-process fake Kafka cluster: N brokers on loopback ports speaking
//! the real wire protocol (kpax-proto's generated messages), so that any
//! Kafka client — kpax, librdkafka, the Java client — can be tested
//! without a broker.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use kpax_fake::FakeCluster;
//! use kpax_proto::generated::{ApiKey, ErrorCode};
//!
//! let cluster = FakeCluster::new(3).await?;
//! cluster.create_topic("events", 3).unwrap();
//! println!("bootstrap: {}", cluster.bootstrap());
//! // The next Produce request fails once with NOT_ENOUGH_REPLICAS.
//! cluster.fail_next(ApiKey::Produce, ErrorCode::NOT_ENOUGH_REPLICAS, 1);
//! # Ok(()) }
//! ```
//!
//! Served: ApiVersions, Metadata, CreateTopics, DeleteTopics,
//! CreatePartitions, Produce, Fetch (with fetch sessions, KIP-227),
//! ListOffsets, InitProducerId, FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, DescribeGroups, ListGroups, OffsetCommit,
//! OffsetFetch, DeleteRecords, DeleteGroups, DescribeCluster,
//! DescribeConfigs (topic configs, and a few read-only broker configs),
//! IncrementalAlterConfigs (topic configs and share-group configs),
//! transactions (AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
//! EndTxn, markers and read_committed), the consumer group protocol
//! (ConsumerGroupHeartbeat, KIP-848) and share groups (ShareGroupHeartbeat,
//! ShareGroupDescribe, ShareFetch, ShareAcknowledge, KIP-932: acquisition
//! locks, release, reject, the delivery limit; see
//! [`FakeCluster::share_partition`]); see [`VersionTable`] for the versions
//! and presets that pin them.
//!
//! What the fake does not do: replication (a partition lives only on its
//! leader; replicas and ISR are reported for show), the share-group offset
//! APIs, the streams group protocol.
//!
//! TLS ([`FakeTls`]) and SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512
//! ([`FakeSasl`], with session lifetimes and KIP-368 re-authentication) are
//! served when [`FakeOptions`] asks for them.
//!
//! # Layout
//!
//! Four layers, each importing only from the layers below it (the
//! workspace's `module_layers` test checks that there are no import
//! circles):
//!
//! - **The model**: plain data, synchronous, with the time passed in.
//!   `state` (`ClusterState`: brokers, topics and their partitions,
//!   groups, producer ids, injected faults), `log` (one partition's
//!   batches and the idempotent producers' sequence state), `group` (a
//!   classic group), `consumer_group` (a KIP-848 group), `share_group` (a
//!   KIP-932 group and its share-partitions) and `transactions` (the
//!   transaction coordinators' state). `versions` ([`VersionTable`]) and
//!   `auth` (TLS, SASL) sit beside the model.
//! - **The handlers' ground floor**: `context` (`Context`: the cluster, the
//!   broker answering, the request's version, an injected error), the
//!   leader and group-coordinator checks that most requests begin with,
//!   and the response-string helpers.
//! - **The handlers**: `handlers` only dispatches each request to its API
//!   family. Each family is one file under `handlers/`: `metadata`
//!   (ApiVersions, Metadata), `topics`, `produce`, `fetch` (Fetch,
//!   ListOffsets; its KIP-227 sessions are in `fetch_session`), `groups`
//!   (FindCoordinator and the classic group APIs), `offsets`,
//!   `consumer_group` (KIP-848), `share_group` (KIP-932), `txn` (the
//!   transaction coordinator, including InitProducerId) and `admin`. A
//!   family imports the context and the model, and sometimes a sibling's
//!   helpers (produce and fetch ask `txn` about open transactions), but
//!   never the dispatcher.
//! - **The top**: `server` (one listener per broker and one task per
//!   connection, with the SASL exchange done before any handler runs),
//!   `timers` (the session, rebalance and transaction timeouts, run every
//!   20 ms), and this file ([`FakeCluster`], and the state its tasks share:
//!   the model behind one mutex, the fetch sessions, the wakeup for
//!   waiting fetches).
#![warn(missing_docs)]

// The model: plain data, synchronous, the time passed in.
mod consumer_group;
mod group;
mod log;
mod share_group;
mod state;
mod transactions;
pub mod versions;
// Beside the model: TLS and SASL for the listeners.
mod auth;
// The ground floor of the handlers, then the handlers by API family.
mod context;
mod handlers;
// The top: connections, the clock.
mod server;
mod timers;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kpax_proto::generated::{ApiKey, ErrorCode};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use auth::{FakeSasl, FakeTls, MECHANISMS as SASL_MECHANISMS};
pub use group::{Committed, GroupState};
pub use handlers::fetch_session::{
    ReceivedFetch, DEFAULT_SESSION_LIMIT as DEFAULT_FETCH_SESSION_LIMIT,
};
pub use versions::VersionTable;

/// A share group's state on one partition, as
/// [`FakeCluster::share_partition`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharePartitionState {
    /// The share-partition start offset: every record before it is done
    /// (accepted, rejected, or past the delivery limit).
    pub start_offset: i64,
    /// Records a member holds now (acquired, lock not expired).
    pub acquired: usize,
    /// Records handed out before and available again (released, or their
    /// lock expired).
    pub available: usize,
    /// Records from the start offset to the end not yet done.
    pub lag: i64,
}

use state::{ClusterState, CoordinatorKind};

/// How a [`FakeCluster`] is set up.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Number of brokers (ids `1..=brokers`).
    pub brokers: usize,
    /// The versions served.
    pub versions: VersionTable,
    /// Whether Metadata creates unknown topics when the client allows it
    /// (Kafka's `auto.create.topics.enable`, off by default here).
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic, and of a CreateTopics that
    /// asks for the default (-1).
    pub default_partitions: i32,
    /// How long a new group waits for more members before its first
    /// rebalance completes (Kafka's `group.initial.rebalance.delay.ms`).
    pub initial_rebalance_delay: Duration,
    /// Frames larger than this close the connection (Kafka's
    /// `socket.request.max.bytes`).
    pub max_frame_bytes: usize,
    /// Serve TLS on every listener (Kafka's `SSL` / `SASL_SSL` listeners).
    pub tls: Option<FakeTls>,
    /// Require SASL authentication on every connection (Kafka's
    /// `SASL_PLAINTEXT` / `SASL_SSL` listeners).
    pub sasl: Option<FakeSasl>,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            brokers: 1,
            versions: VersionTable::latest(),
            auto_create_topics: false,
            default_partitions: 1,
            initial_rebalance_delay: Duration::from_millis(100),
            max_frame_bytes: 100 << 20,
            tls: None,
            sasl: None,
        }
    }
}

/// What the brokers' connection tasks share.
pub(crate) struct Shared {
    state: Mutex<ClusterState>,
    /// Woken whenever records are appended (waiting fetches re-check).
    pub data_arrived: Notify,
    pub max_frame_bytes: usize,
    pub tls: Option<FakeTls>,
    pub sasl: Option<Arc<FakeSasl>>,
    /// Successful SASL authentications so far (re-authentications included).
    pub authentications: std::sync::atomic::AtomicUsize,
    /// Fetch sessions (KIP-227) and the Fetch request log.
    pub fetch_sessions: Mutex<handlers::fetch_session::Sessions>,
}

impl Shared {
    /// Locks the cluster state; a poisoned lock (a panic elsewhere) is
    /// taken over, the state being plain data.
    pub fn lock(&self) -> MutexGuard<'_, ClusterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One broker's listener and the switch that closes its connections.
struct BrokerHandle {
    addr: SocketAddr,
    up: watch::Sender<bool>,
    listener: Option<JoinHandle<()>>,
}

/// A running fake cluster. Dropping it stops every broker.
///
/// # Example
///
/// Brokers on loopback ports speaking the real wire protocol, with faults a
/// test can inject:
///
/// ```
/// use kpax_fake::FakeCluster;
/// use kpax_proto::generated::{ApiKey, ErrorCode};
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> std::io::Result<()> {
/// let fake = FakeCluster::new(3).await?;
/// fake.create_topic("orders", 6).expect("a new topic");
/// println!("bootstrap: {}", fake.bootstrap()); // give this to any Kafka client
/// // The next two Produce requests fail as after a leader election.
/// fake.fail_next(ApiKey::Produce, ErrorCode::NOT_LEADER_OR_FOLLOWER, 2);
/// // Broker 2 goes away, and its partitions' leadership with it.
/// fake.broker_down(2).await;
/// for p in 0..6 {
///     if fake.leader("orders", p) == Some(2) {
///         fake.move_leader("orders", p, 1).expect("broker 1 is up");
///     }
/// }
/// fake.broker_up(2)?;
/// assert_eq!(fake.high_watermark("orders", 0), Some(0));
/// # Ok(())
/// # }
/// ```
pub struct FakeCluster {
    shared: Arc<Shared>,
    brokers: Mutex<Vec<BrokerHandle>>,
    ticker: JoinHandle<()>,
    runtime: tokio::runtime::Handle,
}

impl FakeCluster {
    /// Starts `brokers` brokers (ids `1..=brokers`) on random loopback
    /// ports, with default [`FakeOptions`]. Must be called within a tokio
    /// runtime.
    ///
    /// # Errors
    /// When a listener cannot be bound.
    pub async fn new(brokers: usize) -> std::io::Result<FakeCluster> {
        FakeCluster::with_options(FakeOptions {
            brokers,
            ..FakeOptions::default()
        })
        .await
    }

    /// Starts a cluster set up by `options`.
    ///
    /// # Errors
    /// When a listener cannot be bound, or `options.brokers` is 0.
    pub async fn with_options(options: FakeOptions) -> std::io::Result<FakeCluster> {
        if options.brokers == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a fake cluster needs at least one broker",
            ));
        }
        let mut listeners = Vec::with_capacity(options.brokers);
        for _ in 0..options.brokers {
            listeners.push(server::bind("127.0.0.1:0".parse().expect("address"))?);
        }
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<_, _>>()?;
        let ports: Vec<u16> = addrs.iter().map(|a| a.port()).collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(ClusterState::new("127.0.0.1".into(), &ports, &options)),
            data_arrived: Notify::new(),
            max_frame_bytes: options.max_frame_bytes,
            tls: options.tls.clone(),
            sasl: options.sasl.clone().map(Arc::new),
            authentications: std::sync::atomic::AtomicUsize::new(0),
            fetch_sessions: Mutex::new(handlers::fetch_session::Sessions::default()),
        });
        let mut handles = Vec::with_capacity(options.brokers);
        for (i, listener) in listeners.into_iter().enumerate() {
            let (up, _) = watch::channel(true);
            let node = i as i32 + 1;
            let task = tokio::spawn(server::accept_loop(
                shared.clone(),
                node,
                listener,
                up.subscribe(),
            ));
            handles.push(BrokerHandle {
                addr: addrs[i],
                up,
                listener: Some(task),
            });
        }
        let ticker_shared = shared.clone();
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(20));
            loop {
                every.tick().await;
                crate::timers::tick(&mut ticker_shared.lock(), Instant::now());
            }
        });
        tracing::info!(brokers = options.brokers, "fake cluster started");
        Ok(FakeCluster {
            shared,
            brokers: Mutex::new(handles),
            ticker,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    fn handles(&self) -> MutexGuard<'_, Vec<BrokerHandle>> {
        self.brokers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bootstrap servers string: every broker's `host:port`, comma
    /// separated.
    pub fn bootstrap(&self) -> String {
        self.handles()
            .iter()
            .map(|b| b.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The address of broker `node`.
    pub fn broker_addr(&self, node: i32) -> Option<SocketAddr> {
        self.handles().get((node - 1) as usize).map(|b| b.addr)
    }

    /// The number of brokers.
    pub fn broker_count(&self) -> usize {
        self.handles().len()
    }

    /// Creates `name` with `partitions` partitions, leaders spread over the
    /// brokers.
    ///
    /// # Errors
    /// `TOPIC_ALREADY_EXISTS`, `INVALID_TOPIC_EXCEPTION`, `INVALID_PARTITIONS`.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), ErrorCode> {
        self.shared
            .lock()
            .create_topic(name, partitions, 1, None, false)
    }

    /// Deletes `name` and its records.
    ///
    /// # Errors
    /// `UNKNOWN_TOPIC_OR_PARTITION`.
    pub fn delete_topic(&self, name: &str) -> Result<(), ErrorCode> {
        self.shared
            .lock()
            .topics
            .remove(name)
            .map(|_| ())
            .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
    }

    /// The high watermark of a partition, `None` when it does not exist.
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        let s = self.shared.lock();
        let p = s.topics.get(topic)?.partitions.get(partition as usize)?;
        Some(p.log.high_watermark())
    }

    /// The leader of a partition, `None` when it does not exist.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let s = self.shared.lock();
        Some(
            s.topics
                .get(topic)?
                .partitions
                .get(partition as usize)?
                .leader,
        )
    }

    /// The offset `group` committed for a partition.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        let s = self.shared.lock();
        s.groups
            .get(group)?
            .offsets
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// Share group `group`'s state on one partition (KIP-932), `None`
    /// while no member has been assigned it.
    pub fn share_partition(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Option<SharePartitionState> {
        let s = self.shared.lock();
        let p = s
            .share_groups
            .get(group)?
            .partitions
            .get(&(topic.to_string(), partition))?;
        let end = s
            .topics
            .get(topic)?
            .partitions
            .get(partition as usize)?
            .log
            .high_watermark();
        let (acquired, available) = p.counts();
        Some(SharePartitionState {
            start_offset: p.start,
            acquired,
            available,
            lag: p.lag(end),
        })
    }

    /// How many members share group `group` has, `None` when unknown.
    pub fn share_group_members(&self, group: &str) -> Option<usize> {
        self.shared
            .lock()
            .share_groups
            .get(group)
            .map(|g| g.members.len())
    }

    /// The state of `group` and its member count, `None` when unknown.
    pub fn group_state(&self, group: &str) -> Option<(GroupState, usize)> {
        let s = self.shared.lock();
        s.groups.get(group).map(|g| (g.state, g.members.len()))
    }

    /// Serves only the versions of `versions` from now on (new
    /// ApiVersions requests see it; connections already negotiated keep
    /// sending what they chose and are refused past the new maximum).
    pub fn set_versions(&self, versions: VersionTable) {
        self.shared.lock().versions = versions;
    }

    /// The versions served now.
    pub fn versions(&self) -> VersionTable {
        self.shared.lock().versions.clone()
    }

    /// Lets Metadata create unknown topics when the client allows it.
    pub fn set_auto_create_topics(&self, on: bool) {
        self.shared.lock().auto_create_topics = on;
    }

    /// Fails the next `count` requests of `api` with `error`, set in the
    /// response's error fields (every partition, topic or group of the
    /// request). Adds to errors already queued.
    pub fn fail_next(&self, api: ApiKey, error: ErrorCode, count: usize) {
        let mut s = self.shared.lock();
        let q = s.faults.errors.entry(api).or_default();
        q.extend(std::iter::repeat_n(error, count));
    }

    /// Fails the next requests of `api` with `errors`, one per request, in
    /// order (`ErrorCode::NONE` lets a request through).
    pub fn fail_sequence(&self, api: ApiKey, errors: &[ErrorCode]) {
        let mut s = self.shared.lock();
        s.faults
            .errors
            .entry(api)
            .or_default()
            .extend(errors.iter().copied());
    }

    /// Delays every response to `api` by `delay` (zero to stop).
    pub fn delay(&self, api: ApiKey, delay: Duration) {
        let mut s = self.shared.lock();
        if delay.is_zero() {
            s.faults.delays.remove(&api);
        } else {
            s.faults.delays.insert(api, delay);
        }
    }

    /// Delays every response of broker `node` by `delay` (a round-trip
    /// time; zero to stop).
    pub fn broker_delay(&self, node: i32, delay: Duration) {
        let mut s = self.shared.lock();
        if let Some(b) = s.brokers.iter_mut().find(|b| b.id == node) {
            b.delay = delay;
        }
    }

    /// Closes the connection, without answering, on each of the next
    /// `count` requests of `api`.
    pub fn drop_connection_on(&self, api: ApiKey, count: usize) {
        *self.shared.lock().faults.drops.entry(api).or_default() += count;
    }

    /// How many requests of `api` the brokers received so far (answered,
    /// failed or dropped).
    pub fn request_count(&self, api: ApiKey) -> usize {
        self.shared
            .lock()
            .faults
            .seen
            .get(&api)
            .copied()
            .unwrap_or(0)
    }

    /// How many SASL authentications succeeded so far, re-authentications
    /// (KIP-368) included.
    pub fn authentications(&self) -> usize {
        self.shared
            .authentications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Removes every fault injected for `api`.
    pub fn clear_faults(&self, api: ApiKey) {
        let mut s = self.shared.lock();
        s.faults.errors.remove(&api);
        s.faults.delays.remove(&api);
        s.faults.drops.remove(&api);
    }

    /// Takes broker `node` down: closes its connections and its listener,
    /// so that connecting is refused once this returns. Its partitions keep
    /// it as leader and are unavailable until [`broker_up`](Self::broker_up).
    pub async fn broker_down(&self, node: i32) {
        let task = {
            let mut handles = self.handles();
            let Some(h) = handles.get_mut((node - 1) as usize) else {
                return;
            };
            h.up.send_replace(false);
            h.listener.take()
        };
        if let Some(task) = task {
            task.abort();
            // The listener is closed when the aborted task is dropped.
            let _ = task.await;
        }
        if let Some(b) = self.shared.lock().brokers.iter_mut().find(|b| b.id == node) {
            b.up = false;
        }
        tracing::info!(node, "broker down");
    }

    /// Brings broker `node` back on its old port.
    ///
    /// # Errors
    /// When the port cannot be bound again.
    pub fn broker_up(&self, node: i32) -> std::io::Result<()> {
        let mut handles = self.handles();
        let Some(h) = handles.get_mut((node - 1) as usize) else {
            return Ok(());
        };
        if h.listener.is_some() {
            return Ok(());
        }
        let listener = {
            let _enter = self.runtime.enter();
            server::bind(h.addr)?
        };
        h.up.send_replace(true);
        h.listener = Some(self.runtime.spawn(server::accept_loop(
            self.shared.clone(),
            node,
            listener,
            h.up.subscribe(),
        )));
        if let Some(b) = self.shared.lock().brokers.iter_mut().find(|b| b.id == node) {
            b.up = true;
        }
        tracing::info!(node, "broker up");
        Ok(())
    }

    /// Makes `node` the leader of a partition (bumping its leader epoch);
    /// requests to the old leader get `NOT_LEADER_OR_FOLLOWER`.
    ///
    /// # Errors
    /// `UNKNOWN_TOPIC_OR_PARTITION`, or `BROKER_NOT_AVAILABLE` for an unknown node.
    pub fn move_leader(&self, topic: &str, partition: i32, node: i32) -> Result<(), ErrorCode> {
        let mut s = self.shared.lock();
        if s.broker(node).is_none() {
            return Err(ErrorCode::BROKER_NOT_AVAILABLE);
        }
        let p = s
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(partition as usize))
            .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?;
        p.leader = node;
        p.leader_epoch += 1;
        if !p.replicas.contains(&node) {
            p.replicas.insert(0, node);
        }
        Ok(())
    }

    /// Makes `node` the coordinator of `group`; group requests to the old
    /// one get `NOT_COORDINATOR`.
    pub fn move_group_coordinator(&self, group: &str, node: i32) {
        self.shared
            .lock()
            .coordinators
            .insert((CoordinatorKind::Group, group.to_string()), node);
    }

    /// Makes `node` the coordinator of transactional id `txn_id`.
    pub fn move_txn_coordinator(&self, txn_id: &str, node: i32) {
        self.shared
            .lock()
            .coordinators
            .insert((CoordinatorKind::Transaction, txn_id.to_string()), node);
    }

    /// The broker coordinating `group`.
    pub fn group_coordinator(&self, group: &str) -> i32 {
        self.shared
            .lock()
            .coordinator(CoordinatorKind::Group, group)
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.ticker.abort();
        for h in self.handles().iter_mut() {
            h.up.send_replace(false);
            if let Some(t) = h.listener.take() {
                t.abort();
            }
        }
    }
}

/// Starts a fake cluster of `brokers` brokers, prints its bootstrap
/// address on stdout, and serves until the process is interrupted (the
/// body of a `kpax fake --brokers N` command). `topics` are created first,
/// each as `(name, partitions)`.
///
/// # Errors
/// When a listener cannot be bound.
pub async fn run_until_ctrl_c(
    options: FakeOptions,
    topics: &[(String, i32)],
) -> std::io::Result<()> {
    let cluster = FakeCluster::with_options(options).await?;
    for (name, partitions) in topics {
        if let Err(e) = cluster.create_topic(name, *partitions) {
            eprintln!("topic {name}: {e:?}");
        }
    }
    println!("{}", cluster.bootstrap());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
