//! `Consumer::group_metadata()` feeding the transactional producer's
//! `send_offsets_to_transaction` (KIP-447): consume-transform-produce on
//! kpax-fake (which keeps transactional offsets and aborted-transaction
//! indexes; see tests/kpax_transactions.rs for why not the mock), one
//! transaction aborted and redone, offsets committed exactly with the
//! output; the metadata follows the membership (member id as the
//! coordinator describes it, a new generation after a rebalance, the
//! static instance id).

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kpax::admin::Admin;
use kpax::consumer::{Consumer, ConsumerConfig, IsolationLevel, OffsetReset, StartAt};
use kpax::producer::{Producer, ProducerConfig, ProducerRecord};
use kpax::{ClientConfig, Cluster, ConsumerRecord};
use kpax_fake::FakeCluster;

fn client() -> ClientConfig {
    ClientConfig::default()
        .with_request_timeout(Duration::from_secs(10))
        .with_connect_timeout(Duration::from_secs(2))
        .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .with_metadata_max_age(Duration::from_secs(5))
}

fn cluster(fake: &FakeCluster) -> Cluster {
    Cluster::new([fake.bootstrap()], client()).unwrap()
}

fn member(fake: &FakeCluster, group: &str, instance: Option<&str>) -> Consumer {
    let mut cfg = ConsumerConfig::default()
        .with_group_id(group)
        .with_auto_commit(false)
        .with_auto_offset_reset(OffsetReset::Earliest)
        .with_fetch_max_wait(Duration::from_millis(50));
    if let Some(id) = instance {
        cfg = cfg.with_group_instance_id(id);
    }
    Consumer::new(cluster(fake), cfg).unwrap()
}

/// Up to `max` records, waiting at most `wait` for each.
async fn batch(c: &Consumer, max: usize, wait: Duration) -> Vec<ConsumerRecord> {
    let mut out = Vec::new();
    while out.len() < max {
        match tokio::time::timeout(wait, c.recv()).await {
            Ok(r) => out.push(r.unwrap()),
            Err(_) => break,
        }
    }
    out
}

