//! The fetcher task: keeps every assigned partition's buffer topped up with
//! one fetch in flight per leader, within the byte budget.
//!
//! Each leader gets a fetch session (KIP-227, see `fetch_session`): after
//! the first full fetch, requests name only the partitions that changed
//! and answers carry only partitions with records or news. A partition
//! missing from an answer had nothing: it is simply fetched again.

use super::budget::Charge;
use super::fetch_session::{FetchPlan, FetchSession};
use super::{ConsumerRecord, IsolationLevel, OffsetReset, Shared, StartAt, TopicPartition};
use crate::broker::{backoff, Broker, SendOptions};
use crate::error::{Error, Result};
use bytes::Bytes;
use kpax_proto::generated::fetch::{
    FetchRequestForgottenTopicsData, FetchRequestPartition, FetchRequestTopic,
    FetchResponseAbortedTransaction,
};
use kpax_proto::generated::list_offsets::{ListOffsetsRequestPartition, ListOffsetsRequestTopic};
use kpax_proto::generated::{ApiKey, ErrorCode, FetchRequest, FetchResponse, ListOffsetsRequest};
use kpax_proto::records::{
    AbortedFilter, AbortedTransaction, Batch, BatchRecords, BatchVerdict, Batches, Compression,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

struct FetchDone {
    node: i32,
    /// (partition, fetch offset, epoch) as requested.
    parts: Vec<(TopicPartition, i64, u64)>,
    charge: Charge,
    /// The node's fetch session, out of the map while the fetch runs.
    session: FetchSession,
    /// What the request carried (sessionless below Fetch v7).
    plan: FetchPlan,
    result: Result<FetchResponse>,
    /// The round trip.
    elapsed: Duration,
}

pub(crate) async fn run(weak: Weak<Shared>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<FetchDone>();
    let mut busy: HashSet<i32> = HashSet::new();
    let mut sessions: HashMap<i32, FetchSession> = HashMap::new();
    let mut failures: u32 = 0;
    loop {
        let Some(s) = weak.upgrade() else { return };
        if s.closed.load(Ordering::Acquire) || (Arc::strong_count(&s) == 1 && busy.is_empty()) {
            return;
        }
        if let Err(e) = resolve_starts(&s).await {
            tracing::debug!(error = %e, "resolving start offsets failed; retrying");
            failures += 1;
        }
        plan(&s, &mut busy, &mut sessions, &tx).await;
        let pause = backoff(
            failures.min(6),
            Duration::from_millis(50),
            Duration::from_secs(1),
        );
        tokio::select! {
            _ = s.wake.notified() => {}
            d = rx.recv() => {
                if let Some(d) = d {
                    busy.remove(&d.node);
                    settle(&s, d, &mut sessions);
                }
            }
            _ = tokio::time::sleep(pause) => {}
        }
        while let Ok(d) = rx.try_recv() {
            busy.remove(&d.node);
            settle(&s, d, &mut sessions);
        }
        if failures > 0 && s.lock().parts.all_positioned() {
            failures = 0;
        }
    }
}

/// Finds positions for partitions that need one.
async fn resolve_starts(s: &Arc<Shared>) -> Result<()> {
    let pending: Vec<(TopicPartition, StartAt)> = s.lock().parts.pending_starts();
    if pending.is_empty() {
        return Ok(());
    }
    let committed: Vec<TopicPartition> = pending
        .iter()
        .filter(|(_, st)| *st == StartAt::Committed)
        .map(|(tp, _)| tp.clone())
        .collect();
    if !committed.is_empty() {
        let offsets = super::group::fetch_committed(s, &committed).await?;
        let reset = s.config.auto_offset_reset;
        let mut st = s.lock();
        for tp in committed {
            let Some(p) = st.parts.get_mut(&tp) else {
                continue;
            };
            match offsets.get(&tp).copied().filter(|o| *o >= 0) {
                Some(o) => p.start_at(o),
                None => match reset {
                    OffsetReset::Earliest => p.start = Some(StartAt::Earliest),
                    OffsetReset::Latest => p.start = Some(StartAt::Latest),
                    OffsetReset::None => {
                        st.error = Some(Error::Config(format!(
                            "{tp} has no committed offset and auto_offset_reset is None"
                        )));
                        st.parts.remove(&tp);
                        s.records.notify_waiters();
                    }
                },
            }
        }
        return Ok(());
    }
    // ListOffsets per leader.
    let mut by_leader: HashMap<i32, (Broker, Vec<(TopicPartition, i64)>)> = HashMap::new();
    for (tp, st) in pending {
        let ts = match st {
            StartAt::Earliest => -2,
            StartAt::Latest => -1,
            StartAt::Timestamp(t) => t,
            StartAt::Offset(_) | StartAt::Committed => continue,
        };
        let leader = s.cluster.leader(&tp.topic, tp.partition).await?;
        by_leader
            .entry(leader.node_id().unwrap_or(-1))
            .or_insert_with(|| (leader, Vec::new()))
            .1
            .push((tp, ts));
    }
    for (_, (broker, items)) in by_leader {
        let version = broker.version_for::<ListOffsetsRequest>().await?;
        let mut topics: BTreeMap<String, Vec<ListOffsetsRequestPartition>> = BTreeMap::new();
        for (tp, ts) in &items {
            let mut part = ListOffsetsRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_timestamp(*ts);
            if version == 0 {
                part.max_num_offsets = 1;
            }
            topics.entry(tp.topic.clone()).or_default().push(part);
        }
        let mut req = ListOffsetsRequest::default().with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    ListOffsetsRequestTopic::default()
                        .with_name(t.as_str().into())
                        .with_partitions(ps)
                })
                .collect(),
        );
        if version >= 2 {
            req.isolation_level = isolation(s);
        }
        let resp = broker
            .send_with(&req, SendOptions::version(version))
            .await?;
        let mut st = s.lock();
        for t in &resp.topics {
            for p in &t.partitions {
                let tp = TopicPartition::new(t.name.as_str(), p.partition_index);
                let Some(part) = st.parts.get_mut(&tp) else {
                    continue;
                };
                if !p.error_code.is_ok() {
                    s.cluster
                        .partition_error(&tp.topic, tp.partition, p.error_code);
                    continue;
                }
                let offset = if version == 0 {
                    p.old_style_offsets.first().copied().unwrap_or(-1)
                } else {
                    p.offset
                };
                if offset < 0 {
                    // no record at or after the timestamp: start at the end
                    part.start = Some(StartAt::Latest);
                } else {
                    part.start_at(offset);
                }
            }
        }
    }
    Ok(())
}

