//! The cluster: a metadata manager that knows which broker leads each
//! partition and which coordinates each group or transactional id.
//!
//! Metadata is loaded lazily, on the first lookup that misses, and again when
//! it is older than `metadata_max_age`; entries that errors prove stale are
//! dropped, so the next lookup reloads them. Concurrent lookups that miss
//! share one metadata request.

mod metadata;

pub use metadata::{PartitionMeta, TopicMeta};

use crate::broker::{Broker, SendOptions};
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use kpax_proto::generated::metadata::MetadataRequestTopic;
use kpax_proto::generated::{ErrorCode, FindCoordinatorRequest, MetadataRequest, MetadataResponse};
use kpax_proto::message::{Message, Request};
use kpax_proto::wire::Uuid;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// What a coordinator coordinates (FindCoordinator's key type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoordinatorKind {
    /// A consumer group.
    Group,
    /// A transactional id.
    Transaction,
}

impl CoordinatorKind {
    fn key_type(self) -> i8 {
        match self {
            CoordinatorKind::Group => 0,
            CoordinatorKind::Transaction => 1,
        }
    }
}

/// A handle to a cluster; cheap to clone.
///
/// Nothing connects until the first request; metadata is fetched lazily
/// and refreshed when errors say it is stale.
///
/// # Example
///
/// On an in-process fake cluster (use your brokers' addresses instead):
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fake = kpax_fake::FakeCluster::new(1).await?;
/// fake.create_topic("events", 3).expect("a new topic");
/// let cluster = kpax::Cluster::new([fake.bootstrap()], kpax::ClientConfig::default())?;
/// assert_eq!(cluster.partitions("events").await?, vec![0, 1, 2]);
/// let leader = cluster.leader("events", 1).await?; // a kpax::Broker
/// println!("events-1 is led by {}", leader.addr());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<ClientConfig>,
    bootstrap: Vec<Broker>,
    state: RwLock<State>,
    refresh: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

#[derive(Default)]
struct State {
    brokers: HashMap<i32, Broker>,
    /// Shared, so a lookup on the produce path costs a reference count.
    topics: HashMap<String, Arc<TopicMeta>>,
    /// Topics that lookups have asked for; each refresh covers them all.
    tracked: BTreeSet<String>,
    /// What the last refresh covered (`None`: every topic).
    last_covered: Option<BTreeSet<String>>,
    fetched: Option<Instant>,
    coordinators: HashMap<(CoordinatorKind, String), i32>,
    cluster_id: Option<String>,
    controller_id: Option<i32>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap", &self.inner.bootstrap)
            .finish()
    }
}

fn parse_addr(s: &str) -> Result<String> {
    let s = s.trim();
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| Error::Config(format!("broker address {s:?} is not host:port")))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(Error::Config(format!(
            "broker address {s:?} is not host:port"
        )));
    }
    Ok(s.to_string())
}

