//! `kpax consume`: records of a topic from an offset or a time, up to an
//! end time, a count or the end of each partition (or on with
//! `--follow`), standalone or as a group member; printed raw, as JSON or
//! as key/value, or only counted.

use crate::connect::ConnectArgs;
use crate::error::{CliError, KafkaContext, Result};
use crate::format::{parse_format, Format, Printer};
use crate::output::{progress, write_out};
use crate::reader::{self, Range};
use crate::when::parse_time;
use clap::{Args, ValueEnum};
use kpax::admin::{Admin, OffsetSpec};
use kpax::consumer::{ConsumerStats, GroupProtocol, OffsetReset};
use kpax::{Consumer, ConsumerConfig};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Flags of `kpax consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic.
    topic: String,
    /// Where to start, per partition: beginning (earliest), end (latest),
    /// an offset N, -N (N before the end), +N (N after the beginning), or
    /// @TIME (the first record at or after TIME, as --from takes it).
    #[arg(
        short,
        long,
        value_name = "beginning|end|N|-N|+N|@TIME",
        allow_hyphen_values = true
    )]
    offset: Option<String>,
    /// Start at the first record at or after this time (RFC 3339 UTC, epoch ms, or -1h).
    #[arg(
        long,
        value_name = "TIME",
        allow_hyphen_values = true,
        conflicts_with = "offset"
    )]
    from: Option<String>,
    /// Stop before the first record at or after this time.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    to: Option<String>,
    /// Stop after N records (those --filter-header lets through).
    #[arg(short = 'n', short_alias = 'c', long, value_name = "N")]
    count: Option<u64>,
    /// Exit at the end of each partition: the default without --follow
    /// (accepted for kcat's -e).
    #[arg(short = 'e', long = "exit", conflicts_with = "follow")]
    exit_at_end: bool,
    /// Only records with this header (NAME) or with this header value
    /// (NAME=VALUE); repeatable, every one must match.
    #[arg(long = "filter-header", value_name = "NAME[=VALUE]", value_parser = reader::parse_header_filter)]
    filter_header: Vec<(String, Option<Vec<u8>>)>,
    /// Only these partitions (repeatable; default all).
    #[arg(short, long)]
    partition: Vec<i32>,
    /// Consume as a member of this group (starts at its committed offsets, commits at the end).
    #[arg(short, long, value_name = "GROUP", conflicts_with_all = ["from", "partition"])]
    group: Option<String>,
    /// The group protocol for --group: `classic` (JoinGroup/SyncGroup) or
    /// `consumer` (KIP-848; falls back to classic where the broker lacks it).
    #[arg(long, value_enum, default_value = "classic", requires = "group")]
    group_protocol: Protocol,
    #[arg(short, long, default_value = "raw", value_parser = parse_format, help = crate::format::FORMAT_HELP)]
    format: Format,
    /// Separator between key and value for --format kv (`\t` for a tab).
    #[arg(short = 'K', long, value_name = "SEP", default_value = "\\t")]
    key_separator: String,
    /// Keep waiting for new records at the end (until --to, --count or Ctrl-C).
    #[arg(short = 'F', long)]
    follow: bool,
    /// Print only the number of records, not the records.
    #[arg(long)]
    count_only: bool,
    /// Print the consumer's statistics on stderr at the end (records and
    /// bytes fetched, fetch latency per broker, lag per partition,
    /// rebalances, commits).
    #[arg(long)]
    stats: bool,
    /// With --stats, print them every DURATION too.
    #[arg(long, value_name = "DURATION", requires = "stats", value_parser = crate::when::parse_duration)]
    stats_every: Option<std::time::Duration>,
}

/// `--group-protocol`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Protocol {
    /// The classic group protocol.
    Classic,
    /// The consumer group protocol (KIP-848).
    Consumer,
}

/// Where reading starts, from `--offset`.
enum Start {
    Earliest,
    Latest,
    At(i64),
    BeforeEnd(i64),
    PastBeginning(i64),
    Time(i64),
}

fn parse_start(s: &str, now: SystemTime) -> Result<Start> {
    match s {
        "earliest" | "beginning" => Ok(Start::Earliest),
        "latest" | "end" => Ok(Start::Latest),
        _ => {
            if let Some(t) = s.strip_prefix('@') {
                return Ok(Start::Time(parse_time(t, now)?));
            }
            let bad = || {
                CliError::Usage(format!(
                    "--offset {s:?}: expected beginning, end, an offset N, -N, +N or @TIME"
                ))
            };
            let digits = s.trim_start_matches(['-', '+']);
            if digits.is_empty() || digits.len() + 1 < s.len() {
                return Err(bad());
            }
            let n: i64 = digits.parse().map_err(|_| bad())?;
            Ok(match s.as_bytes()[0] {
                b'-' => Start::BeforeEnd(n),
                b'+' => Start::PastBeginning(n),
                _ => Start::At(n),
            })
        }
    }
}

/// Runs `kpax consume`.
///
/// # Errors
/// Bad flags, an unknown topic or partition, connection errors, no
/// progress within the timeout (without `--follow`).
pub async fn run(args: ConsumeArgs) -> Result<()> {
    let now = SystemTime::now();
    let start = args
        .offset
        .as_deref()
        .map(|o| parse_start(o, now))
        .transpose()?;
    let from = args
        .from
        .as_deref()
        .map(|t| parse_time(t, now))
        .transpose()?;
    let to = args.to.as_deref().map(|t| parse_time(t, now)).transpose()?;
    if args.group.is_some()
        && matches!(
            start,
            Some(Start::At(_) | Start::BeforeEnd(_) | Start::PastBeginning(_) | Start::Time(_))
        )
    {
        return Err(CliError::Usage(
            "--group starts at the group's committed offsets: --offset takes only earliest or latest there (see kpax rollback)".into(),
        ));
    }
    // The consumer's settings are checked before anything connects.
    let base = ConsumerConfig::from_properties(&args.connect.properties()?)
        .map_err(|e| CliError::Config(e.to_string()))?;
    let cluster = args.connect.cluster()?;
    let admin = Admin::new(cluster.clone());
    let topic = args.topic.clone();
    let follow = args.follow;
    let (partitions, starts, ends) = args
        .connect
        .bounded(&format!("looking up {topic}"), async {
            let all = cluster
                .partitions(&topic)
                .await
                .kafka(|| format!("topic {topic}"))?;
            let partitions = if args.partition.is_empty() {
                all
            } else {
                for p in &args.partition {
                    if !all.contains(p) {
                        return Err(CliError::Failed(format!(
                            "topic {topic} has no partition {p} (it has {})",
                            all.len()
                        )));
                    }
                }
                args.partition.clone()
            };
            let ends = match (to, follow) {
                (Some(t), _) => Some(
                    reader::offsets(&admin, &topic, &partitions, OffsetSpec::Timestamp(t)).await?,
                ),
                (None, false) => {
                    Some(reader::offsets(&admin, &topic, &partitions, OffsetSpec::Latest).await?)
                }
                (None, true) => None,
            };
            let starts = if args.group.is_some() {
                BTreeMap::new()
            } else {
                standalone_starts(&admin, &topic, &partitions, start.as_ref(), from).await?
            };
            Ok((partitions, starts, ends))
        })
        .await?;

    let reset = match start {
        Some(Start::Latest) => OffsetReset::Latest,
        _ => OffsetReset::Earliest,
    };
    // The file's and -X's consumer keys (isolation.level, fetch sizes,
    // session timeouts, assignors); which group, where to start and
    // committing are this command's flags.
    let mut config = base.with_auto_offset_reset(reset);
    config.group_id = None;
    config.group_instance_id = None;
    config.enable_auto_commit = false;
    if let Some(g) = &args.group {
        config = config
            .with_group_id(g.clone())
            .with_auto_commit(false)
            .with_group_protocol(match args.group_protocol {
                Protocol::Classic => GroupProtocol::Classic,
                Protocol::Consumer => GroupProtocol::Consumer,
            });
    }
    let consumer = Consumer::new(cluster, config).kafka(|| "starting the consumer".into())?;
    if args.group.is_some() {
        consumer
            .subscribe([topic.clone()])
            .kafka(|| format!("joining group for {topic}"))?;
    } else {
        reader::assign(&consumer, &topic, &starts);
    }

    let total = match (&ends, args.group.is_none()) {
        (Some(e), true) => Some(
            partitions
                .iter()
                .map(|p| {
                    (e.get(p).copied().unwrap_or(0) - starts.get(p).copied().unwrap_or(0)).max(0)
                        as u64
                })
                .sum::<u64>()
                .min(args.count.unwrap_or(u64::MAX)),
        ),
        _ => args.count,
    };
    let bar = progress(total, "consuming");
    let printer = Printer {
        format: args.format,
        separator: crate::cmd::produce::unescape(&args.key_separator),
    };
    let range = Range {
        topic: topic.clone(),
        ends,
        limit: args.count,
        idle: (!follow).then_some(args.connect.timeout),
        headers: args.filter_header.clone(),
    };
    let count_only = args.count_only;
    let ticker = args.stats_every.filter(|d| !d.is_zero()).map(|every| {
        let (consumer, bar) = (consumer.clone(), bar.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let text = stats_text(&consumer.stats());
                bar.suspend(|| eprint!("{text}"));
            }
        })
    });
    let read = reader::read(&consumer, &range, |r| {
        bar.inc(1);
        if count_only {
            return Ok(());
        }
        let line = printer.line(&r);
        bar.suspend(|| write_out(&line))
    })
    .await;
    bar.finish_and_clear();
    let committed = if args.group.is_some() && read.is_ok() {
        crate::connect::bounded(args.connect.timeout, "committing offsets", async {
            consumer
                .commit()
                .await
                .kafka(|| "committing offsets".into())
        })
        .await
    } else {
        Ok(())
    };
    if let Some(t) = ticker {
        t.abort();
    }
    if args.stats {
        eprint!("{}", stats_text(&consumer.stats()));
    }
    let _ = tokio::time::timeout(args.connect.timeout, consumer.close()).await;
    let n = read?;
    committed?;
    if count_only {
        write_out(&format!(
            "{n} {}\n",
            if n == 1 { "record" } else { "records" }
        ))?;
    }
    Ok(())
}

/// The consumer's statistics as `--stats` prints them: one `name value`
/// line per figure.
pub fn stats_text(s: &ConsumerStats) -> String {
    let ms = |us: u64| format!("{:.1} ms", us as f64 / 1000.0);
    let mut out = String::new();
    let mut line = |name: &str, value: String| out.push_str(&format!("{name:<17} {value}\n"));
    line("records consumed", s.records_consumed.to_string());
    line("records fetched", s.records_fetched.to_string());
    line("bytes fetched", s.bytes_fetched.to_string());
    line(
        "fetch requests",
        format!("{} ({} failed)", s.fetch_requests, s.fetch_errors),
    );
    let latency: Vec<String> = s
        .fetch_latency
        .iter()
        .map(|(node, n, mean)| format!("node {node}: {} mean of {n}", ms(*mean)))
        .collect();
    line(
        "fetch latency",
        if latency.is_empty() {
            "-".into()
        } else {
            latency.join(", ")
        },
    );
    line("buffered bytes", s.buffered_bytes.to_string());
    line("rebalances", s.rebalances.to_string());
    line(
        "commits",
        format!(
            "{} ({} failed, {} mean)",
            s.commits,
            s.commit_errors,
            ms(s.commit_latency_us)
        ),
    );
    let per: Vec<String> = s
        .lag
        .iter()
        .map(|(tp, lag)| format!("{tp}: {lag}"))
        .collect();
    line(
        "lag",
        if per.is_empty() {
            "-".into()
        } else {
            format!("{} ({})", s.total_lag(), per.join(", "))
        },
    );
    out
}

/// Each partition's first offset for a standalone consumer.
async fn standalone_starts(
    admin: &Admin,
    topic: &str,
    partitions: &[i32],
    start: Option<&Start>,
    from: Option<i64>,
) -> Result<BTreeMap<i32, i64>> {
    if let Some(t) = from {
        return reader::offsets(admin, topic, partitions, OffsetSpec::Timestamp(t)).await;
    }
    match start.unwrap_or(&Start::Earliest) {
        Start::Earliest => reader::offsets(admin, topic, partitions, OffsetSpec::Earliest).await,
        Start::Latest => reader::offsets(admin, topic, partitions, OffsetSpec::Latest).await,
        Start::At(o) => Ok(partitions.iter().map(|p| (*p, *o)).collect()),
        Start::Time(t) => {
            reader::offsets(admin, topic, partitions, OffsetSpec::Timestamp(*t)).await
        }
        Start::PastBeginning(n) => {
            let first = reader::offsets(admin, topic, partitions, OffsetSpec::Earliest).await?;
            let end = reader::offsets(admin, topic, partitions, OffsetSpec::Latest).await?;
            Ok(first
                .iter()
                .map(|(p, f)| {
                    let e = end.get(p).copied().unwrap_or(*f);
                    (*p, f.saturating_add(*n).min(e))
                })
                .collect())
        }
        Start::BeforeEnd(n) => {
            let first = reader::offsets(admin, topic, partitions, OffsetSpec::Earliest).await?;
            let end = reader::offsets(admin, topic, partitions, OffsetSpec::Latest).await?;
            Ok(end
                .iter()
                .map(|(p, e)| (*p, (e - n).max(first.get(p).copied().unwrap_or(0))))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn stats_name_every_figure() {
        let s = ConsumerStats {
            records_consumed: 7,
            records_fetched: 9,
            bytes_fetched: 900,
            fetch_requests: 3,
            fetch_errors: 1,
            fetch_latency: vec![(1, 2, 1500), (2, 1, 250)],
            rebalances: 2,
            commits: 4,
            commit_errors: 0,
            commit_latency_us: 3000,
            buffered_bytes: 128,
            lag: [
                (kpax::TopicPartition::new("t", 0), 2),
                (kpax::TopicPartition::new("t", 1), 0),
            ]
            .into(),
        };
        let text = stats_text(&s);
        for want in [
            "records consumed  7\n",
            "records fetched   9\n",
            "bytes fetched     900\n",
            "fetch requests    3 (1 failed)\n",
            "fetch latency     node 1: 1.5 ms mean of 2, node 2: 0.2 ms mean of 1\n",
            "rebalances        2\n",
            "commits           4 (0 failed, 3.0 ms mean)\n",
            "lag               2 (t-0: 2, t-1: 0)\n",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        assert!(stats_text(&ConsumerStats::default()).contains("lag               -\n"));
    }

    #[test]
    fn offsets_read_as_kcat_writes_them() {
        let now = UNIX_EPOCH + Duration::from_secs(7200);
        let p = |s: &str| parse_start(s, now);
        assert!(matches!(p("beginning"), Ok(Start::Earliest)));
        assert!(matches!(p("end"), Ok(Start::Latest)));
        assert!(matches!(p("42"), Ok(Start::At(42))));
        assert!(matches!(p("-3"), Ok(Start::BeforeEnd(3))));
        assert!(matches!(p("+3"), Ok(Start::PastBeginning(3))));
        assert!(matches!(
            p("@1700000000000"),
            Ok(Start::Time(1_700_000_000_000))
        ));
        assert!(matches!(p("@-1h"), Ok(Start::Time(3_600_000))));
        for bad in [
            "",
            "-",
            "+",
            "--3",
            "+-3",
            "x",
            "3x",
            "@yesterday",
            "99999999999999999999",
        ] {
            assert!(p(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
