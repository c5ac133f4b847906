//! The harness against any Kafka cluster named by `KPAX_BROKERS`
//! (`host:port[,host:port..]`), e.g. a local Apache Kafka or Redpanda.
//! Without it these tests print why they skip, except under CI, where it is
//! a failure; `.ci/run` points `KPAX_BROKERS` at its tansu unless it is
//! already set, so CI runs this generic path too.

mod harness;

use harness::{Cluster, Codec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_roundtrip_1000_records() {
    let Some(cluster) = Cluster::external() else {
        return;
    };
    harness::check_roundtrip(&cluster, 3, 1000, Codec::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_roundtrip_every_codec() {
    let Some(cluster) = Cluster::external() else {
        return;
    };
    for codec in Codec::ALL {
        harness::check_roundtrip(&cluster, 3, 200, codec).await;
    }
}
