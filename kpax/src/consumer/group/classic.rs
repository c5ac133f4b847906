//! The classic group protocol: JoinGroup, SyncGroup, Heartbeat and
//! LeaveGroup, with the assignment computed by the group's leader.
//!
//! Two rebalance protocols, chosen by the assignor the group agrees on:
//! - eager (`range`, `roundrobin`, `sticky`): before rejoining, the member
//!   gives up every partition (committing their positions with auto commit
//!   on), so no partition is consumed by two members at once;
//! - cooperative (`cooperative-sticky`, KIP-429): the member keeps
//!   consuming while it rejoins, reporting what it owns; after SyncGroup it
//!   revokes only the partitions now assigned elsewhere (the leader
//!   withholds them from their new owner for one round) and rejoins at once
//!   so the next round can hand them over.
//!
//! A member fenced out of the group (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
//! FENCED_INSTANCE_ID) loses its partitions without committing.

use super::super::assignor::{flatten, MemberSubscription, RebalanceProtocol};
use super::super::protocol::{decode_error, encode_error, Assignment, Subscription};
use super::super::{Shared, TopicPartition};
use super::assignment::{auto_commit, lose_all, revoke_all, take_assignment};
use super::commit::group_err;
use super::member::{membership, resolve, set_membership, Membership, Selection};
use crate::broker::{Broker, SendOptions};
use crate::cluster::CoordinatorKind;
use crate::error::{Error, Result};
use kpax_proto::generated::heartbeat::HeartbeatRequest;
use kpax_proto::generated::join_group::JoinGroupRequestProtocol;
use kpax_proto::generated::leave_group::LeaveGroupRequestMember;
use kpax_proto::generated::sync_group::SyncGroupRequestAssignment;
use kpax_proto::generated::{
    ApiKey, ErrorCode, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Why the heartbeat loop ended.
enum LoopEnd {
    /// The group is rebalancing (or the coordinator moved): rejoin.
    Rejoin(String),
    /// The member was fenced: its partitions are lost.
    Lost(String),
    /// The consumer closed or was dropped.
    Stop,
}

/// Whether `code` fences the member out of the group (its partitions
/// are lost, not revoked).
fn fenced(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::UNKNOWN_MEMBER_ID
            | ErrorCode::ILLEGAL_GENERATION
            | ErrorCode::FENCED_INSTANCE_ID
    )
}

