//! Describing and incrementally altering configs of topics and brokers.

use super::{check, Admin};
use crate::broker::Broker;
use crate::error::{Error, Result};
use kpax_proto::generated::describe_configs::DescribeConfigsRequestResource;
use kpax_proto::generated::incremental_alter_configs::{
    IncrementalAlterConfigsRequestConfig, IncrementalAlterConfigsRequestResource,
};
use kpax_proto::generated::{ApiKey, DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use std::collections::BTreeMap;
use std::fmt;

/// Something that has configs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResource {
    /// A topic, by name.
    Topic(String),
    /// A broker, by node id.
    Broker(i32),
    /// A consumer or share group, by id (KIP-848, KIP-932: e.g.
    /// `share.auto.offset.reset`, `share.record.lock.duration.ms`).
    Group(String),
}

impl ConfigResource {
    fn kind(&self) -> i8 {
        match self {
            ConfigResource::Topic(_) => 2,
            ConfigResource::Broker(_) => 4,
            ConfigResource::Group(_) => 32,
        }
    }

    fn name(&self) -> String {
        match self {
            ConfigResource::Topic(t) => t.clone(),
            ConfigResource::Broker(id) => id.to_string(),
            ConfigResource::Group(g) => g.clone(),
        }
    }

    /// The broker that must be asked (its own configs), if any.
    fn broker(&self) -> Option<i32> {
        match self {
            ConfigResource::Topic(_) | ConfigResource::Group(_) => None,
            ConfigResource::Broker(id) => Some(*id),
        }
    }
}

impl fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigResource::Topic(t) => write!(f, "topic {t}"),
            ConfigResource::Broker(id) => write!(f, "broker {id}"),
            ConfigResource::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// Where a config value comes from (DescribeConfigs v1+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigSource {
    /// Not said (v0), or a source kpax does not know.
    Unknown,
    /// Set on the topic.
    Topic,
    /// Set dynamically on this broker.
    DynamicBroker,
    /// Set dynamically as the default of every broker.
    DynamicDefaultBroker,
    /// Set in the broker's configuration file.
    StaticBroker,
    /// Kafka's default.
    Default,
    /// Set dynamically on a broker logger.
    DynamicBrokerLogger,
}

impl ConfigSource {
    fn from_i8(v: i8) -> ConfigSource {
        match v {
            1 => ConfigSource::Topic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            _ => ConfigSource::Unknown,
        }
    }
}

/// One config of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigEntry {
    /// The config name.
    pub name: String,
    /// Its value; `None` when sensitive or unset.
    pub value: Option<String>,
    /// Whether it cannot be changed.
    pub read_only: bool,
    /// Whether it is the default (v0's flag, or a [`ConfigSource::Default`]
    /// source).
    pub is_default: bool,
    /// Whether it is sensitive (its value is then hidden).
    pub is_sensitive: bool,
    /// Where the value comes from.
    pub source: ConfigSource,
}

/// One change for [`Admin::incremental_alter_configs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfig {
    /// Set `name` to `value`.
    Set {
        /// The config name.
        name: String,
        /// The new value.
        value: String,
    },
    /// Remove `name`, so that it falls back to its default.
    Delete {
        /// The config name.
        name: String,
    },
    /// Add `value` to the list config `name`.
    Append {
        /// The config name.
        name: String,
        /// The item to add.
        value: String,
    },
    /// Remove `value` from the list config `name`.
    Subtract {
        /// The config name.
        name: String,
        /// The item to remove.
        value: String,
    },
}

