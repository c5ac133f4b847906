//! Which version of each API to use with one broker.

use kpax_proto::generated::ApiKey;
use kpax_proto::versions::KafkaRelease;
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

/// The API versions kpax's own code sends: one table in kpax-proto
/// ([`kpax_proto::versions::VERSION_CAPS`]), shared with kpax-fake and
/// `kpax versions`.
///
/// [`Broker`](super::Broker) applies the client caps to every negotiation
/// (before a user's `with_version_cap`), and `kpax versions` shows them, so
/// what it prints is what the client really uses.
pub use kpax_proto::versions::{client_cap, client_caps, client_range};

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
    /// The release in kpax-proto's version tables.
    fn release(self) -> KafkaRelease {
        match self {
            LegacyVersion::V0_8_2 => KafkaRelease::V0_8_2,
            LegacyVersion::V0_9_0 => KafkaRelease::V0_9_0,
        }
    }

    /// The version table of that release.
    pub fn api_versions(self) -> ApiVersions {
        ApiVersions::from_ranges(
            self.release()
                .max_versions()
                .iter()
                .map(|&(k, max)| (k, 0, max)),
        )
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
