//! The cluster's state, shared by every connection behind one mutex:
//! brokers, topics and their partition logs, groups, producer ids, faults.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use kpax_proto::generated::{ApiKey, ErrorCode};
use kpax_proto::wire::Uuid;

use crate::group::Group;
use crate::log::PartitionLog;
use crate::versions::VersionTable;

/// A broker of the fake cluster.
#[derive(Debug, Clone)]
pub(crate) struct Broker {
    pub id: i32,
    pub port: u16,
    pub up: bool,
    /// Added before every response of this broker.
    pub delay: Duration,
}

/// One partition: its leader and its log.
#[derive(Debug, Default)]
pub(crate) struct Partition {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub log: PartitionLog,
}

/// A topic.
#[derive(Debug)]
pub(crate) struct Topic {
    pub id: Uuid,
    pub partitions: Vec<Partition>,
    /// Configs set by CreateTopics or IncrementalAlterConfigs (the others
    /// have their defaults).
    pub configs: BTreeMap<String, String>,
}

/// Injected faults, per API.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub errors: HashMap<ApiKey, VecDeque<ErrorCode>>,
    pub delays: HashMap<ApiKey, Duration>,
    pub drops: HashMap<ApiKey, usize>,
    /// Requests received per API (every broker).
    pub seen: HashMap<ApiKey, usize>,
}

/// Which coordinator a FindCoordinator key type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CoordinatorKind {
    Group,
    Transaction,
}

/// Everything the brokers share.
#[derive(Debug)]
pub(crate) struct ClusterState {
    pub host: String,
    pub brokers: Vec<Broker>,
    pub topics: BTreeMap<String, Topic>,
    pub groups: BTreeMap<String, Group>,
    /// Share groups (KIP-932), by id.
    pub share_groups: BTreeMap<String, crate::share_group::ShareGroup>,
    /// Share sessions by (broker, group, member).
    pub share_sessions: HashMap<(i32, String, String), crate::share_group::ShareSession>,
    /// Group configs set with IncrementalAlterConfigs (GROUP resources).
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    pub coordinators: HashMap<(CoordinatorKind, String), i32>,
    pub next_producer_id: i64,
    pub transactional: HashMap<String, (i64, i16)>,
    /// Open transactions, aborted-transaction indexes (see `txn`).
    pub txns: crate::transactions::Transactions,
    pub faults: Faults,
    pub versions: VersionTable,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub initial_rebalance_delay: Duration,
    leader_cursor: usize,
    uuid_state: u64,
}

impl ClusterState {
    pub fn new(host: String, ports: &[u16], options: &crate::FakeOptions) -> ClusterState {
        let brokers = ports
            .iter()
            .enumerate()
            .map(|(i, &port)| Broker {
                id: i as i32 + 1,
                port,
                up: true,
                delay: Duration::ZERO,
            })
            .collect();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        ClusterState {
            host,
            brokers,
            topics: BTreeMap::new(),
            groups: BTreeMap::new(),
            share_groups: BTreeMap::new(),
            share_sessions: HashMap::new(),
            group_configs: BTreeMap::new(),
            coordinators: HashMap::new(),
            next_producer_id: 1000,
            transactional: HashMap::new(),
            txns: Default::default(),
            faults: Faults::default(),
            versions: options.versions.clone(),
            auto_create_topics: options.auto_create_topics,
            default_partitions: options.default_partitions,
            initial_rebalance_delay: options.initial_rebalance_delay,
            leader_cursor: 0,
            uuid_state: seed | 1,
        }
    }

    /// The broker with id `node`.
    pub fn broker(&self, node: i32) -> Option<&Broker> {
        self.brokers.iter().find(|b| b.id == node)
    }

    fn new_uuid(&mut self) -> Uuid {
        // splitmix64: unique enough for topic ids, no dependency.
        let mut next = || {
            self.uuid_state = self.uuid_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.uuid_state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&next().to_be_bytes());
        b[8..].copy_from_slice(&next().to_be_bytes());
        Uuid(b)
    }

    fn new_partition(&mut self, replication: usize, leader: Option<i32>) -> Partition {
        let n = self.brokers.len();
        let leader_index = match leader {
            Some(l) => (l - 1) as usize,
            None => {
                self.leader_cursor += 1;
                (self.leader_cursor - 1) % n
            }
        };
        let replicas = (0..replication.clamp(1, n))
            .map(|i| self.brokers[(leader_index + i) % n].id)
            .collect();
        Partition {
            leader: self.brokers[leader_index].id,
            leader_epoch: 0,
            replicas,
            log: PartitionLog::default(),
        }
    }

