//! Consumer settings.

use super::assignor::{Assignor, CooperativeStickyAssignor, RangeAssignor};
use super::rebalance::RebalanceListener;
use std::sync::Arc;
use std::time::Duration;

/// Where to start when a partition has no valid position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The earliest offset still in the log.
    Earliest,
    /// The end of the log (only new records).
    Latest,
    /// Fail with an error.
    None,
}

/// Whether records of open or aborted transactions are returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Every record, transactional or not.
    ReadUncommitted,
    /// Only committed records (aborted ones filtered, control records hidden).
    ReadCommitted,
}

/// Which group protocol a subscribing consumer speaks (Java's
/// `group.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// The classic protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
    /// with the assignment computed by the group leader (a member).
    Classic,
    /// The consumer group protocol (KIP-848): ConsumerGroupHeartbeat only,
    /// the coordinator computes assignments and hands partitions over
    /// incrementally (no stop-the-world rebalance). Where the coordinator
    /// does not offer it, the consumer falls back to `Classic`.
    Consumer,
}

/// Consumer settings; `ConsumerConfig::default()` then the `with_*` methods.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// The consumer group, for `subscribe` and commits.
    pub group_id: Option<String>,
    /// Static membership id (KIP-345).
    pub group_instance_id: Option<String>,
    /// What to do without a committed or valid offset.
    pub auto_offset_reset: OffsetReset,
    /// Transaction visibility.
    pub isolation_level: IsolationLevel,
    /// Fetch min bytes.
    pub fetch_min_bytes: i32,
    /// Fetch max bytes per request.
    pub fetch_max_bytes: i32,
    /// Max bytes per partition per fetch.
    pub partition_max_bytes: i32,
    /// How long the broker may hold a fetch for `fetch_min_bytes`.
    pub fetch_max_wait: Duration,
    /// The most bytes of fetched records buffered in the consumer (and
    /// reserved by fetches in flight): wire bytes plus what compressed
    /// batches decompress to. Fetches ask for fewer wire bytes as records
    /// decompress (see `buffered_bytes`); records already fetched are never
    /// dropped, so a batch compressing better than the ones before it can
    /// pass the bound until it is handed out.
    pub buffer_memory: usize,
    /// Commit positions periodically.
    pub enable_auto_commit: bool,
    /// The auto commit period.
    pub auto_commit_interval: Duration,
    /// Group session timeout.
    pub session_timeout: Duration,
    /// Group rebalance timeout.
    pub rebalance_timeout: Duration,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Assignors in order of preference. The default, as the Java client's,
    /// is `range` then `cooperative-sticky`: members vote for their first
    /// choice, so put `cooperative-sticky` first on every member for
    /// incremental rebalancing (KIP-429), which stops only the partitions
    /// that move instead of the whole group.
    pub assignors: Vec<Arc<dyn Assignor>>,
    /// Told about assigned, revoked and lost partitions.
    pub rebalance_listener: Option<Arc<dyn RebalanceListener>>,
    /// How often a group member looks for new topics (pattern
    /// subscriptions) and, as leader, new partitions; a change rebalances.
    pub metadata_check_interval: Duration,
    /// Wait after an error before retrying.
    pub retry_backoff: Duration,
    /// The group protocol (default `Classic`, as the Java client's).
    pub group_protocol: GroupProtocol,
    /// With `GroupProtocol::Consumer`: the coordinator's assignor to use
    /// (e.g. `uniform` or `range`); `None` lets the coordinator choose.
    pub group_remote_assignor: Option<String>,
}

impl std::fmt::Debug for ConsumerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerConfig")
            .field("group_id", &self.group_id)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("isolation_level", &self.isolation_level)
            .field("buffer_memory", &self.buffer_memory)
            .field(
                "assignors",
                &self.assignors.iter().map(|a| a.name()).collect::<Vec<_>>(),
            )
            .field("rebalance_listener", &self.rebalance_listener.is_some())
            .field("group_protocol", &self.group_protocol)
            .finish_non_exhaustive()
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group_id: None,
            group_instance_id: None,
            auto_offset_reset: OffsetReset::Latest,
            isolation_level: IsolationLevel::ReadUncommitted,
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            fetch_max_wait: Duration::from_millis(500),
            buffer_memory: 64 * 1024 * 1024,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(3),
            // As the Java client: `range`, with `cooperative-sticky` offered
            // so a group can move to it by putting it first on every member.
            assignors: vec![Arc::new(RangeAssignor), Arc::new(CooperativeStickyAssignor)],
            rebalance_listener: None,
            metadata_check_interval: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(100),
            group_protocol: GroupProtocol::Classic,
            group_remote_assignor: None,
        }
    }
}

