//! A records field as Produce and Fetch carry it: batches back to back,
//! possibly of mixed magics, the last one possibly cut off by the broker's
//! size limit.

use bytes::Bytes;

use super::batch::{RecordBatch, Records, LOG_OVERHEAD};
use super::error::RecordsError;
use super::legacy::{LegacyBatch, LegacyRecords, MESSAGE_OVERHEAD_V0};
use super::record::Record;

/// Bytes up to and including the magic byte, which is at the same place in
/// every format.
const HEADER_UP_TO_MAGIC: usize = 17;
const MAGIC_OFFSET: usize = 16;

/// How to read records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Check each batch's CRC (default `true`).
    pub verify_crc: bool,
    /// The most bytes one batch's records may decompress to (default 64 MiB);
    /// more is [`RecordsError::TooLarge`].
    pub max_decompressed_size: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            verify_crc: true,
            max_decompressed_size: 64 << 20,
        }
    }
}

/// One batch of a records field.
#[derive(Debug, Clone)]
pub enum Batch {
    /// A record batch v2.
    V2(RecordBatch),
    /// A legacy message (magic 0 or 1), plain or a compressed wrapper.
    Legacy(LegacyBatch),
}

impl Batch {
    /// The magic byte: 0, 1 or 2.
    pub fn magic(&self) -> i8 {
        match self {
            Batch::V2(_) => 2,
            Batch::Legacy(m) => m.magic,
        }
    }

    /// The byte offset of the batch in the parsed input.
    pub fn position(&self) -> usize {
        match self {
            Batch::V2(b) => b.position(),
            Batch::Legacy(m) => m.position(),
        }
    }

    /// The offset of the batch's last record: where the next fetch starts,
    /// minus one.
    pub fn last_offset(&self) -> i64 {
        match self {
            Batch::V2(b) => b.header().last_offset(),
            Batch::Legacy(m) => m.offset,
        }
    }

    /// Whether this is a control batch (only batches v2 can be).
    pub fn is_control(&self) -> bool {
        matches!(self, Batch::V2(b) if b.is_control())
    }

    /// The batch's records.
    ///
    /// # Errors
    /// See [`RecordBatch::records`] and [`LegacyBatch::records`].
    pub fn records(&self) -> Result<BatchRecords, RecordsError> {
        Ok(match self {
            Batch::V2(b) => BatchRecords::V2(b.records()?),
            Batch::Legacy(m) => BatchRecords::Legacy(m.records()?),
        })
    }
}

/// The records of a [`Batch`], of either format.
#[derive(Debug, Clone)]
pub enum BatchRecords {
    /// The records of a batch v2.
    V2(Records),
    /// The records of a legacy message.
    Legacy(LegacyRecords),
}

impl Iterator for BatchRecords {
    type Item = Result<Record, RecordsError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            BatchRecords::V2(r) => r.next(),
            BatchRecords::Legacy(r) => r.next(),
        }
    }

    /// Internal iteration runs the batch v2 fast loop (see [`Records`]).
    #[inline]
    fn fold<B, F>(self, init: B, f: F) -> B
    where
        F: FnMut(B, Self::Item) -> B,
    {
        match self {
            BatchRecords::V2(r) => r.fold(init, f),
            BatchRecords::Legacy(r) => r.fold(init, f),
        }
    }
}

/// The batches of a records field, in order.
///
/// Yields every complete batch; stops without an error at a batch cut off
/// by the end of the input (the broker cuts the last batch of a Fetch at its
/// size limit), and then [`Batches::truncated`] is true and
/// [`Batches::remaining`] says how many bytes were left. After an error the
/// iterator is done.
///
/// CRCs are checked as each batch is read; records are only decoded when
/// asked for.
#[derive(Debug, Clone)]
pub struct Batches {
    data: Bytes,
    pos: usize,
    options: ReadOptions,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    Finished,
    Truncated,
    Failed,
}

impl Batches {
    /// The batches of `data`, with default [`ReadOptions`].
    pub fn new(data: Bytes) -> Self {
        Self::with_options(data, ReadOptions::default())
    }

    /// The batches of `data`, read with `options`.
    pub fn with_options(data: Bytes, options: ReadOptions) -> Self {
        Batches {
            data,
            pos: 0,
            options,
            state: State::Reading,
        }
    }

    /// Whether reading stopped at a cut-off last batch.
    pub fn truncated(&self) -> bool {
        self.state == State::Truncated
    }

    /// The bytes not yet read as batches: after a cut-off batch, its partial
    /// length.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The byte offset of the next batch.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn read_batch(&mut self) -> Result<Option<Batch>, RecordsError> {
        let pos = self.pos;
        let rest = &self.data[pos..];
        if rest.len() < HEADER_UP_TO_MAGIC {
            return Ok(None);
        }
        let length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if (length as i64) < MESSAGE_OVERHEAD_V0 as i64 {
            return Err(RecordsError::BadLength {
                what: "batch length",
                offset: pos + 8,
                value: length.into(),
            });
        }
        let size = LOG_OVERHEAD + length as usize;
        if size > rest.len() {
            return Ok(None);
        }
        let end = pos + size;
        let magic = rest[MAGIC_OFFSET] as i8;
        let batch = match magic {
            2 => Batch::V2(RecordBatch::parse(&self.data, pos, end, &self.options)?),
            0 | 1 => Batch::Legacy(LegacyBatch::parse(&self.data, pos, end, &self.options)?),
            _ => {
                return Err(RecordsError::BadMagic {
                    offset: pos + MAGIC_OFFSET,
                    magic,
                })
            }
        };
        self.pos = end;
        Ok(Some(batch))
    }
}

impl Iterator for Batches {
    type Item = Result<Batch, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state != State::Reading {
            return None;
        }
        match self.read_batch() {
            Ok(Some(batch)) => Some(Ok(batch)),
            Ok(None) => {
                self.state = if self.pos == self.data.len() {
                    State::Finished
                } else {
                    State::Truncated
                };
                None
            }
            Err(e) => {
                self.state = State::Failed;
                Some(Err(e))
            }
        }
    }
}
