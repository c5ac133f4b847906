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
        (0..PARTITIONS).map(|p| kpax::TopicPartition::new(topic.to_string(), p)),
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
    harness::report(
        "leader killed while producing",
        &format!("node {victim} killed midway; {n} sent, acknowledged and read back once in order; producer stats: {stats:?}"),
    );
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
        (0..PARTITIONS).map(|p| kpax::TopicPartition::new(topic.name.clone(), p)),
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
    harness::report(
        "leader shut down while consuming",
        &format!(
            "node {victim} SIGTERMed at {} of {n} read; all {n} read once, in order",
            n / 3
        ),
    );
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
    harness::report(
        "broker frozen while producing",
        &format!("node {victim} SIGSTOPped midway until all {n} were acknowledged; read back once, in order"),
    );
}

/// What a run under faults did, printed by each test (docs/testing.md
/// collects them).
#[derive(Debug, Default)]
struct Counts {
    sent: usize,
    acknowledged: usize,
    failed: usize,
    read_back: usize,
    duplicates: usize,
    faults: usize,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {}, acknowledged {}, failed {}, read back {}, duplicates {}, faults injected {} (order per partition checked)",
            self.sent, self.acknowledged, self.failed, self.read_back, self.duplicates, self.faults
        )
    }
}

/// Sends `rec-i` (to partition `i % 3`) at about 10,000 records/s until
/// `faults` has run, then waits for every outcome. Returns the producer's
/// counts: `failed` are the records whose futures reported an error.
async fn produce_during(
    p: &Producer,
    topic: &str,
    faults: impl std::future::Future<Output = usize> + Send + 'static,
) -> Counts {
    let faults = tokio::spawn(faults);
    let mut futures = Vec::new();
    let mut i = 0usize;
    while !faults.is_finished() {
        for _ in 0..100 {
            let r = ProducerRecord::new(topic, format!("rec-{i}"))
                .with_partition(i as i32 % PARTITIONS);
            futures.push(p.send(r).await.expect("send"));
            i += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut counts = Counts {
        sent: i,
        faults: faults.await.expect("fault task"),
        ..Counts::default()
    };
    for f in futures {
        match f.await {
            Ok(_) => counts.acknowledged += 1,
            Err(e) => {
                if counts.failed == 0 {
                    eprintln!("first failed record: {e}");
                }
                counts.failed += 1;
            }
        }
    }
    counts
}

/// Runs a node action off the runtime (they wait for the node).
async fn act(nodes: &KafkaNodes, id: i32, action: NodeAction) {
    let n = nodes.clone();
    tokio::task::spawn_blocking(move || n.node(id, action))
        .await
        .expect("node action");
}

/// Each node in turn is killed (SIGKILL) while kpax produces and started
/// again a few seconds later: every record is acknowledged, and the topic
/// holds each exactly once in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_killed_in_turn_loses_and_duplicates_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((tc, nodes)) = cluster() else { return };
    let topic = tc.topic(PARTITIONS).await;
    let p = producer(&tc);
    let n_nodes = nodes.node_count();
    let killer = nodes.clone();
    let mut counts = produce_during(&p, &topic.name, async move {
        for id in 1..=n_nodes {
            tokio::time::sleep(Duration::from_secs(2)).await;
            act(&killer, id, NodeAction::Kill).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            act(&killer, id, NodeAction::Start).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        n_nodes as usize
    })
    .await;
    assert!(p.close(Duration::from_secs(10)).await);
    assert_eq!(counts.failed, 0, "{counts:?}");
    let got = read_all(&tc, &topic.name, counts.acknowledged).await;
    counts.read_back = got.len();
    check_exactly_once_in_order(&got, counts.acknowledged);
    harness::report("every node killed in turn", &counts.to_string());
}

/// A rolling restart (SIGTERM: controlled shutdown, then start) of every
/// node while kpax produces and a kpax consumer reads at the same time:
/// the consumer gets every acknowledged record once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_while_producing_and_consuming() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((tc, nodes)) = cluster() else { return };
    let topic = tc.topic(PARTITIONS).await;
    let p = producer(&tc);
    let c = Consumer::new(tc.kpax(), ConsumerConfig::default()).expect("consumer");
    c.assign(
        (0..PARTITIONS).map(|p| kpax::TopicPartition::new(topic.name.clone(), p)),
        StartAt::Earliest,
    );
    let reader = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            // Until the producer is done and nothing more comes.
            while let Ok(r) = tokio::time::timeout(Duration::from_secs(20), c.recv()).await {
                got.push(r.expect("record"));
            }
            got
        })
    };
    let n_nodes = nodes.node_count();
    let restarter = nodes.clone();
    let mut counts = produce_during(&p, &topic.name, async move {
        for id in 1..=n_nodes {
            tokio::time::sleep(Duration::from_secs(2)).await;
            act(&restarter, id, NodeAction::Term).await;
            act(&restarter, id, NodeAction::Start).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        n_nodes as usize
    })
    .await;
    assert!(p.close(Duration::from_secs(10)).await);
    assert_eq!(counts.failed, 0, "{counts:?}");
    let got = reader.await.expect("reader");
    c.close().await;
    counts.read_back = got.len();
    check_exactly_once_in_order(&got, counts.acknowledged);
    assert_eq!(got.len(), counts.acknowledged, "{counts:?}");
    harness::report("rolling restart", &counts.to_string());
}

