//! The consumer protocol's embedded formats, Kafka's
//! `ConsumerProtocolSubscription` (a member's metadata in JoinGroup) and
//! `ConsumerProtocolAssignment` (its share in SyncGroup), written on the
//! wire primitives with their bounds checks.
//!
//! Subscriptions are written as version 2 (topics, user data, owned
//! partitions, generation: what the sticky assignors need, KIP-429 and
//! KIP-792), version 3 when a rack is set, and read in any version (later
//! versions only add fields at the end). Assignments are written as
//! version 0 (later versions add no fields). A string too long for its
//! INT16 length prefix is an [`EncodeError`], never a truncated length.

use crate::wire::{
    decode_ctx, encode_ctx, get_array_len, get_i16, get_i32, get_nullable_bytes,
    get_nullable_string, get_string, put_array_len, put_i16, put_i32, put_nullable_bytes,
    put_nullable_string, put_string, DecodeError, EncodeError,
};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::BTreeMap;

const SUBSCRIPTION: &str = "ConsumerProtocolSubscription";
const ASSIGNMENT: &str = "ConsumerProtocolAssignment";

/// A member's subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Topics, sorted.
    pub topics: Vec<String>,
    /// Opaque assignor data.
    pub user_data: Option<Bytes>,
    /// The partitions the member owns now, per topic (version 1+).
    pub owned_partitions: BTreeMap<String, Vec<i32>>,
    /// The generation in which it got them; -1 when unknown (version 2+).
    pub generation: i32,
    /// The member's rack (version 3+).
    pub rack_id: Option<String>,
}

impl Default for Subscription {
    fn default() -> Self {
        Subscription {
            topics: Vec::new(),
            user_data: None,
            owned_partitions: BTreeMap::new(),
            generation: -1,
            rack_id: None,
        }
    }
}

/// A member's assignment: topic -> partitions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    /// Partitions per topic.
    pub partitions: BTreeMap<String, Vec<i32>>,
    /// Opaque assignor data.
    pub user_data: Option<Bytes>,
}

fn put_partitions(
    b: &mut BytesMut,
    partitions: &BTreeMap<String, Vec<i32>>,
    message: &'static str,
    version: i16,
) -> Result<(), EncodeError> {
    put_array_len(b, Some(partitions.len())).map_err(encode_ctx(message, "topics", version))?;
    for (t, ps) in partitions {
        put_string(b, t).map_err(encode_ctx(message, "topic", version))?;
        put_array_len(b, Some(ps.len())).map_err(encode_ctx(message, "partitions", version))?;
        for p in ps {
            put_i32(b, *p);
        }
    }
    Ok(())
}

fn get_partitions(
    b: &mut Bytes,
    message: &'static str,
    version: i16,
) -> Result<BTreeMap<String, Vec<i32>>, DecodeError> {
    // each topic takes at least a string length and an array length
    let n = get_array_len(b, 6)
        .map_err(decode_ctx(message, "topics", version))?
        .unwrap_or(0);
    let mut partitions = BTreeMap::new();
    for _ in 0..n {
        let t = get_string(b).map_err(decode_ctx(message, "topic", version))?;
        let m = get_array_len(b, 4)
            .map_err(decode_ctx(message, "partitions", version))?
            .unwrap_or(0);
        let mut ps = Vec::with_capacity(m);
        for _ in 0..m {
            ps.push(get_i32(b).map_err(decode_ctx(message, "partitions", version))?);
        }
        partitions
            .entry(t.as_str().to_string())
            .or_insert_with(Vec::new)
            .extend(ps);
    }
    Ok(partitions)
}

impl Subscription {
    /// Encodes version 2 (version 3 when a rack is set).
    ///
    /// # Errors
    /// [`EncodeError`] for a topic or rack longer than an INT16 length
    /// prefix holds, or more topics or bytes than an INT32 count holds.
    pub fn encode(&self) -> Result<Bytes, EncodeError> {
        let version = if self.rack_id.is_some() { 3 } else { 2 };
        let ctx = |field| encode_ctx(SUBSCRIPTION, field, version);
        let mut b = BytesMut::new();
        put_i16(&mut b, version);
        put_array_len(&mut b, Some(self.topics.len())).map_err(ctx("topics"))?;
        for t in &self.topics {
            put_string(&mut b, t).map_err(ctx("topics"))?;
        }
        put_nullable_bytes(&mut b, self.user_data.as_deref()).map_err(ctx("user_data"))?;
        put_partitions(&mut b, &self.owned_partitions, SUBSCRIPTION, version)?;
        put_i32(&mut b, self.generation);
        if let Some(rack) = &self.rack_id {
            put_nullable_string(&mut b, Some(rack)).map_err(ctx("rack_id"))?;
        }
        Ok(b.freeze())
    }

