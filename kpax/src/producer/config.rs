//! Producer settings.

use super::partitioner::{DefaultPartitioner, Partitioner};
use kpax_proto::records::Compression;
use std::sync::Arc;
use std::time::Duration;

/// How many acknowledgements a produce waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Fire and forget: no response, offsets unknown (-1).
    None,
    /// The leader has written the records.
    Leader,
    /// Every in-sync replica has them (required for idempotence).
    All,
}

impl Acks {
    pub(crate) fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings; `ProducerConfig::default()` then the `with_*` methods.
#[derive(Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// Acknowledgements per request.
    pub acks: Acks,
    /// How long a batch waits for more records before it is sent.
    pub linger: Duration,
    /// Target size of one batch in bytes (a larger record makes its own batch).
    pub batch_size: usize,
    /// The most bytes of records buffered in the producer; `send` waits beyond it.
    pub buffer_memory: usize,
    /// The largest record (and request) accepted.
    pub max_request_size: usize,
    /// Compression of every batch.
    pub compression: Compression,
    /// A batch whose first record is smaller than this many bytes copies
    /// its records into its buffer at `send`. Other batches (every batch,
    /// by default: 0) hold their records by reference — the key, value
    /// and header `Bytes` — until the task that sends the batch writes it
    /// into a buffer (recycled from sent batches when one is free),
    /// outside the producer's lock. Holding costs
    /// no copy at `send` and no fresh pages while records wait, but a
    /// value that is a slice of a larger buffer (a consumer's fetched
    /// record, say) keeps all of that buffer alive until its batch is
    /// written, while the buffer budget counts only the record's own
    /// bytes: set `usize::MAX` (copy every record) when forwarding a sparse
    /// selection of another buffer's records, or detach them with
    /// `Bytes::copy_from_slice`.
    pub copy_records_below: usize,
    /// How long a record may take from `send` to its outcome, retries included.
    pub delivery_timeout: Duration,
    /// The broker-side produce timeout sent in each request.
    pub produce_timeout: Duration,
    /// First wait before retrying a partition after an error.
    pub retry_backoff: Duration,
    /// Longest wait between retries.
    pub retry_backoff_max: Duration,
    /// Idempotence: producer id + sequence numbers, so retries never
    /// duplicate or reorder (needs `Acks::All`; on by default).
    pub idempotence: bool,
    /// Most produce requests in flight per broker.
    pub max_in_flight_per_broker: usize,
    /// The partitioner.
    pub partitioner: Arc<dyn Partitioner>,
    /// How long `send` may wait for a topic's metadata while it is
    /// retriably unavailable (a leader election, a broker restarting).
    pub max_block: Duration,
    /// The transactional id: set, the producer is transactional (KIP-98)
    /// and idempotent; see [`ProducerConfig::with_transactional_id`].
    pub transactional_id: Option<String>,
    /// How long the transaction coordinator lets a transaction stay open
    /// before it aborts it (sent in InitProducerId).
    pub transaction_timeout: Duration,
}

impl std::fmt::Debug for ProducerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerConfig")
            .field("acks", &self.acks)
            .field("linger", &self.linger)
            .field("batch_size", &self.batch_size)
            .field("buffer_memory", &self.buffer_memory)
            .field("compression", &self.compression)
            .field("idempotence", &self.idempotence)
            .field("max_block", &self.max_block)
            .field("transactional_id", &self.transactional_id)
            .finish_non_exhaustive()
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 64 * 1024,
            buffer_memory: 32 * 1024 * 1024,
            max_request_size: 1024 * 1024,
            compression: Compression::None,
            copy_records_below: 0,
            delivery_timeout: Duration::from_secs(120),
            produce_timeout: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            idempotence: true,
            max_in_flight_per_broker: 5,
            partitioner: Arc::new(DefaultPartitioner::default()),
            max_block: Duration::from_secs(10),
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl ProducerConfig {
    /// Sets the acks (idempotence is turned off unless `Acks::All`).
    pub fn with_acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        if acks != Acks::All {
            self.idempotence = false;
        }
        self
    }

    /// Sets the linger.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets the batch size.
    pub fn with_batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes.max(1);
        self
    }

    /// Sets the buffer budget.
    pub fn with_buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }

    /// Sets the maximum record/request size.
    pub fn with_max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Sets the compression codec.
    pub fn with_compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }

    /// Sets the size below which records are copied at `send` rather than
    /// held by reference (see [`ProducerConfig::copy_records_below`]).
    pub fn with_copy_records_below(mut self, bytes: usize) -> Self {
        self.copy_records_below = bytes;
        self
    }

    /// Sets the delivery timeout.
    pub fn with_delivery_timeout(mut self, t: Duration) -> Self {
        self.delivery_timeout = t;
        self
    }

    /// Sets the retry backoff range.
    pub fn with_retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.retry_backoff = first;
        self.retry_backoff_max = max.max(first);
        self
    }

    /// Turns idempotence on or off.
    pub fn with_idempotence(mut self, on: bool) -> Self {
        self.idempotence = on;
        self
    }

    /// Sets how long `send` waits for retriably missing metadata.
    pub fn with_max_block(mut self, t: Duration) -> Self {
        self.max_block = t;
        self
    }

    /// Sets the partitioner.
    pub fn with_partitioner(mut self, p: Arc<dyn Partitioner>) -> Self {
        self.partitioner = p;
        self
    }

    /// Sets the most produce requests in flight per broker (at least 1).
    pub fn with_max_in_flight_per_broker(mut self, n: usize) -> Self {
        self.max_in_flight_per_broker = n.max(1);
        self
    }

    /// Makes the producer transactional under `id` (KIP-98): turns
    /// idempotence on with `Acks::All`. Call
    /// [`Producer::init_transactions`](super::Producer::init_transactions)
    /// once, then `begin_transaction` / `commit_transaction` /
    /// `abort_transaction` around the sends.
    pub fn with_transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self.idempotence = true;
        self.acks = Acks::All;
        self
    }

    /// Sets the transaction timeout the coordinator enforces.
    pub fn with_transaction_timeout(mut self, t: Duration) -> Self {
        self.transaction_timeout = t;
        self
    }
}

