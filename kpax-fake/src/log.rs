//! One partition's log: record batches kept in memory with the offsets the
//! fake assigned, and the idempotent producers' sequence state.

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use kpax_proto::generated::ErrorCode;
use kpax_proto::records::{Batch, BatchHeaderMut, Batches};

/// How many recent batches per producer are remembered for duplicate
/// detection (Kafka keeps five, the most a producer may have in flight).
const PRODUCER_WINDOW: usize = 5;

/// A batch as stored: its bytes with the base offset rewritten.
#[derive(Debug, Clone)]
pub(crate) struct StoredBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub data: Bytes,
}

#[derive(Debug, Clone)]
struct ProducerState {
    epoch: i16,
    last_seq: i32,
    /// (first sequence, last sequence, base offset) of recent batches.
    recent: VecDeque<(i32, i32, i64)>,
}

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    /// The offset of the first record of the request's records.
    pub base_offset: i64,
    /// Whether the batch was a duplicate of one already appended.
    pub duplicate: bool,
}

/// One partition's records and offsets.
#[derive(Debug, Default)]
pub(crate) struct PartitionLog {
    batches: Vec<StoredBatch>,
    log_start_offset: i64,
    next_offset: i64,
    producers: HashMap<i64, ProducerState>,
}

/// What a batch in an incoming records field looks like once parsed.
struct Incoming {
    start: usize,
    end: usize,
    magic: i8,
    count: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

impl PartitionLog {
    /// The high watermark: the offset the next record gets.
    pub fn high_watermark(&self) -> i64 {
        self.next_offset
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Total bytes held.
    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.batches.iter().map(|b| b.data.len()).sum()
    }

    /// Appends the batches of a Produce records field, assigning offsets.
    ///
    /// Idempotent batches are checked against the producer's sequence: a
    /// duplicate is accepted without being appended again (its original
    /// offset is returned), a gap is `OUT_OF_ORDER_SEQUENCE_NUMBER`, an old
    /// epoch is `INVALID_PRODUCER_EPOCH`. Bad or cut-off batches are
    /// `CORRUPT_MESSAGE`.
    pub fn append(&mut self, records: &Bytes, leader_epoch: i32) -> Result<Appended, ErrorCode> {
        let incoming = parse_incoming(records)?;
        if incoming.is_empty() {
            return Err(ErrorCode::CORRUPT_MESSAGE);
        }
        // Sequence checks cover the request's batches together: the usual
        // request holds one batch per partition.
        let first = &incoming[0];
        if first.producer_id >= 0 {
            if let Some(state) = self.producers.get(&first.producer_id) {
                if first.producer_epoch < state.epoch {
                    return Err(ErrorCode::INVALID_PRODUCER_EPOCH);
                }
                if first.producer_epoch == state.epoch {
                    let last_seq = incoming_last_seq(&incoming);
                    if let Some(&(_, _, base)) = state
                        .recent
                        .iter()
                        .find(|(f, l, _)| *f == first.base_sequence && *l == last_seq)
                    {
                        return Ok(Appended {
                            base_offset: base,
                            duplicate: true,
                        });
                    }
                    if first.base_sequence != next_seq(state.last_seq) {
                        return Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
                    }
                } else if first.base_sequence != 0 {
                    // A new epoch starts its sequences again at 0.
                    return Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
                }
            }
        }
        let base_offset = self.next_offset;
        for b in &incoming {
            let mut data = BytesMut::from(&records[b.start..b.end]);
            let base = self.next_offset;
            if b.magic >= 2 {
                BatchHeaderMut::new(&mut data)
                    .map_err(|_| ErrorCode::CORRUPT_MESSAGE)?
                    .set_base_offset(base)
                    .set_partition_leader_epoch(leader_epoch);
            } else {
                rewrite_legacy_offsets(&mut data, base, b.count);
            }
            let last = base + b.count - 1;
            self.batches.push(StoredBatch {
                base_offset: base,
                last_offset: last,
                max_timestamp: b.max_timestamp,
                data: data.freeze(),
            });
            self.next_offset = last + 1;
        }
        if first.producer_id >= 0 {
            let last_seq = incoming_last_seq(&incoming);
            let state = self
                .producers
                .entry(first.producer_id)
                .or_insert(ProducerState {
                    epoch: first.producer_epoch,
                    last_seq: -1,
                    recent: VecDeque::new(),
                });
            if state.epoch != first.producer_epoch {
                state.epoch = first.producer_epoch;
                state.recent.clear();
            }
            state.last_seq = last_seq;
            state
                .recent
                .push_back((first.base_sequence, last_seq, base_offset));
            while state.recent.len() > PRODUCER_WINDOW {
                state.recent.pop_front();
            }
        }
        Ok(Appended {
            base_offset,
            duplicate: false,
        })
    }

