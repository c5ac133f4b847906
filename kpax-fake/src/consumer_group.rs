//! The consumer group protocol (KIP-848): members heartbeat with
//! ConsumerGroupHeartbeat, the coordinator computes every member's target
//! assignment itself and hands partitions over incrementally.
//!
//! The rules kept here, as Kafka's coordinator keeps them:
//! - a member joins with epoch 0 and leaves with epoch -1 (-2 for a static
//!   member); joining, leaving, a new subscription or a topic growing bumps
//!   the group epoch and computes new targets (a sticky, uniform assignor:
//!   a member keeps what it may keep, the rest goes to the least loaded);
//! - a member that owns partitions outside its target is first told to
//!   revoke them (its assignment shrinks); a partition goes to its new owner
//!   only once no other member owns it or was last told it may have it;
//! - a member's epoch moves to the group epoch when it is sent a new
//!   assignment; a heartbeat with another epoch is FENCED_MEMBER_EPOCH, an
//!   unknown member UNKNOWN_MEMBER_ID; commits must carry the member's epoch
//!   (STALE_MEMBER_EPOCH otherwise).
//!
//! Everything is synchronous and takes the time as an argument.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kpax_proto::generated::ErrorCode;
use kpax_proto::wire::Uuid;

/// The heartbeat interval the coordinator asks for.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(250);
/// A member that does not heartbeat for this long is removed.
pub(crate) const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A partition, by topic name.
pub(crate) type Tp = (String, i32);

/// One member of a consumer-protocol group.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    pub instance_id: Option<String>,
    /// The member epoch.
    pub epoch: i32,
    pub subscribed: BTreeSet<String>,
    /// What the member last reported it owns.
    pub owned: BTreeSet<Tp>,
    /// What the assignor wants it to have.
    pub target: BTreeSet<Tp>,
    /// What it was last told it may have.
    pub sent: Option<BTreeSet<Tp>>,
    pub last_seen: Instant,
}

/// The consumer-protocol side of a group.
#[derive(Debug, Default)]
pub(crate) struct ConsumerGroup {
    /// The group epoch.
    pub epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    next_member: u64,
    /// The partition counts the targets were computed with.
    counts: BTreeMap<String, usize>,
}

/// What the heartbeat handler needs to know of the topics.
pub(crate) struct TopicInfo {
    pub id: Uuid,
    pub partitions: usize,
}

/// A heartbeat, decoded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Beat {
    pub member_id: String,
    pub epoch: i32,
    pub instance_id: Option<String>,
    pub subscribed: Option<BTreeSet<String>>,
    pub owned: Option<BTreeSet<Tp>>,
}

/// A heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BeatAnswer {
    pub member_id: String,
    pub epoch: i32,
    /// The new assignment, when it changed.
    pub assignment: Option<BTreeSet<Tp>>,
}

impl ConsumerGroup {
    /// Handles one heartbeat.
    pub fn heartbeat(
        &mut self,
        beat: Beat,
        topics: &BTreeMap<String, TopicInfo>,
        now: Instant,
    ) -> Result<BeatAnswer, ErrorCode> {
        let mut bump = false;
        let id = match beat.epoch {
            -1 | -2 => {
                if self.members.remove(&beat.member_id).is_none() {
                    return Err(ErrorCode::UNKNOWN_MEMBER_ID);
                }
                self.epoch += 1;
                self.compute_targets(topics);
                return Ok(BeatAnswer {
                    member_id: beat.member_id,
                    epoch: beat.epoch,
                    assignment: None,
                });
            }
            0 => {
                let Some(subscribed) = beat.subscribed.clone() else {
                    return Err(ErrorCode::INVALID_REQUEST);
                };
                let id = if beat.member_id.is_empty() {
                    self.next_member += 1;
                    format!("consumer-{}-{}", self.epoch, self.next_member)
                } else {
                    beat.member_id.clone()
                };
                // A static member coming back replaces its old self (which is
                // fenced: its heartbeats get UNKNOWN_MEMBER_ID) and takes
                // over its target.
                let mut target = BTreeSet::new();
                if let Some(i) = &beat.instance_id {
                    let old: Vec<String> = self
                        .members
                        .iter()
                        .filter(|(k, m)| m.instance_id.as_ref() == Some(i) && **k != id)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in old {
                        if let Some(m) = self.members.remove(&k) {
                            target = m.target;
                        }
                    }
                }
                self.members.insert(
                    id.clone(),
                    ConsumerMember {
                        instance_id: beat.instance_id.clone(),
                        epoch: 0,
                        subscribed,
                        owned: BTreeSet::new(),
                        target,
                        sent: None,
                        last_seen: now,
                    },
                );
                bump = true;
                id
            }
            e if e > 0 => {
                let Some(m) = self.members.get_mut(&beat.member_id) else {
                    return Err(ErrorCode::UNKNOWN_MEMBER_ID);
                };
                if m.epoch != e {
                    return Err(ErrorCode::FENCED_MEMBER_EPOCH);
                }
                m.last_seen = now;
                if let Some(s) = &beat.subscribed {
                    if *s != m.subscribed {
                        m.subscribed = s.clone();
                        bump = true;
                    }
                }
                beat.member_id.clone()
            }
            _ => return Err(ErrorCode::INVALID_REQUEST),
        };
        if let Some(owned) = beat.owned {
            if let Some(m) = self.members.get_mut(&id) {
                m.owned = owned;
            }
        }
        let counts = self.subscribed_counts(topics);
        if bump || counts != self.counts {
            self.epoch += 1;
            self.compute_targets(topics);
        }
        // What this member may have now.
        let others: BTreeSet<Tp> = self
            .members
            .iter()
            .filter(|(k, _)| **k != id)
            .flat_map(|(_, m)| m.owned.iter().chain(m.sent.iter().flatten()))
            .cloned()
            .collect();
        let group_epoch = self.epoch;
        let m = self.members.get_mut(&id).expect("present");
        let revoking = m.owned.difference(&m.target).next().is_some();
        let may_have: BTreeSet<Tp> = if revoking {
            m.owned.intersection(&m.target).cloned().collect()
        } else {
            m.target
                .iter()
                .filter(|tp| m.owned.contains(*tp) || !others.contains(*tp))
                .cloned()
                .collect()
        };
        let changed = m.sent.as_ref() != Some(&may_have);
        if changed {
            m.epoch = group_epoch.max(m.epoch + 1);
            m.sent = Some(may_have.clone());
        }
        Ok(BeatAnswer {
            member_id: id,
            epoch: m.epoch,
            assignment: changed.then_some(may_have),
        })
    }

