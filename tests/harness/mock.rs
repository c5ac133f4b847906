//! librdkafka's mock cluster, in-process, with its fault injection behind a
//! small API of ours.
//!
//! We own the `rd_kafka_mock_cluster_t` ourselves (rather than through
//! `rdkafka::mocking::MockCluster`) because some controls the tests need —
//! the group rebalance delay and request tracking — are only reachable with
//! the raw pointer, which rdkafka's wrapper keeps private.

use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::types::{RDKafkaRespErr, RDKafkaType};
use rdkafka::ClientConfig;

/// Kafka API keys by number (the mock's fault injection names APIs so).
pub use kpax::proto::versions::key as api_key;

/// A few Kafka error codes that tests commonly inject.
pub mod error_code {
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const UNSUPPORTED_VERSION: i16 = 35;
}

/// A request the mock received while tracking was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenRequest {
    /// Id of the broker that received it.
    pub broker: i32,
    pub api_key: i16,
    /// Microseconds on librdkafka's monotonic clock.
    pub timestamp_us: i64,
}

/// An in-process librdkafka mock cluster; brokers have ids `1..=brokers`
/// and listen on random loopback ports. Dropping it shuts every broker down.
pub struct MockKafka {
    raw: NonNull<rd::rd_kafka_mock_cluster_t>,
    brokers: i32,
    // The handle the mock cluster runs on; must outlive `raw` (see Drop).
    _client: Client<DefaultClientContext>,
}

// SAFETY: every rd_kafka_mock_* control call used here enqueues an op to the
// mock cluster's own thread and waits for it (or reads immutable state), so
// the handle can be shared and moved across threads.
unsafe impl Send for MockKafka {}
unsafe impl Sync for MockKafka {}

impl MockKafka {
    /// Starts a mock cluster of `brokers` brokers. The group initial
    /// rebalance delay is set to 0 so that a first group join is quick.
    pub fn start(brokers: i32) -> MockKafka {
        assert!(brokers >= 1, "a mock cluster needs at least one broker");
        let config = ClientConfig::new();
        let native = config
            .create_native_config()
            .expect("native config for the mock cluster's client");
        let client = Client::new(
            &config,
            native,
            RDKafkaType::RD_KAFKA_PRODUCER,
            DefaultClientContext,
        )
        .expect("client handle for the mock cluster");
        // SAFETY: the client handle is valid and outlives the cluster.
        let raw = unsafe { rd::rd_kafka_mock_cluster_new(client.native_ptr(), brokers) };
        let raw = NonNull::new(raw).expect("rd_kafka_mock_cluster_new returned null");
        let mock = MockKafka {
            raw,
            brokers,
            _client: client,
        };
        mock.group_initial_rebalance_delay(Duration::ZERO);
        mock
    }

    fn ptr(&self) -> *mut rd::rd_kafka_mock_cluster_t {
        self.raw.as_ptr()
    }

    /// `host:port,...` of every broker.
    pub fn bootstrap(&self) -> String {
        // SAFETY: the returned string is owned by the cluster and lives as long as it.
        let s = unsafe { CStr::from_ptr(rd::rd_kafka_mock_cluster_bootstraps(self.ptr())) };
        s.to_string_lossy().into_owned()
    }

    /// Number of brokers; their ids are `1..=brokers()`.
    pub fn brokers(&self) -> i32 {
        self.brokers
    }

    /// Creates a topic (the mock has no CreateTopics API).
    pub fn create_topic(&self, name: &str, partitions: i32, replication: i32) {
        let name_c = CString::new(name).expect("topic name without NUL");
        // SAFETY: valid cluster and C string.
        let err = unsafe {
            rd::rd_kafka_mock_topic_create(self.ptr(), name_c.as_ptr(), partitions, replication)
        };
        check(err, "create topic");
    }

    /// Closes the broker's connections and refuses new ones (`-1`: all
    /// brokers). Leadership does not move.
    pub fn broker_down(&self, broker: i32) {
        // SAFETY: valid cluster.
        check(
            unsafe { rd::rd_kafka_mock_broker_set_down(self.ptr(), broker) },
            "broker down",
        );
    }

    /// Lets the broker accept connections again (`-1`: all brokers).
    pub fn broker_up(&self, broker: i32) {
        // SAFETY: valid cluster.
        check(
            unsafe { rd::rd_kafka_mock_broker_set_up(self.ptr(), broker) },
            "broker up",
        );
    }

    /// Delays every response of the broker by `delay` (`-1`: all brokers).
    pub fn round_trip_time(&self, broker: i32, delay: Duration) {
        let ms = i32::try_from(delay.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: valid cluster.
        check(
            unsafe { rd::rd_kafka_mock_broker_set_rtt(self.ptr(), broker, ms) },
            "broker rtt",
        );
    }

    /// Pushes Kafka error codes for `api_key`: each following request of
    /// that key, on any broker, is answered with the next error.
    pub fn request_errors(&self, api_key: i16, errors: &[i16]) {
        let errors: Vec<RDKafkaRespErr> = errors.iter().map(|&e| resp_err(i32::from(e))).collect();
        self.push_errors(api_key, &errors);
    }

    /// Makes the next `count` requests of `api_key` drop their connection
    /// instead of being answered.
    pub fn disconnect_on(&self, api_key: i16, count: usize) {
        let errors = vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT; count];
        self.push_errors(api_key, &errors);
    }

    fn push_errors(&self, api_key: i16, errors: &[RDKafkaRespErr]) {
        // SAFETY: valid cluster; the array is read during the call only.
        unsafe {
            rd::rd_kafka_mock_push_request_errors_array(
                self.ptr(),
                api_key,
                errors.len(),
                errors.as_ptr(),
            )
        }
    }

