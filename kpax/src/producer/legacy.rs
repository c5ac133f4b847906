//! Produce to brokers older than Kafka 0.11 (Produce v0-v2): the
//! accumulator always builds record batches v2; a batch bound for such a
//! broker is converted to a legacy message set on the way out (magic 1 for
//! Produce v2, Kafka 0.10; magic 0 for v0-v1, Kafka 0.8-0.9), as the
//! original kpax produced to Kafka 0.8.2.
//!
//! What the old formats cannot carry is refused with a clear error rather
//! than dropped: record headers (Kafka 0.11+), zstd (Kafka 2.1+), and
//! idempotent or transactional batches (Produce v3+).

use crate::error::{Error, Result};
use bytes::Bytes;
use kpax_proto::records::{Batch, Batches, Compression, LegacyMessageSetBuilder};

/// The message format a Produce version carries (2 = record batch v2).
pub(crate) fn magic_for(produce_version: i16) -> i8 {
    match produce_version {
        v if v >= 3 => 2,
        2 => 1,
        _ => 0,
    }
}

/// Converts one record batch v2 (as the accumulator built it) to a legacy
/// message set of `magic` 0 or 1, keeping the codec, timestamps, keys and
/// values.
///
/// # Errors
/// [`Error::Records`] for what the format cannot carry (headers, zstd,
/// producer ids) or a batch that does not parse.
pub(crate) fn to_legacy(data: &Bytes, magic: i8, broker: &str) -> Result<Bytes> {
    let refuse = |what: &str| {
        Error::Records(format!(
            "{what} needs Produce v3 (Kafka 0.11+); broker {broker} offers only message format v{magic}"
        ))
    };
    let bad = |e: kpax_proto::records::RecordsError| Error::Records(e.to_string());
    let mut out: Option<Bytes> = None;
    for batch in Batches::new(data.clone()) {
        let Batch::V2(b) = batch.map_err(bad)? else {
            return Err(Error::Records("expected a record batch v2".into()));
        };
        if out.is_some() {
            return Err(Error::Records("expected one batch".into()));
        }
        let h = b.header();
        if h.producer_id >= 0 || b.is_transactional() {
            return Err(refuse("an idempotent or transactional producer"));
        }
        let codec = b.compression();
        if codec == Compression::Zstd {
            return Err(Error::Records(format!(
                "zstd needs Kafka 2.1+; broker {broker} offers only message format v{magic}"
            )));
        }
        let mut builder = LegacyMessageSetBuilder::new(magic, 0)
            .map_err(bad)?
            .compression(codec);
        let mut records = b.records().map_err(bad)?;
        while let Some(r) = records.next_ref() {
            let r = r.map_err(bad)?;
            if r.header_count() > 0 {
                return Err(refuse("a record with headers"));
            }
            builder.append(r.timestamp, r.key, r.value).map_err(bad)?;
        }
        out = Some(builder.finish().map_err(bad)?);
    }
    out.ok_or_else(|| Error::Records("an empty batch".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpax_proto::records::RecordBatchBuilder;

    fn v2(codec: Compression, headers: bool) -> Bytes {
        let mut b = RecordBatchBuilder::new(0).compression(codec);
        let h: [(&[u8], Option<&[u8]>); 1] = [(b"h", Some(b"v"))];
        b.append(1_700_000_000_000, Some(b"k1"), Some(b"one"), &[])
            .unwrap();
        b.append(
            1_700_000_000_001,
            None,
            None,
            if headers { &h[..] } else { &[] },
        )
        .unwrap();
        b.append(1_700_000_000_002, Some(b"k3"), Some(b"three"), &[])
            .unwrap();
        b.finish().unwrap()
    }

    #[test]
    fn batches_become_legacy_message_sets_with_the_same_records() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
        ] {
            for magic in [0i8, 1] {
                let set = to_legacy(&v2(codec, false), magic, "b").unwrap();
                let mut got = Vec::new();
                for batch in Batches::new(set) {
                    let batch = batch.unwrap();
                    let Batch::Legacy(_) = &batch else {
                        panic!("{codec:?} magic {magic}: not legacy")
                    };
                    for r in batch.records().unwrap() {
                        let r = r.unwrap();
                        got.push((r.offset, r.timestamp, r.key_bytes(), r.value_bytes()));
                    }
                }
                let ts = |t: i64| if magic == 0 { -1 } else { t };
                assert_eq!(
                    got,
                    vec![
                        (
                            0,
                            ts(1_700_000_000_000),
                            Some(Bytes::from_static(b"k1")),
                            Some(Bytes::from_static(b"one"))
                        ),
                        (1, ts(1_700_000_000_001), None, None),
                        (
                            2,
                            ts(1_700_000_000_002),
                            Some(Bytes::from_static(b"k3")),
                            Some(Bytes::from_static(b"three"))
                        ),
                    ],
                    "{codec:?} magic {magic}"
                );
            }
        }
    }

    #[test]
    fn what_old_formats_cannot_carry_is_refused() {
        let e = to_legacy(&v2(Compression::None, true), 1, "b").unwrap_err();
        assert!(e.to_string().contains("headers"), "{e}");
        let e = to_legacy(&v2(Compression::Zstd, false), 1, "b").unwrap_err();
        assert!(e.to_string().contains("zstd"), "{e}");
        let mut b = RecordBatchBuilder::new(0).producer(7, 0, 0);
        b.append(1, None, Some(b"x"), &[]).unwrap();
        let e = to_legacy(&b.finish().unwrap(), 1, "b").unwrap_err();
        assert!(e.to_string().contains("idempotent"), "{e}");
        assert!(to_legacy(&Bytes::from_static(b"junk"), 1, "b").is_err());
        assert_eq!(
            (
                magic_for(9),
                magic_for(3),
                magic_for(2),
                magic_for(1),
                magic_for(0)
            ),
            (2, 2, 1, 0, 0)
        );
    }
}