/// Three kpax members of one group consume while the group coordinator's
/// node is killed (and started again): consumption resumes, every record
/// is consumed, and records delivered twice are no more than the members'
/// uncommitted batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_rides_through_a_coordinator_kill() {
    use kpax::cluster::CoordinatorKind;
    use kpax::consumer::OffsetReset;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((tc, nodes)) = cluster() else { return };
    let topic = tc.topic(PARTITIONS).await;
    let n = 30_000;
    let p = producer(&tc);
    produce_through(&p, &topic.name, n, || {}).await;
    assert!(p.close(Duration::from_secs(10)).await);
    let group = tc.group_id();
    const BATCH: usize = 200;
    const MEMBERS: usize = 3;
    let delivered: Arc<Mutex<Vec<(i32, i64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut members = Vec::new();
    for _ in 0..MEMBERS {
        let c = Consumer::new(
            tc.kpax(),
            ConsumerConfig::default()
                .with_group_id(group.clone())
                .with_auto_offset_reset(OffsetReset::Earliest)
                .with_fetch_max_bytes(64 * 1024, 4 * 1024),
        )
        .expect("consumer");
        c.subscribe([topic.name.clone()]).unwrap();
        let (sink, stop) = (delivered.clone(), stop.clone());
        members.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), c.recv_batch(BATCH)).await {
                    Ok(Ok(batch)) => {
                        sink.lock()
                            .unwrap()
                            .extend(batch.iter().map(|r| (r.partition, r.offset)));
                        // Slow consumers, so the kill lands mid-run.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let _ = c.commit_records(&batch).await;
                    }
                    Ok(Err(e)) => panic!("member: {e}"),
                    Err(_) => {}
                }
            }
            c.close().await;
        }));
    }
    let unique = |d: &Mutex<Vec<(i32, i64)>>| {
        d.lock()
            .unwrap()
            .iter()
            .copied()
            .collect::<HashSet<_>>()
            .len()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while unique(&delivered) < n / 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "group stalled before the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let coordinator = tc
        .kpax()
        .coordinator(CoordinatorKind::Group, &group)
        .await
        .expect("coordinator")
        .node_id()
        .expect("a coordinator's node id");
    act(&nodes, coordinator, NodeAction::Kill).await;
    let at_kill = unique(&delivered);
    tokio::time::sleep(Duration::from_secs(3)).await;
    act(&nodes, coordinator, NodeAction::Start).await;
    while unique(&delivered) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "group consumed {} of {n} after the coordinator kill",
            unique(&delivered)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for m in members {
        m.await.expect("member");
    }
    let all = delivered.lock().unwrap().clone();
    let duplicates = all.len() - unique(&delivered);
    let counts = Counts {
        sent: n,
        acknowledged: n,
        read_back: all.len(),
        duplicates,
        faults: 1,
        ..Counts::default()
    };
    harness::report(
        "group through a coordinator kill",
        &format!("node {coordinator} killed at {at_kill} of {n} consumed; {counts}"),
    );
    assert!(
        duplicates <= MEMBERS * BATCH * 2,
        "{duplicates} re-deliveries: more than the members' uncommitted batches ({counts:?})"
    );
    let seqs: HashSet<usize> = (0..n).collect();
    assert_eq!(unique(&delivered), seqs.len());
}