fn isolation(s: &Shared) -> i8 {
    match s.config.isolation_level {
        IsolationLevel::ReadUncommitted => 0,
        IsolationLevel::ReadCommitted => 1,
    }
}

/// A partition to fetch: (partition, fetch offset, epoch).
type Wanted = (TopicPartition, i64, u64);

/// Sends a fetch to every leader that has fetchable partitions and no fetch in flight.
async fn plan(
    s: &Arc<Shared>,
    busy: &mut HashSet<i32>,
    sessions: &mut HashMap<i32, FetchSession>,
    tx: &mpsc::UnboundedSender<FetchDone>,
) {
    let now = Instant::now();
    // (partition, fetch offset, epoch): a seek while leaders are looked
    // up below changes the epoch, and the partition waits for the next plan.
    let wanted: Vec<Wanted> = s.lock().parts.fetchable(now);
    let mut by_leader: HashMap<i32, (Broker, Vec<Wanted>)> = HashMap::new();
    for (tp, off, epoch) in wanted {
        match s.cluster.leader(&tp.topic, tp.partition).await {
            Ok(b) => by_leader
                .entry(b.node_id().unwrap_or(-1))
                .or_insert_with(|| (b, Vec::new()))
                .1
                .push((tp, off, epoch)),
            Err(e) => {
                tracing::debug!(topic = %tp.topic, partition = tp.partition, error = %e, "no leader");
                if let Some(p) = s.lock().parts.get_mut(&tp) {
                    p.retry_at = Some(now + s.config.retry_backoff);
                }
            }
        }
    }
    for (node, (broker, items)) in by_leader {
        if busy.contains(&node) {
            continue;
        }
        let want = (s.config.partition_max_bytes as usize)
            .saturating_mul(items.len())
            .min(s.config.fetch_max_bytes as usize)
            .min(s.config.buffer_memory);
        let floor = (s.config.partition_max_bytes as usize).min(want);
        let avail = s.memory.available();
        if avail < floor {
            continue; // the budget is full: wait until records are handed out
        }
        // The reservation is in bytes held; the broker is asked for the
        // wire bytes that hold that much as the last fetch decompressed.
        let reserve = s.memory.held_bytes_for(want).min(avail);
        let ask = s.memory.wire_bytes_for(reserve);
        let Some(charge) = s.memory.reserve(reserve) else {
            continue;
        };
        let mut parts = Vec::new();
        {
            let mut st = s.lock();
            for (tp, off, epoch) in &items {
                if st.parts.start_fetch(tp, *epoch) {
                    parts.push((tp.clone(), *off, *epoch));
                }
            }
        }
        if parts.is_empty() {
            continue; // each was sought elsewhere meanwhile; the charge goes back
        }
        let session = sessions.remove(&node).unwrap_or_default();
        let wanted: Vec<(TopicPartition, i64)> = parts
            .iter()
            .map(|(tp, off, _)| (tp.clone(), *off))
            .collect();
        let plan = session.plan(&wanted, now);
        busy.insert(node);
        let tx = tx.clone();
        let shared = s.clone();
        tokio::spawn(async move {
            let sent = Instant::now();
            let (plan, result) = fetch(&shared, &broker, plan, ask).await;
            let _ = tx.send(FetchDone {
                elapsed: sent.elapsed(),
                node,
                parts,
                charge,
                session,
                plan,
                result,
            });
        });
    }
}

