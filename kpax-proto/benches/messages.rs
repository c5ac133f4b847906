//! Generated messages: encode and decode of three large messages, side by side
//! with the `kafka-protocol` crate on the same content, at the newest version
//! both support:
//!
//! - a Metadata response with 1,000 partitions (10 topics × 100, 3 replicas, 5 brokers);
//! - a Produce request of 16 partitions × 16 KiB records;
//! - a Fetch response carrying 1 MiB of records (16 partitions × 64 KiB).
//!
//! Both values are built from the same data and must encode to identical bytes
//! (checked before measuring); decode benches read those bytes. Records stay
//! opaque bytes on both sides, so the Produce/Fetch benches measure the message
//! framing around zero-copy record slices.
//!
//! Run: `cargo bench -p kpax-proto --bench messages -- --warm-up-time 1 --measurement-time 3`
//! The ratios kpax / kafka-protocol (mean times; < 1 means kpax is faster) are
//! printed at the end, from criterion's saved estimates.

use std::hint::black_box;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, Criterion, Throughput};
use kafka_protocol::messages as kp;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes as KpStr};
use kpax_proto::generated::{fetch, metadata, produce, ApiKey, ErrorCode};
use kpax_proto::message::Message;
use kpax_proto::wire::{FrameBuf, StrBytes};

/// The newest version of `key` both crates support, as kpax's client
/// sends it (Produce v13 and Fetch v13+ name topics by id; the client
/// sends by name, at its cap).
fn newest(key: ApiKey) -> i16 {
    let kp_max = kp::ApiKey::try_from(key as i16)
        .expect("kafka-protocol knows the key")
        .valid_versions()
        .max;
    kpax_proto::versions::client_range(key).1.min(kp_max)
}