impl Cluster {
    /// A cluster reached through `bootstrap` (`host:port` items; a single
    /// string may hold several separated by commas). Nothing is opened yet.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty list or an address that is not `host:port`.
    pub fn new<I, S>(bootstrap: I, config: ClientConfig) -> Result<Cluster>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let config = Arc::new(config);
        let mut addrs = Vec::new();
        for item in bootstrap {
            for a in item.as_ref().split(',').filter(|a| !a.trim().is_empty()) {
                addrs.push(parse_addr(a)?);
            }
        }
        if addrs.is_empty() {
            return Err(Error::Config("no bootstrap brokers given".into()));
        }
        Ok(Cluster {
            inner: Arc::new(Inner {
                bootstrap: addrs
                    .into_iter()
                    .map(|a| Broker::new(a, None, config.clone()))
                    .collect(),
                config,
                state: RwLock::new(State::default()),
                refresh: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
            }),
        })
    }

    /// The client settings.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.inner.config
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Every broker the metadata lists, by node id.
    pub fn brokers(&self) -> Vec<Broker> {
        let mut v: Vec<Broker> = self.read().brokers.values().cloned().collect();
        v.sort_by_key(|b| b.node_id());
        v
    }

    /// The broker with `node_id`, if the metadata lists it.
    pub fn broker(&self, node_id: i32) -> Option<Broker> {
        self.read().brokers.get(&node_id).cloned()
    }

    /// The cached metadata of every topic known now (after
    /// `refresh(None)`: every topic in the cluster), by name.
    pub fn cached_topics(&self) -> Vec<Arc<TopicMeta>> {
        self.read().topics.values().cloned().collect()
    }

    /// Topic ids and names as the cached metadata knows them (topics
    /// without an id, before Kafka 2.8, are left out): by id, and by name.
    pub(crate) fn topic_ids(&self) -> (BTreeMap<Uuid, String>, BTreeMap<String, Uuid>) {
        let mut by_id = BTreeMap::new();
        let mut by_name = BTreeMap::new();
        for t in self.cached_topics() {
            if let Some(n) = &t.name {
                if t.topic_id != Uuid::ZERO {
                    by_id.insert(t.topic_id, n.clone());
                    by_name.insert(n.clone(), t.topic_id);
                }
            }
        }
        (by_id, by_name)
    }

    /// An assignment given by topic id (ConsumerGroupHeartbeat,
    /// ShareGroupHeartbeat), by topic name. Ids the metadata does not know
    /// yet are looked up once more (refreshing `topics`), and left out if
    /// still unknown: the next assignment brings them again.
    pub(crate) async fn assignment_by_name(
        &self,
        assigned: &[(Uuid, Vec<i32>)],
        topics: &[String],
    ) -> BTreeSet<crate::topic_partition::TopicPartition> {
        let (mut by_id, _) = self.topic_ids();
        if assigned.iter().any(|(id, _)| !by_id.contains_key(id)) {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            if let Err(e) = self.refresh(Some(&names)).await {
                tracing::debug!(error = %e, "metadata refresh for assigned topic ids failed");
            }
            by_id = self.topic_ids().0;
        }
        let mut out = BTreeSet::new();
        for (id, ps) in assigned {
            match by_id.get(id) {
                Some(name) => out.extend(
                    ps.iter()
                        .map(|p| crate::topic_partition::TopicPartition::new(name.as_str(), *p)),
                ),
                None => {
                    tracing::warn!(topic_id = ?id, "assigned a topic the metadata does not know")
                }
            }
        }
        out
    }

    /// The cluster id and controller from the last metadata, if known.
    pub fn cluster_id(&self) -> Option<String> {
        self.read().cluster_id.clone()
    }

    /// The controller's node id from the last metadata, if known.
    pub fn controller_id(&self) -> Option<i32> {
        self.read().controller_id
    }

    /// Some broker to ask cluster-wide questions: known brokers first, then
    /// the bootstrap list.
    fn candidates(&self) -> Vec<Broker> {
        let mut v = self.brokers();
        v.extend(self.inner.bootstrap.iter().cloned());
        v
    }

    /// Sends `req` to the first broker that answers (metadata brokers, then
    /// the bootstrap list).
    ///
    /// # Errors
    /// The last broker's error when none answers.
    pub async fn send_any<R: Request + Sync>(&self, req: &R) -> Result<R::Response> {
        let mut last = None;
        for b in self.candidates() {
            match b.send(req).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_retriable() || matches!(e, Error::ClosedOnRequest { .. }) => {
                    tracing::debug!(broker = b.addr(), error = %e, "trying the next broker");
                    if let Some(id) = b.node_id() {
                        self.broker_down(id);
                    }
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("no brokers".into())))
    }

    /// Reloads metadata for `topics` (plus every topic looked up before);
    /// `None` asks for every topic. Concurrent calls share one request.
    ///
    /// # Errors
    /// When no broker answers.
    pub async fn refresh(&self, topics: Option<&[&str]>) -> Result<()> {
        let seen = self.inner.generation.load(Ordering::Acquire);
        if let Some(ts) = topics {
            let mut s = self.write();
            for t in ts {
                s.tracked.insert(t.to_string());
            }
        }
        let _one = self.inner.refresh.lock().await;
        if self.inner.generation.load(Ordering::Acquire) != seen {
            // Someone refreshed while we waited: done if it covered us.
            let s = self.read();
            let covered = match (&s.last_covered, topics) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(c), Some(ts)) => ts.iter().all(|t| c.contains(*t)),
            };
            // ...and if what it brought is still cached (an error may have
            // dropped it since).
            let cached = topics.is_none_or(|ts| ts.iter().all(|t| s.topics.contains_key(*t)));
            if covered && cached {
                return Ok(());
            }
        }
        let wanted: Option<BTreeSet<String>> = topics.map(|_| self.read().tracked.clone());
        let broker = self.candidates();
        let mut last = None;
        for b in broker {
            match self.fetch_metadata(&b, wanted.as_ref()).await {
                Ok(resp) => {
                    self.apply(resp, wanted);
                    self.inner.generation.fetch_add(1, Ordering::AcqRel);
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(broker = b.addr(), error = %e, "metadata request failed");
                    if let Some(id) = b.node_id() {
                        self.broker_down(id);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("no brokers".into())))
    }

    async fn fetch_metadata(
        &self,
        b: &Broker,
        topics: Option<&BTreeSet<String>>,
    ) -> Result<MetadataResponse> {
        let version = b.version_for::<MetadataRequest>().await?;
        let mut req = MetadataRequest::default();
        req.topics = match topics {
            Some(ts) => Some(
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(t.as_str().into())))
                    .collect(),
            ),
            // v0 has no null: an empty list means every topic.
            None if version == 0 => Some(Vec::new()),
            None => None,
        };
        if version >= 4 {
            req.allow_auto_topic_creation = self.inner.config.allow_auto_topic_creation;
        }
        b.send_with(&req, SendOptions::version(version)).await
    }

    fn apply(&self, resp: MetadataResponse, covered: Option<BTreeSet<String>>) {
        let mut s = self.write();
        for mb in &resp.brokers {
            let addr = format!("{}:{}", mb.host, mb.port);
            let same = s.brokers.get(&mb.node_id).is_some_and(|b| b.addr() == addr);
            if !same {
                s.brokers.insert(
                    mb.node_id,
                    Broker::new(addr, Some(mb.node_id), self.inner.config.clone()),
                );
            }
        }
        let listed: BTreeSet<i32> = resp.brokers.iter().map(|b| b.node_id).collect();
        s.brokers.retain(|id, _| listed.contains(id));
        if covered.is_none() {
            s.topics.clear();
        }
        for t in resp.topics {
            let meta = TopicMeta::from_response(&t);
            if let Some(name) = meta.name.clone() {
                s.topics.insert(name, Arc::new(meta));
            }
        }
        s.cluster_id = resp.cluster_id.map(|c| c.to_string());
        s.controller_id = (resp.controller_id >= 0).then_some(resp.controller_id);
        s.fetched = Some(Instant::now());
        s.last_covered = covered;
    }

    fn fresh(&self, s: &State) -> bool {
        s.fetched
            .is_some_and(|t| t.elapsed() < self.inner.config.metadata_max_age)
    }

    /// The metadata of `topic`, loading it when missing or old.
    ///
    /// # Errors
    /// [`Error::Broker`] with the topic's error code (e.g.
    /// UNKNOWN_TOPIC_OR_PARTITION), or a refresh error.
    pub async fn topic(&self, topic: &str) -> Result<Arc<TopicMeta>> {
        for attempt in 0..2 {
            {
                let s = self.read();
                if let Some(t) = s.topics.get(topic) {
                    if self.fresh(&s) && (t.error.is_ok() || attempt == 1) {
                        if !t.error.is_ok() {
                            return Err(Error::Broker {
                                broker: "metadata".into(),
                                api: kpax_proto::generated::ApiKey::Metadata,
                                code: t.error,
                                message: Some(format!("topic {topic}")),
                            });
                        }
                        return Ok(t.clone());
                    }
                }
            }
            if attempt == 0 {
                self.refresh(Some(&[topic])).await?;
            }
        }
        Err(Error::Broker {
            broker: "metadata".into(),
            api: kpax_proto::generated::ApiKey::Metadata,
            code: ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            message: Some(format!("topic {topic} is not in the metadata")),
        })
    }

    /// The leader of `topic`-`partition`, reloading metadata once when it
    /// is not known.
    ///
    /// # Errors
    /// [`Error::NoLeader`] when the partition has no leader or does not
    /// exist; refresh errors.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<Broker> {
        for attempt in 0..2 {
            let t = self.topic(topic).await?;
            let found = t.partition(partition).map(|p| (p.leader, p.error));
            match found {
                Some((leader, _)) if leader >= 0 => {
                    if let Some(b) = self.broker(leader) {
                        return Ok(b);
                    }
                }
                Some((_, code)) if attempt == 1 => {
                    return Err(Error::NoLeader {
                        topic: topic.into(),
                        partition,
                        reason: format!("no leader in metadata ({code})"),
                    })
                }
                None if attempt == 1 => {
                    return Err(Error::NoLeader {
                        topic: topic.into(),
                        partition,
                        reason: format!("the topic has {} partitions", t.partitions.len()),
                    })
                }
                _ => {}
            }
            if attempt == 0 {
                self.write().fetched = None;
            }
        }
        Err(Error::NoLeader {
            topic: topic.into(),
            partition,
            reason: "the leader is not among the known brokers".into(),
        })
    }

    /// The partition ids of `topic`, ascending.
    ///
    /// # Errors
    /// As [`Cluster::topic`].
    pub async fn partitions(&self, topic: &str) -> Result<Vec<i32>> {
        let mut v: Vec<i32> = self
            .topic(topic)
            .await?
            .partitions
            .iter()
            .map(|p| p.partition)
            .collect();
        v.sort_unstable();
        Ok(v)
    }

    /// The coordinator for `key`, asking FindCoordinator when not cached.
    ///
    /// # Errors
    /// [`Error::Broker`] with FindCoordinator's error code (e.g.
    /// COORDINATOR_NOT_AVAILABLE, retriable), or network errors.
    pub async fn coordinator(&self, kind: CoordinatorKind, key: &str) -> Result<Broker> {
        // The read guard must be gone before `broker` reads again: an
        // `if let` scrutinee's guard lives to the end of its block, and a
        // second read behind a waiting writer (another task caching a
        // coordinator) blocks for ever.
        let cached = self
            .read()
            .coordinators
            .get(&(kind, key.to_string()))
            .copied();
        if let Some(b) = cached.and_then(|id| self.broker(id)) {
            return Ok(b);
        }
        let b = self
            .candidates()
            .into_iter()
            .next()
            .expect("bootstrap is never empty");
        let version = match b.version_for::<FindCoordinatorRequest>().await {
            Ok(v) => v,
            Err(_) => {
                // fall back to whichever broker answers
                self.refresh(None).await?;
                let b = self
                    .candidates()
                    .into_iter()
                    .next()
                    .expect("bootstrap is never empty");
                b.version_for::<FindCoordinatorRequest>().await?
            }
        };
        let mut req = FindCoordinatorRequest::default();
        if version >= 4 {
            req.coordinator_keys = vec![key.into()];
        } else {
            req.key = key.into();
        }
        if version >= 1 {
            req.key_type = kind.key_type();
        } else if kind != CoordinatorKind::Group {
            return Err(Error::UnsupportedVersion {
                broker: b.addr().into(),
                api: kpax_proto::generated::ApiKey::FindCoordinator,
                ours: (1, <FindCoordinatorRequest as Message>::MAX_VERSION),
                theirs: None,
            });
        }
        let resp = b.send_with(&req, SendOptions::version(version)).await?;
        let (code, message, node, host, port) = match resp.coordinators.first() {
            Some(c) if version >= 4 => (
                c.error_code,
                c.error_message.clone(),
                c.node_id,
                c.host.clone(),
                c.port,
            ),
            _ => (
                resp.error_code,
                resp.error_message.clone(),
                resp.node_id,
                resp.host.clone(),
                resp.port,
            ),
        };
        if !code.is_ok() {
            return Err(Error::Broker {
                broker: b.addr().into(),
                api: kpax_proto::generated::ApiKey::FindCoordinator,
                code,
                message: message.map(|m| m.to_string()),
            });
        }
        if host.is_empty() {
            return Err(Error::Protocol {
                broker: b.addr().into(),
                reason: format!("FindCoordinator for {key:?} answered without a host"),
            });
        }
        let broker = {
            let mut s = self.write();
            s.coordinators.insert((kind, key.to_string()), node);
            let addr = format!("{host}:{port}");
            match s.brokers.get(&node) {
                Some(b) if b.addr() == addr => b.clone(),
                _ => {
                    let nb = Broker::new(addr, Some(node), self.inner.config.clone());
                    s.brokers.insert(node, nb.clone());
                    nb
                }
            }
        };
        Ok(broker)
    }
}

