//! Per-partition batches waiting to be sent, and their records' outcomes.
//!
//! Per record, [`Accumulator::append`] does one topic lookup by `&str`, an
//! index into the topic's partitions, and a push of the record's `Bytes`
//! into its batch (or, for a batch that copies, its encoding): the list
//! of available partitions the partitioner chooses from is cached per topic
//! and rebuilt only when the topic's metadata or a partition's backoff
//! changes, and the record's outcome is a slot in its batch's shared
//! [`Completion`].
//!
//! Records are not copied here unless the configuration says so
//! (`copy_records_below`): the batch keeps the caller's `Bytes`
//! ([`Records::Held`]). Every batch is
//! sealed under the producer's lock and finished outside it
//! ([`Batch::finish`]: held records written, compression, producer id and
//! sequence numbers, one CRC pass) by the task of the request that sends
//! it, while the application goes on appending; only a batch of copied
//! records under lz4 or snappy is compressed as it is sealed
//! (`compressed_as_sealed`).

use super::delivery::{Completion, DeliveryFuture};
use super::topic_map::TopicMap;
use super::{ProducerConfig, ProducerRecord};
use crate::cluster::TopicMeta;
use crate::error::{Error, Result};
use bytes::{Bytes, BytesMut};
use kpax_proto::records::{Compression, RecordBatchBuilder};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// A record kept by reference until its batch is written: its bytes stay
/// the caller's (shared `Bytes`), so a large record costs no copy at
/// `send` and no fresh pages while it waits.
struct HeldRecord {
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(Bytes, Option<Bytes>)>,
}

/// Records of a held batch and how to write them.
pub(crate) struct Held {
    records: Vec<HeldRecord>,
    compression: Compression,
    transactional: bool,
    /// The records' size estimates: the buffer to write them into.
    bytes: usize,
    /// A recycled buffer to write into, given when the batch is drained.
    buffer: Option<BytesMut>,
}

impl Held {
    /// Writes the records into one batch: a copy of each record's bytes,
    /// compression, and the CRC.
    fn write(
        self,
        stamped: impl FnOnce(RecordBatchBuilder) -> RecordBatchBuilder,
    ) -> std::result::Result<Bytes, kpax_proto::records::RecordsError> {
        let builder = match self.buffer {
            Some(buf) => RecordBatchBuilder::over_buffer(0, buf),
            None => RecordBatchBuilder::with_capacity(0, self.bytes),
        };
        let mut builder = stamped(builder)
            .compression(self.compression)
            .transactional(self.transactional);
        for r in &self.records {
            append_to(&mut builder, r.timestamp, &r.key, &r.value, &r.headers)?;
        }
        builder.finish()
    }
}

/// A batch's records, as they were taken.
pub(crate) enum Records {
    /// Written into the batch's buffer as they came (a batch opened by a
    /// record under `copy_records_below`).
    Written(RecordBatchBuilder),
    /// Kept by reference and written by the task that sends the batch
    /// (outside the producer's lock, into a recycled buffer): the default.
    /// Copies at `send` held the lock the sender needed, and their fresh
    /// buffers, queued while the broker was busy, cost a page fault per
    /// 4 KiB; measured on the mock (acks=all, median of 3), CPU per record
    /// at 100 B 0.31-0.39 µs copied, 0.29 held; 1 KiB 0.72-0.78, 0.57-0.58;
    /// 16 KiB 13.7 (before the copy left the lock), 5.3-5.8.
    Held(Held),
}

impl Records {
    /// The finished batch, with the producer id, epoch and base sequence
    /// `stamp` when given (one CRC pass).
    fn finish(
        self,
        stamp: Option<(i64, i16, i32)>,
    ) -> std::result::Result<Bytes, kpax_proto::records::RecordsError> {
        let stamped = |b: RecordBatchBuilder| match stamp {
            Some((id, epoch, seq)) => b.producer(id, epoch, seq),
            None => b,
        };
        match self {
            Records::Written(b) => stamped(b).finish(),
            Records::Held(h) => h.write(stamped),
        }
    }
}

/// Appends one record to `builder`.
fn append_to(
    builder: &mut RecordBatchBuilder,
    timestamp: i64,
    key: &Option<Bytes>,
    value: &Option<Bytes>,
    headers: &[(Bytes, Option<Bytes>)],
) -> std::result::Result<(), kpax_proto::records::RecordsError> {
    if headers.is_empty() {
        builder.append(timestamp, key.as_deref(), value.as_deref(), &[])
    } else {
        let headers: Vec<(&[u8], Option<&[u8]>)> = headers
            .iter()
            .map(|(k, v)| (&k[..], v.as_deref()))
            .collect();
        builder.append(timestamp, key.as_deref(), value.as_deref(), &headers)
    }
}

/// Where a sealed batch's encoding stands.
pub(crate) enum Encoding {
    /// `Batch::data` holds the finished batch.
    Done,
    /// Its records, not yet compressed and checksummed (or not yet
    /// written, when held).
    Pending(Records),
    /// Compressing it as it was sealed failed: `Batch::finish` reports it.
    Failed(Error),
}

/// A batch being filled.
struct OpenBatch {
    body: Records,
    completion: Completion,
    records: u32,
    bytes: usize,
    created: Instant,
    permit: OwnedSemaphorePermit,
}

