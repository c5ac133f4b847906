//! Control records: the single record of a control batch. Its key says what
//! kind of control record it is (transaction commit or abort marker, or a
//! KRaft record); a commit or abort marker's value carries the transaction
//! coordinator's epoch.
//!
//! Key: `version: int16` (0), `type: int16`. End-transaction marker value:
//! `version: int16` (0), `coordinatorEpoch: int32`.

use super::error::RecordsError;
use super::reader::Reader;

/// What a control record is, from its key's type field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// A transaction was aborted (type 0).
    Abort,
    /// A transaction was committed (type 1).
    Commit,
    /// KRaft: the leader changed (type 2).
    LeaderChange,
    /// KRaft: snapshot header (type 3).
    SnapshotHeader,
    /// KRaft: snapshot footer (type 4).
    SnapshotFooter,
    /// KRaft: kraft.version (type 5).
    KRaftVersion,
    /// KRaft: the voter set (type 6).
    KRaftVoters,
    /// A type this library does not know.
    Unknown(i16),
}

impl ControlRecordType {
    /// The type's number on the wire.
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::LeaderChange => 2,
            ControlRecordType::SnapshotHeader => 3,
            ControlRecordType::SnapshotFooter => 4,
            ControlRecordType::KRaftVersion => 5,
            ControlRecordType::KRaftVoters => 6,
            ControlRecordType::Unknown(id) => id,
        }
    }

    /// The type with this number.
    pub fn from_id(id: i16) -> Self {
        match id {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            2 => ControlRecordType::LeaderChange,
            3 => ControlRecordType::SnapshotHeader,
            4 => ControlRecordType::SnapshotFooter,
            5 => ControlRecordType::KRaftVersion,
            6 => ControlRecordType::KRaftVoters,
            other => ControlRecordType::Unknown(other),
        }
    }
}

/// The key of a control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRecord {
    /// The key's version (0).
    pub version: i16,
    /// What the control record is.
    pub kind: ControlRecordType,
}

impl ControlRecord {
    /// The key of a commit (`true`) or abort (`false`) marker.
    pub fn end_transaction(commit: bool) -> Self {
        ControlRecord {
            version: 0,
            kind: if commit {
                ControlRecordType::Commit
            } else {
                ControlRecordType::Abort
            },
        }
    }

    /// Reads a control record key; `offset` is used in errors.
    ///
    /// # Errors
    /// [`RecordsError::Short`] when the key is shorter than 4 bytes and
    /// [`RecordsError::BadLength`] for a negative version.
    pub fn parse(key: &[u8], offset: usize) -> Result<Self, RecordsError> {
        let mut r = Reader::new(key, offset);
        let version = r.i16("control record version")?;
        if version < 0 {
            return Err(RecordsError::BadLength {
                what: "control record version",
                offset,
                value: version.into(),
            });
        }
        let kind = ControlRecordType::from_id(r.i16("control record type")?);
        Ok(ControlRecord { version, kind })
    }

    /// The key's bytes.
    pub fn to_bytes(self) -> [u8; 4] {
        let mut b = [0u8; 4];
        b[..2].copy_from_slice(&self.version.to_be_bytes());
        b[2..].copy_from_slice(&self.kind.id().to_be_bytes());
        b
    }
}

/// The value of a commit or abort marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndTransactionMarker {
    /// The value's version (0).
    pub version: i16,
    /// The epoch of the transaction coordinator that wrote the marker.
    pub coordinator_epoch: i32,
}

impl EndTransactionMarker {
    /// Reads a marker value; `offset` is used in errors. Bytes after the
    /// known fields (newer versions) are ignored.
    ///
    /// # Errors
    /// [`RecordsError::Short`] when the value is shorter than 6 bytes.
    pub fn parse(value: &[u8], offset: usize) -> Result<Self, RecordsError> {
        let mut r = Reader::new(value, offset);
        let version = r.i16("end transaction marker version")?;
        let coordinator_epoch = r.i32("coordinator epoch")?;
        Ok(EndTransactionMarker {
            version,
            coordinator_epoch,
        })
    }

    /// The value's bytes.
    pub fn to_bytes(self) -> [u8; 6] {
        let mut b = [0u8; 6];
        b[..2].copy_from_slice(&self.version.to_be_bytes());
        b[2..].copy_from_slice(&self.coordinator_epoch.to_be_bytes());
        b
    }
}
