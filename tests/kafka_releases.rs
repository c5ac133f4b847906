//! Real old Apache Kafka releases, from Maven Central, in ZooKeeper mode
//! (`scripts/kafka.sh start --version 0.10.2.2 --nodes 1`): the releases of
//! `KPAX_KAFKA_RELEASES` (state files, separated by spaces or commas) each
//! run the legacy subset through kpax's own code, with nothing pinned and
//! no broker version named (kpax negotiates, or, before 0.10, finds the
//! release by probing):
//!
//! - every record format and codec the release has (message format v0 on
//!   0.8/0.9, v1 on 0.10, record batches from 0.11; zstd from 2.1), keys,
//!   null keys and values, timestamps (v1+), headers (v2), the idempotent
//!   producer (0.11+), read back byte for byte at the offsets acknowledged;
//! - offsets: earliest, latest, and by timestamp (0.10.1+);
//! - groups: committed offsets of an assigned consumer (0.8.2+: OffsetCommit
//!   v1 to the coordinator) and, from 0.9, a subscribed consumer group whose
//!   commits a second member resumes from.
//!
//! Outside CI an unset `KPAX_KAFKA_RELEASES` skips with a printed reason;
//! under CI it fails.

mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::kafka::KafkaNodes;
use kpax::admin::{Admin, NewTopic, OffsetSpec, TopicPartition};
use kpax::consumer::{OffsetReset, StartAt};
use kpax::producer::Acks;
use kpax::proto::records::Compression;
use kpax::{Cluster, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};

const RELEASES_VAR: &str = "KPAX_KAFKA_RELEASES";

/// One running old release.
struct Release {
    version: String,
    /// (major, minor, patch) of `version`.
    at: (u32, u32, u32),
    bootstrap: String,
}

impl Release {
    fn has(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.at >= (major, minor, patch)
    }

    fn cluster(&self) -> Cluster {
        Cluster::new(
            [self.bootstrap.as_str()],
            harness::client::client_config()
                // Brokers before 0.11 ignore allow_auto_topic_creation;
                // the ones after it create only what is asked.
                .with_allow_auto_topic_creation(true),
        )
        .expect("cluster")
    }

    /// The codecs of this release's newest record format.
    fn codecs(&self) -> Vec<Compression> {
        let mut c = vec![
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
        ];
        if self.has(2, 1, 0) {
            c.push(Compression::Zstd);
        }
        c
    }
}

