//! The sender task: drains ready batches, groups them by leader, sends one
//! produce request per broker, and settles each batch from the response.

use super::accumulator::Batch;
use super::{Acks, Shared};
use crate::broker::{backoff, Broker};
use crate::error::{Error, Result};
use bytes::Bytes;
use kpax_proto::generated::produce::{ProduceRequestPartitionData, ProduceRequestTopicData};
use kpax_proto::generated::{ErrorCode, InitProducerIdRequest, ProduceRequest, ProduceResponse};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A produce request's batches and its result.
struct Completion {
    node: i32,
    batches: Vec<Batch>,
    result: Result<Option<ProduceResponse>>,
    started: Instant,
}

struct State {
    producer: Option<(i64, i16)>,
    idempotent: bool,
    in_flight: HashMap<i32, usize>,
    init_attempts: u32,
    init_retry_at: Option<Instant>,
}

pub(crate) async fn run(weak: Weak<Shared>) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Completion>();
    let mut st = match weak.upgrade() {
        Some(s) => State {
            producer: None,
            idempotent: s.config.idempotence,
            in_flight: HashMap::new(),
            init_attempts: 0,
            init_retry_at: None,
        },
        None => return,
    };
    loop {
        let Some(s) = weak.upgrade() else { return };
        let closing = s.closed.load(Ordering::Acquire);
        if closing
            && s.outstanding.load(Ordering::Acquire) == 0
            && st.in_flight.values().all(|n| *n == 0)
        {
            return;
        }
        // Only the sender holds the producer: nobody can send or wait any more.
        if Arc::strong_count(&s) == 1 && s.outstanding.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut next: Option<Instant> = None;
        if let Some(t) = &s.txn {
            // The transaction owns the producer id (init_transactions).
            st.producer = t.producer();
        } else if st.idempotent && st.producer.is_none() {
            if st.init_retry_at.is_none_or(|t| t <= Instant::now()) {
                init_producer(&s, &mut st).await;
            }
            if st.producer.is_none() && st.idempotent {
                next = st.init_retry_at;
            }
        }
        if let Some(t) = &s.txn {
            fail_doomed(&s, t);
        }
        if !st.idempotent || st.producer.is_some() {
            let drained = s.lock().drain(&s.config, Instant::now(), closing);
            next = min_instant(next, drained.next);
            for b in drained.expired {
                expire(&s, b);
            }
            // A batch whose compression failed as it was sealed fails now,
            // before it takes sequence numbers.
            let (ready, unencodable): (Vec<Batch>, Vec<Batch>) = drained
                .ready
                .into_iter()
                .partition(|b| !b.failed_to_encode());
            // (`finish` fails each of them: their encoding holds the error.)
            finish(&s, unencodable);
            let ready = if s.txn.is_some() {
                add_to_transaction(&s, ready).await
            } else {
                ready
            };
            dispatch(&s, &mut st, ready, &done_tx).await;
        }
        let sleep = next
            .map_or(Duration::from_millis(250), |t| {
                t.saturating_duration_since(Instant::now())
            })
            .min(Duration::from_millis(250));
        tokio::select! {
            _ = s.wake.notified() => {}
            c = done_rx.recv() => {
                if let Some(c) = c {
                    settle(&s, &mut st, c);
                }
            }
            _ = tokio::time::sleep(sleep) => {}
        }
        while let Ok(c) = done_rx.try_recv() {
            settle(&s, &mut st, c);
        }
    }
}

