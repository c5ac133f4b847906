//! The traits every generated message implements, so that the client can be
//! generic over requests.

use crate::generated::ApiKey;
use crate::wire::{DecodeError, EncodeError, FrameBuf, Sink};
use bytes::{Bytes, BytesMut};

/// A Kafka message (request, response or header) over all its versions.
pub trait Message: Sized + Default + Clone + std::fmt::Debug + PartialEq {
    /// The Rust type name, e.g. `MetadataRequest`.
    const NAME: &'static str;
    /// The lowest version this code knows.
    const MIN_VERSION: i16;
    /// The highest version this code knows.
    const MAX_VERSION: i16;

    /// Appends the message, as `version` lays it out, to `buf`.
    ///
    /// # Errors
    /// An [`EncodeError`] naming the field when a value cannot be carried by
    /// this version (a non-default value in a field the version lacks, null
    /// where it is not nullable, a length past its prefix), or the version
    /// is outside `MIN_VERSION..=MAX_VERSION`.
    fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError>;

    /// As [`Message::encode`], into a [`FrameBuf`]: messages that carry
    /// records (Produce requests, Fetch responses) share each large
    /// records value with `frame` instead of copying it, so the frame goes
    /// out in one vectored write with no copy of the record batches.
    ///
    /// # Errors
    /// As [`Message::encode`].
    fn encode_to_frame(&self, frame: &mut FrameBuf, version: i16) -> Result<(), EncodeError> {
        self.encode(frame.bytes_mut(), version)
    }

    /// Reads the message as `version` lays it out; strings and bytes share
    /// `buf`'s memory.
    ///
    /// # Errors
    /// A [`DecodeError`] naming the message, field and version.
    fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError>;
}

/// A request: its API key, its response type and its header versions.
pub trait Request: Message {
    /// The API key.
    const API_KEY: ApiKey;
    /// The first version that uses the flexible (compact, tagged) encoding.
    const FIRST_FLEXIBLE_VERSION: Option<i16>;
    /// The response this request gets.
    type Response: Message;

    /// The request header version used with request `version`.
    fn request_header_version(version: i16) -> i16;

    /// The response header version used with request `version` (the
    /// ApiVersions response always uses v0).
    fn response_header_version(version: i16) -> i16;
}
