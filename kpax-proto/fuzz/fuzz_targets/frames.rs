//! The broker connection's frame reader, fed what a hostile broker could
//! send (sizes that lie, frames cut short, wrong correlation ids, bad
//! response headers), in reads of 1 to 16 bytes, with up to 15 requests in
//! flight: never a panic, never an allocation the bytes did not justify,
//! and every request in flight answered or failed when the stream ends.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kpax::broker::fuzz_read_frames(data);
});
