//! Share groups (KIP-932) on Apache Kafka 4.x: kpax's `ShareConsumer`.
//! The cases that kpax-fake's share groups also serve run on both
//! (`<case>::kafka` and `<case>::fake`); the share-group offset APIs, the Java interop and
//! the Kafka 3.9 refusal run on Kafka only.
//!
//! Each test sets its group's `share.auto.offset.reset` to `earliest`
//! (a group config, through kpax's admin) so that the records produced
//! before the members join are theirs to share.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::Cluster as TestCluster;
use kpax::admin::Admin;
use kpax::producer::{Producer, ProducerConfig, ProducerRecord};
use kpax::share::{
    AckMode, AcknowledgeType, AcquireMode, ShareConsumer, ShareConsumerConfig, ShareRecord,
};

/// A new group id whose share group starts at the earliest offset.
async fn share_group(tc: &TestCluster) -> String {
    let group = tc.group_id();
    tc.set_group_configs(&group, &[("share.auto.offset.reset", "earliest")])
        .await;
    group
}

fn config(group: &str) -> ShareConsumerConfig {
    ShareConsumerConfig::new(group).with_fetch_max_wait(Duration::from_millis(200))
}

fn value(r: &ShareRecord) -> String {
    String::from_utf8(r.value().unwrap().to_vec()).unwrap()
}

backends!(three_share_consumers_split_a_partition_exactly_once: kafka, fake(3));

