//! A classic consumer group: members, generations, the join/sync
//! rebalance protocol, session expiry, and the group's committed offsets.
//!
//! Everything here is synchronous and takes the time as an argument so that
//! it can be tested without a clock; the connection tasks wait on
//! [`Group::notify`] for the changes made by [`Group::tick`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kpax_proto::generated::ErrorCode;
use tokio::sync::Notify;

/// Where a group is in its life, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (offsets may still be held).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl GroupState {
    /// The name DescribeGroups and ListGroups report.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// One member of a group.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub last_seen: Instant,
    /// Has (re)joined in the current rebalance and waits for its answer.
    pub awaiting_join: bool,
    pub assignment: Bytes,
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The committed offset.
    pub offset: i64,
    /// The leader epoch the client saw, -1 when unknown.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: Option<String>,
}

/// What a JoinGroup gets before it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JoinStep {
    /// v4+: the member must rejoin with this id (KIP-394).
    MemberIdRequired(String),
    /// Joined: wait for the rebalance to complete.
    Wait(String),
}

/// What a SyncGroup gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SyncStep {
    /// The member's assignment.
    Done(Bytes),
    /// The leader has not synced yet.
    Wait,
}

/// What a JoinGroup answers once the rebalance completed.
#[derive(Debug, Clone)]
pub(crate) struct JoinResult {
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, instance id, metadata) for the leader; empty for others.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

/// A join request's parameters.
#[derive(Debug, Clone)]
pub(crate) struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: an unknown member first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
}

/// A classic group and its offsets.
#[derive(Debug)]
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    pending: HashSet<String>,
    rebalance_started: Instant,
    initial_until: Option<Instant>,
    next_member: u64,
    /// Woken on every state change.
    pub notify: Arc<Notify>,
    /// (topic, partition) -> committed offset.
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// Members of the consumer group protocol (KIP-848), if it is one.
    pub consumer: crate::consumer_group::ConsumerGroup,
}

