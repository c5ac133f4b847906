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
//! assert!(KafkaRelease::V0_8_2.max_versions().contains(&(ApiKey::Produce, 0)));
//! ```

use crate::generated::ApiKey;

/// One API whose newest versions kpax does not speak on one side or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionCap {
    /// The API.
    pub api: ApiKey,
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

const fn cap(api: ApiKey, client: i16, fake: i16, why: &'static str) -> VersionCap {
    VersionCap {
        api,
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
        ApiKey::Produce,
        11,
        11,
        "v12 is for transactions v2 (KIP-890 part 2), v13 names topics by id; kpax sends v11",
    ),
    VersionCap {
        api: ApiKey::Fetch,
        client: Some(12),
        // v18 adds the follower's high watermark (a replica's field).
        fake: Some(17),
        why: "v13+ names topics by id; kpax fetches by name",
    },
    cap(
        ApiKey::ListOffsets,
        9,
        9,
        "v10 (async remote offsets, KIP-1075) and v11 (earliest pending upload, KIP-1023) are not implemented",
    ),
    cap(
        ApiKey::Metadata,
        12,
        12,
        "v13's top-level error (KIP-1102 rebootstrap) is not handled yet",
    ),
    cap(
        ApiKey::OffsetCommit,
        9,
        9,
        "v10+ names topics by id; kpax commits by name",
    ),
    cap(
        ApiKey::OffsetFetch,
        9,
        9,
        "v10+ names topics by id; kpax fetches offsets by name",
    ),
    cap(
        ApiKey::TxnOffsetCommit,
        4,
        4,
        "v5 is for transactions v2 (KIP-890 part 2), v6 names topics by id",
    ),
    cap(
        ApiKey::EndTxn,
        4,
        4,
        "v5 is for transactions v2 (KIP-890 part 2), which kpax does not implement",
    ),
    cap(
        ApiKey::InitProducerId,
        5,
        5,
        "v6 is two-phase commit (KIP-939), which kpax does not implement",
    ),
    VersionCap {
        api: ApiKey::AddPartitionsToTxn,
        client: Some(3),
        fake: None,
        why: "v4+ is for brokers (KIP-890 verification), not clients",
    },
    cap(
        ApiKey::DescribeGroups,
        5,
        5,
        "v6 answers GROUP_ID_NOT_FOUND for a missing group (KIP-1043); kpax reports state Dead",
    ),
    cap(
        ApiKey::ApiVersions,
        4,
        4,
        "v5 checks cluster and node ids (KIP-1242), not implemented",
    ),
    cap(
        ApiKey::DeleteGroups,
        2,
        2,
        "v3's per-group error message (Kafka 4.x) is not reported yet",
    ),
    cap(
        ApiKey::DescribeCluster,
        1,
        1,
        "v2's fenced brokers (KIP-1073) are not reported yet",
    ),
    VersionCap {
        api: ApiKey::ShareGroupHeartbeat,
        client: None,
        fake: Some(1),
        why: "the fake implements these share group (KIP-932) versions, not those of later pages",
    },
    VersionCap {
        api: ApiKey::ShareGroupDescribe,
        client: None,
        fake: Some(1),
        why: "the fake implements these share group (KIP-932) versions, not those of later pages",
    },
    VersionCap {
        api: ApiKey::ShareFetch,
        client: None,
        fake: Some(2),
        why: "the fake implements these share group (KIP-932) versions, not those of later pages",
    },
    VersionCap {
        api: ApiKey::ShareAcknowledge,
        client: None,
        fake: Some(2),
        why: "the fake implements these share group (KIP-932) versions, not those of later pages",
    },
];

fn find(api: ApiKey) -> Option<&'static VersionCap> {
    VERSION_CAPS.iter().find(|c| c.api == api)
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
        .filter_map(|c| Some((c.api, c.client?, c.why)))
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
    /// The highest version of each API the release serves (each from v0);
    /// an API missing is not served.
    pub fn max_versions(self) -> &'static [(ApiKey, i16)] {
        use ApiKey::*;
        match self {
            KafkaRelease::V0_8_2 => &[
                (Produce, 0),
                (Fetch, 0),
                (ListOffsets, 0),
                (Metadata, 0),
                (OffsetCommit, 1),
                (OffsetFetch, 1),
                (FindCoordinator, 0),
            ],
            KafkaRelease::V0_9_0 => &[
                (Produce, 1),
                (Fetch, 1),
                (ListOffsets, 0),
                (Metadata, 0),
                (OffsetCommit, 2),
                (OffsetFetch, 1),
                (FindCoordinator, 0),
                (JoinGroup, 0),
                (Heartbeat, 0),
                (LeaveGroup, 0),
                (SyncGroup, 0),
                (DescribeGroups, 0),
                (ListGroups, 0),
            ],
            KafkaRelease::V0_10_2 => &[
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
            ],
            KafkaRelease::V2_8 => &[
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
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_api_and_the_fake_serves_what_the_client_sends() {
        for (i, c) in VERSION_CAPS.iter().enumerate() {
            assert!(
                VERSION_CAPS[i + 1..].iter().all(|d| d.api != c.api),
                "{:?} twice",
                c.api
            );
            assert!(c.client.is_some() || c.fake.is_some(), "{:?}", c.api);
            assert!(
                client_range(c.api).1 <= fake_max(c.api),
                "{:?}: the client sends more than the fake serves",
                c.api
            );
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
