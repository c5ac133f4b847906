//! Creating and deleting topics, adding partitions.

use super::{check, in_order, Admin, NamedResults};
use crate::error::Result;
use kpax_proto::generated::create_partitions::CreatePartitionsRequestTopic;
use kpax_proto::generated::create_topics::{
    CreateTopicsRequestAssignment, CreateTopicsRequestConfig, CreateTopicsRequestTopic,
};
use kpax_proto::generated::delete_topics::DeleteTopicsRequestTopic;
use kpax_proto::generated::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
};
use kpax_proto::wire::Uuid;
use std::collections::BTreeMap;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The topic name.
    pub name: String,
    /// How many partitions; -1 for the broker's default (CreateTopics v4+).
    pub partitions: i32,
    /// How many replicas of each partition; -1 for the broker's default
    /// (CreateTopics v4+).
    pub replication_factor: i16,
    /// Topic configs (`cleanup.policy`, `retention.ms`, ...).
    pub configs: Vec<(String, String)>,
    /// Explicit replica assignment: partition id -> broker ids. When given,
    /// `partitions` and `replication_factor` are sent as -1.
    pub assignments: BTreeMap<i32, Vec<i32>>,
}

impl NewTopic {
    /// A topic `name` with `partitions` partitions of `replication_factor`
    /// replicas each (-1 for the broker's defaults).
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor,
            configs: Vec::new(),
            assignments: BTreeMap::new(),
        }
    }

    /// Adds the topic config `name` = `value`.
    pub fn with_config(mut self, name: impl Into<String>, value: impl Into<String>) -> NewTopic {
        self.configs.push((name.into(), value.into()));
        self
    }

    /// Places partition `partition` on `brokers` (the first is the
    /// preferred leader).
    pub fn with_assignment(mut self, partition: i32, brokers: Vec<i32>) -> NewTopic {
        self.assignments.insert(partition, brokers);
        self
    }
}

/// What the broker says about a topic it created (or would create, when
/// validating only).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreatedTopic {
    /// The topic id (CreateTopics v7+).
    pub topic_id: Option<Uuid>,
    /// The number of partitions (v5+).
    pub partitions: Option<i32>,
    /// The replication factor (v5+).
    pub replication_factor: Option<i16>,
}

