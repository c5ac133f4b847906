//! Transactions (KIP-98) in the fake: the transaction coordinator's view of
//! each transactional id (its open transaction's partitions, groups and
//! pending offsets), the end-transaction markers written into partition
//! logs, and each partition's aborted-transaction index and last stable
//! offset, which read_committed fetches use.
//!
//! The checks are strict where a real broker's are (fenced epochs, unknown
//! partitions) and a little stricter where that catches client bugs: a
//! transactional batch for a partition that was not added to the
//! transaction, or TxnOffsetCommit for a group not added with
//! AddOffsetsToTxn, is INVALID_TXN_STATE.

use kpax_proto::generated::ErrorCode;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kpax_proto::generated::add_partitions_to_txn::*;
use kpax_proto::generated::fetch::FetchResponseAbortedTransaction;
use kpax_proto::generated::txn_offset_commit::*;
use kpax_proto::generated::*;
use kpax_proto::records::{Batch, Batches, RecordBatchBuilder};

use crate::context::Context;
use crate::group::Group;
use crate::state::{ClusterState, CoordinatorKind};
use crate::transactions::{AbortedTxn, OpenTxn};

/// Checks that `(producer_id, epoch)` is the current producer of
/// `transactional_id`.
fn check_producer(
    s: &ClusterState,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
) -> Result<(), ErrorCode> {
    match s.transactional.get(transactional_id) {
        Some(&(id, _)) if id != producer_id => Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING),
        Some(&(_, e)) if epoch < e => Err(ErrorCode::PRODUCER_FENCED),
        Some(&(_, e)) if epoch > e => Err(ErrorCode::INVALID_PRODUCER_EPOCH),
        Some(_) => Ok(()),
        None => Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING),
    }
}

/// The coordinator checks of a transaction coordinator request.
fn check_coordinator(
    ctx: &Context<'_>,
    s: &ClusterState,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
) -> Result<(), ErrorCode> {
    if let Some(e) = ctx.injected {
        return Err(ErrorCode(e));
    }
    if s.coordinator(CoordinatorKind::Transaction, transactional_id) != ctx.node {
        return Err(ErrorCode::NOT_COORDINATOR);
    }
    check_producer(s, transactional_id, producer_id, epoch)
}

fn partition_exists(s: &ClusterState, topic: &str, partition: i32) -> bool {
    s.topics
        .get(topic)
        .is_some_and(|t| (0..t.partitions.len() as i32).contains(&partition))
}

/// Adds partitions to the open transaction of `transactional_id`; one
/// code per partition.
fn add_partitions(
    ctx: &Context<'_>,
    s: &mut ClusterState,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    topics: &[(String, Vec<i32>)],
) -> Vec<(String, Vec<(i32, ErrorCode)>)> {
    let whole = check_coordinator(ctx, s, transactional_id, producer_id, epoch).err();
    let unknown: Vec<bool> = topics
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t, *p)))
        .map(|(t, p)| !partition_exists(s, t, p))
        .collect();
    let any_unknown = unknown.iter().any(|u| *u);
    let mut i = 0;
    let mut out = Vec::new();
    for (t, ps) in topics {
        let mut codes = Vec::new();
        for p in ps {
            let code = match whole {
                Some(e) => e,
                None if unknown[i] => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                None if any_unknown => ErrorCode::OPERATION_NOT_ATTEMPTED,
                None => ErrorCode::NONE,
            };
            i += 1;
            codes.push((*p, code));
        }
        out.push((t.clone(), codes));
    }
    if whole.is_none() && !any_unknown {
        let txn = s
            .txns
            .open
            .entry(transactional_id.to_string())
            .or_insert_with(|| OpenTxn {
                producer_id,
                started: Instant::now(),
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                offsets: BTreeMap::new(),
            });
        for (t, ps) in topics {
            txn.partitions.extend(ps.iter().map(|p| (t.clone(), *p)));
        }
    }
    out
}