fn min_instant(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

async fn init_producer(s: &Shared, st: &mut State) {
    let req = InitProducerIdRequest::default().with_transaction_timeout_ms(i32::MAX);
    match s.cluster.send_any(&req).await {
        Ok(r) if r.error_code.is_ok() => {
            tracing::debug!(
                producer_id = r.producer_id,
                epoch = r.producer_epoch,
                "producer id"
            );
            st.producer = Some((r.producer_id, r.producer_epoch));
            st.init_attempts = 0;
            st.init_retry_at = None;
            s.lock().reset_sequences();
        }
        Err(Error::UnsupportedVersion { .. }) => {
            tracing::warn!("the cluster does not serve InitProducerId: idempotence off");
            st.idempotent = false;
        }
        other => {
            let why = match other {
                Ok(r) => r.error_code.to_string(),
                Err(e) => e.to_string(),
            };
            tracing::debug!(error = %why, "InitProducerId failed; retrying");
            st.init_retry_at = Some(
                Instant::now()
                    + backoff(
                        st.init_attempts,
                        s.config.retry_backoff,
                        s.config.retry_backoff_max,
                    ),
            );
            st.init_attempts += 1;
        }
    }
}

/// In the abortable or fatal state, records not yet sent can only fail:
/// fail them now with that error (as the Java client does), so that a
/// commit or abort does not wait for their sending.
fn fail_doomed(s: &Shared, t: &super::transaction::Txn) {
    let Some(failure) = t.lock().machine.failure() else {
        return;
    };
    let (n, stamped) = s.lock().fail_unsent(|| Error::Transaction(failure.clone()));
    if n > 0 {
        if stamped {
            t.lock().bump_epoch = true;
        }
        s.counters.failed(n as u64);
        s.resolve(n);
    }
}

/// Adds the partitions of `ready` that are new to the transaction
/// (AddPartitionsToTxn, one request for all of them); returns the batches
/// that may be sent now. The others are retried later or failed.
async fn add_to_transaction(s: &Arc<Shared>, ready: Vec<Batch>) -> Vec<Batch> {
    use kpax_proto::generated::ErrorCode as E;
    let Some(t) = &s.txn else { return ready };
    let (producer, new) = {
        let g = t.lock();
        let new: std::collections::BTreeMap<String, Vec<i32>> = ready
            .iter()
            .filter(|b| !g.partitions.contains(&(b.topic.clone(), b.partition)))
            .fold(Default::default(), |mut m, b| {
                let ps: &mut Vec<i32> = m.entry(b.topic.clone()).or_default();
                if !ps.contains(&b.partition) {
                    ps.push(b.partition);
                }
                m
            });
        if new.is_empty() {
            return ready;
        }
        let open = matches!(
            g.machine.state(),
            super::TransactionState::InTransaction | super::TransactionState::CommittingTransaction
        );
        match (g.producer, open) {
            (Some(p), true) => (p, new),
            _ => {
                let e = g
                    .machine
                    .failure()
                    .map(Error::Transaction)
                    .unwrap_or_else(|| {
                        Error::Transaction(super::TransactionError::InvalidState {
                            operation: "send",
                            state: g.machine.state(),
                        })
                    });
                drop(g);
                return ready
                    .into_iter()
                    .filter_map(|b| {
                        if new
                            .get(&b.topic)
                            .is_some_and(|ps| ps.contains(&b.partition))
                        {
                            fail(s, b, e.clone());
                            None
                        } else {
                            Some(b)
                        }
                    })
                    .collect();
            }
        }
    };
    let coordinators = super::coordinator::Coordinators {
        cluster: &s.cluster,
        transactional_id: &t.id,
        retry_backoff: s.config.retry_backoff,
        retry_backoff_max: s.config.retry_backoff_max,
        // Short: batches of partitions already added wait meanwhile.
        deadline: Instant::now() + s.config.retry_backoff_max.max(Duration::from_millis(500)),
    };
    let outcome = coordinators.add_partitions(producer, &new).await;
    let mut codes: HashMap<(String, i32), E> = HashMap::new();
    let whole = match outcome {
        Ok(results) => {
            for (topic, p, code) in results {
                codes.insert((topic, p), code);
            }
            None
        }
        Err(e) => Some(e),
    };
    let mut out = Vec::with_capacity(ready.len());
    for b in ready {
        if !new
            .get(&b.topic)
            .is_some_and(|ps| ps.contains(&b.partition))
        {
            out.push(b);
            continue;
        }
        let e = match &whole {
            Some(e) => e.clone(),
            None => match codes.get(&(b.topic.clone(), b.partition)).copied() {
                Some(E::NONE) => {
                    t.lock().partitions.insert((b.topic.clone(), b.partition));
                    t.lock().started = true;
                    out.push(b);
                    continue;
                }
                code => Error::Broker {
                    broker: "transaction coordinator".into(),
                    api: kpax_proto::generated::ApiKey::AddPartitionsToTxn,
                    code: code.unwrap_or(E::UNKNOWN_SERVER_ERROR),
                    message: Some(format!("adding {}-{}", b.topic, b.partition)),
                },
            },
        };
        let retry = e.is_retriable() || e.code() == Some(E::OPERATION_NOT_ATTEMPTED);
        if retry {
            // Not sent: the partition is no longer in flight.
            requeue(s, b, e);
        } else {
            // Marks the transaction abortable or fatal.
            fail(s, b, e);
        }
    }
    out
}

/// Groups batches by leader and sends one request per broker.
async fn dispatch(
    s: &Arc<Shared>,
    st: &mut State,
    ready: Vec<Batch>,
    done: &mpsc::UnboundedSender<Completion>,
) {
    let mut by_broker: HashMap<i32, (Broker, Vec<Batch>)> = HashMap::new();
    let producer = if st.idempotent { st.producer } else { None };
    for b in ready {
        match s.cluster.leader(&b.topic, b.partition).await {
            Ok(leader) => {
                let node = leader.node_id().unwrap_or(-1);
                if st.in_flight.get(&node).copied().unwrap_or(0)
                    >= s.config.max_in_flight_per_broker
                {
                    // The broker is saturated: try again when a request completes.
                    s.lock().retry(b, Duration::ZERO);
                    continue;
                }
                by_broker
                    .entry(node)
                    .or_insert_with(|| (leader, Vec::new()))
                    .1
                    .push(b);
            }
            Err(e) => requeue(s, b, e),
        }
    }
    // Sequence numbers for everything about to be sent, under one lock;
    // each request's task writes them in as it finishes its batches.
    if producer.is_some() {
        let mut acc = s.lock();
        for (_, batches) in by_broker.values_mut() {
            for b in batches {
                acc.stamp(b, producer);
            }
        }
    }
    for (node, (broker, batches)) in by_broker {
        // Split into requests of at most max_request_size.
        let mut chunk: Vec<Batch> = Vec::new();
        let mut size = 0;
        let mut chunks = Vec::new();
        for b in batches {
            if !chunk.is_empty() && size + b.size() > s.config.max_request_size {
                chunks.push(std::mem::take(&mut chunk));
                size = 0;
            }
            size += b.size();
            chunk.push(b);
        }
        chunks.push(chunk);
        for batches in chunks {
            *st.in_flight.entry(node).or_default() += 1;
            let done = done.clone();
            let broker = broker.clone();
            let acks0 = s.config.acks == Acks::None;
            let s = s.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let batches = finish(&s, batches);
                let (batches, result) = match for_broker(&s, &broker, batches).await {
                    // Every batch failed as it was encoded: nothing to send.
                    Ok((batches, _)) if batches.is_empty() => (batches, Ok(None)),
                    Err((batches, e)) => (batches, Err(e)),
                    Ok((batches, req)) => {
                        let result = if acks0 {
                            broker.send_no_response(&req).await.map(|_| None)
                        } else {
                            broker.send(&req).await.map(Some)
                        };
                        // The request's hold on the batches' bytes ends
                        // here, so that their buffers can be reused.
                        drop(req);
                        (batches, result)
                    }
                };
                let _ = done.send(Completion {
                    node,
                    batches,
                    result,
                    started,
                });
            });
        }
    }
}

