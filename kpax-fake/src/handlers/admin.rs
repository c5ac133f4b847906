//! The admin APIs beyond topics: DeleteRecords, DeleteGroups,
//! DescribeCluster, DescribeConfigs and IncrementalAlterConfigs, with the
//! topic configs they read and change.

use std::collections::BTreeMap;

use kpax_proto::generated::{
    delete_groups::*, delete_records::*, describe_cluster::*, describe_configs::*,
    incremental_alter_configs::*, DeleteGroupsRequest, DeleteRecordsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, ErrorCode, IncrementalAlterConfigsRequest,
};
use kpax_proto::wire::StrBytes;

use crate::context::{group_check, leader_check, s_owned, Context};
use crate::state::ClusterState;

/// The cluster id every response names.
pub(crate) const CLUSTER_ID: &str = "kpax-fake";

/// Resource types of DescribeConfigs / IncrementalAlterConfigs.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;

/// Config sources (DescribeConfigs v1+).
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// The topic configs the fake knows, with Kafka 3.9's defaults. A name
/// not listed is `INVALID_CONFIG`, as Kafka answers.
pub(crate) const TOPIC_CONFIG_DEFAULTS: [(&str, &str); 22] = [
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("delete.retention.ms", "86400000"),
    ("file.delete.delay.ms", "60000"),
    ("flush.messages", "9223372036854775807"),
    ("flush.ms", "9223372036854775807"),
    ("index.interval.bytes", "4096"),
    ("max.compaction.lag.ms", "9223372036854775807"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.after.max.ms", "9223372036854775807"),
    ("message.timestamp.before.max.ms", "9223372036854775807"),
    ("message.timestamp.type", "CreateTime"),
    ("min.cleanable.dirty.ratio", "0.5"),
    ("min.compaction.lag.ms", "0"),
    ("min.insync.replicas", "1"),
    ("preallocate", "false"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("segment.ms", "604800000"),
    ("segment.jitter.ms", "0"),
    ("unclean.leader.election.enable", "false"),
];

/// The broker configs a DescribeConfigs of a broker resource shows.
const BROKER_CONFIGS: [(&str, &str); 4] = [
    ("auto.create.topics.enable", "false"),
    ("log.retention.hours", "168"),
    ("num.partitions", "1"),
    ("message.max.bytes", "1048588"),
];

/// Whether `name` is a topic config the fake knows.
pub(crate) fn known_topic_config(name: &str) -> bool {
    TOPIC_CONFIG_DEFAULTS.iter().any(|(n, _)| *n == name)
}

/// Checks CreateTopics configs: every name known, every value present.
pub(crate) fn check_new_topic_configs<'a>(
    configs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<BTreeMap<String, String>, (ErrorCode, String)> {
    let mut out = BTreeMap::new();
    for (name, value) in configs {
        if !known_topic_config(name) {
            return Err((
                ErrorCode::INVALID_CONFIG,
                format!("unknown topic config {name}"),
            ));
        }
        let Some(value) = value else {
            return Err((
                ErrorCode::INVALID_CONFIG,
                format!("null value for topic config {name}"),
            ));
        };
        out.insert(name.to_string(), value.to_string());
    }
    Ok(out)
}

pub(crate) fn delete_records(
    ctx: &Context<'_>,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut s = ctx.shared.lock();
    let mut r = DeleteRecordsResponse::default();
    for t in req.topics {
        let mut rt = DeleteRecordsResponseTopic::default();
        rt.name = t.name.clone();
        for dp in t.partitions {
            let mut rp = DeleteRecordsResponsePartition::default();
            rp.partition_index = dp.partition_index;
            rp.low_watermark = -1;
            let checked = match ctx.injected {
                Some(e) => Err(e),
                None => leader_check(&s, ctx.node, &t.name, dp.partition_index),
            };
            let result = checked.and_then(|()| {
                let p = s
                    .topics
                    .get_mut(t.name.as_str())
                    .and_then(|topic| topic.partitions.get_mut(dp.partition_index as usize))
                    .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0)?;
                p.log.delete_before(dp.offset).map_err(|e| e.0)
            });
            match result {
                Ok(low) => rp.low_watermark = low,
                Err(e) => rp.error_code = ErrorCode(e),
            }
            rt.partitions.push(rp);
        }
        r.topics.push(rt);
    }
    r
}

pub(crate) fn delete_groups(ctx: &Context<'_>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut s = ctx.shared.lock();
    let mut r = DeleteGroupsResponse::default();
    for id in req.groups_names {
        let mut rr = DeleteGroupsResponseResult::default();
        rr.group_id = id.clone();
        rr.error_code = match delete_group(ctx, &mut s, &id) {
            Ok(()) => ErrorCode(0),
            Err(e) => ErrorCode(e),
        };
        r.results.push(rr);
    }
    r
}

fn delete_group(ctx: &Context<'_>, s: &mut ClusterState, id: &str) -> Result<(), i16> {
    group_check(ctx, s, id)?;
    if let Some(r) = super::share_group::delete_share_group(s, id) {
        return r;
    }
    let g = s.groups.get(id).ok_or(ErrorCode::GROUP_ID_NOT_FOUND.0)?;
    if !g.members.is_empty() {
        return Err(ErrorCode::NON_EMPTY_GROUP.0);
    }
    s.groups.remove(id);
    Ok(())
}

pub(crate) fn describe_cluster(
    ctx: &Context<'_>,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let s = ctx.shared.lock();
    let mut r = DescribeClusterResponse::default();
    if ctx.version >= 1 {
        r.endpoint_type = req.endpoint_type;
    }
    if let Some(e) = ctx.injected {
        r.error_code = ErrorCode(e);
        r.error_message = ErrorCode(e).name().map(StrBytes::from_static);
        return r;
    }
    // Endpoint type 2 (controllers, KIP-919): the fake has none apart
    // from its brokers, and Kafka answers a broker-only cluster so.
    if ctx.version >= 1 && req.endpoint_type != 1 {
        r.error_code = ErrorCode::UNSUPPORTED_ENDPOINT_TYPE;
        r.error_message = Some(StrBytes::from_static(
            "the fake serves broker endpoints only",
        ));
        return r;
    }
    r.cluster_id = StrBytes::from_static(CLUSTER_ID);
    r.controller_id = s.brokers[0].id;
    r.cluster_authorized_operations = i32::MIN;
    r.brokers = s
        .brokers
        .iter()
        .map(|b| {
            let mut rb = DescribeClusterResponseBroker::default();
            rb.broker_id = b.id;
            rb.host = s_owned(&s.host);
            rb.port = i32::from(b.port);
            rb
        })
        .collect();
    r
}

fn config_entry(
    v: i16,
    name: &str,
    value: &str,
    source: i8,
    read_only: bool,
) -> DescribeConfigsResponseConfig {
    let mut c = DescribeConfigsResponseConfig::default();
    c.name = s_owned(name);
    c.value = Some(s_owned(value));
    c.read_only = read_only;
    if v == 0 {
        c.is_default = source == SOURCE_DEFAULT;
    } else {
        c.config_source = source;
    }
    c
}

pub(crate) fn describe_configs(
    ctx: &Context<'_>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let v = ctx.version;
    let s = ctx.shared.lock();
    let mut r = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut rr = DescribeConfigsResponseResult::default();
        rr.resource_type = res.resource_type;
        rr.resource_name = res.resource_name.clone();
        let wanted = |name: &str| {
            res.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
        };
        let result: Result<Vec<DescribeConfigsResponseConfig>, (i16, String)> =
            match (ctx.injected, res.resource_type) {
                (Some(e), _) => Err((e, String::new())),
                (None, RESOURCE_TOPIC) => match s.topics.get(res.resource_name.as_str()) {
                    None => Err((
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                        format!("no topic {}", res.resource_name.as_str()),
                    )),
                    Some(topic) => Ok(TOPIC_CONFIG_DEFAULTS
                        .iter()
                        .filter(|(n, _)| wanted(n))
                        .map(|(n, default)| match topic.configs.get(*n) {
                            Some(set) => config_entry(v, n, set, SOURCE_DYNAMIC_TOPIC, false),
                            None => config_entry(v, n, default, SOURCE_DEFAULT, false),
                        })
                        .collect()),
                },
                (None, RESOURCE_BROKER) => {
                    let name = res.resource_name.as_str();
                    if !name.is_empty() && name.parse::<i32>().ok() != Some(ctx.node) {
                        Err((
                            ErrorCode::INVALID_REQUEST.0,
                            format!("broker {} was asked about broker {name}", ctx.node),
                        ))
                    } else {
                        Ok(BROKER_CONFIGS
                            .iter()
                            .filter(|(n, _)| wanted(n))
                            .map(|(n, value)| config_entry(v, n, value, SOURCE_STATIC_BROKER, true))
                            .collect())
                    }
                }
                (None, other) => Err((
                    ErrorCode::INVALID_REQUEST.0,
                    format!("resource type {other} is not served by the fake"),
                )),
            };
        match result {
            Ok(configs) => rr.configs = configs,
            Err((code, message)) => {
                rr.error_code = ErrorCode(code);
                rr.error_message = Some(if message.is_empty() {
                    StrBytes::from_static(ErrorCode(code).name().unwrap_or("error"))
                } else {
                    s_owned(&message)
                });
            }
        }
        r.results.push(rr);
    }
    r
}

