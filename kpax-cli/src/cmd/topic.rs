//! `kpax topic create|delete|alter|describe`.

use crate::connect::ConnectArgs;
use crate::error::{CliError, KafkaContext, Result};
use crate::output::{ids, print_json, write_out, Table};
use clap::{Args, Subcommand};
use kpax::admin::{Admin, AlterConfig, ConfigResource, NewTopic};
use kpax::proto::generated::metadata::MetadataRequestTopic;
use kpax::proto::generated::MetadataRequest;
use kpax::Error;
use serde_json::json;

/// The `kpax topic` subcommands.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create topics.
    Create(CreateArgs),
    /// Delete topics.
    Delete(DeleteArgs),
    /// Add partitions to a topic, or set or delete its configs.
    Alter(AlterArgs),
    /// A topic's partitions and its configs that are not defaults.
    Describe(DescribeArgs),
}

/// Flags of `kpax topic create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic names.
    #[arg(required = true)]
    topics: Vec<String>,
    /// Partitions of each topic.
    #[arg(short, long, default_value_t = 1)]
    partitions: i32,
    /// Replicas of each partition (-1: the broker's default).
    #[arg(short, long, default_value_t = 1, allow_hyphen_values = true)]
    replication_factor: i16,
    /// A topic config, NAME=VALUE (repeatable).
    #[arg(short, long = "config-entry", value_name = "NAME=VALUE")]
    config_entries: Vec<String>,
    /// Only check that the topics could be created.
    #[arg(long)]
    validate_only: bool,
}

/// Flags of `kpax topic delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic names.
    #[arg(required = true)]
    topics: Vec<String>,
}

/// Flags of `kpax topic alter`.
#[derive(Debug, Args)]
pub struct AlterArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic.
    topic: String,
    /// Grow the topic to this many partitions in all.
    #[arg(short, long)]
    partitions: Option<i32>,
    /// Set a config, NAME=VALUE (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Delete a config, back to its default (repeatable).
    #[arg(long = "delete-config", value_name = "NAME")]
    delete: Vec<String>,
}

/// Flags of `kpax topic describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic.
    topic: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

fn name_value(s: &str, flag: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(CliError::Usage(format!(
            "{flag} {s:?}: expected NAME=VALUE"
        ))),
    }
}

/// Runs a `kpax topic` subcommand.
///
/// # Errors
/// Bad flags, per-topic failures (all named in one line), connection
/// errors, brokers without the admin APIs.
pub async fn run(cmd: TopicCommand) -> Result<()> {
    match cmd {
        TopicCommand::Create(a) => create(a).await,
        TopicCommand::Delete(a) => delete(a).await,
        TopicCommand::Alter(a) => alter(a).await,
        TopicCommand::Describe(a) => describe(a).await,
    }
}

async fn create(a: CreateArgs) -> Result<()> {
    let mut topics = Vec::new();
    for name in &a.topics {
        let mut t = NewTopic::new(name.clone(), a.partitions, a.replication_factor);
        for c in &a.config_entries {
            let (k, v) = name_value(c, "--config-entry")?;
            t = t.with_config(k, v);
        }
        topics.push(t);
    }
    let admin = Admin::new(a.connect.cluster()?);
    let results = a
        .connect
        .bounded("creating topics", async {
            let results = admin
                .create_topics(&topics, a.validate_only)
                .await
                .kafka(|| "creating topics".into())?;
            if !a.validate_only {
                let created: Vec<(&str, Option<i32>)> = results
                    .iter()
                    .filter_map(|(n, r)| r.as_ref().ok().map(|c| (n.as_str(), c.partitions)))
                    .collect();
                await_visible(&admin, &created).await?;
            }
            Ok(results)
        })
        .await?;
    crate::output::report(
        results,
        if a.validate_only {
            "could create topic"
        } else {
            "created topic"
        },
    )
}

