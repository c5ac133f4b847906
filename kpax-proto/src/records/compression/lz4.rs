//! LZ4 frames (the standard frame format) through `lz4_flex`, written as
//! Java's `KafkaLZ4BlockOutputStream` writes them: 64 KiB independent blocks,
//! no checksums besides the header's.
//!
//! Magic-0 quirk: Kafka before 0.10 computed the frame header checksum over
//! the 4-byte frame magic as well as the descriptor. Java still writes that
//! broken checksum for magic-0 messages and expects it when reading them; we
//! do the same, and on read accept either checksum for magic 0.

use std::io::{Read, Write};

use bytes::{BufMut, BytesMut};
use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};

use super::{read_bounded, CodecError};

/// Offset of the FLG byte, just after the 4-byte frame magic.
const FLG: usize = 4;

pub(super) fn compress(input: &[u8], out: &mut BytesMut, magic: i8) -> Result<(), CodecError> {
    let start = out.len();
    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent);
    let mut encoder = FrameEncoder::with_frame_info(info, out.writer());
    encoder.write_all(input)?;
    encoder
        .finish()
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if magic == 0 {
        let frame = &mut out[start..];
        if let Some(hc) = header_checksum_pos(frame) {
            frame[hc] = broken_checksum(&frame[..hc]);
        }
    }
    Ok(())
}

pub(super) fn decompress(input: &[u8], limit: usize, magic: i8) -> Result<Vec<u8>, CodecError> {
    if magic == 0 {
        if let Some(hc) = header_checksum_pos(input) {
            if input[hc] == broken_checksum(&input[..hc]) && input[hc] != checksum(&input[..hc]) {
                let mut header = input[..=hc].to_vec();
                header[hc] = checksum(&input[..hc]);
                let reader = (&header[..]).chain(&input[hc + 1..]);
                return read(reader, limit, input.len());
            }
        }
    }
    read(input, limit, input.len())
}

fn read(reader: impl Read, limit: usize, input_len: usize) -> Result<Vec<u8>, CodecError> {
    read_bounded(FrameDecoder::new(reader), limit, input_len)
}

/// Where the header checksum byte is: after magic, FLG, BD and the optional
/// content size (8 bytes) and dictionary id (4 bytes). `None` when the input
/// is too short (the decoder then reports the error).
fn header_checksum_pos(frame: &[u8]) -> Option<usize> {
    let flg = *frame.get(FLG)?;
    let mut pos = FLG + 2;
    if flg & 0x08 != 0 {
        pos += 8;
    }
    if flg & 0x01 != 0 {
        pos += 4;
    }
    (pos < frame.len()).then_some(pos)
}

/// The correct checksum: second byte of xxh32 over the descriptor.
fn checksum(header: &[u8]) -> u8 {
    (twox_hash::XxHash32::oneshot(0, &header[FLG..]) >> 8) as u8
}

/// Kafka 0.8/0.9's checksum: over the frame magic and the descriptor.
fn broken_checksum(header: &[u8]) -> u8 {
    (twox_hash::XxHash32::oneshot(0, header) >> 8) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_zero_writes_the_broken_checksum_and_reads_both() {
        let data = b"the quick brown fox jumps over the lazy dog".repeat(20);
        let mut broken = BytesMut::new();
        compress(&data, &mut broken, 0).unwrap();
        let mut good = BytesMut::new();
        compress(&data, &mut good, 1).unwrap();
        let hc = header_checksum_pos(&good).unwrap();
        assert_eq!(good[hc], checksum(&good[..hc]));
        assert_eq!(broken[hc], broken_checksum(&broken[..hc]));
        assert_ne!(good[hc], broken[hc]);
        assert_eq!(decompress(&broken, 1 << 20, 0).unwrap(), data);
        assert_eq!(decompress(&good, 1 << 20, 0).unwrap(), data);
        assert_eq!(decompress(&good, 1 << 20, 1).unwrap(), data);
        // A magic-1 reader does not accept the broken checksum.
        assert!(decompress(&broken, 1 << 20, 1).is_err());
    }
}
