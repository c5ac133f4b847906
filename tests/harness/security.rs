//! Shared by the security tests: client configs for the bundled cluster's
//! secured listeners, an unsecured OAUTHBEARER token, a produce-and-read
//! round trip over a listener, and the first connection error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Cluster as TestCluster, KafkaNodes};
use kpax::config::TlsConfig;
use kpax::consumer::StartAt;
use kpax::ProducerRecord;
use kpax::{ClientConfig, Cluster, Consumer, ConsumerConfig, Error, Producer, ProducerConfig};

pub fn base() -> ClientConfig {
    super::client::client_config()
}

pub fn tls(nodes: &KafkaNodes) -> TlsConfig {
    TlsConfig::default().with_ca_file(nodes.ca())
}

/// An unsecured JWS (`alg: none`) for Kafka's unsecured OAUTHBEARER
/// validator: subject `sub`, valid for an hour.
pub fn unsecured_jws(sub: &str) -> String {
    use std::fmt::Write as _;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let b64 = |s: &str| {
        // base64url without padding, written out to need no crate here
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let b = s.as_bytes();
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..=c.len() {
                let _ = out.write_char(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    format!(
        "{}.{}.",
        b64(r#"{"alg":"none"}"#),
        b64(&format!(
            r#"{{"sub":"{sub}","iat":{now},"exp":{}}}"#,
            now + 3600
        ))
    )
}

/// Produces three records over `config` (bootstrapped at `bootstrap`) to a
/// fresh topic and reads them back over the same listener.
pub async fn roundtrip(tc: &TestCluster, bootstrap: String, config: ClientConfig) {
    let topic = tc.topic(1).await;
    let cluster = Cluster::new([bootstrap.as_str()], config).expect("cluster");
    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).unwrap();
    for i in 0..3 {
        let meta = producer
            .send(ProducerRecord::new(&topic.name, format!("secret-{i}")).with_partition(0))
            .await
            .unwrap()
            .await
            .unwrap_or_else(|e| panic!("produce over {bootstrap}: {e}"));
        assert_eq!(meta.offset, i);
    }
    assert!(producer.close(Duration::from_secs(10)).await);
    let consumer = Consumer::new(cluster, ConsumerConfig::default()).unwrap();
    consumer.assign(
        [kpax::TopicPartition::new(topic.name.as_str(), 0)],
        StartAt::Earliest,
    );
    for i in 0..3 {
        let r = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("record in time")
            .unwrap();
        assert_eq!(r.value(), Some(format!("secret-{i}").as_bytes()));
    }
    consumer.close().await;
}

/// The first error a metadata request over `config` meets.
pub async fn connect_error(bootstrap: String, config: ClientConfig) -> Error {
    let cluster = Cluster::new([bootstrap.as_str()], config).expect("cluster");
    tokio::time::timeout(Duration::from_secs(20), cluster.refresh(None))
        .await
        .expect("an answer in time")
        .expect_err("connecting must fail")
}
