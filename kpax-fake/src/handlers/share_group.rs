//! Share groups (KIP-932), the APIs: ShareGroupHeartbeat and
//! ShareGroupDescribe at the group's coordinator, ShareFetch and
//! ShareAcknowledge at the partitions' leaders, in share sessions:
//! epoch 0 opens a session naming its partitions, each later request
//! carries the next epoch (INVALID_SHARE_SESSION_EPOCH otherwise,
//! SHARE_SESSION_NOT_FOUND without a session), -1 closes it and releases
//! what the member still holds there. The model is in `share_group`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kpax_proto::generated::share_acknowledge::{
    ShareAcknowledgeResponsePartition, ShareAcknowledgeResponseResponse,
};
use kpax_proto::generated::share_fetch::{
    ShareFetchResponseAcquiredRecord, ShareFetchResponsePartition, ShareFetchResponseResponse,
};
use kpax_proto::generated::share_group_describe::{
    ShareGroupDescribeResponseGroup, ShareGroupDescribeResponseMember,
    ShareGroupDescribeResponseTopicPartition,
};
use kpax_proto::generated::share_group_heartbeat::{
    ShareGroupHeartbeatResponseAssignment, ShareGroupHeartbeatResponseTopicPartition,
};
use kpax_proto::generated::{
    ErrorCode, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest,
    ShareFetchResponse, ShareGroupDescribeRequest, ShareGroupDescribeResponse,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
};
use kpax_proto::wire::{StrBytes, Uuid};

use crate::context::{group_check, leader_check, s_owned, Context};
use crate::share_group::{
    next_epoch, BeatError, ShareGroup, SharePartition, ShareSession, Tp, DEFAULT_DELIVERY_LIMIT,
    DEFAULT_LOCK, GROUP_CONFIG_DEFAULTS, HEARTBEAT_INTERVAL,
};
use crate::state::ClusterState;

/// How often a waiting ShareFetch re-checks (acquisition locks expire
/// without any wakeup).
const RECHECK: Duration = Duration::from_millis(100);
/// Records per fetch when the request does not say (v0).
const DEFAULT_MAX_RECORDS: usize = 500;

/// A group config's value, or its default.
pub(crate) fn group_config<'a>(s: &'a ClusterState, group: &str, name: &str) -> &'a str {
    s.group_configs
        .get(group)
        .and_then(|c| c.get(name))
        .map(String::as_str)
        .or_else(|| {
            GROUP_CONFIG_DEFAULTS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| *d)
        })
        .unwrap_or("")
}

fn delivery_limit(s: &ClusterState, group: &str) -> i16 {
    group_config(s, group, "share.delivery.count.limit")
        .parse()
        .unwrap_or(DEFAULT_DELIVERY_LIMIT)
}

fn lock_duration(s: &ClusterState, group: &str) -> Duration {
    group_config(s, group, "share.record.lock.duration.ms")
        .parse()
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_LOCK)
}

/// The lock duration as the responses carry it (ms).
fn lock_ms(s: &ClusterState, group: &str) -> i32 {
    lock_duration(s, group).as_millis().min(i32::MAX as u128) as i32
}

/// The leader and leader epoch of a partition, for a NOT_LEADER_OR_FOLLOWER
/// answer's `current_leader`.
fn current_leader(s: &ClusterState, topic: &str, partition: i32) -> Option<(i32, i32)> {
    let p = s.topics.get(topic)?.partitions.get(partition as usize)?;
    Some((p.leader, p.leader_epoch))
}

