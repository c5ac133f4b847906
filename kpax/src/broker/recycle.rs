//! [`FramePool`]: the large response buffers a connection reads into, used
//! again once every record that shares them is dropped.
//!
//! A fetch response of megabytes read into fresh memory costs a page fault
//! per 4 KiB the first time each page is written: on a fast link that costs
//! more than the bytes' copy and CRC together (measured on a real Kafka
//! consumer at 16 KiB records: 0.55 s of system time per GB, most of it
//! faults inside `recv`). A buffer whose pages were touched before does not
//! fault again, so a connection keeps a few of them: the owner of each
//! frame's bytes ([`Pooled`]) gives its buffer back when the last record
//! sharing it is dropped, and the next large frame is read into it.
//!
//! Bounded: at most [`IDLE_MAX_BYTES`] of buffers wait idle per
//! connection; a buffer that does not fit is freed. Frames under
//! [`POOLED_MIN`] are read into plain allocations (cheap; most responses).

use bytes::Bytes;
use std::sync::{Arc, Mutex, Weak};

/// Frames at least this large are read into pooled buffers.
pub(crate) const POOLED_MIN: usize = 64 * 1024;

/// The most buffer capacity a connection keeps idle for its next frames.
pub(crate) const IDLE_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Idle buffers (empty, with their capacity) of one connection.
#[derive(Default)]
struct Idle {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

/// One connection's pool of large read buffers.
#[derive(Clone, Default)]
pub(crate) struct FramePool {
    idle: Arc<Mutex<Idle>>,
}

impl FramePool {
    /// A buffer to read a frame of `size` bytes into: the idle one that
    /// fits it most tightly, or else an empty one (its capacity is grown
    /// as bytes arrive, never from `size` alone).
    pub(crate) fn take(&self, size: usize) -> Vec<u8> {
        let mut idle = lock(&self.idle);
        let best = idle
            .bufs
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= size)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                let buf = idle.bufs.swap_remove(i);
                idle.bytes -= buf.capacity();
                buf
            }
            None => Vec::new(),
        }
    }

    /// The frame's bytes, read into `buf`: when the last `Bytes` sharing
    /// them is dropped, `buf` comes back here (if the pool still exists and
    /// has room).
    pub(crate) fn freeze(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            home: Arc::downgrade(&self.idle),
        })
    }

    /// The capacity of the buffers waiting idle (for tests).
    #[cfg(test)]
    fn idle_bytes(&self) -> usize {
        lock(&self.idle).bytes
    }
}

fn lock(m: &Mutex<Idle>) -> std::sync::MutexGuard<'_, Idle> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The owner of a pooled frame's bytes.
struct Pooled {
    buf: Vec<u8>,
    home: Weak<Mutex<Idle>>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(home) = self.home.upgrade() else {
            return;
        };
        let mut buf = std::mem::take(&mut self.buf);
        let cap = buf.capacity();
        let mut idle = lock(&home);
        if cap >= POOLED_MIN && idle.bytes + cap <= IDLE_MAX_BYTES {
            buf.clear();
            idle.bytes += cap;
            idle.bufs.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_its_last_slice_is_dropped() {
        let pool = FramePool::default();
        let mut buf = pool.take(100_000);
        assert_eq!(buf.capacity(), 0, "nothing idle yet: an empty buffer");
        buf.extend_from_slice(&[7u8; 100_000]);
        let cap = buf.capacity();
        let frame = pool.freeze(buf);
        let slice = frame.slice(10..20);
        drop(frame);
        assert_eq!(pool.idle_bytes(), 0, "a slice still shares the buffer");
        assert_eq!(&slice[..], &[7u8; 10]);
        drop(slice);
        assert_eq!(pool.idle_bytes(), cap);
        let again = pool.take(100_000);
        assert_eq!(again.capacity(), cap, "the same buffer, reused");
        assert!(again.is_empty());
        assert_eq!(pool.idle_bytes(), 0);
    }

    #[test]
    fn take_picks_the_tightest_fit_and_never_a_smaller_buffer() {
        let pool = FramePool::default();
        for n in [200_000usize, 100_000, 400_000] {
            let mut b = Vec::with_capacity(n);
            b.push(1);
            drop(pool.freeze(b));
        }
        assert_eq!(pool.take(150_000).capacity(), 200_000);
        assert_eq!(pool.take(500_000).capacity(), 0, "none fits: a new one");
        assert_eq!(pool.take(1).capacity(), 100_000);
        assert_eq!(pool.take(1).capacity(), 400_000);
    }

    #[test]
    fn idle_memory_stays_within_its_bound() {
        let pool = FramePool::default();
        let big = IDLE_MAX_BYTES / 3 + 1;
        for _ in 0..5 {
            drop(pool.freeze(Vec::with_capacity(big)));
        }
        assert_eq!(pool.idle_bytes(), 2 * big, "the third would pass the bound");
        drop(pool.freeze(Vec::with_capacity(POOLED_MIN - 1)));
        assert_eq!(pool.idle_bytes(), 2 * big, "small buffers are not kept");
    }

    #[test]
    fn bytes_outliving_the_pool_are_freed() {
        let pool = FramePool::default();
        let frame = pool.freeze(vec![1u8; POOLED_MIN]);
        drop(pool);
        assert_eq!(frame.len(), POOLED_MIN);
        drop(frame); // no pool to go back to: freed
    }
}
