//! Classic consumer group membership: FindCoordinator, JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup, and offset commits.
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

use super::assignor::{flatten, MemberSubscription, RebalanceProtocol};
use super::protocol::{decode_error, encode_error, Assignment, Subscription};
use super::{Consumer, GroupProtocol, Shared, StartAt, TopicPartition};
use crate::broker::{Broker, SendOptions};
use crate::cluster::CoordinatorKind;
use crate::error::{Error, Result};
use kpax_proto::generated::heartbeat::HeartbeatRequest;
use kpax_proto::generated::join_group::JoinGroupRequestProtocol;
use kpax_proto::generated::leave_group::LeaveGroupRequestMember;
use kpax_proto::generated::offset_commit::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kpax_proto::generated::offset_fetch::{
    OffsetFetchRequestGroup, OffsetFetchRequestGroupTopic, OffsetFetchRequestTopic,
};
use kpax_proto::generated::sync_group::SyncGroupRequestAssignment;
use kpax_proto::generated::{
    ApiKey, ConsumerGroupHeartbeatRequest, ErrorCode, JoinGroupRequest, LeaveGroupRequest,
    OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

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

/// Why the heartbeat loop ended.
enum LoopEnd {
    /// The group is rebalancing (or the coordinator moved): rejoin.
    Rejoin(String),
    /// The member was fenced: its partitions are lost.
    Lost(String),
    /// The consumer closed or was dropped.
    Stop,
}

fn group_err(api: ApiKey, code: ErrorCode, broker: &Broker) -> Error {
    Error::Broker {
        broker: broker.addr().into(),
        api,
        code,
        message: None,
    }
}

fn fenced(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::UNKNOWN_MEMBER_ID
            | ErrorCode::ILLEGAL_GENERATION
            | ErrorCode::FENCED_INSTANCE_ID
    )
}

/// Starts the membership task.
/// Starts the membership task; a consumer subscribes once.
///
/// # Errors
/// [`crate::Error::Config`] when it is already subscribed (a second
/// membership task would join as a second member and revoke the first's
/// partitions).
pub(crate) fn start(
    s: &Arc<Shared>,
    group_id: String,
    selection: Selection,
) -> crate::error::Result<()> {
    let mut slot = s.group.lock().unwrap_or_else(|e| e.into_inner());
    if slot.as_ref().is_some_and(|m| !m.stopped) {
        return Err(crate::error::Error::Config(
            "the consumer is already subscribed: a consumer subscribes once (make another Consumer for other topics)".into(),
        ));
    }
    *slot = Some(Membership {
        group_id: group_id.clone(),
        member_id: String::new(),
        generation: -1,
        stopped: false,
        join_version_cap: None,
        owned: BTreeMap::new(),
        owned_generation: -1,
        consumer_protocol: false,
    });
    drop(slot);
    tokio::spawn(run(Arc::downgrade(s), group_id, selection));
    Ok(())
}

pub(super) fn membership(s: &Shared) -> Option<Membership> {
    s.group.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

pub(super) fn set_membership(s: &Shared, f: impl FnOnce(&mut Membership)) {
    if let Some(m) = s.group.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        f(m);
    }
}