/// Waits until every broker's metadata shows each created topic with a
/// leader for each of its partitions: Kafka answers CreateTopics once the
/// controller has the topic, and the brokers learn of it a moment later,
/// so the next command (which may ask any broker) could otherwise be told
/// UNKNOWN_TOPIC_OR_PARTITION. Bounded by the command's --timeout.
pub(crate) async fn await_visible(admin: &Admin, created: &[(&str, Option<i32>)]) -> Result<()> {
    if created.is_empty() {
        return Ok(());
    }
    let mut req = MetadataRequest::default();
    req.topics = Some(
        created
            .iter()
            .map(|(n, _)| {
                let mut t = MetadataRequestTopic::default();
                t.name = Some((*n).into());
                t
            })
            .collect(),
    );
    let brokers = admin.cluster().brokers();
    loop {
        let mut all = true;
        for b in &brokers {
            // A broker that does not answer cannot be waited for (nor
            // asked by the next command).
            let Ok(resp) = b.send(&req).await else {
                continue;
            };
            for (name, partitions) in created {
                let seen = resp.topics.iter().find(|t| {
                    t.name.as_ref().map(|n| n.as_str()) == Some(*name) && t.error_code.is_ok()
                });
                let ready = seen.is_some_and(|t| {
                    !t.partitions.is_empty()
                        && partitions.is_none_or(|n| t.partitions.len() == n as usize)
                        && t.partitions.iter().all(|p| p.leader_id >= 0)
                });
                all &= ready;
            }
        }
        if all {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn delete(a: DeleteArgs) -> Result<()> {
    let admin = Admin::new(a.connect.cluster()?);
    let names: Vec<&str> = a.topics.iter().map(String::as_str).collect();
    let results = a
        .connect
        .bounded("deleting topics", async {
            admin
                .delete_topics(&names)
                .await
                .kafka(|| "deleting topics".into())
        })
        .await?;
    crate::output::report(results, "deleted topic")
}

async fn alter(a: AlterArgs) -> Result<()> {
    if a.partitions.is_none() && a.set.is_empty() && a.delete.is_empty() {
        return Err(CliError::Usage(
            "topic alter: give --partitions N, --set NAME=VALUE or --delete-config NAME".into(),
        ));
    }
    let mut changes = Vec::new();
    for s in &a.set {
        let (k, v) = name_value(s, "--set")?;
        changes.push(AlterConfig::set(k, v));
    }
    for d in &a.delete {
        changes.push(AlterConfig::delete(d.clone()));
    }
    let admin = Admin::new(a.connect.cluster()?);
    let topic = a.topic.clone();
    a.connect
        .bounded(&format!("altering topic {topic}"), async {
            if let Some(n) = a.partitions {
                let r = admin
                    .create_partitions(&[(topic.as_str(), n)], false)
                    .await
                    .kafka(|| format!("adding partitions to {topic}"))?;
                crate::output::report(r, &format!("{n} partitions now in topic"))?;
            }
            if !changes.is_empty() {
                let r = admin
                    .incremental_alter_configs(
                        &[(ConfigResource::Topic(topic.clone()), changes.clone())],
                        false,
                    )
                    .await
                    .kafka(|| format!("altering configs of {topic}"))?;
                crate::output::report(
                    r.into_iter().map(|(res, r)| (res.to_string(), r)).collect(),
                    "altered configs of",
                )?;
            }
            Ok(())
        })
        .await
}

async fn describe(a: DescribeArgs) -> Result<()> {
    let admin = Admin::new(a.connect.cluster()?);
    let topic = a.topic.clone();
    let (meta, configs) = a
        .connect
        .bounded(&format!("describing topic {topic}"), async {
            let meta = admin
                .cluster()
                .topic(&topic)
                .await
                .kafka(|| format!("topic {topic}"))?;
            if !meta.error.is_ok() {
                return Err(CliError::Failed(format!("topic {topic}: {}", meta.error)));
            }
            let configs = match admin
                .describe_configs(&[ConfigResource::Topic(topic.clone())])
                .await
            {
                Ok(mut v) => match v.pop() {
                    Some((_, Ok(c))) => Some(c),
                    Some((_, Err(e))) => {
                        return Err(CliError::Kafka {
                            context: format!("configs of {topic}"),
                            source: e,
                        })
                    }
                    None => None,
                },
                // A broker without DescribeConfigs (librdkafka's mock):
                // partitions only.
                Err(Error::UnsupportedVersion { .. }) => None,
                Err(e) => {
                    return Err(CliError::Kafka {
                        context: format!("configs of {topic}"),
                        source: e,
                    })
                }
            };
            Ok((meta, configs))
        })
        .await?;
    let mut parts = meta.partitions.clone();
    parts.sort_by_key(|p| p.partition);
    let set: Vec<_> = configs.iter().flatten().filter(|c| !c.is_default).collect();
    if a.json {
        return print_json(&json!({
            "name": topic,
            "internal": meta.is_internal,
            "partitions": parts.iter().map(|p| json!({
                "partition": p.partition, "leader": p.leader,
                "replicas": p.replicas, "isr": p.isr,
            })).collect::<Vec<_>>(),
            "configs": configs.as_ref().map(|_| set.iter().map(|c| json!({
                "name": c.name,
                "value": if c.is_sensitive { None } else { c.value.clone() },
                "sensitive": c.is_sensitive,
            })).collect::<Vec<_>>()),
        }));
    }
    let mut out = format!("topic {topic}: {} partitions\n", parts.len());
    let mut t = Table::new(&["PARTITION", "LEADER", "REPLICAS", "ISR"]);
    for p in &parts {
        t.row(vec![
            p.partition.to_string(),
            p.leader.to_string(),
            ids(&p.replicas),
            ids(&p.isr),
        ]);
    }
    out.push_str(&t.render());
    match &configs {
        None => out.push_str("configs: not served by this broker (no DescribeConfigs)\n"),
        Some(_) if set.is_empty() => out.push_str("configs: all defaults\n"),
        Some(_) => {
            let mut c = Table::new(&["CONFIG", "VALUE"]);
            for e in &set {
                let v = if e.is_sensitive {
                    "(sensitive)".to_string()
                } else {
                    e.value.clone().unwrap_or_else(|| "-".into())
                };
                c.row(vec![e.name.clone(), v]);
            }
            out.push('\n');
            out.push_str(&c.render());
        }
    }
    write_out(&out)
}
