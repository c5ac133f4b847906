//! Classic consumer groups on Apache Kafka 4.x's own coordinator
//! (`KPAX_KAFKA`): every client-side assignor kpax has, static membership
//! (a restart within the session timeout gets its partitions back without
//! a rebalance, and a static member does not leave on close, as Java's does
//! not), and partitions added to a subscribed topic picked up by the
//! producer and the consumer. Without `KPAX_KAFKA` these print why they
//! skip (under CI they fail).

mod harness;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::Cluster as TestCluster;
use kpax::admin::Admin;
use kpax::consumer::{
    Assignor, CooperativeStickyAssignor, OffsetReset, RangeAssignor, RoundRobinAssignor,
    StickyAssignor,
};
use kpax::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};

fn config(group: &str) -> ConsumerConfig {
    ConsumerConfig::default()
        .with_group_id(group)
        .with_auto_offset_reset(OffsetReset::Earliest)
        .with_session_timeout(Duration::from_secs(10), Duration::from_millis(300))
        .with_fetch_max_wait(Duration::from_millis(100))
}

fn seq(r: &kpax::ConsumerRecord) -> usize {
    std::str::from_utf8(r.value().expect("value")).expect("utf-8")[4..]
        .parse()
        .expect("a number")
}

/// Waits until `c` owns exactly `n` partitions (bounded).
async fn await_assignment(c: &Consumer, n: usize, what: &str) -> BTreeSet<kpax::TopicPartition> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = c.assignment();
        if a.len() == n {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: assignment {a:?}, want {n} partitions"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two members with `assignor` split a 4-partition topic 2/2 and together
/// read every record exactly once.
async fn two_members_with(tc: &TestCluster, assignor: Arc<dyn Assignor>) {
    let name = assignor.name().to_string();
    let topic = tc.topic(4).await;
    const N: usize = 2000;
    tc.produce_numbered(&topic.name, 4, 0, N, None).await;
    let group = tc.group_id();
    let member = || {
        let c = Consumer::new(
            tc.kpax(),
            config(&group).with_assignors(vec![Arc::clone(&assignor)]),
        )
        .expect("consumer");
        c.subscribe([topic.name.clone()]).expect("subscribe");
        c
    };
    let (a, b) = (member(), member());
    let pa = await_assignment(&a, 2, &name).await;
    let pb = await_assignment(&b, 2, &name).await;
    assert!(pa.is_disjoint(&pb), "{name}: {pa:?} and {pb:?} overlap");
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < N {
        assert!(
            Instant::now() < deadline,
            "{name}: {} of {N} records",
            seen.len()
        );
        for c in [&a, &b] {
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_millis(50), c.recv()).await {
                assert!(
                    c.assignment()
                        .contains(&kpax::TopicPartition::new(r.topic.to_string(), r.partition)),
                    "{name}: a record of a partition the member does not own"
                );
                assert!(seen.insert(seq(&r)), "{name}: record {} twice", seq(&r));
            }
        }
    }
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_classic_assignor_splits_the_partitions() {
    let Some(tc) = TestCluster::kafka() else {
        return;
    };
    let assignors: [Arc<dyn Assignor>; 4] = [
        Arc::new(RangeAssignor),
        Arc::new(RoundRobinAssignor),
        Arc::new(StickyAssignor),
        Arc::new(CooperativeStickyAssignor),
    ];
    for a in assignors {
        two_members_with(&tc, a).await;
    }
}

/// A static member (group.instance.id) that closes does not leave: Kafka
/// keeps it in the group until its session times out; restarted with the
/// same id within that time it gets the same partitions back in the same
/// generation (no rebalance), and resumes after its commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_member_restarts_without_a_rebalance() {
    let Some(tc) = TestCluster::kafka() else {
        return;
    };
    let topic = tc.topic(3).await;
    tc.produce_numbered(&topic.name, 3, 0, 300, None).await;
    let group = tc.group_id();
    let instance = harness::unique_name("instance");
    let static_member = || {
        let c = Consumer::new(
            tc.kpax(),
            config(&group)
                .with_group_instance_id(instance.clone())
                .with_auto_commit(false),
        )
        .expect("consumer");
        c.subscribe([topic.name.clone()]).expect("subscribe");
        c
    };
    let first = static_member();
    let mut got = BTreeSet::new();
    while got.len() < 300 {
        let r = tokio::time::timeout(Duration::from_secs(30), first.recv())
            .await
            .expect("records")
            .expect("record");
        got.insert(seq(&r));
    }
    first.commit().await.expect("commit");
    let before = first.group_metadata().expect("member");
    let owned = first.assignment();
    assert_eq!(owned.len(), 3);
    first.close().await;

    // Still a member: a static member's close sends no LeaveGroup.
    let admin = Admin::new(tc.kpax());
    let described = admin
        .describe_groups(&[group.as_str()])
        .await
        .expect("describe");
    let (_, d) = &described[0];
    let d = d.as_ref().expect("group description");
    assert_eq!(d.members.len(), 1, "the static member stayed: {d:?}");
    assert_eq!(
        d.members[0].group_instance_id.as_deref(),
        Some(instance.as_str()),
        "{d:?}"
    );

    tc.produce_numbered(&topic.name, 3, 300, 330, None).await;
    let again = static_member();
    let mut rest = BTreeSet::new();
    while rest.len() < 30 {
        let r = tokio::time::timeout(Duration::from_secs(30), again.recv())
            .await
            .expect("records after the restart")
            .expect("record");
        rest.insert(seq(&r));
    }
    assert_eq!(rest, (300..330).collect(), "resumed at the commits");
    let after = again.group_metadata().expect("member");
    assert_eq!(again.assignment(), owned, "the same partitions back");
    assert_eq!(
        after.generation_id, before.generation_id,
        "no rebalance for a static member's restart"
    );
    again.close().await;
}

