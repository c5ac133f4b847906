//! `kpax meta` (alias `topics`): the cluster's brokers and its topics'
//! partitions, leaders, replicas and ISR.

use crate::connect::ConnectArgs;
use crate::error::{CliError, KafkaContext, Result};
use crate::output::{ids, print_json, Table};
use clap::Args;
use kpax::admin::{Admin, ClusterDescription};
use kpax::cluster::TopicMeta;
use serde_json::json;

/// Flags of `kpax meta`.
#[derive(Debug, Args)]
pub struct MetaArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Only these topics (an unknown one is an error).
    topics: Vec<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// Runs `kpax meta`.
///
/// # Errors
/// Connection errors, a named topic that does not exist.
pub async fn run(args: MetaArgs) -> Result<()> {
    let admin = Admin::new(args.connect.cluster()?);
    let (cluster, topics) = args
        .connect
        .bounded("reading metadata", async {
            let cluster = admin
                .describe_cluster()
                .await
                .kafka(|| "describing the cluster".into())?;
            let topics = admin
                .list_topics()
                .await
                .kafka(|| "listing topics".into())?;
            Ok((cluster, topics))
        })
        .await?;
    let mut shown: Vec<(String, std::result::Result<TopicMeta, String>)> = Vec::new();
    if args.topics.is_empty() {
        for (name, r) in topics {
            shown.push((name, r.map_err(|e| e.to_string())));
        }
    } else {
        for want in &args.topics {
            match topics.iter().find(|(n, _)| n == want) {
                Some((n, r)) => shown.push((n.clone(), r.clone().map_err(|e| e.to_string()))),
                None => {
                    return Err(CliError::Failed(format!(
                        "topic {want:?} does not exist (UNKNOWN_TOPIC_OR_PARTITION)"
                    )))
                }
            }
        }
    }
    if args.json {
        print_json(&to_json(&cluster, &shown))
    } else {
        print_tables(&cluster, &shown)
    }
}

fn to_json(
    c: &ClusterDescription,
    topics: &[(String, std::result::Result<TopicMeta, String>)],
) -> serde_json::Value {
    json!({
        "cluster_id": c.cluster_id,
        "controller_id": c.controller_id,
        "brokers": c.brokers.iter().map(|b| json!({
            "id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack,
        })).collect::<Vec<_>>(),
        "topics": topics.iter().map(|(name, r)| match r {
            Ok(t) => json!({
                "name": name,
                "internal": t.is_internal,
                "partitions": t.partitions.iter().map(|p| json!({
                    "partition": p.partition,
                    "leader": p.leader,
                    "replicas": p.replicas,
                    "isr": p.isr,
                    "error": (!p.error.is_ok()).then(|| p.error.to_string()),
                })).collect::<Vec<_>>(),
            }),
            Err(e) => json!({ "name": name, "error": e }),
        }).collect::<Vec<_>>(),
    })
}

fn print_tables(
    c: &ClusterDescription,
    topics: &[(String, std::result::Result<TopicMeta, String>)],
) -> Result<()> {
    let mut out = format!(
        "cluster {}  controller {}\n\n",
        c.cluster_id.as_deref().unwrap_or("-"),
        c.controller_id.map_or("-".into(), |i| i.to_string())
    );
    let mut brokers = Table::new(&["BROKER", "ADDRESS", "RACK"]);
    for b in &c.brokers {
        brokers.row(vec![
            b.node_id.to_string(),
            format!("{}:{}", b.host, b.port),
            b.rack.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    out.push_str(&brokers.render());
    out.push('\n');
    let mut parts = Table::new(&["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "ERROR"]);
    for (name, r) in topics {
        match r {
            Ok(t) => {
                let mut ps = t.partitions.clone();
                ps.sort_by_key(|p| p.partition);
                let shown = if t.is_internal {
                    format!("{name} (internal)")
                } else {
                    name.clone()
                };
                for p in ps {
                    parts.row(vec![
                        shown.clone(),
                        p.partition.to_string(),
                        p.leader.to_string(),
                        ids(&p.replicas),
                        ids(&p.isr),
                        if p.error.is_ok() {
                            String::new()
                        } else {
                            p.error.to_string()
                        },
                    ]);
                }
            }
            Err(e) => parts.row(vec![
                name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                e.clone(),
            ]),
        }
    }
    out.push_str(&parts.render());
    crate::output::write_out(&out)
}
