//! The classic group protocol at the group coordinator: FindCoordinator
//! (for groups and transactional ids), JoinGroup and SyncGroup (which wait
//! for the rebalance), Heartbeat, LeaveGroup, DescribeGroups and ListGroups
//! (which lists every group type: classic, consumer and share). The model
//! is [`Group`].

use std::time::{Duration, Instant};

use bytes::Bytes;
use kpax_proto::generated::{
    describe_groups::*, find_coordinator::*, join_group::*, leave_group::*, list_groups::*,
};
use kpax_proto::generated::{
    DescribeGroupsRequest, DescribeGroupsResponse, ErrorCode, FindCoordinatorRequest,
    FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use kpax_proto::wire::StrBytes;

use crate::context::{group_check, s_owned, sb, Context};
use crate::group::{Group, JoinRequest, JoinStep, SyncStep};
use crate::state::CoordinatorKind;

/// How long a waiting request sleeps between re-checks when no wakeup
/// comes (a safety net: wakeups are the normal path).
const RECHECK: Duration = Duration::from_millis(50);

pub(crate) fn find_coordinator(
    ctx: &Context<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let v = ctx.version;
    let s = ctx.shared.lock();
    let lookup = |key: &str| -> Result<(i32, String, i32), i16> {
        if let Some(e) = ctx.injected {
            return Err(e);
        }
        let kind = match req.key_type {
            0 => CoordinatorKind::Group,
            1 => CoordinatorKind::Transaction,
            _ => return Err(ErrorCode::INVALID_REQUEST.0),
        };
        let node = s.coordinator(kind, key);
        let b = s
            .broker(node)
            .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE.0)?;
        Ok((node, s.host.clone(), i32::from(b.port)))
    };
    let mut r = FindCoordinatorResponse::default();
    if v < 4 {
        match lookup(&req.key) {
            Ok((node, host, port)) => {
                r.node_id = node;
                r.host = s_owned(&host);
                r.port = port;
                if v >= 1 {
                    r.error_message = None;
                }
            }
            Err(e) => {
                r.error_code = ErrorCode(e);
                r.node_id = -1;
                r.host = sb("");
                r.port = -1;
                if v >= 1 {
                    r.error_message = ErrorCode(e).name().map(StrBytes::from_static);
                }
            }
        }
    } else {
        for key in &req.coordinator_keys {
            let mut c = FindCoordinatorResponseCoordinator::default();
            c.key = key.clone();
            match lookup(key) {
                Ok((node, host, port)) => {
                    c.node_id = node;
                    c.host = s_owned(&host);
                    c.port = port;
                }
                Err(e) => {
                    c.error_code = ErrorCode(e);
                    c.node_id = -1;
                    c.host = sb("");
                    c.port = -1;
                    c.error_message = ErrorCode(e).name().map(StrBytes::from_static);
                }
            }
            r.coordinators.push(c);
        }
    }
    r
}

fn join_error(v: i16, code: i16, member_id: &str) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = ErrorCode(code);
    r.generation_id = -1;
    r.member_id = s_owned(member_id);
    r.protocol_name = if v >= 7 { None } else { Some(sb("")) };
    r
}

pub(crate) async fn join_group(ctx: &Context<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
    let v = ctx.version;
    let group_id = req.group_id.to_string();
    let step = {
        let mut s = ctx.shared.lock();
        if let Err(e) = group_check(ctx, &s, &group_id) {
            return join_error(v, e, &req.member_id);
        }
        if !(1..=1_800_000).contains(&req.session_timeout_ms) {
            return join_error(v, ErrorCode::INVALID_SESSION_TIMEOUT.0, &req.member_id);
        }
        let rebalance_ms = if v >= 1 && req.rebalance_timeout_ms > 0 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        };
        let delay = s.initial_rebalance_delay;
        let now = Instant::now();
        let group = s
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(&group_id, now));
        group.join(
            JoinRequest {
                member_id: req.member_id.to_string(),
                instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
                client_id: ctx.client_id.clone(),
                client_host: format!("/{}", ctx.peer.ip()),
                session_timeout: Duration::from_millis(req.session_timeout_ms as u64),
                rebalance_timeout: Duration::from_millis(rebalance_ms as u64),
                protocol_type: req.protocol_type.to_string(),
                protocols: req
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
                require_known_member_id: v >= 4,
            },
            now,
            delay,
        )
    };
    let member_id = match step {
        Err(e) => return join_error(v, e.0, &req.member_id),
        Ok(JoinStep::MemberIdRequired(id)) => {
            return join_error(v, ErrorCode::MEMBER_ID_REQUIRED.0, &id)
        }
        Ok(JoinStep::Wait(id)) => id,
    };
    loop {
        let notify = {
            let s = ctx.shared.lock();
            let Some(g) = s.groups.get(&group_id) else {
                return join_error(v, ErrorCode::UNKNOWN_MEMBER_ID.0, &member_id);
            };
            match g.join_result(&member_id) {
                Err(e) => return join_error(v, e.0, &member_id),
                Ok(Some(j)) => {
                    let mut r = JoinGroupResponse::default();
                    r.generation_id = j.generation;
                    if v >= 7 {
                        r.protocol_type = j.protocol_type.as_deref().map(s_owned);
                        r.protocol_name = j.protocol.as_deref().map(s_owned);
                    } else {
                        r.protocol_name = Some(s_owned(j.protocol.as_deref().unwrap_or("")));
                    }
                    r.leader = s_owned(&j.leader);
                    r.member_id = s_owned(&j.member_id);
                    r.members = j
                        .members
                        .into_iter()
                        .map(|(id, instance, meta)| {
                            let mut m = JoinGroupResponseMember::default();
                            m.member_id = s_owned(&id);
                            if v >= 5 {
                                m.group_instance_id = instance.as_deref().map(s_owned);
                            }
                            m.metadata = meta;
                            m
                        })
                        .collect();
                    return r;
                }
                Ok(None) => g.notify.clone(),
            }
        };
        wait_on(&notify).await;
    }
}

