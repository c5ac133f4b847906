//! `kpax produce`: records from arguments or stdin lines, optionally
//! `key<SEP>value`, to a partition or by key; prints each record's offset
//! (or only a count).

use crate::connect::{bounded, ConnectArgs};
use crate::error::{CliError, KafkaContext, Result};
use crate::output::{progress, write_out};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use kpax::producer::{Acks, DeliveryFuture};
use kpax::{Producer, ProducerConfig, ProducerRecord, RecordMetadata};
use kpax_cli::input::parse_json_record;
use kpax_proto::records::Compression;
use serde_json::json;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// Most records awaiting their acknowledgement before the next is sent.
const MAX_PENDING: usize = 4096;

/// A compression codec flag.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CodecArg {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard (Produce v7+).
    Zstd,
}

impl From<CodecArg> for Compression {
    fn from(c: CodecArg) -> Compression {
        match c {
            CodecArg::None => Compression::None,
            CodecArg::Gzip => Compression::Gzip,
            CodecArg::Snappy => Compression::Snappy,
            CodecArg::Lz4 => Compression::Lz4,
            CodecArg::Zstd => Compression::Zstd,
        }
    }
}

/// A `--partitioner` flag.
#[derive(Clone)]
pub struct PartitionerArg(std::sync::Arc<dyn kpax::producer::partitioner::Partitioner>);

impl std::fmt::Debug for PartitionerArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PartitionerArg")
    }
}

/// Parses `--partitioner`.
fn parse_partitioner(s: &str) -> std::result::Result<PartitionerArg, String> {
    kpax::producer::partitioner::by_name(s).map(PartitionerArg)
}

/// An acks flag.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AcksArg {
    /// No acknowledgement (offsets are not known).
    #[value(name = "0")]
    Zero,
    /// The leader's.
    #[value(name = "1")]
    One,
    /// Every in-sync replica's (idempotent producer).
    All,
}

/// How `kpax produce` reads records from stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// Each line is a value (or `key<SEP>value` with `-K`).
    Raw,
    /// Each line is a JSON record as `kpax consume -f json` prints it (key,
    /// value, headers, timestamp; `_base64` flags for binary), so a topic
    /// is copied byte for byte; a JSON string alone is a value.
    Json,
}

/// Flags of `kpax produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic.
    topic: String,
    /// Record values; without any, each stdin line is a record.
    values: Vec<String>,
    /// How stdin lines are read.
    #[arg(short = 'f', long, value_enum, default_value = "raw")]
    format: InputFormat,
    /// Split each record at the first SEP into key and value (`\t` for a tab).
    #[arg(short = 'K', long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Send empty keys and values as null (an empty value: a tombstone), as
    /// kcat's -Z does.
    #[arg(short = 'Z', long)]
    null_empty: bool,
    /// With `-f json`: send each record to the partition its line names
    /// (else by key, or `-p`).
    #[arg(long, conflicts_with = "partition")]
    keep_partition: bool,
    /// Send every record to this partition (default: by key, else sticky).
    #[arg(short, long)]
    partition: Option<i32>,
    /// How records without -p find their partition: default (murmur2 of
    /// the key as the Java client, unkeyed records sticky), murmur2 (every
    /// record by its key), round-robin or random (keys ignored); also the
    /// partitioner key of --config or -X.
    #[arg(long, value_name = "NAME", value_parser = parse_partitioner)]
    partitioner: Option<PartitionerArg>,
    /// Compression codec (default: compression.type from --config or -X,
    /// else none).
    #[arg(short = 'z', long, value_enum)]
    compression: Option<CodecArg>,
    /// Acknowledgements to wait for (default: acks from --config or -X,
    /// else all).
    #[arg(long, value_enum)]
    acks: Option<AcksArg>,
    /// A header on every record, NAME=VALUE (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Print only the number of records produced.
    #[arg(long)]
    count: bool,
    /// Print one JSON object per record (topic, partition, offset, timestamp).
    #[arg(long)]
    json: bool,
}

/// Turns `\t`, `\n` and `\\` in a separator flag into the characters.
pub fn unescape(s: &str) -> String {
    s.replace("\\t", "\t")
        .replace("\\n", "\n")
        .replace("\\\\", "\\")
}