/// The topics `selection` means now, sorted.
pub(super) async fn resolve(s: &Shared, selection: &Selection) -> Result<Vec<String>> {
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

async fn run(weak: Weak<Shared>, group_id: String, selection: Selection) {
    let consumer_protocol = weak
        .upgrade()
        .is_some_and(|s| s.config.group_protocol == GroupProtocol::Consumer);
    if consumer_protocol {
        match super::consumer_protocol::run(&weak, &group_id, &selection).await {
            super::consumer_protocol::Ended::Stopped => return,
            super::consumer_protocol::Ended::Fallback(why) => {
                tracing::warn!(group = %group_id, reason = %why, "the consumer group protocol is not offered; using the classic protocol");
            }
        }
    }
    let mut attempt = 0u32;
    loop {
        let Some(s) = weak.upgrade() else { return };
        if s.closed.load(Ordering::Acquire) || membership(&s).is_none_or(|m| m.stopped) {
            return;
        }
        let joined = match resolve(&s, &selection).await {
            Ok(topics) => join_and_sync(&s, &group_id, &topics)
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
                let end = heartbeat_loop(&weak, &joined, &group_id, &selection, &topics).await;
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
                        .coordinator_error(CoordinatorKind::Group, &group_id, *code);
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
        for (t, p) in st.parts.keys() {
            held.entry(t.clone()).or_default().push(*p);
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
            super::assignor::withhold_moving(&members, &mut plan);
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

fn listener_consumer(s: &Arc<Shared>) -> Consumer {
    Consumer { shared: s.clone() }
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

/// Makes `assigned` the member's partitions: revokes the others (the
/// listener is told, positions committed with auto commit on), adds the
/// new ones (from their committed offsets), records the assignment of
/// `generation` (the member epoch under KIP-848) and tells the listener.
/// Returns the revoked partitions.
pub(super) async fn take_assignment(
    s: &Arc<Shared>,
    assigned: &BTreeSet<TopicPartition>,
    generation: i32,
    protocol: RebalanceProtocol,
) -> BTreeSet<TopicPartition> {
    let current: BTreeSet<TopicPartition> = s.lock().parts.keys().cloned().collect();
    let revoked: BTreeSet<TopicPartition> = current.difference(assigned).cloned().collect();
    let added: BTreeSet<TopicPartition> = assigned.difference(&current).cloned().collect();
    tracing::info!(assigned = ?assigned, added = ?added, revoked = ?revoked, generation, "assignment");
    let first = membership(s).is_some_and(|m| m.owned_generation < 0);
    if !added.is_empty() || !revoked.is_empty() || first {
        s.counters.rebalanced();
    }
    if !revoked.is_empty() {
        revoke(s, &revoked, protocol).await;
    }
    {
        let mut st = s.lock();
        for tp in &added {
            st.parts
                .entry(tp.clone())
                .or_insert_with(|| s.new_part(StartAt::Committed));
        }
    }
    set_membership(s, |m| {
        let mut owned: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in assigned {
            owned.entry(t.clone()).or_default().push(*p);
        }
        m.owned = owned;
        m.owned_generation = generation;
    });
    s.wake.notify_one();
    if let Some(l) = s.config.rebalance_listener.clone() {
        let c = listener_consumer(s);
        l.on_partitions_assigned(&c, &added).await;
    }
    revoked
}

/// The current positions of `partitions`.
fn positions_of(
    s: &Shared,
    partitions: &BTreeSet<TopicPartition>,
) -> BTreeMap<TopicPartition, i64> {
    s.lock()
        .parts
        .iter()
        .filter(|(tp, _)| partitions.contains(*tp))
        .filter_map(|(tp, p)| p.position.map(|o| (tp.clone(), o)))
        .collect()
}

/// Gives up `partitions` in an orderly way: stop handing out their
/// records, tell the listener, commit their positions (auto commit), drop
/// them.
pub(super) async fn revoke(
    s: &Arc<Shared>,
    partitions: &BTreeSet<TopicPartition>,
    protocol: RebalanceProtocol,
) {
    {
        let mut st = s.lock();
        for (tp, p) in st.parts.iter_mut() {
            if partitions.contains(tp) {
                p.paused = true;
            }
        }
    }
    if let Some(l) = s.config.rebalance_listener.clone() {
        let c = listener_consumer(s);
        l.on_partitions_revoked(&c, partitions).await;
    }
    if s.config.enable_auto_commit {
        let positions = positions_of(s, partitions);
        // In a cooperative group the revocation follows SyncGroup: the
        // group may still be completing the rebalance for a moment, so
        // REBALANCE_IN_PROGRESS is worth a few retries (nobody else owns
        // these partitions until we rejoin). An eager member commits while
        // the rebalance waits for it: no point retrying there.
        let deadline = Instant::now()
            + match protocol {
                RebalanceProtocol::Cooperative => {
                    s.config.session_timeout.min(Duration::from_secs(10)) / 2
                }
                RebalanceProtocol::Eager => Duration::ZERO,
            };
        loop {
            match commit(s, positions.clone()).await {
                Ok(()) => break,
                Err(Error::Broker {
                    code: ErrorCode::REBALANCE_IN_PROGRESS | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
                    ..
                }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "commit on revoke failed");
                    break;
                }
            }
        }
    }
    {
        let mut st = s.lock();
        st.parts.retain(|tp, _| !partitions.contains(tp));
    }
    if protocol == RebalanceProtocol::Cooperative {
        set_membership(s, |m| {
            for (t, p) in partitions {
                if let Some(ps) = m.owned.get_mut(t) {
                    ps.retain(|x| x != p);
                }
            }
            m.owned.retain(|_, ps| !ps.is_empty());
        });
    }
}

/// Eager rebalance: gives up every partition (the membership keeps the
/// last assignment as `owned`, for the sticky assignor).
async fn revoke_all(s: &Arc<Shared>) {
    let all: BTreeSet<TopicPartition> = s.lock().parts.keys().cloned().collect();
    revoke(s, &all, RebalanceProtocol::Eager).await;
}

/// For `Consumer::close`: an active group member revokes everything (the
/// listener is told, positions are committed with auto commit on). Returns
/// whether the consumer was such a member.
pub(crate) async fn revoke_on_close(s: &Arc<Shared>) -> bool {
    if membership(s).is_none_or(|m| m.stopped || m.member_id.is_empty()) {
        return false;
    }
    revoke_all(s).await;
    true
}

/// Fenced: drops every partition without committing.
pub(super) async fn lose_all(s: &Arc<Shared>) {
    let all: BTreeSet<TopicPartition> = {
        let mut st = s.lock();
        let all = st.parts.keys().cloned().collect();
        for p in st.parts.values_mut() {
            p.paused = true;
        }
        all
    };
    set_membership(s, |m| {
        m.owned.clear();
        m.owned_generation = -1;
    });
    if all.is_empty() {
        return;
    }
    if let Some(l) = s.config.rebalance_listener.clone() {
        let c = listener_consumer(s);
        l.on_partitions_lost(&c, &all).await;
    }
    s.lock().parts.retain(|tp, _| !all.contains(tp));
}

pub(super) async fn auto_commit(s: &Shared) {
    let positions = s
        .lock()
        .parts
        .iter()
        .filter(|(_, p)| !p.paused)
        .filter_map(|(tp, p)| p.position.map(|o| (tp.clone(), o)))
        .collect();
    if let Err(e) = commit(s, positions).await {
        tracing::debug!(error = %e, "auto commit failed");
    }
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

/// Errors after which a commit or an offset fetch is tried again (within
/// the request timeout): the coordinator is being found, moved or loaded
/// (a new cluster creates `__consumer_offsets` on the first lookup), or its
/// connection broke.
fn coordinator_retriable(e: &Error) -> bool {
    match e {
        Error::Broker { code, .. } => matches!(
            *code,
            ErrorCode::COORDINATOR_NOT_AVAILABLE
                | ErrorCode::NOT_COORDINATOR
                | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
        ),
        Error::Network { .. } | Error::Timeout { .. } => true,
        _ => false,
    }
}

/// Commits `offsets` (next offsets to consume) for the group, trying again
/// while the coordinator is not available (within the request timeout).
pub(crate) async fn commit(s: &Shared, offsets: BTreeMap<TopicPartition, i64>) -> Result<()> {
    if offsets.is_empty() {
        return commit_once(s, offsets).await;
    }
    let started = Instant::now();
    let r =
        retry_within_request_timeout(s, coordinator_retriable, || commit_once(s, offsets.clone()))
            .await;
    s.counters.committed(started.elapsed(), r.is_ok());
    r
}

/// Runs `op` until it succeeds, fails with an error `retriable` does not
/// accept, or the request timeout has passed, backing off between tries.
async fn retry_within_request_timeout<T, F, Fut>(
    s: &Shared,
    retriable: impl Fn(&Error) -> bool,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = Instant::now() + s.cluster.config().request_timeout;
    let mut attempt = 0u32;
    loop {
        match op().await {
            Err(e) if retriable(&e) && Instant::now() < deadline => {
                tracing::debug!(error = %e, "trying again");
                attempt += 1;
                tokio::time::sleep(crate::broker::backoff(
                    attempt.min(5),
                    Duration::from_millis(20),
                    Duration::from_millis(500),
                ))
                .await;
            }
            other => return other,
        }
    }
}

async fn commit_once(s: &Shared, offsets: BTreeMap<TopicPartition, i64>) -> Result<()> {
    let Some(m) = membership(s).or_else(|| {
        s.config.group_id.clone().map(|g| Membership {
            group_id: g,
            member_id: String::new(),
            generation: -1,
            stopped: false,
            join_version_cap: None,
            owned: BTreeMap::new(),
            owned_generation: -1,
            consumer_protocol: false,
        })
    }) else {
        return Err(Error::Config("commit needs a group_id".into()));
    };
    if offsets.is_empty() {
        return Ok(());
    }
    let coordinator = s
        .cluster
        .coordinator(CoordinatorKind::Group, &m.group_id)
        .await?;
    let version = coordinator.version_for::<OffsetCommitRequest>().await?;
    let mut topics: BTreeMap<String, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        topics.entry(t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(p)
                .with_committed_offset(o),
        );
    }
    let mut req = OffsetCommitRequest::default()
        .with_group_id(m.group_id.as_str().into())
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(t.as_str().into())
                        .with_partitions(ps)
                })
                .collect(),
        );
    if version >= 1 {
        req.generation_id_or_member_epoch = m.generation;
        req.member_id = m.member_id.as_str().into();
    }
    if version >= 7 {
        req.group_instance_id = s.config.group_instance_id.as_deref().map(Into::into);
    }
    let resp = coordinator
        .send_with(&req, SendOptions::version(version))
        .await?;
    for t in &resp.topics {
        for p in &t.partitions {
            if !p.error_code.is_ok() {
                s.cluster
                    .coordinator_error(CoordinatorKind::Group, &m.group_id, p.error_code);
                return Err(Error::Broker {
                    broker: coordinator.addr().into(),
                    api: ApiKey::OffsetCommit,
                    code: p.error_code,
                    message: Some(format!("{}-{}", t.name, p.partition_index)),
                });
            }
        }
    }
    Ok(())
}

/// The group's committed offsets (-1 where none). A read_committed
/// consumer asks for stable offsets only (KIP-447 `require_stable`, as
/// Java's does): offsets a transaction has sent but not yet committed are
/// waited for (UNSTABLE_OFFSET_COMMIT, retried within the request timeout)
/// rather than read as "no offset", which would reset the position.
pub(crate) async fn fetch_committed(
    s: &Shared,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, i64>> {
    let retriable = |e: &Error| {
        coordinator_retriable(e)
            || matches!(
                e,
                Error::Broker {
                    code: ErrorCode::UNSTABLE_OFFSET_COMMIT,
                    ..
                }
            )
    };
    retry_within_request_timeout(s, retriable, || fetch_committed_once(s, partitions)).await
}

async fn fetch_committed_once(
    s: &Shared,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, i64>> {
    let Some(group_id) = membership(s)
        .map(|m| m.group_id)
        .or_else(|| s.config.group_id.clone())
    else {
        return Err(Error::Config("committed offsets need a group_id".into()));
    };
    let coordinator = s
        .cluster
        .coordinator(CoordinatorKind::Group, &group_id)
        .await?;
    let version = coordinator.version_for::<OffsetFetchRequest>().await?;
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t.clone()).or_default().push(*p);
    }
    let mut req = OffsetFetchRequest::default();
    req.require_stable =
        version >= 7 && s.config.isolation_level == super::IsolationLevel::ReadCommitted;
    if version >= 8 {
        req.groups = vec![OffsetFetchRequestGroup::default()
            .with_group_id(group_id.as_str().into())
            .with_topics(Some(
                by_topic
                    .iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestGroupTopic::default()
                            .with_name(t.as_str().into())
                            .with_partition_indexes(ps.clone())
                    })
                    .collect(),
            ))];
    } else {
        req.group_id = group_id.as_str().into();
        req.topics = Some(
            by_topic
                .iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(t.as_str().into())
                        .with_partition_indexes(ps.clone())
                })
                .collect(),
        );
    }
    let resp = coordinator
        .send_with(&req, SendOptions::version(version))
        .await?;
    let mut out = BTreeMap::new();
    let top_error = if version >= 8 {
        resp.groups
            .first()
            .map_or(ErrorCode::NONE, |g| g.error_code)
    } else {
        resp.error_code
    };
    if !top_error.is_ok() {
        s.cluster
            .coordinator_error(CoordinatorKind::Group, &group_id, top_error);
        return Err(group_err(ApiKey::OffsetFetch, top_error, &coordinator));
    }
    // A partition's error is not "no offset": reading it as -1 would
    // reset the position (and re-read or skip records). Only a topic the
    // broker does not know has no offset.
    let mut take = |topic: &str, partition: i32, code: ErrorCode, offset: i64| -> Result<()> {
        let offset = match code {
            ErrorCode::NONE => offset,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION => -1,
            code => {
                return Err(Error::Broker {
                    broker: coordinator.addr().into(),
                    api: ApiKey::OffsetFetch,
                    code,
                    message: Some(format!("{topic}-{partition}")),
                })
            }
        };
        out.insert((topic.to_string(), partition), offset);
        Ok(())
    };
    if version >= 8 {
        for g in &resp.groups {
            for t in &g.topics {
                for p in &t.partitions {
                    take(&t.name, p.partition_index, p.error_code, p.committed_offset)?;
                }
            }
        }
    } else {
        for t in &resp.topics {
            for p in &t.partitions {
                take(&t.name, p.partition_index, p.error_code, p.committed_offset)?;
            }
        }
    }
    Ok(out)
}

