//! Processing records concurrently (the Go client's worker fan-out), with
//! commits that never pass an unprocessed record.
//!
//! Records are taken from the consumer in order and handed to an async
//! handler. Records of one *lane* (a partition, or a key within a
//! partition: [`OrderBy`]) are processed one after the other, in offset
//! order; different lanes run concurrently. At most `concurrency` records
//! are taken and not yet processed (running or waiting for their lane):
//! at that bound no more records are taken (backpressure).
//!
//! Per partition, the committed offset is the first offset not yet
//! processed (or, with none outstanding, one past the last taken): a record
//! processed before an earlier one does not move the commit past the
//! earlier one. Commits go every `commit_interval` and when the run ends.
//! A handler error goes through the run's failure policy (the Go client's
//! promise): the record is retried with exponential backoff up to
//! [`FanOut::with_retries`] times (its lane waits meanwhile), and then,
//! per [`OnFailure`], the run stops (the default), the record is skipped
//! (committed past), or it is written to a dead-letter topic with headers
//! saying where it came from and why, and committed past only once that
//! write is acknowledged. [`FanOut::with_failure_threshold`] stops the run
//! when too many records fail within a time window. When the run stops
//! on a failure, no more records are started, running ones finish, the
//! contiguous processed prefix is committed (never the failed record) and
//! the error is returned. After a restart from the committed offsets
//! nothing is lost; records processed after the commit point may be
//! processed again (at least once).
//!
//! The consumer must not auto-commit (its positions run ahead of the
//! processing): with a group, `enable_auto_commit` must be off. Without a
//! group nothing is committed ([`FanOutReport::committable`] says where
//! processing got to).

use crate::consumer::{Consumer, ConsumerRecord};
use crate::error::Error;
use crate::producer::{Producer, ProducerRecord};
use crate::topic_partition::TopicPartition;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Which records must be processed in order (one after the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderBy {
    /// All records of a partition.
    #[default]
    Partition,
    /// Records of a partition with the same key (records without a key
    /// share one lane per partition).
    Key,
}

/// Why a fan-out run stopped.
#[derive(Debug, thiserror::Error)]
pub enum FanOutError {
    /// The handler failed on this record; the commit stays at or before it.
    #[error("handler failed on {topic}-{partition} offset {offset}: {source}")]
    Handler {
        /// The record's topic.
        topic: Arc<str>,
        /// The record's partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// The handler's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Writing a failed record to the dead-letter topic failed; the
    /// commit stays at or before it.
    #[error("dead-lettering {topic}-{partition} offset {offset} failed: {source}")]
    DeadLetter {
        /// The record's topic.
        topic: Arc<str>,
        /// The record's partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// The producer's error.
        source: Box<Error>,
    },
    /// More records failed within the window than the threshold allows
    /// ([`FanOut::with_failure_threshold`]); the last one is named.
    #[error("{failures} records failed within {window:?}; the last, {topic}-{partition} offset {offset}: {source}")]
    TooManyFailures {
        /// Failures counted in the window.
        failures: usize,
        /// The window.
        window: Duration,
        /// The last failed record's topic.
        topic: Arc<str>,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// The handler's error on it.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The consumer failed or was closed, a commit failed, or the
    /// consumer is misconfigured for fan-out (auto commit on).
    #[error("fan-out: {0}")]
    Consumer(#[from] Error),
}

/// What happens to a record the handler failed on (after its retries).
#[derive(Clone, Default)]
pub enum OnFailure {
    /// Stop the run ([`FanOutError::Handler`]); the commit stays before
    /// the record.
    #[default]
    Stop,
    /// Skip the record: it counts as processed and is committed past.
    Skip,
    /// Write the record (key, value, headers, timestamp) to `topic`, with
    /// headers `kpax.dlq.topic`, `kpax.dlq.partition`, `kpax.dlq.offset`
    /// and `kpax.dlq.error` added; commit past it once the write is
    /// acknowledged (a failed write stops the run:
    /// [`FanOutError::DeadLetter`]).
    DeadLetter {
        /// The producer that writes the dead letters.
        producer: Producer,
        /// The dead-letter topic.
        topic: String,
    },
}

impl std::fmt::Debug for OnFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OnFailure::Stop => f.write_str("Stop"),
            OnFailure::Skip => f.write_str("Skip"),
            OnFailure::DeadLetter { topic, .. } => {
                f.debug_struct("DeadLetter").field("topic", topic).finish()
            }
        }
    }
}

/// What a fan-out run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanOutReport {
    /// Records the handler processed successfully.
    pub processed: u64,
    /// Handler calls made again after a failure.
    pub retried: u64,
    /// Records skipped after failing ([`OnFailure::Skip`]).
    pub skipped: u64,
    /// Records written to the dead-letter topic ([`OnFailure::DeadLetter`]).
    pub dead_lettered: u64,
    /// The most records taken and not yet processed at once.
    pub max_outstanding: usize,
    /// Per partition, the offset up to which every taken record was
    /// processed (what a commit would store).
    pub committable: BTreeMap<TopicPartition, i64>,
}

