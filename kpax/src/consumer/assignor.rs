//! Partition assignors: who in a group consumes which partition.
//!
//! The group leader runs the assignor chosen by the coordinator (the first
//! protocol every member offers, in the leader's order of preference) over
//! every member's subscription. Eager assignors (`range`, `roundrobin`,
//! `sticky`) are used with stop-the-world rebalances: every member gives up
//! all its partitions before rejoining. Cooperative ones
//! (`cooperative-sticky`, KIP-429) are used with incremental rebalances:
//! members keep consuming while the group rebalances, and a partition moving
//! between members is first revoked by its owner (one rebalance) and then
//! assigned to its new owner (a second one).

use std::collections::{BTreeMap, BTreeSet};

/// How members hand partitions over during a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceProtocol {
    /// Every member revokes all its partitions before rejoining.
    Eager,
    /// Members keep their partitions while rejoining and revoke only the
    /// ones assigned elsewhere, then rejoin once more (KIP-429).
    Cooperative,
}

/// What the leader knows of one member when assigning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The topics the member subscribes to.
    pub topics: Vec<String>,
    /// The partitions the member owns now (subscription version 1+; empty
    /// for members whose clients do not report them).
    pub owned_partitions: BTreeMap<String, Vec<i32>>,
    /// The generation of that ownership (-1 when unknown).
    pub generation: i32,
    /// The member's rack, when it has one.
    pub rack_id: Option<String>,
}

impl MemberSubscription {
    /// A member subscribing to `topics` and owning nothing.
    pub fn new(topics: impl IntoIterator<Item = impl Into<String>>) -> MemberSubscription {
        MemberSubscription {
            topics: topics.into_iter().map(Into::into).collect(),
            owned_partitions: BTreeMap::new(),
            generation: -1,
            rack_id: None,
        }
    }

    /// The same member, owning `owned` since `generation`.
    pub fn owning(mut self, owned: BTreeMap<String, Vec<i32>>, generation: i32) -> Self {
        self.owned_partitions = owned;
        self.generation = generation;
        self
    }

    fn subscribes(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t == topic)
    }
}

/// An assignment: member id -> topic -> partitions.
pub type GroupAssignment = BTreeMap<String, BTreeMap<String, Vec<i32>>>;

/// Assigns partitions to members. `members` maps member id to its
/// subscription; `partitions` maps topic to its partition count. Must be
/// deterministic, give every member an entry, and give each partition of a
/// subscribed topic to exactly one member subscribing to it.
pub trait Assignor: Send + Sync {
    /// The protocol name advertised in JoinGroup (e.g. `range`).
    fn name(&self) -> &str;

    /// The rebalance protocol this assignor is made for.
    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    /// Whether members should report their previous assignment as owned
    /// even after an eager rebalance revoked it (the eager `sticky`
    /// assignor's memory). Otherwise members report what they hold now,
    /// which keeps their subscription unchanged across eager rebalances.
    fn reports_previous_assignment(&self) -> bool {
        false
    }

    /// Computes the assignment.
    fn assign(
        &self,
        members: &BTreeMap<String, MemberSubscription>,
        partitions: &BTreeMap<String, i32>,
    ) -> GroupAssignment;
}

fn empty(members: &BTreeMap<String, MemberSubscription>) -> GroupAssignment {
    members
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect()
}

/// The Java client's `range`: per topic, consecutive ranges of partitions
/// to the sorted subscribed members, the first ones getting one more.
#[derive(Debug, Default, Clone, Copy)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &str {
        "range"
    }

    fn assign(
        &self,
        members: &BTreeMap<String, MemberSubscription>,
        partitions: &BTreeMap<String, i32>,
    ) -> GroupAssignment {
        let mut out = empty(members);
        for (topic, &count) in partitions {
            let subs: Vec<&String> = members
                .iter()
                .filter(|(_, sub)| sub.subscribes(topic))
                .map(|(m, _)| m)
                .collect();
            if subs.is_empty() {
                continue;
            }
            let per = count as usize / subs.len();
            let extra = count as usize % subs.len();
            let mut next = 0i32;
            for (i, m) in subs.iter().enumerate() {
                let n = per + usize::from(i < extra);
                let ps: Vec<i32> = (next..next + n as i32).collect();
                next += n as i32;
                if !ps.is_empty() {
                    out.get_mut(*m).expect("member").insert(topic.clone(), ps);
                }
            }
        }
        out
    }
}

