//! Consumer groups: list, describe, delete, committed offsets and lag.

use super::{check, Admin, GroupId, NamedResults, OffsetSpec, PartitionResults, TopicPartition};
use crate::broker::{client_range, Broker, SendOptions};
use crate::error::{Error, Result};
use bytes::Bytes;
use kpax_proto::generated::offset_fetch::{
    OffsetFetchRequestGroup, OffsetFetchRequestGroupTopic, OffsetFetchRequestTopic,
};
use kpax_proto::generated::ErrorCode;
use kpax_proto::generated::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest, OffsetFetchRequest,
    ShareGroupDescribeRequest,
};
use std::collections::BTreeMap;
use tokio::task::JoinSet;

/// A group as ListGroups names it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// The protocol type (`consumer` for consumer groups; empty for groups
    /// that only commit offsets).
    pub protocol_type: String,
    /// The group's state (ListGroups v4+).
    pub state: Option<String>,
    /// The group's type (ListGroups v5+, Kafka 3.8+): `classic`,
    /// `consumer`, `share` or `streams`.
    pub group_type: Option<String>,
    /// The node id of the coordinator that listed it.
    pub coordinator: Option<i32>,
}

/// What [`Admin::list_groups`] found: the groups of every broker that
/// answered, and the error of each broker that did not.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Groups {
    /// The groups, sorted by id.
    pub groups: Vec<GroupListing>,
    /// Brokers that failed, by address, with their error; their groups are
    /// missing from `groups`.
    pub errors: Vec<(String, Error)>,
}

/// A group as DescribeGroups describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Its state: `Empty`, `Stable`, `PreparingRebalance`,
    /// `CompletingRebalance`, or `Dead` (also for a group that does not
    /// exist).
    pub state: String,
    /// The protocol type (`consumer` for consumer groups).
    pub protocol_type: String,
    /// The assignment protocol chosen (`range`, `cooperative-sticky`, ...).
    pub protocol: String,
    /// The members.
    pub members: Vec<GroupMember>,
    /// The coordinator's node id.
    pub coordinator: Option<i32>,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupMember {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its static instance id (v4+), if any.
    pub group_instance_id: Option<String>,
    /// The client id of its client.
    pub client_id: String,
    /// The host it connected from.
    pub client_host: String,
    /// The partitions assigned to it, for a `consumer` group whose
    /// assignment decodes; empty otherwise.
    pub assignment: Vec<TopicPartition>,
    /// The raw member assignment bytes.
    pub raw_assignment: Bytes,
}

/// A share group (KIP-932) as ShareGroupDescribe describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShareGroupDescription {
    /// The group id.
    pub group_id: String,
    /// Its state: `Empty`, `Stable`, `Dead`, ...
    pub state: String,
    /// The group epoch.
    pub group_epoch: i32,
    /// The assignment epoch.
    pub assignment_epoch: i32,
    /// The server-side assignor.
    pub assignor: String,
    /// The members.
    pub members: Vec<ShareGroupMember>,
    /// The coordinator's node id.
    pub coordinator: Option<i32>,
}

/// A member of a share group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShareGroupMember {
    /// The member id (made by the client).
    pub member_id: String,
    /// The member epoch.
    pub member_epoch: i32,
    /// Its rack, if it said.
    pub rack_id: Option<String>,
    /// The client id of its client.
    pub client_id: String,
    /// The host it connected from.
    pub client_host: String,
    /// The topics it subscribed to.
    pub subscribed_topics: Vec<String>,
    /// The partitions assigned to it (shared with the other members).
    pub assignment: Vec<TopicPartition>,
}

/// A group's committed offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommittedOffset {
    /// The offset; `None` when nothing is committed.
    pub offset: Option<i64>,
    /// The leader epoch committed with it (v5+), when known.
    pub leader_epoch: Option<i32>,
    /// The metadata string committed with it.
    pub metadata: Option<String>,
}

/// How far a group is behind on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionLag {
    /// The committed offset; `None` when nothing is committed.
    pub committed: Option<i64>,
    /// The partition's end offset (high watermark).
    pub end_offset: i64,
    /// `end_offset - committed` (never below 0); `None` when nothing is
    /// committed.
    pub lag: Option<i64>,
}

