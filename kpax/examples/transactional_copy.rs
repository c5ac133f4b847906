//! Exactly once: a consume-transform-produce loop. Each batch read from
//! the input topic is transformed and written to the output topic in one
//! transaction, together with the input offsets it consumed; if anything
//! fails, the transaction is aborted and the batch is read again, so the
//! output (read read_committed) holds each input record's result once.
//!
//! ```text
//! cargo run -p kpax --example transactional_copy
//! KPAX_BROKERS=host:9092 cargo run -p kpax --example transactional_copy
//! ```

mod common;

use kpax::consumer::{IsolationLevel, OffsetReset, StartAt};
use kpax::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use std::collections::BTreeMap;
use std::time::Duration;

/// Copies `n` records from a new input topic to a new output topic, upper-
/// casing each value, in transactions; returns the output read back with
/// read_committed.
async fn run(
    brokers: &common::Brokers,
    n: usize,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let cluster = brokers.cluster()?;
    let input = common::unique("example-txn-in");
    let output = common::unique("example-txn-out");
    common::create_topic(&cluster, &input, 3).await?;
    common::create_topic(&cluster, &output, 3).await?;
    let plain = Producer::new(cluster.clone(), ProducerConfig::default())?;
    for i in 0..n {
        plain
            .send(
                ProducerRecord::new(input.clone(), format!("record {i}")).with_key(format!("{i}")),
            )
            .await?;
    }
    plain.flush().await;
    plain.close(Duration::from_secs(5)).await;

    let group = common::unique("example-txn-group");
    let consumer = Consumer::new(
        cluster.clone(),
        ConsumerConfig::default()
            .with_group_id(group)
            .with_auto_offset_reset(OffsetReset::Earliest)
            // offsets are committed by the transactions, not by the consumer
            .with_auto_commit(false)
            .with_isolation_level(IsolationLevel::ReadCommitted),
    )?;
    consumer.subscribe([input.clone()])?;
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig::default().with_transactional_id(common::unique("example-copier")),
    )?;
    producer.init_transactions().await?;

    let mut copied = 0;
    while copied < n {
        let batch =
            tokio::time::timeout(Duration::from_secs(30), consumer.recv_batch(500)).await??;
        producer.begin_transaction()?;
        let mut next: BTreeMap<kpax::TopicPartition, i64> = BTreeMap::new();
        for r in &batch {
            let value = String::from_utf8_lossy(r.value().unwrap_or_default()).to_uppercase();
            let mut out = ProducerRecord::new(output.clone(), value);
            if let Some(k) = r.key() {
                out = out.with_key(bytes::Bytes::copy_from_slice(k));
            }
            producer.send(out).await?;
            next.insert(
                kpax::TopicPartition::new(&*r.topic, r.partition),
                r.offset + 1,
            );
        }
        let group = consumer
            .group_metadata()
            .ok_or("the consumer is not in its group")?;
        let done = async {
            producer
                .send_offsets_to_transaction(next.clone(), &group)
                .await?;
            producer.commit_transaction().await
        };
        match done.await {
            Ok(()) => copied += batch.len(),
            Err(e) => {
                // Nothing of this batch is visible; read it again.
                eprintln!("transaction failed, aborting: {e}");
                producer.abort_transaction().await?;
                for tp in next.keys() {
                    consumer.seek(&tp.topic, tp.partition, StartAt::Committed);
                }
            }
        }
    }
    producer.close(Duration::from_secs(5)).await;
    consumer.close().await;
    println!("copied {copied} records in transactions");

    // Read the output as a downstream read_committed consumer does.
    let reader = Consumer::new(
        cluster,
        ConsumerConfig::default().with_isolation_level(IsolationLevel::ReadCommitted),
    )?;
    for p in 0..3 {
        reader.assign(
            [kpax::TopicPartition::new(output.clone(), p)],
            StartAt::Earliest,
        );
    }
    let mut values = Vec::new();
    while values.len() < n {
        let batch = tokio::time::timeout(Duration::from_secs(30), reader.recv_batch(500)).await??;
        values.extend(
            batch
                .iter()
                .map(|r| String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned()),
        );
    }
    reader.close().await;
    Ok(values)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let brokers = common::Brokers::get().await?;
    let out = run(&brokers, 1_000).await?;
    println!("read back {} records, e.g. {:?}", out.len(), out.first());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_output_holds_each_input_once_on_the_fake() {
        let brokers = super::common::Brokers::get().await.unwrap();
        let mut out = super::run(&brokers, 1_000).await.unwrap();
        out.sort();
        let mut want: Vec<String> = (0..1_000).map(|i| format!("RECORD {i}")).collect();
        want.sort();
        assert_eq!(out, want);
    }
}
