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
use crate::varint::unzigzag32;

/// A record that owns a share of the buffer it was parsed from: its key,
/// value and headers are ranges of one `Bytes` handle (no copies, and one
/// reference count per record, not one per field).
///
/// [`Record::key`], [`Record::value`] and [`Record::headers`] borrow from
/// it; [`Record::key_bytes`] and [`Record::value_bytes`] hand out `Bytes`
/// slices that outlive the record. Legacy messages (magic 0 and 1) have no
/// headers; their timestamp is -1 for magic 0.
#[derive(Clone)]
pub struct Record {
    /// The record's offset in its partition.
    pub offset: i64,
    /// Milliseconds since the epoch; -1 when the format has none.
    pub timestamp: i64,
    buf: Bytes,
    key: Span,
    value: Span,
    /// The headers' bytes in `buf` (their wire encoding, after the count).
    headers: Span,
    header_count: u32,
}

/// Where a byte field lies in its record's buffer, or null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    const NULL: Span = Span {
        start: u32::MAX,
        len: 0,
    };
    const EMPTY: Span = Span { start: 0, len: 0 };

    /// The span of `field` in `record`, which holds it; `None` is null.
    #[inline(always)]
    fn of(field: Option<&[u8]>, record: &[u8]) -> Span {
        match field {
            None => Span::NULL,
            // Addresses only: `field` lies inside `record` (both are
            // slices of the same parsed buffer).
            Some(f) => Span {
                start: (f.as_ptr() as usize).wrapping_sub(record.as_ptr() as usize) as u32,
                len: f.len() as u32,
            },
        }
    }

    /// A span of `len` bytes at `start`.
    fn at(start: usize, len: usize) -> Span {
        Span {
            start: start as u32,
            len: len as u32,
        }
    }

    #[inline(always)]
    fn is_null(self) -> bool {
        self.start == u32::MAX
    }

    #[inline(always)]
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }

    #[inline(always)]
    fn get(self, buf: &[u8]) -> Option<&[u8]> {
        (!self.is_null()).then(|| &buf[self.range()])
    }
}

