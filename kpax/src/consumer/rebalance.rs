//! Rebalance callbacks: what a group member is told when partitions are
//! assigned to it, revoked from it, or lost.

use super::{Consumer, TopicPartition};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

/// The future a [`RebalanceListener`] callback returns.
pub type ListenerFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Told about changes to a group member's partitions; each callback may be
/// async, and the rebalance waits for it.
///
/// - `on_partitions_revoked`: the partitions are still owned and paused
///   (no more records are handed out); commit what was processed here.
///   With auto commit on, the consumer commits their positions right after.
/// - `on_partitions_assigned`: newly owned partitions; their start is
///   the committed offset unless you [`Consumer::seek`] here.
/// - `on_partitions_lost`: the member was fenced or fell out of the group;
///   the partitions may already be owned by another member, so committing
///   for them is pointless. Defaults to `on_partitions_revoked`.
///
/// With eager assignors every rebalance revokes all partitions and
/// assigns the new set; with `cooperative-sticky` only the partitions that
/// move are revoked and assigned.
pub trait RebalanceListener: Send + Sync {
    /// Partitions newly assigned to this member.
    fn on_partitions_assigned<'a>(
        &'a self,
        consumer: &'a Consumer,
        partitions: &'a BTreeSet<TopicPartition>,
    ) -> ListenerFuture<'a> {
        let _ = (consumer, partitions);
        Box::pin(async {})
    }

    /// Partitions this member gives up in an orderly rebalance.
    fn on_partitions_revoked<'a>(
        &'a self,
        consumer: &'a Consumer,
        partitions: &'a BTreeSet<TopicPartition>,
    ) -> ListenerFuture<'a> {
        let _ = (consumer, partitions);
        Box::pin(async {})
    }

    /// Partitions this member lost without a chance to commit.
    fn on_partitions_lost<'a>(
        &'a self,
        consumer: &'a Consumer,
        partitions: &'a BTreeSet<TopicPartition>,
    ) -> ListenerFuture<'a> {
        self.on_partitions_revoked(consumer, partitions)
    }
}
