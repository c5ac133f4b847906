//! `kpax share`: share groups (KIP-932). `kpax share consume GROUP TOPIC`
//! reads records as a member of a share group and acknowledges each one
//! (accept, release or reject), for scripts and tests; `kpax share
//! describe GROUP...` shows the members and their assignments; `kpax
//! share offsets`, `kpax share reset` and `kpax share delete-offsets` read,
//! set and forget a group's start offsets.

use crate::connect::ConnectArgs;
use crate::error::{CliError, KafkaContext, Result};
use crate::format::{parse_format, Format, Printer};
use crate::output::{print_json, write_out, Table};
use crate::reader::{self};
use clap::{Args, Subcommand, ValueEnum};
use kpax::admin::{Admin, AlterConfig, ConfigResource, TopicPartition};
use kpax::share::{AcknowledgeType, ShareConsumer, ShareConsumerConfig};
use kpax::ConsumerRecord;
use serde_json::json;
use std::time::{Duration, Instant};

/// `kpax share` subcommands.
#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// Read records as a member of a share group, acknowledging each one.
    Consume(ShareConsumeArgs),
    /// Share groups' state and members with their subscriptions and assignments.
    Describe(ShareDescribeArgs),
    /// A share group's start offsets and lag per partition.
    Offsets(ShareOffsetsArgs),
    /// Set a share group's start offsets on a topic (the group must have no
    /// members): to the earliest or latest offsets, a time, or an offset.
    /// Shows what would change unless --execute is given.
    Reset(ShareResetArgs),
    /// Forget a share group's state on topics (the group must have no
    /// members): they start again from share.auto.offset.reset.
    DeleteOffsets(ShareDeleteOffsetsArgs),
}

/// Flags of `kpax share offsets`.
#[derive(Debug, Args)]
pub struct ShareOffsetsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The share group.
    group: String,
    /// Only these topics (default: every topic the group has state on).
    #[arg(long = "topic", value_name = "TOPIC")]
    topics: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Flags of `kpax share reset`.
#[derive(Debug, Args)]
pub struct ShareResetArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The share group (it must have no members).
    group: String,
    /// The topic.
    topic: String,
    /// Where to start: `earliest`, `latest`, or a time (RFC 3339 UTC,
    /// epoch ms, -1h, now: the first offset at or after it).
    #[arg(
        long,
        value_name = "earliest|latest|TIME",
        allow_hyphen_values = true,
        required_unless_present = "offset",
        conflicts_with = "offset"
    )]
    to: Option<String>,
    /// Start every partition of the topic at this offset.
    #[arg(long, value_name = "N")]
    offset: Option<i64>,
    /// Set the offsets (without it, only show what would be set).
    #[arg(long)]
    execute: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Flags of `kpax share delete-offsets`.
#[derive(Debug, Args)]
pub struct ShareDeleteOffsetsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The share group (it must have no members).
    group: String,
    /// The topics whose state is forgotten.
    #[arg(long = "topic", value_name = "TOPIC", required = true)]
    topics: Vec<String>,
}

/// Flags of `kpax share describe`.
#[derive(Debug, Args)]
pub struct ShareDescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Share group ids.
    #[arg(required = true)]
    groups: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Flags of `kpax share consume`.
#[derive(Debug, Args)]
pub struct ShareConsumeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The share group.
    group: String,
    /// The topic.
    topic: String,
    /// How each record is acknowledged: accept (done), release (hand it
    /// out again) or reject (never again).
    #[arg(long, value_enum, default_value = "accept")]
    ack: Ack,
    /// Stop after N records.
    #[arg(short = 'n', long, value_name = "N")]
    count: Option<u64>,
    /// Set the group's `share.auto.offset.reset` first: `earliest` makes a
    /// new group start at the beginning of the topic (Kafka's default is
    /// `latest`).
    #[arg(long, value_name = "earliest|latest")]
    reset: Option<String>,
    /// Stop when no record came for this long (default: --timeout).
    #[arg(long, value_name = "DURATION", value_parser = crate::when::parse_duration)]
    idle: Option<Duration>,
    #[arg(short, long, default_value = "raw", value_parser = parse_format, help = crate::format::FORMAT_HELP)]
    format: Format,
    /// Separator between key and value for --format kv (`\t` for a tab).
    #[arg(short = 'K', long, value_name = "SEP", default_value = "\\t")]
    key_separator: String,
    /// Print each record's delivery count before it.
    #[arg(long)]
    delivery_count: bool,
}