impl AlterConfig {
    /// Set `name` to `value`.
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> AlterConfig {
        AlterConfig::Set {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Remove `name` (back to its default).
    pub fn delete(name: impl Into<String>) -> AlterConfig {
        AlterConfig::Delete { name: name.into() }
    }

    fn request(&self) -> IncrementalAlterConfigsRequestConfig {
        let (name, op, value) = match self {
            AlterConfig::Set { name, value } => (name, 0, Some(value)),
            AlterConfig::Delete { name } => (name, 1, None),
            AlterConfig::Append { name, value } => (name, 2, Some(value)),
            AlterConfig::Subtract { name, value } => (name, 3, Some(value)),
        };
        IncrementalAlterConfigsRequestConfig::default()
            .with_name(name.as_str().into())
            .with_config_operation(op)
            .with_value(value.map(|v| v.as_str().into()))
    }
}

impl Admin {
    /// Every config of each of `resources` (a broker's own configs are
    /// asked of that broker, topics of any broker).
    ///
    /// Returns one result per resource, in the order given: its configs
    /// sorted by name, or [`Error::Broker`] with the resource's error code
    /// (UNKNOWN_TOPIC_OR_PARTITION, ...), or the error of the broker it had
    /// to be asked of.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] when the broker does not serve
    /// DescribeConfigs; connection errors when no broker answers for the
    /// topic resources.
    pub async fn describe_configs(
        &self,
        resources: &[ConfigResource],
    ) -> Result<Vec<(ConfigResource, Result<Vec<ConfigEntry>>)>> {
        let answered = self
            .per_config_broker(
                resources,
                |rs: &[ConfigResource], _v: i16| {
                    DescribeConfigsRequest::default().with_resources(
                        rs.iter()
                            .map(|r| {
                                DescribeConfigsRequestResource::default()
                                    .with_resource_type(r.kind())
                                    .with_resource_name(r.name().into())
                                    .with_configuration_keys(None)
                            })
                            .collect(),
                    )
                },
                |broker: &Broker, resp: kpax_proto::generated::DescribeConfigsResponse| {
                    resp.results
                        .iter()
                        .map(|r| {
                            let key = (r.resource_type, r.resource_name.to_string());
                            let res = check(
                                broker,
                                ApiKey::DescribeConfigs,
                                r.error_code,
                                r.error_message.as_ref(),
                            )
                            .map(|()| {
                                let mut entries: Vec<ConfigEntry> = r
                                    .configs
                                    .iter()
                                    .map(|c| {
                                        let source = ConfigSource::from_i8(c.config_source);
                                        ConfigEntry {
                                            name: c.name.to_string(),
                                            value: c.value.as_ref().map(|v| v.to_string()),
                                            read_only: c.read_only,
                                            is_default: c.is_default
                                                || source == ConfigSource::Default,
                                            is_sensitive: c.is_sensitive,
                                            source,
                                        }
                                    })
                                    .collect();
                                entries.sort_by(|a, b| a.name.cmp(&b.name));
                                entries
                            });
                            (key, res)
                        })
                        .collect()
                },
            )
            .await?;
        Ok(answered)
    }

    /// Applies `changes` to each resource (or, with `validate_only`, checks
    /// that they could be applied); resources not named keep their
    /// configs, and names not changed keep their values.
    ///
    /// Returns one result per resource, in the order given: `Ok(())`, or
    /// [`Error::Broker`] with INVALID_CONFIG, UNKNOWN_TOPIC_OR_PARTITION,
    /// POLICY_VIOLATION, ... and the broker's message.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] when the broker does not serve
    /// IncrementalAlterConfigs; connection errors when no broker answers
    /// for the topic resources.
    pub async fn incremental_alter_configs(
        &self,
        changes: &[(ConfigResource, Vec<AlterConfig>)],
        validate_only: bool,
    ) -> Result<Vec<(ConfigResource, Result<()>)>> {
        let resources: Vec<ConfigResource> = changes.iter().map(|(r, _)| r.clone()).collect();
        let ops: BTreeMap<ConfigResource, &Vec<AlterConfig>> =
            changes.iter().map(|(r, c)| (r.clone(), c)).collect();
        let ops = &ops;
        self.per_config_broker(
            &resources,
            |rs: &[ConfigResource], _v: i16| {
                IncrementalAlterConfigsRequest::default()
                    .with_validate_only(validate_only)
                    .with_resources(
                        rs.iter()
                            .map(|r| {
                                IncrementalAlterConfigsRequestResource::default()
                                    .with_resource_type(r.kind())
                                    .with_resource_name(r.name().into())
                                    .with_configs(
                                        ops.get(r)
                                            .map(|cs| cs.iter().map(AlterConfig::request).collect())
                                            .unwrap_or_default(),
                                    )
                            })
                            .collect(),
                    )
            },
            |broker: &Broker, resp: kpax_proto::generated::IncrementalAlterConfigsResponse| {
                resp.responses
                    .iter()
                    .map(|r| {
                        (
                            (r.resource_type, r.resource_name.to_string()),
                            check(
                                broker,
                                ApiKey::IncrementalAlterConfigs,
                                r.error_code,
                                r.error_message.as_ref(),
                            ),
                        )
                    })
                    .collect()
            },
        )
        .await
    }

    /// Sends one request for the topic resources to any broker and one per
    /// broker resource to that broker; collects per-resource results in
    /// the order given.
    async fn per_config_broker<R, B, P, T>(
        &self,
        resources: &[ConfigResource],
        build: B,
        parse: P,
    ) -> Result<Vec<(ConfigResource, Result<T>)>>
    where
        R: kpax_proto::message::Request + Sync,
        B: Fn(&[ConfigResource], i16) -> R,
        P: Fn(&Broker, R::Response) -> Vec<((i8, String), Result<T>)>,
    {
        let mut answered: BTreeMap<(i8, String), Result<T>> = BTreeMap::new();
        let mut failed: BTreeMap<ConfigResource, Error> = BTreeMap::new();
        // Topic resources: one request to any broker. Broker resources: to
        // that broker (its dynamic and static configs live there).
        let mut batches: BTreeMap<Option<i32>, Vec<ConfigResource>> = BTreeMap::new();
        for r in resources {
            batches.entry(r.broker()).or_default().push(r.clone());
        }
        let owned: Vec<(Option<i32>, Vec<ConfigResource>)> = batches.into_iter().collect();
        for (target, rs) in &owned {
            let rs: &[ConfigResource] = rs;
            let build = |v: i16| build(rs, v);
            let sent = match target {
                None => self.send_first(self.brokers_from(None).await?, build).await,
                Some(id) => {
                    let brokers = self.brokers_from(Some(*id)).await?;
                    match brokers.into_iter().find(|b| b.node_id() == Some(*id)) {
                        Some(b) => self.send_first(vec![b], build).await,
                        None => Err(Error::Config(format!("broker {id} is not in the metadata"))),
                    }
                }
            };
            match sent {
                Ok((broker, resp)) => answered.extend(parse(&broker, resp)),
                Err(e @ Error::UnsupportedVersion { .. }) => return Err(e),
                Err(e) if target.is_none() => return Err(e),
                Err(e) => {
                    for r in rs {
                        failed.insert(r.clone(), e.clone());
                    }
                }
            }
        }
        Ok(resources
            .iter()
            .map(|r| {
                let res = match failed.get(r) {
                    Some(e) => Err(e.clone()),
                    None => answered.remove(&(r.kind(), r.name())).unwrap_or_else(|| {
                        Err(Error::Protocol {
                            broker: "config request".into(),
                            reason: format!("the answer has no result for {r}"),
                        })
                    }),
                };
                (r.clone(), res)
            })
            .collect())
    }
}
