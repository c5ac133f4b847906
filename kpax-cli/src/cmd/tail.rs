//! `kpax tail`: the latest N records of every partition of a topic,
//! printed by partition in offset order.

use crate::connect::ConnectArgs;
use crate::error::{KafkaContext, Result};
use crate::format::{parse_format, Format, Printer};
use crate::output::write_out;
use crate::reader::{self, Range};
use clap::Args;
use kpax::admin::{Admin, OffsetSpec};
use kpax::{Consumer, ConsumerConfig, ConsumerRecord};
use std::collections::BTreeMap;

/// Flags of `kpax tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic.
    topic: String,
    /// Records per partition.
    #[arg(short = 'n', long, default_value_t = 10)]
    count: u32,
    #[arg(short, long, default_value = "raw", value_parser = parse_format, help = crate::format::FORMAT_HELP)]
    format: Format,
    /// Separator between key and value for --format kv (`\t` for a tab).
    #[arg(short = 'K', long, value_name = "SEP", default_value = "\\t")]
    key_separator: String,
}

/// Runs `kpax tail`.
///
/// # Errors
/// An unknown topic, connection errors, records not read within the
/// timeout.
pub async fn run(args: TailArgs) -> Result<()> {
    let cluster = args.connect.cluster()?;
    let admin = Admin::new(cluster.clone());
    let topic = args.topic.clone();
    let n = i64::from(args.count);
    let printer = Printer {
        format: args.format,
        separator: crate::cmd::produce::unescape(&args.key_separator),
    };
    let records = args
        .connect
        .bounded(&format!("reading the tail of {topic}"), async {
            let partitions = cluster
                .partitions(&topic)
                .await
                .kafka(|| format!("topic {topic}"))?;
            let first = reader::offsets(&admin, &topic, &partitions, OffsetSpec::Earliest).await?;
            let ends = reader::offsets(&admin, &topic, &partitions, OffsetSpec::Latest).await?;
            let starts: BTreeMap<i32, i64> = ends
                .iter()
                .map(|(p, e)| (*p, (e - n).max(first.get(p).copied().unwrap_or(0))))
                .collect();
            let consumer = Consumer::new(cluster.clone(), ConsumerConfig::default())
                .kafka(|| "starting the consumer".into())?;
            reader::assign(&consumer, &topic, &starts);
            let range = Range {
                topic: topic.clone(),
                ends: Some(ends),
                limit: None,
                idle: None,
                headers: Vec::new(),
            };
            let mut got: Vec<ConsumerRecord> = Vec::new();
            let r = reader::read(&consumer, &range, |r| {
                got.push(r);
                Ok(())
            })
            .await;
            consumer.close().await;
            r.map(|_| got)
        })
        .await?;
    let mut records = records;
    records.sort_by_key(|r| (r.partition, r.offset));
    let mut out = String::new();
    for r in &records {
        out.push_str(&printer.line(r));
    }
    write_out(&out)
}
