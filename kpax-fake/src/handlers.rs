//! One function per API: a decoded request in, the response out, at the
//! request's version (fields a version lacks are left at their defaults,
//! which is what the generated encoders require).

use std::time::{Duration, Instant};

use bytes::Bytes;
use kpax_proto::generated::*;
use kpax_proto::generated::{
    api_versions::*, create_partitions::*, create_topics::*, delete_topics::*, describe_groups::*,
    fetch::*, find_coordinator::*, join_group::*, leave_group::*, list_groups::*, list_offsets::*,
    metadata::*, offset_commit::*, offset_fetch::*, produce::*,
};
use kpax_proto::wire::StrBytes;

use crate::admin;
use crate::context::{group_check, leader_check, Context};
use crate::group::{Group, JoinRequest, JoinStep, SyncStep};
use crate::state::{ClusterState, CoordinatorKind};

/// How long a waiting request sleeps between re-checks when no wakeup
/// comes (a safety net: wakeups are the normal path).
const RECHECK: Duration = Duration::from_millis(50);

fn sb(v: &'static str) -> StrBytes {
    StrBytes::from_static(v)
}

/// Answers `request`; `None` for a request that gets no response
/// (Produce with acks=0).
pub(crate) async fn handle(ctx: &Context<'_>, request: RequestKind) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions(ctx)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata(ctx, r)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics(ctx, r)),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics(ctx, r)),
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions(ctx, r))
        }
        RequestKind::Produce(r) => ResponseKind::Produce(produce(ctx, r)?),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch(ctx, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets(ctx, r)),
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(init_producer_id(ctx, r)),
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(find_coordinator(ctx, r)),
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(join_group(ctx, r).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(sync_group(ctx, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(heartbeat(ctx, r)),
        RequestKind::ConsumerGroupHeartbeat(r) => ResponseKind::ConsumerGroupHeartbeat(
            crate::consumer_group_api::consumer_group_heartbeat(ctx, r),
        ),
        RequestKind::ShareGroupHeartbeat(r) => {
            ResponseKind::ShareGroupHeartbeat(crate::share_api::share_group_heartbeat(ctx, r))
        }
        RequestKind::ShareGroupDescribe(r) => {
            ResponseKind::ShareGroupDescribe(crate::share_api::share_group_describe(ctx, r))
        }
        RequestKind::ShareFetch(r) => {
            ResponseKind::ShareFetch(crate::share_api::share_fetch(ctx, r).await)
        }
        RequestKind::ShareAcknowledge(r) => {
            ResponseKind::ShareAcknowledge(crate::share_api::share_acknowledge(ctx, r))
        }
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(leave_group(ctx, r)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(describe_groups(ctx, r)),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(list_groups(ctx, r)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(offset_commit(ctx, r)),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offset_fetch(ctx, r)),
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(crate::txn::add_partitions_to_txn(ctx, r))
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(crate::txn::add_offsets_to_txn(ctx, r))
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(crate::txn::txn_offset_commit(ctx, r))
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(crate::txn::end_txn(ctx, r)),
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

fn api_versions(ctx: &Context<'_>) -> ApiVersionsResponse {
    let s = ctx.shared.lock();
    let mut r = ApiVersionsResponse::default();
    r.error_code = ctx.injected.unwrap_or(0);
    r.api_keys = s
        .versions
        .iter()
        .map(|(k, min, max)| {
            let mut a = ApiVersionsResponseApiKey::default();
            a.api_key = k as i16;
            a.min_version = min;
            a.max_version = max;
            a
        })
        .collect();
    r
}

fn metadata(ctx: &Context<'_>, req: MetadataRequest) -> MetadataResponse {
    let v = ctx.version;
    let mut s = ctx.shared.lock();
    // Which topics: null (v1+) or empty (v0) means all.
    let wanted: Option<Vec<(Option<String>, Option<kpax_proto::wire::Uuid>)>> = match req.topics {
        None => None,
        Some(ts) if ts.is_empty() && v == 0 => None,
        Some(ts) => Some(
            ts.into_iter()
                .map(|t| {
                    let id = (v >= 10 && t.topic_id.0 != [0; 16]).then_some(t.topic_id);
                    (t.name.map(|n| n.to_string()), id)
                })
                .collect(),
        ),
    };
    let allow_create = s.auto_create_topics && (v < 4 || req.allow_auto_topic_creation);
    let mut r = MetadataResponse::default();
    r.brokers = s
        .brokers
        .iter()
        .map(|b| {
            let mut mb = MetadataResponseBroker::default();
            mb.node_id = b.id;
            mb.host = s_owned(&s.host);
            mb.port = i32::from(b.port);
            mb
        })
        .collect();
    if v >= 2 {
        r.cluster_id = Some(sb(admin::CLUSTER_ID));
    }
    if v >= 1 {
        r.controller_id = s.brokers[0].id;
    }
    let names: Vec<(Option<String>, Option<kpax_proto::wire::Uuid>)> = match wanted {
        None => s.topics.keys().map(|n| (Some(n.clone()), None)).collect(),
        Some(w) => w,
    };
    for (name, id) in names {
        let mut t = MetadataResponseTopic::default();
        let name = match (name, id) {
            (Some(n), _) => Some(n),
            (None, Some(id)) => s.topic_name_by_id(&id),
            (None, None) => None,
        };
        let Some(name) = name else {
            t.error_code = ErrorCode::UNKNOWN_TOPIC_ID.0;
            if let Some(id) = id {
                t.topic_id = id;
            }
            if v < 12 {
                t.name = Some(sb(""));
            }
            r.topics.push(t);
            continue;
        };
        t.name = Some(s_owned(&name));
        if let Some(e) = ctx.injected {
            t.error_code = e;
            r.topics.push(t);
            continue;
        }
        if !s.topics.contains_key(&name) && allow_create {
            let n = s.default_partitions;
            match s.create_topic(&name, n, 1, None, false) {
                Ok(()) => tracing::info!(topic = %name, "auto-created"),
                Err(e) => t.error_code = e.0,
            }
        }
        match s.topics.get(&name) {
            None => {
                if t.error_code == 0 {
                    t.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0;
                }
            }
            Some(topic) => {
                if v >= 10 {
                    t.topic_id = topic.id;
                }
                t.partitions = topic
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let mut mp = MetadataResponsePartition::default();
                        mp.partition_index = i as i32;
                        mp.leader_id = p.leader;
                        if v >= 7 {
                            mp.leader_epoch = p.leader_epoch;
                        }
                        mp.replica_nodes = p.replicas.clone().into();
                        mp.isr_nodes = p.replicas.clone().into();
                        mp
                    })
                    .collect();
            }
        }
        r.topics.push(t);
    }
    r
}

fn s_owned(v: &str) -> StrBytes {
    StrBytes::from(v.to_string())
}

fn create_topics(ctx: &Context<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let v = ctx.version;
    let mut s = ctx.shared.lock();
    let mut r = CreateTopicsResponse::default();
    for t in req.topics {
        let mut rt = CreateTopicsResponseTopic::default();
        rt.name = t.name.clone();
        let configs = admin::check_new_topic_configs(
            t.configs
                .iter()
                .map(|c| (c.name.as_str(), c.value.as_ref().map(|v| v.as_str()))),
        );
        let result = match (ctx.injected, &configs) {
            (Some(e), _) => Err(ErrorCode(e)),
            (None, Err((e, _))) => Err(*e),
            (None, Ok(_)) => {
                let leaders = (!t.assignments.is_empty()).then(|| {
                    let mut a = t.assignments.clone();
                    a.sort_by_key(|x| x.partition_index);
                    a.iter()
                        .map(|x| x.broker_ids.first().copied().unwrap_or(-1))
                        .collect::<Vec<i32>>()
                });
                let partitions = if t.assignments.is_empty() {
                    t.num_partitions
                } else {
                    t.assignments.len() as i32
                };
                s.create_topic(
                    &t.name,
                    partitions,
                    t.replication_factor,
                    leaders,
                    req.validate_only,
                )
            }
        };
        match result {
            Ok(()) => {
                if let (Some(topic), Ok(configs), false) = (
                    s.topics.get_mut(t.name.as_str()),
                    configs,
                    req.validate_only,
                ) {
                    topic.configs = configs;
                }
                if let Some(topic) = s.topics.get(t.name.as_str()) {
                    if v >= 7 {
                        rt.topic_id = topic.id;
                    }
                    if v >= 5 {
                        rt.num_partitions = topic.partitions.len() as i32;
                        rt.replication_factor = topic.partitions[0].replicas.len() as i16;
                        rt.configs = Some(Vec::new());
                    }
                } else if v >= 5 {
                    rt.num_partitions = t.num_partitions;
                    rt.replication_factor = t.replication_factor;
                    rt.configs = Some(Vec::new());
                }
            }
            Err(e) => {
                rt.error_code = e.0;
                if v >= 1 {
                    rt.error_message = e.name().map(StrBytes::from_static);
                }
                if v >= 5 {
                    rt.num_partitions = -1;
                    rt.replication_factor = -1;
                }
            }
        }
        r.topics.push(rt);
    }
    r
}

fn delete_topics(ctx: &Context<'_>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let v = ctx.version;
    let mut s = ctx.shared.lock();
    let targets: Vec<(Option<String>, kpax_proto::wire::Uuid)> = if v >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.to_string()), kpax_proto::wire::Uuid([0; 16])))
            .collect()
    };
    let mut r = DeleteTopicsResponse::default();
    for (name, id) in targets {
        let name = name.or_else(|| s.topic_name_by_id(&id));
        let mut rr = DeleteTopicsResponseResponse::default();
        rr.name = Some(s_owned(name.as_deref().unwrap_or("")));
        if v >= 6 {
            rr.topic_id = id;
            if name.is_none() {
                rr.name = None;
            }
        }
        let code = if let Some(e) = ctx.injected {
            e
        } else {
            match name.as_deref().and_then(|n| s.topics.remove(n)) {
                Some(t) => {
                    if v >= 6 {
                        rr.topic_id = t.id;
                    }
                    0
                }
                None if name.is_none() => ErrorCode::UNKNOWN_TOPIC_ID.0,
                None => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
            }
        };
        rr.error_code = code;
        r.responses.push(rr);
    }
    r
}