/// Leaves the group (best effort) and stops the membership task.
pub(crate) async fn leave(s: &Shared) {
    let Some(m) = membership(s) else { return };
    set_membership(s, |m| m.stopped = true);
    if m.member_id.is_empty() {
        return;
    }
    let Ok(coordinator) = s
        .cluster
        .coordinator(CoordinatorKind::Group, &m.group_id)
        .await
    else {
        return;
    };
    if m.consumer_protocol {
        leave_consumer_group(s, &coordinator, &m).await;
        return;
    }
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

/// Leaves a consumer-protocol group: a heartbeat with epoch -1 (-2 for a
/// static member).
async fn leave_consumer_group(s: &Shared, coordinator: &Broker, m: &Membership) {
    let Ok(version) = coordinator
        .version_for::<ConsumerGroupHeartbeatRequest>()
        .await
    else {
        return;
    };
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = m.group_id.as_str().into();
    req.member_id = m.member_id.as_str().into();
    req.member_epoch = super::consumer_protocol::leave_epoch(s.config.group_instance_id.is_some());
    req.instance_id = s.config.group_instance_id.as_deref().map(Into::into);
    match coordinator
        .send_with(&req, SendOptions::version(version).with_lane(s.group_lane))
        .await
    {
        Ok(r) if !r.error_code.is_ok() => {
            tracing::debug!(error = %r.error_code, "leave group refused");
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "leave group failed"),
    }
}

/// The group id, generation and member id of the membership now (`None`
/// without a group), for `Consumer::group_metadata`.
pub(crate) fn current_member(s: &Shared) -> Option<(String, i32, String)> {
    membership(s).map(|m| (m.group_id, m.generation, m.member_id))
}
