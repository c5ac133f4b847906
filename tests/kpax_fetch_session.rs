//! kpax's fetch sessions (KIP-227) against real brokers.
//!
//! kpax-fake keeps sessions (a small cache per broker, incremental requests
//! and answers, FETCH_SESSION_ID_NOT_FOUND / INVALID_FETCH_SESSION_EPOCH)
//! and logs every Fetch it receives, so the tests check both that records
//! arrive exactly once and in order and what the client sent. librdkafka's
//! mock echoes the request's session id (it keeps no session: kpax asks with
//! id 0 and gets 0) and tansu 0.6 always answers 0 (sources:
//! rdkafka_mock_handlers.c `rd_kafka_mock_handle_Fetch`, tansu-storage
//! `service/fetch.rs`): there kpax must notice and stay sessionless.

mod harness;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use harness::{Cluster as TestCluster, Kind};
use kpax::consumer::{Consumer, ConsumerConfig, StartAt};
use kpax::producer::{Producer, ProducerConfig, ProducerRecord};
use kpax::proto::generated::{ApiKey, ErrorCode};
use kpax::{ClientConfig, Cluster};
use kpax_fake::{FakeCluster, ReceivedFetch};

fn client() -> ClientConfig {
    ClientConfig::default()
        .with_request_timeout(Duration::from_secs(10))
        .with_connect_timeout(Duration::from_secs(2))
        .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .with_metadata_max_age(Duration::from_secs(5))
}

fn consumer(bootstrap: &str) -> Consumer {
    Consumer::new(
        Cluster::new([bootstrap], client()).unwrap(),
        ConsumerConfig::default().with_fetch_max_wait(Duration::from_millis(100)),
    )
    .unwrap()
}

/// Produces `rec-{from..to}` round-robin over `partitions`.
async fn produce(bootstrap: &str, topic: &str, partitions: i32, from: usize, to: usize) {
    let p = Producer::new(
        Cluster::new([bootstrap], client()).unwrap(),
        ProducerConfig::default(),
    )
    .unwrap();
    let mut fs = Vec::new();
    for i in from..to {
        let r =
            ProducerRecord::new(topic, format!("rec-{i}")).with_partition(i as i32 % partitions);
        fs.push(p.send(r).await.unwrap());
    }
    for f in fs {
        f.await.unwrap();
    }
    p.close(Duration::from_secs(5)).await;
}

fn seq(r: &kpax::ConsumerRecord) -> usize {
    std::str::from_utf8(r.value().unwrap()).unwrap()[4..]
        .parse()
        .unwrap()
}

async fn recv_n(c: &Consumer, n: usize) -> Vec<kpax::ConsumerRecord> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = tokio::time::timeout(Duration::from_secs(20), c.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {n} records", out.len()));
        out.push(r.unwrap());
    }
    out
}

/// Nothing more arrives within `wait`.
async fn assert_quiet(c: &Consumer, wait: Duration) {
    if let Ok(r) = tokio::time::timeout(wait, c.recv()).await {
        panic!("unexpected record {:?}", r.map(|r| (r.partition, r.offset)));
    }
}

/// Every record exactly once, in offset order per partition, each in the
/// partition it was produced to.
fn check_exactly_once_in_order(got: &[kpax::ConsumerRecord], n: usize, partitions: i32) {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for r in got {
        if let Some(prev) = last.insert(r.partition, r.offset) {
            assert!(
                r.offset > prev,
                "partition {} went from {prev} to {}",
                r.partition,
                r.offset
            );
        }
        assert_eq!(r.partition, seq(r) as i32 % partitions);
    }
    let seqs: HashSet<usize> = got.iter().map(seq).collect();
    assert_eq!(seqs.len(), got.len(), "duplicates");
    assert_eq!(seqs, (0..n).collect(), "lost records");
}

/// Per node, session epochs go 0, 1, 2, ... within a session, and every
/// incremental request names only part of what the session holds.
fn check_epochs(log: &[ReceivedFetch]) {
    let mut last: BTreeMap<i32, (i32, i32)> = BTreeMap::new();
    for f in log {
        if f.session_epoch > 0 {
            let (id, epoch) = last.get(&f.node).copied().unwrap_or((0, -1));
            // after an opening request (id 0 or the old id), the id the
            // broker gave
            if epoch > 0 {
                assert_eq!(f.session_id, id, "node {}: {f:?}", f.node);
            }
            assert_eq!(f.session_epoch, epoch + 1, "node {}: {f:?}", f.node);
        }
        last.insert(f.node, (f.session_id, f.session_epoch));
    }
}

// ---------------------------------------------------------------------------
// Many partitions, read in order, on every backend.

backends!(many_partitions_in_order: fake(3), mock(3), kafka);