/// InitProducerId: a producer id and epoch; for a transactional id, from
/// its coordinator, with a bumped epoch that fences the previous producer.
pub(crate) fn init_producer_id(
    ctx: &Context<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let v = ctx.version;
    let mut s = ctx.shared.lock();
    let mut r = InitProducerIdResponse::default();
    if let Some(e) = ctx.injected {
        r.error_code = ErrorCode(e);
        r.producer_id = -1;
        r.producer_epoch = -1;
        return r;
    }
    let (id, epoch) = if let Some(txn) = req.transactional_id.as_ref().filter(|t| !t.is_empty()) {
        if s.coordinator(CoordinatorKind::Transaction, txn) != ctx.node {
            r.error_code = ErrorCode::NOT_COORDINATOR;
            r.producer_id = -1;
            r.producer_epoch = -1;
            return r;
        }
        before_new_epoch(&mut s, txn.as_str());
        set_timeout(&mut s, txn.as_str(), req.transaction_timeout_ms);
        let next = match s.transactional.get(txn.as_str()).copied() {
            Some((id, epoch)) if epoch < i16::MAX - 1 => (id, epoch + 1),
            _ => (s.allocate_producer_id(), 0),
        };
        s.transactional.insert(txn.to_string(), next);
        next
    } else if v >= 3 && req.producer_id >= 0 && req.producer_epoch >= 0 {
        if req.producer_epoch < i16::MAX - 1 {
            (req.producer_id, req.producer_epoch + 1)
        } else {
            (s.allocate_producer_id(), 0)
        }
    } else {
        (s.allocate_producer_id(), 0)
    };
    r.producer_id = id;
    r.producer_epoch = epoch;
    r
}

/// AddPartitionsToTxn: v0-3 (one transaction, from a client) and v4+
/// (batched, from a broker).
pub(crate) fn add_partitions_to_txn(
    ctx: &Context<'_>,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let mut s = ctx.shared.lock();
    let mut r = AddPartitionsToTxnResponse::default();
    if ctx.version <= 3 {
        let topics: Vec<(String, Vec<i32>)> = req
            .v3_and_below_topics
            .iter()
            .map(|t| (t.name.to_string(), t.partitions.to_vec()))
            .collect();
        let results = add_partitions(
            ctx,
            &mut s,
            req.v3_and_below_transactional_id.as_str(),
            req.v3_and_below_producer_id,
            req.v3_and_below_producer_epoch,
            &topics,
        );
        for (t, codes) in results {
            let mut rt = AddPartitionsToTxnResponseResultsByTopicV3AndBelow::default();
            rt.name = t.as_str().into();
            for (p, code) in codes {
                let mut rp =
                    AddPartitionsToTxnResponseResultsByTopicV3AndBelowResultsByPartition::default();
                rp.partition_index = p;
                rp.partition_error_code = code;
                rt.results_by_partition.push(rp);
            }
            r.results_by_topic_v3_and_below.push(rt);
        }
        return r;
    }
    for tx in &req.transactions {
        let topics: Vec<(String, Vec<i32>)> = tx
            .topics
            .iter()
            .map(|t| (t.name.to_string(), t.partitions.to_vec()))
            .collect();
        let results = add_partitions(
            ctx,
            &mut s,
            tx.transactional_id.as_str(),
            tx.producer_id,
            tx.producer_epoch,
            &topics,
        );
        let mut rt = AddPartitionsToTxnResponseResultsByTransaction::default();
        rt.transactional_id = tx.transactional_id.clone();
        for (t, codes) in results {
            let mut rtt = AddPartitionsToTxnResponseTopicResult::default();
            rtt.name = t.as_str().into();
            for (p, code) in codes {
                let mut rp = AddPartitionsToTxnResponseTopicResultResultsByPartition::default();
                rp.partition_index = p;
                rp.partition_error_code = code;
                rtt.results_by_partition.push(rp);
            }
            rt.topic_results.push(rtt);
        }
        r.results_by_transaction.push(rt);
    }
    r
}

