//! Zstandard: pure-Rust `ruzstd` by default (decode, and its fastest-level
//! encoder, about zstd level 1); with the `zstd-c` feature, the C library
//! in both directions at level 3, Java's default.

use bytes::{BufMut, BytesMut};

#[cfg(feature = "zstd-c")]
use super::read_bounded;
use super::CodecError;

#[cfg(not(feature = "zstd-c"))]
pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), CodecError> {
    ruzstd::encoding::compress(
        input,
        out.writer(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    Ok(())
}

/// Bytes decoded before they are moved to the output (and the limit is
/// checked): what the decoder holds beyond its window.
#[cfg(not(feature = "zstd-c"))]
const DECODE_STEP: usize = 256 * 1024;

/// Decodes one frame with the thread's decoder, whose window and buffers
/// are kept from batch to batch (a decoder per batch cost a page fault per
/// 4 KiB of its window: 11 % of the consumer's CPU on zstd), into a
/// recycled output buffer, at most `limit` bytes.
#[cfg(not(feature = "zstd-c"))]
pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
    use std::cell::RefCell;
    thread_local! {
        static DECODER: RefCell<FrameDecoder> = RefCell::new(FrameDecoder::new());
    }
    let corrupt =
        |e: ruzstd::decoding::errors::FrameDecoderError| CodecError::Corrupt(e.to_string());
    DECODER.with(|cell| {
        let mut decoder = cell.borrow_mut();
        let mut source = input;
        decoder.reset(&mut source).map_err(corrupt)?;
        let mut out = super::output_buffer(input.len(), limit);
        loop {
            let finished = decoder
                .decode_blocks(&mut source, BlockDecodingStrategy::UptoBytes(DECODE_STEP))
                .map_err(corrupt)?;
            decoder.collect_to_writer(&mut out)?;
            if out.len() > limit {
                return Err(CodecError::TooLarge);
            }
            if finished {
                return Ok(out);
            }
        }
    })
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

#[cfg(all(test, not(feature = "zstd-c")))]
mod tests {
    use super::*;

    fn frame(data: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        compress(data, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn the_threads_decoder_is_reused_across_frames_and_errors() {
        let a: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let b = b"a small frame, after a big one".repeat(3);
        assert_eq!(decompress(&frame(&a), 1 << 24).unwrap(), a);
        let mut truncated = frame(&a);
        truncated.truncate(truncated.len() / 2);
        assert!(matches!(
            decompress(&truncated, 1 << 24),
            Err(CodecError::Corrupt(_))
        ));
        assert!(matches!(
            decompress(b"not zstd", 1 << 24),
            Err(CodecError::Corrupt(_))
        ));
        assert_eq!(decompress(&frame(&b), 1 << 24).unwrap(), b);
        assert!(matches!(
            decompress(&frame(&a), a.len() - 1),
            Err(CodecError::TooLarge)
        ));
        assert_eq!(decompress(&frame(&a), a.len()).unwrap(), a);
    }
}