/// The ShareGroupHeartbeat handler.
pub(crate) fn share_group_heartbeat(
    ctx: &Context<'_>,
    req: ShareGroupHeartbeatRequest,
) -> ShareGroupHeartbeatResponse {
    let mut r = ShareGroupHeartbeatResponse::default();
    let mut guard = ctx.shared.lock();
    let s = &mut *guard;
    let group = req.group_id.to_string();
    if let Err(e) = group_check(ctx, s, &group) {
        r.error_code = ErrorCode(e);
        return r;
    }
    if s.groups
        .get(&group)
        .is_some_and(|g| !g.members.is_empty() || !g.consumer.members.is_empty())
    {
        r.error_code = ErrorCode::GROUP_ID_NOT_FOUND;
        r.error_message = Some(s_owned(&format!("group {group} is not a share group")));
        return r;
    }
    let limit = delivery_limit(s, &group);
    let earliest = group_config(s, &group, "share.auto.offset.reset") == "earliest";
    let now = Instant::now();
    let member = req.member_id.to_string();
    let g = s.share_groups.entry(group.clone()).or_default();
    g.expire_members(now, limit);
    let who = (
        req.rack_id.as_ref().map(|r| r.to_string()),
        ctx.client_id.clone(),
        ctx.peer.ip().to_string(),
    );
    let subscribed = req
        .subscribed_topic_names
        .as_ref()
        .map(|ts| ts.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>());
    r.member_id = Some(req.member_id.clone());
    match g.heartbeat(&member, req.member_epoch, subscribed, who, now, limit) {
        Err(e) => {
            r.error_code = match e {
                BeatError::UnknownMember => ErrorCode::UNKNOWN_MEMBER_ID,
                BeatError::FencedEpoch => ErrorCode::FENCED_MEMBER_EPOCH,
                BeatError::InvalidRequest => ErrorCode::INVALID_REQUEST,
            };
        }
        Ok(-1) => r.member_epoch = -1,
        Ok(epoch) => {
            r.member_epoch = epoch;
            r.heartbeat_interval_ms = HEARTBEAT_INTERVAL.as_millis() as i32;
            let counts: BTreeMap<String, usize> = s
                .topics
                .iter()
                .map(|(n, t)| (n.clone(), t.partitions.len()))
                .collect();
            let assigned = g.assignment(&member, &counts);
            // A share-partition starts when first assigned.
            for tp in &assigned {
                if !g.partitions.contains_key(tp) {
                    let log = &s.topics[&tp.0].partitions[tp.1 as usize].log;
                    let start = if earliest {
                        log.log_start_offset()
                    } else {
                        log.high_watermark()
                    };
                    g.partitions.insert(tp.clone(), SharePartition::new(start));
                }
            }
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &assigned {
                by_topic.entry(t.as_str()).or_default().push(*p);
            }
            let mut a = ShareGroupHeartbeatResponseAssignment::default();
            a.topic_partitions = by_topic
                .into_iter()
                .map(|(t, ps)| {
                    let mut tp = ShareGroupHeartbeatResponseTopicPartition::default();
                    tp.topic_id = s.topics[t].id;
                    tp.partitions = ps.into();
                    tp
                })
                .collect();
            r.assignment = Some(a);
        }
    }
    r
}

/// The ShareGroupDescribe handler.
pub(crate) fn share_group_describe(
    ctx: &Context<'_>,
    req: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    let s = ctx.shared.lock();
    let mut r = ShareGroupDescribeResponse::default();
    let counts: BTreeMap<String, usize> = s
        .topics
        .iter()
        .map(|(n, t)| (n.clone(), t.partitions.len()))
        .collect();
    for id in req.group_ids {
        let mut rg = ShareGroupDescribeResponseGroup::default();
        rg.group_id = id.clone();
        rg.authorized_operations = i32::MIN;
        let found = group_check(ctx, &s, &id).and_then(|()| {
            s.share_groups
                .get(id.as_str())
                .ok_or(ErrorCode::GROUP_ID_NOT_FOUND.0)
        });
        match found {
            Err(e) => {
                rg.error_code = ErrorCode(e);
                if e == ErrorCode::GROUP_ID_NOT_FOUND.0 {
                    rg.error_message = Some(s_owned(&format!("Group {id} not found.")));
                }
            }
            Ok(g) => {
                rg.group_state = StrBytes::from_static(g.state_name());
                rg.group_epoch = g.epoch;
                rg.assignment_epoch = g.epoch;
                rg.assignor_name = StrBytes::from_static("simple");
                rg.members = g
                    .members
                    .iter()
                    .map(|(mid, m)| {
                        let mut rm = ShareGroupDescribeResponseMember::default();
                        rm.member_id = s_owned(mid);
                        rm.member_epoch = m.epoch;
                        rm.rack_id = m.rack_id.as_deref().map(s_owned);
                        rm.client_id = s_owned(&m.client_id);
                        rm.client_host = s_owned(&m.client_host);
                        rm.subscribed_topic_names =
                            m.subscribed.iter().map(|t| s_owned(t)).collect();
                        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                        let assigned = g.assignment(mid, &counts);
                        for (t, p) in &assigned {
                            by_topic.entry(t.as_str()).or_default().push(*p);
                        }
                        rm.assignment.topic_partitions = by_topic
                            .into_iter()
                            .map(|(t, ps)| {
                                let mut tp = ShareGroupDescribeResponseTopicPartition::default();
                                tp.topic_id = s.topics[t].id;
                                tp.topic_name = s_owned(t);
                                tp.partitions = ps.into();
                                tp
                            })
                            .collect();
                        rm
                    })
                    .collect();
            }
        }
        r.groups.push(rg);
    }
    r
}