pub(crate) fn incremental_alter_configs(
    ctx: &Context<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut s = ctx.shared.lock();
    let mut r = IncrementalAlterConfigsResponse::default();
    for res in req.resources {
        let mut rr = IncrementalAlterConfigsResponseResponse::default();
        rr.resource_type = res.resource_type;
        rr.resource_name = res.resource_name.clone();
        let result = match (ctx.injected, res.resource_type) {
            (Some(e), _) => Err((e, String::new())),
            (None, RESOURCE_TOPIC) => match s.topics.get_mut(res.resource_name.as_str()) {
                None => Err((
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                    format!("no topic {}", res.resource_name.as_str()),
                )),
                Some(topic) => {
                    let mut next = topic.configs.clone();
                    let applied = res.configs.iter().try_for_each(|c| alter_one(&mut next, c));
                    applied.map(|()| {
                        if !req.validate_only {
                            topic.configs = next;
                        }
                    })
                }
            },
            (None, RESOURCE_BROKER) => Err((
                ErrorCode::INVALID_REQUEST.0,
                "the fake's broker configs are read-only".to_string(),
            )),
            (None, RESOURCE_GROUP) => {
                let group = res.resource_name.to_string();
                let mut next = s.group_configs.get(&group).cloned().unwrap_or_default();
                let applied = res
                    .configs
                    .iter()
                    .try_for_each(|c| alter_group_config(&mut next, c));
                applied.map(|()| {
                    if !req.validate_only {
                        s.group_configs.insert(group, next);
                    }
                })
            }
            (None, other) => Err((
                ErrorCode::INVALID_REQUEST.0,
                format!("resource type {other} is not served by the fake"),
            )),
        };
        if let Err((code, message)) = result {
            rr.error_code = ErrorCode(code);
            rr.error_message = Some(if message.is_empty() {
                StrBytes::from_static(ErrorCode(code).name().unwrap_or("error"))
            } else {
                s_owned(&message)
            });
        }
        r.responses.push(rr);
    }
    r
}

