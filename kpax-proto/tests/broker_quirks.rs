//! The overlay's `null_on_read` facts: frames real brokers send with null
//! where Kafka's schema has no null decode (null read as the default, or as
//! `None` where the field is nullable in other versions), and the Rust
//! types stay as the schema makes them.

use bytes::{BufMut, Bytes, BytesMut};
use kpax_proto::generated::{
    ErrorCode, FindCoordinatorResponse, JoinGroupResponse, SyncGroupResponse,
};

/// librdkafka's mock: SyncGroup v3 error reply with a null assignment.
#[test]
fn null_sync_group_assignment_reads_as_empty() {
    let mut b = BytesMut::new();
    b.put_i32(0); // throttle_time_ms
    b.put_i16(27); // REBALANCE_IN_PROGRESS
    b.put_i32(-1); // assignment: null BYTES
    let r = SyncGroupResponse::decode(&mut b.freeze(), 3).unwrap();
    assert_eq!(r.error_code, ErrorCode::REBALANCE_IN_PROGRESS);
    assert!(r.assignment.is_empty());
    // written back as an empty, non-null BYTES
    let mut out = BytesMut::new();
    r.encode(&mut out, 3).unwrap();
    assert_eq!(&out[6..], &[0, 0, 0, 0]);
}

/// librdkafka's mock: JoinGroup v5 error reply with null protocol name,
/// leader and member id (only protocol name is nullable, from v7).
#[test]
fn null_join_group_strings_read_as_none_or_empty() {
    let mut b = BytesMut::new();
    b.put_i32(0); // throttle_time_ms
    b.put_i16(14); // COORDINATOR_LOAD_IN_PROGRESS
    b.put_i32(-1); // generation_id
    b.put_i16(-1); // protocol_name: null
    b.put_i16(-1); // leader: null
    b.put_i16(-1); // member_id: null
    b.put_i32(0); // members: empty
    let r = JoinGroupResponse::decode(&mut b.freeze(), 5).unwrap();
    assert_eq!(r.error_code, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
    assert_eq!(r.protocol_name, None);
    assert!(r.leader.is_empty());
    assert!(r.member_id.is_empty());
    // v5 cannot carry a null protocol name: encoding says so instead of
    // writing what Kafka's schema forbids
    assert!(r.encode(&mut BytesMut::new(), 5).is_err());
}

/// librdkafka's mock: FindCoordinator v1 error reply with a null host.
#[test]
fn null_find_coordinator_host_reads_as_empty() {
    let mut b = BytesMut::new();
    b.put_i32(0); // throttle_time_ms
    b.put_i16(15); // COORDINATOR_NOT_AVAILABLE
    b.put_i16(-1); // error_message: null (nullable)
    b.put_i32(-1); // node_id
    b.put_i16(-1); // host: null
    b.put_i32(-1); // port
    let r = FindCoordinatorResponse::decode(&mut Bytes::from(b.to_vec()), 1).unwrap();
    assert_eq!(r.error_code, ErrorCode::COORDINATOR_NOT_AVAILABLE);
    assert!(r.host.is_empty());
}
