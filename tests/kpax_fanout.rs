//! The consumer's fan-out helper (`kpax::fanout::FanOut`,
//! `Consumer::process_concurrently`) against real brokers (kpax-fake and
//! librdkafka's mock; tansu numbers offsets per batch, and these checks
//! are about offsets): records of a key (or partition) processed in order,
//! different keys concurrently, at most `concurrency` outstanding,
//! committed offsets never past an unprocessed record, a handler error
//! stops the run, and a restart from the committed offsets loses nothing.

mod harness;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::Cluster as TestCluster;
use kpax::consumer::{Consumer, ConsumerConfig, OffsetReset, TopicPartition};
use kpax::fanout::{FanOut, FanOutError, OnFailure, OrderBy};
use kpax::producer::{Producer, ProducerConfig, ProducerRecord};
use kpax::{ClientConfig, Cluster, ConsumerRecord};

fn client() -> ClientConfig {
    ClientConfig::default()
        .with_request_timeout(Duration::from_secs(10))
        .with_connect_timeout(Duration::from_secs(2))
        .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .with_metadata_max_age(Duration::from_secs(5))
}

fn group_consumer(tc: &TestCluster, group: &str) -> Consumer {
    Consumer::new(
        Cluster::new([tc.bootstrap()], client()).unwrap(),
        ConsumerConfig::default()
            .with_group_id(group)
            .with_auto_commit(false)
            .with_auto_offset_reset(OffsetReset::Earliest)
            // the mock bounds its rebalance waits by the session timeout
            // (45 s by default: run 2 below then took 45 s on it)
            .with_session_timeout(Duration::from_secs(6), Duration::from_millis(300))
            .with_fetch_max_wait(Duration::from_millis(100)),
    )
    .unwrap()
}

/// librdkafka's mock advertises flexible JoinGroup (v6), SyncGroup (v4)
/// and LeaveGroup (v4) but misparses them (SyncGroup v4 crashes it): keep
/// it to the versions librdkafka itself uses (as in kpax_consumer.rs).
fn narrow_group_versions(tc: &TestCluster) {
    if let Some(mock) = tc.mock_controls() {
        mock.narrow_api_versions(harness::api_key::JOIN_GROUP, 0, 5);
        mock.narrow_api_versions(harness::api_key::SYNC_GROUP, 0, 3);
        mock.narrow_api_versions(harness::api_key::LEAVE_GROUP, 0, 2);
    }
}

/// Produces `rec-{i}` for i in `0..n` to partition `i % partitions` with
/// key `k{i % keys}` (`keys` a multiple of `partitions`: a key lives in
/// one partition).
async fn produce(tc: &TestCluster, topic: &str, partitions: i32, keys: usize, n: usize) {
    let p = Producer::new(
        Cluster::new([tc.bootstrap()], client()).unwrap(),
        ProducerConfig::default(),
    )
    .unwrap();
    let mut fs = Vec::new();
    for i in 0..n {
        let r = ProducerRecord::new(topic, format!("rec-{i}"))
            .with_key(format!("k{}", i % keys))
            .with_partition(i as i32 % partitions);
        fs.push(p.send(r).await.unwrap());
    }
    for f in fs {
        f.await.unwrap();
    }
    p.close(Duration::from_secs(5)).await;
}

fn seq(r: &ConsumerRecord) -> usize {
    std::str::from_utf8(r.value().unwrap()).unwrap()[4..]
        .parse()
        .unwrap()
}

/// A small deterministic random source for processing delays.
struct Rng(AtomicU64);

impl Rng {
    fn millis(&self, max: u64) -> Duration {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.store(x, Ordering::Relaxed);
        Duration::from_millis(x % (max + 1))
    }
}

/// What the handlers saw.
#[derive(Default)]
struct Seen {
    /// (partition, offset) processed successfully.
    processed: Mutex<HashSet<(i32, i64)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Per key: the last sequence number started; keys being processed.
    last_by_key: Mutex<HashMap<String, usize>>,
    busy_keys: Mutex<HashSet<String>>,
}

