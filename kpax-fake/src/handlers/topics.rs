//! Topics: CreateTopics (with the topic configs it may set), DeleteTopics
//! (by name, or by topic id from v6) and CreatePartitions.

use kpax_proto::generated::{create_partitions::*, create_topics::*, delete_topics::*};
use kpax_proto::generated::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, ErrorCode,
};
use kpax_proto::wire::StrBytes;

use crate::context::{s_owned, Context};

pub(crate) fn create_topics(ctx: &Context<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let v = ctx.version;
    let mut s = ctx.shared.lock();
    let mut r = CreateTopicsResponse::default();
    for t in req.topics {
        let mut rt = CreateTopicsResponseTopic::default();
        rt.name = t.name.clone();
        let configs = super::admin::check_new_topic_configs(
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
                rt.error_code = e;
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

pub(crate) fn delete_topics(ctx: &Context<'_>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
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
        rr.error_code = ErrorCode(code);
        r.responses.push(rr);
    }
    r
}

pub(crate) fn create_partitions(
    ctx: &Context<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
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
            rr.error_code = e;
            rr.error_message = e.name().map(StrBytes::from_static);
        }
        r.results.push(rr);
    }
    r
}
