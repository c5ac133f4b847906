//! kpax: a pure-Rust Kafka client built on the generated protocol layer of
//! [`kpax_proto`].
//!
//! The client layers (broker, cluster, producer, consumer, admin) are being
//! built issue by issue; today this crate re-exports the wire layer so that
//! users depend on one crate.

pub use kpax_proto as proto;