/// Error codes that prove a partition's leader stale.
fn stale_leader(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NOT_LEADER_OR_FOLLOWER
            | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            | ErrorCode::LEADER_NOT_AVAILABLE
            | ErrorCode::FENCED_LEADER_EPOCH
            | ErrorCode::UNKNOWN_LEADER_EPOCH
    )
}

/// Error codes that prove a coordinator stale.
fn stale_coordinator(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE
    )
}

/// The signals that make what a [`Cluster`] knows stale: the producer,
/// consumer and admin report them as responses come back.
impl Cluster {
    /// A partition-level error code came back for `topic`-`partition`:
    /// forget the leader it proves stale (and the topic, for
    /// `UNKNOWN_TOPIC_OR_PARTITION`), so that the next request looks it up.
    pub fn partition_error(&self, topic: &str, partition: i32, code: ErrorCode) {
        if stale_leader(code) {
            let mut s = self.write();
            if let Some(t) = s.topics.get_mut(topic) {
                if t.partition(partition).is_some_and(|p| p.leader >= 0) {
                    for p in Arc::make_mut(t)
                        .partitions
                        .iter_mut()
                        .filter(|p| p.partition == partition)
                    {
                        p.leader = -1;
                    }
                }
            }
            if code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION {
                s.topics.remove(topic);
            }
            tracing::debug!(topic, partition, %code, "leader forgotten");
        }
    }