impl Admin {
    /// Every group of the cluster: ListGroups asked of every broker.
    ///
    /// Returns the groups of the brokers that answered, with the error of
    /// each broker that did not (or that answered with an error code, as
    /// [`Error::Broker`]) in [`Groups::errors`].
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] when a broker does not serve
    /// ListGroups; the first broker's error when none answers; metadata
    /// errors.
    pub async fn list_groups(&self) -> Result<Groups> {
        self.cluster.refresh(Some(&[])).await?;
        let brokers = self.brokers_from(None).await?;
        let mut set = JoinSet::new();
        for b in brokers {
            set.spawn(async move {
                let r = async {
                    let resp = b.send(&ListGroupsRequest::default()).await?;
                    check(&b, ApiKey::ListGroups, resp.error_code, None)?;
                    Ok::<_, Error>(resp)
                }
                .await;
                (b, r)
            });
        }
        let mut groups = Vec::new();
        let mut errors = Vec::new();
        let mut answered = 0;
        while let Some(joined) = set.join_next().await {
            let (b, r) = joined.map_err(|e| Error::Config(format!("admin task failed: {e}")))?;
            match r {
                Ok(resp) => {
                    answered += 1;
                    for g in resp.groups {
                        groups.push(GroupListing {
                            group_id: g.group_id.to_string(),
                            protocol_type: g.protocol_type.to_string(),
                            state: (!g.group_state.is_empty()).then(|| g.group_state.to_string()),
                            group_type: (!g.group_type.is_empty())
                                .then(|| g.group_type.to_string()),
                            coordinator: b.node_id(),
                        });
                    }
                }
                Err(e @ Error::UnsupportedVersion { .. }) => return Err(e),
                Err(e) => errors.push((b.addr().to_string(), e)),
            }
        }
        if answered == 0 && !errors.is_empty() {
            return Err(errors.swap_remove(0).1);
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        errors.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Groups { groups, errors })
    }

    /// Describes `groups`, each asked of its coordinator.
    ///
    /// Returns one result per group, in the order given: its
    /// [`GroupDescription`] (state `Dead` for a group that does not exist),
    /// or [`Error::Broker`] with the group's error code
    /// (GROUP_AUTHORIZATION_FAILED, ...) or FindCoordinator's, or the error
    /// of its coordinator's request.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] when a coordinator does not serve
    /// DescribeGroups.
    pub async fn describe_groups(&self, groups: &[&str]) -> Result<NamedResults<GroupDescription>> {
        let items: Vec<(GroupId, ())> = groups
            .iter()
            .map(|g| (GroupId(g.to_string()), ()))
            .collect();
        let mut done = self
            .fan_out(
                items,
                |broker: Broker, items: Vec<(GroupId, ())>| async move {
                    let req = DescribeGroupsRequest::default()
                        .with_groups(items.iter().map(|(g, _)| g.0.as_str().into()).collect());
                    let resp = broker.send(&req).await?;
                    Ok(resp
                        .groups
                        .iter()
                        .map(|g| {
                            let r = check(&broker, ApiKey::DescribeGroups, g.error_code, None).map(
                                |()| GroupDescription {
                                    group_id: g.group_id.to_string(),
                                    state: g.group_state.to_string(),
                                    protocol_type: g.protocol_type.to_string(),
                                    protocol: g.protocol_data.to_string(),
                                    coordinator: broker.node_id(),
                                    members: g
                                        .members
                                        .iter()
                                        .map(|m| GroupMember {
                                            member_id: m.member_id.to_string(),
                                            group_instance_id: m
                                                .group_instance_id
                                                .as_ref()
                                                .map(|i| i.to_string()),
                                            client_id: m.client_id.to_string(),
                                            client_host: m.client_host.to_string(),
                                            assignment: if g.protocol_type == "consumer" {
                                                consumer_assignment(m.member_assignment.clone())
                                                    .unwrap_or_default()
                                            } else {
                                                Vec::new()
                                            },
                                            raw_assignment: m.member_assignment.clone(),
                                        })
                                        .collect(),
                                },
                            );
                            (GroupId(g.group_id.to_string()), r)
                        })
                        .collect())
                },
            )
            .await?;
        Ok(groups
            .iter()
            .map(|g| (g.to_string(), take(&mut done, g)))
            .collect())
    }

    /// Describes share groups (KIP-932), each asked of its coordinator.
    ///
    /// Returns one result per group, in the order given: its
    /// [`ShareGroupDescription`], or [`Error::Broker`] with the group's
    /// error code (GROUP_ID_NOT_FOUND for a group that does not exist or
    /// is not a share group, ...) or FindCoordinator's, or the error of its
    /// coordinator's request.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] when a coordinator does not serve
    /// ShareGroupDescribe (Kafka before 4.0).
    pub async fn describe_share_groups(
        &self,
        groups: &[&str],
    ) -> Result<NamedResults<ShareGroupDescription>> {
        let items: Vec<(GroupId, ())> = groups
            .iter()
            .map(|g| (GroupId(g.to_string()), ()))
            .collect();
        let mut done = self
            .fan_out(
                items,
                |broker: Broker, items: Vec<(GroupId, ())>| async move {
                    let req = ShareGroupDescribeRequest::default()
                        .with_group_ids(items.iter().map(|(g, _)| g.0.as_str().into()).collect());
                    let resp = broker.send(&req).await?;
                    Ok(resp
                        .groups
                        .iter()
                        .map(|g| {
                            let r = check(
                                &broker,
                                ApiKey::ShareGroupDescribe,
                                g.error_code,
                                g.error_message.as_ref(),
                            )
                            .map(|()| ShareGroupDescription {
                                group_id: g.group_id.to_string(),
                                state: g.group_state.to_string(),
                                group_epoch: g.group_epoch,
                                assignment_epoch: g.assignment_epoch,
                                assignor: g.assignor_name.to_string(),
                                coordinator: broker.node_id(),
                                members: g
                                    .members
                                    .iter()
                                    .map(|m| ShareGroupMember {
                                        member_id: m.member_id.to_string(),
                                        member_epoch: m.member_epoch,
                                        rack_id: m.rack_id.as_ref().map(|r| r.to_string()),
                                        client_id: m.client_id.to_string(),
                                        client_host: m.client_host.to_string(),
                                        subscribed_topics: m
                                            .subscribed_topic_names
                                            .iter()
                                            .map(|t| t.to_string())
                                            .collect(),
                                        assignment: {
                                            let mut a: Vec<TopicPartition> = m
                                                .assignment
                                                .topic_partitions
                                                .iter()
                                                .flat_map(|tp| {
                                                    tp.partitions.iter().map(|p| {
                                                        TopicPartition::new(
                                                            tp.topic_name.to_string(),
                                                            *p,
                                                        )
                                                    })
                                                })
                                                .collect();
                                            a.sort();
                                            a
                                        },
                                    })
                                    .collect(),
                            });
                            (GroupId(g.group_id.to_string()), r)
                        })
                        .collect())
                },
            )
            .await?;
        Ok(groups
            .iter()
            .map(|g| (g.to_string(), take(&mut done, g)))
            .collect())
    }

    /// Deletes `groups` (they must be empty), each asked of its
    /// coordinator.
    ///
    /// Returns one result per group, in the order given: `Ok(())`, or
    /// [`Error::Broker`] with NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND, ... or
    /// FindCoordinator's error, or the error of its coordinator's request.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] when a coordinator does not serve
    /// DeleteGroups.
    pub async fn delete_groups(&self, groups: &[&str]) -> Result<NamedResults<()>> {
        let items: Vec<(GroupId, ())> = groups
            .iter()
            .map(|g| (GroupId(g.to_string()), ()))
            .collect();
        let mut done = self
            .fan_out(
                items,
                |broker: Broker, items: Vec<(GroupId, ())>| async move {
                    let req = DeleteGroupsRequest::default().with_groups_names(
                        items.iter().map(|(g, _)| g.0.as_str().into()).collect(),
                    );
                    let resp = broker.send(&req).await?;
                    Ok(resp
                        .results
                        .iter()
                        .map(|g| {
                            (
                                GroupId(g.group_id.to_string()),
                                check(&broker, ApiKey::DeleteGroups, g.error_code, None),
                            )
                        })
                        .collect())
                },
            )
            .await?;
        Ok(groups
            .iter()
            .map(|g| (g.to_string(), take(&mut done, g)))
            .collect())
    }

    /// The offsets `group` has committed (OffsetFetch, asked of its
    /// coordinator): on every partition of `topics`, or, with `None`, on
    /// every partition it has committed on (OffsetFetch v2+).
    ///
    /// Returns one result per partition: its [`CommittedOffset`] (offset
    /// `None` where nothing is committed), or [`Error::Broker`] with the
    /// partition's error code.
    ///
    /// # Errors
    /// [`Error::Broker`] with the group's error code (GROUP_AUTHORIZATION_FAILED,
    /// ...) or FindCoordinator's, after retries of retriable ones
    /// (COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR);
    /// [`Error::UnsupportedVersion`] when the coordinator does not serve
    /// OffsetFetch (or `None` topics before v2); a topic's metadata error
    /// (e.g. UNKNOWN_TOPIC_OR_PARTITION) for a named topic.
    pub async fn list_group_offsets(
        &self,
        group: &str,
        topics: Option<&[&str]>,
    ) -> Result<PartitionResults<CommittedOffset>> {
        let wanted = self.wanted_topics(topics).await?;
        let items = vec![(GroupId(group.to_string()), wanted)];
        let mut done = self
            .fan_out(
                items,
                |broker: Broker, items: Vec<(GroupId, Option<WantedTopics>)>| async move {
                    let (group, wanted) = items.into_iter().next().expect("one group");
                    let r = offset_fetch(&broker, &group.0, wanted).await?;
                    Ok(vec![(group, r)])
                },
            )
            .await?;
        take(&mut done, group)
    }

    /// How far `group` is behind on each partition: its committed offsets
    /// ([`Admin::list_group_offsets`]) against each partition's end offset
    /// (ListOffsets latest, asked of the leaders).
    ///
    /// Returns one result per partition: its [`PartitionLag`], or the
    /// error of its committed offset or of its end offset.
    ///
    /// # Errors
    /// As [`Admin::list_group_offsets`], and [`Error::UnsupportedVersion`]
    /// when a leader does not serve ListOffsets.
    pub async fn group_lag(
        &self,
        group: &str,
        topics: Option<&[&str]>,
    ) -> Result<PartitionResults<PartitionLag>> {
        let committed = self.list_group_offsets(group, topics).await?;
        let ask: Vec<(TopicPartition, OffsetSpec)> = committed
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(tp, _)| (tp.clone(), OffsetSpec::Latest))
            .collect();
        let mut ends = self.list_offsets(&ask).await?;
        Ok(committed
            .into_iter()
            .map(|(tp, c)| {
                let r = c.and_then(|c| {
                    let end = ends.remove(&tp).unwrap_or_else(|| {
                        Err(Error::Protocol {
                            broker: "leader".into(),
                            reason: format!("no end offset for {tp}"),
                        })
                    })?;
                    let end_offset = end.offset.unwrap_or(0);
                    Ok(PartitionLag {
                        committed: c.offset,
                        end_offset,
                        lag: c.offset.map(|o| (end_offset - o).max(0)),
                    })
                });
                (tp, r)
            })
            .collect())
    }
}

