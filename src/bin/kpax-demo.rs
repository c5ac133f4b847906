//! `kpax-demo`: the main job on a machine with no broker. Starts an
//! in-process fake Kafka cluster (`kpax-fake`, the real wire protocol over
//! loopback TCP), produces records through kpax's producer, reads them back
//! with kpax's consumer as a group member, checks that every record arrived
//! once and in order per partition, and prints throughput.
//!
//! Usage: `kpax-demo [RECORDS] [VALUE_BYTES]` (defaults 200000 and 100).

use bytes::Bytes;
use kpax::consumer::{Consumer, ConsumerConfig, OffsetReset};
use kpax::producer::{Producer, ProducerConfig, ProducerRecord};
use kpax::{ClientConfig, Cluster};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 6;

fn arg(i: usize, default: usize) -> Result<usize, String> {
    match std::env::args().nth(i) {
        None => Ok(default),
        Some(a) => a
            .parse()
            .map_err(|_| format!("argument {i} must be a number, got {a:?}")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kpax-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let n = arg(1, 200_000)?;
    let size = arg(2, 100)?;
    let fake = kpax_fake::FakeCluster::new(3)
        .await
        .map_err(|e| format!("starting the fake cluster: {e}"))?;
    fake.create_topic("demo", PARTITIONS)
        .map_err(|e| format!("creating the topic: {e}"))?;
    println!("fake cluster of 3 brokers at {}", fake.bootstrap());
    let cluster =
        Cluster::new([fake.bootstrap()], ClientConfig::default()).map_err(|e| e.to_string())?;

    let producer =
        Producer::new(cluster.clone(), ProducerConfig::default()).map_err(|e| e.to_string())?;
    let value = Bytes::from(vec![b'v'; size]);
    let t0 = Instant::now();
    let mut pending = Vec::with_capacity(1024);
    for i in 0..n {
        let r = ProducerRecord::new("demo", value.clone()).with_key(format!("key-{}", i % 1000));
        pending.push(producer.send(r).await.map_err(|e| e.to_string())?);
        if pending.len() == 1024 {
            for f in pending.drain(..) {
                f.await.map_err(|e| e.to_string())?;
            }
        }
    }
    for f in pending {
        f.await.map_err(|e| e.to_string())?;
    }
    let produced = t0.elapsed();
    producer.close(Duration::from_secs(10)).await;
    println!(
        "produced {n} records of {size} B in {:.2?}: {:.0} records/s (idempotent, acks=all)",
        produced,
        n as f64 / produced.as_secs_f64()
    );

    let consumer = Consumer::new(
        cluster,
        ConsumerConfig::default()
            .with_group_id("kpax-demo")
            .with_auto_offset_reset(OffsetReset::Earliest),
    )
    .map_err(|e| e.to_string())?;
    consumer.subscribe(["demo"]).map_err(|e| e.to_string())?;
    let t1 = Instant::now();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for got in 0..n {
        let r = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .map_err(|_| format!("no record for 30 s after {got} of {n}"))?
            .map_err(|e| e.to_string())?;
        if let Some(prev) = last.insert(r.partition, r.offset) {
            if r.offset != prev + 1 {
                return Err(format!(
                    "partition {}: offset {} after {prev}",
                    r.partition, r.offset
                ));
            }
        }
    }
    let consumed = t1.elapsed();
    let ends: i64 = last.values().map(|o| o + 1).sum();
    if ends != n as i64 {
        return Err(format!(
            "positions add up to {ends}, not {n}: records were skipped or repeated"
        ));
    }
    consumer.commit().await.map_err(|e| e.to_string())?;
    consumer.close().await;
    println!(
        "consumed {n} records as a group member in {:.2?}: {:.0} records/s",
        consumed,
        n as f64 / consumed.as_secs_f64()
    );
    println!("every record read back once, in order per partition; offsets committed");
    Ok(())
}
