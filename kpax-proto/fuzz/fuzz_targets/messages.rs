//! Every generated request and response decoder (all APIs and versions,
//! through RequestKind/ResponseKind), as a broker or client would meet
//! them: the first two bytes pick the API key, the next two the version
//! (folded into each API's range), the rest is the body. A decoded
//! message must encode again, and decode to the same message (no panic,
//! no allocation sized by an untrusted length: -malloc_limit_mb).
#![no_main]

use bytes::{Bytes, BytesMut};
use kpax_proto::generated::{ApiKey, RequestKind, ResponseKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let all = ApiKey::ALL;
    let api = all[usize::from(u16::from_be_bytes([data[0], data[1]])) % all.len()];
    let (lo, hi) = api.versions();
    let span = (hi - lo + 1) as u16;
    let version = lo + (u16::from_be_bytes([data[2], data[3]]) % span) as i16;
    let body = Bytes::copy_from_slice(&data[4..]);

    let mut buf = body.clone();
    if let Ok(req) = RequestKind::decode(api as i16, version, &mut buf) {
        let mut out = BytesMut::new();
        if req.encode(&mut out, version).is_ok() {
            let again = RequestKind::decode(api as i16, version, &mut out.freeze())
                .expect("a request kpax encoded decodes");
            assert_eq!(format!("{again:?}"), format!("{req:?}"), "{api:?} v{version}");
        }
    }
    let mut buf = body;
    if let Ok(resp) = ResponseKind::decode(api as i16, version, &mut buf) {
        let mut out = BytesMut::new();
        if resp.encode(&mut out, version).is_ok() {
            let again = ResponseKind::decode(api as i16, version, &mut out.freeze())
                .expect("a response kpax encoded decodes");
            assert_eq!(format!("{again:?}"), format!("{resp:?}"), "{api:?} v{version}");
        }
    }
});