/// The Java client's `roundrobin`: all partitions, sorted, dealt in turn to
/// the members subscribed to their topic.
#[derive(Debug, Default, Clone, Copy)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &str {
        "roundrobin"
    }

    fn assign(
        &self,
        members: &BTreeMap<String, MemberSubscription>,
        partitions: &BTreeMap<String, i32>,
    ) -> GroupAssignment {
        let mut out = empty(members);
        let ids: Vec<&String> = members.keys().collect();
        if ids.is_empty() {
            return out;
        }
        let mut turn = 0usize;
        for (topic, &count) in partitions {
            for p in 0..count {
                // the next member, in turn, that subscribes to the topic
                for _ in 0..ids.len() {
                    let m = ids[turn % ids.len()];
                    turn += 1;
                    if members[m].subscribes(topic) {
                        out.get_mut(m)
                            .expect("member")
                            .entry(topic.clone())
                            .or_default()
                            .push(p);
                        break;
                    }
                }
            }
        }
        out
    }
}

/// The Java client's `sticky` (eager): as balanced as the subscriptions
/// allow, moving as few partitions as possible from their previous owners.
#[derive(Debug, Default, Clone, Copy)]
pub struct StickyAssignor;

impl Assignor for StickyAssignor {
    fn name(&self) -> &str {
        "sticky"
    }

    fn reports_previous_assignment(&self) -> bool {
        true
    }

    fn assign(
        &self,
        members: &BTreeMap<String, MemberSubscription>,
        partitions: &BTreeMap<String, i32>,
    ) -> GroupAssignment {
        sticky(members, partitions)
    }
}

/// The Java client's `cooperative-sticky` (KIP-429): the sticky assignment,
/// used with incremental rebalances. A partition that moves is left out of
/// this round's assignment (its owner revokes it and rejoins; the next
/// round gives it to its new owner), so no partition is ever owned by two
/// members at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct CooperativeStickyAssignor;

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &str {
        "cooperative-sticky"
    }

    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Cooperative
    }

    fn assign(
        &self,
        members: &BTreeMap<String, MemberSubscription>,
        partitions: &BTreeMap<String, i32>,
    ) -> GroupAssignment {
        let mut out = sticky(members, partitions);
        withhold_moving(members, &mut out);
        out
    }
}

/// The previous owner of each partition that still exists and whose owner
/// still subscribes to it. A partition claimed by two members goes to the
/// one with the newer generation (the other's claim is stale), and on a tie
/// to neither.
fn previous_owners<'a>(
    members: &'a BTreeMap<String, MemberSubscription>,
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<(String, i32), &'a str> {
    let mut claims: BTreeMap<(String, i32), (i32, Option<&str>)> = BTreeMap::new();
    for (id, sub) in members {
        for (topic, ps) in &sub.owned_partitions {
            let Some(&count) = partitions.get(topic) else {
                continue;
            };
            if !sub.subscribes(topic) {
                continue;
            }
            for &p in ps {
                if p < 0 || p >= count {
                    continue;
                }
                let e = claims
                    .entry((topic.clone(), p))
                    .or_insert((sub.generation, Some(id)));
                if e.1 == Some(id.as_str()) {
                    continue;
                }
                if sub.generation > e.0 {
                    *e = (sub.generation, Some(id));
                } else if sub.generation == e.0 {
                    e.1 = None;
                }
            }
        }
    }
    claims
        .into_iter()
        .filter_map(|(tp, (_, owner))| owner.map(|o| (tp, o)))
        .collect()
}