    /// Creates a topic with leaders spread over the brokers. `leaders`, when
    /// given, names each partition's leader.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication: i16,
        leaders: Option<Vec<i32>>,
        validate_only: bool,
    ) -> Result<(), ErrorCode> {
        if !valid_topic_name(name) {
            return Err(ErrorCode::INVALID_TOPIC_EXCEPTION);
        }
        if self.topics.contains_key(name) {
            return Err(ErrorCode::TOPIC_ALREADY_EXISTS);
        }
        let partitions = if partitions == -1 {
            self.default_partitions
        } else {
            partitions
        };
        if !(1..=10_000).contains(&partitions) {
            return Err(ErrorCode::INVALID_PARTITIONS);
        }
        let replication = if replication == -1 { 1 } else { replication };
        if replication < 1 || replication as usize > self.brokers.len() {
            return Err(ErrorCode::INVALID_REPLICATION_FACTOR);
        }
        if let Some(l) = &leaders {
            if l.len() != partitions as usize || l.iter().any(|id| self.broker(*id).is_none()) {
                return Err(ErrorCode::INVALID_REPLICA_ASSIGNMENT);
            }
        }
        if validate_only {
            return Ok(());
        }
        let id = self.new_uuid();
        let parts = (0..partitions as usize)
            .map(|p| {
                let leader = leaders.as_ref().map(|l| l[p]);
                self.new_partition(replication as usize, leader)
            })
            .collect();
        self.topics.insert(
            name.to_string(),
            Topic {
                id,
                partitions: parts,
                configs: BTreeMap::new(),
            },
        );
        tracing::debug!(topic = name, partitions, "topic created");
        Ok(())
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(
        &mut self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), ErrorCode> {
        let have = self
            .topics
            .get(name)
            .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?
            .partitions
            .len();
        if count as i64 <= have as i64 || count > 10_000 {
            return Err(ErrorCode::INVALID_PARTITIONS);
        }
        if validate_only {
            return Ok(());
        }
        let replication = self.topics[name].partitions[0].replicas.len();
        let added: Vec<Partition> = (have..count as usize)
            .map(|_| self.new_partition(replication, None))
            .collect();
        if let Some(t) = self.topics.get_mut(name) {
            t.partitions.extend(added);
        }
        Ok(())
    }

    /// The topic named `id`.
    pub fn topic_name_by_id(&self, id: &Uuid) -> Option<String> {
        self.topics
            .iter()
            .find(|(_, t)| t.id == *id)
            .map(|(n, _)| n.clone())
    }

    /// The broker coordinating `key`.
    pub fn coordinator(&self, kind: CoordinatorKind, key: &str) -> i32 {
        if let Some(&node) = self.coordinators.get(&(kind, key.to_string())) {
            return node;
        }
        // FNV-1a: stable across runs, spreads keys over brokers.
        let mut h: u32 = 0x811c_9dc5;
        for b in key.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        self.brokers[(h as usize) % self.brokers.len()].id
    }

    /// Takes the next injected error for `api`, if any.
    pub fn take_error(&mut self, api: ApiKey) -> Option<ErrorCode> {
        let q = self.faults.errors.get_mut(&api)?;
        let e = q.pop_front();
        if q.is_empty() {
            self.faults.errors.remove(&api);
        }
        e
    }

    /// Whether the connection should be dropped for this `api` request.
    pub fn take_drop(&mut self, api: ApiKey) -> bool {
        match self.faults.drops.get_mut(&api) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// The topics as the KIP-848 heartbeat needs them.
    pub fn topic_info(&self) -> BTreeMap<String, crate::consumer_group::TopicInfo> {
        self.topics
            .iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    crate::consumer_group::TopicInfo {
                        id: t.id,
                        partitions: t.partitions.len(),
                    },
                )
            })
            .collect()
    }

    /// A new producer id.
    pub fn allocate_producer_id(&mut self) -> i64 {
        self.next_producer_id += 1;
        self.next_producer_id
    }
}

/// Kafka's topic name rule: 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(crate) fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(n: u16) -> ClusterState {
        let ports: Vec<u16> = (0..n).map(|i| 9000 + i).collect();
        ClusterState::new("127.0.0.1".into(), &ports, &crate::FakeOptions::default())
    }

    #[test]
    fn topics_spread_leaders_and_grow() {
        let mut s = state(3);
        s.create_topic("t", 3, 1, None, false).unwrap();
        let leaders: Vec<i32> = s.topics["t"].partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders, [1, 2, 3]);
        assert_eq!(
            s.create_topic("t", 3, 1, None, false),
            Err(ErrorCode::TOPIC_ALREADY_EXISTS)
        );
        assert_eq!(
            s.create_topic("bad name", 1, 1, None, false),
            Err(ErrorCode::INVALID_TOPIC_EXCEPTION)
        );
        assert_eq!(
            s.create_topic("x", 1, 4, None, false),
            Err(ErrorCode::INVALID_REPLICATION_FACTOR)
        );
        assert_eq!(
            s.create_topic("x", 0, 1, None, false),
            Err(ErrorCode::INVALID_PARTITIONS)
        );
        s.create_topic("v", 2, 1, None, true).unwrap();
        assert!(!s.topics.contains_key("v"));
        s.create_partitions("t", 5, false).unwrap();
        assert_eq!(s.topics["t"].partitions.len(), 5);
        assert_eq!(
            s.create_partitions("t", 5, false),
            Err(ErrorCode::INVALID_PARTITIONS)
        );
        let id = s.topics["t"].id;
        assert_eq!(s.topic_name_by_id(&id).as_deref(), Some("t"));
    }

    #[test]
    fn coordinators_are_stable_and_movable() {
        let mut s = state(3);
        let c = s.coordinator(CoordinatorKind::Group, "g");
        assert_eq!(c, s.coordinator(CoordinatorKind::Group, "g"));
        s.coordinators
            .insert((CoordinatorKind::Group, "g".into()), c % 3 + 1);
        assert_eq!(s.coordinator(CoordinatorKind::Group, "g"), c % 3 + 1);
    }

    #[test]
    fn faults_are_consumed() {
        let mut s = state(1);
        s.faults.errors.insert(
            ApiKey::Produce,
            [ErrorCode::NOT_ENOUGH_REPLICAS; 2].into_iter().collect(),
        );
        assert_eq!(
            s.take_error(ApiKey::Produce),
            Some(ErrorCode::NOT_ENOUGH_REPLICAS)
        );
        assert_eq!(
            s.take_error(ApiKey::Produce),
            Some(ErrorCode::NOT_ENOUGH_REPLICAS)
        );
        assert_eq!(s.take_error(ApiKey::Produce), None);
        s.faults.drops.insert(ApiKey::Fetch, 1);
        assert!(s.take_drop(ApiKey::Fetch));
        assert!(!s.take_drop(ApiKey::Fetch));
    }
}
