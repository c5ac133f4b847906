//! [`PartitionTable`]: the assigned partitions and what the consumer
//! knows of each ([`Part`]: position, fetch offset, pause, epoch, the
//! buffered chunks), with the round-robin queue of partitions that have
//! chunks, which `take` hands records out from.
//!
//! Every change to the assignment, a position or a buffer goes through a
//! named operation here; the table lives in the consumer's state, under
//! its lock.

use super::budget::Charge;
use super::{stats, ConsumerRecord, StartAt};
use crate::metrics::ConsumerMeters;
use crate::topic_partition::TopicPartition;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;
use tokio::sync::Notify;

/// Records of one fetched partition, handed out in order.
pub(crate) struct Chunk {
    records: VecDeque<ConsumerRecord>,
    /// The offset after the fetched batches these records came from: past
    /// the last record, and past control batches (transaction markers) and
    /// aborted records that follow it. The position moves there once the
    /// chunk is drained, as the Java consumer's does.
    next: Option<i64>,
    _charge: Option<Charge>,
}

/// One assigned partition.
#[derive(Default)]
pub(crate) struct Part {
    /// The next offset to hand out; `None` until `start` is resolved.
    pub position: Option<i64>,
    /// How to find the position.
    pub start: Option<StartAt>,
    /// The next offset to fetch.
    pub fetch_offset: i64,
    pub paused: bool,
    pub in_flight: bool,
    /// Bumped by seek: fetch results of an older epoch are dropped.
    pub epoch: u64,
    chunks: VecDeque<Chunk>,
    /// In the table's `ready` queue.
    queued: bool,
    pub retry_at: Option<Instant>,
    pub high_watermark: i64,
    /// The partition's lag gauge (metrics facade), once it is known.
    lag_gauge: Option<::metrics::Gauge>,
}

impl Part {
    /// A partition of `epoch` starting at `start`.
    pub(crate) fn new(start: StartAt, epoch: u64) -> Part {
        match start {
            // A known offset needs no lookup: fetch from it at once.
            StartAt::Offset(o) => Part {
                position: Some(o),
                fetch_offset: o,
                epoch,
                ..Part::default()
            },
            other => Part {
                start: Some(other),
                epoch,
                ..Part::default()
            },
        }
    }

    /// Sets the lag gauge from the position and high watermark now.
    pub(crate) fn update_lag(&mut self, meters: &ConsumerMeters, tp: &TopicPartition) {
        if let Some(pos) = self.position {
            let gauge = self
                .lag_gauge
                .get_or_insert_with(|| meters.lag(&tp.topic, tp.partition));
            gauge.set(stats::lag(pos, self.high_watermark) as f64);
        }
    }

    /// The position is found: hand out and fetch from `offset`.
    pub(crate) fn start_at(&mut self, offset: i64) {
        self.position = Some(offset);
        self.fetch_offset = offset;
        self.start = None;
    }

    /// The position is to be found again, as `start` says.
    pub(crate) fn restart(&mut self, start: StartAt) {
        self.position = None;
        self.start = Some(start);
    }

    /// Whether a fetch may be sent for it now: positioned, not paused,
    /// none in flight, at most one chunk waiting (fetch ahead: one chunk
    /// may wait while the next is fetched), and not backing off.
    fn fetchable(&self, now: Instant) -> bool {
        self.position.is_some()
            && !self.paused
            && !self.in_flight
            && self.chunks.len() < 2
            && self.retry_at.is_none_or(|t| t <= now)
    }

    /// Appends fetched records (the batches' end is `next`), holding
    /// `charge` (their bytes of the budget). Returns whether there are
    /// records to hand out. With none (only control batches or aborted
    /// records), the position still moves past them, after any records
    /// still buffered.
    pub(crate) fn append(
        &mut self,
        records: Vec<ConsumerRecord>,
        next: Option<i64>,
        charge: impl FnOnce() -> Charge,
    ) -> bool {
        if let Some(n) = next {
            self.fetch_offset = n.max(self.fetch_offset);
        }
        if !records.is_empty() {
            self.chunks.push_back(Chunk {
                records: records.into(),
                next,
                _charge: Some(charge()),
            });
            return true;
        }
        if let Some(n) = next {
            if self.chunks.is_empty() {
                self.position = self.position.map(|o| o.max(n));
            } else {
                self.chunks.push_back(Chunk {
                    records: VecDeque::new(),
                    next,
                    _charge: None,
                });
            }
        }
        false
    }
}

