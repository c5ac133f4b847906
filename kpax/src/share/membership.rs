//! Share-group membership: ShareGroupHeartbeat joins (epoch 0) with the
//! subscription, keeps the member alive, and brings the partitions the
//! coordinator assigns. A share group's partitions are shared, so there is
//! nothing to revoke: the assignment is taken as it comes. A fenced member
//! (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID) joins again with epoch 0 and
//! its own member id; it leaves with epoch -1.

use super::Shared;
use crate::broker::{Lane, SendOptions};
use crate::cluster::CoordinatorKind;
use crate::error::Error;
use kpax_proto::generated::{ApiKey, ErrorCode, ShareGroupHeartbeatRequest};
use kpax_proto::message::Message;
use kpax_proto::wire::Uuid;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

fn backoff(attempt: u32) -> Duration {
    crate::broker::backoff(
        attempt.min(6),
        Duration::from_millis(100),
        Duration::from_secs(2),
    )
}

/// Heartbeats until the consumer closes or is dropped.
pub(super) async fn run(weak: Weak<Shared>) {
    let mut attempt = 0u32;
    let mut sent_topics: Option<Vec<String>> = None;
    loop {
        let Some(s) = weak.upgrade() else { return };
        if s.is_closed() {
            return;
        }
        let (topics, epoch) = {
            let st = s.lock();
            (st.topics.clone(), st.epoch)
        };
        if topics.is_empty() && epoch == 0 {
            drop(s);
            if !pause(&weak, Duration::from_millis(100)).await {
                return;
            }
            continue;
        }
        let next = match heartbeat(&s, &topics, epoch, &mut sent_topics).await {
            Ok(next) => {
                attempt = 0;
                next
            }
            Err(Fatal(e)) => {
                tracing::warn!(group = %s.config.group_id, error = %e, "share group membership failed");
                s.lock().error = Some(e);
                s.records.notify_waiters();
                return;
            }
            Err(Retry(e)) => {
                tracing::debug!(group = %s.config.group_id, error = %e, "share heartbeat failed; retrying");
                attempt += 1;
                sent_topics = None;
                backoff(attempt)
            }
        };
        drop(s);
        if !pause(&weak, next).await {
            return;
        }
    }
}

/// Sleeps in short steps; `false` once the consumer is gone or closed, or
/// early when the subscription changed.
async fn pause(weak: &Weak<Shared>, d: Duration) -> bool {
    let until = Instant::now() + d;
    let topics = weak.upgrade().map(|s| s.lock().topics.clone());
    while Instant::now() < until {
        tokio::time::sleep((until - Instant::now()).min(Duration::from_millis(50))).await;
        match weak.upgrade() {
            Some(s) if !s.is_closed() => {
                if Some(&s.lock().topics) != topics.as_ref() {
                    return true;
                }
            }
            _ => return false,
        }
    }
    true
}

enum Failure {
    Fatal(Error),
    Retry(Error),
}
use Failure::{Fatal, Retry};

