//! kpax's broker and cluster layers against real Kafka-protocol brokers:
//! kpax-fake and librdkafka's mock cluster (always, in-process) and tansu
//! (KPAX_TANSU, required in CI). Each shared body runs on every backend
//! listed in its `backends!` line (tests `<body>::fake`, `::mock`, `::tansu`).

mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::{interop, Cluster as TestCluster, Kind};
use kpax::cluster::CoordinatorKind;
use kpax::proto::generated::{
    ApiKey, ApiVersionsRequest, ErrorCode, FetchRequest, MetadataRequest, ProduceRequest,
};
use kpax::proto::message::Message;
use kpax::SendOptions;
use kpax::{Broker, ClientConfig, Cluster, Error};

fn config() -> ClientConfig {
    ClientConfig::default()
        .with_request_timeout(Duration::from_secs(5))
        .with_connect_timeout(Duration::from_secs(2))
        .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

fn open(c: &TestCluster) -> Cluster {
    Cluster::new([c.bootstrap()], config()).expect("bootstrap")
}

// tansu is a single node: it has no three brokers to spread leaders over.
backends!(three_brokers_metadata_leaders_and_coordinator: fake(3), mock(3));

async fn three_brokers_metadata_leaders_and_coordinator(tc: &TestCluster) {
    let topic = tc.topic(6).await;
    let cluster = open(tc);
    assert_eq!(
        cluster.partitions(&topic.name).await.unwrap(),
        (0..6).collect::<Vec<_>>()
    );
    assert_eq!(cluster.brokers().len(), 3);
    // the leaders kpax finds are the ones librdkafka reports
    let theirs = interop::leaders(tc.bootstrap(), &topic.name).await.unwrap();
    // (the mock picks leaders at random: all three need not lead one)
    let ids: std::collections::BTreeSet<i32> = cluster
        .brokers()
        .iter()
        .filter_map(|b| b.node_id())
        .collect();
    assert!(
        theirs.values().all(|b| ids.contains(b)),
        "leaders {theirs:?} are brokers of the metadata {ids:?}"
    );
    let mut ours = BTreeMap::new();
    for p in 0..6 {
        ours.insert(
            p,
            cluster
                .leader(&topic.name, p)
                .await
                .unwrap()
                .node_id()
                .unwrap(),
        );
    }
    assert_eq!(ours, theirs);
    let group = tc.group_id();
    let coord = cluster
        .coordinator(CoordinatorKind::Group, &group)
        .await
        .unwrap();
    assert!(
        coord.node_id().is_some_and(|id| (1..=3).contains(&id)),
        "{coord:?}"
    );
    // a coordinator moved by the cluster is found after NOT_COORDINATOR invalidates it
    let other = coord.node_id().unwrap() % 3 + 1;
    tc.inject().move_group_coordinator(&group, other);
    cluster.coordinator_error(CoordinatorKind::Group, &group, ErrorCode::NOT_COORDINATOR);
    let moved = cluster
        .coordinator(CoordinatorKind::Group, &group)
        .await
        .unwrap();
    assert_eq!(moved.node_id(), Some(other));
}

backends!(many_requests_pipelined_on_one_connection: fake(1), mock(1), kafka);

async fn many_requests_pipelined_on_one_connection(tc: &TestCluster) {
    let broker = Broker::new(first(tc), None, config().into());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let b = broker.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                b.send(&MetadataRequest::default().with_topics(Some(Vec::new())))
                    .await
                    .map(|r| r.brokers.len())
            } else {
                // Kafka answers ApiVersions v3+ without a valid client
                // software name and version with INVALID_REQUEST and no keys.
                let mut req = ApiVersionsRequest::default();
                if b.version_for::<ApiVersionsRequest>().await? >= 3 {
                    req = req
                        .with_client_software_name("kpax-test".into())
                        .with_client_software_version("1.0".into());
                }
                b.send(&req).await.map(|r| {
                    assert_eq!(r.error_code, ErrorCode::NONE, "ApiVersions error");
                    r.api_keys.len()
                })
            }
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().unwrap() >= 1);
    }
}

// tansu cannot narrow its versions (versions_metadata_and_coordinator
// covers its negotiation).
backends!(version_negotiation_picks_highest_common: fake(1), mock(1));

