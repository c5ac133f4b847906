//! Editing a built record batch v2's header in place: the fields a
//! producer stamps once it knows them (producer id, epoch, base sequence:
//! inside the CRC, so the CRC is recomputed) and those a broker assigns on
//! append (base offset, partition leader epoch: outside the CRC).
//!
//! The layout is the one in [`super::batch`]; this is the only place
//! outside the reader and the builder that knows it.

use super::batch::{CRC_OFFSET, CRC_START, RECORD_BATCH_OVERHEAD};
use super::error::RecordsError;

const BASE_OFFSET_AT: usize = 0;
const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;

/// One record batch v2, header editable.
#[derive(Debug)]
pub struct BatchHeaderMut<'a> {
    batch: &'a mut [u8],
}

impl<'a> BatchHeaderMut<'a> {
    /// The batch that `batch` holds (its header, then its records).
    ///
    /// # Errors
    /// [`RecordsError::Short`] for fewer bytes than a v2 header;
    /// [`RecordsError::BadMagic`] for a batch that is not v2.
    pub fn new(batch: &'a mut [u8]) -> Result<Self, RecordsError> {
        if batch.len() < RECORD_BATCH_OVERHEAD {
            return Err(RecordsError::Short {
                what: "record batch header",
                offset: 0,
                needed: RECORD_BATCH_OVERHEAD,
                available: batch.len(),
            });
        }
        let magic = batch[MAGIC_AT] as i8;
        if magic != 2 {
            return Err(RecordsError::BadMagic {
                offset: MAGIC_AT,
                magic,
            });
        }
        Ok(BatchHeaderMut { batch })
    }

    /// Sets the base offset (outside the CRC).
    pub fn set_base_offset(&mut self, offset: i64) -> &mut Self {
        self.put(BASE_OFFSET_AT, &offset.to_be_bytes());
        self
    }

    /// Sets the partition leader epoch (outside the CRC).
    pub fn set_partition_leader_epoch(&mut self, epoch: i32) -> &mut Self {
        self.put(PARTITION_LEADER_EPOCH_AT, &epoch.to_be_bytes());
        self
    }

    /// Sets producer id, producer epoch and base sequence, and recomputes
    /// the CRC over the attributes and everything after them.
    pub fn set_producer(&mut self, id: i64, epoch: i16, base_sequence: i32) -> &mut Self {
        self.put(PRODUCER_ID_AT, &id.to_be_bytes());
        self.put(PRODUCER_EPOCH_AT, &epoch.to_be_bytes());
        self.put(BASE_SEQUENCE_AT, &base_sequence.to_be_bytes());
        let crc = crc32c::crc32c(&self.batch[CRC_START..]);
        self.put(CRC_OFFSET, &crc.to_be_bytes());
        self
    }

    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.batch[at..at + bytes.len()].copy_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Batch, Batches, RecordBatchBuilder};
    use bytes::Bytes;

    fn built() -> Vec<u8> {
        let mut b = RecordBatchBuilder::new(0);
        b.append(1_000, Some(b"k"), Some(b"v"), &[]).unwrap();
        b.append(1_001, None, Some(b"w"), &[]).unwrap();
        b.finish().unwrap().to_vec()
    }

    #[test]
    fn stamped_fields_read_back_and_the_crc_still_holds() {
        let mut data = built();
        BatchHeaderMut::new(&mut data)
            .unwrap()
            .set_producer(42, 3, 17)
            .set_base_offset(1_000)
            .set_partition_leader_epoch(9);
        let crc = crc32c::crc32c(&data[CRC_START..]);
        let batch = Batches::new(Bytes::from(data)).next().unwrap().unwrap();
        let Batch::V2(v2) = batch else {
            panic!("not v2")
        };
        let h = v2.header();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, 17)
        );
        assert_eq!((h.base_offset, h.partition_leader_epoch), (1_000, 9));
        assert_eq!(h.crc, crc, "the CRC was recomputed");
        assert_eq!(v2.records().unwrap().count(), 2);
    }

    #[test]
    fn refuses_what_is_not_a_v2_batch() {
        assert!(matches!(
            BatchHeaderMut::new(&mut [0u8; 20]),
            Err(RecordsError::Short { .. })
        ));
        let mut data = built();
        data[MAGIC_AT] = 1;
        assert!(matches!(
            BatchHeaderMut::new(&mut data),
            Err(RecordsError::BadMagic { magic: 1, .. })
        ));
    }
}
