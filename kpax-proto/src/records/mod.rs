//! Record data: what Produce sends and Fetch returns in a records field.
//!
//! - Record batches v2 (magic 2, Kafka 0.11+): [`RecordBatchBuilder`]
//!   builds one; [`RecordBatch`] is one read back, with its [`BatchHeader`]
//!   and its [`Records`]. CRC32C is checked on read unless
//!   [`ReadOptions::verify_crc`] is off.
//! - Legacy message sets, magic 0 and 1 (Kafka 0.8-0.10):
//!   [`LegacyMessageSetBuilder`] and [`LegacyBatch`], CRC32 IEEE.
//! - [`Batches`] reads a whole records field: batches of any magic back to
//!   back, stopping cleanly at a cut-off last batch.
//! - [`compression`]: gzip, snappy, lz4 and zstd, decompression bounded by
//!   [`ReadOptions::max_decompressed_size`].
//! - [`control`]: transaction markers and other control records.
//! - [`AbortedFilter`]: which batches a consumer hands out, by isolation
//!   level (control batches never, aborted transactions not under
//!   `read_committed`).
//! - [`to_legacy`]: a record batch v2 converted to a legacy message set
//!   for brokers before Kafka 0.11 ([`produce_magic`] says which).
//!
//! Reading copies nothing for uncompressed batches: records hand out slices
//! of the input `Bytes` ([`Record`]), or plain borrowed slices
//! ([`RecordRef`], via [`Records::next_ref`]) when even reference counting
//! is too much. Bad input is a [`RecordsError`] with the byte offset, never a
//! panic, and no allocation is sized by a length read from the input.
//!
//! ```
//! use bytes::Bytes;
//! use kpax_proto::records::{Batches, Compression, RecordBatchBuilder};
//!
//! let mut builder = RecordBatchBuilder::new(100).compression(Compression::Lz4);
//! for i in 0..3u8 {
//!     builder.append(1_700_000_000_000 + i64::from(i), None, Some(&[i][..]), &[]).unwrap();
//! }
//! let batch = builder.finish().unwrap();
//! // A Fetch response cut the second copy short.
//! let mut field = batch.to_vec();
//! field.extend_from_slice(&batch[..batch.len() / 2]);
//! let mut batches = Batches::new(Bytes::from(field));
//! let mut offsets = Vec::new();
//! for batch in &mut batches {
//!     for record in batch.unwrap().records().unwrap() {
//!         offsets.push(record.unwrap().offset);
//!     }
//! }
//! assert_eq!(offsets, [100, 101, 102]);
//! assert!(batches.truncated());
//! ```

mod attributes;
mod batch;
mod builder;
pub mod compression;
pub mod control;
mod error;
mod header_edit;
mod legacy;
mod legacy_builder;
mod read_committed;
mod reader;
mod record;
mod set;
mod split;
mod to_legacy;

pub use attributes::{Attributes, TimestampType};
pub use batch::{BatchHeader, RecordBatch, Records, RECORD_BATCH_OVERHEAD};
pub use builder::{
    RecordBatchBuilder, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};
pub use compression::Compression;
pub use control::{ControlRecord, ControlRecordType, EndTransactionMarker};
pub use error::RecordsError;
pub use header_edit::BatchHeaderMut;
pub use legacy::{LegacyBatch, LegacyRecords};
pub use legacy_builder::LegacyMessageSetBuilder;
pub use read_committed::{AbortedFilter, AbortedTransaction, BatchVerdict};
pub use record::{Header, HeaderRef, HeaderRefs, Record, RecordRef};
pub use set::{Batch, BatchRecords, Batches, ReadOptions};
pub use to_legacy::{produce_magic, to_legacy, LegacyUnsupported, ToLegacyError};

#[cfg(test)]
mod tests;
