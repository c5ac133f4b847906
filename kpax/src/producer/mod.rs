//! The producer: batches records per partition, sends one request per broker
//! with every ready partition it leads, retries what can be retried, and
//! tells every record's outcome.
//!
//! ```text
//! send(record) -> partitioner -> accumulator (batch per partition, bounded bytes)
//!   -> ready batches grouped by leader -> ProduceRequest -> broker
//!   -> ProduceResponse -> per-record futures resolved / retried / failed
//! ```
//!
//! Idempotent by default (acks=all): the producer gets a producer id, stamps
//! each batch with its partition's next sequence number, and keeps one batch
//! per partition in flight, so a retry can neither duplicate nor reorder.
//!
//! With a transactional id ([`ProducerConfig::with_transactional_id`]) the
//! producer is transactional (KIP-98): [`Producer::init_transactions`], then
//! `begin_transaction`, sends, `send_offsets_to_transaction`, and
//! `commit_transaction` or `abort_transaction`; see [`TransactionState`].

mod accumulator;
mod config;
mod coordinator;
mod delivery;
mod legacy;
pub mod partitioner;
mod sender;
mod topic_map;
mod transaction;
mod transactional;

pub use crate::error::TransactionError;
pub use crate::transaction::{ConsumerGroupMetadata, TransactionState};
pub use config::{Acks, ProducerConfig};
pub use delivery::DeliveryFuture;
pub use partitioner::{murmur2, murmur2_partition, DefaultPartitioner, Partitioner};

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use accumulator::{Accumulator, Rejected};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// A record to send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// An explicit partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
    /// The key (`None`: null).
    pub key: Option<Bytes>,
    /// The value (`None`: a tombstone).
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<(Bytes, Option<Bytes>)>,
    /// Milliseconds since the epoch; `None`: now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn with_partition(mut self, p: i32) -> Self {
        self.partition = Some(p);
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<Bytes>, value: Option<Bytes>) -> Self {
        self.headers.push((key.into(), value));
        self
    }

    /// Sets the timestamp.
    pub fn with_timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    /// An upper bound of the record's size in a batch.
    fn size_estimate(&self) -> usize {
        let b = |x: &Option<Bytes>| x.as_ref().map_or(0, Bytes::len) + 5;
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + 5 + b(v)).sum();
        21 + b(&self.key) + b(&self.value) + headers + 5
    }
}

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The record's offset; -1 with `Acks::None`, or for a retry the broker
    /// reported as a duplicate of an earlier write.
    pub offset: i64,
    /// The record's timestamp (the broker's log append time when the topic
    /// uses it).
    pub timestamp: i64,
}

/// Counters since the producer started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Records whose write was acknowledged.
    pub records_sent: u64,
    /// Bytes of record batches acknowledged.
    pub bytes_sent: u64,
    /// Batches acknowledged.
    pub batches_sent: u64,
    /// Batches sent again after an error.
    pub retries: u64,
    /// Records failed.
    pub errors: u64,
    /// Bytes buffered now.
    pub buffered_bytes: u64,
    /// Per broker: (node id, requests, mean latency in microseconds).
    pub broker_latency: Vec<(i32, u64, u64)>,
}

/// The counters behind [`ProducerStats`], and their metric handles
/// ([`crate::metrics`]).
pub(crate) struct Counters {
    records_sent: AtomicU64,
    bytes_sent: AtomicU64,
    batches_sent: AtomicU64,
    retries: AtomicU64,
    errors: AtomicU64,
    latency: Mutex<std::collections::BTreeMap<i32, (u64, u64)>>,
    meters: crate::metrics::ProducerMeters,
}

impl Counters {
    fn new(client_id: &str) -> Counters {
        Counters {
            records_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            batches_sent: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: Mutex::new(Default::default()),
            meters: crate::metrics::ProducerMeters::new(client_id),
        }
    }

