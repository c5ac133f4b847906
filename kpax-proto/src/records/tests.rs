//! Round trips for every magic × codec, fixed byte vectors checked against
//! the spec, interop with an independent implementation (the
//! `kafka-protocol` crate), error cases and property tests.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

fn enabled_codecs() -> Vec<Compression> {
    Compression::ALL
        .into_iter()
        .filter(|c| c.is_enabled())
        .collect()
}

fn record(
    offset: i64,
    ts: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&[u8], Option<&[u8]>)],
) -> Record {
    Record::new(offset, ts, key, value, headers)
}

/// Records covering null and empty keys and values, tombstones, headers
/// with null values, and timestamps out of order.
fn sample_records(base: i64, with_headers: bool) -> Vec<Record> {
    let h: &[(&[u8], Option<&[u8]>)] = if with_headers {
        &[(b"trace", Some(b"abc")), (b"", None), (b"empty", Some(b""))]
    } else {
        &[]
    };
    vec![
        record(base, 1_700_000_000_000, Some(b"key-0"), Some(b"value-0"), h),
        record(base + 1, 1_700_000_000_005, None, Some(b"no key"), h),
        record(base + 2, 1_699_999_999_990, Some(b""), Some(b""), h),
        record(base + 3, 1_700_000_000_001, Some(b"tombstone"), None, h),
        record(base + 4, 1_700_000_000_002, None, None, &[]),
        record(
            base + 5,
            1_700_000_000_003,
            Some(&[0u8; 300]),
            Some(&[7u8; 5000]),
            h,
        ),
    ]
}

fn build_v2(records: &[Record], base: i64, codec: Compression) -> Bytes {
    let mut builder = RecordBatchBuilder::new(base).compression(codec);
    for r in records {
        builder.append_record(r).unwrap();
    }
    builder.finish().unwrap()
}

fn read_all(data: Bytes) -> (Vec<Record>, Batches) {
    let mut batches = Batches::new(data);
    let mut out = Vec::new();
    for batch in &mut batches {
        for r in batch.unwrap().records().unwrap() {
            out.push(r.unwrap());
        }
    }
    (out, batches)
}

#[test]
fn v2_round_trip_every_codec_with_and_without_headers() {
    for codec in enabled_codecs() {
        for with_headers in [false, true] {
            let records = sample_records(42, with_headers);
            let bytes = build_v2(&records, 42, codec);
            let batch = match Batches::new(bytes.clone()).next().unwrap().unwrap() {
                Batch::V2(b) => b,
                other => panic!("{other:?}"),
            };
            assert_eq!(batch.compression(), codec);
            let h = batch.header();
            assert_eq!(h.base_offset, 42);
            assert_eq!(h.last_offset_delta, 5);
            assert_eq!(h.record_count, 6);
            assert_eq!(h.base_timestamp, 1_700_000_000_000);
            assert_eq!(h.max_timestamp, 1_700_000_000_005);
            assert_eq!(h.size_in_bytes(), bytes.len());
            let (got, batches) = read_all(bytes);
            assert!(!batches.truncated());
            assert_eq!(got, records, "codec {codec}, headers {with_headers}");
        }
    }
}

#[test]
fn v2_header_fields_round_trip() {
    let mut builder = RecordBatchBuilder::new(1000)
        .partition_leader_epoch(7)
        .producer(123_456, 3, 99)
        .transactional(true)
        .timestamp_type(TimestampType::LogAppendTime)
        .compression(Compression::None);
    builder.append(10, None, Some(b"a"), &[]).unwrap();
    builder.append_at(5, 20, None, Some(b"b"), &[]).unwrap();
    let bytes = builder.finish().unwrap();
    let Batch::V2(batch) = Batches::new(bytes).next().unwrap().unwrap() else {
        panic!()
    };
    let h = *batch.header();
    assert_eq!(h.partition_leader_epoch, 7);
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (123_456, 3, 99)
    );
    assert!(batch.is_transactional());
    assert!(!batch.is_control());
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(h.last_offset(), 1005);
    assert_eq!(h.next_offset(), 1006);
    let recs: Vec<_> = batch.records().unwrap().map(Result::unwrap).collect();
    assert_eq!(
        recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [1000, 1005]
    );
    // Log-append time: every record carries the batch's max timestamp.
    assert!(recs.iter().all(|r| r.timestamp == 20));
}