/// Partitions added to a topic (CreatePartitions) reach the producer's
/// partitioner and a subscribed consumer without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_partitions_are_picked_up_by_producer_and_consumer() {
    let Some(tc) = TestCluster::kafka() else {
        return;
    };
    let topic = tc.topic(2).await;
    let c = Consumer::new(
        tc.kpax(),
        config(&tc.group_id()).with_metadata_check_interval(Duration::from_millis(500)),
    )
    .expect("consumer");
    c.subscribe([topic.name.clone()]).expect("subscribe");
    await_assignment(&c, 2, "before").await;

    let admin = Admin::new(tc.kpax());
    let res = admin
        .create_partitions(&[(&topic.name, 5)], false)
        .await
        .expect("create partitions");
    res[0].1.as_ref().expect("partitions added");
    await_assignment(&c, 5, "after adding partitions").await;

    // Keyless records spread over every partition the producer knows of;
    // its metadata is at most 5 s old (the harness's client settings).
    let p =
        Producer::new(tc.kpax(), ProducerConfig::default().with_batch_size(1)).expect("producer");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut partitions = BTreeMap::new();
    let mut i = 0usize;
    while partitions.len() < 5 {
        assert!(
            Instant::now() < deadline,
            "producer used only {partitions:?}"
        );
        let meta = p
            .send(ProducerRecord::new(&topic.name, format!("rec-{i}")).with_key(format!("k{i}")))
            .await
            .expect("send")
            .await
            .expect("delivered");
        *partitions.entry(meta.partition).or_insert(0usize) += 1;
        i += 1;
        if i.is_multiple_of(50) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    p.close(Duration::from_secs(5)).await;
    // The consumer reads from the new partitions too.
    let mut read_from = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_from.len() < 5 {
        assert!(
            Instant::now() < deadline,
            "consumer read only from {read_from:?}"
        );
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(1), c.recv()).await {
            read_from.insert(r.partition);
        }
    }
    c.close().await;
}