async fn version_negotiation_picks_highest_common(tc: &TestCluster) {
    let faults = tc.inject();
    let broker = Broker::new(first(tc), None, config().into());
    let versions = broker.api_versions().await.unwrap();
    if tc.kind() == Kind::Mock {
        // The mock answers ApiVersions v3+ with UNSUPPORTED_VERSION: kpax retries at v0.
        assert_eq!(versions.range(ApiKey::ApiVersions), Some((0, 2)));
        assert_eq!(
            broker.version_for::<MetadataRequest>().await.unwrap(),
            12.min(MetadataRequest::MAX_VERSION)
        );
        // Fetch stops at kpax's client cap (v12: topics by name).
        assert_eq!(
            broker.version_for::<FetchRequest>().await.unwrap(),
            16.min(kpax::broker::client_range(ApiKey::Fetch).1)
        );
    } else {
        // The fake serves what it implements: ApiVersions up to v4 (v5's
        // cluster and node id checks, KIP-1242, are Kafka 4.x's).
        assert_eq!(versions.range(ApiKey::ApiVersions), Some((0, 4)));
        // Up to kpax's client cap (v12: topics by name).
        assert_eq!(
            broker.version_for::<FetchRequest>().await.unwrap(),
            kpax::broker::client_range(ApiKey::Fetch).1
        );
        assert!(kpax::broker::client_range(ApiKey::Fetch).1 < FetchRequest::MAX_VERSION);
    }
    // narrowed by the broker, capped by the user
    faults.narrow_api_versions(ApiKey::Metadata, 5);
    faults.disable_api(ApiKey::CreateTopics);
    let narrowed = Broker::new(
        tc.bootstrap(),
        None,
        config().with_version_cap(ApiKey::Produce, 3).into(),
    );
    assert_eq!(narrowed.version_for::<MetadataRequest>().await.unwrap(), 5);
    assert_eq!(narrowed.version_for::<ProduceRequest>().await.unwrap(), 3);
    // an API the broker lacks is a typed error
    let e = narrowed
        .version_for::<kpax::proto::generated::CreateTopicsRequest>()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnsupportedVersion {
                api: ApiKey::CreateTopics,
                theirs: None,
                ..
            }
        ),
        "{e}"
    );
    // and sending it anyway: the broker closes the connection, reported clearly
    let e = narrowed
        .send_with(
            &kpax::proto::generated::CreateTopicsRequest::default(),
            SendOptions::version(0),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ClosedOnRequest {
                api: ApiKey::CreateTopics,
                version: 0,
                ..
            }
        ),
        "{e}"
    );
    // the next request reconnects
    assert!(narrowed.send(&ApiVersionsRequest::default()).await.is_ok());
}

// tansu has no fault injection.
backends!(broker_down_fails_in_flight_fast_then_reconnects_and_follows_leader_move: fake(3), mock(3));

async fn broker_down_fails_in_flight_fast_then_reconnects_and_follows_leader_move(
    tc: &TestCluster,
) {
    let faults = tc.inject();
    let topic = tc.topic(3).await;
    faults.move_leader(&topic.name, 0, 1);
    let cluster = open(tc);
    let leader = cluster.leader(&topic.name, 0).await.unwrap();
    assert_eq!(leader.node_id(), Some(1));
    // a slow broker with a request in flight, then taken down
    faults.round_trip_time(1, Duration::from_secs(3));
    let b = leader.clone();
    let in_flight = tokio::spawn(async move { b.send(&ApiVersionsRequest::default()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    faults.broker_down(1).await;
    let e = in_flight.await.unwrap().unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "in-flight request failed only after {:?}",
        t0.elapsed()
    );
    assert!(e.is_retriable(), "{e}");
    faults.round_trip_time(1, Duration::ZERO);
    // while down: fails, retriable, and the cluster forgets the leader
    let e = leader
        .send(&ApiVersionsRequest::default())
        .await
        .unwrap_err();
    assert!(e.is_retriable(), "{e}");
    cluster.broker_down(1);
    faults.broker_up(1);
    // back up: the next request reconnects
    let mut ok = false;
    for _ in 0..20 {
        if leader.send(&ApiVersionsRequest::default()).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "no reconnect after broker_up");
    // a leader move is picked up after NOT_LEADER_OR_FOLLOWER
    faults.move_leader(&topic.name, 0, 2);
    cluster.partition_error(&topic.name, 0, ErrorCode::NOT_LEADER_OR_FOLLOWER);
    assert_eq!(
        cluster.leader(&topic.name, 0).await.unwrap().node_id(),
        Some(2)
    );
}

// tansu has no fault injection.
backends!(injected_errors_lead_to_invalidation: fake(3), mock(3));

async fn injected_errors_lead_to_invalidation(tc: &TestCluster) {
    let faults = tc.inject();
    let topic = tc.topic(3).await;
    let cluster = open(tc);
    let group = tc.group_id();
    // COORDINATOR_NOT_AVAILABLE from FindCoordinator: a retriable typed error, then found
    faults.fail_next(
        ApiKey::FindCoordinator,
        ErrorCode::COORDINATOR_NOT_AVAILABLE,
        1,
    );
    let e = cluster
        .coordinator(CoordinatorKind::Group, &group)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::COORDINATOR_NOT_AVAILABLE), "{e}");
    assert!(e.is_retriable());
    let c = cluster
        .coordinator(CoordinatorKind::Group, &group)
        .await
        .unwrap();
    // NOT_COORDINATOR and COORDINATOR_NOT_AVAILABLE forget it; another code does not
    faults.track_requests();
    let finds = faults.requests(ApiKey::FindCoordinator);
    cluster.coordinator_error(CoordinatorKind::Group, &group, ErrorCode::REQUEST_TIMED_OUT);
    cluster
        .coordinator(CoordinatorKind::Group, &group)
        .await
        .unwrap();
    assert_eq!(faults.requests(ApiKey::FindCoordinator), finds);
    cluster.coordinator_error(
        CoordinatorKind::Group,
        &group,
        ErrorCode::COORDINATOR_NOT_AVAILABLE,
    );
    assert_eq!(
        cluster
            .coordinator(CoordinatorKind::Group, &group)
            .await
            .unwrap()
            .node_id(),
        c.node_id()
    );
    assert_eq!(faults.requests(ApiKey::FindCoordinator), finds + 1);
    // NOT_LEADER_OR_FOLLOWER forgets the leader (one metadata request); REQUEST_TIMED_OUT does not
    cluster.leader(&topic.name, 1).await.unwrap();
    let metadata = faults.requests(ApiKey::Metadata);
    cluster.partition_error(&topic.name, 1, ErrorCode::REQUEST_TIMED_OUT);
    cluster.leader(&topic.name, 1).await.unwrap();
    assert_eq!(faults.requests(ApiKey::Metadata), metadata);
    cluster.partition_error(&topic.name, 1, ErrorCode::NOT_LEADER_OR_FOLLOWER);
    // many concurrent lookups of the missing leader: one metadata request
    let mut lookups = Vec::new();
    for _ in 0..20 {
        let c = cluster.clone();
        let t = topic.name.clone();
        lookups.push(tokio::spawn(async move {
            c.leader(&t, 1).await.map(|b| b.node_id())
        }));
    }
    for l in lookups {
        l.await.unwrap().unwrap();
    }
    assert_eq!(faults.requests(ApiKey::Metadata), metadata + 1);
}

