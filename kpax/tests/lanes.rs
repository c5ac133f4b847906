//! A broker's connection lanes: a request the broker holds on purpose (a
//! long-polling Fetch, a JoinGroup waiting for the rebalance) does not hold
//! up the requests on the other lanes. Against kpax's fake cluster, which,
//! like Kafka, answers one request at a time per connection; its `delay`
//! fault holds the responses.

use kpax::broker::{Lane, SendOptions};
use kpax::consumer::OffsetReset;
use kpax::proto::generated::join_group::JoinGroupRequestProtocol;
use kpax::proto::generated::{
    ApiKey, FetchRequest, HeartbeatRequest, JoinGroupRequest, MetadataRequest,
};
use kpax::{
    Broker, ClientConfig, Cluster, Consumer, ConsumerConfig, Producer, ProducerConfig,
    ProducerRecord,
};
use kpax_fake::FakeCluster;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOLD: Duration = Duration::from_secs(2);

async fn wait_for_request(fake: &FakeCluster, api: ApiKey, count: usize) {
    let until = Instant::now() + Duration::from_secs(5);
    while fake.request_count(api) < count {
        assert!(Instant::now() < until, "no {api:?} reached the broker");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn heartbeat() -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id("lanes".into())
        .with_generation_id(1)
        .with_member_id("nobody".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_is_answered_while_a_fetch_long_polls() {
    let fake = FakeCluster::new(1).await.unwrap();
    let broker = Broker::new(fake.bootstrap(), None, Arc::new(ClientConfig::default()));
    broker.api_versions().await.unwrap();
    fake.delay(ApiKey::Fetch, HOLD);
    let b = broker.clone();
    let fetch =
        tokio::spawn(async move { b.send(&FetchRequest::default().with_max_wait_ms(100)).await });
    wait_for_request(&fake, ApiKey::Fetch, 1).await;
    broker.send(&heartbeat()).await.unwrap();
    assert!(!fetch.is_finished(), "the heartbeat waited for the fetch");
    broker
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    assert!(!fetch.is_finished(), "metadata waited for the fetch");
    fetch.await.unwrap().unwrap();
}

/// The control: on one connection, the held fetch holds up what follows
/// (which is what the lanes are for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_lane_a_held_fetch_holds_up_the_heartbeat() {
    let fake = FakeCluster::new(1).await.unwrap();
    let broker = Broker::new(fake.bootstrap(), None, Arc::new(ClientConfig::default()));
    broker.api_versions().await.unwrap();
    fake.delay(ApiKey::Fetch, HOLD);
    let b = broker.clone();
    let fetch =
        tokio::spawn(async move { b.send(&FetchRequest::default().with_max_wait_ms(100)).await });
    wait_for_request(&fake, ApiKey::Fetch, 1).await;
    let started = Instant::now();
    broker
        .send_with(&heartbeat(), SendOptions::default().with_lane(Lane::Fetch))
        .await
        .unwrap();
    assert!(started.elapsed() >= HOLD / 2, "{:?}", started.elapsed());
    fetch.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_lane_requests_are_answered_while_a_join_group_is_held() {
    let fake = FakeCluster::new(1).await.unwrap();
    let broker = Broker::new(fake.bootstrap(), None, Arc::new(ClientConfig::default()));
    broker.api_versions().await.unwrap();
    fake.delay(ApiKey::JoinGroup, HOLD);
    let b = broker.clone();
    let join = tokio::spawn(async move {
        let req = JoinGroupRequest::default()
            .with_group_id("lanes-join".into())
            .with_session_timeout_ms(6000)
            .with_rebalance_timeout_ms(6000)
            .with_protocol_type("consumer".into())
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name("range".into())
                .with_metadata(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0]))]);
        b.send(&req).await
    });
    wait_for_request(&fake, ApiKey::JoinGroup, 1).await;
    broker
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    broker
        .send_with(
            &heartbeat(),
            SendOptions::default().with_lane(Lane::Default),
        )
        .await
        .unwrap();
    assert!(
        !join.is_finished(),
        "default-lane requests waited for JoinGroup"
    );
    join.await.unwrap().unwrap();
}

/// A group member keeps heartbeating while its fetches are held: the
/// consumer's fetcher and its group membership use separate lanes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_keeps_heartbeating_while_its_fetches_long_poll() {
    let fake = FakeCluster::new(1).await.unwrap();
    fake.create_topic("lanes-events", 1).unwrap();
    let cluster = Cluster::new([fake.bootstrap()], ClientConfig::default()).unwrap();
    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).unwrap();
    producer
        .send(ProducerRecord::new("lanes-events", "one"))
        .await
        .unwrap()
        .await
        .unwrap();
    producer.close(Duration::from_secs(5)).await;
    let consumer = Consumer::new(
        cluster,
        ConsumerConfig::default()
            .with_group_id("lanes-group")
            .with_auto_offset_reset(OffsetReset::Earliest)
            .with_session_timeout(Duration::from_secs(6), Duration::from_millis(100)),
    )
    .unwrap();
    consumer.subscribe(["lanes-events"]).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
        .await
        .expect("joined and fetched within 10 s")
        .unwrap();
    assert_eq!(first.offset, 0);
    // From now on every fetch is held for HOLD.
    fake.delay(ApiKey::Fetch, HOLD);
    let fetches = fake.request_count(ApiKey::Fetch);
    wait_for_request(&fake, ApiKey::Fetch, fetches + 1).await;
    let before = fake.request_count(ApiKey::Heartbeat);
    tokio::time::sleep(HOLD * 3 / 4).await;
    let beats = fake.request_count(ApiKey::Heartbeat) - before;
    assert!(
        beats >= 4,
        "{beats} heartbeats in {:?} while a fetch was held",
        HOLD * 3 / 4
    );
    fake.clear_faults(ApiKey::Fetch);
    consumer.close().await;
}
