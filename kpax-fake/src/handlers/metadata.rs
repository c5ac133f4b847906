//! The cluster's description: ApiVersions (the versions this cluster
//! serves, from its [`VersionTable`](crate::VersionTable)) and Metadata
//! (brokers, controller, topics and their partitions' leaders; Metadata
//! also creates unknown topics when `auto_create_topics` is on).

use kpax_proto::generated::{api_versions::*, metadata::*};
use kpax_proto::generated::{ApiVersionsResponse, ErrorCode, MetadataRequest, MetadataResponse};

use crate::context::{s_owned, sb, Context};

pub(crate) fn api_versions(ctx: &Context<'_>) -> ApiVersionsResponse {
    let s = ctx.shared.lock();
    let mut r = ApiVersionsResponse::default();
    r.error_code = ErrorCode(ctx.injected.unwrap_or(0));
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

pub(crate) fn metadata(ctx: &Context<'_>, req: MetadataRequest) -> MetadataResponse {
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
        r.cluster_id = Some(sb(super::admin::CLUSTER_ID));
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
            t.error_code = ErrorCode::UNKNOWN_TOPIC_ID;
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
            t.error_code = ErrorCode(e);
            r.topics.push(t);
            continue;
        }
        if !s.topics.contains_key(&name) && allow_create {
            let n = s.default_partitions;
            match s.create_topic(&name, n, 1, None, false) {
                Ok(()) => tracing::info!(topic = %name, "auto-created"),
                Err(e) => t.error_code = e,
            }
        }
        match s.topics.get(&name) {
            None => {
                if t.error_code == ErrorCode(0) {
                    t.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION;
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
