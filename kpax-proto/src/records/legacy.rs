//! Legacy message sets, magic 0 and 1 (Kafka 0.8 to 0.10): reading one
//! top-level message, and the records inside a compressed wrapper.
//!
//! A message: `offset: int64`, `messageSize: int32`, then `crc: uint32`
//! (CRC32 IEEE of the rest), `magic: int8`, `attributes: int8` (codec in bits
//! 0-2; bit 3 timestamp type for magic 1), `timestamp: int64` (magic 1
//! only), `key: bytes`, `value: bytes` (int32 length, -1 for null).
//!
//! A compressed message's value is a whole message set, compressed. For
//! magic 1 the inner offsets are relative (0, 1, ...) and the wrapper's
//! offset is the absolute offset of the last inner message; for magic 0 the
//! inner offsets are absolute.

use bytes::Bytes;

use super::attributes::{Attributes, TimestampType};
use super::compression::{self, Compression};
use super::error::RecordsError;
use super::reader::Reader;
use super::record::{share, Record};
use super::set::ReadOptions;

/// The smallest magic-0 message after the offset and size fields: crc,
/// magic, attributes and two null lengths.
pub(crate) const MESSAGE_OVERHEAD_V0: usize = 4 + 1 + 1 + 4 + 4;
/// As [`MESSAGE_OVERHEAD_V0`], with the timestamp.
pub(crate) const MESSAGE_OVERHEAD_V1: usize = MESSAGE_OVERHEAD_V0 + 8;

/// One top-level legacy message: a plain record, or a compressed wrapper
/// holding a message set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyBatch {
    /// The message's offset; for a wrapper, the offset of its last inner message.
    pub offset: i64,
    /// 0 or 1.
    pub magic: i8,
    /// The stored CRC32.
    pub crc: u32,
    /// The attributes byte.
    pub attributes: i8,
    /// The timestamp (magic 1); `None` for magic 0.
    pub timestamp: Option<i64>,
    /// The key (slice of the input).
    pub key: Option<Bytes>,
    /// The value (slice of the input); for a wrapper, the compressed message set.
    pub value: Option<Bytes>,
    compression: Compression,
    position: usize,
    options: ReadOptions,
    /// The message from its key length to its end, and where the key and
    /// value lie in it: what its [`Record`] shares.
    body: Bytes,
    key_range: Option<std::ops::Range<usize>>,
    value_range: Option<std::ops::Range<usize>>,
}

impl LegacyBatch {
    /// Reads the message occupying `input[pos..end]`; the caller has checked
    /// the size field against `end`.
    pub(crate) fn parse(
        input: &Bytes,
        pos: usize,
        end: usize,
        options: &ReadOptions,
    ) -> Result<LegacyBatch, RecordsError> {
        let bytes = &input[pos..end];
        let mut r = Reader::new(bytes, pos);
        let offset = r.i64("offset")?;
        let at = r.offset();
        let size = r.i32("message size")?;
        let crc = r.u32("crc")?;
        let at_magic = r.offset();
        let magic = r.i8("magic")?;
        let min = match magic {
            0 => MESSAGE_OVERHEAD_V0,
            1 => MESSAGE_OVERHEAD_V1,
            _ => {
                return Err(RecordsError::BadMagic {
                    offset: at_magic,
                    magic,
                })
            }
        };
        if (size as i64) < min as i64 {
            return Err(RecordsError::BadLength {
                what: "message size",
                offset: at,
                value: size.into(),
            });
        }
        if options.verify_crc {
            let computed = crc32fast::hash(&bytes[16..]);
            if computed != crc {
                return Err(RecordsError::BadCrc {
                    offset: pos,
                    stored: crc,
                    computed,
                });
            }
        }
        let attributes = r.i8("attributes")?;
        let codec = Attributes(attributes.into()).compression_id();
        let compression = Compression::from_id(codec)
            .ok_or(RecordsError::UnknownCompression { offset: pos, codec })?;
        let timestamp = if magic == 1 {
            Some(r.i64("timestamp")?)
        } else {
            None
        };
        let body_at = r.offset();
        let at = r.offset();
        let len = r.i32("key length")?;
        let key = r.nullable_bytes(len.into(), "key", at)?;
        let key_range = key.map(|k| at + 4 - body_at..at + 4 - body_at + k.len());
        let at = r.offset();
        let len = r.i32("value length")?;
        let value = r.nullable_bytes(len.into(), "value", at)?;
        let value_range = value.map(|v| at + 4 - body_at..at + 4 - body_at + v.len());
        if !r.is_empty() {
            return Err(RecordsError::TrailingBytes {
                offset: r.offset(),
                count: r.remaining(),
            });
        }
        let slice = |s: &[u8]| share(input, s);
        Ok(LegacyBatch {
            offset,
            magic,
            crc,
            attributes,
            timestamp,
            key: key.map(slice),
            value: value.map(slice),
            compression,
            position: pos,
            options: *options,
            body: input.slice(body_at..end),
            key_range,
            value_range,
        })
    }

