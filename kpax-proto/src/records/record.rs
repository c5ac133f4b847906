//! One record of a batch v2: its wire layout, the borrowed view the parser
//! hands out ([`RecordRef`]) and the owned one ([`Record`]).
//!
//! On the wire a record is `length: varint`, then `attributes: i8`,
//! `timestampDelta: varlong`, `offsetDelta: varint`, `key`, `value` (each a
//! varint length, -1 for null, and the bytes) and `headers` (a varint count,
//! then per header a key and a nullable value, encoded as key and value).

use bytes::Bytes;

use super::error::RecordsError;
use super::reader::Reader;

/// A record with its key, value and headers as `Bytes` that share the
/// buffer the batch was parsed from (no copies).
///
/// Legacy messages (magic 0 and 1) have no headers; their timestamp is -1
/// for magic 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The record's offset in its partition.
    pub offset: i64,
    /// Milliseconds since the epoch; -1 when the format has none.
    pub timestamp: i64,
    /// The key; `None` for a null key.
    pub key: Option<Bytes>,
    /// The value; `None` for a tombstone.
    pub value: Option<Bytes>,
    /// The headers, in wire order.
    pub headers: Vec<Header>,
}

/// A record header: a key (UTF-8 by convention, not checked) and a nullable value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// The header key.
    pub key: Bytes,
    /// The header value; `None` for null.
    pub value: Option<Bytes>,
}

/// A record borrowed from its batch's buffer: the fastest way to read
/// records, with no reference counting. Obtained from
/// [`Records::next_ref`](super::Records::next_ref).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The record's offset in its partition (base offset + offset delta).
    pub offset: i64,
    /// Milliseconds since the epoch: base timestamp + timestamp delta, or the
    /// batch's max timestamp for log-append-time batches.
    pub timestamp: i64,
    /// The record's own attributes byte (unused by Kafka so far).
    pub attributes: i8,
    /// The key; `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value; `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: u32,
}

/// A header borrowed from its batch's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// The header key.
    pub key: &'a [u8],
    /// The header value; `None` for null.
    pub value: Option<&'a [u8]>,
}

impl<'a> RecordRef<'a> {
    /// The number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// The headers, in wire order. (They were checked when the record was
    /// parsed, so this cannot fail.)
    pub fn headers(&self) -> HeaderRefs<'a> {
        HeaderRefs {
            reader: Reader::new(self.headers, 0),
            remaining: self.header_count,
        }
    }

    /// An owned [`Record`] whose byte fields are slices of `source`, the
    /// buffer this record was parsed from.
    pub(crate) fn to_record(self, source: &Bytes) -> Record {
        let slice = |s: &[u8]| {
            if s.is_empty() {
                Bytes::new()
            } else {
                source.slice_ref(s)
            }
        };
        Record {
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.map(slice),
            value: self.value.map(slice),
            headers: self
                .headers()
                .map(|h| Header {
                    key: slice(h.key),
                    value: h.value.map(slice),
                })
                .collect(),
        }
    }
}

/// The headers of a [`RecordRef`].
#[derive(Debug, Clone)]
pub struct HeaderRefs<'a> {
    reader: Reader<'a>,
    remaining: u32,
}

impl<'a> Iterator for HeaderRefs<'a> {
    type Item = HeaderRef<'a>;

    fn next(&mut self) -> Option<HeaderRef<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let h = read_header(&mut self.reader).ok();
        if h.is_none() {
            self.remaining = 0;
        }
        h
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

/// What a record needs from its batch to turn deltas into absolute values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordContext {
    pub(crate) base_offset: i64,
    pub(crate) base_timestamp: i64,
    /// The batch's max timestamp when the batch uses log-append time.
    pub(crate) log_append_time: Option<i64>,
}

#[inline]
fn read_header<'a>(r: &mut Reader<'a>) -> Result<HeaderRef<'a>, RecordsError> {
    let at = r.offset();
    let len = r.varint("header key length")?;
    if len < 0 {
        return Err(RecordsError::BadLength {
            what: "header key length",
            offset: at,
            value: len.into(),
        });
    }
    let key = r
        .nullable_bytes(len.into(), "header key", at)?
        .unwrap_or(&[]);
    let at = r.offset();
    let len = r.varint("header value length")?;
    let value = r.nullable_bytes(len.into(), "header value", at)?;
    Ok(HeaderRef { key, value })
}