impl Seen {
    fn start(&self, r: &ConsumerRecord) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let key = String::from_utf8(r.key().unwrap().to_vec()).unwrap();
        assert!(
            self.busy_keys.lock().unwrap().insert(key.clone()),
            "key {key} processed twice at once"
        );
        if let Some(prev) = self.last_by_key.lock().unwrap().insert(key.clone(), seq(r)) {
            assert!(seq(r) > prev, "key {key}: {} after {prev}", seq(r));
        }
    }

    fn end(&self, r: &ConsumerRecord, ok: bool) {
        let key = String::from_utf8(r.key().unwrap().to_vec()).unwrap();
        self.busy_keys.lock().unwrap().remove(&key);
        if ok {
            self.processed
                .lock()
                .unwrap()
                .insert((r.partition, r.offset));
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    fn processed(&self) -> HashSet<(i32, i64)> {
        self.processed.lock().unwrap().clone()
    }
}

/// Committed offsets now never pass a record not processed.
async fn check_commits(c: &Consumer, topic: &str, partitions: i32, seen: &Seen) {
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic.to_string(), p))
        .collect();
    let Ok(committed) = c.committed(&tps).await else {
        return; // e.g. coordinator busy: the next check covers it
    };
    // processed only grows: read it after the commits
    let processed = seen.processed();
    for (TopicPartition { partition: p, .. }, off) in committed {
        for o in 0..off {
            assert!(
                processed.contains(&(p, o)),
                "partition {p} committed at {off} but offset {o} is not processed"
            );
        }
    }
}