/// `--ack`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Ack {
    /// Processed: done for the group.
    Accept,
    /// Hand the record out again (its delivery count grows).
    Release,
    /// Never hand the record out again.
    Reject,
}

impl From<Ack> for AcknowledgeType {
    fn from(a: Ack) -> AcknowledgeType {
        match a {
            Ack::Accept => AcknowledgeType::Accept,
            Ack::Release => AcknowledgeType::Release,
            Ack::Reject => AcknowledgeType::Reject,
        }
    }
}

/// Runs `kpax share ...`.
///
/// # Errors
/// Bad flags, a broker without share groups, connection errors.
pub async fn run(c: ShareCommand) -> Result<()> {
    match c {
        ShareCommand::Consume(a) => consume(a).await,
        ShareCommand::Describe(a) => describe(a).await,
        ShareCommand::Offsets(a) => offsets(a).await,
        ShareCommand::Reset(a) => reset(a).await,
        ShareCommand::DeleteOffsets(a) => delete_offsets(a).await,
    }
}

async fn offsets(a: ShareOffsetsArgs) -> Result<()> {
    let admin = Admin::new(a.connect.cluster()?);
    let group = a.group.as_str();
    let topics: Vec<&str> = a.topics.iter().map(String::as_str).collect();
    let found = a
        .connect
        .bounded(&format!("share group {group}: offsets"), async {
            admin
                .list_share_group_offsets(group, (!topics.is_empty()).then_some(&topics[..]))
                .await
                .kafka(|| format!("share group {group}: offsets"))
        })
        .await?;
    if found.is_empty() {
        // Kafka answers an unknown group with no partitions: say which.
        a.connect
            .bounded(&format!("describing share group {group}"), async {
                let mut d = admin
                    .describe_share_groups(&[group])
                    .await
                    .kafka(|| format!("describing share group {group}"))?;
                match d.pop() {
                    Some((_, Err(e))) => Err(CliError::Kafka {
                        context: format!("share group {group}"),
                        source: e,
                    }),
                    _ => Ok(()),
                }
            })
            .await?;
    }
    let mut failed = Vec::new();
    let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    if a.json {
        let rows: Vec<_> = found
            .iter()
            .map(|(tp, r)| match r {
                Ok(o) => json!({
                    "topic": tp.topic, "partition": tp.partition,
                    "start_offset": o.start_offset, "leader_epoch": o.leader_epoch, "lag": o.lag,
                }),
                Err(e) => {
                    failed.push(format!("{tp}: {e}"));
                    json!({ "topic": tp.topic, "partition": tp.partition, "error": e.to_string() })
                }
            })
            .collect();
        print_json(&json!({ "group": group, "partitions": rows }))?;
    } else {
        let mut t = Table::new(&["TOPIC", "PARTITION", "START-OFFSET", "LEADER-EPOCH", "LAG"]);
        for (tp, r) in &found {
            match r {
                Ok(o) => t.row(vec![
                    tp.topic.clone(),
                    tp.partition.to_string(),
                    opt(o.start_offset),
                    opt(o.leader_epoch.map(i64::from)),
                    opt(o.lag),
                ]),
                Err(e) => failed.push(format!("{tp}: {e}")),
            }
        }
        write_out(&t.render())?;
    }
    crate::output::failures(failed)
}

/// Fails unless share group `group` has no members (Kafka refuses to
/// alter or delete the offsets of a group with members).
async fn ensure_no_members(admin: &Admin, group: &str) -> Result<()> {
    let mut v = admin
        .describe_share_groups(&[group])
        .await
        .kafka(|| format!("describing share group {group}"))?;
    match v.pop().map(|(_, r)| r) {
        Some(Ok(d)) if !d.members.is_empty() => Err(CliError::Failed(format!(
            "share group {group} has {} member(s) (state {}); stop its consumers first",
            d.members.len(),
            d.state
        ))),
        Some(Err(e)) => Err(CliError::Kafka {
            context: format!("describing share group {group}"),
            source: e,
        }),
        _ => Ok(()),
    }
}

