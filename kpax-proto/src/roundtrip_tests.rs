//! Every API, every version, requests and responses: random value -> encode
//! -> decode -> the same value -> encode -> the same bytes. Also: truncated
//! frames are errors, never panics.

use crate::generated::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use crate::message::Message;
use crate::random::Rand;
use bytes::BytesMut;

const SEEDS: u64 = 24;

#[test]
fn every_message_version_round_trips() {
    let mut pairs = 0;
    for &key in ApiKey::ALL {
        let (min, max) = key.versions();
        for version in min..=max {
            for seed in 0..SEEDS {
                let mut rng = Rand::new(seed ^ ((key as u64) << 32) ^ ((version as u64) << 48));
                let req = RequestKind::random(key, &mut rng, version);
                let mut buf = BytesMut::new();
                req.encode(&mut buf, version)
                    .unwrap_or_else(|e| panic!("{key:?} v{version} seed {seed}: {e}"));
                let bytes = buf.freeze();
                let mut rd = bytes.clone();
                let back = RequestKind::decode(key as i16, version, &mut rd)
                    .unwrap_or_else(|e| panic!("{key:?} v{version} seed {seed}: {e}"));
                assert!(
                    rd.is_empty(),
                    "{key:?} request v{version}: {} bytes left over",
                    rd.len()
                );
                assert_eq!(back, req, "{key:?} request v{version} seed {seed}");
                let mut again = BytesMut::new();
                back.encode(&mut again, version).unwrap();
                assert_eq!(again.freeze(), bytes);

                let resp = ResponseKind::random(key, &mut rng, version);
                let mut buf = BytesMut::new();
                resp.encode(&mut buf, version)
                    .unwrap_or_else(|e| panic!("{key:?} response v{version} seed {seed}: {e}"));
                let bytes = buf.freeze();
                let mut rd = bytes.clone();
                let back = ResponseKind::decode(key as i16, version, &mut rd)
                    .unwrap_or_else(|e| panic!("{key:?} response v{version} seed {seed}: {e}"));
                assert!(
                    rd.is_empty(),
                    "{key:?} response v{version}: {} bytes left over",
                    rd.len()
                );
                assert_eq!(back, resp, "{key:?} response v{version} seed {seed}");
                // Truncations of a valid frame never panic.
                for cut in 0..bytes.len() {
                    let mut short = bytes.slice(..cut);
                    let _ = ResponseKind::decode(key as i16, version, &mut short);
                }
            }
            pairs += 2;
        }
    }
    // Every API has at least one version (the committed spec's exact count
    // is checked in current_protocol_tests).
    assert!(pairs >= 2 * ApiKey::ALL.len(), "{pairs}");
}

#[test]
fn headers_round_trip() {
    for version in RequestHeader::MIN_VERSION..=RequestHeader::MAX_VERSION {
        let mut rng = Rand::new(version as u64);
        let h = RequestHeader::random(&mut rng, version);
        let mut buf = BytesMut::new();
        h.encode(&mut buf, version).unwrap();
        assert_eq!(
            RequestHeader::decode(&mut buf.freeze(), version).unwrap(),
            h
        );
    }
    for version in ResponseHeader::MIN_VERSION..=ResponseHeader::MAX_VERSION {
        let mut rng = Rand::new(version as u64);
        let h = ResponseHeader::random(&mut rng, version);
        let mut buf = BytesMut::new();
        h.encode(&mut buf, version).unwrap();
        assert_eq!(
            ResponseHeader::decode(&mut buf.freeze(), version).unwrap(),
            h
        );
    }
}