impl Record {
    /// A record holding copies of `key`, `value` and `headers` in one new
    /// buffer (records read from a batch share the batch's buffer instead).
    ///
    /// # Panics
    /// When the fields add up to 4 GiB or more (a Kafka record is at most
    /// 2 GiB).
    pub fn new(
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> Record {
        let size = key.map_or(0, <[u8]>::len)
            + value.map_or(0, <[u8]>::len)
            + headers
                .iter()
                .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len) + 10)
                .sum::<usize>();
        assert!(
            u32::try_from(size).is_ok(),
            "a record's fields must stay under 4 GiB"
        );
        let mut buf = Vec::with_capacity(size);
        let put = |f: Option<&[u8]>, buf: &mut Vec<u8>| match f {
            None => Span::NULL,
            Some(f) => {
                let span = Span::at(buf.len(), f.len());
                buf.extend_from_slice(f);
                span
            }
        };
        let key = put(key, &mut buf);
        let value = put(value, &mut buf);
        let headers_at = buf.len();
        for (k, v) in headers {
            crate::varint::put_varint(&mut buf, k.len() as i32);
            buf.extend_from_slice(k);
            match v {
                None => crate::varint::put_varint(&mut buf, -1),
                Some(v) => {
                    crate::varint::put_varint(&mut buf, v.len() as i32);
                    buf.extend_from_slice(v);
                }
            }
        }
        Record {
            offset,
            timestamp,
            key,
            value,
            headers: Span::at(headers_at, buf.len() - headers_at),
            header_count: headers.len() as u32,
            buf: Bytes::from(buf),
        }
    }

    /// A record whose key and value are ranges of `buf` (no headers).
    pub(crate) fn in_buffer(
        offset: i64,
        timestamp: i64,
        buf: Bytes,
        key: Option<std::ops::Range<usize>>,
        value: Option<std::ops::Range<usize>>,
    ) -> Record {
        let span = |r: Option<std::ops::Range<usize>>| {
            r.map_or(Span::NULL, |r| Span::at(r.start, r.len()))
        };
        Record {
            offset,
            timestamp,
            buf,
            key: span(key),
            value: span(value),
            headers: Span::EMPTY,
            header_count: 0,
        }
    }

    /// The key; `None` for a null key.
    #[inline]
    pub fn key(&self) -> Option<&[u8]> {
        self.key.get(&self.buf)
    }

    /// The value; `None` for a tombstone.
    #[inline]
    pub fn value(&self) -> Option<&[u8]> {
        self.value.get(&self.buf)
    }

    /// The key as a `Bytes` slice of the record's buffer (no copy).
    pub fn key_bytes(&self) -> Option<Bytes> {
        (!self.key.is_null()).then(|| self.buf.slice(self.key.range()))
    }

    /// The value as a `Bytes` slice of the record's buffer (no copy).
    pub fn value_bytes(&self) -> Option<Bytes> {
        (!self.value.is_null()).then(|| self.buf.slice(self.value.range()))
    }

    /// The number of headers.
    #[inline]
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// The headers, in wire order, borrowed from the record. (They were
    /// checked when the record was parsed, so this cannot fail.)
    pub fn headers(&self) -> HeaderRefs<'_> {
        HeaderRefs {
            reader: Reader::new(self.raw_headers(), 0),
            remaining: self.header_count,
        }
    }

    /// The value of the last header named `key` (Kafka allows repeats; the
    /// last one wins, as in the Java client's `lastHeader`): `None` when
    /// there is none, `Some(None)` for a null value.
    pub fn last_header(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.headers()
            .filter(|h| h.key == key)
            .last()
            .map(|h| h.value)
    }

    /// The headers as owned [`Header`]s whose bytes are slices of the
    /// record's buffer (no copies).
    pub fn headers_owned(&self) -> Vec<Header> {
        let slice = |s: &[u8]| share(&self.buf, s);
        self.headers()
            .map(|h| Header {
                key: slice(h.key),
                value: h.value.map(slice),
            })
            .collect()
    }

    /// The headers in their wire encoding (after the count).
    pub(crate) fn raw_headers(&self) -> &[u8] {
        &self.buf[self.headers.range()]
    }

    /// The buffer the key, value and headers are ranges of: the record's
    /// own bytes for a record read from a batch.
    pub fn buffer(&self) -> &Bytes {
        &self.buf
    }
}

/// `s`, a slice of `buf`, as a `Bytes` sharing it (an empty `s` need not
/// point into `buf`).
pub(crate) fn share(buf: &Bytes, s: &[u8]) -> Bytes {
    if s.is_empty() {
        Bytes::new()
    } else {
        buf.slice_ref(s)
    }
}

/// Offset and timestamp 0, null key and value, no headers.
impl Default for Record {
    fn default() -> Self {
        Record {
            offset: 0,
            timestamp: 0,
            buf: Bytes::new(),
            key: Span::NULL,
            value: Span::NULL,
            headers: Span::EMPTY,
            header_count: 0,
        }
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.offset == other.offset
            && self.timestamp == other.timestamp
            && self.key() == other.key()
            && self.value() == other.value()
            && self.headers().eq(other.headers())
    }
}

impl Eq for Record {}

