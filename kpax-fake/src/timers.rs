//! The cluster's clock work, run by a ticker task: group session and
//! rebalance timeouts (classic and KIP-848) and transaction timeouts.

use std::time::Instant;

use crate::state::ClusterState;

/// Runs every timer due at `now`.
pub(crate) fn tick(s: &mut ClusterState, now: Instant) {
    let topics = s.topic_info();
    for g in s.groups.values_mut() {
        g.tick(now);
        g.consumer.tick(now, &topics);
    }
    crate::handlers::txn::expire(s, now);
}
