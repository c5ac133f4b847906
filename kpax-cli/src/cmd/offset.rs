//! `kpax offset`: a group's committed offsets and lag on a topic.

use crate::connect::ConnectArgs;
use crate::error::{KafkaContext, Result};
use crate::output::{print_json, Table};
use clap::Args;
use kpax::admin::Admin;
use serde_json::json;

/// Flags of `kpax offset`.
#[derive(Debug, Args)]
pub struct OffsetArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The consumer group.
    group: String,
    /// The topic.
    topic: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `kpax offset`.
///
/// # Errors
/// An unknown topic, the group's or coordinator's error, connection
/// errors.
pub async fn run(args: OffsetArgs) -> Result<()> {
    let admin = Admin::new(args.connect.cluster()?);
    let (group, topic) = (args.group.as_str(), args.topic.as_str());
    let lag = args
        .connect
        .bounded("reading committed offsets", async {
            admin
                .group_lag(group, Some(&[topic]))
                .await
                .kafka(|| format!("group {group} on {topic}"))
        })
        .await?;
    if args.json {
        let parts: Vec<_> = lag
            .iter()
            .map(|(tp, r)| match r {
                Ok(l) => json!({
                    "partition": tp.partition, "committed": l.committed,
                    "end": l.end_offset, "lag": l.lag,
                }),
                Err(e) => json!({ "partition": tp.partition, "error": e.to_string() }),
            })
            .collect();
        let total: i64 = lag.values().filter_map(|r| r.as_ref().ok()?.lag).sum();
        return print_json(&json!({
            "group": group, "topic": topic, "partitions": parts, "total_lag": total,
        }));
    }
    let mut t = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]);
    let mut total = 0i64;
    for (tp, r) in &lag {
        match r {
            Ok(l) => {
                total += l.lag.unwrap_or(0);
                t.row(vec![
                    tp.topic.clone(),
                    tp.partition.to_string(),
                    l.committed.map_or("-".into(), |o| o.to_string()),
                    l.end_offset.to_string(),
                    l.lag.map_or("-".into(), |o| o.to_string()),
                ]);
            }
            Err(e) => t.row(vec![
                tp.topic.clone(),
                tp.partition.to_string(),
                format!("error: {e}"),
            ]),
        }
    }
    let mut out = t.render();
    out.push_str(&format!("group {group}: total lag {total}\n"));
    crate::output::write_out(&out)
}