fn create_partitions(ctx: &Context<'_>, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut s = ctx.shared.lock();
    let mut r = CreatePartitionsResponse::default();
    for t in req.topics {
        let mut rr = CreatePartitionsResponseResult::default();
        rr.name = t.name.clone();
        let result = match ctx.injected {
            Some(e) => Err(ErrorCode(e)),
            None => s.create_partitions(&t.name, t.count, req.validate_only),
        };
        if let Err(e) = result {
            rr.error_code = e.0;
            rr.error_message = e.name().map(StrBytes::from_static);
        }
        r.results.push(rr);
    }
    r
}

fn produce(ctx: &Context<'_>, req: ProduceRequest) -> Option<ProduceResponse> {
    let v = ctx.version;
    let mut appended = false;
    let mut r = ProduceResponse::default();
    {
        let mut s = ctx.shared.lock();
        for td in req.topic_data {
            let mut rt = ProduceResponseResponse::default();
            rt.name = td.name.clone();
            for pd in td.partition_data {
                let mut rp = ProduceResponsePartitionResponse::default();
                rp.index = pd.index;
                rp.base_offset = -1;
                let outcome = if let Some(e) = ctx.injected {
                    Err(e)
                } else if !matches!(req.acks, -1..=1) {
                    Err(ErrorCode::INVALID_REQUIRED_ACKS.0)
                } else {
                    leader_check(&s, ctx.node, &td.name, pd.index).and_then(|()| {
                        let records = pd.records.clone().unwrap_or_default();
                        let txn = crate::txn::check_produce(
                            &s,
                            req.transactional_id.as_deref(),
                            &td.name,
                            pd.index,
                            &records,
                        )?;
                        let p = &mut s
                            .topics
                            .get_mut(td.name.as_str())
                            .expect("checked")
                            .partitions[pd.index as usize];
                        let epoch = p.leader_epoch;
                        let out = p
                            .log
                            .append(&records, epoch)
                            .map(|a| (a, p.log.log_start_offset()))
                            .map_err(|e| e.0)?;
                        if let (Some(pid), false) = (txn, out.0.duplicate) {
                            crate::txn::appended(
                                &mut s,
                                &td.name,
                                pd.index,
                                pid,
                                out.0.base_offset,
                            );
                        }
                        Ok(out)
                    })
                };
                match outcome {
                    Ok((a, start)) => {
                        appended |= !a.duplicate;
                        rp.base_offset = a.base_offset;
                        if v >= 5 {
                            rp.log_start_offset = start;
                        }
                    }
                    Err(e) => {
                        rp.error_code = e;
                        if v >= 10 && e == ErrorCode::NOT_LEADER_OR_FOLLOWER.0 {
                            if let Some(p) = s
                                .topics
                                .get(td.name.as_str())
                                .and_then(|t| t.partitions.get(pd.index as usize))
                            {
                                rp.current_leader.leader_id = p.leader;
                                rp.current_leader.leader_epoch = p.leader_epoch;
                            }
                        }
                    }
                }
                rt.partition_responses.push(rp);
            }
            r.responses.push(rt);
        }
    }
    if appended {
        ctx.shared.data_arrived.notify_waiters();
    }
    (req.acks != 0).then_some(r)
}