/// Acknowledgement batches: (first offset, last offset, types).
type AckBatches = Vec<(i64, i64, Vec<i8>)>;

/// What a share request names, resolved: the group, the member, and the
/// partitions with their acknowledgement batches.
struct Named {
    group: String,
    member: String,
    /// (topic id, partition, acknowledgement batches), in request order.
    parts: Vec<(Uuid, i32, AckBatches)>,
}

/// The [`Named`] of a ShareFetch or ShareAcknowledge request (their
/// topics, partitions and acknowledgement batches have the same fields in
/// two generated types).
macro_rules! named {
    ($req:expr) => {
        Named::new(
            $req.group_id.as_ref(),
            $req.member_id.as_ref(),
            $req.topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(move |p| {
                        (
                            t.topic_id,
                            p.partition_index,
                            p.acknowledgement_batches
                                .iter()
                                .map(|b| {
                                    (b.first_offset, b.last_offset, b.acknowledge_types.clone())
                                })
                                .collect::<AckBatches>(),
                        )
                    })
                })
                .collect(),
        )
    };
}

impl Named {
    fn new(
        group: Option<&StrBytes>,
        member: Option<&StrBytes>,
        parts: Vec<(Uuid, i32, AckBatches)>,
    ) -> Named {
        Named {
            group: group.map(|g| g.to_string()).unwrap_or_default(),
            member: member.map(|m| m.to_string()).unwrap_or_default(),
            parts,
        }
    }
}

/// The session step every share request starts with. `Ok` is the session
/// key after the step; a closed session (epoch -1) has been removed (and
/// what the member held in it released) by the caller afterwards.
fn session_step(
    s: &mut ClusterState,
    node: i32,
    named: &Named,
    epoch: i32,
    opens: bool,
    forgotten: &[Tp],
) -> Result<(), i16> {
    if named.member.is_empty() {
        return Err(ErrorCode::INVALID_REQUEST.0);
    }
    if named.group.is_empty() {
        return Err(ErrorCode::INVALID_GROUP_ID.0);
    }
    let key = (node, named.group.clone(), named.member.clone());
    let names: Vec<Tp> = named
        .parts
        .iter()
        .filter_map(|(id, p, _)| s.topic_name_by_id(id).map(|n| (n, *p)))
        .collect();
    match epoch {
        0 if !opens => Err(ErrorCode::INVALID_SHARE_SESSION_EPOCH.0),
        0 => {
            if named.parts.iter().any(|(_, _, acks)| !acks.is_empty()) {
                return Err(ErrorCode::INVALID_REQUEST.0);
            }
            if let Some(old) = s.share_sessions.remove(&key) {
                release(s, &named.group, &named.member, &old.partitions);
            }
            s.share_sessions.insert(
                key,
                ShareSession {
                    epoch: 1,
                    partitions: names.into_iter().collect(),
                },
            );
            Ok(())
        }
        e => {
            let Some(sess) = s.share_sessions.get_mut(&key) else {
                return Err(ErrorCode::SHARE_SESSION_NOT_FOUND.0);
            };
            if e != -1 && e != sess.epoch {
                return Err(ErrorCode::INVALID_SHARE_SESSION_EPOCH.0);
            }
            sess.epoch = next_epoch(sess.epoch);
            sess.partitions.extend(names);
            let mut gone = BTreeSet::new();
            for tp in forgotten {
                if sess.partitions.remove(tp) {
                    gone.insert(tp.clone());
                }
            }
            release(s, &named.group, &named.member, &gone);
            Ok(())
        }
    }
}