/// Finishes the encoding of `batches` (held records written, compression,
/// the producer id and sequence numbers, CRC): the request's own task
/// does it, outside the sender's loop and the producer's lock, so that
/// the batches of different requests are written on different cores
/// while the application goes on appending. A batch that cannot be
/// encoded fails alone. (Only a codec error can fail it here: records are
/// bounded by `max_request_size`, a codec left out of the build is
/// refused by `Producer::new`, and a batch compressed as it was sealed
/// failed before it was stamped. Its sequence numbers are then spent: the
/// partition's next batch is refused as out of order, and the producer
/// resets its id (KIP-360), or a transaction aborts.)
fn finish(s: &Shared, batches: Vec<Batch>) -> Vec<Batch> {
    let mut out = Vec::with_capacity(batches.len());
    for mut b in batches {
        match b.finish() {
            Ok(()) => out.push(b),
            Err(e) => {
                tracing::error!(topic = %b.topic, partition = b.partition, error = %e, "cannot encode a batch");
                fail(s, b, e);
            }
        }
    }
    out
}

/// The request for `batches` as `broker` can take it: record batches v2
/// for Produce v3+; for older brokers each batch converted to a legacy
/// message set (magic 1 for Produce v2, 0 before). A batch the old format
/// cannot carry (headers, zstd) fails alone, with its reason; the others
/// go. The batches keep their v2 bytes (a retry converts again).
async fn for_broker(
    s: &Shared,
    broker: &Broker,
    batches: Vec<Batch>,
) -> std::result::Result<(Vec<Batch>, ProduceRequest), (Vec<Batch>, Error)> {
    let v = match broker.version_for::<ProduceRequest>().await {
        Ok(v) => v,
        Err(e) => return Err((batches, e)),
    };
    let magic = super::legacy::magic_for(v);
    if magic == 2 {
        let req = request(s, &batches, None);
        return Ok((batches, req));
    }
    s.legacy_brokers
        .store(true, std::sync::atomic::Ordering::Relaxed);
    if s.txn.is_some() {
        let e = Error::UnsupportedVersion {
            broker: broker.addr().into(),
            api: kpax_proto::generated::ApiKey::Produce,
            ours: (3, v),
            theirs: None,
        };
        return Err((batches, e));
    }
    let mut kept = Vec::with_capacity(batches.len());
    let mut data = Vec::with_capacity(batches.len());
    for b in batches {
        match super::legacy::to_legacy(&b.data, magic, broker.addr()) {
            Ok(d) => {
                data.push(d);
                kept.push(b);
            }
            Err(e) => fail(s, b, e),
        }
    }
    let req = request(s, &kept, Some(&data));
    Ok((kept, req))
}