/// One heartbeat; the time to the next one.
async fn heartbeat(
    s: &Arc<Shared>,
    topics: &[String],
    epoch: i32,
    sent_topics: &mut Option<Vec<String>>,
) -> Result<Duration, Failure> {
    let group = s.config.group_id.as_str();
    let coordinator = s
        .cluster
        .coordinator(CoordinatorKind::Group, group)
        .await
        .map_err(Retry)?;
    let version = coordinator
        .version_for::<ShareGroupHeartbeatRequest>()
        .await
        .map_err(|e| match e {
            e @ Error::UnsupportedVersion { .. } => Fatal(e),
            e => Retry(e),
        })?;
    if version < 1 {
        // v0 was Kafka 4.0's early access, unstable on the wire.
        return Err(Fatal(Error::UnsupportedVersion {
            broker: coordinator.addr().into(),
            api: ApiKey::ShareGroupHeartbeat,
            ours: (1, ShareGroupHeartbeatRequest::MAX_VERSION),
            theirs: coordinator
                .api_versions()
                .await
                .ok()
                .and_then(|v| v.range(ApiKey::ShareGroupHeartbeat)),
        }));
    }
    let mut req = ShareGroupHeartbeatRequest::default();
    req.group_id = group.into();
    req.member_id = s.member_id.as_str().into();
    req.member_epoch = epoch;
    req.rack_id = s.config.rack_id.as_deref().map(Into::into);
    if epoch == 0 || sent_topics.as_deref() != Some(topics) {
        req.subscribed_topic_names = Some(topics.iter().map(|t| t.as_str().into()).collect());
    }
    let resp = match coordinator
        .send_with(&req, SendOptions::version(version).with_lane(Lane::Group))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            s.cluster.coordinator_error(
                CoordinatorKind::Group,
                group,
                ErrorCode::COORDINATOR_NOT_AVAILABLE,
            );
            return Err(Retry(e));
        }
    };
    let code = resp.error_code;
    let err = || Error::Broker {
        broker: coordinator.addr().into(),
        api: ApiKey::ShareGroupHeartbeat,
        code,
        message: resp.error_message.as_ref().map(|m| m.to_string()),
    };
    match code {
        ErrorCode::NONE => {}
        ErrorCode::FENCED_MEMBER_EPOCH | ErrorCode::UNKNOWN_MEMBER_ID => {
            tracing::info!(group, %code, "share member fenced; joining again");
            let mut st = s.lock();
            st.epoch = 0;
            st.assignment.clear();
            drop(st);
            s.wake.notify_one();
            return Err(Retry(err()));
        }
        ErrorCode::NOT_COORDINATOR
        | ErrorCode::COORDINATOR_NOT_AVAILABLE
        | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS => {
            s.cluster
                .coordinator_error(CoordinatorKind::Group, group, code);
            return Err(Retry(err()));
        }
        _ if code.is_retriable() => return Err(Retry(err())),
        _ => return Err(Fatal(err())),
    }
    *sent_topics = Some(topics.to_vec());
    let assigned: Option<Vec<(Uuid, Vec<i32>)>> = resp.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .map(|tp| (tp.topic_id, tp.partitions.to_vec()))
            .collect()
    });
    let target = match &assigned {
        Some(a) => Some(s.cluster.assignment_by_name(a, topics).await),
        None => None,
    };
    let mut st = s.lock();
    st.epoch = resp.member_epoch;
    if let Some(t) = target {
        if t != st.assignment {
            tracing::info!(group, member = %s.member_id, epoch = resp.member_epoch, assignment = ?t, "share assignment");
            st.assignment = t;
            drop(st);
            s.wake.notify_one();
        }
    }
    let ms = resp.heartbeat_interval_ms;
    Ok(if ms > 0 {
        Duration::from_millis(ms as u64)
    } else {
        s.config.heartbeat_interval
    })
}

/// Leaves the group (epoch -1); best effort, bounded by the request
/// timeout.
pub(super) async fn leave(s: &Shared) {
    if s.lock().epoch <= 0 {
        return;
    }
    let group = s.config.group_id.as_str();
    let Ok(coordinator) = s.cluster.coordinator(CoordinatorKind::Group, group).await else {
        return;
    };
    let mut req = ShareGroupHeartbeatRequest::default();
    req.group_id = group.into();
    req.member_id = s.member_id.as_str().into();
    req.member_epoch = -1;
    match coordinator
        .send_with(&req, SendOptions::default().with_lane(Lane::Group))
        .await
    {
        Ok(r) if r.error_code.is_ok() => tracing::debug!(group, "left the share group"),
        Ok(r) => tracing::debug!(group, code = %r.error_code, "leaving the share group"),
        Err(e) => tracing::debug!(group, error = %e, "leaving the share group"),
    }
    s.lock().epoch = 0;
}
