//! What every example needs: a cluster to talk to, and a topic on it.
//!
//! The brokers come from `KPAX_BROKERS` (`host:port,...`) when it is set;
//! otherwise an in-process fake cluster of three brokers (kpax-fake, the
//! real wire protocol over loopback TCP) is started, so each example runs
//! anywhere with `cargo run -p kpax --example NAME`.

#![allow(dead_code)] // each example uses part of this

use kpax::admin::{Admin, NewTopic};
use kpax::{ClientConfig, Cluster};
use kpax_fake::FakeCluster;

/// A cluster to run an example on; keeps the fake (if any) running.
pub struct Brokers {
    /// The bootstrap list.
    pub bootstrap: String,
    /// The fake cluster, when `KPAX_BROKERS` was not set.
    pub fake: Option<FakeCluster>,
}

impl Brokers {
    /// `KPAX_BROKERS`, or a fresh fake cluster of three brokers.
    pub async fn get() -> std::io::Result<Brokers> {
        if let Some(b) = std::env::var("KPAX_BROKERS").ok().filter(|b| !b.is_empty()) {
            return Ok(Brokers {
                bootstrap: b,
                fake: None,
            });
        }
        let fake = FakeCluster::new(3).await?;
        Ok(Brokers {
            bootstrap: fake.bootstrap(),
            fake: Some(fake),
        })
    }

    /// A client handle for these brokers.
    pub fn cluster(&self) -> kpax::Result<Cluster> {
        Cluster::new(self.bootstrap.split(','), ClientConfig::default())
    }
}

/// A topic name no earlier run used (examples may run on a real cluster).
pub fn unique(prefix: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{prefix}-{ms}")
}

/// Creates `name` with `partitions` partitions (replication factor 1 on
/// a fake, up to 3 on a real cluster) and waits until the cluster knows it.
pub async fn create_topic(cluster: &Cluster, name: &str, partitions: i32) -> kpax::Result<()> {
    let admin = Admin::new(cluster.clone());
    let rf = cluster.brokers().len().clamp(1, 3) as i16;
    for (topic, r) in admin
        .create_topics(&[NewTopic::new(name, partitions, rf)], false)
        .await?
    {
        r.map_err(|e| {
            eprintln!("creating {topic}: {e}");
            e
        })?;
    }
    await_leaders(cluster, name, partitions).await
}

/// Waits (up to 10 s) until `name` has `partitions` partitions with leaders.
pub async fn await_leaders(cluster: &Cluster, name: &str, partitions: i32) -> kpax::Result<()> {
    for _ in 0..100 {
        if cluster
            .partitions(name)
            .await
            .is_ok_and(|p| p.len() == partitions as usize)
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    cluster.partitions(name).await.map(|_| ())
}
