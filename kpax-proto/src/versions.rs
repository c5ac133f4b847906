//! Which versions of each API kpax speaks: one table for the client
//! (`kpax`), the fake broker (`kpax-fake`) and `kpax versions` (`kpax-cli`).
//!
//! - The generated codec knows every version of the protocol pages it was
//!   generated from: [`ApiKey::versions`].
//! - [`VERSION_CAPS`] lowers that for the APIs whose newest versions kpax's
//!   client does not send, or kpax-fake does not serve, each with the
//!   reason. [`client_range`] is what the client offers in every
//!   negotiation; [`fake_max`] is what the fake serves.
//! - [`KafkaRelease`] holds the version tables of old Kafka releases: the
//!   client assumes Kafka 0.8.2's or 0.9.0's for brokers that predate
//!   ApiVersions, and the fake can pretend to be Kafka 0.10.2 or 2.8.
//!
//! ```
//! use kpax_proto::generated::ApiKey;
//! use kpax_proto::versions::{client_cap, client_range, KafkaRelease};
//!
//! assert_eq!(client_cap(ApiKey::Fetch), Some(12));
//! assert_eq!(client_range(ApiKey::Fetch).1, 12);
//! assert!(KafkaRelease::V0_8_2.max_versions().contains(&(ApiKey::Produce as i16, 0)));
//! ```

use crate::generated::ApiKey;

/// Kafka's API keys by name, as the numbers Kafka gave them. The tables
/// below name APIs through these rather than [`ApiKey`]'s variants, so
/// that they build against a codec generated from any protocol page (an
/// older page lacks the share-group APIs and calls ListOffsets "Offsets");
/// an API the codec does not know is simply not in effect. A unit test
/// checks each number against the current codec.
pub mod key {
    /// Produce.
    pub const PRODUCE: i16 = 0;
    /// Fetch.
    pub const FETCH: i16 = 1;
    /// ListOffsets.
    pub const LIST_OFFSETS: i16 = 2;
    /// Metadata.
    pub const METADATA: i16 = 3;
    /// OffsetCommit.
    pub const OFFSET_COMMIT: i16 = 8;
    /// OffsetFetch.
    pub const OFFSET_FETCH: i16 = 9;
    /// FindCoordinator.
    pub const FIND_COORDINATOR: i16 = 10;
    /// JoinGroup.
    pub const JOIN_GROUP: i16 = 11;
    /// Heartbeat.
    pub const HEARTBEAT: i16 = 12;
    /// LeaveGroup.
    pub const LEAVE_GROUP: i16 = 13;
    /// SyncGroup.
    pub const SYNC_GROUP: i16 = 14;
    /// DescribeGroups.
    pub const DESCRIBE_GROUPS: i16 = 15;
    /// ListGroups.
    pub const LIST_GROUPS: i16 = 16;
    /// ApiVersions.
    pub const API_VERSIONS: i16 = 18;
    /// CreateTopics.
    pub const CREATE_TOPICS: i16 = 19;
    /// DeleteTopics.
    pub const DELETE_TOPICS: i16 = 20;
    /// DeleteRecords.
    pub const DELETE_RECORDS: i16 = 21;
    /// InitProducerId.
    pub const INIT_PRODUCER_ID: i16 = 22;
    /// AddPartitionsToTxn.
    pub const ADD_PARTITIONS_TO_TXN: i16 = 24;
    /// EndTxn.
    pub const END_TXN: i16 = 26;
    /// TxnOffsetCommit.
    pub const TXN_OFFSET_COMMIT: i16 = 28;
    /// DescribeConfigs.
    pub const DESCRIBE_CONFIGS: i16 = 32;
    /// CreatePartitions.
    pub const CREATE_PARTITIONS: i16 = 37;
    /// DeleteGroups.
    pub const DELETE_GROUPS: i16 = 42;
    /// IncrementalAlterConfigs.
    pub const INCREMENTAL_ALTER_CONFIGS: i16 = 44;
    /// DescribeCluster.
    pub const DESCRIBE_CLUSTER: i16 = 60;
    /// ShareGroupHeartbeat.
    pub const SHARE_GROUP_HEARTBEAT: i16 = 76;
    /// ShareGroupDescribe.
    pub const SHARE_GROUP_DESCRIBE: i16 = 77;
    /// ShareFetch.
    pub const SHARE_FETCH: i16 = 78;
    /// ShareAcknowledge.
    pub const SHARE_ACKNOWLEDGE: i16 = 79;
}

