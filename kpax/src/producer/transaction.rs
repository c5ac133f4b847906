//! The transactional producer's state machine (KIP-98), with the Java
//! client's state names, and the errors a transaction can end in.
//!
//! ```text
//! Uninitialized -> Initializing -> Ready -> InTransaction -> CommittingTransaction -> Ready
//!                                                 |       \-> AbortingTransaction  -> Ready
//!                                                 v                ^
//!                                           AbortableError --------/
//! any state -> FatalError (terminal)
//! ```

use crate::error::{Error, TransactionError};
use crate::transaction::TransactionState;

/// The state and the error that put the producer into AbortableError or
/// FatalError.
#[derive(Debug)]
pub(crate) struct StateMachine {
    state: TransactionState,
    error: Option<Error>,
}

impl Default for StateMachine {
    fn default() -> Self {
        StateMachine {
            state: TransactionState::Uninitialized,
            error: None,
        }
    }
}

impl StateMachine {
    /// The current state.
    pub fn state(&self) -> TransactionState {
        self.state
    }

    /// The error behind AbortableError / FatalError, as the caller sees it.
    pub fn failure(&self) -> Option<TransactionError> {
        let e = Box::new(self.error.clone()?);
        match self.state {
            TransactionState::FatalError => Some(TransactionError::Fatal(e)),
            TransactionState::AbortableError => Some(TransactionError::Abortable(e)),
            _ => None,
        }
    }

    /// Moves to `to` for `operation`; a move the table forbids is
    /// [`TransactionError::InvalidState`], or the stored failure when the
    /// producer is in FatalError (or AbortableError and `to` is not an abort).
    pub fn move_to(
        &mut self,
        operation: &'static str,
        to: TransactionState,
    ) -> Result<(), TransactionError> {
        if !self.state.can_move_to(to) {
            if self.state == TransactionState::FatalError
                || (self.state == TransactionState::AbortableError
                    && to != TransactionState::AbortingTransaction)
            {
                if let Some(f) = self.failure() {
                    return Err(f);
                }
            }
            return Err(TransactionError::InvalidState {
                operation,
                state: self.state,
            });
        }
        self.state = to;
        if !matches!(
            to,
            TransactionState::AbortableError | TransactionState::FatalError
        ) {
            self.error = None;
        }
        Ok(())
    }

    /// Enters AbortableError with `error` (kept when already there: the
    /// first failure is the one reported). Ignored outside a transaction.
    pub fn abortable(&mut self, error: Error) {
        if self.state == TransactionState::AbortableError {
            return;
        }
        if self.state.can_move_to(TransactionState::AbortableError) {
            self.state = TransactionState::AbortableError;
            self.error = Some(error);
        }
    }

    /// Enters FatalError with `error` (the first fatal error is kept).
    pub fn fatal(&mut self, error: Error) {
        if self.state != TransactionState::FatalError {
            self.state = TransactionState::FatalError;
            self.error = Some(error);
        }
    }

    /// `Ok` when the producer may send records now (InTransaction);
    /// otherwise the error `send` gives.
    pub fn check_send(&self) -> Result<(), TransactionError> {
        match self.state {
            TransactionState::InTransaction => Ok(()),
            TransactionState::AbortableError | TransactionState::FatalError => {
                Err(self.failure().unwrap_or(TransactionError::InvalidState {
                    operation: "send",
                    state: self.state,
                }))
            }
            state => Err(TransactionError::InvalidState {
                operation: "send",
                state,
            }),
        }
    }
}

/// A transactional producer's transaction: its state, producer id, and
/// what the current transaction holds. Lock order: the accumulator's lock
/// before this one, never the other way round.
pub(crate) struct Txn {
    /// The transactional id.
    pub id: String,
    /// Sent in InitProducerId.
    pub timeout: std::time::Duration,
    /// One init / commit / abort / send-offsets call at a time.
    pub op: tokio::sync::Mutex<()>,
    inner: std::sync::Mutex<TxnInner>,
}

/// What [`Txn`] guards.
#[derive(Default)]
pub(crate) struct TxnInner {
    /// The state machine.
    pub machine: StateMachine,
    /// The producer id and epoch from InitProducerId.
    pub producer: Option<(i64, i16)>,
    /// Partitions added to the current transaction.
    pub partitions: std::collections::HashSet<(String, i32)>,
    /// Whether the coordinator knows of the transaction (a partition or a
    /// group's offsets were added), so that it must be ended with EndTxn.
    pub started: bool,
    /// A sequence was lost (KIP-360): bump the epoch when aborting.
    pub bump_epoch: bool,
}

impl Txn {
    /// A transaction for `id`, Uninitialized.
    pub fn new(id: String, timeout: std::time::Duration) -> Txn {
        Txn {
            id,
            timeout,
            op: tokio::sync::Mutex::new(()),
            inner: std::sync::Mutex::new(TxnInner::default()),
        }
    }

    /// The guarded state.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, TxnInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The producer id and epoch, once initialized.
    pub fn producer(&self) -> Option<(i64, i16)> {
        self.lock().producer
    }