/// Applies one IncrementalAlterConfigs operation (SET or DELETE) to a
/// group's configs (the share-group configs the fake knows).
fn alter_group_config(
    configs: &mut BTreeMap<String, String>,
    c: &IncrementalAlterConfigsRequestConfig,
) -> Result<(), (i16, String)> {
    let name = c.name.as_str();
    let invalid = |why: String| (ErrorCode::INVALID_CONFIG.0, why);
    if !crate::share_group::GROUP_CONFIG_DEFAULTS
        .iter()
        .any(|(n, _)| *n == name)
    {
        return Err(invalid(format!("unknown group config {name}")));
    }
    match (c.config_operation, c.value.as_ref().map(|v| v.as_str())) {
        (OP_SET, Some(v)) => {
            let ok = match name {
                "share.auto.offset.reset" => v == "earliest" || v == "latest",
                "share.isolation.level" => v == "read_uncommitted" || v == "read_committed",
                _ => v.parse::<u32>().is_ok_and(|n| n > 0),
            };
            if !ok {
                return Err(invalid(format!("{name}: bad value {v:?}")));
            }
            configs.insert(name.to_string(), v.to_string());
            Ok(())
        }
        (OP_SET, None) => Err(invalid(format!("SET {name} without a value"))),
        (OP_DELETE, _) => {
            configs.remove(name);
            Ok(())
        }
        (op, _) => Err(invalid(format!("operation {op} on group config {name}"))),
    }
}

