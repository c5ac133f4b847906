//! kpax's counters, exported through the [`metrics`](https://docs.rs/metrics)
//! facade, so an application sends them to Prometheus, OpenTelemetry or
//! StatsD with the exporter it already installs (`metrics-exporter-prometheus`,
//! `metrics-exporter-opentelemetry`, ...). Without an installed recorder
//! they cost next to nothing.
//!
//! Install the recorder before creating producers and consumers: each
//! client takes its metric handles when it is made. Every metric carries a
//! `client_id` label (the [`ClientConfig`](crate::ClientConfig)'s); the
//! consumer's also a `group_id` label when it has a group. [`describe`]
//! registers each metric's unit and description with the recorder.
//!
//! The same figures are in [`Producer::stats`](crate::Producer::stats) and
//! [`Consumer::stats`](crate::Consumer::stats), for applications without a
//! metrics pipeline.
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `kpax_producer_records_sent_total` | counter | records acknowledged |
//! | `kpax_producer_bytes_sent_total` | counter | record batch bytes acknowledged |
//! | `kpax_producer_batches_sent_total` | counter | batches acknowledged |
//! | `kpax_producer_retries_total` | counter | batches sent again after an error |
//! | `kpax_producer_record_errors_total` | counter | records failed |
//! | `kpax_producer_request_latency_seconds` | histogram | Produce round trips |
//! | `kpax_consumer_records_fetched_total` | counter | records fetched into the buffer |
//! | `kpax_consumer_bytes_fetched_total` | counter | record bytes fetched |
//! | `kpax_consumer_fetch_requests_total` | counter | Fetch requests answered or failed |
//! | `kpax_consumer_fetch_errors_total` | counter | Fetch requests failed |
//! | `kpax_consumer_fetch_latency_seconds` | histogram | Fetch round trips (long polls included) |
//! | `kpax_consumer_records_consumed_total` | counter | records handed to the application |
//! | `kpax_consumer_rebalances_total` | counter | assignments that changed the partitions owned |
//! | `kpax_consumer_commits_total` | counter | offset commits that succeeded |
//! | `kpax_consumer_commit_errors_total` | counter | offset commits that failed |
//! | `kpax_consumer_commit_latency_seconds` | histogram | offset commits, retries included |
//! | `kpax_consumer_lag` | gauge | per `topic` and `partition`: high watermark minus position |

use ::metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram, Unit,
};

/// `kpax_producer_records_sent_total`.
pub const PRODUCER_RECORDS_SENT: &str = "kpax_producer_records_sent_total";
/// `kpax_producer_bytes_sent_total`.
pub const PRODUCER_BYTES_SENT: &str = "kpax_producer_bytes_sent_total";
/// `kpax_producer_batches_sent_total`.
pub const PRODUCER_BATCHES_SENT: &str = "kpax_producer_batches_sent_total";
/// `kpax_producer_retries_total`.
pub const PRODUCER_RETRIES: &str = "kpax_producer_retries_total";
/// `kpax_producer_record_errors_total`.
pub const PRODUCER_RECORD_ERRORS: &str = "kpax_producer_record_errors_total";
/// `kpax_producer_request_latency_seconds`.
pub const PRODUCER_REQUEST_LATENCY: &str = "kpax_producer_request_latency_seconds";
/// `kpax_consumer_records_fetched_total`.
pub const CONSUMER_RECORDS_FETCHED: &str = "kpax_consumer_records_fetched_total";
/// `kpax_consumer_bytes_fetched_total`.
pub const CONSUMER_BYTES_FETCHED: &str = "kpax_consumer_bytes_fetched_total";
/// `kpax_consumer_fetch_requests_total`.
pub const CONSUMER_FETCH_REQUESTS: &str = "kpax_consumer_fetch_requests_total";
/// `kpax_consumer_fetch_errors_total`.
pub const CONSUMER_FETCH_ERRORS: &str = "kpax_consumer_fetch_errors_total";
/// `kpax_consumer_fetch_latency_seconds`.
pub const CONSUMER_FETCH_LATENCY: &str = "kpax_consumer_fetch_latency_seconds";
/// `kpax_consumer_records_consumed_total`.
pub const CONSUMER_RECORDS_CONSUMED: &str = "kpax_consumer_records_consumed_total";
/// `kpax_consumer_rebalances_total`.
pub const CONSUMER_REBALANCES: &str = "kpax_consumer_rebalances_total";
/// `kpax_consumer_commits_total`.
pub const CONSUMER_COMMITS: &str = "kpax_consumer_commits_total";
/// `kpax_consumer_commit_errors_total`.
pub const CONSUMER_COMMIT_ERRORS: &str = "kpax_consumer_commit_errors_total";
/// `kpax_consumer_commit_latency_seconds`.
pub const CONSUMER_COMMIT_LATENCY: &str = "kpax_consumer_commit_latency_seconds";
/// `kpax_consumer_lag`.
pub const CONSUMER_LAG: &str = "kpax_consumer_lag";

