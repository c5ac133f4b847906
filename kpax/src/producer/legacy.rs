//! Produce to brokers older than Kafka 0.11 (Produce v0-v2): the
//! accumulator always builds record batches v2; a batch bound for such a
//! broker is converted to a legacy message set on the way out (magic 1 for
//! Produce v2, Kafka 0.10; magic 0 for v0-v1, Kafka 0.8-0.9), as the
//! original kpax produced to Kafka 0.8.2.
//!
//! The conversion and what the old formats cannot carry (record headers,
//! zstd, idempotent or transactional batches) are wire knowledge:
//! [`kpax_proto::records::to_legacy`]. Here its typed error becomes an
//! [`Error::MessageFormat`] or [`Error::Records`] naming the broker.

use crate::error::{Error, Result};
use bytes::Bytes;
use kpax_proto::records::{self, RecordsError, ToLegacyError};

/// The message format a Produce version carries (2 = record batch v2).
pub(crate) fn magic_for(produce_version: i16) -> i8 {
    records::produce_magic(produce_version)
}

/// Converts one record batch v2 (as the accumulator built it) to a legacy
/// message set of `magic` 0 or 1, keeping the codec, timestamps, keys and
/// values.
///
/// # Errors
/// [`Error::MessageFormat`] for what the format cannot carry (headers,
/// zstd, producer ids), [`Error::Records`] for a batch that does not parse.
pub(crate) fn to_legacy(data: &Bytes, magic: i8, broker: &str) -> Result<Bytes> {
    let bad = |source| Error::Records {
        context: format!("a batch for broker {broker}"),
        source,
    };
    records::to_legacy(data, magic).map_err(|e| match e {
        ToLegacyError::Unsupported { what, magic } => Error::MessageFormat {
            what,
            broker: format!("broker {broker}"),
            magic: Some(magic),
        },
        ToLegacyError::Records(source) => bad(source),
        ToLegacyError::NotOneBatch(what) => bad(RecordsError::InvalidInput(what)),
        _ => bad(RecordsError::InvalidInput(
            "refused by the legacy conversion",
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpax_proto::records::{Compression, RecordBatchBuilder};

    #[test]
    fn refusals_name_the_broker_and_what_it_offers() {
        let mut b = RecordBatchBuilder::new(0).compression(Compression::Zstd);
        b.append(1, None, Some(b"x"), &[]).unwrap();
        let e = to_legacy(&b.finish().unwrap(), 1, "b:9092").unwrap_err();
        assert_eq!(
            e.to_string(),
            "zstd needs Kafka 2.1+; broker b:9092 offers only message format v1"
        );
        let h: [(&[u8], Option<&[u8]>); 1] = [(b"h", None)];
        let mut b = RecordBatchBuilder::new(0);
        b.append(1, None, Some(b"x"), &h).unwrap();
        let e = to_legacy(&b.finish().unwrap(), 0, "b:9092").unwrap_err();
        assert!(
            matches!(
                e,
                Error::MessageFormat {
                    what: kpax_proto::records::LegacyUnsupported::Headers,
                    magic: Some(0),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("Produce v3"), "{e}");
        assert!(matches!(
            to_legacy(&Bytes::from_static(b"junk"), 1, "b"),
            Err(Error::Records { .. })
        ));
        assert_eq!((magic_for(3), magic_for(2), magic_for(1)), (2, 1, 0));
    }
}