#[test]
fn borrowed_records_match_owned_ones() {
    let records = sample_records(0, true);
    let bytes = build_v2(&records, 0, Compression::None);
    let Batch::V2(batch) = Batches::new(bytes.clone()).next().unwrap().unwrap() else {
        panic!()
    };
    let mut it = batch.records().unwrap();
    let mut i = 0;
    while let Some(r) = it.next_ref() {
        let r = r.unwrap();
        let want = &records[i];
        assert_eq!(r.offset, want.offset);
        assert_eq!(r.key, want.key());
        assert_eq!(r.value, want.value());
        let headers: Vec<_> = r.headers().collect();
        assert_eq!(headers.len(), r.header_count());
        assert_eq!(headers, want.headers().collect::<Vec<_>>());
        // Zero copy: the value points into the input buffer.
        if let Some(v) = r.value.filter(|v| !v.is_empty()) {
            let range = bytes.as_ptr_range();
            assert!(range.contains(&v.as_ptr()));
        }
        i += 1;
    }
    assert_eq!(i, records.len());
}

#[test]
fn control_batches_are_recognised() {
    for commit in [true, false] {
        let bytes = RecordBatchBuilder::end_transaction_marker(77, 1234, 9, 2, commit, 5).unwrap();
        let Batch::V2(batch) = Batches::new(bytes).next().unwrap().unwrap() else {
            panic!()
        };
        assert!(batch.is_control() && batch.is_transactional());
        let control = batch.control_record().unwrap().unwrap();
        let want = if commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        };
        assert_eq!(control.kind, want);
        let record = batch.records().unwrap().next().unwrap().unwrap();
        let marker = EndTransactionMarker::parse(record.value().unwrap(), 0).unwrap();
        assert_eq!(marker.coordinator_epoch, 5);
        assert_eq!(batch.header().producer_id, 9);
    }
    // A data batch has no control record.
    let bytes = build_v2(&sample_records(0, false), 0, Compression::None);
    let Batch::V2(batch) = Batches::new(bytes).next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(batch.control_record().unwrap(), None);
    assert_eq!(
        ControlRecord::parse(&[0, 0, 0, 9], 0).unwrap().kind,
        ControlRecordType::Unknown(9)
    );
    assert!(ControlRecord::parse(&[0, 0, 0], 0).is_err());
}

#[test]
fn legacy_round_trip_every_magic_and_codec() {
    for magic in [0i8, 1] {
        for codec in enabled_codecs() {
            if codec == Compression::Zstd {
                continue; // zstd needs magic 2
            }
            let records = sample_records(500, false);
            let mut builder = LegacyMessageSetBuilder::new(magic, 500)
                .unwrap()
                .compression(codec);
            for r in &records {
                builder.append(r.timestamp, r.key(), r.value()).unwrap();
            }
            let bytes = builder.finish().unwrap();
            let batches: Vec<_> = Batches::new(bytes.clone()).map(Result::unwrap).collect();
            let want_batches = if codec == Compression::None {
                records.len()
            } else {
                1
            };
            assert_eq!(batches.len(), want_batches, "magic {magic} codec {codec}");
            assert!(batches.iter().all(|b| b.magic() == magic));
            assert_eq!(batches.last().unwrap().last_offset(), 505);
            let (got, _) = read_all(bytes);
            let want: Vec<_> = records
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    if magic == 0 {
                        r.timestamp = -1;
                    }
                    r
                })
                .collect();
            assert_eq!(got, want, "magic {magic} codec {codec}");
        }
    }
}

#[test]
fn legacy_log_append_time_wrapper_overrides_inner_timestamps() {
    let mut builder = LegacyMessageSetBuilder::new(1, 10)
        .unwrap()
        .compression(Compression::Gzip)
        .timestamp_type(TimestampType::LogAppendTime);
    builder.append(5, None, Some(b"x")).unwrap();
    builder.append(9, None, Some(b"y")).unwrap();
    if !Compression::Gzip.is_enabled() {
        return;
    }
    let (got, _) = read_all(builder.finish().unwrap());
    assert_eq!(
        got.iter()
            .map(|r| (r.offset, r.timestamp))
            .collect::<Vec<_>>(),
        [(10, 9), (11, 9)]
    );
}

/// A magic-1 wrapper written by a broker: inner offsets relative, the
/// wrapper's offset the last one's absolute offset.
#[test]
fn legacy_relative_offsets_follow_the_wrapper_offset() {
    let mut builder = LegacyMessageSetBuilder::new(1, 0)
        .unwrap()
        .compression(Compression::Snappy);
    for i in 0..3u8 {
        builder.append(i.into(), None, Some(&[i])).unwrap();
    }
    if !Compression::Snappy.is_enabled() {
        return;
    }
    let mut bytes = BytesMut::from(&builder.finish().unwrap()[..]);
    // Rewrite the wrapper offset as the broker would (offset is not under the CRC).
    bytes[..8].copy_from_slice(&1002i64.to_be_bytes());
    let (got, _) = read_all(bytes.freeze());
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [1000, 1001, 1002]
    );
}

