//! [`BufferPool`]: large buffers used again once every `Bytes` sharing them
//! is dropped.
//!
//! Megabytes read or decompressed into fresh memory cost a page fault per
//! 4 KiB the first time each page is written, and on a fast path that costs
//! more than the bytes' copy and CRC together (measured on a real Kafka
//! consumer at 16 KiB records: 0.55 s of system time per GB, most of it
//! faults inside `recv`; on lz4 batches, a quarter of the consumer's CPU
//! went to faults in the decompressor's output). A buffer whose pages were
//! touched before does not fault again, so a pool keeps a few: the owner of
//! each buffer's bytes gives it back when the last `Bytes` sharing it is
//! dropped, and the next large read or decompression goes into it.
//!
//! Bounded: a pool keeps at most its `idle_max` bytes of buffers idle; a
//! buffer that does not fit, or is under its `min` size, is freed.
//! [`DECOMPRESSED`] is the pool of decompressed batches (shared by the
//! process); a broker connection keeps its own for response frames.

use bytes::Bytes;
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// The pool decompressed batches are written into: buffers of 32 KiB and
/// more, at most 32 MiB of them idle.
pub static DECOMPRESSED: LazyLock<BufferPool> =
    LazyLock::new(|| BufferPool::new(32 * 1024, 32 * 1024 * 1024));

/// Idle buffers (empty, with their capacity).
#[derive(Default)]
struct Idle {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

/// A pool's bounds and its idle buffers.
struct Shared {
    /// Buffers under this capacity are not kept.
    min: usize,
    /// The most capacity kept idle.
    max: usize,
    idle: Mutex<Idle>,
}

/// A pool of large buffers; clones share it.
#[derive(Clone)]
pub struct BufferPool {
    shared: Arc<Shared>,
}

impl BufferPool {
    /// A pool that keeps buffers of at least `min` bytes, at most
    /// `idle_max` bytes of them while they are not in use.
    pub fn new(min: usize, idle_max: usize) -> BufferPool {
        BufferPool {
            shared: Arc::new(Shared {
                min,
                max: idle_max,
                idle: Mutex::new(Idle::default()),
            }),
        }
    }

    /// The smallest buffer size the pool keeps.
    pub fn min(&self) -> usize {
        self.shared.min
    }

    /// An empty buffer to write about `size` bytes into: the idle one that
    /// fits it most tightly, or else an empty new one (the caller grows it
    /// as bytes arrive: never allocate from an untrusted size alone).
    pub fn take(&self, size: usize) -> Vec<u8> {
        let mut idle = lock(&self.shared.idle);
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

    /// The bytes written into `buf`: when the last `Bytes` sharing them is
    /// dropped, `buf` comes back here (if the pool still exists and has
    /// room). A buffer under the pool's minimum becomes plain `Bytes`.
    pub fn freeze(&self, buf: Vec<u8>) -> Bytes {
        if buf.capacity() < self.shared.min {
            return Bytes::from(buf);
        }
        Bytes::from_owner(Pooled {
            buf,
            home: Arc::downgrade(&self.shared),
        })
    }

    /// The capacity of the buffers waiting idle (for tests).
    #[cfg(test)]
    fn idle_bytes(&self) -> usize {
        lock(&self.shared.idle).bytes
    }
}

fn lock(m: &Mutex<Idle>) -> std::sync::MutexGuard<'_, Idle> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The owner of a pooled frame's bytes.
struct Pooled {
    buf: Vec<u8>,
    home: Weak<Shared>,
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
        if cap < home.min {
            return;
        }
        let mut idle = lock(&home.idle);
        if idle.bytes + cap <= home.max {
            buf.clear();
            idle.bytes += cap;
            idle.bufs.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: usize = 64 * 1024;
    const IDLE_MAX: usize = 32 * 1024 * 1024;

    fn pool() -> BufferPool {
        BufferPool::new(MIN, IDLE_MAX)
    }

    #[test]
    fn a_buffer_comes_back_when_its_last_slice_is_dropped() {
        let pool = pool();
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
        let pool = pool();
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
        let pool = pool();
        let big = IDLE_MAX / 3 + 1;
        for _ in 0..5 {
            drop(pool.freeze(Vec::with_capacity(big)));
        }
        assert_eq!(pool.idle_bytes(), 2 * big, "the third would pass the bound");
        drop(pool.freeze(Vec::with_capacity(MIN - 1)));
        assert_eq!(pool.idle_bytes(), 2 * big, "small buffers are not kept");
    }

    #[test]
    fn bytes_outliving_the_pool_are_freed() {
        let pool = pool();
        let frame = pool.freeze(vec![1u8; MIN]);
        drop(pool);
        assert_eq!(frame.len(), MIN);
        drop(frame); // no pool to go back to: freed
    }
}
