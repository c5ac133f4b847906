//! Applying an assignment, shared by both group protocols: taking new
//! partitions, revoking (orderly: the listener is told, positions are
//! committed with auto commit on), losing them when fenced, and the
//! periodic auto commit.

use super::super::assignor::RebalanceProtocol;
use super::super::{Consumer, Shared, StartAt, TopicPartition};
use super::commit::commit;
use super::member::{membership, set_membership};
use crate::error::Error;
use kpax_proto::generated::ErrorCode;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The consumer handed to the rebalance listener.
fn listener_consumer(s: &Arc<Shared>) -> Consumer {
    Consumer { shared: s.clone() }
}

/// Makes `assigned` the member's partitions: revokes the others (the
/// listener is told, positions committed with auto commit on), adds the
/// new ones (from their committed offsets), records the assignment of
/// `generation` (the member epoch under KIP-848) and tells the listener.
/// Returns the revoked partitions.
pub(crate) async fn take_assignment(
    s: &Arc<Shared>,
    assigned: &BTreeSet<TopicPartition>,
    generation: i32,
    protocol: RebalanceProtocol,
) -> BTreeSet<TopicPartition> {
    let current: BTreeSet<TopicPartition> = s.lock().parts.assigned();
    let revoked: BTreeSet<TopicPartition> = current.difference(assigned).cloned().collect();
    let added: BTreeSet<TopicPartition> = assigned.difference(&current).cloned().collect();
    tracing::info!(assigned = ?assigned, added = ?added, revoked = ?revoked, generation, "assignment");
    let first = membership(s).is_some_and(|m| m.owned_generation < 0);
    if !added.is_empty() || !revoked.is_empty() || first {
        s.counters.rebalanced();
    }
    if !revoked.is_empty() {
        revoke(s, &revoked, protocol).await;
    }
    {
        let mut st = s.lock();
        for tp in &added {
            st.parts
                .assign(tp.clone(), || s.new_part(StartAt::Committed));
        }
    }
    set_membership(s, |m| {
        let mut owned: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for tp in assigned {
            owned
                .entry(tp.topic.clone())
                .or_default()
                .push(tp.partition);
        }
        m.owned = owned;
        m.owned_generation = generation;
    });
    s.wake.notify_one();
    if let Some(l) = s.config.rebalance_listener.clone() {
        let c = listener_consumer(s);
        l.on_partitions_assigned(&c, &added).await;
    }
    revoked
}

/// The current positions of `partitions`.
fn positions_of(
    s: &Shared,
    partitions: &BTreeSet<TopicPartition>,
) -> BTreeMap<TopicPartition, i64> {
    s.lock()
        .parts
        .positions_where(|tp, _| partitions.contains(tp))
}

/// Gives up `partitions` in an orderly way: stop handing out their
/// records, tell the listener, commit their positions (auto commit), drop
/// them.
pub(crate) async fn revoke(
    s: &Arc<Shared>,
    partitions: &BTreeSet<TopicPartition>,
    protocol: RebalanceProtocol,
) {
    s.lock().parts.pause_only(partitions);
    if let Some(l) = s.config.rebalance_listener.clone() {
        let c = listener_consumer(s);
        l.on_partitions_revoked(&c, partitions).await;
    }
    if s.config.enable_auto_commit {
        let positions = positions_of(s, partitions);
        // In a cooperative group the revocation follows SyncGroup: the
        // group may still be completing the rebalance for a moment, so
        // REBALANCE_IN_PROGRESS is worth a few retries (nobody else owns
        // these partitions until we rejoin). An eager member commits while
        // the rebalance waits for it: no point retrying there.
        let deadline = Instant::now()
            + match protocol {
                RebalanceProtocol::Cooperative => {
                    s.config.session_timeout.min(Duration::from_secs(10)) / 2
                }
                RebalanceProtocol::Eager => Duration::ZERO,
            };
        loop {
            match commit(s, positions.clone()).await {
                Ok(()) => break,
                Err(Error::Broker {
                    code: ErrorCode::REBALANCE_IN_PROGRESS | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
                    ..
                }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "commit on revoke failed");
                    break;
                }
            }
        }
    }
    s.lock().parts.revoke(partitions);
    if protocol == RebalanceProtocol::Cooperative {
        set_membership(s, |m| {
            for tp in partitions {
                if let Some(ps) = m.owned.get_mut(&tp.topic) {
                    ps.retain(|x| *x != tp.partition);
                }
            }
            m.owned.retain(|_, ps| !ps.is_empty());
        });
    }
}

/// Eager rebalance: gives up every partition (the membership keeps the
/// last assignment as `owned`, for the sticky assignor).
pub(super) async fn revoke_all(s: &Arc<Shared>) {
    let all: BTreeSet<TopicPartition> = s.lock().parts.assigned();
    revoke(s, &all, RebalanceProtocol::Eager).await;
}

/// For `Consumer::close`: an active group member revokes everything (the
/// listener is told, positions are committed with auto commit on). Returns
/// whether the consumer was such a member.
pub(crate) async fn revoke_on_close(s: &Arc<Shared>) -> bool {
    if membership(s).is_none_or(|m| m.stopped || m.member_id.is_empty()) {
        return false;
    }
    revoke_all(s).await;
    true
}

/// Fenced: drops every partition without committing.
pub(crate) async fn lose_all(s: &Arc<Shared>) {
    let all: BTreeSet<TopicPartition> = {
        let mut st = s.lock();
        st.parts.pause_all();
        st.parts.assigned()
    };
    set_membership(s, |m| {
        m.owned.clear();
        m.owned_generation = -1;
    });
    if all.is_empty() {
        return;
    }
    if let Some(l) = s.config.rebalance_listener.clone() {
        let c = listener_consumer(s);
        l.on_partitions_lost(&c, &all).await;
    }
    s.lock().parts.revoke(&all);
}

/// Commits the positions of the partitions being consumed (not paused).
pub(crate) async fn auto_commit(s: &Shared) {
    let positions = s.lock().parts.positions_where(|_, p| !p.paused);
    if let Err(e) = commit(s, positions).await {
        tracing::debug!(error = %e, "auto commit failed");
    }
}
