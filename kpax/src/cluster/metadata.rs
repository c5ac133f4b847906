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
    /// Partition `id`: found at index `id` when the partitions are listed
    /// in order (as brokers list them), else by a scan. A lookup per
    /// partition must not cost a scan: the fetcher and the producer look
    /// up a leader per partition, 10,000 of them a fetch at 10,000
    /// partitions.
    pub fn partition(&self, id: i32) -> Option<&PartitionMeta> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .filter(|p| p.partition == id)
            .or_else(|| self.partitions.iter().find(|p| p.partition == id))
    }

    pub(crate) fn from_response(t: &MetadataResponseTopic) -> TopicMeta {
        let mut partitions: Vec<PartitionMeta> = t
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
            .collect();
        // In partition order, so that `partition` finds each by index.
        partitions.sort_by_key(|p| p.partition);
        TopicMeta {
            name: t.name.as_ref().map(|n| n.to_string()),
            topic_id: t.topic_id,
            error: t.error_code,
            is_internal: t.is_internal,
            partitions,
        }
    }
}