/// Deterministic filler bytes for record payloads.
fn payload(len: usize, salt: u64) -> Bytes {
    let mut x = salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

// ---- Metadata response, 1,000 partitions ----

const BROKERS: i32 = 5;
const MD_TOPICS: usize = 10;
const MD_PARTITIONS: usize = 100;

fn replicas(p: usize) -> Vec<i32> {
    (0..3).map(|r| ((p + r) as i32) % BROKERS).collect()
}

fn kpax_metadata() -> metadata::MetadataResponse {
    use metadata::*;
    MetadataResponse::default()
        .with_throttle_time_ms(0)
        .with_cluster_id(Some(StrBytes::from("kpax-bench-cluster")))
        .with_controller_id(1)
        .with_brokers(
            (0..BROKERS)
                .map(|id| {
                    MetadataResponseBroker::default()
                        .with_node_id(id)
                        .with_host(StrBytes::from(format!("broker-{id}.kafka.internal")))
                        .with_port(9092)
                        .with_rack(Some(StrBytes::from(format!("rack-{}", id % 3))))
                })
                .collect(),
        )
        .with_topics(
            (0..MD_TOPICS)
                .map(|t| {
                    MetadataResponseTopic::default()
                        .with_error_code(ErrorCode::NONE)
                        .with_name(Some(StrBytes::from(format!("events.topic-{t:03}"))))
                        .with_is_internal(false)
                        .with_topic_authorized_operations(i32::MIN)
                        .with_partitions(
                            (0..MD_PARTITIONS)
                                .map(|p| {
                                    MetadataResponsePartition::default()
                                        .with_error_code(ErrorCode::NONE)
                                        .with_partition_index(p as i32)
                                        .with_leader_id(replicas(p)[0])
                                        .with_leader_epoch(7)
                                        .with_replica_nodes(replicas(p))
                                        .with_isr_nodes(replicas(p))
                                        .with_offline_replicas(Vec::new())
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    // cluster_authorized_operations: versions 8-10 only; left at its default.
}

fn kp_metadata() -> kp::MetadataResponse {
    use kp::metadata_response::*;
    let ids = |v: Vec<i32>| v.into_iter().map(kp::BrokerId).collect::<Vec<_>>();
    MetadataResponse::default()
        .with_throttle_time_ms(0)
        .with_cluster_id(Some(KpStr::from_static_str("kpax-bench-cluster")))
        .with_controller_id(kp::BrokerId(1))
        .with_brokers(
            (0..BROKERS)
                .map(|id| {
                    MetadataResponseBroker::default()
                        .with_node_id(kp::BrokerId(id))
                        .with_host(KpStr::from_string(format!("broker-{id}.kafka.internal")))
                        .with_port(9092)
                        .with_rack(Some(KpStr::from_string(format!("rack-{}", id % 3))))
                })
                .collect(),
        )
        .with_topics(
            (0..MD_TOPICS)
                .map(|t| {
                    MetadataResponseTopic::default()
                        .with_error_code(0)
                        .with_name(Some(kp::TopicName(KpStr::from_string(format!(
                            "events.topic-{t:03}"
                        )))))
                        .with_is_internal(false)
                        .with_topic_authorized_operations(i32::MIN)
                        .with_partitions(
                            (0..MD_PARTITIONS)
                                .map(|p| {
                                    MetadataResponsePartition::default()
                                        .with_error_code(0)
                                        .with_partition_index(p as i32)
                                        .with_leader_id(kp::BrokerId(replicas(p)[0]))
                                        .with_leader_epoch(7)
                                        .with_replica_nodes(ids(replicas(p)))
                                        .with_isr_nodes(ids(replicas(p)))
                                        .with_offline_replicas(Vec::new())
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

// ---- Produce request, 16 partitions × 16 KiB ----

const PRODUCE_PARTITIONS: usize = 16;
const PRODUCE_RECORDS: usize = 16 << 10;

fn produce_records() -> Vec<Bytes> {
    (0..PRODUCE_PARTITIONS)
        .map(|p| payload(PRODUCE_RECORDS, p as u64))
        .collect()
}

fn kpax_produce(records: &[Bytes]) -> produce::ProduceRequest {
    use produce::*;
    ProduceRequest::default()
        .with_transactional_id(None)
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![ProduceRequestTopicData::default()
            .with_name(StrBytes::from("events.produce"))
            .with_partition_data(
                records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        ProduceRequestPartitionData::default()
                            .with_index(i as i32)
                            .with_records(Some(r.clone()))
                    })
                    .collect(),
            )])
}

fn kp_produce(records: &[Bytes]) -> kp::ProduceRequest {
    use kp::produce_request::*;
    ProduceRequest::default()
        .with_transactional_id(None)
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(kp::TopicName(KpStr::from_static_str("events.produce")))
            .with_partition_data(
                records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        PartitionProduceData::default()
                            .with_index(i as i32)
                            .with_records(Some(r.clone()))
                    })
                    .collect(),
            )])
}

// ---- Fetch response, 1 MiB of records ----

const FETCH_PARTITIONS: usize = 16;
const FETCH_RECORDS: usize = (1 << 20) / FETCH_PARTITIONS;

fn fetch_records() -> Vec<Bytes> {
    (0..FETCH_PARTITIONS)
        .map(|p| payload(FETCH_RECORDS, 100 + p as u64))
        .collect()
}

fn kpax_fetch(records: &[Bytes]) -> fetch::FetchResponse {
    use fetch::*;
    FetchResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(ErrorCode::NONE)
        .with_session_id(12345)
        .with_responses(vec![FetchResponseResponse::default()
            // v13+ carry topic_id (left the nil UUID on both sides), not the name.
            .with_partitions(
                records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        FetchResponsePartition::default()
                            .with_partition_index(i as i32)
                            .with_error_code(ErrorCode::NONE)
                            .with_high_watermark(1_000_000 + i as i64)
                            .with_last_stable_offset(1_000_000 + i as i64)
                            .with_log_start_offset(0)
                            .with_aborted_transactions(None)
                            .with_preferred_read_replica(-1)
                            .with_records(Some(r.clone()))
                    })
                    .collect(),
            )])
}

fn kp_fetch(records: &[Bytes]) -> kp::FetchResponse {
    use kp::fetch_response::*;
    FetchResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_session_id(12345)
        .with_responses(vec![FetchableTopicResponse::default().with_partitions(
            records
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    PartitionData::default()
                        .with_partition_index(i as i32)
                        .with_error_code(0)
                        .with_high_watermark(1_000_000 + i as i64)
                        .with_last_stable_offset(1_000_000 + i as i64)
                        .with_log_start_offset(0)
                        .with_aborted_transactions(None)
                        .with_preferred_read_replica(kp::BrokerId(-1))
                        .with_records(Some(r.clone()))
                })
                .collect(),
        )])
}

// ---- the benches ----

/// One message on both sides: check identical bytes, then bench encode and decode.
#[allow(clippy::too_many_arguments)]
fn pair<K, P>(
    c: &mut Criterion,
    name: &str,
    version: i16,
    ours: &K,
    theirs: &P,
    kpax_encode: impl Fn(&K, &mut BytesMut, i16),
    kpax_decode: impl Fn(&mut Bytes, i16) -> K,
    slices: usize,
) where
    K: Message,
    P: Encodable + Decodable + PartialEq + std::fmt::Debug,
{
    let mut a = BytesMut::new();
    kpax_encode(ours, &mut a, version);
    let a = a.freeze();
    let mut b = BytesMut::new();
    theirs.encode(&mut b, version).unwrap();
    assert!(a == b, "{name} v{version}: the two encodings differ");
    let mut frame = FrameBuf::new();
    ours.encode_to_frame(&mut frame, version).unwrap();
    assert!(
        frame.to_contiguous() == a,
        "{name} v{version}: the frame differs"
    );
    assert_eq!(&kpax_decode(&mut a.clone(), version), ours);
    assert_eq!(&P::decode(&mut a.clone(), version).unwrap(), theirs);
    eprintln!("{name}: version {version}, {} bytes", a.len());

    let mut g = c.benchmark_group(format!("{name}_encode"));
    g.throughput(Throughput::Bytes(a.len() as u64));
    g.bench_function("kpax", |bn| {
        let mut buf = BytesMut::with_capacity(a.len());
        bn.iter(|| {
            buf.clear();
            kpax_encode(black_box(ours), &mut buf, version);
            black_box(buf.len())
        })
    });
    // What kpax's connection sends: large records shared, not copied.
    g.bench_function("kpax-frame", |bn| {
        let mut frame = FrameBuf::with_capacity(a.len());
        bn.iter(|| {
            frame.clear();
            black_box(ours)
                .encode_to_frame(&mut frame, version)
                .unwrap();
            black_box(frame.len())
        })
    });
    g.bench_function("kafka-protocol", |bn| {
        let mut buf = BytesMut::with_capacity(a.len());
        bn.iter(|| {
            buf.clear();
            black_box(theirs).encode(&mut buf, version).unwrap();
            black_box(buf.len())
        })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("{name}_decode"));
    g.throughput(Throughput::Bytes(a.len() as u64));
    g.bench_function("kpax", |bn| {
        bn.iter(|| kpax_decode(&mut black_box(&a).clone(), version))
    });
    g.bench_function("kafka-protocol", |bn| {
        bn.iter(|| P::decode(&mut black_box(&a).clone(), version).unwrap())
    });
    // The floor both decoders share: the input's clone and one reference-
    // counted slice (atomic increment, and decrement on drop) per string
    // and records value, with no parsing at all.
    g.bench_function("refcount-floor", |bn| {
        let mut held: Vec<Bytes> = Vec::with_capacity(slices);
        bn.iter(|| {
            let mut input = black_box(&a).clone();
            for _ in 0..slices {
                held.push(input.split_to(1));
            }
            held.clear();
        })
    });
    g.finish();
}

const NAMES: [&str; 3] = [
    "metadata_response_1000_partitions",
    "produce_request_16x16KiB",
    "fetch_response_1MiB",
];

fn bench(c: &mut Criterion) {
    let v = newest(ApiKey::Metadata);
    pair(
        c,
        NAMES[0],
        v,
        &kpax_metadata(),
        &kp_metadata(),
        |m, buf, v| m.encode(buf, v).unwrap(),
        |buf, v| metadata::MetadataResponse::decode(buf, v).unwrap(),
        1 + 2 * BROKERS as usize + MD_TOPICS, // cluster id, hosts, racks, topic names
    );

    let records = produce_records();
    let v = newest(ApiKey::Produce);
    pair(
        c,
        NAMES[1],
        v,
        &kpax_produce(&records),
        &kp_produce(&records),
        |m, buf, v| m.encode(buf, v).unwrap(),
        |buf, v| produce::ProduceRequest::decode(buf, v).unwrap(),
        1 + PRODUCE_PARTITIONS, // topic name, records
    );

    let records = fetch_records();
    let v = newest(ApiKey::Fetch);
    pair(
        c,
        NAMES[2],
        v,
        &kpax_fetch(&records),
        &kp_fetch(&records),
        |m, buf, v| m.encode(buf, v).unwrap(),
        |buf, v| fetch::FetchResponse::decode(buf, v).unwrap(),
        FETCH_PARTITIONS, // records (topics by id: no names)
    );
}

/// Mean time in ns of one benchmark, from criterion's `estimates.json`.
fn mean_ns(root: &std::path::Path, group: &str, function: &str) -> Option<f64> {
    let path = root.join(group).join(function).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let mean = &text[text.find("\"mean\"")?..];
    let key = "\"point_estimate\":";
    let num = &mean[mean.find(key)? + key.len()..];
    num[..num.find([',', '}'])?].trim().parse().ok()
}

fn report() {
    let root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("criterion");
    println!("\n| message | op | kpax | kafka-protocol | kpax / kafka-protocol | speed-up | refcount floor |");
    println!("|---|---|---|---|---|---|---|");
    for name in NAMES {
        for (op, ours) in [
            ("encode", "kpax"),
            ("encode (frame)", "kpax-frame"),
            ("decode", "kpax"),
        ] {
            let group = format!("{name}_{}", &op[..6]);
            let (Some(ours), Some(theirs)) = (
                mean_ns(&root, &group, ours),
                mean_ns(&root, &group, "kafka-protocol"),
            ) else {
                println!("| {name} | {op} | ? | ? | ? | ? | |");
                continue;
            };
            let floor = match op {
                "decode" => mean_ns(&root, &group, "refcount-floor").map_or("?".into(), fmt_ns),
                _ => "".into(),
            };
            println!(
                "| {name} | {op} | {} | {} | {:.2} | {:.2}× | {floor} |",
                fmt_ns(ours),
                fmt_ns(theirs),
                ours / theirs,
                theirs / ours
            );
        }
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    report();
}
