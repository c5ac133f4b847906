//! Choosing a partition for a record.
//!
//! [`DefaultPartitioner`] does what the Java client does: keyed records go
//! to `murmur2(key) % partitions` (the same partition the Java client picks
//! for the same key and partition count), unkeyed records stick to one
//! available partition until its batch is sent, then move on (KIP-480).

use super::topic_map::TopicMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Picks partitions. `available` lists, in ascending order, the partitions
/// that have a leader and are not backing off after an error (never empty
/// when called; it is every partition when none is known to be
/// available); `count` is the topic's partition count.
pub trait Partitioner: Send + Sync {
    /// The partition for a record of `topic` with `key`.
    fn partition(&self, topic: &str, key: Option<&[u8]>, available: &[i32], count: i32) -> i32;

    /// A batch for `topic`-`partition` was closed: sticky partitioners move on.
    fn on_new_batch(&self, _topic: &str, _partition: i32) {}
}

/// Kafka's murmur2, as the Java client computes it (seed 0x9747b28c).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The Java client's partition for `key` among `count` partitions.
pub fn murmur2_partition(key: &[u8], count: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % count.max(1)
}

/// A small, fast random source (xorshift), seeded from the clock.
struct Random(AtomicU64);

impl Random {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Random(AtomicU64::new(seed))
    }

    fn below(&self, n: usize) -> usize {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.store(x, Ordering::Relaxed);
        (x % n.max(1) as u64) as usize
    }
}

/// Java-compatible: murmur2 for keys, sticky for unkeyed records (KIP-480).
pub struct DefaultPartitioner {
    sticky: Mutex<Sticky>,
    random: Random,
}

/// Each topic's sticky partition, and the last topic's at hand (most
/// producers send to one topic at a time: no hash for a repeat).
#[derive(Default)]
struct Sticky {
    by_topic: TopicMap<i32>,
    last_topic: String,
    last: Option<i32>,
}

impl Sticky {
    fn get(&mut self, topic: &str) -> Option<i32> {
        if self.last_topic != topic {
            self.last_topic.clear();
            self.last_topic.push_str(topic);
            self.last = self.by_topic.get(topic).copied();
        }
        self.last
    }

    fn set(&mut self, topic: &str, partition: i32) {
        self.by_topic.insert(topic.to_string(), partition);
        if self.last_topic == topic {
            self.last = Some(partition);
        }
    }

    fn clear(&mut self, topic: &str, partition: i32) {
        if self.by_topic.get(topic) == Some(&partition) {
            self.by_topic.remove(topic);
            if self.last_topic == topic {
                self.last = None;
            }
        }
    }
}

impl Default for DefaultPartitioner {
    fn default() -> Self {
        DefaultPartitioner {
            sticky: Mutex::new(Sticky::default()),
            random: Random::new(),
        }
    }
}

impl Partitioner for DefaultPartitioner {
    fn partition(&self, topic: &str, key: Option<&[u8]>, available: &[i32], count: i32) -> i32 {
        if let Some(k) = key {
            return murmur2_partition(k, count);
        }
        let mut sticky = self.sticky.lock().unwrap_or_else(|e| e.into_inner());
        match sticky.get(topic) {
            // A binary search: at 10,000 partitions a scan per record
            // was most of the producer's time.
            Some(p) if available.binary_search(&p).is_ok() => p,
            _ => {
                let p = available[self.random.below(available.len())];
                sticky.set(topic, p);
                p
            }
        }
    }

    fn on_new_batch(&self, topic: &str, partition: i32) {
        let mut sticky = self.sticky.lock().unwrap_or_else(|e| e.into_inner());
        sticky.clear(topic, partition);
    }
}

/// Round-robin over the available partitions, keys ignored.
#[derive(Default)]
pub struct RoundRobinPartitioner(AtomicU64);