/// The Produce request for `batches`, with `data[i]` in place of batch
/// i's own bytes when given (legacy message sets).
fn request(s: &Shared, batches: &[Batch], data: Option<&[Bytes]>) -> ProduceRequest {
    let mut topics: Vec<ProduceRequestTopicData> = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        let records = data.map_or_else(|| b.data.clone(), |d| d[i].clone());
        let part = ProduceRequestPartitionData::default()
            .with_index(b.partition)
            .with_records(Some(records));
        match topics.iter_mut().find(|t| t.name.as_str() == b.topic) {
            Some(t) => t.partition_data.push(part),
            None => topics.push(
                ProduceRequestTopicData::default()
                    .with_name(b.topic.as_str().into())
                    .with_partition_data(vec![part]),
            ),
        }
    }
    let mut req = ProduceRequest::default();
    if let Some(t) = &s.txn {
        req.transactional_id = Some(t.id.as_str().into());
    }
    req.with_acks(s.config.acks.wire())
        .with_timeout_ms(s.config.produce_timeout.as_millis().min(i32::MAX as u128) as i32)
        .with_topic_data(topics)
}

fn settle(s: &Shared, st: &mut State, c: Completion) {
    if let Some(n) = st.in_flight.get_mut(&c.node) {
        *n = n.saturating_sub(1);
    }
    s.counters.answered(c.node, c.started.elapsed());
    let resp = match c.result {
        Ok(r) => r,
        Err(e) => {
            if matches!(
                e,
                Error::Network { .. } | Error::ClosedOnRequest { .. } | Error::Timeout { .. }
            ) {
                s.cluster.broker_down(c.node);
            }
            for b in c.batches {
                if e.is_retriable() {
                    requeue(s, b, e.clone());
                } else {
                    fail(s, b, e.clone());
                }
            }
            s.wake.notify_one();
            return;
        }
    };
    for b in c.batches {
        let Some(resp) = &resp else {
            // acks=0: written as far as anyone will know.
            succeed(s, b, -1, -1);
            continue;
        };
        let part = resp
            .responses
            .iter()
            .filter(|t| t.name.as_str() == b.topic)
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == b.partition);
        let Some(p) = part else {
            let e = Error::Protocol {
                broker: format!("node {}", c.node),
                reason: format!(
                    "produce response has no entry for {}-{}",
                    b.topic, b.partition
                ),
            };
            requeue(s, b, e);
            continue;
        };
        let code = p.error_code;
        let broker_error = || Error::Broker {
            broker: format!("node {}", c.node),
            api: kpax_proto::generated::ApiKey::Produce,
            code,
            message: p.error_message.as_ref().map(|m| m.to_string()),
        };
        match code {
            ErrorCode::NONE => succeed(s, b, p.base_offset, p.log_append_time_ms),
            ErrorCode::DUPLICATE_SEQUENCE_NUMBER => succeed(s, b, -1, -1),
            ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER | ErrorCode::UNKNOWN_PRODUCER_ID
                if s.txn.is_some() =>
            {
                // KIP-360 for a transaction: the transaction is aborted
                // and the abort bumps the epoch, resetting sequences.
                if let Some(t) = &s.txn {
                    t.lock().bump_epoch = true;
                }
                fail(s, b, broker_error());
            }
            ErrorCode::INVALID_PRODUCER_EPOCH | ErrorCode::PRODUCER_FENCED if s.txn.is_some() => {
                // Another producer took the transactional id: fatal.
                fail(s, b, broker_error());
            }
            ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
            | ErrorCode::UNKNOWN_PRODUCER_ID
            | ErrorCode::INVALID_PRODUCER_EPOCH
                if st.idempotent =>
            {
                // KIP-360: start over with a new producer id and sequences.
                tracing::warn!(topic = %b.topic, partition = b.partition, %code, "resetting the producer id");
                st.producer = None;
                requeue(s, b, broker_error());
            }
            _ if code.is_retriable() => {
                s.cluster.partition_error(&b.topic, b.partition, code);
                requeue(s, b, broker_error());
            }
            // Over the topic's max.message.bytes as a whole: sent again in
            // halves (as Java's producer does); a single record too large
            // fails alone.
            ErrorCode::MESSAGE_TOO_LARGE if b.records > 1 => {
                split_too_large(s, b, broker_error());
            }
            _ => fail(s, b, broker_error()),
        }
    }
    s.wake.notify_one();
}

