//! Share groups (KIP-932), the model: members and their subscriptions (the
//! coordinator's side) and each share-partition's in-flight records (the
//! leader's side), as Kafka keeps them:
//! - every member is assigned every partition of the topics it subscribed
//!   to (the partitions are shared, not divided);
//! - a share-partition starts, when first assigned, at the log start
//!   (`share.auto.offset.reset=earliest`) or at the end (`latest`, the
//!   default); its start offset moves past records that are done;
//! - a fetch acquires available records for one member, each for the
//!   group's lock duration (`share.record.lock.duration.ms`, 30 s), and
//!   counts the delivery; an acknowledgement accepts (done), releases
//!   (available again) or rejects (archived, never again); a lock that
//!   expires releases; a record delivered `share.delivery.count.limit`
//!   times (5) is archived instead of released;
//! - a member that leaves (or whose share session closes) releases what it
//!   holds.
//!
//! Everything is synchronous and takes the time as an argument.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A partition, by topic name.
pub(crate) type Tp = (String, i32);

/// The heartbeat interval the coordinator asks for.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(250);
/// A member that does not heartbeat for this long is removed
/// (`group.share.session.timeout.ms`, 45 s in Kafka; shorter here).
pub(crate) const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// `share.record.lock.duration.ms`'s default.
pub(crate) const DEFAULT_LOCK: Duration = Duration::from_secs(30);
/// `share.delivery.count.limit`'s default.
pub(crate) const DEFAULT_DELIVERY_LIMIT: i16 = 5;

/// The group configs the fake knows for share groups, with their defaults
/// (IncrementalAlterConfigs on a GROUP resource sets them).
pub(crate) const GROUP_CONFIG_DEFAULTS: [(&str, &str); 5] = [
    ("share.auto.offset.reset", "latest"),
    ("share.record.lock.duration.ms", "30000"),
    ("share.delivery.count.limit", "5"),
    ("share.isolation.level", "read_uncommitted"),
    ("share.session.timeout.ms", "45000"),
];

/// Acknowledge types on the wire.
pub(crate) const ACK_GAP: i8 = 0;
pub(crate) const ACK_ACCEPT: i8 = 1;
pub(crate) const ACK_RELEASE: i8 = 2;
pub(crate) const ACK_REJECT: i8 = 3;

/// One member of a share group.
#[derive(Debug, Clone)]
pub(crate) struct ShareMember {
    pub epoch: i32,
    pub subscribed: BTreeSet<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub last_seen: Instant,
}

/// Where one in-flight record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordState {
    /// Free to be acquired (again).
    Available,
    /// Held by a member until a time.
    Acquired { member: String, until: Instant },
    /// Done: accepted, rejected, or past the delivery limit.
    Archived,
}

/// A record the share-partition has handed out at least once.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub state: RecordState,
    pub delivery_count: i16,
}

/// One share-partition: the group's state on one partition.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharePartition {
    /// The share-partition start offset: records before it are done.
    pub start: i64,
    /// The first offset never handed out.
    pub next: i64,
    /// The records from `start` to `next` that are not done yet, or that
    /// are done but sit after one that is not.
    pub in_flight: BTreeMap<i64, InFlight>,
}

/// One acquisition: offsets `first..=last` handed out with `delivery_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acquired {
    pub first: i64,
    pub last: i64,
    pub delivery_count: i16,
}

impl SharePartition {
    /// A share-partition starting at `start`.
    pub fn new(start: i64) -> SharePartition {
        SharePartition {
            start,
            next: start,
            in_flight: BTreeMap::new(),
        }
    }

    /// Expired locks release their records (archived past `limit`).
    pub fn expire(&mut self, now: Instant, limit: i16) {
        for r in self.in_flight.values_mut() {
            if matches!(&r.state, RecordState::Acquired { until, .. } if *until <= now) {
                r.state = if r.delivery_count >= limit {
                    RecordState::Archived
                } else {
                    RecordState::Available
                };
            }
        }
        self.advance();
    }

    /// Releases every record `member` holds.
    pub fn release_member(&mut self, member: &str, limit: i16) {
        for r in self.in_flight.values_mut() {
            if matches!(&r.state, RecordState::Acquired { member: m, .. } if m == member) {
                r.state = if r.delivery_count >= limit {
                    RecordState::Archived
                } else {
                    RecordState::Available
                };
            }
        }
        self.advance();
    }

