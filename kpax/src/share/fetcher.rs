//! The share fetcher: rounds of ShareFetch (records wanted) or
//! ShareAcknowledge (only acknowledgements to send), one request per leader
//! per round, each in that leader's share session.
//!
//! A session opens with epoch 0 naming every partition to fetch; later
//! requests name only the partitions added or carrying acknowledgements,
//! and forget those no longer assigned to this leader; the epoch grows by
//! one per request. A session error (INVALID_SHARE_SESSION_EPOCH,
//! SHARE_SESSION_NOT_FOUND, a broken connection) starts a new one; the
//! acknowledgements that were in flight are reported failed by
//! [`super::ShareConsumer::commit`] and their records come back after the
//! acquisition lock. Share requests travel on their own connection to each
//! broker (its own member lane, `Lane::Member`); closing ends the sessions and then those
//! connections: Kafka brokers forget the group's cached share-partition
//! state only when its connections close.

use super::acks::{batches, GAP};
use super::{ShareRecord, Shared, State};
use crate::broker::{Broker, Lane, SendOptions};
use crate::error::{Error, Result};
use crate::topic_partition::TopicPartition;
use kpax_proto::generated::share_acknowledge::{
    ShareAcknowledgeRequestAcknowledgementBatch, ShareAcknowledgeRequestPartition,
    ShareAcknowledgeRequestTopic,
};
use kpax_proto::generated::share_fetch::{
    ShareFetchRequestAcknowledgementBatch, ShareFetchRequestForgottenTopicsData,
    ShareFetchRequestPartition, ShareFetchRequestTopic, ShareFetchResponsePartition,
};
use kpax_proto::generated::{
    ApiKey, ErrorCode, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest,
    ShareFetchResponse,
};
use kpax_proto::message::Request;
use kpax_proto::records::{Batch, Batches};
use kpax_proto::wire::Uuid;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::task::JoinSet;

/// Most offsets one acquired range may span: a larger one (a hostile or
/// broken broker) is refused rather than tracked offset by offset.
const MAX_ACQUIRED_SPAN: i64 = 1 << 20;

/// One leader's share session.
#[derive(Debug, Default)]
pub(super) struct Session {
    /// The epoch of the next request (0: open a new session).
    epoch: i32,
    /// The partitions in the session.
    parts: BTreeSet<TopicPartition>,
}

impl Session {
    /// The acknowledgements of records this session acquired, taken out of
    /// `acks`.
    fn take_acks(&self, acks: &mut Acks) -> Acks {
        self.parts
            .iter()
            .filter_map(|tp| acks.remove_entry(tp))
            .collect()
    }
}

/// Sessions by leader node id.
pub(super) type Sessions = HashMap<i32, Session>;

type Acks = BTreeMap<TopicPartition, BTreeMap<i64, i8>>;

/// What one leader is sent in a round.
enum Call {
    Fetch(ShareFetchRequest),
    Acknowledge(ShareAcknowledgeRequest),
}

/// What a round sends a leader: the request, and what it changes in the
/// session if it succeeds.
struct Planned {
    node: i32,
    broker: Broker,
    call: Call,
    parts_after: BTreeSet<TopicPartition>,
    acks: Acks,
    closing: bool,
}

enum Answer {
    Fetch(ShareFetchResponse),
    Acknowledge(ShareAcknowledgeResponse),
}

fn next_epoch(e: i32) -> i32 {
    if e == i32::MAX {
        1
    } else {
        e + 1
    }
}