/// Waits until `seen` processed `n` records.
async fn processed_n(seen: Arc<Seen>, n: usize) {
    while seen.processed.lock().unwrap().len() < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------

backends!(in_order_per_key_bounded_commit_never_passes: fake(3), mock(3), kafka);

async fn in_order_per_key_bounded_commit_never_passes(tc: &TestCluster) {
    const PARTITIONS: i32 = 6;
    const KEYS: usize = 24;
    const N: usize = 720;
    const CONCURRENCY: usize = 8;
    let topic = tc.topic(PARTITIONS).await;
    produce(tc, &topic.name, PARTITIONS, KEYS, N).await;
    let group = tc.group_id();
    narrow_group_versions(tc);
    let c = group_consumer(tc, &group);
    c.subscribe([topic.name.clone()]).unwrap();
    let seen = Arc::new(Seen::default());
    let rng = Rng(AtomicU64::new(0x9e37_79b9_7f4a_7c15));
    // the first record of partition 0 (key k0) is slow: the rest of the
    // partition is processed meanwhile, but the commit must wait for it
    let slow_done = AtomicBool::new(false);
    let handler = |r: ConsumerRecord| {
        let seen = seen.clone();
        let delay = if (r.partition, r.offset) == (0, 0) {
            Duration::from_millis(1500)
        } else {
            rng.millis(8)
        };
        let slow_done = &slow_done;
        async move {
            seen.start(&r);
            tokio::time::sleep(delay).await;
            seen.end(&r, true);
            if (r.partition, r.offset) == (0, 0) {
                slow_done.store(true, Ordering::SeqCst);
            }
            Ok::<(), std::convert::Infallible>(())
        }
    };
    let fan = FanOut::new(CONCURRENCY)
        .with_order_by(OrderBy::Key)
        .with_commit_interval(Duration::from_millis(50));
    let checker = async {
        let mut held_back = false;
        loop {
            check_commits(&c, &topic.name, PARTITIONS, &seen).await;
            if !slow_done.load(Ordering::SeqCst) {
                let done_p0 = seen.processed().iter().filter(|(p, _)| *p == 0).count();
                let committed = c
                    .committed(&[TopicPartition::new(topic.name.clone(), 0)])
                    .await
                    .map(|m| m[&TopicPartition::new(topic.name.clone(), 0)])
                    .unwrap_or(-1);
                if done_p0 > 10 && !slow_done.load(Ordering::SeqCst) {
                    assert!(committed <= 0, "committed {committed} past the slow record");
                    held_back = true;
                }
            }
            if seen.processed().len() >= N {
                return held_back;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    };
    let run = fan.run(&c, handler, processed_n(seen.clone(), N));
    let deadline = Duration::from_secs(60);
    let (report, held_back) = tokio::time::timeout(deadline, async { tokio::join!(run, checker) })
        .await
        .expect("processing timed out");
    let report = report.unwrap();
    assert!(held_back, "the slow record never held a commit back");
    assert_eq!(report.processed as usize, N);
    assert_eq!(seen.processed().len(), N);
    let max = seen.max_in_flight.load(Ordering::SeqCst);
    assert!(max <= CONCURRENCY, "{max} in flight");
    assert!(max >= 2, "never concurrent ({max})");
    assert!(report.max_outstanding <= CONCURRENCY);
    // everything processed: committed at the end of each partition
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic.name.clone(), p))
        .collect();
    let committed = c.committed(&tps).await.unwrap();
    for tp in &tps {
        assert_eq!(committed[tp], (N as i32 / PARTITIONS) as i64, "{tp:?}");
    }
    assert_eq!(report.committable, committed);
    c.close().await;
}

// ---------------------------------------------------------------------------

backends!(handler_error_stops_and_restart_loses_nothing: fake(3), mock(3), kafka);

async fn handler_error_stops_and_restart_loses_nothing(tc: &TestCluster) {
    const PARTITIONS: i32 = 4;
    const N: usize = 400;
    const BAD: usize = 150; // partition 2, offset 37
    let topic = tc.topic(PARTITIONS).await;
    produce(tc, &topic.name, PARTITIONS, PARTITIONS as usize, N).await;
    let group = tc.group_id();
    narrow_group_versions(tc);
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic.name.clone(), p))
        .collect();

    // run 1: fails on one record
    let c = group_consumer(tc, &group);
    c.subscribe([topic.name.clone()]).unwrap();
    let first = Arc::new(Seen::default());
    let rng = Rng(AtomicU64::new(0x2545_f491_4f6c_dd1d));
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        c.process_concurrently(6, OrderBy::Partition, |r: ConsumerRecord| {
            let seen = first.clone();
            let delay = rng.millis(5);
            async move {
                seen.start(&r);
                tokio::time::sleep(delay).await;
                let ok = seq(&r) != BAD;
                seen.end(&r, ok);
                if ok {
                    Ok(())
                } else {
                    Err(format!("cannot process rec-{BAD}"))
                }
            }
        }),
    )
    .await
    .expect("the run did not stop")
    .unwrap_err();
    match &err {
        FanOutError::Handler {
            partition, offset, ..
        } => assert_eq!((*partition, *offset), (2, 37), "{err}"),
        other => panic!("expected the handler's error, got {other}"),
    }
    assert!(err.to_string().contains("cannot process rec-150"), "{err}");
    let committed = c.committed(&tps).await.unwrap();
    assert!(committed[&tps[2]] <= 37, "committed past the failed record");
    assert!(committed[&tps[2]] >= 0, "nothing committed on partition 2");
    check_commits(&c, &topic.name, PARTITIONS, &first).await;
    let max = first.max_in_flight.load(Ordering::SeqCst);
    assert!((1..=6).contains(&max), "{max} in flight");
    c.close().await;

    // run 2: a new member resumes from the committed offsets
    let c = group_consumer(tc, &group);
    c.subscribe([topic.name.clone()]).unwrap();
    let second = Arc::new(Seen::default());
    let per_partition = (N as i32 / PARTITIONS) as i64;
    let left: usize = committed
        .values()
        .map(|o| (per_partition - (*o).max(0)) as usize)
        .sum();
    let started = Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        FanOut::new(6).with_order_by(OrderBy::Partition).run(
            &c,
            |r: ConsumerRecord| {
                let seen = second.clone();
                async move {
                    seen.start(&r);
                    seen.end(&r, true);
                    Ok::<(), String>(())
                }
            },
            processed_n(second.clone(), left),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("run 2 stalled after {:?}", started.elapsed()))
    .unwrap();
    assert_eq!(report.processed as usize, left);
    let again = second.processed();
    // it started exactly at the committed offsets, and nothing is lost
    for (tp, off) in &committed {
        let min = again
            .iter()
            .filter(|(p, _)| *p == tp.partition)
            .map(|(_, o)| *o)
            .min();
        if *off < per_partition {
            assert_eq!(min, Some((*off).max(0)), "{tp:?}");
        }
    }
    assert!(
        again.contains(&(2, 37)),
        "the failed record is processed again"
    );
    let all: HashSet<(i32, i64)> = first.processed().union(&again).copied().collect();
    let want: HashSet<(i32, i64)> = (0..PARTITIONS)
        .flat_map(|p| (0..per_partition).map(move |o| (p, o)))
        .collect();
    assert_eq!(all, want, "records lost");
    let end: BTreeMap<TopicPartition, i64> =
        tps.iter().map(|tp| (tp.clone(), per_partition)).collect();
    assert_eq!(c.committed(&tps).await.unwrap(), end);
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_on_is_refused() {
    let tc = TestCluster::fake(1).await;
    let c = Consumer::new(
        Cluster::new([tc.bootstrap()], client()).unwrap(),
        ConsumerConfig::default().with_group_id(tc.group_id()),
    )
    .unwrap();
    let err = c
        .process_concurrently(4, OrderBy::Key, |_r: ConsumerRecord| async {
            Ok::<(), String>(())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FanOutError::Consumer(kpax::Error::Config(m)) if m.contains("enable_auto_commit")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Failure policies: retries, skip, dead letter, threshold.

/// Resolves once `counter` reaches `n`.
async fn reaches(counter: Arc<AtomicUsize>, n: usize) {
    while counter.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn end_offsets(topic: &str, partitions: i32, per_partition: i64) -> BTreeMap<TopicPartition, i64> {
    (0..partitions)
        .map(|p| (TopicPartition::new(topic, p), per_partition))
        .collect()
}

backends!(failed_records_are_retried_then_skipped: fake(3), kafka);

/// Every tenth record fails twice, then succeeds (with 3 retries allowed);
/// every record ending in 3 always fails and is skipped. Everything is
/// committed, and the report counts each.
async fn failed_records_are_retried_then_skipped(tc: &TestCluster) {
    const PARTITIONS: i32 = 2;
    const N: usize = 100;
    let topic = tc.topic(PARTITIONS).await;
    produce(tc, &topic.name, PARTITIONS, PARTITIONS as usize, N).await;
    let c = group_consumer(tc, &tc.group_id());
    c.subscribe([topic.name.clone()]).unwrap();
    let attempts: Arc<Mutex<HashMap<usize, usize>>> = Arc::default();
    let finals = Arc::new(AtomicUsize::new(0));
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        FanOut::new(8)
            .with_retries(3, Duration::from_millis(5))
            .on_failure(OnFailure::Skip)
            .with_commit_interval(Duration::from_millis(50))
            .run(
                &c,
                |r: ConsumerRecord| {
                    let attempts = attempts.clone();
                    let finals = finals.clone();
                    async move {
                        let i = seq(&r);
                        let n = {
                            let mut a = attempts.lock().unwrap();
                            let n = a.entry(i).or_insert(0);
                            *n += 1;
                            *n
                        };
                        let fails = (i.is_multiple_of(10) && n <= 2) || i % 10 == 3;
                        // the last attempt a record gets
                        if !fails || n == 4 {
                            finals.fetch_add(1, Ordering::SeqCst);
                        }
                        if fails {
                            Err(format!("rec-{i} attempt {n}"))
                        } else {
                            Ok(())
                        }
                    }
                },
                reaches(finals.clone(), N),
            ),
    )
    .await
    .expect("the run stalled")
    .unwrap();
    let a = attempts.lock().unwrap().clone();
    assert_eq!(a.len(), N, "every record handled");
    for (i, n) in &a {
        let want = match i % 10 {
            0 => 3,
            3 => 4,
            _ => 1,
        };
        assert_eq!(*n, want, "rec-{i}: {n} attempts");
    }
    assert_eq!(report.processed, 90, "{report:?}");
    assert_eq!(report.skipped, 10, "{report:?}");
    assert_eq!(report.retried, 10 * 2 + 10 * 3, "{report:?}");
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic.name.clone(), p))
        .collect();
    assert_eq!(
        c.committed(&tps).await.unwrap(),
        end_offsets(&topic.name, PARTITIONS, (N / 2) as i64),
        "skipped records are committed past"
    );
    c.close().await;
}

backends!(failed_records_go_to_the_dead_letter_topic: fake(3), kafka);

/// Records ending in 7 always fail and are written to a dead-letter topic
/// with their origin and the error in headers; everything is committed.
/// Then, with a dead-letter topic that does not exist (the write fails),
/// the run stops and the commit stays before the record.
async fn failed_records_go_to_the_dead_letter_topic(tc: &TestCluster) {
    const PARTITIONS: i32 = 2;
    const N: usize = 60;
    let topic = tc.topic(PARTITIONS).await;
    let dlq = tc.topic(1).await;
    produce(tc, &topic.name, PARTITIONS, PARTITIONS as usize, N).await;
    let group = tc.group_id();
    let c = group_consumer(tc, &group);
    c.subscribe([topic.name.clone()]).unwrap();
    let producer = Producer::new(
        Cluster::new([tc.bootstrap()], client()).unwrap(),
        ProducerConfig::default(),
    )
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        FanOut::new(4)
            .on_failure(OnFailure::DeadLetter {
                producer: producer.clone(),
                topic: dlq.name.clone(),
            })
            .run(
                &c,
                |r: ConsumerRecord| {
                    let calls = calls.clone();
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let i = seq(&r);
                        if i % 10 == 7 {
                            Err(format!("rec-{i} is poison"))
                        } else {
                            Ok(())
                        }
                    }
                },
                reaches(calls.clone(), N),
            ),
    )
    .await
    .expect("the run stalled")
    .unwrap();
    assert_eq!(
        (report.processed, report.dead_lettered),
        (54, 6),
        "{report:?}"
    );
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic.name.clone(), p))
        .collect();
    assert_eq!(
        c.committed(&tps).await.unwrap(),
        end_offsets(&topic.name, PARTITIONS, (N / 2) as i64)
    );
    c.close().await;

    // the dead letters, with where they came from and why
    let reader = Consumer::new(
        Cluster::new([tc.bootstrap()], client()).unwrap(),
        ConsumerConfig::default(),
    )
    .unwrap();
    reader.assign(
        [TopicPartition::new(dlq.name.clone(), 0)],
        kpax::consumer::StartAt::Earliest,
    );
    let mut letters = Vec::new();
    while letters.len() < 6 {
        let b = tokio::time::timeout(Duration::from_secs(20), reader.recv_batch(10))
            .await
            .expect("dead letters")
            .unwrap();
        letters.extend(b);
    }
    let mut got: Vec<usize> = letters.iter().map(seq).collect();
    got.sort();
    assert_eq!(got, [7, 17, 27, 37, 47, 57]);
    for l in &letters {
        let h: HashMap<&[u8], Option<&[u8]>> = l.headers().map(|h| (h.key, h.value)).collect();
        let i = seq(l);
        assert_eq!(h[&b"kpax.dlq.topic"[..]], Some(topic.name.as_bytes()));
        assert_eq!(
            h[&b"kpax.dlq.partition"[..]],
            Some((i as i32 % PARTITIONS).to_string().as_bytes())
        );
        assert_eq!(
            h[&b"kpax.dlq.offset"[..]],
            Some((i as i32 / PARTITIONS).to_string().as_bytes())
        );
        let why = String::from_utf8_lossy(h[&b"kpax.dlq.error"[..]].unwrap()).into_owned();
        assert!(why.contains("is poison"), "{why}");
        assert_eq!(l.key(), Some(format!("k{}", i % 2).as_bytes()));
    }
    reader.close().await;

    // a dead letter that cannot be written: the run stops, the record is
    // not committed past
    let topic2 = tc.topic(1).await;
    produce(tc, &topic2.name, 1, 1, 10).await;
    let c = group_consumer(tc, &tc.group_id());
    c.subscribe([topic2.name.clone()]).unwrap();
    let strict = Producer::new(
        Cluster::new([tc.bootstrap()], client()).unwrap(),
        ProducerConfig::default().with_delivery_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        FanOut::new(1)
            .on_failure(OnFailure::DeadLetter {
                producer: strict,
                topic: "kpax-no-such-dlq".into(),
            })
            .run(
                &c,
                |r: ConsumerRecord| async move {
                    if seq(&r) == 4 {
                        Err("poison".to_string())
                    } else {
                        Ok(())
                    }
                },
                std::future::pending(),
            ),
    )
    .await
    .expect("the run did not stop")
    .unwrap_err();
    assert!(
        matches!(err, FanOutError::DeadLetter { offset: 4, .. }),
        "{err}"
    );
    let committed = c
        .committed(&[TopicPartition::new(topic2.name.clone(), 0)])
        .await
        .unwrap();
    assert!(
        committed[&TopicPartition::new(topic2.name.clone(), 0)] <= 4,
        "{committed:?}"
    );
    c.close().await;
    producer.close(Duration::from_secs(5)).await;
}

