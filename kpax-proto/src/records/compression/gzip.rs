//! gzip through flate2 on its zlib-rs backend (a pure-Rust zlib).

use std::io::Write;

use bytes::{BufMut, BytesMut};

use super::{read_bounded, CodecError};

/// Compresses at the default level, as Java's `GZIPOutputStream` does.
pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), CodecError> {
    let mut encoder = flate2::write::GzEncoder::new(out.writer(), flate2::Compression::default());
    encoder.write_all(input)?;
    encoder.finish()?;
    Ok(())
}

/// Decompresses every gzip member in `input` (Java's `GZIPInputStream`
/// reads concatenated members too).
pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    read_bounded(flate2::read::MultiGzDecoder::new(input), limit, input.len())
}