    /// A batch of `records` records in `bytes` bytes was acknowledged.
    pub(crate) fn sent(&self, records: u64, bytes: u64) {
        self.records_sent.fetch_add(records, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        self.batches_sent.fetch_add(1, Ordering::Relaxed);
        self.meters.records_sent.increment(records);
        self.meters.bytes_sent.increment(bytes);
        self.meters.batches_sent.increment(1);
    }

    /// `n` records failed.
    pub(crate) fn failed(&self, n: u64) {
        self.errors.fetch_add(n, Ordering::Relaxed);
        self.meters.record_errors.increment(n);
    }

    /// A batch goes out again.
    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.meters.retries.increment(1);
    }

    /// A Produce round trip to `node` took `elapsed`.
    pub(crate) fn answered(&self, node: i32, elapsed: Duration) {
        {
            let mut lat = self.latency.lock().unwrap_or_else(|e| e.into_inner());
            let e = lat.entry(node).or_default();
            e.0 += 1;
            e.1 += elapsed.as_micros() as u64;
        }
        self.meters.request_latency(node, elapsed);
    }
}

pub(crate) struct Shared {
    pub cluster: Cluster,
    pub config: ProducerConfig,
    pub accumulator: Mutex<Accumulator>,
    pub memory: Arc<Semaphore>,
    pub wake: Notify,
    pub idle: Notify,
    pub closed: AtomicBool,
    /// Records accepted and not yet resolved.
    pub outstanding: AtomicUsize,
    pub counters: Counters,
    /// The transaction, for a transactional producer.
    pub txn: Option<transaction::Txn>,
    /// A broker older than Kafka 0.11 (Produce < v3) was seen: records
    /// with headers are refused at `send` from then on.
    pub legacy_brokers: AtomicBool,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Accumulator> {
        self.accumulator.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn resolve(&self, n: usize) {
        if self.outstanding.fetch_sub(n, Ordering::AcqRel) == n {
            self.idle.notify_waiters();
        }
    }
}

/// A Kafka producer; cheap to clone (clones share buffers and the sender).
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
/// use kpax::{Producer, ProducerConfig, ProducerRecord};
/// let producer = Producer::new(cluster, ProducerConfig::default())?; // idempotent, acks=all
/// // send() waits only while the buffer is full; the delivery future says
/// // where the record was written, or why it was not.
/// let delivery = producer.send(ProducerRecord::new("events", "hello").with_key("user-1")).await?;
/// let written = delivery.await?;
/// assert_eq!((written.topic.as_str(), written.offset), ("events", 0));
/// producer.close(std::time::Duration::from_secs(5)).await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Producer {
    /// A producer over `cluster`; its sender task runs on the current tokio
    /// runtime until [`Producer::close`] (or the last handle is dropped).
    ///
    /// # Errors
    /// [`Error::Config`] for settings that cannot work together.
    pub fn new(cluster: Cluster, mut config: ProducerConfig) -> Result<Producer> {
        if config.idempotence && config.acks != Acks::All {
            return Err(Error::Config("idempotence needs acks=all".into()));
        }
        if config.buffer_memory < config.batch_size.min(config.max_request_size) {
            return Err(Error::Config(
                "buffer_memory must hold at least one batch".into(),
            ));
        }
        // A codec left out of the build fails at creation, not batch by batch.
        let mut probe = bytes::BytesMut::new();
        if let Err(e) =
            kpax_proto::records::compression::compress(config.compression, 2, b"", &mut probe)
        {
            return Err(Error::Config(format!(
                "compression {:?}: {e}",
                config.compression
            )));
        }
        config.max_in_flight_per_broker = config.max_in_flight_per_broker.max(1);
        let txn = match &config.transactional_id {
            Some(id) if id.is_empty() => {
                return Err(Error::Config("the transactional id is empty".into()))
            }
            Some(_) if !config.idempotence => {
                return Err(Error::Config(
                    "a transactional producer must be idempotent".into(),
                ))
            }
            Some(id) => Some(transaction::Txn::new(
                id.clone(),
                config.transaction_timeout,
            )),
            None => None,
        };
        let cluster_client_id = cluster.config().client_id.clone();
        let shared = Arc::new(Shared {
            memory: Arc::new(Semaphore::new(config.buffer_memory)),
            accumulator: Mutex::new(Accumulator::default()),
            cluster,
            config,
            wake: Notify::new(),
            idle: Notify::new(),
            closed: AtomicBool::new(false),
            outstanding: AtomicUsize::new(0),
            counters: Counters::new(&cluster_client_id),
            txn,
            legacy_brokers: AtomicBool::new(false),
        });
        tokio::spawn(sender::run(Arc::downgrade(&shared)));
        Ok(Producer { shared })
    }