/// AddOffsetsToTxn: the group's offsets join the open transaction.
pub(crate) fn add_offsets_to_txn(
    ctx: &Context<'_>,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let mut s = ctx.shared.lock();
    let mut r = AddOffsetsToTxnResponse::default();
    let id = req.transactional_id.as_str();
    match check_coordinator(ctx, &s, id, req.producer_id, req.producer_epoch) {
        Err(e) => r.error_code = e,
        Ok(()) => {
            let producer_id = req.producer_id;
            s.txns
                .open
                .entry(id.to_string())
                .or_insert_with(|| OpenTxn {
                    producer_id,
                    started: Instant::now(),
                    partitions: BTreeSet::new(),
                    groups: BTreeSet::new(),
                    offsets: BTreeMap::new(),
                })
                .groups
                .insert(req.group_id.to_string());
        }
    }
    r
}

/// TxnOffsetCommit: offsets held until the transaction ends.
pub(crate) fn txn_offset_commit(
    ctx: &Context<'_>,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let mut s = ctx.shared.lock();
    let group = req.group_id.to_string();
    let id = req.transactional_id.as_str();
    let whole = if let Some(e) = ctx.injected {
        Err(ErrorCode(e))
    } else if s.coordinator(CoordinatorKind::Group, &group) != ctx.node {
        Err(ErrorCode::NOT_COORDINATOR)
    } else {
        check_producer(&s, id, req.producer_id, req.producer_epoch).and_then(|()| {
            match s.txns.open.get(id) {
                Some(t) if t.groups.contains(&group) => Ok(()),
                _ => Err(ErrorCode::INVALID_TXN_STATE),
            }
        })
    };
    let mut r = TxnOffsetCommitResponse::default();
    for t in &req.topics {
        let mut rt = TxnOffsetCommitResponseTopic::default();
        rt.name = t.name.clone();
        for p in &t.partitions {
            let mut rp = TxnOffsetCommitResponsePartition::default();
            rp.partition_index = p.partition_index;
            let code = match whole {
                Err(e) => e,
                Ok(()) if !partition_exists(&s, t.name.as_str(), p.partition_index) => {
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                }
                Ok(()) => {
                    let txn = s.txns.open.get_mut(id).expect("checked");
                    txn.offsets.insert(
                        (group.clone(), t.name.to_string(), p.partition_index),
                        (
                            p.committed_offset,
                            p.committed_metadata.as_ref().map(|m| m.to_string()),
                        ),
                    );
                    ErrorCode::NONE
                }
            };
            rp.error_code = code;
            rt.partitions.push(rp);
        }
        r.topics.push(rt);
    }
    r
}

/// EndTxn: writes a commit or abort marker into every partition of the
/// transaction, and on commit makes its group offsets visible.
pub(crate) fn end_txn(ctx: &Context<'_>, req: EndTxnRequest) -> EndTxnResponse {
    let mut r = EndTxnResponse::default();
    {
        let mut s = ctx.shared.lock();
        let id = req.transactional_id.as_str();
        if let Err(e) = check_coordinator(ctx, &s, id, req.producer_id, req.producer_epoch) {
            r.error_code = e;
            return r;
        }
        if !s.txns.open.contains_key(id) {
            r.error_code = ErrorCode::INVALID_TXN_STATE;
            return r;
        }
        end(&mut s, id, req.producer_epoch, req.committed);
    }
    // Markers move the last stable offset: wake waiting fetches.
    ctx.shared.data_arrived.notify_waiters();
    r
}

