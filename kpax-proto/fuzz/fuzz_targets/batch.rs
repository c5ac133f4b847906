//! Record batch v2 parsing: the raw input, and the input framed as one
//! complete magic-2 batch.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    common::read_everything(bytes::Bytes::copy_from_slice(data));
    common::read_everything(common::frame(data.to_vec(), 2));
});
