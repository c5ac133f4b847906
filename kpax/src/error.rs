//! kpax's error type: what failed, against which broker and request, and
//! whether trying again can help.

use kpax_proto::generated::{ApiKey, ErrorCode};
use kpax_proto::records::{LegacyUnsupported, RecordsError};
use kpax_proto::wire::{DecodeError, EncodeError};
use std::time::Duration;

/// A kpax operation's error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection to a broker failed or broke (retriable: the next
    /// request reconnects).
    #[error("broker {broker}: network error{}: {reason}", api_suffix(*api))]
    Network {
        /// The broker's address.
        broker: String,
        /// The request in flight, if any.
        api: Option<ApiKey>,
        /// What happened.
        reason: String,
    },
    /// The broker closed the connection while a request was in flight with
    /// no answer; brokers do this for an API or version they do not serve.
    #[error("broker {broker} closed the connection on {api:?} v{version} without answering (it may not serve this API or version)")]
    ClosedOnRequest {
        /// The broker's address.
        broker: String,
        /// The request.
        api: ApiKey,
        /// Its version.
        version: i16,
    },
    /// The broker closed the connection on every one of the last
    /// [`REFUSALS_BEFORE_GIVING_UP`](crate::broker::REFUSALS_BEFORE_GIVING_UP)
    /// requests of this API and version: it does not serve that version,
    /// whatever it advertises (Kafka 4.x lists Produce v0-v2 in ApiVersions
    /// but closes on them, KIP-896). Not retriable.
    #[error("broker {broker} closed the connection on each of the last {times} {api:?} v{version} requests: it does not serve this version (it advertises {advertised:?}); use a newer version or lift the version cap")]
    Refused {
        /// The broker's address.
        broker: String,
        /// The request.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// How many requests in a row were refused.
        times: u32,
        /// The range the broker advertises for the API.
        advertised: Option<(i16, i16)>,
    },
    /// No answer within the request timeout (retriable).
    #[error("broker {broker}: {api:?} v{version} timed out after {after:?}")]
    Timeout {
        /// The broker's address.
        broker: String,
        /// The request.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// The timeout that passed.
        after: Duration,
    },
    /// The broker's answer could not be decoded.
    #[error("broker {broker}: cannot decode the {api:?} v{version} response: {source}")]
    Decode {
        /// The broker's address.
        broker: String,
        /// The request.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// The decoder's error (message, field, version).
        source: DecodeError,
    },
    /// A request could not be encoded at the negotiated version.
    #[error("cannot encode {api:?} v{version} for broker {broker}: {source}")]
    Encode {
        /// The broker's address.
        broker: String,
        /// The request.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// The encoder's error (message, field, version).
        source: EncodeError,
    },
    /// The broker answered with an error code.
    #[error("broker {broker}: {api:?} failed with {code}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        /// The broker's address.
        broker: String,
        /// The request.
        api: ApiKey,
        /// The Kafka error code (with its retriable flag).
        code: ErrorCode,
        /// The broker's error message, when it sent one.
        message: Option<String>,
    },
    /// The broker does not serve the API, or no version both sides know.
    #[error("broker {broker} does not support {api:?} in a version kpax knows (kpax {ours:?}, broker {theirs:?})")]
    UnsupportedVersion {
        /// The broker's address.
        broker: String,
        /// The API.
        api: ApiKey,
        /// kpax's version range (after the user's cap).
        ours: (i16, i16),
        /// The broker's range, `None` when it does not list the API at all.
        theirs: Option<(i16, i16)>,
    },
    /// The peer broke the protocol (wrong correlation id, a frame too large
    /// or too small): the connection was closed (retriable).
    #[error("broker {broker}: protocol violation: {reason}")]
    Protocol {
        /// The broker's address.
        broker: String,
        /// What it did.
        reason: String,
    },
    /// No leader is known for a partition, or the topic does not exist.
    #[error("no leader for {topic}-{partition}: {reason}")]
    NoLeader {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Why (e.g. the metadata's error code).
        reason: String,
    },
    /// A record larger than the producer accepts, refused at `send`.
    #[error("record of {size} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// The record's encoded size estimate.
        size: usize,
        /// The limit (`max_request_size` or `buffer_memory`).
        max: usize,
    },
    /// `try_send` found the buffer full.
    #[error("the producer's buffer is full")]
    BufferFull,
    /// The producer was closed: nothing more is accepted.
    #[error("the producer is closed")]
    ProducerClosed,
    /// The consumer (or share consumer) was closed: no more records come.
    #[error("the consumer is closed")]
    ConsumerClosed,
    /// A record was not delivered within the delivery timeout.
    #[error("{topic}-{partition}: not delivered within {after:?}{}", last.as_ref().map(|l| format!(" (last error: {l})")).unwrap_or_default())]
    DeliveryTimeout {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The delivery timeout.
        after: Duration,
        /// The last error seen while retrying, if any.
        last: Option<String>,
    },
    /// A record could not be put into a batch, or a batch read back is bad.
    #[error("{context}: bad record data: {source}")]
    Records {
        /// Where: the topic-partition.
        context: String,
        /// What was wrong, with the byte offset where it was found.
        #[source]
        source: RecordsError,
    },
    /// A broker's message format cannot carry what was sent: record
    /// headers or an idempotent producer need Kafka 0.11+, zstd Kafka 2.1+.
    #[error("{} needs {}; {broker} offers only {}", what.what(), what.needs(), magic.map_or("an older message format".to_string(), |m| format!("message format v{m}")))]
    MessageFormat {
        /// What the format cannot carry.
        what: LegacyUnsupported,
        /// The broker (`broker host:port`), or which brokers.
        broker: String,
        /// The message format (magic) the broker offers, when known.
        magic: Option<i8>,
    },
    /// Bad configuration given by the user.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The TLS handshake with a broker failed (its certificate is not
    /// trusted, names another host, or the peer does not speak TLS). Not
    /// retriable: the settings or the broker must change.
    #[error("broker {broker}: TLS handshake failed: {reason}")]
    Tls {
        /// The broker's address.
        broker: String,
        /// What failed.
        reason: String,
    },
    /// SASL authentication with a broker failed (bad credentials, a
    /// mechanism the broker does not enable, a broker without SASL, or a
    /// server signature that does not verify). Not retriable.
    #[error("broker {broker}: SASL {mechanism} authentication failed: {message}")]
    Authentication {
        /// The broker's address.
        broker: String,
        /// The SASL mechanism (`PLAIN`, `SCRAM-SHA-256`, ...).
        mechanism: String,
        /// The broker's error message, or what kpax found wrong.
        message: String,
    },
    /// A transactional producer call failed: misuse, a transaction that
    /// must be aborted, or a producer in its fatal state.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
}