async fn many_partitions_in_order(tc: &TestCluster) {
    const PARTITIONS: i32 = 16;
    const N: usize = 3200;
    let topic = tc.topic(PARTITIONS).await;
    produce(tc.bootstrap(), &topic.name, PARTITIONS, 0, N / 2).await;
    let c = consumer(tc.bootstrap());
    c.assign(
        (0..PARTITIONS).map(|p| kpax::TopicPartition::new(topic.name.clone(), p)),
        StartAt::Earliest,
    );
    let mut got = recv_n(&c, N / 2).await;
    // more records while the sessions are open
    produce(tc.bootstrap(), &topic.name, PARTITIONS, N / 2, N).await;
    got.extend(recv_n(&c, N / 2).await);
    assert_quiet(&c, Duration::from_millis(500)).await;
    check_exactly_once_in_order(&got, N, PARTITIONS);
    let sessions = c.fetch_sessions();
    assert!(!sessions.is_empty(), "fetched from no broker");
    match tc.kind() {
        // Kafka keeps fetch sessions (KIP-227), as the fake does.
        Kind::Kafka => assert!(
            sessions.values().all(|id| *id != 0),
            "Kafka keeps sessions: {sessions:?}"
        ),
        Kind::Fake => {
            assert!(
                sessions.values().all(|id| *id != 0),
                "the fake keeps sessions: {sessions:?}"
            );
            let fake = tc.fake_controls().unwrap();
            let log = fake.fetch_log();
            check_epochs(&log);
            let incremental: Vec<&ReceivedFetch> =
                log.iter().filter(|f| f.session_epoch > 0).collect();
            assert!(
                incremental.len() > log.len() / 2,
                "{} of {} fetches incremental",
                incremental.len(),
                log.len()
            );
            assert!(
                incremental
                    .iter()
                    .any(|f| f.partitions.is_empty() && f.forgotten.is_empty()),
                "idle incremental fetches name no partition"
            );
            assert!(log.iter().all(|f| f.session_epoch >= 0));
        }
        _ => assert!(
            sessions.values().all(|id| *id == 0),
            "{} keeps no session: {sessions:?}",
            tc.name()
        ),
    }
    c.close().await;
}

// ---------------------------------------------------------------------------
// Session errors: a new full session, nothing lost or read twice.

backends!(session_errors_recover: fake(2), mock(2));

async fn session_errors_recover(tc: &TestCluster) {
    const PARTITIONS: i32 = 8;
    const N: usize = 2400;
    let topic = tc.topic(PARTITIONS).await;
    produce(tc.bootstrap(), &topic.name, PARTITIONS, 0, N / 3).await;
    let c = consumer(tc.bootstrap());
    c.assign(
        (0..PARTITIONS).map(|p| kpax::TopicPartition::new(topic.name.clone(), p)),
        StartAt::Earliest,
    );
    let mut got = recv_n(&c, N / 6).await;
    tc.inject().fail_sequence(
        ApiKey::Fetch,
        &[
            ErrorCode::FETCH_SESSION_ID_NOT_FOUND,
            ErrorCode::INVALID_FETCH_SESSION_EPOCH,
            ErrorCode::NONE,
            ErrorCode::FETCH_SESSION_ID_NOT_FOUND,
        ],
    );
    got.extend(recv_n(&c, N / 6).await);
    produce(tc.bootstrap(), &topic.name, PARTITIONS, N / 3, 2 * N / 3).await;
    if let Some(fake) = tc.fake_controls() {
        // the broker forgets every session (as after a restart)
        fake.evict_fetch_sessions();
    }
    got.extend(recv_n(&c, N / 3).await);
    tc.inject()
        .fail_next(ApiKey::Fetch, ErrorCode::FETCH_SESSION_ID_NOT_FOUND, 3);
    // a lost connection resets the session too
    tc.inject().drop_connection_on(ApiKey::Fetch, 1);
    produce(tc.bootstrap(), &topic.name, PARTITIONS, 2 * N / 3, N).await;
    got.extend(recv_n(&c, N / 3).await);
    assert_quiet(&c, Duration::from_millis(500)).await;
    check_exactly_once_in_order(&got, N, PARTITIONS);
    if let Some(fake) = tc.fake_controls() {
        let log = fake.fetch_log();
        check_epochs(&log);
        let opened = log.iter().filter(|f| f.session_epoch == 0).count();
        // the first per node, then at least one per fault
        assert!(opened >= 2 + 4, "{opened} sessions opened");
        assert!(c.fetch_sessions().values().all(|id| *id != 0));
    }
    c.close().await;
}

// ---------------------------------------------------------------------------
// What the client sends inside a session (kpax-fake's log).