/// Balanced and sticky: previous owners keep their partitions, partitions
/// without an owner go to the least loaded member that may take them, then
/// partitions move one at a time from the most to the least loaded member
/// until no member has two more than another that could take one of them.
fn sticky(
    members: &BTreeMap<String, MemberSubscription>,
    partitions: &BTreeMap<String, i32>,
) -> GroupAssignment {
    let mut owned: BTreeMap<&str, BTreeSet<(String, i32)>> = members
        .keys()
        .map(|m| (m.as_str(), BTreeSet::new()))
        .collect();
    if members.is_empty() {
        return BTreeMap::new();
    }
    let previous = previous_owners(members, partitions);
    let mut unowned = Vec::new();
    for (topic, &count) in partitions {
        if !members.values().any(|s| s.subscribes(topic)) {
            continue;
        }
        for p in 0..count {
            let tp = (topic.clone(), p);
            match previous.get(&tp) {
                Some(owner) => {
                    owned.get_mut(owner).expect("member").insert(tp);
                }
                None => unowned.push(tp),
            }
        }
    }
    let eligible = |member: &str, topic: &str| members[member].subscribes(topic);
    // The most constrained partitions first, so they find a member.
    unowned.sort_by_key(|(t, p)| {
        (
            members.values().filter(|s| s.subscribes(t)).count(),
            t.clone(),
            *p,
        )
    });
    for tp in unowned {
        let target = owned
            .iter()
            .filter(|(m, _)| eligible(m, &tp.0))
            .min_by_key(|(m, ps)| (ps.len(), **m))
            .map(|(m, _)| *m);
        if let Some(m) = target {
            owned.get_mut(m).expect("member").insert(tp);
        }
    }
    // Balance: each move lowers the spread, so this ends; the bound is a
    // guard against a bug, not a limit the algorithm needs.
    let total: usize = owned.values().map(BTreeSet::len).sum();
    for _ in 0..=total {
        let mut by_load: Vec<(&str, usize)> = owned.iter().map(|(m, ps)| (*m, ps.len())).collect();
        by_load.sort_by_key(|(m, n)| (std::cmp::Reverse(*n), *m));
        let mut moved = None;
        'find: for (from, n_from) in &by_load {
            for (to, n_to) in by_load.iter().rev() {
                if n_to + 1 >= *n_from {
                    break;
                }
                if let Some(tp) = owned[from].iter().rev().find(|(t, _)| eligible(to, t)) {
                    moved = Some((*from, *to, tp.clone()));
                    break 'find;
                }
            }
        }
        let Some((from, to, tp)) = moved else { break };
        owned.get_mut(from).expect("member").remove(&tp);
        owned.get_mut(to).expect("member").insert(tp);
    }
    owned
        .into_iter()
        .map(|(m, ps)| {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (t, p) in ps {
                by_topic.entry(t).or_default().push(p);
            }
            (m.to_string(), by_topic)
        })
        .collect()
}

/// For cooperative rebalancing: removes from `assignment` every partition
/// given to a member other than the one that owns it now. The owner, not
/// finding it in its new assignment, revokes it and rejoins; the next
/// rebalance hands it to its new member.
pub fn withhold_moving(
    members: &BTreeMap<String, MemberSubscription>,
    assignment: &mut GroupAssignment,
) {
    let mut owner: BTreeMap<(&str, i32), &str> = BTreeMap::new();
    for (id, sub) in members {
        for (t, ps) in &sub.owned_partitions {
            for &p in ps {
                owner.insert((t.as_str(), p), id.as_str());
            }
        }
    }
    for (member, topics) in assignment.iter_mut() {
        for (t, ps) in topics.iter_mut() {
            ps.retain(|p| {
                owner
                    .get(&(t.as_str(), *p))
                    .is_none_or(|o| *o == member.as_str())
            });
        }
        topics.retain(|_, ps| !ps.is_empty());
    }
}

