//! The consumer group protocol (KIP-848): one ConsumerGroupHeartbeat
//! request does what JoinGroup, SyncGroup and Heartbeat did.
//!
//! The member joins with epoch 0 and its subscription; the coordinator
//! computes every member's assignment itself and answers each heartbeat
//! with the member's epoch and, when it changed, the partitions the member
//! may own now. The member reconciles: it revokes what is no longer in its
//! assignment (the rebalance listener is told, positions are committed
//! with auto commit on), takes what is new, and reports what it owns in
//! its next heartbeat, sent at once. The coordinator gives a partition to
//! its new owner only after the old one reported it revoked, so no
//! partition is consumed by two members, and members that keep their
//! partitions never stop (no stop-the-world rebalance).
//!
//! A member fenced (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID) loses its
//! partitions without committing and joins again with epoch 0. It leaves
//! with epoch -1 (-2 for a static member, which keeps its assignment for a
//! while). Where the coordinator does not offer ConsumerGroupHeartbeat (or
//! answers UNSUPPORTED_VERSION, a broker with the protocol turned off) the
//! consumer falls back to the classic protocol.

use super::super::assignor::RebalanceProtocol;
use super::super::Shared;
use super::assignment::{auto_commit, lose_all, take_assignment};
use super::member::{membership, resolve, set_membership, Membership, Selection};
use crate::broker::{Broker, SendOptions};
use crate::cluster::CoordinatorKind;
use crate::error::Error;
use kpax_proto::generated::consumer_group_heartbeat::ConsumerGroupHeartbeatRequestTopicPartition;
use kpax_proto::generated::{ApiKey, ConsumerGroupHeartbeatRequest, ErrorCode};
use kpax_proto::wire::Uuid;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant};

/// How the consumer-protocol membership ended.
pub(crate) enum Ended {
    /// The consumer closed, was dropped, or hit a fatal error.
    Stopped,
    /// The coordinator does not speak the protocol: use the classic one.
    Fallback(String),
}

/// The epoch a member leaves with.
pub(crate) fn leave_epoch(static_member: bool) -> i32 {
    if static_member {
        -2
    } else {
        -1
    }
}