impl ProducerConfig {
    /// The producer settings in `props` (the keys in
    /// [`crate::properties::PRODUCER_KEYS`], the Java client's names) over
    /// the defaults: `acks` (`0`, `1`, `all` or `-1`), `enable.idempotence`,
    /// `linger.ms`, `batch.size`, `buffer.memory`, `max.request.size`,
    /// `compression.type` (`none`, `gzip`, `snappy`, `lz4`, `zstd`),
    /// `delivery.timeout.ms`, `retry.backoff.ms`, `retry.backoff.max.ms`,
    /// `max.in.flight.requests.per.connection`, `max.block.ms`,
    /// `transactional.id`, `transaction.timeout.ms`.
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming the line and key of a bad value, or
    /// idempotence asked for with acks other than `all`.
    pub fn from_properties(props: &crate::properties::Properties) -> crate::Result<ProducerConfig> {
        let mut c = ProducerConfig::default();
        if let Some(acks) = props.parsed("acks", |v| match v.to_ascii_lowercase().as_str() {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            _ => Err(format!("expected 0, 1, all or -1, got {v:?}")),
        })? {
            c = c.with_acks(acks);
        }
        match props.flag("enable.idempotence")? {
            Some(true) if c.acks != Acks::All => {
                return Err(props.error("enable.idempotence", "needs acks=all".into()))
            }
            Some(on) => c.idempotence = on,
            None => {}
        }
        if let Some(t) = props.millis("linger.ms")? {
            c.linger = t;
        }
        if let Some(n) = props.number("batch.size", 1usize)? {
            c.batch_size = n;
        }
        if let Some(n) = props.number("buffer.memory", 1usize)? {
            c.buffer_memory = n;
        }
        if let Some(n) = props.number("max.request.size", 1usize)? {
            c.max_request_size = n;
        }
        if let Some(comp) = props.parsed("compression.type", |v| {
            match v.to_ascii_lowercase().as_str() {
                "none" => Ok(Compression::None),
                "gzip" => Ok(Compression::Gzip),
                "snappy" => Ok(Compression::Snappy),
                "lz4" => Ok(Compression::Lz4),
                "zstd" => Ok(Compression::Zstd),
                _ => Err(format!(
                    "expected none, gzip, snappy, lz4 or zstd, got {v:?}"
                )),
            }
        })? {
            c.compression = comp;
        }
        if let Some(p) = props.parsed("partitioner", super::partitioner::by_name)? {
            c.partitioner = p;
        }
        if let Some(p) = props.parsed("partitioner.class", super::partitioner::by_name)? {
            c.partitioner = p;
        }
        if let Some(t) = props.positive_millis("delivery.timeout.ms")? {
            c.delivery_timeout = t;
        }
        if let Some(t) = props.millis("retry.backoff.ms")? {
            c.retry_backoff = t;
        }
        if let Some(t) = props.millis("retry.backoff.max.ms")? {
            c.retry_backoff_max = t;
        }
        if c.retry_backoff_max < c.retry_backoff {
            return Err(props.error(
                "retry.backoff.max.ms",
                "must be at least retry.backoff.ms".into(),
            ));
        }
        if let Some(n) = props.number("max.in.flight.requests.per.connection", 1usize)? {
            if c.idempotence && n > 5 {
                return Err(props.error(
                    "max.in.flight.requests.per.connection",
                    format!("at most 5 with idempotence (got {n})"),
                ));
            }
            c.max_in_flight_per_broker = n;
        }
        if let Some(t) = props.millis("max.block.ms")? {
            c.max_block = t;
        }
        if let Some(id) = props.string("transactional.id") {
            if c.acks != Acks::All || !c.idempotence {
                return Err(
                    props.error("transactional.id", "needs acks=all and idempotence".into())
                );
            }
            c = c.with_transactional_id(id);
        }
        if let Some(t) = props.positive_millis("transaction.timeout.ms")? {
            c.transaction_timeout = t;
        }
        Ok(c)
    }
}
