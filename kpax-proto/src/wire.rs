//! Kafka's primitive types on the wire: big-endian integers, (compact,
//! nullable) strings and bytes, array lengths, UUIDs and tagged fields.
//!
//! Decoders read from a `bytes::Bytes` cursor and hand out slices of it
//! (no copies); encoders append to a `bytes::BytesMut`. Every read checks
//! the remaining input first and every length is checked against it, so
//! hostile input gives a [`WireError`], never a panic or an allocation larger
//! than the input can justify.

use crate::varint;
use bytes::{Buf, Bytes, BytesMut};
use std::fmt;

pub use crate::int32_array::Int32Array;
pub use crate::sink::{FrameBuf, Sink};

/// What went wrong reading or writing one primitive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes remain than the value needs.
    #[error("needs {need} bytes, {have} remain")]
    Short {
        /// Bytes the value needs.
        need: usize,
        /// Bytes left in the input.
        have: usize,
    },
    /// A length prefix below -1 (or null where null is not allowed).
    #[error("invalid length {0}")]
    BadLength(i64),
    /// A string that is not UTF-8.
    #[error("string is not valid UTF-8")]
    Utf8,
    /// A bad unsigned varint.
    #[error(transparent)]
    Varint(#[from] varint::VarintError),
    /// An array count that the remaining input cannot hold.
    #[error("array of {count} elements cannot fit in the {remaining} remaining bytes")]
    CountTooLarge {
        /// The count read.
        count: usize,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A null value where this version cannot carry null.
    #[error("null is not allowed here")]
    NullNotAllowed,
    /// A value too long for its length prefix.
    #[error("length {0} does not fit the length prefix")]
    TooLong(usize),
    /// Tagged fields out of ascending tag order, or a tag seen twice.
    #[error("tagged field {tag} is out of order")]
    TagOrder {
        /// The offending tag.
        tag: u32,
    },
    /// A tagged field's value did not use exactly its declared size.
    #[error("tagged field {tag} declared {declared} bytes but its value used {used}")]
    TagSize {
        /// The tag.
        tag: u32,
        /// The size the tag header declared.
        declared: usize,
        /// The bytes its value took.
        used: usize,
    },
    /// The version is not one this message has.
    #[error("version {0} is not supported")]
    UnsupportedVersion(i16),
    /// An API key this code does not know.
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// A non-default value in a field this version does not carry.
    #[error(
        "a non-default value cannot be written in this version (the field does not exist in it)"
    )]
    FieldNotInVersion,
}

/// A message that could not be decoded: which message, field and version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("decoding {message}.{field} (version {version}): {kind}")]
pub struct DecodeError {
    /// The struct being decoded, e.g. `MetadataResponseTopic`.
    pub message: &'static str,
    /// The field being read (`_tagged_fields` for the tag section).
    pub field: &'static str,
    /// The message version.
    pub version: i16,
    /// What went wrong.
    pub kind: WireError,
}

/// A message that could not be encoded: which message, field and version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("encoding {message}.{field} (version {version}): {kind}")]
pub struct EncodeError {
    /// The struct being encoded.
    pub message: &'static str,
    /// The field being written.
    pub field: &'static str,
    /// The message version.
    pub version: i16,
    /// What went wrong.
    pub kind: WireError,
}

/// Builds a closure that places a [`WireError`] in a [`DecodeError`].
#[inline]
pub fn decode_ctx(
    message: &'static str,
    field: &'static str,
    version: i16,
) -> impl FnOnce(WireError) -> DecodeError {
    move |kind| DecodeError {
        message,
        field,
        version,
        kind,
    }
}

/// Builds a closure that places a [`WireError`] in an [`EncodeError`].
#[inline]
pub fn encode_ctx(
    message: &'static str,
    field: &'static str,
    version: i16,
) -> impl FnOnce(WireError) -> EncodeError {
    move |kind| EncodeError {
        message,
        field,
        version,
        kind,
    }
}

/// A UTF-8 string that shares the bytes it was decoded from.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StrBytes(Bytes);

