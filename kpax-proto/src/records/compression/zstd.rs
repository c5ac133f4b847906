//! Zstandard: pure-Rust `ruzstd` by default (decode, and its fastest-level
//! encoder, about zstd level 1); with the `zstd-c` feature, the C library
//! in both directions at level 3, Java's default.

use bytes::{BufMut, BytesMut};

use super::{read_bounded, CodecError};

#[cfg(not(feature = "zstd-c"))]
pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), CodecError> {
    ruzstd::encoding::compress(
        input,
        out.writer(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    Ok(())
}

#[cfg(not(feature = "zstd-c"))]
pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let decoder = ruzstd::decoding::StreamingDecoder::new(input)
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    read_bounded(decoder, limit, input.len())
}

#[cfg(feature = "zstd-c")]
pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), CodecError> {
    zstd::stream::copy_encode(input, out.writer(), 3)?;
    Ok(())
}

#[cfg(feature = "zstd-c")]
pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let mut decoder = zstd::stream::read::Decoder::with_buffer(input)?;
    // The window is what the decoder allocates up front: keep it near the
    // output limit so a tiny frame cannot ask for 128 MiB.
    let log = usize::BITS - limit.max(1 << 10).leading_zeros();
    decoder.window_log_max(log.clamp(10, 27))?;
    read_bounded(decoder, limit, input.len())
}
