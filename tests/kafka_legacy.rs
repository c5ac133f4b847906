//! The old protocol on real Kafka: on the 1-node Kafka 3.9 cluster
//! (`KPAX_KAFKA_3_9`), which still serves the versions Kafka 4.0 removed
//! (KIP-896), kpax pinned to Produce v0 (message format v0) and v2 (v1)
//! writes legacy message sets with every codec those formats have, and
//! reads them back pinned to Fetch v0 / v3 and unpinned; on Kafka 4.x
//! (`KPAX_KAFKA`) the same pin is a clear error, not a hang.

mod harness;

use std::time::Duration;

use harness::Cluster as TestCluster;
use kpax::consumer::StartAt;
use kpax::producer::Acks;
use kpax::proto::generated::ApiKey;
use kpax::proto::records::Compression;
use kpax::{
    ClientConfig, Cluster, Consumer, ConsumerConfig, Error, Producer, ProducerConfig,
    ProducerRecord,
};

/// kpax's client settings pinned to the versions of an old broker.
fn pinned(produce: i16, fetch: i16) -> ClientConfig {
    harness::client::client_config()
        .with_version_cap(ApiKey::Produce, produce)
        .with_version_cap(ApiKey::Fetch, fetch)
        .with_version_cap(ApiKey::ListOffsets, if fetch >= 1 { 1 } else { 0 })
        .with_version_cap(ApiKey::Metadata, 0)
}

fn legacy_producer(config: ClientConfig, bootstrap: &str, codec: Compression) -> Producer {
    Producer::new(
        Cluster::new([bootstrap], config).expect("cluster"),
        ProducerConfig::default()
            // Idempotence needs Produce v3 (Kafka 0.11's record batches).
            .with_idempotence(false)
            .with_acks(Acks::Leader)
            .with_compression(codec)
            .with_linger(Duration::from_millis(5)),
    )
    .expect("producer")
}

/// Reads `n` records of partition 0 with `config`; (offset, key, value).
async fn read(
    config: ClientConfig,
    bootstrap: &str,
    topic: &str,
    n: usize,
) -> Vec<(i64, Option<Vec<u8>>, Option<Vec<u8>>)> {
    let c = Consumer::new(
        Cluster::new([bootstrap], config).expect("cluster"),
        ConsumerConfig::default().with_fetch_max_wait(Duration::from_millis(100)),
    )
    .expect("consumer");
    c.assign(
        [kpax::TopicPartition::new(topic.to_string(), 0)],
        StartAt::Earliest,
    );
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = tokio::time::timeout(Duration::from_secs(20), c.recv())
            .await
            .unwrap_or_else(|_| panic!("stalled at {} of {n}", out.len()))
            .expect("record");
        out.push((
            r.offset,
            r.key().map(<[u8]>::to_vec),
            r.value().map(<[u8]>::to_vec),
        ));
    }
    c.close().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_3_9_legacy_message_sets_every_codec_read_back() {
    let Some(tc) = TestCluster::kafka_3_9() else {
        return;
    };
    let b = tc.bootstrap().to_string();
    // (Produce version, Fetch version, codec): lz4 came in 0.8.2 (on
    // message format v0, with the frame checksum KIP-57 later fixed for
    // v1); neither format has zstd.
    let cases = [
        (0, 0, Compression::None),
        (0, 0, Compression::Gzip),
        (0, 0, Compression::Snappy),
        (0, 0, Compression::Lz4),
        (2, 3, Compression::None),
        (2, 3, Compression::Gzip),
        (2, 3, Compression::Snappy),
        (2, 3, Compression::Lz4),
    ];
    for (produce, fetch, codec) in cases {
        let what = format!("Produce v{produce} / Fetch v{fetch} / {codec:?}");
        let topic = tc.topic(1).await;
        let p = legacy_producer(pinned(produce, fetch), &b, codec);
        let mut want = Vec::new();
        for i in 0..60usize {
            // every tenth record without a key, every seventh with no value
            let mut r = ProducerRecord::new(&topic.name, format!("legacy-{i}")).with_partition(0);
            if i % 7 == 3 {
                r.value = None; // a tombstone
            }
            if i % 10 != 0 {
                r = r.with_key(format!("key-{i}"));
            }
            let key = (i % 10 != 0).then(|| format!("key-{i}").into_bytes());
            let value = (i % 7 != 3).then(|| format!("legacy-{i}").into_bytes());
            let meta = p
                .send(r)
                .await
                .unwrap_or_else(|e| panic!("{what}: send: {e}"))
                .await
                .unwrap_or_else(|e| panic!("{what}: record {i}: {e}"));
            assert_eq!(meta.offset, i as i64, "{what}");
            want.push((i as i64, key, value));
        }
        assert!(p.close(Duration::from_secs(10)).await, "{what}");
        let old = read(pinned(produce, fetch), &b, &topic.name, want.len()).await;
        assert_eq!(old, want, "{what}, read back at Fetch v{fetch}");
        let new = read(
            harness::client::client_config(),
            &b,
            &topic.name,
            want.len(),
        )
        .await;
        assert_eq!(new, want, "{what}, read back at kpax's highest Fetch");
    }
}

/// Headers need record batches (Kafka 0.11): a pinned producer refuses
/// them with the reason instead of dropping them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_3_9_legacy_producer_refuses_headers() {
    let Some(tc) = TestCluster::kafka_3_9() else {
        return;
    };
    let topic = tc.topic(1).await;
    let p = legacy_producer(pinned(2, 3), tc.bootstrap(), Compression::None);
    let r = ProducerRecord::new(&topic.name, "v")
        .with_partition(0)
        .with_header("h", Some("x".into()));
    let outcome = match p.send(r).await {
        Ok(f) => f.await.map(|_| ()),
        Err(e) => Err(e),
    };
    let e = outcome.expect_err("headers on message format v1");
    assert!(matches!(e, Error::MessageFormat { .. }), "{e:?}");
    assert!(e.to_string().contains("Produce v3"), "{e}");
    p.close(Duration::from_secs(5)).await;
}

/// Kafka 4.0 removed Produce v0-v2 (KIP-896): a client pinned to them gets
/// an UnsupportedVersion error naming Produce, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_4_refuses_the_removed_versions_clearly() {
    let Some(tc) = TestCluster::kafka() else {
        return;
    };
    let topic = tc.topic(1).await;
    let p = legacy_producer(
        harness::client::client_config().with_version_cap(ApiKey::Produce, 2),
        tc.bootstrap(),
        Compression::None,
    );
    let outcome = match p
        .send(ProducerRecord::new(&topic.name, "v").with_partition(0))
        .await
    {
        Ok(f) => tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("an answer in time")
            .map(|_| ()),
        Err(e) => Err(e),
    };
    let e = outcome.expect_err("Produce v2 on Kafka 4");
    assert!(e.to_string().contains("Produce"), "{e}");
    p.close(Duration::from_secs(5)).await;
}
