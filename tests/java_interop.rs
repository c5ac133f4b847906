//! kpax against the reference implementation: the Java client
//! (kafka-clients of the bundled Kafka release, through
//! `tests/java/Helper.java`) on the real Kafka 4.x cluster (`KPAX_KAFKA`)
//! and the 3.9 one (`KPAX_KAFKA_3_9`).
//!
//! - Java produces with every codec (keys, null and empty values, headers
//!   with null values) and in transactions (committed and aborted); kpax
//!   reads exactly that, byte for byte, read_committed and
//!   read_uncommitted.
//! - kpax produces with every codec, idempotent and transactional; Java
//!   reads (read_committed) exactly what kpax acknowledged and committed.
//! - kpax's default partitioner puts keys where Java's puts them.
//! - Java and kpax consumers share one group (classic with range and with
//!   cooperative-sticky, and the consumer protocol): every record once,
//!   offsets committed by one resumed by the other.
//! - Java reads what kpax wrote with legacy message sets on 3.9.
//!
//! Without Kafka or a JDK these tests print why they skip (under CI they fail).

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use harness::java::{self, Java, JavaRecord};
use harness::{Cluster as TestCluster, KafkaNodes};
use kpax::consumer::{GroupProtocol, IsolationLevel, OffsetReset, StartAt};
use kpax::producer::{murmur2_partition, ProducerRecord};
use kpax::proto::generated::ApiKey;
use kpax::proto::records::Compression;
use kpax::{Cluster, Consumer, ConsumerConfig, Producer, ProducerConfig};

const JAVA_BOUND: Duration = Duration::from_secs(90);
const CODECS: [(&str, Compression); 5] = [
    ("none", Compression::None),
    ("gzip", Compression::Gzip),
    ("snappy", Compression::Snappy),
    ("lz4", Compression::Lz4),
    ("zstd", Compression::Zstd),
];

/// The 4.x cluster, its nodes and its Java client; `None` (after saying
/// why) when one is missing.
fn kafka() -> Option<(TestCluster, KafkaNodes, Java)> {
    harness::init_log();
    let tc = TestCluster::kafka()?;
    let Some(nodes) = tc.kafka_nodes().cloned() else {
        harness::skip_or_fail("the Java interop tests need the bundled cluster (KPAX_KAFKA)");
        return None;
    };
    let java = Java::of(&nodes)?;
    Some((tc, nodes, java))
}

fn cluster(tc: &TestCluster) -> Cluster {
    Cluster::new([tc.bootstrap()], harness::client::client_config()).unwrap()
}

/// A record in a form both clients' outputs compare in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl From<&JavaRecord> for Seen {
    fn from(r: &JavaRecord) -> Seen {
        Seen {
            partition: r.partition,
            offset: r.offset,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect(),
        }
    }
}

fn seen(r: &kpax::ConsumerRecord) -> Seen {
    Seen {
        partition: r.partition,
        offset: r.offset,
        key: r.key().map(<[u8]>::to_vec),
        value: r.value().map(<[u8]>::to_vec),
        headers: r
            .headers_owned()
            .into_iter()
            .map(|h| (h.key.to_vec(), h.value.map(|v| v.to_vec())))
            .collect(),
    }
}

/// Reads every partition of `topic` from the beginning with kpax until
/// `n` records came, then checks that no more come within a second.
async fn kpax_read(
    tc: &TestCluster,
    topic: &str,
    partitions: i32,
    n: usize,
    isolation: IsolationLevel,
) -> Vec<Seen> {
    let consumer = Consumer::new(
        cluster(tc),
        ConsumerConfig::default().with_isolation_level(isolation),
    )
    .unwrap();
    consumer.assign(
        (0..partitions).map(|p| kpax::TopicPartition::new(topic.to_string(), p)),
        StartAt::Earliest,
    );
    let mut out = Vec::new();
    while out.len() < n {
        let r = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("kpax read {} of {n} records of {topic}", out.len()))
            .unwrap();
        out.push(seen(&r));
    }
    if let Ok(r) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
        panic!(
            "a record beyond the {n} expected: {:?}",
            r.map(|r| seen(&r))
        );
    }
    consumer.close().await;
    out
}

