//! Fetch sessions (KIP-227), the client side: one per broker.
//!
//! The first Fetch (v7+) opens a session (session id 0, epoch 0) and names
//! every partition; the broker answers with a session id. Later fetches
//! carry that id and the next epoch and name only what changed since the
//! last request the broker accepted: partitions added, partitions whose
//! fetch offset moved, and (in `forgotten_topics_data`) partitions removed.
//! The broker answers with only the partitions that have records or news;
//! a partition missing from the answer simply had nothing.
//!
//! A broker that answers session id 0 keeps no session for us (librdkafka's
//! mock cluster and tansu never do): the client then fetches sessionless
//! (full fetches, epoch -1) and asks again only after
//! [`RETRY_UNSUPPORTED`]. FETCH_SESSION_ID_NOT_FOUND starts a new session;
//! INVALID_FETCH_SESSION_EPOCH, any other top-level error and a failed
//! request (connection lost, timeout) close the session and open a new one
//! (the session id with epoch 0), since what the broker holds is unknown.

use super::TopicPartition;
use kpax_proto::generated::ErrorCode;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The session epoch of a sessionless fetch (or closing a session).
pub(crate) const FINAL_EPOCH: i32 = -1;
/// The session epoch that opens a session.
pub(crate) const INITIAL_EPOCH: i32 = 0;
/// How long a broker that declined a session is fetched from sessionless
/// before the client asks for one again.
pub(crate) const RETRY_UNSUPPORTED: Duration = Duration::from_secs(60);

/// One broker's fetch session as the client tracks it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FetchSession {
    /// The broker's session id (0: none).
    id: i32,
    /// The epoch of the next request.
    epoch: i32,
    /// The partitions the broker holds in the session, with the fetch
    /// offset last sent for each.
    partitions: BTreeMap<TopicPartition, i64>,
    /// The broker declined a session then: fetch sessionless until then.
    sessionless_until: Option<Instant>,
}

/// What one Fetch request carries.
#[derive(Debug, Clone)]
pub(crate) struct FetchPlan {
    /// The request's session id.
    pub session_id: i32,
    /// The request's session epoch.
    pub epoch: i32,
    /// The partitions to name in `topics` (with their fetch offsets).
    pub send: Vec<(TopicPartition, i64)>,
    /// The partitions to name in `forgotten_topics_data`.
    pub forget: Vec<TopicPartition>,
    /// Every partition the request fetches (`send` for a full fetch).
    pub all: Vec<(TopicPartition, i64)>,
}

impl FetchPlan {
    /// Whether the request names only changes (an incremental fetch).
    pub fn incremental(&self) -> bool {
        self.epoch > INITIAL_EPOCH
    }

    /// The same fetch without a session (for Fetch below v7).
    pub fn sessionless(mut self) -> FetchPlan {
        self.session_id = 0;
        self.epoch = FINAL_EPOCH;
        self.send = self.all.clone();
        self.forget.clear();
        self
    }
}

fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl FetchSession {
    /// The session id (0: none).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The request that fetches `wanted` (partition, fetch offset) now.
    pub fn plan(&self, wanted: &[(TopicPartition, i64)], now: Instant) -> FetchPlan {
        let all = wanted.to_vec();
        if self.sessionless_until.is_some_and(|t| now < t) {
            return FetchPlan {
                session_id: 0,
                epoch: FINAL_EPOCH,
                send: all.clone(),
                forget: Vec::new(),
                all,
            };
        }
        if self.epoch <= INITIAL_EPOCH {
            return FetchPlan {
                session_id: self.id,
                epoch: INITIAL_EPOCH,
                send: all.clone(),
                forget: Vec::new(),
                all,
            };
        }
        let send = wanted
            .iter()
            .filter(|(tp, off)| self.partitions.get(tp) != Some(off))
            .cloned()
            .collect();
        let forget = self
            .partitions
            .keys()
            .filter(|tp| !wanted.iter().any(|(w, _)| w == *tp))
            .cloned()
            .collect();
        FetchPlan {
            session_id: self.id,
            epoch: self.epoch,
            send,
            forget,
            all,
        }
    }

    /// Takes in the answer to `plan`: its top-level error and session id.
    pub fn answered(&mut self, plan: &FetchPlan, error: ErrorCode, session_id: i32, now: Instant) {
        match error {
            ErrorCode::NONE => {}
            ErrorCode::FETCH_SESSION_ID_NOT_FOUND => {
                *self = FetchSession::default();
                return;
            }
            _ => {
                self.failed();
                return;
            }
        }
        if plan.epoch == FINAL_EPOCH {
            return;
        }
        if plan.epoch == INITIAL_EPOCH && session_id == 0 {
            // the broker keeps no session for us
            *self = FetchSession {
                sessionless_until: Some(now + RETRY_UNSUPPORTED),
                ..FetchSession::default()
            };
            return;
        }
        if plan.incremental() && session_id != self.id {
            // not the session we asked for: start over
            self.failed();
            return;
        }
        self.id = session_id;
        self.epoch = next_epoch(plan.epoch);
        self.partitions = plan.all.iter().cloned().collect();
        self.sessionless_until = None;
    }

    /// The request failed (no answer, or an error): what the broker holds
    /// is unknown, so the next request closes the session and opens a new
    /// one.
    pub fn failed(&mut self) {
        self.epoch = INITIAL_EPOCH;
        self.partitions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    #[test]
    fn opens_then_sends_only_changes() {
        let now = Instant::now();
        let mut s = FetchSession::default();
        let wanted = vec![(tp(0), 5), (tp(1), 7), (tp(2), 0)];
        let p = s.plan(&wanted, now);
        assert_eq!((p.session_id, p.epoch, p.send.len()), (0, 0, 3));
        s.answered(&p, ErrorCode::NONE, 42, now);
        assert_eq!(s.id(), 42);
        // partition 0 moved, 1 unchanged, 2 removed, 3 added
        let wanted = vec![(tp(0), 9), (tp(1), 7), (tp(3), 1)];
        let p = s.plan(&wanted, now);
        assert_eq!((p.session_id, p.epoch), (42, 1));
        assert_eq!(p.send, vec![(tp(0), 9), (tp(3), 1)]);
        assert_eq!(p.forget, vec![tp(2)]);
        s.answered(&p, ErrorCode::NONE, 42, now);
        let p = s.plan(&wanted, now);
        assert_eq!(p.epoch, 2);
        assert!(p.send.is_empty() && p.forget.is_empty());
    }

    #[test]
    fn session_errors_and_failures_start_over() {
        let now = Instant::now();
        let mut s = FetchSession::default();
        let wanted = vec![(tp(0), 5)];
        let p = s.plan(&wanted, now);
        s.answered(&p, ErrorCode::NONE, 7, now);
        let p = s.plan(&wanted, now);
        s.answered(&p, ErrorCode::INVALID_FETCH_SESSION_EPOCH, 0, now);
        let p = s.plan(&wanted, now);
        assert_eq!(
            (p.session_id, p.epoch, p.send.len()),
            (7, 0, 1),
            "close and reopen"
        );
        s.answered(&p, ErrorCode::NONE, 8, now);
        let p = s.plan(&wanted, now);
        s.answered(&p, ErrorCode::FETCH_SESSION_ID_NOT_FOUND, 0, now);
        let p = s.plan(&wanted, now);
        assert_eq!((p.session_id, p.epoch), (0, 0));
        s.answered(&p, ErrorCode::NONE, 9, now);
        s.failed();
        let p = s.plan(&wanted, now);
        assert_eq!((p.session_id, p.epoch, p.send.len()), (9, 0, 1));
    }

    #[test]
    fn a_declined_session_means_sessionless_for_a_while() {
        let now = Instant::now();
        let mut s = FetchSession::default();
        let wanted = vec![(tp(0), 5)];
        let p = s.plan(&wanted, now);
        s.answered(&p, ErrorCode::NONE, 0, now);
        let p = s.plan(&wanted, now);
        assert_eq!((p.session_id, p.epoch, p.send.len()), (0, FINAL_EPOCH, 1));
        s.answered(&p, ErrorCode::NONE, 0, now);
        let later = now + RETRY_UNSUPPORTED;
        let p = s.plan(&wanted, later);
        assert_eq!((p.session_id, p.epoch), (0, INITIAL_EPOCH));
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(3), 4);
    }
}