/// Waits for a group change, or [`RECHECK`] at most.
async fn wait_on(notify: &tokio::sync::Notify) {
    let _ = tokio::time::timeout(RECHECK, notify.notified()).await;
}

fn sync_response(v: i16, code: i16, assignment: Bytes, g: Option<&Group>) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = ErrorCode(code);
    r.assignment = assignment;
    if v >= 5 && code == 0 {
        r.protocol_type = g.and_then(|g| g.protocol_type.as_deref()).map(s_owned);
        r.protocol_name = g.and_then(|g| g.protocol.as_deref()).map(s_owned);
    }
    r
}

pub(crate) async fn sync_group(ctx: &Context<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    let v = ctx.version;
    let group_id = req.group_id.to_string();
    let member = req.member_id.to_string();
    {
        let mut s = ctx.shared.lock();
        if let Err(e) = group_check(ctx, &s, &group_id) {
            return sync_response(v, e, Bytes::new(), None);
        }
        let Some(g) = s.groups.get_mut(&group_id) else {
            return sync_response(v, ErrorCode::UNKNOWN_MEMBER_ID.0, Bytes::new(), None);
        };
        let assignments = req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect();
        match g.sync(&member, req.generation_id, assignments, Instant::now()) {
            Err(e) => return sync_response(v, e.0, Bytes::new(), None),
            Ok(SyncStep::Done(a)) => return sync_response(v, 0, a, Some(g)),
            Ok(SyncStep::Wait) => {}
        }
    }
    loop {
        let notify = {
            let s = ctx.shared.lock();
            let Some(g) = s.groups.get(&group_id) else {
                return sync_response(v, ErrorCode::UNKNOWN_MEMBER_ID.0, Bytes::new(), None);
            };
            match g.sync_result(&member, req.generation_id) {
                Err(e) => return sync_response(v, e.0, Bytes::new(), None),
                Ok(SyncStep::Done(a)) => return sync_response(v, 0, a, Some(g)),
                Ok(SyncStep::Wait) => g.notify.clone(),
            }
        };
        wait_on(&notify).await;
    }
}

pub(crate) fn heartbeat(ctx: &Context<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    let mut s = ctx.shared.lock();
    let mut r = HeartbeatResponse::default();
    r.error_code = match group_check(ctx, &s, &req.group_id) {
        Err(e) => ErrorCode(e),
        Ok(()) => match s.groups.get_mut(req.group_id.as_str()) {
            None => ErrorCode::UNKNOWN_MEMBER_ID,
            Some(g) => g.heartbeat(&req.member_id, req.generation_id, Instant::now()),
        },
    };
    r
}

