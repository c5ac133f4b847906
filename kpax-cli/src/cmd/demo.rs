//! `kpax demo`: the main job, on a machine with no broker. Starts an
//! in-process fake Kafka cluster (kpax-fake, the real wire protocol over
//! loopback TCP), produces records through kpax's idempotent producer at
//! full speed (sends run ahead under the producer's own backpressure,
//! deliveries are awaited concurrently), takes one broker down midway and
//! brings it back, reads everything back as a consumer-group member, and
//! proves every record arrived exactly once and in order per partition.
//! With `--brokers` (or `--config`) it runs the same against a real
//! cluster, on a topic of its own that it deletes afterwards, without the
//! fault.

use crate::cmd::topic::await_visible;
use crate::connect::ConnectArgs;
use crate::error::{CliError, KafkaContext, Result};
use crate::output::{progress, write_out};
use bytes::Bytes;
use clap::Args;
use kpax::admin::{Admin, NewTopic};
use kpax::consumer::OffsetReset;
use kpax::producer::DeliveryFuture;
use kpax::{ClientConfig, Cluster, Consumer, ConsumerConfig, Producer, ProducerConfig};
use kpax::{ConsumerRecord, ProducerRecord};
use kpax_fake::FakeCluster;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Partitions of the demo topic.
const PARTITIONS: i32 = 6;
/// Brokers of the fake cluster.
const BROKERS: usize = 3;
/// Longest wait for the next records while consuming.
const RECV_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the fake's broker stays down.
const OUTAGE: Duration = Duration::from_millis(300);
/// Delivery futures queued for the task that awaits them.
const DELIVERY_QUEUE: usize = 1 << 16;

/// Flags of `kpax demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Records to produce and consume.
    #[arg(default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    records: u64,
    /// Bytes of each record's value.
    #[arg(default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    value_bytes: u64,
    /// Take no broker down midway (the fake cluster only; a real cluster is
    /// never touched).
    #[arg(long)]
    no_fault: bool,
    /// With --brokers, --config or -X: run against that cluster instead of
    /// the in-process fake.
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Where the demo runs.
enum Target {
    /// The in-process fake; the broker to take down, unless `--no-fault`.
    Fake(Arc<FakeCluster>, Option<i32>),
    /// A real cluster (the demo's topic is deleted at the end).
    Real(Admin),
}

/// What the broker outage did.
#[derive(Default)]
struct Outage {
    node: i32,
    leaders_moved: usize,
}

/// Runs `kpax demo`.
///
/// # Errors
/// The cluster cannot be reached or set up, a record is not delivered, or
/// records come back missing, repeated or out of order.
pub async fn run(args: DemoArgs) -> Result<()> {
    let n = args.records;
    let size = args.value_bytes as usize;
    let real = args.connect.brokers.is_some()
        || args.connect.config.is_some()
        || !args.connect.client_settings.is_empty();
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let (cluster, target, topic, group) = if real {
        let cluster = args.connect.cluster()?;
        let topic = format!("kpax-demo-{stamp}");
        let admin = Admin::new(cluster.clone());
        args.connect
            .bounded("creating the demo topic", async {
                let rf = cluster.brokers().len().clamp(1, 3) as i16;
                let created = admin
                    .create_topics(&[NewTopic::new(topic.clone(), PARTITIONS, rf)], false)
                    .await
                    .kafka(|| format!("creating topic {topic}"))?;
                for (name, r) in created {
                    r.kafka(|| format!("creating topic {name}"))?;
                }
                await_visible(&admin, &[(topic.as_str(), Some(PARTITIONS))]).await
            })
            .await?;
        write_out(&format!(
            "cluster of {} brokers; topic {topic} with {PARTITIONS} partitions\n",
            cluster.brokers().len()
        ))?;
        let group = format!("{topic}-group");
        (cluster, Target::Real(admin), topic, group)
    } else {
        let fake = FakeCluster::new(BROKERS).await.map_err(|e| CliError::Io {
            context: "starting the fake cluster".into(),
            source: e,
        })?;
        fake.create_topic("demo", PARTITIONS)
            .map_err(|e| CliError::Failed(format!("creating the demo topic: {e}")))?;
        write_out(&format!(
            "fake cluster of {BROKERS} brokers at {}\n",
            fake.bootstrap()
        ))?;
        let victim = (!args.no_fault).then(|| fake.leader("demo", 0).unwrap_or(1));
        let cluster = Cluster::new([fake.bootstrap()], ClientConfig::default())
            .kafka(|| "connecting".into())?;
        (
            cluster,
            Target::Fake(Arc::new(fake), victim),
            "demo".to_string(),
            "kpax-demo".to_string(),
        )
    };

    let result = async {
        let outage = produce(&cluster, &target, &topic, n, size).await?;
        consume(&cluster, &topic, &group, n, outage.as_ref()).await
    }
    .await;
    if let Target::Real(admin) = &target {
        // Best effort: the demo leaves nothing behind on a real cluster.
        let _ = admin.delete_topics(&[topic.as_str()]).await;
        let _ = admin.delete_groups(&[group.as_str()]).await;
    }
    result
}