/// Shows the key, value and headers (as byte strings), not the buffer.
impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = |b: Option<&[u8]>| b.map(bytes::Bytes::copy_from_slice);
        f.debug_struct("Record")
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &bytes(self.key()))
            .field("value", &bytes(self.value()))
            .field("headers", &self.headers().collect::<Vec<_>>())
            .finish()
    }
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

    /// An owned [`Record`] sharing `record`, the record's own bytes
    /// (`source[start..end]`, which this record was parsed from): one
    /// reference count for the whole record.
    #[inline(always)]
    pub(crate) fn to_record(self, source: &Bytes, start: usize, end: usize) -> Record {
        let record = &source[start..end];
        Record {
            offset: self.offset,
            timestamp: self.timestamp,
            key: Span::of(self.key, record),
            value: Span::of(self.value, record),
            headers: if self.header_count == 0 {
                Span::EMPTY
            } else {
                Span::of(Some(self.headers), record)
            },
            header_count: self.header_count,
            buf: source.slice(start..end),
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

/// The unsigned varint of 1 to 3 bytes at the start of `x` (the next input
/// bytes, little-endian), and its size; `None` when it is longer (the
/// careful reader handles those). The size is found by branches, not
/// computed: in a batch the sizes repeat, the branches are predicted, and
/// the value does not wait for the size.
#[inline(always)]
fn window_uvarint(x: u32) -> Option<(u32, usize)> {
    if x & 0x80 == 0 {
        Some((x & 0x7f, 1))
    } else if x & 0x8000 == 0 {
        Some(((x & 0x7f) | ((x >> 1) & 0x3f80), 2))
    } else if x & 0x0080_0000 == 0 {
        Some((
            (x & 0x7f) | ((x >> 1) & 0x3f80) | ((x >> 2) & 0x001f_c000),
            3,
        ))
    } else {
        None
    }
}

/// The four bytes at `s[i..]` as a little-endian word.
#[inline(always)]
fn word_at(s: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(s.get(i..i + 4)?.try_into().ok()?))
}

/// A nullable length in zig-zag form (`u` = 2 * length, or 1 for -1):
/// `Some(None)` for null, `Some(Some(len))`, or `None` for any other
/// negative length.
#[inline(always)]
fn zigzag_length(u: u32) -> Option<Option<usize>> {
    if u & 1 == 0 {
        Some(Some((u >> 1) as usize))
    } else if u == 1 {
        Some(None)
    } else {
        None
    }
}

/// Bytes the fast path reads at the start of a record: enough for its
/// length, attributes, timestamp and offset deltas and key length at
/// their common sizes (1 + 4 * 3 bytes at most, each read as a word).
const FAST_WINDOW: usize = 16;

/// The fast path of [`read_record`] for the common record: every varint
/// of at most 3 bytes and no headers. Returns the record and the position
/// after it, or `None` for anything else (including every malformed
/// record, and a record within 16 bytes of the end of `data`), so that the
/// careful reader produces the result or the error with its exact offset.
/// For any input where it returns `Some`, the result equals
/// `read_record`'s (a property test checks it).
///
/// Every position is relative to the record's start, every field moves
/// the position forward, and the last check is that the header count (0)
/// is the record's last byte: that proves every field was inside the
/// record, so no field needs a check of its own against the record's end.
#[inline(always)]
pub(crate) fn read_record_fast<'a>(
    data: &'a [u8],
    pos: usize,
    ctx: &RecordContext,
) -> Option<(RecordRef<'a>, usize)> {
    let rest = data.get(pos..)?;
    let win: &[u8; FAST_WINDOW] = rest.get(..FAST_WINDOW)?.try_into().ok()?;
    let (u, n) = window_uvarint(u32::from_le_bytes([win[0], win[1], win[2], win[3]]))?;
    // A positive length: even in zig-zag form, and not zero.
    if u & 1 != 0 || u == 0 {
        return None;
    }
    let end = n + (u >> 1) as usize;
    if end > rest.len() {
        return None;
    }
    let attributes = win[n] as i8;
    let mut i = n + 1;
    let (t, k) = window_uvarint(word_at(win, i)?)?;
    i += k;
    let (o, k) = window_uvarint(word_at(win, i)?)?;
    i += k;
    let (kl, k) = window_uvarint(word_at(win, i)?)?;
    i += k;
    let key_at = i;
    let (key, key_end) = match zigzag_length(kl)? {
        None => (None, key_at),
        Some(l) => (Some(rest.get(key_at..key_at + l)?), key_at + l),
    };
    let (vl, k) = window_uvarint(word_at(rest, key_end)?)?;
    let value_at = key_end + k;
    let (value, value_end) = match zigzag_length(vl)? {
        None => (None, value_at),
        Some(l) => (Some(rest.get(value_at..value_at + l)?), value_at + l),
    };
    // No headers (a zero count) and nothing after them: the count is the
    // record's last byte.
    if value_end + 1 != end || rest[value_end] != 0 {
        return None;
    }
    Some((
        RecordRef {
            offset: ctx.base_offset.wrapping_add(unzigzag32(o).into()),
            timestamp: match ctx.log_append_time {
                Some(t) => t,
                None => ctx.base_timestamp.wrapping_add(unzigzag32(t).into()),
            },
            attributes,
            key,
            value,
            headers: &[],
            header_count: 0,
        },
        pos + end,
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