/// A closed batch on its way to the broker (perhaps again): its records
/// written, its encoding finished by [`Batch::finish`] before it is sent.
pub(crate) struct Batch {
    pub topic: String,
    pub partition: i32,
    /// The encoded batch (empty until [`Batch::finish`], or until sealed
    /// for copied records compressed as sealed).
    pub data: Bytes,
    /// What is left to encode.
    pub encoding: Encoding,
    /// How many records it holds.
    pub records: usize,
    /// Its records' outcome.
    pub completion: Completion,
    pub permit: OwnedSemaphorePermit,
    pub deadline: Instant,
    pub attempts: u32,
    /// The producer id, epoch and base sequence assigned to the batch
    /// ([`Accumulator::stamp`]); written into `data` by [`Batch::finish`].
    pub stamped: Option<(i64, i16, i32)>,
    /// The producer id, epoch and base sequence `data` holds.
    pub written: Option<(i64, i16, i32)>,
    pub last_error: Option<String>,
}

impl Batch {
    /// Finishes the batch's encoding (compression, CRC) if it is not yet:
    /// the sender's work, outside the producer's lock.
    ///
    /// # Errors
    /// [`Error::Records`] when the batch cannot be encoded; fail it then.
    pub fn finish(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.encoding, Encoding::Done) {
            Encoding::Done => {}
            Encoding::Failed(e) => return Err(e),
            Encoding::Pending(records) => {
                self.data = records.finish(self.stamped).map_err(|e| Error::Records {
                    context: format!("{}-{}", self.topic, self.partition),
                    source: e,
                })?;
                self.written = self.stamped;
            }
        }
        // Encoded before its sequence numbers were assigned, or for
        // another producer id (a retry after a reset): written in now.
        if self.written != self.stamped {
            if let Some((id, epoch, seq)) = self.stamped {
                // The batch's bytes are ours alone unless a request still
                // holds them; then stamping works on a copy.
                let mut data = match std::mem::take(&mut self.data).try_into_mut() {
                    Ok(m) => m,
                    Err(shared) => BytesMut::from(&shared[..]),
                };
                stamp_producer(&mut data, id, epoch, seq);
                self.data = data.freeze();
            }
            self.written = self.stamped;
        }
        Ok(())
    }

    /// Its size in a request: its bytes once encoded, until then its
    /// records' size estimates and the batch header (an upper bound for
    /// uncompressed records; compressed ones take less).
    pub fn size(&self) -> usize {
        match &self.encoding {
            Encoding::Done => self.data.len(),
            _ => self.permit.num_permits() + kpax_proto::records::RECORD_BATCH_OVERHEAD,
        }
    }

    /// Whether compressing it as it was sealed failed
    /// ([`Batch::finish`] reports why).
    pub fn failed_to_encode(&self) -> bool {
        matches!(self.encoding, Encoding::Failed(_))
    }

    /// Fails every record of the batch; returns how many.
    pub fn fail(self, err: Error) -> usize {
        let n = self.records;
        drop(self.permit); // memory first, then the outcomes
        self.completion.failed(err);
        n
    }
}

#[derive(Default)]
struct PartitionQueue {
    open: Option<OpenBatch>,
    sealed: VecDeque<Batch>,
    in_flight: bool,
    next_sequence: i32,
    retry_at: Option<Instant>,
    /// The record bytes of the last batch sealed here: a new batch's
    /// buffer starts twice that large (at most `batch_size`), so a steady
    /// flow rarely regrows it.
    last_batch_bytes: usize,
    /// In the accumulator's `active` list.
    listed: bool,
}

impl PartitionQueue {
    /// Puts this queue (topic index `topic`, `partition`) on the list that
    /// `drain` walks, once.
    fn list(&mut self, active: &mut Vec<(usize, i32)>, topic: usize, partition: i32) {
        if !self.listed {
            self.listed = true;
            active.push((topic, partition));
        }
    }
}

/// One topic's partitions, and the partitions a record may go to now.
struct TopicQueues {
    name: String,
    /// Indexed by partition number, grown on first use.
    partitions: Vec<PartitionQueue>,
    /// The metadata records of the topic are placed with; asked of the
    /// cluster again after [`META_REUSE`] records, [`META_REUSE_MS`] of
    /// record clock, or a retriable error of one of its partitions.
    meta: Option<Arc<TopicMeta>>,
    /// Records placed with `meta` since it came.
    meta_uses: u32,
    /// When `meta` came (the record clock, ms), if known.
    meta_at_ms: Option<i64>,
    /// `meta` must be asked for again.
    meta_expired: bool,
    /// Sorted partitions with a leader and not backing off (every
    /// partition when none is).
    available: Vec<i32>,
    /// `available` must be rebuilt (a backoff began).
    stale: bool,
    /// `available` must be rebuilt at this time (a backoff ends).
    until: Option<Instant>,
}

/// Buffers of sent batches kept for new ones.
const POOL_BUFFERS: usize = 16;

/// Records placed with one cached metadata before it is asked for again.
const META_REUSE: u32 = 1000;
/// Milliseconds one cached metadata is used before it is asked for again.
const META_REUSE_MS: u64 = 100;

