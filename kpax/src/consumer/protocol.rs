//! The consumer protocol's embedded formats (a member's subscription in
//! JoinGroup, its assignment in SyncGroup) are wire knowledge and live in
//! [`kpax_proto::consumer_protocol`]; this module re-exports them and
//! turns their errors into kpax's.

use crate::error::Error;
pub use kpax_proto::consumer_protocol::{Assignment, Subscription};
use kpax_proto::wire::{DecodeError, EncodeError};

/// A subscription or assignment a member or the coordinator sent that
/// does not parse.
pub(crate) fn decode_error(e: DecodeError) -> Error {
    Error::Protocol {
        broker: "group".into(),
        reason: format!("bad consumer protocol data: {e}"),
    }
}

/// A subscription or assignment that cannot be written (a topic name too
/// long for its length prefix).
pub(crate) fn encode_error(e: EncodeError) -> Error {
    Error::Config(format!("cannot write the consumer protocol data: {e}"))
}