/// Exactly once across a broker kill: a consume-transform-produce loop
/// (read_committed group consumer, transactional producer, the consumed
/// offsets sent in each transaction) copies a topic while the leader of an
/// output partition is killed and started again. A transaction that fails
/// is aborted and its batch read again from the batch's first offsets; the
/// output, read read_committed, holds every input record exactly once, in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_copy_across_a_broker_kill() {
    use kpax::consumer::{IsolationLevel, OffsetReset};
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((tc, nodes)) = cluster() else { return };
    let input = tc.topic(PARTITIONS).await;
    let output = tc.topic(PARTITIONS).await;
    let n = 9_000;
    let p = producer(&tc);
    produce_through(&p, &input.name, n, || {}).await;
    assert!(p.close(Duration::from_secs(10)).await);

    let c = Consumer::new(
        tc.kpax(),
        ConsumerConfig::default()
            .with_group_id(tc.group_id())
            .with_isolation_level(IsolationLevel::ReadCommitted)
            .with_auto_commit(false)
            .with_auto_offset_reset(OffsetReset::Earliest),
    )
    .expect("consumer");
    c.subscribe([input.name.clone()]).unwrap();
    let txp = Producer::new(
        tc.kpax(),
        ProducerConfig::default()
            .with_transactional_id(harness::unique_name("eos"))
            .with_transaction_timeout(Duration::from_secs(30))
            .with_retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
            .with_delivery_timeout(Duration::from_secs(60)),
    )
    .expect("transactional producer");
    txp.init_transactions().await.expect("init transactions");
    let victim = leader_of_partition_0(&tc, &output.name).await;
    let (mut copied, mut aborted, mut killed) = (0usize, 0usize, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while copied < n {
        assert!(
            std::time::Instant::now() < deadline,
            "copied {copied} of {n} ({aborted} aborts)"
        );
        if killed.is_none() && copied >= n / 3 {
            let k = nodes.clone();
            killed = Some(tokio::task::spawn_blocking(move || {
                k.node(victim, NodeAction::Kill);
                std::thread::sleep(Duration::from_secs(3));
                k.node(victim, NodeAction::Start);
            }));
        }
        let batch = match tokio::time::timeout(Duration::from_secs(1), c.recv_batch(300)).await {
            Ok(b) => b.expect("records"),
            Err(_) => continue,
        };
        if batch.is_empty() {
            continue;
        }
        let mut first: BTreeMap<i32, i64> = BTreeMap::new();
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for r in &batch {
            first.entry(r.partition).or_insert(r.offset);
            next.insert(r.partition, r.offset + 1);
        }
        let attempt = async {
            txp.begin_transaction()?;
            for r in &batch {
                let out = ProducerRecord::new(&output.name, r.value().unwrap().to_vec())
                    .with_partition(r.partition);
                // Outcomes come with the commit.
                drop(txp.send(out).await?);
            }
            let meta = c.group_metadata().expect("a group member");
            txp.send_offsets_to_transaction(
                next.iter()
                    .map(|(p, o)| (kpax::TopicPartition::new(input.name.clone(), *p), *o)),
                &meta,
            )
            .await?;
            txp.commit_transaction().await
        };
        match attempt.await {
            Ok(()) => copied += batch.len(),
            Err(e) => {
                aborted += 1;
                eprintln!("transaction failed ({e}); aborting and reading the batch again");
                txp.abort_transaction()
                    .await
                    .unwrap_or_else(|e| panic!("abort failed: {e}"));
                for (p, o) in &first {
                    c.seek(&input.name, *p, StartAt::Offset(*o));
                }
            }
        }
    }
    if let Some(k) = killed {
        k.await.expect("kill and restart");
    }
    assert!(txp.close(Duration::from_secs(10)).await);
    c.close().await;

    let reader = Consumer::new(
        tc.kpax(),
        ConsumerConfig::default().with_isolation_level(IsolationLevel::ReadCommitted),
    )
    .expect("reader");
    reader.assign(
        (0..PARTITIONS).map(|p| kpax::TopicPartition::new(output.name.clone(), p)),
        StartAt::Earliest,
    );
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let r = tokio::time::timeout(Duration::from_secs(60), reader.recv())
            .await
            .unwrap_or_else(|_| panic!("output read stalled at {} of {n}", got.len()))
            .expect("record");
        got.push(r);
    }
    if let Ok(r) = tokio::time::timeout(Duration::from_secs(2), reader.recv()).await {
        panic!(
            "a record beyond the {n} copied: {:?}",
            r.map(|r| (r.partition, r.offset))
        );
    }
    reader.close().await;
    check_exactly_once_in_order(&got, n);
    let counts = Counts {
        sent: n,
        acknowledged: n,
        read_back: got.len(),
        faults: 1,
        ..Counts::default()
    };
    harness::report(
        "exactly-once copy across a leader kill",
        &format!("node {victim} killed; {counts}; transactions aborted and retried: {aborted}"),
    );
}