/// One pass over a Fetch request: the response and how many record bytes
/// it carries, and whether it holds an error (answered at once).
fn fetch_once(ctx: &Context<'_>, req: &FetchRequest) -> (FetchResponse, usize, bool) {
    let v = ctx.version;
    let s = ctx.shared.lock();
    let mut r = FetchResponse::default();
    let mut total = 0usize;
    let mut any_error = false;
    let max_bytes = if v >= 3 && req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        usize::MAX
    };
    for t in &req.topics {
        let mut rt = FetchResponseResponse::default();
        let name = if v >= 13 {
            rt.topic_id = t.topic_id;
            s.topic_name_by_id(&t.topic_id)
        } else {
            rt.topic = t.topic.clone();
            Some(t.topic.to_string())
        };
        for fp in &t.partitions {
            let mut rp = FetchResponsePartition::default();
            rp.partition_index = fp.partition;
            rp.high_watermark = -1;
            if v >= 4 {
                rp.last_stable_offset = -1;
            }
            if v >= 5 {
                rp.log_start_offset = -1;
            }
            if v >= 11 {
                rp.preferred_read_replica = -1;
            }
            let result = match (&name, ctx.injected) {
                (_, Some(e)) => Err(e),
                (None, _) => Err(ErrorCode::UNKNOWN_TOPIC_ID.0),
                (Some(name), None) => leader_check(&s, ctx.node, name, fp.partition),
            };
            let result = result.and_then(|()| {
                let name = name.as_deref().expect("checked");
                let p = &s.topics[name].partitions[fp.partition as usize];
                let log = &p.log;
                rp.high_watermark = log.high_watermark();
                let lso =
                    crate::txn::last_stable_offset(&s, name, fp.partition, log.high_watermark());
                if v >= 4 {
                    rp.last_stable_offset = lso;
                }
                if v >= 5 {
                    rp.log_start_offset = log.log_start_offset();
                }
                if fp.fetch_offset < log.log_start_offset()
                    || fp.fetch_offset > log.high_watermark()
                {
                    return Err(ErrorCode::OFFSET_OUT_OF_RANGE.0);
                }
                // (total passes max_bytes when a first batch is larger:
                // later partitions then get nothing.)
                let limit =
                    (fp.partition_max_bytes.max(0) as usize).min(max_bytes.saturating_sub(total));
                let mut data = log.read(fp.fetch_offset, limit, total == 0);
                if v >= 4 && req.isolation_level == 1 {
                    data = crate::txn::below(data, lso);
                    rp.aborted_transactions = Some(crate::txn::aborted_between(
                        &s,
                        name,
                        fp.partition,
                        fp.fetch_offset,
                        lso,
                    ));
                }
                total += data.len();
                rp.records = Some(data);
                Ok(())
            });
            if let Err(e) = result {
                any_error = true;
                rp.error_code = e;
                rp.records = Some(Bytes::new());
                if v >= 12 && e == ErrorCode::NOT_LEADER_OR_FOLLOWER.0 {
                    if let Some(p) = name
                        .as_deref()
                        .and_then(|n| s.topics.get(n))
                        .and_then(|t| t.partitions.get(fp.partition as usize))
                    {
                        rp.current_leader.leader_id = p.leader;
                        rp.current_leader.leader_epoch = p.leader_epoch;
                    }
                }
            }
            rt.partitions.push(rp);
        }
        r.responses.push(rt);
    }
    (r, total, any_error)
}

