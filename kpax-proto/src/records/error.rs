//! Every way a batch or message set can be bad, with the byte offset where
//! the problem was found.

use super::compression::Compression;
use crate::varint::VarintError;

/// Why records could not be parsed or built.
///
/// Offsets count from the start of the `Bytes` handed to the parser (for
/// example a Fetch response's records field). A problem inside the
/// decompressed records of a batch is wrapped in
/// [`RecordsError::InDecompressed`], whose inner offsets count from the start
/// of the decompressed data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsError {
    /// A fixed-size field is cut off by the end of the input.
    #[error("{what} at byte {offset} needs {needed} bytes, only {available} left")]
    Short {
        /// The field being read.
        what: &'static str,
        /// Where the field starts.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// A length or count field holds a value no valid input has (negative
    /// other than -1 for null, or below the format's minimum size).
    #[error("{what} at byte {offset} has invalid value {value}")]
    BadLength {
        /// The field being read.
        what: &'static str,
        /// Where the field starts.
        offset: usize,
        /// The value read.
        value: i64,
    },
    /// A length-prefixed field runs past the end of its enclosing data.
    #[error("{what} at byte {offset} is {length} bytes long but only {available} follow")]
    LengthPastEnd {
        /// The field being read.
        what: &'static str,
        /// Where the field's data starts.
        offset: usize,
        /// The declared length.
        length: usize,
        /// Bytes left in the enclosing data.
        available: usize,
    },
    /// The magic byte is not 0, 1 or 2.
    #[error("unknown magic {magic} at byte {offset}")]
    BadMagic {
        /// Where the magic byte is.
        offset: usize,
        /// The value found.
        magic: i8,
    },
    /// The stored checksum does not match the computed one (CRC32C for
    /// batches v2, CRC32 for legacy messages).
    #[error("CRC mismatch in the batch at byte {offset}: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// Where the batch or message starts.
        offset: usize,
        /// The checksum stored in the input.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
    /// A varint or varlong is cut off or too long.
    #[error("bad varint for {what} at byte {offset}: {source}")]
    BadVarint {
        /// The field being read.
        what: &'static str,
        /// Where the varint starts.
        offset: usize,
        /// What was wrong with it.
        source: VarintError,
    },
    /// The attributes name a compression codec Kafka does not define.
    #[error("unknown compression codec {codec} in the batch at byte {offset}")]
    UnknownCompression {
        /// Where the batch or message starts.
        offset: usize,
        /// The codec number from the attributes.
        codec: u8,
    },
    /// The codec is known but its cargo feature is not compiled in.
    #[error("{codec} support is not compiled in (batch at byte {offset}); enable the cargo feature `{}`", codec.feature())]
    CodecDisabled {
        /// Where the batch or message starts (0 when building).
        offset: usize,
        /// The codec.
        codec: Compression,
    },
    /// The compressed data is corrupt.
    #[error("{codec} decompression failed in the batch at byte {offset}: {message}")]
    Decompression {
        /// Where the batch or message starts.
        offset: usize,
        /// The codec.
        codec: Compression,
        /// The codec's own description of the problem.
        message: String,
    },
    /// The data decompresses to more than the configured limit (zip bomb or
    /// a limit set too low).
    #[error("{codec} data in the batch at byte {offset} decompresses to more than {limit} bytes")]
    TooLarge {
        /// Where the batch or message starts.
        offset: usize,
        /// The codec.
        codec: Compression,
        /// The limit in force (see `ReadOptions::max_decompressed_size`).
        limit: usize,
    },
    /// Compressing failed (only when building).
    #[error("{codec} compression failed: {message}")]
    Compression {
        /// The codec.
        codec: Compression,
        /// The codec's own description of the problem.
        message: String,
    },
    /// The batch holds fewer records than its header declares.
    #[error("the batch at byte {offset} declares {declared} records but holds {found}")]
    RecordCount {
        /// Where the records data ends.
        offset: usize,
        /// The count in the batch header.
        declared: i64,
        /// The records found.
        found: i64,
    },
    /// Bytes are left after the declared number of records.
    #[error("{count} bytes left after the last declared record at byte {offset}")]
    TrailingBytes {
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
    /// A record's fields do not fill exactly its declared length.
    #[error("record at byte {offset} declares {declared} bytes but its fields take {used}")]
    RecordLength {
        /// Where the record starts.
        offset: usize,
        /// The declared length.
        declared: usize,
        /// The bytes its fields take.
        used: usize,
    },
    /// A compressed legacy wrapper message holds another compressed message.
    #[error("compressed message inside the compressed wrapper message at byte {offset}")]
    NestedCompression {
        /// Where the inner message starts, in the decompressed data.
        offset: usize,
    },
    /// A value does not fit its wire field (only when building).
    #[error("{what} does not fit its wire field")]
    Overflow {
        /// The value that is too large.
        what: &'static str,
    },
    /// The builder was asked for something the format cannot express.
    #[error("invalid builder input: {0}")]
    InvalidInput(&'static str),
    /// A problem inside the decompressed records of a batch.
    #[error("in the decompressed records of the batch at byte {batch_offset}: {source}")]
    InDecompressed {
        /// Where the compressed batch starts in the input.
        batch_offset: usize,
        /// The problem, with offsets into the decompressed data.
        source: Box<RecordsError>,
    },
}

impl RecordsError {
    /// The byte offset where the problem was found (for
    /// [`RecordsError::InDecompressed`], the offset of the compressed batch),
    /// or `None` for errors raised while building.
    pub fn offset(&self) -> Option<usize> {
        use RecordsError::*;
        match self {
            Short { offset, .. }
            | BadLength { offset, .. }
            | LengthPastEnd { offset, .. }
            | BadMagic { offset, .. }
            | BadCrc { offset, .. }
            | BadVarint { offset, .. }
            | UnknownCompression { offset, .. }
            | CodecDisabled { offset, .. }
            | Decompression { offset, .. }
            | TooLarge { offset, .. }
            | RecordCount { offset, .. }
            | TrailingBytes { offset, .. }
            | RecordLength { offset, .. }
            | NestedCompression { offset } => Some(*offset),
            InDecompressed { batch_offset, .. } => Some(*batch_offset),
            Compression { .. } | Overflow { .. } | InvalidInput(_) => None,
        }
    }

    /// Wraps an error found in decompressed data with the compressed batch's
    /// offset.
    pub(crate) fn in_decompressed(self, batch_offset: usize) -> Self {
        RecordsError::InDecompressed {
            batch_offset,
            source: Box::new(self),
        }
    }
}
