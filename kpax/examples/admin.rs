//! Admin: create a topic, describe it (partitions, leaders, replicas), and
//! read a consumer group's lag on it.
//!
//! ```text
//! cargo run -p kpax --example admin
//! KPAX_BROKERS=host:9092 cargo run -p kpax --example admin
//! ```

mod common;

use kpax::admin::{Admin, NewTopic};
use kpax::consumer::OffsetReset;
use kpax::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use std::time::Duration;

/// Creates a topic of 3 partitions, writes `n` records, lets a group read
/// `n / 2` of them and commit; returns the group's total lag.
async fn run(brokers: &common::Brokers, n: usize) -> Result<i64, Box<dyn std::error::Error>> {
    let cluster = brokers.cluster()?;
    let admin = Admin::new(cluster.clone());
    let topic = common::unique("example-admin");

    // Create: one result per topic (the others still go ahead if one fails).
    let rf = cluster.brokers().len().clamp(1, 3) as i16;
    let created = admin
        .create_topics(
            &[NewTopic::new(topic.clone(), 3, rf).with_config("retention.ms", "3600000")],
            false,
        )
        .await?;
    for (name, result) in created {
        result?;
        println!("created {name}");
    }
    common::await_leaders(&cluster, &topic, 3).await?;

    // Describe.
    for (name, meta) in admin.list_topics().await? {
        if name != topic {
            continue;
        }
        for p in meta?.partitions {
            println!(
                "{name}-{}: leader {}, replicas {:?}, in sync {:?}",
                p.partition, p.leader, p.replicas, p.isr
            );
        }
    }

    // Some records, and a group that reads half of them.
    let producer = Producer::new(cluster.clone(), ProducerConfig::default())?;
    for i in 0..n {
        producer
            .send(ProducerRecord::new(topic.clone(), format!("{i}")).with_key(format!("{i}")))
            .await?;
    }
    producer.flush().await;
    producer.close(Duration::from_secs(5)).await;
    let group = common::unique("example-admin-group");
    let consumer = Consumer::new(
        cluster.clone(),
        ConsumerConfig::default()
            .with_group_id(group.clone())
            .with_auto_commit(false)
            .with_auto_offset_reset(OffsetReset::Earliest),
    )?;
    consumer.subscribe([topic.clone()])?;
    let mut read = 0;
    while read < n / 2 {
        let batch =
            tokio::time::timeout(Duration::from_secs(30), consumer.recv_batch(n / 2 - read))
                .await??;
        read += batch.len();
        consumer.commit_records(&batch).await?;
    }
    consumer.close().await;

    // Lag: committed offsets against the partitions' end offsets.
    let mut total = 0;
    for (tp, lag) in admin.group_lag(&group, Some(&[topic.as_str()])).await? {
        let lag = lag?;
        println!(
            "{tp}: committed {:?}, end {}, lag {:?}",
            lag.committed, lag.end_offset, lag.lag
        );
        total += lag.lag.unwrap_or(lag.end_offset);
    }
    println!("group {group} is {total} records behind on {topic}");
    admin.delete_topics(&[topic.as_str()]).await?;
    Ok(total)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let brokers = common::Brokers::get().await?;
    run(&brokers, 1_000).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lag_is_what_the_group_did_not_read_on_the_fake() {
        let brokers = super::common::Brokers::get().await.unwrap();
        assert_eq!(super::run(&brokers, 1_000).await.unwrap(), 500);
    }
}