/// Topics and their partitions to fetch committed offsets of.
pub(super) type WantedTopics = Vec<(String, Vec<i32>)>;

impl Admin {
    /// Every partition of `topics` (`None`: none named, all wanted).
    ///
    /// # Errors
    /// A topic's metadata error (UNKNOWN_TOPIC_OR_PARTITION, ...).
    pub(super) async fn wanted_topics(
        &self,
        topics: Option<&[&str]>,
    ) -> Result<Option<WantedTopics>> {
        let Some(ts) = topics else {
            return Ok(None);
        };
        let mut v = Vec::new();
        for t in ts {
            v.push((t.to_string(), self.cluster.partitions(t).await?));
        }
        Ok(Some(v))
    }
}

/// The result for `key`, or a protocol error when the answer left it out.
pub(super) fn take<T>(done: &mut BTreeMap<GroupId, Result<T>>, key: &str) -> Result<T> {
    done.remove(&GroupId(key.to_string())).unwrap_or_else(|| {
        Err(Error::Protocol {
            broker: "coordinator".into(),
            reason: format!("the answer has no result for group {key}"),
        })
    })
}

/// One OffsetFetch for `group`, at the version the coordinator picks; the
/// group's error is the `Err`, each partition's error is beside it.
async fn offset_fetch(
    broker: &Broker,
    group: &str,
    wanted: Option<WantedTopics>,
) -> Result<Result<PartitionResults<CommittedOffset>>> {
    let v = broker.version_for::<OffsetFetchRequest>().await?;
    if wanted.is_none() && v < 2 {
        return Err(Error::UnsupportedVersion {
            broker: broker.addr().to_string(),
            api: ApiKey::OffsetFetch,
            ours: (2, client_range(ApiKey::OffsetFetch).1),
            theirs: broker.api_versions().await?.range(ApiKey::OffsetFetch),
        });
    }
    let mut req = OffsetFetchRequest::default();
    if v >= 8 {
        let mut g = OffsetFetchRequestGroup::default()
            .with_group_id(group.into())
            .with_topics(wanted.map(|ts| {
                ts.into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestGroupTopic::default()
                            .with_name(t.into())
                            .with_partition_indexes(ps)
                    })
                    .collect()
            }));
        if v >= 9 {
            g.member_epoch = -1;
        }
        req.groups = vec![g];
    } else {
        req.group_id = group.into();
        req.topics = wanted.map(|ts| {
            ts.into_iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(t.into())
                        .with_partition_indexes(ps)
                })
                .collect()
        });
    }
    let resp = broker.send_with(&req, SendOptions::version(v)).await?;
    let mut out = BTreeMap::new();
    let mut add = |topic: &str,
                   partition: i32,
                   offset: i64,
                   epoch: i32,
                   metadata: Option<String>,
                   code: ErrorCode| {
        let r = check(broker, ApiKey::OffsetFetch, code, None).map(|()| CommittedOffset {
            offset: (offset >= 0).then_some(offset),
            leader_epoch: (epoch >= 0).then_some(epoch),
            metadata: metadata.filter(|m| !m.is_empty()),
        });
        out.insert(TopicPartition::new(topic, partition), r);
    };
    if v >= 8 {
        let Some(g) = resp.groups.iter().find(|g| g.group_id == group) else {
            return Err(Error::Protocol {
                broker: broker.addr().to_string(),
                reason: format!("OffsetFetch answered without group {group}"),
            });
        };
        if let Err(e) = check(broker, ApiKey::OffsetFetch, g.error_code, None) {
            return Ok(Err(e));
        }
        for t in &g.topics {
            for p in &t.partitions {
                add(
                    &t.name,
                    p.partition_index,
                    p.committed_offset,
                    if v >= 5 { p.committed_leader_epoch } else { -1 },
                    p.metadata.as_ref().map(|m| m.to_string()),
                    p.error_code,
                );
            }
        }
    } else {
        if let Err(e) = check(broker, ApiKey::OffsetFetch, resp.error_code, None) {
            return Ok(Err(e));
        }
        for t in &resp.topics {
            for p in &t.partitions {
                add(
                    &t.name,
                    p.partition_index,
                    p.committed_offset,
                    if v >= 5 { p.committed_leader_epoch } else { -1 },
                    p.metadata.as_ref().map(|m| m.to_string()),
                    p.error_code,
                );
            }
        }
    }
    Ok(Ok(out))
}

/// The partitions of a consumer-protocol assignment, through the
/// consumer's own decoder; `None` when it does not decode.
fn consumer_assignment(b: Bytes) -> Option<Vec<TopicPartition>> {
    let a = kpax_proto::consumer_protocol::Assignment::decode(b).ok()?;
    let mut out: Vec<TopicPartition> = a
        .partitions
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| TopicPartition::new(t.as_str(), *p)))
        .collect();
    out.sort();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_assignment_decodes_and_rejects_truncation() {
        let mut v = vec![
            0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1,
        ];
        v.extend([0xff, 0xff, 0xff, 0xff]);
        let got = consumer_assignment(Bytes::from(v.clone())).unwrap();
        assert_eq!(
            got,
            vec![TopicPartition::new("t", 1), TopicPartition::new("t", 3)]
        );
        assert_eq!(consumer_assignment(Bytes::from(v[..15].to_vec())), None);
        // a huge count with no data does not allocate or loop long
        let huge = vec![0, 1, 0x7f, 0xff, 0xff, 0xff];
        assert_eq!(consumer_assignment(Bytes::from(huge)), None);
    }
}
