//! Reading a range of a topic: each partition from a start offset up to
//! an end offset (or on and on with `--follow`), as a standalone consumer
//! or as a group member; used by `consume` and `tail`.

use crate::error::{CliError, KafkaContext, Result};
use crate::when::format_millis;
use clap::ValueEnum;
use kpax::admin::{Admin, OffsetSpec, TopicPartition};
use kpax::consumer::StartAt;
use kpax::{Consumer, ConsumerRecord};
use kpax_cli::input::json_bytes;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// How often the end-of-range check runs while no record arrives.
const TICK: Duration = Duration::from_millis(100);

/// Where each partition's reading ends.
pub type Ends = BTreeMap<i32, i64>;

/// The offset of each partition of `topic` given by `spec`; where the
/// broker has none (a time after the last record), the end offset.
///
/// # Errors
/// The first partition's error, with the topic and partition named.
pub async fn offsets(
    admin: &Admin,
    topic: &str,
    partitions: &[i32],
    spec: OffsetSpec,
) -> Result<BTreeMap<i32, i64>> {
    let ask = |spec: OffsetSpec| -> Vec<(TopicPartition, OffsetSpec)> {
        partitions
            .iter()
            .map(|p| (TopicPartition::new(topic, *p), spec))
            .collect()
    };
    let found = admin
        .list_offsets(&ask(spec))
        .await
        .kafka(|| format!("listing offsets of {topic}"))?;
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    for (tp, r) in found {
        let o = r.kafka(|| format!("offset of {tp}"))?;
        match o.offset {
            Some(o) => {
                out.insert(tp.partition, o);
            }
            None => missing.push(tp.partition),
        }
    }
    if !missing.is_empty() {
        if spec == OffsetSpec::Latest {
            return Err(CliError::Failed(format!(
                "{topic}: the broker gave no end offset for partition(s) {missing:?}"
            )));
        }
        let latest = Box::pin(offsets(admin, topic, &missing, OffsetSpec::Latest)).await?;
        out.extend(latest);
    }
    Ok(out)
}

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The value only, one per line.
    Raw,
    /// One JSON object per line: topic, partition, offset, timestamp, key, value, headers.
    Json,
    /// Key, separator, value.
    Kv,
    /// The value as hex (binary payloads), one per line.
    Hex,
}

/// Formats records for printing.
#[derive(Debug, Clone)]
pub struct Printer {
    /// The format.
    pub format: Format,
    /// The key/value separator of [`Format::Kv`].
    pub separator: String,
}

fn text(b: Option<&[u8]>) -> Option<String> {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
}

fn hex(b: Option<&[u8]>) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for x in b.into_iter().flatten() {
        let _ = write!(s, "{x:02x}");
    }
    s
}

impl Printer {
    /// One record as one line (with its newline).
    pub fn line(&self, r: &ConsumerRecord) -> String {
        let mut s = match self.format {
            Format::Raw => text(r.value()).unwrap_or_default(),
            Format::Kv => format!(
                "{}{}{}",
                text(r.key()).unwrap_or_default(),
                self.separator,
                text(r.value()).unwrap_or_default()
            ),
            Format::Hex => hex(r.value()),
            Format::Json => {
                let (key, key_b64) = json_bytes(r.key());
                let (value, value_b64) = json_bytes(r.value());
                let mut o = json!({
                    "topic": &*r.topic,
                    "partition": r.partition,
                    "offset": r.offset,
                    "timestamp": r.timestamp,
                    "time": (r.timestamp >= 0).then(|| format_millis(r.timestamp)),
                    "key": key,
                    "value": value,
                    "headers": r.headers().map(|h| {
                        let (key, key_b64) = json_bytes(Some(h.key));
                        let (value, b64) = json_bytes(h.value);
                        let mut hj = json!({"key": key, "value": value});
                        if key_b64 {
                            hj["key_base64"] = true.into();
                        }
                        if b64 {
                            hj["value_base64"] = true.into();
                        }
                        hj
                    }).collect::<Vec<_>>(),
                });
                if key_b64 {
                    o["key_base64"] = true.into();
                }
                if value_b64 {
                    o["value_base64"] = true.into();
                }
                o.to_string()
            }
        };
        s.push('\n');
        s
    }
}