/// Sends one Fetch as `plan` says (sessionless below v7); returns what
/// was sent and the answer.
async fn fetch(
    s: &Shared,
    broker: &Broker,
    plan: FetchPlan,
    max_bytes: usize,
) -> (FetchPlan, Result<FetchResponse>) {
    // Capped at v12 (topics by name) by the broker's client caps.
    let version = match broker.version_for::<FetchRequest>().await {
        Ok(v) => v,
        Err(e) => return (plan, Err(e)),
    };
    let plan = if version >= 7 {
        plan
    } else {
        plan.sessionless()
    };
    let mut topics: BTreeMap<&str, Vec<FetchRequestPartition>> = BTreeMap::new();
    for (tp, off) in &plan.send {
        topics.entry(tp.topic.as_str()).or_default().push(
            FetchRequestPartition::default()
                .with_partition(tp.partition)
                .with_fetch_offset(*off)
                .with_partition_max_bytes(s.config.partition_max_bytes),
        );
    }
    let mut req = FetchRequest::default()
        .with_max_wait_ms(s.config.fetch_max_wait.as_millis().min(i32::MAX as u128) as i32)
        .with_min_bytes(s.config.fetch_min_bytes)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    FetchRequestTopic::default()
                        .with_topic(t.into())
                        .with_partitions(ps)
                })
                .collect(),
        );
    if version >= 3 {
        req.max_bytes = max_bytes.min(i32::MAX as usize) as i32;
    }
    if version >= 4 {
        req.isolation_level = isolation(s);
    }
    if version >= 7 {
        req.session_id = plan.session_id;
        req.session_epoch = plan.epoch;
        let mut forgotten: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in &plan.forget {
            forgotten
                .entry(tp.topic.as_str())
                .or_default()
                .push(tp.partition);
        }
        req.forgotten_topics_data = forgotten
            .into_iter()
            .map(|(t, ps)| {
                let mut f = FetchRequestForgottenTopicsData::default();
                f.topic = t.into();
                f.partitions = ps.into();
                f
            })
            .collect();
    }
    let result = broker
        .send_with(&req, SendOptions::version(version).with_lane(s.fetch_lane))
        .await;
    (plan, result)
}

/// One partition of a fetch response, read before the state lock is
/// taken: what was asked (fetch offset, epoch), the error code, and its
/// records decoded (with their size in bytes) when there were any.
struct Answer {
    tp: TopicPartition,
    offset: i64,
    epoch: u64,
    code: ErrorCode,
    high_watermark: i64,
    records: Option<(usize, Parsed)>,
}

/// What `parse` made of a partition's records.
type Parsed = Result<Fetched>;

/// A partition's records, read.
struct Fetched {
    records: Vec<ConsumerRecord>,
    /// The offset after the batches (past control and aborted ones too).
    next: Option<i64>,
    /// Bytes the records' compressed batches decompressed to: held as
    /// well as the wire bytes, and charged to the budget.
    inflated: usize,
}

