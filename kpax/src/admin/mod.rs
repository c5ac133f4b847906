//! The admin client: topics, partitions, configs, groups, offsets and the
//! cluster itself.
//!
//! Every request goes where Kafka wants it:
//! - CreateTopics, DeleteTopics, CreatePartitions: the controller when the
//!   metadata names one, else any broker (KRaft brokers forward them);
//! - DescribeConfigs, IncrementalAlterConfigs: the broker itself for a
//!   broker resource, any broker for a topic;
//! - ListOffsets, DeleteRecords: each partition's leader, one request per
//!   leader;
//! - DescribeGroups, DeleteGroups, OffsetFetch, ShareGroupDescribe and
//!   the share-group offset APIs: each group's coordinator;
//! - ListGroups: every broker.
//!
//! Results are per item: a call returns `Err` only when nothing could be
//! asked at all (no broker answers, or the cluster does not serve the API:
//! [`Error::UnsupportedVersion`]); one topic, partition or group failing is
//! an `Err` beside that item while the others carry their results.
//! Retriable item errors (a moved leader or coordinator, a broker that
//! dropped the connection) are retried a few times after the cluster has
//! forgotten what they prove stale.

mod configs;
mod group_offsets;
mod groups;
mod metadata;
mod offsets;
mod share_offsets;
mod topics;

/// The partition key, [`crate::TopicPartition`] (re-exported here).
pub use crate::topic_partition::TopicPartition;
pub use configs::{AlterConfig, ConfigEntry, ConfigResource, ConfigSource};
pub use groups::{
    CommittedOffset, GroupDescription, GroupListing, GroupMember, Groups, PartitionLag,
    ShareGroupDescription, ShareGroupMember,
};
pub use metadata::{BrokerDescription, ClusterDescription};
pub use offsets::{ListedOffset, OffsetSpec};
pub use share_offsets::ShareGroupOffset;
pub use topics::{CreatedTopic, NewTopic};

use crate::broker::{Broker, SendOptions};
use crate::cluster::{Cluster, CoordinatorKind};
use crate::error::{Error, Result};
use kpax_proto::generated::{ApiKey, ErrorCode};
use kpax_proto::message::Request;
use kpax_proto::wire::StrBytes;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinSet;

/// How many times an item with a retriable error is tried in all.
const ATTEMPTS: usize = 3;
/// The wait between attempts.
const BACKOFF: Duration = Duration::from_millis(200);

/// Results keyed by partition, one `Result` per partition.
pub type PartitionResults<T> = BTreeMap<TopicPartition, Result<T>>;

/// Results in the order asked, one `Result` per named item (topic or
/// group).
pub type NamedResults<T> = Vec<(String, Result<T>)>;

/// The admin client over a [`Cluster`]; cheap to clone.
///
/// # Example
///
/// On an in-process fake cluster (use your brokers' addresses instead):
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fake = kpax_fake::FakeCluster::new(1).await?;
/// let cluster = kpax::Cluster::new([fake.bootstrap()], kpax::ClientConfig::default())?;
/// use kpax::admin::{Admin, NewTopic};
/// let admin = Admin::new(cluster);
/// // One result per topic: one failing does not stop the others.
/// for (name, created) in admin.create_topics(&[NewTopic::new("orders", 6, 1)], false).await? {
///     created?;
///     println!("created {name}");
/// }
/// let topics = admin.list_topics().await?;
/// assert!(topics.iter().any(|(name, _)| name == "orders"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Cluster,
    operation_timeout: Duration,
}

impl Admin {
    /// An admin client using `cluster`'s connections and metadata. The
    /// operation timeout (how long the broker may take to create or delete
    /// topics before answering) defaults to three quarters of the request
    /// timeout.
    pub fn new(cluster: Cluster) -> Admin {
        let rt = cluster.config().request_timeout;
        Admin {
            operation_timeout: rt - rt / 4,
            cluster,
        }
    }

    /// Sets the operation timeout sent in CreateTopics, DeleteTopics,
    /// CreatePartitions and DeleteRecords; keep it below the request
    /// timeout so that the broker answers before the client gives up.
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Admin {
        self.operation_timeout = timeout;
        self
    }

