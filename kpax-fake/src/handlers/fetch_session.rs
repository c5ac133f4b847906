//! Fetch sessions (KIP-227), the broker side: a small session cache per
//! broker, incremental requests and responses, the two session errors.
//!
//! - epoch -1: a sessionless full fetch (a session id other than 0 is
//!   closed first); the answer's session id is 0;
//! - epoch 0: closes the named session (if any) and opens a new one over
//!   the request's partitions; a full answer with the new session id (0
//!   when sessions are off: [`FakeCluster::set_fetch_session_limit`] 0).
//!   A full cache evicts its least recently used session;
//! - epoch > 0: an incremental fetch: FETCH_SESSION_ID_NOT_FOUND for an
//!   unknown session, INVALID_FETCH_SESSION_EPOCH for an epoch other than
//!   the one expected; else the request's partitions are added or updated,
//!   `forgotten_topics_data` removed, and the session's partitions fetched;
//!   the answer holds only partitions with records, an error, or a changed
//!   high watermark, last stable offset or log start offset.
//!
//! An injected FETCH_SESSION_ID_NOT_FOUND or INVALID_FETCH_SESSION_EPOCH
//! (`fail_next(ApiKey::Fetch, ..)`) is answered as a top-level error; the
//! first also drops the session. Every Fetch is recorded
//! ([`FakeCluster::fetch_log`]) so tests can check what clients sent.

use std::collections::{BTreeMap, HashMap, VecDeque};

use kpax_proto::generated::fetch::{FetchRequestPartition, FetchRequestTopic};
use kpax_proto::generated::{ErrorCode, FetchRequest, FetchResponse};
use kpax_proto::wire::{StrBytes, Uuid};

use crate::context::Context;
use crate::FakeCluster;

/// Sessions a broker keeps at most, unless set otherwise.
pub const DEFAULT_SESSION_LIMIT: usize = 32;
/// Fetch requests the log keeps (the oldest are dropped).
const LOG_LIMIT: usize = 10_000;

/// One Fetch request as a broker received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFetch {
    /// The broker's node id.
    pub node: i32,
    /// The request's version.
    pub version: i16,
    /// The request's session id.
    pub session_id: i32,
    /// The request's session epoch.
    pub session_epoch: i32,
    /// The partitions named in `topics`: (topic, partition, fetch offset)
    /// (topic names as sent; empty for a topic named by id).
    pub partitions: Vec<(String, i32, i64)>,
    /// The partitions named in `forgotten_topics_data`.
    pub forgotten: Vec<(String, i32)>,
}

/// A partition of a session as the broker keeps it.
#[derive(Debug, Clone)]
struct Cached {
    fetch_offset: i64,
    partition_max_bytes: i32,
    /// What the last answer said (-1: not answered yet or an error).
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
}

/// A partition key: topic name (v12-) or topic id (v13+), and partition.
type Key = (StrBytes, Uuid, i32);

#[derive(Debug, Default)]
struct Session {
    /// The epoch the next incremental request must carry.
    next_epoch: i32,
    partitions: BTreeMap<Key, Cached>,
    /// For least-recently-used eviction.
    last_used: u64,
}

/// Every broker's session cache and the request log.
#[derive(Debug)]
pub(crate) struct Sessions {
    limit: usize,
    next_id: i32,
    clock: u64,
    by_broker: HashMap<i32, HashMap<i32, Session>>,
    log: VecDeque<ReceivedFetch>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            limit: DEFAULT_SESSION_LIMIT,
            next_id: 1,
            clock: 0,
            by_broker: HashMap::new(),
            log: VecDeque::new(),
        }
    }
}

/// What the Fetch handler does after [`open`].
pub(crate) enum Opened {
    /// Answer at once (a session error).
    Answer(FetchResponse),
    /// Fetch these partitions, then pass the answer to [`close`].
    Fetch(FetchRequest, Answer),
}

/// How to shape the answer of a fetch.
pub(crate) struct Answer {
    /// The session id to answer with (0: none).
    session_id: i32,
    /// Whether the answer holds only partitions with news.
    incremental: bool,
}

