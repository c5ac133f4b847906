//! A share group's start offsets (KIP-932): where each share-partition
//! begins handing out records. DescribeShareGroupOffsets reads them,
//! AlterShareGroupOffsets sets them (the group must have no members, as
//! `kafka-share-groups --reset-offsets` requires), DeleteShareGroupOffsets
//! forgets a topic's state so that the group starts it afresh from
//! `share.auto.offset.reset`. All three go to the group's coordinator
//! (Kafka 4.1+).

use super::groups::{take, WantedTopics};
use super::{check, unanswered, Admin, GroupId, NamedResults, PartitionResults, TopicPartition};
use crate::broker::{Broker, SendOptions};
use crate::error::{Error, Result};
use kpax_proto::generated::alter_share_group_offsets::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kpax_proto::generated::delete_share_group_offsets::DeleteShareGroupOffsetsRequestTopic;
use kpax_proto::generated::describe_share_group_offsets::{
    DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
};
use kpax_proto::generated::{
    AlterShareGroupOffsetsRequest, ApiKey, DeleteShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsRequest,
};
use std::collections::BTreeMap;
use std::future::Future;

/// A share group's state on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShareGroupOffset {
    /// The share-partition start offset: records before it are done for
    /// the group. `None` when the group has no state on the partition yet
    /// (Kafka answers -1).
    pub start_offset: Option<i64>,
    /// The leader epoch stored with it, when known.
    pub leader_epoch: Option<i32>,
    /// How many records from the start offset to the partition's end are
    /// not yet done (DescribeShareGroupOffsets v1, Kafka 4.2+); `None` when
    /// the broker does not say.
    pub lag: Option<i64>,
}

impl Admin {
    /// The start offsets of share group `group` (DescribeShareGroupOffsets,
    /// asked of its coordinator): on every partition of `topics`, or, with
    /// `None`, on every partition the group has state on.
    ///
    /// Returns one result per partition: its [`ShareGroupOffset`], or
    /// [`Error::Broker`] with the partition's error code.
    ///
    /// # Errors
    /// [`Error::Broker`] with the group's error code (GROUP_ID_NOT_FOUND
    /// for a group that is not a share group, ...) or FindCoordinator's;
    /// [`Error::UnsupportedVersion`] when the coordinator does not serve
    /// DescribeShareGroupOffsets (Kafka before 4.1); a named topic's
    /// metadata error (UNKNOWN_TOPIC_OR_PARTITION).
    pub async fn list_share_group_offsets(
        &self,
        group: &str,
        topics: Option<&[&str]>,
    ) -> Result<PartitionResults<ShareGroupOffset>> {
        let wanted = self.wanted_topics(topics).await?;
        self.one_group(group, wanted, |broker, group, wanted| async move {
            describe_offsets(&broker, &group, wanted).await
        })
        .await
    }

    /// Sets the start offsets of share group `group`
    /// (AlterShareGroupOffsets, asked of its coordinator): from each given
    /// offset on, the group hands out every record again. Kafka accepts
    /// this only while the group has no members.
    ///
    /// Returns one result per partition: `Ok(())`, or [`Error::Broker`]
    /// with the partition's error code.
    ///
    /// # Errors
    /// [`Error::Broker`] with the top-level error code (NON_EMPTY_GROUP
    /// while members are in the group, GROUP_ID_NOT_FOUND for a group of
    /// another type, ...) or FindCoordinator's;
    /// [`Error::UnsupportedVersion`] before Kafka 4.1.
    pub async fn alter_share_group_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<PartitionResults<()>> {
        if offsets.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.one_group(
            group,
            offsets.to_vec(),
            |broker, group, offsets| async move { alter_offsets(&broker, &group, &offsets).await },
        )
        .await
    }

