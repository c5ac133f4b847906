//! Legacy message set parsing (magic 0 and 1), including compressed
//! wrapper messages: the input framed as one complete message.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let magic = data.first().map_or(0, |b| b & 1);
    common::read_everything(common::frame(data.to_vec(), magic));
});
