//! The attributes bit field of a record batch (and, in its low byte, of a
//! legacy message).

use super::compression::Compression;

/// What a batch's timestamps mean (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer when the record was created.
    #[default]
    CreateTime,
    /// Set by the broker when it appended the batch to the log; every record
    /// then carries the batch's max timestamp.
    LogAppendTime,
}

/// A batch's attributes: compression (bits 0-2), timestamp type (bit 3),
/// transactional (bit 4), control (bit 5), delete horizon (bit 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Attributes(pub i16);

impl Attributes {
    const TIMESTAMP_TYPE: i16 = 1 << 3;
    const TRANSACTIONAL: i16 = 1 << 4;
    const CONTROL: i16 = 1 << 5;
    const DELETE_HORIZON: i16 = 1 << 6;

    /// The codec number in bits 0-2 (see [`Compression::from_id`]).
    pub fn compression_id(self) -> u8 {
        (self.0 & 0x07) as u8
    }

    /// The codec, or `None` for a number Kafka does not define (5-7).
    pub fn compression(self) -> Option<Compression> {
        Compression::from_id(self.compression_id())
    }

    /// The timestamp type.
    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & Self::TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL != 0
    }

    /// Whether the batch holds control records (transaction markers).
    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }

    /// Whether the base timestamp is a delete horizon set by compaction (KIP-534).
    pub fn has_delete_horizon(self) -> bool {
        self.0 & Self::DELETE_HORIZON != 0
    }

    /// These attributes with the codec replaced.
    pub fn with_compression(self, codec: Compression) -> Self {
        Attributes((self.0 & !0x07) | i16::from(codec.id()))
    }

    /// These attributes with the timestamp type replaced.
    pub fn with_timestamp_type(self, t: TimestampType) -> Self {
        self.with_bit(Self::TIMESTAMP_TYPE, t == TimestampType::LogAppendTime)
    }

    /// These attributes with the transactional bit set or cleared.
    pub fn with_transactional(self, on: bool) -> Self {
        self.with_bit(Self::TRANSACTIONAL, on)
    }

    /// These attributes with the control bit set or cleared.
    pub fn with_control(self, on: bool) -> Self {
        self.with_bit(Self::CONTROL, on)
    }

    /// These attributes with the delete-horizon bit set or cleared.
    pub fn with_delete_horizon(self, on: bool) -> Self {
        self.with_bit(Self::DELETE_HORIZON, on)
    }

    fn with_bit(self, bit: i16, on: bool) -> Self {
        Attributes(if on { self.0 | bit } else { self.0 & !bit })
    }
}