pub(crate) fn leave_group(ctx: &Context<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let v = ctx.version;
    let mut s = ctx.shared.lock();
    let mut r = LeaveGroupResponse::default();
    if let Err(e) = group_check(ctx, &s, &req.group_id) {
        r.error_code = ErrorCode(e);
        return r;
    }
    let leaving: Vec<(String, Option<StrBytes>)> = if v >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.clone()))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let now = Instant::now();
    let g = s.groups.get_mut(req.group_id.as_str());
    let mut codes = Vec::new();
    match g {
        None => codes.extend(leaving.iter().map(|_| ErrorCode::UNKNOWN_MEMBER_ID.0)),
        Some(g) => {
            for (id, instance) in &leaving {
                // A static member may leave by instance id alone.
                let id = if id.is_empty() {
                    g.members
                        .values()
                        .find(|m| m.instance_id.as_deref() == instance.as_deref())
                        .map(|m| m.id.clone())
                        .unwrap_or_default()
                } else {
                    id.clone()
                };
                codes.push(g.leave(&id, now).0);
            }
        }
    }
    if v >= 3 {
        r.members = leaving
            .into_iter()
            .zip(&codes)
            .map(|((id, instance), &code)| {
                let mut m = LeaveGroupResponseMember::default();
                m.member_id = s_owned(&id);
                m.group_instance_id = instance;
                m.error_code = ErrorCode(code);
                m
            })
            .collect();
    } else {
        r.error_code = ErrorCode(codes.first().copied().unwrap_or(0));
    }
    r
}

pub(crate) fn describe_groups(
    ctx: &Context<'_>,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let v = ctx.version;
    let s = ctx.shared.lock();
    let mut r = DescribeGroupsResponse::default();
    for id in req.groups {
        let mut rg = DescribeGroupsResponseGroup::default();
        rg.group_id = id.clone();
        if v >= 3 {
            rg.authorized_operations = i32::MIN;
        }
        if let Err(e) = group_check(ctx, &s, &id) {
            rg.error_code = ErrorCode(e);
            rg.group_state = s_owned("Dead");
            r.groups.push(rg);
            continue;
        }
        match s.groups.get(id.as_str()) {
            None => rg.group_state = s_owned("Dead"),
            Some(g) => {
                rg.group_state = StrBytes::from_static(g.state_name());
                rg.protocol_type = s_owned(g.protocol_type_name());
                rg.protocol_data = s_owned(g.protocol.as_deref().unwrap_or(""));
                rg.members = g
                    .members
                    .values()
                    .map(|m| {
                        let mut dm = DescribeGroupsResponseMember::default();
                        dm.member_id = s_owned(&m.id);
                        if v >= 4 {
                            dm.group_instance_id = m.instance_id.as_deref().map(s_owned);
                        }
                        dm.client_id = s_owned(&m.client_id);
                        dm.client_host = s_owned(&m.client_host);
                        dm.member_metadata = m
                            .protocols
                            .iter()
                            .find(|(p, _)| Some(p) == g.protocol.as_ref())
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default();
                        dm.member_assignment = m.assignment.clone();
                        dm
                    })
                    .collect();
            }
        }
        r.groups.push(rg);
    }
    r
}

pub(crate) fn list_groups(ctx: &Context<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let v = ctx.version;
    let s = ctx.shared.lock();
    let mut r = ListGroupsResponse::default();
    if let Some(e) = ctx.injected {
        r.error_code = ErrorCode(e);
        return r;
    }
    for g in s.groups.values() {
        if s.coordinator(CoordinatorKind::Group, &g.id) != ctx.node {
            continue;
        }
        let state = g.state_name();
        let group_type = if g.is_consumer_group() {
            "consumer"
        } else {
            "classic"
        };
        if v >= 4
            && !req.states_filter.is_empty()
            && !req
                .states_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(state))
        {
            continue;
        }
        if v >= 5
            && !req.types_filter.is_empty()
            && !req
                .types_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(group_type))
        {
            continue;
        }
        let mut lg = ListGroupsResponseGroup::default();
        lg.group_id = s_owned(&g.id);
        lg.protocol_type = s_owned(g.protocol_type_name());
        if v >= 4 {
            lg.group_state = StrBytes::from_static(state);
        }
        if v >= 5 {
            lg.group_type = StrBytes::from_static(group_type);
        }
        r.groups.push(lg);
    }
    for (id, g) in &s.share_groups {
        if s.coordinator(CoordinatorKind::Group, id) != ctx.node {
            continue;
        }
        let state = g.state_name();
        let filtered_out = (v >= 4
            && !req.states_filter.is_empty()
            && !req
                .states_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(state)))
            || (v >= 5
                && !req.types_filter.is_empty()
                && !req
                    .types_filter
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case("share")));
        if filtered_out {
            continue;
        }
        let mut lg = ListGroupsResponseGroup::default();
        lg.group_id = s_owned(id);
        lg.protocol_type = sb("share");
        if v >= 4 {
            lg.group_state = StrBytes::from_static(state);
        }
        if v >= 5 {
            lg.group_type = sb("share");
        }
        r.groups.push(lg);
    }
    r
}
