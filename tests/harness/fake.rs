//! kpax-fake, the in-process fake Kafka cluster, as a harness backend.
//!
//! The fake runs as tasks on the tokio runtime that started it (the
//! test's own runtime), so a test starts it with `Cluster::fake(n).await`
//! and it stops when the test returns.

use std::time::Duration;

use kpax_fake::{FakeCluster, FakeOptions};

/// Starts a fake cluster of `brokers` brokers (ids `1..=brokers`) on
/// random loopback ports, set up like the mock the harness starts: a
/// group's first rebalance does not wait for more members.
pub async fn start(brokers: i32) -> FakeCluster {
    assert!(brokers >= 1, "a fake cluster needs at least one broker");
    FakeCluster::with_options(FakeOptions {
        brokers: brokers as usize,
        initial_rebalance_delay: Duration::ZERO,
        ..FakeOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("kpax-fake: cannot start {brokers} brokers: {e}"))
}

/// Creates a topic on the fake (leaders spread over the brokers).
pub fn create_topic(fake: &FakeCluster, name: &str, partitions: i32) {
    fake.create_topic(name, partitions)
        .unwrap_or_else(|e| panic!("kpax-fake: create topic {name} ({partitions}): {e:?}"));
}