backends!(too_many_failures_stop_the_run: fake(1), kafka);

/// A handler failing on everything stops a skipping run at the threshold:
/// more than 5 failures within a minute.
async fn too_many_failures_stop_the_run(tc: &TestCluster) {
    let topic = tc.topic(1).await;
    produce(tc, &topic.name, 1, 1, 50).await;
    let c = group_consumer(tc, &tc.group_id());
    c.subscribe([topic.name.clone()]).unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        FanOut::new(1)
            .on_failure(OnFailure::Skip)
            .with_failure_threshold(5, Duration::from_secs(60))
            .run(
                &c,
                |_r: ConsumerRecord| async { Err::<(), _>("the database is down") },
                std::future::pending(),
            ),
    )
    .await
    .expect("the run did not stop")
    .unwrap_err();
    match &err {
        FanOutError::TooManyFailures {
            failures, offset, ..
        } => assert_eq!((*failures, *offset), (6, 5), "{err}"),
        other => panic!("expected TooManyFailures, got {other}"),
    }
    let committed = c
        .committed(&[TopicPartition::new(topic.name.clone(), 0)])
        .await
        .unwrap();
    assert!(
        committed
            .get(&TopicPartition::new(topic.name.clone(), 0))
            .copied()
            .unwrap_or(0)
            <= 5,
        "{committed:?}"
    );
    c.close().await;
}
