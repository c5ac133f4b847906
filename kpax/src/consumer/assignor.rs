//! Partition assignors: who in a group consumes which partition.

use std::collections::{BTreeMap, BTreeSet};

/// Assigns partitions to members. `members` maps member id to the topics it
/// subscribes to; `partitions` maps topic to its partition count. Returns
/// member id -> topic -> partitions. Must be deterministic.
pub trait Assignor: Send + Sync {
    /// The protocol name advertised in JoinGroup (e.g. `range`).
    fn name(&self) -> &str;

    /// Computes the assignment.
    fn assign(
        &self,
        members: &BTreeMap<String, Vec<String>>,
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, BTreeMap<String, Vec<i32>>>;
}

fn empty(members: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
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
        members: &BTreeMap<String, Vec<String>>,
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
        let mut out = empty(members);
        for (topic, &count) in partitions {
            let subs: Vec<&String> = members
                .iter()
                .filter(|(_, ts)| ts.contains(topic))
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
        members: &BTreeMap<String, Vec<String>>,
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
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
                    if members[m].contains(topic) {
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

/// Every (topic, partition) in an assignment.
pub(crate) fn flatten(a: &BTreeMap<String, Vec<i32>>) -> BTreeSet<(String, i32)> {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize, topics: &[&str]) -> BTreeMap<String, Vec<String>> {
        (0..n)
            .map(|i| {
                (
                    format!("m{i}"),
                    topics.iter().map(|t| t.to_string()).collect(),
                )
            })
            .collect()
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
        m.insert("x".into(), vec!["b".into()]);
        let parts = BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 2)]);
        for a in [
            RangeAssignor.assign(&m, &parts),
            RoundRobinAssignor.assign(&m, &parts),
        ] {
            assert!(a["m0"].keys().all(|t| t == "a"));
            assert!(a["x"].keys().all(|t| t == "b"));
        }
    }
}