fn text(r: &ConsumerRecord) -> String {
    String::from_utf8(r.value().unwrap().to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_with_group_metadata() {
    const N: usize = 60;
    let fake = FakeCluster::new(3).await.unwrap();
    let input = harness::unique_name("ctp-in");
    let output = harness::unique_name("ctp-out");
    fake.create_topic(&input, 2).unwrap();
    fake.create_topic(&output, 2).unwrap();
    let plain = Producer::new(cluster(&fake), ProducerConfig::default()).unwrap();
    let mut fs = Vec::new();
    for i in 0..N {
        let r = ProducerRecord::new(&input, format!("in-{i}")).with_partition(i as i32 % 2);
        fs.push(plain.send(r).await.unwrap());
    }
    for f in fs {
        f.await.unwrap();
    }
    plain.close(Duration::from_secs(5)).await;

    let group = harness::unique_name("ctp-group");
    let c = member(&fake, &group, None);
    assert!(
        Consumer::new(cluster(&fake), ConsumerConfig::default())
            .unwrap()
            .group_metadata()
            .is_none(),
        "no group: no metadata"
    );
    c.subscribe([input.clone()]).unwrap();
    let p = Producer::new(
        cluster(&fake),
        ProducerConfig::default()
            .with_transactional_id(harness::unique_name("ctp-txn"))
            .with_linger(Duration::from_millis(2)),
    )
    .unwrap();
    p.init_transactions().await.unwrap();

    let mut done = 0usize;
    let mut txns = 0;
    let mut aborted = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while done < N {
        assert!(Instant::now() < deadline, "stuck after {done} of {N}");
        let records = batch(&c, 8, Duration::from_millis(500)).await;
        if records.is_empty() {
            continue;
        }
        let meta = c.group_metadata().expect("a group member has metadata");
        assert_eq!(meta.group_id, group);
        assert!(meta.generation_id >= 0, "{meta:?}");
        assert!(!meta.member_id.is_empty(), "{meta:?}");
        assert_eq!(meta.group_instance_id, None);
        p.begin_transaction().unwrap();
        let mut offsets: BTreeMap<kpax::TopicPartition, i64> = BTreeMap::new();
        let mut firsts: BTreeMap<i32, i64> = BTreeMap::new();
        let mut acks = Vec::new();
        for r in &records {
            let out = text(r).replace("in-", "out-");
            acks.push(
                p.send(ProducerRecord::new(&output, out).with_partition(r.partition))
                    .await
                    .unwrap(),
            );
            offsets.insert(
                kpax::TopicPartition::new(input.clone(), r.partition),
                r.offset + 1,
            );
            firsts.entry(r.partition).or_insert(r.offset);
        }
        for a in acks {
            a.await.unwrap();
        }
        p.send_offsets_to_transaction(offsets, &meta).await.unwrap();
        txns += 1;
        if txns == 2 && !aborted {
            // abort one: its output vanishes and its input is read again
            p.abort_transaction().await.unwrap();
            aborted = true;
            for (part, first) in firsts {
                c.seek(&input, part, StartAt::Offset(first));
            }
            continue;
        }
        p.commit_transaction().await.unwrap();
        done += records.len();
    }
    assert!(aborted);
    for part in 0..2 {
        let committed = fake.committed(&group, &input, part).map(|c| c.offset);
        assert_eq!(committed, Some(N as i64 / 2), "partition {part}");
    }
    // read_committed sees each transformed record exactly once
    let reader = Consumer::new(
        cluster(&fake),
        ConsumerConfig::default()
            .with_isolation_level(IsolationLevel::ReadCommitted)
            .with_fetch_max_wait(Duration::from_millis(50)),
    )
    .unwrap();
    reader.assign(
        [
            kpax::TopicPartition::new(output.clone(), 0),
            kpax::TopicPartition::new(output.clone(), 1),
        ],
        StartAt::Earliest,
    );
    let got = batch(&reader, N + 10, Duration::from_secs(2)).await;
    let texts: Vec<String> = got.iter().map(text).collect();
    let unique: BTreeSet<&String> = texts.iter().collect();
    assert_eq!(texts.len(), N, "{texts:?}");
    assert_eq!(
        unique,
        (0..N)
            .map(|i| format!("out-{i}"))
            .collect::<BTreeSet<_>>()
            .iter()
            .collect()
    );

    // the member id is the one the coordinator knows
    let meta = c.group_metadata().unwrap();
    let admin = Admin::new(cluster(&fake));
    let described = admin.describe_groups(&[&group]).await.unwrap();
    let members: Vec<String> = described[0]
        .1
        .as_ref()
        .unwrap()
        .members
        .iter()
        .map(|m| m.member_id.clone())
        .collect();
    assert_eq!(members, vec![meta.member_id.clone()]);

    // a second member: a rebalance, a new generation in the metadata
    let c2 = member(&fake, &group, Some("static-2"));
    c2.subscribe([input.clone()]).unwrap();
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        // consuming keeps the member's rebalance moving
        let _ = batch(&c, 1, Duration::from_millis(50)).await;
        let _ = batch(&c2, 1, Duration::from_millis(50)).await;
        let now1 = c.group_metadata().unwrap();
        let now2 = c2.group_metadata().unwrap();
        if now1.generation_id > meta.generation_id && now2.generation_id == now1.generation_id {
            assert_eq!(
                now1.member_id, meta.member_id,
                "same member, new generation"
            );
            assert_eq!(now2.group_instance_id.as_deref(), Some("static-2"));
            assert_ne!(now2.member_id, now1.member_id);
            break;
        }
        assert!(
            Instant::now() < until,
            "no new generation: {now1:?} {now2:?} (was {meta:?})"
        );
    }
    p.close(Duration::from_secs(5)).await;
    c2.close().await;
    c.close().await;
}
