//! Maps keyed by topic name with a cheap hash, for lookups made per record.
//!
//! The standard library's SipHash resists collision attacks on keys from
//! the network; topic names come from the application itself, and they are
//! hashed on every `send`, so a folded-multiply hash over 8-byte words is
//! enough here and several times cheaper.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` from topic name to `V` with [`TopicHasher`].
pub(crate) type TopicMap<V> = HashMap<String, V, BuildHasherDefault<TopicHasher>>;

/// A folded-multiply hash over 8-byte words (not collision resistant).
#[derive(Default, Clone, Copy)]
pub(crate) struct TopicHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl TopicHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        // A folded multiply: the 128-bit product's halves xored, so every
        // input bit reaches every output bit (a plain multiply only carries
        // bits upwards).
        let p = u128::from(self.0 ^ word) * u128::from(K);
        self.0 = (p as u64) ^ ((p >> 64) as u64);
    }
}

impl Hasher for TopicHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
        // The length keeps "a" and "a\0" apart.
        self.add(bytes.len() as u64);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn h(s: &str) -> u64 {
        BuildHasherDefault::<TopicHasher>::default().hash_one(s)
    }

    #[test]
    fn distinct_names_hash_apart_and_lookups_work() {
        let names: Vec<String> = (0..2000).map(|i| format!("topic-{i}")).collect();
        let mut seen = std::collections::HashSet::new();
        for n in &names {
            assert!(seen.insert(h(n)), "collision for {n}");
        }
        assert_ne!(h("a"), h("a\0"));
        assert_ne!(h(""), h("\0"));
        assert_eq!(h("orders"), h("orders"));
        let mut m: TopicMap<usize> = TopicMap::default();
        for (i, n) in names.iter().enumerate() {
            m.insert(n.clone(), i);
        }
        assert!(names
            .iter()
            .enumerate()
            .all(|(i, n)| m.get(n.as_str()) == Some(&i)));
    }
}