    /// Appends a control batch a coordinator wrote (a transaction marker,
    /// one record, no sequence number); returns its offset.
    pub fn append_control(&mut self, batch: &Bytes, leader_epoch: i32) -> i64 {
        let at = self.next_offset;
        let mut data = BytesMut::from(&batch[..]);
        if let Ok(mut header) = BatchHeaderMut::new(&mut data) {
            header
                .set_base_offset(at)
                .set_partition_leader_epoch(leader_epoch);
        }
        self.batches.push(StoredBatch {
            base_offset: at,
            last_offset: at,
            max_timestamp: -1,
            data: data.freeze(),
        });
        self.next_offset = at + 1;
        at
    }

    /// Whole batches from `offset` on, at most `max_bytes` of them except
    /// that the first batch is returned whole even when larger, if
    /// `at_least_one` (KIP-74).
    pub fn read(&self, offset: i64, max_bytes: usize, at_least_one: bool) -> Bytes {
        self.read_span(offset, max_bytes, at_least_one).0
    }

    /// [`PartitionLog::read`], with the last offset the bytes cover (-1
    /// for none).
    pub fn read_span(&self, offset: i64, max_bytes: usize, at_least_one: bool) -> (Bytes, i64) {
        let start = self.batches.partition_point(|b| b.last_offset < offset);
        let mut picked: Vec<&Bytes> = Vec::new();
        let mut total = 0usize;
        let mut last = -1i64;
        for b in &self.batches[start..] {
            let len = b.data.len();
            if total + len > max_bytes && !(picked.is_empty() && at_least_one) {
                break;
            }
            total += len;
            picked.push(&b.data);
            last = b.last_offset;
            if total >= max_bytes {
                break;
            }
        }
        let data = match picked.len() {
            0 => Bytes::new(),
            1 => picked[0].clone(),
            _ => {
                let mut out = BytesMut::with_capacity(total);
                for p in picked {
                    out.extend_from_slice(p);
                }
                out.freeze()
            }
        };
        (data, last)
    }

    /// DeleteRecords: moves the log start offset up to `offset` (`-1`: the
    /// high watermark) and drops the batches wholly before it; returns the
    /// new log start offset (the low watermark).
    ///
    /// # Errors
    /// `OFFSET_OUT_OF_RANGE` for an offset past the high watermark or
    /// negative (other than `-1`).
    pub fn delete_before(&mut self, offset: i64) -> Result<i64, ErrorCode> {
        let offset = if offset == -1 {
            self.next_offset
        } else {
            offset
        };
        if !(0..=self.next_offset).contains(&offset) {
            return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            let keep_from = self.batches.partition_point(|b| b.last_offset < offset);
            self.batches.drain(..keep_from);
        }
        Ok(self.log_start_offset)
    }

    /// The offset and timestamp of the first record whose timestamp is at
    /// least `timestamp`, or `None` when there is none.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Option<(i64, i64)> {
        let batch = self.batches.iter().find(|b| b.max_timestamp >= timestamp)?;
        let found = record_times(&batch.data)
            .into_iter()
            .find(|&(o, t)| t >= timestamp && o >= self.log_start_offset);
        Some(found.unwrap_or((batch.base_offset, batch.max_timestamp)))
    }

    /// The offset and timestamp of the record with the largest timestamp.
    pub fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        let batch = self.batches.iter().rev().max_by_key(|b| b.max_timestamp)?;
        let found = record_times(&batch.data)
            .into_iter()
            .filter(|&(_, t)| t == batch.max_timestamp)
            .last();
        Some(found.unwrap_or((batch.last_offset, batch.max_timestamp)))
    }
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

fn incoming_last_seq(incoming: &[Incoming]) -> i32 {
    let total: i64 = incoming.iter().map(|b| b.count).sum();
    let first = incoming[0].base_sequence as i64;
    ((first + total - 1) % (i32::MAX as i64 + 1)) as i32
}

/// (offset, timestamp) of each record of a stored records field.
fn record_times(data: &Bytes) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for batch in Batches::new(data.clone()).flatten() {
        if let Ok(records) = batch.records() {
            out.extend(records.flatten().map(|r| (r.offset, r.timestamp)));
        }
    }
    out
}

fn parse_incoming(records: &Bytes) -> Result<Vec<Incoming>, ErrorCode> {
    let mut batches = Batches::new(records.clone());
    let mut out = Vec::new();
    let mut start = 0usize;
    while let Some(batch) = batches.next() {
        let batch = batch.map_err(|_| ErrorCode::CORRUPT_MESSAGE)?;
        let end = batches.position();
        let incoming = match &batch {
            Batch::V2(b) => {
                let h = b.header();
                if h.last_offset_delta < 0 || h.record_count <= 0 {
                    return Err(ErrorCode::CORRUPT_MESSAGE);
                }
                Incoming {
                    start,
                    end,
                    magic: 2,
                    count: i64::from(h.last_offset_delta) + 1,
                    max_timestamp: h.max_timestamp,
                    producer_id: h.producer_id,
                    producer_epoch: h.producer_epoch,
                    base_sequence: h.base_sequence,
                }
            }
            Batch::Legacy(m) => {
                let count = m.records().map_err(|_| ErrorCode::CORRUPT_MESSAGE)?.count() as i64;
                if count == 0 {
                    return Err(ErrorCode::CORRUPT_MESSAGE);
                }
                Incoming {
                    start,
                    end,
                    magic: m.magic,
                    count,
                    max_timestamp: m.timestamp.unwrap_or(-1),
                    producer_id: -1,
                    producer_epoch: -1,
                    base_sequence: -1,
                }
            }
        };
        out.push(incoming);
        start = end;
    }
    if batches.truncated() {
        return Err(ErrorCode::CORRUPT_MESSAGE);
    }
    Ok(out)
}

