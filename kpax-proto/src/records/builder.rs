//! Building a record batch v2: records are encoded straight into the output
//! buffer behind a reserved header; `finish` compresses them if asked, fills
//! in the header and the CRC32C.

use bytes::{BufMut, Bytes, BytesMut};

use super::attributes::{Attributes, TimestampType};
use super::batch::{CRC_OFFSET, CRC_START, LOG_OVERHEAD, RECORD_BATCH_OVERHEAD};
use super::compression::{self, Compression};
use super::control::{ControlRecord, EndTransactionMarker};
use super::error::RecordsError;
use super::record::Record;
use crate::varint::{varint_len, varlong_len, zigzag32, zigzag64};

/// "No producer id / epoch / sequence" in a batch header.
pub const NO_PRODUCER_ID: i64 = -1;
/// See [`NO_PRODUCER_ID`].
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// See [`NO_PRODUCER_ID`].
pub const NO_SEQUENCE: i32 = -1;
/// "No partition leader epoch" (what producers write).
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// Builds one record batch v2.
///
/// ```
/// use kpax_proto::records::{Batches, Compression, RecordBatchBuilder};
///
/// let mut builder = RecordBatchBuilder::new(0).compression(Compression::None);
/// let header: (&[u8], Option<&[u8]>) = (b"h", Some(b"x"));
/// builder.append(1_700_000_000_000, Some(b"k"), Some(b"v"), &[header]).unwrap();
/// let bytes = builder.finish().unwrap();
/// let batch = Batches::new(bytes).next().unwrap().unwrap();
/// let record = batch.records().unwrap().next().unwrap().unwrap();
/// assert_eq!(record.value(), Some(&b"v"[..]));
/// assert_eq!(record.last_header(b"h"), Some(Some(&b"x"[..])));
/// ```
#[derive(Debug)]
pub struct RecordBatchBuilder {
    /// Whatever the caller's buffer held, then the reserved header at
    /// `start`, then the uncompressed records.
    buf: BytesMut,
    start: usize,
    /// The end of what was written; `buf` holds zeros or an earlier
    /// batch's bytes beyond it.
    pos: usize,
    base_offset: i64,
    partition_leader_epoch: i32,
    attributes: Attributes,
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    last_offset_delta: Option<i32>,
    record_count: i32,
}

impl RecordBatchBuilder {
    /// A builder for a batch whose first record has offset `base_offset`
    /// (producers write 0; the broker assigns real offsets).
    pub fn new(base_offset: i64) -> Self {
        Self::with_capacity(base_offset, 0)
    }

    /// As [`RecordBatchBuilder::new`], reserving room for `bytes` bytes of records.
    pub fn with_capacity(base_offset: i64, bytes: usize) -> Self {
        Self::in_buffer(
            base_offset,
            BytesMut::with_capacity(RECORD_BATCH_OVERHEAD + bytes),
        )
    }

    /// A builder that appends the batch to `buf` after what it already
    /// holds (a request being encoded, or a recycled buffer: reusing one
    /// saves the page faults of a fresh allocation per batch).
    /// [`RecordBatchBuilder::finish_mut`] returns the whole buffer.
    pub fn in_buffer(base_offset: i64, buf: BytesMut) -> Self {
        let start = buf.len();
        Self::at(base_offset, buf, start)
    }

    /// A builder that writes the batch from the start of `buf`, over the
    /// bytes it holds (a buffer of an earlier batch, kept for reuse): they
    /// are overwritten, not zeroed first, so reuse costs no pass over the
    /// buffer. [`RecordBatchBuilder::finish_mut`] returns only the batch.
    pub fn over_buffer(base_offset: i64, buf: BytesMut) -> Self {
        Self::at(base_offset, buf, 0)
    }

    fn at(base_offset: i64, mut buf: BytesMut, start: usize) -> Self {
        // The buffer is filled up to its capacity once (zeros past what it
        // held), so records can be written with plain slice copies; `pos`
        // is the real end, and `finish` truncates there.
        let len = buf.capacity().max(start + RECORD_BATCH_OVERHEAD + 64);
        buf.resize(len, 0);
        RecordBatchBuilder {
            buf,
            start,
            pos: start + RECORD_BATCH_OVERHEAD,
            base_offset,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            attributes: Attributes::default(),
            compression: Compression::None,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            base_timestamp: None,
            max_timestamp: -1,
            last_offset_delta: None,
            record_count: 0,
        }
    }