impl TopicQueues {
    /// Takes `fresh` metadata, or says whether the cached one may still
    /// be used (then counts the use).
    fn meta(&mut self, fresh: Option<&Arc<TopicMeta>>, now_ms: Option<i64>) -> bool {
        if let Some(m) = fresh {
            if !self.meta.as_ref().is_some_and(|c| Arc::ptr_eq(c, m)) {
                self.meta = Some(Arc::clone(m));
                self.stale = true;
            }
            self.meta_uses = 0;
            self.meta_at_ms = now_ms;
            self.meta_expired = false;
            return true;
        }
        if self.meta.is_none() || self.meta_expired || self.meta_uses >= META_REUSE {
            return false;
        }
        if let (Some(at), Some(now)) = (self.meta_at_ms, now_ms) {
            if now.abs_diff(at) > META_REUSE_MS {
                return false;
            }
        }
        self.meta_uses += 1;
        true
    }

    fn queue(&mut self, partition: i32) -> &mut PartitionQueue {
        let i = usize::try_from(partition).unwrap_or(0);
        if i >= self.partitions.len() {
            self.partitions.resize_with(i + 1, PartitionQueue::default);
        }
        &mut self.partitions[i]
    }

    /// The partitions a record may go to now.
    fn available(&mut self) -> &[i32] {
        let Some(meta) = &self.meta else {
            return &[];
        };
        let now = self.until.map(|_| Instant::now());
        if self.stale || matches!((self.until, now), (Some(u), Some(n)) if n >= u) {
            let now = now.unwrap_or_else(Instant::now);
            let mut until: Option<Instant> = None;
            self.available.clear();
            for p in &meta.partitions {
                let backoff = usize::try_from(p.partition)
                    .ok()
                    .and_then(|i| self.partitions.get(i))
                    .and_then(|q| q.retry_at)
                    .filter(|r| *r > now);
                match backoff {
                    Some(r) => until = Some(until.map_or(r, |u| u.min(r))),
                    None if p.leader >= 0 => self.available.push(p.partition),
                    None => {}
                }
            }
            if self.available.is_empty() {
                self.available
                    .extend(0..i32::try_from(meta.partitions.len()).unwrap_or(i32::MAX));
            }
            self.available.sort_unstable();
            self.stale = false;
            self.until = until;
        }
        &self.available
    }
}

/// Every partition's batches.
#[derive(Default)]
pub(crate) struct Accumulator {
    /// Every topic's partitions.
    topics: Vec<TopicQueues>,
    /// topic name -> index in `topics` (looked up by `&str`: no key per record).
    index: TopicMap<usize>,
    /// The index of the topic looked up last.
    last: usize,
    /// Buffers of sent batches, for new batches: a fresh 64 KiB allocation
    /// per batch costs page faults (the allocator gives large blocks back).
    pool: Vec<BytesMut>,
    /// The partitions (topic index, partition) with an open or a sealed
    /// batch: what `drain` looks at, so that a drain costs the partitions
    /// in use, not every partition the producer has written to (10,000).
    active: Vec<(usize, i32)>,
    /// Send open batches now (set by flush and close).
    pub flush_requested: bool,
}

/// What one drain found.
pub(crate) struct Drained {
    /// Batches to send now (their partitions are now in flight).
    pub ready: Vec<Batch>,
    /// Batches past their delivery deadline.
    pub expired: Vec<Batch>,
    /// When to look again.
    pub next: Option<Instant>,
}

/// Why [`Accumulator::append`] did not take a record.
pub(crate) enum Rejected {
    /// The topic's cached metadata is missing or old: ask the cluster and
    /// append again with it (the memory permit comes back).
    NeedMetadata(OwnedSemaphorePermit),
    /// The record cannot be sent.
    Failed(Error),
}

impl From<Error> for Rejected {
    fn from(e: Error) -> Self {
        Rejected::Failed(e)
    }
}

/// An accepted record: its future, and whether the sender should look now
/// (a batch was opened or became full, and the partition has no batch in
/// flight: otherwise the sender looks when that request completes).
pub(crate) struct Appended {
    pub future: DeliveryFuture,
    pub wake: bool,
}

/// Whether a written batch of `codec` is compressed as it is sealed,
/// before its sequence numbers are known (writing them in later costs a
/// CRC pass over the compressed bytes), rather than by its request's task.
/// lz4 and snappy: measured on the mock at 1 KiB (acks=all, idempotent,
/// 3 runs), lz4 as sealed 1.88-2.03 µs of CPU per record, by the task
/// 2.42-2.52, and 300 MiB of uncompressed batches queued instead of 16
/// (held records, compressed by the task: 1.67-1.77). Uncompressed
/// batches, gzip and zstd are finished by the task.
fn compressed_as_sealed(codec: Compression) -> bool {
    matches!(codec, Compression::Lz4 | Compression::Snappy)
}

