//! Which version of each API to use with one broker.

use kpax_proto::generated::ApiKey;
use std::collections::HashMap;

/// A broker's supported version ranges, from ApiVersions or a fallback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiVersions {
    ranges: HashMap<i16, (i16, i16)>,
}

impl ApiVersions {
    /// From `(api key, min, max)` triples.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (i16, i16, i16)>) -> Self {
        ApiVersions {
            ranges: ranges.into_iter().map(|(k, a, b)| (k, (a, b))).collect(),
        }
    }

    /// The broker's range for `api`, if it serves it.
    pub fn range(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.ranges.get(&(api as i16)).copied()
    }

    /// The highest version both sides support: ours is `ours` (already
    /// capped); `None` when the ranges do not meet or the broker lacks it.
    pub fn pick(&self, api: ApiKey, ours: (i16, i16)) -> Option<i16> {
        let (bmin, bmax) = self.range(api)?;
        let v = ours.1.min(bmax);
        (v >= ours.0.max(bmin)).then_some(v)
    }
}

/// Highest version kpax's own code sends of an API, where that is below
/// the newest version the generated codec knows, with the reason.
///
/// [`Broker`](super::Broker) applies these to every negotiation (before a
/// user's `with_version_cap`), and `kpax versions` shows them, so what it
/// prints is what the client really uses.
pub const CLIENT_CAPS: &[(ApiKey, i16, &str)] = &[
    (
        ApiKey::Produce,
        11,
        "v12 is for transactions v2 (KIP-890 part 2), v13 names topics by id; kpax sends v11",
    ),
    (
        ApiKey::Fetch,
        12,
        "v13+ names topics by id; kpax fetches by name",
    ),
    (
        ApiKey::ListOffsets,
        9,
        "v10 (async remote offsets, KIP-1075) and v11 (earliest pending upload, KIP-1023) are not implemented",
    ),
    (
        ApiKey::Metadata,
        12,
        "v13's top-level error (KIP-1102 rebootstrap) is not handled yet",
    ),
    (
        ApiKey::OffsetCommit,
        9,
        "v10+ names topics by id; kpax commits by name",
    ),
    (
        ApiKey::OffsetFetch,
        9,
        "v10+ names topics by id; kpax fetches offsets by name",
    ),
    (
        ApiKey::TxnOffsetCommit,
        4,
        "v5 is for transactions v2 (KIP-890 part 2), v6 names topics by id",
    ),
    (
        ApiKey::EndTxn,
        4,
        "v5 is for transactions v2 (KIP-890 part 2), which kpax does not implement",
    ),
    (
        ApiKey::InitProducerId,
        5,
        "v6 is two-phase commit (KIP-939), which kpax does not implement",
    ),
    (
        ApiKey::AddPartitionsToTxn,
        3,
        "v4+ is for brokers (KIP-890 verification), not clients",
    ),
    (
        ApiKey::DescribeGroups,
        5,
        "v6 answers GROUP_ID_NOT_FOUND for a missing group (KIP-1043); kpax reports state Dead",
    ),
    (
        ApiKey::ApiVersions,
        4,
        "v5 checks cluster and node ids (KIP-1242), not implemented",
    ),
    (
        ApiKey::DeleteGroups,
        2,
        "v3's per-group error message (Kafka 4.x) is not reported yet",
    ),
    (
        ApiKey::DescribeCluster,
        1,
        "v2's fenced brokers (KIP-1073) are not reported yet",
    ),
];

/// The client cap of `api` from [`CLIENT_CAPS`], if any.
pub fn client_cap(api: ApiKey) -> Option<i16> {
    CLIENT_CAPS
        .iter()
        .find(|(a, _, _)| *a == api)
        .map(|(_, v, _)| *v)
}

/// The version range kpax's own code sends of `api`: the generated range,
/// lowered to its [`client_cap`].
pub fn client_range(api: ApiKey) -> (i16, i16) {
    let (lo, hi) = api.versions();
    (lo, client_cap(api).map_or(hi, |c| c.min(hi)))
}

/// A Kafka release whose versions to assume for brokers that predate
/// ApiVersions (they close the connection on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegacyVersion {
    /// Kafka 0.8.2: produce/fetch/offsets/metadata, offset commit/fetch, coordinator lookup.
    V0_8_2,
    /// Kafka 0.9.0: adds the group membership APIs.
    V0_9_0,
}

impl LegacyVersion {
    /// The version table of that release.
    pub fn api_versions(self) -> ApiVersions {
        let base: &[(ApiKey, i16)] = &[
            (ApiKey::Produce, 0),
            (ApiKey::Fetch, 0),
            (ApiKey::ListOffsets, 0),
            (ApiKey::Metadata, 0),
            (ApiKey::OffsetCommit, 1),
            (ApiKey::OffsetFetch, 1),
            (ApiKey::FindCoordinator, 0),
        ];
        let groups: &[(ApiKey, i16)] = &[
            (ApiKey::Produce, 1),
            (ApiKey::Fetch, 1),
            (ApiKey::OffsetCommit, 2),
            (ApiKey::JoinGroup, 0),
            (ApiKey::Heartbeat, 0),
            (ApiKey::LeaveGroup, 0),
            (ApiKey::SyncGroup, 0),
            (ApiKey::DescribeGroups, 0),
            (ApiKey::ListGroups, 0),
        ];
        let mut v: HashMap<i16, (i16, i16)> =
            base.iter().map(|(k, m)| (*k as i16, (0, *m))).collect();
        if self == LegacyVersion::V0_9_0 {
            for (k, m) in groups {
                v.insert(*k as i16, (0, *m));
            }
        }
        ApiVersions { ranges: v }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_highest_common_version() {
        let v = ApiVersions::from_ranges([(3, 0, 12), (1, 4, 11)]);
        assert_eq!(v.pick(ApiKey::Metadata, (0, 12)), Some(12));
        assert_eq!(v.pick(ApiKey::Metadata, (0, 9)), Some(9));
        assert_eq!(v.pick(ApiKey::Fetch, (0, 3)), None);
        assert_eq!(v.pick(ApiKey::Produce, (0, 11)), None);
    }

    #[test]
    fn legacy_tables() {
        let v = LegacyVersion::V0_8_2.api_versions();
        assert_eq!(v.pick(ApiKey::Produce, (0, 11)), Some(0));
        assert_eq!(v.pick(ApiKey::JoinGroup, (0, 9)), None);
        assert_eq!(
            LegacyVersion::V0_9_0
                .api_versions()
                .pick(ApiKey::JoinGroup, (0, 9)),
            Some(0)
        );
    }
}