/// Releases what `member` holds on `partitions`.
fn release(s: &mut ClusterState, group: &str, member: &str, partitions: &BTreeSet<Tp>) {
    let limit = delivery_limit(s, group);
    if let Some(g) = s.share_groups.get_mut(group) {
        for tp in partitions {
            if let Some(p) = g.partitions.get_mut(tp) {
                p.release_member(member, limit);
            }
        }
    }
}

/// Closes the session of `named` on `node`, releasing what it held.
fn close_session(s: &mut ClusterState, node: i32, named: &Named) {
    let key = (node, named.group.clone(), named.member.clone());
    if let Some(old) = s.share_sessions.remove(&key) {
        release(s, &named.group, &named.member, &old.partitions);
    }
}

/// Applies one partition's acknowledgements; the partition's error code.
fn acknowledge(s: &mut ClusterState, node: i32, named: &Named, tp: &Tp, acks: &AckBatches) -> i16 {
    if let Err(e) = leader_check(s, node, &tp.0, tp.1) {
        return e;
    }
    let limit = delivery_limit(s, &named.group);
    let Some(p) = s
        .share_groups
        .get_mut(&named.group)
        .and_then(|g| g.partitions.get_mut(tp))
    else {
        return ErrorCode::INVALID_RECORD_STATE.0;
    };
    p.expire(Instant::now(), limit);
    let mut code = 0;
    for (first, last, types) in acks {
        if !p.acknowledge(&named.member, *first, *last, types, limit) {
            code = ErrorCode::INVALID_RECORD_STATE.0;
        }
    }
    code
}

/// Acquires records for `named`'s member on the session's partitions led
/// by `node`: the answer per partition (records and acquired ranges).
fn acquire(
    s: &mut ClusterState,
    node: i32,
    named: &Named,
    max_records: usize,
    max_bytes: usize,
) -> BTreeMap<Tp, (Bytes, Vec<ShareFetchResponseAcquiredRecord>)> {
    let key = (node, named.group.clone(), named.member.clone());
    let Some(sess) = s.share_sessions.get(&key) else {
        return BTreeMap::new();
    };
    let parts: Vec<Tp> = sess.partitions.iter().cloned().collect();
    let limit = delivery_limit(s, &named.group);
    let until = Instant::now() + lock_duration(s, &named.group);
    let now = Instant::now();
    let mut out = BTreeMap::new();
    let (mut records, mut bytes) = (0usize, 0usize);
    let st = &mut *s;
    let Some(g) = st.share_groups.get_mut(&named.group) else {
        return out;
    };
    for tp in parts {
        if records >= max_records {
            break;
        }
        let Some(part) = st
            .topics
            .get(&tp.0)
            .and_then(|t| t.partitions.get(tp.1 as usize))
        else {
            continue;
        };
        if part.leader != node {
            continue;
        }
        let Some(p) = g.partitions.get_mut(&tp) else {
            continue;
        };
        p.expire(now, limit);
        let end = part.log.high_watermark();
        let Some(first) = p.first_available(end) else {
            continue;
        };
        let (data, last) = part
            .log
            .read_span(first, max_bytes.saturating_sub(bytes), bytes == 0);
        if last < first {
            continue;
        }
        let got = p.acquire(&named.member, max_records - records, end, last, until);
        if got.is_empty() {
            continue;
        }
        records += got
            .iter()
            .map(|a| (a.last - a.first + 1) as usize)
            .sum::<usize>();
        bytes += data.len();
        let ranges = got
            .iter()
            .map(|a| {
                let mut x = ShareFetchResponseAcquiredRecord::default();
                x.first_offset = a.first;
                x.last_offset = a.last;
                x.delivery_count = a.delivery_count;
                x
            })
            .collect();
        out.insert(tp, (data, ranges));
    }
    out
}

