//! `kpax`: a Kafka command-line tool on the pure-Rust kpax client.
//!
//! One module per command in [`cmd`]; brokers and time bounds in
//! [`connect`]; tables, JSON and progress bars in [`output`]; every failure
//! is one [`error::CliError`], printed as one line `kpax: error: ...` with
//! exit code 1 (2 for usage errors).
#![warn(missing_docs)]

mod cmd;
mod connect;
mod error;
mod format;
mod logs;
mod output;
mod profiles;
mod reader;
mod when;

use clap::Parser;
use std::process::ExitCode;

/// A Kafka command-line tool: metadata, produce, consume, offsets, topics,
/// groups, API versions, frame decoding, and an in-process fake cluster.
#[derive(Debug, Parser)]
#[command(name = "kpax", version, about)]
struct Cli {
    #[command(flatten)]
    logs: logs::LogArgs,
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let cmd::Command::Completions(a) = &cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(a.shell, &mut command, "kpax", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = cli.logs.install() {
        eprintln!("kpax: error: {}", e.one_line());
        return ExitCode::from(e.exit_code());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kpax: error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli.command.run());
    // Background tasks (connections, fetchers) end with the runtime; do not
    // wait for them.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kpax: error: {}", e.one_line());
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