    /// Decodes any version (later versions only add fields at the end).
    ///
    /// # Errors
    /// [`DecodeError`] naming the field for bytes that do not parse.
    pub fn decode(mut b: Bytes) -> Result<Subscription, DecodeError> {
        let version = get_i16(&mut b).map_err(decode_ctx(SUBSCRIPTION, "version", -1))?;
        let ctx = |field| decode_ctx(SUBSCRIPTION, field, version);
        let n = get_array_len(&mut b, 2)
            .map_err(ctx("topics"))?
            .unwrap_or(0);
        let mut topics = Vec::with_capacity(n);
        for _ in 0..n {
            topics.push(
                get_string(&mut b)
                    .map_err(ctx("topics"))?
                    .as_str()
                    .to_string(),
            );
        }
        let mut sub = Subscription {
            topics,
            ..Subscription::default()
        };
        if !b.has_remaining() {
            return Ok(sub);
        }
        sub.user_data = get_nullable_bytes(&mut b).map_err(ctx("user_data"))?;
        if version >= 1 && b.has_remaining() {
            sub.owned_partitions = get_partitions(&mut b, SUBSCRIPTION, version)?;
        }
        if version >= 2 && b.has_remaining() {
            sub.generation = get_i32(&mut b).map_err(ctx("generation_id"))?;
        }
        if version >= 3 && b.has_remaining() {
            sub.rack_id = get_nullable_string(&mut b)
                .map_err(ctx("rack_id"))?
                .map(|s| s.as_str().to_string());
        }
        Ok(sub)
    }
}

impl Assignment {
    /// Encodes version 0.
    ///
    /// # Errors
    /// [`EncodeError`] for a topic longer than an INT16 length prefix
    /// holds, or more partitions or bytes than an INT32 count holds.
    pub fn encode(&self) -> Result<Bytes, EncodeError> {
        let mut b = BytesMut::new();
        put_i16(&mut b, 0);
        put_partitions(&mut b, &self.partitions, ASSIGNMENT, 0)?;
        put_nullable_bytes(&mut b, self.user_data.as_deref()).map_err(encode_ctx(
            ASSIGNMENT,
            "user_data",
            0,
        ))?;
        Ok(b.freeze())
    }

    /// Decodes any version; empty bytes are an empty assignment.
    ///
    /// # Errors
    /// [`DecodeError`] naming the field for bytes that do not parse.
    pub fn decode(mut b: Bytes) -> Result<Assignment, DecodeError> {
        if b.is_empty() {
            return Ok(Assignment::default());
        }
        let version = get_i16(&mut b).map_err(decode_ctx(ASSIGNMENT, "version", -1))?;
        let partitions = get_partitions(&mut b, ASSIGNMENT, version)?;
        let user_data = if b.has_remaining() {
            get_nullable_bytes(&mut b).map_err(decode_ctx(ASSIGNMENT, "user_data", version))?
        } else {
            None
        };
        Ok(Assignment {
            partitions,
            user_data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_junk() {
        let s = Subscription {
            topics: vec!["a".into(), "b".into()],
            owned_partitions: BTreeMap::from([("a".to_string(), vec![1, 3])]),
            generation: 7,
            user_data: Some(Bytes::from_static(b"ud")),
            ..Subscription::default()
        };
        assert_eq!(Subscription::decode(s.encode().unwrap()).unwrap(), s);
        let racked = Subscription {
            rack_id: Some("r1".into()),
            ..s.clone()
        };
        assert_eq!(
            Subscription::decode(racked.encode().unwrap()).unwrap(),
            racked
        );
        let mut a = Assignment::default();
        a.partitions.insert("a".into(), vec![0, 2]);
        assert_eq!(Assignment::decode(a.encode().unwrap()).unwrap(), a);
        let e =
            Assignment::decode(Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])).unwrap_err();
        assert_eq!((e.message, e.field), (ASSIGNMENT, "topics"));
        assert!(Subscription::decode(Bytes::from_static(&[0])).is_err());
    }

    #[test]
    fn reads_version_0_subscriptions_and_truncated_later_fields_fail() {
        // version 0: one topic "t", null user data
        let v0 = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff]);
        let s = Subscription::decode(v0).unwrap();
        assert_eq!(s.topics, ["t"]);
        assert!(s.owned_partitions.is_empty());
        assert_eq!(s.generation, -1);
        // version 1 claiming 1000 owned topics in a few bytes
        let bad = Bytes::from_static(&[
            0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x03, 0xe8, 0, 1,
        ]);
        let e = Subscription::decode(bad).unwrap_err();
        assert_eq!(e.field, "topics");
    }

    #[test]
    fn strings_too_long_for_their_prefix_are_errors_not_truncated() {
        let long = "t".repeat(usize::from(u16::MAX));
        let s = Subscription {
            topics: vec![long.clone()],
            ..Subscription::default()
        };
        let e = s.encode().unwrap_err();
        assert_eq!((e.message, e.field), (SUBSCRIPTION, "topics"));
        let a = Assignment {
            partitions: BTreeMap::from([(long, vec![0])]),
            user_data: None,
        };
        assert_eq!(a.encode().unwrap_err().field, "topic");
        // at the limit it still round-trips
        let edge = "e".repeat(i16::MAX as usize);
        let s = Subscription {
            topics: vec![edge],
            ..Subscription::default()
        };
        assert_eq!(Subscription::decode(s.encode().unwrap()).unwrap(), s);
    }
}
