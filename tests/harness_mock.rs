//! The harness against librdkafka's in-process mock cluster: librdkafka
//! round trips, and fault injection the harness must make observable.

mod harness;

use std::time::Duration;

use harness::interop::{self, numbered};
use harness::{api_key, error_code, Cluster, Codec, ProduceOptions, Until};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_three_brokers_roundtrip_1000_records() {
    let cluster = Cluster::mock(3);
    harness::check_roundtrip(&cluster, 3, 1000, Codec::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_one_broker_roundtrip_1000_records() {
    let cluster = Cluster::mock(1);
    harness::check_roundtrip(&cluster, 3, 1000, Codec::Lz4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_roundtrip_every_codec() {
    let cluster = Cluster::mock(3);
    for codec in Codec::ALL {
        harness::check_roundtrip(&cluster, 3, 200, codec).await;
    }
}

fn short_timeout(ms: u64) -> ProduceOptions {
    ProduceOptions {
        message_timeout: Duration::from_millis(ms),
        ..ProduceOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_broker_down_fails_its_partition_until_up() {
    let cluster = Cluster::mock(3);
    let mock = cluster.faults();
    let topic = cluster.topic(3).await;
    // Pin leaders so that the broker taken down leads exactly partition 0.
    for (p, broker) in [(0, 2), (1, 1), (2, 3)] {
        mock.move_leader(&topic.name, p, Some(broker));
    }
    let leaders = interop::leaders(cluster.bootstrap(), &topic.name)
        .await
        .expect("metadata");
    assert_eq!(leaders.get(&0), Some(&2), "leaders: {leaders:?}");

    mock.broker_down(2);
    let one = numbered(1);
    let to_down = interop::produce(
        cluster.bootstrap(),
        &topic.name,
        &one,
        |_| 0,
        &short_timeout(1500),
    )
    .await;
    match to_down {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)) => {}
        other => panic!("produce to a partition led by a down broker: {other:?}"),
    }
    // The other brokers still serve their partitions.
    let to_up = interop::produce(
        cluster.bootstrap(),
        &topic.name,
        &one,
        |_| 1,
        &short_timeout(5000),
    )
    .await
    .expect("produce to a partition led by a live broker");
    assert_eq!(to_up[0].partition, 1);

    mock.broker_up(2);
    let after = interop::produce(
        cluster.bootstrap(),
        &topic.name,
        &one,
        |_| 0,
        &short_timeout(5000),
    )
    .await
    .expect("produce after broker_up");
    assert_eq!(
        after[0],
        harness::Delivered {
            partition: 0,
            offset: 0
        }
    );

    let read = interop::consume(
        cluster.bootstrap(),
        &topic.name,
        3,
        Until::End,
        Duration::from_secs(10),
    )
    .await
    .expect("consume");
    assert_eq!(read[&0].len(), 1, "the timed-out record was never written");
    assert_eq!(read[&1].len(), 1);
    assert_eq!(read[&2].len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_pushed_produce_errors_are_observed() {
    let cluster = Cluster::mock(3);
    let mock = cluster.faults();
    let topic = cluster.topic(3).await;
    let one = numbered(1);
    mock.track_requests();

    // A non-retriable error fails the record with exactly that error.
    mock.request_errors(api_key::PRODUCE, &[error_code::TOPIC_AUTHORIZATION_FAILED]);
    let failed = interop::produce(
        cluster.bootstrap(),
        &topic.name,
        &one,
        |_| 0,
        &short_timeout(5000),
    )
    .await;
    match failed {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)) => {}
        other => panic!("produce with a pushed TOPIC_AUTHORIZATION_FAILED: {other:?}"),
    }
    assert_eq!(
        mock.count_requests(api_key::PRODUCE),
        1,
        "one Produce request, answered with the error"
    );

    // Retriable errors are retried through: two errors, then success.
    mock.clear_requests();
    mock.request_errors(
        api_key::PRODUCE,
        &[
            error_code::NOT_ENOUGH_REPLICAS,
            error_code::NOT_ENOUGH_REPLICAS,
        ],
    );
    let delivered = interop::produce(
        cluster.bootstrap(),
        &topic.name,
        &one,
        |_| 0,
        &short_timeout(5000),
    )
    .await
    .expect("produce through two retriable errors");
    assert_eq!(delivered[0].partition, 0);
    assert_eq!(
        mock.count_requests(api_key::PRODUCE),
        3,
        "two failed attempts and one that succeeded"
    );

    // A dropped connection is retried too.
    mock.clear_requests();
    mock.disconnect_on(api_key::PRODUCE, 1);
    interop::produce(
        cluster.bootstrap(),
        &topic.name,
        &one,
        |_| 0,
        &short_timeout(5000),
    )
    .await
    .expect("produce through a dropped connection");
    assert!(
        mock.count_requests(api_key::PRODUCE) >= 2,
        "the dropped request was sent again"
    );

    let read = interop::consume(
        cluster.bootstrap(),
        &topic.name,
        3,
        Until::End,
        Duration::from_secs(10),
    )
    .await
    .expect("consume");
    assert_eq!(read[&0].len(), 2, "only the two successful produces wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_leader_move_is_followed() {
    let cluster = Cluster::mock(3);
    let mock = cluster.faults();
    let topic = cluster.topic(1).await;
    mock.move_leader(&topic.name, 0, Some(1));
    mock.track_requests();
    let one = numbered(1);
    interop::produce(
        cluster.bootstrap(),
        &topic.name,
        &one,
        |_| 0,
        &short_timeout(5000),
    )
    .await
    .expect("produce to leader 1");
    mock.move_leader(&topic.name, 0, Some(3));
    assert_eq!(
        interop::leaders(cluster.bootstrap(), &topic.name)
            .await
            .expect("metadata")[&0],
        3
    );
    interop::produce(
        cluster.bootstrap(),
        &topic.name,
        &one,
        |_| 0,
        &short_timeout(5000),
    )
    .await
    .expect("produce to leader 3");
    let produce_brokers: Vec<i32> = mock
        .requests()
        .iter()
        .filter(|r| r.api_key == api_key::PRODUCE)
        .map(|r| r.broker)
        .collect();
    assert_eq!(
        produce_brokers,
        vec![1, 3],
        "each Produce went to the leader of its time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_request_delay_and_api_narrowing_still_serve() {
    let cluster = Cluster::mock(1);
    let mock = cluster.faults();
    let topic = cluster.topic(1).await;
    mock.round_trip_time(-1, Duration::from_millis(100));
    mock.narrow_api_versions(api_key::PRODUCE, 3, 7);
    mock.narrow_api_versions(api_key::FETCH, 4, 11);
    harness::check_roundtrip(&cluster, 2, 50, Codec::Snappy).await;
    let delivered = interop::produce(
        cluster.bootstrap(),
        &topic.name,
        &numbered(3),
        |_| 0,
        &short_timeout(5000),
    )
    .await
    .expect("produce under narrowed versions");
    assert_eq!(delivered.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_group_coordinator_move_is_observed() {
    let cluster = Cluster::mock(3);
    let mock = cluster.faults();
    let topic = cluster.topic(1).await;
    let group = cluster.group_id();
    mock.track_requests();
    for coordinator in [2, 3] {
        mock.move_group_coordinator(&group, coordinator);
        mock.clear_requests();
        let committed = interop::committed(cluster.bootstrap(), &group, &topic.name, 1)
            .await
            .expect("OffsetFetch through the coordinator");
        assert_eq!(committed, vec![None], "nothing committed yet");
        let fetched_at: Vec<i32> = mock
            .requests()
            .iter()
            .filter(|r| r.api_key == api_key::OFFSET_FETCH)
            .map(|r| r.broker)
            .collect();
        assert!(
            !fetched_at.is_empty() && fetched_at.iter().all(|&b| b == coordinator),
            "OffsetFetch went to {fetched_at:?}, coordinator is {coordinator}"
        );
    }
}
