//! The one error type of the `kpax` tool, printed as a single line
//! `kpax: error: ...`.

use std::time::Duration;

/// What went wrong in a `kpax` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or the environment is not usable (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// A configuration file could not be used.
    #[error("{0}")]
    Config(String),
    /// A Kafka operation failed.
    #[error("{context}: {source}")]
    Kafka {
        /// What kpax was doing.
        context: String,
        /// The client's error.
        source: kpax::Error,
    },
    /// Reading or writing a file or a stream failed.
    #[error("{context}: {source}")]
    Io {
        /// What kpax was doing.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The command did not finish within its time bound.
    #[error("{what}: no answer within {}", humantime::format_duration(*after))]
    Timeout {
        /// What kpax was doing.
        what: String,
        /// The bound that passed.
        after: Duration,
    },
    /// Input given to the command is malformed (hex, frames, values).
    #[error("{0}")]
    Input(String),
    /// The operation ran but failed for some items or checks.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// A kpax configuration error as the CLI's [`CliError::Config`] (its
    /// message without the "invalid configuration:" prefix).
    pub fn config(e: kpax::Error) -> CliError {
        match e {
            kpax::Error::Config(m) => CliError::Config(m),
            other => CliError::Config(other.to_string()),
        }
    }
}

impl CliError {
    /// The process exit code for this error: 2 for usage errors, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }

    /// The error as one line (newlines of nested messages folded).
    pub fn one_line(&self) -> String {
        self.to_string()
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl From<kpax_cli::input::InputError> for CliError {
    fn from(e: kpax_cli::input::InputError) -> CliError {
        CliError::Input(e.0)
    }
}

/// The `kpax` tool's result type.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// Adds what kpax was doing to a client error.
pub trait KafkaContext<T> {
    /// Wraps the error as [`CliError::Kafka`] with `context`.
    fn kafka(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> KafkaContext<T> for std::result::Result<T, kpax::Error> {
    fn kafka(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| CliError::Kafka {
            context: context(),
            source,
        })
    }
}