#[test]
fn mixed_magics_and_a_truncated_last_batch() {
    let mut field = BytesMut::new();
    let mut m0 = LegacyMessageSetBuilder::new(0, 0).unwrap();
    m0.append(0, Some(b"k"), Some(b"v0")).unwrap();
    field.put(m0.finish().unwrap());
    let mut m1 = LegacyMessageSetBuilder::new(1, 1).unwrap();
    m1.append(11, None, Some(b"v1")).unwrap();
    field.put(m1.finish().unwrap());
    field.put(build_v2(&sample_records(2, true), 2, Compression::None));
    let complete = field.len();
    let next = build_v2(&sample_records(8, false), 8, Compression::None);
    for cut in [1, 11, 12, 16, 17, 60, 61, next.len() - 1] {
        let mut f = field.clone();
        f.put_slice(&next[..cut]);
        let mut batches = Batches::new(f.freeze());
        let magics: Vec<_> = (&mut batches).map(|b| b.unwrap().magic()).collect();
        assert_eq!(magics, [0, 1, 2], "cut at {cut}");
        assert!(batches.truncated(), "cut at {cut}");
        assert_eq!(batches.remaining(), cut);
        assert_eq!(batches.position(), complete);
    }
    // Without the partial batch: not truncated.
    let mut batches = Batches::new(field.freeze());
    assert_eq!((&mut batches).count(), 3);
    assert!(!batches.truncated());
    assert_eq!(batches.remaining(), 0);
}

#[test]
fn empty_input_has_no_batches() {
    let mut batches = Batches::new(Bytes::new());
    assert!(batches.next().is_none());
    assert!(!batches.truncated());
}

