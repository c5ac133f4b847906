//! `kpax profile list|show`: the named profiles of the profiles file
//! (see [`crate::profiles`]); passwords are never printed.

use crate::error::Result;
use crate::output::{write_out, Table};
use clap::Subcommand;

/// `kpax profile` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// The profiles defined, with their brokers and security protocol.
    List,
    /// One profile's settings (the shared keys with its own on top).
    Show {
        /// The profile.
        name: String,
    },
}

/// Whether a key's value must not be shown.
fn secret(key: &str) -> bool {
    key.contains("password") || key.contains("secret") || key.ends_with(".jaas.config")
}

/// Runs a `kpax profile` command.
///
/// # Errors
/// No profiles file, a file that does not parse, an unknown profile.
pub async fn run(c: ProfileCommand) -> Result<()> {
    let (path, profiles) = crate::profiles::load()?;
    match c {
        ProfileCommand::List => {
            let mut t = Table::new(&["PROFILE", "BROKERS", "SECURITY"]);
            for name in profiles.names() {
                let p = profiles.get(name)?;
                t.row(vec![
                    name.to_string(),
                    p.get("bootstrap.servers").unwrap_or("-").to_string(),
                    p.get("security.protocol").unwrap_or("-").to_string(),
                ]);
            }
            write_out(&format!("profiles in {}\n{}", path.display(), t.render()))
        }
        ProfileCommand::Show { name } => {
            let p = profiles.get(&name)?;
            let mut out = format!("# profile {name} from {}\n", path.display());
            for key in p.keys() {
                let value = if secret(key) {
                    "<redacted>"
                } else {
                    p.get(key).unwrap_or_default()
                };
                out.push_str(&format!("{key}={value}\n"));
            }
            write_out(&out)
        }
    }
}