/// The assigned partitions, by topic and partition.
#[derive(Default)]
pub(crate) struct PartitionTable {
    parts: BTreeMap<TopicPartition, Part>,
    /// The partitions with chunks to hand out (and not paused), in
    /// round-robin order, one chunk a turn: `take` starts at the front,
    /// so that a take costs the partitions it hands records from, not a
    /// walk over every assigned partition (most of them empty at 10,000
    /// partitions). Unassigning a partition takes it out; an entry whose
    /// partition was sought, paused or drained since is dropped when it
    /// comes up.
    ready: VecDeque<TopicPartition>,
}

impl PartitionTable {
    /// Whether no partition is assigned.
    pub(crate) fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The assigned partitions, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &TopicPartition> {
        self.parts.keys()
    }

    /// The assigned partitions.
    pub(crate) fn assigned(&self) -> BTreeSet<TopicPartition> {
        self.parts.keys().cloned().collect()
    }

    /// Assigns `tp` (made by `part`) unless it is assigned already (then
    /// it keeps its position).
    pub(crate) fn assign(&mut self, tp: TopicPartition, part: impl FnOnce() -> Part) {
        self.parts.entry(tp).or_insert_with(part);
    }

    /// Unassigns `tp`; its buffer is dropped.
    pub(crate) fn remove(&mut self, tp: &TopicPartition) {
        if self.parts.remove(tp).is_some_and(|p| p.queued) {
            self.ready.retain(|q| q != tp);
        }
    }

    /// Unassigns every partition in `partitions`.
    pub(crate) fn revoke(&mut self, partitions: &BTreeSet<TopicPartition>) {
        self.parts.retain(|tp, _| !partitions.contains(tp));
        self.ready.retain(|tp| !partitions.contains(tp));
    }

    /// Unassigns everything.
    pub(crate) fn clear(&mut self) {
        self.parts.clear();
        self.ready.clear();
    }

    /// Puts `tp` in the round-robin queue if it has chunks to hand out
    /// (after [`Part::append`]) and is not queued or paused.
    pub(crate) fn mark_ready(&mut self, tp: &TopicPartition) {
        if let Some(p) = self.parts.get_mut(tp) {
            if !p.queued && !p.paused && !p.chunks.is_empty() {
                p.queued = true;
                self.ready.push_back(tp.clone());
            }
        }
    }

    /// `tp`'s state, if assigned.
    pub(crate) fn get_mut(&mut self, tp: &TopicPartition) -> Option<&mut Part> {
        self.parts.get_mut(tp)
    }

    /// `tp`'s state if it is still in `epoch` (no seek or new assignment
    /// since a fetch for it was planned).
    pub(crate) fn current(&mut self, tp: &TopicPartition, epoch: u64) -> Option<&mut Part> {
        self.parts.get_mut(tp).filter(|p| p.epoch == epoch)
    }

    /// Moves `tp`'s position (a seek): drops its buffered records, ends
    /// its fetch in flight (a new `epoch` drops the answer).
    pub(crate) fn seek(
        &mut self,
        tp: &TopicPartition,
        start: StartAt,
        epoch: impl FnOnce() -> u64,
    ) {
        if let Some(p) = self.parts.get_mut(tp) {
            p.chunks.clear();
            p.epoch = epoch();
            p.in_flight = false;
            match start {
                StartAt::Offset(o) => p.start_at(o),
                other => p.restart(other),
            }
        }
    }

