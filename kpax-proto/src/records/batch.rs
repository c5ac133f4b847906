//! Record batch v2 (magic 2): the parsed header, the checks made when it is
//! read (length, magic, codec, CRC32C), and the iterator over its records.
//!
//! Layout (61-byte header, then the records, compressed as a whole when the
//! batch is compressed):
//!
//! ```text
//! baseOffset: int64            @0
//! batchLength: int32           @8   bytes after this field
//! partitionLeaderEpoch: int32  @12
//! magic: int8 (= 2)            @16
//! crc: uint32                  @17  CRC32C of everything from attributes to the end
//! attributes: int16            @21
//! lastOffsetDelta: int32       @23
//! baseTimestamp: int64         @27
//! maxTimestamp: int64          @35
//! producerId: int64            @43
//! producerEpoch: int16         @51
//! baseSequence: int32          @53
//! recordsCount: int32          @57
//! records                      @61
//! ```

use bytes::Bytes;

use super::attributes::{Attributes, TimestampType};
use super::compression::{self, Compression};
use super::control::ControlRecord;
use super::error::RecordsError;
use super::reader::Reader;
use super::record::{read_record, read_record_fast, Record, RecordContext, RecordRef};
use super::set::ReadOptions;

/// Size of the batch v2 header, up to and including the record count.
pub const RECORD_BATCH_OVERHEAD: usize = 61;
/// Offset of the first byte the CRC covers (the attributes).
pub(crate) const CRC_START: usize = 21;
/// Offset of the CRC field.
pub(crate) const CRC_OFFSET: usize = 17;
/// Bytes before `batchLength`'s count starts (base offset and the length itself).
pub(crate) const LOG_OVERHEAD: usize = 12;

/// The header fields of a record batch v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// The offset of the first record (offset delta 0).
    pub base_offset: i64,
    /// The batch's length in bytes, counted after this field.
    pub batch_length: i32,
    /// The leader epoch of the broker that appended the batch.
    pub partition_leader_epoch: i32,
    /// Always 2.
    pub magic: i8,
    /// The stored CRC32C.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control flags.
    pub attributes: Attributes,
    /// The offset delta of the last record (also when compaction removed it).
    pub last_offset_delta: i32,
    /// The timestamp of the first record (or the delete horizon, see
    /// [`Attributes::has_delete_horizon`]).
    pub base_timestamp: i64,
    /// The largest timestamp in the batch (the log-append time for
    /// log-append-time batches).
    pub max_timestamp: i64,
    /// The idempotent/transactional producer's id, -1 when none.
    pub producer_id: i64,
    /// The producer's epoch, -1 when none.
    pub producer_epoch: i16,
    /// The sequence number of the first record, -1 when none.
    pub base_sequence: i32,
    /// The number of records, as declared.
    pub record_count: i32,
}

impl BatchHeader {
    /// The offset of the last record: base offset + last offset delta.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The offset after this batch, where the next fetch starts.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// The batch's total size on the wire.
    pub fn size_in_bytes(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }
}

/// A record batch v2 read from a records field: its header, checked, and
/// its records data (still compressed, if the batch is).
#[derive(Debug, Clone)]
pub struct RecordBatch {
    header: BatchHeader,
    compression: Compression,
    data: Bytes,
    position: usize,
    max_decompressed: usize,
}

impl RecordBatch {
    /// Reads the batch occupying `input[pos..end]`; the caller has checked
    /// that the batch length field matches `end` and that the magic is 2.
    pub(crate) fn parse(
        input: &Bytes,
        pos: usize,
        end: usize,
        options: &ReadOptions,
    ) -> Result<RecordBatch, RecordsError> {
        let bytes = &input[pos..end];
        let mut r = Reader::new(bytes, pos);
        let base_offset = r.i64("base offset")?;
        let at = r.offset();
        let batch_length = r.i32("batch length")?;
        if (batch_length as i64) < (RECORD_BATCH_OVERHEAD - LOG_OVERHEAD) as i64 {
            return Err(RecordsError::BadLength {
                what: "batch length",
                offset: at,
                value: batch_length.into(),
            });
        }
        let partition_leader_epoch = r.i32("partition leader epoch")?;
        let magic = r.i8("magic")?;
        let crc = r.u32("crc")?;
        let attributes = Attributes(r.i16("attributes")?);
        let last_offset_delta = r.i32("last offset delta")?;
        let base_timestamp = r.i64("base timestamp")?;
        let max_timestamp = r.i64("max timestamp")?;
        let producer_id = r.i64("producer id")?;
        let producer_epoch = r.i16("producer epoch")?;
        let base_sequence = r.i32("base sequence")?;
        let at = r.offset();
        let record_count = r.i32("record count")?;
        if record_count < 0 {
            return Err(RecordsError::BadLength {
                what: "record count",
                offset: at,
                value: record_count.into(),
            });
        }
        if options.verify_crc {
            let computed = crc32c::crc32c(&bytes[CRC_START..]);
            if computed != crc {
                return Err(RecordsError::BadCrc {
                    offset: pos,
                    stored: crc,
                    computed,
                });
            }
        }
        let compression = attributes
            .compression()
            .ok_or(RecordsError::UnknownCompression {
                offset: pos,
                codec: attributes.compression_id(),
            })?;
        Ok(RecordBatch {
            header: BatchHeader {
                base_offset,
                batch_length,
                partition_leader_epoch,
                magic,
                crc,
                attributes,
                last_offset_delta,
                base_timestamp,
                max_timestamp,
                producer_id,
                producer_epoch,
                base_sequence,
                record_count,
            },
            compression,
            data: input.slice(pos + RECORD_BATCH_OVERHEAD..end),
            position: pos,
            max_decompressed: options.max_decompressed_size,
        })
    }