    /// Forgets errors pushed for `api_key` and not yet used.
    pub fn clear_request_errors(&self, api_key: i16) {
        // SAFETY: valid cluster.
        unsafe { rd::rd_kafka_mock_clear_request_errors(self.ptr(), api_key) }
    }

    /// Makes `broker` the leader of the partition, or none (`None`:
    /// leaderless). Creates the topic if needed.
    pub fn move_leader(&self, topic: &str, partition: i32, broker: Option<i32>) {
        let topic_c = CString::new(topic).expect("topic name without NUL");
        // SAFETY: valid cluster and C string.
        let err = unsafe {
            rd::rd_kafka_mock_partition_set_leader(
                self.ptr(),
                topic_c.as_ptr(),
                partition,
                broker.unwrap_or(-1),
            )
        };
        check(err, "partition leader");
    }

    /// Makes `broker` the coordinator of consumer group `group`.
    pub fn move_group_coordinator(&self, group: &str, broker: i32) {
        self.set_coordinator("group", group, broker);
    }

    /// Makes `broker` the coordinator of transactional id `txn_id`.
    pub fn move_txn_coordinator(&self, txn_id: &str, broker: i32) {
        self.set_coordinator("transaction", txn_id, broker);
    }

    fn set_coordinator(&self, kind: &str, key: &str, broker: i32) {
        let kind_c = CString::new(kind).expect("kind without NUL");
        let key_c = CString::new(key).expect("key without NUL");
        // SAFETY: valid cluster and C strings.
        let err = unsafe {
            rd::rd_kafka_mock_coordinator_set(self.ptr(), kind_c.as_ptr(), key_c.as_ptr(), broker)
        };
        check(err, "coordinator");
    }

    /// Narrows the version range the brokers advertise (and accept) for
    /// `api_key`. `max` must not exceed what the mock implements.
    pub fn narrow_api_versions(&self, api_key: i16, min: i16, max: i16) {
        // SAFETY: valid cluster.
        let err = unsafe { rd::rd_kafka_mock_set_apiversion(self.ptr(), api_key, min, max) };
        check(err, "apiversion");
    }

    /// Stops advertising `api_key`: requests for it close the connection.
    pub fn disable_api(&self, api_key: i16) {
        // SAFETY: valid cluster.
        let err = unsafe { rd::rd_kafka_mock_set_apiversion(self.ptr(), api_key, -1, -1) };
        check(err, "apiversion");
    }

    /// Returns this Kafka error code in Metadata responses for `topic`.
    pub fn topic_error(&self, topic: &str, error: i16) {
        let topic_c = CString::new(topic).expect("topic name without NUL");
        // SAFETY: valid cluster and C string.
        unsafe {
            rd::rd_kafka_mock_topic_set_error(
                self.ptr(),
                topic_c.as_ptr(),
                resp_err(i32::from(error)),
            )
        }
    }

    /// How long a new group waits for more members before its first
    /// rebalance (Kafka's `group.initial.rebalance.delay.ms`).
    pub fn group_initial_rebalance_delay(&self, delay: Duration) {
        let ms = i32::try_from(delay.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: valid cluster.
        unsafe { rd::rd_kafka_mock_group_initial_rebalance_delay_ms(self.ptr(), ms) }
    }

    /// Starts recording every request the brokers receive.
    pub fn track_requests(&self) {
        // SAFETY: valid cluster.
        unsafe { rd::rd_kafka_mock_start_request_tracking(self.ptr()) }
    }

    /// Stops recording requests; what was recorded is dropped.
    pub fn stop_tracking_requests(&self) {
        // SAFETY: valid cluster.
        unsafe { rd::rd_kafka_mock_stop_request_tracking(self.ptr()) }
    }

    /// Requests recorded since tracking started or was last cleared.
    pub fn requests(&self) -> Vec<SeenRequest> {
        let mut count = 0usize;
        // SAFETY: valid cluster; we own the returned array and its elements
        // and free them with the matching destroy call.
        unsafe {
            let array = rd::rd_kafka_mock_get_requests(self.ptr(), &mut count);
            if array.is_null() {
                return Vec::new();
            }
            let seen = (0..count)
                .map(|i| {
                    let req = *array.add(i);
                    SeenRequest {
                        broker: rd::rd_kafka_mock_request_id(req),
                        api_key: rd::rd_kafka_mock_request_api_key(req),
                        timestamp_us: rd::rd_kafka_mock_request_timestamp(req),
                    }
                })
                .collect();
            rd::rd_kafka_mock_request_destroy_array(array, count);
            seen
        }
    }

    /// Number of recorded requests of `api_key`.
    pub fn count_requests(&self, api_key: i16) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.api_key == api_key)
            .count()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        // SAFETY: valid cluster.
        unsafe { rd::rd_kafka_mock_clear_requests(self.ptr()) }
    }
}

impl Drop for MockKafka {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_mock_cluster_new and destroyed once,
        // before `_client` (a field, so dropped after this body runs).
        unsafe { rd::rd_kafka_mock_cluster_destroy(self.ptr()) }
    }
}

/// Kafka (or librdkafka-internal, negative) error code as librdkafka's enum.
fn resp_err(code: i32) -> RDKafkaRespErr {
    RDKafkaRespErr::try_from(code).unwrap_or_else(|_| panic!("unknown error code {code}"))
}

fn check(err: RDKafkaRespErr, what: &str) {
    assert!(
        err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR,
        "mock cluster: {what} failed: {err:?}"
    );
}