/// A zig-zag varint of at most 3 bytes at `s[*i..]` (the common sizes in
/// record bodies); `None` for anything else, which the careful reader
/// handles.
#[inline(always)]
fn short_varint(s: &[u8], i: &mut usize) -> Option<i32> {
    let b0 = *s.get(*i)?;
    let u = if b0 < 0x80 {
        *i += 1;
        u32::from(b0)
    } else {
        let b1 = *s.get(*i + 1)?;
        if b1 < 0x80 {
            *i += 2;
            u32::from(b0 & 0x7f) | (u32::from(b1) << 7)
        } else {
            let b2 = *s.get(*i + 2)?;
            if b2 >= 0x80 {
                return None;
            }
            *i += 3;
            u32::from(b0 & 0x7f) | (u32::from(b1 & 0x7f) << 7) | (u32::from(b2) << 14)
        }
    };
    Some(((u >> 1) as i32) ^ -((u & 1) as i32))
}

/// `len` bytes at `s[*i..]` (`None` for -1, i.e. null), or `Err(())` when
/// they do not fit.
#[inline(always)]
fn short_bytes<'a>(s: &'a [u8], i: &mut usize, len: i32) -> Result<Option<&'a [u8]>, ()> {
    if len < 0 {
        return if len == -1 { Ok(None) } else { Err(()) };
    }
    // No overflow: `*i` is within a slice and `len` below 2^31.
    let end = *i + len as usize;
    let v = s.get(*i..end).ok_or(())?;
    *i = end;
    Ok(Some(v))
}

/// The fast path of [`read_record`] for the common record: every varint
/// of at most 3 bytes and no headers. Returns the record and the position
/// after it, or `None` for anything else (including every malformed
/// record), so that the careful reader produces the result or the error
/// with its exact offset. For any input where it returns `Some`, the
/// result equals `read_record`'s (a property test checks it).
#[inline(always)]
pub(crate) fn read_record_fast<'a>(
    data: &'a [u8],
    pos: usize,
    ctx: &RecordContext,
) -> Option<(RecordRef<'a>, usize)> {
    let mut i = pos;
    let len = short_varint(data, &mut i)?;
    if len <= 0 {
        return None;
    }
    let end = i + len as usize;
    let body = data.get(i..end)?;
    let mut j = 0;
    let attributes = *body.first()? as i8;
    j += 1;
    let timestamp_delta = short_varint(body, &mut j)?;
    let offset_delta = short_varint(body, &mut j)?;
    let key_len = short_varint(body, &mut j)?;
    let key = short_bytes(body, &mut j, key_len).ok()?;
    let value_len = short_varint(body, &mut j)?;
    let value = short_bytes(body, &mut j, value_len).ok()?;
    // No headers (a zero count), and nothing after them.
    if j + 1 != body.len() || body[j] != 0 {
        return None;
    }
    Some((
        RecordRef {
            offset: ctx.base_offset.wrapping_add(offset_delta.into()),
            timestamp: match ctx.log_append_time {
                Some(t) => t,
                None => ctx.base_timestamp.wrapping_add(timestamp_delta.into()),
            },
            attributes,
            key,
            value,
            headers: &[],
            header_count: 0,
        },
        end,
    ))
}

/// Reads one record at the reader's position and moves past it.
#[inline(always)]
pub(crate) fn read_record<'a>(
    r: &mut Reader<'a>,
    ctx: &RecordContext,
) -> Result<RecordRef<'a>, RecordsError> {
    let start = r.offset();
    let len = r.varint("record length")?;
    let body_at = r.offset();
    let body = match r.nullable_bytes(len.into(), "record", start)? {
        Some(body) if len > 0 => body,
        _ => {
            return Err(RecordsError::BadLength {
                what: "record length",
                offset: start,
                value: len.into(),
            })
        }
    };
    let mut b = Reader::new(body, body_at);
    let attributes = b.i8("record attributes")?;
    let timestamp_delta = b.varlong("timestamp delta")?;
    let offset_delta = b.varint("offset delta")?;
    let at = b.offset();
    let key_len = b.varint("key length")?;
    let key = b.nullable_bytes(key_len.into(), "key", at)?;
    let at = b.offset();
    let value_len = b.varint("value length")?;
    let value = b.nullable_bytes(value_len.into(), "value", at)?;
    let at = b.offset();
    let header_count = b.varint("header count")?;
    if header_count < 0 {
        return Err(RecordsError::BadLength {
            what: "header count",
            offset: at,
            value: header_count.into(),
        });
    }
    let headers_start = b.pos;
    for _ in 0..header_count {
        read_header(&mut b)?;
    }
    if !b.is_empty() {
        return Err(RecordsError::RecordLength {
            offset: start,
            declared: body.len(),
            used: b.pos,
        });
    }
    Ok(RecordRef {
        offset: ctx.base_offset.wrapping_add(offset_delta.into()),
        timestamp: match ctx.log_append_time {
            Some(t) => t,
            None => ctx.base_timestamp.wrapping_add(timestamp_delta),
        },
        attributes,
        key,
        value,
        headers: &body[headers_start..],
        header_count: header_count as u32,
    })
}
