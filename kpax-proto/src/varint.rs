//! Variable-length integers: Kafka's unsigned varints (compact lengths, tag
//! numbers) and protobuf-style zig-zag varints and varlongs (record fields).
//!
//! Decoders read from a byte slice and return the value and the number of
//! bytes consumed, so they serve both `Bytes` cursors and raw slices.

use bytes::BufMut;

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    /// The input ended before the last byte of the varint.
    #[error("varint runs past the end of the input")]
    Short,
    /// More continuation bytes than the target width allows.
    #[error("varint is longer than {max_bytes} bytes")]
    TooLong {
        /// The most bytes a varint of this width may take.
        max_bytes: usize,
    },
}

#[inline]
fn read_raw(input: &[u8], max_bytes: usize) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let Some(&byte) = input.get(i) else {
            return Err(VarintError::Short);
        };
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(VarintError::TooLong { max_bytes })
}

/// Reads an unsigned 32-bit varint; returns the value and the bytes consumed.
///
/// # Errors
/// [`VarintError::Short`] when the input ends inside the varint and
/// [`VarintError::TooLong`] when it has more than 5 bytes.
#[inline(always)]
pub fn read_unsigned_varint(input: &[u8]) -> Result<(u32, usize), VarintError> {
    // Fast paths: one to three bytes, the common case for lengths, counts
    // and record fields (values below 2^21); longer ones take the loop.
    match *input {
        [b0, ..] if b0 & 0x80 == 0 => Ok((u32::from(b0), 1)),
        [b0, b1, ..] if b1 & 0x80 == 0 => Ok((u32::from(b0 & 0x7f) | u32::from(b1) << 7, 2)),
        [b0, b1, b2, ..] if b2 & 0x80 == 0 => Ok((
            u32::from(b0 & 0x7f) | u32::from(b1 & 0x7f) << 7 | u32::from(b2) << 14,
            3,
        )),
        _ => read_raw_slow(input, 5).map(|(v, n)| (v as u32, n)),
    }
}

/// Reads an unsigned 64-bit varint; returns the value and the bytes consumed.
///
/// # Errors
/// As [`read_unsigned_varint`], with a limit of 10 bytes.
#[inline(always)]
pub fn read_unsigned_varlong(input: &[u8]) -> Result<(u64, usize), VarintError> {
    match *input {
        [b0, ..] if b0 & 0x80 == 0 => Ok((u64::from(b0), 1)),
        [b0, b1, ..] if b1 & 0x80 == 0 => Ok((u64::from(b0 & 0x7f) | u64::from(b1) << 7, 2)),
        _ => read_raw_slow(input, 10),
    }
}

/// The general loop, kept out of line so the fast paths stay small.
#[inline(never)]
fn read_raw_slow(input: &[u8], max_bytes: usize) -> Result<(u64, usize), VarintError> {
    read_raw(input, max_bytes)
}

/// Reads a zig-zag encoded signed 32-bit varint (Kafka `VARINT`).
///
/// # Errors
/// As [`read_unsigned_varint`].
#[inline(always)]
pub fn read_varint(input: &[u8]) -> Result<(i32, usize), VarintError> {
    let (v, n) = read_unsigned_varint(input)?;
    Ok((unzigzag32(v), n))
}

/// Reads a zig-zag encoded signed 64-bit varlong (Kafka `VARLONG`).
///
/// # Errors
/// As [`read_unsigned_varlong`].
#[inline(always)]
pub fn read_varlong(input: &[u8]) -> Result<(i64, usize), VarintError> {
    let (v, n) = read_unsigned_varlong(input)?;
    Ok((unzigzag64(v), n))
}

/// The number of bytes [`put_unsigned_varint`] writes for `value`.
#[inline]
pub fn unsigned_varint_len(value: u32) -> usize {
    unsigned_varlong_len(u64::from(value))
}

/// The number of bytes [`put_unsigned_varlong`] writes for `value`.
#[inline]
pub fn unsigned_varlong_len(value: u64) -> usize {
    // By leading zeros: one table load instead of a division by 7.
    const LEN: [u8; 65] = {
        let mut t = [0u8; 65];
        let mut zeros = 0;
        while zeros < 65 {
            let bits = if zeros == 64 { 1 } else { 64 - zeros };
            t[zeros] = bits.div_ceil(7) as u8;
            zeros += 1;
        }
        t
    };
    LEN[value.leading_zeros() as usize] as usize
}

/// The number of bytes [`put_varint`] writes for `value`.
#[inline]
pub fn varint_len(value: i32) -> usize {
    unsigned_varint_len(zigzag32(value))
}

/// The number of bytes [`put_varlong`] writes for `value`.
#[inline]
pub fn varlong_len(value: i64) -> usize {
    unsigned_varlong_len(zigzag64(value))
}

