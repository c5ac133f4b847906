//! The consumer group protocol (KIP-848, ConsumerGroupHeartbeat) and its
//! fallback to the classic protocol.
//!
//! kpax-fake's coordinator speaks it (v0 and v1) and so does librdkafka's
//! mock (v1 only: Kafka 4.0's version, which kpax's overlay adds to the
//! 3.9 page), and so does Apache Kafka 4.x with its own assignors; Kafka
//! 3.9 (where it is off by default) does not, and neither does a fake with
//! the API turned off: there a consumer asking for the consumer protocol
//! falls back to the classic one and still consumes. Members joining and leaving, with
//! ownership and exactly-once checks, are in `kpax_rebalance.rs`
//! (`*_consumer_protocol_*`).

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::{Cluster as TestCluster, Kind};
use kpax::consumer::{Consumer, ConsumerConfig, GroupProtocol, OffsetReset};
use kpax::proto::generated::{ApiKey, ErrorCode};

fn config(tc: &TestCluster) -> ConsumerConfig {
    ConsumerConfig::default()
        .with_group_id(tc.group_id())
        .with_group_protocol(GroupProtocol::Consumer)
        .with_auto_offset_reset(OffsetReset::Earliest)
        .with_session_timeout(Duration::from_secs(6), Duration::from_millis(200))
        .with_fetch_max_wait(Duration::from_millis(100))
}

/// Reads `n` distinct values from `c`.
async fn read(c: &Consumer, n: usize) -> BTreeSet<String> {
    let mut got = BTreeSet::new();
    while got.len() < n {
        let r = tokio::time::timeout(Duration::from_secs(30), c.recv())
            .await
            .unwrap_or_else(|_| panic!("stalled at {} of {n} records", got.len()))
            .unwrap();
        got.insert(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
    }
    got
}

/// A member of a consumer-protocol group consumes every partition,
/// commits with its member epoch (the committed offsets are what it read),
/// and a second consumer of the same group resumes there.
async fn consume_commit_and_resume(tc: TestCluster) {
    let counted = tc.kind() != Kind::Kafka;
    if counted {
        tc.inject().track_requests();
    }
    let topic = tc.topic(3).await;
    tc.produce_numbered(&topic.name, 3, 0, 60, None).await;
    let config = config(&tc).with_auto_commit(false);
    let c = Consumer::new(tc.kpax(), config.clone()).unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    assert_eq!(read(&c, 60).await.len(), 60);
    c.commit().await.unwrap();
    let meta = c.group_metadata().expect("a group member");
    assert!(
        meta.generation_id > 0,
        "joined with a member epoch / generation: {meta:?}"
    );
    assert_eq!(c.group_protocol(), Some(GroupProtocol::Consumer));
    c.close().await;

    tc.produce_numbered(&topic.name, 3, 60, 90, None).await;
    let again = Consumer::new(tc.kpax(), config).unwrap();
    again.subscribe([topic.name.clone()]).unwrap();
    let got = read(&again, 30).await;
    let expected: BTreeSet<String> = (60..90).map(|i| format!("rec-{i}")).collect();
    assert_eq!(got, expected, "resumed at the committed offsets");
    again.close().await;
    if !counted {
        return;
    }
    let faults = tc.inject();
    assert_eq!(
        faults.requests(ApiKey::JoinGroup),
        0,
        "no classic JoinGroup: the consumer protocol was used"
    );
    assert!(faults.requests(ApiKey::ConsumerGroupHeartbeat) >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_consume_commit_and_resume() {
    consume_commit_and_resume(TestCluster::fake(3).await).await;
}

/// librdkafka's mock offers ConsumerGroupHeartbeat v1 only (Kafka 4.0's,
/// added to kpax's spec by the overlay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_consume_commit_and_resume() {
    consume_commit_and_resume(TestCluster::mock(3)).await;
}

/// Apache Kafka 4.x serves the consumer group protocol (KIP-848) with its
/// own server-side assignors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_consume_commit_and_resume() {
    let Some(tc) = TestCluster::kafka() else {
        return; // skipped with a printed reason (CI fails instead)
    };
    consume_commit_and_resume(tc).await;
}

/// Kafka 3.9 does not offer ConsumerGroupHeartbeat unless the consumer
/// protocol is switched on (it was early access there): fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_3_9_falls_back_to_classic() {
    let Some(tc) = TestCluster::kafka_3_9() else {
        return; // skipped with a printed reason (CI fails instead)
    };
    let topic = tc.topic(2).await;
    tc.produce_numbered(&topic.name, 2, 0, 20, None).await;
    let c = Consumer::new(tc.kpax(), config(&tc)).unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    let got = read(&c, 20).await;
    assert_eq!(got.len(), 20);
    assert_eq!(c.group_protocol(), Some(GroupProtocol::Classic));
    c.close().await;
}

/// A fake broker without ConsumerGroupHeartbeat (not advertised): fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_without_the_api_falls_back_to_classic() {
    let tc = TestCluster::fake(1).await;
    tc.inject().disable_api(ApiKey::ConsumerGroupHeartbeat);
    let topic = tc.topic(2).await;
    tc.produce_numbered(&topic.name, 2, 0, 20, None).await;
    let c = Consumer::new(tc.kpax(), config(&tc)).unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    assert_eq!(read(&c, 20).await.len(), 20);
    let faults = tc.inject();
    assert!(
        faults.requests(ApiKey::JoinGroup) > 0,
        "joined with the classic protocol"
    );
    c.close().await;
}

/// A fenced member (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID) loses its
/// partitions, joins again with epoch 0 and goes on consuming; transient
/// coordinator errors are retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_fenced_member_joins_again() {
    let tc = TestCluster::fake(1).await;
    let topic = tc.topic(2).await;
    tc.produce_numbered(&topic.name, 2, 0, 20, None).await;
    let c = Consumer::new(tc.kpax(), config(&tc)).unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    assert_eq!(read(&c, 20).await.len(), 20);
    let before = c.group_metadata().unwrap();
    tc.inject().fail_sequence(
        ApiKey::ConsumerGroupHeartbeat,
        &[
            ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
            ErrorCode::FENCED_MEMBER_EPOCH,
        ],
    );
    let beats = tc.inject().requests(ApiKey::ConsumerGroupHeartbeat);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // the refused heartbeat, the fenced one, the rejoin and its ack
    while tc.inject().requests(ApiKey::ConsumerGroupHeartbeat) < beats + 4 {
        assert!(tokio::time::Instant::now() < deadline, "heartbeats stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tc.produce_numbered(&topic.name, 2, 20, 40, None).await;
    // Records after the fence: from the committed offsets (auto commit),
    // so some may come again; none may be missing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut got = BTreeSet::new();
    while got.len() < 20 {
        let r = tokio::time::timeout_at(deadline, c.recv())
            .await
            .expect("records after the fence")
            .unwrap();
        let v = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
        let i: usize = v.trim_start_matches("rec-").parse().unwrap();
        if i >= 20 {
            got.insert(i);
        }
    }
    assert_eq!(got, (20..40).collect::<BTreeSet<_>>());
    assert_eq!(
        tc.inject().requests(ApiKey::JoinGroup),
        0,
        "stayed with the consumer protocol"
    );
    let after = c.group_metadata().unwrap();
    assert_eq!(after.member_id, before.member_id, "the member keeps its id");
    assert!(
        after.generation_id > before.generation_id,
        "joined again with a new epoch: {before:?} -> {after:?}"
    );
    c.close().await;
}
