//! The words a transaction is spoken in, shared by the producer, the
//! consumer and the errors: the transactional producer's states (KIP-98,
//! the Java client's names) and the group member identity whose offsets a
//! transaction commits (KIP-447). Ground floor: imports nothing of kpax.
//!
//! ```text
//! Uninitialized -> Initializing -> Ready -> InTransaction -> CommittingTransaction -> Ready
//!                                                 |       \-> AbortingTransaction  -> Ready
//!                                                 v                ^
//!                                           AbortableError --------/
//! any state -> FatalError (terminal)
//! ```

use std::fmt;

/// Where a transactional producer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionState {
    /// `init_transactions` has not run (or timed out and may run again).
    Uninitialized,
    /// `init_transactions` is getting a producer id from the coordinator.
    Initializing,
    /// A producer id is held and no transaction is open.
    Ready,
    /// `begin_transaction` ran: sends and offsets join the transaction.
    InTransaction,
    /// `commit_transaction` is flushing and ending the transaction.
    CommittingTransaction,
    /// `abort_transaction` is dropping unsent records and ending the transaction.
    AbortingTransaction,
    /// Part of the transaction failed: only `abort_transaction` helps.
    AbortableError,
    /// The producer cannot go on (fenced, not authorized, ...): every call fails.
    FatalError,
}

impl TransactionState {
    /// Whether the state machine may move from `self` to `to` (the Java
    /// client's table; FatalError is reachable from everywhere and left
    /// by nothing).
    pub fn can_move_to(self, to: TransactionState) -> bool {
        use TransactionState::*;
        if self == FatalError {
            return false;
        }
        match to {
            Uninitialized => self == Initializing,
            Initializing => self == Uninitialized,
            Ready => matches!(
                self,
                Initializing | CommittingTransaction | AbortingTransaction
            ),
            InTransaction => self == Ready,
            CommittingTransaction => self == InTransaction,
            AbortingTransaction => matches!(self, InTransaction | AbortableError),
            AbortableError => {
                matches!(self, InTransaction | CommittingTransaction | AbortableError)
            }
            FatalError => true,
        }
    }
}

impl fmt::Display for TransactionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The consumer group whose offsets a transaction commits, as the group
/// coordinator knows it (fences zombie members, KIP-447).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// The group id.
    pub group_id: String,
    /// The generation the member belongs to (-1: unknown).
    pub generation_id: i32,
    /// The member id ("" when unknown).
    pub member_id: String,
    /// The static member's instance id.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata that names only the group (no generation check by the
    /// coordinator).
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }

    /// Sets generation and member id.
    pub fn with_member(mut self, generation_id: i32, member_id: impl Into<String>) -> Self {
        self.generation_id = generation_id;
        self.member_id = member_id.into();
        self
    }

    /// Sets the static instance id.
    pub fn with_group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }
}
