//! Which batches of a Fetch response a consumer hands out, by isolation
//! level (KIP-98).
//!
//! Control batches (transaction markers) are never handed out. A
//! `read_committed` consumer also skips the batches of aborted
//! transactions: the Fetch response lists each aborted transaction in
//! range as (producer id, first offset). Reading the batches in offset
//! order, a producer's transaction becomes *aborted* at the first batch
//! whose last offset reaches the listed first offset; from there its
//! transactional batches are dropped until its ABORT marker (a control
//! batch of that producer), which ends the aborted range. A COMMIT marker
//! changes nothing: a committed transaction is never listed. This is the
//! rule of the Java client's `CompletedFetch` (`abortedProducerIds`).

use std::collections::{HashSet, VecDeque};

use super::batch::RecordBatch;
use super::control::ControlRecordType;

/// One aborted transaction from a Fetch response: its producer and the
/// offset of its first batch in the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AbortedTransaction {
    /// The first offset of the transaction (first, so that sorting orders
    /// by it).
    pub first_offset: i64,
    /// The transaction's producer id.
    pub producer_id: i64,
}

/// What to do with one record batch v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchVerdict {
    /// Hand out its records.
    Keep,
    /// A control batch (a transaction marker): never handed out.
    Control,
    /// A batch of an aborted transaction (`read_committed` only).
    Aborted,
}

/// The batch filter of one partition's records field, fed its batches in
/// order with [`AbortedFilter::verdict`].
///
/// Memory is bounded by the aborted transactions list it was given (one
/// entry each, at most); nothing is sized by a length read from the wire.
#[derive(Debug, Clone, Default)]
pub struct AbortedFilter {
    read_committed: bool,
    /// Aborted transactions not reached yet, by first offset.
    pending: VecDeque<AbortedTransaction>,
    /// Producers whose aborted transaction is open (reached, no ABORT
    /// marker yet).
    aborting: HashSet<i64>,
}

impl AbortedFilter {
    /// The filter of a `read_uncommitted` consumer: skips control batches
    /// only.
    pub fn read_uncommitted() -> Self {
        AbortedFilter::default()
    }

    /// The filter of a `read_committed` consumer, given the Fetch
    /// response's aborted transactions of the partition (any order).
    pub fn read_committed(aborted: impl IntoIterator<Item = AbortedTransaction>) -> Self {
        let mut pending: Vec<AbortedTransaction> = aborted.into_iter().collect();
        pending.sort_unstable();
        AbortedFilter {
            read_committed: true,
            pending: pending.into(),
            aborting: HashSet::new(),
        }
    }

