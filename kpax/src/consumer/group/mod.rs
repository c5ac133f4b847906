//! Consumer group membership: joining, the assignment, heartbeats,
//! leaving, and offset commits.
//!
//! Two group protocols share one member ([`member`]: its identity in the
//! group), its commits ([`commit`]) and the way an assignment is taken,
//! revoked or lost ([`assignment`]); above those sit the protocols
//! themselves, each a loop the membership task runs:
//! - [`classic`]: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, the
//!   assignment computed by the group's leader (eager or cooperative);
//! - [`kip848`]: the consumer group protocol (KIP-848), one
//!   ConsumerGroupHeartbeat, the assignment computed by the coordinator;
//!   where the coordinator does not offer it, the member falls back to
//!   the classic protocol.
//!
//! ```text
//! mod (start, run, leave: dispatch on the protocol)
//!   -> classic, kip848 -> assignment -> commit -> member
//! ```

mod assignment;
mod classic;
mod commit;
mod kip848;
mod member;

pub(crate) use assignment::revoke_on_close;
pub(crate) use commit::{commit, fetch_committed};
pub(crate) use kip848::new_member_id;
pub(crate) use member::{current_member, membership, Membership, Selection};

use super::{GroupProtocol, Shared};
use crate::cluster::CoordinatorKind;
use member::set_membership;
use std::sync::{Arc, Weak};

/// Starts the membership task; a consumer subscribes once.
///
/// # Errors
/// [`crate::Error::Config`] when it is already subscribed (a second
/// membership task would join as a second member and revoke the first's
/// partitions).
pub(crate) fn start(
    s: &Arc<Shared>,
    group_id: String,
    selection: Selection,
) -> crate::error::Result<()> {
    let mut slot = s.group.lock().unwrap_or_else(|e| e.into_inner());
    if slot.as_ref().is_some_and(|m| !m.stopped) {
        return Err(crate::error::Error::Config(
            "the consumer is already subscribed: a consumer subscribes once (make another Consumer for other topics)".into(),
        ));
    }
    *slot = Some(Membership::new(group_id.clone()));
    drop(slot);
    tokio::spawn(run(Arc::downgrade(s), group_id, selection));
    Ok(())
}

/// The membership task: the consumer group protocol when configured (and
/// offered), else the classic one.
async fn run(weak: Weak<Shared>, group_id: String, selection: Selection) {
    let consumer_protocol = weak
        .upgrade()
        .is_some_and(|s| s.config.group_protocol == GroupProtocol::Consumer);
    if consumer_protocol {
        match kip848::run(&weak, &group_id, &selection).await {
            kip848::Ended::Stopped => return,
            kip848::Ended::Fallback(why) => {
                tracing::warn!(group = %group_id, reason = %why, "the consumer group protocol is not offered; using the classic protocol");
            }
        }
    }
    classic::run(&weak, &group_id, &selection).await;
}

/// Leaves the group (best effort) and stops the membership task.
pub(crate) async fn leave(s: &Shared) {
    let Some(m) = membership(s) else { return };
    set_membership(s, |m| m.stopped = true);
    if m.member_id.is_empty() {
        return;
    }
    let Ok(coordinator) = s
        .cluster
        .coordinator(CoordinatorKind::Group, &m.group_id)
        .await
    else {
        return;
    };
    if m.consumer_protocol {
        kip848::leave(s, &coordinator, &m).await;
    } else {
        classic::leave(s, &coordinator, &m).await;
    }
}
