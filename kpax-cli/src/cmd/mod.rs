//! The `kpax` subcommands, one module each.

pub mod consume;
pub mod decode;
pub mod demo;
pub mod fake;
pub mod group;
pub mod meta;
pub mod mirror;
pub mod offset;
pub mod produce;
pub mod profile;
pub mod rollback;
pub mod share;
pub mod tail;
pub mod topic;
pub mod versions;

use crate::error::Result;
use clap::Subcommand;

/// Every `kpax` command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Brokers, topics, partitions, leaders, replicas and ISR.
    #[command(visible_alias = "topics")]
    Meta(meta::MetaArgs),
    /// Produce records from arguments or stdin lines.
    Produce(produce::ProduceArgs),
    /// Consume records from an offset or a time, up to an end time, a count, or the end.
    Consume(consume::ConsumeArgs),
    /// The latest N records of every partition of a topic.
    Tail(tail::TailArgs),
    /// A group's committed offsets and lag on a topic.
    Offset(offset::OffsetArgs),
    /// Set an empty group's committed offsets on a topic to those at a time (group seek -t T --to TIME --execute).
    Rollback(rollback::RollbackArgs),
    /// Copy topics from one cluster to another, exactly once, resumable.
    Mirror(mirror::MirrorArgs),
    /// Create, delete, alter or describe topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// List, describe or delete consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Share groups (KIP-932): consume as a member, acknowledging each record.
    #[command(subcommand)]
    Share(share::ShareCommand),
    /// The named profiles (--profile NAME) of ~/.config/kpax/profiles.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Per broker: API versions offered, the version kpax uses, and the features that follow.
    Versions(versions::VersionsArgs),
    /// Pretty-print a raw Kafka request or response frame given in hex.
    Decode(decode::DecodeArgs),
    /// Run an in-process fake Kafka cluster until Ctrl-C.
    Fake(fake::FakeArgs),
    /// Produce and consume a stream through an in-process fake cluster; prints throughput.
    Demo(demo::DemoArgs),
    /// Print a shell completion script: kpax completions bash > /etc/bash_completion.d/kpax
    Completions(CompletionsArgs),
}

/// Flags of `kpax completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

impl Command {
    /// Runs the command.
    ///
    /// # Errors
    /// The command's error.
    pub async fn run(self) -> Result<()> {
        match self {
            Command::Meta(a) => meta::run(a).await,
            Command::Produce(a) => produce::run(a).await,
            Command::Consume(a) => consume::run(a).await,
            Command::Tail(a) => tail::run(a).await,
            Command::Offset(a) => offset::run(a).await,
            Command::Rollback(a) => rollback::run(a).await,
            Command::Mirror(a) => mirror::run(a).await,
            Command::Topic(c) => topic::run(c).await,
            Command::Group(c) => group::run(c).await,
            Command::Share(c) => share::run(c).await,
            Command::Profile(c) => profile::run(c).await,
            Command::Versions(a) => versions::run(a).await,
            Command::Decode(a) => decode::run(a).await,
            Command::Fake(a) => fake::run(a).await,
            Command::Demo(a) => demo::run(a).await,
            // Printed by main, which has the whole command line's definition.
            Command::Completions(_) => Ok(()),
        }
    }
}