impl ConsumerConfig {
    /// Sets the group id.
    pub fn with_group_id(mut self, id: impl Into<String>) -> Self {
        self.group_id = Some(id.into());
        self
    }

    /// Sets the static membership id.
    pub fn with_group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    /// Sets the reset policy.
    pub fn with_auto_offset_reset(mut self, r: OffsetReset) -> Self {
        self.auto_offset_reset = r;
        self
    }

    /// Sets the isolation level.
    pub fn with_isolation_level(mut self, l: IsolationLevel) -> Self {
        self.isolation_level = l;
        self
    }

    /// Sets the buffer budget (at least one partition fetch).
    pub fn with_buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }

    /// Sets fetch sizes: per request and per partition.
    pub fn with_fetch_max_bytes(mut self, request: i32, partition: i32) -> Self {
        self.fetch_max_bytes = request.max(1);
        self.partition_max_bytes = partition.max(1);
        self
    }

    /// Sets the fetch max wait.
    pub fn with_fetch_max_wait(mut self, t: Duration) -> Self {
        self.fetch_max_wait = t;
        self
    }

    /// Turns auto commit on or off.
    pub fn with_auto_commit(mut self, on: bool) -> Self {
        self.enable_auto_commit = on;
        self
    }

    /// Sets session timeout and heartbeat interval.
    pub fn with_session_timeout(mut self, session: Duration, heartbeat: Duration) -> Self {
        self.session_timeout = session;
        self.heartbeat_interval = heartbeat;
        self
    }

    /// Sets the assignors, most preferred first (at least one).
    pub fn with_assignors(mut self, a: Vec<Arc<dyn Assignor>>) -> Self {
        if !a.is_empty() {
            self.assignors = a;
        }
        self
    }

    /// Sets the listener told about partition assignment changes.
    pub fn with_rebalance_listener(mut self, l: Arc<dyn RebalanceListener>) -> Self {
        self.rebalance_listener = Some(l);
        self
    }

    /// Sets how often group members check metadata for new topics and
    /// partitions.
    pub fn with_metadata_check_interval(mut self, t: Duration) -> Self {
        self.metadata_check_interval = t;
        self
    }

    /// Sets the group protocol: `GroupProtocol::Consumer` for KIP-848's
    /// server-side, incremental assignments (falls back to classic where
    /// the coordinator lacks ConsumerGroupHeartbeat).
    pub fn with_group_protocol(mut self, p: GroupProtocol) -> Self {
        self.group_protocol = p;
        self
    }

    /// Names the coordinator's assignor for `GroupProtocol::Consumer`.
    pub fn with_group_remote_assignor(mut self, name: impl Into<String>) -> Self {
        self.group_remote_assignor = Some(name.into());
        self
    }
}