/// Every (topic, partition) in an assignment.
pub(crate) fn flatten(
    a: &BTreeMap<String, Vec<i32>>,
) -> BTreeSet<crate::topic_partition::TopicPartition> {
    a.iter()
        .flat_map(|(t, ps)| {
            ps.iter()
                .map(move |p| crate::topic_partition::TopicPartition::new(t.as_str(), *p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize, topics: &[&str]) -> BTreeMap<String, MemberSubscription> {
        (0..n)
            .map(|i| {
                (
                    format!("m{i}"),
                    MemberSubscription::new(topics.iter().copied()),
                )
            })
            .collect()
    }

    /// Every partition of `parts` exactly once, only to subscribers.
    fn check_complete(
        m: &BTreeMap<String, MemberSubscription>,
        parts: &BTreeMap<String, i32>,
        a: &GroupAssignment,
    ) {
        let mut seen = BTreeSet::new();
        for (member, topics) in a {
            for (t, ps) in topics {
                assert!(
                    m[member].subscribes(t),
                    "{member} got {t} it does not subscribe to"
                );
                for p in ps {
                    assert!(seen.insert((t.clone(), *p)), "{t}-{p} assigned twice");
                }
            }
        }
        let want: usize = parts
            .iter()
            .filter(|(t, _)| m.values().any(|s| s.subscribes(t)))
            .map(|(_, n)| *n as usize)
            .sum();
        assert_eq!(seen.len(), want);
    }

    fn counts(a: &GroupAssignment) -> Vec<usize> {
        a.values()
            .map(|ts| ts.values().map(Vec::len).sum())
            .collect()
    }

    /// Feeds an assignment back as the members' owned partitions.
    fn owning(
        mut m: BTreeMap<String, MemberSubscription>,
        a: &GroupAssignment,
        generation: i32,
    ) -> BTreeMap<String, MemberSubscription> {
        for (id, sub) in m.iter_mut() {
            if let Some(owned) = a.get(id) {
                sub.owned_partitions = owned.clone();
                sub.generation = generation;
            }
        }
        m
    }

    fn moved(before: &GroupAssignment, after: &GroupAssignment) -> usize {
        let owner = |a: &GroupAssignment| -> BTreeMap<(String, i32), String> {
            a.iter()
                .flat_map(|(m, ts)| {
                    ts.iter().flat_map(move |(t, ps)| {
                        ps.iter().map(move |p| ((t.clone(), *p), m.clone()))
                    })
                })
                .collect()
        };
        let (b, a) = (owner(before), owner(after));
        a.iter()
            .filter(|(tp, m)| b.get(*tp).is_some_and(|o| o != *m))
            .count()
    }

    #[test]
    fn sticky_balances_a_fresh_group() {
        let parts = BTreeMap::from([("a".to_string(), 7), ("b".to_string(), 2)]);
        let m = members(3, &["a", "b"]);
        let a = StickyAssignor.assign(&m, &parts);
        check_complete(&m, &parts, &a);
        let c = counts(&a);
        assert_eq!(
            c.iter().max().unwrap() - c.iter().min().unwrap(),
            0,
            "{c:?}"
        );
    }

    #[test]
    fn sticky_moves_only_what_balance_needs_when_a_member_joins_or_leaves() {
        let parts = BTreeMap::from([("t".to_string(), 6)]);
        let two = members(2, &["t"]);
        let first = StickyAssignor.assign(&two, &parts);
        assert_eq!(counts(&first), [3, 3]);
        // a third member joins: exactly 2 partitions move, one from each
        let mut three = owning(two, &first, 1);
        three.insert("m2".into(), MemberSubscription::new(["t"]));
        let second = StickyAssignor.assign(&three, &parts);
        check_complete(&three, &parts, &second);
        assert_eq!(counts(&second), [2, 2, 2]);
        assert_eq!(
            moved(&first, &second),
            2,
            "only the newcomer's two partitions move"
        );
        for m in ["m0", "m1"] {
            let kept = &second[m]["t"];
            assert!(
                kept.iter().all(|p| first[m]["t"].contains(p)),
                "{m} kept {kept:?}"
            );
        }
        // m1 leaves: only its 2 partitions move
        let mut left = owning(three, &second, 2);
        left.remove("m1");
        let third = StickyAssignor.assign(&left, &parts);
        check_complete(&left, &parts, &third);
        assert_eq!(
            moved(&second, &third),
            2,
            "only the leaver's two partitions move"
        );
        assert_eq!(counts(&third), [3, 3]);
        for m in ["m0", "m2"] {
            let before = &second[m]["t"];
            assert!(
                before.iter().all(|p| third[m]["t"].contains(p)),
                "{m} lost a partition"
            );
        }
    }

    #[test]
    fn sticky_honours_uneven_subscriptions_and_drops_stale_claims() {
        let mut m = members(2, &["a"]);
        m.insert("x".into(), MemberSubscription::new(["a", "b"]));
        let parts = BTreeMap::from([("a".to_string(), 4), ("b".to_string(), 4)]);
        let a = StickyAssignor.assign(&m, &parts);
        check_complete(&m, &parts, &a);
        assert_eq!(a["x"]["b"].len(), 4, "only x can take b");
        // two members claim a-0: the newer generation wins
        let mut m = members(2, &["a"]);
        m.get_mut("m0").unwrap().owned_partitions = BTreeMap::from([("a".to_string(), vec![0, 9])]);
        m.get_mut("m0").unwrap().generation = 3;
        m.get_mut("m1").unwrap().owned_partitions = BTreeMap::from([("a".to_string(), vec![0])]);
        m.get_mut("m1").unwrap().generation = 4;
        let parts = BTreeMap::from([("a".to_string(), 2)]);
        let a = StickyAssignor.assign(&m, &parts);
        check_complete(&m, &parts, &a);
        assert_eq!(a["m1"]["a"], [0]);
        assert_eq!(a["m0"]["a"], [1]);
    }

    #[test]
    fn cooperative_sticky_withholds_partitions_that_change_owner() {
        let parts = BTreeMap::from([("t".to_string(), 6)]);
        let two = members(2, &["t"]);
        let first = CooperativeStickyAssignor.assign(&two, &parts);
        assert_eq!(counts(&first), [3, 3]);
        let mut three = owning(two, &first, 1);
        three.insert("m2".into(), MemberSubscription::new(["t"]));
        // round 1: the newcomer gets nothing yet; the old members give up one each
        let r1 = CooperativeStickyAssignor.assign(&three, &parts);
        assert_eq!(counts(&r1), [2, 2, 0]);
        // round 2 (the owners rejoined without them): the newcomer gets both
        let after = owning(three, &r1, 2);
        let r2 = CooperativeStickyAssignor.assign(&after, &parts);
        check_complete(&after, &parts, &r2);
        assert_eq!(counts(&r2), [2, 2, 2]);
        assert_eq!(r2["m0"], r1["m0"]);
        assert_eq!(r2["m1"], r1["m1"]);
    }

    #[test]
    fn sticky_is_deterministic_and_complete_on_many_shapes() {
        for n in 1..6 {
            for count in [1, 5, 12] {
                let parts =
                    BTreeMap::from([("a".to_string(), count), ("b".to_string(), count / 2 + 1)]);
                let m = members(n, &["a", "b"]);
                let a = StickyAssignor.assign(&m, &parts);
                check_complete(&m, &parts, &a);
                assert_eq!(a, StickyAssignor.assign(&m, &parts));
                let c = counts(&a);
                assert!(
                    c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
                    "{c:?}"
                );
            }
        }
    }

    #[test]
    fn range_gives_consecutive_ranges() {
        let parts = BTreeMap::from([("t".to_string(), 7)]);
        let a = RangeAssignor.assign(&members(3, &["t"]), &parts);
        assert_eq!(a["m0"]["t"], [0, 1, 2]);
        assert_eq!(a["m1"]["t"], [3, 4]);
        assert_eq!(a["m2"]["t"], [5, 6]);
    }

    #[test]
    fn round_robin_deals_in_turn_and_every_partition_once() {
        let parts = BTreeMap::from([("a".to_string(), 3), ("b".to_string(), 3)]);
        let a = RoundRobinAssignor.assign(&members(2, &["a", "b"]), &parts);
        assert_eq!(a["m0"]["a"], [0, 2]);
        assert_eq!(a["m1"]["a"], [1]);
        let all: Vec<_> = a.values().flat_map(flatten).collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 6);
    }

    #[test]
    fn members_only_get_topics_they_subscribe_to() {
        let mut m = members(1, &["a"]);
        m.insert("x".into(), MemberSubscription::new(["b"]));
        let parts = BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 2)]);
        for a in [
            RangeAssignor.assign(&m, &parts),
            RoundRobinAssignor.assign(&m, &parts),
            StickyAssignor.assign(&m, &parts),
            CooperativeStickyAssignor.assign(&m, &parts),
        ] {
            assert!(a["m0"].keys().all(|t| t == "a"));
            assert!(a["x"].keys().all(|t| t == "b"));
        }
    }
}
