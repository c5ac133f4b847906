//! `kpax demo`: the main job on a machine with no broker. Starts an
//! in-process fake Kafka cluster (kpax-fake, the real wire protocol over
//! loopback TCP), produces records through kpax's idempotent producer,
//! reads them back with kpax's consumer as a group member, checks that
//! every record arrived once and in order per partition, and prints
//! throughput.

use crate::error::{CliError, KafkaContext, Result};
use crate::output::write_out;
use bytes::Bytes;
use clap::Args;
use kpax::consumer::OffsetReset;
use kpax::ProducerRecord;
use kpax::{ClientConfig, Cluster, Consumer, ConsumerConfig, Producer, ProducerConfig};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Partitions of the demo topic.
const PARTITIONS: i32 = 6;
/// Brokers of the fake cluster.
const BROKERS: usize = 3;
/// Longest wait for the next record while consuming.
const RECV_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags of `kpax demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Records to produce and consume.
    #[arg(default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    records: u64,
    /// Bytes of each record's value.
    #[arg(default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    value_bytes: u64,
}

/// Runs `kpax demo`.
///
/// # Errors
/// The fake cluster cannot start, a record is not delivered, or records
/// come back missing, repeated or out of order.
pub async fn run(args: DemoArgs) -> Result<()> {
    let n = args.records;
    let size = args.value_bytes as usize;
    let fake = kpax_fake::FakeCluster::new(BROKERS)
        .await
        .map_err(|e| CliError::Io {
            context: "starting the fake cluster".into(),
            source: e,
        })?;
    fake.create_topic("demo", PARTITIONS)
        .map_err(|e| CliError::Failed(format!("creating the demo topic: {e}")))?;
    write_out(&format!(
        "fake cluster of {BROKERS} brokers at {}\n",
        fake.bootstrap()
    ))?;
    let cluster =
        Cluster::new([fake.bootstrap()], ClientConfig::default()).kafka(|| "connecting".into())?;

    let producer = Producer::new(cluster.clone(), ProducerConfig::default())
        .kafka(|| "starting the producer".into())?;
    let value = Bytes::from(vec![b'v'; size]);
    let t0 = Instant::now();
    let mut pending = Vec::with_capacity(1024);
    for i in 0..n {
        let r = ProducerRecord::new("demo", value.clone()).with_key(format!("key-{}", i % 1000));
        pending.push(
            producer
                .send(r)
                .await
                .kafka(|| format!("sending record {i}"))?,
        );
        if pending.len() == 1024 {
            for f in pending.drain(..) {
                f.await.kafka(|| "delivering a record".into())?;
            }
        }
    }
    for f in pending {
        f.await.kafka(|| "delivering a record".into())?;
    }
    let produced = t0.elapsed();
    producer.close(Duration::from_secs(10)).await;
    write_out(&format!(
        "produced {n} records of {size} B in {:.2?}: {:.0} records/s (idempotent, acks=all)\n",
        produced,
        n as f64 / produced.as_secs_f64()
    ))?;

    let consumer = Consumer::new(
        cluster,
        ConsumerConfig::default()
            .with_group_id("kpax-demo")
            .with_auto_offset_reset(OffsetReset::Earliest),
    )
    .kafka(|| "starting the consumer".into())?;
    consumer
        .subscribe(["demo"])
        .kafka(|| "joining the group".into())?;
    let t1 = Instant::now();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for got in 0..n {
        let r = tokio::time::timeout(RECV_TIMEOUT, consumer.recv())
            .await
            .map_err(|_| CliError::Timeout {
                what: format!("consuming (after {got} of {n} records)"),
                after: RECV_TIMEOUT,
            })?
            .kafka(|| "consuming".into())?;
        if let Some(prev) = last.insert(r.partition, r.offset) {
            if r.offset != prev + 1 {
                return Err(CliError::Failed(format!(
                    "partition {}: offset {} after {prev}",
                    r.partition, r.offset
                )));
            }
        }
    }
    let consumed = t1.elapsed();
    let ends: i64 = last.values().map(|o| o + 1).sum();
    if ends != n as i64 {
        return Err(CliError::Failed(format!(
            "positions add up to {ends}, not {n}: records were skipped or repeated"
        )));
    }
    consumer.commit().await.kafka(|| "committing".into())?;
    consumer.close().await;
    write_out(&format!(
        "consumed {n} records as a group member in {:.2?}: {:.0} records/s\n",
        consumed,
        n as f64 / consumed.as_secs_f64()
    ))?;
    write_out("every record read back once, in order per partition; offsets committed\n")
}
