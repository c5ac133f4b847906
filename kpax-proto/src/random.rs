//! A small deterministic random source for generated `random()` values,
//! used by round-trip and differential tests (feature `random`).

use crate::wire::{RawTaggedField, StrBytes, UnknownTaggedFields, Uuid};
use bytes::Bytes;

/// SplitMix64: tiny, fast, and good enough to vary test messages.
#[derive(Debug, Clone)]
pub struct Rand(u64);

impl Rand {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rand(seed)
    }

    /// The next 64 random bits.
    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A random boolean.
    pub fn bool(&mut self) -> bool {
        self.u64() & 1 == 1
    }

    /// A random collection length, 0 to 3.
    pub fn count(&mut self) -> usize {
        (self.u64() % 4) as usize
    }

    /// A finite random float.
    pub fn f64(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64 * 1e6
    }

    /// A random UUID.
    pub fn uuid(&mut self) -> Uuid {
        let mut u = [0u8; 16];
        u[..8].copy_from_slice(&self.u64().to_be_bytes());
        u[8..].copy_from_slice(&self.u64().to_be_bytes());
        Uuid(u)
    }

    /// A short random string, sometimes with non-ASCII characters.
    pub fn string(&mut self) -> StrBytes {
        const WORDS: [&str; 6] = ["", "topic", "grüße", "a-b_c.d", "消息", "x"];
        let n = self.count();
        let s: Vec<&str> = (0..n).map(|_| WORDS[(self.u64() % 6) as usize]).collect();
        StrBytes::from(s.join("-"))
    }

    /// A short random INT32 array.
    pub fn int32_array(&mut self) -> crate::wire::Int32Array {
        (0..self.count()).map(|_| self.u64() as i32).collect()
    }

    /// Short random bytes.
    pub fn bytes(&mut self) -> Bytes {
        let n = (self.u64() % 24) as usize;
        Bytes::from((0..n).map(|_| self.u64() as u8).collect::<Vec<u8>>())
    }

    /// Zero to two unknown tagged fields with tags no spec field uses.
    pub fn unknown_tagged_fields(&mut self) -> UnknownTaggedFields {
        let n = self.u64() % 3;
        (0..n)
            .map(|i| RawTaggedField {
                tag: 1000 + 10 * i as u32 + (self.u64() % 10) as u32,
                data: self.bytes(),
            })
            .collect()
    }
}
