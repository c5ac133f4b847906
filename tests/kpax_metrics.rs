//! Producer and consumer statistics, and their export through the
//! `metrics` facade: a recorder installed by the application (here
//! metrics-util's debugging recorder, process-wide) sees the same figures
//! as `Producer::stats` and `Consumer::stats`, labelled with the client id
//! and the group.

mod harness;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use harness::client::client_config;
use harness::Cluster as TestCluster;
use kpax::consumer::{Consumer, ConsumerConfig, OffsetReset};
use kpax::producer::{Producer, ProducerConfig, ProducerRecord};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// The process-wide recorder, installed once before any client exists.
fn recorder() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this test binary");
        kpax::metrics::describe();
        snapshotter
    })
}

/// The metrics labelled `client_id = id`: name (with the labels other than
/// client_id) to value.
fn metrics_of(id: &str) -> BTreeMap<String, DebugValue> {
    let mut out = BTreeMap::new();
    for (key, _, _, value) in recorder().snapshot().into_vec() {
        let key = key.key();
        if !key
            .labels()
            .any(|l| l.key() == "client_id" && l.value() == id)
        {
            continue;
        }
        let mut name = key.name().to_string();
        for l in key.labels().filter(|l| l.key() != "client_id") {
            name.push_str(&format!(",{}={}", l.key(), l.value()));
        }
        out.insert(name, value);
    }
    out
}

fn counter(m: &BTreeMap<String, DebugValue>, name: &str) -> u64 {
    m.iter()
        .filter(|(k, _)| k.split(',').next() == Some(name))
        .map(|(_, v)| match v {
            DebugValue::Counter(n) => *n,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

// Lag and partition counts need offsets numbered per record (not tansu).
// librdkafka's mock: its SyncGroup handler crashed the process here
// (SIGSEGV in rd_kafka_mock_cgrp_classic_member_find, seen with 2.12.1).
backends!(stats_and_metrics_agree: fake(3), kafka);

async fn stats_and_metrics_agree(tc: &TestCluster) {
    recorder();
    let topic = tc.topic(3).await;
    let producer_id = harness::unique_name("metrics-producer");
    let consumer_id = harness::unique_name("metrics-consumer");
    let group = tc.group_id();
    const N: u64 = 300;

    let producer = Producer::new(
        kpax::Cluster::new(
            [tc.bootstrap()],
            client_config().with_client_id(producer_id.clone()),
        )
        .unwrap(),
        ProducerConfig::default(),
    )
    .unwrap();
    let mut acks = Vec::new();
    for i in 0..N {
        acks.push(
            producer
                .send(
                    ProducerRecord::new(&topic.name, format!("value-{i}")).with_key(format!("{i}")),
                )
                .await
                .unwrap(),
        );
    }
    for a in acks {
        a.await.unwrap();
    }
    let ps = producer.stats();
    assert_eq!(ps.records_sent, N);
    assert_eq!(ps.errors, 0);
    let pm = metrics_of(&producer_id);
    assert_eq!(counter(&pm, kpax::metrics::PRODUCER_RECORDS_SENT), N);
    assert_eq!(
        counter(&pm, kpax::metrics::PRODUCER_BATCHES_SENT),
        ps.batches_sent
    );
    assert_eq!(
        counter(&pm, kpax::metrics::PRODUCER_BYTES_SENT),
        ps.bytes_sent
    );
    assert!(
        pm.keys()
            .any(|k| k.starts_with(kpax::metrics::PRODUCER_REQUEST_LATENCY)),
        "no produce latency histogram: {pm:?}"
    );
    producer.close(Duration::from_secs(10)).await;

    let consumer = Consumer::new(
        kpax::Cluster::new(
            [tc.bootstrap()],
            client_config().with_client_id(consumer_id.clone()),
        )
        .unwrap(),
        ConsumerConfig::default()
            .with_group_id(group.clone())
            .with_auto_commit(false)
            .with_auto_offset_reset(OffsetReset::Earliest)
            .with_fetch_max_wait(Duration::from_millis(100)),
    )
    .unwrap();
    consumer.subscribe([topic.name.clone()]).unwrap();
    let mut got = 0;
    while got < N {
        tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out after {got} of {N} records"))
            .unwrap();
        got += 1;
    }
    consumer.commit().await.unwrap();
    let s = consumer.stats();
    assert_eq!(s.records_consumed, N);
    assert_eq!(s.records_fetched, N, "{s:?}");
    assert!(s.bytes_fetched > 0 && s.fetch_requests > 0, "{s:?}");
    assert!(!s.fetch_latency.is_empty(), "{s:?}");
    assert!(s.rebalances >= 1, "{s:?}");
    assert_eq!((s.commits, s.commit_errors), (1, 0), "{s:?}");
    assert_eq!(s.lag.len(), 3, "{s:?}");
    assert_eq!(s.total_lag(), 0, "everything was read: {s:?}");

    // Three more records: the consumer's lag shows them once fetched
    // answers carry the new high watermark, before they are handed out.
    let producer = Producer::new(tc.kpax(), ProducerConfig::default()).unwrap();
    for i in 0..3 {
        producer
            .send(ProducerRecord::new(&topic.name, "more").with_partition(i))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    producer.close(Duration::from_secs(10)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while consumer.stats().records_fetched < N + 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new records were not fetched: {:?}",
            consumer.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(consumer.stats().total_lag(), 3);

    let m = metrics_of(&consumer_id);
    let s = consumer.stats();
    assert_eq!(counter(&m, kpax::metrics::CONSUMER_RECORDS_CONSUMED), N);
    assert_eq!(counter(&m, kpax::metrics::CONSUMER_RECORDS_FETCHED), N + 3);
    assert_eq!(
        counter(&m, kpax::metrics::CONSUMER_BYTES_FETCHED),
        s.bytes_fetched
    );
    assert_eq!(counter(&m, kpax::metrics::CONSUMER_COMMITS), 1);
    assert_eq!(
        counter(&m, kpax::metrics::CONSUMER_REBALANCES),
        s.rebalances
    );
    // every consumer metric carries the group
    for k in m.keys() {
        assert!(k.contains(&format!("group_id={group}")), "{k}");
    }
    let lags: Vec<f64> = m
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{},", kpax::metrics::CONSUMER_LAG)))
        .map(|(_, v)| match v {
            DebugValue::Gauge(g) => g.into_inner(),
            other => panic!("lag is not a gauge: {other:?}"),
        })
        .collect();
    assert_eq!(lags.len(), 3, "one lag gauge per partition: {m:?}");
    assert_eq!(lags.iter().sum::<f64>(), 3.0, "{m:?}");
    consumer.close().await;
}
