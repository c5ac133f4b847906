//! Bounds-checked reads from a byte slice that report failures as
//! [`RecordsError`]s carrying the absolute byte offset.

use super::error::RecordsError;
use crate::varint;

/// A position in a byte slice. `base` is the absolute offset of `data[0]`
/// in the caller's input, so errors name the byte where they happened.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) base: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(data: &'a [u8], base: usize) -> Self {
        Reader { data, pos: 0, base }
    }

    /// The absolute offset of the next byte.
    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RecordsError> {
        if n <= self.remaining() {
            let s = &self.data[self.pos..self.pos + n];
            self.pos += n;
            Ok(s)
        } else {
            Err(RecordsError::Short {
                what,
                offset: self.offset(),
                needed: n,
                available: self.remaining(),
            })
        }
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], RecordsError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline(always)]
    pub(crate) fn i8(&mut self, what: &'static str) -> Result<i8, RecordsError> {
        Ok(self.array::<1>(what)?[0] as i8)
    }

    #[inline]
    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, RecordsError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, RecordsError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, RecordsError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, RecordsError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    #[inline(always)]
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<i32, RecordsError> {
        match varint::read_varint(self.data.get(self.pos..).unwrap_or_default()) {
            Ok((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            Err(source) => Err(self.bad_varint(what, source)),
        }
    }

    #[inline(always)]
    pub(crate) fn varlong(&mut self, what: &'static str) -> Result<i64, RecordsError> {
        match varint::read_varlong(self.data.get(self.pos..).unwrap_or_default()) {
            Ok((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            Err(source) => Err(self.bad_varint(what, source)),
        }
    }

    // Error construction stays out of the hot loops.
    #[cold]
    #[inline(never)]
    fn bad_varint(&self, what: &'static str, source: varint::VarintError) -> RecordsError {
        RecordsError::BadVarint {
            what,
            offset: self.offset(),
            source,
        }
    }

    #[cold]
    #[inline(never)]
    fn bad_length(&self, what: &'static str, len: i64, len_offset: usize) -> RecordsError {
        if len < 0 {
            RecordsError::BadLength {
                what,
                offset: len_offset,
                value: len,
            }
        } else {
            RecordsError::LengthPastEnd {
                what,
                offset: self.offset(),
                length: len as usize,
                available: self.remaining(),
            }
        }
    }

    /// Reads `len` bytes where `len` came from the input: -1 is null, other
    /// negatives are errors, and a length past the end is
    /// [`RecordsError::LengthPastEnd`].
    #[inline(always)]
    pub(crate) fn nullable_bytes(
        &mut self,
        len: i64,
        what: &'static str,
        len_offset: usize,
    ) -> Result<Option<&'a [u8]>, RecordsError> {
        if len >= 0 && len as u64 <= self.remaining() as u64 {
            let s = &self.data[self.pos..self.pos + len as usize];
            self.pos += len as usize;
            Ok(Some(s))
        } else if len == -1 {
            Ok(None)
        } else {
            Err(self.bad_length(what, len, len_offset))
        }
    }
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reader at byte {}", self.offset())
    }
}
