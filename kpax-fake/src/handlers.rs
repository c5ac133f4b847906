//! The handlers: one file per API family, each a function per API taking
//! the decoded request and answering at the request's version (fields a
//! version lacks are left at their defaults, which is what the generated
//! encoders require). This file only dispatches; the families stand on
//! [`context`](crate::context) and the model, never on this dispatch.
//!
//! | family | APIs |
//! |---|---|
//! | [`metadata`] | ApiVersions, Metadata |
//! | [`topics`] | CreateTopics, DeleteTopics, CreatePartitions |
//! | [`produce`] | Produce |
//! | [`fetch`] (sessions in [`fetch_session`]) | Fetch, ListOffsets |
//! | [`groups`] | FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, DescribeGroups, ListGroups |
//! | [`offsets`] | OffsetCommit, OffsetFetch |
//! | [`consumer_group`] | ConsumerGroupHeartbeat (KIP-848) |
//! | [`share_group`] | ShareGroupHeartbeat, ShareGroupDescribe, ShareFetch, ShareAcknowledge (KIP-932) |
//! | [`txn`] | InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn |
//! | [`admin`] | DeleteRecords, DeleteGroups, DescribeCluster, DescribeConfigs, IncrementalAlterConfigs |
//!
//! SaslHandshake and SaslAuthenticate never get here: the connection
//! answers them (`server`, `auth`).

mod admin;
mod consumer_group;
mod fetch;
pub(crate) mod fetch_session;
mod groups;
mod metadata;
mod offsets;
mod produce;
mod share_group;
mod topics;
pub(crate) mod txn;

use kpax_proto::generated::{RequestKind, ResponseKind};

use crate::context::Context;

/// Answers `request`; `None` for a request that gets no response
/// (Produce with acks=0).
pub(crate) async fn handle(ctx: &Context<'_>, request: RequestKind) -> Option<ResponseKind> {
    Some(match request {
        // metadata
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(metadata::api_versions(ctx)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::metadata(ctx, r)),
        // topics
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(topics::create_topics(ctx, r)),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(topics::delete_topics(ctx, r)),
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(topics::create_partitions(ctx, r))
        }
        // produce
        RequestKind::Produce(r) => ResponseKind::Produce(produce::produce(ctx, r)?),
        // fetch
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::fetch(ctx, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(fetch::list_offsets(ctx, r)),
        // groups (classic)
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(ctx, r))
        }
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(groups::join_group(ctx, r).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync_group(ctx, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(ctx, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave_group(ctx, r)),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe_groups(ctx, r))
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list_groups(ctx, r)),
        // offsets
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(offsets::offset_commit(ctx, r)),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offsets::offset_fetch(ctx, r)),
        // consumer groups (KIP-848)
        RequestKind::ConsumerGroupHeartbeat(r) => {
            ResponseKind::ConsumerGroupHeartbeat(consumer_group::consumer_group_heartbeat(ctx, r))
        }
        // share groups (KIP-932)
        RequestKind::ShareGroupHeartbeat(r) => {
            ResponseKind::ShareGroupHeartbeat(share_group::share_group_heartbeat(ctx, r))
        }
        RequestKind::ShareGroupDescribe(r) => {
            ResponseKind::ShareGroupDescribe(share_group::share_group_describe(ctx, r))
        }
        RequestKind::ShareFetch(r) => {
            ResponseKind::ShareFetch(share_group::share_fetch(ctx, r).await)
        }
        RequestKind::ShareAcknowledge(r) => {
            ResponseKind::ShareAcknowledge(share_group::share_acknowledge(ctx, r))
        }
        // transactions
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(txn::init_producer_id(ctx, r))
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions_to_txn(ctx, r))
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets_to_txn(ctx, r))
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(ctx, r))
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn(ctx, r)),
        // admin
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(admin::delete_records(ctx, r)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(admin::delete_groups(ctx, r)),
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(admin::describe_cluster(ctx, r))
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(admin::describe_configs(ctx, r))
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(admin::incremental_alter_configs(ctx, r))
        }
        other => {
            // The server only lets served APIs through; answer nothing
            // rather than panic if that ever changes.
            tracing::warn!(api = other.api_key().name(), "no handler");
            return None;
        }
    })
}