async fn fetch(ctx: &Context<'_>, req: FetchRequest) -> FetchResponse {
    let (req, answer) = match crate::fetch_session::open(ctx, req) {
        crate::fetch_session::Opened::Answer(r) => return r,
        crate::fetch_session::Opened::Fetch(req, answer) => (req, answer),
    };
    let wait = Duration::from_millis(req.max_wait_ms.clamp(0, 60_000) as u64);
    let deadline = Instant::now() + wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    loop {
        let notified = ctx.shared.data_arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (r, total, error) = fetch_once(ctx, &req);
        let now = Instant::now();
        if error || total >= min_bytes.max(1) || now >= deadline {
            return crate::fetch_session::close(ctx, answer, r);
        }
        let _ = tokio::time::timeout(deadline - now, notified).await;
    }
}

fn list_offsets(ctx: &Context<'_>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let v = ctx.version;
    let s = ctx.shared.lock();
    let mut r = ListOffsetsResponse::default();
    for t in req.topics {
        let mut rt = ListOffsetsResponseTopic::default();
        rt.name = t.name.clone();
        for lp in t.partitions {
            let mut rp = ListOffsetsResponsePartition::default();
            rp.partition_index = lp.partition_index;
            let result = match ctx.injected {
                Some(e) => Err(e),
                None => leader_check(&s, ctx.node, &t.name, lp.partition_index),
            };
            let found = result.map(|()| {
                let p = &s.topics[t.name.as_str()].partitions[lp.partition_index as usize];
                let log = &p.log;
                let found = match lp.timestamp {
                    // read_committed (v2+) ends at the last stable offset.
                    -1 if v >= 2 && req.isolation_level == 1 => Some((
                        crate::txn::last_stable_offset(
                            &s,
                            &t.name,
                            lp.partition_index,
                            log.high_watermark(),
                        ),
                        -1,
                    )),
                    -1 => Some((log.high_watermark(), -1)),
                    -2 => Some((log.log_start_offset(), -1)),
                    -3 => log.max_timestamp_offset(),
                    ts if ts >= 0 => log.offset_for_timestamp(ts),
                    _ => None,
                };
                (found, p.leader_epoch)
            });
            match found {
                Err(e) => {
                    rp.error_code = e;
                    if v >= 1 {
                        rp.offset = -1;
                        rp.timestamp = -1;
                    }
                    if v >= 4 {
                        rp.leader_epoch = -1;
                    }
                }
                Ok((found, epoch)) => {
                    let (offset, ts) = found.unwrap_or((-1, -1));
                    if v == 0 {
                        if offset >= 0 {
                            rp.old_style_offsets = vec![offset];
                        }
                    } else {
                        rp.offset = offset;
                        rp.timestamp = ts;
                    }
                    if v >= 4 {
                        rp.leader_epoch = epoch;
                    }
                }
            }
            rt.partitions.push(rp);
        }
        r.topics.push(rt);
    }
    r
}

