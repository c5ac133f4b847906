//! `kpax share`: share groups (KIP-932). `kpax share consume GROUP TOPIC`
//! reads records as a member of a share group and acknowledges each one
//! (accept, release or reject), for scripts and tests.

use crate::connect::ConnectArgs;
use crate::error::{CliError, KafkaContext, Result};
use crate::output::write_out;
use crate::reader::{Format, Printer};
use clap::{Args, Subcommand, ValueEnum};
use kpax::admin::{Admin, AlterConfig, ConfigResource};
use kpax::share::{AcknowledgeType, ShareConsumer, ShareConsumerConfig};
use kpax::ConsumerRecord;
use std::time::{Duration, Instant};

/// `kpax share` subcommands.
#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// Read records as a member of a share group, acknowledging each one.
    Consume(ShareConsumeArgs),
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
    /// Output format.
    #[arg(short, long, value_enum, default_value = "raw")]
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
    }
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