    /// Moves the start offset past the records that are done.
    fn advance(&mut self) {
        while let Some(e) = self.in_flight.first_entry() {
            if *e.key() == self.start && e.get().state == RecordState::Archived {
                e.remove();
                self.start += 1;
            } else {
                break;
            }
        }
        if self.in_flight.is_empty() {
            self.start = self.start.max(self.next);
        }
    }

    /// Acquires for `member` up to `max` records at or below `last_offset`
    /// (the last offset the leader can send with this fetch) and below
    /// `end` (the high watermark): released records first, then new ones.
    pub fn acquire(
        &mut self,
        member: &str,
        max: usize,
        end: i64,
        last_offset: i64,
        until: Instant,
    ) -> Vec<Acquired> {
        let mut got: Vec<(i64, i16)> = Vec::new();
        for (o, r) in self.in_flight.range_mut(..=last_offset) {
            if got.len() >= max {
                break;
            }
            if r.state == RecordState::Available {
                r.state = RecordState::Acquired {
                    member: member.to_string(),
                    until,
                };
                r.delivery_count += 1;
                got.push((*o, r.delivery_count));
            }
        }
        while got.len() < max && self.next < end && self.next <= last_offset {
            self.in_flight.insert(
                self.next,
                InFlight {
                    state: RecordState::Acquired {
                        member: member.to_string(),
                        until,
                    },
                    delivery_count: 1,
                },
            );
            got.push((self.next, 1));
            self.next += 1;
        }
        got.sort_unstable();
        let mut out: Vec<Acquired> = Vec::new();
        for (o, n) in got {
            match out.last_mut() {
                Some(a) if a.last + 1 == o && a.delivery_count == n => a.last = o,
                _ => out.push(Acquired {
                    first: o,
                    last: o,
                    delivery_count: n,
                }),
            }
        }
        out
    }

    /// The first offset worth reading for a fetch: the first available
    /// record, else the first never handed out; `None` when nothing is.
    pub fn first_available(&self, end: i64) -> Option<i64> {
        self.in_flight
            .iter()
            .find(|(_, r)| r.state == RecordState::Available)
            .map(|(o, _)| *o)
            .or((self.next < end).then_some(self.next))
    }

    /// Applies `member`'s acknowledgement of `first..=last` (`types`: one
    /// for the whole range, or one per offset). Every offset must be held
    /// by `member`, else nothing changes and the answer is false
    /// (INVALID_RECORD_STATE).
    pub fn acknowledge(
        &mut self,
        member: &str,
        first: i64,
        last: i64,
        types: &[i8],
        limit: i16,
    ) -> bool {
        if last < first || types.is_empty() {
            return false;
        }
        let span = last - first + 1;
        if types.len() != 1 && types.len() as i64 != span {
            return false;
        }
        if types.iter().any(|t| !(ACK_GAP..=ACK_REJECT).contains(t)) {
            return false;
        }
        let held = (first..=last).all(|o| {
            matches!(self.in_flight.get(&o),
                Some(InFlight { state: RecordState::Acquired { member: m, .. }, .. }) if m == member)
        });
        if !held {
            return false;
        }
        for (i, o) in (first..=last).enumerate() {
            let t = if types.len() == 1 { types[0] } else { types[i] };
            let r = self.in_flight.get_mut(&o).expect("checked");
            r.state = match t {
                ACK_RELEASE if r.delivery_count < limit => RecordState::Available,
                // Accepted, rejected, a gap (no record), or released past
                // the delivery limit: done.
                ACK_GAP | ACK_ACCEPT | ACK_RELEASE | ACK_REJECT => RecordState::Archived,
                _ => unreachable!("types checked above"),
            };
        }
        self.advance();
        true
    }

    /// What is acquired by a member now, and what is available again.
    pub fn counts(&self) -> (usize, usize) {
        let acquired = self
            .in_flight
            .values()
            .filter(|r| matches!(r.state, RecordState::Acquired { .. }))
            .count();
        let available = self
            .in_flight
            .values()
            .filter(|r| r.state == RecordState::Available)
            .count();
        (acquired, available)
    }

    /// How many records from the start offset up to `end` are not done.
    pub fn lag(&self, end: i64) -> i64 {
        let pending = self
            .in_flight
            .values()
            .filter(|r| r.state != RecordState::Archived)
            .count() as i64;
        pending + (end - self.next).max(0)
    }
}