    fn subscribed_counts(&self, topics: &BTreeMap<String, TopicInfo>) -> BTreeMap<String, usize> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .filter_map(|t| topics.get(t).map(|i| (t.clone(), i.partitions)))
            .collect()
    }

    /// Sticky uniform assignment: each member keeps the partitions of its
    /// old target it is still subscribed to, up to its fair share; the rest
    /// go one by one to the least loaded subscribed member.
    fn compute_targets(&mut self, topics: &BTreeMap<String, TopicInfo>) {
        self.counts = self.subscribed_counts(topics);
        let all: Vec<Tp> = self
            .counts
            .iter()
            .flat_map(|(t, n)| (0..*n as i32).map(move |p| (t.clone(), p)))
            .collect();
        let members = self.members.len().max(1);
        let share = all.len().div_ceil(members);
        let mut taken: BTreeSet<Tp> = BTreeSet::new();
        let mut next: BTreeMap<String, BTreeSet<Tp>> = BTreeMap::new();
        for (id, m) in &self.members {
            let keep: BTreeSet<Tp> = m
                .target
                .iter()
                .filter(|tp| {
                    m.subscribed.contains(&tp.0)
                        && self.counts.get(&tp.0).is_some_and(|n| (tp.1 as usize) < *n)
                })
                .take(share)
                .cloned()
                .collect();
            taken.extend(keep.iter().cloned());
            next.insert(id.clone(), keep);
        }
        for tp in all {
            if taken.contains(&tp) {
                continue;
            }
            let least = next
                .iter()
                .filter(|(id, _)| self.members[*id].subscribed.contains(&tp.0))
                .min_by_key(|(id, a)| (a.len(), (*id).clone()))
                .map(|(id, _)| id.clone());
            if let Some(id) = least {
                next.get_mut(&id).expect("present").insert(tp);
            }
        }
        for (id, t) in next {
            if let Some(m) = self.members.get_mut(&id) {
                m.target = t;
            }
        }
    }

    /// Removes members whose session ran out; whether any was.
    pub fn tick(&mut self, now: Instant, topics: &BTreeMap<String, TopicInfo>) -> bool {
        let before = self.members.len();
        self.members
            .retain(|_, m| now.duration_since(m.last_seen) <= SESSION_TIMEOUT);
        if self.members.len() != before {
            self.epoch += 1;
            self.compute_targets(topics);
            return true;
        }
        false
    }

    /// OffsetCommit's check for a member of this group.
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> ErrorCode {
        match self.members.get(member_id) {
            None => ErrorCode::UNKNOWN_MEMBER_ID,
            Some(m) if m.epoch != epoch => ErrorCode::STALE_MEMBER_EPOCH,
            Some(_) => ErrorCode::NONE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(n: usize) -> BTreeMap<String, TopicInfo> {
        let mut t = BTreeMap::new();
        t.insert(
            "t".to_string(),
            TopicInfo {
                id: Uuid([1; 16]),
                partitions: n,
            },
        );
        t
    }

    fn join(
        g: &mut ConsumerGroup,
        now: Instant,
        topics: &BTreeMap<String, TopicInfo>,
    ) -> BeatAnswer {
        g.heartbeat(
            Beat {
                epoch: 0,
                subscribed: Some(["t".to_string()].into()),
                owned: Some(BTreeSet::new()),
                ..Beat::default()
            },
            topics,
            now,
        )
        .unwrap()
    }

    fn beat(
        g: &mut ConsumerGroup,
        a: &BeatAnswer,
        owned: &BTreeSet<Tp>,
        now: Instant,
        topics: &BTreeMap<String, TopicInfo>,
    ) -> Result<BeatAnswer, ErrorCode> {
        g.heartbeat(
            Beat {
                member_id: a.member_id.clone(),
                epoch: a.epoch,
                owned: Some(owned.clone()),
                ..Beat::default()
            },
            topics,
            now,
        )
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_revoked_it() {
        let t = topics(4);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let a = join(&mut g, now, &t);
        let a_owned = a.assignment.clone().unwrap();
        assert_eq!(a_owned.len(), 4, "a lone member gets everything");
        let a = beat(&mut g, &a, &a_owned, now, &t).unwrap();
        assert_eq!(a.assignment, None, "nothing changed");
        // b joins: it gets nothing a still owns.
        let b = join(&mut g, now, &t);
        assert_eq!(b.assignment, Some(BTreeSet::new()));
        // a is told to give two up, keeps the other two.
        let a2 = beat(&mut g, &a, &a_owned, now, &t).unwrap();
        let a_keep = a2.assignment.clone().unwrap();
        assert_eq!(a_keep.len(), 2);
        assert!(a_keep.is_subset(&a_owned));
        assert!(a2.epoch > a.epoch);
        // b still waits: a has not reported the revocation.
        let b1 = beat(&mut g, &b, &BTreeSet::new(), now, &t).unwrap();
        assert_eq!(b1.assignment, None);
        // a reports it; now b gets the other two.
        beat(&mut g, &a2, &a_keep, now, &t).unwrap();
        let b2 = beat(&mut g, &b1, &BTreeSet::new(), now, &t).unwrap();
        let b_got = b2.assignment.unwrap();
        assert_eq!(b_got.len(), 2);
        assert!(b_got.is_disjoint(&a_keep));
        // Old epochs are fenced; commits need the current epoch.
        assert_eq!(
            beat(&mut g, &a, &a_keep, now, &t),
            Err(ErrorCode::FENCED_MEMBER_EPOCH)
        );
        assert_eq!(
            g.check_commit(&a2.member_id, a.epoch),
            ErrorCode::STALE_MEMBER_EPOCH
        );
        assert_eq!(g.check_commit(&a2.member_id, a2.epoch), ErrorCode::NONE);
        assert_eq!(g.check_commit("nobody", 1), ErrorCode::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn leaving_and_expiring_give_partitions_back() {
        let t = topics(3);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let a = join(&mut g, now, &t);
        let a_owned = a.assignment.clone().unwrap();
        let a = beat(&mut g, &a, &a_owned, now, &t).unwrap();
        let b = join(&mut g, now, &t);
        let a2 = beat(&mut g, &a, &a_owned, now, &t).unwrap();
        let a_keep = a2.assignment.clone().unwrap();
        beat(&mut g, &a2, &a_keep, now, &t).unwrap();
        let b1 = beat(&mut g, &b, &BTreeSet::new(), now, &t).unwrap();
        let b_owned = b1.assignment.clone().unwrap();
        assert_eq!(a_keep.len() + b_owned.len(), 3);
        // b leaves: a gets everything back.
        let left = g
            .heartbeat(
                Beat {
                    member_id: b1.member_id.clone(),
                    epoch: -1,
                    ..Beat::default()
                },
                &t,
                now,
            )
            .unwrap();
        assert_eq!(left.epoch, -1);
        let a3 = beat(&mut g, &a2, &a_keep, now, &t).unwrap();
        assert_eq!(a3.assignment.as_ref().unwrap().len(), 3);
        // a stops heartbeating: its session expires.
        assert!(!g.tick(now + SESSION_TIMEOUT / 2, &t));
        assert!(g.tick(now + SESSION_TIMEOUT * 2, &t));
        assert!(g.members.is_empty());
        assert_eq!(
            beat(&mut g, &a3, &BTreeSet::new(), now, &t),
            Err(ErrorCode::UNKNOWN_MEMBER_ID)
        );
    }

    #[test]
    fn new_partitions_are_assigned() {
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let a = join(&mut g, now, &topics(2));
        let owned = a.assignment.clone().unwrap();
        let a = beat(&mut g, &a, &owned, now, &topics(2)).unwrap();
        let a2 = beat(&mut g, &a, &owned, now, &topics(5)).unwrap();
        assert_eq!(a2.assignment.unwrap().len(), 5);
    }
}