impl Partitioner for RoundRobinPartitioner {
    fn partition(&self, _topic: &str, _key: Option<&[u8]>, available: &[i32], _count: i32) -> i32 {
        available[(self.0.fetch_add(1, Ordering::Relaxed) % available.len() as u64) as usize]
    }
}

/// A random available partition, keys ignored.
pub struct RandomPartitioner(Random);

impl Default for RandomPartitioner {
    fn default() -> Self {
        RandomPartitioner(Random::new())
    }
}

impl Partitioner for RandomPartitioner {
    fn partition(&self, _topic: &str, _key: Option<&[u8]>, available: &[i32], _count: i32) -> i32 {
        available[self.0.below(available.len())]
    }
}

/// murmur2 of the key for every record (unkeyed records hash the empty key).
#[derive(Default)]
pub struct HashPartitioner;

impl Partitioner for HashPartitioner {
    fn partition(&self, _topic: &str, key: Option<&[u8]>, _available: &[i32], count: i32) -> i32 {
        murmur2_partition(key.unwrap_or(&[]), count)
    }
}

/// Always the same partition.
pub struct ConstantPartitioner(pub i32);

impl Partitioner for ConstantPartitioner {
    fn partition(&self, _topic: &str, _key: Option<&[u8]>, _available: &[i32], count: i32) -> i32 {
        self.0.min(count - 1).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Vectors from the Java client's and librdkafka's murmur2 tests.
        assert_eq!(murmur2(b"kafka") as u32, 0xd067_cf64);
        assert_eq!(murmur2(b"giberish123456789") as u32, 0x8f55_2b0c);
        assert_eq!(murmur2(b"1234") as u32, 0x9fc9_7b14);
        assert_eq!(murmur2(b"234") as u32, 0xe7c0_09ca);
        assert_eq!(murmur2(b"34") as u32, 0x8739_30da);
        assert_eq!(murmur2(b"4") as u32, 0x5a4b_5ca1);
        assert_eq!(
            murmur2(b"PreAmbleWillBeRemoved,ThePrePartThatIs") as u32,
            0x7842_4f1c
        );
        assert_eq!(murmur2(b"") as u32, 0x106e_08d9);
    }

    #[test]
    fn sticky_sticks_until_a_new_batch() {
        let p = DefaultPartitioner::default();
        let first = p.partition("t", None, &[0, 1, 2, 3], 4);
        for _ in 0..50 {
            assert_eq!(p.partition("t", None, &[0, 1, 2, 3], 4), first);
        }
        // an unavailable sticky partition is left at once
        let avail: Vec<i32> = (0..4).filter(|x| *x != first).collect();
        assert_ne!(p.partition("t", None, &avail, 4), first);
        p.on_new_batch("t", p.partition("t", None, &avail, 4));
        // keys ignore stickiness
        assert_eq!(
            p.partition("t", Some(b"kafka"), &[0], 4),
            murmur2_partition(b"kafka", 4)
        );
    }

    #[test]
    fn sticky_is_per_topic_across_interleaved_topics() {
        let p = DefaultPartitioner::default();
        let all = [0, 1, 2, 3, 4, 5, 6, 7];
        let a = p.partition("a", None, &all, 8);
        let b = p.partition("b", None, &all, 8);
        for _ in 0..20 {
            assert_eq!(p.partition("a", None, &all, 8), a);
            assert_eq!(p.partition("b", None, &all, 8), b);
        }
        // A new batch of "a" moves "a" on (away from a, when it can) and keeps "b".
        p.on_new_batch("a", a);
        let only_others: Vec<i32> = all.iter().copied().filter(|x| *x != a).collect();
        let a2 = p.partition("a", None, &only_others, 8);
        assert_ne!(a2, a);
        assert_eq!(p.partition("a", None, &all, 8), a2);
        assert_eq!(p.partition("b", None, &all, 8), b);
        // A new batch of another partition changes nothing.
        p.on_new_batch("b", (b + 1) % 8);
        assert_eq!(p.partition("b", None, &all, 8), b);
        p.on_new_batch("b", b);
        p.partition("a", None, &all, 8);
        let b2 = p.partition("b", None, &[(b + 3) % 8], 8);
        assert_eq!(b2, (b + 3) % 8);
        assert_eq!(p.partition("b", None, &all, 8), b2);
    }

