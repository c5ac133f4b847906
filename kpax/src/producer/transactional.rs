//! The transactional producer's calls: init, begin, send offsets, commit,
//! abort (KIP-98, with the KIP-360 epoch bump on abort after a lost
//! sequence).

use super::coordinator::{error_is_fatal, Coordinators};
use super::transaction::Txn;
use super::{ConsumerGroupMetadata, Producer};
use crate::error::TransactionError;
use crate::error::{Error, Result};
use crate::transaction::TransactionState;
use std::collections::BTreeMap;
use std::time::Instant;

impl Producer {
    fn txn(&self, operation: &'static str) -> Result<&Txn> {
        self.shared
            .txn
            .as_ref()
            .ok_or(Error::Transaction(TransactionError::NotTransactional {
                operation,
            }))
    }

    fn coordinators<'a>(&'a self, t: &'a Txn) -> Coordinators<'a> {
        Coordinators {
            cluster: &self.shared.cluster,
            transactional_id: &t.id,
            retry_backoff: self.shared.config.retry_backoff,
            retry_backoff_max: self.shared.config.retry_backoff_max,
            deadline: Instant::now() + self.shared.config.max_block,
        }
    }

    /// Moves to `to`, under the accumulator's lock so that no send slips
    /// between the state check of `send` and the move.
    fn move_to(&self, t: &Txn, operation: &'static str, to: TransactionState) -> Result<()> {
        let _acc = self.shared.lock();
        t.lock().machine.move_to(operation, to)?;
        Ok(())
    }

    /// A request of the transaction failed: fatal errors make the producer
    /// fatal, others (when `abortable`) make the transaction abortable.
    /// Returns the error the caller sees.
    fn txn_failed(&self, t: &Txn, e: Error, abortable: bool) -> Error {
        if error_is_fatal(&e) {
            t.lock().machine.fatal(e.clone());
            return Error::Transaction(TransactionError::Fatal(Box::new(e)));
        }
        if abortable {
            t.lock().machine.abortable(e.clone());
            return Error::Transaction(TransactionError::Abortable(Box::new(e)));
        }
        e
    }

    /// EndTxn (or the epoch bump after it) failed: a retriable error
    /// leaves the call to be made again; any other is fatal, as in the
    /// Java client.
    fn end_failed(&self, t: &Txn, e: Error) -> Error {
        if e.is_retriable() {
            return e;
        }
        t.lock().machine.fatal(e.clone());
        Error::Transaction(TransactionError::Fatal(Box::new(e)))
    }

    /// The transaction's state; `None` for a producer without a
    /// transactional id.
    pub fn transaction_state(&self) -> Option<TransactionState> {
        self.shared.txn.as_ref().map(|t| t.lock().machine.state())
    }

    /// Gets the producer id and epoch for the transactional id from its
    /// coordinator (FindCoordinator, InitProducerId), fencing any older
    /// producer with the same id and letting the coordinator finish its
    /// open transaction. Call once, before the first transaction.
    ///
    /// # Errors
    /// [`TransactionError::NotTransactional`], [`TransactionError::InvalidState`]
    /// when called twice; [`TransactionError::Fatal`] for fatal broker
    /// errors (not authorized, ...); a retriable error (the call may be
    /// made again) when the coordinator stays unavailable past `max_block`.
    pub async fn init_transactions(&self) -> Result<()> {
        let t = self.txn("init_transactions")?;
        let _op = t.op.lock().await;
        self.move_to(t, "init_transactions", TransactionState::Initializing)?;
        match self.coordinators(t).init_producer_id(t.timeout, None).await {
            Ok(pid) => {
                let _acc = {
                    let mut acc = self.shared.lock();
                    acc.reset_sequences();
                    acc
                };
                let mut g = t.lock();
                g.producer = Some(pid);
                g.machine
                    .move_to("init_transactions", TransactionState::Ready)?;
                tracing::debug!(transactional_id = %t.id, producer_id = pid.0, epoch = pid.1, "transactions initialized");
                Ok(())
            }
            Err(e) if error_is_fatal(&e) => Err(self.txn_failed(t, e, false)),
            Err(e) => {
                t.lock()
                    .machine
                    .move_to("init_transactions", TransactionState::Uninitialized)?;
                Err(e)
            }
        }
    }

    /// Opens a transaction: records sent from now until the commit or
    /// abort belong to it.
    ///
    /// # Errors
    /// [`TransactionError::InvalidState`] unless the producer is Ready
    /// (initialized, no transaction open); the stored error in the
    /// abortable or fatal state.
    pub fn begin_transaction(&self) -> Result<()> {
        let t = self.txn("begin_transaction")?;
        self.move_to(t, "begin_transaction", TransactionState::InTransaction)?;
        let mut g = t.lock();
        g.partitions.clear();
        g.started = false;
        Ok(())
    }