/// A bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), written
/// from the definition, to check the library and the byte range.
fn crc32c_by_hand(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn crc_check_values() {
    assert_eq!(crc32c_by_hand(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
}

/// One batch with one record, laid out byte by byte from the spec.
#[test]
fn fixed_batch_bytes_match_the_spec() {
    let mut builder = RecordBatchBuilder::new(0);
    builder
        .append(1_000, Some(b"k"), Some(b"hi"), &[(b"h", Some(b"v"))])
        .unwrap();
    let bytes = builder.finish().unwrap();
    #[rustfmt::skip]
    let record: &[u8] = &[
        0x1a,             // length 13 (zig-zag varint)
        0x00,             // attributes
        0x00,             // timestamp delta 0
        0x00,             // offset delta 0
        0x02, b'k',       // key length 1, key
        0x04, b'h', b'i', // value length 2, value
        0x02,             // 1 header
        0x02, b'h',       // header key
        0x02, b'v',       // header value
    ];
    let mut want = Vec::new();
    want.extend_from_slice(&0i64.to_be_bytes()); // base offset
    want.extend_from_slice(&((61 - 12 + record.len()) as i32).to_be_bytes()); // batch length
    want.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    want.push(2); // magic
    want.extend_from_slice(&[0; 4]); // crc, below
    want.extend_from_slice(&0i16.to_be_bytes()); // attributes
    want.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    want.extend_from_slice(&1000i64.to_be_bytes()); // base timestamp
    want.extend_from_slice(&1000i64.to_be_bytes()); // max timestamp
    want.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    want.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    want.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    want.extend_from_slice(&1i32.to_be_bytes()); // record count
    want.extend_from_slice(record);
    let crc = crc32c_by_hand(&want[21..]);
    want[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(&bytes[..], &want[..]);
    assert_eq!(crc, 0x3812_7706, "pinned CRC32C of this fixture");
}

/// A legacy magic-1 message laid out from the spec; its CRC32 covers magic
/// to the end.
#[test]
fn fixed_legacy_message_bytes_match_the_spec() {
    let mut builder = LegacyMessageSetBuilder::new(1, 3).unwrap();
    builder.append(1_000, None, Some(b"hello")).unwrap();
    let bytes = builder.finish().unwrap();
    let mut want = Vec::new();
    want.extend_from_slice(&3i64.to_be_bytes());
    want.extend_from_slice(&(4 + 1 + 1 + 8 + 4 + 4 + 5i32).to_be_bytes());
    want.extend_from_slice(&[0; 4]);
    want.push(1); // magic
    want.push(0); // attributes
    want.extend_from_slice(&1000i64.to_be_bytes());
    want.extend_from_slice(&(-1i32).to_be_bytes());
    want.extend_from_slice(&5i32.to_be_bytes());
    want.extend_from_slice(b"hello");
    let crc = crc32fast::hash(&want[16..]);
    want[12..16].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(&bytes[..], &want[..]);
}

#[cfg(feature = "snappy")]
#[test]
fn snappy_reads_raw_blocks_too() {
    let records = sample_records(0, true);
    let plain = build_v2(&records, 0, Compression::None);
    // Re-pack the records as one raw snappy block, as librdkafka writes them.
    let raw = snap::raw::Encoder::new()
        .compress_vec(&plain[61..])
        .unwrap();
    let mut batch = BytesMut::from(&plain[..61]);
    batch.put_slice(&raw);
    let len = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    let attributes = Attributes(0).with_compression(Compression::Snappy).0;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    let (got, _) = read_all(batch.freeze());
    assert_eq!(got, records);
}

fn first_error(data: Bytes, options: ReadOptions) -> RecordsError {
    for batch in Batches::with_options(data, options) {
        match batch {
            Err(e) => return e,
            Ok(b) => match b.records() {
                Err(e) => return e,
                Ok(rs) => {
                    for r in rs {
                        if let Err(e) = r {
                            return e;
                        }
                    }
                }
            },
        }
    }
    panic!("no error");
}

#[test]
fn corrupt_batches_give_typed_errors_with_offsets() {
    let good = build_v2(&sample_records(0, true), 0, Compression::None);
    let mut prefix = BytesMut::from(&good[..]);
    prefix.put_slice(&good);
    let base = good.len();

    // Bad CRC in the second batch.
    let mut bad = prefix.clone();
    bad[base + 70] ^= 0x40;
    let e = first_error(bad.clone().freeze(), ReadOptions::default());
    assert!(
        matches!(e, RecordsError::BadCrc { offset, .. } if offset == base),
        "{e}"
    );

    // With CRC checks off, the same flip surfaces in the record it hit (or
    // goes unnoticed in a value byte, which is why the CRC exists).
    let no_crc = ReadOptions {
        verify_crc: false,
        ..ReadOptions::default()
    };
    let mut bad_len = prefix.clone();
    bad_len[base + 61] = 0x7f; // first record's length varint: far too long (-64)
    let e = first_error(bad_len.freeze(), no_crc);
    assert!(
        matches!(e, RecordsError::BadLength { offset, .. } if offset == base + 61),
        "{e}"
    );

    // Bad magic.
    let mut bad = prefix.clone();
    bad[base + 16] = 7;
    let e = first_error(bad.freeze(), ReadOptions::default());
    assert_eq!(
        e,
        RecordsError::BadMagic {
            offset: base + 16,
            magic: 7
        }
    );

    // Negative batch length.
    let mut bad = prefix.clone();
    bad[base + 8..base + 12].copy_from_slice(&(-5i32).to_be_bytes());
    let e = first_error(bad.freeze(), ReadOptions::default());
    assert!(
        matches!(e, RecordsError::BadLength { offset, .. } if offset == base + 8),
        "{e}"
    );

    // Record count larger than the records.
    let mut bad = prefix.clone();
    bad[base + 57..base + 61].copy_from_slice(&1000i32.to_be_bytes());
    let e = first_error(bad.freeze(), no_crc);
    assert!(
        matches!(
            e,
            RecordsError::RecordCount {
                declared: 1000,
                found: 6,
                ..
            }
        ),
        "{e}"
    );

    // Record count smaller: trailing bytes.
    let mut bad = prefix.clone();
    bad[base + 57..base + 61].copy_from_slice(&2i32.to_be_bytes());
    let e = first_error(bad.freeze(), no_crc);
    assert!(matches!(e, RecordsError::TrailingBytes { .. }), "{e}");

    // Unknown codec 6.
    let mut bad = prefix.clone();
    bad[base + 22] = 6;
    let e = first_error(bad.freeze(), no_crc);
    assert_eq!(
        e,
        RecordsError::UnknownCompression {
            offset: base,
            codec: 6
        }
    );

    // Corrupt compressed data names the codec and the batch.
    for codec in enabled_codecs()
        .into_iter()
        .filter(|c| *c != Compression::None)
    {
        let good = build_v2(&sample_records(0, true), 0, codec);
        let mut bad = BytesMut::from(&good[..]);
        let n = bad.len();
        for byte in &mut bad[61..n] {
            *byte ^= 0x5a;
        }
        let e = first_error(bad.freeze(), no_crc);
        assert!(
            matches!(
                e,
                RecordsError::Decompression { offset: 0, .. }
                    | RecordsError::InDecompressed {
                        batch_offset: 0,
                        ..
                    }
                    | RecordsError::TooLarge { .. }
            ),
            "{codec}: {e}"
        );
    }
}

#[test]
fn decompression_is_bounded() {
    let zeros = vec![0u8; 4 << 20];
    for codec in enabled_codecs()
        .into_iter()
        .filter(|c| *c != Compression::None)
    {
        let mut builder = RecordBatchBuilder::new(0).compression(codec);
        builder.append(0, None, Some(&zeros), &[]).unwrap();
        let bytes = builder.finish().unwrap();
        assert!(
            bytes.len() < 1 << 20,
            "{codec} compressed 4 MiB of zeros to {}",
            bytes.len()
        );
        let options = ReadOptions {
            max_decompressed_size: 1 << 20,
            ..ReadOptions::default()
        };
        let e = first_error(bytes.clone(), options);
        assert!(
            matches!(
                e,
                RecordsError::TooLarge {
                    limit: 0x100000,
                    ..
                }
            ),
            "{codec}: {e}"
        );
        // Within the limit it reads fine.
        let (got, _) = read_all(bytes);
        assert_eq!(got[0].value(), Some(&zeros[..]));
    }
}

#[test]
fn in_buffer_appends_after_existing_content() {
    let records = sample_records(0, true);
    for codec in enabled_codecs() {
        let alone = build_v2(&records, 0, codec);
        let mut buf = BytesMut::new();
        buf.put_slice(b"request header");
        let mut builder = RecordBatchBuilder::in_buffer(0, buf).compression(codec);
        for r in &records {
            builder.append_record(r).unwrap();
        }
        let out = builder.finish_mut().unwrap();
        assert_eq!(&out[..14], b"request header");
        assert_eq!(&out[14..], &alone[..], "{codec}");
    }
}

#[test]
fn builder_rejects_bad_input() {
    assert!(matches!(
        RecordBatchBuilder::new(0).finish(),
        Err(RecordsError::InvalidInput(_))
    ));
    let mut b = RecordBatchBuilder::new(0);
    b.append_at(3, 0, None, None, &[]).unwrap();
    assert!(b.append_at(3, 0, None, None, &[]).is_err());
    assert!(b.append_at(-1, 0, None, None, &[]).is_err());
    assert!(LegacyMessageSetBuilder::new(2, 0).is_err());
    assert!(LegacyMessageSetBuilder::new(0, 0)
        .unwrap()
        .finish()
        .is_err());
}

#[test]
fn errors_carry_their_offset() {
    let e = RecordsError::BadCrc {
        offset: 12,
        stored: 1,
        computed: 2,
    };
    assert_eq!(e.offset(), Some(12));
    assert_eq!(e.clone().in_decompressed(99).offset(), Some(99));
    assert!(e.to_string().contains("byte 12"));
}

// ---- interop with an independent implementation ----

mod interop {
    use super::*;
    use kafka_protocol::records as kp;

    fn kp_codec(c: Compression) -> kp::Compression {
        match c {
            Compression::None => kp::Compression::None,
            Compression::Gzip => kp::Compression::Gzip,
            Compression::Snappy => kp::Compression::Snappy,
            Compression::Lz4 => kp::Compression::Lz4,
            Compression::Zstd => kp::Compression::Zstd,
        }
    }

    fn to_kp(r: &Record) -> kp::Record {
        kp::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: kp::TimestampType::Creation,
            offset: r.offset,
            sequence: -1,
            timestamp: r.timestamp,
            key: r.key_bytes(),
            value: r.value_bytes(),
            headers: r
                .headers_owned()
                .into_iter()
                .map(|h| {
                    (
                        kafka_protocol::protocol::StrBytes::from_utf8(h.key).unwrap(),
                        h.value,
                    )
                })
                .collect(),
        }
    }

    /// Records with distinct header keys (kafka-protocol keeps headers in a map).
    fn records() -> Vec<Record> {
        (0..50)
            .map(|i| {
                let key = format!("key-{i}");
                let value = format!("value-{i}-").repeat(i % 7 + 1);
                let headers: &[(&[u8], Option<&[u8]>)] = if i % 3 == 0 {
                    &[(b"a", Some(b"1")), (b"b", None)]
                } else {
                    &[]
                };
                record(
                    i as i64,
                    1_700_000_000_000 + i as i64,
                    Some(key.as_bytes()),
                    (i % 10 != 9).then_some(value.as_bytes()),
                    headers,
                )
            })
            .collect()
    }

    #[test]
    fn kpax_reads_what_kafka_protocol_writes() {
        for codec in enabled_codecs() {
            let records = records();
            let kp_records: Vec<_> = records.iter().map(to_kp).collect();
            let mut buf = BytesMut::new();
            kp::RecordBatchEncoder::encode(
                &mut buf,
                kp_records.iter(),
                &kp::RecordEncodeOptions {
                    version: 2,
                    compression: kp_codec(codec),
                },
            )
            .unwrap();
            let (got, _) = read_all(buf.freeze());
            assert_eq!(got, records, "{codec}");
        }
    }

    #[test]
    fn kafka_protocol_reads_what_kpax_writes() {
        for codec in enabled_codecs() {
            let records = records();
            let mut bytes = build_v2(&records, 0, codec);
            let mut got = kp::RecordBatchDecoder::decode(&mut bytes).unwrap().records;
            // kafka-protocol derives a sequence even without producer id: ignore it.
            got.iter_mut().for_each(|r| r.sequence = -1);
            let want: Vec<_> = records.iter().map(to_kp).collect();
            assert!(got == want, "{codec}");
        }
    }
}

// ---- property tests ----

fn arb_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..64))
}

