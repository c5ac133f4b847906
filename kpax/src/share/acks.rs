//! Acknowledgements as ShareFetch and ShareAcknowledge carry them: per
//! partition, batches of consecutive offsets with either one type for the
//! whole batch or one type per offset (KIP-932).

use std::collections::BTreeMap;

/// What a share consumer says about a record it acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AcknowledgeType {
    /// Processed: the record is done for the group.
    Accept,
    /// Not processed: hand the record out again (its delivery count grows).
    Release,
    /// Unprocessable: never hand the record out again.
    Reject,
}

impl AcknowledgeType {
    /// The wire code (0 is a gap: an acquired offset without a record).
    pub fn code(self) -> i8 {
        match self {
            AcknowledgeType::Accept => ACCEPT,
            AcknowledgeType::Release => RELEASE,
            AcknowledgeType::Reject => REJECT,
        }
    }

    /// The type of a wire code, `None` for a gap or an unknown code.
    pub fn from_code(code: i8) -> Option<AcknowledgeType> {
        match code {
            ACCEPT => Some(AcknowledgeType::Accept),
            RELEASE => Some(AcknowledgeType::Release),
            REJECT => Some(AcknowledgeType::Reject),
            _ => None,
        }
    }
}

impl std::str::FromStr for AcknowledgeType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "accept" => Ok(AcknowledgeType::Accept),
            "release" => Ok(AcknowledgeType::Release),
            "reject" => Ok(AcknowledgeType::Reject),
            other => Err(format!(
                "unknown acknowledge type {other:?} (accept, release or reject)"
            )),
        }
    }
}

/// The wire code of an acquired offset that holds no record (a control
/// record, or one compacted away).
pub const GAP: i8 = 0;
const ACCEPT: i8 = 1;
const RELEASE: i8 = 2;
const REJECT: i8 = 3;

/// One acknowledgement batch: `first..=last` with one type for all, or one
/// per offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckBatch {
    /// The first offset.
    pub first: i64,
    /// The last offset (inclusive).
    pub last: i64,
    /// One code for the whole batch, or one per offset.
    pub types: Vec<i8>,
}

/// Batches for one partition's acknowledgements (offset -> wire code):
/// consecutive offsets form one batch, written with a single type when
/// every offset has the same one.
pub fn batches(acks: &BTreeMap<i64, i8>) -> Vec<AckBatch> {
    let mut out: Vec<AckBatch> = Vec::new();
    let mut open: Option<(i64, i64, Vec<i8>)> = None;
    for (&offset, &code) in acks {
        match &mut open {
            Some((_, last, types)) if offset == *last + 1 => {
                *last = offset;
                types.push(code);
            }
            _ => {
                if let Some(b) = open.take() {
                    out.push(close(b));
                }
                open = Some((offset, offset, vec![code]));
            }
        }
    }
    if let Some(b) = open {
        out.push(close(b));
    }
    out
}

fn close((first, last, mut types): (i64, i64, Vec<i8>)) -> AckBatch {
    if types.windows(2).all(|w| w[0] == w[1]) {
        types.truncate(1);
    }
    AckBatch { first, last, types }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks(pairs: &[(i64, i8)]) -> BTreeMap<i64, i8> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn consecutive_offsets_of_one_type_are_one_batch() {
        let b = batches(&acks(&[(5, 1), (6, 1), (7, 1)]));
        assert_eq!(
            b,
            vec![AckBatch {
                first: 5,
                last: 7,
                types: vec![1]
            }]
        );
    }

    #[test]
    fn mixed_types_are_listed_per_offset_and_holes_split_batches() {
        let b = batches(&acks(&[(1, 1), (2, 0), (3, 2), (10, 3), (12, 3)]));
        assert_eq!(
            b,
            vec![
                AckBatch {
                    first: 1,
                    last: 3,
                    types: vec![1, 0, 2]
                },
                AckBatch {
                    first: 10,
                    last: 10,
                    types: vec![3]
                },
                AckBatch {
                    first: 12,
                    last: 12,
                    types: vec![3]
                },
            ]
        );
        assert!(batches(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn types_parse_and_round_trip_their_codes() {
        for t in [
            AcknowledgeType::Accept,
            AcknowledgeType::Release,
            AcknowledgeType::Reject,
        ] {
            assert_eq!(AcknowledgeType::from_code(t.code()), Some(t));
        }
        assert_eq!(AcknowledgeType::from_code(GAP), None);
        assert_eq!(
            "Release".parse::<AcknowledgeType>(),
            Ok(AcknowledgeType::Release)
        );
        assert!("maybe".parse::<AcknowledgeType>().is_err());
    }
}