fn api_suffix(api: Option<ApiKey>) -> String {
    api.map(|a| format!(" on {a:?}")).unwrap_or_default()
}

impl Error {
    /// Whether retrying (after a metadata refresh or a reconnect) can help.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Network { .. }
            | Error::ClosedOnRequest { .. }
            | Error::Timeout { .. }
            | Error::Protocol { .. }
            | Error::NoLeader { .. } => true,
            Error::Broker { code, .. } => code.is_retriable(),
            _ => false,
        }
    }

    /// The Kafka error code, for [`Error::Broker`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// kpax's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a transactional operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// The producer was built without a transactional id.
    #[error("{operation} needs a transactional producer (ProducerConfig::with_transactional_id)")]
    NotTransactional {
        /// The call that was made.
        operation: &'static str,
    },
    /// The call does not fit the producer's state (commit without begin,
    /// begin twice, send outside a transaction, ...).
    #[error("{operation} is not allowed in state {state}")]
    InvalidState {
        /// The call that was made.
        operation: &'static str,
        /// The state the producer was in.
        state: crate::transaction::TransactionState,
    },
    /// Part of the current transaction failed; call `abort_transaction`
    /// before anything else.
    #[error("the transaction must be aborted: {0}")]
    Abortable(Box<Error>),
    /// The producer is in its fatal state (fenced by a newer producer with
    /// the same transactional id, not authorized, ...): drop it.
    #[error("the transactional producer failed fatally: {0}")]
    Fatal(Box<Error>),
    /// The record was still unsent when its transaction was aborted.
    #[error("the record's transaction was aborted before it was sent")]
    Aborted,
}