fn init_producer_id(ctx: &Context<'_>, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let v = ctx.version;
    let mut s = ctx.shared.lock();
    let mut r = InitProducerIdResponse::default();
    if let Some(e) = ctx.injected {
        r.error_code = e;
        r.producer_id = -1;
        r.producer_epoch = -1;
        return r;
    }
    let (id, epoch) = if let Some(txn) = req.transactional_id.as_ref().filter(|t| !t.is_empty()) {
        if s.coordinator(CoordinatorKind::Transaction, txn) != ctx.node {
            r.error_code = ErrorCode::NOT_COORDINATOR.0;
            r.producer_id = -1;
            r.producer_epoch = -1;
            return r;
        }
        crate::txn::before_new_epoch(&mut s, txn.as_str());
        crate::txn::set_timeout(&mut s, txn.as_str(), req.transaction_timeout_ms);
        let next = match s.transactional.get(txn.as_str()).copied() {
            Some((id, epoch)) if epoch < i16::MAX - 1 => (id, epoch + 1),
            _ => (s.allocate_producer_id(), 0),
        };
        s.transactional.insert(txn.to_string(), next);
        next
    } else if v >= 3 && req.producer_id >= 0 && req.producer_epoch >= 0 {
        if req.producer_epoch < i16::MAX - 1 {
            (req.producer_id, req.producer_epoch + 1)
        } else {
            (s.allocate_producer_id(), 0)
        }
    } else {
        (s.allocate_producer_id(), 0)
    };
    r.producer_id = id;
    r.producer_epoch = epoch;
    r
}

fn find_coordinator(ctx: &Context<'_>, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let v = ctx.version;
    let s = ctx.shared.lock();
    let lookup = |key: &str| -> Result<(i32, String, i32), i16> {
        if let Some(e) = ctx.injected {
            return Err(e);
        }
        let kind = match req.key_type {
            0 => CoordinatorKind::Group,
            1 => CoordinatorKind::Transaction,
            _ => return Err(ErrorCode::INVALID_REQUEST.0),
        };
        let node = s.coordinator(kind, key);
        let b = s
            .broker(node)
            .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE.0)?;
        Ok((node, s.host.clone(), i32::from(b.port)))
    };
    let mut r = FindCoordinatorResponse::default();
    if v < 4 {
        match lookup(&req.key) {
            Ok((node, host, port)) => {
                r.node_id = node;
                r.host = s_owned(&host);
                r.port = port;
                if v >= 1 {
                    r.error_message = None;
                }
            }
            Err(e) => {
                r.error_code = e;
                r.node_id = -1;
                r.host = sb("");
                r.port = -1;
                if v >= 1 {
                    r.error_message = ErrorCode(e).name().map(StrBytes::from_static);
                }
            }
        }
    } else {
        for key in &req.coordinator_keys {
            let mut c = FindCoordinatorResponseCoordinator::default();
            c.key = key.clone();
            match lookup(key) {
                Ok((node, host, port)) => {
                    c.node_id = node;
                    c.host = s_owned(&host);
                    c.port = port;
                }
                Err(e) => {
                    c.error_code = e;
                    c.node_id = -1;
                    c.host = sb("");
                    c.port = -1;
                    c.error_message = ErrorCode(e).name().map(StrBytes::from_static);
                }
            }
            r.coordinators.push(c);
        }
    }
    r
}

fn join_error(v: i16, code: i16, member_id: &str) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = code;
    r.generation_id = -1;
    r.member_id = s_owned(member_id);
    r.protocol_name = if v >= 7 { None } else { Some(sb("")) };
    r
}

