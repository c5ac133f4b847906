//! kpax-proto: the Kafka wire protocol.
//!
//! - [`varint`]: Kafka's unsigned and zig-zag variable-length integers.

pub mod varint;
