//! The transaction coordinators' model (KIP-98): each transactional id's
//! open transaction (its partitions, groups and pending offsets), each
//! partition's ongoing transactions (for the last stable offset) and its
//! aborted-transaction index. The coordinator logic that changes it is in
//! `handlers/txn.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kpax_proto::generated::fetch::FetchResponseAbortedTransaction;

pub(crate) type TopicPartition = (String, i32);

/// Every transaction the fake's coordinators know.
#[derive(Debug, Default)]
pub(crate) struct Transactions {
    /// Open transactions by transactional id.
    pub(crate) open: HashMap<String, OpenTxn>,
    /// Per partition: producer id -> offset of the first record of its
    /// open transaction there.
    pub(crate) ongoing: HashMap<TopicPartition, BTreeMap<i64, i64>>,
    /// Per partition: aborted transactions, in order.
    pub(crate) aborted: HashMap<TopicPartition, Vec<AbortedTxn>>,
    /// The transaction timeout each transactional id asked for in
    /// InitProducerId.
    pub(crate) timeouts: HashMap<String, Duration>,
}

#[derive(Debug)]
pub(crate) struct OpenTxn {
    pub(crate) producer_id: i64,
    /// When it began (its first partition or group was added).
    pub(crate) started: Instant,
    pub(crate) partitions: BTreeSet<TopicPartition>,
    pub(crate) groups: BTreeSet<String>,
    /// (group, topic, partition) -> (offset, metadata), applied on commit.
    pub(crate) offsets: BTreeMap<(String, String, i32), (i64, Option<String>)>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct AbortedTxn {
    pub(crate) producer_id: i64,
    pub(crate) first_offset: i64,
    /// The abort marker's offset.
    pub(crate) last_offset: i64,
}

impl Transactions {
    pub(crate) fn last_stable_offset(
        &self,
        topic: &str,
        partition: i32,
        high_watermark: i64,
    ) -> i64 {
        self.ongoing
            .get(&(topic.to_string(), partition))
            .and_then(|m| m.values().min().copied())
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    pub(crate) fn aborted_between(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Vec<FetchResponseAbortedTransaction> {
        self.aborted
            .get(&(topic.to_string(), partition))
            .map(|v| {
                v.iter()
                    .filter(|a| a.last_offset >= from && a.first_offset < to)
                    .map(|a| {
                        let mut t = FetchResponseAbortedTransaction::default();
                        t.producer_id = a.producer_id;
                        t.first_offset = a.first_offset;
                        t
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