    /// The codec of a wrapper message; [`Compression::None`] for a plain one.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The timestamp type (magic 1; create time for magic 0).
    pub fn timestamp_type(&self) -> TimestampType {
        if self.magic == 0 {
            TimestampType::CreateTime
        } else {
            Attributes(self.attributes.into()).timestamp_type()
        }
    }

    /// The byte offset of this message in the parsed input.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The records: the message itself, or a wrapper's inner messages with
    /// absolute offsets (and, for log-append-time wrappers, the wrapper's
    /// timestamp). Magic-0 records have timestamp -1.
    ///
    /// # Errors
    /// Decompression errors, and for inner messages the errors of a
    /// top-level one plus [`RecordsError::NestedCompression`], wrapped in
    /// [`RecordsError::InDecompressed`]. A cut-off inner message set is an
    /// error (it was compressed whole).
    pub fn records(&self) -> Result<LegacyRecords, RecordsError> {
        if self.compression == Compression::None {
            let record = self.record();
            return Ok(LegacyRecords {
                inner: vec![record].into_iter(),
            });
        }
        let value = self.value.as_deref().unwrap_or(&[]);
        let data = crate::buffer_pool::DECOMPRESSED.freeze(compression::decompress(
            self.compression,
            self.magic,
            value,
            self.options.max_decompressed_size,
            self.position,
        )?);
        let mut inner = self
            .inner_messages(&data)
            .map_err(|e| e.in_decompressed(self.position))?;
        if self.magic > 0 {
            // Relative inner offsets: the wrapper holds the last one's absolute offset.
            let last = inner.last().map_or(0, |r| r.offset);
            let base = self.offset.wrapping_sub(last);
            for r in &mut inner {
                r.offset = base.wrapping_add(r.offset);
            }
            if self.timestamp_type() == TimestampType::LogAppendTime {
                let t = self.timestamp.unwrap_or(-1);
                for r in &mut inner {
                    r.timestamp = t;
                }
            }
        }
        Ok(LegacyRecords {
            inner: inner.into_iter(),
        })
    }

    /// This message as a record sharing its bytes.
    fn record(&self) -> Record {
        Record::in_buffer(
            self.offset,
            self.timestamp.unwrap_or(-1),
            self.body.clone(),
            self.key_range.clone(),
            self.value_range.clone(),
        )
    }

    /// Reads every inner message of a decompressed wrapper value.
    fn inner_messages(&self, data: &Bytes) -> Result<Vec<Record>, RecordsError> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let mut r = Reader::new(&data[pos..], pos);
            r.i64("offset")?;
            let at = r.offset();
            let size = r.i32("message size")?;
            let size = usize::try_from(size).map_err(|_| RecordsError::BadLength {
                what: "message size",
                offset: at,
                value: size.into(),
            })?;
            if size > r.remaining() {
                return Err(RecordsError::LengthPastEnd {
                    what: "message",
                    offset: r.offset(),
                    length: size,
                    available: r.remaining(),
                });
            }
            let end = r.offset() + size;
            let message = LegacyBatch::parse(data, pos, end, &self.options)?;
            if message.compression != Compression::None {
                return Err(RecordsError::NestedCompression { offset: pos });
            }
            out.push(message.record());
            pos = end;
        }
        Ok(out)
    }
}

/// The records of one legacy message (see [`LegacyBatch::records`]).
#[derive(Debug, Clone)]
pub struct LegacyRecords {
    inner: std::vec::IntoIter<Record>,
}

impl Iterator for LegacyRecords {
    type Item = Result<Record, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(Ok)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