/// Ends the open transaction of `id` (if any) with markers at `epoch`.
fn end(s: &mut ClusterState, id: &str, epoch: i16, commit: bool) {
    let Some(txn) = s.txns.open.remove(id) else {
        return;
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for (topic, partition) in &txn.partitions {
        let Some(p) = s
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(*partition as usize))
        else {
            continue; // deleted meanwhile
        };
        let Ok(marker) = RecordBatchBuilder::end_transaction_marker(
            0,
            now_ms,
            txn.producer_id,
            epoch,
            commit,
            0,
        ) else {
            continue;
        };
        let at = p.log.append_control(&marker, p.leader_epoch);
        let tp = (topic.clone(), *partition);
        let first = s
            .txns
            .ongoing
            .get_mut(&tp)
            .and_then(|m| m.remove(&txn.producer_id));
        if let (false, Some(first)) = (commit, first) {
            s.txns.aborted.entry(tp).or_default().push(AbortedTxn {
                producer_id: txn.producer_id,
                first_offset: first,
                last_offset: at,
            });
        }
    }
    if commit {
        let now = Instant::now();
        for ((group, topic, partition), (offset, metadata)) in txn.offsets {
            let g = s
                .groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group, now));
            g.offsets.insert(
                (topic, partition),
                crate::Committed {
                    offset,
                    leader_epoch: -1,
                    metadata,
                },
            );
        }
    }
}

/// Remembers the transaction timeout `id` asked for (InitProducerId).
pub(crate) fn set_timeout(s: &mut ClusterState, id: &str, timeout_ms: i32) {
    if timeout_ms > 0 {
        s.txns
            .timeouts
            .insert(id.to_string(), Duration::from_millis(timeout_ms as u64));
    }
}

