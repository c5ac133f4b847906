//! Client settings shared by brokers and the cluster.

use crate::broker::LegacyVersion;
use kpax_proto::generated::ApiKey;
use std::time::Duration;

/// Settings for connections and metadata. Build with `ClientConfig::default()`
/// and the `with_*` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The client id sent in every request header.
    pub client_id: String,
    /// How long a request may wait for its response.
    pub request_timeout: Duration,
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
    /// Most requests in flight on one connection.
    pub max_in_flight: usize,
    /// The largest response frame accepted (bytes).
    pub max_response_size: usize,
    /// Highest version to use per API (caps negotiation).
    pub version_caps: Vec<(ApiKey, i16)>,
    /// For brokers that predate ApiVersions (0.8/0.9): the versions to assume
    /// when the broker closes the connection on ApiVersions.
    pub broker_version_fallback: Option<LegacyVersion>,
    /// First wait before reconnecting to a broker that failed.
    pub reconnect_backoff: Duration,
    /// Longest wait before reconnecting.
    pub reconnect_backoff_max: Duration,
    /// Metadata older than this is reloaded on the next lookup.
    pub metadata_max_age: Duration,
    /// Ask brokers to create topics that metadata requests name (v4+;
    /// older brokers decide by their own setting).
    pub allow_auto_topic_creation: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            client_id: "kpax".into(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_in_flight: 64,
            max_response_size: 128 * 1024 * 1024,
            version_caps: Vec::new(),
            broker_version_fallback: None,
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            metadata_max_age: Duration::from_secs(300),
            allow_auto_topic_creation: false,
        }
    }
}

impl ClientConfig {
    /// Sets the client id.
    pub fn with_client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// Sets the request timeout.
    pub fn with_request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Sets the most requests in flight per connection (at least 1).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Caps the version used for `api`.
    pub fn with_version_cap(mut self, api: ApiKey, max: i16) -> Self {
        self.version_caps.retain(|(a, _)| *a != api);
        self.version_caps.push((api, max));
        self
    }

    /// Assumes these versions for brokers that do not answer ApiVersions.
    pub fn with_broker_version_fallback(mut self, v: LegacyVersion) -> Self {
        self.broker_version_fallback = Some(v);
        self
    }

    /// Sets the reconnect backoff range.
    pub fn with_reconnect_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.reconnect_backoff = first;
        self.reconnect_backoff_max = max.max(first);
        self
    }

    /// Sets the metadata max age.
    pub fn with_metadata_max_age(mut self, t: Duration) -> Self {
        self.metadata_max_age = t;
        self
    }

    /// Sets whether metadata requests may auto-create topics.
    pub fn with_allow_auto_topic_creation(mut self, allow: bool) -> Self {
        self.allow_auto_topic_creation = allow;
        self
    }

    pub(crate) fn cap(&self, api: ApiKey) -> Option<i16> {
        self.version_caps
            .iter()
            .find(|(a, _)| *a == api)
            .map(|(_, v)| *v)
    }
}
