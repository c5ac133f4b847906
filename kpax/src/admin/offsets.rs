//! Offsets by time (ListOffsets) and deleting records (DeleteRecords), both
//! asked of each partition's leader.

use super::{check, Admin, PartitionResults, TopicPartition};
use crate::broker::{Broker, SendOptions};
use crate::error::{Error, Result};
use kpax_proto::generated::delete_records::{
    DeleteRecordsRequestPartition, DeleteRecordsRequestTopic,
};
use kpax_proto::generated::list_offsets::{ListOffsetsRequestPartition, ListOffsetsRequestTopic};
use kpax_proto::generated::{
    ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
};
use std::collections::BTreeMap;

/// Which offset of a partition to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The first offset still in the log (the log start offset).
    Earliest,
    /// The offset the next record will get (the high watermark).
    Latest,
    /// The first offset whose record's timestamp is at or after this many
    /// milliseconds since the epoch (ListOffsets v1+).
    Timestamp(i64),
}

impl OffsetSpec {
    fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// An offset found by [`Admin::list_offsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListedOffset {
    /// The offset; `None` when no record has a timestamp at or after the
    /// one asked.
    pub offset: Option<i64>,
    /// The record's timestamp for a timestamp lookup (v1+), when known.
    pub timestamp: Option<i64>,
    /// The leader epoch of that offset (v4+), when known.
    pub leader_epoch: Option<i32>,
}

impl Admin {
    /// The offset `spec` names in each partition, asked of the partitions'
    /// leaders (one request per leader).
    ///
    /// Returns one result per partition: its [`ListedOffset`], or
    /// [`Error::Broker`] with the partition's error code
    /// (UNKNOWN_TOPIC_OR_PARTITION, ...), [`Error::NoLeader`], or the
    /// error of its leader's request.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] when a leader does not serve
    /// ListOffsets (or a timestamp lookup, before v1).
    pub async fn list_offsets(
        &self,
        partitions: &[(TopicPartition, OffsetSpec)],
    ) -> Result<PartitionResults<ListedOffset>> {
        let items: Vec<(TopicPartition, OffsetSpec)> = partitions.to_vec();
        self.fan_out(
            items,
            |broker: Broker, items: Vec<(TopicPartition, OffsetSpec)>| async move {
                let v = broker.version_for::<ListOffsetsRequest>().await?;
                if v == 0
                    && items
                        .iter()
                        .any(|(_, s)| matches!(s, OffsetSpec::Timestamp(_)))
                {
                    return Err(Error::UnsupportedVersion {
                        broker: broker.addr().to_string(),
                        api: ApiKey::ListOffsets,
                        ours: (1, v),
                        theirs: broker.api_versions().await?.range(ApiKey::ListOffsets),
                    });
                }
                let mut topics: BTreeMap<&str, Vec<ListOffsetsRequestPartition>> = BTreeMap::new();
                for (tp, spec) in &items {
                    let mut p = ListOffsetsRequestPartition::default()
                        .with_partition_index(tp.partition)
                        .with_timestamp(spec.timestamp());
                    if v == 0 {
                        p.max_num_offsets = 1;
                    }
                    topics.entry(tp.topic.as_str()).or_default().push(p);
                }
                let req = ListOffsetsRequest::default().with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            ListOffsetsRequestTopic::default()
                                .with_name(t.into())
                                .with_partitions(ps)
                        })
                        .collect(),
                );
                let resp: ListOffsetsResponse =
                    broker.send_with(&req, SendOptions::version(v)).await?;
                let mut out = Vec::new();
                for t in &resp.topics {
                    for p in &t.partitions {
                        let tp = TopicPartition::new(t.name.as_str(), p.partition_index);
                        let r = check(&broker, ApiKey::ListOffsets, p.error_code, None).map(|()| {
                            let offset = if v == 0 {
                                p.old_style_offsets.first().copied().unwrap_or(-1)
                            } else {
                                p.offset
                            };
                            ListedOffset {
                                offset: (offset >= 0).then_some(offset),
                                timestamp: (v >= 1 && p.timestamp >= 0).then_some(p.timestamp),
                                leader_epoch: (v >= 4 && p.leader_epoch >= 0)
                                    .then_some(p.leader_epoch),
                            }
                        });
                        out.push((tp, r));
                    }
                }
                Ok(out)
            },
        )
        .await
    }

    /// [`Admin::list_offsets`] for every partition of `topic`.
    ///
    /// # Errors
    /// As [`Admin::list_offsets`], and the metadata error of `topic`
    /// (e.g. [`Error::Broker`] with UNKNOWN_TOPIC_OR_PARTITION).
    pub async fn list_topic_offsets(
        &self,
        topic: &str,
        spec: OffsetSpec,
    ) -> Result<PartitionResults<ListedOffset>> {
        let items: Vec<(TopicPartition, OffsetSpec)> = self
            .cluster
            .partitions(topic)
            .await?
            .into_iter()
            .map(|p| (TopicPartition::new(topic, p), spec))
            .collect();
        self.list_offsets(&items).await
    }

    /// Deletes the records before the given offset of each partition (-1:
    /// every record, up to the high watermark), asked of the partitions'
    /// leaders.
    ///
    /// Returns one result per partition: its new low watermark (log start
    /// offset), or [`Error::Broker`] with OFFSET_OUT_OF_RANGE,
    /// UNKNOWN_TOPIC_OR_PARTITION, POLICY_VIOLATION, ..., [`Error::NoLeader`],
    /// or the error of its leader's request.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] when a leader does not serve
    /// DeleteRecords.
    pub async fn delete_records(
        &self,
        before: &[(TopicPartition, i64)],
    ) -> Result<PartitionResults<i64>> {
        let timeout_ms = self.timeout_ms();
        self.fan_out(
            before.to_vec(),
            move |broker: Broker, items: Vec<(TopicPartition, i64)>| async move {
                let v = broker.version_for::<DeleteRecordsRequest>().await?;
                let mut topics: BTreeMap<&str, Vec<DeleteRecordsRequestPartition>> =
                    BTreeMap::new();
                for (tp, offset) in &items {
                    topics.entry(tp.topic.as_str()).or_default().push(
                        DeleteRecordsRequestPartition::default()
                            .with_partition_index(tp.partition)
                            .with_offset(*offset),
                    );
                }
                let req = DeleteRecordsRequest::default()
                    .with_timeout_ms(timeout_ms)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, ps)| {
                                DeleteRecordsRequestTopic::default()
                                    .with_name(t.into())
                                    .with_partitions(ps)
                            })
                            .collect(),
                    );
                let resp: DeleteRecordsResponse =
                    broker.send_with(&req, SendOptions::version(v)).await?;
                let mut out = Vec::new();
                for t in &resp.topics {
                    for p in &t.partitions {
                        let tp = TopicPartition::new(t.name.as_str(), p.partition_index);
                        out.push((
                            tp,
                            check(&broker, ApiKey::DeleteRecords, p.error_code, None)
                                .map(|()| p.low_watermark),
                        ));
                    }
                }
                Ok(out)
            },
        )
        .await
    }
}