fn succeed(s: &Shared, b: Batch, base_offset: i64, log_append_time: i64) {
    let Batch {
        topic,
        partition,
        data,
        records: n,
        completion,
        permit,
        ..
    } = b;
    let bytes = data.len() as u64;
    {
        let mut acc = s.lock();
        acc.done(&topic, partition);
        acc.recycle(&s.config, data);
    }
    s.counters.sent(n as u64, bytes);
    // Release the batch's memory before anyone learns the outcome, so that
    // a caller who saw every outcome sees an empty buffer.
    drop(permit);
    completion.written(base_offset, log_append_time);
    s.resolve(n);
}

fn fail(s: &Shared, b: Batch, e: Error) {
    s.lock().done(&b.topic, b.partition);
    // The partition has nothing in flight now: the sender looks again.
    s.wake.notify_one();
    if let Some(t) = &s.txn {
        t.failed(&e);
        if b.stamped.is_some() {
            // Its sequence numbers are lost: the abort bumps the epoch.
            t.lock().bump_epoch = true;
        }
    }
    let n = b.fail(e);
    s.counters.failed(n as u64);
    s.resolve(n);
}

fn expire(s: &Shared, b: Batch) {
    let e = Error::DeliveryTimeout {
        topic: b.topic.clone(),
        partition: b.partition,
        after: s.config.delivery_timeout,
        last: b.last_error.clone(),
    };
    fail(s, b, e);
}

