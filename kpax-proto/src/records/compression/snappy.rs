//! Snappy: the xerial framing that Java's `SnappyOutputStream` writes, and
//! raw blocks (as librdkafka and other clients may write) on read.
//!
//! xerial framing: an 8-byte magic `\x82SNAPPY\0`, a big-endian version and
//! minimum compatible version (both 1), then chunks of a big-endian `i32`
//! length and one raw Snappy block each.

use bytes::{BufMut, BytesMut};

use super::CodecError;

const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;
/// Java's `SnappyOutputStream` default block size: 32 KiB of input per chunk.
const XERIAL_BLOCK: usize = 32 * 1024;
/// A Snappy block can expand its input at most about 22 times (a 3-byte copy
/// tag yields 64 bytes); a claimed length beyond this bound is corrupt, and
/// rejecting it keeps allocations proportional to the input.
const MAX_EXPANSION: usize = 32;

/// Writes xerial-framed chunks of 32 KiB, as the Java client does.
pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), CodecError> {
    out.reserve(XERIAL_HEADER_LEN + snap::raw::max_compress_len(input.len().min(XERIAL_BLOCK)));
    out.put_slice(&XERIAL_MAGIC);
    out.put_i32(1);
    out.put_i32(1);
    let mut encoder = snap::raw::Encoder::new();
    let mut scratch = vec![0u8; snap::raw::max_compress_len(input.len().min(XERIAL_BLOCK))];
    for chunk in input.chunks(XERIAL_BLOCK) {
        let n = encoder
            .compress(chunk, &mut scratch)
            .map_err(|e| CodecError::Corrupt(e.to_string()))?;
        out.put_i32(n as i32);
        out.put_slice(&scratch[..n]);
    }
    Ok(())
}

/// Decompresses a xerial-framed stream or a raw block.
pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    if input.len() >= XERIAL_HEADER_LEN && input[..8] == XERIAL_MAGIC {
        let mut pos = XERIAL_HEADER_LEN;
        while pos < input.len() {
            let Some(len) = input.get(pos..pos + 4) else {
                return Err(CodecError::Corrupt("xerial chunk length cut off".into()));
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            pos += 4;
            let chunk = usize::try_from(len)
                .ok()
                .and_then(|len| input.get(pos..pos.checked_add(len)?))
                .ok_or_else(|| {
                    CodecError::Corrupt(format!("xerial chunk length {len} is invalid"))
                })?;
            pos += chunk.len();
            decompress_block(chunk, limit, &mut out)?;
        }
    } else {
        decompress_block(input, limit, &mut out)?;
    }
    Ok(out)
}

/// Appends one raw Snappy block to `out`, keeping `out` within `limit`.
fn decompress_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let claimed =
        snap::raw::decompress_len(block).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if claimed > block.len().saturating_mul(MAX_EXPANSION) {
        return Err(CodecError::Corrupt(format!(
            "block of {} bytes claims {claimed} bytes uncompressed",
            block.len()
        )));
    }
    if out.len().saturating_add(claimed) > limit {
        return Err(CodecError::TooLarge);
    }
    let start = out.len();
    out.resize(start + claimed, 0);
    let n = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    out.truncate(start + n);
    Ok(())
}