    /// Pauses or resumes the assigned ones of `partitions`.
    pub(crate) fn set_paused<'a>(
        &mut self,
        partitions: impl IntoIterator<Item = &'a TopicPartition>,
        paused: bool,
    ) {
        for tp in partitions {
            if let Some(p) = self.parts.get_mut(tp) {
                p.paused = paused;
            }
            if !paused {
                self.mark_ready(tp);
            }
        }
    }

    /// Pauses every partition in `partitions`.
    pub(crate) fn pause_only(&mut self, partitions: &BTreeSet<TopicPartition>) {
        for (tp, p) in self.parts.iter_mut() {
            if partitions.contains(tp) {
                p.paused = true;
            }
        }
    }

    /// Pauses every partition.
    pub(crate) fn pause_all(&mut self) {
        for p in self.parts.values_mut() {
            p.paused = true;
        }
    }

    /// The known positions (next offset to hand out).
    pub(crate) fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        self.positions_where(|_, _| true)
    }

    /// The known positions of the partitions `keep` accepts.
    pub(crate) fn positions_where(
        &self,
        keep: impl Fn(&TopicPartition, &Part) -> bool,
    ) -> BTreeMap<TopicPartition, i64> {
        self.parts
            .iter()
            .filter(|(tp, p)| keep(tp, p))
            .filter_map(|(tp, p)| p.position.map(|o| (tp.clone(), o)))
            .collect()
    }

    /// The lag of every positioned partition.
    pub(crate) fn lags(&self) -> BTreeMap<TopicPartition, i64> {
        self.parts
            .iter()
            .filter_map(|(tp, p)| {
                let pos = p.position?;
                Some((tp.clone(), stats::lag(pos, p.high_watermark)))
            })
            .collect()
    }

    /// Whether every partition has a position.
    pub(crate) fn all_positioned(&self) -> bool {
        self.parts.values().all(|p| p.position.is_some())
    }

    /// The partitions still to be positioned, and how.
    pub(crate) fn pending_starts(&self) -> Vec<(TopicPartition, StartAt)> {
        self.parts
            .iter()
            .filter(|(_, p)| p.position.is_none())
            .filter_map(|(tp, p)| p.start.map(|st| (tp.clone(), st)))
            .collect()
    }

    /// The partitions a fetch may be sent for now: (partition, fetch
    /// offset, epoch).
    pub(crate) fn fetchable(&self, now: Instant) -> Vec<(TopicPartition, i64, u64)> {
        self.parts
            .iter()
            .filter(|(_, p)| p.fetchable(now))
            .map(|(tp, p)| (tp.clone(), p.fetch_offset, p.epoch))
            .collect()
    }

    /// Marks `tp` as fetched by a request being sent, if it is still in
    /// `epoch` with no fetch in flight; returns whether it did.
    pub(crate) fn start_fetch(&mut self, tp: &TopicPartition, epoch: u64) -> bool {
        match self.current(tp, epoch).filter(|p| !p.in_flight) {
            Some(p) => {
                p.in_flight = true;
                true
            }
            None => false,
        }
    }

    /// `tp`'s fetch (of `epoch`) came back; with `retry_at`, fetch it again
    /// only from then on.
    pub(crate) fn end_fetch(&mut self, tp: &TopicPartition, epoch: u64, retry_at: Option<Instant>) {
        if let Some(p) = self.current(tp, epoch) {
            p.in_flight = false;
            if retry_at.is_some() {
                p.retry_at = retry_at;
            }
        }
    }

    /// Hands out up to `max` buffered records to `sink`, round-robin over
    /// the partitions with chunks (each partition's chunks in order, a
    /// partition left part-way through when `max` is reached is where the
    /// next take starts); a drained chunk's memory goes back and
    /// `drained` is woken. Returns how many.
    pub(crate) fn take(
        &mut self,
        max: usize,
        meters: &ConsumerMeters,
        drained: &Notify,
        mut sink: impl FnMut(ConsumerRecord),
    ) -> usize {
        let mut taken = 0;
        while taken < max {
            let Some(tp) = self.ready.pop_front() else {
                break;
            };
            let Some(p) = self.parts.get_mut(&tp) else {
                continue; // unassigned since it was queued
            };
            p.queued = false;
            if p.paused {
                continue; // queued again as it is resumed
            }
            // One chunk per turn: a partition that is always topped up
            // must not keep the others waiting.
            let mut part_way = false;
            while let Some(chunk) = p.chunks.front_mut() {
                let Some(r) = chunk.records.pop_front() else {
                    // Only control batches or aborted records: the
                    // position moves past them.
                    if let Some(next) = chunk.next {
                        p.position = p.position.map(|o| o.max(next));
                    }
                    p.chunks.pop_front();
                    continue;
                };
                p.position = Some(r.offset + 1);
                sink(r);
                taken += 1;
                if chunk.records.is_empty() {
                    if let Some(next) = chunk.next {
                        p.position = p.position.map(|o| o.max(next));
                    }
                    // Its memory goes back to the fetcher.
                    p.chunks.pop_front();
                    p.update_lag(meters, &tp);
                    drained.notify_one();
                    break;
                }
                if taken == max {
                    part_way = true;
                    break;
                }
            }
            if part_way {
                // Stopped inside a chunk: the next take starts here.
                p.queued = true;
                self.ready.push_front(tp);
            } else if !p.chunks.is_empty() {
                // Its turn is over: behind the others.
                p.queued = true;
                self.ready.push_back(tp);
            }
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::budget::Budget;
    use kpax_proto::records::Record;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    /// Appends records `offsets` to partition `p` as one chunk, as a
    /// fetch answer does, and queues the partition.
    fn fetched(table: &mut PartitionTable, budget: &Budget, p: i32, offsets: std::ops::Range<i64>) {
        let records = offsets
            .clone()
            .map(|o| ConsumerRecord::new("t", p, Record::new(o, 0, None, Some(b"v"), &[])))
            .collect();
        let part = table.get_mut(&tp(p)).unwrap();
        part.append(records, Some(offsets.end), || budget.reserve(1).unwrap());
        table.mark_ready(&tp(p));
    }

    /// Assigns partition `p`, at offset 0.
    fn assign(table: &mut PartitionTable, p: i32) {
        table.assign(tp(p), || Part::new(StartAt::Offset(0), 0));
    }

    /// A table with partitions `0..n` assigned.
    fn assigned(n: i32) -> PartitionTable {
        let mut table = PartitionTable::default();
        for p in 0..n {
            assign(&mut table, p);
        }
        table
    }

    fn take(table: &mut PartitionTable, max: usize) -> Vec<(i32, i64)> {
        let meters = ConsumerMeters::new("test", None);
        let mut out = Vec::new();
        table.take(max, &meters, &Notify::new(), |r| {
            out.push((r.partition, r.offset))
        });
        out
    }

    #[test]
    fn take_goes_round_robin_over_partitions_with_records_only() {
        let budget = Budget::new(1 << 20);
        let mut table = assigned(1000);
        fetched(&mut table, &budget, 7, 0..3);
        fetched(&mut table, &budget, 900, 0..2);
        fetched(&mut table, &budget, 3, 0..2);
        // In the order the chunks came; a partition left part-way is
        // where the next take starts.
        assert_eq!(take(&mut table, 2), [(7, 0), (7, 1)]);
        assert_eq!(take(&mut table, 3), [(7, 2), (900, 0), (900, 1)]);
        // A partition fetched again while others wait goes to the back.
        fetched(&mut table, &budget, 7, 3..4);
        // Paused: skipped, and handed out once resumed.
        table.set_paused([&tp(3)], true);
        assert_eq!(take(&mut table, 10), [(7, 3)]);
        assert_eq!(table.get_mut(&tp(7)).unwrap().position, Some(4));
        table.set_paused([&tp(3)], false);
        assert_eq!(take(&mut table, 10), [(3, 0), (3, 1)]);
        assert!(take(&mut table, 10).is_empty());
        // A seek drops what was buffered; an unassigned partition's
        // queued chunk is never handed out.
        fetched(&mut table, &budget, 5, 0..2);
        fetched(&mut table, &budget, 6, 0..2);
        table.seek(&tp(5), StartAt::Offset(100), || 1);
        table.remove(&tp(6));
        fetched(&mut table, &budget, 5, 100..101);
        assert_eq!(take(&mut table, 10), [(5, 100)]);
        // Unassigned and assigned again: queued once.
        assign(&mut table, 6);
        fetched(&mut table, &budget, 6, 0..1);
        table.remove(&tp(6));
        assign(&mut table, 6);
        fetched(&mut table, &budget, 6, 0..1);
        assert_eq!(table.ready.len(), 1);
        assert_eq!(take(&mut table, 10), [(6, 0)]);
        assert_eq!(
            budget.available(),
            1 << 20,
            "every chunk's memory went back"
        );
    }

    #[test]
    fn a_partition_always_topped_up_does_not_starve_the_others() {
        let budget = Budget::new(1 << 20);
        let mut table = assigned(2);
        fetched(&mut table, &budget, 0, 0..2);
        fetched(&mut table, &budget, 0, 2..4);
        fetched(&mut table, &budget, 1, 0..2);
        // One record at a time (recv): partition 0's first chunk, then
        // partition 1's, then 0's second, though 0 always had more.
        let mut got = Vec::new();
        for _ in 0..6 {
            got.extend(take(&mut table, 1));
        }
        assert_eq!(got, [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3)]);
    }
}