/// Splits a batch the broker refused as too large into two halves, each
/// with its records' futures, memory and sequence numbers, and puts both
/// back at the head of the partition (first half first), to be sent at
/// once. A batch that cannot be split fails with `e`.
fn split_too_large(s: &Shared, b: Batch, e: Error) {
    use kpax_proto::records::{Batch as Read, Batches};
    let at = b.records / 2;
    let halves = match Batches::new(b.data.clone()).next() {
        Some(Ok(Read::V2(whole))) => whole.split_at(at),
        _ => return fail(s, b, e),
    };
    let (head_data, tail_data) = match halves {
        Ok(h) => h,
        Err(why) => {
            tracing::warn!(topic = %b.topic, partition = b.partition, error = %why, "cannot split a batch refused as too large");
            return fail(s, b, e);
        }
    };
    tracing::debug!(topic = %b.topic, partition = b.partition, records = b.records, bytes = b.data.len(), "batch too large for the broker: sending it in halves");
    let Batch {
        topic,
        partition,
        records,
        completion,
        mut permit,
        deadline,
        attempts,
        stamped,
        ..
    } = b;
    let head_permits = u32::try_from(head_data.len())
        .unwrap_or(u32::MAX)
        .min(permit.num_permits() as u32) as usize;
    let head_permit = permit
        .split(head_permits)
        .expect("no more permits than the batch holds");
    let (head_done, tail_done) = completion.split(at as u32);
    let part = |data, records, completion, permit, stamped| Batch {
        topic: topic.clone(),
        partition,
        data,
        encoding: super::accumulator::Encoding::Done,
        records,
        completion,
        permit,
        deadline,
        attempts,
        stamped,
        // The halves carry the sequence numbers they are given here.
        written: stamped,
        last_error: Some(e.to_string()),
    };
    let tail_stamp = stamped.map(|(id, epoch, seq)| {
        (
            id,
            epoch,
            (seq as u32).wrapping_add(at as u32) as i32 & i32::MAX,
        )
    });
    let head = part(head_data, at, head_done, head_permit, stamped);
    let tail = part(tail_data, records - at, tail_done, permit, tail_stamp);
    s.counters.retried();
    let mut acc = s.lock();
    acc.retry(tail, Duration::ZERO);
    acc.retry(head, Duration::ZERO);
}

fn requeue(s: &Shared, mut b: Batch, e: Error) {
    if Instant::now() >= b.deadline {
        b.last_error = Some(e.to_string());
        expire(s, b);
        return;
    }
    tracing::debug!(topic = %b.topic, partition = b.partition, attempt = b.attempts, error = %e, "retrying batch");
    let wait = backoff(
        b.attempts,
        s.config.retry_backoff,
        s.config.retry_backoff_max,
    );
    b.attempts += 1;
    b.last_error = Some(e.to_string());
    s.counters.retried();
    s.lock().retry(b, wait);
    // The sender looks again (its next wake-up includes the backoff's end;
    // records appended meanwhile did not wake it while this was in flight).
    s.wake.notify_one();
}
