//! Share groups (KIP-932, "queues for Kafka"): many consumers read the same
//! partitions cooperatively; each record is handed to one member at a time
//! and acknowledged one by one.
//!
//! ```text
//! membership: ShareGroupHeartbeat -> the coordinator's assignment (topic ids)
//! fetcher:    ShareFetch per leader in a share session (epoch 0, 1, 2, ...)
//!               -> records + the offsets acquired for this member, each
//!                  range with its delivery count
//!             -> buffer -> recv() -> acknowledge(record, Accept|Release|Reject)
//!             -> acknowledgements ride on the next ShareFetch to that
//!                leader (or a ShareAcknowledge when no records are wanted)
//! ```
//!
//! A record not acknowledged before the broker's acquisition lock expires
//! (`group.share.record.lock.duration.ms`, 30 s by default) goes back to the
//! group and is handed out again with a higher delivery count; past the
//! delivery limit (`group.share.delivery.count.limit`, 5) the broker archives
//! it. With [`AckMode::Implicit`], every record handed out is accepted when
//! the consumer asks for the next ones (as the Java client's implicit mode).
//!
//! Records are acquired only while the application waits for them (a
//! `recv` in progress and nothing buffered), so an idle or stuck member
//! does not lock records away from the others; memory is bounded by
//! `max_records` and `fetch_max_bytes` per leader.

mod acks;
mod fetcher;
mod membership;

pub use acks::AcknowledgeType;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::topic_partition::TopicPartition;
use kpax_proto::records::Record;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// How records are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AckMode {
    /// The application acknowledges each record with
    /// [`ShareConsumer::acknowledge`]; a record it does not acknowledge
    /// comes back after the acquisition lock expires.
    #[default]
    Explicit,
    /// Every record handed out is accepted when the application asks for
    /// more ([`ShareConsumer::recv`], [`ShareConsumer::recv_batch`]), commits
    /// or closes.
    Implicit,
}

/// How many records one ShareFetch acquires (KIP-1206, ShareFetch v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AcquireMode {
    /// Whole record batches, which may exceed `max_records` (the broker's
    /// default: fewer, larger acquisitions).
    #[default]
    BatchOptimized,
    /// At most `max_records` records, splitting batches: the records of a
    /// large batch are shared among members (with brokers before ShareFetch
    /// v2, whole batches).
    RecordLimit,
}

/// A share consumer's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShareConsumerConfig {
    /// The share group.
    pub group_id: String,
    /// Explicit (default) or implicit acknowledgement.
    pub ack_mode: AckMode,
    /// The rack, told to the coordinator.
    pub rack_id: Option<String>,
    /// Longest a leader holds a ShareFetch waiting for records.
    pub fetch_max_wait: Duration,
    /// Bytes a leader gathers before answering early.
    pub fetch_min_bytes: i32,
    /// Most bytes per ShareFetch response.
    pub fetch_max_bytes: i32,
    /// Most records per ShareFetch (the broker may exceed it to the end of
    /// a batch).
    pub max_records: i32,
    /// The heartbeat interval used until the coordinator says its own.
    pub heartbeat_interval: Duration,
    /// Whole batches (default) or at most `max_records` per acquisition.
    pub acquire_mode: AcquireMode,
}

impl ShareConsumerConfig {
    /// Settings for `group_id`, everything else at its default.
    pub fn new(group_id: impl Into<String>) -> ShareConsumerConfig {
        ShareConsumerConfig {
            group_id: group_id.into(),
            ack_mode: AckMode::Explicit,
            rack_id: None,
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            max_records: 500,
            heartbeat_interval: Duration::from_secs(5),
            acquire_mode: AcquireMode::BatchOptimized,
        }
    }

    /// Sets the acknowledgement mode.
    pub fn with_ack_mode(mut self, mode: AckMode) -> Self {
        self.ack_mode = mode;
        self
    }

    /// Sets the most records per ShareFetch.
    pub fn with_max_records(mut self, n: i32) -> Self {
        self.max_records = n;
        self
    }

