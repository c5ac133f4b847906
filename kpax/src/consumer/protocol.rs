//! The consumer protocol's embedded formats: a member's subscription (in
//! JoinGroup) and its assignment (in SyncGroup).
//!
//! Subscriptions are written as version 2 (topics, user data, owned
//! partitions, generation: what the sticky assignors need, KIP-429/KIP-792)
//! and read in any version (later versions only add fields at the end).
//! Assignments are written as version 0 (later versions add no fields).

use crate::error::{Error, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

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

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_opt_bytes(b: &mut BytesMut, v: &Option<Bytes>) {
    match v {
        None => b.put_i32(-1),
        Some(d) => {
            b.put_i32(d.len() as i32);
            b.put_slice(d);
        }
    }
}

fn bad(what: &str) -> Error {
    Error::Protocol {
        broker: "group".into(),
        reason: format!("bad consumer protocol {what}"),
    }
}

fn get_i16(b: &mut Bytes) -> Result<i16> {
    if b.remaining() < 2 {
        return Err(bad("data: short"));
    }
    Ok(b.get_i16())
}

fn get_i32(b: &mut Bytes) -> Result<i32> {
    if b.remaining() < 4 {
        return Err(bad("data: short"));
    }
    Ok(b.get_i32())
}

fn get_str(b: &mut Bytes) -> Result<String> {
    let n = get_i16(b)?;
    if n < 0 || b.remaining() < n as usize {
        return Err(bad("string"));
    }
    String::from_utf8(b.split_to(n as usize).to_vec()).map_err(|_| bad("string (UTF-8)"))
}

fn get_opt_bytes(b: &mut Bytes) -> Result<Option<Bytes>> {
    let n = get_i32(b)?;
    if n < 0 {
        return Ok(None);
    }
    if b.remaining() < n as usize {
        return Err(bad("bytes"));
    }
    Ok(Some(b.split_to(n as usize)))
}

/// A count checked against the bytes left (each item takes at least `min`).
fn get_count(b: &mut Bytes, min: usize) -> Result<usize> {
    let n = get_i32(b)?;
    if n < 0 {
        return Ok(0);
    }
    let n = n as usize;
    if n.saturating_mul(min) > b.remaining() {
        return Err(bad("array count"));
    }
    Ok(n)
}

fn put_partitions(b: &mut BytesMut, partitions: &BTreeMap<String, Vec<i32>>) {
    b.put_i32(partitions.len() as i32);
    for (t, ps) in partitions {
        put_str(b, t);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(*p);
        }
    }
}

fn get_partitions(b: &mut Bytes) -> Result<BTreeMap<String, Vec<i32>>> {
    let n = get_count(b, 6)?;
    let mut partitions = BTreeMap::new();
    for _ in 0..n {
        let t = get_str(b)?;
        let m = get_count(b, 4)?;
        let mut ps = Vec::with_capacity(m);
        for _ in 0..m {
            ps.push(get_i32(b)?);
        }
        partitions.entry(t).or_insert_with(Vec::new).extend(ps);
    }
    Ok(partitions)
}

impl Subscription {
    /// Encodes version 2 (version 3 when a rack is set).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(if self.rack_id.is_some() { 3 } else { 2 });
        b.put_i32(self.topics.len() as i32);
        for t in &self.topics {
            put_str(&mut b, t);
        }
        put_opt_bytes(&mut b, &self.user_data);
        put_partitions(&mut b, &self.owned_partitions);
        b.put_i32(self.generation);
        if let Some(rack) = &self.rack_id {
            put_str(&mut b, rack);
        }
        b.freeze()
    }

    /// Decodes any version (later versions only add fields at the end).
    ///
    /// # Errors
    /// [`Error::Protocol`] for bytes that do not parse.
    pub fn decode(mut b: Bytes) -> Result<Subscription> {
        let version = get_i16(&mut b)?;
        let n = get_count(&mut b, 2)?;
        let mut topics = Vec::with_capacity(n);
        for _ in 0..n {
            topics.push(get_str(&mut b)?);
        }
        let mut sub = Subscription {
            topics,
            ..Subscription::default()
        };
        if !b.has_remaining() {
            return Ok(sub);
        }
        sub.user_data = get_opt_bytes(&mut b)?;
        if version >= 1 && b.has_remaining() {
            sub.owned_partitions = get_partitions(&mut b)?;
        }
        if version >= 2 && b.has_remaining() {
            sub.generation = get_i32(&mut b)?;
        }
        if version >= 3 && b.has_remaining() {
            let n = get_i16(&mut b)?;
            if n >= 0 {
                if b.remaining() < n as usize {
                    return Err(bad("string"));
                }
                let raw = b.split_to(n as usize);
                sub.rack_id =
                    Some(String::from_utf8(raw.to_vec()).map_err(|_| bad("string (UTF-8)"))?);
            }
        }
        Ok(sub)
    }
}

impl Assignment {
    /// Encodes version 0.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(0);
        put_partitions(&mut b, &self.partitions);
        put_opt_bytes(&mut b, &self.user_data);
        b.freeze()
    }

    /// Decodes any version; empty bytes are an empty assignment.
    ///
    /// # Errors
    /// [`Error::Protocol`] for bytes that do not parse.
    pub fn decode(mut b: Bytes) -> Result<Assignment> {
        if b.is_empty() {
            return Ok(Assignment::default());
        }
        let _version = get_i16(&mut b)?;
        let partitions = get_partitions(&mut b)?;
        let user_data = if b.has_remaining() {
            get_opt_bytes(&mut b)?
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
            ..Subscription::default()
        };
        assert_eq!(Subscription::decode(s.encode()).unwrap(), s);
        let racked = Subscription {
            rack_id: Some("r1".into()),
            ..s.clone()
        };
        assert_eq!(Subscription::decode(racked.encode()).unwrap(), racked);
        let mut a = Assignment::default();
        a.partitions.insert("a".into(), vec![0, 2]);
        assert_eq!(Assignment::decode(a.encode()).unwrap(), a);
        assert!(Assignment::decode(Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])).is_err());
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
        assert!(Subscription::decode(bad).is_err());
    }
}