/// Registers the unit and description of every kpax metric with the
/// installed recorder (exporters show them as HELP and UNIT lines).
pub fn describe() {
    describe_counter!(PRODUCER_RECORDS_SENT, "Records acknowledged by the brokers");
    describe_counter!(
        PRODUCER_BYTES_SENT,
        Unit::Bytes,
        "Record batch bytes acknowledged"
    );
    describe_counter!(PRODUCER_BATCHES_SENT, "Record batches acknowledged");
    describe_counter!(PRODUCER_RETRIES, "Batches sent again after an error");
    describe_counter!(PRODUCER_RECORD_ERRORS, "Records whose delivery failed");
    describe_histogram!(
        PRODUCER_REQUEST_LATENCY,
        Unit::Seconds,
        "Produce request round trips"
    );
    describe_counter!(CONSUMER_RECORDS_FETCHED, "Records fetched into the buffer");
    describe_counter!(
        CONSUMER_BYTES_FETCHED,
        Unit::Bytes,
        "Record bytes fetched (as on the wire)"
    );
    describe_counter!(CONSUMER_FETCH_REQUESTS, "Fetch requests answered or failed");
    describe_counter!(CONSUMER_FETCH_ERRORS, "Fetch requests that failed");
    describe_histogram!(
        CONSUMER_FETCH_LATENCY,
        Unit::Seconds,
        "Fetch request round trips, long polls included"
    );
    describe_counter!(
        CONSUMER_RECORDS_CONSUMED,
        "Records handed to the application"
    );
    describe_counter!(
        CONSUMER_REBALANCES,
        "Assignments that changed the partitions owned"
    );
    describe_counter!(CONSUMER_COMMITS, "Offset commits that succeeded");
    describe_counter!(CONSUMER_COMMIT_ERRORS, "Offset commits that failed");
    describe_histogram!(
        CONSUMER_COMMIT_LATENCY,
        Unit::Seconds,
        "Offset commits, retries included"
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Records between a partition's position and its high watermark"
    );
}

/// A producer's metric handles.
pub(crate) struct ProducerMeters {
    client_id: String,
    pub records_sent: Counter,
    pub bytes_sent: Counter,
    pub batches_sent: Counter,
    pub retries: Counter,
    pub record_errors: Counter,
    latency: std::sync::Mutex<std::collections::BTreeMap<i32, Histogram>>,
}

impl ProducerMeters {
    /// The handles of the producer with this client id.
    pub fn new(client_id: &str) -> ProducerMeters {
        let id = client_id.to_string();
        ProducerMeters {
            records_sent: counter!(PRODUCER_RECORDS_SENT, "client_id" => id.clone()),
            bytes_sent: counter!(PRODUCER_BYTES_SENT, "client_id" => id.clone()),
            batches_sent: counter!(PRODUCER_BATCHES_SENT, "client_id" => id.clone()),
            retries: counter!(PRODUCER_RETRIES, "client_id" => id.clone()),
            record_errors: counter!(PRODUCER_RECORD_ERRORS, "client_id" => id.clone()),
            client_id: id,
            latency: Default::default(),
        }
    }

    /// A Produce round trip to `node`.
    pub fn request_latency(&self, node: i32, elapsed: std::time::Duration) {
        let mut map = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(node)
            .or_insert_with(|| {
                histogram!(PRODUCER_REQUEST_LATENCY,
                    "client_id" => self.client_id.clone(), "broker" => node.to_string())
            })
            .record(elapsed.as_secs_f64());
    }
}

/// A consumer's metric handles.
pub(crate) struct ConsumerMeters {
    labels: Vec<(&'static str, String)>,
    pub records_fetched: Counter,
    pub bytes_fetched: Counter,
    pub fetch_requests: Counter,
    pub fetch_errors: Counter,
    pub records_consumed: Counter,
    pub rebalances: Counter,
    pub commits: Counter,
    pub commit_errors: Counter,
    pub commit_latency: Histogram,
    fetch_latency: std::sync::Mutex<std::collections::BTreeMap<i32, Histogram>>,
}

impl ConsumerMeters {
    /// The handles of the consumer with this client id and group.
    pub fn new(client_id: &str, group_id: Option<&str>) -> ConsumerMeters {
        let mut labels = vec![("client_id", client_id.to_string())];
        if let Some(g) = group_id {
            labels.push(("group_id", g.to_string()));
        }
        let l = || -> Vec<::metrics::Label> {
            labels
                .iter()
                .map(|(k, v)| ::metrics::Label::new(*k, v.clone()))
                .collect()
        };
        ConsumerMeters {
            records_fetched: counter!(CONSUMER_RECORDS_FETCHED, l()),
            bytes_fetched: counter!(CONSUMER_BYTES_FETCHED, l()),
            fetch_requests: counter!(CONSUMER_FETCH_REQUESTS, l()),
            fetch_errors: counter!(CONSUMER_FETCH_ERRORS, l()),
            records_consumed: counter!(CONSUMER_RECORDS_CONSUMED, l()),
            rebalances: counter!(CONSUMER_REBALANCES, l()),
            commits: counter!(CONSUMER_COMMITS, l()),
            commit_errors: counter!(CONSUMER_COMMIT_ERRORS, l()),
            commit_latency: histogram!(CONSUMER_COMMIT_LATENCY, l()),
            fetch_latency: Default::default(),
            labels,
        }
    }

    fn labels_with(&self, more: [(&'static str, String); 2]) -> Vec<::metrics::Label> {
        self.labels
            .iter()
            .cloned()
            .chain(more)
            .map(|(k, v)| ::metrics::Label::new(k, v))
            .collect()
    }

    /// A Fetch round trip to `node`.
    pub fn fetch_latency(&self, node: i32, elapsed: std::time::Duration) {
        let mut map = self.fetch_latency.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(node)
            .or_insert_with(|| {
                let mut labels: Vec<::metrics::Label> = self
                    .labels
                    .iter()
                    .map(|(k, v)| ::metrics::Label::new(*k, v.clone()))
                    .collect();
                labels.push(::metrics::Label::new("broker", node.to_string()));
                histogram!(CONSUMER_FETCH_LATENCY, labels)
            })
            .record(elapsed.as_secs_f64());
    }

    /// The lag gauge of one partition.
    pub fn lag(&self, topic: &str, partition: i32) -> Gauge {
        gauge!(
            CONSUMER_LAG,
            self.labels_with([
                ("topic", topic.to_string()),
                ("partition", partition.to_string())
            ])
        )
    }
}
