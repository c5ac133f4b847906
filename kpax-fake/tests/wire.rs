//! The fake over the wire with a minimal client: request/response per
//! API and version, bad input, version pinning, fetch wakeups, faults.

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kpax_fake::{FakeCluster, FakeOptions, VersionTable};
use kpax_proto::generated::api_versions::ApiVersionsRequest;
use kpax_proto::generated::fetch::{FetchRequestPartition, FetchRequestTopic};
use kpax_proto::generated::find_coordinator::FindCoordinatorRequest;
use kpax_proto::generated::join_group::JoinGroupRequestProtocol;
use kpax_proto::generated::list_offsets::{ListOffsetsRequestPartition, ListOffsetsRequestTopic};
use kpax_proto::generated::offset_commit::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kpax_proto::generated::offset_fetch::{OffsetFetchRequestGroup, OffsetFetchRequestTopic};
use kpax_proto::generated::produce::{ProduceRequestPartitionData, ProduceRequestTopicData};
use kpax_proto::generated::*;
use kpax_proto::message::{Message, Request};
use kpax_proto::records::RecordBatchBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    async fn connect(cluster: &FakeCluster, node: i32) -> Client {
        let stream = TcpStream::connect(cluster.broker_addr(node).unwrap())
            .await
            .unwrap();
        Client {
            stream,
            correlation: 0,
        }
    }

    async fn send_raw(&mut self, frame: &[u8]) {
        self.stream.write_all(frame).await.unwrap();
    }

    /// The next response frame's body after the correlation id, or `None`
    /// when the fake closed the connection.
    async fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).await.ok()?;
        let mut buf = vec![0u8; u32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    async fn call<R: Request>(&mut self, req: &R, version: i16) -> Option<R::Response> {
        self.send(req, version).await;
        let mut frame = self.read_frame().await?;
        let rh = ResponseHeader::decode(&mut frame, R::response_header_version(version)).unwrap();
        assert_eq!(rh.correlation_id, self.correlation);
        let resp = R::Response::decode(&mut frame, version).unwrap();
        assert!(!frame.has_remaining(), "{} v{version}: bytes left", R::NAME);
        Some(resp)
    }

    async fn send<R: Request>(&mut self, req: &R, version: i16) {
        self.correlation += 1;
        let mut body = BytesMut::new();
        body.extend_from_slice(&[0; 4]);
        let header = RequestHeader::default()
            .with_request_api_key(R::API_KEY as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some("wire-test".into()));
        header
            .encode(&mut body, R::request_header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let len = (body.len() - 4) as u32;
        body[0..4].copy_from_slice(&len.to_be_bytes());
        self.send_raw(&body).await;
    }
}

fn batch(n: u8) -> Bytes {
    let mut b = RecordBatchBuilder::new(0);
    for i in 0..n {
        b.append(1_700_000_000_000 + i64::from(i), None, Some(&[i][..]), &[])
            .unwrap();
    }
    b.finish().unwrap()
}

fn produce_req(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    let mut pd = ProduceRequestPartitionData::default();
    pd.index = partition;
    pd.records = Some(records);
    let mut td = ProduceRequestTopicData::default();
    td.name = topic.to_string().into();
    td.partition_data = vec![pd];
    let mut r = ProduceRequest::default();
    r.acks = acks;
    r.timeout_ms = 1000;
    r.topic_data = vec![td];
    r
}

fn fetch_req(topic: &str, partition: i32, offset: i64, wait_ms: i32) -> FetchRequest {
    let mut p = FetchRequestPartition::default();
    p.partition = partition;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchRequestTopic::default();
    t.topic = topic.to_string().into();
    t.partitions = vec![p];
    let mut r = FetchRequest::default();
    r.max_wait_ms = wait_ms;
    r.min_bytes = 1;
    r.max_bytes = 1 << 20;
    r.topics = vec![t];
    r
}

/// Clears the fields `version` lacks.
fn for_version(mut r: FetchRequest, version: i16) -> FetchRequest {
    if version < 3 {
        r.max_bytes = FetchRequest::default().max_bytes;
    }
    r
}

#[tokio::test]
async fn api_versions_at_every_version_and_unknown_version() {
    let cluster = FakeCluster::new(1).await.unwrap();
    let mut c = Client::connect(&cluster, 1).await;
    for v in 0..=4 {
        let r = c.call(&ApiVersionsRequest::default(), v).await.unwrap();
        assert_eq!(r.error_code, ErrorCode::NONE);
        assert!(r.api_keys.iter().any(|k| k.api_key == ApiKey::Fetch as i16));
    }
    // A version past what the fake knows: error 35 in the v0 layout.
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&[0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 7, 0xff, 0xff]);
    c.send_raw(&frame).await;
    let mut body = c.read_frame().await.unwrap();
    assert_eq!(body.get_i32(), 7);
    let r = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(r.error_code, ErrorCode::UNSUPPORTED_VERSION);
    assert_eq!(r.api_keys[0].max_version, 4);
}

