//! Testing your own code with kpax-fake: an in-process cluster with the
//! real wire protocol, where a test can inject the faults production will
//! bring (errors, lost connections, a broker going down) and check that
//! the application does the right thing.
//!
//! Here the application is `place_order`, which must not lose an order
//! when a leader moves, and must report (not swallow) an order Kafka
//! refuses. Run the tests with `cargo test -p kpax --example fake_with_fault`.

use kpax::proto::generated::{ApiKey, ErrorCode};
use kpax::{ClientConfig, Cluster, Producer, ProducerConfig, ProducerRecord};
use kpax_fake::FakeCluster;
use std::time::Duration;

/// The application code under test: writes one order, returns its offset.
async fn place_order(producer: &Producer, order_id: u32) -> kpax::Result<(i32, i64)> {
    let record = ProducerRecord::new("orders", format!("order {order_id}"))
        .with_key(format!("customer-{}", order_id % 10));
    let delivered = producer.send(record).await?.await?;
    Ok((delivered.partition, delivered.offset))
}

/// A fake cluster with an `orders` topic, and a producer on it.
async fn setup() -> (FakeCluster, Producer) {
    let fake = FakeCluster::new(3).await.expect("start the fake cluster");
    fake.create_topic("orders", 3).expect("create orders");
    let cluster = Cluster::new([fake.bootstrap()], ClientConfig::default()).expect("cluster");
    let producer = Producer::new(
        cluster,
        ProducerConfig::default().with_delivery_timeout(Duration::from_secs(10)),
    )
    .expect("producer");
    (fake, producer)
}

#[tokio::main]
async fn main() {
    let (fake, producer) = setup().await;
    // The leader of every partition refuses the next three writes, as
    // after a leader election the client has not heard of yet.
    fake.fail_next(ApiKey::Produce, ErrorCode::NOT_LEADER_OR_FOLLOWER, 3);
    let (p, offset) = place_order(&producer, 7)
        .await
        .expect("the order is placed");
    println!(
        "order 7 written to orders-{p} at offset {offset} after {} retries",
        producer.stats().retries
    );
    producer.close(Duration::from_secs(5)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_order_survives_its_leader_going_down() {
        let (fake, producer) = setup().await;
        let (p, _) = place_order(&producer, 1).await.unwrap();
        // The leader of the order's partition dies; the controller moves
        // the leadership to another broker.
        let leader = fake.leader("orders", p).unwrap();
        fake.broker_down(leader).await;
        let other = (1..=3).find(|b| *b != leader).unwrap();
        fake.move_leader("orders", p, other).unwrap();
        // Order 11 has the same key as order 1: same partition.
        let (p2, offset) = place_order(&producer, 11).await.unwrap();
        assert_eq!(p2, p);
        assert_eq!(fake.high_watermark("orders", p), Some(offset + 1));
        assert_eq!(fake.leader("orders", p), Some(other));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retriable_error_is_retried_and_written_once() {
        let (fake, producer) = setup().await;
        fake.fail_next(ApiKey::Produce, ErrorCode::NOT_LEADER_OR_FOLLOWER, 2);
        let (p, offset) = place_order(&producer, 3).await.unwrap();
        assert_eq!(offset, 0);
        assert_eq!(fake.high_watermark("orders", p), Some(1), "written once");
        assert!(producer.stats().retries >= 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_order_is_reported_not_lost() {
        let (fake, producer) = setup().await;
        fake.fail_next(ApiKey::Produce, ErrorCode::TOPIC_AUTHORIZATION_FAILED, 1);
        let e = place_order(&producer, 5).await.unwrap_err();
        assert!(e.to_string().contains("TOPIC_AUTHORIZATION_FAILED"), "{e}");
        // The next order goes through.
        place_order(&producer, 6).await.unwrap();
    }
}
