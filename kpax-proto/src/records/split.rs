//! Splitting a producer's record batch in two, for a broker that refused
//! it as too large (MESSAGE_TOO_LARGE: the batch is over the topic's
//! `max.message.bytes`, though each record may fit).

use bytes::Bytes;

use super::batch::RecordBatch;
use super::builder::RecordBatchBuilder;
use super::error::RecordsError;

impl RecordBatch {
    /// Rebuilds this batch as two: its records `..at` and its records
    /// `at..`, in order. Each keeps the batch's compression, timestamp type
    /// and transactional flag, starts at base offset 0, and, for an
    /// idempotent or transactional producer's batch, keeps the producer id
    /// and epoch with base sequences `base_sequence` and `base_sequence +
    /// at`, so the halves take the sequence numbers the whole had.
    ///
    /// # Errors
    /// [`RecordsError::InvalidInput`] for a control batch or when `at` does
    /// not leave a record on both sides; the errors of reading the records
    /// and of building the halves.
    pub fn split_at(&self, at: usize) -> Result<(Bytes, Bytes), RecordsError> {
        if self.is_control() {
            return Err(RecordsError::InvalidInput(
                "a control batch cannot be split",
            ));
        }
        let h = self.header();
        let count = usize::try_from(h.record_count).unwrap_or(0);
        if at == 0 || at >= count {
            return Err(RecordsError::InvalidInput(
                "a split must leave a record on both sides",
            ));
        }
        let half = |first: usize| {
            let mut b = RecordBatchBuilder::new(0)
                .compression(self.compression())
                .timestamp_type(self.timestamp_type())
                .transactional(self.is_transactional());
            if h.producer_id >= 0 {
                let seq = if h.base_sequence < 0 {
                    h.base_sequence
                } else {
                    (h.base_sequence as u32).wrapping_add(first as u32) as i32 & i32::MAX
                };
                b = b.producer(h.producer_id, h.producer_epoch, seq);
            }
            b
        };
        let mut head = half(0);
        let mut tail = half(at);
        let mut records = self.records()?;
        let mut i = 0;
        while let Some(r) = records.next_ref() {
            let r = r?;
            let headers: Vec<(&[u8], Option<&[u8]>)> =
                r.headers().map(|h| (h.key, h.value)).collect();
            let into = if i < at { &mut head } else { &mut tail };
            into.append(r.timestamp, r.key, r.value, &headers)?;
            i += 1;
        }
        if i <= at {
            return Err(RecordsError::InvalidInput(
                "the batch holds fewer records than it declares",
            ));
        }
        Ok((head.finish()?, tail.finish()?))
    }
}

#[cfg(test)]
mod tests {
    use crate::records::{Batch, Batches, Compression, RecordBatchBuilder};
    use bytes::Bytes;

    fn only_batch(data: Bytes) -> crate::records::RecordBatch {
        let mut it = Batches::new(data);
        let Some(Ok(Batch::V2(b))) = it.next() else {
            panic!("one v2 batch")
        };
        assert!(it.next().is_none());
        b
    }

    /// A record's timestamp, value and headers.
    type Contents = (i64, Option<Vec<u8>>, Vec<(Vec<u8>, Option<Vec<u8>>)>);

    fn contents(b: &crate::records::RecordBatch) -> Vec<Contents> {
        let mut out = Vec::new();
        let mut rs = b.records().unwrap();
        while let Some(r) = rs.next_ref() {
            let r = r.unwrap();
            out.push((
                r.timestamp,
                r.value.map(<[u8]>::to_vec),
                r.headers()
                    .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                    .collect(),
            ));
        }
        out
    }

    #[test]
    fn halves_keep_records_codec_and_sequences() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut b = RecordBatchBuilder::new(0)
                .compression(codec)
                .transactional(true)
                .producer(77, 3, 1000);
            for i in 0..10i64 {
                let v = format!("v{i}");
                let h: &[(&[u8], Option<&[u8]>)] = &[(b"h", Some(b"x")), (b"n", None)];
                b.append(100 + i, Some(b"k"), (i != 4).then_some(v.as_bytes()), h)
                    .unwrap();
            }
            let whole = only_batch(b.finish().unwrap());
            let (head, tail) = whole.split_at(3).unwrap();
            let (head, tail) = (only_batch(head), only_batch(tail));
            assert_eq!(head.compression(), codec);
            assert!(head.is_transactional() && tail.is_transactional());
            assert_eq!(head.header().record_count, 3);
            assert_eq!(tail.header().record_count, 7);
            assert_eq!(
                (
                    head.header().producer_id,
                    head.header().producer_epoch,
                    head.header().base_sequence
                ),
                (77, 3, 1000)
            );
            assert_eq!(tail.header().base_sequence, 1003);
            let mut both = contents(&head);
            both.extend(contents(&tail));
            assert_eq!(both, contents(&whole), "{codec:?}");
        }
    }

    #[test]
    fn a_split_needs_a_record_on_both_sides() {
        let mut b = RecordBatchBuilder::new(0);
        b.append(1, None, Some(b"a"), &[]).unwrap();
        b.append(2, None, Some(b"b"), &[]).unwrap();
        let whole = only_batch(b.finish().unwrap());
        assert!(whole.split_at(0).is_err());
        assert!(whole.split_at(2).is_err());
        assert!(whole.split_at(1).is_ok());
    }

    #[test]
    fn sequences_wrap_like_kafkas() {
        let mut b = RecordBatchBuilder::new(0).producer(1, 0, i32::MAX - 1);
        for i in 0..4 {
            b.append(i, None, Some(b"x"), &[]).unwrap();
        }
        let (_, tail) = only_batch(b.finish().unwrap()).split_at(2).unwrap();
        assert_eq!(only_batch(tail).header().base_sequence, 0);
    }
}