    /// Sets how many records one ShareFetch acquires.
    pub fn with_acquire_mode(mut self, mode: AcquireMode) -> Self {
        self.acquire_mode = mode;
        self
    }

    /// Sets the longest wait of a ShareFetch.
    pub fn with_fetch_max_wait(mut self, wait: Duration) -> Self {
        self.fetch_max_wait = wait;
        self
    }

    fn validate(&self) -> Result<()> {
        if self.group_id.is_empty() {
            return Err(Error::Config("a share group id must not be empty".into()));
        }
        if self.max_records <= 0 {
            return Err(Error::Config(format!(
                "max_records must be positive, not {}",
                self.max_records
            )));
        }
        if self.fetch_max_bytes <= 0 || self.fetch_min_bytes < 0 {
            return Err(Error::Config(format!(
                "fetch_max_bytes must be positive and fetch_min_bytes not negative ({} and {})",
                self.fetch_max_bytes, self.fetch_min_bytes
            )));
        }
        if self.fetch_max_wait > Duration::from_millis(i32::MAX as u64) {
            return Err(Error::Config("fetch_max_wait is too long".into()));
        }
        Ok(())
    }
}

/// A record acquired by this member of a share group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// How many times the record has been handed out, this time included.
    pub delivery_count: i16,
    /// The record: offset, timestamp, key, value and headers.
    pub record: Record,
}

impl std::ops::Deref for ShareRecord {
    type Target = Record;

    fn deref(&self) -> &Record {
        &self.record
    }
}

/// What the consumer's tasks share.
pub(crate) struct Shared {
    cluster: Cluster,
    config: ShareConsumerConfig,
    member_id: String,
    /// This member's own connections for ShareFetch and ShareAcknowledge.
    lane: crate::broker::Lane,
    state: Mutex<State>,
    /// Records arrived, or an error.
    records: Notify,
    /// The fetcher has something to do (acknowledgements, an empty buffer,
    /// a new assignment, close).
    wake: Notify,
    /// Acknowledgements were answered.
    acked: Notify,
    closed: AtomicBool,
    /// The leaders' share sessions; the fetcher holds the lock for a round.
    sessions: tokio::sync::Mutex<fetcher::Sessions>,
}

#[derive(Default)]
struct State {
    /// The subscribed topics.
    topics: Vec<String>,
    /// The member epoch (0 before joining).
    epoch: i32,
    /// The partitions the coordinator assigned.
    assignment: BTreeSet<TopicPartition>,
    /// Records fetched and not yet handed out.
    buffer: VecDeque<ShareRecord>,
    /// Calls waiting for records: records are acquired only for an
    /// application that asks (an idle one must not lock records away).
    waiting: usize,
    /// Offsets acquired and not yet acknowledged, by partition.
    acquired: BTreeMap<TopicPartition, BTreeSet<i64>>,
    /// Acknowledgements to send (offset -> wire code), by partition.
    pending: BTreeMap<TopicPartition, BTreeMap<i64, i8>>,
    /// Implicit mode: records handed out since the last call.
    handed: Vec<(TopicPartition, i64)>,
    /// Acknowledgements queued so far, and answered so far.
    queued: u64,
    answered: u64,
    /// `queued` when the acknowledgements in flight were taken.
    in_flight_upto: u64,
    /// Acknowledgements the broker refused since the last commit.
    ack_errors: Vec<Error>,
    /// A fatal error for the application.
    error: Option<Error>,
    /// The broker's acquisition lock, as the last ShareFetch said.
    lock_timeout_ms: i32,
}

impl State {
    /// Queues the acknowledgement of an acquired offset; `false` when this
    /// member does not hold it.
    fn queue(&mut self, tp: &TopicPartition, offset: i64, code: i8) -> bool {
        let Some(set) = self.acquired.get_mut(tp) else {
            return false;
        };
        if !set.remove(&offset) {
            return false;
        }
        if set.is_empty() {
            self.acquired.remove(tp);
        }
        self.pending
            .entry(tp.clone())
            .or_default()
            .insert(offset, code);
        self.queued += 1;
        true
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Implicit mode: accepts what was handed out.
    fn accept_handed(&self, st: &mut State) -> bool {
        let handed = std::mem::take(&mut st.handed);
        let any = !handed.is_empty();
        for (tp, offset) in handed {
            st.queue(&tp, offset, AcknowledgeType::Accept.code());
        }
        any
    }
}

/// A parked [`ShareConsumer::recv_batch`]: counted while it waits (also
/// when its future is dropped, e.g. by a timeout).
struct Waiting<'a>(&'a Shared);