/// Runs rounds until the consumer closes or is dropped.
pub(super) async fn run(weak: Weak<Shared>) {
    let mut attempt = 0u32;
    loop {
        let Some(s) = weak.upgrade() else { return };
        if s.is_closed() {
            return;
        }
        let wake = s.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let mut sessions = s.sessions.lock().await;
        let plan = plan(&s, &mut sessions).await;
        if plan.is_empty() {
            drop(sessions);
            tokio::select! {
                _ = &mut wake => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            continue;
        }
        let failed = execute(&s, &mut sessions, plan).await;
        drop(sessions);
        if failed {
            attempt += 1;
            let d = crate::broker::backoff(
                attempt.min(6),
                Duration::from_millis(50),
                Duration::from_secs(1),
            );
            tokio::time::sleep(d).await;
        } else {
            attempt = 0;
        }
    }
}

/// Takes every pending acknowledgement; returns them and the count they
/// account for.
fn take_pending(st: &mut State) -> (Acks, u64) {
    (std::mem::take(&mut st.pending), st.queued)
}

/// Decides this round's requests.
async fn plan(s: &Arc<Shared>, sessions: &mut Sessions) -> Vec<Planned> {
    let (assignment, want_records, mut acks, upto) = {
        let mut st = s.lock();
        let (acks, upto) = take_pending(&mut st);
        let want = st.buffer.is_empty() && st.waiting > 0;
        (st.assignment.clone(), want, acks, upto)
    };
    // The leader of each assigned partition, by node.
    let mut desired: BTreeMap<i32, (Broker, BTreeSet<TopicPartition>)> = BTreeMap::new();
    for tp in &assignment {
        match s.cluster.leader(&tp.topic, tp.partition).await {
            Ok(b) => {
                if let Some(id) = b.node_id() {
                    desired
                        .entry(id)
                        .or_insert_with(|| (b.clone(), BTreeSet::new()))
                        .1
                        .insert(tp.clone());
                }
            }
            Err(e) => {
                tracing::debug!(topic = %tp.topic, partition = tp.partition, error = %e, "no leader for a share partition yet")
            }
        }
    }
    let ids = s.cluster.topic_ids().1;
    let mut out = Vec::new();
    let mut nodes: BTreeSet<i32> = desired.keys().copied().collect();
    nodes.extend(sessions.keys().copied());
    for node in nodes {
        let session = sessions.entry(node).or_default();
        // Acknowledgements go to the session that acquired the records.
        let mine = session.take_acks(&mut acks);
        let (broker, want) = match desired.remove(&node) {
            Some((b, w)) => (Some(b), w),
            None => (s.cluster.broker(node), BTreeSet::new()),
        };
        let Some(broker) = broker else {
            // The node left the metadata: its session is gone with it.
            sessions.remove(&node);
            if !mine.is_empty() {
                lost(s, &mine, "its leader left the cluster");
            }
            continue;
        };
        if session.epoch == 0 && want.is_empty() {
            sessions.remove(&node);
            continue;
        }
        if want.is_empty() {
            // Nothing assigned here any more: close the session, with the
            // last acknowledgements.
            out.push(Planned {
                node,
                broker,
                call: Call::Acknowledge(ack_request(s, -1, &mine, &ids)),
                parts_after: BTreeSet::new(),
                acks: mine,
                closing: true,
            });
            continue;
        }
        if want_records {
            let added: BTreeSet<TopicPartition> = if session.epoch == 0 {
                want.clone()
            } else {
                want.difference(&session.parts).cloned().collect()
            };
            let forgotten: Vec<TopicPartition> = if session.epoch == 0 {
                Vec::new()
            } else {
                session.parts.difference(&want).cloned().collect()
            };
            let req = fetch_request(s, session.epoch, &added, &forgotten, &mine, &ids);
            out.push(Planned {
                node,
                broker,
                call: Call::Fetch(req),
                parts_after: want,
                acks: mine,
                closing: false,
            });
        } else if !mine.is_empty() && session.epoch != 0 {
            out.push(Planned {
                node,
                broker,
                call: Call::Acknowledge(ack_request(s, session.epoch, &mine, &ids)),
                parts_after: session.parts.clone(),
                acks: mine,
                closing: false,
            });
        }
    }
    if !acks.is_empty() {
        lost(
            s,
            &acks,
            "the partition is in no share session (its leader changed)",
        );
    }
    let sending = out.iter().any(|p| !p.acks.is_empty());
    if !sending {
        // Nothing in flight: what was queued is answered (or lost above).
        let mut st = s.lock();
        st.answered = st.answered.max(upto);
        drop(st);
        s.acked.notify_waiters();
    } else {
        s.lock().in_flight_upto = upto;
    }
    out
}

/// Acknowledgements that cannot be sent: reported to the next commit.
fn lost(s: &Shared, acks: &Acks, why: &str) {
    let n: usize = acks.values().map(BTreeMap::len).sum();
    tracing::debug!(acknowledgements = n, why, "share acknowledgements not sent");
    let mut st = s.lock();
    for tp in acks.keys() {
        st.ack_errors.push(Error::NoLeader {
            topic: tp.topic.clone(),
            partition: tp.partition,
            reason: format!(
                "acknowledgements not sent: {why}; the records will be delivered again"
            ),
        });
    }
}

fn fetch_request(
    s: &Shared,
    epoch: i32,
    added: &BTreeSet<TopicPartition>,
    forgotten: &[TopicPartition],
    acks: &Acks,
    ids: &BTreeMap<String, Uuid>,
) -> ShareFetchRequest {
    let c = &s.config;
    let mut req = ShareFetchRequest::default();
    req.group_id = Some(c.group_id.as_str().into());
    req.member_id = Some(s.member_id.as_str().into());
    req.share_session_epoch = epoch;
    req.max_wait_ms = c.fetch_max_wait.as_millis() as i32;
    req.min_bytes = c.fetch_min_bytes;
    req.max_bytes = c.fetch_max_bytes;
    req.max_records = c.max_records;
    req.batch_size = c.max_records;
    req.share_acquire_mode = match c.acquire_mode {
        super::AcquireMode::BatchOptimized => 0,
        super::AcquireMode::RecordLimit => 1,
    };
    let mut topics: BTreeMap<Uuid, Vec<ShareFetchRequestPartition>> = BTreeMap::new();
    let named: BTreeSet<&TopicPartition> = added.iter().chain(acks.keys()).collect();
    for tp in named {
        let Some(id) = ids.get(&tp.topic) else {
            continue;
        };
        let mut p = ShareFetchRequestPartition::default();
        p.partition_index = tp.partition;
        if let Some(a) = acks.get(tp) {
            p.acknowledgement_batches = batches(a)
                .into_iter()
                .map(|b| {
                    let mut x = ShareFetchRequestAcknowledgementBatch::default();
                    x.first_offset = b.first;
                    x.last_offset = b.last;
                    x.acknowledge_types = b.types;
                    x
                })
                .collect();
        }
        topics.entry(*id).or_default().push(p);
    }
    req.topics = topics
        .into_iter()
        .map(|(id, ps)| {
            let mut t = ShareFetchRequestTopic::default();
            t.topic_id = id;
            t.partitions = ps;
            t
        })
        .collect();
    let mut gone: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for tp in forgotten {
        if let Some(id) = ids.get(&tp.topic) {
            gone.entry(*id).or_default().push(tp.partition);
        }
    }
    req.forgotten_topics_data = gone
        .into_iter()
        .map(|(id, ps)| {
            let mut f = ShareFetchRequestForgottenTopicsData::default();
            f.topic_id = id;
            f.partitions = ps.into();
            f
        })
        .collect();
    req
}

fn ack_request(
    s: &Shared,
    epoch: i32,
    acks: &Acks,
    ids: &BTreeMap<String, Uuid>,
) -> ShareAcknowledgeRequest {
    let mut req = ShareAcknowledgeRequest::default();
    req.group_id = Some(s.config.group_id.as_str().into());
    req.member_id = Some(s.member_id.as_str().into());
    req.share_session_epoch = epoch;
    let mut topics: BTreeMap<Uuid, Vec<ShareAcknowledgeRequestPartition>> = BTreeMap::new();
    for (tp, a) in acks {
        let Some(id) = ids.get(&tp.topic) else {
            continue;
        };
        let mut p = ShareAcknowledgeRequestPartition::default();
        p.partition_index = tp.partition;
        p.acknowledgement_batches = batches(a)
            .into_iter()
            .map(|b| {
                let mut x = ShareAcknowledgeRequestAcknowledgementBatch::default();
                x.first_offset = b.first;
                x.last_offset = b.last;
                x.acknowledge_types = b.types;
                x
            })
            .collect();
        topics.entry(*id).or_default().push(p);
    }
    req.topics = topics
        .into_iter()
        .map(|(id, ps)| {
            let mut t = ShareAcknowledgeRequestTopic::default();
            t.topic_id = id;
            t.partitions = ps;
            t
        })
        .collect();
    req
}

/// Sends `req` at the highest version both sides know, on the fetch lane
/// within `timeout`; `fit` adjusts it to that version first.
async fn send<R: Request>(
    broker: &Broker,
    lane: Lane,
    mut req: R,
    timeout: Duration,
    fit: impl FnOnce(&mut R, i16),
) -> Result<R::Response> {
    let v = broker.version_for::<R>().await?;
    fit(&mut req, v);
    broker
        .send_with(
            &req,
            SendOptions::version(v)
                .with_timeout(timeout)
                .with_lane(lane),
        )
        .await
}

/// Sends the round's requests at once and settles their answers; `true`
/// when one failed (the caller backs off).
async fn execute(s: &Arc<Shared>, sessions: &mut Sessions, plan: Vec<Planned>) -> bool {
    let timeout = s.cluster.config().request_timeout + s.config.fetch_max_wait;
    let lane = s.lane;
    let mut set = JoinSet::new();
    let mut meta: HashMap<i32, (BTreeSet<TopicPartition>, Acks, bool, String)> = HashMap::new();
    for p in plan {
        meta.insert(
            p.node,
            (
                p.parts_after,
                p.acks,
                p.closing,
                p.broker.addr().to_string(),
            ),
        );
        let node = p.node;
        let broker = p.broker;
        let call = p.call;
        set.spawn(async move {
            let r: Result<Answer> = match call {
                Call::Fetch(req) => send(&broker, lane, req, timeout, |req, v| {
                    if v < 2 {
                        // No acquire modes before v2: whole batches.
                        req.share_acquire_mode = 0;
                    }
                })
                .await
                .map(Answer::Fetch),
                Call::Acknowledge(req) => send(&broker, lane, req, timeout, |_, _| {})
                    .await
                    .map(Answer::Acknowledge),
            };
            (node, r)
        });
    }
    let mut failed = false;
    let names = s.cluster.topic_ids().0;
    while let Some(joined) = set.join_next().await {
        let Ok((node, answer)) = joined else {
            failed = true;
            continue;
        };
        let Some((parts_after, acks, closing, addr)) = meta.remove(&node) else {
            continue;
        };
        let session_ok = match answer {
            Err(e) => {
                if matches!(e, Error::UnsupportedVersion { .. } | Error::Encode { .. }) {
                    let mut st = s.lock();
                    st.error = Some(e.clone());
                    drop(st);
                    s.records.notify_waiters();
                }
                tracing::debug!(node, error = %e, "share request failed; a new session follows");
                if !acks.is_empty() {
                    lost(s, &acks, &format!("the request failed ({e})"));
                }
                false
            }
            Ok(Answer::Fetch(r)) => settle_fetch(s, &addr, r, &names, &acks),
            Ok(Answer::Acknowledge(r)) => settle_ack(s, &addr, r, &names, &acks),
        };
        if !session_ok || closing {
            sessions.remove(&node);
            failed |= !session_ok;
        } else if let Some(sess) = sessions.get_mut(&node) {
            sess.epoch = next_epoch(sess.epoch);
            sess.parts = parts_after;
        }
    }
    let mut st = s.lock();
    st.answered = st.answered.max(st.in_flight_upto);
    drop(st);
    s.acked.notify_waiters();
    failed
}

/// Whether a response's top-level error code lets the session go on
/// (`true` for none). Otherwise the request's acknowledgements `acks` are
/// reported lost; a retriable or session error starts a new session, a
/// fatal one is also stored for the application.
fn top_level(
    s: &Shared,
    addr: &str,
    api: ApiKey,
    code: ErrorCode,
    message: Option<&kpax_proto::wire::StrBytes>,
    acks: &Acks,
) -> bool {
    if code.is_ok() {
        return true;
    }
    if !acks.is_empty() {
        lost(s, acks, "the share session failed");
    }
    let e = Error::Broker {
        broker: addr.into(),
        api,
        code,
        message: message.map(|m| m.to_string()),
    };
    let restart = code.is_retriable()
        || matches!(
            code,
            ErrorCode::INVALID_SHARE_SESSION_EPOCH
                | ErrorCode::SHARE_SESSION_NOT_FOUND
                | ErrorCode::SHARE_SESSION_LIMIT_REACHED
                | ErrorCode::UNKNOWN_MEMBER_ID
                | ErrorCode::FENCED_MEMBER_EPOCH
                | ErrorCode::NOT_LEADER_OR_FOLLOWER
        );
    if restart {
        tracing::debug!(error = %e, "share session restarts");
    } else {
        tracing::warn!(error = %e, "share fetch failed");
        s.lock().error = Some(e);
        s.records.notify_waiters();
    }
    false
}

fn ack_error(
    st: &mut State,
    addr: &str,
    api: ApiKey,
    tp: &TopicPartition,
    code: ErrorCode,
    message: Option<&kpax_proto::wire::StrBytes>,
) {
    if !code.is_ok() {
        st.ack_errors.push(Error::Broker {
            broker: addr.into(),
            api,
            code,
            message: Some(format!(
                "{tp}: {}",
                message.map(|m| m.to_string()).unwrap_or_default()
            )),
        });
    }
}

fn settle_ack(
    s: &Shared,
    addr: &str,
    r: ShareAcknowledgeResponse,
    names: &BTreeMap<Uuid, String>,
    acks: &Acks,
) -> bool {
    if !top_level(
        s,
        addr,
        ApiKey::ShareAcknowledge,
        r.error_code,
        r.error_message.as_ref(),
        acks,
    ) {
        return false;
    }
    let mut st = s.lock();
    for t in &r.responses {
        let Some(name) = names.get(&t.topic_id) else {
            continue;
        };
        for p in &t.partitions {
            let tp = TopicPartition::new(name.as_str(), p.partition_index);
            ack_error(
                &mut st,
                addr,
                ApiKey::ShareAcknowledge,
                &tp,
                p.error_code,
                p.error_message.as_ref(),
            );
        }
    }
    true
}

fn settle_fetch(
    s: &Shared,
    addr: &str,
    r: ShareFetchResponse,
    names: &BTreeMap<Uuid, String>,
    acks: &Acks,
) -> bool {
    if !top_level(
        s,
        addr,
        ApiKey::ShareFetch,
        r.error_code,
        r.error_message.as_ref(),
        acks,
    ) {
        return false;
    }
    let mut delivered = false;
    let mut st = s.lock();
    st.lock_timeout_ms = r.acquisition_lock_timeout_ms;
    for t in r.responses {
        let Some(name) = names.get(&t.topic_id) else {
            tracing::warn!(topic_id = ?t.topic_id, "share fetch answered for a topic the metadata does not know");
            continue;
        };
        let topic: Arc<str> = Arc::from(name.as_str());
        for p in t.partitions {
            let tp = TopicPartition::new(name.as_str(), p.partition_index);
            ack_error(
                &mut st,
                addr,
                ApiKey::ShareFetch,
                &tp,
                p.acknowledge_error_code,
                p.acknowledge_error_message.as_ref(),
            );
            let code = p.error_code;
            if code != ErrorCode::NONE {
                tracing::debug!(topic = %tp.topic, partition = tp.partition, %code, "share fetch partition error");
                s.cluster.partition_error(&tp.topic, tp.partition, code);
                continue;
            }
            match take_records(addr, &topic, &p) {
                Ok((records, gaps)) => {
                    let held = st.acquired.entry(tp.clone()).or_default();
                    held.extend(records.iter().map(|r| r.offset));
                    held.extend(gaps.iter().copied());
                    for g in gaps {
                        st.queue(&tp, g, GAP);
                    }
                    delivered |= !records.is_empty();
                    st.buffer.extend(records);
                }
                Err(e) => {
                    // Not handed out: the acquisition lock returns them.
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "share fetch records refused");
                    st.ack_errors.push(e);
                }
            }
        }
    }
    drop(st);
    if delivered {
        s.records.notify_waiters();
    }
    true
}

