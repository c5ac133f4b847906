//! The consumer: fetches ahead into bounded per-partition buffers and hands
//! out records in order per partition; joins consumer groups and commits
//! offsets.
//!
//! ```text
//! fetcher -> FetchRequest per leader -> FetchResponse (records as Bytes)
//!   -> records::Batches (zero-copy) -> per-partition buffer (one byte budget)
//!   -> recv() / stream() -> commit(offsets) -> group coordinator
//! ```
//!
//! One byte budget bounds every buffered record: a fetch is only sent once
//! its maximum size is reserved, and the reservation shrinks to what came
//! back and is released as records are handed out.

pub mod assignor;
mod budget;
mod config;
mod fetch_session;
mod fetcher;
mod group;
mod partitions;
pub mod protocol;
mod rebalance;
mod stats;

/// The partition key, [`crate::TopicPartition`] (re-exported here).
pub use crate::topic_partition::TopicPartition;
pub use assignor::{
    Assignor, CooperativeStickyAssignor, MemberSubscription, RangeAssignor, RebalanceProtocol,
    RoundRobinAssignor, StickyAssignor,
};
pub use config::{ConsumerConfig, GroupProtocol, IsolationLevel, OffsetReset};
pub use rebalance::{ListenerFuture, RebalanceListener};
pub use stats::ConsumerStats;

pub(crate) use group::new_member_id;

use crate::broker::Lane;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use kpax_proto::records::Record;
use partitions::{Part, PartitionTable};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A record read from a partition: its topic and partition, and the
/// [`Record`] itself, which it dereferences to (`r.offset`, `r.timestamp`,
/// `r.key()`, `r.value()`, `r.headers()`, `r.value_bytes()`, ...).
///
/// The record shares the fetched response's buffer: one reference count
/// per record, no copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record: offset, timestamp, key, value and headers.
    pub record: Record,
}

impl ConsumerRecord {
    /// A record of `topic`-`partition`.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32, record: Record) -> Self {
        ConsumerRecord {
            topic: topic.into(),
            partition,
            record,
        }
    }
}

impl std::ops::Deref for ConsumerRecord {
    type Target = Record;

    fn deref(&self) -> &Record {
        &self.record
    }
}

/// Where a newly assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The earliest offset in the log.
    Earliest,
    /// The end of the log.
    Latest,
    /// This offset.
    Offset(i64),
    /// The first offset whose timestamp is at or after this one (ms).
    Timestamp(i64),
    /// The group's committed offset, else the reset policy.
    Committed,
}

#[derive(Default)]
pub(crate) struct State {
    /// The assigned partitions, their positions and buffers.
    pub parts: PartitionTable,
    /// A fatal error for the next `recv`.
    pub error: Option<Error>,
}

pub(crate) struct Shared {
    pub cluster: Cluster,
    pub config: ConsumerConfig,
    /// This consumer's own connections to its group coordinator: one
    /// member's JoinGroup, held until the group rebalances, must not hold
    /// up another member's Heartbeat (see [`Lane::Member`]).
    pub group_lane: Lane,
    /// This consumer's own fetch connections: another consumer's long-poll
    /// Fetch must not hold up this one's.
    pub fetch_lane: Lane,
    pub state: Mutex<State>,
    /// The one memory bound: fetches in flight and buffered records.
    pub memory: budget::Budget,
    /// Records became available (or an error).
    pub records: Notify,
    /// The fetcher should look again.
    pub wake: Notify,
    pub closed: AtomicBool,
    pub group: Mutex<Option<group::Membership>>,
    /// Source of partition epochs, unique over the consumer's life, so a
    /// fetch answer can never land in a later assignment of its partition.
    pub epochs: std::sync::atomic::AtomicU64,
    /// The fetch session id per broker node (0: sessionless), as the
    /// fetcher last left it.
    pub fetch_sessions: Mutex<BTreeMap<i32, i32>>,
    /// What [`Consumer::stats`] reports.
    pub counters: stats::Counters,
}

impl Shared {
    pub(crate) fn new_part(&self, start: StartAt) -> Part {
        Part::new(start, self.next_epoch())
    }

