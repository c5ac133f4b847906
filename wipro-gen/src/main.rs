//! wipro-gen: scrapes the Kafka protocol page into `spec/`, and generates
//! kpax-proto's message code from it.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "wipro-gen", about = "Kafka protocol HTML -> spec -> Rust")]
struct Cli {
    /// The workspace root (defaults to the one containing this crate).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Scrape the protocol HTML into spec/protocol.txt; several pages
    /// (oldest first) are merged: each message's versions are the union.
    Scrape {
        /// A protocol page, e.g. ../shared/kafka-protocol/3.9/protocol.html;
        /// repeat for several releases.
        #[arg(long, required = true)]
        html: Vec<PathBuf>,
    },
    /// Regenerate kpax-proto/src/generated/ from spec/ (the default).
    Generate,
    /// Write nothing; fail listing the files that rescraping (with --html)
    /// or regenerating would change.
    Check {
        /// Also rescrape these protocol pages and compare with spec/protocol.txt.
        #[arg(long)]
        html: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli.root.unwrap_or_else(wipro_gen::workspace_root);
    let result = match cli.command {
        Some(Command::Scrape { html }) => {
            wipro_gen::run_scrape(&root, &html).map(|summary| println!("{summary}"))
        }
        None | Some(Command::Generate) => {
            wipro_gen::run_generate(&root).map(|summary| println!("{summary}"))
        }
        Some(Command::Check { html }) => wipro_gen::run_check(&root, &html).and_then(|stale| {
            if stale.is_empty() {
                println!("up to date");
                Ok(())
            } else {
                Err(format!(
                    "out of date; run `cargo run -p wipro-gen` (and `scrape` for the spec):\n  {}",
                    stale.join("\n  ")
                ))
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wipro-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
