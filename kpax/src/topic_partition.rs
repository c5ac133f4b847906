//! [`TopicPartition`]: a partition of a topic, the one key the consumer,
//! the admin client and the share consumer use for partitions. Ground
//! floor: it names no other module of kpax.

use std::fmt;

/// A partition of a topic: the key of per-partition positions, offsets
/// and results. Ordered by topic, then partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition id.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    /// `topic-partition`, as Kafka writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_topic_then_partition_and_shows_as_kafka_does() {
        let mut tps = vec![
            TopicPartition::new("b", 0),
            TopicPartition::new("a", 10),
            TopicPartition::new("a", 2),
        ];
        tps.sort();
        assert_eq!(
            tps,
            [
                TopicPartition::new("a", 2),
                TopicPartition::new("a", 10),
                TopicPartition::new("b", 0)
            ]
        );
        assert_eq!(TopicPartition::new("events", 3).to_string(), "events-3");
    }
}
