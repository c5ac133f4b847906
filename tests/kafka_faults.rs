//! Real faults on the 3-node Apache Kafka cluster (`KPAX_KAFKA`, RF 3,
//! min.insync.replicas 2, acks=all, idempotent): a partition leader killed
//! (SIGKILL) while kpax produces and consumes, a leader shut down
//! gracefully (SIGTERM), and a broker frozen (SIGSTOP). Nothing acknowledged
//! may be lost, nothing may be read twice, and order per partition holds.
//!
//! These tests stop nodes of the shared cluster, so they run one at a time
//! (a lock), in a test binary of their own (cargo runs test binaries one
//! after another), and every test restarts what it stopped (the harness
//! also heals the cluster before each Kafka test).

mod harness;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use harness::{Cluster as TestCluster, KafkaNodes, NodeAction};
use kpax::consumer::{Consumer, ConsumerConfig, StartAt};
use kpax::producer::{Acks, Producer, ProducerConfig, ProducerRecord};

/// One fault test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PARTITIONS: i32 = 3;

fn producer(tc: &TestCluster) -> Producer {
    Producer::new(
        tc.kpax(),
        ProducerConfig::default()
            .with_acks(Acks::All)
            .with_idempotence(true)
            .with_linger(Duration::from_millis(5))
            .with_retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
            .with_delivery_timeout(Duration::from_secs(90)),
    )
    .expect("producer")
}

fn seq(r: &kpax::ConsumerRecord) -> usize {
    std::str::from_utf8(r.value().expect("value")).expect("utf-8")[4..]
        .parse()
        .expect("a number")
}

/// Every record `0..n` exactly once, in order within its partition.
fn check_exactly_once_in_order(got: &[kpax::ConsumerRecord], n: usize) {
    let mut last: BTreeMap<i32, (i64, usize)> = BTreeMap::new();
    for r in got {
        if let Some((offset, s)) = last.insert(r.partition, (r.offset, seq(r))) {
            assert!(
                r.offset > offset,
                "partition {}: {offset} then {}",
                r.partition,
                r.offset
            );
            assert!(
                seq(r) > s,
                "partition {}: record {s} then {}",
                r.partition,
                seq(r)
            );
        }
        assert_eq!(
            r.partition,
            seq(r) as i32 % PARTITIONS,
            "record {} moved",
            seq(r)
        );
    }
    let seqs: HashSet<usize> = got.iter().map(seq).collect();
    assert_eq!(seqs.len(), got.len(), "records read twice");
    let missing: Vec<usize> = (0..n).filter(|i| !seqs.contains(i)).take(10).collect();
    assert!(missing.is_empty(), "lost records (first 10): {missing:?}");
}

/// Produces `rec-0..n` (record `i` to partition `i % 3`) and returns when
/// every one is acknowledged; `midway` runs once half were sent.
async fn produce_through(p: &Producer, topic: &str, n: usize, midway: impl FnOnce()) {
    let mut futures = Vec::with_capacity(n);
    let mut midway = Some(midway);
    for i in 0..n {
        if i == n / 2 {
            if let Some(f) = midway.take() {
                f();
            }
        }
        let r =
            ProducerRecord::new(topic, format!("rec-{i}")).with_partition(i as i32 % PARTITIONS);
        futures.push(p.send(r).await.expect("send"));
    }
    for (i, f) in futures.into_iter().enumerate() {
        f.await
            .unwrap_or_else(|e| panic!("record {i} not delivered: {e}"));
    }
}

async fn read_all(tc: &TestCluster, topic: &str, n: usize) -> Vec<kpax::ConsumerRecord> {
    let c = Consumer::new(tc.kpax(), ConsumerConfig::default()).expect("consumer");
    c.assign(
        (0..PARTITIONS).map(|p| (topic.to_string(), p)),
        StartAt::Earliest,
    );
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let r = tokio::time::timeout(Duration::from_secs(60), c.recv())
            .await
            .unwrap_or_else(|_| panic!("read stalled at {} of {n}", got.len()))
            .expect("record");
        got.push(r);
    }
    // Nothing beyond: no duplicate was written.
    if let Ok(r) = tokio::time::timeout(Duration::from_secs(2), c.recv()).await {
        panic!(
            "a record beyond the {n} produced: {:?}",
            r.map(|r| (r.partition, r.offset))
        );
    }
    c.close().await;
    got
}

