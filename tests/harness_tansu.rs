//! The harness against tansu, a Kafka-protocol broker that is not
//! librdkafka's, started by `.ci/run` and named by `KPAX_TANSU`. Outside CI,
//! without `KPAX_TANSU`, these tests print why they skip.

mod harness;

use std::time::Duration;

use harness::interop::{self, numbered};
use harness::{Cluster, Codec, ProduceOptions, Until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_roundtrip_1000_records() {
    let Some(cluster) = Cluster::tansu() else {
        return;
    };
    harness::check_roundtrip(&cluster, 3, 1000, Codec::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_roundtrip_every_codec() {
    let Some(cluster) = Cluster::tansu() else {
        return;
    };
    for codec in Codec::ALL {
        harness::check_roundtrip(&cluster, 3, 200, codec).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_topics_are_created_and_deleted() {
    let Some(cluster) = Cluster::tansu() else {
        return;
    };
    let topic = cluster.topic(2).await;
    let name = topic.name.clone();
    let leaders = interop::leaders(cluster.bootstrap(), &name)
        .await
        .expect("metadata");
    assert_eq!(leaders.len(), 2, "partitions of {name}: {leaders:?}");
    let delivered = interop::produce(
        cluster.bootstrap(),
        &name,
        &numbered(4),
        |i| (i % 2) as i32,
        &ProduceOptions::default(),
    )
    .await
    .expect("produce");
    assert_eq!(delivered.len(), 4);
    let read = interop::consume(
        cluster.bootstrap(),
        &name,
        2,
        Until::Count(4),
        Duration::from_secs(10),
    )
    .await
    .expect("consume");
    assert_eq!(read.values().map(Vec::len).sum::<usize>(), 4);

    drop(topic);
    let leaders = interop::leaders(cluster.bootstrap(), &name)
        .await
        .expect("metadata");
    assert!(
        leaders.is_empty(),
        "{name} still has partitions after delete: {leaders:?}"
    );
}
