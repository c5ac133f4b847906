//! The cluster as a whole: its brokers, controller and id, and its topics.

use super::{check, Admin, NamedResults};
use crate::cluster::TopicMeta;
use crate::error::{Error, Result};
use kpax_proto::generated::{ApiKey, DescribeClusterRequest, MetadataRequest};

/// A broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerDescription {
    /// Its node id.
    pub node_id: i32,
    /// Its host.
    pub host: String,
    /// Its port.
    pub port: i32,
    /// Its rack, if it has one.
    pub rack: Option<String>,
}

/// The cluster as DescribeCluster (or Metadata) describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterDescription {
    /// The cluster id, when the broker says it.
    pub cluster_id: Option<String>,
    /// The controller's node id (in KRaft, a broker that forwards to it),
    /// when known.
    pub controller_id: Option<i32>,
    /// The brokers, by node id.
    pub brokers: Vec<BrokerDescription>,
}

impl Admin {
    /// The cluster's id, controller and brokers: DescribeCluster where a
    /// broker serves it, else Metadata.
    ///
    /// # Errors
    /// [`Error::Broker`] with DescribeCluster's error code; connection
    /// errors when no broker answers.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let brokers = self.brokers_from(None).await?;
        let sent = self
            .send_first(brokers, |v: i16| {
                let req = DescribeClusterRequest::default();
                // endpoint type 1: brokers (v1+)
                if v >= 1 {
                    req.with_endpoint_type(1)
                } else {
                    req
                }
            })
            .await;
        match sent {
            Ok((b, resp)) => {
                check(
                    &b,
                    ApiKey::DescribeCluster,
                    resp.error_code,
                    resp.error_message.as_ref(),
                )?;
                let mut brokers: Vec<BrokerDescription> = resp
                    .brokers
                    .iter()
                    .map(|x| BrokerDescription {
                        node_id: x.broker_id,
                        host: x.host.to_string(),
                        port: x.port,
                        rack: x.rack.as_ref().map(|r| r.to_string()),
                    })
                    .collect();
                brokers.sort_by_key(|x| x.node_id);
                Ok(ClusterDescription {
                    cluster_id: Some(resp.cluster_id.to_string()).filter(|c| !c.is_empty()),
                    controller_id: (resp.controller_id >= 0).then_some(resp.controller_id),
                    brokers,
                })
            }
            Err(Error::UnsupportedVersion { .. }) => {
                let (_, resp) = self
                    .send_first(self.brokers_from(None).await?, no_topics)
                    .await?;
                let mut brokers: Vec<BrokerDescription> = resp
                    .brokers
                    .iter()
                    .map(|x| BrokerDescription {
                        node_id: x.node_id,
                        host: x.host.to_string(),
                        port: x.port,
                        rack: x.rack.as_ref().map(|r| r.to_string()),
                    })
                    .collect();
                brokers.sort_by_key(|x| x.node_id);
                Ok(ClusterDescription {
                    cluster_id: resp.cluster_id.as_ref().map(|c| c.to_string()),
                    controller_id: (resp.controller_id >= 0).then_some(resp.controller_id),
                    brokers,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Every topic of the cluster (Metadata for all topics), sorted by
    /// name, internal topics included (see [`TopicMeta::is_internal`]).
    ///
    /// Returns one result per topic: its [`TopicMeta`] (partitions,
    /// leaders, replicas, ISR), or [`Error::Broker`] with the topic's error
    /// code (e.g. LEADER_NOT_AVAILABLE while it is being created).
    ///
    /// # Errors
    /// Connection errors when no broker answers.
    pub async fn list_topics(&self) -> Result<NamedResults<TopicMeta>> {
        let (b, resp) = self
            .send_first(self.brokers_from(None).await?, all_topics)
            .await?;
        let mut out: NamedResults<TopicMeta> = resp
            .topics
            .iter()
            .filter_map(|t| {
                let meta = TopicMeta::from_response(t);
                let name = meta.name.clone()?;
                let r = if meta.error.is_ok() {
                    Ok(meta)
                } else {
                    Err(Error::Broker {
                        broker: b.addr().to_string(),
                        api: ApiKey::Metadata,
                        code: t.error_code,
                        message: Some(format!("topic {name}")),
                    })
                };
                Some((name, r))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// A Metadata request for no topic (brokers and controller only); v0 has
/// no such request, and gets every topic.
fn no_topics(v: i16) -> MetadataRequest {
    let req = MetadataRequest::default().with_topics(Some(Vec::new()));
    if v >= 4 {
        req.with_allow_auto_topic_creation(false)
    } else {
        req
    }
}

/// A Metadata request for every topic (null, or empty at v0).
fn all_topics(v: i16) -> MetadataRequest {
    let req = MetadataRequest::default().with_topics(if v == 0 { Some(Vec::new()) } else { None });
    if v >= 4 {
        req.with_allow_auto_topic_creation(false)
    } else {
        req
    }
}