    /// Sets the codec (default none).
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self.attributes = self.attributes.with_compression(codec);
        self
    }

    /// Sets the timestamp type (default create time).
    pub fn timestamp_type(mut self, t: TimestampType) -> Self {
        self.attributes = self.attributes.with_timestamp_type(t);
        self
    }

    /// Marks the batch as part of a transaction.
    pub fn transactional(mut self, on: bool) -> Self {
        self.attributes = self.attributes.with_transactional(on);
        self
    }

    /// Marks the batch as a control batch.
    pub fn control(mut self, on: bool) -> Self {
        self.attributes = self.attributes.with_control(on);
        self
    }

    /// Sets the partition leader epoch (default -1).
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Sets the idempotent producer's id, epoch and the first record's
    /// sequence number (defaults -1).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// The number of records appended so far.
    pub fn len(&self) -> usize {
        self.record_count as usize
    }

    /// Whether no record was appended yet.
    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// The batch's size so far, before compression.
    pub fn uncompressed_size(&self) -> usize {
        self.pos - self.start
    }

    /// Appends a record at the next offset (offset delta one more than the
    /// previous record's).
    ///
    /// # Errors
    /// [`RecordsError::Overflow`] when a length or the record count does
    /// not fit its wire field.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> Result<(), RecordsError> {
        let delta = self.next_offset_delta()?;
        self.append_at(delta, timestamp, key, value, headers)
    }

    /// Appends a record with an explicit offset delta, which must be larger
    /// than the previous record's (compacted batches have gaps).
    ///
    /// # Errors
    /// [`RecordsError::InvalidInput`] when the delta does not increase, and
    /// those of [`RecordBatchBuilder::append`].
    #[inline]
    pub fn append_at(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> Result<(), RecordsError> {
        let headers_len = headers
            .iter()
            .map(|(k, v)| bytes_len(Some(k)) + bytes_len(*v))
            .sum();
        self.write_record(
            offset_delta,
            timestamp,
            key,
            value,
            headers.len(),
            headers_len,
            |buf| {
                for (k, v) in headers {
                    put_bytes(buf, Some(k));
                    put_bytes(buf, *v);
                }
            },
        )
    }

    /// Appends an owned record; its offset must lie after the previous
    /// record's and within `i32` of the base offset.
    ///
    /// # Errors
    /// As [`RecordBatchBuilder::append_at`].
    pub fn append_record(&mut self, record: &Record) -> Result<(), RecordsError> {
        let delta = i32::try_from(record.offset.wrapping_sub(self.base_offset)).map_err(|_| {
            RecordsError::Overflow {
                what: "offset delta",
            }
        })?;
        // The record keeps its headers in their wire encoding: copied as is.
        let raw_headers = record.raw_headers();
        self.write_record(
            delta,
            record.timestamp,
            record.key(),
            record.value(),
            record.header_count(),
            raw_headers.len(),
            |buf| buf.put_slice(raw_headers),
        )
    }

    /// Makes room for `n` more bytes after `pos`, zero-filled.
    #[inline(always)]
    fn ensure(&mut self, n: usize) {
        let need = self.pos + n;
        if self.buf.len() < need {
            let len = need.max(self.buf.len() * 2);
            self.buf.resize(len, 0);
        }
    }

    fn next_offset_delta(&self) -> Result<i32, RecordsError> {
        match self.last_offset_delta {
            None => Ok(0),
            // A match, not `ok_or`: that builds (and drops) the error on
            // every call.
            Some(d) => match d.checked_add(1) {
                Some(next) => Ok(next),
                None => Err(RecordsError::Overflow {
                    what: "offset delta",
                }),
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn write_record(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        header_count: usize,
        headers_len: usize,
        write_headers: impl FnOnce(&mut SliceWriter<'_>),
    ) -> Result<(), RecordsError> {
        if offset_delta < 0 || self.last_offset_delta.is_some_and(|d| offset_delta <= d) {
            return Err(RecordsError::InvalidInput(
                "offset deltas must be non-negative and increasing",
            ));
        }
        let record_count = match self.record_count.checked_add(1) {
            Some(n) => n,
            None => {
                return Err(RecordsError::Overflow {
                    what: "record count",
                })
            }
        };
        let header_count = i32::try_from(header_count).map_err(|_| RecordsError::Overflow {
            what: "header count",
        })?;
        let base_timestamp = *self.base_timestamp.get_or_insert(timestamp);
        let timestamp_delta = timestamp.wrapping_sub(base_timestamp);
        let body_len = 1
            + varlong_len(timestamp_delta)
            + varint_len(offset_delta)
            + bytes_len(key)
            + bytes_len(value)
            + varint_len(header_count)
            + headers_len;
        let body_len_i32 = i32::try_from(body_len).map_err(|_| RecordsError::Overflow {
            what: "record length",
        })?;
        let total = varint_len(body_len_i32) + body_len;
        self.ensure(total);
        let mut w = SliceWriter {
            buf: &mut self.buf[self.pos..self.pos + total],
            pos: 0,
        };
        w.put_varint(body_len_i32);
        w.put_u8(0); // record attributes: unused
        w.put_varlong(timestamp_delta);
        w.put_varint(offset_delta);
        put_bytes(&mut w, key);
        put_bytes(&mut w, value);
        w.put_varint(header_count);
        write_headers(&mut w);
        self.pos += total;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.last_offset_delta = Some(offset_delta);
        self.record_count = record_count;
        Ok(())
    }

    /// Finishes the batch: compresses the records if a codec is set, writes
    /// the header and the CRC32C.
    ///
    /// # Errors
    /// [`RecordsError::InvalidInput`] for a batch without records,
    /// [`RecordsError::CodecDisabled`] / [`RecordsError::Compression`] from
    /// the codec, and [`RecordsError::Overflow`] for a batch over 2 GiB.
    pub fn finish(self) -> Result<Bytes, RecordsError> {
        self.finish_mut().map(BytesMut::freeze)
    }

    /// As [`RecordBatchBuilder::finish`], returning the mutable buffer
    /// (with whatever it held before, for [`RecordBatchBuilder::in_buffer`]).
    ///
    /// # Errors
    /// As [`RecordBatchBuilder::finish`].
    pub fn finish_mut(self) -> Result<BytesMut, RecordsError> {
        let Some(last_offset_delta) = self.last_offset_delta else {
            return Err(RecordsError::InvalidInput(
                "a batch needs at least one record",
            ));
        };
        let start = self.start;
        let mut buf = self.buf;
        buf.truncate(self.pos);
        if self.compression != Compression::None {
            let records_at = start + RECORD_BATCH_OVERHEAD;
            let mut out = BytesMut::with_capacity((buf.len() - records_at) / 2 + 64);
            compression::compress(self.compression, 2, &buf[records_at..], &mut out)?;
            buf.truncate(records_at);
            buf.extend_from_slice(&out);
        }
        let batch_length = i32::try_from(buf.len() - start - LOG_OVERHEAD).map_err(|_| {
            RecordsError::Overflow {
                what: "batch length",
            }
        })?;
        let mut h = &mut buf[start..start + RECORD_BATCH_OVERHEAD];
        h.put_i64(self.base_offset);
        h.put_i32(batch_length);
        h.put_i32(self.partition_leader_epoch);
        h.put_i8(2);
        h.put_u32(0); // CRC, below
        h.put_i16(self.attributes.0);
        h.put_i32(last_offset_delta);
        h.put_i64(self.base_timestamp.unwrap_or(-1));
        h.put_i64(self.max_timestamp);
        h.put_i64(self.producer_id);
        h.put_i16(self.producer_epoch);
        h.put_i32(self.base_sequence);
        h.put_i32(self.record_count);
        let crc = crc32c::crc32c(&buf[start + CRC_START..]);
        buf[start + CRC_OFFSET..start + CRC_START].copy_from_slice(&crc.to_be_bytes());
        Ok(buf)
    }

    /// Builds the control batch a transaction coordinator writes to end a
    /// transaction: one record whose key says commit or abort and whose
    /// value carries the coordinator epoch.
    ///
    /// # Errors
    /// None in practice; the signature matches [`RecordBatchBuilder::finish`].
    pub fn end_transaction_marker(
        base_offset: i64,
        timestamp: i64,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<Bytes, RecordsError> {
        let key = ControlRecord::end_transaction(commit).to_bytes();
        let value = EndTransactionMarker {
            version: 0,
            coordinator_epoch,
        }
        .to_bytes();
        let mut b = RecordBatchBuilder::new(base_offset)
            .transactional(true)
            .control(true)
            .producer(producer_id, producer_epoch, NO_SEQUENCE);
        b.append(timestamp, Some(&key), Some(&value), &[])?;
        b.finish()
    }
}

/// The encoded size of a nullable byte string with a varint length.
#[inline]
fn bytes_len(b: Option<&[u8]>) -> usize {
    match b {
        None => 1,
        // A length over i32::MAX is counted as 5 varint bytes plus itself:
        // the record length then overflows i32 and the record is refused.
        Some(b) => match i32::try_from(b.len()) {
            Ok(n) => varint_len(n) + b.len(),
            Err(_) => 5 + b.len(),
        },
    }
}

/// Writes a record into its exact slot in the batch buffer. Varints are
/// written byte by byte (1 and 2 bytes with one bounds check): a memcpy call
/// per field would cost more than the field, and building them in a stack
/// buffer first stalls on store forwarding. Short keys are two overlapping
/// fixed-size moves; large pieces one copy.
pub(crate) struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

// SAFETY: `chunk_mut` hands out the unwritten tail of `buf`, and
// `advance_mut` only moves `pos` within it (checked).
unsafe impl BufMut for SliceWriter<'_> {
    #[inline(always)]
    fn remaining_mut(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline(always)]
    unsafe fn advance_mut(&mut self, cnt: usize) {
        assert!(cnt <= self.remaining_mut());
        self.pos += cnt;
    }

    #[inline(always)]
    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        bytes::buf::UninitSlice::new(&mut self.buf[self.pos..])
    }

    #[inline(always)]
    fn put_slice(&mut self, src: &[u8]) {
        // The slot was sized from the same lengths, so this always fits; a
        // miscount would drop bytes (and fail the length check on read)
        // rather than panic.
        let n = src.len();
        let Some(dst) = self.buf.get_mut(self.pos..self.pos + n) else {
            return;
        };
        // Short pieces (keys, mostly) as two overlapping fixed-size moves
        // (plain loads and stores) instead of a memcpy call or a byte loop.
        if n > 16 {
            dst.copy_from_slice(src);
        } else if n >= 8 {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        } else if n >= 4 {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        } else {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = *s;
            }
        }
        self.pos += n;
    }

    #[inline(always)]
    fn put_u8(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.pos) {
            *slot = b;
            self.pos += 1;
        }
    }
}

impl SliceWriter<'_> {
    /// An unsigned varint, byte by byte into the slot (no staging buffer).
    #[inline(always)]
    fn put_uvarint(&mut self, mut v: u64) {
        // The common sizes of record fields, each with one bounds check.
        if v < 0x80 {
            self.put_u8(v as u8);
            return;
        }
        if v < 0x4000 {
            if let Some(d) = self.buf.get_mut(self.pos..self.pos + 2) {
                d[0] = (v as u8) | 0x80;
                d[1] = (v >> 7) as u8;
                self.pos += 2;
            }
            return;
        }
        while v >= 0x80 {
            self.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.put_u8(v as u8);
    }

    /// A zig-zag VARINT.
    #[inline(always)]
    fn put_varint(&mut self, v: i32) {
        self.put_uvarint(u64::from(zigzag32(v)));
    }

    /// A zig-zag VARLONG.
    #[inline(always)]
    fn put_varlong(&mut self, v: i64) {
        self.put_uvarint(zigzag64(v));
    }
}

#[inline(always)]
fn put_bytes(buf: &mut SliceWriter<'_>, b: Option<&[u8]>) {
    match b {
        None => buf.put_varint(-1),
        Some(b) => {
            buf.put_varint(b.len() as i32);
            buf.put_slice(b);
        }
    }
}
