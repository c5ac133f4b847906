//! The harness against Apache Kafka, the broker of record: the 3-node 4.x
//! KRaft cluster (`KPAX_KAFKA`) and the 1-node 3.9 one (`KPAX_KAFKA_3_9`)
//! that `scripts/kafka.sh start` runs and `.ci/run` starts. Outside CI,
//! without them, these tests print why they skip.

mod harness;

use std::time::Duration;

use harness::interop::{self, numbered};
use harness::{Cluster, Codec, ProduceOptions, Until};

async fn roundtrip_1000_records(cluster: Cluster) {
    harness::check_roundtrip(&cluster, 3, 1000, Codec::None).await;
}

async fn roundtrip_every_codec(cluster: Cluster) {
    for codec in Codec::ALL {
        harness::check_roundtrip(&cluster, 3, 200, codec).await;
    }
}

/// Topics are created with the cluster's replication factor (3 on the
/// 3-node cluster), serve records, and are gone after deletion.
async fn topics_are_created_replicated_and_deleted(cluster: Cluster) {
    let topic = cluster.topic(2).await;
    let name = topic.name.clone();
    let leaders = interop::leaders(cluster.bootstrap(), &name)
        .await
        .expect("metadata");
    assert_eq!(leaders.len(), 2, "partitions of {name}: {leaders:?}");
    let kpax = cluster.kpax();
    let meta = kpax.topic(&name).await.expect("kpax metadata");
    let nodes = cluster.broker_count().expect("node count");
    for p in &meta.partitions {
        assert_eq!(
            p.replicas.len() as i32,
            nodes.min(3),
            "replicas of {name}/{}",
            p.partition
        );
    }
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
    let mut left = None;
    for _ in 0..50 {
        let leaders = interop::leaders(cluster.bootstrap(), &name)
            .await
            .expect("metadata");
        if leaders.is_empty() {
            return;
        }
        left = Some(leaders);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} still has partitions 5 s after delete: {left:?}");
}

macro_rules! on_both {
    ($($body:ident),+ $(,)?) => {
        $(mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn kafka() {
                let Some(c) = super::Cluster::kafka() else { return };
                super::$body(c).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn kafka_3_9() {
                let Some(c) = super::Cluster::kafka_3_9() else { return };
                super::$body(c).await;
            }
        })+
    };
}

on_both!(
    roundtrip_1000_records,
    roundtrip_every_codec,
    topics_are_created_replicated_and_deleted
);
