//! Record batch v2: build, and parse + iterate, a 1 MiB batch of 100-byte
//! records, uncompressed and per codec, side by side with the
//! `kafka-protocol` crate's records module on the same records; plus a
//! CRC32C-only pass over the same bytes, the floor for any parser.
//!
//! Run: `cargo bench -p kpax-proto --bench records -- --warm-up-time 1 --measurement-time 3`
//! The ratios are printed at the end (from criterion's estimates).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, Criterion, Throughput};
use kafka_protocol::records as kp;
use kpax_proto::records::{Batches, Compression, RecordBatchBuilder};

const BATCH_BYTES: usize = 1 << 20;
const KEY_LEN: usize = 8;
const VALUE_LEN: usize = 92;
const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

/// Keys and values: 100 bytes of payload per record, text-like so that the
/// codecs have something to do (a small word list, picked pseudo-randomly).
struct Input {
    keys: Vec<Bytes>,
    values: Vec<Bytes>,
}

fn input() -> Input {
    const WORDS: &[&str] = &[
        "kafka",
        "record",
        "batch",
        "offset",
        "leader",
        "epoch",
        "fetch",
        "produce",
        "topic",
        "partition",
        "consumer",
        "group",
        "commit",
        "broker",
        "replica",
        "segment",
    ];
    // Records encode to ~107 bytes (100 payload + length, deltas, attributes).
    let count = BATCH_BYTES / (KEY_LEN + VALUE_LEN + 7);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut keys = Vec::with_capacity(count);
    let mut values = Vec::with_capacity(count);
    for i in 0..count {
        keys.push(Bytes::from(format!("k{:07}", i % 10_000_000)));
        let mut v = String::with_capacity(VALUE_LEN + 16);
        while v.len() < VALUE_LEN {
            v.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
            v.push(' ');
        }
        v.truncate(VALUE_LEN);
        values.push(Bytes::from(v));
    }
    Input { keys, values }
}

fn kpax_build(input: &Input, codec: Compression) -> Bytes {
    let mut builder = RecordBatchBuilder::with_capacity(0, BATCH_BYTES + 4096).compression(codec);
    for (i, (k, v)) in input.keys.iter().zip(&input.values).enumerate() {
        builder
            .append(BASE_TIMESTAMP + i as i64, Some(k), Some(v), &[])
            .unwrap();
    }
    builder.finish().unwrap()
}

fn kp_records(input: &Input) -> Vec<kp::Record> {
    input
        .keys
        .iter()
        .zip(&input.values)
        .enumerate()
        .map(|(i, (k, v))| kp::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: kp::TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol starts a new batch whenever offset - sequence changes.
            sequence: i as i32,
            timestamp: BASE_TIMESTAMP + i as i64,
            key: Some(k.clone()),
            value: Some(v.clone()),
            headers: Default::default(),
        })
        .collect()
}

fn kp_codec(c: Compression) -> kp::Compression {
    match c {
        Compression::None => kp::Compression::None,
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        Compression::Lz4 => kp::Compression::Lz4,
        Compression::Zstd => kp::Compression::Zstd,
    }
}

fn kp_build(records: &[kp::Record], codec: Compression) -> Bytes {
    let mut buf = BytesMut::with_capacity(BATCH_BYTES + 4096);
    kp::RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &kp::RecordEncodeOptions {
            version: 2,
            compression: kp_codec(codec),
        },
    )
    .unwrap();
    buf.freeze()
}

/// Parses and touches every record (owned `Record`s, sharing the buffer).
fn kpax_parse(bytes: &Bytes) -> usize {
    let mut sum = 0;
    for batch in Batches::new(bytes.clone()) {
        for r in batch.unwrap().records().unwrap() {
            let r = r.unwrap();
            sum += r.value().map_or(0, <[u8]>::len) + r.key().map_or(0, <[u8]>::len);
        }
    }
    sum
}

/// Parses and touches every record through borrowed `RecordRef`s.
fn kpax_parse_ref(bytes: &Bytes) -> usize {
    let mut sum = 0;
    for batch in Batches::new(bytes.clone()) {
        let kpax_proto::records::Batch::V2(batch) = batch.unwrap() else {
            unreachable!()
        };
        let mut records = batch.records().unwrap();
        while let Some(r) = records.next_ref() {
            let r = r.unwrap();
            sum += r.value.map_or(0, <[u8]>::len) + r.key.map_or(0, <[u8]>::len);
        }
    }
    sum
}

/// Parses and touches every record through `Records::for_each_ref`, the
/// one-loop reader.
fn kpax_parse_each(bytes: &Bytes) -> usize {
    let mut sum = 0;
    for batch in Batches::new(bytes.clone()) {
        let kpax_proto::records::Batch::V2(batch) = batch.unwrap() else {
            unreachable!()
        };
        batch
            .records()
            .unwrap()
            .for_each_ref(|r| {
                sum += r.value.map_or(0, <[u8]>::len) + r.key.map_or(0, <[u8]>::len);
            })
            .unwrap();
    }
    sum
}

fn kp_parse(bytes: &Bytes) -> usize {
    let mut buf = bytes.clone();
    let mut sum = 0;
    for set in kp::RecordBatchDecoder::decode_all(&mut buf).unwrap() {
        for r in set.records {
            sum += r.value.map_or(0, |v| v.len()) + r.key.map_or(0, |k| k.len());
        }
    }
    sum
}

fn codecs() -> Vec<Compression> {
    Compression::ALL
        .into_iter()
        .filter(|c| c.is_enabled())
        .collect()
}

