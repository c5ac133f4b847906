//! Converting a record batch v2 to a legacy message set (magic 0 or 1), for
//! brokers older than Kafka 0.11 (Produce v0-v2).
//!
//! A producer builds record batches v2 only; a batch bound for such a broker
//! is converted on the way out, keeping its codec, timestamps, keys and
//! values. What the old formats cannot carry is refused with a
//! [`ToLegacyError`] rather than dropped: record headers (Kafka 0.11+),
//! zstd (Kafka 2.1+), and idempotent or transactional batches (Produce
//! v3+).

use bytes::Bytes;

use super::compression::Compression;
use super::error::RecordsError;
use super::legacy_builder::LegacyMessageSetBuilder;
use super::set::{Batch, Batches};

/// The message format (magic) a Produce request of `produce_version`
/// carries: 2 (record batches v2) from v3 (Kafka 0.11), 1 for v2
/// (Kafka 0.10), 0 for v0 and v1 (Kafka 0.8 and 0.9).
pub fn produce_magic(produce_version: i16) -> i8 {
    match produce_version {
        v if v >= 3 => 2,
        2 => 1,
        _ => 0,
    }
}

/// What a record batch v2 carries that a legacy message set cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegacyUnsupported {
    /// A producer id (idempotence) or the transactional flag: Produce v3.
    ProducerId,
    /// Record headers: Produce v3.
    Headers,
    /// zstd compression: Kafka 2.1 (Produce v7).
    Zstd,
}

impl LegacyUnsupported {
    /// What is refused, as a noun ("a record with headers").
    pub fn what(self) -> &'static str {
        match self {
            LegacyUnsupported::ProducerId => "an idempotent or transactional producer",
            LegacyUnsupported::Headers => "a record with headers",
            LegacyUnsupported::Zstd => "zstd",
        }
    }

    /// What it needs ("Produce v3 (Kafka 0.11+)").
    pub fn needs(self) -> &'static str {
        match self {
            LegacyUnsupported::ProducerId | LegacyUnsupported::Headers => {
                "Produce v3 (Kafka 0.11+)"
            }
            LegacyUnsupported::Zstd => "Kafka 2.1+",
        }
    }
}

/// Why a record batch v2 could not be converted to a legacy message set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToLegacyError {
    /// The batch carries something message format `magic` cannot.
    #[error("{} needs {}; message format v{magic} cannot carry it", .what.what(), .what.needs())]
    Unsupported {
        /// What the format cannot carry.
        what: LegacyUnsupported,
        /// The legacy magic asked for.
        magic: i8,
    },
    /// The input is not exactly one record batch v2.
    #[error("{0}")]
    NotOneBatch(&'static str),
    /// The batch does not parse, or the message set cannot be built.
    #[error(transparent)]
    Records(#[from] RecordsError),
}

/// Converts one record batch v2 (as a producer built it) to a legacy
/// message set of `magic` 0 or 1 at base offset 0, keeping the codec,
/// timestamps (dropped by magic 0), keys and values.
///
/// # Errors
/// [`ToLegacyError::Unsupported`] for headers, zstd and producer ids;
/// [`ToLegacyError::NotOneBatch`] unless `data` is exactly one batch v2;
/// [`ToLegacyError::Records`] for a batch that does not parse, or a
/// `magic` other than 0 and 1.
pub fn to_legacy(data: &Bytes, magic: i8) -> Result<Bytes, ToLegacyError> {
    let refuse = |what| ToLegacyError::Unsupported { what, magic };
    let mut out: Option<Bytes> = None;
    for batch in Batches::new(data.clone()) {
        let Batch::V2(b) = batch? else {
            return Err(ToLegacyError::NotOneBatch("expected a record batch v2"));
        };
        if out.is_some() {
            return Err(ToLegacyError::NotOneBatch("expected one batch"));
        }
        if b.header().producer_id >= 0 || b.is_transactional() {
            return Err(refuse(LegacyUnsupported::ProducerId));
        }
        let codec = b.compression();
        if codec == Compression::Zstd {
            return Err(refuse(LegacyUnsupported::Zstd));
        }
        let mut builder = LegacyMessageSetBuilder::new(magic, 0)?.compression(codec);
        let mut records = b.records()?;
        while let Some(r) = records.next_ref() {
            let r = r?;
            if r.header_count() > 0 {
                return Err(refuse(LegacyUnsupported::Headers));
            }
            builder.append(r.timestamp, r.key, r.value)?;
        }
        out = Some(builder.finish()?);
    }
    out.ok_or(ToLegacyError::NotOneBatch("an empty batch"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::RecordBatchBuilder;

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
                let set = to_legacy(&v2(codec, false), magic).unwrap();
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
        let unsupported = |data: &Bytes| match to_legacy(data, 1) {
            Err(ToLegacyError::Unsupported { what, magic: 1 }) => what,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            unsupported(&v2(Compression::None, true)),
            LegacyUnsupported::Headers
        );
        assert_eq!(
            unsupported(&v2(Compression::Zstd, false)),
            LegacyUnsupported::Zstd
        );
        let mut b = RecordBatchBuilder::new(0).producer(7, 0, 0);
        b.append(1, None, Some(b"x"), &[]).unwrap();
        assert_eq!(
            unsupported(&b.finish().unwrap()),
            LegacyUnsupported::ProducerId
        );
        let mut b = RecordBatchBuilder::new(0).transactional(true);
        b.append(1, None, Some(b"x"), &[]).unwrap();
        assert_eq!(
            unsupported(&b.finish().unwrap()),
            LegacyUnsupported::ProducerId
        );
        let e = to_legacy(&v2(Compression::None, true), 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a record with headers needs Produce v3 (Kafka 0.11+); message format v0 cannot carry it"
        );
    }

    #[test]
    fn bad_input_is_a_typed_error_not_a_panic() {
        // Too short to be a batch: nothing to convert.
        for data in [Bytes::new(), Bytes::from_static(b"junk")] {
            assert_eq!(
                to_legacy(&data, 1),
                Err(ToLegacyError::NotOneBatch("an empty batch"))
            );
        }
        let one = v2(Compression::None, false);
        let mut corrupt = one.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert!(matches!(
            to_legacy(&Bytes::from(corrupt), 1),
            Err(ToLegacyError::Records(RecordsError::BadCrc { .. }))
        ));
        let two = Bytes::from([&one[..], &one[..]].concat());
        assert_eq!(
            to_legacy(&two, 1),
            Err(ToLegacyError::NotOneBatch("expected one batch"))
        );
        let legacy = to_legacy(&one, 1).unwrap();
        assert_eq!(
            to_legacy(&legacy, 0),
            Err(ToLegacyError::NotOneBatch("expected a record batch v2"))
        );
        assert!(matches!(
            to_legacy(&one, 2),
            Err(ToLegacyError::Records(RecordsError::InvalidInput(_)))
        ));
        // A length field claiming 2 GiB in a short input: an error, no
        // allocation of that size.
        let mut huge = one.to_vec();
        huge[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(to_legacy(&Bytes::from(huge), 1).is_err());
    }

    #[test]
    fn produce_versions_carry_their_message_format() {
        assert_eq!([13, 9, 3, 2, 1, 0].map(produce_magic), [2, 2, 2, 1, 0, 0]);
    }
}
