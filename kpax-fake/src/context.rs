//! What every handler stands on: the request's context (the cluster, the
//! broker answering, the version, an injected fault), the checks that
//! open most requests, and the two string helpers the responses use. The
//! handler families (`handlers/*.rs`) import this and the model, never
//! the dispatch in `handlers.rs`.

use std::net::SocketAddr;
use std::sync::Arc;

use kpax_proto::generated::ErrorCode;
use kpax_proto::wire::StrBytes;

use crate::state::{ClusterState, CoordinatorKind};
use crate::Shared;

/// What a handler knows about the request besides its body.
pub(crate) struct Context<'a> {
    pub shared: &'a Arc<Shared>,
    pub node: i32,
    pub version: i16,
    /// An injected error code to answer with instead of doing the work.
    pub injected: Option<i16>,
    pub client_id: String,
    pub peer: SocketAddr,
}

/// A response string from a constant.
pub(crate) fn sb(v: &'static str) -> StrBytes {
    StrBytes::from_static(v)
}

/// A response string copied from `v`.
pub(crate) fn s_owned(v: &str) -> StrBytes {
    StrBytes::from(v.to_string())
}

/// The partition `topic`/`partition` on broker `node`: `Err` with the
/// error a leader-only request gets otherwise.
pub(crate) fn leader_check(
    s: &ClusterState,
    node: i32,
    topic: &str,
    partition: i32,
) -> Result<(), i16> {
    let p = s
        .topics
        .get(topic)
        .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
        .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0)?;
    if p.leader != node {
        return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER.0);
    }
    Ok(())
}

/// The checks every group request starts with: an injected error, an
/// empty group id, and whether this broker coordinates the group.
pub(crate) fn group_check(ctx: &Context<'_>, s: &ClusterState, group: &str) -> Result<(), i16> {
    if let Some(e) = ctx.injected {
        return Err(e);
    }
    if group.is_empty() {
        return Err(ErrorCode::INVALID_GROUP_ID.0);
    }
    if s.coordinator(CoordinatorKind::Group, group) != ctx.node {
        return Err(ErrorCode::NOT_COORDINATOR.0);
    }
    Ok(())
}
