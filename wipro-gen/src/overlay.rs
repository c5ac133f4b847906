//! The overlay: the few facts a client needs that the protocol page does not
//! state, kept by hand in `spec/overlay.txt`, each with the rule it comes from.
//!
//! ```text
//! nullable Metadata request topics 1+ # MetadataRequest.json: null means all topics (KIP-4)
//! null_on_read FindCoordinator response host 0+ # a broker quirk: read null as the default (or None), never write it
//! default Fetch request topics.partitions.current_leader_epoch -1 # FetchRequest.json default
//! tagged Fetch request . 12+ tag=0 # KIP-595: ClusterId
//!   cluster_id => COMPACT_NULLABLE_STRING
//! response_header ApiVersions 0+ 0 # KIP-511: the ApiVersions response header is always v0
//! ```
//!
//! Paths are the field names from the message root joined by `.`; `.` alone
//! is the root. Versions are `N`, `N+` or `N-M`. Every entry must end with
//! `# reason`.

use crate::bnf::{Bnf, Field, Item};
use crate::spec::Direction;

/// Inclusive version bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// The first version.
    pub min: i16,
    /// The last version (`i16::MAX` for `N+`).
    pub max: i16,
}

impl Versions {
    /// Whether `v` is inside.
    pub fn contains(&self, v: i16) -> bool {
        self.min <= v && v <= self.max
    }

    fn parse(s: &str) -> Option<Versions> {
        if let Some(min) = s.strip_suffix('+') {
            return Some(Versions {
                min: min.parse().ok()?,
                max: i16::MAX,
            });
        }
        if let Some((a, b)) = s.split_once('-') {
            return Some(Versions {
                min: a.parse().ok()?,
                max: b.parse().ok()?,
            });
        }
        let v = s.parse().ok()?;
        Some(Versions { min: v, max: v })
    }
}

/// One overlay fact.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// The field (an array, string, bytes or struct) may be null in these versions.
    Nullable {
        /// The API name.
        api: String,
        /// Request or response.
        dir: Direction,
        /// The field path.
        path: Vec<String>,
        /// Where it is nullable.
        versions: Versions,
        /// Leniency for brokers that send null where Kafka's schema does
        /// not allow it (`null_on_read`): null is read as the default value
        /// (or `None` where the field is nullable in other versions); the
        /// Rust type stays as the schema makes it, and null is never written.
        lenient: bool,
    },
    /// The field's default value (a Rust literal: number, `true`/`false`).
    Default {
        /// The API name.
        api: String,
        /// Request or response.
        dir: Direction,
        /// The field path.
        path: Vec<String>,
        /// The literal.
        value: String,
    },
    /// A tagged field of the struct at `parent`.
    Tagged {
        /// The API name.
        api: String,
        /// Request or response.
        dir: Direction,
        /// The path of the struct that holds it (empty = root).
        parent: Vec<String>,
        /// Where it exists.
        versions: Versions,
        /// Its tag.
        tag: u32,
        /// Its definition, as a BNF field.
        field: Field,
    },
    /// The header version a request or response uses in some versions.
    HeaderVersion {
        /// The API name.
        api: String,
        /// Request or response header.
        dir: Direction,
        /// The message versions it applies to.
        versions: Versions,
        /// The header version.
        header: i16,
    },
}

/// An overlay line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct OverlayError {
    /// The file.
    pub file: String,
    /// The 1-based line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

fn path_of(s: &str) -> Vec<String> {
    if s == "." {
        Vec::new()
    } else {
        s.split('.').map(str::to_string).collect()
    }
}

fn dir_of(s: &str) -> Option<Direction> {
    match s {
        "request" => Some(Direction::Request),
        "response" => Some(Direction::Response),
        _ => None,
    }
}