impl ConsumerConfig {
    /// The consumer settings in `props` (the keys in
    /// [`crate::properties::CONSUMER_KEYS`], the Java client's names) over
    /// the defaults: `group.id`, `group.instance.id`, `group.protocol`
    /// (`classic` or `consumer`), `group.remote.assignor`,
    /// `auto.offset.reset` (`earliest`, `latest`, `none`),
    /// `isolation.level` (`read_uncommitted`, `read_committed`),
    /// `enable.auto.commit`, `auto.commit.interval.ms`,
    /// `session.timeout.ms`, `heartbeat.interval.ms`,
    /// `max.poll.interval.ms` (the rebalance timeout), `fetch.min.bytes`,
    /// `fetch.max.bytes`, `max.partition.fetch.bytes`, `fetch.max.wait.ms`,
    /// `partition.assignment.strategy` (a list of `range`, `roundrobin`,
    /// `sticky`, `cooperative-sticky`, or Java's class names for them).
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming the line and key of a bad value.
    pub fn from_properties(props: &crate::properties::Properties) -> crate::Result<ConsumerConfig> {
        use super::assignor::{RoundRobinAssignor, StickyAssignor};
        let mut c = ConsumerConfig {
            group_id: props.string("group.id"),
            group_instance_id: props.string("group.instance.id"),
            ..ConsumerConfig::default()
        };
        if let Some(p) = props.parsed("group.protocol", |v| {
            match v.to_ascii_lowercase().as_str() {
                "classic" => Ok(GroupProtocol::Classic),
                "consumer" => Ok(GroupProtocol::Consumer),
                _ => Err(format!("expected classic or consumer, got {v:?}")),
            }
        })? {
            c.group_protocol = p;
        }
        c.group_remote_assignor = props.string("group.remote.assignor");
        if let Some(r) = props.parsed("auto.offset.reset", |v| {
            match v.to_ascii_lowercase().as_str() {
                "earliest" => Ok(OffsetReset::Earliest),
                "latest" => Ok(OffsetReset::Latest),
                "none" => Ok(OffsetReset::None),
                _ => Err(format!("expected earliest, latest or none, got {v:?}")),
            }
        })? {
            c.auto_offset_reset = r;
        }
        if let Some(l) = props.parsed("isolation.level", |v| {
            match v.to_ascii_lowercase().as_str() {
                "read_uncommitted" => Ok(IsolationLevel::ReadUncommitted),
                "read_committed" => Ok(IsolationLevel::ReadCommitted),
                _ => Err(format!(
                    "expected read_uncommitted or read_committed, got {v:?}"
                )),
            }
        })? {
            c.isolation_level = l;
        }
        if let Some(on) = props.flag("enable.auto.commit")? {
            c.enable_auto_commit = on;
        }
        if let Some(t) = props.positive_millis("auto.commit.interval.ms")? {
            c.auto_commit_interval = t;
        }
        if let Some(t) = props.positive_millis("session.timeout.ms")? {
            c.session_timeout = t;
        }
        if let Some(t) = props.positive_millis("heartbeat.interval.ms")? {
            c.heartbeat_interval = t;
        }
        if c.heartbeat_interval >= c.session_timeout {
            return Err(props.error(
                "heartbeat.interval.ms",
                "must be below session.timeout.ms".into(),
            ));
        }
        if let Some(t) = props.positive_millis("max.poll.interval.ms")? {
            c.rebalance_timeout = t;
        }
        if let Some(n) = props.number("fetch.min.bytes", 0i32)? {
            c.fetch_min_bytes = n;
        }
        if let Some(n) = props.number("fetch.max.bytes", 1i32)? {
            c.fetch_max_bytes = n;
        }
        if let Some(n) = props.number("max.partition.fetch.bytes", 1i32)? {
            c.partition_max_bytes = n;
        }
        if c.buffer_memory < c.partition_max_bytes as usize {
            c.buffer_memory = c.partition_max_bytes as usize;
        }
        if let Some(t) = props.millis("fetch.max.wait.ms")? {
            c.fetch_max_wait = t;
        }
        if let Some(list) = props.parsed("partition.assignment.strategy", |v| {
            let mut out: Vec<Arc<dyn Assignor>> = Vec::new();
            for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let short = name
                    .strip_prefix("org.apache.kafka.clients.consumer.")
                    .unwrap_or(name);
                out.push(match short {
                    "range" | "RangeAssignor" => Arc::new(RangeAssignor),
                    "roundrobin" | "RoundRobinAssignor" => Arc::new(RoundRobinAssignor),
                    "sticky" | "StickyAssignor" => Arc::new(StickyAssignor),
                    "cooperative-sticky" | "CooperativeStickyAssignor" => {
                        Arc::new(CooperativeStickyAssignor)
                    }
                    _ => {
                        return Err(format!(
                        "unknown assignor {name:?} (range, roundrobin, sticky, cooperative-sticky)"
                    ))
                    }
                });
            }
            if out.is_empty() {
                return Err("no assignor listed".into());
            }
            Ok(out)
        })? {
            c.assignors = list;
        }
        Ok(c)
    }
}