/// The top-level refusal of a ShareFetch or ShareAcknowledge before any
/// work: an injected error, or a lock renewal (KIP-1222, v2), which the
/// fake does not do.
fn refused(ctx: &Context<'_>, is_renew_ack: bool) -> Option<(i16, Option<StrBytes>)> {
    if let Some(e) = ctx.injected {
        return Some((e, None));
    }
    (ctx.version >= 2 && is_renew_ack).then(|| {
        (
            ErrorCode::INVALID_REQUEST.0,
            Some(StrBytes::from_static(
                "the fake does not renew acquisition locks",
            )),
        )
    })
}

/// The ShareFetch handler: acknowledgements first, then records, waiting
/// up to `max_wait_ms` for some.
pub(crate) async fn share_fetch(ctx: &Context<'_>, req: ShareFetchRequest) -> ShareFetchResponse {
    let v = ctx.version;
    let mut r = ShareFetchResponse::default();
    if let Some((code, message)) = refused(ctx, req.is_renew_ack) {
        r.error_code = ErrorCode(code);
        r.error_message = message;
        return r;
    }
    let named = named!(req);
    let epoch = req.share_session_epoch;
    let mut answers: BTreeMap<(Uuid, i32), ShareFetchResponsePartition> = BTreeMap::new();
    {
        let mut s = ctx.shared.lock();
        r.acquisition_lock_timeout_ms = lock_ms(&s, &named.group);
        let forgotten: Vec<Tp> = req
            .forgotten_topics_data
            .iter()
            .filter_map(|f| s.topic_name_by_id(&f.topic_id).map(|n| (n, &f.partitions)))
            .flat_map(|(n, ps)| ps.iter().map(move |p| (n.clone(), *p)).collect::<Vec<_>>())
            .collect();
        if let Err(e) = session_step(&mut s, ctx.node, &named, epoch, true, &forgotten) {
            r.error_code = ErrorCode(e);
            return r;
        }
        for (id, p, acks) in &named.parts {
            let mut rp = ShareFetchResponsePartition::default();
            rp.partition_index = *p;
            rp.records = Some(Bytes::new());
            match s.topic_name_by_id(id) {
                None => rp.error_code = ErrorCode::UNKNOWN_TOPIC_ID,
                Some(name) => {
                    if let Err(e) = leader_check(&s, ctx.node, &name, *p) {
                        rp.error_code = ErrorCode(e);
                        if let Some((id, epoch)) = current_leader(&s, &name, *p) {
                            rp.current_leader.leader_id = id;
                            rp.current_leader.leader_epoch = epoch;
                        }
                    } else if !acks.is_empty() {
                        rp.acknowledge_error_code =
                            ErrorCode(acknowledge(&mut s, ctx.node, &named, &(name, *p), acks));
                    } else {
                        continue;
                    }
                }
            }
            answers.insert((*id, *p), rp);
        }
        if epoch == -1 {
            close_session(&mut s, ctx.node, &named);
        }
    }
    let max_records = if v >= 1 && req.max_records > 0 {
        req.max_records as usize
    } else {
        DEFAULT_MAX_RECORDS
    };
    let max_bytes = if req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        usize::MAX
    };
    let wait = Duration::from_millis(req.max_wait_ms.clamp(0, 60_000) as u64);
    let deadline = Instant::now() + wait;
    let got = loop {
        if epoch == -1 {
            break BTreeMap::new();
        }
        let notified = ctx.shared.data_arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let got = {
            let mut s = ctx.shared.lock();
            acquire(&mut s, ctx.node, &named, max_records, max_bytes)
        };
        let now = Instant::now();
        if !got.is_empty() || !answers.is_empty() || now >= deadline {
            break got;
        }
        let _ = tokio::time::timeout((deadline - now).min(RECHECK), notified).await;
    };
    let s = ctx.shared.lock();
    for (tp, (data, ranges)) in got {
        let Some(id) = s.topics.get(&tp.0).map(|t| t.id) else {
            continue;
        };
        let rp = answers.entry((id, tp.1)).or_insert_with(|| {
            let mut rp = ShareFetchResponsePartition::default();
            rp.partition_index = tp.1;
            rp
        });
        rp.records = Some(data);
        rp.acquired_records = ranges;
    }
    let mut by_topic: BTreeMap<Uuid, Vec<ShareFetchResponsePartition>> = BTreeMap::new();
    for ((id, _), rp) in answers {
        by_topic.entry(id).or_default().push(rp);
    }
    r.responses = by_topic
        .into_iter()
        .map(|(id, ps)| {
            let mut t = ShareFetchResponseResponse::default();
            t.topic_id = id;
            t.partitions = ps;
            t
        })
        .collect();
    r
}

