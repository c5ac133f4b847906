//! The ConsumerGroupHeartbeat handler (KIP-848): the request checked and
//! applied to the group's [`ConsumerGroup`](crate::consumer_group::ConsumerGroup)
//! model, its answer written at the request's version.

use std::collections::BTreeMap;
use std::time::Instant;

use kpax_proto::generated::consumer_group_heartbeat::{
    ConsumerGroupHeartbeatResponseAssignment, ConsumerGroupHeartbeatResponseTopicPartition,
};
use kpax_proto::generated::ErrorCode;
use kpax_proto::generated::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kpax_proto::wire::{StrBytes, Uuid};

use crate::consumer_group::*;
use crate::context::{group_check, Context};
use crate::group::Group;

/// The ConsumerGroupHeartbeat handler.
pub(crate) fn consumer_group_heartbeat(
    ctx: &Context<'_>,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let mut r = ConsumerGroupHeartbeatResponse::default();
    let mut s = ctx.shared.lock();
    if let Err(e) = group_check(ctx, &s, &req.group_id) {
        r.error_code = ErrorCode(e);
        return r;
    }
    let topics = s.topic_info();
    let by_id: BTreeMap<Uuid, &str> = topics.iter().map(|(n, i)| (i.id, n.as_str())).collect();
    let beat = Beat {
        member_id: req.member_id.to_string(),
        epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|i| i.to_string()),
        subscribed: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.to_string()).collect()),
        owned: req.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .filter_map(|tp| by_id.get(&tp.topic_id).map(|n| (n, &tp.partitions)))
                .flat_map(|(n, ps)| ps.iter().map(move |p| (n.to_string(), *p)))
                .collect()
        }),
    };
    let now = Instant::now();
    let group_id = req.group_id.to_string();
    let g = s
        .groups
        .entry(group_id.clone())
        .or_insert_with(|| Group::new(&group_id, now));
    if !g.members.is_empty() {
        // A classic group with members is not a consumer group.
        r.error_code = ErrorCode::GROUP_ID_NOT_FOUND;
        r.error_message = Some(StrBytes::from(format!(
            "group {group_id} is a classic group"
        )));
        return r;
    }
    match g.consumer.heartbeat(beat, &topics, now) {
        Err(code) => {
            r.error_code = code;
            r.member_id = Some(req.member_id.clone());
        }
        Ok(a) => {
            r.member_id = Some(StrBytes::from(a.member_id));
            r.member_epoch = a.epoch;
            r.heartbeat_interval_ms = HEARTBEAT_INTERVAL.as_millis() as i32;
            r.assignment = a.assignment.map(|tps| {
                let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                for (t, p) in &tps {
                    by_topic.entry(t.as_str()).or_default().push(*p);
                }
                let mut asg = ConsumerGroupHeartbeatResponseAssignment::default();
                asg.topic_partitions = by_topic
                    .into_iter()
                    .filter_map(|(t, ps)| {
                        let mut tp = ConsumerGroupHeartbeatResponseTopicPartition::default();
                        tp.topic_id = topics.get(t)?.id;
                        tp.partitions = ps.into();
                        Some(tp)
                    })
                    .collect();
                asg
            });
        }
    }
    r
}
