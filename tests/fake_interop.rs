//! librdkafka against kpax-fake, the in-process fake cluster: produce and
//! consume, consumer groups with commits and rebalances, librdkafka's admin
//! client, and injected faults.

mod harness;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::interop::{self, Codec, ProduceOptions, Until};
use kpax_fake::{FakeCluster, GroupState};
use kpax_proto::generated::{ApiKey, ErrorCode};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message};

const N: usize = 1000;

fn by_index(partitions: i32) -> impl Fn(usize) -> i32 {
    move |i| (i % partitions as usize) as i32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_produces_and_consumes_through_the_fake() {
    let cluster = FakeCluster::new(3).await.expect("fake cluster");
    cluster.create_topic("events", 3).unwrap();
    let leaders: BTreeSet<i32> = (0..3).filter_map(|p| cluster.leader("events", p)).collect();
    assert_eq!(leaders.len(), 3, "leaders spread over the brokers");
    let bootstrap = cluster.bootstrap();
    let records = interop::numbered(N);
    let delivered = interop::produce(
        &bootstrap,
        "events",
        &records,
        by_index(3),
        &ProduceOptions {
            idempotent: true,
            ..ProduceOptions::default()
        },
    )
    .await
    .expect("produce");
    let read = interop::consume(&bootstrap, "events", 3, Until::End, Duration::from_secs(30))
        .await
        .expect("consume");
    interop::assert_read_back(&records, &delivered, &read);
    for p in 0..3 {
        assert_eq!(
            cluster.high_watermark("events", p),
            Some((N / 3 + usize::from(p == 0)) as i64)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_compressed_batches_round_trip() {
    let cluster = FakeCluster::new(1).await.expect("fake cluster");
    cluster.create_topic("zipped", 2).unwrap();
    let bootstrap = cluster.bootstrap();
    for codec in [Codec::Gzip, Codec::Lz4, Codec::Zstd, Codec::Snappy] {
        let topic = format!("zipped-{}", codec.name());
        cluster.create_topic(&topic, 2).unwrap();
        let records = interop::numbered(200);
        let delivered = interop::produce(
            &bootstrap,
            &topic,
            &records,
            by_index(2),
            &ProduceOptions {
                codec,
                ..ProduceOptions::default()
            },
        )
        .await
        .expect("produce");
        let read = interop::consume(&bootstrap, &topic, 2, Until::End, Duration::from_secs(30))
            .await
            .expect("consume");
        interop::assert_read_back(&records, &delivered, &read);
    }
}

/// Subscribes a librdkafka consumer to `topic` in `group`, reads `want`
/// records, commits synchronously, and returns the partitions it was
/// assigned.
fn group_consume(bootstrap: &str, group: &str, topic: &str, want: usize) -> BTreeSet<i32> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut read = 0;
    while read < want {
        assert!(
            Instant::now() < deadline,
            "group consumer read {read} of {want}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                assert_eq!(m.topic(), topic);
                read += 1;
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    let assigned: BTreeSet<i32> = consumer
        .assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect();
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");
    assigned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_consumer_group_gets_every_partition_and_commits() {
    let cluster = FakeCluster::new(3).await.expect("fake cluster");
    cluster.create_topic("grouped", 3).unwrap();
    let bootstrap = cluster.bootstrap();
    let records = interop::numbered(300);
    interop::produce(
        &bootstrap,
        "grouped",
        &records,
        by_index(3),
        &ProduceOptions::default(),
    )
    .await
    .expect("produce");
    let group = "fake-group";
    let (b, g) = (bootstrap.clone(), group.to_string());
    let assigned = tokio::task::spawn_blocking(move || group_consume(&b, &g, "grouped", 300))
        .await
        .unwrap();
    assert_eq!(assigned, BTreeSet::from([0, 1, 2]));
    // What OffsetFetch returns (through librdkafka) is what was committed:
    // the end of each partition.
    let committed = interop::committed(&bootstrap, group, "grouped", 3)
        .await
        .expect("committed");
    assert_eq!(committed, vec![Some(100), Some(100), Some(100)]);
    for p in 0..3 {
        assert_eq!(
            cluster.committed(group, "grouped", p).map(|c| c.offset),
            Some(100)
        );
    }
    // The consumer closed: it left the group.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.group_state(group) != Some((GroupState::Empty, 0)) {
        assert!(
            Instant::now() < deadline,
            "group state {:?}",
            cluster.group_state(group)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_produce_error_is_retried_by_librdkafka() {
    let cluster = FakeCluster::new(3).await.expect("fake cluster");
    cluster.create_topic("flaky", 3).unwrap();
    let bootstrap = cluster.bootstrap();
    // Warm up so that the fault hits a data-carrying Produce.
    interop::produce(
        &bootstrap,
        "flaky",
        &interop::numbered(3),
        by_index(3),
        &ProduceOptions::default(),
    )
    .await
    .expect("warm-up produce");
    let before = cluster.request_count(ApiKey::Produce);
    cluster.fail_next(ApiKey::Produce, ErrorCode::NOT_ENOUGH_REPLICAS, 1);
    let records = interop::numbered(30);
    let delivered = interop::produce(
        &bootstrap,
        "flaky",
        &records,
        |_| 1,
        &ProduceOptions {
            idempotent: true,
            extra: vec![("retry.backoff.ms".into(), "50".into())],
            ..ProduceOptions::default()
        },
    )
    .await
    .expect("delivered after the retry");
    assert!(delivered.iter().all(|d| d.partition == 1));
    // The failed request was answered, then retried: more Produce requests
    // than batches, and no record appended twice.
    assert!(cluster.request_count(ApiKey::Produce) >= before + 2);
    assert_eq!(cluster.high_watermark("flaky", 1), Some(31));
    let offsets: Vec<i64> = delivered.iter().map(|d| d.offset).collect();
    assert_eq!(offsets, (1..31).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_makes_its_partitions_unavailable_until_up() {
    let cluster = FakeCluster::new(3).await.expect("fake cluster");
    cluster.create_topic("outage", 3).unwrap();
    let bootstrap = cluster.bootstrap();
    let down = cluster.leader("outage", 0).unwrap();
    cluster.broker_down(down).await;
    assert!(std::net::TcpStream::connect(cluster.broker_addr(down).unwrap()).is_err());
    let one = interop::numbered(1);
    let short = ProduceOptions {
        message_timeout: Duration::from_secs(2),
        ..ProduceOptions::default()
    };
    let err = interop::produce(&bootstrap, "outage", &one, |_| 0, &short)
        .await
        .expect_err("partition 0's leader is down");
    assert!(
        matches!(err, KafkaError::MessageProduction(_)),
        "unexpected error {err:?}"
    );
    // Partitions led by the other brokers still work.
    let other = (0..3)
        .find(|&p| cluster.leader("outage", p) != Some(down))
        .unwrap();
    interop::produce(&bootstrap, "outage", &one, move |_| other, &short)
        .await
        .expect("other partitions are available");
    cluster.broker_up(down).expect("broker up");
    let d = interop::produce(
        &bootstrap,
        "outage",
        &one,
        |_| 0,
        &ProduceOptions::default(),
    )
    .await
    .expect("available again");
    assert_eq!(d[0].offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_leader_is_followed_by_librdkafka() {
    let cluster = FakeCluster::new(3).await.expect("fake cluster");
    cluster.create_topic("moving", 1).unwrap();
    let bootstrap = cluster.bootstrap();
    let records = interop::numbered(10);
    interop::produce(
        &bootstrap,
        "moving",
        &records[..5],
        |_| 0,
        &ProduceOptions::default(),
    )
    .await
    .expect("produce before the move");
    let old = cluster.leader("moving", 0).unwrap();
    cluster.move_leader("moving", 0, old % 3 + 1).unwrap();
    interop::produce(
        &bootstrap,
        "moving",
        &records[5..],
        |_| 0,
        &ProduceOptions::default(),
    )
    .await
    .expect("produce after the move");
    let read = interop::consume(&bootstrap, "moving", 1, Until::End, Duration::from_secs(30))
        .await
        .expect("consume");
    let got: Vec<_> = read[&0].iter().map(|c| c.record.clone()).collect();
    assert_eq!(got, records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_negotiates_down_to_pinned_versions() {
    use kpax_fake::{FakeOptions, VersionTable};
    for (name, versions) in [
        ("2.8", VersionTable::kafka_2_8()),
        ("0.10", VersionTable::kafka_0_10()),
    ] {
        let cluster = FakeCluster::with_options(FakeOptions {
            brokers: 3,
            versions,
            ..FakeOptions::default()
        })
        .await
        .expect("fake cluster");
        cluster.create_topic("pinned", 3).unwrap();
        let bootstrap = cluster.bootstrap();
        let records = interop::numbered(90);
        let delivered = interop::produce(
            &bootstrap,
            "pinned",
            &records,
            by_index(3),
            &ProduceOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("Kafka {name}: produce: {e}"));
        let read = interop::consume(&bootstrap, "pinned", 3, Until::End, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("Kafka {name}: {e}"));
        if name == "0.10" {
            // Message format v1 carries no headers.
            let bare: Vec<_> = records
                .iter()
                .map(|r| interop::Record {
                    headers: Vec::new(),
                    ..r.clone()
                })
                .collect();
            interop::assert_read_back(&bare, &delivered, &read);
        } else {
            interop::assert_read_back(&records, &delivered, &read);
        }
    }
}

/// The interop check every backend runs (harness_mock, harness_tansu), on
/// the fake through the harness: 3 brokers, every codec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_roundtrip_on_the_fake() {
    let cluster = harness::Cluster::fake(3).await;
    harness::check_roundtrip(&cluster, 3, 1000, Codec::None).await;
    for codec in Codec::ALL {
        harness::check_roundtrip(&cluster, 3, 200, codec).await;
    }
}

/// librdkafka's admin client creates and deletes topics on the fake
/// (CreateTopics, DeleteTopics), and its metadata sees the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_admin_creates_and_deletes_topics() {
    let cluster = FakeCluster::new(3).await.expect("fake cluster");
    let bootstrap = cluster.bootstrap();
    harness::create_topic(&bootstrap, "made-by-librdkafka", 5, 2).await;
    let leaders = interop::leaders(&bootstrap, "made-by-librdkafka")
        .await
        .expect("metadata");
    assert_eq!(leaders.len(), 5, "{leaders:?}");
    for p in 0..5 {
        assert_eq!(
            cluster.leader("made-by-librdkafka", p),
            leaders.get(&p).copied()
        );
    }
    harness::delete_topic(&bootstrap, "made-by-librdkafka")
        .await
        .expect("delete");
    assert_eq!(cluster.leader("made-by-librdkafka", 0), None);
    let err = harness::delete_topic(&bootstrap, "made-by-librdkafka")
        .await
        .expect_err("deleting it twice");
    assert!(err.contains("UnknownTopicOrPartition"), "{err}");
}

/// A librdkafka group member polling until `stop`, recording the
/// partitions it was assigned after each poll.
fn member(
    bootstrap: String,
    group: String,
    topic: String,
    stop: Arc<AtomicBool>,
    assigned: Arc<std::sync::Mutex<BTreeSet<i32>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "200")
            .set("partition.assignment.strategy", "range")
            .create()
            .expect("consumer");
        consumer.subscribe(&[&topic]).expect("subscribe");
        while !stop.load(Ordering::Relaxed) {
            let _ = consumer.poll(Duration::from_millis(50));
            let now: BTreeSet<i32> = consumer
                .assignment()
                .map(|a| a.elements().iter().map(|e| e.partition()).collect())
                .unwrap_or_default();
            *assigned.lock().unwrap() = now;
        }
        // dropping the consumer leaves the group
    })
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two librdkafka members split a 6-partition topic; when one leaves, the
/// other is given every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_group_rebalances_when_members_join_and_leave() {
    let cluster = FakeCluster::new(3).await.expect("fake cluster");
    cluster.create_topic("shared", 6).unwrap();
    let bootstrap = cluster.bootstrap();
    let group = "fake-rebalance";
    let (stop_a, stop_b) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (got_a, got_b) = (Arc::default(), Arc::default());
    let a = member(
        bootstrap.clone(),
        group.into(),
        "shared".into(),
        stop_a.clone(),
        Arc::clone(&got_a),
    );
    let all: BTreeSet<i32> = (0..6).collect();
    wait_for("first member holds all 6", || *got_a.lock().unwrap() == all).await;
    let b = member(
        bootstrap.clone(),
        group.into(),
        "shared".into(),
        stop_b.clone(),
        Arc::clone(&got_b),
    );
    wait_for("two members split the partitions 3/3", || {
        let (x, y) = (got_a.lock().unwrap().clone(), got_b.lock().unwrap().clone());
        x.len() == 3 && y.len() == 3 && x.union(&y).count() == 6
    })
    .await;
    assert_eq!(cluster.group_state(group), Some((GroupState::Stable, 2)));
    stop_a.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || a.join().unwrap())
        .await
        .unwrap();
    wait_for("the one left holds all 6", || *got_b.lock().unwrap() == all).await;
    assert_eq!(cluster.group_state(group), Some((GroupState::Stable, 1)));
    stop_b.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || b.join().unwrap())
        .await
        .unwrap();
}