/// Zig-zag decoding of a VARINT's unsigned value.
#[inline(always)]
pub(crate) fn unzigzag32(u: u32) -> i32 {
    ((u >> 1) as i32) ^ -((u & 1) as i32)
}

/// Zig-zag decoding of a VARLONG's unsigned value.
#[inline(always)]
pub(crate) fn unzigzag64(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[inline]
pub(crate) fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

#[inline]
pub(crate) fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Writes an unsigned 32-bit varint.
#[inline]
pub fn put_unsigned_varint(buf: &mut impl BufMut, value: u32) {
    if value < 0x80 {
        buf.put_u8(value as u8);
        return;
    }
    put_unsigned_varlong(buf, u64::from(value));
}

/// Writes an unsigned 64-bit varint.
#[inline]
pub fn put_unsigned_varlong(buf: &mut impl BufMut, mut value: u64) {
    let mut tmp = [0u8; 10];
    let mut i = 0;
    while value >= 0x80 {
        tmp[i] = (value as u8) | 0x80;
        value >>= 7;
        i += 1;
    }
    tmp[i] = value as u8;
    buf.put_slice(&tmp[..=i]);
}

/// Writes a zig-zag encoded signed 32-bit varint (Kafka `VARINT`).
#[inline]
pub fn put_varint(buf: &mut impl BufMut, value: i32) {
    put_unsigned_varint(buf, zigzag32(value));
}

/// Writes a zig-zag encoded signed 64-bit varlong (Kafka `VARLONG`).
#[inline]
pub fn put_varlong(buf: &mut impl BufMut, value: i64) {
    put_unsigned_varlong(buf, zigzag64(value));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let mut b = Vec::new();
        put_varint(&mut b, -1);
        put_varint(&mut b, 1);
        put_varint(&mut b, 300);
        put_unsigned_varint(&mut b, 300);
        assert_eq!(b, [0x01, 0x02, 0xd8, 0x04, 0xac, 0x02]);
        assert_eq!(read_varint(&[0x01]).unwrap(), (-1, 1));
        assert_eq!(read_unsigned_varint(&[0xac, 0x02]).unwrap(), (300, 2));
    }

    #[test]
    fn short_and_long_inputs_are_errors() {
        assert_eq!(read_unsigned_varint(&[0x80]), Err(VarintError::Short));
        assert_eq!(read_unsigned_varint(&[]), Err(VarintError::Short));
        assert_eq!(
            read_unsigned_varint(&[0xff; 6]),
            Err(VarintError::TooLong { max_bytes: 5 })
        );
        assert_eq!(
            read_varlong(&[0xff; 11]),
            Err(VarintError::TooLong { max_bytes: 10 })
        );
    }

    #[test]
    fn every_length_boundary_round_trips() {
        for bits in 0..64u32 {
            for v in [(1u64 << bits) - 1, 1u64 << bits, (1u64 << bits) + 1] {
                let mut b = Vec::new();
                put_unsigned_varlong(&mut b, v);
                assert_eq!(read_unsigned_varlong(&b).unwrap(), (v, b.len()), "{v}");
                if let Ok(v32) = u32::try_from(v) {
                    assert_eq!(read_unsigned_varint(&b).unwrap(), (v32, b.len()), "{v}");
                    assert_eq!(
                        read_unsigned_varint(&b[..b.len() - 1]),
                        Err(VarintError::Short)
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn varint_round_trip(v in any::<i32>()) {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            prop_assert_eq!(b.len(), varint_len(v));
            prop_assert_eq!(read_varint(&b).unwrap(), (v, b.len()));
        }

        #[test]
        fn varlong_round_trip(v in any::<i64>()) {
            let mut b = Vec::new();
            put_varlong(&mut b, v);
            prop_assert_eq!(b.len(), varlong_len(v));
            prop_assert_eq!(read_varlong(&b).unwrap(), (v, b.len()));
        }

        /// The fast paths agree with the plain loop on any bytes, valid
        /// or not (short, over-long, non-canonical).
        #[test]
        fn fast_paths_agree_with_the_loop(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let loop32 = read_raw(&bytes, 5).map(|(v, n)| (v as u32, n));
            prop_assert_eq!(read_unsigned_varint(&bytes), loop32);
            prop_assert_eq!(read_unsigned_varlong(&bytes), read_raw(&bytes, 10));
        }

        #[test]
        fn unsigned_varint_round_trip(v in any::<u32>()) {
            let mut b = Vec::new();
            put_unsigned_varint(&mut b, v);
            prop_assert_eq!(b.len(), unsigned_varint_len(v));
            prop_assert_eq!(read_unsigned_varint(&b).unwrap(), (v, b.len()));
        }
    }
}