/// What to read and when to stop.
#[derive(Debug)]
pub struct Range {
    /// The topic.
    pub topic: String,
    /// Per partition, the offset to stop before; `None`: never stop
    /// (`--follow` without an end), unless `limit` is reached.
    pub ends: Option<Ends>,
    /// Stop after this many records.
    pub limit: Option<u64>,
    /// Fail when no record arrives and the range is not done for this
    /// long (`None`: wait for ever, for `--follow`).
    pub idle: Option<Duration>,
}

/// Reads `range` from `consumer` (already assigned or subscribed), giving
/// each record to `each`; returns the number of records read. Stops at the
/// range's end, its limit, or Ctrl-C.
///
/// # Errors
/// A fatal consumer error, `each`'s error, or [`CliError::Timeout`] after
/// `idle` without progress.
pub async fn read(
    consumer: &Consumer,
    range: &Range,
    mut each: impl FnMut(ConsumerRecord) -> Result<()>,
) -> Result<u64> {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut n: u64 = 0;
    let mut idle_since = tokio::time::Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if range.limit.is_some_and(|l| n >= l) || done(consumer, range, &next) {
            return Ok(n);
        }
        tokio::select! {
            _ = &mut ctrl_c => return Ok(n),
            got = tokio::time::timeout(TICK, consumer.recv()) => match got {
                Err(_) => {
                    if let Some(idle) = range.idle {
                        if idle_since.elapsed() >= idle {
                            return Err(CliError::Timeout {
                                what: format!("reading {} (after {n} records)", range.topic),
                                after: idle,
                            });
                        }
                    }
                }
                Ok(r) => {
                    let r = r.kafka(|| format!("consuming {}", range.topic))?;
                    idle_since = tokio::time::Instant::now();
                    let end = range.ends.as_ref().and_then(|e| e.get(&r.partition)).copied();
                    next.insert(r.partition, r.offset + 1);
                    if end.is_some_and(|e| r.offset >= e) {
                        continue;
                    }
                    n += 1;
                    each(r)?;
                }
            },
        }
    }
}

/// Whether every assigned partition has reached its end.
fn done(consumer: &Consumer, range: &Range, next: &BTreeMap<i32, i64>) -> bool {
    let Some(ends) = &range.ends else {
        return false;
    };
    let assigned = consumer.assignment();
    if assigned.is_empty() {
        return false;
    }
    let positions = consumer.positions();
    assigned.iter().all(|tp| {
        let Some(end) = ends.get(&tp.1) else {
            return true;
        };
        let at = next
            .get(&tp.1)
            .copied()
            .into_iter()
            .chain(positions.get(tp).copied())
            .max();
        at.is_some_and(|o| o >= *end)
    })
}

/// Assigns `starts` (partition, offset) of `topic` to a standalone consumer.
pub fn assign(consumer: &Consumer, topic: &str, starts: &BTreeMap<i32, i64>) {
    for (p, o) in starts {
        consumer.assign([(topic.to_string(), *p)], StartAt::Offset(*o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &'static [u8], value: &'static [u8]) -> ConsumerRecord {
        ConsumerRecord::new(
            "t",
            1,
            kpax::proto::records::Record::new(
                7,
                -1,
                Some(key),
                Some(value),
                &[(b"h", Some(&[0xff, 0x00]))],
            ),
        )
    }

    fn printer(format: Format) -> Printer {
        Printer {
            format,
            separator: "\t".into(),
        }
    }

    #[test]
    fn binary_payloads_lose_nothing_in_json_and_hex() {
        let r = record(b"user-1", &[0xde, 0xad, 0xbe, 0xef]);
        let line = printer(Format::Json).line(&r);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["key"], "user-1");
        assert!(v.get("key_base64").is_none(), "{line}");
        assert_eq!(v["value"], "3q2+7w==");
        assert_eq!(v["value_base64"], true);
        assert_eq!(v["headers"][0]["value"], "/wA=");
        assert_eq!(v["headers"][0]["value_base64"], true);
        assert_eq!(printer(Format::Hex).line(&r), "deadbeef\n");
        let text = record(b"k", b"hello");
        let v: serde_json::Value =
            serde_json::from_str(&printer(Format::Json).line(&text)).unwrap();
        assert_eq!(v["value"], "hello");
        assert!(v.get("value_base64").is_none());
        assert_eq!(printer(Format::Kv).line(&text), "k\thello\n");
    }
}