/// The ShareAcknowledge handler.
pub(crate) fn share_acknowledge(
    ctx: &Context<'_>,
    req: ShareAcknowledgeRequest,
) -> ShareAcknowledgeResponse {
    let v = ctx.version;
    let mut r = ShareAcknowledgeResponse::default();
    if let Some((code, message)) = refused(ctx, req.is_renew_ack) {
        r.error_code = ErrorCode(code);
        r.error_message = message;
        return r;
    }
    let named = named!(req);
    let mut s = ctx.shared.lock();
    if v >= 2 {
        r.acquisition_lock_timeout_ms = lock_ms(&s, &named.group);
    }
    if let Err(e) = session_step(
        &mut s,
        ctx.node,
        &named,
        req.share_session_epoch,
        false,
        &[],
    ) {
        r.error_code = ErrorCode(e);
        return r;
    }
    let mut by_topic: BTreeMap<Uuid, Vec<ShareAcknowledgeResponsePartition>> = BTreeMap::new();
    for (id, p, acks) in &named.parts {
        let mut rp = ShareAcknowledgeResponsePartition::default();
        rp.partition_index = *p;
        match s.topic_name_by_id(id) {
            None => rp.error_code = ErrorCode::UNKNOWN_TOPIC_ID,
            Some(name) => {
                rp.error_code = ErrorCode(acknowledge(
                    &mut s,
                    ctx.node,
                    &named,
                    &(name.clone(), *p),
                    acks,
                ));
                if rp.error_code == ErrorCode::NOT_LEADER_OR_FOLLOWER {
                    if let Some((id, epoch)) = current_leader(&s, &name, *p) {
                        rp.current_leader.leader_id = id;
                        rp.current_leader.leader_epoch = epoch;
                    }
                }
            }
        }
        by_topic.entry(*id).or_default().push(rp);
    }
    if req.share_session_epoch == -1 {
        close_session(&mut s, ctx.node, &named);
    }
    r.responses = by_topic
        .into_iter()
        .map(|(id, ps)| {
            let mut t = ShareAcknowledgeResponseResponse::default();
            t.topic_id = id;
            t.partitions = ps;
            t
        })
        .collect();
    r
}

/// Deletes an empty share group (DeleteGroups); `None` when `id` is not
/// a share group.
pub(crate) fn delete_share_group(s: &mut ClusterState, id: &str) -> Option<Result<(), i16>> {
    let g: &ShareGroup = s.share_groups.get(id)?;
    if !g.members.is_empty() {
        return Some(Err(ErrorCode::NON_EMPTY_GROUP.0));
    }
    s.share_groups.remove(id);
    s.share_sessions.retain(|(_, g, _), _| g != id);
    Some(Ok(()))
}