    /// A partition epoch not used before.
    pub(crate) fn next_epoch(&self) -> u64 {
        self.epochs.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A Kafka consumer; cheap to clone (clones share buffers and membership).
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
/// use kpax::consumer::{Consumer, ConsumerConfig, OffsetReset};
/// use kpax::{Producer, ProducerConfig, ProducerRecord};
/// let producer = Producer::new(cluster.clone(), ProducerConfig::default())?;
/// producer.send(ProducerRecord::new("events", "hello")).await?.await?;
///
/// let consumer = Consumer::new(cluster, ConsumerConfig::default()
///     .with_group_id("billing")
///     .with_auto_offset_reset(OffsetReset::Earliest))?;
/// consumer.subscribe(["events"])?;
/// let record = consumer.recv().await?;
/// assert_eq!(record.value(), Some(&b"hello"[..]));
/// consumer.commit().await?; // the group resumes after this record
/// consumer.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Consumer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Consumer {
    /// A consumer over `cluster`; its fetcher runs on the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::Config`] for a buffer smaller than one partition fetch.
    pub fn new(cluster: Cluster, config: ConsumerConfig) -> Result<Consumer> {
        if config.buffer_memory < config.partition_max_bytes as usize {
            return Err(Error::Config(
                "buffer_memory must hold at least partition_max_bytes".into(),
            ));
        }
        let counters =
            stats::Counters::new(&cluster.config().client_id, config.group_id.as_deref());
        let shared = Arc::new(Shared {
            counters,
            memory: budget::Budget::new(config.buffer_memory),
            cluster,
            config,
            group_lane: Lane::new_member(),
            fetch_lane: Lane::new_member(),
            state: Mutex::new(State::default()),
            records: Notify::new(),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            group: Mutex::new(None),
            epochs: std::sync::atomic::AtomicU64::new(1),
            fetch_sessions: Mutex::new(BTreeMap::new()),
        });
        tokio::spawn(fetcher::run(Arc::downgrade(&shared)));
        Ok(Consumer { shared })
    }

    /// Assigns partitions by hand (no group), each starting at `start`.
    /// Partitions already assigned keep their position.
    pub fn assign(&self, partitions: impl IntoIterator<Item = TopicPartition>, start: StartAt) {
        {
            let mut st = self.shared.lock();
            for tp in partitions {
                st.parts.assign(tp, || self.shared.new_part(start));
            }
        }
        self.shared.wake.notify_one();
    }

    /// Removes partitions from the assignment (their buffers are dropped).
    pub fn unassign(&self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let mut st = self.shared.lock();
        for tp in partitions {
            st.parts.remove(&tp);
        }
    }

    /// The partitions assigned now.
    pub fn assignment(&self) -> BTreeSet<TopicPartition> {
        self.shared.lock().parts.assigned()
    }

    /// Joins the consumer group (`group_id` must be set) subscribed to `topics`.
    ///
    /// # Errors
    /// [`Error::Config`] without a group id, or when already subscribed.
    pub fn subscribe(&self, topics: impl IntoIterator<Item = impl Into<String>>) -> Result<()> {
        let Some(group_id) = self.shared.config.group_id.clone() else {
            return Err(Error::Config("subscribe needs a group_id".into()));
        };
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        group::start(&self.shared, group_id, group::Selection::Topics(topics))
    }

    /// Joins the consumer group (`group_id` must be set) subscribed to every
    /// non-internal topic whose whole name matches the regular expression
    /// `include` and not `exclude` (the whitelist and blacklist of the Go
    /// client). Topics created later are picked up at the next metadata
    /// check (`metadata_check_interval`), which rebalances the group.
    ///
    /// # Errors
    /// [`Error::Config`] without a group id, for an invalid pattern, or when
    /// already subscribed.
    pub fn subscribe_pattern(&self, include: &str, exclude: Option<&str>) -> Result<()> {
        let Some(group_id) = self.shared.config.group_id.clone() else {
            return Err(Error::Config("subscribe needs a group_id".into()));
        };
        let whole = |p: &str| {
            regex::Regex::new(&format!("^(?:{p})$"))
                .map_err(|e| Error::Config(format!("bad topic pattern {p:?}: {e}")))
        };
        let include = whole(include)?;
        let exclude = exclude.map(whole).transpose()?;
        group::start(
            &self.shared,
            group_id,
            group::Selection::Pattern { include, exclude },
        )
    }

    /// Moves a partition's position; buffered and in-flight records of it are dropped.
    pub fn seek(&self, topic: &str, partition: i32, start: StartAt) {
        self.shared
            .lock()
            .parts
            .seek(&TopicPartition::new(topic, partition), start, || {
                self.shared.next_epoch()
            });
        self.shared.wake.notify_one();
    }

    /// Stops fetching and handing out records of these partitions (their
    /// positions stay).
    pub fn pause(&self, partitions: &[TopicPartition]) {
        self.shared.lock().parts.set_paused(partitions, true);
    }

    /// Resumes paused partitions.
    pub fn resume(&self, partitions: &[TopicPartition]) {
        self.shared.lock().parts.set_paused(partitions, false);
        self.shared.wake.notify_one();
        self.shared.records.notify_waiters();
    }

    /// The configuration the consumer was built with.
    pub fn config(&self) -> &ConsumerConfig {
        &self.shared.config
    }

    /// The next offset to be handed out per assigned partition (known ones).
    pub fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        self.shared.lock().parts.positions()
    }