    /// The cluster this client uses.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn timeout_ms(&self) -> i32 {
        self.operation_timeout.as_millis().min(i32::MAX as u128) as i32
    }

    /// The known brokers, `first` (when known) at the head; loads metadata
    /// when none are known yet.
    async fn brokers_from(&self, first: Option<i32>) -> Result<Vec<Broker>> {
        let mut brokers = self.cluster.brokers();
        if brokers.is_empty() {
            self.cluster.refresh(Some(&[])).await?;
            brokers = self.cluster.brokers();
        }
        if brokers.is_empty() {
            return Err(Error::Config("the metadata lists no brokers".into()));
        }
        if let Some(id) = first {
            if let Some(i) = brokers.iter().position(|b| b.node_id() == Some(id)) {
                let b = brokers.remove(i);
                brokers.insert(0, b);
            }
        }
        Ok(brokers)
    }

    /// Sends the request `build` makes for the chosen version to the first
    /// of `brokers` that answers.
    async fn send_first<R, F>(
        &self,
        brokers: Vec<Broker>,
        build: F,
    ) -> Result<(Broker, R::Response)>
    where
        R: Request + Sync,
        F: Fn(i16) -> R,
    {
        let mut last = None;
        for b in brokers {
            let attempt = async {
                let v = b.version_for::<R>().await?;
                b.send_with(&build(v), SendOptions::version(v))
                    .await
                    .map(|r| (v, r))
            };
            match attempt.await {
                Ok((_, r)) => return Ok((b, r)),
                Err(e) if connection_failed(&e) => {
                    tracing::debug!(broker = b.addr(), error = %e, "admin: trying the next broker");
                    if let Some(id) = b.node_id() {
                        self.cluster.broker_down(id);
                    }
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("no brokers".into())))
    }

    /// [`Admin::send_first`] starting with the controller. When every item
    /// of the answer says NOT_CONTROLLER (`codes` lists the answer's item
    /// error codes), the controller moved: reload the metadata and ask
    /// again, a few times. (Only when every item says so: an item the old
    /// controller did handle must not be sent twice.)
    async fn send_controller<R, F, C>(&self, build: F, codes: C) -> Result<(Broker, R::Response)>
    where
        R: Request + Sync,
        F: Fn(i16) -> R,
        C: Fn(&R::Response) -> Vec<ErrorCode>,
    {
        const ATTEMPTS: u32 = 4;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if self.cluster.controller_id().is_none() || attempt > 1 {
                // The controller comes with metadata; a failure here is
                // retried below through whichever broker answers.
                let _ = self.cluster.refresh(Some(&[])).await;
            }
            let brokers = self.brokers_from(self.cluster.controller_id()).await?;
            let (broker, resp) = self.send_first(brokers, &build).await?;
            let item_codes = codes(&resp);
            let moved = !item_codes.is_empty()
                && item_codes.iter().all(|c| *c == ErrorCode::NOT_CONTROLLER);
            if !moved || attempt >= ATTEMPTS {
                return Ok((broker, resp));
            }
            tracing::debug!(
                broker = broker.addr(),
                attempt,
                "admin: NOT_CONTROLLER; finding the controller again"
            );
            tokio::time::sleep(crate::broker::backoff(
                attempt,
                Duration::from_millis(100),
                Duration::from_secs(1),
            ))
            .await;
        }
    }

    /// Sends items to where each belongs (its leader or coordinator), one
    /// request per broker, all brokers at once, and retries the items whose
    /// error is retriable. `send` turns one broker's items into one
    /// request and its answer into per-item results; an `Err` from `send`
    /// is that broker's failure, given to each of its items, except
    /// [`Error::UnsupportedVersion`], which fails the whole call.
    async fn fan_out<K, V, X, F, Fut>(
        &self,
        items: Vec<(K, V)>,
        send: F,
    ) -> Result<BTreeMap<K, Result<X>>>
    where
        K: Routed,
        V: Clone + Send + 'static,
        X: Send + 'static,
        F: Fn(Broker, Vec<(K, V)>) -> Fut,
        Fut: Future<Output = Result<Vec<(K, Result<X>)>>> + Send + 'static,
    {
        let mut done: BTreeMap<K, Result<X>> = BTreeMap::new();
        let mut pending = items;
        for attempt in 1..=ATTEMPTS {
            let last = attempt == ATTEMPTS;
            let mut by_broker: BTreeMap<String, (Broker, Vec<(K, V)>)> = BTreeMap::new();
            let mut retry: Vec<(K, V)> = Vec::new();
            for (k, v) in std::mem::take(&mut pending) {
                match k.locate(&self.cluster).await {
                    Ok(b) => by_broker
                        .entry(b.addr().to_string())
                        .or_insert_with(|| (b, Vec::new()))
                        .1
                        .push((k, v)),
                    Err(e) if e.is_retriable() && !last => retry.push((k, v)),
                    Err(e) => {
                        done.insert(k, Err(e));
                    }
                }
            }
            let mut asked: BTreeMap<String, (Broker, BTreeMap<K, V>)> = BTreeMap::new();
            let mut set = JoinSet::new();
            for (addr, (b, its)) in by_broker {
                asked.insert(addr.clone(), (b.clone(), its.iter().cloned().collect()));
                let fut = send(b, its);
                set.spawn(async move { (addr, fut.await) });
            }
            while let Some(joined) = set.join_next().await {
                let (addr, answer) =
                    joined.map_err(|e| Error::Config(format!("admin task failed: {e}")))?;
                let Some((broker, mut its)) = asked.remove(&addr) else {
                    continue;
                };
                match answer {
                    Err(e @ Error::UnsupportedVersion { .. }) => return Err(e),
                    Err(e) => {
                        if connection_failed(&e) {
                            if let Some(id) = broker.node_id() {
                                self.cluster.broker_down(id);
                            }
                        }
                        for (k, v) in its {
                            if e.is_retriable() && !last {
                                retry.push((k, v));
                            } else {
                                done.insert(k, Err(e.clone()));
                            }
                        }
                    }
                    Ok(results) => {
                        for (k, r) in results {
                            let Some(v) = its.remove(&k) else { continue };
                            match r {
                                Err(e) if e.is_retriable() && !last => {
                                    if let Some(code) = e.code() {
                                        k.stale(&self.cluster, code);
                                    }
                                    retry.push((k, v));
                                }
                                r => {
                                    done.insert(k, r);
                                }
                            }
                        }
                        for (k, _) in its {
                            let e = Error::Protocol {
                                broker: addr.clone(),
                                reason: format!("the answer has no result for {k}"),
                            };
                            done.insert(k, Err(e));
                        }
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            pending = retry;
            tokio::time::sleep(BACKOFF).await;
        }
        Ok(done)
    }
}

/// An item that belongs to one broker: a partition (its leader) or a group
/// (its coordinator).
trait Routed: Clone + Ord + fmt::Display + Send + 'static {
    /// The broker to ask about this item.
    fn locate(&self, cluster: &Cluster) -> impl Future<Output = Result<Broker>> + Send;
    /// An error `code` came back for this item: forget what it proves stale.
    fn stale(&self, cluster: &Cluster, code: ErrorCode);
}

impl Routed for TopicPartition {
    fn locate(&self, cluster: &Cluster) -> impl Future<Output = Result<Broker>> + Send {
        cluster.leader(&self.topic, self.partition)
    }
    fn stale(&self, cluster: &Cluster, code: ErrorCode) {
        cluster.partition_error(&self.topic, self.partition, code);
    }
}

/// A consumer group id, routed to its coordinator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GroupId(String);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}", self.0)
    }
}

