//! Which APIs the fake serves, at which versions, and presets that make it
//! behave like an older Kafka for version negotiation tests.

use std::collections::BTreeMap;

use kpax_proto::generated::ApiKey;

/// The APIs the fake implements.
pub const SERVED: [ApiKey; 32] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::InitProducerId,
    ApiKey::CreatePartitions,
    ApiKey::DeleteRecords,
    ApiKey::DescribeConfigs,
    ApiKey::DeleteGroups,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::DescribeCluster,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::EndTxn,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::ShareGroupHeartbeat,
    ApiKey::ShareGroupDescribe,
    ApiKey::ShareFetch,
    ApiKey::ShareAcknowledge,
];

/// The highest version the fake implements of APIs whose newer versions
/// (Kafka 4.x pages) change what a server must do: topic ids in Produce v13
/// and OffsetCommit/OffsetFetch v10, transactions v2 (KIP-890 part 2) in
/// Produce v12, EndTxn v5 and TxnOffsetCommit v5, two-phase commit in
/// InitProducerId v6, and the new fields of the others. Other APIs are
/// served at every version kpax-proto knows.
pub const IMPLEMENTED: [(ApiKey, i16); 17] = [
    (ApiKey::Produce, 11),
    (ApiKey::Fetch, 17),
    (ApiKey::ListOffsets, 9),
    (ApiKey::Metadata, 12),
    (ApiKey::OffsetCommit, 9),
    (ApiKey::OffsetFetch, 9),
    (ApiKey::DescribeGroups, 5),
    (ApiKey::ApiVersions, 4),
    (ApiKey::InitProducerId, 5),
    (ApiKey::DeleteGroups, 2),
    (ApiKey::DescribeCluster, 1),
    (ApiKey::TxnOffsetCommit, 4),
    (ApiKey::EndTxn, 4),
    (ApiKey::ShareGroupHeartbeat, 1),
    (ApiKey::ShareGroupDescribe, 1),
    (ApiKey::ShareFetch, 2),
    (ApiKey::ShareAcknowledge, 2),
];

/// The highest version of `api` the fake implements.
fn implemented(api: ApiKey) -> i16 {
    IMPLEMENTED
        .iter()
        .find(|(k, _)| *k == api)
        .map_or(api.versions().1, |&(_, v)| v.min(api.versions().1))
}

/// A table of the highest version served per API. APIs missing from a
/// pinned table are not served at all (not advertised, and a request for
/// one closes the connection, as a broker that lacks the API does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionTable {
    max: BTreeMap<ApiKey, i16>,
}

impl Default for VersionTable {
    /// Every served API at every version the fake implements.
    fn default() -> Self {
        VersionTable::latest()
    }
}

impl VersionTable {
    /// Every served API at every version the fake implements.
    pub fn latest() -> VersionTable {
        VersionTable {
            max: SERVED.iter().map(|&k| (k, implemented(k))).collect(),
        }
    }

    /// A table from `(api, max version)` pairs; each is clipped to what
    /// the fake implements, and APIs the fake does not implement are ignored.
    pub fn from_pairs(pairs: &[(ApiKey, i16)]) -> VersionTable {
        VersionTable {
            max: pairs
                .iter()
                .filter(|(k, _)| SERVED.contains(k))
                .map(|&(k, v)| (k, v.min(implemented(k))))
                .collect(),
        }
    }

    /// Apache Kafka 0.10.2: no idempotence, no CreatePartitions, legacy
    /// message sets (Produce v2 / Fetch v3).
    pub fn kafka_0_10() -> VersionTable {
        use ApiKey::*;
        VersionTable::from_pairs(&[
            (Produce, 2),
            (Fetch, 3),
            (ListOffsets, 1),
            (Metadata, 2),
            (OffsetCommit, 2),
            (OffsetFetch, 2),
            (FindCoordinator, 0),
            (JoinGroup, 1),
            (Heartbeat, 0),
            (LeaveGroup, 0),
            (SyncGroup, 0),
            (DescribeGroups, 0),
            (ListGroups, 0),
            (ApiVersions, 0),
            (CreateTopics, 1),
            (DeleteTopics, 0),
        ])
    }

    /// Apache Kafka 2.8.
    pub fn kafka_2_8() -> VersionTable {
        use ApiKey::*;
        VersionTable::from_pairs(&[
            (Produce, 9),
            (Fetch, 12),
            (ListOffsets, 6),
            (Metadata, 11),
            (OffsetCommit, 8),
            (OffsetFetch, 7),
            (FindCoordinator, 3),
            (JoinGroup, 7),
            (Heartbeat, 4),
            (LeaveGroup, 4),
            (SyncGroup, 5),
            (DescribeGroups, 5),
            (ListGroups, 4),
            (ApiVersions, 3),
            (CreateTopics, 7),
            (DeleteTopics, 6),
            (InitProducerId, 4),
            (CreatePartitions, 3),
            (DeleteRecords, 2),
            (DescribeConfigs, 4),
            (DeleteGroups, 2),
            (IncrementalAlterConfigs, 1),
            (DescribeCluster, 0),
        ])
    }

    /// Serves `api` only up to `max` (or not at all when `max` < 0).
    pub fn pin(mut self, api: ApiKey, max: i16) -> VersionTable {
        if max < 0 {
            self.max.remove(&api);
        } else if SERVED.contains(&api) {
            self.max.insert(api, max.min(implemented(api)));
        }
        self
    }

    /// The served range of `api`, `None` when it is not served.
    pub fn range(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.max.get(&api).map(|&max| (api.versions().0, max))
    }

    /// Every served API with its range, by key.
    pub fn iter(&self) -> impl Iterator<Item = (ApiKey, i16, i16)> + '_ {
        self.max.iter().map(|(&k, &max)| (k, k.versions().0, max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_clip_and_pin() {
        let t = VersionTable::latest();
        // Fetch v18 (Kafka 4.x) is known to kpax-proto, not implemented here.
        assert_eq!(t.range(ApiKey::Fetch), Some((0, 17)));
        assert_eq!(t.range(ApiKey::Produce), Some((0, 11)));
        assert_eq!(
            t.range(ApiKey::CreateTopics),
            Some((0, ApiKey::CreateTopics.versions().1))
        );
        assert_eq!(t.range(ApiKey::SaslHandshake), None);
        let old = VersionTable::kafka_0_10();
        assert_eq!(old.range(ApiKey::Produce), Some((0, 2)));
        assert_eq!(old.range(ApiKey::InitProducerId), None);
        let pinned = VersionTable::kafka_2_8()
            .pin(ApiKey::Fetch, 4)
            .pin(ApiKey::Metadata, -1);
        assert_eq!(pinned.range(ApiKey::Fetch), Some((0, 4)));
        assert_eq!(pinned.range(ApiKey::Metadata), None);
        assert_eq!(pinned.iter().count(), 22);
    }
}