/// A share group's partition leader killed (SIGKILL) while a share
/// consumer accepts records: the consumer follows the new leader, every
/// record is accepted in the end, and records accepted twice (their
/// acknowledgement lost with the leader, so the broker delivered them
/// again) are bounded by what was in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_group_leader_killed_loses_no_record() {
    use kpax::share::{AcknowledgeType, ShareConsumer, ShareConsumerConfig};
    let _one = ONE_AT_A_TIME.lock().await;
    let Some((tc, nodes)) = cluster() else { return };
    const N: usize = 3000;
    const MAX_RECORDS: i32 = 100;
    let group = tc.group_id();
    tc.set_group_configs(&group, &[("share.auto.offset.reset", "earliest")])
        .await;
    let topic = tc.topic(1).await;
    tc.produce_numbered(&topic.name, 1, 0, N, None).await;
    let victim = leader_of_partition_0(&tc, &topic.name).await;
    let c = ShareConsumer::new(
        tc.kpax(),
        ShareConsumerConfig::new(group)
            .with_max_records(MAX_RECORDS)
            .with_acquire_mode(kpax::share::AcquireMode::RecordLimit)
            .with_fetch_max_wait(Duration::from_millis(200)),
    )
    .unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    let mut accepted: BTreeMap<i64, usize> = BTreeMap::new();
    let mut commit_errors = 0usize;
    let mut killed = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    while accepted.len() < N {
        assert!(
            std::time::Instant::now() < deadline,
            "stalled at {} of {N} accepted (node {victim} killed: {killed})",
            accepted.len()
        );
        if !killed && accepted.len() >= N / 3 {
            act(&nodes, victim, NodeAction::Kill).await;
            killed = true;
        }
        let Ok(batch) = tokio::time::timeout(Duration::from_secs(1), c.recv_batch(50)).await else {
            continue;
        };
        for r in batch.expect("share records") {
            c.acknowledge(&r, AcknowledgeType::Accept).unwrap();
            *accepted.entry(r.offset).or_default() += 1;
        }
        if c.commit().await.is_err() {
            commit_errors += 1;
        }
    }
    c.close().await;
    act(&nodes, victim, NodeAction::Start).await;
    let twice: usize = accepted.values().map(|n| n - 1).sum();
    assert_eq!(
        accepted.keys().copied().collect::<Vec<_>>(),
        (0..N as i64).collect::<Vec<_>>(),
        "every record accepted"
    );
    assert!(
        twice <= 3 * MAX_RECORDS as usize,
        "{twice} records accepted twice: more than were in flight"
    );
    harness::report(
        "share group leader killed",
        &format!("node {victim} killed at {} of {N} accepted; all {N} accepted, {twice} delivered again after the failover, {commit_errors} commits reported lost acknowledgements", N / 3),
    );
}
