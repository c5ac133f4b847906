//! Named profiles: one file of client settings per user, in sections, so
//! that `kpax --profile prod ...` (or `KPAX_PROFILE=prod`) names a cluster
//! and how to reach it.
//!
//! The file is `$KPAX_PROFILES`, else `$XDG_CONFIG_HOME/kpax/profiles`,
//! else `~/.config/kpax/profiles`. It holds Java-style properties (the keys
//! `--config` takes) under `[NAME]` headers; lines before the first header
//! are shared by every profile, and a profile's own keys replace them:
//!
//! ```text
//! client.id=alice-laptop
//!
//! [local]
//! bootstrap.servers=localhost:9092
//!
//! [prod]
//! bootstrap.servers=kafka1.example.com:9093,kafka2.example.com:9093
//! security.protocol=SASL_SSL
//! sasl.mechanism=SCRAM-SHA-512
//! sasl.username=alice
//! ```

use crate::error::{CliError, Result};
use kpax::properties::Properties;
use std::path::{Path, PathBuf};

/// The environment variable naming the profile to use.
pub const PROFILE_VAR: &str = "KPAX_PROFILE";

/// The environment variable naming the profiles file.
pub const PROFILES_FILE_VAR: &str = "KPAX_PROFILES";

/// The largest profiles file read (bytes).
/// The sections of a profiles file.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    /// The keys before the first section.
    shared: Properties,
    /// Each profile's own keys, in file order.
    named: Vec<(String, Properties)>,
}

impl Profiles {
    /// Parses a profiles file's text; `origin` goes into errors.
    ///
    /// # Errors
    /// [`CliError::Config`] naming the line for a malformed or repeated
    /// `[NAME]` header, or a line the properties syntax refuses.
    pub fn parse(text: &str, origin: &str) -> Result<Profiles> {
        // (name, first line of its keys, its lines)
        let mut sections: Vec<(Option<String>, usize, Vec<&str>)> = vec![(None, 1, Vec::new())];
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix('[') {
                let at = format!("{origin} line {}", i + 1);
                let name = rest.strip_suffix(']').map(str::trim).ok_or_else(|| {
                    CliError::Config(format!("{at}: {t:?} is not a [NAME] header"))
                })?;
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                {
                    return Err(CliError::Config(format!(
                        "{at}: profile name {name:?} must be letters, digits, '-', '_' or '.'"
                    )));
                }
                if sections.iter().any(|(n, _, _)| n.as_deref() == Some(name)) {
                    return Err(CliError::Config(format!(
                        "{at}: profile [{name}] is defined twice"
                    )));
                }
                sections.push((Some(name.to_string()), i + 2, Vec::new()));
                continue;
            }
            sections.last_mut().expect("one section").2.push(line);
        }
        let mut out = Profiles::default();
        for (name, first, lines) in sections {
            let props = Properties::parse_from_line(&lines.join("\n"), origin, first)
                .map_err(CliError::config)?;
            match name {
                None => out.shared = props,
                Some(n) => out.named.push((n, props)),
            }
        }
        Ok(out)
    }

    /// Reads and parses the profiles file at `path`.
    ///
    /// # Errors
    /// [`CliError::Config`] when it cannot be read, is too large or does
    /// not parse.
    pub fn read(path: &Path) -> Result<Profiles> {
        let shown = format!("profiles file {}", path.display());
        let text = kpax::properties::read_file(path, &shown).map_err(CliError::config)?;
        Profiles::parse(&text, &shown)
    }

    /// The profile names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.named.iter().map(|(n, _)| n.as_str())
    }

    /// The settings of profile `name`: the shared keys with its own on top.
    ///
    /// # Errors
    /// [`CliError::Usage`] for a profile the file does not define, listing
    /// those it does.
    pub fn get(&self, name: &str) -> Result<Properties> {
        let (_, own) = self.named.iter().find(|(n, _)| n == name).ok_or_else(|| {
            let known: Vec<&str> = self.names().collect();
            CliError::Usage(format!(
                "no profile {name:?} (defined: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        Ok(self.shared.clone().overlaid(own.clone()))
    }
}

/// Where the profiles file is: `$KPAX_PROFILES`, else
/// `$XDG_CONFIG_HOME/kpax/profiles`, else `~/.config/kpax/profiles`.
pub fn path() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(p) = var(PROFILES_FILE_VAR) {
        return Some(PathBuf::from(p));
    }
    if let Some(x) = var("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(x).join("kpax").join("profiles"));
    }
    var("HOME").map(|h| {
        PathBuf::from(h)
            .join(".config")
            .join("kpax")
            .join("profiles")
    })
}

/// Reads the profiles file.
///
/// # Errors
/// [`CliError::Usage`] when no file can be found; as [`Profiles::read`].
pub fn load() -> Result<(PathBuf, Profiles)> {
    let path = path().ok_or_else(|| {
        CliError::Usage(format!(
            "no profiles file: set {PROFILES_FILE_VAR} or HOME (~/.config/kpax/profiles)"
        ))
    })?;
    if !path.exists() {
        return Err(CliError::Usage(format!(
            "no profiles file at {} (create it, or set {PROFILES_FILE_VAR})",
            path.display()
        )));
    }
    let profiles = Profiles::read(&path)?;
    Ok((path, profiles))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "client.id=shared\nrequest.timeout.ms=5000\n\n[local]\nbootstrap.servers=localhost:9092\n\n[prod]\nbootstrap.servers=k1:9093\nclient.id=prod-id\n";

    #[test]
    fn profiles_overlay_the_shared_keys() {
        let p = Profiles::parse(FILE, "f").unwrap();
        assert_eq!(p.names().collect::<Vec<_>>(), ["local", "prod"]);
        let local = p.get("local").unwrap();
        assert_eq!(local.get("bootstrap.servers"), Some("localhost:9092"));
        assert_eq!(local.get("client.id"), Some("shared"));
        let prod = p.get("prod").unwrap();
        assert_eq!(prod.get("client.id"), Some("prod-id"));
        assert_eq!(prod.get("request.timeout.ms"), Some("5000"));
        let e = p.get("staging").unwrap_err().to_string();
        assert!(
            e.contains("no profile \"staging\" (defined: local, prod)"),
            "{e}"
        );
    }

    #[test]
    fn bad_files_name_the_line() {
        for (text, want) in [
            ("[a]\nx=1\n[a]\n", "f line 3: profile [a] is defined twice"),
            ("[a\n", "f line 1: \"[a\" is not a [NAME] header"),
            ("[a b]\n", "f line 1: profile name \"a b\""),
            ("[]\n", "f line 1: profile name \"\""),
            (
                "x=1\n[a]\nclient.id=1\nlonely\n",
                "f line 4: \"lonely\" has no value",
            ),
            (
                "[a]\nclient.id=1\nclient.id=2\n",
                "f line 3: key \"client.id\" given twice",
            ),
        ] {
            let e = Profiles::parse(text, "f").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