    /// A coordinator-level error code came back for `key`: forget the
    /// coordinator it proves stale.
    pub fn coordinator_error(&self, kind: CoordinatorKind, key: &str, code: ErrorCode) {
        if stale_coordinator(code) {
            self.write().coordinators.remove(&(kind, key.to_string()));
            tracing::debug!(?kind, key, %code, "coordinator forgotten");
        }
    }

    /// Requests to broker `node_id` failed at the network level: forget it
    /// as leader and coordinator until metadata says otherwise.
    pub fn broker_down(&self, node_id: i32) {
        let mut s = self.write();
        for t in s.topics.values_mut() {
            if !t.partitions.iter().any(|p| p.leader == node_id) {
                continue;
            }
            for p in Arc::make_mut(t)
                .partitions
                .iter_mut()
                .filter(|p| p.leader == node_id)
            {
                p.leader = -1;
            }
        }
        s.coordinators.retain(|_, id| *id != node_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_addresses_are_checked() {
        assert!(Cluster::new(["a:1,b:2"], ClientConfig::default()).is_ok());
        assert!(matches!(
            Cluster::new(Vec::<String>::new(), ClientConfig::default()),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Cluster::new(["nohost"], ClientConfig::default()),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Cluster::new(["h:99999"], ClientConfig::default()),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn which_errors_invalidate() {
        assert!(stale_leader(ErrorCode::NOT_LEADER_OR_FOLLOWER));
        assert!(stale_leader(ErrorCode::FENCED_LEADER_EPOCH));
        assert!(!stale_leader(ErrorCode::REQUEST_TIMED_OUT));
        assert!(stale_coordinator(ErrorCode::NOT_COORDINATOR));
        assert!(stale_coordinator(ErrorCode::COORDINATOR_NOT_AVAILABLE));
        assert!(!stale_coordinator(ErrorCode::REQUEST_TIMED_OUT));
    }
}
