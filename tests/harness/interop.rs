//! librdkafka as the independent peer: produce and consume with it, so tests
//! can check that what kpax writes librdkafka reads, and the reverse.
//!
//! Every call is bounded by a timeout so that a test never hangs.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// Compression codec for produced batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    /// librdkafka's `compression.codec` value.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// A record to produce, or one that was read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// A record read back from a partition, at its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub offset: i64,
    pub record: Record,
}

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// `n` records numbered `0..n`: key `key-i`, value `value-i`, header
/// `seq = i`; every fifth record also has a header with a null value.
pub fn numbered(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut headers = vec![("seq".to_string(), Some(i.to_string().into_bytes()))];
            if i % 5 == 0 {
                headers.push(("nothing".to_string(), None));
            }
            Record {
                key: Some(format!("key-{i}").into_bytes()),
                value: Some(format!("value-{i}").into_bytes()),
                headers,
            }
        })
        .collect()
}

/// How librdkafka produces.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    pub codec: Codec,
    pub idempotent: bool,
    /// librdkafka's `message.timeout.ms`: how long a record may wait for
    /// delivery, retries included.
    pub message_timeout: Duration,
    /// Any other librdkafka settings.
    pub extra: Vec<(String, String)>,
}

impl Default for ProduceOptions {
    fn default() -> Self {
        ProduceOptions {
            codec: Codec::None,
            idempotent: false,
            message_timeout: Duration::from_secs(10),
            extra: Vec::new(),
        }
    }
}

/// Produces `records` with librdkafka, record `i` to partition
/// `partition_of(i)`, and waits for every delivery. Returns where each record
/// landed, in input order, or the first delivery error.
pub async fn produce(
    bootstrap: &str,
    topic: &str,
    records: &[Record],
    partition_of: impl Fn(usize) -> i32,
    options: &ProduceOptions,
) -> Result<Vec<Delivered>, KafkaError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("compression.codec", options.codec.name())
        .set("enable.idempotence", options.idempotent.to_string())
        .set(
            "message.timeout.ms",
            options.message_timeout.as_millis().to_string(),
        )
        .set("linger.ms", "5")
        .set("reconnect.backoff.max.ms", "500");
    for (k, v) in &options.extra {
        config.set(k, v);
    }
    let producer: FutureProducer = config.create()?;

    let mut pending = Vec::with_capacity(records.len());
    for (i, rec) in records.iter().enumerate() {
        let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
        for (key, value) in &rec.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_ref(),
            });
        }
        let mut fr: FutureRecord<'_, Vec<u8>, Vec<u8>> = FutureRecord::to(topic)
            .partition(partition_of(i))
            .headers(headers);
        if let Some(k) = &rec.key {
            fr = fr.key(k);
        }
        if let Some(v) = &rec.value {
            fr = fr.payload(v);
        }
        let delivery = producer.send_result(fr).map_err(|(e, _)| e)?;
        pending.push(delivery);
    }

    // Every delivery resolves within message.timeout.ms; the slack covers
    // librdkafka's own scheduling.
    let deadline = options.message_timeout + Duration::from_secs(5);
    let mut delivered = Vec::with_capacity(pending.len());
    let outcome = tokio::time::timeout(deadline, async {
        for delivery in pending {
            match delivery.await {
                Ok(Ok(d)) => delivered.push(Delivered {
                    partition: d.partition,
                    offset: d.offset,
                }),
                Ok(Err((e, _))) => return Err(e),
                Err(_) => return Err(KafkaError::Canceled),
            }
        }
        Ok(())
    })
    .await;
    match outcome {
        Ok(Ok(())) => Ok(delivered),
        Ok(Err(e)) => Err(e),
        Err(_) => panic!("librdkafka deliveries did not resolve within {deadline:?}"),
    }
}

/// When [`consume`] stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Every partition has been read to its end (its high watermark).
    End,
    /// At least this many records in total have been read.
    Count(usize),
}

/// [`consume`] ran out of time; carries what it had read.
#[derive(Debug)]
pub struct ConsumeTimeout {
    pub read: BTreeMap<i32, Vec<Consumed>>,
    pub wanted: Until,
}

impl fmt::Display for ConsumeTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts: Vec<String> = self
            .read
            .iter()
            .map(|(p, r)| format!("p{p}: {}", r.len()))
            .collect();
        write!(
            f,
            "librdkafka consumer timed out waiting for {:?}; read {}",
            self.wanted,
            counts.join(", ")
        )
    }
}