impl Admin {
    /// Creates `topics` (or, with `validate_only`, checks that they could
    /// be created), through the controller.
    ///
    /// Returns one result per topic, in the order given: the topic's
    /// [`CreatedTopic`], or [`Error::Broker`](crate::Error::Broker) with
    /// its error code (TOPIC_ALREADY_EXISTS, INVALID_REPLICATION_FACTOR,
    /// INVALID_CONFIG, POLICY_VIOLATION, ...) and the broker's message.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion) when
    /// the broker does not serve CreateTopics;
    /// [`Error::Encode`](crate::Error::Encode) for validate-only against a
    /// broker that only serves v0; connection errors when no broker
    /// answers.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<NamedResults<CreatedTopic>> {
        let timeout_ms = self.timeout_ms();
        let build = |_v: i16| {
            CreateTopicsRequest::default()
                .with_timeout_ms(timeout_ms)
                .with_validate_only(validate_only)
                .with_topics(topics.iter().map(topic_request).collect())
        };
        let (broker, resp) = self
            .send_controller(build, |r: &CreateTopicsResponse| {
                r.topics.iter().map(|t| t.error_code).collect()
            })
            .await?;
        let answered = resp
            .topics
            .iter()
            .map(|t| {
                let r = check(
                    &broker,
                    ApiKey::CreateTopics,
                    t.error_code,
                    t.error_message.as_ref(),
                )
                .map(|()| CreatedTopic {
                    topic_id: (t.topic_id != Uuid::default()).then_some(t.topic_id),
                    partitions: (t.num_partitions > 0).then_some(t.num_partitions),
                    replication_factor: (t.replication_factor > 0).then_some(t.replication_factor),
                });
                (t.name.to_string(), r)
            })
            .collect();
        let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
        Ok(in_order(&broker, &names, answered))
    }

    /// Deletes `topics` by name, through the controller.
    ///
    /// Returns one result per topic, in the order given:
    /// [`Error::Broker`](crate::Error::Broker) with
    /// UNKNOWN_TOPIC_OR_PARTITION for a topic that does not exist, or the
    /// broker's other error codes.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion) when
    /// the broker does not serve DeleteTopics; connection errors when no
    /// broker answers.
    pub async fn delete_topics(&self, topics: &[&str]) -> Result<NamedResults<()>> {
        let timeout_ms = self.timeout_ms();
        let build = |v: i16| {
            let mut req = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
            if v >= 6 {
                req.topics = topics
                    .iter()
                    .map(|t| DeleteTopicsRequestTopic::default().with_name(Some((*t).into())))
                    .collect();
            } else {
                req.topic_names = topics.iter().map(|t| (*t).into()).collect();
            }
            req
        };
        let (broker, resp) = self
            .send_controller(build, |r: &DeleteTopicsResponse| {
                r.responses.iter().map(|t| t.error_code).collect()
            })
            .await?;
        let answered = resp
            .responses
            .iter()
            .filter_map(|t| {
                let name = t.name.as_ref()?.to_string();
                Some((
                    name,
                    check(
                        &broker,
                        ApiKey::DeleteTopics,
                        t.error_code,
                        t.error_message.as_ref(),
                    ),
                ))
            })
            .collect();
        let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        Ok(in_order(&broker, &names, answered))
    }

    /// Raises the partition count of each topic to the given total (or,
    /// with `validate_only`, checks that it could), through the controller.
    ///
    /// Returns one result per topic, in the order given:
    /// [`Error::Broker`](crate::Error::Broker) with INVALID_PARTITIONS
    /// (e.g. a count not above the current one), UNKNOWN_TOPIC_OR_PARTITION,
    /// ...
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion) when
    /// the broker does not serve CreatePartitions; connection errors when
    /// no broker answers.
    pub async fn create_partitions(
        &self,
        topics: &[(&str, i32)],
        validate_only: bool,
    ) -> Result<NamedResults<()>> {
        let timeout_ms = self.timeout_ms();
        let build = |_v: i16| {
            CreatePartitionsRequest::default()
                .with_timeout_ms(timeout_ms)
                .with_validate_only(validate_only)
                .with_topics(
                    topics
                        .iter()
                        .map(|(t, n)| {
                            CreatePartitionsRequestTopic::default()
                                .with_name((*t).into())
                                .with_count(*n)
                        })
                        .collect(),
                )
        };
        let (broker, resp) = self
            .send_controller(build, |r: &CreatePartitionsResponse| {
                r.results.iter().map(|t| t.error_code).collect()
            })
            .await?;
        let answered = resp
            .results
            .iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    check(
                        &broker,
                        ApiKey::CreatePartitions,
                        t.error_code,
                        t.error_message.as_ref(),
                    ),
                )
            })
            .collect();
        let names: Vec<String> = topics.iter().map(|(t, _)| t.to_string()).collect();
        Ok(in_order(&broker, &names, answered))
    }
}

fn topic_request(t: &NewTopic) -> CreateTopicsRequestTopic {
    let explicit = !t.assignments.is_empty();
    CreateTopicsRequestTopic::default()
        .with_name(t.name.as_str().into())
        .with_num_partitions(if explicit { -1 } else { t.partitions })
        .with_replication_factor(if explicit { -1 } else { t.replication_factor })
        .with_assignments(
            t.assignments
                .iter()
                .map(|(p, brokers)| {
                    CreateTopicsRequestAssignment::default()
                        .with_partition_index(*p)
                        .with_broker_ids(brokers.clone())
                })
                .collect(),
        )
        .with_configs(
            t.configs
                .iter()
                .map(|(k, v)| {
                    CreateTopicsRequestConfig::default()
                        .with_name(k.as_str().into())
                        .with_value(Some(v.as_str().into()))
                })
                .collect(),
        )
}
