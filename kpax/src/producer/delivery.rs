//! Record outcomes, settled once per batch.
//!
//! Every record of a batch shares one [`BatchOutcome`]: the batch's base
//! offset and log append time, or its error. Each record's
//! [`DeliveryFuture`] holds the shared outcome and its index in the batch,
//! so accepting a record allocates nothing for its outcome, and settling a
//! batch of N records is one store and one wake-up per waiting task, not N
//! channel sends.

use super::RecordMetadata;
use crate::error::{Error, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

/// How a whole batch ended.
#[derive(Debug, Clone)]
enum Settled {
    /// Written: the base offset (-1 when unknown) and the broker's log
    /// append time (-1 unless the topic uses it).
    Written {
        base_offset: i64,
        log_append_time: i64,
    },
    /// Failed, every record with this error.
    Failed(Error),
    /// Split in two (the broker refused the batch as too large): records
    /// before `at` follow `head`, the others follow `tail` at `index - at`.
    Split {
        at: u32,
        head: Arc<BatchOutcome>,
        tail: Arc<BatchOutcome>,
    },
}

/// The outcome shared by the records of one batch.
#[derive(Debug)]
pub(crate) struct BatchOutcome {
    topic: String,
    partition: i32,
    settled: OnceLock<Settled>,
    /// Tasks waiting for the outcome; a future keeps the index of its entry.
    wakers: Mutex<Vec<Waker>>,
}

impl BatchOutcome {
    fn settle(&self, how: Settled) {
        if self.settled.set(how).is_err() {
            return; // settled already: exactly once
        }
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in wakers {
            w.wake();
        }
    }
}

/// The batch side of a [`BatchOutcome`]: settles it once; dropping it
/// unsettled (the producer went away) fails the records with
/// [`Error::ProducerClosed`], so no future waits forever.
#[derive(Debug)]
pub(crate) struct Completion(Arc<BatchOutcome>);

impl Completion {
    /// An unsettled outcome for a batch of `topic`-`partition`.
    pub fn new(topic: &str, partition: i32) -> Completion {
        Completion(Arc::new(BatchOutcome {
            topic: topic.to_string(),
            partition,
            settled: OnceLock::new(),
            wakers: Mutex::new(Vec::new()),
        }))
    }

    /// The future of the batch's record number `index`, stamped `timestamp`.
    pub fn future(&self, index: u32, timestamp: i64) -> DeliveryFuture {
        DeliveryFuture {
            outcome: Arc::clone(&self.0),
            index,
            timestamp,
            slot: None,
        }
    }

    /// Every record is written from `base_offset` on (-1: unknown, e.g.
    /// acks=0); `log_append_time` is -1 unless the topic uses it.
    pub fn written(self, base_offset: i64, log_append_time: i64) {
        self.0.settle(Settled::Written {
            base_offset,
            log_append_time,
        });
    }

    /// Every record failed with `error`.
    pub fn failed(self, error: Error) {
        self.0.settle(Settled::Failed(error));
    }

    /// Hands records `..at` to the first completion returned and records
    /// `at..` (renumbered from 0) to the second, for a batch split in two.
    pub fn split(self, at: u32) -> (Completion, Completion) {
        let part = || Completion::new(&self.0.topic, self.0.partition);
        let (head, tail) = (part(), part());
        self.0.settle(Settled::Split {
            at,
            head: Arc::clone(&head.0),
            tail: Arc::clone(&tail.0),
        });
        (head, tail)
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.0.settle(Settled::Failed(Error::ProducerClosed));
    }
}

/// The outcome of one `send`: resolves when the record is written or failed.
#[derive(Debug)]
pub struct DeliveryFuture {
    outcome: Arc<BatchOutcome>,
    index: u32,
    timestamp: i64,
    /// This future's entry in the outcome's wakers, once it waited.
    slot: Option<usize>,
}

impl DeliveryFuture {
    fn ready(&self, settled: &Settled) -> Result<RecordMetadata> {
        match settled {
            Settled::Written {
                base_offset,
                log_append_time,
            } => Ok(RecordMetadata {
                topic: self.outcome.topic.clone(),
                partition: self.outcome.partition,
                offset: if *base_offset >= 0 {
                    base_offset + i64::from(self.index)
                } else {
                    -1
                },
                timestamp: if *log_append_time >= 0 {
                    *log_append_time
                } else {
                    self.timestamp
                },
            }),
            Settled::Failed(e) => Err(e.clone()),
            Settled::Split { .. } => unreachable!("followed in poll"),
        }
    }

    /// Follows splits to the outcome that now holds this record; returns
    /// whether it moved.
    fn follow(&mut self) -> bool {
        let mut moved = false;
        while let Some(Settled::Split { at, head, tail }) = self.outcome.settled.get() {
            let next = if self.index < *at {
                Arc::clone(head)
            } else {
                self.index -= at;
                Arc::clone(tail)
            };
            self.outcome = next;
            self.slot = None;
            moved = true;
        }
        moved
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.follow();
        if let Some(s) = self.outcome.settled.get() {
            return Poll::Ready(self.ready(s));
        }
        let outcome = Arc::clone(&self.outcome);
        let mut wakers = outcome.wakers.lock().unwrap_or_else(|e| e.into_inner());
        // Checked again under the lock: `settle` sets the outcome before it
        // takes the wakers, so either we see it or our waker is taken.
        if outcome.settled.get().is_some() {
            drop(wakers);
            // Settled (or split) meanwhile: start over on what it became.
            return self.poll(cx);
        }
        let w = cx.waker();
        let current = self.slot.and_then(|i| wakers.get(i));
        if !current.is_some_and(|c| c.will_wake(w)) {
            // Records awaited one after another by one task share its entry;
            // a changed waker gets a new entry (the old one only wakes
            // spuriously), so no entry of another future is ever replaced.
            let slot = match wakers.last() {
                Some(last) if last.will_wake(w) => wakers.len() - 1,
                _ => {
                    wakers.push(w.clone());
                    wakers.len() - 1
                }
            };
            self.slot = Some(slot);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(f: &mut DeliveryFuture, w: &Waker) -> Poll<Result<RecordMetadata>> {
        Pin::new(f).poll(&mut Context::from_waker(w))
    }

    #[test]
    fn every_record_gets_its_offset_and_waiters_are_woken() {
        let c = Completion::new("t", 3);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let w = Waker::from(count.clone());
        let mut fs: Vec<_> = (0..4).map(|i| c.future(i, 100 + i as i64)).collect();
        for f in &mut fs {
            assert!(poll(f, &w).is_pending());
            assert!(poll(f, &w).is_pending());
        }
        // One task, one waker: one entry for the four futures.
        assert_eq!(c.0.wakers.lock().unwrap().len(), 1);
        c.written(40, -1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        for (i, f) in fs.iter_mut().enumerate() {
            let Poll::Ready(Ok(m)) = poll(f, &w) else {
                panic!("ready")
            };
            assert_eq!((m.topic.as_str(), m.partition), ("t", 3));
            assert_eq!((m.offset, m.timestamp), (40 + i as i64, 100 + i as i64));
        }
    }

    #[test]
    fn log_append_time_and_unknown_offsets() {
        let c = Completion::new("t", 0);
        let mut f = c.future(2, 7);
        c.written(-1, 555);
        let Poll::Ready(Ok(m)) = poll(&mut f, Waker::noop()) else {
            panic!("ready")
        };
        assert_eq!((m.offset, m.timestamp), (-1, 555));
    }

    #[test]
    fn failure_and_drop_reach_every_record() {
        let c = Completion::new("t", 0);
        let mut fs: Vec<_> = (0..3).map(|i| c.future(i, 0)).collect();
        c.failed(Error::BufferFull);
        for f in &mut fs {
            assert!(matches!(
                poll(f, Waker::noop()),
                Poll::Ready(Err(Error::BufferFull))
            ));
        }
        let c = Completion::new("t", 0);
        let mut f = c.future(0, 0);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        assert!(poll(&mut f, &Waker::from(count.clone())).is_pending());
        drop(c);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            poll(&mut f, Waker::noop()),
            Poll::Ready(Err(Error::ProducerClosed))
        ));
    }

    #[test]
    fn split_batches_give_each_record_its_own_offset() {
        let c = Completion::new("t", 1);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let w = Waker::from(count.clone());
        let mut fs: Vec<_> = (0..6).map(|i| c.future(i, i as i64)).collect();
        assert!(poll(&mut fs[0], &w).is_pending());
        assert!(poll(&mut fs[5], &w).is_pending());
        let (head, tail) = c.split(2);
        // Waiters were woken by the split and now wait on the halves.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut fs[0], &w).is_pending());
        assert!(poll(&mut fs[5], &w).is_pending());
        // The tail splits again: records 2..4 and 4..6.
        let (mid, last) = tail.split(2);
        head.written(10, -1);
        last.failed(Error::BufferFull);
        mid.written(50, -1);
        let got: Vec<_> = fs
            .iter_mut()
            .map(|f| match poll(f, &w) {
                Poll::Ready(Ok(m)) => Some(m.offset),
                Poll::Ready(Err(Error::BufferFull)) => None,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, [Some(10), Some(11), Some(50), Some(51), None, None]);
    }

    #[test]
    fn a_changed_waker_is_woken_and_others_are_kept() {
        let c = Completion::new("t", 0);
        let (a, b) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        let mut f1 = c.future(0, 0);
        let mut f2 = c.future(1, 0);
        assert!(poll(&mut f1, &wa).is_pending());
        assert!(poll(&mut f2, &wa).is_pending());
        // f2 moves to another task: f1's waker must stay.
        assert!(poll(&mut f2, &wb).is_pending());
        c.written(0, -1);
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
    }
}