fn settle(s: &Shared, d: FetchDone, sessions: &mut HashMap<i32, FetchSession>) {
    let now = Instant::now();
    let failed = !matches!(&d.result, Ok(r) if r.error_code.is_ok());
    s.counters.fetch_answered(d.node, d.elapsed, failed);
    let mut session = d.session;
    match &d.result {
        Ok(r) => session.answered(&d.plan, r.error_code, r.session_id, now),
        Err(_) => session.failed(),
    }
    s.fetch_sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(d.node, session.id());
    sessions.insert(d.node, session);
    let mut charge = d.charge;
    let fail_all = |e: &Error| {
        let mut st = s.lock();
        for (tp, _, epoch) in &d.parts {
            st.parts
                .end_fetch(tp, *epoch, Some(now + s.config.retry_backoff));
        }
        tracing::debug!(node = d.node, error = %e, "fetch failed");
    };
    let resp = match d.result {
        Ok(r) if r.error_code.is_ok() => r,
        Ok(r)
            if matches!(
                r.error_code,
                ErrorCode::FETCH_SESSION_ID_NOT_FOUND | ErrorCode::INVALID_FETCH_SESSION_EPOCH
            ) =>
        {
            // the session is reset: fetch again at once with a new one
            tracing::debug!(node = d.node, code = %r.error_code, "fetch session reset");
            let mut st = s.lock();
            for (tp, _, epoch) in &d.parts {
                st.parts.end_fetch(tp, *epoch, None);
            }
            drop(st);
            s.wake.notify_one();
            return;
        }
        Ok(r) => {
            fail_all(&Error::Broker {
                broker: format!("node {}", d.node),
                api: ApiKey::Fetch,
                code: r.error_code,
                message: None,
            });
            return;
        }
        Err(e) => {
            if e.is_retriable() {
                s.cluster.broker_down(d.node);
            }
            fail_all(&e);
            return;
        }
    };
    let read_committed = s.config.isolation_level == IsolationLevel::ReadCommitted;
    // What was asked, by partition: a lookup per partition in the
    // response instead of a scan (O(partitions^2) a fetch at 10,000).
    let asked: std::collections::HashMap<&TopicPartition, (i64, _)> = d
        .parts
        .iter()
        .map(|(tp, offset, epoch)| (tp, (*offset, *epoch)))
        .collect();
    // Records are decoded (and decompressed) before the lock is taken:
    // `recv` is not kept waiting while a fetch is parsed. Whether each
    // answer still counts (its partition's epoch) is checked under the
    // lock below, in the response's order as before.
    let mut answers: Vec<Answer> = Vec::new();
    for t in &resp.responses {
        let topic: Arc<str> = Arc::from(t.topic.as_str());
        for r in &t.partitions {
            let tp = TopicPartition::new(&*topic, r.partition_index);
            let Some(&(offset, epoch)) = asked.get(&tp) else {
                continue;
            };
            let code = r.error_code;
            let records = (code == ErrorCode::NONE)
                .then(|| r.records.clone().filter(|d| !d.is_empty()))
                .flatten()
                .map(|data| {
                    let size = data.len();
                    let parsed = parse(
                        &topic,
                        tp.partition,
                        data,
                        offset,
                        read_committed,
                        r.aborted_transactions.as_deref(),
                    );
                    (size, parsed)
                });
            answers.push(Answer {
                tp,
                offset,
                epoch,
                code,
                high_watermark: r.high_watermark,
                records,
            });
        }
    }
    // What a wire byte held in this answer: the next fetches ask for
    // their reservation divided by it.
    let (wire, held) = answers
        .iter()
        .filter_map(|a| match &a.records {
            Some((size, Ok(f))) => Some((*size, size + f.inflated)),
            _ => None,
        })
        .fold((0, 0), |(w, h), (a, b)| (w + a, h + b));
    s.memory.learn(wire, held);
    let mut any = false;
    let mut guard = s.lock();
    let st = &mut *guard;
    for (tp, _, epoch) in &d.parts {
        st.parts.end_fetch(tp, *epoch, None);
    }
    for a in answers {
        let Answer {
            tp,
            offset,
            epoch,
            code,
            high_watermark,
            records,
        } = a;
        let Some(p) = st.parts.current(&tp, epoch) else {
            continue;
        };
        match code {
            ErrorCode::NONE => {}
            ErrorCode::OFFSET_OUT_OF_RANGE => {
                match s.config.auto_offset_reset {
                    OffsetReset::Earliest => p.start = Some(StartAt::Earliest),
                    OffsetReset::Latest => p.start = Some(StartAt::Latest),
                    OffsetReset::None => {
                        st.error = Some(Error::Broker {
                            broker: format!("node {}", d.node),
                            api: ApiKey::Fetch,
                            code,
                            message: Some(format!("{tp} offset {offset}")),
                        });
                        any = true;
                        continue;
                    }
                }
                p.position = None;
                continue;
            }
            _ => {
                s.cluster.partition_error(&tp.topic, tp.partition, code);
                p.retry_at = Some(now + s.config.retry_backoff);
                if !code.is_retriable() {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, %code, "fetch error");
                }
                continue;
            }
        }
        p.high_watermark = high_watermark;
        let Some((size, parsed)) = records else {
            p.update_lag(&s.counters.meters, &tp);
            continue;
        };
        match parsed {
            Ok(Fetched {
                records,
                next,
                inflated,
            }) => {
                s.counters.fetched(records.len() as u64, size as u64);
                p.update_lag(&s.counters.meters, &tp);
                // The chunk holds its wire bytes (from the fetch's
                // reservation) and what its compressed batches
                // decompressed to (from the free budget, or owed).
                let held = size + inflated;
                let chunk_charge = || {
                    let mut c = charge.split(held);
                    c.grow(&s.memory, held - c.bytes());
                    c
                };
                if p.append(records, next, chunk_charge) {
                    any = true;
                }
                st.parts.mark_ready(&tp);
            }
            Err(e) => {
                st.error = Some(e);
                any = true;
            }
        }
    }
    drop(guard);
    drop(charge); // what the records did not use
    if any {
        s.records.notify_waiters();
    }
    s.wake.notify_one();
}