    /// The header fields.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The byte offset of this batch in the parsed input.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The codec the records are compressed with.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Whether the batch holds control records (transaction markers).
    pub fn is_control(&self) -> bool {
        self.header.attributes.is_control()
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.header.attributes.is_transactional()
    }

    /// The timestamp type.
    pub fn timestamp_type(&self) -> TimestampType {
        self.header.attributes.timestamp_type()
    }

    /// The records data as it is on the wire (compressed if the batch is).
    pub fn raw_records(&self) -> &Bytes {
        &self.data
    }

    /// An iterator over the records. Uncompressed batches are read in place;
    /// compressed ones are first decompressed into one new buffer (bounded by
    /// [`ReadOptions::max_decompressed_size`]) that the records then share.
    ///
    /// # Errors
    /// The decompression errors of [`compression::decompress`]. Errors in
    /// individual records come from the iterator.
    pub fn records(&self) -> Result<Records, RecordsError> {
        let ctx = RecordContext {
            base_offset: self.header.base_offset,
            base_timestamp: self.header.base_timestamp,
            log_append_time: (self.timestamp_type() == TimestampType::LogAppendTime)
                .then_some(self.header.max_timestamp),
        };
        let (data, base, decompressed_from) = if self.compression == Compression::None {
            (
                self.data.clone(),
                self.position + RECORD_BATCH_OVERHEAD,
                None,
            )
        } else {
            let out = compression::decompress(
                self.compression,
                2,
                &self.data,
                self.max_decompressed,
                self.position,
            )?;
            (
                crate::buffer_pool::DECOMPRESSED.freeze(out),
                0,
                Some(self.position),
            )
        };
        Ok(Records {
            data,
            cursor: Cursor {
                pos: 0,
                base,
                ctx,
                declared: self.header.record_count,
                found: 0,
                done: false,
                decompressed_from,
            },
        })
    }

    /// For a control batch, its control record's key (commit or abort
    /// marker, or a KRaft control record); `None` for other batches.
    ///
    /// # Errors
    /// Those of [`RecordBatch::records`] and [`ControlRecord::parse`], and
    /// [`RecordsError::RecordCount`] when the batch holds no record.
    pub fn control_record(&self) -> Result<Option<ControlRecord>, RecordsError> {
        if !self.is_control() {
            return Ok(None);
        }
        let mut records = self.records()?;
        let offset = self.position;
        match records.next_ref() {
            Some(Ok(r)) => ControlRecord::parse(r.key.unwrap_or(&[]), offset).map(Some),
            Some(Err(e)) => Err(e),
            None => Err(RecordsError::RecordCount {
                offset,
                declared: self.header.record_count.into(),
                found: 0,
            }),
        }
    }
}

/// The records of one batch v2, in order.
///
/// As an [`Iterator`] it yields owned [`Record`]s that share the batch's
/// buffer (one reference-count increment per record); internal iteration
/// (`for_each`, `count`, `fold`) runs one tight loop. [`Records::next_ref`]
/// and [`Records::for_each_ref`] hand out borrowed [`RecordRef`]s with no
/// reference counting at all. After the first error the iterator is done.
#[derive(Debug, Clone)]
pub struct Records {
    data: Bytes,
    cursor: Cursor,
}

/// Where a [`Records`] iterator is, kept apart from the buffer so that a
/// borrowed record and the buffer can be used together.
///
/// The careful step runs on a copy that is written back, so that the
/// cursor's address never escapes the caller's loop and its fields can
/// stay in registers on the fast path.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    pos: usize,
    /// The absolute offset of `data[0]`, for errors.
    base: usize,
    ctx: RecordContext,
    declared: i32,
    found: i32,
    done: bool,
    /// For a compressed batch: its offset, to wrap errors with.
    decompressed_from: Option<usize>,
}