/// Runs the classic membership until the consumer stops or hits a fatal
/// error: join, sync, take the assignment, heartbeat; again on a rebalance.
pub(super) async fn run(weak: &Weak<Shared>, group_id: &str, selection: &Selection) {
    let mut attempt = 0u32;
    loop {
        let Some(s) = weak.upgrade() else { return };
        if s.closed.load(Ordering::Acquire) || membership(&s).is_none_or(|m| m.stopped) {
            return;
        }
        let joined = match resolve(&s, selection).await {
            Ok(topics) => join_and_sync(&s, group_id, &topics)
                .await
                .map(|j| (topics, j)),
            Err(e) => Err(e),
        };
        match joined {
            Ok((topics, joined)) => {
                attempt = 0;
                let revoked = apply_assignment(&s, &joined).await;
                if joined.protocol == RebalanceProtocol::Cooperative && !revoked.is_empty() {
                    // KIP-429: rejoin at once, so the next round can give the
                    // revoked partitions to their new owners.
                    tracing::info!(group = %group_id, revoked = ?revoked, "rejoining after revoking");
                    continue;
                }
                drop(s);
                let end = heartbeat_loop(weak, &joined, group_id, selection, &topics).await;
                let Some(s) = weak.upgrade() else { return };
                match end {
                    LoopEnd::Stop => return,
                    LoopEnd::Lost(why) => {
                        tracing::info!(group = %group_id, reason = %why, "fenced; partitions lost");
                        lose_all(&s).await;
                    }
                    LoopEnd::Rejoin(why) => {
                        tracing::info!(group = %group_id, reason = %why, "rejoining the group");
                        match joined.protocol {
                            RebalanceProtocol::Eager => revoke_all(&s).await,
                            RebalanceProtocol::Cooperative => {
                                if s.config.enable_auto_commit {
                                    auto_commit(&s).await;
                                }
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(group = %group_id, error = %e, "join failed; retrying");
                // A broker that closes the connection on a JoinGroup version it
                // advertises (librdkafka's mock misreads v6's compact array):
                // step the version down and try again.
                if let Error::ClosedOnRequest {
                    api: ApiKey::JoinGroup,
                    version,
                    ..
                }
                | Error::Refused {
                    api: ApiKey::JoinGroup,
                    version,
                    ..
                } = &e
                {
                    let lower = (*version - 1).max(0);
                    set_membership(&s, |m| m.join_version_cap = Some(lower));
                }
                if let Error::Broker { code, .. } = &e {
                    s.cluster
                        .coordinator_error(CoordinatorKind::Group, group_id, *code);
                    if fenced(*code) {
                        set_membership(&s, |m| {
                            m.member_id.clear();
                            m.generation = -1;
                        });
                        lose_all(&s).await;
                    }
                }
                if e.is_retriable() || matches!(e, Error::Broker { .. } | Error::Refused { .. }) {
                    attempt += 1;
                    drop(s);
                    tokio::time::sleep(crate::broker::backoff(
                        attempt.min(6),
                        Duration::from_millis(100),
                        Duration::from_secs(2),
                    ))
                    .await;
                } else {
                    s.lock().error = Some(e);
                    s.records.notify_waiters();
                    return;
                }
            }
        }
    }
}

/// The outcome of one JoinGroup + SyncGroup round.
struct Joined {
    coordinator: Broker,
    generation: i32,
    assignment: BTreeMap<String, Vec<i32>>,
    protocol: RebalanceProtocol,
    /// As leader: the partition count of each subscribed topic used.
    leader_counts: Option<BTreeMap<String, i32>>,
}

async fn join_and_sync(s: &Arc<Shared>, group_id: &str, topics: &[String]) -> Result<Joined> {
    let coordinator = s
        .cluster
        .coordinator(CoordinatorKind::Group, group_id)
        .await?;
    let cap = membership(s)
        .and_then(|m| m.join_version_cap)
        .unwrap_or(i16::MAX);
    let version = coordinator
        .version_for::<JoinGroupRequest>()
        .await?
        .min(cap);
    let (previous, previous_generation) = membership(s)
        .map(|m| (m.owned, m.owned_generation))
        .unwrap_or_default();
    let held: BTreeMap<String, Vec<i32>> = {
        let st = s.lock();
        let mut held: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for tp in st.parts.keys() {
            held.entry(tp.topic.clone()).or_default().push(tp.partition);
        }
        held
    };
    // What each protocol is told the member owns: what it holds now (after
    // an eager revoke: nothing, so the subscription stays the same from one
    // eager rebalance to the next), or for the eager `sticky` assignor its
    // previous assignment.
    let subscription = |owned: BTreeMap<String, Vec<i32>>, generation: i32| {
        Subscription {
            topics: topics.to_vec(),
            generation: if owned.is_empty() { -1 } else { generation },
            owned_partitions: owned,
            ..Subscription::default()
        }
        .encode()
        .map_err(encode_error)
    };
    let held_sub = subscription(held, previous_generation)?;
    let previous_sub = subscription(previous, previous_generation)?;
    let protocols: Vec<JoinGroupRequestProtocol> = s
        .config
        .assignors
        .iter()
        .map(|a| {
            let metadata = if a.reports_previous_assignment() {
                previous_sub.clone()
            } else {
                held_sub.clone()
            };
            JoinGroupRequestProtocol::default()
                .with_name(a.name().into())
                .with_metadata(metadata)
        })
        .collect();
    let instance = s.config.group_instance_id.clone();
    let resp = loop {
        let member_id = membership(s).map(|m| m.member_id).unwrap_or_default();
        let mut req = JoinGroupRequest::default()
            .with_group_id(group_id.into())
            .with_session_timeout_ms(s.config.session_timeout.as_millis() as i32)
            .with_member_id(member_id.as_str().into())
            .with_protocol_type("consumer".into())
            .with_protocols(protocols.clone());
        if version >= 1 {
            req.rebalance_timeout_ms = s.config.rebalance_timeout.as_millis() as i32;
        }
        if version >= 5 {
            req.group_instance_id = instance.as_deref().map(Into::into);
        }
        // The coordinator holds JoinGroup until the rebalance completes.
        let wait = s.config.rebalance_timeout + Duration::from_secs(5);
        let resp = coordinator
            .send_with(
                &req,
                SendOptions::version(version)
                    .with_timeout(wait)
                    .with_lane(s.group_lane),
            )
            .await?;
        match resp.error_code {
            ErrorCode::NONE => break resp,
            ErrorCode::MEMBER_ID_REQUIRED => {
                // KIP-394: join again with the id the coordinator handed out
                set_membership(s, |m| m.member_id = resp.member_id.to_string());
            }
            _ => return Err(group_err(ApiKey::JoinGroup, resp.error_code, &coordinator)),
        }
    };
    set_membership(s, |m| {
        m.member_id = resp.member_id.to_string();
        m.generation = resp.generation_id;
    });
    tracing::debug!(
        group = %group_id,
        generation = resp.generation_id,
        member = %resp.member_id,
        leader = %resp.leader,
        members = resp.members.len(),
        "joined"
    );
    let protocol_name = resp
        .protocol_name
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| s.config.assignors[0].name().to_string());
    let assignor = s
        .config
        .assignors
        .iter()
        .find(|a| a.name() == protocol_name)
        .ok_or_else(|| {
            Error::Config(format!(
                "the group chose assignor {protocol_name:?}, which this member does not have"
            ))
        })?
        .clone();
    let protocol = assignor.protocol();
    let mut assignments = Vec::new();
    let mut leader_counts = None;
    if resp.leader == resp.member_id {
        let mut members: BTreeMap<String, MemberSubscription> = BTreeMap::new();
        let mut all_topics: BTreeSet<String> = BTreeSet::new();
        for m in &resp.members {
            let sub = Subscription::decode(m.metadata.clone()).map_err(decode_error)?;
            all_topics.extend(sub.topics.iter().cloned());
            members.insert(
                m.member_id.to_string(),
                MemberSubscription::new(sub.topics).owning(sub.owned_partitions, sub.generation),
            );
            if let Some(rack) = sub.rack_id {
                if let Some(ms) = members.get_mut(m.member_id.as_str()) {
                    ms.rack_id = Some(rack);
                }
            }
        }
        // Assign over fresh partition counts (new partitions are picked up
        // at every rebalance). The round trip also gives followers time to
        // send their SyncGroup before the leader's: librdkafka's mock
        // refuses a follower's SyncGroup that arrives after the leader's
        // (INVALID_REQUEST), where Kafka answers it.
        let names: Vec<&str> = all_topics.iter().map(String::as_str).collect();
        if let Err(e) = s.cluster.refresh(Some(&names)).await {
            tracing::debug!(error = %e, "metadata refresh before assigning failed; using the cache");
        }
        let mut counts = BTreeMap::new();
        for t in all_topics {
            match s.cluster.partitions(&t).await {
                Ok(ps) => {
                    counts.insert(t, ps.len() as i32);
                }
                Err(e) => tracing::warn!(topic = %t, error = %e, "subscribed topic not assignable"),
            }
        }
        let mut plan = assignor.assign(&members, &counts);
        if protocol == RebalanceProtocol::Cooperative {
            // Whatever the assignor did: a partition changes owner only
            // after its owner has revoked it.
            super::super::assignor::withhold_moving(&members, &mut plan);
        }
        tracing::debug!(group = %group_id, owned = ?members.iter().map(|(m, s)| (m, &s.owned_partitions)).collect::<Vec<_>>(), ?plan, "assigning as the leader");
        for (member, parts) in plan {
            let a = Assignment {
                partitions: parts,
                user_data: None,
            };
            assignments.push(
                SyncGroupRequestAssignment::default()
                    .with_member_id(member.as_str().into())
                    .with_assignment(a.encode().map_err(encode_error)?),
            );
        }
        leader_counts = Some(counts);
    }
    let sync_version = coordinator.version_for::<SyncGroupRequest>().await?;
    let mut req = SyncGroupRequest::default()
        .with_group_id(group_id.into())
        .with_generation_id(resp.generation_id)
        .with_member_id(resp.member_id.clone())
        .with_assignments(assignments);
    if sync_version >= 3 {
        req.group_instance_id = instance.as_deref().map(Into::into);
    }
    if sync_version >= 5 {
        req.protocol_type = Some("consumer".into());
        req.protocol_name = Some(protocol_name.as_str().into());
    }
    let sync = coordinator
        .send_with(
            &req,
            SendOptions::version(sync_version)
                .with_timeout(s.config.rebalance_timeout + Duration::from_secs(5))
                .with_lane(s.group_lane),
        )
        .await?;
    if !sync.error_code.is_ok() {
        return Err(group_err(ApiKey::SyncGroup, sync.error_code, &coordinator));
    }
    let assignment = Assignment::decode(sync.assignment.clone()).map_err(decode_error)?;
    Ok(Joined {
        coordinator,
        generation: resp.generation_id,
        assignment: assignment.partitions,
        protocol,
        leader_counts,
    })
}

/// Takes the new assignment: revokes what is no longer ours (eager groups
/// hold nothing here), adds what is new. Returns the revoked partitions.
async fn apply_assignment(s: &Arc<Shared>, joined: &Joined) -> BTreeSet<TopicPartition> {
    take_assignment(
        s,
        &flatten(&joined.assignment),
        joined.generation,
        joined.protocol,
    )
    .await
}

/// Whether the topics or partitions the group was assigned over changed:
/// a pattern now matches other topics, or (as leader) a topic's partition
/// count changed.
async fn metadata_changed(
    s: &Shared,
    selection: &Selection,
    topics: &[String],
    leader_counts: Option<&BTreeMap<String, i32>>,
) -> Option<String> {
    if let Selection::Pattern { .. } = selection {
        match resolve(s, selection).await {
            Ok(now) if now != topics => {
                return Some(format!("subscribed topics changed to {now:?}"));
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "topic lookup failed"),
        }
    }
    let counts = leader_counts?;
    if s.cluster
        .refresh(Some(&topics.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .is_err()
    {
        return None;
    }
    for (t, n) in counts {
        if let Ok(ps) = s.cluster.partitions(t).await {
            if ps.len() as i32 != *n {
                return Some(format!("topic {t} now has {} partitions", ps.len()));
            }
        }
    }
    None
}

async fn heartbeat_loop(
    weak: &Weak<Shared>,
    joined: &Joined,
    group_id: &str,
    selection: &Selection,
    topics: &[String],
) -> LoopEnd {
    let coordinator = &joined.coordinator;
    let mut last_commit = Instant::now();
    let mut last_check = Instant::now();
    loop {
        let Some(s) = weak.upgrade() else {
            return LoopEnd::Stop;
        };
        let interval = s.config.heartbeat_interval;
        if s.closed.load(Ordering::Acquire) {
            return LoopEnd::Stop;
        }
        let Some(m) = membership(&s) else {
            return LoopEnd::Stop;
        };
        if m.stopped {
            return LoopEnd::Stop;
        }
        if s.config.enable_auto_commit && last_commit.elapsed() >= s.config.auto_commit_interval {
            last_commit = Instant::now();
            auto_commit(&s).await;
        }
        if last_check.elapsed() >= s.config.metadata_check_interval {
            last_check = Instant::now();
            if let Some(why) =
                metadata_changed(&s, selection, topics, joined.leader_counts.as_ref()).await
            {
                return LoopEnd::Rejoin(why);
            }
        }
        let version = match coordinator.version_for::<HeartbeatRequest>().await {
            Ok(v) => v,
            Err(e) => return LoopEnd::Rejoin(e.to_string()),
        };
        let mut req = HeartbeatRequest::default()
            .with_group_id(group_id.into())
            .with_generation_id(m.generation)
            .with_member_id(m.member_id.as_str().into());
        if version >= 3 {
            req.group_instance_id = s.config.group_instance_id.as_deref().map(Into::into);
        }
        match coordinator
            .send_with(&req, SendOptions::version(version).with_lane(s.group_lane))
            .await
        {
            Ok(r) if r.error_code.is_ok() => {}
            Ok(r) => {
                let code = r.error_code;
                s.cluster
                    .coordinator_error(CoordinatorKind::Group, group_id, code);
                if fenced(code) {
                    set_membership(&s, |m| {
                        m.member_id.clear();
                        m.generation = -1;
                    });
                    return LoopEnd::Lost(code.to_string());
                }
                return LoopEnd::Rejoin(code.to_string());
            }
            Err(e) => {
                s.cluster.coordinator_error(
                    CoordinatorKind::Group,
                    group_id,
                    ErrorCode::COORDINATOR_NOT_AVAILABLE,
                );
                return LoopEnd::Rejoin(e.to_string());
            }
        }
        drop(s);
        tokio::time::sleep(interval).await;
    }
}

/// Leaves a classic group: LeaveGroup, except for a static member, which
/// the coordinator keeps in the group until its session times out.
pub(super) async fn leave(s: &Shared, coordinator: &Broker, m: &Membership) {
    if s.config.group_instance_id.is_some() {
        // A static member does not leave (as Java's has not since 2.3,
        // KIP-345): the coordinator keeps its partitions for it until the
        // session times out, so a restart within that time rebalances
        // nothing.
        tracing::debug!(group = %m.group_id, "static member: closing without LeaveGroup");
        return;
    }
    let Ok(version) = coordinator.version_for::<LeaveGroupRequest>().await else {
        return;
    };
    let mut req = LeaveGroupRequest::default().with_group_id(m.group_id.as_str().into());
    if version >= 3 {
        let mut member =
            LeaveGroupRequestMember::default().with_member_id(m.member_id.as_str().into());
        member.group_instance_id = s.config.group_instance_id.as_deref().map(Into::into);
        req.members = vec![member];
    } else {
        req.member_id = m.member_id.as_str().into();
    }
    match coordinator
        .send_with(&req, SendOptions::version(version).with_lane(s.group_lane))
        .await
    {
        Ok(r) => {
            let code = r.error_code;
            let member_code = r.members.first().map_or(ErrorCode::NONE, |m| m.error_code);
            if !code.is_ok() || !member_code.is_ok() {
                tracing::debug!(error = %code, member_error = %member_code, "leave group refused");
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "leave group failed");
        }
    }
}