    /// The fetch session (KIP-227) id per broker node the consumer fetched
    /// from: 0 where the broker keeps no session for it (fetches are full).
    pub fn fetch_sessions(&self) -> BTreeMap<i32, i32> {
        self.shared
            .fetch_sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A snapshot of the consumer's statistics: records and bytes
    /// fetched, fetch latency per broker, records handed out, rebalances,
    /// commits and their latency, and the lag of each assigned partition.
    /// The same figures go to the `metrics` facade ([`crate::metrics`]).
    pub fn stats(&self) -> ConsumerStats {
        let lag = self.shared.lock().parts.lags();
        self.shared
            .counters
            .snapshot(self.buffered_bytes() as u64, lag)
    }

    /// Bytes of records buffered now (and reserved by fetches in flight):
    /// wire bytes, plus what compressed batches decompressed to.
    pub fn buffered_bytes(&self) -> usize {
        self.shared.memory.used()
    }

    /// Hands out up to `max` buffered records to `sink`, round-robin over
    /// the partitions with records, in order within each partition.
    /// Returns how many, or a pending fatal error (before any record).
    fn take(&self, max: usize, sink: impl FnMut(ConsumerRecord)) -> Result<usize> {
        let n = self.take_locked(max, sink)?;
        self.shared.counters.consumed(n as u64);
        Ok(n)
    }

    fn take_locked(&self, max: usize, sink: impl FnMut(ConsumerRecord)) -> Result<usize> {
        let mut st = self.shared.lock();
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        Ok(st
            .parts
            .take(max, &self.shared.counters.meters, &self.shared.wake, sink))
    }

    /// The next record (round-robin over partitions, in order within each).
    ///
    /// # Errors
    /// A fatal fetch error (e.g. out of range with no reset policy), or
    /// [`Error::ConsumerClosed`] after close.
    pub async fn recv(&self) -> Result<ConsumerRecord> {
        // A record buffered already is taken without registering for a
        // wake-up (two more locks per record).
        let mut got = None;
        self.take(1, |r| got = Some(r))?;
        if let Some(r) = got {
            return Ok(r);
        }
        loop {
            let notified = self.shared.records.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut got = None;
            self.take(1, |r| got = Some(r))?;
            if let Some(r) = got {
                return Ok(r);
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(Error::ConsumerClosed);
            }
            notified.await;
        }
    }

    /// The next batch: waits for at least one record, then takes every
    /// buffered record up to `max` without waiting more (round-robin over
    /// partitions, in order within each). Commit it with
    /// [`Consumer::commit_records`] once processed.
    ///
    /// # Errors
    /// As [`Consumer::recv`].
    pub async fn recv_batch(&self, max: usize) -> Result<Vec<ConsumerRecord>> {
        let max = max.max(1);
        let mut out = Vec::new();
        self.take(max, |r| out.push(r))?;
        if !out.is_empty() {
            return Ok(out);
        }
        loop {
            let notified = self.shared.records.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut out = Vec::new();
            self.take(max, |r| out.push(r))?;
            if !out.is_empty() {
                return Ok(out);
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(Error::ConsumerClosed);
            }
            notified.await;
        }
    }

    /// Batches of up to `max` records as a stream (never ends; errors are
    /// items).
    pub fn batches(
        &self,
        max: usize,
    ) -> impl futures_core::Stream<Item = Result<Vec<ConsumerRecord>>> + Send + 'static {
        futures_util::stream::unfold(self.clone(), move |c| async move {
            let r = c.recv_batch(max).await;
            Some((r, c))
        })
    }