impl Cursor {
    #[inline(always)]
    fn step<'a>(&mut self, data: &'a [u8]) -> Option<Result<RecordRef<'a>, RecordsError>> {
        if let Some(record) = self.step_fast(data) {
            return Some(Ok(record));
        }
        let mut copy = *self;
        let out = copy.step_careful(data);
        *self = copy;
        out
    }

    /// The next record when the fast path reads it (see
    /// [`read_record_fast`]); `None` leaves the rest to the careful step.
    #[inline(always)]
    fn step_fast<'a>(&mut self, data: &'a [u8]) -> Option<RecordRef<'a>> {
        if self.found < self.declared && !self.done {
            let (record, next) = read_record_fast(data, self.pos, &self.ctx)?;
            self.pos = next;
            self.found += 1;
            Some(record)
        } else {
            None
        }
    }

    /// The end of the records, an error, or a record the fast path left.
    #[cold]
    #[inline(never)]
    fn step_careful<'a>(&mut self, data: &'a [u8]) -> Option<Result<RecordRef<'a>, RecordsError>> {
        if self.done {
            return None;
        }
        if self.found == self.declared {
            self.done = true;
            if self.pos < data.len() {
                return Some(Err(self.wrap(RecordsError::TrailingBytes {
                    offset: self.base + self.pos,
                    count: data.len() - self.pos,
                })));
            }
            return None;
        }
        if self.pos >= data.len() {
            self.done = true;
            return Some(Err(self.wrap(RecordsError::RecordCount {
                offset: self.base + self.pos,
                declared: self.declared.into(),
                found: self.found.into(),
            })));
        }
        let mut r = Reader {
            data,
            pos: self.pos,
            base: self.base,
        };
        match read_record(&mut r, &self.ctx) {
            Ok(record) => {
                self.pos = r.pos;
                self.found += 1;
                Some(Ok(record))
            }
            Err(e) => {
                self.done = true;
                Some(Err(self.wrap(e)))
            }
        }
    }

    /// Runs the iteration to its end in one loop, calling `f` with each
    /// record (and where it starts and ends in `data`) or with the error
    /// that ends it.
    #[inline(always)]
    fn drive<'a, F>(&mut self, data: &'a [u8], mut f: F)
    where
        F: FnMut(Result<(RecordRef<'a>, usize, usize), RecordsError>),
    {
        let mut c = *self;
        loop {
            let mut start = c.pos;
            while let Some(record) = c.step_fast(data) {
                f(Ok((record, start, c.pos)));
                start = c.pos;
            }
            // Called through a `dyn` here, so that `f` has one direct
            // call site (the fast one above) and is inlined there.
            let slow: &mut dyn FnMut(Result<(RecordRef<'a>, usize, usize), RecordsError>) = &mut f;
            match c.step_careful(data) {
                None => break,
                Some(Ok(record)) => slow(Ok((record, start, c.pos))),
                Some(Err(e)) => slow(Err(e)),
            }
        }
        *self = c;
    }

    fn wrap(&self, e: RecordsError) -> RecordsError {
        match self.decompressed_from {
            Some(batch_offset) => e.in_decompressed(batch_offset),
            None => e,
        }
    }
}

impl Records {
    /// The next record, borrowed from the batch's buffer; `None` after the
    /// last declared record or after an error.
    ///
    /// # Errors
    /// Any malformed record; [`RecordsError::RecordCount`] when the data ends
    /// before the declared count; [`RecordsError::TrailingBytes`] when bytes
    /// are left after it. Errors inside decompressed data are wrapped in
    /// [`RecordsError::InDecompressed`].
    #[inline]
    pub fn next_ref(&mut self) -> Option<Result<RecordRef<'_>, RecordsError>> {
        self.cursor.step(&self.data)
    }

    /// Calls `f` with each remaining record, borrowed from the batch's
    /// buffer, in order: the same records as [`Records::next_ref`], read
    /// in one loop that keeps its position in registers (the fastest way
    /// to read a batch).
    ///
    /// # Errors
    /// The first malformed record, as [`Records::next_ref`] reports it;
    /// the records before it have been passed to `f`, and the iterator is
    /// then done.
    #[inline]
    pub fn for_each_ref<F>(&mut self, mut f: F) -> Result<(), RecordsError>
    where
        F: FnMut(RecordRef<'_>),
    {
        let mut error = None;
        self.cursor.drive(&self.data, |step| match step {
            Ok((record, _, _)) => f(record),
            Err(e) => error = Some(e),
        });
        error.map_or(Ok(()), Err)
    }

    /// The buffer the records live in (the decompressed records of a
    /// compressed batch).
    pub fn buffer(&self) -> &Bytes {
        &self.data
    }

    /// The number of records declared and not yet read.
    pub fn remaining(&self) -> usize {
        if self.cursor.done {
            0
        } else {
            (self.cursor.declared - self.cursor.found) as usize
        }
    }
}

impl Iterator for Records {
    type Item = Result<Record, RecordsError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let data = &self.data;
        let start = self.cursor.pos;
        let step = self.cursor.step(data)?;
        Some(step.map(|r| r.to_record(data, start, self.cursor.pos)))
    }

    /// Internal iteration (`for_each`, `collect`, `count`, ...) runs the
    /// fast loop of [`Records::for_each_ref`].
    #[inline]
    fn fold<B, F>(mut self, init: B, mut f: F) -> B
    where
        F: FnMut(B, Self::Item) -> B,
    {
        let data = &self.data;
        let mut acc = Some(init);
        self.cursor.drive(data, |step| {
            let item = step.map(|(r, start, end)| r.to_record(data, start, end));
            acc = acc.take().map(|acc| f(acc, item));
        });
        acc.expect("the accumulator is put back after each record")
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining()))
    }
}