impl Group {
    pub fn new(id: &str, now: Instant) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashSet::new(),
            rebalance_started: now,
            initial_until: None,
            next_member: 0,
            notify: Arc::new(Notify::new()),
            offsets: BTreeMap::new(),
            consumer: Default::default(),
        }
    }

    /// The state ListGroups and DescribeGroups report: the classic state,
    /// or for a consumer-protocol group `Stable` / `Reconciling` (some
    /// member has not reached its target) / `Empty`.
    pub fn state_name(&self) -> &'static str {
        if self.is_consumer_group() {
            let c = &self.consumer;
            if c.members.is_empty() {
                "Empty"
            } else if c
                .members
                .values()
                .any(|m| m.sent.as_ref() != Some(&m.target))
            {
                "Reconciling"
            } else {
                "Stable"
            }
        } else {
            self.state.name()
        }
    }

    /// Whether the group uses the consumer protocol (KIP-848).
    pub fn is_consumer_group(&self) -> bool {
        self.members.is_empty() && self.consumer.epoch > 0
    }

    /// The protocol type reported for the group.
    pub fn protocol_type_name(&self) -> &str {
        if self.is_consumer_group() {
            "consumer"
        } else {
            self.protocol_type.as_deref().unwrap_or("")
        }
    }

    fn new_member_id(&mut self, client_id: &str) -> String {
        self.next_member += 1;
        format!("{client_id}-{}-{}", self.generation, self.next_member)
    }

    /// Adds or updates a member and starts a rebalance.
    pub fn join(
        &mut self,
        req: JoinRequest,
        now: Instant,
        initial_delay: Duration,
    ) -> Result<JoinStep, ErrorCode> {
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
        }
        if !self.members.is_empty() {
            let same_type = self.protocol_type.as_deref() == Some(req.protocol_type.as_str());
            let shared = req
                .protocols
                .iter()
                .any(|(p, _)| self.members.values().all(|m| m.supports(p)));
            if !same_type || !shared {
                return Err(ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
            }
        }
        let id = if req.member_id.is_empty() {
            let id = self.new_member_id(&req.client_id);
            if req.require_known_member_id {
                self.pending.insert(id.clone());
                return Ok(JoinStep::MemberIdRequired(id));
            }
            id
        } else if self.members.contains_key(&req.member_id) || self.pending.remove(&req.member_id) {
            req.member_id.clone()
        } else {
            return Err(ErrorCode::UNKNOWN_MEMBER_ID);
        };
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let member = Member {
            id: id.clone(),
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            protocols: req.protocols,
            last_seen: now,
            awaiting_join: true,
            assignment: Bytes::new(),
        };
        self.members.insert(id.clone(), member);
        if self.state != GroupState::PreparingRebalance {
            self.begin_rebalance(now, initial_delay);
        }
        self.notify.notify_waiters();
        Ok(JoinStep::Wait(id))
    }

    fn begin_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        self.initial_until = (self.state == GroupState::Empty).then(|| now + initial_delay);
        self.state = GroupState::PreparingRebalance;
        self.rebalance_started = now;
        self.notify.notify_waiters();
    }

    /// The answer to a member's JoinGroup once its rebalance completed:
    /// `Ok(None)` while it still waits, an error when it was removed.
    pub fn join_result(&self, member_id: &str) -> Result<Option<JoinResult>, ErrorCode> {
        let member = self
            .members
            .get(member_id)
            .ok_or(ErrorCode::UNKNOWN_MEMBER_ID)?;
        if member.awaiting_join || self.state == GroupState::PreparingRebalance {
            if !member.awaiting_join {
                // Completed, then another rebalance started before this
                // member read its answer: it must rejoin.
                return Err(ErrorCode::REBALANCE_IN_PROGRESS);
            }
            return Ok(None);
        }
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| {
                    let meta = m
                        .protocols
                        .iter()
                        .find(|(p, _)| Some(p) == protocol.as_ref())
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default();
                    (m.id.clone(), m.instance_id.clone(), meta)
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Some(JoinResult {
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol,
            leader,
            member_id: member_id.to_string(),
            members,
        }))
    }

    fn check_member(&self, member_id: &str, generation: i32) -> Result<(), ErrorCode> {
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UNKNOWN_MEMBER_ID);
        }
        if generation != self.generation {
            return Err(ErrorCode::ILLEGAL_GENERATION);
        }
        Ok(())
    }

    /// SyncGroup: the leader hands out assignments; everyone gets theirs.
    pub fn sync(
        &mut self,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Result<SyncStep, ErrorCode> {
        self.check_member(member_id, generation)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
        match self.state {
            GroupState::PreparingRebalance => Err(ErrorCode::REBALANCE_IN_PROGRESS),
            GroupState::Empty => Err(ErrorCode::UNKNOWN_MEMBER_ID),
            GroupState::Stable => Ok(SyncStep::Done(self.members[member_id].assignment.clone())),
            GroupState::CompletingRebalance => {
                if self.leader.as_deref() != Some(member_id) {
                    return Ok(SyncStep::Wait);
                }
                for m in self.members.values_mut() {
                    m.assignment = Bytes::new();
                }
                for (id, a) in assignments {
                    if let Some(m) = self.members.get_mut(&id) {
                        m.assignment = a;
                    }
                }
                self.state = GroupState::Stable;
                self.notify.notify_waiters();
                Ok(SyncStep::Done(self.members[member_id].assignment.clone()))
            }
        }
    }

    /// A follower's SyncGroup after waiting: its assignment once the leader
    /// synced.
    pub fn sync_result(&self, member_id: &str, generation: i32) -> Result<SyncStep, ErrorCode> {
        self.check_member(member_id, generation)?;
        match self.state {
            GroupState::Stable => Ok(SyncStep::Done(self.members[member_id].assignment.clone())),
            GroupState::CompletingRebalance => Ok(SyncStep::Wait),
            _ => Err(ErrorCode::REBALANCE_IN_PROGRESS),
        }
    }

    /// Heartbeat: keeps the member alive; tells it when to rejoin.
    pub fn heartbeat(&mut self, member_id: &str, generation: i32, now: Instant) -> ErrorCode {
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
        if let Err(e) = self.check_member(member_id, generation) {
            return e;
        }
        match self.state {
            GroupState::PreparingRebalance => ErrorCode::REBALANCE_IN_PROGRESS,
            _ => ErrorCode::NONE,
        }
    }

    /// LeaveGroup of one member.
    pub fn leave(&mut self, member_id: &str, now: Instant) -> ErrorCode {
        if self.members.remove(member_id).is_none() {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        }
        self.after_removal(now);
        ErrorCode::NONE
    }

    fn after_removal(&mut self, now: Instant) {
        if self.members.is_empty() {
            self.become_empty();
        } else if self.state != GroupState::PreparingRebalance {
            self.begin_rebalance(now, Duration::ZERO);
        }
        self.notify.notify_waiters();
    }

    fn become_empty(&mut self) {
        self.state = GroupState::Empty;
        self.generation += 1;
        self.leader = None;
        self.protocol = None;
        self.protocol_type = None;
        self.initial_until = None;
        self.notify.notify_waiters();
    }

    /// OffsetCommit's membership check: `generation < 0` is a commit from
    /// outside the group, allowed.
    pub fn check_commit(&self, member_id: &str, generation: i32) -> ErrorCode {
        if generation < 0 && member_id.is_empty() {
            return ErrorCode::NONE;
        }
        if !self.consumer.members.is_empty() {
            return self.consumer.check_commit(member_id, generation);
        }
        if let Err(e) = self.check_member(member_id, generation) {
            return e;
        }
        if self.state == GroupState::CompletingRebalance {
            return ErrorCode::REBALANCE_IN_PROGRESS;
        }
        ErrorCode::NONE
    }

    /// Refreshes a member's session (commits count as liveness).
    pub fn touch(&mut self, member_id: &str, now: Instant) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
    }

    /// Advances time: expires members whose session ran out and completes
    /// a rebalance when everyone joined (after the initial delay) or its
    /// time is up. Returns whether anything changed.
    pub fn tick(&mut self, now: Instant) -> bool {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && now.duration_since(m.last_seen) > m.session_timeout)
            .map(|m| m.id.clone())
            .collect();
        let mut changed = false;
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "session expired");
            self.members.remove(id);
            changed = true;
        }
        if changed {
            self.after_removal(now);
        }
        if self.state == GroupState::PreparingRebalance {
            let all_joined = self.members.values().all(|m| m.awaiting_join);
            let delay_over = self.initial_until.is_none_or(|t| now >= t);
            let timeout = self
                .members
                .values()
                .map(|m| m.rebalance_timeout)
                .max()
                .unwrap_or_default();
            let timed_out = now >= self.rebalance_started + timeout;
            if (all_joined && delay_over) || timed_out {
                self.complete_join(now);
                changed = true;
            }
        }
        changed
    }

    fn complete_join(&mut self, now: Instant) {
        self.members.retain(|_, m| m.awaiting_join);
        if self.members.is_empty() {
            self.become_empty();
            return;
        }
        self.generation += 1;
        // The first protocol of the first member that every member supports.
        let first = self.members.values().next().map(|m| m.protocols.clone());
        self.protocol = first.and_then(|ps| {
            ps.into_iter()
                .map(|(p, _)| p)
                .find(|p| self.members.values().all(|m| m.supports(p)))
        });
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        for m in self.members.values_mut() {
            m.awaiting_join = false;
            m.last_seen = now;
        }
        self.state = GroupState::CompletingRebalance;
        self.notify.notify_waiters();
    }
}