async fn reset(a: ShareResetArgs) -> Result<()> {
    let target = reader::Target::parse(a.to.as_deref(), a.offset)?;
    let admin = Admin::new(a.connect.cluster()?);
    let (group, topic, execute) = (a.group.as_str(), a.topic.as_str(), a.execute);
    let rows = a
        .connect
        .bounded(&format!("resetting share group {group}"), async {
            ensure_no_members(&admin, group).await?;
            let partitions = admin
                .cluster()
                .partitions(topic)
                .await
                .kafka(|| format!("topic {topic}"))?;
            let before = admin
                .list_share_group_offsets(group, Some(&[topic]))
                .await
                .kafka(|| format!("share group {group}: offsets"))?;
            let target = target.offsets(&admin, topic, &partitions).await?;
            let new: Vec<(TopicPartition, i64)> = target
                .iter()
                .map(|(p, o)| (TopicPartition::new(topic, *p), *o))
                .collect();
            if execute {
                let done = admin
                    .alter_share_group_offsets(group, &new)
                    .await
                    .kafka(|| format!("share group {group}: setting offsets"))?;
                for (tp, r) in done {
                    r.kafka(|| format!("share group {group}: setting {tp}"))?;
                }
            }
            Ok(new
                .into_iter()
                .map(|(tp, to)| {
                    let old = before
                        .get(&tp)
                        .and_then(|r| r.as_ref().ok())
                        .and_then(|o| o.start_offset);
                    (tp.partition, old, to)
                })
                .collect::<Vec<_>>())
        })
        .await?;
    if a.json {
        return print_json(&json!({
            "group": group, "topic": topic, "executed": execute,
            "partitions": crate::output::moves_json(&rows),
        }));
    }
    let mut out = crate::output::moves_table(topic, &rows);
    out.push_str(&if execute {
        format!("share group {group}: start offsets set\n")
    } else {
        format!("share group {group}: nothing set (dry run); add --execute to set these offsets\n")
    });
    write_out(&out)
}

async fn delete_offsets(a: ShareDeleteOffsetsArgs) -> Result<()> {
    let admin = Admin::new(a.connect.cluster()?);
    let group = a.group.as_str();
    let topics: Vec<&str> = a.topics.iter().map(String::as_str).collect();
    let done = a
        .connect
        .bounded(&format!("share group {group}: deleting offsets"), async {
            ensure_no_members(&admin, group).await?;
            admin
                .delete_share_group_offsets(group, &topics)
                .await
                .kafka(|| format!("share group {group}: deleting offsets"))
        })
        .await?;
    crate::output::report(done, &format!("share group {group}: deleted the state of"))
}