    /// Commits a processed batch (the Go peer's per-batch commit): for each
    /// partition, the highest offset among `records` plus one. Partitions
    /// the member no longer owns are skipped.
    ///
    /// # Errors
    /// As [`Consumer::commit`].
    pub async fn commit_records(&self, records: &[ConsumerRecord]) -> Result<()> {
        let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for r in records {
            let e = next
                .entry(TopicPartition::new(&*r.topic, r.partition))
                .or_insert(r.offset + 1);
            *e = (*e).max(r.offset + 1);
        }
        self.commit_offsets(next).await
    }

    /// Records as a stream; errors are items. It ends once the consumer
    /// is closed ([`Consumer::close`]) and the records buffered before
    /// were taken.
    pub fn stream(
        &self,
    ) -> impl futures_core::Stream<Item = Result<ConsumerRecord>> + Send + 'static {
        futures_util::stream::unfold(self.clone(), |c| async move {
            match c.recv().await {
                Err(_) if c.shared.closed.load(Ordering::Acquire) => None,
                r => Some((r, c)),
            }
        })
    }

    /// Commits the current positions of every assigned partition.
    ///
    /// # Errors
    /// No group, or the commit's error (per partition errors are summed up
    /// in the first one).
    pub async fn commit(&self) -> Result<()> {
        let positions = self.positions();
        group::commit(&self.shared, positions).await
    }

    /// Commits the given next-offsets (e.g. a processed batch's highest
    /// offset + 1 per partition); partitions not assigned are skipped.
    ///
    /// # Errors
    /// As [`Consumer::commit`].
    pub async fn commit_offsets(&self, offsets: BTreeMap<TopicPartition, i64>) -> Result<()> {
        let owned = self.assignment();
        let offsets = offsets
            .into_iter()
            .filter(|(tp, _)| owned.contains(tp))
            .collect();
        group::commit(&self.shared, offsets).await
    }

    /// The consumer group as the transactional producer's
    /// `send_offsets_to_transaction` needs it (KIP-447): group id, the
    /// current generation and member id, and the static instance id.
    /// `None` without a group (`subscribe` not called). Before the first
    /// join completes the generation is -1 and the member id empty; take
    /// it after records of the current assignment arrived.
    pub fn group_metadata(&self) -> Option<crate::transaction::ConsumerGroupMetadata> {
        let (group_id, generation_id, member_id) = group::current_member(&self.shared)?;
        Some(crate::transaction::ConsumerGroupMetadata {
            group_id,
            generation_id,
            member_id,
            group_instance_id: self.shared.config.group_instance_id.clone(),
        })
    }

    /// The group protocol the current membership joined with:
    /// [`GroupProtocol::Consumer`] once a ConsumerGroupHeartbeat was
    /// answered with a member epoch, [`GroupProtocol::Classic`] otherwise
    /// (also after falling back to it where the broker does not offer the
    /// consumer protocol). `None` without a group.
    pub fn group_protocol(&self) -> Option<GroupProtocol> {
        group::membership(&self.shared).map(|m| {
            if m.consumer_protocol {
                GroupProtocol::Consumer
            } else {
                GroupProtocol::Classic
            }
        })
    }

    /// The group's committed offsets for these partitions (-1: none).
    ///
    /// # Errors
    /// No group, coordinator or network errors.
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        group::fetch_committed(&self.shared, partitions).await
    }

    /// Stops handing out records, then (with auto commit on) commits the
    /// positions, tells the rebalance listener its partitions are revoked,
    /// leaves the group and stops fetching.
    pub async fn close(&self) {
        self.shared.lock().parts.pause_all();
        if !group::revoke_on_close(&self.shared).await && self.shared.config.enable_auto_commit {
            let _ = self.commit().await;
        }
        group::leave(&self.shared).await;
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        self.shared.records.notify_waiters();
        self.shared.lock().parts.clear();
        for broker in self.shared.cluster.brokers() {
            broker.release_lane(self.shared.group_lane).await;
            broker.release_lane(self.shared.fetch_lane).await;
        }
    }
}
