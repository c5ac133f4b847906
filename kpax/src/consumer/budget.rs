//! [`Budget`]: the consumer's one memory bound, in bytes of records held.
//!
//! A fetch reserves its maximum size before it is sent ([`Budget::reserve`]);
//! once answered, each partition's chunk keeps a [`Charge`] of what its
//! records hold and the rest goes back. What records hold is their wire
//! bytes plus, for compressed batches, the bytes they decompressed to: a
//! compressed fetch can hold several times its wire size, and that is
//! charged too ([`Charge::grow`]). Records already fetched are never
//! dropped to stay within the bound: what does not fit is owed (the
//! overdraft), and no fetch is sent until records are handed out and the
//! debt is paid.
//!
//! So that the overdraft stays rare, the budget learns how many bytes the
//! records of a wire byte hold ([`Budget::held_bytes_for`], from the last answered
//! fetch) and a fetch asks the broker for its reservation divided by it:
//! with lz4 at 4:1, a 1 MiB reservation asks for 200 KiB of wire bytes.
//! The bound is exceeded only when the data compresses better than the
//! fetches before it did, and then by what the fetches in flight
//! decompress to beyond their reservations.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The consumer's memory budget.
pub(crate) struct Budget {
    limit: usize,
    permits: Arc<Semaphore>,
    /// Bytes held beyond the permits (see [`Charge::grow`]).
    owed: Arc<AtomicUsize>,
    /// Bytes held per wire byte in the last answered fetch, in 1/16ths.
    inflation_16: AtomicU32,
}

/// The most bytes held per wire byte the budget plans for.
const INFLATION_MAX: u32 = 64;

/// Bytes of the budget held by a fetch in flight or a chunk of records;
/// given back when dropped.
pub(crate) struct Charge {
    permit: Option<OwnedSemaphorePermit>,
    owed: usize,
    owed_total: Arc<AtomicUsize>,
}

impl Budget {
    /// A budget of `limit` bytes (at most `u32::MAX` are counted).
    pub(crate) fn new(limit: usize) -> Budget {
        let limit = limit.min(u32::MAX as usize).min(Semaphore::MAX_PERMITS);
        Budget {
            limit,
            permits: Arc::new(Semaphore::new(limit)),
            owed: Arc::new(AtomicUsize::new(0)),
            inflation_16: AtomicU32::new(16),
        }
    }

    /// Bytes held per wire byte, as the last answered fetch held them
    /// (1.0 until then; at most 64).
    #[cfg(test)]
    fn inflation(&self) -> f64 {
        f64::from(self.inflation_16.load(Ordering::Relaxed)) / 16.0
    }

    /// Learns from an answered fetch: `wire` bytes came back and their
    /// records hold `held`.
    pub(crate) fn learn(&self, wire: usize, held: usize) {
        if wire == 0 {
            return;
        }
        let x16 = (held as u128 * 16 / wire as u128).clamp(16, u128::from(INFLATION_MAX * 16));
        self.inflation_16.store(x16 as u32, Ordering::Relaxed);
    }

    /// The wire bytes a fetch that reserved `reserved` bytes asks for.
    pub(crate) fn wire_bytes_for(&self, reserved: usize) -> usize {
        (reserved.saturating_mul(16) / self.inflation_x16()).max(1)
    }

    /// The bytes `wire` bytes hold, as the last answered fetch held them.
    pub(crate) fn held_bytes_for(&self, wire: usize) -> usize {
        wire.saturating_mul(self.inflation_x16()) / 16
    }

    fn inflation_x16(&self) -> usize {
        self.inflation_16.load(Ordering::Relaxed).max(16) as usize
    }

    /// Bytes free now: the permits left, less what is owed.
    pub(crate) fn available(&self) -> usize {
        self.permits
            .available_permits()
            .saturating_sub(self.owed.load(Ordering::Acquire))
    }

    /// Bytes held now (fetches in flight and buffered records).
    pub(crate) fn used(&self) -> usize {
        (self.limit - self.permits.available_permits().min(self.limit))
            + self.owed.load(Ordering::Acquire)
    }

