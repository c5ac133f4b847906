//! Requests a transactional producer sends to coordinators: InitProducerId,
//! AddPartitionsToTxn, AddOffsetsToTxn and EndTxn to the transaction
//! coordinator, TxnOffsetCommit to the group coordinator, each retried
//! while the error says trying again can help.

use crate::broker::{backoff, Broker, SendOptions};
use crate::cluster::{Cluster, CoordinatorKind};
use crate::error::{Error, Result};
use kpax_proto::generated::add_partitions_to_txn::AddPartitionsToTxnRequestV3AndBelowTopic;
use kpax_proto::generated::txn_offset_commit::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kpax_proto::generated::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiKey, EndTxnRequest, ErrorCode,
    InitProducerIdRequest, TxnOffsetCommitRequest,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// Backoff after CONCURRENT_TRANSACTIONS: the coordinator is finishing the
/// previous transaction, which takes milliseconds (the Java client uses 20 ms).
const CONCURRENT_TXN_BACKOFF: Duration = Duration::from_millis(20);

/// Error codes after which the transactional producer cannot go on.
pub(crate) fn is_fatal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::PRODUCER_FENCED
            | ErrorCode::INVALID_PRODUCER_EPOCH
            | ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            | ErrorCode::INVALID_TXN_STATE
            | ErrorCode::INVALID_PRODUCER_ID_MAPPING
            | ErrorCode::TRANSACTION_COORDINATOR_FENCED
            | ErrorCode::CLUSTER_AUTHORIZATION_FAILED
            | ErrorCode::UNSUPPORTED_VERSION
            | ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT
    )
}

/// Whether `e` puts a transactional producer into its fatal state.
pub(crate) fn error_is_fatal(e: &Error) -> bool {
    match e {
        Error::Broker { code, .. } => is_fatal(*code),
        Error::UnsupportedVersion { .. } => true,
        _ => false,
    }
}

/// How to talk to the coordinators for one transactional id.
pub(crate) struct Coordinators<'a> {
    pub cluster: &'a Cluster,
    pub transactional_id: &'a str,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// When to give up retrying (the last error is returned).
    pub deadline: Instant,
}

fn broker_error(b: &Broker, api: ApiKey, code: ErrorCode) -> Result<()> {
    if code.is_ok() {
        return Ok(());
    }
    Err(Error::Broker {
        broker: b.addr().into(),
        api,
        code,
        message: None,
    })
}

