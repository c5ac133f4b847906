//! `kpax group list|describe|delete|seek` (seek lives with rollback).

use crate::connect::ConnectArgs;
use crate::error::{KafkaContext, Result};
use crate::output::{print_json, write_out, Table};
use clap::{Args, Subcommand};
use kpax::admin::Admin;
use serde_json::json;

/// The `kpax group` subcommands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Every group of the cluster (ListGroups on every broker).
    List(ListArgs),
    /// Groups' state, protocol and members with their assignments.
    Describe(GroupsArgs),
    /// Delete groups (they must have no members).
    Delete(GroupsArgs),
    /// Move an empty group's committed offsets to the start, the end, a
    /// time or an offset (a dry run unless --execute).
    Seek(super::rollback::SeekArgs),
}

/// Flags of `kpax group list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Flags of `kpax group describe` and `kpax group delete`.
#[derive(Debug, Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Group ids.
    #[arg(required = true)]
    groups: Vec<String>,
    /// Print JSON instead of a table (describe).
    #[arg(long)]
    json: bool,
}

/// Runs a `kpax group` subcommand.
///
/// # Errors
/// Per-group failures (all named in one line), connection errors, brokers
/// without the group admin APIs.
pub async fn run(cmd: GroupCommand) -> Result<()> {
    match cmd {
        GroupCommand::List(a) => list(a).await,
        GroupCommand::Describe(a) => describe(a).await,
        GroupCommand::Delete(a) => delete(a).await,
        GroupCommand::Seek(a) => super::rollback::seek(a).await,
    }
}

async fn list(a: ListArgs) -> Result<()> {
    let admin = Admin::new(a.connect.cluster()?);
    let groups = a
        .connect
        .bounded("listing groups", async {
            admin.list_groups().await.kafka(|| "listing groups".into())
        })
        .await?;
    if a.json {
        return print_json(&json!({
            "groups": groups.groups.iter().map(|g| json!({
                "group": g.group_id, "protocol_type": g.protocol_type,
                "state": g.state, "type": g.group_type, "coordinator": g.coordinator,
            })).collect::<Vec<_>>(),
            "errors": groups.errors.iter().map(|(b, e)| json!({
                "broker": b, "error": e.to_string(),
            })).collect::<Vec<_>>(),
        }));
    }
    let mut t = Table::new(&["GROUP", "TYPE", "PROTOCOL TYPE", "STATE", "COORDINATOR"]);
    for g in &groups.groups {
        t.row(vec![
            g.group_id.clone(),
            g.group_type.clone().unwrap_or_else(|| "-".into()),
            if g.protocol_type.is_empty() {
                "-".into()
            } else {
                g.protocol_type.clone()
            },
            g.state.clone().unwrap_or_else(|| "-".into()),
            g.coordinator.map_or("-".into(), |c| c.to_string()),
        ]);
    }
    let mut out = t.render();
    for (b, e) in &groups.errors {
        out.push_str(&format!("broker {b} did not answer: {e}\n"));
    }
    write_out(&out)
}

async fn describe(a: GroupsArgs) -> Result<()> {
    let admin = Admin::new(a.connect.cluster()?);
    let names: Vec<&str> = a.groups.iter().map(String::as_str).collect();
    let results = a
        .connect
        .bounded("describing groups", async {
            admin
                .describe_groups(&names)
                .await
                .kafka(|| "describing groups".into())
        })
        .await?;
    let mut failed = Vec::new();
    if a.json {
        let mut v = Vec::new();
        for (name, r) in &results {
            match r {
                Ok(d) => v.push(json!({
                    "group": d.group_id, "state": d.state,
                    "protocol_type": d.protocol_type, "protocol": d.protocol,
                    "coordinator": d.coordinator,
                    "members": d.members.iter().map(|m| json!({
                        "member_id": m.member_id, "group_instance_id": m.group_instance_id,
                        "client_id": m.client_id, "client_host": m.client_host,
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
                        "group {}: state {}, protocol {} {}, coordinator {}, {} member(s)\n",
                        d.group_id,
                        d.state,
                        if d.protocol_type.is_empty() {
                            "-"
                        } else {
                            &d.protocol_type
                        },
                        if d.protocol.is_empty() {
                            "-"
                        } else {
                            &d.protocol
                        },
                        d.coordinator.map_or("-".into(), |c| c.to_string()),
                        d.members.len()
                    ));
                    if !d.members.is_empty() {
                        let mut t = Table::new(&["MEMBER", "CLIENT", "HOST", "ASSIGNMENT"]);
                        for m in &d.members {
                            t.row(vec![
                                m.member_id.clone(),
                                m.client_id.clone(),
                                m.client_host.clone(),
                                m.assignment
                                    .iter()
                                    .map(|tp| tp.to_string())
                                    .collect::<Vec<_>>()
                                    .join(","),
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

async fn delete(a: GroupsArgs) -> Result<()> {
    let admin = Admin::new(a.connect.cluster()?);
    let names: Vec<&str> = a.groups.iter().map(String::as_str).collect();
    let results = a
        .connect
        .bounded("deleting groups", async {
            admin
                .delete_groups(&names)
                .await
                .kafka(|| "deleting groups".into())
        })
        .await?;
    crate::output::report(results, "deleted group")
}