/// One share group.
#[derive(Debug, Default)]
pub(crate) struct ShareGroup {
    /// The group epoch: bumped when members or subscriptions change.
    pub epoch: i32,
    pub members: BTreeMap<String, ShareMember>,
    pub partitions: BTreeMap<Tp, SharePartition>,
}

/// Why a heartbeat was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BeatError {
    UnknownMember,
    FencedEpoch,
    InvalidRequest,
}

impl ShareGroup {
    /// The state Kafka reports: Empty or Stable.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// Removes the members not seen for [`SESSION_TIMEOUT`]; true when one
    /// was removed (their holdings are released).
    pub fn expire_members(&mut self, now: Instant, limit: i16) -> bool {
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| now.duration_since(m.last_seen) >= SESSION_TIMEOUT)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.leave(id, limit);
        }
        !gone.is_empty()
    }

    /// Removes `member`, releasing what it holds.
    pub fn leave(&mut self, member: &str, limit: i16) {
        if self.members.remove(member).is_some() {
            self.epoch += 1;
            for p in self.partitions.values_mut() {
                p.release_member(member, limit);
            }
        }
    }

    /// A heartbeat: `epoch` 0 joins (with `subscribed`), -1 leaves, any
    /// other must be the member's epoch. Answers the member's epoch.
    pub fn heartbeat(
        &mut self,
        member: &str,
        epoch: i32,
        subscribed: Option<BTreeSet<String>>,
        who: (Option<String>, String, String),
        now: Instant,
        limit: i16,
    ) -> Result<i32, BeatError> {
        if member.is_empty() {
            return Err(BeatError::InvalidRequest);
        }
        match epoch {
            -1 => {
                if !self.members.contains_key(member) {
                    return Err(BeatError::UnknownMember);
                }
                self.leave(member, limit);
                Ok(-1)
            }
            0 => {
                let Some(subscribed) = subscribed else {
                    return Err(BeatError::InvalidRequest);
                };
                // A rejoin with the same id starts afresh.
                self.leave(member, limit);
                self.epoch += 1;
                let (rack_id, client_id, client_host) = who;
                self.members.insert(
                    member.to_string(),
                    ShareMember {
                        epoch: self.epoch,
                        subscribed,
                        rack_id,
                        client_id,
                        client_host,
                        last_seen: now,
                    },
                );
                Ok(self.epoch)
            }
            e => {
                let Some(m) = self.members.get_mut(member) else {
                    return Err(BeatError::UnknownMember);
                };
                if e != m.epoch && e != self.epoch {
                    return Err(BeatError::FencedEpoch);
                }
                m.last_seen = now;
                if let Some(s) = subscribed {
                    if s != m.subscribed {
                        m.subscribed = s;
                        self.epoch += 1;
                    }
                }
                let m = self.members.get_mut(member).expect("present");
                m.epoch = self.epoch;
                Ok(self.epoch)
            }
        }
    }

    /// The partitions assigned to `member`: every partition of the topics
    /// it subscribed to, by the partition counts in `topics`.
    pub fn assignment(&self, member: &str, topics: &BTreeMap<String, usize>) -> BTreeSet<Tp> {
        let Some(m) = self.members.get(member) else {
            return BTreeSet::new();
        };
        m.subscribed
            .iter()
            .filter_map(|t| topics.get(t).map(|n| (t, *n)))
            .flat_map(|(t, n)| (0..n as i32).map(move |p| (t.clone(), p)))
            .collect()
    }
}

/// A share session (one member on one broker).
#[derive(Debug, Clone, Default)]
pub(crate) struct ShareSession {
    /// The epoch the next request must carry.
    pub epoch: i32,
    pub partitions: BTreeSet<Tp>,
}

