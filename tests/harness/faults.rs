//! Fault injection that means the same on every backend that has it:
//! librdkafka's mock cluster and kpax-fake. A test body written against
//! [`Faults`] runs unchanged on both, and must see the same outcomes.
//!
//! | fault | mock | fake |
//! |---|---|---|
//! | [`fail_next`](Faults::fail_next) / [`fail_sequence`](Faults::fail_sequence) | `rd_kafka_mock_push_request_errors` | `FakeCluster::fail_next` / `fail_sequence` |
//! | [`drop_connection_on`](Faults::drop_connection_on) | pushed `_TRANSPORT` errors | `FakeCluster::drop_connection_on` |
//! | [`broker_down`](Faults::broker_down) / [`broker_up`](Faults::broker_up) | `rd_kafka_mock_broker_set_down/up` | `FakeCluster::broker_down/up` |
//! | [`move_leader`](Faults::move_leader) | `rd_kafka_mock_partition_set_leader` | `FakeCluster::move_leader` |
//! | [`move_group_coordinator`](Faults::move_group_coordinator) | `rd_kafka_mock_coordinator_set` | `FakeCluster::move_group_coordinator` |
//! | [`round_trip_time`](Faults::round_trip_time) | `rd_kafka_mock_broker_set_rtt` | `FakeCluster::broker_delay` |
//! | [`narrow_api_versions`](Faults::narrow_api_versions) / [`disable_api`](Faults::disable_api) | `rd_kafka_mock_set_apiversion` | `FakeCluster::set_versions` with `VersionTable::pin` |
//! | [`requests`](Faults::requests) | request tracking (started by [`track_requests`](Faults::track_requests)) | `FakeCluster::request_count` |
//!
//! Injected errors are cluster-wide on both: the next request of that API
//! to any broker takes the next error.

use std::time::Duration;

use kpax_fake::FakeCluster;
use kpax_proto::generated::{ApiKey, ErrorCode};

use super::mock::MockKafka;

/// The fault controls of a backend that has them.
#[derive(Clone, Copy)]
pub enum Faults<'a> {
    /// librdkafka's mock cluster.
    Mock(&'a MockKafka),
    /// kpax-fake.
    Fake(&'a FakeCluster),
}

impl Faults<'_> {
    /// Answers the next `count` requests of `api` with `error` (in every
    /// partition, topic or group of the response).
    pub fn fail_next(&self, api: ApiKey, error: ErrorCode, count: usize) {
        self.fail_sequence(api, &vec![error; count]);
    }

    /// Answers the next requests of `api` with `errors`, one per request,
    /// in order (`ErrorCode::NONE` lets one through).
    pub fn fail_sequence(&self, api: ApiKey, errors: &[ErrorCode]) {
        match self {
            Faults::Mock(m) => {
                let codes: Vec<i16> = errors.iter().map(|e| e.0).collect();
                m.request_errors(api as i16, &codes);
            }
            Faults::Fake(f) => f.fail_sequence(api, errors),
        }
    }

    /// Closes the connection, without an answer, on each of the next
    /// `count` requests of `api`.
    pub fn drop_connection_on(&self, api: ApiKey, count: usize) {
        match self {
            Faults::Mock(m) => m.disconnect_on(api as i16, count),
            Faults::Fake(f) => f.drop_connection_on(api, count),
        }
    }

    /// Forgets the errors and drops queued for `api` and not yet used.
    pub fn clear(&self, api: ApiKey) {
        match self {
            Faults::Mock(m) => m.clear_request_errors(api as i16),
            Faults::Fake(f) => f.clear_faults(api),
        }
    }

    /// Takes broker `node` down: its connections close and new ones fail.
    /// Leadership does not move.
    pub async fn broker_down(&self, node: i32) {
        match self {
            Faults::Mock(m) => m.broker_down(node),
            Faults::Fake(f) => f.broker_down(node).await,
        }
    }

    /// Brings broker `node` back.
    pub fn broker_up(&self, node: i32) {
        match self {
            Faults::Mock(m) => m.broker_up(node),
            Faults::Fake(f) => f
                .broker_up(node)
                .unwrap_or_else(|e| panic!("kpax-fake: broker {node} up: {e}")),
        }
    }

    /// Makes `node` the leader of a partition.
    pub fn move_leader(&self, topic: &str, partition: i32, node: i32) {
        match self {
            Faults::Mock(m) => m.move_leader(topic, partition, Some(node)),
            Faults::Fake(f) => f.move_leader(topic, partition, node).unwrap_or_else(|e| {
                panic!("kpax-fake: move leader of {topic}/{partition} to {node}: {e:?}")
            }),
        }
    }

    /// Makes `node` the coordinator of consumer group `group`.
    pub fn move_group_coordinator(&self, group: &str, node: i32) {
        match self {
            Faults::Mock(m) => m.move_group_coordinator(group, node),
            Faults::Fake(f) => f.move_group_coordinator(group, node),
        }
    }

    /// Delays every response of broker `node` by `delay` (zero to stop).
    pub fn round_trip_time(&self, node: i32, delay: Duration) {
        match self {
            Faults::Mock(m) => m.round_trip_time(node, delay),
            Faults::Fake(f) => f.broker_delay(node, delay),
        }
    }

    /// Serves `api` only up to version `max` from now on (advertised and
    /// accepted; the lowest version stays what the broker implements).
    /// `max` must not exceed what the broker implements.
    pub fn narrow_api_versions(&self, api: ApiKey, max: i16) {
        match self {
            Faults::Mock(m) => m.narrow_api_versions(api as i16, 0, max),
            Faults::Fake(f) => f.set_versions(f.versions().pin(api, max)),
        }
    }

    /// Stops serving `api`: it is no longer advertised, and a request for
    /// it closes the connection (as on a broker that lacks it).
    pub fn disable_api(&self, api: ApiKey) {
        match self {
            Faults::Mock(m) => m.disable_api(api as i16),
            Faults::Fake(f) => f.set_versions(f.versions().pin(api, -1)),
        }
    }

    /// Starts counting requests for [`requests`](Self::requests) (the
    /// mock counts only while tracking; the fake always counts).
    pub fn track_requests(&self) {
        match self {
            Faults::Mock(m) => m.track_requests(),
            Faults::Fake(_) => {}
        }
    }

    /// How many requests of `api` the brokers received (since
    /// [`track_requests`](Self::track_requests) on the mock; since the
    /// start on the fake): compare two readings.
    pub fn requests(&self, api: ApiKey) -> usize {
        match self {
            Faults::Mock(m) => m.count_requests(api as i16),
            Faults::Fake(f) => f.request_count(api),
        }
    }
}
