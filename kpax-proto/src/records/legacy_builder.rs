//! Building legacy message sets (magic 0 and 1), plain or as one compressed
//! wrapper message, the way the Java client wrote them.

use bytes::{BufMut, Bytes, BytesMut};

use super::attributes::{Attributes, TimestampType};
use super::compression::{self, Compression};
use super::error::RecordsError;

/// Builds a legacy message set. Without compression, each appended record
/// becomes one message at offsets `base_offset`, `base_offset + 1`, ...;
/// with compression, they become the inner messages of one wrapper message
/// (inner offsets relative for magic 1, absolute for magic 0; the wrapper
/// carries the last offset and, for magic 1, the largest timestamp).
#[derive(Debug)]
pub struct LegacyMessageSetBuilder {
    magic: i8,
    base_offset: i64,
    compression: Compression,
    timestamp_type: TimestampType,
    /// The message set; for a compressed set, the inner messages.
    buf: BytesMut,
    count: i64,
    max_timestamp: i64,
}

impl LegacyMessageSetBuilder {
    /// A builder for message format `magic` (0 or 1).
    ///
    /// # Errors
    /// [`RecordsError::InvalidInput`] for any other magic.
    pub fn new(magic: i8, base_offset: i64) -> Result<Self, RecordsError> {
        if !(0..=1).contains(&magic) {
            return Err(RecordsError::InvalidInput(
                "legacy message sets have magic 0 or 1",
            ));
        }
        Ok(LegacyMessageSetBuilder {
            magic,
            base_offset,
            compression: Compression::None,
            timestamp_type: TimestampType::CreateTime,
            buf: BytesMut::new(),
            count: 0,
            max_timestamp: -1,
        })
    }

    /// Sets the codec (default none).
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self
    }

    /// Sets the timestamp type written in magic-1 attributes.
    pub fn timestamp_type(mut self, t: TimestampType) -> Self {
        self.timestamp_type = t;
        self
    }

    /// The number of records appended so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was appended yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a record. `timestamp` is ignored for magic 0.
    ///
    /// # Errors
    /// [`RecordsError::Overflow`] when a key or value is 2 GiB or more.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(), RecordsError> {
        let offset = if self.compression != Compression::None && self.magic > 0 {
            self.count
        } else {
            self.base_offset.wrapping_add(self.count)
        };
        let attributes = if self.compression == Compression::None {
            self.attributes(Compression::None)
        } else {
            0
        };
        write_message(
            &mut self.buf,
            offset,
            self.magic,
            attributes,
            timestamp,
            key,
            value,
        )?;
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        Ok(())
    }

    fn attributes(&self, codec: Compression) -> i8 {
        let mut a = Attributes::default().with_compression(codec);
        if self.magic > 0 {
            a = a.with_timestamp_type(self.timestamp_type);
        }
        a.0 as i8
    }

    /// Finishes the set.
    ///
    /// # Errors
    /// [`RecordsError::InvalidInput`] for an empty set, codec errors, and
    /// [`RecordsError::Overflow`] for a wrapper over 2 GiB.
    pub fn finish(self) -> Result<Bytes, RecordsError> {
        if self.count == 0 {
            return Err(RecordsError::InvalidInput(
                "a message set needs at least one record",
            ));
        }
        if self.compression == Compression::None {
            return Ok(self.buf.freeze());
        }
        let mut compressed = BytesMut::with_capacity(self.buf.len() / 2 + 64);
        compression::compress(self.compression, self.magic, &self.buf, &mut compressed)?;
        let mut out = BytesMut::with_capacity(compressed.len() + 64);
        write_message(
            &mut out,
            self.base_offset.wrapping_add(self.count - 1),
            self.magic,
            self.attributes(self.compression),
            self.max_timestamp,
            None,
            Some(&compressed),
        )?;
        Ok(out.freeze())
    }
}

/// Writes one message with its offset, size and CRC32.
fn write_message(
    buf: &mut BytesMut,
    offset: i64,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<(), RecordsError> {
    let len = |b: Option<&[u8]>| b.map_or(0, <[u8]>::len);
    let timestamp_len = if magic > 0 { 8 } else { 0 };
    let size = 4 + 1 + 1 + timestamp_len + 4 + len(key) + 4 + len(value);
    let size_i32 = i32::try_from(size).map_err(|_| RecordsError::Overflow {
        what: "message size",
    })?;
    buf.reserve(12 + size);
    let start = buf.len();
    buf.put_i64(offset);
    buf.put_i32(size_i32);
    buf.put_u32(0); // CRC, below
    buf.put_i8(magic);
    buf.put_i8(attributes);
    if magic > 0 {
        buf.put_i64(timestamp);
    }
    for b in [key, value] {
        match b {
            None => buf.put_i32(-1),
            Some(b) => {
                buf.put_i32(b.len() as i32);
                buf.put_slice(b);
            }
        }
    }
    let crc = crc32fast::hash(&buf[start + 16..]);
    buf[start + 12..start + 16].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}