    /// A record or request of the transaction failed with `e`: fatal or
    /// abortable by its kind.
    pub fn failed(&self, e: &Error) {
        let mut t = self.lock();
        if super::coordinator::error_is_fatal(e) {
            tracing::warn!(transactional_id = %self.id, error = %e, "transactional producer failed fatally");
            t.machine.fatal(e.clone());
        } else {
            t.machine.abortable(e.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TransactionState::*;
    use super::*;

    fn at(state: TransactionState) -> StateMachine {
        StateMachine { state, error: None }
    }

    fn boom() -> Error {
        Error::Config("boom".into())
    }

    #[test]
    fn init_moves_uninitialized_to_ready() {
        let mut m = StateMachine::default();
        assert_eq!(m.state(), Uninitialized);
        m.move_to("init", Initializing).unwrap();
        m.move_to("init", Ready).unwrap();
        assert_eq!(m.state(), Ready);
    }

    #[test]
    fn init_that_times_out_may_run_again() {
        let mut m = at(Initializing);
        m.move_to("init", Uninitialized).unwrap();
        m.move_to("init", Initializing).unwrap();
    }

    #[test]
    fn init_twice_is_misuse() {
        let mut m = at(Ready);
        assert!(matches!(
            m.move_to("init_transactions", Initializing),
            Err(TransactionError::InvalidState { state: Ready, .. })
        ));
    }

    #[test]
    fn begin_only_from_ready() {
        at(Ready).move_to("begin", InTransaction).unwrap();
        for s in [
            Uninitialized,
            Initializing,
            InTransaction,
            CommittingTransaction,
            AbortingTransaction,
        ] {
            assert!(
                matches!(
                    at(s).move_to("begin", InTransaction),
                    Err(TransactionError::InvalidState { .. })
                ),
                "begin from {s}"
            );
        }
    }

    #[test]
    fn commit_only_from_in_transaction() {
        let mut m = at(InTransaction);
        m.move_to("commit", CommittingTransaction).unwrap();
        m.move_to("commit", Ready).unwrap();
        assert!(matches!(
            at(Ready).move_to("commit", CommittingTransaction),
            Err(TransactionError::InvalidState { state: Ready, .. })
        ));
        assert!(matches!(
            at(Uninitialized).move_to("commit", CommittingTransaction),
            Err(TransactionError::InvalidState { .. })
        ));
    }

    #[test]
    fn abort_from_in_transaction_and_abortable_error() {
        let mut m = at(InTransaction);
        m.move_to("abort", AbortingTransaction).unwrap();
        m.move_to("abort", Ready).unwrap();
        let mut m = at(InTransaction);
        m.abortable(boom());
        m.move_to("abort", AbortingTransaction).unwrap();
        assert!(m.failure().is_none(), "the error is cleared by the abort");
        assert!(matches!(
            at(Ready).move_to("abort", AbortingTransaction),
            Err(TransactionError::InvalidState { .. })
        ));
    }

    #[test]
    fn abortable_error_blocks_everything_but_abort() {
        let mut m = at(InTransaction);
        m.abortable(boom());
        assert_eq!(m.state(), AbortableError);
        assert!(matches!(
            m.move_to("commit", CommittingTransaction),
            Err(TransactionError::Abortable(_))
        ));
        assert!(matches!(
            m.check_send(),
            Err(TransactionError::Abortable(_))
        ));
        // The first failure is the one reported.
        m.abortable(Error::Config("second".into()));
        assert!(m.failure().unwrap().to_string().contains("boom"));
    }

    #[test]
    fn commit_failure_is_abortable() {
        let mut m = at(CommittingTransaction);
        m.abortable(boom());
        assert_eq!(m.state(), AbortableError);
    }

    #[test]
    fn abortable_is_ignored_outside_a_transaction() {
        let mut m = at(Ready);
        m.abortable(boom());
        assert_eq!(m.state(), Ready);
    }

    #[test]
    fn fatal_is_terminal() {
        for s in [
            Uninitialized,
            Ready,
            InTransaction,
            CommittingTransaction,
            AbortingTransaction,
            AbortableError,
        ] {
            let mut m = at(s);
            m.fatal(boom());
            assert_eq!(m.state(), FatalError);
            for to in [
                Initializing,
                Ready,
                InTransaction,
                CommittingTransaction,
                AbortingTransaction,
            ] {
                assert!(
                    matches!(m.move_to("x", to), Err(TransactionError::Fatal(_))),
                    "{s} -> fatal -> {to}"
                );
            }
            assert!(matches!(m.check_send(), Err(TransactionError::Fatal(_))));
        }
    }

    #[test]
    fn send_only_in_a_transaction() {
        assert!(at(InTransaction).check_send().is_ok());
        for s in [Uninitialized, Ready, CommittingTransaction] {
            assert!(matches!(
                at(s).check_send(),
                Err(TransactionError::InvalidState {
                    operation: "send",
                    ..
                })
            ));
        }
    }
}
