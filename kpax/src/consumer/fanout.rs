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
//! A handler error stops the run: no more records are started, running
//! ones finish, the contiguous processed prefix is committed (never the
//! failed record) and the error is returned. After a restart from the
//! committed offsets nothing is lost; records processed after the commit
//! point may be processed again (at least once).
//!
//! The consumer must not auto-commit (its positions run ahead of the
//! processing): with a group, `enable_auto_commit` must be off. Without a
//! group nothing is committed ([`FanOutReport::committable`] says where
//! processing got to).

use super::{Consumer, ConsumerRecord, TopicPartition};
use crate::error::Error;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

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
    /// The consumer failed or was closed, a commit failed, or the
    /// consumer is misconfigured for fan-out (auto commit on).
    #[error("fan-out: {0}")]
    Consumer(#[from] Error),
}

/// What a fan-out run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanOutReport {
    /// Records the handler processed successfully.
    pub processed: u64,
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
}

impl FanOut {
    /// At most `concurrency` records outstanding (at least 1), in order per
    /// partition, committing every second.
    pub fn new(concurrency: usize) -> FanOut {
        FanOut {
            concurrency: concurrency.max(1),
            order_by: OrderBy::Partition,
            commit_interval: Duration::from_secs(1),
        }
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
        let config = &consumer.shared.config;
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
        let mut running: Vec<(Lane, i64, Pin<Box<Fut>>)> = Vec::new();
        let mut outstanding = 0usize;
        let mut report = FanOutReport::default();
        let mut failure: Option<FanOutError> = None;
        let mut stopping = false;
        let mut committed: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        // one commit at a time, polled alongside the handlers
        let mut committing: Option<Committing<'_>> = None;
        let mut tick = tokio::time::interval(self.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut until = std::pin::pin!(until);
        let mut start = |r: ConsumerRecord, lane: Lane, running: &mut Vec<_>| {
            let offset = r.offset;
            running.push((lane, offset, Box::pin(handler(r))));
        };
        loop {
            if running.is_empty() && (stopping || failure.is_some()) {
                break;
            }
            let can_take = !stopping && failure.is_none() && outstanding < self.concurrency;
            tokio::select! {
                biased;
                (lane, offset, result) = next_done(&mut running), if !running.is_empty() => {
                    outstanding -= 1;
                    let tp = (lane.0.to_string(), lane.1);
                    match result {
                        Ok(()) => {
                            report.processed += 1;
                            progress.done(&tp, offset);
                        }
                        Err(e) => {
                            if failure.is_none() {
                                failure = Some(FanOutError::Handler {
                                    topic: lane.0.clone(),
                                    partition: lane.1,
                                    offset,
                                    source: e.into(),
                                });
                            }
                        }
                    }
                    match lanes.get_mut(&lane).and_then(VecDeque::pop_front) {
                        Some(next) if failure.is_none() => start(next, lane, &mut running),
                        _ => {
                            lanes.remove(&lane);
                            busy.remove(&lane);
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
                        progress.take(&(r.topic.to_string(), r.partition), r.offset);
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
                            start(r, lane, &mut running);
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

/// The next handler to finish: its lane, offset and result.
async fn next_done<Fut, T>(running: &mut Vec<(Lane, i64, Pin<Box<Fut>>)>) -> (Lane, i64, T)
where
    Fut: Future<Output = T>,
{
    std::future::poll_fn(|cx| {
        for i in 0..running.len() {
            if let Poll::Ready(out) = running[i].2.as_mut().poll(cx) {
                let (lane, offset, _) = running.swap_remove(i);
                return Poll::Ready((lane, offset, out));
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
        let tp = ("t".to_string(), 0);
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