fn releases() -> Vec<Release> {
    harness::init_log();
    let list = std::env::var(RELEASES_VAR).unwrap_or_default();
    if list.trim().is_empty() {
        harness::skip_or_fail(&format!(
            "{RELEASES_VAR} is not set (start old releases with `scripts/kafka.sh start --version V --nodes 1` for V in `scripts/kafka.sh versions --legacy` and list their state files in {RELEASES_VAR}, or run `bash .ci/run`; see docs/testing.md)"
        ));
        return Vec::new();
    }
    list.split([' ', ',', '\n'])
        .filter(|s| !s.trim().is_empty())
        .map(|path| {
            let nodes = KafkaNodes::read(std::path::Path::new(path.trim()))
                .unwrap_or_else(|e| panic!("{RELEASES_VAR}: {e}"));
            let version = nodes.version().to_string();
            let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            let at = (
                parts.next().unwrap_or(0),
                parts.next().unwrap_or(0),
                parts.next().unwrap_or(0),
            );
            Release {
                version,
                at,
                bootstrap: nodes.bootstrap(harness::kafka::Listener::Plaintext),
            }
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn unique(prefix: &str, r: &Release) -> String {
    format!(
        "{prefix}-{}-{}",
        r.version.replace('.', "_"),
        now_ms() % 100_000_000
    )
}

/// Makes a 1-partition topic: CreateTopics where the release has it
/// (0.10.1+), else the broker's auto-creation (Metadata v0 creates what it
/// names) with the producer waiting for the leader.
async fn make_topic(r: &Release, name: &str) {
    if r.has(0, 10, 1) {
        let admin = Admin::new(r.cluster());
        let out = admin
            .create_topics(&[NewTopic::new(name, 1, 1)], false)
            .await
            .unwrap_or_else(|e| panic!("{}: create {name}: {e}", r.version));
        for (t, res) in out {
            res.unwrap_or_else(|e| panic!("{}: create {t}: {e}", r.version));
        }
    }
}

type Row = (
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    i64,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

/// Produces `n` records with `codec` to partition 0 of `topic` (every tenth
/// without a key, every seventh a tombstone, headers where the format has
/// them, create times `ts + i`); returns what was acknowledged.
async fn produce(r: &Release, topic: &str, codec: Compression, n: usize, ts: i64) -> Vec<Row> {
    let idempotent = r.has(0, 11, 0);
    let p = Producer::new(
        r.cluster(),
        ProducerConfig::default()
            .with_idempotence(idempotent)
            .with_acks(if idempotent { Acks::All } else { Acks::Leader })
            .with_compression(codec)
            .with_linger(Duration::from_millis(5)),
    )
    .expect("producer");
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let mut rec = ProducerRecord::new(topic, format!("{codec:?}-value-{i}"))
            .with_partition(0)
            .with_timestamp(ts + i as i64);
        if i % 7 == 3 {
            rec.value = None;
        }
        if i % 10 != 0 {
            rec = rec.with_key(format!("key-{i}"));
        }
        let mut headers = Vec::new();
        if r.has(0, 11, 0) && i % 3 == 0 {
            rec = rec
                .with_header("h", Some(format!("hv-{i}").into()))
                .with_header("null", None);
            headers = vec![
                (b"h".to_vec(), Some(format!("hv-{i}").into_bytes())),
                (b"null".to_vec(), None),
            ];
        }
        let want_key = (i % 10 != 0).then(|| format!("key-{i}").into_bytes());
        let want_value = (i % 7 != 3).then(|| format!("{codec:?}-value-{i}").into_bytes());
        let f = p
            .send(rec)
            .await
            .unwrap_or_else(|e| panic!("{} {codec:?}: send {i}: {e}", r.version));
        pending.push((f, want_key, want_value, headers));
    }
    let mut acked = Vec::with_capacity(n);
    for (i, (f, k, v, h)) in pending.into_iter().enumerate() {
        let meta = tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .unwrap_or_else(|_| panic!("{} {codec:?}: record {i} not acknowledged", r.version))
            .unwrap_or_else(|e| panic!("{} {codec:?}: record {i}: {e}", r.version));
        // Message format v0 has no timestamps.
        let t = if r.has(0, 10, 0) { ts + i as i64 } else { -1 };
        acked.push((meta.offset, k, v, t, h));
    }
    assert!(
        p.close(Duration::from_secs(10)).await,
        "{}: producer closed with records unsent",
        r.version
    );
    acked
}

/// Reads `n` records of partition 0 from `start`.
async fn read(r: &Release, topic: &str, start: StartAt, group: Option<&str>, n: usize) -> Vec<Row> {
    let mut config = ConsumerConfig::default().with_fetch_max_wait(Duration::from_millis(100));
    if let Some(g) = group {
        config = config.with_group_id(g).with_auto_commit(false);
    }
    let c = Consumer::new(r.cluster(), config).expect("consumer");
    c.assign([TopicPartition::new(topic.to_string(), 0)], start);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let rec = tokio::time::timeout(Duration::from_secs(30), c.recv())
            .await
            .unwrap_or_else(|_| panic!("{} {topic}: stalled at {} of {n}", r.version, out.len()))
            .unwrap_or_else(|e| panic!("{} {topic}: {e}", r.version));
        out.push(row(&rec));
    }
    c.close().await;
    out
}

fn row(rec: &kpax::ConsumerRecord) -> Row {
    (
        rec.offset,
        rec.key().map(<[u8]>::to_vec),
        rec.value().map(<[u8]>::to_vec),
        rec.timestamp,
        rec.headers_owned()
            .into_iter()
            .map(|h| (h.key.to_vec(), h.value.map(|v| v.to_vec())))
            .collect(),
    )
}

/// Every codec of the release: produced, acknowledged at consecutive
/// offsets, read back exactly.
async fn every_codec(r: &Release) {
    for codec in r.codecs() {
        let topic = unique(&format!("codec-{codec:?}").to_lowercase(), r);
        make_topic(r, &topic).await;
        let ts = now_ms() - 60_000;
        let acked = produce(r, &topic, codec, 60, ts).await;
        let offsets: Vec<i64> = acked.iter().map(|a| a.0).collect();
        assert_eq!(
            offsets,
            (0..60).collect::<Vec<i64>>(),
            "{} {codec:?}: offsets acknowledged",
            r.version
        );
        let got = read(r, &topic, StartAt::Earliest, None, acked.len()).await;
        assert_eq!(got, acked, "{} {codec:?}: read back", r.version);
    }
}

/// Earliest, latest and (0.10.1+) by-timestamp offsets.
async fn offsets(r: &Release) {
    let topic = unique("offsets", r);
    make_topic(r, &topic).await;
    let ts = now_ms() - 600_000;
    produce(r, &topic, Compression::None, 20, ts).await;
    let admin = Admin::new(r.cluster());
    let tp = TopicPartition::new(&topic, 0);
    let mut asks = vec![
        (tp.clone(), OffsetSpec::Earliest),
        (tp.clone(), OffsetSpec::Latest),
    ];
    for (i, (_, spec)) in asks.iter().enumerate() {
        let got = admin
            .list_offsets(&[(tp.clone(), *spec)])
            .await
            .unwrap_or_else(|e| panic!("{}: list_offsets {spec:?}: {e}", r.version));
        let off = got[&tp]
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {spec:?}: {e}", r.version))
            .offset;
        assert_eq!(off, Some([0, 20][i]), "{}: {spec:?}", r.version);
    }
    asks.clear();
    if r.has(0, 10, 1) {
        for k in [0i64, 7, 19] {
            let got = admin
                .list_offsets(&[(tp.clone(), OffsetSpec::Timestamp(ts + k))])
                .await
                .unwrap_or_else(|e| panic!("{}: by time: {e}", r.version));
            let listed = got[&tp].as_ref().expect("listed");
            assert_eq!(
                listed.offset,
                Some(k),
                "{}: offset at time ts+{k}",
                r.version
            );
        }
        // After the last record: no offset.
        let got = admin
            .list_offsets(&[(tp.clone(), OffsetSpec::Timestamp(ts + 1_000))])
            .await
            .expect("by time");
        let listed = got[&tp].as_ref().expect("listed");
        assert!(
            matches!(listed.offset, None | Some(20)),
            "{}: past the end: {:?}",
            r.version,
            listed.offset
        );
        // And the consumer's own by-time start.
        let from = read(r, &topic, StartAt::Timestamp(ts + 12), None, 1).await;
        assert_eq!(from[0].0, 12, "{}: consumer from ts+12", r.version);
    } else {
        let e = admin
            .list_offsets(&[(tp.clone(), OffsetSpec::Timestamp(ts))])
            .await
            .expect_err("no timestamps before 0.10.1");
        assert!(e.to_string().contains("ListOffsets"), "{}: {e}", r.version);
    }
}

/// Committed offsets of an assigned consumer with a group id (every
/// release), and from 0.9 a subscribed group resumed by a second member.
async fn groups(r: &Release) {
    let topic = unique("groups", r);
    make_topic(r, &topic).await;
    let acked = produce(r, &topic, Compression::None, 30, now_ms()).await;
    let group = unique("g", r);
    let c = Consumer::new(
        r.cluster(),
        ConsumerConfig::default()
            .with_group_id(&group)
            .with_auto_commit(false),
    )
    .expect("consumer");
    c.assign([TopicPartition::new(topic.clone(), 0)], StartAt::Earliest);
    let mut want = BTreeMap::new();
    want.insert(TopicPartition::new(topic.clone(), 0), 11i64);
    c.commit_offsets(want.clone())
        .await
        .unwrap_or_else(|e| panic!("{}: commit: {e}", r.version));
    let got = c
        .committed(&[TopicPartition::new(topic.clone(), 0)])
        .await
        .unwrap_or_else(|e| panic!("{}: committed: {e}", r.version));
    assert_eq!(got, want, "{}: committed offsets", r.version);
    c.close().await;
    let resumed = read(r, &topic, StartAt::Committed, Some(&group), 19).await;
    assert_eq!(
        resumed,
        acked[11..].to_vec(),
        "{}: resumed at the commit",
        r.version
    );

    if !r.has(0, 9, 0) {
        return;
    }
    // A subscribed member reads 30, commits, leaves; 10 more are written;
    // the next member of the group starts where the first committed.
    let group = unique("sub", r);
    let member = || {
        Consumer::new(
            r.cluster(),
            ConsumerConfig::default()
                .with_group_id(&group)
                .with_auto_commit(false)
                .with_auto_offset_reset(OffsetReset::Earliest)
                .with_fetch_max_wait(Duration::from_millis(100))
                .with_session_timeout(Duration::from_secs(6), Duration::from_millis(500)),
        )
        .expect("consumer")
    };
    let first = member();
    first.subscribe([topic.clone()]).expect("subscribe");
    let mut seen = Vec::new();
    while seen.len() < 30 {
        let rec = tokio::time::timeout(Duration::from_secs(60), first.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: group member stalled at {}", r.version, seen.len()))
            .unwrap_or_else(|e| panic!("{}: group member: {e}", r.version));
        seen.push(row(&rec));
    }
    assert_eq!(
        seen, acked,
        "{}: the group member read the topic",
        r.version
    );
    first
        .commit()
        .await
        .unwrap_or_else(|e| panic!("{}: group commit: {e}", r.version));
    first.close().await;
    let more = produce(r, &topic, Compression::None, 10, now_ms()).await;
    let second = member();
    second.subscribe([topic.clone()]).expect("subscribe");
    let rec = tokio::time::timeout(Duration::from_secs(60), second.recv())
        .await
        .unwrap_or_else(|_| panic!("{}: second member got nothing", r.version))
        .unwrap_or_else(|e| panic!("{}: second member: {e}", r.version));
    assert_eq!(
        rec.offset, 30,
        "{}: the second member resumed at the commit",
        r.version
    );
    assert_eq!(row(&rec).2, more[0].2, "{}", r.version);
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_releases_every_codec_read_back() {
    for r in releases() {
        every_codec(&r).await;
        println!(
            "{}: every codec of its record format round-trips",
            r.version
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_releases_list_offsets() {
    for r in releases() {
        offsets(&r).await;
        println!("{}: offsets listed", r.version);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_releases_commit_and_resume_in_groups() {
    for r in releases() {
        groups(&r).await;
        println!("{}: group offsets committed and resumed", r.version);
    }
}