#[tokio::test]
async fn version_presets_pin_what_is_served() {
    let cluster = FakeCluster::with_options(FakeOptions {
        versions: VersionTable::kafka_0_10(),
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    let mut c = Client::connect(&cluster, 1).await;
    let r = c.call(&ApiVersionsRequest::default(), 0).await.unwrap();
    let produce = r
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .unwrap();
    assert_eq!(produce.max_version, 2);
    assert!(!r
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::InitProducerId as i16));
    // A request past the pinned version closes the connection.
    assert!(c.call(&MetadataRequest::default(), 9).await.is_none());
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let cluster = FakeCluster::new(1).await.unwrap();
    for garbage in [
        &[0x7f, 0xff, 0xff, 0xff][..],                     // huge frame
        &[0xff, 0xff, 0xff, 0xf0][..],                     // negative size
        &[0, 0, 0, 8, 0x03, 0xe7, 0, 0, 0, 0, 0, 1][..],   // unknown API key 999
        &[0, 0, 0, 10, 0, 3, 0, 1, 0, 0, 0, 1, 0, 50][..], // Metadata cut short
    ] {
        let mut c = Client::connect(&cluster, 1).await;
        c.send_raw(garbage).await;
        assert!(c.read_frame().await.is_none(), "closed after {garbage:?}");
    }
    let mut c = Client::connect(&cluster, 1).await;
    assert!(c.call(&ApiVersionsRequest::default(), 3).await.is_some());
}

#[tokio::test]
async fn produce_fetch_list_offsets_and_errors() {
    let cluster = FakeCluster::new(2).await.unwrap();
    cluster.create_topic("t", 2).unwrap();
    let leader = cluster.leader("t", 0).unwrap();
    let other = 3 - leader;
    let mut c = Client::connect(&cluster, leader).await;
    for v in [3, 7, 9, 11] {
        let r = c.call(&produce_req("t", 0, batch(3), -1), v).await.unwrap();
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, ErrorCode::NONE, "produce v{v}");
    }
    assert_eq!(cluster.high_watermark("t", 0), Some(12));
    // acks=0 gets no response; the next request is still answered in order.
    c.send(&produce_req("t", 0, batch(1), 0), 9).await;
    assert!(c.call(&ApiVersionsRequest::default(), 3).await.is_some());
    assert_eq!(cluster.high_watermark("t", 0), Some(13));
    let mut o = Client::connect(&cluster, other).await;
    let r = o.call(&produce_req("t", 0, batch(1), 1), 9).await.unwrap();
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ErrorCode::NOT_LEADER_OR_FOLLOWER
    );
    let mut c = Client::connect(&cluster, leader).await;
    for v in [0, 4, 11, 12] {
        let r = c
            .call(&for_version(fetch_req("t", 0, 3, 0), v), v)
            .await
            .unwrap();
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, ErrorCode::NONE, "fetch v{v}");
        assert_eq!(p.high_watermark, 13);
        assert!(!p.records.as_ref().unwrap().is_empty());
    }
    let r = c.call(&fetch_req("t", 0, 999, 0), 11).await.unwrap();
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ErrorCode::OFFSET_OUT_OF_RANGE
    );
    for (ts, want) in [
        (-2, 0),
        (-1, cluster.high_watermark("t", 0).unwrap()),
        (1_700_000_000_001, 1),
    ] {
        let mut p = ListOffsetsRequestPartition::default();
        p.timestamp = ts;
        let mut t = ListOffsetsRequestTopic::default();
        t.name = "t".into();
        t.partitions = vec![p];
        let mut req = ListOffsetsRequest::default();
        req.topics = vec![t];
        let r = c.call(&req, 5).await.unwrap();
        assert_eq!(r.topics[0].partitions[0].offset, want, "timestamp {ts}");
    }
}