    #[test]
    fn other_partitioners() {
        let rr = RoundRobinPartitioner::default();
        let got: Vec<i32> = (0..4)
            .map(|_| rr.partition("t", None, &[3, 5], 6))
            .collect();
        assert_eq!(got, [3, 5, 3, 5]);
        assert_eq!(ConstantPartitioner(2).partition("t", None, &[0], 4), 2);
        assert_eq!(
            HashPartitioner.partition("t", Some(b"kafka"), &[0], 7),
            murmur2_partition(b"kafka", 7)
        );
        let r = RandomPartitioner::default();
        assert!((0..20).all(|_| [1, 2].contains(&r.partition("t", None, &[1, 2], 3))));
    }
}

/// The partitioners [`by_name`] knows, with what each does.
pub const NAMES: &[(&str, &str)] = &[
    (
        "default",
        "murmur2 of the key as the Java client, unkeyed records sticky (also murmur2_random)",
    ),
    (
        "murmur2",
        "murmur2 of the key for every record (unkeyed: the empty key)",
    ),
    (
        "round-robin",
        "each record to the next available partition, keys ignored",
    ),
    ("random", "a random available partition, keys ignored"),
];

/// A partitioner by name: kpax's names ([`NAMES`]), librdkafka's
/// `partitioner` values (`murmur2_random`, `murmur2`, `random`) and the
/// Java client's `partitioner.class` names for the same strategies.
///
/// # Errors
/// A message naming the partitioners offered; librdkafka's CRC32 and
/// FNV-1a partitioners (`consistent`, `fnv1a`, ...) are refused with the
/// reason (kpax places keys where the Java client does).
pub fn by_name(name: &str) -> Result<std::sync::Arc<dyn Partitioner>, String> {
    use std::sync::Arc;
    Ok(match name.trim() {
        "default"
        | "murmur2_random"
        | "org.apache.kafka.clients.producer.internals.DefaultPartitioner" => {
            Arc::new(DefaultPartitioner::default())
        }
        "murmur2" => Arc::new(HashPartitioner),
        "round-robin"
        | "round_robin"
        | "roundrobin"
        | "org.apache.kafka.clients.producer.RoundRobinPartitioner" => {
            Arc::new(RoundRobinPartitioner::default())
        }
        "random" => Arc::new(RandomPartitioner::default()),
        n @ ("consistent" | "consistent_random" | "fnv1a" | "fnv1a_random") => {
            return Err(format!(
                "librdkafka's {n} partitioner (CRC32/FNV-1a) is not offered: kpax places keys as the Java client does (default or murmur2)"
            ))
        }
        n => {
            return Err(format!(
                "unknown partitioner {n:?} (expected {})",
                NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ))
        }
    })
}

#[cfg(test)]
mod by_name_tests {
    use super::*;

    #[test]
    fn names_choose_strategies() {
        let rr = by_name("round-robin").unwrap();
        let got: Vec<i32> = (0..6)
            .map(|_| rr.partition("t", Some(b"k"), &[0, 1, 2], 3))
            .collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2]);
        let hash = by_name("murmur2").unwrap();
        assert_eq!(
            hash.partition("t", None, &[0, 1, 2], 3),
            murmur2_partition(b"", 3)
        );
        let java =
            by_name("org.apache.kafka.clients.producer.internals.DefaultPartitioner").unwrap();
        assert_eq!(
            java.partition("t", Some(b"key"), &[0], 7),
            murmur2_partition(b"key", 7)
        );
        assert!(by_name("consistent_random")
            .err()
            .unwrap()
            .contains("not offered"));
        assert!(by_name("fair")
            .err()
            .unwrap()
            .contains("unknown partitioner \"fair\""));
    }
}