prop_compose! {
    fn arb_record()(
        ts in any::<i64>(),
        gap in 1i64..4,
        key in arb_bytes(),
        value in arb_bytes(),
        headers in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..8), arb_bytes()), 0..3),
    ) -> (i64, Record) {
        let headers: Vec<(&[u8], Option<&[u8]>)> = headers.iter().map(|(k, v)| (&k[..], v.as_deref())).collect();
        (gap, Record::new(0, ts, key.as_deref(), value.as_deref(), &headers))
    }
}

fn arb_records() -> impl Strategy<Value = (i64, Vec<Record>)> {
    (any::<i64>(), prop::collection::vec(arb_record(), 1..20)).prop_map(|(base, recs)| {
        let base = base / 4; // keep base + deltas away from i64::MAX
        let mut offset = base;
        let records = recs
            .into_iter()
            .map(|(gap, mut r)| {
                r.offset = offset;
                offset += gap;
                r
            })
            .collect();
        (base, records)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn v2_build_then_parse_gives_the_same_records((base, records) in arb_records(), codec in prop::sample::select(enabled_codecs())) {
        let bytes = build_v2(&records, base, codec);
        let (got, batches) = read_all(bytes);
        prop_assert!(!batches.truncated());
        prop_assert_eq!(got, records);
    }

    #[test]
    fn legacy_build_then_parse_gives_the_same_records(
        (_, records) in arb_records(),
        base in 0i64..1 << 40,
        magic in 0i8..2,
        codec in prop::sample::select(enabled_codecs().into_iter().filter(|c| *c != Compression::Zstd).collect::<Vec<_>>()),
    ) {
        let mut builder = LegacyMessageSetBuilder::new(magic, base).unwrap().compression(codec);
        for r in &records {
            builder.append(r.timestamp, r.key(), r.value()).unwrap();
        }
        let (got, _) = read_all(builder.finish().unwrap());
        let want: Vec<_> = records.iter().enumerate().map(|(i, r)| Record::new(
            base + i as i64,
            if magic == 0 { -1 } else { r.timestamp },
            r.key(),
            r.value(),
            &[],
        )).collect();
        prop_assert_eq!(got, want);
    }

    /// Flipped, cut or extended input never panics, with or without CRC
    /// checks; whatever parses is well-formed.
    #[test]
    fn corrupted_input_never_panics(
        (base, records) in arb_records(),
        codec in prop::sample::select(enabled_codecs()),
        legacy in any::<bool>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        verify_crc in any::<bool>(),
    ) {
        let bytes = if legacy {
            let codec = if codec == Compression::Zstd { Compression::None } else { codec };
            let mut builder = LegacyMessageSetBuilder::new(1, 0).unwrap().compression(codec);
            for r in &records {
                builder.append(r.timestamp, r.key(), r.value()).unwrap();
            }
            builder.finish().unwrap()
        } else {
            build_v2(&records, base, codec)
        };
        let mut data = bytes.to_vec();
        for (i, x) in &flips {
            let i = i.index(data.len());
            data[i] ^= x;
        }
        data.truncate(cut.index(data.len() + 1));
        let options = ReadOptions { verify_crc, max_decompressed_size: 1 << 20 };
        for batch in Batches::with_options(Bytes::from(data), options) {
            let Ok(batch) = batch else { continue };
            let Ok(records) = batch.records() else { continue };
            for r in records {
                let _ = r;
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let options = ReadOptions { verify_crc: false, max_decompressed_size: 1 << 16 };
        for batch in Batches::with_options(Bytes::from(data), options) {
            let Ok(batch) = batch else { continue };
            let Ok(records) = batch.records() else { continue };
            for r in records {
                let _ = r;
            }
        }
    }
}

#[test]
fn a_batch_built_over_an_old_buffer_equals_a_fresh_one() {
    let build = |mut b: RecordBatchBuilder| {
        b.append(1_700_000_000_000, Some(b"k"), Some(&[7u8; 300]), &[])
            .unwrap();
        let h: (&[u8], Option<&[u8]>) = (b"h", None);
        b.append(1_700_000_000_005, None, Some(b"v"), &[h]).unwrap();
        b.finish_mut().unwrap()
    };
    let fresh = build(RecordBatchBuilder::with_capacity(0, 64));
    // An earlier batch's bytes, longer than the new batch, then spare room.
    let mut old = bytes::BytesMut::with_capacity(4096);
    old.extend_from_slice(&[0xAA; 1000]);
    let reused = build(RecordBatchBuilder::over_buffer(0, old));
    assert_eq!(&reused[..], &fresh[..]);
    // A buffer too small for the batch grows.
    let mut small = bytes::BytesMut::with_capacity(16);
    small.extend_from_slice(&[0x55; 16]);
    assert_eq!(
        &build(RecordBatchBuilder::over_buffer(0, small))[..],
        &fresh[..]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Wherever the record fast path answers, it answers what the careful
    /// reader does, and stops at the same place.
    #[test]
    fn record_fast_path_agrees_with_the_careful_reader(
        data in prop::collection::vec(any::<u8>(), 0..48),
        pos in 0usize..6,
        base_offset in any::<i64>(),
        base_timestamp in any::<i64>(),
        log_append_time in any::<Option<i64>>(),
    ) {
        use super::record::{read_record, read_record_fast, RecordContext};
        use super::reader::Reader;
        let ctx = RecordContext { base_offset, base_timestamp, log_append_time };
        if let Some((fast, next)) = read_record_fast(&data, pos, &ctx) {
            let mut r = Reader { data: &data, pos, base: 0 };
            let slow = read_record(&mut r, &ctx);
            prop_assert_eq!(slow, Ok(fast));
            prop_assert_eq!(r.pos, next);
        }
    }

    /// Records with every varint size from 1 to 3 bytes (keys and values up
    /// to 20,000 bytes, timestamp and offset gaps), with and without
    /// headers, null and empty fields: built, then read back the same.
    #[test]
    fn records_of_every_varint_size_read_back(
        records in prop::collection::vec(
            (0i64..70_000, 0usize..20_000, any::<bool>(), any::<bool>(), 0i64..3, any::<bool>()),
            1..6,
        ),
        base in 0i64..1 << 40,
    ) {
        let mut want = Vec::new();
        let mut offset = base;
        let mut ts = 1_700_000_000_000i64;
        for (dt, size, null_key, null_value, gap, with_header) in records {
            ts += dt;
            let key = vec![b'k'; size % 300];
            let value = vec![b'v'; size];
            let header: &[(&[u8], Option<&[u8]>)] = if with_header { &[(b"h", Some(b"x"))] } else { &[] };
            want.push(Record::new(
                offset,
                ts,
                (!null_key).then_some(&key[..]),
                (!null_value).then_some(&value[..]),
                header,
            ));
            offset += 1 + gap * 100;
        }
        let bytes = build_v2(&want, base, Compression::None);
        let (got, _) = read_all(bytes);
        prop_assert_eq!(got, want);
    }
}

/// The fast path leaves records with headers, or with longer varints, to
/// the careful reader.
#[test]
fn record_fast_path_declines_what_it_does_not_handle() {
    use super::record::{read_record_fast, RecordContext};
    let ctx = RecordContext {
        base_offset: 0,
        base_timestamp: 0,
        log_append_time: None,
    };
    let mut b = RecordBatchBuilder::new(0);
    b.append(0, Some(b"k"), Some(b"v"), &[]).unwrap();
    b.append(0, Some(b"k"), Some(b"v"), &[(b"h", None)])
        .unwrap();
    b.append(0, None, Some(&vec![1u8; 1 << 20]), &[]).unwrap();
    let data = b.finish().unwrap();
    let records = &data[crate::records::RECORD_BATCH_OVERHEAD..];
    let (first, next) = read_record_fast(records, 0, &ctx).expect("the plain record");
    assert_eq!((first.key, first.value), (Some(&b"k"[..]), Some(&b"v"[..])));
    assert!(read_record_fast(records, next, &ctx).is_none(), "a header");
    let (got, _) = read_all(data.clone());
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].header_count(), 1);
    assert_eq!(got[2].value().map(<[u8]>::len), Some(1 << 20));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// The same agreement on real record bytes with a few bytes changed
    /// (most still parse on the fast path, some only on the careful one,
    /// some not at all).
    #[test]
    fn record_fast_path_agrees_on_damaged_records(
        (base, records) in arb_records(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        use super::record::{read_record, read_record_fast, RecordContext};
        use super::reader::Reader;
        let bytes = build_v2(&records, base, Compression::None);
        let mut data = bytes[crate::records::RECORD_BATCH_OVERHEAD..].to_vec();
        for (i, x) in &flips {
            let i = i.index(data.len());
            data[i] ^= x;
        }
        let ctx = RecordContext { base_offset: base, base_timestamp: 7, log_append_time: None };
        let mut pos = 0;
        while pos < data.len() {
            let mut r = Reader { data: &data, pos, base: 0 };
            let slow = read_record(&mut r, &ctx);
            if let Some((fast, next)) = read_record_fast(&data, pos, &ctx) {
                prop_assert_eq!(&slow, &Ok(fast));
                prop_assert_eq!(r.pos, next);
            }
            if slow.is_err() {
                break;
            }
            pos = r.pos;
        }
    }
}

/// What each of the three ways of reading a batch's records yields: the
/// records (as owned ones) and the error that ended them, if any.
fn three_ways(batch: &crate::records::RecordBatch) -> [(Vec<Record>, Option<RecordsError>); 3] {
    let mut by_next = (Vec::new(), None);
    for r in batch.records().unwrap() {
        match r {
            Ok(r) => by_next.0.push(r),
            Err(e) => by_next.1 = Some(e),
        }
    }
    let mut by_fold = (Vec::new(), None);
    batch.records().unwrap().for_each(|r| match r {
        Ok(r) => by_fold.0.push(r),
        Err(e) => by_fold.1 = Some(e),
    });
    let mut by_ref = (Vec::new(), None);
    let mut records = batch.records().unwrap();
    let buffer = records.buffer().clone();
    let result = records.for_each_ref(|r| {
        let headers: Vec<_> = r.headers().map(|h| (h.key, h.value)).collect();
        by_ref
            .0
            .push(Record::new(r.offset, r.timestamp, r.key, r.value, &headers));
    });
    by_ref.1 = result.err();
    // Done after the loop, either way.
    assert!(records.next_ref().is_none());
    assert!(!buffer.is_empty() || by_ref.0.is_empty());
    [by_next, by_fold, by_ref]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `next`, `for_each` (the fast loop) and `for_each_ref` agree on every
    /// batch, damaged or not: the same records, then the same error.
    #[test]
    fn every_way_of_reading_records_agrees(
        (base, records) in arb_records(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let bytes = build_v2(&records, base, Compression::None);
        let mut data = bytes.to_vec();
        for (i, x) in &flips {
            // Only the records, so that the header still reads.
            let i = crate::records::RECORD_BATCH_OVERHEAD
                + i.index(data.len() - crate::records::RECORD_BATCH_OVERHEAD);
            data[i] ^= x;
        }
        let options = ReadOptions { verify_crc: false, ..ReadOptions::default() };
        let Some(Ok(Batch::V2(batch))) = Batches::with_options(Bytes::from(data), options).next() else {
            return Ok(());
        };
        let [a, b, c] = three_ways(&batch);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &c);
        if flips.is_empty() {
            prop_assert_eq!(&a.0, &records);
            prop_assert!(a.1.is_none());
        }
    }
}

/// An owned record shares the input: its key, value and header bytes
/// point into the parsed buffer, whichever way it was read.
#[test]
fn owned_records_share_the_input() {
    let records = sample_records(7, true);
    let bytes = build_v2(&records, 7, Compression::None);
    let Some(Ok(Batch::V2(batch))) = Batches::new(bytes.clone()).next() else {
        panic!("one batch")
    };
    let range = bytes.as_ptr_range();
    let mut seen = 0;
    for way in three_ways(&batch).into_iter().take(2) {
        assert_eq!(way.0, records);
        for r in &way.0 {
            for field in [r.key(), r.value()].into_iter().flatten() {
                if !field.is_empty() {
                    assert!(range.contains(&field.as_ptr()));
                    seen += 1;
                }
            }
            for h in r.headers() {
                assert!(range.contains(&h.key.as_ptr()) || h.key.is_empty());
            }
            assert_eq!(r.key_bytes().as_deref(), r.key());
            assert_eq!(r.value_bytes().as_deref(), r.value());
            assert!(range.contains(&r.buffer().as_ptr()));
        }
    }
    assert!(seen > 4);
}

#[test]
fn record_headers_read_back_with_last_header() {
    let r = Record::new(
        3,
        9,
        None,
        Some(b"v"),
        &[(b"a", Some(b"1")), (b"b", None), (b"a", Some(b"2"))],
    );
    assert_eq!(r.header_count(), 3);
    assert_eq!(r.last_header(b"a"), Some(Some(&b"2"[..])));
    assert_eq!(r.last_header(b"b"), Some(None));
    assert_eq!(r.last_header(b"c"), None);
    assert_eq!(r.key(), None);
    assert_eq!(r.headers_owned()[1].key, Bytes::from_static(b"b"));
    // Through a batch and back: the same record.
    let mut builder = RecordBatchBuilder::new(3);
    builder.append_record(&r).unwrap();
    let (got, _) = read_all(builder.finish().unwrap());
    assert_eq!(got, [r]);
    assert_eq!(format!("{:?}", got[0]).matches("HeaderRef").count(), 3);
}

#[test]
fn a_default_record_is_empty() {
    let r = Record::default();
    assert_eq!((r.key(), r.value(), r.header_count()), (None, None, 0));
    assert_eq!(r.headers().count(), 0);
    assert!(r.headers_owned().is_empty());
    assert_eq!(r.last_header(b"x"), None);
    assert_eq!(r, Record::new(0, 0, None, None, &[]));
}