/// Three members of one share group on a one-partition topic split its
/// records: each record is accepted exactly once, by one member, and no
/// record is held by two members at the same time.
async fn three_share_consumers_split_a_partition_exactly_once(tc: &TestCluster) {
    const N: usize = 600;
    let group = share_group(tc).await;
    let topic = tc.topic(1).await;
    tc.produce_numbered(&topic.name, 1, 0, N, None).await;

    // offset -> the member holding it now; every acceptance is counted.
    let held: Arc<Mutex<BTreeMap<i64, usize>>> = Arc::default();
    let accepted: Arc<Mutex<Vec<(usize, i64, String)>>> = Arc::default();
    let members: Vec<ShareConsumer> = (0..3)
        .map(|_| {
            let c = ShareConsumer::new(
                tc.kpax(),
                config(&group)
                    .with_max_records(20)
                    .with_acquire_mode(AcquireMode::RecordLimit),
            )
            .unwrap();
            c.subscribe([topic.name.clone()]).unwrap();
            c
        })
        .collect();
    // Every member joined and was assigned the partition before any reads.
    let joined = Instant::now() + Duration::from_secs(60);
    while members.iter().any(|c| c.assignment().is_empty()) {
        assert!(Instant::now() < joined, "members not all assigned in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut tasks = Vec::new();
    for (i, c) in members.iter().cloned().enumerate() {
        let held = held.clone();
        let accepted = accepted.clone();
        tasks.push(tokio::spawn(async move {
            while accepted.lock().unwrap().len() < N && Instant::now() < deadline {
                let Ok(batch) =
                    tokio::time::timeout(Duration::from_millis(500), c.recv_batch(20)).await
                else {
                    continue;
                };
                let batch = batch.expect("share records");
                for r in &batch {
                    if let Some(other) = held.lock().unwrap().insert(r.offset, i) {
                        panic!("offset {} held by members {other} and {i}", r.offset);
                    }
                }
                // Some work, so that the members' acquisitions overlap in time.
                tokio::time::sleep(Duration::from_millis(20)).await;
                for r in &batch {
                    held.lock().unwrap().remove(&r.offset);
                    accepted.lock().unwrap().push((i, r.offset, value(r)));
                    c.acknowledge(r, AcknowledgeType::Accept).unwrap();
                }
                c.commit().await.expect("acknowledgements accepted");
            }
        }));
    }
    for t in tasks {
        t.await.expect("member task");
    }
    for c in &members {
        c.close().await;
    }
    let accepted = accepted.lock().unwrap().clone();
    let mut per_member = [0usize; 3];
    for (i, _, _) in &accepted {
        per_member[*i] += 1;
    }
    let offsets: BTreeSet<i64> = accepted.iter().map(|(_, o, _)| *o).collect();
    let values: BTreeSet<&String> = accepted.iter().map(|(_, _, v)| v).collect();
    eprintln!("share group split {N} records: {per_member:?} per member");
    assert_eq!(
        accepted.len(),
        N,
        "every record accepted once: {per_member:?}"
    );
    assert_eq!(offsets.len(), N, "no offset accepted twice");
    assert_eq!(offsets, (0..N as i64).collect(), "offsets 0..{N}");
    assert_eq!(values.len(), N);
    assert!(
        per_member.iter().filter(|&&n| n > 0).count() >= 2,
        "the records were shared, not read by one member: {per_member:?}"
    );
}

backends!(released_records_return_and_rejected_ones_do_not: kafka, fake(3));

/// A released record comes back with a higher delivery count; a rejected
/// one never comes back.
async fn released_records_return_and_rejected_ones_do_not(tc: &TestCluster) {
    let group = share_group(tc).await;
    let topic = tc.topic(1).await;
    tc.produce_numbered(&topic.name, 1, 0, 20, None).await;
    let c = ShareConsumer::new(tc.kpax(), config(&group)).unwrap();
    c.subscribe([topic.name.clone()]).unwrap();

    // First delivery: release the even offsets, reject the odd ones.
    let mut first = BTreeMap::new();
    while first.len() < 20 {
        let r = tokio::time::timeout(Duration::from_secs(30), c.recv())
            .await
            .unwrap_or_else(|_| panic!("stalled at {} of 20", first.len()))
            .unwrap();
        assert_eq!(r.delivery_count, 1, "first delivery of offset {}", r.offset);
        let kind = if r.offset % 2 == 0 {
            AcknowledgeType::Release
        } else {
            AcknowledgeType::Reject
        };
        c.acknowledge(&r, kind).unwrap();
        assert!(
            c.acknowledge(&r, AcknowledgeType::Accept).is_err(),
            "a record is acknowledged once"
        );
        first.insert(r.offset, value(&r));
    }
    c.commit().await.unwrap();

    // Second delivery: only the released ones, each a second time.
    let mut second = BTreeMap::new();
    while second.len() < 10 {
        let r = tokio::time::timeout(Duration::from_secs(30), c.recv())
            .await
            .unwrap_or_else(|_| panic!("released records stalled at {}", second.len()))
            .unwrap();
        assert_eq!(r.offset % 2, 0, "rejected offset {} came back", r.offset);
        assert_eq!(r.delivery_count, 2, "offset {}", r.offset);
        assert_eq!(first[&r.offset], value(&r));
        c.acknowledge(&r, AcknowledgeType::Accept).unwrap();
        second.insert(r.offset, r.delivery_count);
    }
    c.commit().await.unwrap();
    // Nothing else comes: the rejected are archived, the released accepted.
    let more = tokio::time::timeout(Duration::from_secs(3), c.recv()).await;
    assert!(more.is_err(), "unexpected record: {more:?}");
    c.close().await;
}

backends!(implicit_mode_accepts_what_was_handed_out: kafka, fake(3));

/// Implicit acknowledgement: what a member was handed is accepted when it
/// asks for more (or closes); another member of the group then sees only
/// newer records.
async fn implicit_mode_accepts_what_was_handed_out(tc: &TestCluster) {
    let group = share_group(tc).await;
    let topic = tc.topic(2).await;
    tc.produce_numbered(&topic.name, 2, 0, 40, None).await;
    let c = ShareConsumer::new(tc.kpax(), config(&group).with_ack_mode(AckMode::Implicit)).unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    let mut got = BTreeSet::new();
    while got.len() < 40 {
        let batch = tokio::time::timeout(Duration::from_secs(30), c.recv_batch(15))
            .await
            .unwrap_or_else(|_| panic!("stalled at {} of 40", got.len()))
            .unwrap();
        for r in &batch {
            assert!(c.acknowledge(r, AcknowledgeType::Accept).is_err());
            got.insert(value(r));
        }
    }
    c.commit().await.unwrap();
    c.close().await;

    tc.produce_numbered(&topic.name, 2, 40, 50, None).await;
    let d = ShareConsumer::new(tc.kpax(), config(&group)).unwrap();
    d.subscribe([topic.name.clone()]).unwrap();
    let mut later = BTreeSet::new();
    while later.len() < 10 {
        let r = tokio::time::timeout(Duration::from_secs(30), d.recv())
            .await
            .unwrap_or_else(|_| panic!("stalled at {} of 10", later.len()))
            .unwrap();
        d.acknowledge(&r, AcknowledgeType::Accept).unwrap();
        later.insert(value(&r));
    }
    d.commit().await.unwrap();
    let expected: BTreeSet<String> = (40..50).map(|i| format!("rec-{i}")).collect();
    assert_eq!(later, expected, "only the records produced after");
    let more = tokio::time::timeout(Duration::from_secs(2), d.recv()).await;
    assert!(
        more.is_err(),
        "a record accepted implicitly came back: {more:?}"
    );
    d.close().await;
}

/// Bad settings are typed errors.
#[tokio::test]
async fn share_consumer_settings_are_checked() {
    let cluster = kpax::Cluster::new(["127.0.0.1:1"], harness::client::client_config()).unwrap();
    let e = ShareConsumer::new(cluster.clone(), ShareConsumerConfig::new("")).unwrap_err();
    assert!(e.to_string().contains("group id"), "{e}");
    let e = ShareConsumer::new(
        cluster.clone(),
        ShareConsumerConfig::new("g").with_max_records(0),
    )
    .unwrap_err();
    assert!(e.to_string().contains("max_records"), "{e}");
    let c = ShareConsumer::new(cluster, ShareConsumerConfig::new("g")).unwrap();
    assert!(c.subscribe([""]).is_err());
    c.close().await;
    assert!(c.recv().await.is_err(), "recv after close");
}

backends!(unacknowledged_records_go_to_another_member_when_the_lock_expires: kafka, fake(3));

/// A member that holds records without acknowledging them loses them when
/// the acquisition lock expires: another member gets them, delivered a
/// second time, and accepts them.
async fn unacknowledged_records_go_to_another_member_when_the_lock_expires(tc: &TestCluster) {
    let group = share_group(tc).await;
    // The shortest lock Kafka allows by default (group.share.min.record.lock.duration.ms).
    tc.set_group_configs(&group, &[("share.record.lock.duration.ms", "15000")])
        .await;
    let topic = tc.topic(1).await;
    tc.produce_numbered(&topic.name, 1, 0, 10, None).await;

    let stuck = ShareConsumer::new(tc.kpax(), config(&group)).unwrap();
    stuck.subscribe([topic.name.clone()]).unwrap();
    let mut held = BTreeSet::new();
    while held.len() < 10 {
        let batch = tokio::time::timeout(Duration::from_secs(30), stuck.recv_batch(10))
            .await
            .expect("the first member gets the records")
            .unwrap();
        held.extend(batch.iter().map(value));
    }
    let lock = stuck.acquisition_lock_timeout_ms();
    assert!(lock > 0 && lock <= 15_000, "lock {lock} ms");

    // The second member joins and waits: nothing until the lock expires.
    let other = ShareConsumer::new(tc.kpax(), config(&group)).unwrap();
    other.subscribe([topic.name.clone()]).unwrap();
    let started = Instant::now();
    let mut again = BTreeMap::new();
    while again.len() < 10 {
        let r = tokio::time::timeout(Duration::from_secs(40), other.recv())
            .await
            .unwrap_or_else(|_| panic!("lock expiry: {} of 10 came back", again.len()))
            .unwrap();
        assert_eq!(r.delivery_count, 2, "offset {} delivered again", r.offset);
        other.acknowledge(&r, AcknowledgeType::Accept).unwrap();
        again.insert(r.offset, value(&r));
    }
    other.commit().await.unwrap();
    let waited = started.elapsed();
    eprintln!("records came back to another member after {waited:?} (lock {lock} ms)");
    assert!(
        waited >= Duration::from_secs(5),
        "came back before the lock could expire: {waited:?}"
    );
    assert_eq!(again.values().cloned().collect::<BTreeSet<_>>(), held);
    stuck.close().await;
    other.close().await;
}

/// Kafka 3.9 has no share groups: `recv` fails with a typed error naming
/// the API, instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_3_9_without_share_groups_is_a_typed_error() {
    let Some(tc) = TestCluster::kafka_3_9() else {
        return;
    };
    let topic = tc.topic(1).await;
    let c = ShareConsumer::new(tc.kpax(), config(&tc.group_id())).unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    let e = tokio::time::timeout(Duration::from_secs(30), c.recv())
        .await
        .expect("an error, not a wait")
        .unwrap_err();
    assert!(
        matches!(e, kpax::Error::UnsupportedVersion { api, .. } if api == kpax::proto::generated::ApiKey::ShareGroupHeartbeat),
        "{e}"
    );
    c.close().await;
}

/// A Java `KafkaShareConsumer` (kafka-clients of the broker's release) and
/// a kpax member in one share group: between them every record is
/// accepted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_java_and_kpax_members_share_one_group() {
    let Some(tc) = TestCluster::kafka() else {
        return;
    };
    let Some(nodes) = tc.kafka_nodes().cloned() else {
        harness::skip_or_fail("the Java interop tests need the bundled cluster (KPAX_KAFKA)");
        return;
    };
    let Some(java) = harness::java::Java::of(&nodes) else {
        return;
    };
    const ROUNDS: usize = 40;
    const N: usize = ROUNDS * 10;
    let group = share_group(&tc).await;
    let topic = tc.topic(1).await;
    let bootstrap = tc.bootstrap().to_string();
    let jp = java.spawn(&[
        "share-consume",
        "--bootstrap",
        &bootstrap,
        "--topic",
        &topic.name,
        "--group",
        &group,
        "--idle-ms",
        "8000",
        "--max-ms",
        "90000",
        "--max-poll-records",
        "10",
        // A member that works on what it took (as a real one does): with
        // none, under load the JVM's next ShareFetch was always first in
        // line and took all 400 (seen twice on a loaded 2-core machine).
        "--pause-ms",
        "100",
    ]);
    let c = ShareConsumer::new(
        tc.kpax(),
        config(&group)
            .with_max_records(10)
            .with_acquire_mode(AcquireMode::RecordLimit),
    )
    .unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    // Both members in the group before the first record, so that both
    // fetch from the start (CI once saw the JVM's member take all 400
    // while kpax's was still joining). kpax keeps asking for records
    // meanwhile (there are none yet).
    let admin = Admin::new(tc.kpax());
    let joined_by = Instant::now() + Duration::from_secs(60);
    loop {
        let members = admin
            .describe_share_groups(&[group.as_str()])
            .await
            .ok()
            .and_then(|mut v| v.pop())
            .and_then(|(_, r)| r.ok())
            .map_or(0, |d| d.members.len());
        if members >= 2 {
            break;
        }
        assert!(
            Instant::now() < joined_by,
            "the Java and kpax members did not both join: {members} member(s)"
        );
        let _ = tokio::time::timeout(Duration::from_millis(250), c.recv_batch(10)).await;
    }
    // Small batches over 10 s, so that both members' fetches find records.
    // (Produced while kpax waits for records: a share consumer acquires
    // records only while its application asks for them.)
    let producing = {
        let p = Producer::new(tc.kpax(), ProducerConfig::default()).unwrap();
        let name = topic.name.clone();
        tokio::spawn(async move {
            for i in 0..ROUNDS {
                let mut acks = Vec::new();
                for j in i * 10..i * 10 + 10 {
                    let r =
                        ProducerRecord::new(name.as_str(), format!("rec-{j}")).with_partition(0);
                    acks.push(p.send(r).await.expect("send"));
                }
                for a in acks {
                    a.await.expect("delivered");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            assert!(p.close(Duration::from_secs(10)).await);
        })
    };
    let java_offsets = |lines: &[String]| -> Vec<i64> {
        lines
            .iter()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0] == "rec").then(|| f[2].parse().unwrap())
            })
            .collect()
    };
    let mut mine: Vec<i64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while mine.len() + java_offsets(&jp.lines()).len() < N {
        assert!(
            Instant::now() < deadline,
            "stalled: kpax {} + java {} of {N}",
            mine.len(),
            java_offsets(&jp.lines()).len()
        );
        let Ok(batch) = tokio::time::timeout(Duration::from_millis(500), c.recv_batch(10)).await
        else {
            continue;
        };
        for r in batch.unwrap() {
            c.acknowledge(&r, AcknowledgeType::Accept).unwrap();
            mine.push(r.offset);
        }
        c.commit().await.unwrap();
    }
    c.close().await;
    producing.await.expect("producer task");
    let lines = jp.wait(Duration::from_secs(60)).await;
    let theirs = java_offsets(&lines);
    eprintln!(
        "share group with Java: kpax accepted {}, Java {}",
        mine.len(),
        theirs.len()
    );
    let all: BTreeSet<i64> = mine.iter().chain(&theirs).copied().collect();
    assert_eq!(mine.len() + theirs.len(), N, "each record accepted once");
    assert_eq!(all, (0..N as i64).collect(), "every record accepted");
    assert!(
        !mine.is_empty() && !theirs.is_empty(),
        "both members took part: kpax {}, Java {}",
        mine.len(),
        theirs.len()
    );
}

