//! A consumer group: members share a topic's partitions, commit what they
//! processed, and hear about rebalances through a listener (here: commit
//! before partitions are taken away, so the next owner starts where this
//! member stopped).
//!
//! ```text
//! cargo run -p kpax --example consumer_group
//! KPAX_BROKERS=host:9092 cargo run -p kpax --example consumer_group
//! ```

mod common;

use kpax::consumer::{ListenerFuture, OffsetReset, RebalanceListener, TopicPartition};
use kpax::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Prints assignments and commits before partitions are revoked.
#[derive(Default)]
struct CommitOnRevoke {
    rebalances: AtomicUsize,
}

impl RebalanceListener for CommitOnRevoke {
    fn on_partitions_assigned<'a>(
        &'a self,
        _consumer: &'a Consumer,
        partitions: &'a BTreeSet<TopicPartition>,
    ) -> ListenerFuture<'a> {
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move { println!("assigned: {partitions:?}") })
    }

    fn on_partitions_revoked<'a>(
        &'a self,
        consumer: &'a Consumer,
        partitions: &'a BTreeSet<TopicPartition>,
    ) -> ListenerFuture<'a> {
        Box::pin(async move {
            println!("revoked: {partitions:?}; committing first");
            if let Err(e) = consumer.commit().await {
                eprintln!("commit before revoke failed: {e}");
            }
        })
    }
}

/// Sends records `from..to` (keyed, so they spread over the partitions).
async fn produce(producer: &Producer, topic: &str, from: usize, to: usize) -> kpax::Result<()> {
    let mut deliveries = Vec::with_capacity(to - from);
    for i in from..to {
        let r = ProducerRecord::new(topic, format!("{i}")).with_key(format!("key-{i}"));
        deliveries.push(producer.send(r).await?);
    }
    for d in deliveries {
        d.await?;
    }
    Ok(())
}

/// Reads with `members` until every record `0..n` has been seen, adding
/// what each member read to `counts`.
async fn read_all(
    members: &[&Consumer],
    seen: &mut HashSet<String>,
    counts: &mut [usize],
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < n {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("only {} of {n} records within 60 s", seen.len()).into());
        }
        poll(members, seen, counts).await?;
    }
    Ok(())
}

/// Reads one batch from each member in turn (waiting at most 200 ms for
/// each, so an idle member does not hold up the others) and commits it.
async fn poll(
    members: &[&Consumer],
    seen: &mut HashSet<String>,
    counts: &mut [usize],
) -> Result<(), Box<dyn std::error::Error>> {
    for (i, m) in members.iter().enumerate() {
        let Ok(batch) = tokio::time::timeout(Duration::from_millis(200), m.recv_batch(500)).await
        else {
            continue;
        };
        let batch = batch?;
        counts[i] += batch.len();
        for r in &batch {
            seen.insert(String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned());
        }
        // Commit what was processed: the records of this batch.
        m.commit_records(&batch).await?;
    }
    Ok(())
}

/// Produces half of `n` records and reads them with one member of a
/// group; a second member joins (the group rebalances: the first member's
/// listener commits before giving partitions up); then the second half is
/// produced and both members read it. Returns what each member read.
async fn run(
    brokers: &common::Brokers,
    n: usize,
) -> Result<(usize, usize), Box<dyn std::error::Error>> {
    let cluster = brokers.cluster()?;
    let topic = common::unique("example-group");
    common::create_topic(&cluster, &topic, 4).await?;
    let producer = Producer::new(cluster.clone(), ProducerConfig::default())?;

    let group = common::unique("example-group-members");
    let member = |listener: Arc<CommitOnRevoke>| {
        Consumer::new(
            cluster.clone(),
            ConsumerConfig::default()
                .with_group_id(group.clone())
                .with_auto_offset_reset(OffsetReset::Earliest)
                // commits are this example's job (below and in the listener)
                .with_auto_commit(false)
                .with_rebalance_listener(listener),
        )
    };
    let first_listener = Arc::new(CommitOnRevoke::default());
    let first = member(first_listener.clone())?;
    first.subscribe([topic.clone()])?;
    let mut seen = HashSet::new();
    let mut counts = [0, 0];
    produce(&producer, &topic, 0, n / 2).await?;
    read_all(&[&first], &mut seen, &mut counts[..1], n / 2).await?;

    let second = member(Arc::new(CommitOnRevoke::default()))?;
    second.subscribe([topic.clone()])?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while second.assignment().is_empty() || first.assignment().len() != 2 {
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "the group did not rebalance within 30 s: {:?} / {:?}",
                first.assignment(),
                second.assignment()
            )
            .into());
        }
        // Members take part in a rebalance while they are being read from.
        poll(&[&first, &second], &mut seen, &mut counts).await?;
    }
    produce(&producer, &topic, n / 2, n).await?;
    read_all(&[&first, &second], &mut seen, &mut counts, n).await?;
    println!(
        "first member read {}, second {}; first member's assignments: {}",
        counts[0],
        counts[1],
        first_listener.rebalances.load(Ordering::Relaxed)
    );
    producer.close(Duration::from_secs(5)).await;
    first.close().await;
    second.close().await;
    Ok((counts[0], counts[1]))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let brokers = common::Brokers::get().await?;
    run(&brokers, 2_000).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_members_read_every_record_on_the_fake() {
        let brokers = super::common::Brokers::get().await.unwrap();
        let (a, b) = super::run(&brokers, 2_000).await.unwrap();
        // Every record was seen (run returns only then); after the
        // rebalance the second member read its two partitions' share, and
        // nothing was read twice: each batch was committed.
        assert!(b > 0, "the second member read nothing");
        assert_eq!(a + b, 2_000, "{a} + {b}: records read twice");
    }
}
