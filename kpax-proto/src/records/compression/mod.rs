//! Compression codecs for record data: which codec a batch names, and
//! compressing and (bounded) decompressing its records.
//!
//! Each codec is a cargo feature (`gzip`, `snappy`, `lz4`, `zstd`, all pure
//! Rust and on by default; `zstd-c` swaps in the C zstd library). A batch
//! naming a codec whose feature is off fails with
//! [`RecordsError::CodecDisabled`].

use std::fmt;

use bytes::BytesMut;

use super::error::RecordsError;

#[cfg(feature = "gzip")]
mod gzip;
#[cfg(feature = "lz4")]
mod lz4;
#[cfg(feature = "snappy")]
mod snappy;
#[cfg(feature = "zstd")]
mod zstd;

/// The compression codec of a batch, bits 0-2 of its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip (RFC 1952), codec 1.
    Gzip,
    /// Snappy, codec 2: xerial-framed as the Java client writes it; raw
    /// blocks are accepted on read.
    Snappy,
    /// LZ4 frame format, codec 3.
    Lz4,
    /// Zstandard, codec 4 (record batches v2 only).
    Zstd,
}

impl Compression {
    /// All codecs, in codec-number order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec with this number (attributes bits 0-2), or `None` for the
    /// numbers Kafka does not define.
    pub fn from_id(id: u8) -> Option<Compression> {
        Some(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => return None,
        })
    }

    /// The codec's number in the attributes.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The name Kafka's `compression.type` setting uses.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The cargo feature that compiles this codec in.
    pub fn feature(self) -> &'static str {
        match self {
            Compression::None => "(none needed)",
            other => other.name(),
        }
    }

    /// Whether this codec is compiled in.
    pub fn is_enabled(self) -> bool {
        match self {
            Compression::None => true,
            Compression::Gzip => cfg!(feature = "gzip"),
            Compression::Snappy => cfg!(feature = "snappy"),
            Compression::Lz4 => cfg!(feature = "lz4"),
            Compression::Zstd => cfg!(feature = "zstd"),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a codec reports before the caller adds the batch offset.
#[allow(dead_code)] // some variants are unused when codecs are disabled
#[derive(Debug)]
pub(crate) enum CodecError {
    /// The compressed data is corrupt (the codec's message).
    Corrupt(String),
    /// The output would exceed the limit.
    TooLarge,
}

impl From<std::io::Error> for CodecError {
    fn from(e: std::io::Error) -> Self {
        CodecError::Corrupt(e.to_string())
    }
}

/// Appends `input` compressed with `codec` to `out`, framed as the Java
/// client frames it for message format `magic` (this matters for lz4 with
/// magic 0, whose frame header checksum Java computes wrongly on purpose).
///
/// # Errors
/// [`RecordsError::CodecDisabled`] when the codec's feature is off and
/// [`RecordsError::Compression`] when the codec fails.
pub fn compress(
    codec: Compression,
    magic: i8,
    input: &[u8],
    out: &mut BytesMut,
) -> Result<(), RecordsError> {
    let _ = (magic, &input, &out);
    let result: Result<(), CodecError> = match codec {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        #[cfg(feature = "gzip")]
        Compression::Gzip => gzip::compress(input, out),
        #[cfg(feature = "snappy")]
        Compression::Snappy => snappy::compress(input, out),
        #[cfg(feature = "lz4")]
        Compression::Lz4 => lz4::compress(input, out, magic),
        #[cfg(feature = "zstd")]
        Compression::Zstd => zstd::compress(input, out),
        #[allow(unreachable_patterns)]
        _ => return Err(RecordsError::CodecDisabled { offset: 0, codec }),
    };
    result.map_err(|e| RecordsError::Compression {
        codec,
        message: match e {
            CodecError::Corrupt(m) => m,
            CodecError::TooLarge => "output too large".into(),
        },
    })
}

/// Decompresses `input` (the records of a batch, or a legacy wrapper's
/// value) into a new buffer of at most `limit` bytes. `offset` is where the
/// batch starts in the caller's input, for errors.
///
/// # Errors
/// [`RecordsError::TooLarge`] when the output would exceed `limit`,
/// [`RecordsError::Decompression`] for corrupt data, and
/// [`RecordsError::CodecDisabled`] when the codec's feature is off.
pub fn decompress(
    codec: Compression,
    magic: i8,
    input: &[u8],
    limit: usize,
    offset: usize,
) -> Result<Vec<u8>, RecordsError> {
    let _ = (magic, limit);
    let result: Result<Vec<u8>, CodecError> = match codec {
        Compression::None => {
            if input.len() > limit {
                Err(CodecError::TooLarge)
            } else {
                Ok(input.to_vec())
            }
        }
        #[cfg(feature = "gzip")]
        Compression::Gzip => gzip::decompress(input, limit),
        #[cfg(feature = "snappy")]
        Compression::Snappy => snappy::decompress(input, limit),
        #[cfg(feature = "lz4")]
        Compression::Lz4 => lz4::decompress(input, limit, magic),
        #[cfg(feature = "zstd")]
        Compression::Zstd => zstd::decompress(input, limit),
        #[allow(unreachable_patterns)]
        _ => return Err(RecordsError::CodecDisabled { offset, codec }),
    };
    result.map_err(|e| match e {
        CodecError::Corrupt(message) => RecordsError::Decompression {
            offset,
            codec,
            message,
        },
        CodecError::TooLarge => RecordsError::TooLarge {
            offset,
            codec,
            limit,
        },
    })
}

/// The buffer `input_len` compressed bytes are decompressed into: a
/// recycled one when one fits (its pages are touched already: see
/// `buffer_pool`; the output is frozen into the same pool), room for four
/// times the input, never more than `limit`.
#[allow(dead_code)] // unused when every codec is disabled
pub(crate) fn output_buffer(input_len: usize, limit: usize) -> Vec<u8> {
    let hint = input_len.saturating_mul(4).min(limit);
    let mut out = crate::buffer_pool::DECOMPRESSED.take(hint);
    out.reserve(hint);
    out
}

/// Reads a decompressing reader to its end, failing once it yields more than
/// `limit` bytes. The first allocation is sized by the (trusted) length of
/// the compressed input, never by a length the input claims.
#[allow(dead_code)] // unused when every codec is disabled
pub(crate) fn read_bounded(
    reader: impl std::io::Read,
    limit: usize,
    input_len: usize,
) -> Result<Vec<u8>, CodecError> {
    use std::io::Read;
    let mut out = output_buffer(input_len, limit);
    let cap = (limit as u64).saturating_add(1);
    reader.take(cap).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(CodecError::TooLarge);
    }
    Ok(out)
}