backends!(describe_share_groups_shows_members_and_assignments: kafka, fake(3));

/// `Admin::describe_share_groups`: the members, their subscriptions and
/// assignments as the coordinator sees them; an unknown group is an error.
async fn describe_share_groups_shows_members_and_assignments(tc: &TestCluster) {
    let group = share_group(tc).await;
    let topic = tc.topic(2).await;
    let c = ShareConsumer::new(tc.kpax(), config(&group)).unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    let joined = Instant::now() + Duration::from_secs(60);
    while c.assignment().len() < 2 {
        assert!(Instant::now() < joined, "not assigned in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let admin = Admin::new(tc.kpax());
    let missing = format!("{group}-missing");
    let r = admin
        .describe_share_groups(&[&group, &missing])
        .await
        .unwrap();
    assert_eq!(r.len(), 2);
    let d = r[0].1.as_ref().expect("the share group");
    assert_eq!(d.group_id, group);
    assert_eq!(d.members.len(), 1, "{d:?}");
    let m = &d.members[0];
    assert_eq!(m.member_id, c.member_id());
    assert_eq!(m.member_epoch, c.member_epoch());
    assert_eq!(m.subscribed_topics, vec![topic.name.clone()]);
    let parts: Vec<(String, i32)> = m
        .assignment
        .iter()
        .map(|tp| (tp.topic.clone(), tp.partition))
        .collect();
    assert_eq!(
        parts,
        vec![(topic.name.clone(), 0), (topic.name.clone(), 1)]
    );
    assert_eq!(d.state, "Stable", "{d:?}");
    let e = r[1].1.as_ref().unwrap_err();
    assert_eq!(
        e.code(),
        Some(kpax::proto::generated::ErrorCode::GROUP_ID_NOT_FOUND),
        "{e}"
    );
    c.close().await;
}

backends!(a_record_released_past_the_delivery_limit_is_not_delivered_again: kafka, fake(3));

/// A record released again and again is delivered at most
/// `group.share.delivery.count.limit` times (5 by default), then archived.
async fn a_record_released_past_the_delivery_limit_is_not_delivered_again(tc: &TestCluster) {
    let group = share_group(tc).await;
    let topic = tc.topic(1).await;
    tc.produce_numbered(&topic.name, 1, 0, 1, None).await;
    let c = ShareConsumer::new(tc.kpax(), config(&group)).unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    let mut counts = Vec::new();
    loop {
        let wait = if counts.is_empty() { 30 } else { 3 };
        let Ok(r) = tokio::time::timeout(Duration::from_secs(wait), c.recv()).await else {
            break;
        };
        let r = r.unwrap();
        assert_eq!(r.offset, 0);
        counts.push(r.delivery_count);
        c.acknowledge(&r, AcknowledgeType::Release).unwrap();
        c.commit().await.unwrap();
        assert!(counts.len() <= 10, "delivered without limit: {counts:?}");
    }
    assert_eq!(counts, vec![1, 2, 3, 4, 5], "delivery counts");
    c.close().await;
}

backends!(share_groups_are_listed_and_deleted: kafka, fake(3));

/// Share groups in `Admin::list_groups` (type `share`, ListGroups v5) and
/// `Admin::delete_groups` for an empty one.
async fn share_groups_are_listed_and_deleted(tc: &TestCluster) {
    let group = share_group(tc).await;
    let topic = tc.topic(1).await;
    tc.produce_numbered(&topic.name, 1, 0, 3, None).await;
    let c = ShareConsumer::new(tc.kpax(), config(&group)).unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    for _ in 0..3 {
        let r = tokio::time::timeout(Duration::from_secs(30), c.recv())
            .await
            .expect("a record")
            .unwrap();
        c.acknowledge(&r, AcknowledgeType::Accept).unwrap();
    }
    c.commit().await.unwrap();
    let admin = Admin::new(tc.kpax());
    let listed = admin.list_groups().await.unwrap();
    let g = listed
        .groups
        .iter()
        .find(|g| g.group_id == group)
        .unwrap_or_else(|| panic!("{group} not listed: {:?}", listed.groups));
    assert_eq!(g.group_type.as_deref(), Some("share"), "{g:?}");
    c.close().await;
    let deleted = admin.delete_groups(&[&group]).await.unwrap();
    deleted[0]
        .1
        .as_ref()
        .expect("an empty share group is deleted");
    let after = admin.describe_share_groups(&[&group]).await.unwrap();
    let e = after[0].1.as_ref().expect_err("gone");
    assert_eq!(
        e.code(),
        Some(kpax::proto::generated::ErrorCode::GROUP_ID_NOT_FOUND),
        "{e}"
    );
}

/// Receives `n` records from `c`, accepting each, and commits.
async fn accept_n(c: &ShareConsumer, n: usize) -> Vec<(i64, i16)> {
    let mut got = Vec::new();
    while got.len() < n {
        let r = tokio::time::timeout(Duration::from_secs(30), c.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {n} records in 30 s", got.len()))
            .unwrap();
        c.acknowledge(&r, AcknowledgeType::Accept).unwrap();
        got.push((r.offset, r.delivery_count));
    }
    c.commit().await.unwrap();
    got
}

/// A share group's start offsets: read with their lag, refused while a
/// member is in the group, set once it is empty (the next member starts
/// there), and deleted (the next member starts from
/// `share.auto.offset.reset` again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_share_group_offsets_are_read_set_and_deleted() {
    let Some(tc) = TestCluster::kafka() else {
        return;
    };
    let group = share_group(&tc).await;
    let topic = tc.topic(1).await;
    tc.produce_numbered(&topic.name, 1, 0, 10, None).await;
    let admin = Admin::new(tc.kpax());
    let tp = kpax::admin::TopicPartition::new(topic.name.as_str(), 0);

    let c = ShareConsumer::new(tc.kpax(), config(&group)).unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    let first = accept_n(&c, 10).await;
    assert_eq!(
        first.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    // All ten accepted: no lag (the share coordinator persists the state
    // as the acknowledgements arrive; give it a moment).
    let until = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let l = admin
            .list_share_group_offsets(&group, Some(&[&topic.name]))
            .await
            .unwrap();
        let o = *l[&tp].as_ref().unwrap();
        if o.lag == Some(0) || Instant::now() > until {
            break o;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(listed.lag, Some(0), "{listed:?}");
    assert!(listed.start_offset.is_some(), "{listed:?}");

    c.close().await;

    // Empty now: start at offset 4; the next member gets 4..10, each for
    // the first time.
    let set = admin
        .alter_share_group_offsets(&group, &[(tp.clone(), 4)])
        .await
        .unwrap();
    set[&tp].as_ref().expect("offset set");
    let listed = admin.list_share_group_offsets(&group, None).await.unwrap();
    assert_eq!(listed[&tp].as_ref().unwrap().start_offset, Some(4));
    let c = ShareConsumer::new(tc.kpax(), config(&group)).unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    let again = accept_n(&c, 6).await;
    assert_eq!(again, (4..10).map(|o| (o, 1)).collect::<Vec<_>>());
    c.close().await;

    // Deleted: the group has no state on the topic; the next member starts
    // from share.auto.offset.reset (earliest), at offset 0.
    let deleted = admin
        .delete_share_group_offsets(&group, &[&topic.name])
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
    deleted[0].1.as_ref().expect("state deleted");
    let listed = admin.list_share_group_offsets(&group, None).await.unwrap();
    assert!(
        listed
            .get(&tp)
            .is_none_or(|r| r.as_ref().unwrap().start_offset.is_none()),
        "{listed:?}"
    );
    let c = ShareConsumer::new(tc.kpax(), config(&group)).unwrap();
    c.subscribe([topic.name.clone()]).unwrap();
    let fresh = accept_n(&c, 10).await;
    assert_eq!(fresh[0], (0, 1), "{fresh:?}");
    // With a member in the group, Kafka refuses to move its offsets.
    let refused = admin
        .alter_share_group_offsets(&group, &[(tp.clone(), 4)])
        .await
        .expect_err("a group with members");
    assert_eq!(
        refused.code(),
        Some(kpax::proto::generated::ErrorCode::NON_EMPTY_GROUP),
        "{refused}"
    );
    let refused = admin
        .delete_share_group_offsets(&group, &[&topic.name])
        .await
        .expect_err("a group with members");
    assert_eq!(
        refused.code(),
        Some(kpax::proto::generated::ErrorCode::NON_EMPTY_GROUP),
        "{refused}"
    );
    c.close().await;

    // An unknown topic is a typed error, not an empty answer.
    let e = admin
        .list_share_group_offsets(&group, Some(&["no-such-topic-kpax"]))
        .await
        .expect_err("unknown topic");
    assert_eq!(
        e.code(),
        Some(kpax::proto::generated::ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
        "{e}"
    );
}