fn sessions<'a>(ctx: &'a Context<'_>) -> std::sync::MutexGuard<'a, Sessions> {
    ctx.shared
        .fetch_sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn key(t: &FetchRequestTopic, p: i32) -> Key {
    (t.topic.clone(), t.topic_id, p)
}

fn session_error(code: ErrorCode) -> FetchResponse {
    let mut r = FetchResponse::default();
    r.error_code = code;
    r
}

/// Takes a Fetch request in: records it, applies it to its session, and
/// says what to fetch.
pub(crate) fn open(ctx: &Context<'_>, mut req: FetchRequest) -> Opened {
    let mut all = sessions(ctx);
    all.record(ctx, &req);
    let sessionless = Answer {
        session_id: 0,
        incremental: false,
    };
    if ctx.version < 7 {
        return Opened::Fetch(req, sessionless);
    }
    let node = ctx.node;
    match ctx.injected.map(ErrorCode) {
        Some(ErrorCode::FETCH_SESSION_ID_NOT_FOUND) => {
            all.broker(node).remove(&req.session_id);
            return Opened::Answer(session_error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND));
        }
        Some(ErrorCode::INVALID_FETCH_SESSION_EPOCH) => {
            return Opened::Answer(session_error(ErrorCode::INVALID_FETCH_SESSION_EPOCH));
        }
        _ => {}
    }
    all.clock += 1;
    let clock = all.clock;
    if req.session_epoch <= 0 {
        if req.session_id != 0 {
            all.broker(node).remove(&req.session_id);
        }
        if req.session_epoch < 0 || all.limit == 0 {
            return Opened::Fetch(req, sessionless);
        }
        let id = all.new_id();
        let limit = all.limit;
        let cache = all.broker(node);
        while cache.len() >= limit {
            let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            cache.remove(&oldest);
        }
        let mut session = Session {
            next_epoch: 1,
            last_used: clock,
            ..Session::default()
        };
        for t in &req.topics {
            for p in &t.partitions {
                session.partitions.insert(key(t, p.partition), cached(p));
            }
        }
        cache.insert(id, session);
        return Opened::Fetch(
            req,
            Answer {
                session_id: id,
                incremental: false,
            },
        );
    }
    let Some(session) = all.broker(node).get_mut(&req.session_id) else {
        return Opened::Answer(session_error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND));
    };
    if session.next_epoch != req.session_epoch {
        return Opened::Answer(session_error(ErrorCode::INVALID_FETCH_SESSION_EPOCH));
    }
    session.next_epoch = if req.session_epoch == i32::MAX {
        1
    } else {
        req.session_epoch + 1
    };
    session.last_used = clock;
    for t in &req.topics {
        for p in &t.partitions {
            let entry = session
                .partitions
                .entry(key(t, p.partition))
                .or_insert_with(|| cached(p));
            entry.fetch_offset = p.fetch_offset;
            entry.partition_max_bytes = p.partition_max_bytes;
        }
    }
    for f in &req.forgotten_topics_data {
        for p in &f.partitions {
            session
                .partitions
                .remove(&(f.topic.clone(), f.topic_id, *p));
        }
    }
    // the session's partitions, in order, as a full request
    let mut topics: Vec<FetchRequestTopic> = Vec::new();
    for ((name, id, p), c) in &session.partitions {
        let part = FetchRequestPartition::default()
            .with_partition(*p)
            .with_fetch_offset(c.fetch_offset)
            .with_partition_max_bytes(c.partition_max_bytes);
        match topics.last_mut() {
            Some(t) if t.topic == *name && t.topic_id == *id => t.partitions.push(part),
            _ => {
                let mut t = FetchRequestTopic::default().with_partitions(vec![part]);
                t.topic = name.clone();
                t.topic_id = *id;
                topics.push(t);
            }
        }
    }
    req.topics = topics;
    let session_id = req.session_id;
    Opened::Fetch(
        req,
        Answer {
            session_id,
            incremental: true,
        },
    )
}

