//! Offset commits and committed-offset fetches for the group, with the
//! member's identity as the coordinator knows it (either protocol).

use super::super::{IsolationLevel, Shared, TopicPartition};
use super::member::{membership, Membership};
use crate::broker::{Broker, SendOptions};
use crate::cluster::CoordinatorKind;
use crate::error::{Error, Result};
use kpax_proto::generated::offset_commit::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kpax_proto::generated::offset_fetch::{
    OffsetFetchRequestGroup, OffsetFetchRequestGroupTopic, OffsetFetchRequestTopic,
};
use kpax_proto::generated::{ApiKey, ErrorCode, OffsetCommitRequest, OffsetFetchRequest};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A group request's error code as an error.
pub(super) fn group_err(api: ApiKey, code: ErrorCode, broker: &Broker) -> Error {
    Error::Broker {
        broker: broker.addr().into(),
        api,
        code,
        message: None,
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
    let Some(m) = membership(s).or_else(|| s.config.group_id.clone().map(Membership::new)) else {
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
    for (tp, o) in offsets {
        topics.entry(tp.topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
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
    for tp in partitions {
        by_topic
            .entry(tp.topic.clone())
            .or_default()
            .push(tp.partition);
    }
    let mut req = OffsetFetchRequest::default();
    req.require_stable = version >= 7 && s.config.isolation_level == IsolationLevel::ReadCommitted;
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
        out.insert(TopicPartition::new(topic, partition), offset);
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