/// Parses the overlay file's text.
///
/// # Errors
/// An [`OverlayError`] naming the line for an unknown entry, a missing
/// reason, bad versions, or a tagged field whose definition does not parse.
pub fn parse(file: &str, text: &str) -> Result<Vec<Fact>, OverlayError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut facts = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let lno = i + 1;
        i += 1;
        let err = |reason: String| OverlayError {
            file: file.to_string(),
            line: lno,
            reason,
        };
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((entry, reason)) = line.split_once(" # ") else {
            return Err(err(
                "entry needs a `# reason` naming the KIP or rule it comes from".into(),
            ));
        };
        if reason.trim().is_empty() {
            return Err(err("empty reason".into()));
        }
        let w: Vec<&str> = entry.split_whitespace().collect();
        let versions =
            |s: &str| Versions::parse(s).ok_or_else(|| err(format!("bad versions `{s}`")));
        let dir = |s: &str| {
            dir_of(s).ok_or_else(|| err(format!("expected `request` or `response`, found `{s}`")))
        };
        let fact = match w[..] {
            ["nullable", api, d, path, v] | ["null_on_read", api, d, path, v] => Fact::Nullable {
                api: api.into(),
                dir: dir(d)?,
                path: path_of(path),
                versions: versions(v)?,
                lenient: w[0] == "null_on_read",
            },
            ["default", api, d, path, value] => Fact::Default {
                api: api.into(),
                dir: dir(d)?,
                path: path_of(path),
                value: value.into(),
            },
            ["request_header", api, v, h] | ["response_header", api, v, h] => Fact::HeaderVersion {
                api: api.into(),
                dir: if w[0] == "request_header" {
                    Direction::Request
                } else {
                    Direction::Response
                },
                versions: versions(v)?,
                header: h
                    .parse()
                    .map_err(|_| err(format!("bad header version `{h}`")))?,
            },
            ["tagged", api, d, parent, v, tag] => {
                let tag = tag
                    .strip_prefix("tag=")
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| err(format!("expected `tag=N`, found `{tag}`")))?;
                let start = i;
                while i < lines.len() && lines[i].starts_with("  ") {
                    i += 1;
                }
                let Some(first) = lines.get(start).filter(|_| i > start) else {
                    return Err(err(
                        "tagged entry needs its field definition on the indented lines below"
                            .into(),
                    ));
                };
                let (head, rhs) = first
                    .trim_start()
                    .split_once(" =>")
                    .ok_or_else(|| err("tagged field definition has no `=>`".into()))?;
                let name = head.trim_start_matches('[').trim_end_matches(']');
                let mut bnf_lines = vec![format!("tagged => {head}"), format!("  {name} =>{rhs}")];
                bnf_lines.extend(lines[start + 1..i].iter().map(|l| l.to_string()));
                let bnf = Bnf::parse(&bnf_lines).map_err(|e| OverlayError {
                    file: file.to_string(),
                    line: start + e.line.max(1),
                    reason: e.to_string(),
                })?;
                let Some(Item::Field(field)) = bnf.items.into_iter().next() else {
                    return Err(err("tagged entry defines no field".into()));
                };
                Fact::Tagged {
                    api: api.into(),
                    dir: dir(d)?,
                    parent: path_of(parent),
                    versions: versions(v)?,
                    tag,
                    field,
                }
            }
            _ => return Err(err(format!("unrecognised overlay entry: {entry:?}"))),
        };
        facts.push(fact);
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bnf::FieldType;

    #[test]
    fn parses_each_kind() {
        let text = concat!(
            "# comment\n",
            "nullable Metadata request topics 1+ # null = all topics\n",
            "default Fetch request topics.partitions.current_leader_epoch -1 # schema default\n",
            "tagged ApiVersions response . 3+ tag=0 # KIP-584\n",
            "  [supported_features] => name max_version TAG_BUFFER\n",
            "    name => COMPACT_STRING\n",
            "    max_version => INT16\n",
            "response_header ApiVersions 0+ 0 # KIP-511\n"
        );
        let facts = parse("o", text).unwrap();
        assert_eq!(facts.len(), 4);
        let Fact::Tagged {
            field,
            tag,
            versions,
            ..
        } = &facts[2]
        else {
            panic!()
        };
        assert_eq!((*tag, versions.min), (0, 3));
        assert!(field.array);
        assert!(matches!(&field.ty, FieldType::Struct(s) if s.len() == 3));
        assert!(matches!(&facts[3], Fact::HeaderVersion { header: 0, .. }));
    }

    #[test]
    fn bad_entries_name_the_line() {
        let e = parse("o", "\nnullable Metadata request topics 1+\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("reason"));
        let e = parse("o", "nullable Metadata sideways topics 1+ # x\n").unwrap_err();
        assert!(e.reason.contains("`request` or `response`"));
        let e = parse("o", "nullable Metadata request topics x+ # x\n").unwrap_err();
        assert!(e.reason.contains("bad versions"));
        let e = parse("o", "tagged Fetch request . 12+ tag=0 # x\n").unwrap_err();
        assert!(e.reason.contains("field definition"));
        let e = parse("o", "frobnicate # x\n").unwrap_err();
        assert!(e.reason.contains("unrecognised"));
    }
}