    /// Makes committing `offsets` ([`crate::TopicPartition`] -> next offset
    /// to consume) for the consumer group `group`, part of the transaction:
    /// AddOffsetsToTxn to the transaction coordinator, then TxnOffsetCommit
    /// to the group coordinator. The group sees them only if the
    /// transaction commits.
    ///
    /// # Errors
    /// [`TransactionError::InvalidState`] outside a transaction;
    /// [`TransactionError::Abortable`] when the coordinators refuse
    /// (the transaction must then be aborted); [`TransactionError::Fatal`].
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: impl IntoIterator<Item = (crate::topic_partition::TopicPartition, i64)>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let t = self.txn("send_offsets_to_transaction")?;
        let _op = t.op.lock().await;
        let producer = {
            let g = t.lock();
            match g.machine.state() {
                TransactionState::InTransaction => g.producer,
                TransactionState::AbortableError | TransactionState::FatalError => {
                    return Err(g.machine.failure().map(Error::Transaction).unwrap_or(
                        Error::Transaction(TransactionError::InvalidState {
                            operation: "send_offsets_to_transaction",
                            state: g.machine.state(),
                        }),
                    ))
                }
                state => {
                    return Err(Error::Transaction(TransactionError::InvalidState {
                        operation: "send_offsets_to_transaction",
                        state,
                    }))
                }
            }
        };
        let Some(producer) = producer else {
            return Err(Error::Transaction(TransactionError::InvalidState {
                operation: "send_offsets_to_transaction",
                state: TransactionState::Uninitialized,
            }));
        };
        let offsets: BTreeMap<(String, i32), i64> = offsets
            .into_iter()
            .map(|(tp, o)| ((tp.topic, tp.partition), o))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let c = self.coordinators(t);
        if let Err(e) = c.add_offsets(producer, &group.group_id).await {
            return Err(self.txn_failed(t, e, true));
        }
        t.lock().started = true;
        if let Err(e) = c.commit_offsets(producer, group, &offsets).await {
            return Err(self.txn_failed(t, e, true));
        }
        Ok(())
    }

    /// Sends every record of the transaction and waits for all of them to
    /// be written, then commits the transaction (EndTxn): consumers with
    /// isolation level read_committed see its records, and the group
    /// offsets sent with it take effect.
    ///
    /// # Errors
    /// [`TransactionError::InvalidState`] without an open transaction;
    /// [`TransactionError::Abortable`] when a record failed (nothing was
    /// committed: abort); [`TransactionError::Fatal`]; a retriable error
    /// when the coordinator stays unavailable past `max_block` (the state
    /// stays CommittingTransaction and the call may be made again).
    pub async fn commit_transaction(&self) -> Result<()> {
        let t = self.txn("commit_transaction")?;
        let _op = t.op.lock().await;
        if t.lock().machine.state() != TransactionState::CommittingTransaction {
            self.move_to(
                t,
                "commit_transaction",
                TransactionState::CommittingTransaction,
            )?;
        }
        self.flush().await;
        let (producer, started) = {
            let g = t.lock();
            if let Some(f) = g.machine.failure() {
                return Err(Error::Transaction(f));
            }
            (g.producer, g.started)
        };
        if started {
            let Some(producer) = producer else {
                return Err(Error::Transaction(TransactionError::InvalidState {
                    operation: "commit_transaction",
                    state: TransactionState::Uninitialized,
                }));
            };
            if let Err(e) = self.coordinators(t).end(producer, true).await {
                // A retriable error leaves the commit to be called again.
                return Err(self.end_failed(t, e));
            }
        }
        let mut g = t.lock();
        g.machine
            .move_to("commit_transaction", TransactionState::Ready)?;
        g.partitions.clear();
        g.started = false;
        Ok(())
    }

    /// Aborts the transaction: records not yet sent fail with
    /// [`TransactionError::Aborted`], records in flight are waited for,
    /// and the coordinator writes abort markers (EndTxn) so that
    /// read_committed consumers skip the transaction. When a sequence was
    /// lost, the epoch is bumped (KIP-360) so the producer can go on.
    ///
    /// # Errors
    /// [`TransactionError::InvalidState`] without an open transaction;
    /// [`TransactionError::Fatal`]; a retriable error when the coordinator
    /// stays unavailable past `max_block` (the call may be made again).
    pub async fn abort_transaction(&self) -> Result<()> {
        let t = self.txn("abort_transaction")?;
        let _op = t.op.lock().await;
        if t.lock().machine.state() != TransactionState::AbortingTransaction {
            self.move_to(
                t,
                "abort_transaction",
                TransactionState::AbortingTransaction,
            )?;
        }
        let (n, stamped) = self
            .shared
            .lock()
            .fail_unsent(|| Error::Transaction(TransactionError::Aborted));
        self.shared.resolve(n);
        if stamped {
            t.lock().bump_epoch = true;
        }
        self.flush().await;
        let (producer, started, bump) = {
            let g = t.lock();
            if g.machine.state() == TransactionState::FatalError {
                return Err(g
                    .machine
                    .failure()
                    .map(Error::Transaction)
                    .unwrap_or(Error::ProducerClosed));
            }
            (g.producer, g.started, g.bump_epoch)
        };
        let Some(producer) = producer else {
            return Err(Error::Transaction(TransactionError::InvalidState {
                operation: "abort_transaction",
                state: TransactionState::Uninitialized,
            }));
        };
        let c = self.coordinators(t);
        if started {
            if let Err(e) = c.end(producer, false).await {
                return Err(self.end_failed(t, e));
            }
        }
        if bump {
            match c.init_producer_id(t.timeout, Some(producer)).await {
                Ok(pid) => {
                    let mut acc = self.shared.lock();
                    acc.reset_sequences();
                    let mut g = t.lock();
                    g.producer = Some(pid);
                    g.bump_epoch = false;
                    tracing::debug!(transactional_id = %t.id, epoch = pid.1, "epoch bumped after abort");
                }
                // No bump possible (UnsupportedVersion, an old broker) is
                // fatal: the lost sequence cannot be recovered.
                Err(e) => return Err(self.end_failed(t, e)),
            }
        }
        let mut g = t.lock();
        g.machine
            .move_to("abort_transaction", TransactionState::Ready)?;
        g.partitions.clear();
        g.started = false;
        Ok(())
    }
}