/// Closes an open batch; its request's task finishes it (a written lz4 or
/// snappy batch is compressed now: [`compressed_as_sealed`]).
fn seal(config: &ProducerConfig, topic: &str, partition: i32, open: OpenBatch) -> Batch {
    config.partitioner.on_new_batch(topic, partition);
    let OpenBatch {
        body,
        completion,
        records,
        created,
        permit,
        ..
    } = open;
    let mut batch = Batch {
        topic: topic.to_string(),
        partition,
        data: Bytes::new(),
        encoding: Encoding::Pending(body),
        records: records as usize,
        completion,
        permit,
        deadline: created + config.delivery_timeout,
        attempts: 0,
        stamped: None,
        written: None,
        last_error: None,
    };
    if matches!(batch.encoding, Encoding::Pending(Records::Written(_)))
        && compressed_as_sealed(config.compression)
    {
        if let Err(e) = batch.finish() {
            batch.encoding = Encoding::Failed(e);
        }
    }
    batch
}

impl Accumulator {
    /// Picks the record's partition (its own, or the partitioner's among
    /// the available ones) and adds the record to its batch. The topic's
    /// metadata is `fresh`, else the cached one while it may be used;
    /// `now_ms` is the clock when the record was stamped with it. A record
    /// that goes into a held batch gives it its key, value and headers
    /// (taken out of `record`); a rejected record keeps them.
    pub fn append(
        &mut self,
        config: &ProducerConfig,
        record: &mut ProducerRecord,
        fresh: Option<&Arc<TopicMeta>>,
        now_ms: Option<i64>,
        timestamp: i64,
        permit: OwnedSemaphorePermit,
    ) -> std::result::Result<Appended, Rejected> {
        let i = self.topic_index(&record.topic);
        let (t, pool, active) = (&mut self.topics[i], &mut self.pool, &mut self.active);
        if !t.meta(fresh, now_ms) {
            return Err(Rejected::NeedMetadata(permit));
        }
        let count = t.meta.as_ref().map_or(0, |m| m.partitions.len());
        let count = i32::try_from(count).unwrap_or(i32::MAX);
        if count == 0 {
            return Err(Rejected::Failed(Error::NoLeader {
                topic: record.topic.clone(),
                partition: record.partition.unwrap_or(-1),
                reason: "the topic has no partitions".into(),
            }));
        }
        let partition = match record.partition {
            Some(p) if (0..count).contains(&p) => p,
            Some(p) => {
                return Err(Rejected::Failed(Error::NoLeader {
                    topic: record.topic.clone(),
                    partition: p,
                    reason: format!("the topic has {count} partitions"),
                }))
            }
            None => {
                let available = t.available();
                let p = config.partitioner.partition(
                    &record.topic,
                    record.key.as_deref(),
                    available,
                    count,
                );
                if !(0..count).contains(&p) {
                    return Err(Rejected::Failed(Error::NoLeader {
                        topic: record.topic.clone(),
                        partition: p,
                        reason: format!("the partitioner chose it of {count} partitions"),
                    }));
                }
                p
            }
        };
        let q = t.queue(partition);
        q.list(active, i, partition);
        let size = permit.num_permits();
        let mut woke = false;
        if q.open
            .as_ref()
            .is_some_and(|o| o.bytes + size > config.batch_size)
        {
            let full = q.open.take().expect("checked");
            q.last_batch_bytes = full.bytes;
            woke = true;
            q.sealed
                .push_back(seal(config, &record.topic, partition, full));
        }
        let open = match &mut q.open {
            Some(o) => {
                o.permit.merge(permit);
                o
            }
            None => {
                woke = true;
                let capacity = config
                    .batch_size
                    .min((size * 2 + 128).max(q.last_batch_bytes.saturating_mul(2)));
                let transactional = config.transactional_id.is_some();
                let body = if size >= config.copy_records_below {
                    Records::Held(Held {
                        records: Vec::with_capacity((config.batch_size / size).clamp(1, 64)),
                        compression: config.compression,
                        transactional,
                        bytes: 0,
                        buffer: None,
                    })
                } else {
                    let builder = match pool.pop() {
                        Some(buf) => RecordBatchBuilder::over_buffer(0, buf),
                        None => RecordBatchBuilder::with_capacity(0, capacity),
                    };
                    Records::Written(
                        builder
                            .compression(config.compression)
                            .transactional(transactional),
                    )
                };
                q.open.insert(OpenBatch {
                    body,
                    completion: Completion::new(&record.topic, partition),
                    records: 0,
                    bytes: 0,
                    created: Instant::now(),
                    permit,
                })
            }
        };
        match &mut open.body {
            Records::Written(builder) => {
                let appended = append_to(
                    builder,
                    timestamp,
                    &record.key,
                    &record.value,
                    &record.headers,
                );
                if let Err(e) = appended {
                    return Err(Error::Records {
                        context: format!("{}-{partition}", record.topic),
                        source: e,
                    }
                    .into());
                }
            }
            Records::Held(held) => {
                held.bytes += size;
                held.records.push(HeldRecord {
                    timestamp,
                    key: record.key.take(),
                    value: record.value.take(),
                    headers: std::mem::take(&mut record.headers),
                });
            }
        }
        let future = open.completion.future(open.records, timestamp);
        open.records += 1;
        open.bytes += size;
        // While the partition has a batch in flight the sender cannot send
        // another of its batches, and it drains again as that request
        // completes: waking it now would cost a futex wake and a park for
        // nothing (a third of the producer's CPU at 16 KiB records).
        let wake = !q.in_flight && (woke || open.bytes >= config.batch_size);
        Ok(Appended { future, wake })
    }