/// Runs `kpax produce`.
///
/// # Errors
/// An unknown topic or partition, a bad flag or input line, a record not
/// delivered within the timeout.
pub async fn run(args: ProduceArgs) -> Result<()> {
    let sep = args.key_separator.as_deref().map(unescape);
    if sep.as_deref() == Some("") {
        return Err(CliError::Usage("--key-separator must not be empty".into()));
    }
    if args.format == InputFormat::Json && sep.is_some() {
        return Err(CliError::Usage(
            "--key-separator is for raw lines; a JSON record has its own \"key\"".into(),
        ));
    }
    if args.keep_partition && args.format != InputFormat::Json {
        return Err(CliError::Usage(
            "--keep-partition needs -f json (a raw line names no partition)".into(),
        ));
    }
    let mut headers = Vec::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once('=')
            .ok_or_else(|| CliError::Usage(format!("--header {h:?}: expected NAME=VALUE")))?;
        headers.push((Bytes::from(k.to_string()), Some(Bytes::from(v.to_string()))));
    }
    // The producer's settings are checked before anything connects.
    let props = args.connect.properties()?;
    let mut config =
        ProducerConfig::from_properties(&props).map_err(|e| CliError::Config(e.to_string()))?;
    let cluster = args.connect.cluster()?;
    let topic = args.topic.clone();
    let partitions = args
        .connect
        .bounded(
            &format!("looking up topic {topic}"),
            crate::reader::partitions(&cluster, &topic),
        )
        .await?;
    if let Some(p) = args.partition {
        if !partitions.contains(&p) {
            return Err(CliError::Failed(format!(
                "topic {topic} has no partition {p} (it has {})",
                partitions.len()
            )));
        }
    }
    let timeout = args.connect.timeout;
    if let Some(acks) = args.acks {
        config = config.with_acks(match acks {
            AcksArg::Zero => Acks::None,
            AcksArg::One => Acks::Leader,
            AcksArg::All => Acks::All,
        });
    }
    if let Some(p) = &args.partitioner {
        config = config.with_partitioner(p.0.clone());
    }
    if let Some(codec) = args.compression {
        config = config.with_compression(codec.into());
    }
    if props.get("delivery.timeout.ms").is_none() {
        config = config.with_delivery_timeout(timeout);
    }
    if props.get("max.block.ms").is_none() {
        config = config.with_max_block(timeout);
    }
    let producer = Producer::new(cluster, config).kafka(|| "starting the producer".into())?;

    let format = args.format;
    let null_empty = args.null_empty;
    let keep_partition = args.keep_partition;
    let make = |n: usize, line: &str| -> Result<ProducerRecord> {
        let mut r = if format == InputFormat::Json {
            let j =
                parse_json_record(line).map_err(|e| CliError::Input(format!("record {n}: {e}")))?;
            ProducerRecord {
                topic: topic.clone(),
                partition: if keep_partition { j.partition } else { None },
                key: j.key.map(Bytes::from),
                value: j.value.map(Bytes::from),
                headers: j
                    .headers
                    .into_iter()
                    .map(|(k, v)| (Bytes::from(k), v.map(Bytes::from)))
                    .collect(),
                timestamp: j.timestamp,
            }
        } else {
            let (key, value) = match &sep {
                None => (None, line),
                Some(s) => match line.split_once(s.as_str()) {
                    Some((k, v)) => (Some(k), v),
                    None => {
                        return Err(CliError::Input(format!(
                            "record {n}: no key separator {s:?} in {line:?}"
                        )))
                    }
                },
            };
            let mut r = ProducerRecord::new(topic.clone(), Bytes::from(value.to_string()));
            r.key = key.map(|k| Bytes::from(k.to_string()));
            r
        };
        if null_empty {
            r.key = r.key.filter(|k| !k.is_empty());
            r.value = r.value.filter(|v| !v.is_empty());
        }
        if let Some(p) = r.partition {
            if !partitions.contains(&p) {
                return Err(CliError::Input(format!(
                    "record {n}: topic {} has no partition {p} (it has {})",
                    r.topic,
                    partitions.len()
                )));
            }
        }
        if let Some(p) = args.partition {
            r = r.with_partition(p);
        }
        for (k, v) in &headers {
            r = r.with_header(k.clone(), v.clone());
        }
        Ok(r)
    };

    let mut sink = Sink {
        pending: VecDeque::new(),
        produced: 0,
        count_only: args.count,
        json: args.json,
        bar: progress(
            (!args.values.is_empty()).then_some(args.values.len() as u64),
            "producing",
        ),
        timeout,
    };
    let result: Result<()> = async {
        if args.values.is_empty() {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            let mut n = 0;
            while let Some(line) = lines.next_line().await.map_err(|e| CliError::Io {
                context: "reading stdin".into(),
                source: e,
            })? {
                n += 1;
                let line = line.strip_suffix('\r').unwrap_or(&line);
                sink.send(&producer, make(n, line)?).await?;
            }
        } else {
            for (i, v) in args.values.iter().enumerate() {
                sink.send(&producer, make(i + 1, v)?).await?;
            }
        }
        sink.drain(0).await
    }
    .await;
    sink.bar.finish_and_clear();
    producer.close(Duration::from_secs(1).min(timeout)).await;
    result?;
    if sink.count_only {
        let n = sink.produced;
        let records = if n == 1 { "record" } else { "records" };
        write_out(&format!("produced {n} {records} to {topic}\n"))?;
    }
    Ok(())
}

/// Records in flight and how their outcomes are printed.
struct Sink {
    pending: VecDeque<DeliveryFuture>,
    produced: u64,
    count_only: bool,
    json: bool,
    bar: indicatif::ProgressBar,
    timeout: Duration,
}

impl Sink {
    async fn send(&mut self, producer: &Producer, r: ProducerRecord) -> Result<()> {
        let f = bounded(self.timeout, "sending a record", async {
            producer.send(r).await.kafka(|| "sending a record".into())
        })
        .await?;
        self.pending.push_back(f);
        self.drain(MAX_PENDING).await
    }

    /// Waits for acknowledgements until at most `keep` are pending.
    async fn drain(&mut self, keep: usize) -> Result<()> {
        while self.pending.len() > keep {
            let Some(f) = self.pending.pop_front() else {
                break;
            };
            let md = bounded(
                self.timeout + Duration::from_secs(1),
                "delivering a record",
                async { f.await.kafka(|| "delivering a record".into()) },
            )
            .await?;
            self.delivered(&md)?;
        }
        Ok(())
    }

    fn delivered(&mut self, md: &RecordMetadata) -> Result<()> {
        self.produced += 1;
        self.bar.inc(1);
        if self.count_only {
            return Ok(());
        }
        let line = if self.json {
            json!({
                "topic": md.topic, "partition": md.partition,
                "offset": md.offset, "timestamp": md.timestamp,
            })
            .to_string()
        } else {
            format!("{}-{}@{}", md.topic, md.partition, md.offset)
        };
        self.bar.suspend(|| write_out(&(line + "\n")))
    }
}