fn cached(p: &FetchRequestPartition) -> Cached {
    Cached {
        fetch_offset: p.fetch_offset,
        partition_max_bytes: p.partition_max_bytes,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
    }
}

/// Shapes the answer of a fetch [`open`] let through: the session id, and
/// for an incremental fetch only the partitions with news.
pub(crate) fn close(ctx: &Context<'_>, answer: Answer, mut r: FetchResponse) -> FetchResponse {
    if ctx.version < 7 {
        return r;
    }
    r.session_id = answer.session_id;
    if answer.session_id == 0 {
        return r;
    }
    let mut all = sessions(ctx);
    let Some(session) = all.broker(ctx.node).get_mut(&answer.session_id) else {
        return r;
    };
    for t in &mut r.responses {
        let name = t.topic.clone();
        let id = t.topic_id;
        t.partitions.retain(|p| {
            let Some(c) = session
                .partitions
                .get_mut(&(name.clone(), id, p.partition_index))
            else {
                return true;
            };
            let has_records = p.records.as_ref().is_some_and(|r| !r.is_empty());
            let error = p.error_code != ErrorCode(0);
            let changed = c.high_watermark != p.high_watermark
                || c.last_stable_offset != p.last_stable_offset
                || c.log_start_offset != p.log_start_offset;
            if error {
                // answered again once the error is gone
                c.high_watermark = -1;
            } else {
                c.high_watermark = p.high_watermark;
                c.last_stable_offset = p.last_stable_offset;
                c.log_start_offset = p.log_start_offset;
            }
            !answer.incremental || has_records || error || changed
        });
    }
    if answer.incremental {
        r.responses.retain(|t| !t.partitions.is_empty());
    }
    r
}

impl Sessions {
    fn broker(&mut self, node: i32) -> &mut HashMap<i32, Session> {
        self.by_broker.entry(node).or_default()
    }

    fn new_id(&mut self) -> i32 {
        let id = self.next_id;
        self.next_id = if self.next_id == i32::MAX {
            1
        } else {
            self.next_id + 1
        };
        id
    }

    fn record(&mut self, ctx: &Context<'_>, req: &FetchRequest) {
        if self.log.len() >= LOG_LIMIT {
            self.log.pop_front();
        }
        self.log.push_back(ReceivedFetch {
            node: ctx.node,
            version: ctx.version,
            session_id: req.session_id,
            session_epoch: req.session_epoch,
            partitions: req
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (t.topic.to_string(), p.partition, p.fetch_offset))
                })
                .collect(),
            forgotten: req
                .forgotten_topics_data
                .iter()
                .flat_map(|f| f.partitions.iter().map(|p| (f.topic.to_string(), *p)))
                .collect(),
        });
    }
}

impl FakeCluster {
    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.shared
            .fetch_sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Sets how many fetch sessions each broker keeps (the least recently
    /// used is evicted for a new one); 0 turns sessions off (brokers answer
    /// session id 0, as librdkafka's mock and tansu do). Default
    /// [`DEFAULT_SESSION_LIMIT`].
    pub fn set_fetch_session_limit(&self, limit: usize) {
        let mut s = self.sessions();
        s.limit = limit;
        if limit == 0 {
            s.by_broker.clear();
        }
    }

    /// The fetch sessions broker `node` holds now.
    pub fn fetch_session_count(&self, node: i32) -> usize {
        self.sessions().by_broker.get(&node).map_or(0, HashMap::len)
    }

    /// Drops every fetch session of every broker (their next incremental
    /// fetch gets FETCH_SESSION_ID_NOT_FOUND).
    pub fn evict_fetch_sessions(&self) {
        self.sessions().by_broker.clear();
    }

    /// The Fetch requests received so far (at most the last 10 000), oldest
    /// first.
    pub fn fetch_log(&self) -> Vec<ReceivedFetch> {
        self.sessions().log.iter().cloned().collect()
    }

    /// Empties the Fetch request log.
    pub fn clear_fetch_log(&self) {
        self.sessions().log.clear();
    }
}
