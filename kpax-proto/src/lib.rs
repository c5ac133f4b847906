//! kpax-proto: the Kafka wire protocol.
//!
//! - [`consumer_protocol`]: the consumer protocol's subscriptions and assignments (inside JoinGroup and SyncGroup).
//! - [`generated`]: every request and response of every API and version, generated
//!   from `spec/` by `wipro-gen`; [`ApiKey`](generated::ApiKey), [`ErrorCode`](generated::ErrorCode), headers.
//! - [`message`]: the [`Message`](message::Message) and [`Request`](message::Request) traits.
//! - [`varint`]: Kafka's unsigned and zig-zag variable-length integers.
//! - [`records`]: record batches v2, legacy message sets, compression; zero-copy iteration;
//!   conversion to legacy message sets; the `read_committed` filter.
//! - [`versions`]: the API versions kpax's client sends and kpax-fake serves, and old Kafka
//!   releases' version tables.
//! - [`wire`]: primitive types (integers, strings, bytes, arrays, UUIDs, tagged fields).
#![warn(missing_docs)]

pub mod buffer_pool;
pub mod consumer_protocol;
#[rustfmt::skip]
pub mod generated;
mod int32_array;
pub mod message;
#[cfg(any(test, feature = "random"))]
pub mod random;
pub mod records;
mod sink;
pub mod varint;
pub mod versions;
pub mod wire;

#[cfg(all(test, not(kpax_other_page)))]
mod current_protocol_tests;
#[cfg(test)]
mod roundtrip_tests;