/// The acquired records of one partition, with their delivery counts, and
/// the acquired offsets that hold no record (to acknowledge as gaps).
fn take_records(
    broker: &str,
    topic: &Arc<str>,
    p: &ShareFetchResponsePartition,
) -> Result<(Vec<ShareRecord>, Vec<i64>)> {
    let bad = |why: String| Error::Protocol {
        broker: broker.into(),
        reason: format!("ShareFetch {topic}-{}: {why}", p.partition_index),
    };
    let bad_records = |source| Error::Records {
        context: format!("{topic}-{}", p.partition_index),
        source,
    };
    let mut ranges: Vec<(i64, i64, i16)> = Vec::with_capacity(p.acquired_records.len());
    for a in &p.acquired_records {
        if a.last_offset < a.first_offset || a.first_offset < 0 {
            return Err(bad(format!(
                "acquired range {}..={} is not a range",
                a.first_offset, a.last_offset
            )));
        }
        if a.last_offset - a.first_offset >= MAX_ACQUIRED_SPAN {
            return Err(bad(format!(
                "acquired range {}..={} spans more than {MAX_ACQUIRED_SPAN} offsets",
                a.first_offset, a.last_offset
            )));
        }
        ranges.push((a.first_offset, a.last_offset, a.delivery_count));
    }
    ranges.sort_unstable();
    if ranges.windows(2).any(|w| w[1].0 <= w[0].1) {
        return Err(bad("acquired ranges overlap".into()));
    }
    let count_of = |offset: i64| -> Option<i16> {
        let i = ranges.partition_point(|r| r.0 <= offset);
        (i > 0 && offset <= ranges[i - 1].1).then(|| ranges[i - 1].2)
    };
    let mut records = Vec::new();
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    if let Some(data) = p.records.clone() {
        for batch in Batches::new(data) {
            let batch = batch.map_err(bad_records)?;
            if let Batch::V2(b) = &batch {
                if b.is_control() {
                    continue;
                }
            }
            let mut error = None;
            batch.records().map_err(bad_records)?.for_each(|r| match r {
                Ok(r) => {
                    if let Some(n) = count_of(r.offset) {
                        if seen.insert(r.offset) {
                            records.push(ShareRecord {
                                topic: topic.clone(),
                                partition: p.partition_index,
                                delivery_count: n,
                                record: r,
                            });
                        }
                    }
                }
                Err(e) => error = Some(e),
            });
            if let Some(e) = error {
                return Err(bad_records(e));
            }
        }
    }
    let mut gaps = Vec::new();
    for (first, last, _) in &ranges {
        gaps.extend((*first..=*last).filter(|o| !seen.contains(o)));
    }
    Ok((records, gaps))
}

