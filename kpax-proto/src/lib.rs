//! kpax-proto: the Kafka wire protocol.
//!
//! - [`varint`]: Kafka's unsigned and zig-zag variable-length integers.
//! - [`records`]: record batches v2, legacy message sets, compression; zero-copy iteration.
//! - [`wire`]: primitive types (integers, strings, bytes, arrays, UUIDs, tagged fields).

pub mod records;
pub mod varint;
pub mod wire;