/// Waits for a Fetch after `from` in the log that `pred` accepts.
async fn wait_fetch(
    fake: &FakeCluster,
    from: usize,
    what: &str,
    pred: impl Fn(&ReceivedFetch) -> bool,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = fake.fetch_log();
        if let Some(i) = log.iter().skip(from).position(&pred) {
            return from + i + 1;
        }
        assert!(
            Instant::now() < deadline,
            "no fetch {what} after {from}: {:#?}",
            &log[from.min(log.len())..]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_pause_resume_unassign_send_changes() {
    let fake = FakeCluster::new(1).await.unwrap();
    let bootstrap = fake.bootstrap();
    let topic = harness::unique_name("session");
    fake.create_topic(&topic, 4).unwrap();
    produce(&bootstrap, &topic, 4, 0, 40).await;
    let c = consumer(&bootstrap);
    let tp = |p: i32| kpax::TopicPartition::new(topic.clone(), p);
    c.assign((0..4).map(tp), StartAt::Earliest);
    let got = recv_n(&c, 40).await;
    check_exactly_once_in_order(&got, 40, 4);
    let id = c.fetch_sessions()[&1];
    assert_ne!(id, 0);
    // idle: incremental fetches naming nothing
    let mut at = wait_fetch(&fake, 0, "idle", |f| {
        f.session_id == id && f.session_epoch > 0 && f.partitions.is_empty()
    })
    .await;

    c.pause(&[tp(1)]);
    at = wait_fetch(&fake, at, "forgetting the paused partition", |f| {
        !f.forgotten.is_empty()
    })
    .await;
    let f = &fake.fetch_log()[at - 1];
    assert_eq!(
        (f.session_id, f.forgotten.clone()),
        (id, vec![(topic.clone(), 1)])
    );
    assert!(f.partitions.is_empty() && f.session_epoch > 0, "{f:?}");

    c.resume(&[tp(1)]);
    at = wait_fetch(&fake, at, "adding the resumed partition", |f| {
        !f.partitions.is_empty()
    })
    .await;
    let f = &fake.fetch_log()[at - 1];
    assert_eq!(f.partitions, vec![(topic.clone(), 1, 10)], "{f:?}");
    assert!(f.forgotten.is_empty() && f.session_epoch > 0 && f.session_id == id);

    c.seek(&topic, 2, StartAt::Offset(3));
    at = wait_fetch(&fake, at, "moving the sought partition", |f| {
        !f.partitions.is_empty()
    })
    .await;
    let f = &fake.fetch_log()[at - 1];
    assert_eq!(f.partitions, vec![(topic.clone(), 2, 3)], "{f:?}");
    assert!(f.session_epoch > 0 && f.session_id == id);
    let again = recv_n(&c, 7).await;
    assert_eq!(
        again
            .iter()
            .map(|r| (r.partition, r.offset))
            .collect::<Vec<_>>(),
        (3..10).map(|o| (2, o)).collect::<Vec<_>>()
    );
    // the fetch offset moved past what came back
    at = wait_fetch(&fake, at, "advancing the sought partition", |f| {
        f.partitions == vec![(topic.clone(), 2, 10)]
    })
    .await;

    c.unassign([tp(3)]);
    at = wait_fetch(&fake, at, "forgetting the unassigned partition", |f| {
        !f.forgotten.is_empty()
    })
    .await;
    let f = &fake.fetch_log()[at - 1];
    assert_eq!(f.forgotten, vec![(topic.clone(), 3)], "{f:?}");
    assert!(f.partitions.is_empty() && f.session_id == id);

    // new records still arrive for the partitions left, in the same session
    produce(&bootstrap, &topic, 4, 40, 80).await;
    let more = recv_n(&c, 30).await;
    assert!(more.iter().all(|r| r.partition != 3 && seq(r) >= 40));
    assert_quiet(&c, Duration::from_millis(300)).await;
    assert_eq!(c.fetch_sessions()[&1], id, "one session throughout");
    check_epochs(&fake.fetch_log());
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_without_sessions_gets_full_fetches() {
    let fake = FakeCluster::new(1).await.unwrap();
    fake.set_fetch_session_limit(0);
    let bootstrap = fake.bootstrap();
    let topic = harness::unique_name("nosession");
    fake.create_topic(&topic, 4).unwrap();
    produce(&bootstrap, &topic, 4, 0, 400).await;
    let c = consumer(&bootstrap);
    c.assign(
        (0..4).map(|p| kpax::TopicPartition::new(topic.clone(), p)),
        StartAt::Earliest,
    );
    let got = recv_n(&c, 400).await;
    check_exactly_once_in_order(&got, 400, 4);
    assert_quiet(&c, Duration::from_millis(300)).await;
    assert_eq!(c.fetch_sessions()[&1], 0);
    let log = fake.fetch_log();
    assert_eq!(log[0].session_epoch, 0, "kpax asks for a session first");
    assert!(log.len() > 2);
    for f in &log[1..] {
        assert_eq!((f.session_id, f.session_epoch), (0, -1), "{f:?}");
        assert!(f.forgotten.is_empty(), "{f:?}");
    }
    // idle at the end: every partition named every time
    let last = log.last().unwrap();
    assert_eq!(last.partitions.len(), 4, "full fetches: {last:?}");
    assert_eq!(fake.fetch_session_count(1), 0);
    c.close().await;
}
