//! The consumer's statistics: counted as records are fetched, handed out
//! and committed; read with [`Consumer::stats`](super::Consumer::stats)
//! and exported through the `metrics` facade ([`crate::metrics`]).

use super::TopicPartition;
use crate::metrics::ConsumerMeters;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A snapshot of a consumer's counters ([`Consumer::stats`](super::Consumer::stats)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Records fetched into the buffer (control records and aborted
    /// records skipped by read_committed not counted).
    pub records_fetched: u64,
    /// Bytes of record batches fetched, as on the wire.
    pub bytes_fetched: u64,
    /// Fetch requests answered or failed.
    pub fetch_requests: u64,
    /// Fetch requests that failed (network errors and request-level error
    /// codes).
    pub fetch_errors: u64,
    /// Per broker: (node id, fetch requests, mean round trip in
    /// microseconds, long polls included).
    pub fetch_latency: Vec<(i32, u64, u64)>,
    /// Records handed to the application.
    pub records_consumed: u64,
    /// Assignments that changed the partitions owned (the first one
    /// included).
    pub rebalances: u64,
    /// Offset commits that succeeded (automatic ones included).
    pub commits: u64,
    /// Offset commits that failed.
    pub commit_errors: u64,
    /// Mean time of an offset commit in microseconds, retries included.
    pub commit_latency_us: u64,
    /// Bytes of fetched records buffered now.
    pub buffered_bytes: u64,
    /// Per assigned partition whose position and high watermark are known:
    /// the records between the position (the next record handed out) and
    /// the high watermark.
    pub lag: BTreeMap<TopicPartition, i64>,
}

impl ConsumerStats {
    /// The lag summed over the assigned partitions.
    pub fn total_lag(&self) -> i64 {
        self.lag.values().sum()
    }
}

/// The counters behind [`ConsumerStats`], and their metric handles.
pub(crate) struct Counters {
    records_fetched: AtomicU64,
    bytes_fetched: AtomicU64,
    fetch_requests: AtomicU64,
    fetch_errors: AtomicU64,
    records_consumed: AtomicU64,
    rebalances: AtomicU64,
    commits: AtomicU64,
    commit_errors: AtomicU64,
    commit_micros: AtomicU64,
    /// Per node: (requests, total microseconds).
    fetch_latency: Mutex<BTreeMap<i32, (u64, u64)>>,
    pub meters: ConsumerMeters,
}

impl Counters {
    pub fn new(client_id: &str, group_id: Option<&str>) -> Counters {
        Counters {
            records_fetched: AtomicU64::new(0),
            bytes_fetched: AtomicU64::new(0),
            fetch_requests: AtomicU64::new(0),
            fetch_errors: AtomicU64::new(0),
            records_consumed: AtomicU64::new(0),
            rebalances: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            commit_errors: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
            fetch_latency: Mutex::new(BTreeMap::new()),
            meters: ConsumerMeters::new(client_id, group_id),
        }
    }

    /// A Fetch to `node` came back (or failed) after `elapsed`.
    pub fn fetch_answered(&self, node: i32, elapsed: Duration, failed: bool) {
        self.fetch_requests.fetch_add(1, Ordering::Relaxed);
        self.meters.fetch_requests.increment(1);
        if failed {
            self.fetch_errors.fetch_add(1, Ordering::Relaxed);
            self.meters.fetch_errors.increment(1);
        }
        let micros = elapsed.as_micros().min(u64::MAX as u128) as u64;
        {
            let mut lat = self.fetch_latency.lock().unwrap_or_else(|e| e.into_inner());
            let e = lat.entry(node).or_default();
            e.0 += 1;
            e.1 = e.1.saturating_add(micros);
        }
        self.meters.fetch_latency(node, elapsed);
    }

