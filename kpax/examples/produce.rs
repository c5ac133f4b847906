//! Producing: send records as fast as the producer's buffer lets you
//! (`send` waits when the buffer is full: backpressure), and learn each
//! record's fate from its delivery future, awaited apart from the sends.
//!
//! ```text
//! cargo run -p kpax --example produce            # on an in-process fake cluster
//! KPAX_BROKERS=host:9092 cargo run -p kpax --example produce
//! ```

mod common;

use kpax::producer::DeliveryFuture;
use kpax::{Producer, ProducerConfig, ProducerRecord};
use std::time::{Duration, Instant};

/// Sends `n` keyed records to a new topic; returns how many were acknowledged.
async fn run(brokers: &common::Brokers, n: u64) -> Result<u64, Box<dyn std::error::Error>> {
    let cluster = brokers.cluster()?;
    let topic = common::unique("example-produce");
    common::create_topic(&cluster, &topic, 6).await?;

    // Idempotent with acks=all by default: retries never duplicate or reorder.
    let producer = Producer::new(
        cluster,
        ProducerConfig::default()
            .with_linger(Duration::from_millis(5))
            .with_buffer_memory(16 << 20),
    )?;

    // Deliveries are awaited by a task of their own, so that sending never
    // waits for a round trip; the bounded channel keeps memory bounded too.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<DeliveryFuture>(10_000);
    let deliveries = tokio::spawn(async move {
        let (mut ok, mut failed) = (0u64, 0u64);
        while let Some(delivery) = rx.recv().await {
            match delivery.await {
                Ok(_metadata) => ok += 1,
                Err(e) => {
                    // A record that failed is always reported, never dropped silently.
                    eprintln!("not delivered: {e}");
                    failed += 1;
                }
            }
        }
        (ok, failed)
    });

    let started = Instant::now();
    for i in 0..n {
        let record = ProducerRecord::new(topic.clone(), format!("value {i}"))
            .with_key(format!("user-{}", i % 100))
            .with_header("source", Some("example".into()));
        // Waits only while the buffer is full.
        let delivery = producer.send(record).await?;
        tx.send(delivery).await?;
    }
    drop(tx);
    let (ok, failed) = deliveries.await?;
    let elapsed = started.elapsed();
    println!(
        "{ok} records acknowledged, {failed} failed, in {elapsed:.2?} ({:.0} records/s)",
        ok as f64 / elapsed.as_secs_f64()
    );
    let stats = producer.stats();
    println!(
        "{} batches, {} bytes, {} retries",
        stats.batches_sent, stats.bytes_sent, stats.retries
    );
    // Sends whatever is still buffered, within the deadline.
    producer.close(Duration::from_secs(10)).await;
    Ok(ok)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let brokers = common::Brokers::get().await?;
    run(&brokers, 100_000).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_record_is_acknowledged_on_the_fake() {
        let brokers = super::common::Brokers::get().await.unwrap();
        assert_eq!(super::run(&brokers, 5_000).await.unwrap(), 5_000);
    }
}