/// Closes every share session (epoch -1) with the last acknowledgements;
/// the brokers release what this member still holds.
pub(super) async fn close_sessions(s: &Arc<Shared>) {
    let mut sessions = s.sessions.lock().await;
    let (mut acks, upto) = take_pending(&mut s.lock());
    let (names, ids) = s.cluster.topic_ids();
    let timeout = s.cluster.config().request_timeout;
    for (node, session) in sessions.drain() {
        let mine = session.take_acks(&mut acks);
        if session.epoch == 0 {
            continue;
        }
        let Some(broker) = s.cluster.broker(node) else {
            continue;
        };
        let req = ack_request(s, -1, &mine, &ids);
        let r = send(&broker, s.lane, req, timeout, |_, _| {}).await;
        // Kafka's brokers drop their cached share-partition state (so that
        // offsets reset while the group is empty take effect) only when the
        // group's connections close, not when its sessions do.
        broker.release_lane(s.lane).await;
        match r {
            Ok(r) => {
                settle_ack(s, broker.addr(), r, &names, &mine);
            }
            Err(e) => {
                tracing::debug!(node, error = %e, "closing a share session");
                if !mine.is_empty() {
                    lost(s, &mine, "closing the share session failed");
                }
            }
        }
    }
    {
        let mut st = s.lock();
        st.answered = st.answered.max(upto);
        st.buffer.clear();
        st.acquired.clear();
    }
    s.acked.notify_waiters();
    // A broker without a session may still have had a connection.
    for broker in s.cluster.brokers() {
        broker.release_lane(s.lane).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpax_proto::generated::share_fetch::ShareFetchResponseAcquiredRecord;
    use kpax_proto::records::RecordBatchBuilder;

    fn acquired(first: i64, last: i64, n: i16) -> ShareFetchResponseAcquiredRecord {
        let mut a = ShareFetchResponseAcquiredRecord::default();
        a.first_offset = first;
        a.last_offset = last;
        a.delivery_count = n;
        a
    }

    #[test]
    fn only_acquired_offsets_are_handed_out_with_their_delivery_count() {
        let mut b = RecordBatchBuilder::new(10);
        for i in 0..6 {
            b.append(1, None, Some(format!("v{i}").as_bytes()), &[])
                .unwrap();
        }
        let data = b.finish().unwrap();
        let mut p = ShareFetchResponsePartition::default();
        p.partition_index = 3;
        p.records = Some(data);
        // Offsets 10-15 in the batch; 11-12 acquired once, 14-17 twice
        // (16 and 17 hold no record here: gaps).
        p.acquired_records = vec![acquired(14, 17, 2), acquired(11, 12, 1)];
        let topic: Arc<str> = Arc::from("t");
        let (records, gaps) = take_records("b:9092", &topic, &p).unwrap();
        let got: Vec<(i64, i16)> = records
            .iter()
            .map(|r| (r.offset, r.delivery_count))
            .collect();
        assert_eq!(got, vec![(11, 1), (12, 1), (14, 2), (15, 2)]);
        assert_eq!(gaps, vec![16, 17]);
    }

    #[test]
    fn bad_acquired_ranges_are_errors_not_allocations() {
        let topic: Arc<str> = Arc::from("t");
        let mut p = ShareFetchResponsePartition::default();
        p.acquired_records = vec![acquired(0, i64::MAX, 1)];
        assert!(take_records("b:9092", &topic, &p).is_err());
        p.acquired_records = vec![acquired(5, 4, 1)];
        assert!(take_records("b:9092", &topic, &p).is_err());
        p.acquired_records = vec![acquired(0, 5, 1), acquired(5, 6, 1)];
        assert!(take_records("b:9092", &topic, &p).is_err());
    }

    #[test]
    fn session_epochs_wrap_past_the_maximum_to_one() {
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(7), 8);
        assert_eq!(next_epoch(i32::MAX), 1);
    }
}