    /// `records` records in `bytes` bytes of batches went into the buffer.
    pub fn fetched(&self, records: u64, bytes: u64) {
        self.records_fetched.fetch_add(records, Ordering::Relaxed);
        self.bytes_fetched.fetch_add(bytes, Ordering::Relaxed);
        self.meters.records_fetched.increment(records);
        self.meters.bytes_fetched.increment(bytes);
    }

    /// `n` records were handed to the application.
    pub fn consumed(&self, n: u64) {
        if n > 0 {
            self.records_consumed.fetch_add(n, Ordering::Relaxed);
            self.meters.records_consumed.increment(n);
        }
    }

    /// An assignment changed what the member owns.
    pub fn rebalanced(&self) {
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        self.meters.rebalances.increment(1);
    }

    /// An offset commit ended after `elapsed`.
    pub fn committed(&self, elapsed: Duration, ok: bool) {
        if ok {
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.meters.commits.increment(1);
        } else {
            self.commit_errors.fetch_add(1, Ordering::Relaxed);
            self.meters.commit_errors.increment(1);
        }
        let micros = elapsed.as_micros().min(u64::MAX as u128) as u64;
        self.commit_micros.fetch_add(micros, Ordering::Relaxed);
        self.meters.commit_latency.record(elapsed.as_secs_f64());
    }

    /// The snapshot, with the buffer and lag figures the caller knows.
    pub fn snapshot(
        &self,
        buffered_bytes: u64,
        lag: BTreeMap<TopicPartition, i64>,
    ) -> ConsumerStats {
        let commits = self.commits.load(Ordering::Relaxed);
        let commit_errors = self.commit_errors.load(Ordering::Relaxed);
        ConsumerStats {
            records_fetched: self.records_fetched.load(Ordering::Relaxed),
            bytes_fetched: self.bytes_fetched.load(Ordering::Relaxed),
            fetch_requests: self.fetch_requests.load(Ordering::Relaxed),
            fetch_errors: self.fetch_errors.load(Ordering::Relaxed),
            fetch_latency: self
                .fetch_latency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(id, (n, total))| (*id, *n, total / (*n).max(1)))
                .collect(),
            records_consumed: self.records_consumed.load(Ordering::Relaxed),
            rebalances: self.rebalances.load(Ordering::Relaxed),
            commits,
            commit_errors,
            commit_latency_us: self.commit_micros.load(Ordering::Relaxed)
                / (commits + commit_errors).max(1),
            buffered_bytes,
            lag,
        }
    }
}

/// The lag of a partition at `position` under `high_watermark`.
pub(crate) fn lag(position: i64, high_watermark: i64) -> i64 {
    (high_watermark - position).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_never_negative() {
        assert_eq!(lag(10, 15), 5);
        assert_eq!(lag(15, 15), 0);
        // a position past a stale high watermark
        assert_eq!(lag(20, 15), 0);
    }

    #[test]
    fn means_divide_by_what_was_counted() {
        let c = Counters::new("t", None);
        c.fetch_answered(1, Duration::from_micros(100), false);
        c.fetch_answered(1, Duration::from_micros(300), true);
        c.fetch_answered(2, Duration::from_micros(50), false);
        c.fetched(10, 1000);
        c.consumed(0);
        c.consumed(4);
        c.committed(Duration::from_micros(10), true);
        c.committed(Duration::from_micros(30), false);
        c.rebalanced();
        let s = c.snapshot(7, BTreeMap::from([(TopicPartition::new("t", 0), 3)]));
        assert_eq!(s.fetch_requests, 3);
        assert_eq!(s.fetch_errors, 1);
        assert_eq!(s.fetch_latency, vec![(1, 2, 200), (2, 1, 50)]);
        assert_eq!((s.records_fetched, s.bytes_fetched), (10, 1000));
        assert_eq!(s.records_consumed, 4);
        assert_eq!(
            (s.commits, s.commit_errors, s.commit_latency_us),
            (1, 1, 20)
        );
        assert_eq!(s.rebalances, 1);
        assert_eq!(s.buffered_bytes, 7);
        assert_eq!(s.total_lag(), 3);
    }
}