impl std::error::Error for ConsumeTimeout {}

/// Reads partitions `0..partitions` of `topic` from the beginning with
/// librdkafka (assigned, no group membership, no commits), until `until` or `timeout`. Returns the
/// records of each partition in the order read.
pub async fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    until: Until,
    timeout: Duration,
) -> Result<BTreeMap<i32, Vec<Consumed>>, ConsumeTimeout> {
    let bootstrap = bootstrap.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        consume_blocking(&bootstrap, &topic, partitions, until, timeout)
    })
    .await
    .expect("consumer thread panicked")
}

fn consume_blocking(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    until: Until,
    timeout: Duration,
) -> Result<BTreeMap<i32, Vec<Consumed>>, ConsumeTimeout> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka's assign() needs a group id even though this consumer
        // never joins the group nor commits.
        .set("group.id", super::unique_name("reader"))
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "100")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("reconnect.backoff.max.ms", "500")
        .create()
        .expect("librdkafka consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&assignment).expect("assign partitions");

    let mut read: BTreeMap<i32, Vec<Consumed>> = (0..partitions).map(|p| (p, Vec::new())).collect();
    let mut at_end = vec![false; partitions as usize];
    let mut total = 0usize;
    let deadline = Instant::now() + timeout;
    loop {
        let done = match until {
            Until::End => at_end.iter().all(|&e| e),
            Until::Count(n) => total >= n,
        };
        if done {
            return Ok(read);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConsumeTimeout {
                read,
                wanted: until,
            });
        }
        match consumer.poll(left.min(Duration::from_millis(100))) {
            None => {}
            Some(Ok(msg)) => {
                let p = msg.partition();
                at_end[p as usize] = false;
                let headers = msg
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default();
                read.entry(p).or_default().push(Consumed {
                    offset: msg.offset(),
                    record: Record {
                        key: msg.key().map(<[u8]>::to_vec),
                        value: msg.payload().map(<[u8]>::to_vec),
                        headers,
                    },
                });
                total += 1;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => at_end[p as usize] = true,
            // Transient errors (connection refused while a broker is down,
            // ...) are retried by librdkafka; the deadline bounds them.
            Some(Err(_)) => {}
        }
    }
}

/// Leader broker id of each partition of `topic`, from librdkafka's view of
/// the cluster's metadata.
pub async fn leaders(bootstrap: &str, topic: &str) -> Result<BTreeMap<i32, i32>, KafkaError> {
    let bootstrap = bootstrap.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()?;
        let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(5))?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| (p.id(), p.leader())))
            .collect())
    })
    .await
    .expect("metadata thread panicked")
}

/// Committed offset of group `group` for partitions `0..partitions` of
/// `topic` (OffsetFetch, sent to the group's coordinator); `None` where
/// nothing is committed.
pub async fn committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Result<Vec<Option<i64>>, KafkaError> {
    let bootstrap = bootstrap.to_string();
    let group = group.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(&topic, p);
        }
        let offsets = consumer.committed_offsets(tpl, Duration::from_secs(5))?;
        Ok((0..partitions)
            .map(
                |p| match offsets.find_partition(&topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                },
            )
            .collect())
    })
    .await
    .expect("offset fetch thread panicked")
}

/// Checks a [`consume`] result against what was produced: every partition
/// holds exactly the records sent to it, in send order, at the delivered
/// offsets, which increase.
pub fn assert_read_back(
    sent: &[Record],
    delivered: &[Delivered],
    read: &BTreeMap<i32, Vec<Consumed>>,
) {
    assert_eq!(sent.len(), delivered.len(), "one delivery per record");
    let mut expected: BTreeMap<i32, Vec<Consumed>> = BTreeMap::new();
    for (rec, d) in sent.iter().zip(delivered) {
        expected.entry(d.partition).or_default().push(Consumed {
            offset: d.offset,
            record: rec.clone(),
        });
    }
    let total: usize = read.values().map(Vec::len).sum();
    assert_eq!(total, sent.len(), "records read back");
    for (p, want) in &expected {
        let got = read.get(p).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(got.len(), want.len(), "record count of partition {p}");
        assert!(
            got.windows(2).all(|w| w[0].offset < w[1].offset),
            "offsets of partition {p} increase"
        );
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g, w, "partition {p}, record {i}");
        }
    }
}