/// Applies one IncrementalAlterConfigs operation to a topic's configs.
fn alter_one(
    configs: &mut BTreeMap<String, String>,
    c: &IncrementalAlterConfigsRequestConfig,
) -> Result<(), (i16, String)> {
    let name = c.name.as_str();
    let invalid = |why: String| (ErrorCode::INVALID_CONFIG.0, why);
    let Some(default) = TOPIC_CONFIG_DEFAULTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
    else {
        return Err(invalid(format!("unknown topic config {name}")));
    };
    let value = c.value.as_ref().map(|v| v.as_str());
    match c.config_operation {
        OP_SET => {
            let value = value.ok_or_else(|| invalid(format!("SET {name} without a value")))?;
            configs.insert(name.to_string(), value.to_string());
        }
        OP_DELETE => {
            configs.remove(name);
        }
        OP_APPEND | OP_SUBTRACT => {
            // Lists are comma separated (cleanup.policy is the one list here).
            if name != "cleanup.policy" {
                return Err(invalid(format!("{name} is not a list")));
            }
            let value = value.ok_or_else(|| invalid(format!("{name}: no value")))?;
            let current = configs.get(name).map(String::as_str).unwrap_or(default);
            let mut items: Vec<&str> = current.split(',').filter(|i| !i.is_empty()).collect();
            if c.config_operation == OP_APPEND {
                if !items.contains(&value) {
                    items.push(value);
                }
            } else {
                items.retain(|i| *i != value);
            }
            configs.insert(name.to_string(), items.join(","));
        }
        other => {
            return Err((
                ErrorCode::INVALID_REQUEST.0,
                format!("unknown config operation {other}"),
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str, operation: i8, value: Option<&str>) -> IncrementalAlterConfigsRequestConfig {
        let mut c = IncrementalAlterConfigsRequestConfig::default();
        c.name = s_owned(name);
        c.config_operation = operation;
        c.value = value.map(s_owned);
        c
    }

    #[test]
    fn alter_set_delete_append_subtract() {
        let mut configs = BTreeMap::new();
        alter_one(&mut configs, &op("retention.ms", OP_SET, Some("5"))).unwrap();
        assert_eq!(configs["retention.ms"], "5");
        alter_one(&mut configs, &op("retention.ms", OP_DELETE, None)).unwrap();
        assert!(configs.is_empty());
        alter_one(
            &mut configs,
            &op("cleanup.policy", OP_APPEND, Some("compact")),
        )
        .unwrap();
        assert_eq!(configs["cleanup.policy"], "delete,compact");
        alter_one(
            &mut configs,
            &op("cleanup.policy", OP_SUBTRACT, Some("delete")),
        )
        .unwrap();
        assert_eq!(configs["cleanup.policy"], "compact");
        let e = alter_one(&mut configs, &op("no.such", OP_SET, Some("1"))).unwrap_err();
        assert_eq!(e.0, ErrorCode::INVALID_CONFIG.0);
        let e = alter_one(&mut configs, &op("retention.ms", OP_APPEND, Some("1"))).unwrap_err();
        assert_eq!(e.0, ErrorCode::INVALID_CONFIG.0);
        let e = alter_one(&mut configs, &op("retention.ms", 9, Some("1"))).unwrap_err();
        assert_eq!(e.0, ErrorCode::INVALID_REQUEST.0);
    }

    #[test]
    fn new_topic_configs_are_checked() {
        let ok = check_new_topic_configs([("retention.ms", Some("1"))]).unwrap();
        assert_eq!(ok["retention.ms"], "1");
        assert_eq!(
            check_new_topic_configs([("bogus", Some("1"))])
                .unwrap_err()
                .0,
            ErrorCode::INVALID_CONFIG
        );
        assert_eq!(
            check_new_topic_configs([("retention.ms", None)])
                .unwrap_err()
                .0,
            ErrorCode::INVALID_CONFIG
        );
    }
}
