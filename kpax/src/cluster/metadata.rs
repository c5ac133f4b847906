//! Cached metadata: topics and partitions with their leaders.

use kpax_proto::generated::metadata::MetadataResponseTopic;
use kpax_proto::generated::ErrorCode;
use kpax_proto::wire::Uuid;

/// One topic as the last metadata described it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TopicMeta {
    /// The topic name.
    pub name: Option<String>,
    /// The topic id (zero before Kafka 2.8).
    pub topic_id: Uuid,
    /// The topic-level error (`NONE` when fine).
    pub error: ErrorCode,
    /// Whether it is an internal topic.
    pub is_internal: bool,
    /// Its partitions.
    pub partitions: Vec<PartitionMeta>,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionMeta {
    /// The partition id.
    pub partition: i32,
    /// The leader's node id, -1 when unknown.
    pub leader: i32,
    /// The leader epoch, -1 when unknown.
    pub leader_epoch: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
    /// The partition-level error.
    pub error: ErrorCode,
}

impl TopicMeta {
    pub(crate) fn from_response(t: &MetadataResponseTopic) -> TopicMeta {
        TopicMeta {
            name: t.name.as_ref().map(|n| n.to_string()),
            topic_id: t.topic_id,
            error: t.error_code,
            is_internal: t.is_internal,
            partitions: t
                .partitions
                .iter()
                .map(|p| PartitionMeta {
                    partition: p.partition_index,
                    leader: p.leader_id,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.to_vec(),
                    isr: p.isr_nodes.to_vec(),
                    error: p.error_code,
                })
                .collect(),
        }
    }
}
