//! `kpax fake`: an in-process fake Kafka cluster (kpax-fake) on loopback
//! ports; prints the bootstrap address and serves until Ctrl-C.

use crate::error::{CliError, Result};
use clap::{Args, ValueEnum};
use kpax_fake::{FakeOptions, VersionTable};

/// Which Kafka release's API versions the fake serves.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KafkaPreset {
    /// Every version kpax-fake knows.
    Latest,
    /// Kafka 2.8.
    #[value(name = "2.8")]
    Kafka2_8,
    /// Kafka 0.10 (no idempotence, no headers, no zstd).
    #[value(name = "0.10")]
    Kafka0_10,
}

/// Flags of `kpax fake`.
#[derive(Debug, Args)]
pub struct FakeArgs {
    /// Number of brokers (ids 1..=N).
    #[arg(short, long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    brokers: u16,
    /// A topic to create first, NAME:PARTITIONS (repeatable; partitions default to 1).
    #[arg(short, long, value_name = "NAME:PARTITIONS")]
    topic: Vec<String>,
    /// Create unknown topics when clients ask for them (auto.create.topics.enable).
    #[arg(long)]
    auto_create: bool,
    /// Serve only the API versions of this Kafka release.
    #[arg(long, value_enum, default_value = "latest")]
    kafka: KafkaPreset,
}

/// Parses `name[:partitions]`.
fn parse_topic(s: &str) -> Result<(String, i32)> {
    let (name, n) = s.split_once(':').unwrap_or((s, "1"));
    let n: i32 = n
        .parse()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--topic {s:?}: expected NAME:PARTITIONS with 1 to 10000 partitions"
            ))
        })?;
    if name.is_empty() {
        return Err(CliError::Usage(format!("--topic {s:?}: empty topic name")));
    }
    Ok((name.to_string(), n))
}

/// Runs `kpax fake`.
///
/// # Errors
/// Bad `--topic` values, listeners that cannot be bound.
pub async fn run(args: FakeArgs) -> Result<()> {
    let topics = args
        .topic
        .iter()
        .map(|t| parse_topic(t))
        .collect::<Result<Vec<_>>>()?;
    let options = FakeOptions {
        brokers: usize::from(args.brokers),
        auto_create_topics: args.auto_create,
        versions: match args.kafka {
            KafkaPreset::Latest => VersionTable::latest(),
            KafkaPreset::Kafka2_8 => VersionTable::kafka_2_8(),
            KafkaPreset::Kafka0_10 => VersionTable::kafka_0_10(),
        },
        ..FakeOptions::default()
    };
    kpax_fake::run_until_ctrl_c(options, &topics)
        .await
        .map_err(|e| CliError::Io {
            context: "running the fake cluster".into(),
            source: e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_topic_specs() {
        assert_eq!(parse_topic("a:3").unwrap(), ("a".to_string(), 3));
        assert_eq!(parse_topic("b").unwrap(), ("b".to_string(), 1));
        assert!(parse_topic("c:0").is_err());
        assert!(parse_topic("c:x").is_err());
        assert!(parse_topic(":2").is_err());
    }
}