    /// What to do with `batch`, the next record batch v2 of the partition
    /// (in offset order). Legacy message sets predate transactions: they
    /// are always kept, without asking.
    pub fn verdict(&mut self, batch: &RecordBatch) -> BatchVerdict {
        if !self.read_committed {
            return if batch.is_control() {
                BatchVerdict::Control
            } else {
                BatchVerdict::Keep
            };
        }
        let header = batch.header();
        while let Some(t) = self
            .pending
            .front()
            .copied()
            .filter(|t| t.first_offset <= header.last_offset())
        {
            self.aborting.insert(t.producer_id);
            self.pending.pop_front();
        }
        if batch.is_control() {
            // A marker that does not parse ends nothing.
            if let Ok(Some(c)) = batch.control_record() {
                if c.kind == ControlRecordType::Abort {
                    self.aborting.remove(&header.producer_id);
                }
            }
            return BatchVerdict::Control;
        }
        if batch.is_transactional() && self.aborting.contains(&header.producer_id) {
            BatchVerdict::Aborted
        } else {
            BatchVerdict::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Batch, Batches, RecordBatchBuilder, NO_SEQUENCE};
    use bytes::Bytes;

    /// A transactional batch of `n` records of producer `pid` at `base`.
    fn txn(pid: i64, base: i64, n: usize) -> Bytes {
        let mut b = RecordBatchBuilder::new(base)
            .transactional(true)
            .producer(pid, 0, 0);
        for _ in 0..n {
            b.append(1, None, Some(b"v"), &[]).unwrap();
        }
        b.finish().unwrap()
    }

    /// A plain (non-transactional) batch of one record at `base`.
    fn plain(base: i64, pid: i64) -> Bytes {
        let mut b = RecordBatchBuilder::new(base);
        if pid >= 0 {
            b = b.producer(pid, 0, NO_SEQUENCE);
        }
        b.append(1, None, Some(b"v"), &[]).unwrap();
        b.finish().unwrap()
    }

    fn marker(pid: i64, offset: i64, commit: bool) -> Bytes {
        RecordBatchBuilder::end_transaction_marker(offset, 1, pid, 0, commit, 0).unwrap()
    }

    fn aborted(list: &[(i64, i64)]) -> Vec<AbortedTransaction> {
        list.iter()
            .map(|&(producer_id, first_offset)| AbortedTransaction {
                first_offset,
                producer_id,
            })
            .collect()
    }

    /// The verdicts of `filter` on the batches `parts`, in order.
    fn verdicts(mut filter: AbortedFilter, parts: &[Bytes]) -> Vec<BatchVerdict> {
        let data = Bytes::from(parts.concat());
        Batches::new(data)
            .map(|b| match b.unwrap() {
                Batch::V2(b) => filter.verdict(&b),
                Batch::Legacy(_) => panic!("legacy"),
            })
            .collect()
    }

    use BatchVerdict::{Aborted as A, Control as C, Keep as K};

    #[test]
    fn an_aborted_transaction_is_dropped_and_its_marker_skipped() {
        let parts = [txn(7, 0, 3), txn(7, 3, 2), marker(7, 5, false)];
        let f = AbortedFilter::read_committed(aborted(&[(7, 0)]));
        assert_eq!(verdicts(f, &parts), [A, A, C]);
    }

    #[test]
    fn a_committed_transaction_is_kept_and_its_marker_skipped() {
        let parts = [txn(7, 0, 3), marker(7, 3, true), plain(4, -1)];
        let f = AbortedFilter::read_committed(aborted(&[]));
        assert_eq!(verdicts(f, &parts), [K, C, K]);
        // A COMMIT marker does not end another producer's abort.
        let parts = [txn(8, 0, 1), marker(7, 1, true), txn(8, 2, 1)];
        let f = AbortedFilter::read_committed(aborted(&[(8, 0)]));
        assert_eq!(verdicts(f, &parts), [A, C, A]);
    }

    #[test]
    fn read_uncommitted_skips_only_control_batches() {
        let parts = [txn(7, 0, 3), marker(7, 3, false), plain(4, -1)];
        assert_eq!(
            verdicts(AbortedFilter::read_uncommitted(), &parts),
            [K, C, K]
        );
    }

    #[test]
    fn the_abort_marker_ends_the_producers_aborted_range() {
        // Producer 7 aborts at 0, then commits a transaction at 3.
        let parts = [
            txn(7, 0, 2),
            marker(7, 2, false),
            txn(7, 3, 2),
            marker(7, 5, true),
        ];
        let f = AbortedFilter::read_committed(aborted(&[(7, 0)]));
        assert_eq!(verdicts(f, &parts), [A, C, K, C]);
    }

    #[test]
    fn only_transactional_batches_of_an_aborting_producer_are_dropped() {
        // A non-transactional batch with the same producer id is kept.
        let parts = [txn(7, 0, 1), plain(1, 7), marker(7, 2, false)];
        let f = AbortedFilter::read_committed(aborted(&[(7, 0)]));
        assert_eq!(verdicts(f, &parts), [A, K, C]);
    }

    #[test]
    fn producers_interleaved() {
        // 7 aborts, 8 commits, 9 aborts; their batches interleave.
        let parts = [
            txn(7, 0, 1),
            txn(8, 1, 1),
            txn(9, 2, 1),
            txn(7, 3, 1),
            txn(8, 4, 1),
            marker(7, 5, false),
            txn(9, 6, 1),
            marker(8, 7, true),
            marker(9, 8, false),
            txn(8, 9, 1),
        ];
        let f = AbortedFilter::read_committed(aborted(&[(9, 2), (7, 0)]));
        assert_eq!(verdicts(f, &parts), [A, K, A, A, K, C, A, C, C, K]);
    }

    #[test]
    fn a_transaction_listed_later_starts_at_its_first_offset() {
        // Producer 7 commits at 0-1, then aborts from 3: the batches before
        // its listed first offset are kept.
        let parts = [
            txn(7, 0, 2),
            marker(7, 2, true),
            txn(7, 3, 2),
            marker(7, 5, false),
            txn(7, 6, 1),
        ];
        let f = AbortedFilter::read_committed(aborted(&[(7, 3)]));
        assert_eq!(verdicts(f, &parts), [K, C, A, C, K]);
        // A transaction reached inside a batch (first offset within its
        // range) counts from that batch.
        let parts = [txn(7, 0, 5), marker(7, 5, false)];
        let f = AbortedFilter::read_committed(aborted(&[(7, 4)]));
        assert_eq!(verdicts(f, &parts), [A, C]);
        // The same producer aborting twice.
        let parts = [
            txn(7, 0, 1),
            marker(7, 1, false),
            txn(7, 2, 1),
            marker(7, 3, false),
        ];
        let f = AbortedFilter::read_committed(aborted(&[(7, 2), (7, 0)]));
        assert_eq!(verdicts(f, &parts), [A, C, A, C]);
    }
}