/// Processes a consumer's records concurrently; see the module docs.
#[derive(Debug, Clone)]
pub struct FanOut {
    concurrency: usize,
    order_by: OrderBy,
    commit_interval: Duration,
    retries: u32,
    first_backoff: Duration,
    max_backoff: Duration,
    on_failure: OnFailure,
    threshold: Option<(usize, Duration)>,
}

impl FanOut {
    /// At most `concurrency` records outstanding (at least 1), in order per
    /// partition, committing every second.
    pub fn new(concurrency: usize) -> FanOut {
        FanOut {
            concurrency: concurrency.max(1),
            order_by: OrderBy::Partition,
            commit_interval: Duration::from_secs(1),
            retries: 0,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            on_failure: OnFailure::Stop,
            threshold: None,
        }
    }

    /// Calls the handler again on a record it failed on, up to `retries`
    /// times, waiting `backoff`, then twice that, and so on (at most 10 s)
    /// between attempts; the record's lane waits meanwhile. Default: no
    /// retries.
    pub fn with_retries(mut self, retries: u32, backoff: Duration) -> FanOut {
        self.retries = retries;
        self.first_backoff = backoff;
        self.max_backoff = self.max_backoff.max(backoff);
        self
    }

    /// What happens to a record that still fails after its retries.
    pub fn on_failure(mut self, policy: OnFailure) -> FanOut {
        self.on_failure = policy;
        self
    }