/// Reads a partition's records field from `offset` on; returns the records,
/// the offset to fetch next (past control and aborted batches too) and the
/// bytes compressed batches decompressed to.
/// Which batches are handed out is kpax-proto's rule
/// ([`AbortedFilter`]): never control batches, and under `read_committed`
/// not the batches of the `aborted` transactions.
fn parse(
    topic: &Arc<str>,
    partition: i32,
    data: Bytes,
    offset: i64,
    read_committed: bool,
    aborted: Option<&[FetchResponseAbortedTransaction]>,
) -> Result<Fetched> {
    let bad = |source: kpax_proto::records::RecordsError| Error::Records {
        context: format!("{topic}-{partition}"),
        source,
    };
    let mut out = Vec::new();
    let mut next = None;
    let mut inflated = 0;
    let mut filter = if read_committed {
        AbortedFilter::read_committed(aborted.unwrap_or(&[]).iter().map(|a| AbortedTransaction {
            first_offset: a.first_offset,
            producer_id: a.producer_id,
        }))
    } else {
        AbortedFilter::read_uncommitted()
    };
    for batch in Batches::new(data) {
        let batch = batch.map_err(bad)?;
        next = Some(batch.last_offset() + 1);
        if batch.last_offset() < offset {
            continue;
        }
        if let Batch::V2(b) = &batch {
            if filter.verdict(b) != BatchVerdict::Keep {
                continue;
            }
        }
        // Internal iteration: the records' fast loop.
        let mut error = None;
        let records = batch.records().map_err(bad)?;
        inflated += decompressed_len(&batch, &records);
        records.for_each(|r| match r {
            Ok(r) if r.offset >= offset => out.push(ConsumerRecord {
                topic: topic.clone(),
                partition,
                record: r,
            }),
            Ok(_) => {}
            Err(e) => error = Some(e),
        });
        if let Some(e) = error {
            return Err(bad(e));
        }
    }
    Ok(Fetched {
        records: out,
        next,
        inflated,
    })
}

/// The bytes a compressed batch's records live in once decompressed (0
/// for an uncompressed batch: its records share the fetched bytes).
fn decompressed_len(batch: &Batch, records: &BatchRecords) -> usize {
    match (batch, records) {
        (Batch::V2(b), BatchRecords::V2(r)) if b.compression() != Compression::None => {
            r.buffer().len()
        }
        (Batch::Legacy(m), BatchRecords::Legacy(r)) if m.compression() != Compression::None => r
            .clone()
            .filter_map(|r| r.ok())
            .map(|r| r.key().map_or(0, <[u8]>::len) + r.value().map_or(0, <[u8]>::len))
            .sum(),
        _ => 0,
    }
}