impl Member {
    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(p, _)| p == protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(member: &str, v4: bool) -> JoinRequest {
        JoinRequest {
            member_id: member.to_string(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: v4,
        }
    }

    fn joined(g: &mut Group, now: Instant, v4: bool) -> String {
        let delay = Duration::from_millis(100);
        let id = match g.join(req("", v4), now, delay).unwrap() {
            JoinStep::MemberIdRequired(id) => {
                assert!(v4);
                match g.join(req(&id, v4), now, delay).unwrap() {
                    JoinStep::Wait(id2) => id2,
                    other => panic!("{other:?}"),
                }
            }
            JoinStep::Wait(id) => id,
        };
        id
    }

    #[test]
    fn two_members_join_sync_and_rebalance_on_leave() {
        let t0 = Instant::now();
        let mut g = Group::new("g", t0);
        let a = joined(&mut g, t0, true);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        // The initial delay holds the rebalance open for a second member.
        assert!(!g.tick(t0 + Duration::from_millis(10)));
        let b = joined(&mut g, t0 + Duration::from_millis(20), false);
        assert_eq!(g.join_result(&a).unwrap().map(|r| r.generation), None);
        assert!(g.tick(t0 + Duration::from_millis(150)));
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let ra = g.join_result(&a).unwrap().unwrap();
        let rb = g.join_result(&b).unwrap().unwrap();
        assert_eq!(ra.generation, 1);
        assert_eq!(ra.leader, rb.leader);
        assert_eq!(ra.protocol.as_deref(), Some("range"));
        let (leader, follower) = if ra.leader == a { (a, b) } else { (b, a) };
        assert_eq!(g.join_result(&leader).unwrap().unwrap().members.len(), 2);
        assert!(g
            .join_result(&follower)
            .unwrap()
            .unwrap()
            .members
            .is_empty());
        let now = t0 + Duration::from_millis(200);
        assert_eq!(g.sync(&follower, 1, vec![], now), Ok(SyncStep::Wait));
        let assignments = vec![
            (leader.clone(), Bytes::from_static(b"L")),
            (follower.clone(), Bytes::from_static(b"F")),
        ];
        assert_eq!(
            g.sync(&leader, 1, assignments, now),
            Ok(SyncStep::Done(Bytes::from_static(b"L")))
        );
        assert_eq!(
            g.sync_result(&follower, 1),
            Ok(SyncStep::Done(Bytes::from_static(b"F")))
        );
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&follower, 1, now), ErrorCode::NONE);
        assert_eq!(
            g.heartbeat(&follower, 0, now),
            ErrorCode::ILLEGAL_GENERATION
        );
        assert_eq!(g.heartbeat("x", 1, now), ErrorCode::UNKNOWN_MEMBER_ID);
        assert_eq!(g.check_commit(&follower, 1), ErrorCode::NONE);
        // The leader leaves: the follower is told to rejoin.
        assert_eq!(g.leave(&leader, now), ErrorCode::NONE);
        assert_eq!(
            g.heartbeat(&follower, 1, now),
            ErrorCode::REBALANCE_IN_PROGRESS
        );
        g.join(req(&follower, true), now, Duration::ZERO).unwrap();
        assert!(g.tick(now));
        let r = g.join_result(&follower).unwrap().unwrap();
        assert_eq!((r.generation, r.leader.as_str()), (2, follower.as_str()));
    }

    #[test]
    fn session_timeout_expires_members() {
        let t0 = Instant::now();
        let mut g = Group::new("g", t0);
        let a = joined(&mut g, t0, false);
        g.tick(t0 + Duration::from_millis(100));
        g.sync(&a, 1, vec![(a.clone(), Bytes::new())], t0).unwrap();
        assert!(!g.tick(t0 + Duration::from_secs(5)));
        assert!(g.tick(t0 + Duration::from_secs(11)));
        assert_eq!(g.state, GroupState::Empty);
        assert!(g.members.is_empty());
        assert_eq!(g.heartbeat(&a, 1, t0), ErrorCode::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn rebalance_timeout_drops_members_that_did_not_rejoin() {
        let t0 = Instant::now();
        let mut g = Group::new("g", t0);
        let a = joined(&mut g, t0, false);
        g.tick(t0 + Duration::from_millis(100));
        let b = joined(&mut g, t0 + Duration::from_millis(200), false);
        // a never rejoins (but keeps heartbeating).
        let t = t0 + Duration::from_secs(5);
        assert_eq!(g.heartbeat(&a, 1, t), ErrorCode::REBALANCE_IN_PROGRESS);
        assert!(!g.tick(t));
        assert!(g.tick(t0 + Duration::from_secs(31)));
        assert_eq!(g.members.keys().collect::<Vec<_>>(), [&b]);
        assert_eq!(g.join_result(&a).unwrap_err(), ErrorCode::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn unknown_member_and_inconsistent_protocol() {
        let t0 = Instant::now();
        let mut g = Group::new("g", t0);
        assert_eq!(
            g.join(req("nobody", true), t0, Duration::ZERO),
            Err(ErrorCode::UNKNOWN_MEMBER_ID)
        );
        joined(&mut g, t0, false);
        let mut other = req("", false);
        other.protocols = vec![("roundrobin".into(), Bytes::new())];
        assert_eq!(
            g.join(other, t0, Duration::ZERO),
            Err(ErrorCode::INCONSISTENT_GROUP_PROTOCOL)
        );
        assert_eq!(g.check_commit("", -1), ErrorCode::NONE);
    }
}