/// Produces `n` records (key: the record's number) to `topic`, taking a
/// broker of the fake down at the halfway mark; prints the throughput.
async fn produce(
    cluster: &Cluster,
    target: &Target,
    topic: &str,
    n: u64,
    size: usize,
) -> Result<Option<Outage>> {
    let producer = Producer::new(cluster.clone(), ProducerConfig::default())
        .kafka(|| "starting the producer".into())?;
    let bar = progress(Some(n), "producing");
    // Deliveries are awaited by a task of their own, so sends run ahead
    // as far as the producer's buffer allows (its backpressure).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<DeliveryFuture>(DELIVERY_QUEUE);
    let delivered = tokio::spawn({
        let bar = bar.clone();
        async move {
            let mut ok = 0u64;
            let mut first_error = None;
            while let Some(f) = rx.recv().await {
                match f.await {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
                bar.inc(1);
            }
            (ok, first_error)
        }
    });
    let value = Bytes::from(vec![b'v'; size]);
    let t0 = Instant::now();
    let mut fault = None;
    for i in 0..n {
        if i == n / 2 {
            if let Target::Fake(fake, Some(node)) = target {
                fault = Some(tokio::spawn(take_down(
                    fake.clone(),
                    *node,
                    topic.to_string(),
                )));
            }
        }
        let r = ProducerRecord::new(topic, value.clone()).with_key(i.to_string());
        let f = producer
            .send(r)
            .await
            .kafka(|| format!("sending record {i}"))?;
        if tx.send(f).await.is_err() {
            break;
        }
    }
    drop(tx);
    let (ok, first_error) = delivered
        .await
        .map_err(|e| CliError::Failed(format!("the delivery task failed: {e}")))?;
    let elapsed = t0.elapsed();
    bar.finish_and_clear();
    let outage = match fault {
        Some(t) => Some(
            t.await
                .map_err(|e| CliError::Failed(format!("the broker outage task failed: {e}")))??,
        ),
        None => None,
    };
    let stats = producer.stats();
    producer.close(Duration::from_secs(10)).await;
    if let Some(e) = first_error {
        return Err(CliError::Kafka {
            context: format!("{} of {n} records were not delivered", n - ok),
            source: e,
        });
    }
    write_out(&format!(
        "produced {n} records of {size} B in {elapsed:.2?}: {:.0} records/s (idempotent, acks=all)\n",
        n as f64 / elapsed.as_secs_f64()
    ))?;
    if let Some(o) = &outage {
        write_out(&format!(
            "rode through broker {} going down for {OUTAGE:?} at record {}: {} partition leaders moved, {} batches retried\n",
            o.node,
            n / 2,
            o.leaders_moved,
            stats.retries
        ))?;
    }
    Ok(outage)
}

/// Takes broker `node` of the fake down, moves the leadership of its
/// partitions to the other brokers (as Kafka's controller does), and
/// brings it back after [`OUTAGE`].
async fn take_down(fake: Arc<FakeCluster>, node: i32, topic: String) -> Result<Outage> {
    fake.broker_down(node).await;
    let others: Vec<i32> = (1..=fake.broker_count() as i32)
        .filter(|b| *b != node)
        .collect();
    let mut moved = 0;
    for p in 0..PARTITIONS {
        if fake.leader(&topic, p) == Some(node) {
            let to = others[moved % others.len()];
            fake.move_leader(&topic, p, to)
                .map_err(|e| CliError::Failed(format!("moving the leader of {topic}-{p}: {e}")))?;
            moved += 1;
        }
    }
    tokio::time::sleep(OUTAGE).await;
    fake.broker_up(node).map_err(|e| CliError::Io {
        context: format!("bringing broker {node} back"),
        source: e,
    })?;
    Ok(Outage {
        node,
        leaders_moved: moved,
    })
}

/// Reads the topic back as a group member and checks that records
/// 0..n each arrived once, in order within each partition.
async fn consume(
    cluster: &Cluster,
    topic: &str,
    group: &str,
    n: u64,
    outage: Option<&Outage>,
) -> Result<()> {
    let consumer = Consumer::new(
        cluster.clone(),
        ConsumerConfig::default()
            .with_group_id(group)
            .with_auto_offset_reset(OffsetReset::Earliest),
    )
    .kafka(|| "starting the consumer".into())?;
    consumer
        .subscribe([topic])
        .kafka(|| "joining the group".into())?;
    let bar = progress(Some(n), "consuming");
    let mut check = Check::new(n);
    let t1 = Instant::now();
    while check.read < n {
        let batch = tokio::time::timeout(RECV_TIMEOUT, consumer.recv_batch(4096))
            .await
            .map_err(|_| CliError::Timeout {
                what: format!("consuming (after {} of {n} records)", check.read),
                after: RECV_TIMEOUT,
            })?
            .kafka(|| "consuming".into())?;
        for r in &batch {
            check.record(r)?;
        }
        bar.inc(batch.len() as u64);
    }
    let elapsed = t1.elapsed();
    bar.finish_and_clear();
    consumer.commit().await.kafka(|| "committing".into())?;
    consumer.close().await;
    check.finish()?;
    write_out(&format!(
        "consumed {n} records as a group member in {elapsed:.2?}: {:.0} records/s\n",
        n as f64 / elapsed.as_secs_f64()
    ))?;
    write_out(&format!(
        "every record read back exactly once, in order per partition{}; offsets committed\n",
        if outage.is_some() {
            ", despite the broker outage"
        } else {
            ""
        }
    ))
}

/// The exactly-once, in-order check: each record's key is its number.
struct Check {
    n: u64,
    read: u64,
    seen: Vec<u64>,
    last: BTreeMap<i32, (i64, u64)>,
}

impl Check {
    fn new(n: u64) -> Check {
        Check {
            n,
            read: 0,
            seen: vec![0; n.div_ceil(64) as usize],
            last: BTreeMap::new(),
        }
    }

    fn record(&mut self, r: &ConsumerRecord) -> Result<()> {
        let at = || format!("partition {} offset {}", r.partition, r.offset);
        let i: u64 = r
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.parse().ok())
            .filter(|i| *i < self.n)
            .ok_or_else(|| {
                CliError::Failed(format!("{}: a record the demo did not write", at()))
            })?;
        let (word, bit) = ((i / 64) as usize, 1u64 << (i % 64));
        if self.seen[word] & bit != 0 {
            return Err(CliError::Failed(format!("{}: record {i} again", at())));
        }
        self.seen[word] |= bit;
        if let Some((offset, prev)) = self.last.insert(r.partition, (r.offset, i)) {
            if r.offset <= offset || i < prev {
                return Err(CliError::Failed(format!(
                    "{}: record {i} after record {prev} at offset {offset}: out of order",
                    at()
                )));
            }
        }
        self.read += 1;
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        let missing = self.n
            - self
                .seen
                .iter()
                .map(|w| u64::from(w.count_ones()))
                .sum::<u64>();
        if missing > 0 {
            return Err(CliError::Failed(format!("{missing} records missing")));
        }
        Ok(())
    }
}