async fn join_group(ctx: &Context<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
    let v = ctx.version;
    let group_id = req.group_id.to_string();
    let step = {
        let mut s = ctx.shared.lock();
        if let Err(e) = group_check(ctx, &s, &group_id) {
            return join_error(v, e, &req.member_id);
        }
        if !(1..=1_800_000).contains(&req.session_timeout_ms) {
            return join_error(v, ErrorCode::INVALID_SESSION_TIMEOUT.0, &req.member_id);
        }
        let rebalance_ms = if v >= 1 && req.rebalance_timeout_ms > 0 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        };
        let delay = s.initial_rebalance_delay;
        let now = Instant::now();
        let group = s
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(&group_id, now));
        group.join(
            JoinRequest {
                member_id: req.member_id.to_string(),
                instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
                client_id: ctx.client_id.clone(),
                client_host: format!("/{}", ctx.peer.ip()),
                session_timeout: Duration::from_millis(req.session_timeout_ms as u64),
                rebalance_timeout: Duration::from_millis(rebalance_ms as u64),
                protocol_type: req.protocol_type.to_string(),
                protocols: req
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
                require_known_member_id: v >= 4,
            },
            now,
            delay,
        )
    };
    let member_id = match step {
        Err(e) => return join_error(v, e.0, &req.member_id),
        Ok(JoinStep::MemberIdRequired(id)) => {
            return join_error(v, ErrorCode::MEMBER_ID_REQUIRED.0, &id)
        }
        Ok(JoinStep::Wait(id)) => id,
    };
    loop {
        let notify = {
            let s = ctx.shared.lock();
            let Some(g) = s.groups.get(&group_id) else {
                return join_error(v, ErrorCode::UNKNOWN_MEMBER_ID.0, &member_id);
            };
            match g.join_result(&member_id) {
                Err(e) => return join_error(v, e.0, &member_id),
                Ok(Some(j)) => {
                    let mut r = JoinGroupResponse::default();
                    r.generation_id = j.generation;
                    if v >= 7 {
                        r.protocol_type = j.protocol_type.as_deref().map(s_owned);
                        r.protocol_name = j.protocol.as_deref().map(s_owned);
                    } else {
                        r.protocol_name = Some(s_owned(j.protocol.as_deref().unwrap_or("")));
                    }
                    r.leader = s_owned(&j.leader);
                    r.member_id = s_owned(&j.member_id);
                    r.members = j
                        .members
                        .into_iter()
                        .map(|(id, instance, meta)| {
                            let mut m = JoinGroupResponseMember::default();
                            m.member_id = s_owned(&id);
                            if v >= 5 {
                                m.group_instance_id = instance.as_deref().map(s_owned);
                            }
                            m.metadata = meta;
                            m
                        })
                        .collect();
                    return r;
                }
                Ok(None) => g.notify.clone(),
            }
        };
        wait_on(&notify).await;
    }
}

/// Waits for a group change, or [`RECHECK`] at most.
async fn wait_on(notify: &tokio::sync::Notify) {
    let _ = tokio::time::timeout(RECHECK, notify.notified()).await;
}

fn sync_response(v: i16, code: i16, assignment: Bytes, g: Option<&Group>) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = code;
    r.assignment = assignment;
    if v >= 5 && code == 0 {
        r.protocol_type = g.and_then(|g| g.protocol_type.as_deref()).map(s_owned);
        r.protocol_name = g.and_then(|g| g.protocol.as_deref()).map(s_owned);
    }
    r
}

async fn sync_group(ctx: &Context<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    let v = ctx.version;
    let group_id = req.group_id.to_string();
    let member = req.member_id.to_string();
    {
        let mut s = ctx.shared.lock();
        if let Err(e) = group_check(ctx, &s, &group_id) {
            return sync_response(v, e, Bytes::new(), None);
        }
        let Some(g) = s.groups.get_mut(&group_id) else {
            return sync_response(v, ErrorCode::UNKNOWN_MEMBER_ID.0, Bytes::new(), None);
        };
        let assignments = req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect();
        match g.sync(&member, req.generation_id, assignments, Instant::now()) {
            Err(e) => return sync_response(v, e.0, Bytes::new(), None),
            Ok(SyncStep::Done(a)) => return sync_response(v, 0, a, Some(g)),
            Ok(SyncStep::Wait) => {}
        }
    }
    loop {
        let notify = {
            let s = ctx.shared.lock();
            let Some(g) = s.groups.get(&group_id) else {
                return sync_response(v, ErrorCode::UNKNOWN_MEMBER_ID.0, Bytes::new(), None);
            };
            match g.sync_result(&member, req.generation_id) {
                Err(e) => return sync_response(v, e.0, Bytes::new(), None),
                Ok(SyncStep::Done(a)) => return sync_response(v, 0, a, Some(g)),
                Ok(SyncStep::Wait) => g.notify.clone(),
            }
        };
        wait_on(&notify).await;
    }
}

fn heartbeat(ctx: &Context<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    let mut s = ctx.shared.lock();
    let mut r = HeartbeatResponse::default();
    r.error_code = match group_check(ctx, &s, &req.group_id) {
        Err(e) => e,
        Ok(()) => match s.groups.get_mut(req.group_id.as_str()) {
            None => ErrorCode::UNKNOWN_MEMBER_ID.0,
            Some(g) => {
                g.heartbeat(&req.member_id, req.generation_id, Instant::now())
                    .0
            }
        },
    };
    r
}