/// The node leading `topic`'s partition 0.
async fn leader_of_partition_0(tc: &TestCluster, topic: &str) -> i32 {
    let leaders = harness::interop::leaders(tc.bootstrap(), topic)
        .await
        .expect("metadata");
    leaders[&0]
}

fn cluster() -> Option<(TestCluster, KafkaNodes)> {
    let tc = TestCluster::kafka()?;
    let Some(nodes) = tc.kafka_nodes().cloned() else {
        harness::skip_or_fail(
            "node control needs KPAX_KAFKA (a cluster this harness started), not KPAX_BROKERS",
        );
        return None;
    };
    assert!(nodes.node_count() >= 3, "fault tests need 3 nodes");
    Some((tc, nodes))
}

/// A leader killed mid-run (no controlled shutdown): the producer rides
/// through the leader election with its retries, the idempotent producer's
/// sequence numbers keep the resends from being written twice, and a
/// consumer reads every record once in order; the node comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_while_producing_loses_and_duplicates_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((tc, nodes)) = cluster() else { return };
    let topic = tc.topic(PARTITIONS).await;
    let victim = leader_of_partition_0(&tc, &topic.name).await;
    let p = producer(&tc);
    let n = 30_000;
    let killer = nodes.clone();
    produce_through(&p, &topic.name, n, move || {
        killer.node(victim, NodeAction::Kill)
    })
    .await;
    let stats = p.stats();
    assert!(p.close(Duration::from_secs(10)).await);
    let got = read_all(&tc, &topic.name, n).await;
    check_exactly_once_in_order(&got, n);
    eprintln!("killed node {victim} midway; producer stats: {stats:?}");
    nodes.node(victim, NodeAction::Start);
}

/// A leader shut down gracefully while a consumer reads: leadership moves
/// first (controlled shutdown), the consumer follows it and skips nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_shut_down_while_consuming_skips_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((tc, nodes)) = cluster() else { return };
    let topic = tc.topic(PARTITIONS).await;
    let n = 9_000;
    let p = producer(&tc);
    produce_through(&p, &topic.name, n, || {}).await;
    assert!(p.close(Duration::from_secs(10)).await);

    let victim = leader_of_partition_0(&tc, &topic.name).await;
    let c = Consumer::new(
        tc.kpax(),
        ConsumerConfig::default().with_fetch_max_bytes(64 * 1024, 8 * 1024),
    )
    .expect("consumer");
    c.assign(
        (0..PARTITIONS).map(|p| (topic.name.clone(), p)),
        StartAt::Earliest,
    );
    let mut got = Vec::with_capacity(n);
    let stopper = Arc::new(nodes.clone());
    let mut stopping = None;
    while got.len() < n {
        if got.len() == n / 3 && stopping.is_none() {
            let s = Arc::clone(&stopper);
            stopping = Some(tokio::task::spawn_blocking(move || {
                s.node(victim, NodeAction::Term)
            }));
        }
        let r = tokio::time::timeout(Duration::from_secs(60), c.recv())
            .await
            .unwrap_or_else(|_| panic!("read stalled at {} of {n}", got.len()))
            .expect("record");
        got.push(r);
    }
    c.close().await;
    if let Some(s) = stopping {
        s.await.expect("controlled shutdown");
    }
    check_exactly_once_in_order(&got, n);
    nodes.node(victim, NodeAction::Start);
}

/// A broker frozen (SIGSTOP) in the middle of a produce run: requests to
/// it time out, the cluster moves its leaderships away once its session
/// with the controller expires, and when it resumes everything is still
/// there exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_broker_loses_and_duplicates_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((tc, nodes)) = cluster() else { return };
    let topic = tc.topic(PARTITIONS).await;
    let victim = leader_of_partition_0(&tc, &topic.name).await;
    let p = producer(&tc);
    let n = 20_000;
    let freezer = nodes.clone();
    produce_through(&p, &topic.name, n, move || {
        freezer.node(victim, NodeAction::Pause)
    })
    .await;
    nodes.node(victim, NodeAction::Resume);
    assert!(p.close(Duration::from_secs(10)).await);
    let got = read_all(&tc, &topic.name, n).await;
    check_exactly_once_in_order(&got, n);
}