/// The next epoch after `e` (wrapping past the maximum to 1).
pub(crate) fn next_epoch(e: i32) -> i32 {
    if e == i32::MAX {
        1
    } else {
        e + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn until(now: Instant) -> Instant {
        now + DEFAULT_LOCK
    }

    #[test]
    fn acquisitions_are_exclusive_and_counted() {
        let now = Instant::now();
        let mut p = SharePartition::new(0);
        let a = p.acquire("m1", 3, 10, i64::MAX, until(now));
        assert_eq!(
            a,
            vec![Acquired {
                first: 0,
                last: 2,
                delivery_count: 1
            }]
        );
        let b = p.acquire("m2", 100, 10, i64::MAX, until(now));
        assert_eq!((b[0].first, b[0].last), (3, 9));
        assert!(p.acquire("m3", 100, 10, i64::MAX, until(now)).is_empty());
        // Bounded by what the leader can send.
        let mut q = SharePartition::new(0);
        let c = q.acquire("m1", 100, 10, 4, until(now));
        assert_eq!((c[0].first, c[0].last), (0, 4));
    }

    #[test]
    fn release_redelivers_with_a_higher_count_and_reject_never() {
        let now = Instant::now();
        let mut p = SharePartition::new(0);
        p.acquire("m1", 3, 3, i64::MAX, until(now));
        assert!(p.acknowledge("m1", 0, 2, &[ACK_RELEASE, ACK_ACCEPT, ACK_REJECT], 5));
        let again = p.acquire("m2", 10, 3, i64::MAX, until(now));
        assert_eq!(
            again,
            vec![Acquired {
                first: 0,
                last: 0,
                delivery_count: 2
            }]
        );
        assert!(p.acknowledge("m2", 0, 0, &[ACK_ACCEPT], 5));
        assert_eq!(p.start, 3, "all done");
        assert!(p.in_flight.is_empty());
        assert_eq!(p.lag(3), 0);
    }

    #[test]
    fn an_acknowledgement_of_records_not_held_changes_nothing() {
        let now = Instant::now();
        let mut p = SharePartition::new(0);
        p.acquire("m1", 2, 5, i64::MAX, until(now));
        assert!(
            !p.acknowledge("m2", 0, 1, &[ACK_ACCEPT], 5),
            "another member's"
        );
        assert!(
            !p.acknowledge("m1", 0, 2, &[ACK_ACCEPT], 5),
            "offset 2 not acquired"
        );
        assert!(!p.acknowledge("m1", 0, 1, &[ACK_ACCEPT, ACK_ACCEPT, ACK_ACCEPT], 5));
        assert!(!p.acknowledge("m1", 1, 0, &[ACK_ACCEPT], 5));
        assert!(!p.acknowledge("m1", 0, 1, &[9], 5));
        assert!(p.acknowledge("m1", 0, 1, &[ACK_ACCEPT], 5));
        assert_eq!(p.start, 2);
    }

    #[test]
    fn expired_locks_release_and_the_delivery_limit_archives() {
        let now = Instant::now();
        let mut p = SharePartition::new(0);
        for n in 1..=3 {
            let a = p.acquire("m1", 1, 1, i64::MAX, now);
            assert_eq!(a[0].delivery_count, n);
            p.expire(now, 3);
        }
        assert!(
            p.acquire("m1", 1, 1, i64::MAX, now).is_empty(),
            "archived at the limit"
        );
        assert_eq!(p.start, 1);
    }

    #[test]
    fn a_leaving_member_releases_what_it_holds() {
        let now = Instant::now();
        let mut g = ShareGroup::default();
        let who = || (None, "c".to_string(), "h".to_string());
        let e = g
            .heartbeat("m1", 0, Some(["t".to_string()].into()), who(), now, 5)
            .unwrap();
        assert_eq!(e, 1);
        assert_eq!(
            g.heartbeat("m1", 7, None, who(), now, 5),
            Err(BeatError::FencedEpoch)
        );
        assert_eq!(
            g.heartbeat("m9", 3, None, who(), now, 5),
            Err(BeatError::UnknownMember)
        );
        let topics: BTreeMap<String, usize> = [("t".to_string(), 2)].into();
        assert_eq!(g.assignment("m1", &topics).len(), 2);
        let mut p = SharePartition::new(0);
        p.acquire("m1", 5, 5, i64::MAX, until(now));
        g.partitions.insert(("t".into(), 0), p);
        g.leave("m1", 5);
        let p = &g.partitions[&("t".to_string(), 0)];
        assert!(p
            .in_flight
            .values()
            .all(|r| r.state == RecordState::Available));
        assert_eq!(g.state_name(), "Empty");
        assert!(g
            .heartbeat("m2", 0, None, who(), now, 5)
            .is_err_and(|e| e == BeatError::InvalidRequest));
        g.heartbeat("m2", 0, Some(BTreeSet::new()), who(), now, 5)
            .unwrap();
        assert!(g.expire_members(now + SESSION_TIMEOUT, 5));
        assert!(g.members.is_empty());
    }
}