    /// Reserves `n` bytes if that many are free.
    pub(crate) fn reserve(&self, n: usize) -> Option<Charge> {
        if n > self.available() {
            return None;
        }
        let permit = self.permits.clone().try_acquire_many_owned(n as u32).ok()?;
        Some(Charge {
            permit: Some(permit),
            owed: 0,
            owed_total: self.owed.clone(),
        })
    }
}

impl Charge {
    /// The bytes this charge holds.
    pub(crate) fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits()) + self.owed
    }

    /// Moves up to `n` bytes of this charge into a new one (what one
    /// chunk of a fetch's answer holds).
    pub(crate) fn split(&mut self, n: usize) -> Charge {
        let held = self.permit.as_ref().map_or(0, |p| p.num_permits());
        let permit = match n.min(held) {
            0 => None,
            k => self.permit.as_mut().and_then(|p| p.split(k)),
        };
        Charge {
            permit,
            owed: 0,
            owed_total: self.owed_total.clone(),
        }
    }

    /// Adds `n` bytes to the charge: free permits if there are enough,
    /// else owed until this charge is dropped.
    pub(crate) fn grow(&mut self, budget: &Budget, n: usize) {
        if n == 0 {
            return;
        }
        if let Some(extra) = budget.reserve(n).and_then(|mut c| c.permit.take()) {
            match &mut self.permit {
                Some(p) => p.merge(extra),
                None => self.permit = Some(extra),
            }
            return;
        }
        self.owed += n;
        self.owed_total.fetch_add(n, Ordering::AcqRel);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.owed > 0 {
            self.owed_total.fetch_sub(self.owed, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_shrinks_to_what_chunks_keep() {
        let b = Budget::new(1000);
        let mut fetch = b.reserve(600).expect("free");
        assert_eq!(b.used(), 600);
        let chunk = fetch.split(250);
        assert_eq!(chunk.bytes(), 250);
        drop(fetch); // the rest of the reservation goes back
        assert_eq!(b.used(), 250);
        drop(chunk);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn decompressed_bytes_are_charged_from_free_permits_first() {
        let b = Budget::new(1000);
        let mut fetch = b.reserve(100).expect("free");
        let mut chunk = fetch.split(100);
        chunk.grow(&b, 400);
        assert_eq!(chunk.bytes(), 500);
        assert_eq!(b.used(), 500);
        assert_eq!(b.available(), 500);
        drop(chunk);
        drop(fetch);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn what_does_not_fit_is_owed_and_blocks_reservations_until_paid() {
        let b = Budget::new(1000);
        let mut fetch = b.reserve(900).expect("free");
        let mut chunk = fetch.split(900);
        chunk.grow(&b, 700); // only 100 free: all 700 are owed
        assert_eq!(chunk.bytes(), 1600);
        assert_eq!(b.used(), 1600);
        assert_eq!(b.available(), 0);
        assert!(b.reserve(1).is_none(), "no fetch while in debt");
        drop(chunk);
        assert_eq!(b.used(), 0);
        assert_eq!(b.available(), 1000);
        assert!(b.reserve(1000).is_some());
    }

    #[test]
    fn fetches_ask_for_fewer_wire_bytes_once_records_decompress() {
        let b = Budget::new(1 << 20);
        assert_eq!(
            b.wire_bytes_for(1000),
            1000,
            "1:1 until a fetch is answered"
        );
        b.learn(100, 500);
        assert_eq!(b.inflation(), 5.0);
        assert_eq!(b.wire_bytes_for(1000), 200);
        assert_eq!(b.held_bytes_for(200), 1000);
        b.learn(100, 50); // never below 1:1
        assert_eq!(b.wire_bytes_for(1000), 1000);
        b.learn(1, 1 << 30); // never above 64:1
        assert_eq!(b.inflation(), 64.0);
        assert_eq!(b.wire_bytes_for(10), 1, "at least one byte");
        b.learn(0, 10); // nothing came back: nothing learnt
        assert_eq!(b.inflation(), 64.0);
    }

    #[test]
    fn a_split_larger_than_the_charge_takes_what_there_is() {
        let b = Budget::new(100);
        let mut fetch = b.reserve(50).expect("free");
        let a = fetch.split(80);
        assert_eq!(a.bytes(), 50);
        let c = fetch.split(10);
        assert_eq!(c.bytes(), 0);
    }
}
