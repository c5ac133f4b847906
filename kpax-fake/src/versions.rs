//! Which APIs the fake serves, at which versions, and presets that make it
//! behave like an older Kafka for version negotiation tests.

use std::collections::BTreeMap;

use kpax_proto::generated::ApiKey;
use kpax_proto::versions::{self, KafkaRelease};

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

/// The highest version of `api` the fake implements: kpax-proto's one
/// version table ([`kpax_proto::versions::VERSION_CAPS`], the fake's
/// column), which stops short of the Kafka 4.x versions that change what a
/// server must do (topic ids in Produce v13 and OffsetCommit/OffsetFetch
/// v10, transactions v2 (KIP-890 part 2) in Produce v12, EndTxn v5 and
/// TxnOffsetCommit v5, two-phase commit in InitProducerId v6, and the new
/// fields of the others). Other APIs are served at every version
/// kpax-proto knows.
fn implemented(api: ApiKey) -> i16 {
    versions::fake_max(api)
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

    /// The table of Kafka `release` (kpax-proto's [`KafkaRelease`]), as
    /// [`VersionTable::from_pairs`] makes it.
    fn release(release: KafkaRelease) -> VersionTable {
        let pairs: Vec<(ApiKey, i16)> = release
            .max_versions()
            .iter()
            .filter_map(|&(k, v)| Some((ApiKey::try_from(k).ok()?, v)))
            .collect();
        VersionTable::from_pairs(&pairs)
    }

    /// Apache Kafka 0.10.2: no idempotence, no CreatePartitions, legacy
    /// message sets (Produce v2 / Fetch v3); the table is kpax-proto's
    /// [`KafkaRelease::V0_10_2`].
    pub fn kafka_0_10() -> VersionTable {
        VersionTable::release(KafkaRelease::V0_10_2)
    }

    /// Apache Kafka 2.8 (kpax-proto's [`KafkaRelease::V2_8`]).
    pub fn kafka_2_8() -> VersionTable {
        VersionTable::release(KafkaRelease::V2_8)
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