/// One API whose newest versions kpax does not speak on one side or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionCap {
    /// The API's key ([`key`]).
    pub key: i16,
    /// The highest version kpax's client sends; `None`: every version the
    /// codec knows.
    pub client: Option<i16>,
    /// The highest version kpax-fake serves; `None`: every version the
    /// codec knows.
    pub fake: Option<i16>,
    /// Why: the client's cap where it has one (what `kpax versions`
    /// prints), else the fake's.
    pub why: &'static str,
}

const fn cap(key: i16, client: i16, fake: i16, why: &'static str) -> VersionCap {
    VersionCap {
        key,
        client: Some(client),
        fake: Some(fake),
        why,
    }
}

/// The version caps of kpax's client and of kpax-fake, below the newest
/// version the generated codec knows (from newer Kafka pages).
///
/// The fake serves at least what the client sends, so no kpax client
/// negotiates a version the fake would answer wrongly; it serves more of
/// Fetch (v13-v17 name topics by id, which the fake implements for other
/// clients) and every version of AddPartitionsToTxn (v4+ is the brokers'
/// batched form).
pub const VERSION_CAPS: &[VersionCap] = &[
    cap(
        key::PRODUCE,
        11,
        11,
        "v12 is for transactions v2 (KIP-890 part 2), v13 names topics by id; kpax sends v11",
    ),
    VersionCap {
        key: key::FETCH,
        client: Some(12),
        // v18 adds the follower's high watermark (a replica's field).
        fake: Some(17),
        why: "v13+ names topics by id; kpax fetches by name",
    },
    cap(
        key::LIST_OFFSETS,
        9,
        9,
        "v10 (async remote offsets, KIP-1075) and v11 (earliest pending upload, KIP-1023) are not implemented",
    ),
    cap(
        key::METADATA,
        12,
        12,
        "v13's top-level error (KIP-1102 rebootstrap) is not handled yet",
    ),
    cap(
        key::OFFSET_COMMIT,
        9,
        9,
        "v10+ names topics by id; kpax commits by name",
    ),
    cap(
        key::OFFSET_FETCH,
        9,
        9,
        "v10+ names topics by id; kpax fetches offsets by name",
    ),
    cap(
        key::TXN_OFFSET_COMMIT,
        4,
        4,
        "v5 is for transactions v2 (KIP-890 part 2), v6 names topics by id",
    ),
    cap(
        key::END_TXN,
        4,
        4,
        "v5 is for transactions v2 (KIP-890 part 2), which kpax does not implement",
    ),
    cap(
        key::INIT_PRODUCER_ID,
        5,
        5,
        "v6 is two-phase commit (KIP-939), which kpax does not implement",
    ),
    VersionCap {
        key: key::ADD_PARTITIONS_TO_TXN,
        client: Some(3),
        fake: None,
        why: "v4+ is for brokers (KIP-890 verification), not clients",
    },
    cap(
        key::DESCRIBE_GROUPS,
        5,
        5,
        "v6 answers GROUP_ID_NOT_FOUND for a missing group (KIP-1043); kpax reports state Dead",
    ),
    cap(
        key::API_VERSIONS,
        4,
        4,
        "v5 checks cluster and node ids (KIP-1242), not implemented",
    ),
    cap(
        key::DELETE_GROUPS,
        2,
        2,
        "v3's per-group error message (Kafka 4.x) is not reported yet",
    ),
    cap(
        key::DESCRIBE_CLUSTER,
        1,
        1,
        "v2's fenced brokers (KIP-1073) are not reported yet",
    ),
    VersionCap {
        key: key::SHARE_GROUP_HEARTBEAT,
        client: None,
        fake: Some(1),
        why: "the fake implements these share group (KIP-932) versions, not those of later pages",
    },
    VersionCap {
        key: key::SHARE_GROUP_DESCRIBE,
        client: None,
        fake: Some(1),
        why: "the fake implements these share group (KIP-932) versions, not those of later pages",
    },
    VersionCap {
        key: key::SHARE_FETCH,
        client: None,
        fake: Some(2),
        why: "the fake implements these share group (KIP-932) versions, not those of later pages",
    },
    VersionCap {
        key: key::SHARE_ACKNOWLEDGE,
        client: None,
        fake: Some(2),
        why: "the fake implements these share group (KIP-932) versions, not those of later pages",
    },
];

impl VersionCap {
    /// The API, when the codec knows it.
    pub fn api(&self) -> Option<ApiKey> {
        ApiKey::try_from(self.key).ok()
    }
}

fn find(api: ApiKey) -> Option<&'static VersionCap> {
    VERSION_CAPS.iter().find(|c| c.key == api as i16)
}

/// The client's cap of `api` from [`VERSION_CAPS`], if any.
pub fn client_cap(api: ApiKey) -> Option<i16> {
    find(api)?.client
}

