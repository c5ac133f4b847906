//! Setting a group's committed offsets from outside the group
//! (OffsetCommit with no member), as `kafka-consumer-groups --reset-offsets`
//! does: the group must have no members.

use super::{check, unanswered, Admin, GroupId, PartitionResults, TopicPartition};
use crate::broker::{Broker, SendOptions};
use crate::error::{Error, Result};
use kpax_proto::generated::offset_commit::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kpax_proto::generated::{ApiKey, OffsetCommitRequest};
use std::collections::BTreeMap;

impl Admin {
    /// Commits `offsets` (the next offset to read, per partition) for
    /// `group`, asked of its coordinator, as no member (generation -1):
    /// Kafka accepts this only while the group has no members.
    ///
    /// Returns one result per partition: `Ok(())`, or [`Error::Broker`]
    /// with the partition's error code (UNKNOWN_MEMBER_ID or
    /// ILLEGAL_GENERATION when the group has members,
    /// UNKNOWN_TOPIC_OR_PARTITION, OFFSET_METADATA_TOO_LARGE, ...).
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] when the coordinator does not serve
    /// OffsetCommit; FindCoordinator's error or the error of the
    /// coordinator's request (after retries of retriable ones).
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<PartitionResults<()>> {
        if offsets.is_empty() {
            return Ok(BTreeMap::new());
        }
        let items = vec![(GroupId(group.to_string()), offsets.to_vec())];
        let mut done = self
            .fan_out(
                items,
                |broker: Broker, items: Vec<(GroupId, Vec<(TopicPartition, i64)>)>| async move {
                    let mut out = Vec::new();
                    for (g, offsets) in items {
                        let r = offset_commit(&broker, &g.0, &offsets).await?;
                        out.push((g, r));
                    }
                    Ok(out)
                },
            )
            .await?;
        done.remove(&GroupId(group.to_string())).unwrap_or_else(|| {
            Err(Error::Protocol {
                broker: "coordinator".into(),
                reason: format!("the answer has no result for group {group}"),
            })
        })
    }
}

/// One OffsetCommit for `group` with no member; a retriable coordinator
/// error on any partition (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS)
/// is the group's `Err`, so that the whole commit is retried.
async fn offset_commit(
    broker: &Broker,
    group: &str,
    offsets: &[(TopicPartition, i64)],
) -> Result<Result<PartitionResults<()>>> {
    let v = broker.version_for::<OffsetCommitRequest>().await?;
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (tp, offset) in offsets {
        topics.entry(tp.topic.as_str()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(*offset),
        );
    }
    let mut req = OffsetCommitRequest::default()
        .with_group_id(group.into())
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(t.into())
                        .with_partitions(ps)
                })
                .collect(),
        );
    // No member: generation -1 and an empty member id (the defaults), and
    // the broker's default retention (-1, v2-4).
    req.generation_id_or_member_epoch = -1;
    let resp = broker.send_with(&req, SendOptions::version(v)).await?;
    let mut out = BTreeMap::new();
    for t in &resp.topics {
        for p in &t.partitions {
            let r = check(broker, ApiKey::OffsetCommit, p.error_code, None);
            if let Err(e) = &r {
                if e.is_retriable() {
                    return Ok(Err(e.clone()));
                }
            }
            out.insert(TopicPartition::new(t.name.as_str(), p.partition_index), r);
        }
    }
    unanswered(broker, &mut out, offsets.iter().map(|(tp, _)| tp));
    Ok(Ok(out))
}