fn bench(c: &mut Criterion) {
    let input = input();
    let kp_input = kp_records(&input);
    let plain = kpax_build(&input, Compression::None);
    let payload = input.keys.len() * (KEY_LEN + VALUE_LEN);
    eprintln!(
        "{} records, {} payload bytes, uncompressed batch {} bytes",
        input.keys.len(),
        payload,
        plain.len()
    );

    let mut g = c.benchmark_group("crc32c");
    g.throughput(Throughput::Bytes(plain.len() as u64));
    g.bench_function("only", |b| {
        b.iter(|| crc32c::crc32c(black_box(&plain[21..])))
    });
    g.finish();

    for codec in codecs() {
        let ours = kpax_build(&input, codec);
        let theirs = kp_build(&kp_input, codec);
        assert_eq!(kpax_parse(&ours), payload);
        assert_eq!(kpax_parse_ref(&ours), payload);
        assert_eq!(kpax_parse_each(&ours), payload);
        assert_eq!(kpax_parse(&theirs), payload);
        assert_eq!(kp_parse(&ours), payload);
        assert_eq!(kp_parse(&theirs), payload);
        eprintln!(
            "{codec}: kpax batch {} bytes, kafka-protocol batch {} bytes",
            ours.len(),
            theirs.len()
        );

        let mut g = c.benchmark_group(format!("build/{codec}"));
        g.throughput(Throughput::Bytes(plain.len() as u64));
        g.bench_function("kpax", |b| b.iter(|| kpax_build(black_box(&input), codec)));
        g.bench_function("kafka-protocol", |b| {
            b.iter(|| kp_build(black_box(&kp_input), codec))
        });
        if codec == Compression::None {
            // A producer recycles its buffers: the same, without a fresh
            // 1 MiB allocation (and its page faults) per batch.
            let mut buf = BytesMut::with_capacity(BATCH_BYTES + 4096);
            g.bench_function("kpax-reuse", |b| {
                b.iter(|| {
                    let mut builder = RecordBatchBuilder::in_buffer(0, std::mem::take(&mut buf))
                        .compression(codec);
                    for (i, (k, v)) in input.keys.iter().zip(&input.values).enumerate() {
                        builder
                            .append(BASE_TIMESTAMP + i as i64, Some(k), Some(v), &[])
                            .unwrap();
                    }
                    let mut out = builder.finish_mut().unwrap();
                    black_box(&out);
                    out.clear();
                    buf = out;
                })
            });
            // The floor: only copying keys and values into a reused buffer.
            let mut buf = BytesMut::with_capacity(BATCH_BYTES + 4096);
            g.bench_function("copy-only", |b| {
                b.iter(|| {
                    for (k, v) in input.keys.iter().zip(&input.values) {
                        buf.extend_from_slice(k);
                        buf.extend_from_slice(v);
                    }
                    black_box(&buf);
                    buf.clear();
                })
            });
            let mut buf = BytesMut::with_capacity(BATCH_BYTES + 4096);
            g.bench_function("kafka-protocol-reuse", |b| {
                b.iter(|| {
                    kp::RecordBatchEncoder::encode(
                        &mut buf,
                        kp_input.iter(),
                        &kp::RecordEncodeOptions {
                            version: 2,
                            compression: kp_codec(codec),
                        },
                    )
                    .unwrap();
                    black_box(&buf);
                    buf.clear();
                })
            });
        }
        g.finish();

        // Each parses its own batch (the same records), as a consumer would.
        let mut g = c.benchmark_group(format!("parse/{codec}"));
        g.throughput(Throughput::Bytes(plain.len() as u64));
        g.bench_function("kpax", |b| b.iter(|| kpax_parse(black_box(&ours))));
        g.bench_function("kpax-ref", |b| b.iter(|| kpax_parse_ref(black_box(&ours))));
        g.bench_function("kpax-each", |b| {
            b.iter(|| kpax_parse_each(black_box(&ours)))
        });
        g.bench_function("kafka-protocol", |b| {
            b.iter(|| kp_parse(black_box(&theirs)))
        });
        g.finish();
    }
}

/// Mean time in ns of one benchmark, from criterion's saved estimates.
fn mean_ns(dir: &Path, id: &str) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(id).join("new/estimates.json")).ok()?;
    let at = text.find("\"mean\"")?;
    let rest = &text[at..];
    let at = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let rest = &rest[at..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

fn print_ratios() {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("criterion");
    let crc = mean_ns(&dir, "crc32c/only");
    println!("\nratios (mean times; > 1 means kpax is faster):");
    if let (Some(a), Some(b)) = (
        mean_ns(&dir, "build_none/kafka-protocol-reuse"),
        mean_ns(&dir, "build_none/kpax-reuse"),
    ) {
        println!("build, reused buffers, none: kp/kpax {:.2}", a / b);
    }
    println!("| codec | build kp/kpax | parse kp/kpax | parse kp/kpax-ref | parse kp/kpax-each | kpax parse / CRC | kpax-ref parse / CRC | kpax-each parse / CRC |");
    println!("|---|---|---|---|---|---|---|---|");
    for codec in codecs() {
        let get = |what: &str, who: &str| mean_ns(&dir, &format!("{what}_{codec}/{who}"));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", a / b),
            _ => "?".into(),
        };
        println!(
            "| {codec} | {} | {} | {} | {} | {} | {} | {} |",
            ratio(get("build", "kafka-protocol"), get("build", "kpax")),
            ratio(get("parse", "kafka-protocol"), get("parse", "kpax")),
            ratio(get("parse", "kafka-protocol"), get("parse", "kpax-ref")),
            ratio(get("parse", "kafka-protocol"), get("parse", "kpax-each")),
            ratio(get("parse", "kpax"), crc),
            ratio(get("parse", "kpax-ref"), crc),
            ratio(get("parse", "kpax-each"), crc),
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}