impl Routed for GroupId {
    fn locate(&self, cluster: &Cluster) -> impl Future<Output = Result<Broker>> + Send {
        cluster.coordinator(CoordinatorKind::Group, &self.0)
    }
    fn stale(&self, cluster: &Cluster, code: ErrorCode) {
        cluster.coordinator_error(CoordinatorKind::Group, &self.0, code);
    }
}

/// The connection broke before an answer came: another broker may answer.
fn connection_failed(e: &Error) -> bool {
    matches!(
        e,
        Error::Network { .. } | Error::ClosedOnRequest { .. } | Error::Protocol { .. }
    )
}

/// `Ok(())` for error code 0, else [`Error::Broker`] with the code and the
/// broker's message.
fn check(broker: &Broker, api: ApiKey, code: ErrorCode, message: Option<&StrBytes>) -> Result<()> {
    if code.is_ok() {
        return Ok(());
    }
    Err(Error::Broker {
        broker: broker.addr().to_string(),
        api,
        code,
        message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
    })
}

/// Gives each of `asked` that `out` lacks (the answer left it out) an
/// [`Error::Protocol`].
fn unanswered<'a, T>(
    broker: &Broker,
    out: &mut PartitionResults<T>,
    asked: impl Iterator<Item = &'a TopicPartition>,
) {
    for tp in asked {
        out.entry(tp.clone()).or_insert_with(|| {
            Err(Error::Protocol {
                broker: broker.addr().to_string(),
                reason: format!("the answer has no result for {tp}"),
            })
        });
    }
}

/// The per-name results for `names`, in the order asked, from what the
/// broker answered; a name the answer left out is an [`Error::Protocol`].
fn in_order<T>(
    broker: &Broker,
    names: &[String],
    mut answered: BTreeMap<String, Result<T>>,
) -> NamedResults<T> {
    names
        .iter()
        .map(|n| {
            let r = answered.remove(n).unwrap_or_else(|| {
                Err(Error::Protocol {
                    broker: broker.addr().to_string(),
                    reason: format!("the answer has no result for {n:?}"),
                })
            });
            (n.clone(), r)
        })
        .collect()
}