async fn describe(a: ShareDescribeArgs) -> Result<()> {
    let admin = Admin::new(a.connect.cluster()?);
    let names: Vec<&str> = a.groups.iter().map(String::as_str).collect();
    let results = a
        .connect
        .bounded("describing share groups", async {
            admin
                .describe_share_groups(&names)
                .await
                .kafka(|| "describing share groups".into())
        })
        .await?;
    let mut failed = Vec::new();
    let list = |v: &[kpax::admin::TopicPartition]| {
        v.iter()
            .map(|tp| tp.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    if a.json {
        let mut v = Vec::new();
        for (name, r) in &results {
            match r {
                Ok(d) => v.push(json!({
                    "group": d.group_id, "state": d.state, "group_epoch": d.group_epoch,
                    "assignment_epoch": d.assignment_epoch, "assignor": d.assignor,
                    "coordinator": d.coordinator,
                    "members": d.members.iter().map(|m| json!({
                        "member_id": m.member_id, "member_epoch": m.member_epoch,
                        "rack_id": m.rack_id, "client_id": m.client_id,
                        "client_host": m.client_host, "subscribed_topics": m.subscribed_topics,
                        "assignment": m.assignment.iter().map(|tp| json!({
                            "topic": tp.topic, "partition": tp.partition,
                        })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })),
                Err(e) => {
                    v.push(json!({ "group": name, "error": e.to_string() }));
                    failed.push(format!("{name}: {e}"));
                }
            }
        }
        print_json(&json!({ "groups": v }))?;
    } else {
        let mut out = String::new();
        for (name, r) in &results {
            match r {
                Ok(d) => {
                    out.push_str(&format!(
                        "share group {}: state {}, epoch {}, assignor {}, coordinator {}, {} member(s)\n",
                        d.group_id,
                        d.state,
                        d.group_epoch,
                        d.assignor,
                        d.coordinator.map_or("-".into(), |c| c.to_string()),
                        d.members.len()
                    ));
                    if !d.members.is_empty() {
                        let mut t = Table::new(&[
                            "MEMBER",
                            "EPOCH",
                            "CLIENT",
                            "HOST",
                            "TOPICS",
                            "ASSIGNMENT",
                        ]);
                        for m in &d.members {
                            t.row(vec![
                                m.member_id.clone(),
                                m.member_epoch.to_string(),
                                m.client_id.clone(),
                                m.client_host.clone(),
                                m.subscribed_topics.join(","),
                                list(&m.assignment),
                            ]);
                        }
                        out.push_str(&t.render());
                    }
                }
                Err(e) => failed.push(format!("{name}: {e}")),
            }
        }
        write_out(&out)?;
    }
    crate::output::failures(failed)
}

async fn consume(args: ShareConsumeArgs) -> Result<()> {
    if let Some(r) = &args.reset {
        if r != "earliest" && r != "latest" {
            return Err(CliError::Usage(format!(
                "--reset {r:?}: expected earliest or latest"
            )));
        }
    }
    let cluster = args.connect.cluster()?;
    if let Some(r) = &args.reset {
        let admin = Admin::new(cluster.clone());
        let group = args.group.clone();
        args.connect
            .bounded("setting share.auto.offset.reset", async {
                let res = admin
                    .incremental_alter_configs(
                        &[(
                            ConfigResource::Group(group.clone()),
                            vec![AlterConfig::set("share.auto.offset.reset", r.as_str())],
                        )],
                        false,
                    )
                    .await
                    .kafka(|| format!("group {group} configs"))?;
                for (res, out) in res {
                    out.kafka(|| format!("{res}: share.auto.offset.reset"))?;
                }
                Ok(())
            })
            .await?;
    }
    let consumer = ShareConsumer::new(cluster, ShareConsumerConfig::new(args.group.clone()))
        .kafka(|| "starting the share consumer".into())?;
    consumer
        .subscribe([args.topic.clone()])
        .kafka(|| format!("subscribing to {}", args.topic))?;
    let printer = Printer {
        format: args.format,
        separator: crate::cmd::produce::unescape(&args.key_separator),
    };
    let idle = args.idle.unwrap_or(args.connect.timeout);
    let kind = AcknowledgeType::from(args.ack);
    let limit = args.count.unwrap_or(u64::MAX);
    let mut n = 0u64;
    let mut last = Instant::now();
    let read: Result<()> = async {
        while n < limit {
            let left = idle.saturating_sub(last.elapsed());
            let batch = match tokio::time::timeout(left, consumer.recv_batch(500)).await {
                Err(_) => break, // idle
                Ok(b) => b.kafka(|| format!("share group {}", args.group))?,
            };
            last = Instant::now();
            for r in batch {
                if n >= limit {
                    // Not ours to keep: the next member gets it at once.
                    consumer
                        .acknowledge(&r, AcknowledgeType::Release)
                        .kafka(|| "releasing".into())?;
                    continue;
                }
                let line = printer.line(&ConsumerRecord::new(
                    r.topic.clone(),
                    r.partition,
                    r.record.clone(),
                ));
                if args.delivery_count {
                    write_out(&format!("{}\t{line}", r.delivery_count))?;
                } else {
                    write_out(&line)?;
                }
                consumer
                    .acknowledge(&r, kind)
                    .kafka(|| "acknowledging".into())?;
                n += 1;
            }
        }
        Ok(())
    }
    .await;
    let committed = crate::connect::bounded(args.connect.timeout, "acknowledging", async {
        consumer
            .commit()
            .await
            .kafka(|| "sending acknowledgements".into())
    })
    .await;
    let _ = tokio::time::timeout(args.connect.timeout, consumer.close()).await;
    read?;
    committed?;
    if n == 0 && args.count.is_some() {
        return Err(CliError::Failed(format!(
            "no record from share group {} on {} within {idle:?}",
            args.group, args.topic
        )));
    }
    Ok(())
}
