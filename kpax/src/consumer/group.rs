//! Classic consumer group membership: FindCoordinator, JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup, and offset commits.
//!
//! Rebalances are eager: before rejoining, the member commits its positions
//! and gives up every partition, so no partition is ever consumed by two
//! members at once and nothing is consumed twice across a clean rebalance.

use super::assignor::flatten;
use super::protocol::{Assignment, Subscription};
use super::{Shared, StartAt, TopicPartition};
use crate::broker::{Broker, Lane};
use crate::cluster::{ClusterView, CoordinatorKind};
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
    ApiKey, ErrorCode, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

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
}

fn group_err(api: ApiKey, code: i16, broker: &Broker) -> Error {
    Error::Broker {
        broker: broker.addr().into(),
        api,
        code: ErrorCode(code),
        message: None,
    }
}

/// Starts the membership task.
pub(crate) fn start(s: &Arc<Shared>, group_id: String, topics: Vec<String>) {
    *s.group.lock().unwrap_or_else(|e| e.into_inner()) = Some(Membership {
        group_id: group_id.clone(),
        member_id: String::new(),
        generation: -1,
        stopped: false,
        join_version_cap: None,
    });
    tokio::spawn(run(Arc::downgrade(s), group_id, topics));
}

fn membership(s: &Shared) -> Option<Membership> {
    s.group.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn set_membership(s: &Shared, f: impl FnOnce(&mut Membership)) {
    if let Some(m) = s.group.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        f(m);
    }
}

