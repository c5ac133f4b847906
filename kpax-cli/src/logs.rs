//! What the client traces, on stderr: `-v` (info), `-vv` (debug), `-vvv`
//! (trace) for kpax; `-d protocol,broker,…` for chosen parts at debug
//! level, as kcat's `-d` does; `RUST_LOG` (`tracing-subscriber`'s filter
//! syntax) added to both. Silent when none is given, so a failing
//! command's stderr stays one line.

use crate::error::{CliError, Result};
use clap::{ArgAction, Args};
use tracing_subscriber::EnvFilter;

/// The parts `-d` can trace: name, `tracing` filter directive, what it shows.
pub const DEBUG_CONTEXTS: &[(&str, &str, &str)] = &[
    (
        "protocol",
        "kpax::protocol=debug",
        "each request and response: API, version, correlation id, sizes, latency",
    ),
    (
        "broker",
        "kpax::broker=debug",
        "connections: connecting, versions, authentication, closing",
    ),
    (
        "metadata",
        "kpax::cluster=debug",
        "cluster metadata: refreshes, leaders, coordinators",
    ),
    (
        "producer",
        "kpax::producer=debug",
        "batches, retries, producer ids, transactions",
    ),
    (
        "consumer",
        "kpax::consumer=debug",
        "fetches, positions, group membership, rebalances, commits",
    ),
    (
        "admin",
        "kpax::admin=debug",
        "admin requests and their retries",
    ),
    ("all", "kpax=trace", "everything kpax traces"),
];

/// The logging flags every command takes.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log what kpax does on stderr: -v info, -vv debug, -vvv trace
    /// (RUST_LOG adds its own directives).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Trace these parts at debug level, comma-separated: protocol, broker,
    /// metadata, producer, consumer, admin, all.
    #[arg(short = 'd', long = "debug", value_name = "CONTEXT,..", global = true)]
    pub debug: Option<String>,
}

impl LogArgs {
    /// The filter these flags and `rust_log` (the `RUST_LOG` value) ask
    /// for; `None`: log nothing.
    ///
    /// # Errors
    /// [`CliError::Usage`] for an unknown `-d` context or a bad `RUST_LOG`.
    pub fn filter(&self, rust_log: Option<&str>) -> Result<Option<EnvFilter>> {
        let mut directives: Vec<String> = Vec::new();
        match self.verbose {
            0 => {}
            1 => directives.push("kpax=info".into()),
            2 => directives.push("kpax=debug".into()),
            _ => directives.push("kpax=trace".into()),
        }
        for name in self.debug.iter().flat_map(|d| d.split(',')) {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let Some((_, directive, _)) = DEBUG_CONTEXTS.iter().find(|(n, _, _)| *n == name) else {
                let known: Vec<&str> = DEBUG_CONTEXTS.iter().map(|(n, _, _)| *n).collect();
                return Err(CliError::Usage(format!(
                    "-d {name}: unknown context (known: {})",
                    known.join(", ")
                )));
            };
            directives.push((*directive).into());
        }
        if let Some(env) = rust_log.filter(|e| !e.trim().is_empty()) {
            directives.push(env.to_string());
        }
        if directives.is_empty() {
            return Ok(None);
        }
        let spec = format!("warn,{}", directives.join(","));
        EnvFilter::builder()
            .parse(&spec)
            .map(Some)
            .map_err(|e| CliError::Usage(format!("bad log filter {spec:?} (RUST_LOG?): {e}")))
    }

    /// Installs the stderr log subscriber the flags and `RUST_LOG` ask
    /// for, if any.
    ///
    /// # Errors
    /// As [`LogArgs::filter`].
    pub fn install(&self) -> Result<()> {
        let rust_log = std::env::var("RUST_LOG").ok();
        if let Some(filter) = self.filter(rust_log.as_deref())? {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(true)
                .init();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(verbose: u8, debug: Option<&str>) -> LogArgs {
        LogArgs {
            verbose,
            debug: debug.map(str::to_string),
        }
    }

    #[test]
    fn silent_unless_asked() {
        assert!(args(0, None).filter(None).unwrap().is_none());
        assert!(args(0, None).filter(Some(" ")).unwrap().is_none());
        assert!(args(1, None).filter(None).unwrap().is_some());
        assert!(args(0, None).filter(Some("kpax=debug")).unwrap().is_some());
    }

    #[test]
    fn contexts_become_directives() {
        let f = args(0, Some("protocol,consumer"))
            .filter(None)
            .unwrap()
            .unwrap();
        let s = f.to_string();
        assert!(s.contains("kpax::protocol=debug"), "{s}");
        assert!(s.contains("kpax::consumer=debug"), "{s}");
        let e = args(0, Some("protocol,nope")).filter(None).unwrap_err();
        assert!(e.to_string().contains("-d nope: unknown context"), "{e}");
        assert_eq!(e.exit_code(), 2);
        assert!(args(0, None).filter(Some("kpax=[")).is_err());
    }
}
