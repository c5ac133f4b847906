//! The member's identity in its group, shared by both group protocols:
//! what it subscribes to ([`Selection`]), its place in the group
//! ([`Membership`]: group id, member id, generation or member epoch, the
//! last assignment), and the accessors every part of `group` reads it by.

use super::super::Shared;
use crate::error::Result;
use kpax_proto::generated::ErrorCode;
use std::collections::BTreeMap;

/// What a member subscribes to.
#[derive(Debug, Clone)]
pub(crate) enum Selection {
    /// These topics.
    Topics(Vec<String>),
    /// Every non-internal topic whose whole name matches `include` and not
    /// `exclude`, looked up again every metadata check interval.
    Pattern {
        include: regex::Regex,
        exclude: Option<regex::Regex>,
    },
}

/// The member's place in the group, shared with commits.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub group_id: String,
    pub member_id: String,
    pub generation: i32,
    pub stopped: bool,
    /// The highest JoinGroup version to use (lowered for brokers that
    /// close the connection on a version they advertise).
    pub join_version_cap: Option<i16>,
    /// The last assignment, minus what cooperative rebalances revoked
    /// since (the eager `sticky` assignor's memory).
    pub owned: BTreeMap<String, Vec<i32>>,
    /// The generation in which `owned` was assigned.
    pub owned_generation: i32,
    /// Joined with the consumer group protocol (KIP-848): `generation` is
    /// the member epoch, and leaving is a ConsumerGroupHeartbeat.
    pub consumer_protocol: bool,
}

impl Membership {
    /// A member of `group_id` that has not joined yet.
    pub(crate) fn new(group_id: String) -> Membership {
        Membership {
            group_id,
            member_id: String::new(),
            generation: -1,
            stopped: false,
            join_version_cap: None,
            owned: BTreeMap::new(),
            owned_generation: -1,
            consumer_protocol: false,
        }
    }
}

/// The membership now (`None` without a group).
pub(crate) fn membership(s: &Shared) -> Option<Membership> {
    s.group.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Changes the membership in place (nothing without a group).
pub(crate) fn set_membership(s: &Shared, f: impl FnOnce(&mut Membership)) {
    if let Some(m) = s.group.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        f(m);
    }
}

/// The topics `selection` means now, sorted.
pub(crate) async fn resolve(s: &Shared, selection: &Selection) -> Result<Vec<String>> {
    let mut topics = match selection {
        Selection::Topics(ts) => ts.clone(),
        Selection::Pattern { include, exclude } => {
            s.cluster.refresh(None).await?;
            s.cluster
                .cached_topics()
                .iter()
                .filter(|t| !t.is_internal && t.error == ErrorCode::NONE)
                .filter_map(|t| t.name.clone())
                .filter(|n| include.is_match(n) && !exclude.as_ref().is_some_and(|x| x.is_match(n)))
                .collect()
        }
    };
    topics.sort();
    topics.dedup();
    Ok(topics)
}

/// The group id, generation and member id of the membership now (`None`
/// without a group), for `Consumer::group_metadata`.
pub(crate) fn current_member(s: &Shared) -> Option<(String, i32, String)> {
    membership(s).map(|m| (m.group_id, m.generation, m.member_id))
}