impl<'a> Waiting<'a> {
    fn new(s: &'a Shared) -> Waiting<'a> {
        s.lock().waiting += 1;
        s.wake.notify_one();
        Waiting(s)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.waiting = st.waiting.saturating_sub(1);
    }
}

/// A member of a share group. Cheap to clone; the last clone dropped (or
/// [`ShareConsumer::close`]) leaves the group.
#[derive(Clone)]
pub struct ShareConsumer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ShareConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareConsumer")
            .field("group_id", &self.shared.config.group_id)
            .field("member_id", &self.shared.member_id)
            .finish()
    }
}

impl ShareConsumer {
    /// A share consumer on `cluster`; it joins once it subscribes. Needs a
    /// Tokio runtime.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid settings.
    pub fn new(cluster: Cluster, config: ShareConsumerConfig) -> Result<ShareConsumer> {
        config.validate()?;
        let shared = Arc::new(Shared {
            cluster,
            config,
            member_id: crate::consumer::new_member_id(),
            lane: crate::broker::Lane::new_member(),
            state: Mutex::new(State::default()),
            records: Notify::new(),
            wake: Notify::new(),
            acked: Notify::new(),
            closed: AtomicBool::new(false),
            sessions: tokio::sync::Mutex::new(fetcher::Sessions::default()),
        });
        tokio::spawn(membership::run(Arc::downgrade(&shared)));
        tokio::spawn(fetcher::run(Arc::downgrade(&shared)));
        Ok(ShareConsumer { shared })
    }

    /// Subscribes to `topics` (replacing any earlier subscription).
    ///
    /// # Errors
    /// [`Error::Config`] for an empty topic name.
    pub fn subscribe(&self, topics: impl IntoIterator<Item = impl Into<String>>) -> Result<()> {
        let mut t: Vec<String> = topics.into_iter().map(Into::into).collect();
        if t.iter().any(String::is_empty) {
            return Err(Error::Config("empty topic name".into()));
        }
        t.sort();
        t.dedup();
        self.shared.lock().topics = t;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// The member id (made by the client, KIP-932).
    pub fn member_id(&self) -> &str {
        &self.shared.member_id
    }

    /// The member epoch (0 until the coordinator accepted the member).
    pub fn member_epoch(&self) -> i32 {
        self.shared.lock().epoch
    }

    /// The partitions the coordinator assigned to this member (shared with
    /// other members).
    pub fn assignment(&self) -> BTreeSet<TopicPartition> {
        self.shared.lock().assignment.clone()
    }

    /// The acquisition lock the broker stated in its last ShareFetch
    /// response, in milliseconds (0 before the first).
    pub fn acquisition_lock_timeout_ms(&self) -> i32 {
        self.shared.lock().lock_timeout_ms
    }

    /// The next acquired record.
    ///
    /// # Errors
    /// A fatal group or fetch error, or [`Error::ConsumerClosed`] after close.
    pub async fn recv(&self) -> Result<ShareRecord> {
        let mut v = self.recv_batch(1).await?;
        Ok(v.pop().expect("recv_batch returns at least one record"))
    }

    /// Waits for at least one record, then takes every buffered record up
    /// to `max` without waiting more.
    ///
    /// # Errors
    /// As [`ShareConsumer::recv`].
    pub async fn recv_batch(&self, max: usize) -> Result<Vec<ShareRecord>> {
        let max = max.max(1);
        if self.shared.config.ack_mode == AckMode::Implicit {
            let mut st = self.shared.lock();
            if self.shared.accept_handed(&mut st) {
                self.shared.wake.notify_one();
            }
        }
        loop {
            let notified = self.shared.records.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.shared.lock();
                if let Some(e) = st.error.take() {
                    return Err(e);
                }
                if !st.buffer.is_empty() {
                    let n = max.min(st.buffer.len());
                    let out: Vec<ShareRecord> = st.buffer.drain(..n).collect();
                    if self.shared.config.ack_mode == AckMode::Implicit {
                        st.handed.extend(
                            out.iter()
                                .map(|r| (TopicPartition::new(&*r.topic, r.partition), r.offset)),
                        );
                    }
                    return Ok(out);
                }
            }
            if self.shared.is_closed() {
                return Err(Error::ConsumerClosed);
            }
            let _waiting = Waiting::new(&self.shared);
            notified.await;
        }
    }