#[tokio::test]
async fn fetch_waits_for_data_and_wakes_up() {
    let cluster = FakeCluster::new(1).await.unwrap();
    cluster.create_topic("w", 1).unwrap();
    let mut c = Client::connect(&cluster, 1).await;
    // Nothing to read: the fetch waits its max_wait_ms and returns empty.
    let r = c.call(&fetch_req("w", 0, 0, 200), 11).await.unwrap();
    assert!(r.responses[0].partitions[0]
        .records
        .as_ref()
        .unwrap()
        .is_empty());
    let start = Instant::now();
    let waiting = tokio::spawn(async move { c.call(&fetch_req("w", 0, 0, 20_000), 11).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut p = Client::connect(&cluster, 1).await;
    p.call(&produce_req("w", 0, batch(2), 1), 9).await.unwrap();
    let r = waiting.await.unwrap().unwrap();
    assert!(!r.responses[0].partitions[0]
        .records
        .as_ref()
        .unwrap()
        .is_empty());
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "woken by the produce"
    );
}

#[tokio::test]
async fn idempotent_duplicates_and_gaps_over_the_wire() {
    let cluster = FakeCluster::new(1).await.unwrap();
    cluster.create_topic("i", 1).unwrap();
    let mut c = Client::connect(&cluster, 1).await;
    let pid = c.call(&InitProducerIdRequest::default(), 4).await.unwrap();
    assert_eq!(pid.error_code, ErrorCode::NONE);
    let idem = |seq: i32| {
        let mut b = RecordBatchBuilder::new(0).producer(pid.producer_id, pid.producer_epoch, seq);
        b.append(1, None, Some(&b"x"[..]), &[]).unwrap();
        b.finish().unwrap()
    };
    let base = |r: ProduceResponse| {
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    };
    assert_eq!(
        base(c.call(&produce_req("i", 0, idem(0), -1), 9).await.unwrap()),
        (ErrorCode::NONE, 0)
    );
    assert_eq!(
        base(c.call(&produce_req("i", 0, idem(1), -1), 9).await.unwrap()),
        (ErrorCode::NONE, 1)
    );
    assert_eq!(
        base(c.call(&produce_req("i", 0, idem(1), -1), 9).await.unwrap()),
        (ErrorCode::NONE, 1)
    );
    assert_eq!(
        base(c.call(&produce_req("i", 0, idem(5), -1), 9).await.unwrap()).0,
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(cluster.high_watermark("i", 0), Some(2));
}

#[tokio::test]
async fn coordinators_groups_and_offsets_over_the_wire() {
    let cluster = FakeCluster::new(3).await.unwrap();
    cluster.create_topic("g", 1).unwrap();
    let coordinator = cluster.group_coordinator("grp");
    let mut any = Client::connect(&cluster, 1).await;
    let mut fc = FindCoordinatorRequest::default();
    fc.key = "grp".into();
    let r = any.call(&fc, 3).await.unwrap();
    assert_eq!(r.node_id, coordinator);
    let mut fc = FindCoordinatorRequest::default();
    fc.coordinator_keys = vec!["grp".into(), "other".into()];
    let r = any.call(&fc, 4).await.unwrap();
    assert_eq!(r.coordinators.len(), 2);
    assert_eq!(r.coordinators[0].node_id, coordinator);

    let mut c = Client::connect(&cluster, coordinator).await;
    let mut join = JoinGroupRequest::default();
    join.group_id = "grp".into();
    join.session_timeout_ms = 10_000;
    join.rebalance_timeout_ms = 10_000;
    join.protocol_type = "consumer".into();
    let mut proto = JoinGroupRequestProtocol::default();
    proto.name = "range".into();
    join.protocols = vec![proto];
    let r = c.call(&join, 5).await.unwrap();
    assert_eq!(r.error_code, ErrorCode::MEMBER_ID_REQUIRED);
    join.member_id = r.member_id.clone();
    let r = c.call(&join, 5).await.unwrap();
    assert_eq!(r.error_code, ErrorCode::NONE);
    assert_eq!(r.leader, r.member_id);
    let mut sync = SyncGroupRequest::default();
    sync.group_id = "grp".into();
    sync.generation_id = r.generation_id;
    sync.member_id = r.member_id.clone();
    let s = c.call(&sync, 3).await.unwrap();
    assert_eq!(s.error_code, ErrorCode::NONE);

    let mut commit = OffsetCommitRequest::default();
    commit.group_id = "grp".into();
    commit.generation_id_or_member_epoch = r.generation_id;
    commit.member_id = r.member_id.clone();
    let mut cp = OffsetCommitRequestPartition::default();
    cp.committed_offset = 42;
    let mut ct = OffsetCommitRequestTopic::default();
    ct.name = "g".into();
    ct.partitions = vec![cp];
    commit.topics = vec![ct];
    for v in [2, 8] {
        let cr = c.call(&commit, v).await.unwrap();
        assert_eq!(
            cr.topics[0].partitions[0].error_code,
            ErrorCode::NONE,
            "commit v{v}"
        );
    }
    // The old form (v1-7) and the grouped one (v8+).
    let mut of = OffsetFetchRequest::default();
    of.group_id = "grp".into();
    let mut t = OffsetFetchRequestTopic::default();
    t.name = "g".into();
    t.partition_indexes = vec![0].into();
    of.topics = Some(vec![t]);
    let r = c.call(&of, 7).await.unwrap();
    assert_eq!(r.topics[0].partitions[0].committed_offset, 42);
    let mut of = OffsetFetchRequest::default();
    let mut g = OffsetFetchRequestGroup::default();
    g.group_id = "grp".into();
    g.topics = None;
    of.groups = vec![g];
    let r = c.call(&of, 9).await.unwrap();
    assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 42);

    let r = c
        .call(
            &DescribeGroupsRequest::default().with_groups(vec!["grp".into()]),
            5,
        )
        .await
        .unwrap();
    assert_eq!(r.groups[0].group_state, "Stable");
    assert_eq!(r.groups[0].members.len(), 1);
    let r = c.call(&ListGroupsRequest::default(), 4).await.unwrap();
    assert_eq!(r.groups.len(), 1);

    // A moved coordinator refuses the group.
    cluster.move_group_coordinator("grp", coordinator % 3 + 1);
    let mut hb = HeartbeatRequest::default();
    hb.group_id = "grp".into();
    hb.generation_id = 1;
    hb.member_id = join.member_id.clone();
    let r = c.call(&hb, 4).await.unwrap();
    assert_eq!(r.error_code, ErrorCode::NOT_COORDINATOR);
}

#[tokio::test]
async fn faults_errors_delays_and_drops() {
    let cluster = FakeCluster::new(1).await.unwrap();
    cluster.create_topic("f", 1).unwrap();
    let mut c = Client::connect(&cluster, 1).await;
    cluster.fail_next(ApiKey::Metadata, ErrorCode::LEADER_NOT_AVAILABLE, 1);
    let mut md = MetadataRequest::default();
    md.topics = None;
    let r = c.call(&md, 9).await.unwrap();
    assert_eq!(r.topics[0].error_code, ErrorCode::LEADER_NOT_AVAILABLE);
    let r = c.call(&md, 9).await.unwrap();
    assert_eq!(r.topics[0].error_code, ErrorCode::NONE);

    cluster.delay(ApiKey::ApiVersions, Duration::from_millis(300));
    let start = Instant::now();
    c.call(&ApiVersionsRequest::default(), 3).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    cluster.clear_faults(ApiKey::ApiVersions);

    cluster.drop_connection_on(ApiKey::ListGroups, 1);
    assert!(c.call(&ListGroupsRequest::default(), 3).await.is_none());
    let mut c = Client::connect(&cluster, 1).await;
    assert!(c.call(&ListGroupsRequest::default(), 3).await.is_some());
}

#[tokio::test]
async fn admin_apis_create_grow_and_delete_topics() {
    let cluster = FakeCluster::new(3).await.unwrap();
    let mut c = Client::connect(&cluster, 1).await;
    let mut ct = CreateTopicsRequest::default();
    let mut t = kpax_proto::generated::create_topics::CreateTopicsRequestTopic::default();
    t.name = "made".into();
    t.num_partitions = 3;
    t.replication_factor = 1;
    ct.topics = vec![t];
    let r = c.call(&ct, 7).await.unwrap();
    assert_eq!(r.topics[0].error_code, ErrorCode::NONE);
    let r = c.call(&ct, 4).await.unwrap();
    assert_eq!(r.topics[0].error_code, ErrorCode::TOPIC_ALREADY_EXISTS);
    let mut cp = CreatePartitionsRequest::default();
    let mut t = kpax_proto::generated::create_partitions::CreatePartitionsRequestTopic::default();
    t.name = "made".into();
    t.count = 5;
    cp.topics = vec![t];
    let r = c.call(&cp, 3).await.unwrap();
    assert_eq!(r.results[0].error_code, ErrorCode::NONE);
    assert!(cluster.leader("made", 4).is_some());
    let mut md = MetadataRequest::default();
    md.topics = None;
    let r = c.call(&md, 12).await.unwrap();
    assert_eq!(r.topics[0].partitions.len(), 5);
    let mut dt = DeleteTopicsRequest::default();
    dt.topic_names = vec!["made".into()];
    let r = c.call(&dt, 5).await.unwrap();
    assert_eq!(r.responses[0].error_code, ErrorCode::NONE);
    assert!(cluster.leader("made", 0).is_none());
}