    fn topic(&mut self, topic: &str) -> &mut TopicQueues {
        let i = self.topic_index(topic);
        &mut self.topics[i]
    }

    /// Keeps the buffer of a batch that was sent (when nothing else holds
    /// it and the pool has room) for a later batch.
    pub fn recycle(&mut self, config: &ProducerConfig, data: Bytes) {
        if self.pool.len() >= POOL_BUFFERS {
            return;
        }
        if let Ok(buf) = data.try_into_mut() {
            // Not cleared: the next batch writes over the old bytes
            // (`RecordBatchBuilder::over_buffer`) instead of zeroing them.
            if buf.capacity() <= config.batch_size.saturating_mul(2) {
                self.pool.push(buf);
            }
        }
    }

    fn topic_index(&mut self, topic: &str) -> usize {
        // Most producers send to one topic at a time: no hash for a repeat.
        if self.topics.get(self.last).is_some_and(|t| t.name == topic) {
            return self.last;
        }
        let i = match self.index.get(topic) {
            Some(i) => *i,
            None => {
                self.topics.push(TopicQueues {
                    name: topic.to_string(),
                    partitions: Vec::new(),
                    meta: None,
                    meta_uses: 0,
                    meta_at_ms: None,
                    meta_expired: false,
                    available: Vec::new(),
                    stale: false,
                    until: None,
                });
                self.index.insert(topic.to_string(), self.topics.len() - 1);
                self.topics.len() - 1
            }
        };
        self.last = i;
        i
    }

    /// The queue of `topic`-`partition`, created on first use.
    fn queue(&mut self, topic: &str, partition: i32) -> &mut PartitionQueue {
        self.topic(topic).queue(partition)
    }

    /// Seals what is ready and takes one batch from each partition that has
    /// none in flight.
    pub fn drain(&mut self, config: &ProducerConfig, now: Instant, closing: bool) -> Drained {
        let mut out = Drained {
            ready: Vec::new(),
            expired: Vec::new(),
            next: None,
        };
        let mut any_open = false;
        let earliest = |next: &mut Option<Instant>, t: Instant| {
            *next = Some(next.map_or(t, |n: Instant| n.min(t)));
        };
        self.active.retain(|&(ti, partition)| {
            let Some(t) = self.topics.get_mut(ti) else {
                return false;
            };
            let topic = t.name.as_str();
            let Some(q) = usize::try_from(partition)
                .ok()
                .and_then(|p| t.partitions.get_mut(p))
            else {
                return false;
            };
            if let Some(o) = &q.open {
                let due = o.created + config.linger;
                if o.bytes >= config.batch_size || due <= now || self.flush_requested || closing {
                    let o = q.open.take().expect("checked");
                    q.last_batch_bytes = o.bytes;
                    q.sealed.push_back(seal(config, topic, partition, o));
                } else {
                    any_open = true;
                    earliest(&mut out.next, due);
                }
            }
            if !q.in_flight {
                while q.sealed.front().is_some_and(|b| b.deadline <= now) {
                    out.expired.push(q.sealed.pop_front().expect("checked"));
                }
                if let Some(b) = q.sealed.front() {
                    match q.retry_at {
                        Some(r) if r > now => earliest(&mut out.next, r.min(b.deadline)),
                        _ => {
                            q.retry_at = None;
                            q.in_flight = true;
                            let mut b = q.sealed.pop_front().expect("checked");
                            if let Encoding::Pending(Records::Held(h)) = &mut b.encoding {
                                if h.buffer.is_none() {
                                    h.buffer = self.pool.pop();
                                }
                            }
                            out.ready.push(b);
                        }
                    }
                }
            }
            q.listed = q.open.is_some() || !q.sealed.is_empty();
            q.listed
        });
        if !any_open {
            self.flush_requested = false;
        }
        out
    }

    /// Assigns the batch's sequence numbers for producer `(id, epoch)` (or
    /// keeps those it has for the same producer); [`Batch::finish`]
    /// writes them in.
    pub fn stamp(&mut self, batch: &mut Batch, producer: Option<(i64, i16)>) {
        let Some((id, epoch)) = producer else { return };
        if matches!(batch.stamped, Some((i, e, _)) if i == id && e == epoch) {
            return;
        }
        let q = self.queue(&batch.topic, batch.partition);
        let seq = q.next_sequence;
        q.next_sequence = seq.wrapping_add(batch.records as i32) & i32::MAX;
        batch.stamped = Some((id, epoch, seq));
    }