    /// Acknowledges a record handed out by this consumer; the
    /// acknowledgement goes to its leader with the next request there
    /// ([`ShareConsumer::commit`] waits for it).
    ///
    /// # Errors
    /// [`Error::Config`] in implicit mode, or for a record this member does
    /// not hold (already acknowledged, or from another consumer).
    pub fn acknowledge(&self, record: &ShareRecord, kind: AcknowledgeType) -> Result<()> {
        if self.shared.config.ack_mode == AckMode::Implicit {
            return Err(Error::Config(
                "acknowledge() needs AckMode::Explicit (implicit mode accepts every record)".into(),
            ));
        }
        let tp = TopicPartition::new(&*record.topic, record.partition);
        let queued = self.shared.lock().queue(&tp, record.offset, kind.code());
        if !queued {
            return Err(Error::Config(format!(
                "{}-{} offset {} is not held by this member (acknowledged already?)",
                record.topic, record.partition, record.offset
            )));
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Sends every acknowledgement queued so far (in implicit mode, first
    /// accepts every record handed out) and waits for the brokers' answers.
    ///
    /// # Errors
    /// The first acknowledgement a broker refused since the last commit
    /// (e.g. INVALID_RECORD_STATE when the acquisition lock had expired:
    /// the record went to another member), or [`Error::Config`] when the
    /// consumer closed first.
    pub async fn commit(&self) -> Result<()> {
        let target = {
            let mut st = self.shared.lock();
            if self.shared.config.ack_mode == AckMode::Implicit {
                self.shared.accept_handed(&mut st);
            }
            st.queued
        };
        self.shared.wake.notify_one();
        loop {
            let notified = self.shared.acked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.shared.lock();
                if st.answered >= target {
                    return match st.ack_errors.drain(..).next() {
                        Some(e) => Err(e),
                        None => Ok(()),
                    };
                }
            }
            if self.shared.is_closed() {
                return Err(Error::ConsumerClosed);
            }
            notified.await;
        }
    }

    /// Sends the last acknowledgements (implicit mode: accepts what was
    /// handed out), closes the share sessions (the brokers release what
    /// this member still holds) and the fetch connections to their brokers,
    /// and leaves the group.
    ///
    /// The connections close because Kafka (4.4) brokers drop their
    /// cached state of the group's share-partitions only when the group's
    /// connections to them close: start offsets set with
    /// [`crate::admin::Admin::alter_share_group_offsets`] after this member
    /// left are then seen by the next member. Share requests travel on a
    /// connection of their own ([`crate::broker::Lane::Member`]), so a
    /// [`crate::Cluster`] shared with producers and consumers keeps theirs.
    pub async fn close(&self) {
        if self.shared.config.ack_mode == AckMode::Implicit {
            let mut st = self.shared.lock();
            self.shared.accept_handed(&mut st);
        }
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.records.notify_waiters();
        self.shared.acked.notify_waiters();
        fetcher::close_sessions(&self.shared).await;
        membership::leave(&self.shared).await;
    }
}

impl Drop for ShareConsumer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.shared) == 1 && !self.shared.is_closed() {
            // The tasks hold weak references: they stop on their own; the
            // brokers release acquisitions when the member's session times
            // out.
            self.shared.closed.store(true, Ordering::Release);
            self.shared.wake.notify_one();
        }
    }
}