/// The version range kpax's client sends of `api`: the generated range,
/// lowered to its [`client_cap`].
pub fn client_range(api: ApiKey) -> (i16, i16) {
    let (lo, hi) = api.versions();
    (lo, client_cap(api).map_or(hi, |c| c.min(hi)))
}

/// The client's caps with their reasons, in table order: `(api, highest
/// version sent, why)`.
pub fn client_caps() -> impl Iterator<Item = (ApiKey, i16, &'static str)> {
    VERSION_CAPS
        .iter()
        .filter_map(|c| Some((c.api()?, c.client?, c.why)))
}

/// The highest version of `api` kpax-fake serves (when it serves the API
/// at all): the codec's newest, lowered to the fake's cap.
pub fn fake_max(api: ApiKey) -> i16 {
    let hi = api.versions().1;
    find(api).and_then(|c| c.fake).map_or(hi, |c| c.min(hi))
}

/// A Kafka release whose API versions kpax knows, for brokers that predate
/// ApiVersions (Kafka 0.8.2 and 0.9.0 close the connection on it) and for
/// kpax-fake's presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KafkaRelease {
    /// Kafka 0.8.2: produce, fetch, offsets, metadata, offset commit and
    /// fetch, coordinator lookup.
    V0_8_2,
    /// Kafka 0.9.0: adds the group membership APIs.
    V0_9_0,
    /// Kafka 0.10.2: no idempotence, no CreatePartitions, legacy message
    /// sets (Produce v2 / Fetch v3).
    V0_10_2,
    /// Kafka 2.8.
    V2_8,
}

impl KafkaRelease {
    /// The highest version of each API the release serves (each from v0),
    /// by API key ([`key`]); an API missing is not served.
    pub fn max_versions(self) -> &'static [(i16, i16)] {
        use key::*;
        match self {
            KafkaRelease::V0_8_2 => &[
                (PRODUCE, 0),
                (FETCH, 0),
                (LIST_OFFSETS, 0),
                (METADATA, 0),
                (OFFSET_COMMIT, 1),
                (OFFSET_FETCH, 1),
                (FIND_COORDINATOR, 0),
            ],
            KafkaRelease::V0_9_0 => &[
                (PRODUCE, 1),
                (FETCH, 1),
                (LIST_OFFSETS, 0),
                (METADATA, 0),
                (OFFSET_COMMIT, 2),
                (OFFSET_FETCH, 1),
                (FIND_COORDINATOR, 0),
                (JOIN_GROUP, 0),
                (HEARTBEAT, 0),
                (LEAVE_GROUP, 0),
                (SYNC_GROUP, 0),
                (DESCRIBE_GROUPS, 0),
                (LIST_GROUPS, 0),
            ],
            KafkaRelease::V0_10_2 => &[
                (PRODUCE, 2),
                (FETCH, 3),
                (LIST_OFFSETS, 1),
                (METADATA, 2),
                (OFFSET_COMMIT, 2),
                (OFFSET_FETCH, 2),
                (FIND_COORDINATOR, 0),
                (JOIN_GROUP, 1),
                (HEARTBEAT, 0),
                (LEAVE_GROUP, 0),
                (SYNC_GROUP, 0),
                (DESCRIBE_GROUPS, 0),
                (LIST_GROUPS, 0),
                (API_VERSIONS, 0),
                (CREATE_TOPICS, 1),
                (DELETE_TOPICS, 0),
            ],
            KafkaRelease::V2_8 => &[
                (PRODUCE, 9),
                (FETCH, 12),
                (LIST_OFFSETS, 6),
                (METADATA, 11),
                (OFFSET_COMMIT, 8),
                (OFFSET_FETCH, 7),
                (FIND_COORDINATOR, 3),
                (JOIN_GROUP, 7),
                (HEARTBEAT, 4),
                (LEAVE_GROUP, 4),
                (SYNC_GROUP, 5),
                (DESCRIBE_GROUPS, 5),
                (LIST_GROUPS, 4),
                (API_VERSIONS, 3),
                (CREATE_TOPICS, 7),
                (DELETE_TOPICS, 6),
                (INIT_PRODUCER_ID, 4),
                (CREATE_PARTITIONS, 3),
                (DELETE_RECORDS, 2),
                (DESCRIBE_CONFIGS, 4),
                (DELETE_GROUPS, 2),
                (INCREMENTAL_ALTER_CONFIGS, 1),
                (DESCRIBE_CLUSTER, 0),
            ],
        }
    }
}

