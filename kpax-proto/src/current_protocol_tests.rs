//! Tests that name messages and fields of the committed protocol (the spec
//! in `spec/`). `scripts/kafka-pages.sh --check` builds kpax-proto from other
//! releases' pages with `--cfg kpax_other_page`, which leaves these out; the
//! generic round trips in `roundtrip_tests` run for every page.

use crate::generated::ApiKey;
use crate::message::Message;
use bytes::{Bytes, BytesMut};

#[test]
fn the_committed_spec_has_every_version() {
    let pairs: i32 = ApiKey::ALL
        .iter()
        .map(|k| {
            let (min, max) = k.versions();
            2 * (i32::from(max) - i32::from(min) + 1)
        })
        .sum();
    // The committed spec merges the Kafka 3.9, 4.0 and 4.4 pages: 86 APIs,
    // 348 request and 348 response versions (the 3.9 page alone has 610).
    assert_eq!(pairs, 696);
}

#[test]
fn hostile_counts_are_errors_not_allocations() {
    // Metadata response v0: brokers array claiming 2^31-1 entries in a tiny frame.
    let mut b = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    let e = crate::generated::MetadataResponse::decode(&mut b, 0).unwrap_err();
    assert_eq!(
        (e.message, e.field, e.version),
        ("MetadataResponse", "brokers", 0)
    );
    assert!(
        matches!(e.kind, crate::wire::WireError::CountTooLarge { .. }),
        "{e}"
    );
}

#[test]
fn unsupported_versions_and_fields_are_named() {
    use crate::generated::{ApiVersionsResponse, MetadataRequest};
    let mut buf = BytesMut::new();
    let e = MetadataRequest::default().encode(&mut buf, 99).unwrap_err();
    assert_eq!(e.kind, crate::wire::WireError::UnsupportedVersion(99));
    // v0 has no nullable topics: None cannot be written
    let e = MetadataRequest::default()
        .with_topics(None)
        .encode(&mut buf, 0)
        .unwrap_err();
    assert_eq!(
        (e.message, e.field, e.version),
        ("MetadataRequest", "topics", 0)
    );
    // a non-default value in a field the version lacks
    let e = ApiVersionsResponse::default()
        .with_throttle_time_ms(5)
        .encode(&mut buf, 0)
        .unwrap_err();
    assert_eq!(e.field, "throttle_time_ms");
    assert_eq!(e.kind, crate::wire::WireError::FieldNotInVersion);
}

#[test]
fn frames_share_large_records_and_match_the_copying_encoding() {
    use crate::generated::fetch::{FetchResponse, FetchResponsePartition, FetchResponseResponse};
    use crate::generated::produce::{
        ProduceRequest, ProduceRequestPartitionData, ProduceRequestTopicData,
    };
    use crate::wire::{FrameBuf, Sink, StrBytes};
    let big = Bytes::from((0..5000u32).map(|i| i as u8).collect::<Vec<u8>>());
    let small = Bytes::from_static(b"tiny records");
    let parts = |mk: &dyn Fn(i32, Bytes) -> ProduceRequestPartitionData| {
        vec![
            mk(0, big.clone()),
            mk(1, small.clone()),
            mk(2, big.slice(7..)),
        ]
    };
    for version in ProduceRequest::MIN_VERSION..=ProduceRequest::MAX_VERSION {
        // v13 names the topic by id.
        let topic = if version >= 13 {
            ProduceRequestTopicData::default().with_topic_id(crate::wire::Uuid([7; 16]))
        } else {
            ProduceRequestTopicData::default().with_name(StrBytes::from("t"))
        };
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(vec![topic.with_partition_data(parts(&|i, r| {
                ProduceRequestPartitionData::default()
                    .with_index(i)
                    .with_records(Some(r))
            }))]);
        let mut copied = BytesMut::new();
        produce.encode(&mut copied, version).unwrap();
        let mut frame = FrameBuf::new();
        frame.bytes_mut().extend_from_slice(b"pre");
        produce.encode_to_frame(&mut frame, version).unwrap();
        assert_eq!(
            frame.shared_count(),
            2,
            "Produce v{version}: the two large batches"
        );
        assert_eq!(
            &frame.to_contiguous()[3..],
            &copied[..],
            "Produce v{version}"
        );
        assert_eq!(frame.written().len(), 3 + copied.len() - big.len() * 2 + 7);
    }
    let fetch = FetchResponse::default().with_responses(vec![FetchResponseResponse::default()
        .with_topic(StrBytes::from("t"))
        .with_partitions(vec![
            FetchResponsePartition::default().with_records(Some(big.clone())),
            FetchResponsePartition::default().with_records(None),
            FetchResponsePartition::default().with_records(Some(small.clone())),
        ])]);
    for version in FetchResponse::MIN_VERSION..=FetchResponse::MAX_VERSION {
        let mut copied = BytesMut::new();
        // v13+ name topics by id: the name must stay empty there.
        let f = if version >= 13 {
            let mut f = fetch.clone();
            f.responses[0].topic = StrBytes::default();
            f
        } else {
            fetch.clone()
        };
        f.encode(&mut copied, version).unwrap();
        let mut frame = FrameBuf::new();
        f.encode_to_frame(&mut frame, version).unwrap();
        assert_eq!(frame.shared_count(), 1, "Fetch v{version}");
        assert_eq!(frame.to_contiguous(), copied, "Fetch v{version}");
        let back = FetchResponse::decode(&mut copied.freeze(), version).unwrap();
        assert_eq!(back, f);
    }
}