    /// A new producer id: every partition's sequence starts again at 0.
    pub fn reset_sequences(&mut self) {
        for q in self.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            q.next_sequence = 0;
        }
    }

    /// The batch's partition has nothing in flight any more.
    pub fn done(&mut self, topic: &str, partition: i32) {
        if let Some(q) = self
            .index
            .get(topic)
            .and_then(|i| self.topics.get_mut(*i))
            .and_then(|t| t.partitions.get_mut(usize::try_from(partition).ok()?))
        {
            q.in_flight = false;
        }
    }

    /// Puts a batch back at the head of its partition, to be sent after `backoff`.
    pub fn retry(&mut self, batch: Batch, backoff: Duration) {
        let i = self.topic_index(&batch.topic);
        let t = &mut self.topics[i];
        if !backoff.is_zero() {
            t.stale = true; // the partition is not available meanwhile
            t.meta_expired = true; // and its leader may have moved
        }
        let q = t.queue(batch.partition);
        q.list(&mut self.active, i, batch.partition);
        q.in_flight = false;
        q.retry_at = Some(Instant::now() + backoff);
        q.sealed.push_front(batch);
    }

    /// Fails everything not in flight; returns the number of records failed.
    pub fn fail_all(&mut self, err: impl Fn() -> Error) -> usize {
        self.fail_unsent(err).0
    }

    /// Fails everything not in flight; returns the number of records
    /// failed and whether any of them had sequence numbers assigned (a
    /// batch waiting to be retried), which leaves a gap in its partition's
    /// sequence.
    pub fn fail_unsent(&mut self, err: impl Fn() -> Error) -> (usize, bool) {
        let mut n = 0;
        let mut stamped = false;
        for t in self.topics.iter_mut() {
            t.stale = true;
            for q in t.partitions.iter_mut() {
                if let Some(o) = q.open.take() {
                    n += o.records as usize;
                    drop(o.permit);
                    o.completion.failed(err());
                }
                for b in q.sealed.drain(..) {
                    stamped |= b.stamped.is_some();
                    n += b.fail(err());
                }
                q.retry_at = None;
                q.listed = false;
            }
        }
        self.active.clear();
        (n, stamped)
    }
}

