//! Shared by the fuzz targets: read everything a consumer would read.

use bytes::Bytes;
use kpax_proto::records::{Batch, Batches, ReadOptions};

/// Parses `data` as a records field and walks every batch, record and
/// header, with and without CRC checks. Must never panic, hang or allocate
/// beyond the decompression limit.
pub fn read_everything(data: Bytes) {
    for verify_crc in [false, true] {
        let options = ReadOptions {
            verify_crc,
            max_decompressed_size: 1 << 20,
        };
        let mut batches = Batches::with_options(data.clone(), options);
        for batch in &mut batches {
            let Ok(batch) = batch else { break };
            let _ = (batch.magic(), batch.last_offset(), batch.is_control());
            if let Batch::V2(b) = &batch {
                let _ = b.control_record();
                if let Ok(mut records) = b.records() {
                    while let Some(Ok(r)) = records.next_ref() {
                        for h in r.headers() {
                            std::hint::black_box(h);
                        }
                    }
                }
                if let Ok(mut records) = b.records() {
                    let _ = records.for_each_ref(|r| {
                        std::hint::black_box(r.headers().count());
                    });
                }
            }
            if let Ok(records) = batch.records() {
                for r in records {
                    let Ok(r) = r else { break };
                    std::hint::black_box((r.key(), r.value(), r.headers().count()));
                }
            }
            if let Ok(records) = batch.records() {
                // Internal iteration: the fast loop.
                records.for_each(|r| {
                    if let Ok(r) = r {
                        std::hint::black_box((r.key_bytes(), r.value_bytes(), r.headers_owned()));
                    }
                });
            }
        }
        let _ = (batches.truncated(), batches.remaining());
    }
}

/// Makes `data` one complete batch or message of the given magic: the
/// length field matches the input and the magic byte is set, so the fuzzer
/// spends its time past the framing.
pub fn frame(mut data: Vec<u8>, magic: u8) -> Bytes {
    if data.len() >= 17 {
        let length = (data.len() - 12) as i32;
        data[8..12].copy_from_slice(&length.to_be_bytes());
        data[16] = magic;
    }
    Bytes::from(data)
}