/// Aborts every transaction open longer than its timeout, as Kafka's
/// coordinator does: abort markers at a bumped epoch, which also fences
/// the producer (its next request gets PRODUCER_FENCED until it calls
/// InitProducerId again). Returns whether any was aborted.
pub(crate) fn expire(s: &mut ClusterState, now: Instant) -> bool {
    let expired: Vec<String> = s
        .txns
        .open
        .iter()
        .filter(|(id, t)| {
            s.txns
                .timeouts
                .get(*id)
                .is_some_and(|limit| now.duration_since(t.started) > *limit)
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in &expired {
        tracing::info!(transactional_id = %id, "transaction timed out; aborting");
        before_new_epoch(s, id);
        if let Some(e) = s.transactional.get_mut(id) {
            e.1 = e.1.saturating_add(1);
        }
    }
    !expired.is_empty()
}

/// InitProducerId for a transactional id whose producer is about to get a
/// new epoch: its open transaction is aborted first, as a real
/// coordinator does before fencing the old producer.
pub(crate) fn before_new_epoch(s: &mut ClusterState, id: &str) {
    if let Some(&(_, epoch)) = s.transactional.get(id) {
        // The abort markers carry the next epoch, which fences the old
        // producer's late writes in every partition of the transaction.
        end(s, id, epoch.saturating_add(1), false);
    }
}

/// Before a Produce append: for a transactional batch, the producer must
/// be the current one of `transactional_id` and the partition part of its
/// transaction. Returns the producer id of a transactional batch.
pub(crate) fn check_produce(
    s: &ClusterState,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: &Bytes,
) -> Result<Option<i64>, i16> {
    let Some(Ok(Batch::V2(b))) = Batches::new(records.clone()).next() else {
        return Ok(None);
    };
    if !b.is_transactional() {
        return Ok(None);
    }
    let h = b.header();
    let Some(id) = transactional_id.filter(|t| !t.is_empty()) else {
        return Err(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.0);
    };
    match check_producer(s, id, h.producer_id, h.producer_epoch) {
        Ok(()) => {}
        Err(ErrorCode::PRODUCER_FENCED) => return Err(ErrorCode::INVALID_PRODUCER_EPOCH.0),
        Err(e) => return Err(e.0),
    }
    let added = s
        .txns
        .open
        .get(id)
        .is_some_and(|t| t.partitions.contains(&(topic.to_string(), partition)));
    if !added {
        return Err(ErrorCode::INVALID_TXN_STATE.0);
    }
    Ok(Some(h.producer_id))
}

/// After a transactional append at `base_offset`: the partition's last
/// stable offset stays at the transaction's first record until it ends.
pub(crate) fn appended(
    s: &mut ClusterState,
    topic: &str,
    partition: i32,
    producer_id: i64,
    base_offset: i64,
) {
    s.txns
        .ongoing
        .entry((topic.to_string(), partition))
        .or_default()
        .entry(producer_id)
        .or_insert(base_offset);
}

/// The partition's last stable offset: the first offset of its oldest
/// open transaction, else the high watermark.
pub(crate) fn last_stable_offset(
    s: &ClusterState,
    topic: &str,
    partition: i32,
    high_watermark: i64,
) -> i64 {
    s.txns.last_stable_offset(topic, partition, high_watermark)
}

/// Aborted transactions a read_committed fetch of `[from, to)` must know.
pub(crate) fn aborted_between(
    s: &ClusterState,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
) -> Vec<FetchResponseAbortedTransaction> {
    s.txns.aborted_between(topic, partition, from, to)
}

/// The whole batches of `data` that start below `limit` (a read_committed
/// fetch stops at the last stable offset).
pub(crate) fn below(data: Bytes, limit: i64) -> Bytes {
    let mut batches = Batches::new(data.clone());
    let mut end = 0;
    while let Some(Ok(b)) = batches.next() {
        let base = match &b {
            Batch::V2(v2) => v2.header().base_offset,
            Batch::Legacy(_) => b.last_offset(),
        };
        if base >= limit {
            break;
        }
        end = batches.position();
    }
    data.slice(..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transactions::Transactions;
    use kpax_proto::records::RecordBatchBuilder;

    fn batch(base: i64, n: usize) -> Bytes {
        let mut b = RecordBatchBuilder::new(base);
        for i in 0..n {
            b.append(i as i64, None, Some(b"v"), &[]).unwrap();
        }
        b.finish().unwrap()
    }

    fn txns() -> Transactions {
        let mut t = Transactions::default();
        let tp = ("t".to_string(), 0);
        t.ongoing.entry(tp.clone()).or_default().insert(7, 12);
        t.ongoing.entry(tp.clone()).or_default().insert(8, 15);
        t.aborted.entry(tp).or_default().extend([
            AbortedTxn {
                producer_id: 5,
                first_offset: 2,
                last_offset: 4,
            },
            AbortedTxn {
                producer_id: 6,
                first_offset: 6,
                last_offset: 10,
            },
        ]);
        t
    }

    #[test]
    fn below_keeps_whole_batches_under_the_limit() {
        let mut data = bytes::BytesMut::new();
        for (base, n) in [(0, 3), (3, 2), (5, 4)] {
            data.extend_from_slice(&batch(base, n));
        }
        let data = data.freeze();
        let cut = |limit| {
            Batches::new(below(data.clone(), limit))
                .map(|b| b.unwrap().last_offset())
                .collect::<Vec<_>>()
        };
        assert_eq!(cut(100), vec![2, 4, 8]);
        assert_eq!(cut(5), vec![2, 4]);
        assert_eq!(
            cut(4),
            vec![2, 4],
            "a batch starting below the limit stays whole"
        );
        assert_eq!(cut(0), Vec::<i64>::new());
    }

    #[test]
    fn the_oldest_open_transaction_holds_the_stable_offset() {
        let t = txns();
        assert_eq!(t.last_stable_offset("t", 0, 20), 12);
        assert_eq!(t.last_stable_offset("t", 0, 10), 10);
        assert_eq!(t.last_stable_offset("t", 1, 20), 20, "no open transaction");
    }

    #[test]
    fn aborted_list_covers_the_fetched_range() {
        let t = txns();
        let pick = |from, to| -> Vec<(i64, i64)> {
            t.aborted_between("t", 0, from, to)
                .iter()
                .map(|a| (a.producer_id, a.first_offset))
                .collect()
        };
        assert_eq!(pick(0, 20), vec![(5, 2), (6, 6)]);
        assert_eq!(pick(5, 20), vec![(6, 6)], "ended before the fetch offset");
        assert_eq!(pick(0, 6), vec![(5, 2)], "starts at the stable offset");
        assert!(t.aborted_between("t", 1, 0, 20).is_empty());
    }
}