fn leave_group(ctx: &Context<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let v = ctx.version;
    let mut s = ctx.shared.lock();
    let mut r = LeaveGroupResponse::default();
    if let Err(e) = group_check(ctx, &s, &req.group_id) {
        r.error_code = e;
        return r;
    }
    let leaving: Vec<(String, Option<StrBytes>)> = if v >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.clone()))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let now = Instant::now();
    let g = s.groups.get_mut(req.group_id.as_str());
    let mut codes = Vec::new();
    match g {
        None => codes.extend(leaving.iter().map(|_| ErrorCode::UNKNOWN_MEMBER_ID.0)),
        Some(g) => {
            for (id, instance) in &leaving {
                // A static member may leave by instance id alone.
                let id = if id.is_empty() {
                    g.members
                        .values()
                        .find(|m| m.instance_id.as_deref() == instance.as_deref())
                        .map(|m| m.id.clone())
                        .unwrap_or_default()
                } else {
                    id.clone()
                };
                codes.push(g.leave(&id, now).0);
            }
        }
    }
    if v >= 3 {
        r.members = leaving
            .into_iter()
            .zip(&codes)
            .map(|((id, instance), &code)| {
                let mut m = LeaveGroupResponseMember::default();
                m.member_id = s_owned(&id);
                m.group_instance_id = instance;
                m.error_code = code;
                m
            })
            .collect();
    } else {
        r.error_code = codes.first().copied().unwrap_or(0);
    }
    r
}

fn describe_groups(ctx: &Context<'_>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let v = ctx.version;
    let s = ctx.shared.lock();
    let mut r = DescribeGroupsResponse::default();
    for id in req.groups {
        let mut rg = DescribeGroupsResponseGroup::default();
        rg.group_id = id.clone();
        if v >= 3 {
            rg.authorized_operations = i32::MIN;
        }
        if let Err(e) = group_check(ctx, &s, &id) {
            rg.error_code = e;
            rg.group_state = s_owned("Dead");
            r.groups.push(rg);
            continue;
        }
        match s.groups.get(id.as_str()) {
            None => rg.group_state = s_owned("Dead"),
            Some(g) => {
                rg.group_state = StrBytes::from_static(g.state_name());
                rg.protocol_type = s_owned(g.protocol_type_name());
                rg.protocol_data = s_owned(g.protocol.as_deref().unwrap_or(""));
                rg.members = g
                    .members
                    .values()
                    .map(|m| {
                        let mut dm = DescribeGroupsResponseMember::default();
                        dm.member_id = s_owned(&m.id);
                        if v >= 4 {
                            dm.group_instance_id = m.instance_id.as_deref().map(s_owned);
                        }
                        dm.client_id = s_owned(&m.client_id);
                        dm.client_host = s_owned(&m.client_host);
                        dm.member_metadata = m
                            .protocols
                            .iter()
                            .find(|(p, _)| Some(p) == g.protocol.as_ref())
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default();
                        dm.member_assignment = m.assignment.clone();
                        dm
                    })
                    .collect();
            }
        }
        r.groups.push(rg);
    }
    r
}

fn list_groups(ctx: &Context<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let v = ctx.version;
    let s = ctx.shared.lock();
    let mut r = ListGroupsResponse::default();
    if let Some(e) = ctx.injected {
        r.error_code = e;
        return r;
    }
    for g in s.groups.values() {
        if s.coordinator(CoordinatorKind::Group, &g.id) != ctx.node {
            continue;
        }
        let state = g.state_name();
        let group_type = if g.is_consumer_group() {
            "consumer"
        } else {
            "classic"
        };
        if v >= 4
            && !req.states_filter.is_empty()
            && !req
                .states_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(state))
        {
            continue;
        }
        if v >= 5
            && !req.types_filter.is_empty()
            && !req
                .types_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(group_type))
        {
            continue;
        }
        let mut lg = ListGroupsResponseGroup::default();
        lg.group_id = s_owned(&g.id);
        lg.protocol_type = s_owned(g.protocol_type_name());
        if v >= 4 {
            lg.group_state = StrBytes::from_static(state);
        }
        if v >= 5 {
            lg.group_type = StrBytes::from_static(group_type);
        }
        r.groups.push(lg);
    }
    for (id, g) in &s.share_groups {
        if s.coordinator(CoordinatorKind::Group, id) != ctx.node {
            continue;
        }
        let state = g.state_name();
        let filtered_out = (v >= 4
            && !req.states_filter.is_empty()
            && !req
                .states_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(state)))
            || (v >= 5
                && !req.types_filter.is_empty()
                && !req
                    .types_filter
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case("share")));
        if filtered_out {
            continue;
        }
        let mut lg = ListGroupsResponseGroup::default();
        lg.group_id = s_owned(id);
        lg.protocol_type = sb("share");
        if v >= 4 {
            lg.group_state = StrBytes::from_static(state);
        }
        if v >= 5 {
            lg.group_type = sb("share");
        }
        r.groups.push(lg);
    }
    r
}