    /// Accepts a record, waiting while the buffer is full (backpressure);
    /// the returned future resolves with the record's outcome.
    ///
    /// # Errors
    /// At once, without buffering: [`Error::RecordTooLarge`],
    /// [`Error::ProducerClosed`], an unknown topic or partition
    /// ([`Error::Broker`] / [`Error::NoLeader`]), [`Error::Records`], [`Error::MessageFormat`] (record headers on a broker older than Kafka 0.11).
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        self.enqueue(record, true).await
    }

    /// As [`Producer::send`], but returns [`Error::BufferFull`] instead of waiting.
    ///
    /// # Errors
    /// As [`Producer::send`], plus [`Error::BufferFull`].
    pub async fn try_send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        self.enqueue(record, false).await
    }

    /// Sends every record and waits for all the outcomes, in order.
    ///
    /// # Errors
    /// The first error of [`Producer::send`]; records already accepted stay accepted.
    pub async fn send_all(
        &self,
        records: impl IntoIterator<Item = ProducerRecord>,
    ) -> Result<Vec<Result<RecordMetadata>>> {
        let mut futures = Vec::new();
        for r in records {
            futures.push(self.send(r).await?);
        }
        let mut out = Vec::with_capacity(futures.len());
        for f in futures {
            out.push(f.await);
        }
        Ok(out)
    }

    async fn enqueue(&self, mut record: ProducerRecord, wait: bool) -> Result<DeliveryFuture> {
        let s = &self.shared;
        if s.closed.load(Ordering::Acquire) {
            return Err(Error::ProducerClosed);
        }
        if let Some(t) = &s.txn {
            t.lock().machine.check_send()?;
        }
        let size = record.size_estimate();
        let max = s.config.max_request_size.min(s.config.buffer_memory);
        if size > max {
            return Err(Error::RecordTooLarge { size, max });
        }
        if !record.headers.is_empty() && s.legacy_brokers.load(Ordering::Relaxed) {
            return Err(Error::MessageFormat {
                what: kpax_proto::records::LegacyUnsupported::Headers,
                broker: "a broker of this cluster".into(),
                magic: None,
            });
        }
        let permits = u32::try_from(size).map_err(|_| Error::RecordTooLarge { size, max })?;
        // The memory first (without the accumulator's lock: this may wait),
        // then partition choice and append under one lock.
        let mut permit = match s.memory.clone().try_acquire_many_owned(permits) {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(Error::ProducerClosed),
            Err(tokio::sync::TryAcquireError::NoPermits) if wait => {
                // The buffer is full: wait until an eighth of it is free,
                // not just this record's bytes, so that a sender faster
                // than the network is woken once per many acknowledged
                // batches rather than once per batch (a futex wake and a
                // park each). The rest goes back at once for the records
                // that follow.
                let budget = u32::try_from(s.config.buffer_memory).unwrap_or(u32::MAX);
                let low_water = (budget / 8).max(permits).min(budget);
                let mut p = s
                    .memory
                    .clone()
                    .acquire_many_owned(low_water)
                    .await
                    .map_err(|_| Error::ProducerClosed)?;
                let mine = p.split(permits as usize).ok_or(Error::ProducerClosed)?;
                drop(p);
                mine
            }
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(Error::BufferFull),
        };
        if s.closed.load(Ordering::Acquire) {
            return Err(Error::ProducerClosed);
        }
        let now = record.timestamp.is_none().then(now_ms);
        let timestamp = record.timestamp.or(now).unwrap_or_default();
        // The accumulator keeps the topic's metadata for a while; when it
        // has none (or it is old), ask the cluster and append with that.
        let mut fresh = None;
        loop {
            let appended = {
                let mut acc = s.lock();
                // Again under the accumulator's lock: a commit or abort that
                // began meanwhile must not find a record it did not flush.
                if let Some(t) = &s.txn {
                    t.lock().machine.check_send()?;
                }
                let a = acc.append(
                    &s.config,
                    &mut record,
                    fresh.as_ref(),
                    now,
                    timestamp,
                    permit,
                );
                if a.is_ok() {
                    s.outstanding.fetch_add(1, Ordering::AcqRel);
                }
                a
            };
            match appended {
                Ok(a) => {
                    if a.wake {
                        s.wake.notify_one();
                    }
                    return Ok(a.future);
                }
                Err(Rejected::Failed(e)) => return Err(e),
                Err(Rejected::NeedMetadata(p)) if fresh.is_none() => {
                    permit = p;
                    fresh = Some(self.topic_meta(&record.topic).await?);
                }
                Err(Rejected::NeedMetadata(_)) => {
                    return Err(Error::Protocol {
                        broker: "metadata".into(),
                        reason: format!("fresh metadata of {} was not taken", record.topic),
                    })
                }
            }
        }
    }

    /// The topic's metadata, waiting up to `max_block` while the error is
    /// retriable (an unknown topic is retriable in Kafka's table: it may
    /// be being created).
    async fn topic_meta(&self, topic: &str) -> Result<Arc<crate::cluster::TopicMeta>> {
        // The clock only once the metadata is missing (not per record).
        let mut deadline: Option<Instant> = None;
        let mut attempt = 0;
        loop {
            match self.shared.cluster.topic(topic).await {
                Ok(m) => return Ok(m),
                Err(e)
                    if e.is_retriable()
                        && Instant::now()
                            < *deadline.get_or_insert_with(|| {
                                Instant::now() + self.shared.config.max_block
                            }) =>
                {
                    let deadline = deadline.expect("set");
                    let wait = crate::broker::backoff(
                        attempt,
                        self.shared.config.retry_backoff,
                        self.shared.config.retry_backoff_max,
                    );
                    attempt += 1;
                    tokio::time::sleep(
                        wait.min(deadline.saturating_duration_since(Instant::now())),
                    )
                    .await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends everything buffered now and waits until every record accepted
    /// so far has its outcome.
    pub async fn flush(&self) {
        let s = &self.shared;
        loop {
            let idle = s.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if s.outstanding.load(Ordering::Acquire) == 0 {
                return;
            }
            s.lock().flush_requested = true;
            s.wake.notify_one();
            idle.await;
        }
    }

    /// Stops accepting records, delivers what was accepted within
    /// `deadline`, then fails whatever is left with [`Error::ProducerClosed`].
    /// Returns whether everything was delivered (or failed) in time.
    pub async fn close(&self, deadline: Duration) -> bool {
        self.shared.closed.store(true, Ordering::Release);
        let done = tokio::time::timeout(deadline, self.flush()).await.is_ok();
        if !done {
            let n = self.shared.lock().fail_all(|| Error::ProducerClosed);
            self.shared.resolve(n);
        }
        self.shared.memory.close();
        self.shared.wake.notify_one();
        done
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ProducerStats {
        let c = &self.shared.counters;
        let used = self.shared.config.buffer_memory
            - self
                .shared
                .memory
                .available_permits()
                .min(self.shared.config.buffer_memory);
        ProducerStats {
            records_sent: c.records_sent.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            batches_sent: c.batches_sent.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            buffered_bytes: used as u64,
            broker_latency: c
                .latency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(id, (n, total))| (*id, *n, total / (*n).max(1)))
                .collect(),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
