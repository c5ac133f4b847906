//! SASL/SCRAM server messages (server-first, server-final) as a hostile
//! broker could send them, through kpax's SCRAM client: never a panic, and
//! never accepted without the right signature. The first byte picks the
//! hash, then the two messages split at the first 0 byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (first, last) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    // An exchange the fuzzer completes would have to forge the server's
    // HMAC over a nonce it never saw; it may be found only by chance.
    let _ = kpax::broker::fuzz_scram_exchange(pick & 1 == 1, first, last);
});