    /// Stops the run ([`FanOutError::TooManyFailures`]) when more than
    /// `max` records fail (after their retries) within `window`, whatever
    /// [`OnFailure`] says: a handler failing on everything is an outage,
    /// not bad records.
    pub fn with_failure_threshold(mut self, max: usize, window: Duration) -> FanOut {
        self.threshold = Some((max, window));
        self
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.first_backoff
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max_backoff)
    }

    /// Sets which records are processed in order.
    pub fn with_order_by(mut self, order_by: OrderBy) -> FanOut {
        self.order_by = order_by;
        self
    }

    /// Sets how often the processed prefix is committed (at least 10 ms).
    pub fn with_commit_interval(mut self, every: Duration) -> FanOut {
        self.commit_interval = every.max(Duration::from_millis(10));
        self
    }

    /// Takes records from `consumer` and runs `handler` on each until
    /// `until` completes (then the records taken are finished, committed,
    /// and the report returned) or an error stops the run.
    ///
    /// # Errors
    /// [`FanOutError::Handler`] for the first record the handler failed on;
    /// [`FanOutError::Consumer`] for a consumer error (including closing
    /// it), a failed final commit, or auto commit on with a group.
    pub async fn run<F, Fut, E>(
        &self,
        consumer: &Consumer,
        mut handler: F,
        until: impl Future<Output = ()>,
    ) -> Result<FanOutReport, FanOutError>
    where
        F: FnMut(ConsumerRecord) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let config = consumer.config();
        let grouped = config.group_id.is_some();
        if grouped && config.enable_auto_commit {
            return Err(Error::Config(
                "fan-out commits what was processed: turn enable_auto_commit off".into(),
            )
            .into());
        }
        let mut progress = Progress::default();
        let mut lanes: HashMap<Lane, VecDeque<ConsumerRecord>> = HashMap::new();
        let mut busy: HashSet<Lane> = HashSet::new();
        let mut running: Vec<Task<Fut>> = Vec::new();
        let mut outstanding = 0usize;
        let mut report = FanOutReport::default();
        let mut failure: Option<FanOutError> = None;
        let mut stopping = false;
        let mut committed: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        // when records failed for good, for the failure threshold
        let mut failed_at: VecDeque<Instant> = VecDeque::new();
        // one commit at a time, polled alongside the handlers
        let mut committing: Option<Committing<'_>> = None;
        let mut tick = tokio::time::interval(self.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut until = std::pin::pin!(until);
        // a copy of each record is kept while it may be needed again
        let keep = self.retries > 0 || matches!(self.on_failure, OnFailure::DeadLetter { .. });
        let mut call = |r: ConsumerRecord| Box::pin(handler(r));
        let start = |r: ConsumerRecord,
                     lane: Lane,
                     running: &mut Vec<Task<Fut>>,
                     call: &mut dyn FnMut(ConsumerRecord) -> Pin<Box<Fut>>| {
            let offset = r.offset;
            let record = keep.then(|| r.clone());
            running.push(Task {
                lane,
                offset,
                attempt: 0,
                record,
                work: Work::Handler(call(r)),
            });
        };
        loop {
            if running.is_empty() && (stopping || failure.is_some()) {
                break;
            }
            let can_take = !stopping && failure.is_none() && outstanding < self.concurrency;
            tokio::select! {
                biased;
                (task, step) = next_done(&mut running), if !running.is_empty() => {
                    let Task { lane, offset, attempt, record, .. } = task;
                    let tp = TopicPartition::new(&*lane.0, lane.1);
                    let outcome = match step {
                        Step::Handled(Ok(())) => {
                            report.processed += 1;
                            progress.done(&tp, offset);
                            Outcome::Finished
                        }
                        Step::Handled(Err(e)) => {
                            let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                            match record {
                                Some(r) if attempt < self.retries && failure.is_none() => {
                                    tracing::debug!(topic = %lane.0, partition = lane.1, offset, attempt, error = %e, "handler failed; retrying");
                                    report.retried += 1;
                                    let wait = self.backoff(attempt);
                                    running.push(Task {
                                        lane: lane.clone(),
                                        offset,
                                        attempt: attempt + 1,
                                        work: Work::Delayed(Box::pin(tokio::time::sleep(wait)), call(r.clone())),
                                        record: Some(r),
                                    });
                                    Outcome::Pending
                                }
                                record => {
                                    let now = Instant::now();
                                    failed_at.push_back(now);
                                    let too_many = self.threshold.and_then(|(max, window)| {
                                        while failed_at.front().is_some_and(|t| now.duration_since(*t) > window) {
                                            failed_at.pop_front();
                                        }
                                        (failed_at.len() > max).then_some(window)
                                    });
                                    if let Some(window) = too_many {
                                        failure.get_or_insert(FanOutError::TooManyFailures {
                                            failures: failed_at.len(),
                                            window,
                                            topic: lane.0.clone(),
                                            partition: lane.1,
                                            offset,
                                            source: e,
                                        });
                                        Outcome::Failed
                                    } else {
                                        match (&self.on_failure, record) {
                                            (OnFailure::Skip, _) => {
                                                tracing::debug!(topic = %lane.0, partition = lane.1, offset, error = %e, "handler failed; record skipped");
                                                report.skipped += 1;
                                                progress.done(&tp, offset);
                                                Outcome::Finished
                                            }
                                            (OnFailure::DeadLetter { producer, topic }, Some(r)) => {
                                                running.push(Task {
                                                    lane: lane.clone(),
                                                    offset,
                                                    attempt,
                                                    work: Work::DeadLetter(dead_letter(producer.clone(), topic.clone(), &r, &*e)),
                                                    record: None,
                                                });
                                                Outcome::Pending
                                            }
                                            _ => {
                                                failure.get_or_insert(FanOutError::Handler {
                                                    topic: lane.0.clone(),
                                                    partition: lane.1,
                                                    offset,
                                                    source: e,
                                                });
                                                Outcome::Failed
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        Step::DeadLettered(Ok(())) => {
                            report.dead_lettered += 1;
                            progress.done(&tp, offset);
                            Outcome::Finished
                        }
                        Step::DeadLettered(Err(source)) => {
                            failure.get_or_insert(FanOutError::DeadLetter {
                                topic: lane.0.clone(),
                                partition: lane.1,
                                offset,
                                source: Box::new(source),
                            });
                            Outcome::Failed
                        }
                    };
                    if outcome != Outcome::Pending {
                        outstanding -= 1;
                        match lanes.get_mut(&lane).and_then(VecDeque::pop_front) {
                            Some(next) if failure.is_none() => start(next, lane, &mut running, &mut call),
                            _ => {
                                lanes.remove(&lane);
                                busy.remove(&lane);
                            }
                        }
                    }
                }
                _ = &mut until, if !stopping => stopping = true,
                (changed, r) = async { committing.as_mut().expect("guarded").await },
                    if committing.is_some() =>
                {
                    committing = None;
                    match r {
                        Ok(()) => committed.extend(changed),
                        Err(e) => {
                            tracing::debug!(error = %e, "fan-out commit failed; retrying later");
                        }
                    }
                }
                // before taking records, so that a full buffer cannot
                // starve the commits
                _ = tick.tick(), if grouped && committing.is_none() => {
                    let changed = changes(&progress, &committed);
                    if !changed.is_empty() {
                        committing = Some(Box::pin(async move {
                            let r = consumer.commit_offsets(changed.clone()).await;
                            (changed, r)
                        }));
                    }
                }
                r = consumer.recv(), if can_take => match r {
                    Ok(r) => {
                        progress.take(&TopicPartition::new(&*r.topic, r.partition), r.offset);
                        outstanding += 1;
                        report.max_outstanding = report.max_outstanding.max(outstanding);
                        let lane: Lane = (
                            r.topic.clone(),
                            r.partition,
                            match self.order_by {
                                OrderBy::Partition => None,
                                OrderBy::Key => r.key_bytes(),
                            },
                        );
                        if busy.insert(lane.clone()) {
                            start(r, lane, &mut running, &mut call);
                        } else {
                            lanes.entry(lane).or_default().push_back(r);
                        }
                    }
                    Err(e) => failure = Some(e.into()),
                },
            }
        }
        if let Some(c) = committing.take() {
            // the last commit must not be overtaken by an older one
            if let (changed, Ok(())) = c.await {
                committed.extend(changed);
            }
        }
        report.committable = progress.committable();
        let changed = changes(&progress, &committed);
        let last = if grouped && !changed.is_empty() {
            consumer.commit_offsets(changed).await
        } else {
            Ok(())
        };
        match failure {
            Some(f) => Err(f),
            None => last.map(|()| report).map_err(Into::into),
        }
    }
}

impl Consumer {
    /// Processes records concurrently until an error: at most
    /// `concurrency` outstanding, in order per partition or per key
    /// (`order_by`), committing only the contiguous processed prefix of
    /// each partition. See [`FanOut`] for a run that can be stopped.
    ///
    /// # Errors
    /// As [`FanOut::run`]; this never returns `Ok`.
    pub async fn process_concurrently<F, Fut, E>(
        &self,
        concurrency: usize,
        order_by: OrderBy,
        handler: F,
    ) -> Result<FanOutReport, FanOutError>
    where
        F: FnMut(ConsumerRecord) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        FanOut::new(concurrency)
            .with_order_by(order_by)
            .run(self, handler, std::future::pending())
            .await
    }
}

/// Records processed one after the other: topic, partition, and the key
/// when ordering by key.
type Lane = (Arc<str>, i32, Option<Bytes>);

/// One record at work: its handler (perhaps after a backoff), or its
/// dead-letter write.
struct Task<Fut> {
    lane: Lane,
    offset: i64,
    /// Handler calls made so far after the first.
    attempt: u32,
    /// A copy, kept while a retry or a dead letter may need it.
    record: Option<ConsumerRecord>,
    work: Work<Fut>,
}

enum Work<Fut> {
    Handler(Pin<Box<Fut>>),
    Delayed(Pin<Box<tokio::time::Sleep>>, Pin<Box<Fut>>),
    DeadLetter(Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>),
}

/// What a task ended with.
enum Step<T> {
    Handled(T),
    DeadLettered(Result<(), Error>),
}

/// What a finished task means for its record.
#[derive(PartialEq, Eq)]
enum Outcome {
    /// Done with (processed, skipped or dead-lettered): the lane goes on.
    Finished,
    /// Failed and the run stops.
    Failed,
    /// More work for it was queued (a retry, a dead letter).
    Pending,
}

/// The dead-letter copy of `r`: its key, value, headers and timestamp,
/// and headers saying where it came from and why it failed.
fn dead_letter(
    producer: Producer,
    topic: String,
    r: &ConsumerRecord,
    why: &(dyn std::error::Error + Send + Sync),
) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send>> {
    let mut out = ProducerRecord {
        topic,
        partition: None,
        key: r.key_bytes(),
        value: r.value_bytes(),
        headers: r
            .headers()
            .map(|h| {
                (
                    Bytes::copy_from_slice(h.key),
                    h.value.map(Bytes::copy_from_slice),
                )
            })
            .collect(),
        timestamp: (r.timestamp >= 0).then_some(r.timestamp),
    };
    for (k, v) in [
        ("kpax.dlq.topic", r.topic.to_string()),
        ("kpax.dlq.partition", r.partition.to_string()),
        ("kpax.dlq.offset", r.offset.to_string()),
        ("kpax.dlq.error", why.to_string()),
    ] {
        out.headers
            .push((Bytes::from_static(k.as_bytes()), Some(Bytes::from(v))));
    }
    Box::pin(async move { producer.send(out).await?.await.map(|_| ()) })
}

/// The next task to finish, and how it ended.
async fn next_done<Fut, T>(running: &mut Vec<Task<Fut>>) -> (Task<Fut>, Step<T>)
where
    Fut: Future<Output = T>,
{
    std::future::poll_fn(|cx| {
        for i in 0..running.len() {
            let step = match &mut running[i].work {
                Work::Handler(f) => f.as_mut().poll(cx).map(Step::Handled),
                // a finished Sleep stays ready: then the handler runs
                Work::Delayed(sleep, f) => match sleep.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => f.as_mut().poll(cx).map(Step::Handled),
                },
                Work::DeadLetter(f) => f.as_mut().poll(cx).map(Step::DeadLettered),
            };
            if let Poll::Ready(step) = step {
                let task = running.swap_remove(i);
                return Poll::Ready((task, step));
            }
        }
        Poll::Pending
    })
    .await
}

/// A commit under way: what it commits, and its result.
type Committing<'c> = Pin<
    Box<dyn Future<Output = (BTreeMap<TopicPartition, i64>, crate::error::Result<()>)> + Send + 'c>,
>;

/// The committable offsets that differ from the last committed ones.
fn changes(
    progress: &Progress,
    committed: &BTreeMap<TopicPartition, i64>,
) -> BTreeMap<TopicPartition, i64> {
    progress
        .committable()
        .into_iter()
        .filter(|(tp, o)| committed.get(tp) != Some(o))
        .collect()
}

/// Per partition: the offsets taken and not yet processed, and one past
/// the last taken.
#[derive(Debug, Default)]
struct Progress {
    parts: BTreeMap<TopicPartition, (BTreeSet<i64>, i64)>,
}

impl Progress {
    fn take(&mut self, tp: &TopicPartition, offset: i64) {
        let (outstanding, next) = self.parts.entry(tp.clone()).or_default();
        outstanding.insert(offset);
        *next = (*next).max(offset + 1);
    }

    fn done(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some((outstanding, _)) = self.parts.get_mut(tp) {
            outstanding.remove(&offset);
        }
    }

    /// Per partition, the first offset not processed.
    fn committable(&self) -> BTreeMap<TopicPartition, i64> {
        self.parts
            .iter()
            .map(|(tp, (outstanding, next))| {
                (tp.clone(), outstanding.first().copied().unwrap_or(*next))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: T) {}

    /// A run with a `Send` handler can be spawned (checked at compile time).
    #[allow(dead_code)]
    fn run_is_send(c: &Consumer, fan: &FanOut) {
        assert_send(fan.run(
            c,
            |_r| async { Ok::<(), std::io::Error>(()) },
            std::future::pending(),
        ));
    }

    #[test]
    fn the_commit_stops_at_the_first_unprocessed_offset() {
        let tp = TopicPartition::new("t", 0);
        let mut p = Progress::default();
        for o in 10..15 {
            p.take(&tp, o);
        }
        p.done(&tp, 12);
        p.done(&tp, 13);
        assert_eq!(p.committable()[&tp], 10);
        p.done(&tp, 10);
        assert_eq!(p.committable()[&tp], 11);
        p.done(&tp, 11);
        assert_eq!(p.committable()[&tp], 14);
        p.done(&tp, 14);
        assert_eq!(p.committable()[&tp], 15);
    }
}