/// A legacy message (magic 0/1) carries its offset in its first 8 bytes; a
/// compressed wrapper carries its last inner record's offset.
fn rewrite_legacy_offsets(data: &mut BytesMut, base: i64, count: i64) {
    let offset = base + count - 1;
    data[0..8].copy_from_slice(&offset.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpax_proto::records::RecordBatchBuilder;

    fn batch(n: u8, ts: i64) -> Bytes {
        let mut b = RecordBatchBuilder::new(0);
        for i in 0..n {
            b.append(ts + i64::from(i), Some(&[i][..]), Some(&b"v"[..]), &[])
                .unwrap();
        }
        b.finish().unwrap()
    }

    fn idem(n: u8, pid: i64, epoch: i16, seq: i32) -> Bytes {
        let mut b = RecordBatchBuilder::new(0).producer(pid, epoch, seq);
        for i in 0..n {
            b.append(1000, None, Some(&[i][..]), &[]).unwrap();
        }
        b.finish().unwrap()
    }

    fn offsets(data: Bytes) -> Vec<i64> {
        record_times(&data).into_iter().map(|(o, _)| o).collect()
    }

    #[test]
    fn append_assigns_offsets_and_read_returns_whole_batches() {
        let mut log = PartitionLog::default();
        assert_eq!(log.append(&batch(3, 100), 0).unwrap().base_offset, 0);
        assert_eq!(log.append(&batch(2, 200), 0).unwrap().base_offset, 3);
        assert_eq!(log.high_watermark(), 5);
        assert_eq!(offsets(log.read(0, 1 << 20, true)), [0, 1, 2, 3, 4]);
        // An offset inside the first batch still returns that whole batch.
        assert_eq!(offsets(log.read(1, 1 << 20, true)), [0, 1, 2, 3, 4]);
        assert_eq!(offsets(log.read(3, 1 << 20, true)), [3, 4]);
        assert!(log.read(5, 1 << 20, true).is_empty());
        // A limit smaller than the first batch still returns it, when asked.
        assert_eq!(offsets(log.read(0, 1, true)), [0, 1, 2]);
        assert!(log.read(0, 1, false).is_empty());
        assert!(log.size() > 0);
    }

    #[test]
    fn timestamps_find_offsets() {
        let mut log = PartitionLog::default();
        log.append(&batch(3, 100), 0).unwrap();
        log.append(&batch(3, 200), 0).unwrap();
        assert_eq!(log.offset_for_timestamp(101), Some((1, 101)));
        assert_eq!(log.offset_for_timestamp(150), Some((3, 200)));
        assert_eq!(log.offset_for_timestamp(500), None);
        assert_eq!(log.max_timestamp_offset(), Some((5, 202)));
    }

    #[test]
    fn idempotent_sequences() {
        let mut log = PartitionLog::default();
        log.append(&batch(1, 1), 0).unwrap();
        let a = log.append(&idem(2, 7, 0, 0), 0).unwrap();
        assert_eq!(
            a,
            Appended {
                base_offset: 1,
                duplicate: false
            }
        );
        let b = log.append(&idem(3, 7, 0, 2), 0).unwrap();
        assert_eq!(b.base_offset, 3);
        // A retry of the first batch is a duplicate at its original offset.
        let dup = log.append(&idem(2, 7, 0, 0), 0).unwrap();
        assert_eq!(
            dup,
            Appended {
                base_offset: 1,
                duplicate: true
            }
        );
        assert_eq!(log.high_watermark(), 6);
        // A gap is out of order.
        assert_eq!(
            log.append(&idem(1, 7, 0, 9), 0),
            Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        // A new epoch restarts at 0; the old one is fenced.
        assert_eq!(log.append(&idem(1, 7, 1, 0), 0).unwrap().base_offset, 6);
        assert_eq!(
            log.append(&idem(1, 7, 0, 5), 0),
            Err(ErrorCode::INVALID_PRODUCER_EPOCH)
        );
        assert_eq!(log.high_watermark(), 7);
    }

    #[test]
    fn garbage_is_corrupt() {
        let mut log = PartitionLog::default();
        let bad = Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 80, 1, 2, 3]);
        assert_eq!(log.append(&bad, 0), Err(ErrorCode::CORRUPT_MESSAGE));
        let mut b = batch(2, 1).to_vec();
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert_eq!(
            log.append(&Bytes::from(b), 0),
            Err(ErrorCode::CORRUPT_MESSAGE)
        );
        assert_eq!(
            log.append(&Bytes::new(), 0),
            Err(ErrorCode::CORRUPT_MESSAGE)
        );
        assert_eq!(log.high_watermark(), 0);
    }
}