/// Writes producer id, epoch and base sequence into a built batch (the
/// batch header editor of kpax-proto recomputes the CRC).
fn stamp_producer(data: &mut BytesMut, id: i64, epoch: i16, seq: i32) {
    match kpax_proto::records::BatchHeaderMut::new(data) {
        Ok(mut header) => {
            header.set_producer(id, epoch, seq);
        }
        // The accumulator only holds record batches v2 it built itself.
        Err(e) => {
            debug_assert!(false, "stamping a batch that is not v2: {e}");
            tracing::error!(error = %e, "cannot stamp the producer into a batch");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::PartitionMeta;
    use kpax_proto::generated::ErrorCode;
    use kpax_proto::records::Batches;

    fn meta(leaders: &[i32]) -> Arc<TopicMeta> {
        Arc::new(TopicMeta {
            name: Some("t".into()),
            topic_id: Default::default(),
            error: ErrorCode::NONE,
            is_internal: false,
            partitions: leaders
                .iter()
                .enumerate()
                .map(|(i, l)| PartitionMeta {
                    partition: i as i32,
                    leader: *l,
                    leader_epoch: 0,
                    replicas: vec![],
                    isr: vec![],
                    error: ErrorCode::NONE,
                })
                .collect(),
        })
    }

    #[test]
    fn sent_buffers_are_kept_only_when_unshared_and_within_the_pool() {
        let config = ProducerConfig::default();
        let mut acc = Accumulator::default();
        let data = Bytes::from(vec![7u8; 1000]);
        let held = data.clone();
        acc.recycle(&config, data);
        assert!(acc.pool.is_empty(), "a request still holds it");
        drop(held);
        for _ in 0..POOL_BUFFERS + 3 {
            acc.recycle(&config, Bytes::from(vec![7u8; 1000]));
        }
        assert_eq!(acc.pool.len(), POOL_BUFFERS);
        assert!(acc.pool.iter().all(|b| b.capacity() >= 1000));
        acc.pool.clear();
        acc.recycle(&config, Bytes::from(vec![0u8; config.batch_size * 2 + 1]));
        assert!(acc.pool.is_empty(), "oversized buffers are not kept");
    }

    #[test]
    fn drain_looks_only_at_partitions_in_use() {
        let config = ProducerConfig::default();
        let memory = Arc::new(tokio::sync::Semaphore::new(1 << 20));
        let mut acc = Accumulator::default();
        let md = meta(&vec![1; 10_000]);
        for p in [9_000, 7, 9_000] {
            let mut record = ProducerRecord::new("t", "v").with_partition(p);
            let permit = memory.clone().try_acquire_many_owned(100).unwrap();
            assert!(acc
                .append(&config, &mut record, Some(&md), Some(0), 0, permit)
                .is_ok());
        }
        assert_eq!(
            acc.active,
            [(0, 9_000), (0, 7)],
            "listed once each, as used"
        );
        acc.flush_requested = true;
        let drained = acc.drain(&config, Instant::now(), false);
        let mut sent: Vec<i32> = drained.ready.iter().map(|b| b.partition).collect();
        sent.sort_unstable();
        assert_eq!(sent, [7, 9_000]);
        assert!(acc.active.is_empty(), "nothing open or sealed is left");
        // A retried batch is listed again and drained once its partition is done.
        let mut ready = drained.ready;
        let batch = ready.pop().expect("two batches");
        let partition = batch.partition;
        acc.retry(batch, Duration::ZERO);
        assert_eq!(acc.active, [(0, partition)]);
        acc.done("t", partition);
        let again = acc.drain(&config, Instant::now(), false);
        assert_eq!(again.ready.len(), 1);
        assert_eq!(again.ready[0].partition, partition);
        assert!(acc.active.is_empty());
    }

    #[test]
    fn cached_metadata_is_asked_for_again() {
        let mut acc = Accumulator::default();
        let q = acc.topic("t");
        assert!(!q.meta(None, Some(0)), "nothing cached yet");
        assert!(q.meta(Some(&meta(&[1, -1, 2])), Some(0)));
        assert_eq!(
            q.available(),
            [0, 2],
            "partitions without a leader left out"
        );
        // Reused for META_REUSE records within META_REUSE_MS ...
        for _ in 0..META_REUSE {
            assert!(q.meta(None, Some(50)));
        }
        assert!(!q.meta(None, Some(50)), "... then asked for again");
        assert!(q.meta(Some(&meta(&[1, 1, 2, 3])), Some(1000)));
        assert_eq!(q.available(), [0, 1, 2, 3], "new metadata, new partitions");
        assert!(!q.meta(None, Some(1000 + META_REUSE_MS as i64 + 1)));
        // A partition waiting out a retry backoff is taken out.
        assert!(q.meta(Some(&meta(&[1, 1, 2, 3])), Some(0)));
        q.queue(3).retry_at = Some(Instant::now() + Duration::from_secs(60));
        q.stale = true;
        assert_eq!(q.available(), [0, 1, 2]);
    }

    /// Makes `open` partition t-0's open batch, listed for drain as
    /// `append` lists it, and drains with a flush: the batches ready.
    fn flush_open(config: &ProducerConfig, open: OpenBatch) -> Vec<Batch> {
        let mut acc = Accumulator::default();
        acc.queue("t", 0).open = Some(open);
        acc.topics[0].partitions[0].list(&mut acc.active, 0, 0);
        acc.flush_requested = true;
        acc.drain(config, Instant::now(), false).ready
    }

    /// An open batch of one record.
    fn one_record(memory: &Arc<tokio::sync::Semaphore>) -> OpenBatch {
        let mut builder = RecordBatchBuilder::new(0);
        builder.append(1, None, Some(b"v"), &[]).unwrap();
        OpenBatch {
            body: Records::Written(builder),
            completion: Completion::new("t", 0),
            records: 1,
            bytes: 1,
            created: Instant::now(),
            permit: memory.clone().try_acquire_many_owned(1).unwrap(),
        }
    }

    #[tokio::test]
    async fn a_batch_that_cannot_be_encoded_is_sealed_and_fails_when_finished() {
        let memory = Arc::new(tokio::sync::Semaphore::new(1000));
        let completion = Completion::new("t", 0);
        let futures: Vec<_> = (0..3).map(|i| completion.future(i, 0)).collect();
        // A builder with no record cannot be finished: the encoding error.
        let mut ready = flush_open(
            &ProducerConfig::default(),
            OpenBatch {
                body: Records::Written(RecordBatchBuilder::new(0)),
                completion,
                records: 3,
                bytes: 300,
                created: Instant::now(),
                permit: memory.clone().try_acquire_many_owned(300).unwrap(),
            },
        );
        assert_eq!(ready.len(), 1, "sealed, the error kept for the sender");
        let mut b = ready.pop().unwrap();
        assert!(b.data.is_empty(), "nothing encoded");
        let e = b.finish().expect_err("no record: no batch");
        assert!(matches!(&e, Error::Records { context, .. } if context == "t-0"));
        assert_eq!(b.fail(e), 3, "the producer must resolve all three");
        assert_eq!(memory.available_permits(), 1000, "its memory is released");
        for f in futures {
            assert!(matches!(f.await, Err(Error::Records { .. })));
        }
    }

    #[test]
    fn a_zstd_batch_is_finished_once_by_the_sender() {
        let config = ProducerConfig::default().with_compression(Compression::Zstd);
        let memory = Arc::new(tokio::sync::Semaphore::new(1000));
        let mut b = flush_open(&config, one_record(&memory)).pop().unwrap();
        assert!(b.data.is_empty(), "sealed, not yet compressed");
        b.finish().unwrap();
        let data = b.data.clone();
        assert!(Batches::new(data.clone()).next().unwrap().is_ok());
        b.finish().unwrap();
        assert_eq!(b.data, data, "a second finish changes nothing");
    }

    #[test]
    fn sequence_numbers_are_written_as_the_batch_is_finished_and_again_after_a_reset() {
        let memory = Arc::new(tokio::sync::Semaphore::new(1000));
        let mut acc = Accumulator::default();
        let header = |b: &Batch| {
            // Parsing checks the CRC.
            let kpax_proto::records::Batch::V2(v2) =
                Batches::new(b.data.clone()).next().unwrap().unwrap()
            else {
                panic!("v2")
            };
            let h = v2.header();
            (h.producer_id, h.producer_epoch, h.base_sequence)
        };
        let mut first = flush_open(&ProducerConfig::default(), one_record(&memory))
            .pop()
            .unwrap();
        assert!(
            first.data.is_empty(),
            "sealed, finished by its request's task"
        );
        acc.stamp(&mut first, Some((7, 1)));
        first.finish().unwrap();
        assert_eq!(header(&first), (7, 1, 0));
        let mut second = flush_open(&ProducerConfig::default(), one_record(&memory))
            .pop()
            .unwrap();
        acc.stamp(&mut second, Some((7, 1)));
        second.finish().unwrap();
        assert_eq!(header(&second), (7, 1, 1), "the partition's next sequence");
        // A retry for the same producer keeps its numbers...
        acc.stamp(&mut second, Some((7, 1)));
        second.finish().unwrap();
        assert_eq!(header(&second), (7, 1, 1));
        // ...and after a new producer id they start again, written into
        // the encoded batch.
        acc.reset_sequences();
        acc.stamp(&mut second, Some((8, 0)));
        second.finish().unwrap();
        assert_eq!(header(&second), (8, 0, 0));
    }

    /// Appends `record` to `acc` with its size estimate's permits.
    fn append(
        acc: &mut Accumulator,
        config: &ProducerConfig,
        memory: &Arc<tokio::sync::Semaphore>,
        mut record: ProducerRecord,
        timestamp: i64,
    ) -> (Appended, ProducerRecord) {
        let permits = record.size_estimate() as u32;
        let permit = memory.clone().try_acquire_many_owned(permits).unwrap();
        let md = meta(&[1, 1]);
        let a = acc.append(config, &mut record, Some(&md), Some(0), timestamp, permit);
        (a.ok().expect("appended"), record)
    }

    #[test]
    fn large_records_are_held_by_reference_and_written_when_drained() {
        const HOLD_MIN: usize = 2048;
        let config = ProducerConfig::default()
            .with_batch_size(3 * HOLD_MIN)
            .with_copy_records_below(HOLD_MIN);
        let memory = Arc::new(tokio::sync::Semaphore::new(1 << 20));
        let mut acc = Accumulator::default();
        let value = Bytes::from(vec![b'x'; HOLD_MIN]);
        let record = |i: u8| {
            ProducerRecord::new("t", value.clone())
                .with_partition(0)
                .with_key(vec![i])
                .with_header("h", Some(Bytes::from(vec![i; 3])))
        };
        let (a, taken) = append(&mut acc, &config, &memory, record(0), 10);
        assert!(a.wake, "a new batch wakes the sender");
        assert!(
            taken.value.is_none() && taken.headers.is_empty(),
            "held, not copied"
        );
        // A small record joins the held batch, and is held too.
        let small = || ProducerRecord::new("t", "s").with_partition(0);
        let (_, taken) = append(&mut acc, &config, &memory, small(), 11);
        assert!(taken.value.is_none(), "held with its batch");
        let (a, _) = append(&mut acc, &config, &memory, record(2), 12);
        assert!(!a.wake, "neither new nor full");
        // The next large record does not fit: the batch of three is sealed.
        append(&mut acc, &config, &memory, record(3), 13);
        // A recycled buffer is given to the held batch as it is drained.
        acc.recycle(&config, Bytes::from(vec![0u8; 10 * HOLD_MIN]));
        let mut ready = acc.drain(&config, Instant::now(), false).ready;
        assert_eq!(ready.len(), 1);
        assert!(acc.pool.is_empty(), "the pooled buffer went to the batch");
        let mut b = ready.pop().unwrap();
        assert!(b.data.is_empty(), "written by its request's task, not yet");
        assert_eq!(b.records, 3);
        // The partition is in flight: a record that fills the open batch
        // does not wake the sender, which drains again as the request ends.
        let (a, _) = append(&mut acc, &config, &memory, record(4), 14);
        assert!(!a.wake, "the partition is in flight");
        b.finish().unwrap();
        let kpax_proto::records::Batch::V2(v2) =
            Batches::new(b.data.clone()).next().unwrap().unwrap()
        else {
            panic!("v2")
        };
        let records: Vec<_> = v2.records().unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].value(), Some(&b"s"[..]));
        assert_eq!(records[1].timestamp, 11);
        for (r, i) in [(&records[0], 0u8), (&records[2], 2)] {
            assert_eq!(r.timestamp, 10 + i64::from(i));
            assert_eq!(r.key(), Some(&[i][..]));
            assert_eq!(r.value(), Some(&value[..]));
            assert_eq!(r.last_header(b"h"), Some(Some(&[i; 3][..])));
        }
        // The held batch keeps its records' memory until it is settled.
        let size = |r: ProducerRecord| r.size_estimate();
        let sent = size(record(0)) + size(small()) + size(record(2));
        let open = size(record(3)) + size(record(4));
        assert_eq!(memory.available_permits(), (1 << 20) - sent - open);
        drop(b);
        assert_eq!(memory.available_permits(), (1 << 20) - open);
        // A batch opened by a record under the threshold copies it.
        let (_, kept) = append(&mut acc, &config, &memory, small().with_partition(1), 15);
        assert_eq!(kept.value.as_deref(), Some(&b"s"[..]), "copied, not taken");
    }

    #[test]
    fn stamping_keeps_the_batch_valid() {
        let mut b = RecordBatchBuilder::new(0);
        b.append(1, None, Some(b"v"), &[]).unwrap();
        b.append(2, Some(b"k"), Some(b"w"), &[]).unwrap();
        let mut data = b.finish_mut().unwrap();
        stamp_producer(&mut data, 4242, 7, 100);
        let mut batches = Batches::new(data.freeze());
        let batch = batches.next().unwrap().unwrap();
        let kpax_proto::records::Batch::V2(v2) = batch else {
            panic!("v2")
        };
        let h = v2.header();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (4242, 7, 100)
        );
    }
}