impl StrBytes {
    /// Wraps `bytes` after checking they are UTF-8.
    ///
    /// # Errors
    /// [`WireError::Utf8`] when they are not.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, WireError> {
        std::str::from_utf8(&bytes).map_err(|_| WireError::Utf8)?;
        Ok(StrBytes(bytes))
    }

    /// A string from a `'static str` without copying.
    pub const fn from_static(s: &'static str) -> Self {
        StrBytes(Bytes::from_static(s.as_bytes()))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks (or starts from) valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Deref for StrBytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for StrBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for StrBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for StrBytes {
    fn from(s: String) -> Self {
        StrBytes(Bytes::from(s))
    }
}

impl From<&str> for StrBytes {
    fn from(s: &str) -> Self {
        StrBytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl PartialEq<str> for StrBytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for StrBytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A Kafka UUID: sixteen bytes, big-endian.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero UUID Kafka uses for "no id".
    pub const ZERO: Uuid = Uuid([0; 16]);
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A tagged field this code does not know: kept and written back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawTaggedField {
    /// The tag.
    pub tag: u32,
    /// The field's encoded value.
    pub data: Bytes,
}

/// The tagged fields of one struct that this code does not know, kept as
/// read and written back in tag order.
///
/// Nearly always empty, and every struct of a flexible message has one: as
/// a `Vec` each cost 24 bytes and a call to drop; empty, this is one null
/// pointer.
// A boxed Vec on purpose: one pointer when empty (a Vec is three words),
// and the rare push amortised like a Vec's.
#[allow(clippy::box_collection)]
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UnknownTaggedFields(Option<Box<Vec<RawTaggedField>>>);

impl UnknownTaggedFields {
    /// None.
    pub const fn new() -> Self {
        UnknownTaggedFields(None)
    }

    /// Adds a field (callers keep tags ascending; encoding checks).
    pub fn push(&mut self, field: RawTaggedField) {
        self.0.get_or_insert_with(Default::default).push(field);
    }

    /// The fields, in the order read.
    pub fn as_slice(&self) -> &[RawTaggedField] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl std::ops::Deref for UnknownTaggedFields {
    type Target = [RawTaggedField];
    fn deref(&self) -> &[RawTaggedField] {
        self.as_slice()
    }
}

impl fmt::Debug for UnknownTaggedFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl From<Vec<RawTaggedField>> for UnknownTaggedFields {
    fn from(v: Vec<RawTaggedField>) -> Self {
        if v.is_empty() {
            Self::new()
        } else {
            UnknownTaggedFields(Some(Box::new(v)))
        }
    }
}

impl FromIterator<RawTaggedField> for UnknownTaggedFields {
    fn from_iter<I: IntoIterator<Item = RawTaggedField>>(iter: I) -> Self {
        iter.into_iter().collect::<Vec<_>>().into()
    }
}

#[inline(always)]
fn need(buf: &Bytes, n: usize) -> Result<(), WireError> {
    if buf.remaining() < n {
        Err(WireError::Short {
            need: n,
            have: buf.remaining(),
        })
    } else {
        Ok(())
    }
}

/// Appends `N` bytes with one capacity check and a fixed-size store.
///
/// `BytesMut::put_slice` is out of line and copies with `memmove`, which
/// made every INT32 written a call into two functions; this keeps the
/// common case to a compare and a store.
#[inline(always)]
fn put_array<const N: usize>(buf: &mut BytesMut, bytes: [u8; N]) {
    if buf.capacity() - buf.len() < N {
        grow(buf, N);
    }
    let len = buf.len();
    let spare = &mut buf.spare_capacity_mut()[..N];
    for (d, s) in spare.iter_mut().zip(bytes) {
        d.write(s);
    }
    // SAFETY: the N bytes after `len` are within capacity (checked above)
    // and were just initialised.
    unsafe { buf.set_len(len + N) };
}

/// The rare path of [`put_array`]: make room for `n` more bytes.
#[cold]
#[inline(never)]
fn grow(buf: &mut BytesMut, n: usize) {
    buf.reserve(n);
}

macro_rules! fixed {
    ($get:ident, $put:ident, $t:ty, $n:expr, $bget:ident, $bput:ident, $what:literal) => {
        #[doc = concat!("Reads ", $what, ".")]
        ///
        /// # Errors
        /// [`WireError::Short`] when the input is too short.
        #[inline]
        pub fn $get(buf: &mut Bytes) -> Result<$t, WireError> {
            need(buf, $n)?;
            Ok(buf.$bget())
        }
        #[doc = concat!("Writes ", $what, ".")]
        #[inline(always)]
        pub fn $put<S: Sink + ?Sized>(buf: &mut S, v: $t) {
            put_array(buf.bytes_mut(), v.to_be_bytes());
        }
    };
}

fixed!(get_i8, put_i8, i8, 1, get_i8, put_i8, "an INT8");
fixed!(get_i16, put_i16, i16, 2, get_i16, put_i16, "an INT16");
fixed!(get_i32, put_i32, i32, 4, get_i32, put_i32, "an INT32");
fixed!(get_i64, put_i64, i64, 8, get_i64, put_i64, "an INT64");
fixed!(get_u16, put_u16, u16, 2, get_u16, put_u16, "a UINT16");
fixed!(get_u32, put_u32, u32, 4, get_u32, put_u32, "a UINT32");
fixed!(get_f64, put_f64, f64, 8, get_f64, put_f64, "a FLOAT64");

/// Reads a BOOLEAN (any non-zero byte is true).
///
/// # Errors
/// [`WireError::Short`].
#[inline]
pub fn get_bool(buf: &mut Bytes) -> Result<bool, WireError> {
    Ok(get_i8(buf)? != 0)
}

/// Writes a BOOLEAN.
#[inline(always)]
pub fn put_bool<S: Sink + ?Sized>(buf: &mut S, v: bool) {
    let buf = buf.bytes_mut();
    put_array(buf, [u8::from(v)]);
}

/// Reads a UUID.
///
/// # Errors
/// [`WireError::Short`].
#[inline]
pub fn get_uuid(buf: &mut Bytes) -> Result<Uuid, WireError> {
    need(buf, 16)?;
    let mut u = [0u8; 16];
    buf.copy_to_slice(&mut u);
    Ok(Uuid(u))
}

/// Writes a UUID.
#[inline]
pub fn put_uuid<S: Sink + ?Sized>(buf: &mut S, v: &Uuid) {
    let buf = buf.bytes_mut();
    put_array(buf, v.0);
}

/// Reads an unsigned varint.
///
/// # Errors
/// [`WireError::Varint`].
#[inline(always)]
pub fn get_unsigned_varint(buf: &mut Bytes) -> Result<u32, WireError> {
    // One byte is the common case (lengths, counts, empty tag sections).
    if let Some(&b) = buf.first() {
        if b < 0x80 {
            buf.advance(1);
            return Ok(u32::from(b));
        }
    }
    get_long_unsigned_varint(buf)
}

/// [`get_unsigned_varint`] past one byte (or at the end of the input).
#[inline(never)]
fn get_long_unsigned_varint(buf: &mut Bytes) -> Result<u32, WireError> {
    let (v, n) = varint::read_unsigned_varint(buf.chunk())?;
    buf.advance(n);
    Ok(v)
}

/// Writes an unsigned varint.
#[inline(always)]
pub fn put_unsigned_varint<S: Sink + ?Sized>(buf: &mut S, v: u32) {
    let buf = buf.bytes_mut();
    if v < 0x80 {
        put_array(buf, [v as u8]);
    } else if v < 0x4000 {
        put_array(buf, [(v as u8) | 0x80, (v >> 7) as u8]);
    } else {
        varint::put_unsigned_varint(buf, v);
    }
}

#[inline(always)]
fn take(buf: &mut Bytes, n: usize) -> Result<Bytes, WireError> {
    need(buf, n)?;
    Ok(buf.split_to(n))
}

/// Reads a length that is an INT16 (`STRING`); `None` for -1.
#[inline]
fn len16(buf: &mut Bytes) -> Result<Option<usize>, WireError> {
    match get_i16(buf)? {
        -1 => Ok(None),
        n if n < -1 => Err(WireError::BadLength(n.into())),
        n => Ok(Some(n as usize)),
    }
}

/// Reads a length that is an INT32 (`BYTES`, `ARRAY`); `None` for -1.
#[inline]
fn len32(buf: &mut Bytes) -> Result<Option<usize>, WireError> {
    match get_i32(buf)? {
        -1 => Ok(None),
        n if n < -1 => Err(WireError::BadLength(n.into())),
        n => Ok(Some(n as usize)),
    }
}

/// Reads a compact length (N+1 as an unsigned varint); `None` for 0.
#[inline(always)]
fn len_compact(buf: &mut Bytes) -> Result<Option<usize>, WireError> {
    Ok(match get_unsigned_varint(buf)? {
        0 => None,
        n => Some(n as usize - 1),
    })
}

fn string_of(buf: &mut Bytes, len: Option<usize>) -> Result<Option<StrBytes>, WireError> {
    len.map(|n| take(buf, n).and_then(StrBytes::from_utf8))
        .transpose()
}

#[inline(always)]
fn bytes_of(buf: &mut Bytes, len: Option<usize>) -> Result<Option<Bytes>, WireError> {
    len.map(|n| take(buf, n)).transpose()
}

/// Reads a `NULLABLE_STRING`.
///
/// # Errors
/// [`WireError`] for a short input, a bad length or bad UTF-8.
#[inline]
pub fn get_nullable_string(buf: &mut Bytes) -> Result<Option<StrBytes>, WireError> {
    let len = len16(buf)?;
    string_of(buf, len)
}

/// Reads a `COMPACT_NULLABLE_STRING`.
///
/// # Errors
/// As [`get_nullable_string`].
#[inline]
pub fn get_compact_nullable_string(buf: &mut Bytes) -> Result<Option<StrBytes>, WireError> {
    let len = len_compact(buf)?;
    string_of(buf, len)
}

/// Reads a `STRING`.
///
/// # Errors
/// As [`get_nullable_string`], and [`WireError::NullNotAllowed`] for null.
#[inline]
pub fn get_string(buf: &mut Bytes) -> Result<StrBytes, WireError> {
    get_nullable_string(buf)?.ok_or(WireError::NullNotAllowed)
}

/// Reads a `COMPACT_STRING`.
///
/// # Errors
/// As [`get_string`].
#[inline]
pub fn get_compact_string(buf: &mut Bytes) -> Result<StrBytes, WireError> {
    get_compact_nullable_string(buf)?.ok_or(WireError::NullNotAllowed)
}

/// Reads `NULLABLE_BYTES` (and `RECORDS`).
///
/// # Errors
/// [`WireError`] for a short input or a bad length.
#[inline(always)]
pub fn get_nullable_bytes(buf: &mut Bytes) -> Result<Option<Bytes>, WireError> {
    let len = len32(buf)?;
    bytes_of(buf, len)
}

/// Reads `COMPACT_NULLABLE_BYTES` (and `COMPACT_RECORDS`).
///
/// # Errors
/// As [`get_nullable_bytes`].
#[inline(always)]
pub fn get_compact_nullable_bytes(buf: &mut Bytes) -> Result<Option<Bytes>, WireError> {
    let len = len_compact(buf)?;
    bytes_of(buf, len)
}

/// Reads `BYTES`.
///
/// # Errors
/// As [`get_nullable_bytes`], and [`WireError::NullNotAllowed`] for null.
#[inline]
pub fn get_bytes(buf: &mut Bytes) -> Result<Bytes, WireError> {
    get_nullable_bytes(buf)?.ok_or(WireError::NullNotAllowed)
}

/// Reads `COMPACT_BYTES`.
///
/// # Errors
/// As [`get_bytes`].
#[inline]
pub fn get_compact_bytes(buf: &mut Bytes) -> Result<Bytes, WireError> {
    get_compact_nullable_bytes(buf)?.ok_or(WireError::NullNotAllowed)
}

#[inline(always)]
fn check_count(
    buf: &Bytes,
    count: Option<usize>,
    min_element_size: usize,
) -> Result<Option<usize>, WireError> {
    if let Some(n) = count {
        if n.saturating_mul(min_element_size.max(1)) > buf.remaining()
            && (min_element_size > 0 || n > buf.remaining())
        {
            return Err(WireError::CountTooLarge {
                count: n,
                remaining: buf.remaining(),
            });
        }
    }
    Ok(count)
}

/// Reads `n` big-endian INT32 array elements in one pass (one bounds
/// check, one cursor move; no allocation for up to four).
///
/// # Errors
/// [`WireError::Short`] when fewer than `4 * n` bytes remain.
#[inline]
pub fn get_i32_array(buf: &mut Bytes, n: usize) -> Result<Int32Array, WireError> {
    let len = n.saturating_mul(4);
    need(buf, len)?;
    let items = Int32Array::from_be_bytes(&buf[..len]);
    buf.advance(len);
    Ok(items)
}

/// Reads an `ARRAY(INT32)` written as one element of an array (pages 1.1 to
/// 2.4 type CreatePartitions v0's assignment so): an `INT32` count, then the
/// elements. A null (-1) reads as empty: an element cannot be null there.
///
/// # Errors
/// As [`get_array_len`] and [`get_i32_array`].
pub fn get_int32_array(buf: &mut Bytes) -> Result<Int32Array, WireError> {
    let n = get_array_len(buf, 4)?.unwrap_or(0);
    get_i32_array(buf, n)
}

/// Writes an `ARRAY(INT32)` element (see [`get_int32_array`]).
///
/// # Errors
/// [`WireError::TooLong`].
pub fn put_int32_array<S: Sink + ?Sized>(buf: &mut S, v: &Int32Array) -> Result<(), WireError> {
    put_array_len(buf, Some(v.as_slice().len()))?;
    let buf = buf.bytes_mut();
    for x in v.as_slice() {
        put_i32(buf, *x);
    }
    Ok(())
}

/// Reads an `ARRAY` count (`None` for a null array). `min_element_size` is
/// the fewest bytes one element can take; a count the remaining input cannot
/// hold is an error, so callers may allocate `count` elements.
///
/// # Errors
/// [`WireError::CountTooLarge`], [`WireError::BadLength`], [`WireError::Short`].
#[inline]
pub fn get_array_len(buf: &mut Bytes, min_element_size: usize) -> Result<Option<usize>, WireError> {
    let n = len32(buf)?;
    check_count(buf, n, min_element_size)
}

/// Reads a `COMPACT_ARRAY` count; as [`get_array_len`].
///
/// # Errors
/// As [`get_array_len`].
#[inline(always)]
pub fn get_compact_array_len(
    buf: &mut Bytes,
    min_element_size: usize,
) -> Result<Option<usize>, WireError> {
    let n = len_compact(buf)?;
    check_count(buf, n, min_element_size)
}

/// Writes `len` as an INT16 length.
#[inline]
fn put_len16(buf: &mut BytesMut, len: usize) -> Result<(), WireError> {
    let n = i16::try_from(len).map_err(|_| WireError::TooLong(len))?;
    put_i16(buf, n);
    Ok(())
}

/// Writes `len` as an INT32 length.
#[inline]
fn put_len32(buf: &mut BytesMut, len: usize) -> Result<(), WireError> {
    let n = i32::try_from(len).map_err(|_| WireError::TooLong(len))?;
    put_i32(buf, n);
    Ok(())
}

/// Writes `len` as a compact length (N+1).
#[inline]
fn put_len_compact(buf: &mut BytesMut, len: usize) -> Result<(), WireError> {
    let n = u32::try_from(len)
        .ok()
        .and_then(|n| n.checked_add(1))
        .ok_or(WireError::TooLong(len))?;
    put_unsigned_varint(buf, n);
    Ok(())
}

/// Writes a `STRING`.
///
/// # Errors
/// [`WireError::TooLong`] past 32767 bytes.
#[inline]
pub fn put_string<S: Sink + ?Sized>(buf: &mut S, v: &str) -> Result<(), WireError> {
    let buf = buf.bytes_mut();
    put_len16(buf, v.len())?;
    buf.extend_from_slice(v.as_bytes());
    Ok(())
}

/// Writes a `NULLABLE_STRING`.
///
/// # Errors
/// As [`put_string`].
#[inline]
pub fn put_nullable_string<S: Sink + ?Sized>(
    buf: &mut S,
    v: Option<&str>,
) -> Result<(), WireError> {
    let buf = buf.bytes_mut();
    match v {
        None => {
            put_i16(buf, -1);
            Ok(())
        }
        Some(s) => put_string(buf, s),
    }
}

/// Writes a `COMPACT_STRING`.
///
/// # Errors
/// [`WireError::TooLong`] for a length that does not fit.
#[inline]
pub fn put_compact_string<S: Sink + ?Sized>(buf: &mut S, v: &str) -> Result<(), WireError> {
    let buf = buf.bytes_mut();
    put_len_compact(buf, v.len())?;
    buf.extend_from_slice(v.as_bytes());
    Ok(())
}

/// Writes a `COMPACT_NULLABLE_STRING`.
///
/// # Errors
/// As [`put_compact_string`].
#[inline]
pub fn put_compact_nullable_string<S: Sink + ?Sized>(
    buf: &mut S,
    v: Option<&str>,
) -> Result<(), WireError> {
    let buf = buf.bytes_mut();
    match v {
        None => {
            put_array(buf, [0]);
            Ok(())
        }
        Some(s) => put_compact_string(buf, s),
    }
}

/// Writes `BYTES`.
///
/// # Errors
/// [`WireError::TooLong`] past `i32::MAX` bytes.
#[inline]
pub fn put_bytes<S: Sink + ?Sized>(buf: &mut S, v: &[u8]) -> Result<(), WireError> {
    let buf = buf.bytes_mut();
    put_len32(buf, v.len())?;
    buf.extend_from_slice(v);
    Ok(())
}

/// Writes `NULLABLE_BYTES` (and `RECORDS`).
///
/// # Errors
/// As [`put_bytes`].
#[inline]
pub fn put_nullable_bytes<S: Sink + ?Sized>(
    buf: &mut S,
    v: Option<&[u8]>,
) -> Result<(), WireError> {
    let buf = buf.bytes_mut();
    match v {
        None => {
            put_i32(buf, -1);
            Ok(())
        }
        Some(b) => put_bytes(buf, b),
    }
}

/// Writes `COMPACT_BYTES`.
///
/// # Errors
/// [`WireError::TooLong`].
#[inline]
pub fn put_compact_bytes<S: Sink + ?Sized>(buf: &mut S, v: &[u8]) -> Result<(), WireError> {
    let buf = buf.bytes_mut();
    put_len_compact(buf, v.len())?;
    buf.extend_from_slice(v);
    Ok(())
}

/// Writes `COMPACT_NULLABLE_BYTES` (and `COMPACT_RECORDS`).
///
/// # Errors
/// As [`put_compact_bytes`].
#[inline]
pub fn put_compact_nullable_bytes<S: Sink + ?Sized>(
    buf: &mut S,
    v: Option<&[u8]>,
) -> Result<(), WireError> {
    let buf = buf.bytes_mut();
    match v {
        None => {
            put_array(buf, [0]);
            Ok(())
        }
        Some(b) => put_compact_bytes(buf, b),
    }
}

/// Writes `RECORDS`: an INT32 length (-1 for null), then the records
/// through [`Sink::put_records_value`], which a [`FrameBuf`] shares
/// instead of copying.
///
/// # Errors
/// [`WireError::TooLong`] past `i32::MAX` bytes.
#[inline]
pub fn put_records<S: Sink + ?Sized>(buf: &mut S, v: Option<&Bytes>) -> Result<(), WireError> {
    match v {
        None => {
            put_i32(buf, -1);
            Ok(())
        }
        Some(b) => {
            put_len32(buf.bytes_mut(), b.len())?;
            buf.put_records_value(b);
            Ok(())
        }
    }
}

/// Writes `COMPACT_RECORDS`: as [`put_records`] with a compact length.
///
/// # Errors
/// [`WireError::TooLong`].
#[inline]
pub fn put_compact_records<S: Sink + ?Sized>(
    buf: &mut S,
    v: Option<&Bytes>,
) -> Result<(), WireError> {
    match v {
        None => {
            put_array(buf.bytes_mut(), [0]);
            Ok(())
        }
        Some(b) => {
            put_len_compact(buf.bytes_mut(), b.len())?;
            buf.put_records_value(b);
            Ok(())
        }
    }
}

/// Writes an `ARRAY` count (`None` for a null array).
///
/// # Errors
/// [`WireError::TooLong`].
#[inline]
pub fn put_array_len<S: Sink + ?Sized>(buf: &mut S, len: Option<usize>) -> Result<(), WireError> {
    let buf = buf.bytes_mut();
    match len {
        None => {
            put_i32(buf, -1);
            Ok(())
        }
        Some(n) => put_len32(buf, n),
    }
}

/// Writes a `COMPACT_ARRAY` count (`None` for a null array).
///
/// # Errors
/// [`WireError::TooLong`].
#[inline]
pub fn put_compact_array_len<S: Sink + ?Sized>(
    buf: &mut S,
    len: Option<usize>,
) -> Result<(), WireError> {
    let buf = buf.bytes_mut();
    match len {
        None => {
            put_array(buf, [0]);
            Ok(())
        }
        Some(n) => put_len_compact(buf, n),
    }
}

/// Reads one tagged field's header: its tag and a cursor over its value.
///
/// # Errors
/// [`WireError`] for a bad varint or a size past the end.
#[inline]
pub fn get_tagged_field(buf: &mut Bytes) -> Result<(u32, Bytes), WireError> {
    let tag = get_unsigned_varint(buf)?;
    let size = get_unsigned_varint(buf)? as usize;
    Ok((tag, take(buf, size)?))
}

/// Writes one tagged field whose value is already encoded.
///
/// # Errors
/// [`WireError::TooLong`].
#[inline]
pub fn put_tagged_field<S: Sink + ?Sized>(
    buf: &mut S,
    tag: u32,
    value: &[u8],
) -> Result<(), WireError> {
    let buf = buf.bytes_mut();
    put_unsigned_varint(buf, tag);
    put_size(buf, value.len())?;
    buf.extend_from_slice(value);
    Ok(())
}

/// Writes a tagged field's size: a plain unsigned varint (not N+1).
#[inline]
fn put_size(buf: &mut BytesMut, len: usize) -> Result<(), WireError> {
    put_unsigned_varint(
        buf,
        u32::try_from(len).map_err(|_| WireError::TooLong(len))?,
    );
    Ok(())
}

/// Checks that a typed tagged field's decoder used its whole value.
///
/// # Errors
/// [`WireError::TagSize`].
#[inline]
pub fn check_tag_consumed(tag: u32, declared: usize, rest: &Bytes) -> Result<(), WireError> {
    if rest.has_remaining() {
        Err(WireError::TagSize {
            tag,
            declared,
            used: declared - rest.remaining(),
        })
    } else {
        Ok(())
    }
}

/// Reads the count of a tagged-field section, checked against the input
/// (each field takes at least two bytes).
///
/// # Errors
/// [`WireError::CountTooLarge`] or a bad varint.
#[inline(always)]
pub fn get_tagged_count(buf: &mut Bytes) -> Result<u32, WireError> {
    let count = get_unsigned_varint(buf)?;
    if (count as usize).saturating_mul(2) > buf.remaining() {
        return Err(WireError::CountTooLarge {
            count: count as usize,
            remaining: buf.remaining(),
        });
    }
    Ok(count)
}

/// Checks that tags come in strictly ascending order; `last` is the
/// previous tag of the section.
///
/// # Errors
/// [`WireError::TagOrder`].
#[inline]
pub fn check_tag_order(last: &mut Option<u32>, tag: u32) -> Result<(), WireError> {
    if last.is_some_and(|l| tag <= l) {
        return Err(WireError::TagOrder { tag });
    }
    *last = Some(tag);
    Ok(())
}

/// Writes a tagged-field section: `known` holds the typed fields to write
/// (already encoded, in ascending tag order), merged with `unknown` by tag.
///
/// # Errors
/// [`WireError::TagOrder`] when a tag appears twice; [`WireError::TooLong`].
#[inline]
pub fn put_tagged_fields<S: Sink + ?Sized>(
    buf: &mut S,
    known: &[(u32, BytesMut)],
    unknown: &[RawTaggedField],
) -> Result<(), WireError> {
    // Nearly every section is empty: one byte, no merge.
    if known.is_empty() && unknown.is_empty() {
        put_array(buf.bytes_mut(), [0]);
        return Ok(());
    }
    merge_tagged_fields(buf.bytes_mut(), known, unknown)
}

/// The non-empty case of [`put_tagged_fields`], out of line.
#[inline(never)]
fn merge_tagged_fields(
    buf: &mut BytesMut,
    known: &[(u32, BytesMut)],
    unknown: &[RawTaggedField],
) -> Result<(), WireError> {
    let count = known.len() + unknown.len();
    put_unsigned_varint(
        buf,
        u32::try_from(count).map_err(|_| WireError::TooLong(count))?,
    );
    let (mut k, mut u) = (known.iter().peekable(), unknown.iter().peekable());
    let mut last: Option<u32> = None;
    loop {
        let take_known = match (k.peek(), u.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((kt, _)), Some(r)) => *kt <= r.tag,
        };
        let (tag, data): (u32, &[u8]) = if take_known {
            let (t, d) = k.next().expect("peeked");
            (*t, d)
        } else {
            let r = u.next().expect("peeked");
            (r.tag, &r.data)
        };
        check_tag_order(&mut last, tag)?;
        put_tagged_field(buf, tag, data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_share_input() {
        let mut b = BytesMut::new();
        put_string(&mut b, "héllo").unwrap();
        put_compact_nullable_string(&mut b, None).unwrap();
        put_compact_string(&mut b, "x").unwrap();
        let mut r = b.freeze();
        let base = r.as_ptr() as usize;
        let s = get_string(&mut r).unwrap();
        assert_eq!(s, "héllo");
        assert_eq!(
            s.as_bytes().as_ptr() as usize,
            base + 2,
            "decoded without a copy"
        );
        assert_eq!(get_compact_nullable_string(&mut r).unwrap(), None);
        assert_eq!(get_compact_string(&mut r).unwrap(), "x");
        assert!(r.is_empty());
    }

    #[test]
    fn fast_puts_match_bufmut_and_grow() {
        use bytes::BufMut;
        // Start with no room, so that every put takes the growth path once.
        let mut ours = BytesMut::new();
        let mut theirs = BytesMut::new();
        for i in 0..1000i64 {
            put_i8(&mut ours, i as i8);
            put_i16(&mut ours, i as i16);
            put_i32(&mut ours, -(i as i32));
            put_i64(&mut ours, i << 40);
            put_bool(&mut ours, i % 2 == 0);
            put_unsigned_varint(&mut ours, (i * 37) as u32);
            put_unsigned_varint(&mut ours, (i << 20) as u32);
            theirs.put_i8(i as i8);
            theirs.put_i16(i as i16);
            theirs.put_i32(-(i as i32));
            theirs.put_i64(i << 40);
            theirs.put_u8(u8::from(i % 2 == 0));
            varint::put_unsigned_varint(&mut theirs, (i * 37) as u32);
            varint::put_unsigned_varint(&mut theirs, (i << 20) as u32);
        }
        assert_eq!(ours, theirs);
    }

    #[test]
    fn hostile_lengths_are_errors() {
        let mut r = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 1, 2]);
        assert!(matches!(
            get_array_len(&mut r, 1),
            Err(WireError::CountTooLarge { .. })
        ));
        let mut r = Bytes::from_static(&[0xff, 0xfe]);
        assert_eq!(get_nullable_string(&mut r), Err(WireError::BadLength(-2)));
        let mut r = Bytes::from_static(&[0, 5, b'a']);
        assert_eq!(
            get_string(&mut r),
            Err(WireError::Short { need: 5, have: 1 })
        );
        let mut r = Bytes::from_static(&[0, 1, 0xff]);
        assert_eq!(get_string(&mut r), Err(WireError::Utf8));
        let mut r = Bytes::from_static(&[0xff, 0xff]);
        assert_eq!(get_string(&mut r), Err(WireError::NullNotAllowed));
        let mut r = Bytes::from_static(&[1]);
        assert!(matches!(
            get_i32(&mut r),
            Err(WireError::Short { need: 4, have: 1 })
        ));
    }

    #[test]
    fn tagged_fields_merge_in_tag_order() {
        let mut b = BytesMut::new();
        let known = [(1u32, BytesMut::from(&[9u8][..]))];
        let unknown = [
            RawTaggedField {
                tag: 0,
                data: Bytes::from_static(&[7, 7]),
            },
            RawTaggedField {
                tag: 5,
                data: Bytes::new(),
            },
        ];
        put_tagged_fields(&mut b, &known, &unknown).unwrap();
        assert_eq!(&b[..], &[3, 0, 2, 7, 7, 1, 1, 9, 5, 0]);
        let mut r = b.freeze();
        assert_eq!(get_tagged_count(&mut r).unwrap(), 3);
        assert_eq!(
            get_tagged_field(&mut r).unwrap(),
            (0, Bytes::from_static(&[7, 7]))
        );
        assert_eq!(
            get_tagged_field(&mut r).unwrap(),
            (1, Bytes::from_static(&[9]))
        );
        let mut last = Some(1);
        assert_eq!(
            check_tag_order(&mut last, 1),
            Err(WireError::TagOrder { tag: 1 })
        );
        let mut bad = Bytes::from_static(&[200, 1]);
        assert!(matches!(
            get_tagged_count(&mut bad),
            Err(WireError::CountTooLarge { .. })
        ));
    }
}