    /// Deletes share group `group`'s state on `topics`
    /// (DeleteShareGroupOffsets, asked of its coordinator): the next member
    /// to be assigned them starts from `share.auto.offset.reset`. The
    /// group must have no members.
    ///
    /// Returns one result per topic, in the order given.
    ///
    /// # Errors
    /// As [`Admin::alter_share_group_offsets`].
    pub async fn delete_share_group_offsets(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<NamedResults<()>> {
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let asked = names.clone();
        let mut answered = self
            .one_group(group, names, |broker, group, names| async move {
                delete_offsets(&broker, &group, &names).await
            })
            .await?;
        Ok(asked
            .into_iter()
            .map(|t| {
                let r = answered.remove(&t).unwrap_or_else(|| {
                    Err(Error::Protocol {
                        broker: "coordinator".into(),
                        reason: format!("the answer has no result for topic {t}"),
                    })
                });
                (t, r)
            })
            .collect())
    }

    /// Sends one request about `group` to its coordinator through
    /// [`Admin::fan_out`] (so that a moved coordinator is found again):
    /// `send` answers the group's result, whose retriable `Err` is retried.
    async fn one_group<V, X, F, Fut>(&self, group: &str, input: V, send: F) -> Result<X>
    where
        V: Clone + Send + 'static,
        X: Send + 'static,
        F: Fn(Broker, String, V) -> Fut,
        Fut: Future<Output = Result<Result<X>>> + Send + 'static,
    {
        let items = vec![(GroupId(group.to_string()), input)];
        let mut done = self
            .fan_out(items, |broker: Broker, items: Vec<(GroupId, V)>| {
                let calls: Vec<_> = items
                    .into_iter()
                    .map(|(g, v)| (g.clone(), send(broker.clone(), g.0, v)))
                    .collect();
                async move {
                    let mut out = Vec::new();
                    for (g, call) in calls {
                        out.push((g, call.await?));
                    }
                    Ok(out)
                }
            })
            .await?;
        take(&mut done, group)
    }
}

async fn describe_offsets(
    broker: &Broker,
    group: &str,
    wanted: Option<WantedTopics>,
) -> Result<Result<PartitionResults<ShareGroupOffset>>> {
    let v = broker
        .version_for::<DescribeShareGroupOffsetsRequest>()
        .await?;
    let topics = wanted.as_ref().map(|ts| {
        ts.iter()
            .map(|(t, ps)| {
                DescribeShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(t.as_str().into())
                    .with_partitions(ps.as_slice())
            })
            .collect()
    });
    let req = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(group.into())
            .with_topics(topics),
    ]);
    let resp = broker.send_with(&req, SendOptions::version(v)).await?;
    let Some(g) = resp.groups.iter().find(|g| g.group_id.as_str() == group) else {
        return Ok(Err(Error::Protocol {
            broker: broker.addr().to_string(),
            reason: format!("the answer has no result for group {group}"),
        }));
    };
    if let Err(e) = check(
        broker,
        ApiKey::DescribeShareGroupOffsets,
        g.error_code,
        g.error_message.as_ref(),
    ) {
        return Ok(Err(e));
    }
    let mut out = BTreeMap::new();
    for t in &g.topics {
        for p in &t.partitions {
            let tp = TopicPartition::new(t.topic_name.as_str(), p.partition_index);
            let r = check(
                broker,
                ApiKey::DescribeShareGroupOffsets,
                p.error_code,
                p.error_message.as_ref(),
            )
            .map(|()| ShareGroupOffset {
                start_offset: (p.start_offset >= 0).then_some(p.start_offset),
                leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                lag: (v >= 1 && p.lag >= 0).then_some(p.lag),
            });
            out.insert(tp, r);
        }
    }
    for (t, ps) in wanted.iter().flatten() {
        for p in ps {
            out.entry(TopicPartition::new(t.as_str(), *p))
                .or_insert(Ok(ShareGroupOffset {
                    start_offset: None,
                    leader_epoch: None,
                    lag: None,
                }));
        }
    }
    Ok(Ok(out))
}

async fn alter_offsets(
    broker: &Broker,
    group: &str,
    offsets: &[(TopicPartition, i64)],
) -> Result<Result<PartitionResults<()>>> {
    let v = broker
        .version_for::<AlterShareGroupOffsetsRequest>()
        .await?;
    let mut topics: BTreeMap<&str, Vec<AlterShareGroupOffsetsRequestPartition>> = BTreeMap::new();
    for (tp, offset) in offsets {
        topics.entry(tp.topic.as_str()).or_default().push(
            AlterShareGroupOffsetsRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_start_offset(*offset),
        );
    }
    let req = AlterShareGroupOffsetsRequest::default()
        .with_group_id(group.into())
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(t.into())
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp = broker.send_with(&req, SendOptions::version(v)).await?;
    if let Err(e) = check(
        broker,
        ApiKey::AlterShareGroupOffsets,
        resp.error_code,
        resp.error_message.as_ref(),
    ) {
        return Ok(Err(e));
    }
    let mut out = BTreeMap::new();
    for t in &resp.responses {
        for p in &t.partitions {
            let r = check(
                broker,
                ApiKey::AlterShareGroupOffsets,
                p.error_code,
                p.error_message.as_ref(),
            );
            out.insert(
                TopicPartition::new(t.topic_name.as_str(), p.partition_index),
                r,
            );
        }
    }
    unanswered(broker, &mut out, offsets.iter().map(|(tp, _)| tp));
    Ok(Ok(out))
}

async fn delete_offsets(
    broker: &Broker,
    group: &str,
    topics: &[String],
) -> Result<Result<BTreeMap<String, Result<()>>>> {
    let v = broker
        .version_for::<DeleteShareGroupOffsetsRequest>()
        .await?;
    let req = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(group.into())
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    DeleteShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(t.as_str().into())
                })
                .collect(),
        );
    let resp = broker.send_with(&req, SendOptions::version(v)).await?;
    if let Err(e) = check(
        broker,
        ApiKey::DeleteShareGroupOffsets,
        resp.error_code,
        resp.error_message.as_ref(),
    ) {
        return Ok(Err(e));
    }
    Ok(Ok(resp
        .responses
        .iter()
        .map(|t| {
            (
                t.topic_name.to_string(),
                check(
                    broker,
                    ApiKey::DeleteShareGroupOffsets,
                    t.error_code,
                    t.error_message.as_ref(),
                ),
            )
        })
        .collect()))
}
