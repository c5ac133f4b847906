//! Committed offsets at the group coordinator: OffsetCommit (classic
//! generations and KIP-848 member epochs both checked by the group) and
//! OffsetFetch (one group before v8, many from v8).

use std::time::Instant;

use kpax_proto::generated::{offset_commit::*, offset_fetch::*};
use kpax_proto::generated::{
    ErrorCode, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};

use crate::context::{group_check, s_owned, Context};
use crate::group::Group;
use crate::state::ClusterState;

pub(crate) fn offset_commit(ctx: &Context<'_>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let v = ctx.version;
    let mut s = ctx.shared.lock();
    let group_id = req.group_id.to_string();
    let now = Instant::now();
    let mut code = group_check(ctx, &s, &group_id).err().unwrap_or(0);
    if code == 0 {
        let g = s
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(&group_id, now));
        let generation = if v >= 1 {
            req.generation_id_or_member_epoch
        } else {
            -1
        };
        code = g.check_commit(&req.member_id, generation).0;
        if code == 0 {
            g.touch(&req.member_id, now);
        }
    }
    let mut r = OffsetCommitResponse::default();
    for t in req.topics {
        let mut rt = OffsetCommitResponseTopic::default();
        rt.name = t.name.clone();
        let known = s.topics.get(t.name.as_str()).map(|x| x.partitions.len());
        for p in t.partitions {
            let mut rp = OffsetCommitResponsePartition::default();
            rp.partition_index = p.partition_index;
            rp.error_code = if code != 0 {
                ErrorCode(code)
            } else if !known.is_some_and(|n| (0..n as i32).contains(&p.partition_index)) {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                let g = s.groups.get_mut(&group_id).expect("created above");
                g.offsets.insert(
                    (t.name.to_string(), p.partition_index),
                    crate::Committed {
                        offset: p.committed_offset,
                        leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    },
                );
                ErrorCode(0)
            };
            rt.partitions.push(rp);
        }
        r.topics.push(rt);
    }
    r
}

/// Committed offsets of `group` for `topics` (all committed when `None`):
/// (topic, [(partition, offset, epoch, metadata, error)]).
type FetchedOffsets = Vec<(String, Vec<(i32, i64, i32, Option<String>, i16)>)>;

fn fetched_offsets(
    s: &ClusterState,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    error: i16,
) -> FetchedOffsets {
    let g = s.groups.get(group);
    let topics = topics.unwrap_or_else(|| {
        let mut all: Vec<(String, Vec<i32>)> = Vec::new();
        if let Some(g) = g {
            for (t, p) in g.offsets.keys() {
                match all.last_mut() {
                    Some((name, ps)) if name == t => ps.push(*p),
                    _ => all.push((t.clone(), vec![*p])),
                }
            }
        }
        all
    });
    topics
        .into_iter()
        .map(|(t, ps)| {
            let parts = ps
                .into_iter()
                .map(|p| {
                    let c = g.and_then(|g| g.offsets.get(&(t.clone(), p)));
                    match c {
                        Some(c) if error == 0 => {
                            (p, c.offset, c.leader_epoch, c.metadata.clone(), 0)
                        }
                        _ => (p, -1, -1, Some(String::new()), error),
                    }
                })
                .collect();
            (t, parts)
        })
        .collect()
}

pub(crate) fn offset_fetch(ctx: &Context<'_>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let v = ctx.version;
    let s = ctx.shared.lock();
    let mut r = OffsetFetchResponse::default();
    if v >= 8 {
        for rg in req.groups {
            let mut g = OffsetFetchResponseGroup::default();
            g.group_id = rg.group_id.clone();
            let code = group_check(ctx, &s, &rg.group_id).err().unwrap_or(0);
            g.error_code = ErrorCode(code);
            if code == 0 {
                let topics = rg.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes.into_vec()))
                        .collect()
                });
                g.topics = fetched_offsets(&s, &rg.group_id, topics, 0)
                    .into_iter()
                    .map(|(name, parts)| {
                        let mut t = OffsetFetchResponseGroupTopic::default();
                        t.name = s_owned(&name);
                        t.partitions = parts
                            .into_iter()
                            .map(|(p, o, e, m, err)| {
                                let mut rp = OffsetFetchResponseGroupTopicPartition::default();
                                rp.partition_index = p;
                                rp.committed_offset = o;
                                rp.committed_leader_epoch = e;
                                rp.metadata = m.as_deref().map(s_owned);
                                rp.error_code = ErrorCode(err);
                                rp
                            })
                            .collect();
                        t
                    })
                    .collect();
            }
            r.groups.push(g);
        }
        return r;
    }
    let code = group_check(ctx, &s, &req.group_id).err().unwrap_or(0);
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.into_vec()))
            .collect::<Vec<_>>()
    });
    // v2+ carries a group-level error; v0-1 only per partition.
    let (partition_error, top_error) = if v >= 2 { (0, code) } else { (code, 0) };
    if v >= 2 {
        r.error_code = ErrorCode(top_error);
        if code != 0 {
            return r;
        }
    }
    r.topics = fetched_offsets(&s, &req.group_id, topics, partition_error)
        .into_iter()
        .map(|(name, parts)| {
            let mut t = OffsetFetchResponseTopic::default();
            t.name = s_owned(&name);
            t.partitions = parts
                .into_iter()
                .map(|(p, o, e, m, err)| {
                    let mut rp = OffsetFetchResponseTopicPartition::default();
                    rp.partition_index = p;
                    rp.committed_offset = o;
                    if v >= 5 {
                        rp.committed_leader_epoch = e;
                    }
                    rp.metadata = m.as_deref().map(s_owned);
                    rp.error_code = ErrorCode(err);
                    rp
                })
                .collect();
            t
        })
        .collect();
    r
}