/// The records of one partition are in offset order.
fn assert_in_order(records: &[Seen]) {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for r in records {
        if let Some(prev) = last.insert(r.partition, r.offset) {
            assert!(
                r.offset > prev,
                "partition {} out of order: {prev} then {}",
                r.partition,
                r.offset
            );
        }
    }
}

/// The `i`th test record: binary, ASCII, empty and null keys; null and
/// empty values; headers with null values and repeated names.
#[allow(clippy::type_complexity)]
fn sample(
    i: usize,
    tag: &str,
) -> (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(&'static str, Option<Vec<u8>>)>,
) {
    let key = match i % 5 {
        0 => None,
        1 => Some(Vec::new()),
        2 => Some(vec![0, 255, i as u8, 10, 9]),
        _ => Some(format!("key-{tag}-{i}").into_bytes()),
    };
    let value = match i % 7 {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some(format!("value-{tag}-{i}-").repeat(1 + i % 13).into_bytes()),
    };
    let headers = match i % 4 {
        0 => Vec::new(),
        1 => vec![("h", Some(vec![i as u8]))],
        2 => vec![("null", None), ("empty", Some(Vec::new()))],
        _ => vec![("dup", Some(b"a".to_vec())), ("dup", Some(b"b".to_vec()))],
    };
    (key, value, headers)
}

fn sample_line(i: usize, tag: &str, partitions: i32) -> String {
    let (k, v, hs) = sample(i, tag);
    let hs: Vec<(&str, Option<&[u8]>)> = hs.iter().map(|(n, v)| (*n, v.as_deref())).collect();
    // Null keys go to a partition named here, keyed ones to Java's partitioner.
    let p = k.is_none().then_some((i as i32) % partitions);
    java::record_line(p, k.as_deref(), v.as_deref(), &hs)
}

fn sample_seen(i: usize, tag: &str, partition: i32, offset: i64) -> Seen {
    let (key, value, hs) = sample(i, tag);
    Seen {
        partition,
        offset,
        key,
        value,
        headers: hs
            .into_iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v))
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_producer_every_codec_read_by_kpax() {
    let Some((tc, _nodes, java)) = kafka() else {
        return;
    };
    let topic = tc.topic(3).await;
    let mut expected = Vec::new();
    for (name, _) in CODECS {
        let input: String = (0..120).map(|i| sample_line(i, name, 3)).collect();
        let out = java
            .run(
                &[
                    "produce",
                    "--bootstrap",
                    tc.bootstrap(),
                    "--topic",
                    &topic.name,
                    "--compression",
                    name,
                    "--linger-ms",
                    "20",
                ],
                &input,
                JAVA_BOUND,
            )
            .await;
        assert!(
            java::errors(&out).is_empty(),
            "{name}: {:?}",
            java::errors(&out)
        );
        let acks = java::acks(&out);
        assert_eq!(acks.len(), 120, "{name}");
        for (seq, p, o) in acks {
            expected.push(sample_seen(seq, name, p, o));
        }
    }
    let got = kpax_read(
        &tc,
        &topic.name,
        3,
        expected.len(),
        IsolationLevel::ReadUncommitted,
    )
    .await;
    assert_in_order(&got);
    let mut got = got;
    got.sort();
    expected.sort();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_transactions_read_by_kpax_committed_and_uncommitted() {
    let Some((tc, _nodes, java)) = kafka() else {
        return;
    };
    let topic = tc.topic(2).await;
    let txn = harness::unique_name("java-txn");
    // Committed 0..40, aborted 40..70 (flushed first, so they are in the
    // log), committed 70..100; codec gzip.
    let mut input = String::from("#begin\n");
    for i in 0..40 {
        input.push_str(&sample_line(i, "txn", 2));
    }
    input.push_str("#commit\n#begin\n");
    for i in 40..70 {
        input.push_str(&sample_line(i, "txn", 2));
    }
    input.push_str("#flush\n#abort\n#begin\n");
    for i in 70..100 {
        input.push_str(&sample_line(i, "txn", 2));
    }
    input.push_str("#commit\n");
    let out = java
        .run(
            &[
                "produce",
                "--bootstrap",
                tc.bootstrap(),
                "--topic",
                &topic.name,
                "--transactional-id",
                &txn,
                "--compression",
                "gzip",
            ],
            &input,
            JAVA_BOUND,
        )
        .await;
    assert!(java::errors(&out).is_empty(), "{:?}", java::errors(&out));
    assert!(out.iter().any(|l| l == "aborted"), "{out:?}");
    let acks = java::acks(&out);
    assert_eq!(acks.len(), 100);
    let all: Vec<Seen> = acks
        .iter()
        .map(|&(seq, p, o)| sample_seen(seq, "txn", p, o))
        .collect();
    let committed: Vec<Seen> = acks
        .iter()
        .filter(|(seq, _, _)| !(40..70).contains(seq))
        .map(|&(seq, p, o)| sample_seen(seq, "txn", p, o))
        .collect();

    let mut got = kpax_read(&tc, &topic.name, 2, 70, IsolationLevel::ReadCommitted).await;
    assert_in_order(&got);
    got.sort();
    let mut want = committed.clone();
    want.sort();
    assert_eq!(got, want, "read_committed");

    let mut got = kpax_read(&tc, &topic.name, 2, 100, IsolationLevel::ReadUncommitted).await;
    assert_in_order(&got);
    got.sort();
    let mut want = all;
    want.sort();
    assert_eq!(got, want, "read_uncommitted");
}

/// Produces `sample` records 0..n with kpax (partition as the sample
/// line would: null keys to i % partitions); returns what was acknowledged.
async fn kpax_produce(
    producer: &Producer,
    topic: &str,
    tag: &str,
    range: std::ops::Range<usize>,
    partitions: i32,
) -> Vec<Seen> {
    let mut futures = Vec::new();
    for i in range {
        let (k, v, hs) = sample(i, tag);
        let mut r = ProducerRecord::new(topic, Bytes::new());
        r.value = v.map(Bytes::from);
        match k {
            Some(k) => r = r.with_key(k),
            None => r = r.with_partition(i as i32 % partitions),
        }
        for (n, v) in hs {
            r = r.with_header(n, v.map(Bytes::from));
        }
        futures.push((i, producer.send(r).await.unwrap()));
    }
    let mut out = Vec::new();
    for (i, f) in futures {
        let m = f.await.unwrap_or_else(|e| panic!("{tag} record {i}: {e}"));
        out.push(sample_seen(i, tag, m.partition, m.offset));
    }
    out
}

async fn java_read(
    java: &Java,
    tc: &TestCluster,
    topic: &str,
    n: usize,
    isolation: &str,
) -> Vec<Seen> {
    let count = n.to_string();
    let out = java
        .run(
            &[
                "consume",
                "--bootstrap",
                tc.bootstrap(),
                "--topic",
                topic,
                "--isolation",
                isolation,
                "--count",
                &count,
                "--idle-ms",
                "20000",
            ],
            "",
            JAVA_BOUND,
        )
        .await;
    java::records(&out).iter().map(Seen::from).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpax_producer_every_codec_and_transactions_read_by_java() {
    let Some((tc, _nodes, java)) = kafka() else {
        return;
    };
    let topic = tc.topic(3).await;
    let mut expected = Vec::new();
    for (name, codec) in CODECS {
        let p = Producer::new(
            cluster(&tc),
            ProducerConfig::default().with_compression(codec),
        )
        .unwrap();
        expected.extend(kpax_produce(&p, &topic.name, name, 0..120, 3).await);
        assert!(p.close(Duration::from_secs(10)).await);
    }
    // Transactional: one committed, one aborted, one committed.
    let p = Producer::new(
        cluster(&tc),
        ProducerConfig::default()
            .with_compression(Compression::Lz4)
            .with_transactional_id(harness::unique_name("kpax-txn")),
    )
    .unwrap();
    p.init_transactions().await.unwrap();
    for (round, commit) in [(0, true), (1, false), (2, true)] {
        p.begin_transaction().unwrap();
        let tag = format!("txn{round}");
        let acked = kpax_produce(&p, &topic.name, &tag, 0..50, 3).await;
        if commit {
            p.commit_transaction().await.unwrap();
            expected.extend(acked);
        } else {
            p.abort_transaction().await.unwrap();
        }
    }
    assert!(p.close(Duration::from_secs(10)).await);
    let mut got = java_read(&java, &tc, &topic.name, expected.len(), "read_committed").await;
    assert_in_order(&got);
    got.sort();
    expected.sort();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e);
    }
}

/// Keys of every kind: empty, ASCII, binary, long.
fn keys() -> Vec<Vec<u8>> {
    let mut keys = vec![Vec::new()];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..3000usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        keys.push(match i % 4 {
            0 => format!("user-{i}").into_bytes(),
            1 => x.to_le_bytes()[..1 + i % 8].to_vec(),
            2 => (0..(200 + i % 300))
                .map(|j| (x >> (j % 56)) as u8)
                .collect(),
            _ => vec![(i % 256) as u8],
        });
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_go_where_javas_partitioner_puts_them() {
    let Some((tc, _nodes, java)) = kafka() else {
        return;
    };
    let keys = keys();
    let input: String = keys.iter().map(|k| java::hex(Some(k)) + "\n").collect();
    for n in [1, 3, 7, 100] {
        let out = java
            .run(
                &["partition", "--partitions", &n.to_string()],
                &input,
                JAVA_BOUND,
            )
            .await;
        assert_eq!(out.len(), keys.len(), "{n} partitions");
        for (k, p) in keys.iter().zip(&out) {
            assert_eq!(
                murmur2_partition(k, n),
                p.parse::<i32>().unwrap(),
                "key {} on {n} partitions",
                java::hex(Some(k))
            );
        }
    }
    // And through both real producers: the same key lands on the same
    // partition of a 7-partition topic.
    let topic = tc.topic(7).await;
    let few: Vec<&Vec<u8>> = keys.iter().step_by(10).collect();
    let input: String = few
        .iter()
        .map(|k| java::record_line(None, Some(k), Some(b"java"), &[]))
        .collect();
    let out = java
        .run(
            &[
                "produce",
                "--bootstrap",
                tc.bootstrap(),
                "--topic",
                &topic.name,
            ],
            &input,
            JAVA_BOUND,
        )
        .await;
    let java_partitions: Vec<i32> = java::acks(&out).iter().map(|a| a.1).collect();
    assert_eq!(java_partitions.len(), few.len());
    let p = Producer::new(cluster(&tc), ProducerConfig::default()).unwrap();
    let mut futures = Vec::new();
    for k in &few {
        futures.push(
            p.send(ProducerRecord::new(&topic.name, "kpax").with_key((*k).clone()))
                .await
                .unwrap(),
        );
    }
    for (i, f) in futures.into_iter().enumerate() {
        assert_eq!(f.await.unwrap().partition, java_partitions[i], "key {i}");
    }
    assert!(p.close(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_reads_legacy_message_sets_kpax_wrote_on_3_9() {
    let Some(tc) = TestCluster::kafka_3_9() else {
        return;
    };
    let Some(nodes) = tc.kafka_nodes().cloned() else {
        harness::skip_or_fail("needs the bundled 3.9 cluster (KPAX_KAFKA_3_9)");
        return;
    };
    let Some(java) = Java::of(&nodes) else {
        return;
    };
    let topic = tc.topic(1).await;
    let mut expected = Vec::new();
    // Produce v2 writes message format v1, v0/v1 writes v0 (no headers,
    // no idempotence there); every codec those formats have.
    for (version, codecs) in [(1, &CODECS[..4]), (2, &CODECS[..4])] {
        for (name, codec) in codecs {
            let config =
                harness::client::client_config().with_version_cap(ApiKey::Produce, version);
            let p = Producer::new(
                Cluster::new([tc.bootstrap()], config).unwrap(),
                ProducerConfig::default()
                    .with_idempotence(false)
                    .with_compression(*codec),
            )
            .unwrap();
            let mut futures = Vec::new();
            for i in 0..30 {
                let key = format!("k-{version}-{name}-{i}");
                let value = format!("v{version}-{name}-{i}");
                futures.push((
                    key.clone(),
                    value.clone(),
                    p.send(
                        ProducerRecord::new(&topic.name, value)
                            .with_key(key)
                            .with_partition(0),
                    )
                    .await
                    .unwrap(),
                ));
            }
            for (k, v, f) in futures {
                let m = f
                    .await
                    .unwrap_or_else(|e| panic!("Produce v{version} {name}: {e}"));
                expected.push(Seen {
                    partition: 0,
                    offset: m.offset,
                    key: Some(k.into_bytes()),
                    value: Some(v.into_bytes()),
                    headers: Vec::new(),
                });
            }
            assert!(p.close(Duration::from_secs(10)).await);
        }
    }
    let got = java_read(&java, &tc, &topic.name, expected.len(), "read_uncommitted").await;
    assert_eq!(got, expected);
}

/// Which member printed or received each record, and the group's
/// assignment changes, for the mixed-group tests.
#[derive(Default)]
struct GroupLog {
    /// (member, partition, offset) of every record delivered.
    delivered: Vec<(String, i32, i64)>,
}

impl GroupLog {
    /// Per member and partition, the offset ranges it got (for failures).
    fn ranges(&self) -> String {
        let mut by: BTreeMap<(&str, i32), Vec<i64>> = BTreeMap::new();
        for (m, p, o) in &self.delivered {
            by.entry((m, *p)).or_default().push(*o);
        }
        let mut out = String::new();
        for ((m, p), mut os) in by {
            os.sort();
            let mut runs = Vec::new();
            let mut start = os[0];
            for w in os.windows(2) {
                if w[1] != w[0] + 1 {
                    runs.push(format!("{start}..={}", w[0]));
                    start = w[1];
                }
            }
            runs.push(format!("{start}..={}", os[os.len() - 1]));
            out.push_str(&format!("  {m} p{p}: {}\n", runs.join(", ")));
        }
        out
    }

    fn assert_each_once(&self, expected: &BTreeSet<(i32, i64)>) {
        let mut seen: BTreeMap<(i32, i64), Vec<&str>> = BTreeMap::new();
        for (m, p, o) in &self.delivered {
            seen.entry((*p, *o)).or_default().push(m);
        }
        let missing: Vec<_> = expected
            .iter()
            .filter(|k| !seen.contains_key(k))
            .take(5)
            .collect();
        assert!(
            missing.is_empty(),
            "records never delivered, e.g. {missing:?}\n{}",
            self.ranges()
        );
        let twice: Vec<_> = seen.iter().filter(|(_, ms)| ms.len() > 1).take(5).collect();
        assert!(
            twice.is_empty(),
            "records delivered twice, e.g. {twice:?}\n{}",
            self.ranges()
        );
        assert_eq!(
            seen.len(),
            expected.len(),
            "records delivered that were never produced"
        );
    }
}

/// Waits until `group` is stable with `members` members (classic
/// groups, through DescribeGroups), so that a member that leaves next
/// leaves cleanly: its records committed, no rebalance half done. A
/// consumer-protocol group (which DescribeGroups does not describe) gets a
/// fixed settling time instead.
async fn wait_stable(tc: &TestCluster, group: &str, members: usize) {
    let admin = kpax::admin::Admin::new(cluster(tc));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let described = admin.describe_groups(&[group]).await;
        let state = match described.as_ref().map(|r| r.first().map(|(_, d)| d)) {
            Ok(Some(Ok(d))) if d.protocol_type == "consumer" || d.protocol_type.is_empty() => {
                (d.state.clone(), d.members.len())
            }
            _ => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                return;
            }
        };
        if state.0 == "Stable" && state.1 == members {
            return;
        }
        if state.0 == "Dead" || state.0.is_empty() {
            // Not a classic group (KIP-848 groups show as unknown here).
            tokio::time::sleep(Duration::from_secs(5)).await;
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "group {group} not stable with {members} members: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Mixed group: Java and kpax members share one group over 4 partitions
/// while records keep coming and members come and go (Java joins, kpax
/// joins, Java leaves, Java joins again, kpax leaves, Java leaves); each
/// member leaves once the group is stable. Every record is delivered
/// exactly once across the members, and each member gets some.
async fn mixed_group(
    tc: &TestCluster,
    java: &Java,
    java_protocol: &[&str],
    kpax_config: ConsumerConfig,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let topic = tc.topic(4).await;
    let group = harness::unique_name("mixed");
    let producer = Producer::new(cluster(tc), ProducerConfig::default()).unwrap();
    let mut expected: BTreeSet<(i32, i64)> = BTreeSet::new();
    let mut round = 0usize;
    let mut produce = |n: usize| {
        round += 1;
        let (topic, tag, producer) = (topic.name.clone(), round, producer.clone());
        async move {
            let mut fs = Vec::new();
            for i in 0..n {
                let r = ProducerRecord::new(&topic, format!("r{tag}-{i}"))
                    .with_key(format!("k{tag}-{i}"));
                fs.push(producer.send(r).await.unwrap());
            }
            let mut acked = Vec::new();
            for f in fs {
                let m = f.await.unwrap();
                acked.push((m.partition, m.offset));
            }
            acked
        }
    };
    let mut args = vec![
        "consume",
        "--bootstrap",
        tc.bootstrap(),
        "--topic",
        &topic.name,
        "--group",
        &group,
        "--stdin-control",
        "--max-ms",
        "150000",
    ];
    args.extend_from_slice(java_protocol);
    let k_delivered: Arc<Mutex<Vec<(i32, i64)>>> = Arc::default();
    let delivered_by = |j: &[(&str, Vec<String>)], k: &[(i32, i64)]| {
        let mut all: Vec<(String, i32, i64)> = Vec::new();
        for (name, lines) in j {
            all.extend(
                java::records(lines)
                    .iter()
                    .map(|r| (name.to_string(), r.partition, r.offset)),
            );
        }
        all.extend(k.iter().map(|(p, o)| ("kpax".to_string(), *p, *o)));
        all
    };
    // Waits until every record produced so far was delivered to someone.
    async fn all_delivered(
        expected: &BTreeSet<(i32, i64)>,
        seen: impl Fn() -> BTreeSet<(i32, i64)>,
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let s = seen();
            if expected.is_subset(&s) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {} records delivered",
                expected.intersection(&s).count(),
                expected.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    expected.extend(produce(200).await);
    let mut j1 = java.spawn(&args);
    j1.wait_until("ready", JAVA_BOUND, |l| l.iter().any(|l| l == "ready"))
        .await;
    all_delivered(&expected, || {
        java::records(&j1.lines())
            .iter()
            .map(|r| (r.partition, r.offset))
            .collect()
    })
    .await;

    // kpax joins: it commits each batch it gets, as the Java helper does.
    let k = Consumer::new(
        cluster(tc),
        kpax_config
            .with_group_id(group.clone())
            .with_auto_offset_reset(OffsetReset::Earliest),
    )
    .unwrap();
    k.subscribe([topic.name.clone()]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let kpax_loop = {
        let (k, sink, stop) = (k.clone(), k_delivered.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), k.recv_batch(100)).await {
                    Ok(Ok(batch)) => {
                        sink.lock()
                            .unwrap()
                            .extend(batch.iter().map(|r| (r.partition, r.offset)));
                        if let Err(e) = k.commit_records(&batch).await {
                            // Refused mid-rebalance: the revocation commits it.
                            eprintln!("kpax member: commit: {e}");
                        }
                    }
                    Ok(Err(e)) => panic!("kpax member: {e}"),
                    Err(_) => {}
                }
            }
            k.close().await;
        })
    };
    wait_stable(tc, &group, 2).await;
    expected.extend(produce(200).await);
    let seen_now = |j: &[&harness::java::JavaProcess]| {
        let mut s: BTreeSet<(i32, i64)> = k_delivered.lock().unwrap().iter().copied().collect();
        for p in j {
            s.extend(
                java::records(&p.lines())
                    .iter()
                    .map(|r| (r.partition, r.offset)),
            );
        }
        s
    };
    all_delivered(&expected, || seen_now(&[&j1])).await;
    wait_stable(tc, &group, 2).await;
    let j1_out = j1.stop(JAVA_BOUND).await;

    expected.extend(produce(200).await);
    let mut j2 = java.spawn(&args);
    j2.wait_until("ready", JAVA_BOUND, |l| l.iter().any(|l| l == "ready"))
        .await;
    wait_stable(tc, &group, 2).await;
    expected.extend(produce(200).await);
    let j1_seen: BTreeSet<(i32, i64)> = java::records(&j1_out)
        .iter()
        .map(|r| (r.partition, r.offset))
        .collect();
    all_delivered(&expected, || {
        let mut s = seen_now(&[&j2]);
        s.extend(&j1_seen);
        s
    })
    .await;
    wait_stable(tc, &group, 2).await;
    stop.store(true, Ordering::Relaxed);
    kpax_loop.await.unwrap();

    // kpax has left: Java takes every partition and reads the rest.
    expected.extend(produce(200).await);
    all_delivered(&expected, || {
        let mut s = seen_now(&[&j2]);
        s.extend(&j1_seen);
        s
    })
    .await;
    wait_stable(tc, &group, 1).await;
    let j2_out = j2.stop(JAVA_BOUND).await;
    for (who, out) in [("j1", &j1_out), ("j2", &j2_out)] {
        for l in out.iter().filter(|l| java::assignment_change(l).is_some()) {
            eprintln!("  {who}: {l}");
        }
    }
    let log = GroupLog {
        delivered: delivered_by(
            &[("j1", j1_out), ("j2", j2_out)],
            &k_delivered.lock().unwrap(),
        ),
    };
    let by = |m: &str| log.delivered.iter().filter(|d| d.0 == m).count();
    harness::report(
        "mixed Java + kpax group",
        &format!(
            "{java_protocol:?}: {} records, each delivered once: j1 {}, kpax {}, j2 {}",
            expected.len(),
            by("j1"),
            by("kpax"),
            by("j2")
        ),
    );
    assert!(by("kpax") > 0, "the kpax member got nothing");
    assert!(by("j1") > 0 && by("j2") > 0, "a Java member got nothing");
    log.assert_each_once(&expected);
    assert!(producer.close(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_group_classic_range() {
    let Some((tc, _nodes, java)) = kafka() else {
        return;
    };
    let config = ConsumerConfig::default()
        .with_assignors(vec![std::sync::Arc::new(kpax::consumer::RangeAssignor)]);
    mixed_group(&tc, &java, &["--assignor", "range"], config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_group_classic_cooperative_sticky() {
    let Some((tc, _nodes, java)) = kafka() else {
        return;
    };
    let config = ConsumerConfig::default().with_assignors(vec![std::sync::Arc::new(
        kpax::consumer::CooperativeStickyAssignor,
    )]);
    mixed_group(&tc, &java, &["--assignor", "cooperative-sticky"], config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_group_consumer_protocol() {
    let Some((tc, _nodes, java)) = kafka() else {
        return;
    };
    let config = ConsumerConfig::default().with_group_protocol(GroupProtocol::Consumer);
    mixed_group(&tc, &java, &["--protocol", "consumer"], config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_resume_across_clients() {
    let Some((tc, _nodes, java)) = kafka() else {
        return;
    };
    // One partition, so that each client's first 100 records commit it.
    let topic = tc.topic(1).await;
    let group = harness::unique_name("resume");
    let p = Producer::new(cluster(&tc), ProducerConfig::default()).unwrap();
    let produced = kpax_produce(&p, &topic.name, "resume", 0..300, 1).await;
    assert!(p.close(Duration::from_secs(10)).await);
    let all: BTreeSet<(i32, i64)> = produced.iter().map(|s| (s.partition, s.offset)).collect();

    // Java reads 100 and commits them.
    let out = java
        .run(
            &[
                "consume",
                "--bootstrap",
                tc.bootstrap(),
                "--topic",
                &topic.name,
                "--group",
                &group,
                "--count",
                "100",
            ],
            "",
            JAVA_BOUND,
        )
        .await;
    let mut read: Vec<(i32, i64)> = java::records(&out)
        .iter()
        .map(|r| (r.partition, r.offset))
        .collect();
    assert_eq!(read.len(), 100);
    // kpax resumes at Java's commits, reads 100 more and commits them.
    let k = Consumer::new(
        cluster(&tc),
        ConsumerConfig::default()
            .with_group_id(group.clone())
            .with_auto_offset_reset(OffsetReset::None),
    )
    .unwrap();
    k.subscribe([topic.name.clone()]).unwrap();
    let mut mine = Vec::new();
    while mine.len() < 100 {
        let r = tokio::time::timeout(Duration::from_secs(30), k.recv())
            .await
            .expect("kpax reads in time")
            .unwrap();
        mine.push(r);
    }
    k.commit_records(&mine).await.unwrap();
    k.close().await;
    read.extend(mine.iter().map(|r| (r.partition, r.offset)));
    // Java resumes at kpax's commits and reads the last 100.
    let out = java
        .run(
            &[
                "consume",
                "--bootstrap",
                tc.bootstrap(),
                "--topic",
                &topic.name,
                "--group",
                &group,
                "--count",
                "100",
                "--idle-ms",
                "3000",
            ],
            "",
            JAVA_BOUND,
        )
        .await;
    read.extend(java::records(&out).iter().map(|r| (r.partition, r.offset)));
    let unique: BTreeSet<(i32, i64)> = read.iter().copied().collect();
    assert_eq!(unique.len(), read.len(), "a record was read twice");
    assert_eq!(unique, all);
}