// The tests name APIs of the current codec (`--cfg kpax_other_page` builds
// it from another release's page, where some are missing).
#[cfg(all(test, not(kpax_other_page)))]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_api_and_the_fake_serves_what_the_client_sends() {
        for (i, c) in VERSION_CAPS.iter().enumerate() {
            let api = c.api().expect("a key the codec knows");
            assert!(
                VERSION_CAPS[i + 1..].iter().all(|d| d.key != c.key),
                "{api:?} twice"
            );
            assert!(c.client.is_some() || c.fake.is_some(), "{api:?}");
            assert!(
                client_range(api).1 <= fake_max(api),
                "{api:?}: the client sends more than the fake serves"
            );
        }
    }

    #[test]
    fn key_numbers_are_the_codecs() {
        let named = [
            (key::ADD_PARTITIONS_TO_TXN, ApiKey::AddPartitionsToTxn),
            (key::API_VERSIONS, ApiKey::ApiVersions),
            (key::CREATE_PARTITIONS, ApiKey::CreatePartitions),
            (key::CREATE_TOPICS, ApiKey::CreateTopics),
            (key::DELETE_GROUPS, ApiKey::DeleteGroups),
            (key::DELETE_RECORDS, ApiKey::DeleteRecords),
            (key::DELETE_TOPICS, ApiKey::DeleteTopics),
            (key::DESCRIBE_CLUSTER, ApiKey::DescribeCluster),
            (key::DESCRIBE_CONFIGS, ApiKey::DescribeConfigs),
            (key::DESCRIBE_GROUPS, ApiKey::DescribeGroups),
            (key::END_TXN, ApiKey::EndTxn),
            (key::FETCH, ApiKey::Fetch),
            (key::FIND_COORDINATOR, ApiKey::FindCoordinator),
            (key::HEARTBEAT, ApiKey::Heartbeat),
            (
                key::INCREMENTAL_ALTER_CONFIGS,
                ApiKey::IncrementalAlterConfigs,
            ),
            (key::INIT_PRODUCER_ID, ApiKey::InitProducerId),
            (key::JOIN_GROUP, ApiKey::JoinGroup),
            (key::LEAVE_GROUP, ApiKey::LeaveGroup),
            (key::LIST_GROUPS, ApiKey::ListGroups),
            (key::LIST_OFFSETS, ApiKey::ListOffsets),
            (key::METADATA, ApiKey::Metadata),
            (key::OFFSET_COMMIT, ApiKey::OffsetCommit),
            (key::OFFSET_FETCH, ApiKey::OffsetFetch),
            (key::PRODUCE, ApiKey::Produce),
            (key::SHARE_ACKNOWLEDGE, ApiKey::ShareAcknowledge),
            (key::SHARE_FETCH, ApiKey::ShareFetch),
            (key::SHARE_GROUP_DESCRIBE, ApiKey::ShareGroupDescribe),
            (key::SHARE_GROUP_HEARTBEAT, ApiKey::ShareGroupHeartbeat),
            (key::SYNC_GROUP, ApiKey::SyncGroup),
            (key::TXN_OFFSET_COMMIT, ApiKey::TxnOffsetCommit),
        ];
        for (number, api) in named {
            assert_eq!(number, api as i16, "{api:?}");
        }
    }

    #[test]
    fn client_caps_and_ranges() {
        let caps: Vec<_> = client_caps().map(|(a, v, _)| (a, v)).collect();
        assert_eq!(caps.len(), 14);
        assert_eq!(caps[0], (ApiKey::Produce, 11));
        assert_eq!(client_cap(ApiKey::AddPartitionsToTxn), Some(3));
        assert_eq!(client_cap(ApiKey::ShareFetch), None);
        assert_eq!(client_cap(ApiKey::CreateTopics), None);
        assert_eq!(
            client_range(ApiKey::CreateTopics),
            ApiKey::CreateTopics.versions()
        );
        assert_eq!(
            fake_max(ApiKey::AddPartitionsToTxn),
            ApiKey::AddPartitionsToTxn.versions().1
        );
    }

    #[test]
    fn release_tables_grow_with_the_releases() {
        let releases = [
            KafkaRelease::V0_8_2,
            KafkaRelease::V0_9_0,
            KafkaRelease::V0_10_2,
            KafkaRelease::V2_8,
        ];
        for pair in releases.windows(2) {
            let (old, new) = (pair[0].max_versions(), pair[1].max_versions());
            for (api, v) in old {
                let newer = new.iter().find(|(a, _)| a == api).map(|(_, v)| *v);
                assert!(
                    newer.is_some_and(|n| n >= *v),
                    "{api:?} v{v} in {:?}, {newer:?} in {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
    }
}