backends!(versions_metadata_and_coordinator: fake(1), mock(1), kafka);

async fn versions_metadata_and_coordinator(tc: &TestCluster) {
    let topic = tc.topic(3).await;
    let broker = Broker::new(first(tc), None, config().into());
    let versions = broker.api_versions().await.unwrap();
    // whatever ApiVersions version answered (tansu and the fake serve v3+,
    // the mock falls back to v0), kpax uses the highest common version,
    // within its client caps
    let (_, fetch_max) = versions.range(ApiKey::Fetch).unwrap();
    assert_eq!(
        broker.version_for::<FetchRequest>().await.unwrap(),
        fetch_max.min(kpax::broker::client_range(ApiKey::Fetch).1)
    );
    let (_, md_max) = versions.range(ApiKey::Metadata).unwrap();
    assert_eq!(
        broker.version_for::<MetadataRequest>().await.unwrap(),
        md_max.min(kpax::broker::client_range(ApiKey::Metadata).1)
    );
    let cluster = open(tc);
    assert_eq!(
        cluster.partitions(&topic.name).await.unwrap(),
        vec![0, 1, 2]
    );
    for p in 0..3 {
        assert!(cluster
            .leader(&topic.name, p)
            .await
            .unwrap()
            .node_id()
            .is_some());
    }
    let c = cluster
        .coordinator(CoordinatorKind::Group, &tc.group_id())
        .await
        .unwrap();
    assert!(c.node_id().is_some());
    // an unknown topic is a typed error with the broker's code
    let e = cluster
        .partitions("kpax-no-such-topic-xyz")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), "{e}");
}

/// The fake pinned to Kafka 0.10's versions: kpax falls back to
/// ApiVersions v0 (the fake answers UNSUPPORTED_VERSION with its range, as
/// Kafka does), picks the old versions, and an API the broker lacks is a
/// typed error. (The mock's counterpart is
/// `mock_version_negotiation_picks_highest_common`; tansu cannot be pinned.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_pinned_to_kafka_0_10_negotiates_down() {
    let tc = TestCluster::fake(1).await;
    let fake = tc.fake_controls().unwrap();
    fake.set_versions(kpax_fake::VersionTable::kafka_0_10());
    let broker = Broker::new(first(&tc), None, config().into());
    let versions = broker.api_versions().await.unwrap();
    assert_eq!(versions.range(ApiKey::ApiVersions), Some((0, 0)));
    assert_eq!(broker.version_for::<MetadataRequest>().await.unwrap(), 2);
    assert_eq!(broker.version_for::<FetchRequest>().await.unwrap(), 3);
    assert_eq!(broker.version_for::<ProduceRequest>().await.unwrap(), 2);
    let e = broker
        .version_for::<kpax::proto::generated::CreatePartitionsRequest>()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnsupportedVersion {
                api: ApiKey::CreatePartitions,
                theirs: None,
                ..
            }
        ),
        "{e}"
    );
    let e = broker
        .send_with(
            &kpax::proto::generated::CreatePartitionsRequest::default(),
            SendOptions::version(0),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ClosedOnRequest {
                api: ApiKey::CreatePartitions,
                version: 0,
                ..
            }
        ),
        "{e}"
    );
    assert!(broker.send(&ApiVersionsRequest::default()).await.is_ok());
}

/// The first bootstrap address (a [`Broker`] is one connection).
fn first(tc: &TestCluster) -> &str {
    tc.bootstrap().split(',').next().unwrap_or_default()
}
