//! `kpax group seek`: moves an empty group's committed offsets to the
//! start, the end, a time or an offset, dry run unless `--execute`; and
//! `kpax rollback`, its older spelling for one topic and a time, which
//! commits unless `--dry-run`.

use crate::connect::ConnectArgs;
use crate::error::{CliError, KafkaContext, Result};
use crate::output::print_json;
use crate::reader;
use clap::Args;
use kpax::admin::{Admin, TopicPartition};
use kpax::Error;
use serde_json::json;

/// Flags of `kpax rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The consumer group (it must have no members).
    group: String,
    /// The topic.
    topic: String,
    /// Where to: a time to go back (or forward) to (RFC 3339 UTC, epoch ms,
    /// -1h, now), or start or end.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    to: String,
    /// Show what would be committed, commit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `kpax rollback`: `kpax group seek GROUP -t TOPIC --to TIME
/// --execute` (without `--execute` under `--dry-run`).
///
/// # Errors
/// As [`seek`].
pub async fn run(args: RollbackArgs) -> Result<()> {
    seek(SeekArgs {
        connect: args.connect,
        group: args.group,
        topics: vec![args.topic],
        to: Some(args.to),
        offset: None,
        execute: !args.dry_run,
        json: args.json,
    })
    .await
}

/// Fails when `group` has members; a broker without DescribeGroups (such
/// as librdkafka's mock) leaves the check to the commit, which Kafka
/// refuses for a group with members.
async fn ensure_empty(admin: &Admin, group: &str) -> Result<()> {
    match admin.describe_groups(&[group]).await {
        Ok(mut v) => match v.pop().map(|(_, r)| r) {
            Some(Ok(d)) if !d.members.is_empty() => Err(CliError::Failed(format!(
                "group {group} has {} member(s) (state {}); stop its consumers first",
                d.members.len(),
                d.state
            ))),
            Some(Err(e)) => Err(CliError::Kafka {
                context: format!("describing group {group}"),
                source: e,
            }),
            _ => Ok(()),
        },
        Err(Error::UnsupportedVersion { .. }) => Ok(()),
        Err(e) => Err(CliError::Kafka {
            context: format!("describing group {group}"),
            source: e,
        }),
    }
}

/// Flags of `kpax group seek`.
#[derive(Debug, Args)]
pub struct SeekArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The consumer group (it must have no members).
    group: String,
    /// The topics to move (repeatable; default: those the group has
    /// committed offsets for).
    #[arg(short, long = "topic", value_name = "TOPIC")]
    topics: Vec<String>,
    /// Where to: start (earliest), end (latest), or a time (RFC 3339 UTC,
    /// epoch ms, -1h, now).
    #[arg(
        long,
        value_name = "start|end|TIME",
        allow_hyphen_values = true,
        conflicts_with = "offset"
    )]
    to: Option<String>,
    /// This offset in every partition (kept within each partition's log).
    #[arg(long, value_name = "N")]
    offset: Option<i64>,
    /// Commit the new offsets; without it, only show them (a dry run).
    #[arg(long)]
    execute: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `kpax group seek`: a before/after table per topic, committed with
/// `--execute`.
///
/// # Errors
/// Neither or both of --to and --offset, a bad time, an unknown topic, a
/// group with members or without committed offsets (and no --topic), a
/// partition whose commit failed, connection errors.
pub async fn seek(args: SeekArgs) -> Result<()> {
    let target = reader::Target::parse(args.to.as_deref(), args.offset)?;
    let admin = Admin::new(args.connect.cluster()?);
    let group = args.group.as_str();
    let execute = args.execute;
    let moves = args
        .connect
        .bounded(&format!("moving group {group}"), async {
            ensure_empty(&admin, group).await?;
            let before = admin
                .list_group_offsets(group, None)
                .await
                .kafka(|| format!("committed offsets of group {group}"))?;
            let topics: Vec<String> = if args.topics.is_empty() {
                let mut t: Vec<String> = before
                    .iter()
                    .filter(|(_, r)| r.as_ref().is_ok_and(|c| c.offset.is_some()))
                    .map(|(tp, _)| tp.topic.clone())
                    .collect();
                t.dedup();
                if t.is_empty() {
                    return Err(CliError::Failed(format!(
                        "group {group} has no committed offsets: name the topics with --topic"
                    )));
                }
                t
            } else {
                args.topics.clone()
            };
            let mut moves = Vec::new();
            let mut commits = Vec::new();
            for topic in &topics {
                let partitions = admin
                    .cluster()
                    .partitions(topic)
                    .await
                    .kafka(|| format!("topic {topic}"))?;
                let target = target.offsets(&admin, topic, &partitions).await?;
                let rows: Vec<crate::output::OffsetMove> = target
                    .iter()
                    .map(|(p, new)| {
                        let tp = TopicPartition::new(topic.as_str(), *p);
                        commits.push((tp.clone(), *new));
                        let old = before
                            .get(&tp)
                            .and_then(|r| r.as_ref().ok())
                            .and_then(|c| c.offset);
                        (*p, old, *new)
                    })
                    .collect();
                moves.push((topic.clone(), rows));
            }
            if execute {
                let done = admin
                    .alter_group_offsets(group, &commits)
                    .await
                    .kafka(|| format!("committing offsets of group {group}"))?;
                for (tp, r) in done {
                    r.kafka(|| format!("group {group}: committing {tp}"))?;
                }
            }
            Ok(moves)
        })
        .await?;
    if args.json {
        return print_json(&json!({
            "group": group, "execute": execute,
            "topics": moves.iter().map(|(t, rows)| json!({
                "topic": t, "partitions": crate::output::moves_json(rows),
            })).collect::<Vec<_>>(),
        }));
    }
    let mut out = String::new();
    for (topic, rows) in &moves {
        out.push_str(&crate::output::moves_table(topic, rows));
    }
    out.push_str(&if execute {
        format!("group {group}: offsets committed\n")
    } else {
        format!("group {group}: dry run, nothing committed (add --execute)\n")
    });
    crate::output::write_out(&out)
}