impl Coordinators<'_> {
    /// Runs `call` against the coordinator of `kind`/`key` until it
    /// succeeds, fails for good, or the deadline passes.
    async fn retrying<T, F, Fut>(&self, kind: CoordinatorKind, key: &str, mut call: F) -> Result<T>
    where
        F: FnMut(Broker) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0u32;
        loop {
            let result = match self.cluster.coordinator(kind, key).await {
                Ok(b) => call(b).await,
                Err(e) => Err(e),
            };
            let e = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let wait = match &e {
                Error::Broker { code, .. }
                    if matches!(
                        *code,
                        ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE
                    ) =>
                {
                    self.cluster.coordinator_error(kind, key, *code);
                    // Ask where it moved at once, the first time; after
                    // that (or while none is available) back off.
                    if attempt == 0 && *code == ErrorCode::NOT_COORDINATOR {
                        Duration::ZERO
                    } else {
                        backoff(attempt, self.retry_backoff, self.retry_backoff_max)
                    }
                }
                Error::Broker {
                    code: ErrorCode::CONCURRENT_TRANSACTIONS,
                    ..
                } => CONCURRENT_TXN_BACKOFF,
                e if e.is_retriable() => {
                    if matches!(
                        e,
                        Error::Network { .. }
                            | Error::ClosedOnRequest { .. }
                            | Error::Timeout { .. }
                    ) {
                        // Find the coordinator again: it may have moved.
                        self.cluster
                            .coordinator_error(kind, key, ErrorCode::NOT_COORDINATOR);
                    }
                    backoff(attempt, self.retry_backoff, self.retry_backoff_max)
                }
                _ => return Err(e),
            };
            let now = Instant::now();
            if now + wait >= self.deadline {
                return Err(e);
            }
            tracing::debug!(?kind, key, attempt, error = %e, "retrying a transaction request");
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// InitProducerId for the transactional id; `current` asks the
    /// coordinator to bump that producer's epoch (KIP-360, v3+).
    pub async fn init_producer_id(
        &self,
        timeout: Duration,
        current: Option<(i64, i16)>,
    ) -> Result<(i64, i16)> {
        let id = self.transactional_id;
        self.retrying(CoordinatorKind::Transaction, id, |b| async move {
            let v = b.version_for::<InitProducerIdRequest>().await?;
            let mut req = InitProducerIdRequest::default()
                .with_transactional_id(Some(id.into()))
                .with_transaction_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32);
            if let Some((pid, epoch)) = current {
                if v < 3 {
                    return Err(Error::UnsupportedVersion {
                        broker: b.addr().into(),
                        api: ApiKey::InitProducerId,
                        ours: (3, v),
                        theirs: None,
                    });
                }
                req = req.with_producer_id(pid).with_producer_epoch(epoch);
            } else if v >= 3 {
                req = req.with_producer_id(-1).with_producer_epoch(-1);
            }
            let r = b.send_with(&req, SendOptions::version(v)).await?;
            broker_error(&b, ApiKey::InitProducerId, r.error_code)?;
            Ok((r.producer_id, r.producer_epoch))
        })
        .await
    }

    /// AddPartitionsToTxn (v0..v3, the client versions) for `partitions`;
    /// returns each partition's error code (0 when added). A whole-request
    /// error comes back as `Err`.
    pub async fn add_partitions(
        &self,
        producer: (i64, i16),
        partitions: &BTreeMap<String, Vec<i32>>,
    ) -> Result<Vec<(String, i32, ErrorCode)>> {
        let id = self.transactional_id;
        self.retrying(CoordinatorKind::Transaction, id, |b| async move {
            let v = b.version_for::<AddPartitionsToTxnRequest>().await?;
            let mut req = AddPartitionsToTxnRequest::default();
            req.v3_and_below_transactional_id = id.into();
            req.v3_and_below_producer_id = producer.0;
            req.v3_and_below_producer_epoch = producer.1;
            req.v3_and_below_topics = partitions
                .iter()
                .map(|(t, ps)| {
                    let mut topic = AddPartitionsToTxnRequestV3AndBelowTopic::default();
                    topic.name = t.as_str().into();
                    topic.partitions = ps.clone().into();
                    topic
                })
                .collect();
            let r = b.send_with(&req, SendOptions::version(v)).await?;
            let mut out = Vec::new();
            for t in &r.results_by_topic_v3_and_below {
                for p in &t.results_by_partition {
                    out.push((
                        t.name.to_string(),
                        p.partition_index,
                        p.partition_error_code,
                    ));
                }
            }
            // One code for the whole request (coordinator moved, busy,
            // fenced) is retried or failed as such; OPERATION_NOT_ATTEMPTED
            // only echoes another partition's error.
            let codes: Vec<ErrorCode> = out
                .iter()
                .map(|(_, _, c)| *c)
                .filter(|c| *c != ErrorCode::NONE && *c != ErrorCode::OPERATION_NOT_ATTEMPTED)
                .collect();
            if let Some(first) = codes.first() {
                if codes.iter().all(|c| c == first) && (first.is_retriable() || is_fatal(*first)) {
                    broker_error(&b, ApiKey::AddPartitionsToTxn, *first)?;
                }
            }
            Ok(out)
        })
        .await
    }

    /// AddOffsetsToTxn: the group's offsets topic joins the transaction.
    pub async fn add_offsets(&self, producer: (i64, i16), group_id: &str) -> Result<()> {
        let id = self.transactional_id;
        self.retrying(CoordinatorKind::Transaction, id, |b| async move {
            let req = AddOffsetsToTxnRequest::default()
                .with_transactional_id(id.into())
                .with_producer_id(producer.0)
                .with_producer_epoch(producer.1)
                .with_group_id(group_id.into());
            let r = b.send(&req).await?;
            broker_error(&b, ApiKey::AddOffsetsToTxn, r.error_code)
        })
        .await
    }

    /// TxnOffsetCommit to the group's coordinator.
    pub async fn commit_offsets(
        &self,
        producer: (i64, i16),
        group: &super::ConsumerGroupMetadata,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<()> {
        let id = self.transactional_id;
        self.retrying(CoordinatorKind::Group, &group.group_id, |b| async move {
            let v = b.version_for::<TxnOffsetCommitRequest>().await?;
            let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
            for ((t, p), off) in offsets {
                let mut part = TxnOffsetCommitRequestPartition::default();
                part.partition_index = *p;
                part.committed_offset = *off;
                if v >= 2 {
                    part.committed_leader_epoch = -1;
                }
                part.committed_metadata = Some("".into());
                match topics.last_mut() {
                    Some(last) if last.name.as_str() == t => last.partitions.push(part),
                    _ => {
                        let mut topic = TxnOffsetCommitRequestTopic::default();
                        topic.name = t.as_str().into();
                        topic.partitions.push(part);
                        topics.push(topic);
                    }
                }
            }
            let mut req = TxnOffsetCommitRequest::default()
                .with_transactional_id(id.into())
                .with_group_id(group.group_id.as_str().into())
                .with_producer_id(producer.0)
                .with_producer_epoch(producer.1)
                .with_topics(topics);
            if v >= 3 {
                req.generation_id_or_member_epoch = group.generation_id;
                req.member_id = group.member_id.as_str().into();
                req.group_instance_id = group.group_instance_id.as_deref().map(Into::into);
            }
            let r = b.send_with(&req, SendOptions::version(v)).await?;
            let first = r
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| p.error_code)
                .find(|c| !c.is_ok())
                .unwrap_or(ErrorCode::NONE);
            broker_error(&b, ApiKey::TxnOffsetCommit, first)
        })
        .await
    }

    /// EndTxn: commit (`true`) or abort the transaction.
    pub async fn end(&self, producer: (i64, i16), commit: bool) -> Result<()> {
        let id = self.transactional_id;
        self.retrying(CoordinatorKind::Transaction, id, |b| async move {
            let req = EndTxnRequest::default()
                .with_transactional_id(id.into())
                .with_producer_id(producer.0)
                .with_producer_epoch(producer.1)
                .with_committed(commit);
            let r = b.send(&req).await?;
            broker_error(&b, ApiKey::EndTxn, r.error_code)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_codes() {
        assert!(is_fatal(ErrorCode::PRODUCER_FENCED));
        assert!(is_fatal(ErrorCode::INVALID_PRODUCER_EPOCH));
        assert!(is_fatal(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED));
        assert!(is_fatal(ErrorCode::INVALID_TXN_STATE));
        assert!(!is_fatal(ErrorCode::CONCURRENT_TRANSACTIONS));
        assert!(!is_fatal(ErrorCode::NOT_COORDINATOR));
        assert!(!is_fatal(ErrorCode::TOPIC_AUTHORIZATION_FAILED));
    }
}