async fn run(weak: Weak<Shared>, group_id: String, mut topics: Vec<String>) {
    topics.sort();
    topics.dedup();
    let mut attempt = 0u32;
    loop {
        let Some(s) = weak.upgrade() else { return };
        if s.closed.load(Ordering::Acquire) || membership(&s).is_none_or(|m| m.stopped) {
            return;
        }
        match join_and_sync(&s, &group_id, &topics).await {
            Ok((coordinator, assignment)) => {
                attempt = 0;
                apply_assignment(&s, assignment);
                // heartbeat until the group rebalances or we stop
                let why = heartbeat_loop(&weak, &coordinator, &group_id).await;
                let Some(s) = weak.upgrade() else { return };
                tracing::info!(group = %group_id, reason = %why, "rejoining the group");
                revoke_all(&s).await;
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
                } = &e
                {
                    let lower = (*version - 1).max(0);
                    set_membership(&s, |m| m.join_version_cap = Some(lower));
                }
                if let Error::Broker { code, .. } = &e {
                    s.cluster
                        .coordinator_error(CoordinatorKind::Group, &group_id, *code);
                    if matches!(
                        *code,
                        ErrorCode::UNKNOWN_MEMBER_ID
                            | ErrorCode::ILLEGAL_GENERATION
                            | ErrorCode::FENCED_INSTANCE_ID
                    ) {
                        set_membership(&s, |m| {
                            m.member_id.clear();
                            m.generation = -1;
                        });
                    }
                }
                if e.is_retriable() || matches!(e, Error::Broker { .. }) {
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

async fn join_and_sync(
    s: &Arc<Shared>,
    group_id: &str,
    topics: &[String],
) -> Result<(Broker, BTreeMap<String, Vec<i32>>)> {
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
    let sub = Subscription {
        topics: topics.to_vec(),
        user_data: None,
    }
    .encode();
    let protocols: Vec<JoinGroupRequestProtocol> = s
        .config
        .assignors
        .iter()
        .map(|a| {
            JoinGroupRequestProtocol::default()
                .with_name(a.name().into())
                .with_metadata(sub.clone())
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
            .send_version_timeout_on(Lane::Group, &req, version, wait)
            .await?;
        match ErrorCode(resp.error_code) {
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
    let protocol = resp
        .protocol_name
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| s.config.assignors[0].name().to_string());
    let mut assignments = Vec::new();
    if resp.leader == resp.member_id {
        let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut all_topics: BTreeSet<String> = BTreeSet::new();
        for m in &resp.members {
            let sub = Subscription::decode(m.metadata.clone())?;
            all_topics.extend(sub.topics.iter().cloned());
            members.insert(m.member_id.to_string(), sub.topics);
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
        let assignor = s
            .config
            .assignors
            .iter()
            .find(|a| a.name() == protocol)
            .ok_or_else(|| {
                Error::Config(format!(
                    "the group chose assignor {protocol:?}, which this member does not have"
                ))
            })?;
        for (member, parts) in assignor.assign(&members, &counts) {
            let a = Assignment {
                partitions: parts,
                user_data: None,
            };
            assignments.push(
                SyncGroupRequestAssignment::default()
                    .with_member_id(member.as_str().into())
                    .with_assignment(a.encode()),
            );
        }
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
        req.protocol_name = Some(protocol.as_str().into());
    }
    let sync = coordinator
        .send_version_timeout_on(
            Lane::Group,
            &req,
            sync_version,
            s.config.rebalance_timeout + Duration::from_secs(5),
        )
        .await?;
    if sync.error_code != 0 {
        return Err(group_err(ApiKey::SyncGroup, sync.error_code, &coordinator));
    }
    let assignment = Assignment::decode(sync.assignment.clone())?;
    Ok((coordinator, assignment.partitions))
}

fn apply_assignment(s: &Shared, assignment: BTreeMap<String, Vec<i32>>) {
    let new = flatten(&assignment);
    tracing::info!(partitions = ?new, "assigned");
    {
        let mut st = s.lock();
        st.parts.retain(|tp, _| new.contains(tp));
        for tp in new {
            if let std::collections::btree_map::Entry::Vacant(v) = st.parts.entry(tp) {
                v.insert(s.new_part(StartAt::Committed));
            }
        }
    }
    s.wake.notify_one();
}

/// Commits positions (always, so nothing is consumed twice after the
/// rebalance) and gives up every partition.
async fn revoke_all(s: &Arc<Shared>) {
    // Stop handing out records first, so the positions committed are final.
    let positions: BTreeMap<TopicPartition, i64> = {
        let mut st = s.lock();
        for p in st.parts.values_mut() {
            p.paused = true;
        }
        st.parts
            .iter()
            .filter_map(|(tp, p)| p.position.map(|o| (tp.clone(), o)))
            .collect()
    };
    if !positions.is_empty() {
        if let Err(e) = commit(s, positions).await {
            tracing::warn!(error = %e, "commit on revoke failed");
        }
    }
    s.lock().parts.clear();
}

async fn heartbeat_loop(weak: &Weak<Shared>, coordinator: &Broker, group_id: &str) -> String {
    let mut last_commit = Instant::now();
    loop {
        let Some(s) = weak.upgrade() else {
            return "dropped".into();
        };
        let interval = s.config.heartbeat_interval;
        if s.closed.load(Ordering::Acquire) {
            return "closed".into();
        }
        let Some(m) = membership(&s) else {
            return "no membership".into();
        };
        if m.stopped {
            return "stopped".into();
        }
        if s.config.enable_auto_commit && last_commit.elapsed() >= s.config.auto_commit_interval {
            last_commit = Instant::now();
            let positions = s
                .lock()
                .parts
                .iter()
                .filter_map(|(tp, p)| p.position.map(|o| (tp.clone(), o)))
                .collect();
            if let Err(e) = commit(&s, positions).await {
                tracing::debug!(error = %e, "auto commit failed");
            }
        }
        let version = match coordinator.version_for::<HeartbeatRequest>().await {
            Ok(v) => v,
            Err(e) => return e.to_string(),
        };
        let mut req = HeartbeatRequest::default()
            .with_group_id(group_id.into())
            .with_generation_id(m.generation)
            .with_member_id(m.member_id.as_str().into());
        if version >= 3 {
            req.group_instance_id = s.config.group_instance_id.as_deref().map(Into::into);
        }
        match coordinator
            .send_version_on(Lane::Group, &req, version)
            .await
        {
            Ok(r) if r.error_code == 0 => {}
            Ok(r) => {
                let code = ErrorCode(r.error_code);
                s.cluster
                    .coordinator_error(CoordinatorKind::Group, group_id, code);
                if matches!(
                    code,
                    ErrorCode::UNKNOWN_MEMBER_ID
                        | ErrorCode::ILLEGAL_GENERATION
                        | ErrorCode::FENCED_INSTANCE_ID
                ) {
                    set_membership(&s, |m| {
                        m.member_id.clear();
                        m.generation = -1;
                    });
                }
                return code.to_string();
            }
            Err(e) => {
                s.cluster.coordinator_error(
                    CoordinatorKind::Group,
                    group_id,
                    ErrorCode::COORDINATOR_NOT_AVAILABLE,
                );
                return e.to_string();
            }
        }
        drop(s);
        tokio::time::sleep(interval).await;
    }
}

/// Commits `offsets` (next offsets to consume) for the group.
pub(crate) async fn commit(s: &Shared, offsets: BTreeMap<TopicPartition, i64>) -> Result<()> {
    let Some(m) = membership(s).or_else(|| {
        s.config.group_id.clone().map(|g| Membership {
            group_id: g,
            member_id: String::new(),
            generation: -1,
            stopped: false,
            join_version_cap: None,
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
    let resp = coordinator.send_version(&req, version).await?;
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                s.cluster.coordinator_error(
                    CoordinatorKind::Group,
                    &m.group_id,
                    ErrorCode(p.error_code),
                );
                return Err(Error::Broker {
                    broker: coordinator.addr().into(),
                    api: ApiKey::OffsetCommit,
                    code: ErrorCode(p.error_code),
                    message: Some(format!("{}-{}", t.name, p.partition_index)),
                });
            }
        }
    }
    Ok(())
}

/// The group's committed offsets (-1 where none).
pub(crate) async fn fetch_committed(
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
    let resp = coordinator.send_version(&req, version).await?;
    let mut out = BTreeMap::new();
    let top_error = if version >= 8 {
        resp.groups.first().map_or(0, |g| g.error_code)
    } else {
        resp.error_code
    };
    if top_error != 0 {
        s.cluster
            .coordinator_error(CoordinatorKind::Group, &group_id, ErrorCode(top_error));
        return Err(group_err(ApiKey::OffsetFetch, top_error, &coordinator));
    }
    if version >= 8 {
        for g in &resp.groups {
            for t in &g.topics {
                for p in &t.partitions {
                    out.insert(
                        (t.name.to_string(), p.partition_index),
                        if p.error_code == 0 {
                            p.committed_offset
                        } else {
                            -1
                        },
                    );
                }
            }
        }
    } else {
        for t in &resp.topics {
            for p in &t.partitions {
                out.insert(
                    (t.name.to_string(), p.partition_index),
                    if p.error_code == 0 {
                        p.committed_offset
                    } else {
                        -1
                    },
                );
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
    if let Err(e) = coordinator
        .send_version_on(Lane::Group, &req, version)
        .await
    {
        tracing::debug!(error = %e, "leave group failed");
    }
}