/// A member id for ConsumerGroupHeartbeat v1+, where the consumer makes
/// its own (KIP-848: random, kept for the consumer's lifetime).
pub(crate) fn new_member_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut bits = [0u64; 2];
    for (i, b) in bits.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(nanos);
        *b = h.finish();
    }
    let x = (u128::from(bits[0]) << 64) | u128::from(bits[1]);
    let hex = format!("{x:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The owned partitions as the request reports them (by topic id).
fn owned_by_id(s: &Shared) -> Vec<ConsumerGroupHeartbeatRequestTopicPartition> {
    let (_, by_name) = s.cluster.topic_ids();
    let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for tp in s.lock().parts.keys() {
        if let Some(id) = by_name.get(&tp.topic) {
            by_topic.entry(*id).or_default().push(tp.partition);
        }
    }
    by_topic
        .into_iter()
        .map(|(id, ps)| {
            let mut tp = ConsumerGroupHeartbeatRequestTopicPartition::default();
            tp.topic_id = id;
            tp.partitions = ps.into();
            tp
        })
        .collect()
}

/// What the last answered heartbeat told the coordinator. A heartbeat
/// carries the subscription and the owned partitions only when they
/// changed since (or in full when joining, and after any failure): Kafka
/// answers every heartbeat that reports owned partitions with the whole
/// assignment, so reporting them each time would turn the heartbeat into
/// a busy loop (KIP-848, as the Java client does).
struct Reported {
    topics: Vec<String>,
    owned: Vec<ConsumerGroupHeartbeatRequestTopicPartition>,
}

/// Runs the membership until the consumer stops, or returns `Fallback`
/// when the coordinator does not offer the protocol.
pub(crate) async fn run(weak: &Weak<Shared>, group_id: &str, selection: &Selection) -> Ended {
    let mut reported: Option<Reported> = None;
    let mut epoch = 0i32;
    let mut member_id = String::new();
    let mut attempt = 0u32;
    let mut last_commit = Instant::now();
    let mut last_check: Option<Instant> = None;
    let mut topics: Vec<String> = Vec::new();
    loop {
        let Some(s) = weak.upgrade() else {
            return Ended::Stopped;
        };
        if s.closed.load(Ordering::Acquire) || membership(&s).is_none_or(|m| m.stopped) {
            return Ended::Stopped;
        }
        let backoff = |attempt: u32| {
            crate::broker::backoff(
                attempt.min(6),
                Duration::from_millis(100),
                Duration::from_secs(2),
            )
        };
        if epoch > 0
            && s.config.enable_auto_commit
            && last_commit.elapsed() >= s.config.auto_commit_interval
        {
            last_commit = Instant::now();
            auto_commit(&s).await;
        }
        let check_due = last_check.is_none_or(|t| {
            t.elapsed() >= s.config.metadata_check_interval
                || (epoch == 0 && topics.is_empty() && t.elapsed() >= Duration::from_secs(1))
        });
        if check_due {
            match resolve(&s, selection).await {
                Ok(t) => {
                    if t != topics {
                        tracing::info!(group = %group_id, topics = ?t, "subscription");
                    }
                    topics = t;
                    last_check = Some(Instant::now());
                }
                Err(e) => {
                    tracing::debug!(error = %e, "topic lookup failed");
                    attempt += 1;
                    drop(s);
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
            }
            // The owned partitions are reported by topic id.
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            if !names.is_empty() {
                let _ = s.cluster.refresh(Some(&names)).await;
            }
        }
        if epoch == 0 && topics.is_empty() {
            // Nothing to ask for yet (a pattern that matches no topic):
            // look again at the next metadata check.
            drop(s);
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        let coordinator = match s
            .cluster
            .coordinator(CoordinatorKind::Group, group_id)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "no group coordinator yet");
                attempt += 1;
                drop(s);
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
        };
        let version = match coordinator
            .version_for::<ConsumerGroupHeartbeatRequest>()
            .await
        {
            Ok(v) => v,
            Err(e @ Error::UnsupportedVersion { .. }) if epoch == 0 => {
                return Ended::Fallback(e.to_string());
            }
            Err(e) => {
                tracing::debug!(error = %e, "coordinator unreachable");
                attempt += 1;
                drop(s);
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
        };
        if version >= 1 && member_id.is_empty() {
            member_id = new_member_id();
        }
        let mut req = ConsumerGroupHeartbeatRequest::default();
        req.group_id = group_id.into();
        req.member_id = member_id.as_str().into();
        req.member_epoch = epoch;
        // Taken: any failure below leaves it None, so the next heartbeat
        // is a full one again.
        let last = if epoch == 0 { None } else { reported.take() };
        let full = last.is_none();
        let owned = if epoch == 0 {
            Vec::new()
        } else {
            owned_by_id(&s)
        };
        // A static member names itself in every heartbeat (as Java's does).
        req.instance_id = s.config.group_instance_id.as_deref().map(Into::into);
        if full {
            req.rebalance_timeout_ms =
                s.config.rebalance_timeout.as_millis().min(i32::MAX as u128) as i32;
            req.server_assignor = s.config.group_remote_assignor.as_deref().map(Into::into);
        }
        if !topics.is_empty() && last.as_ref().is_none_or(|l| l.topics != topics) {
            req.subscribed_topic_names = Some(topics.iter().map(|t| t.as_str().into()).collect());
            if version >= 1 {
                // The regex travels with the names (as librdkafka sends it:
                // empty for none); librdkafka's mock insists on both or
                // neither. kpax matches patterns itself and sends names.
                req.subscribed_topic_regex = Some("".into());
            }
        }
        if last.as_ref().is_none_or(|l| l.owned != owned) {
            req.topic_partitions = Some(owned.clone());
        }
        let resp = match coordinator
            .send_with(&req, SendOptions::version(version).with_lane(s.group_lane))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat failed");
                s.cluster.coordinator_error(
                    CoordinatorKind::Group,
                    group_id,
                    ErrorCode::COORDINATOR_NOT_AVAILABLE,
                );
                attempt += 1;
                drop(s);
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
        };
        if membership(&s).is_none_or(|m| m.stopped) {
            return Ended::Stopped; // closed meanwhile: leave() takes it from here
        }
        let code = resp.error_code;
        match code {
            ErrorCode::NONE => {}
            ErrorCode::UNSUPPORTED_VERSION if epoch == 0 && s.lock().parts.is_empty() => {
                return Ended::Fallback(format!(
                    "the coordinator refused ConsumerGroupHeartbeat: {}",
                    resp.error_message
                        .as_deref()
                        .unwrap_or("UNSUPPORTED_VERSION")
                ));
            }
            ErrorCode::FENCED_MEMBER_EPOCH | ErrorCode::UNKNOWN_MEMBER_ID => {
                tracing::info!(group = %group_id, %code, "fenced; partitions lost, joining again");
                if code == ErrorCode::UNKNOWN_MEMBER_ID && version == 0 {
                    // v0: the coordinator makes a new id; v1+ keeps ours.
                    member_id.clear();
                }
                epoch = 0;
                set_membership(&s, |m| {
                    m.member_id = member_id.clone();
                    m.generation = -1;
                });
                lose_all(&s).await;
                continue;
            }
            _ if code.is_retriable()
                || matches!(
                    code,
                    ErrorCode::NOT_COORDINATOR
                        | ErrorCode::COORDINATOR_NOT_AVAILABLE
                        | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
                ) =>
            {
                s.cluster
                    .coordinator_error(CoordinatorKind::Group, group_id, code);
                attempt += 1;
                drop(s);
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            _ => {
                let e = Error::Broker {
                    broker: coordinator.addr().into(),
                    api: ApiKey::ConsumerGroupHeartbeat,
                    code,
                    message: resp.error_message.as_ref().map(|m| m.to_string()),
                };
                tracing::warn!(group = %group_id, error = %e, "group membership failed");
                s.lock().error = Some(e);
                s.records.notify_waiters();
                return Ended::Stopped;
            }
        }
        attempt = 0;
        reported = Some(Reported {
            topics: topics.clone(),
            owned,
        });
        if let Some(id) = resp.member_id.as_ref().filter(|m| !m.is_empty()) {
            member_id = id.to_string();
        }
        epoch = resp.member_epoch;
        set_membership(&s, |m| {
            m.member_id = member_id.clone();
            m.generation = epoch;
            m.consumer_protocol = true;
        });
        let mut next = Duration::from_millis(resp.heartbeat_interval_ms.max(0) as u64);
        if next.is_zero() {
            next = s.config.heartbeat_interval;
        }
        if let Some(a) = &resp.assignment {
            let assigned: Vec<(Uuid, Vec<i32>)> = a
                .topic_partitions
                .iter()
                .map(|tp| (tp.topic_id, tp.partitions.to_vec()))
                .collect();
            let target = s.cluster.assignment_by_name(&assigned, &topics).await;
            take_assignment(&s, &target, epoch, RebalanceProtocol::Cooperative).await;
            // Report what we own now, at once, if it changed: the
            // coordinator waits for it to hand revoked partitions to their
            // new owners.
            if reported
                .as_ref()
                .is_some_and(|r| r.owned != owned_by_id(&s))
            {
                continue;
            }
        }
        drop(s);
        // Sleep in short steps so that a close is not kept waiting.
        let until = Instant::now() + next;
        while Instant::now() < until {
            tokio::time::sleep((until - Instant::now()).min(Duration::from_millis(100))).await;
            match weak.upgrade() {
                Some(s)
                    if !s.closed.load(Ordering::Acquire)
                        && membership(&s).is_some_and(|m| !m.stopped) => {}
                _ => return Ended::Stopped,
            }
        }
    }
}

/// Leaves a consumer-protocol group: a heartbeat with epoch -1 (-2 for a
/// static member).
pub(super) async fn leave(s: &Shared, coordinator: &Broker, m: &Membership) {
    let Ok(version) = coordinator
        .version_for::<ConsumerGroupHeartbeatRequest>()
        .await
    else {
        return;
    };
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = m.group_id.as_str().into();
    req.member_id = m.member_id.as_str().into();
    req.member_epoch = leave_epoch(s.config.group_instance_id.is_some());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_uuid_shaped_and_differ() {
        let a = new_member_id();
        let b = new_member_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_eq!(leave_epoch(false), -1);
        assert_eq!(leave_epoch(true), -2);
    }
}
