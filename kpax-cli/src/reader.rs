//! Reading a range of a topic: each partition from a start offset up to
//! an end offset (or on and on with `--follow`), as a standalone consumer
//! or as a group member; used by `consume` and `tail`.

use crate::error::{CliError, KafkaContext, Result};
use kpax::admin::{Admin, OffsetSpec, TopicPartition};
use kpax::consumer::StartAt;
use kpax::{Consumer, ConsumerRecord};
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

/// The partitions of `topic`; a topic the broker is still creating (auto-
/// or just created, no leader yet) is waited for, with backoff (callers
/// bound the wait).
///
/// # Errors
/// The topic's metadata error (e.g. UNKNOWN_TOPIC_OR_PARTITION), with the
/// topic named.
pub async fn partitions(cluster: &kpax::Cluster, topic: &str) -> Result<Vec<i32>> {
    let mut wait = Duration::from_millis(50);
    loop {
        match cluster.partitions(topic).await {
            Err(kpax::Error::Broker { code, .. })
                if code == kpax::proto::generated::ErrorCode::LEADER_NOT_AVAILABLE =>
            {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            r => break r.kafka(|| format!("topic {topic}")),
        }
    }
}

/// Where a group's offsets are moved to (`--to` / `--offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Each partition's offset for this spec (earliest, latest, a time).
    Spec(OffsetSpec),
    /// This offset in every partition, within each partition's log.
    Offset(i64),
}

impl Target {
    /// Parses `--to earliest|start|latest|end|TIME` or `--offset N` (one
    /// of the two).
    ///
    /// # Errors
    /// [`CliError::Usage`] for neither, a negative offset, or a bad time.
    pub fn parse(to: Option<&str>, offset: Option<i64>) -> Result<Target> {
        match (to, offset) {
            (_, Some(o)) if o < 0 => Err(CliError::Usage(format!(
                "--offset {o}: an offset is 0 or more"
            ))),
            (_, Some(o)) => Ok(Target::Offset(o)),
            (Some("earliest" | "start" | "beginning"), None) => {
                Ok(Target::Spec(OffsetSpec::Earliest))
            }
            (Some("latest" | "end"), None) => Ok(Target::Spec(OffsetSpec::Latest)),
            (Some(t), None) => Ok(Target::Spec(OffsetSpec::Timestamp(
                crate::when::parse_time(t, std::time::SystemTime::now())?,
            ))),
            (None, None) => Err(CliError::Usage("give --to or --offset".into())),
        }
    }

    /// The offset of each of `partitions` of `topic`; an `--offset`
    /// outside a partition's log is clamped to it, with a warning, as
    /// Kafka's tools do.
    ///
    /// # Errors
    /// As [`offsets`].
    pub async fn offsets(
        &self,
        admin: &Admin,
        topic: &str,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, i64>> {
        match *self {
            Target::Spec(spec) => offsets(admin, topic, partitions, spec).await,
            Target::Offset(o) => {
                let first = offsets(admin, topic, partitions, OffsetSpec::Earliest).await?;
                let end = offsets(admin, topic, partitions, OffsetSpec::Latest).await?;
                let mut t = BTreeMap::new();
                for p in partitions {
                    let lo = first.get(p).copied().unwrap_or(0);
                    let hi = end.get(p).copied().unwrap_or(lo).max(lo);
                    let c = o.clamp(lo, hi);
                    if c != o {
                        eprintln!(
                            "kpax: {topic}-{p}: offset {o} is outside the log [{lo}, {hi}]; using {c}"
                        );
                    }
                    t.insert(*p, c);
                }
                Ok(t)
            }
        }
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
    /// Only records with every one of these headers (name, and the value
    /// it must have, if any) are given out and counted.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Range {
    /// Whether `r` has every header the range asks for.
    pub fn wants(&self, r: &ConsumerRecord) -> bool {
        self.headers.iter().all(|(name, value)| {
            r.headers().any(|h| {
                h.key == name.as_bytes()
                    && value.as_ref().is_none_or(|v| h.value == Some(v.as_slice()))
            })
        })
    }
}

/// Parses a `--filter-header NAME[=VALUE]` flag.
///
/// # Errors
/// An empty name.
pub fn parse_header_filter(s: &str) -> std::result::Result<(String, Option<Vec<u8>>), String> {
    let (name, value) = match s.split_once('=') {
        Some((n, v)) => (n, Some(v.as_bytes().to_vec())),
        None => (s, None),
    };
    if name.is_empty() {
        return Err(format!("{s:?}: expected NAME or NAME=VALUE"));
    }
    Ok((name.to_string(), value))
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
                    if end.is_some_and(|e| r.offset >= e) || !range.wants(&r) {
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
        let Some(end) = ends.get(&tp.partition) else {
            return true;
        };
        let at = next
            .get(&tp.partition)
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
        consumer.assign([TopicPartition::new(topic, *p)], StartAt::Offset(*o));
    }
}
