//! kpax clients for a test cluster, with the settings every integration
//! test uses (short timeouts and backoffs, so faults show quickly), and the
//! numbered records most tests produce and check.

use super::Cluster;
use kpax::producer::{Producer, ProducerConfig, ProducerRecord};
use kpax::ClientConfig;
use std::time::Duration;

/// Client settings for tests: 10 s requests, 2 s connects, fast reconnects,
/// metadata at most 5 s old.
pub fn client_config() -> ClientConfig {
    ClientConfig::default()
        .with_request_timeout(Duration::from_secs(10))
        .with_connect_timeout(Duration::from_secs(2))
        .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .with_metadata_max_age(Duration::from_secs(5))
}

impl Cluster {
    /// Sets group configs of `group` (e.g. `share.auto.offset.reset`) with
    /// kpax's admin; panics naming the config the broker refused.
    pub async fn set_group_configs(&self, group: &str, configs: &[(&str, &str)]) {
        use kpax::admin::{Admin, AlterConfig, ConfigResource};
        let changes = configs
            .iter()
            .map(|(k, v)| AlterConfig::set(*k, *v))
            .collect();
        let r = Admin::new(self.kpax())
            .incremental_alter_configs(&[(ConfigResource::Group(group.into()), changes)], false)
            .await
            .expect("IncrementalAlterConfigs");
        for (res, out) in r {
            out.unwrap_or_else(|e| panic!("{res} {configs:?}: {e}"));
        }
    }

    /// A kpax cluster handle on this test cluster, with [`client_config`].
    pub fn kpax(&self) -> kpax::Cluster {
        kpax::Cluster::new([self.bootstrap()], client_config()).expect("kpax cluster")
    }

    /// Produces `rec-{from..to}` round-robin over `partitions` (record `i`
    /// to partition `i % partitions`, timestamp `ts + i` when given) with
    /// kpax's default (idempotent) producer; returns once every record is
    /// acknowledged.
    pub async fn produce_numbered(
        &self,
        topic: &str,
        partitions: i32,
        from: usize,
        to: usize,
        ts: Option<i64>,
    ) {
        let p = Producer::new(self.kpax(), ProducerConfig::default()).expect("producer");
        let mut fs = Vec::new();
        for i in from..to {
            let mut r = ProducerRecord::new(topic, format!("rec-{i}"))
                .with_partition(i as i32 % partitions);
            if let Some(t) = ts {
                r = r.with_timestamp(t + i as i64);
            }
            fs.push(p.send(r).await.expect("send"));
        }
        for f in fs {
            f.await.expect("delivered");
        }
        assert!(
            p.close(Duration::from_secs(10)).await,
            "producer closed with records unsent"
        );
    }
}