fn offset_commit(ctx: &Context<'_>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let v = ctx.version;
    let mut s = ctx.shared.lock();
    let group_id = req.group_id.to_string();
    let now = Instant::now();
    let mut code = group_check(ctx, &s, &group_id).err().unwrap_or(0);
    if code == 0 {
        let g = s
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(&group_id, now));
        let generation = if v >= 1 {
            req.generation_id_or_member_epoch
        } else {
            -1
        };
        code = g.check_commit(&req.member_id, generation).0;
        if code == 0 {
            g.touch(&req.member_id, now);
        }
    }
    let mut r = OffsetCommitResponse::default();
    for t in req.topics {
        let mut rt = OffsetCommitResponseTopic::default();
        rt.name = t.name.clone();
        let known = s.topics.get(t.name.as_str()).map(|x| x.partitions.len());
        for p in t.partitions {
            let mut rp = OffsetCommitResponsePartition::default();
            rp.partition_index = p.partition_index;
            rp.error_code = if code != 0 {
                code
            } else if !known.is_some_and(|n| (0..n as i32).contains(&p.partition_index)) {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0
            } else {
                let g = s.groups.get_mut(&group_id).expect("created above");
                g.offsets.insert(
                    (t.name.to_string(), p.partition_index),
                    crate::Committed {
                        offset: p.committed_offset,
                        leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    },
                );
                0
            };
            rt.partitions.push(rp);
        }
        r.topics.push(rt);
    }
    r
}

/// Committed offsets of `group` for `topics` (all committed when `None`):
/// (topic, [(partition, offset, epoch, metadata, error)]).
type FetchedOffsets = Vec<(String, Vec<(i32, i64, i32, Option<String>, i16)>)>;

fn fetched_offsets(
    s: &ClusterState,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    error: i16,
) -> FetchedOffsets {
    let g = s.groups.get(group);
    let topics = topics.unwrap_or_else(|| {
        let mut all: Vec<(String, Vec<i32>)> = Vec::new();
        if let Some(g) = g {
            for (t, p) in g.offsets.keys() {
                match all.last_mut() {
                    Some((name, ps)) if name == t => ps.push(*p),
                    _ => all.push((t.clone(), vec![*p])),
                }
            }
        }
        all
    });
    topics
        .into_iter()
        .map(|(t, ps)| {
            let parts = ps
                .into_iter()
                .map(|p| {
                    let c = g.and_then(|g| g.offsets.get(&(t.clone(), p)));
                    match c {
                        Some(c) if error == 0 => {
                            (p, c.offset, c.leader_epoch, c.metadata.clone(), 0)
                        }
                        _ => (p, -1, -1, Some(String::new()), error),
                    }
                })
                .collect();
            (t, parts)
        })
        .collect()
}

fn offset_fetch(ctx: &Context<'_>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let v = ctx.version;
    let s = ctx.shared.lock();
    let mut r = OffsetFetchResponse::default();
    if v >= 8 {
        for rg in req.groups {
            let mut g = OffsetFetchResponseGroup::default();
            g.group_id = rg.group_id.clone();
            let code = group_check(ctx, &s, &rg.group_id).err().unwrap_or(0);
            g.error_code = code;
            if code == 0 {
                let topics = rg.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes.into_vec()))
                        .collect()
                });
                g.topics = fetched_offsets(&s, &rg.group_id, topics, 0)
                    .into_iter()
                    .map(|(name, parts)| {
                        let mut t = OffsetFetchResponseGroupTopic::default();
                        t.name = s_owned(&name);
                        t.partitions = parts
                            .into_iter()
                            .map(|(p, o, e, m, err)| {
                                let mut rp = OffsetFetchResponseGroupTopicPartition::default();
                                rp.partition_index = p;
                                rp.committed_offset = o;
                                rp.committed_leader_epoch = e;
                                rp.metadata = m.as_deref().map(s_owned);
                                rp.error_code = err;
                                rp
                            })
                            .collect();
                        t
                    })
                    .collect();
            }
            r.groups.push(g);
        }
        return r;
    }
    let code = group_check(ctx, &s, &req.group_id).err().unwrap_or(0);
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.into_vec()))
            .collect::<Vec<_>>()
    });
    // v2+ carries a group-level error; v0-1 only per partition.
    let (partition_error, top_error) = if v >= 2 { (0, code) } else { (code, 0) };
    if v >= 2 {
        r.error_code = top_error;
        if code != 0 {
            return r;
        }
    }
    r.topics = fetched_offsets(&s, &req.group_id, topics, partition_error)
        .into_iter()
        .map(|(name, parts)| {
            let mut t = OffsetFetchResponseTopic::default();
            t.name = s_owned(&name);
            t.partitions = parts
                .into_iter()
                .map(|(p, o, e, m, err)| {
                    let mut rp = OffsetFetchResponseTopicPartition::default();
                    rp.partition_index = p;
                    rp.committed_offset = o;
                    if v >= 5 {
                        rp.committed_leader_epoch = e;
                    }
                    rp.metadata = m.as_deref().map(s_owned);
                    rp.error_code = err;
                    rp
                })
                .collect();
            t
        })
        .collect();
    r
}
