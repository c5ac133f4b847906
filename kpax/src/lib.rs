//! kpax: a pure-Rust Kafka client built on the generated protocol layer of
//! [`kpax_proto`].
//!
//! - [`admin::Admin`]: topics, partitions, configs, groups, offsets and
//!   the cluster, with a result per topic, partition or group;
//! - [`broker::Broker`]: one broker, a lazy, asynchronous, recoverable
//!   round tripper with version negotiation;
//! - [`cluster::Cluster`]: the metadata manager: leaders, partitions,
//!   coordinators, refreshed lazily and invalidated by errors;
//! - [`producer::Producer`]: batching, partitioning, retries, idempotence;
//! - [`consumer::Consumer`]: prefetching, consumer groups, offsets;
//! - [`share::ShareConsumer`]: share groups (KIP-932), records acknowledged
//!   one by one.
#![warn(missing_docs)]

pub mod admin;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod consumer;
pub mod error;
pub mod fanout;
pub mod metrics;
pub mod producer;
pub mod properties;
pub mod share;
pub mod topic_partition;
pub mod transaction;
pub mod versions;

pub use broker::{Broker, SendOptions};
pub use cluster::Cluster;
pub use config::{
    ClientConfig, OAuthBearerToken, OAuthBearerTokenProvider, Pem, SaslConfig, SaslMechanism,
    SecurityProtocol, TlsConfig, TokenFuture,
};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord};
pub use error::{Error, Result};
pub use kpax_proto as proto;
pub use producer::{Producer, ProducerConfig, ProducerRecord, RecordMetadata};
pub use topic_partition::TopicPartition;

/// The README's code blocks, compiled (and run, unless marked `no_run`) as
/// doctests of this crate, so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
