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
//! version ConsumerGroupHeartbeat 1 # a version newer than the page: its blocks follow, indented
//!   ConsumerGroupHeartbeat Request (Version: 1) => group_id TAG_BUFFER
//!     group_id => COMPACT_STRING
//!     | group_id: The group identifier.
//!     | _tagged_fields: The tagged fields
//! ```
//!
//! A `version` entry adds a version the page does not have yet (a newer
//! Kafka's), written exactly as the spec file writes blocks, each line
//! indented two more spaces; it must not replace a version the page has.
//!
//! Paths are the field names from the message root joined by `.`; `.` alone
//! is the root. Versions are `N`, `N+` or `N-M`. Every entry must end with
//! `# reason`.

use crate::bnf::{Bnf, Field, Item};
use crate::spec::{Block, Direction, Spec};

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
    /// A version the page lacks: its request and response blocks.
    Version {
        /// The API name.
        api: String,
        /// The version.
        version: i16,
        /// Its blocks, as the spec file would hold them.
        blocks: Vec<Block>,
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
            ["version", api, v] => {
                let version: i16 = v.parse().map_err(|_| err(format!("bad version `{v}`")))?;
                let start = i;
                while i < lines.len() && lines[i].starts_with("  ") {
                    i += 1;
                }
                if i == start {
                    return Err(err(
                        "version entry needs its request and response blocks on the indented lines below"
                            .into(),
                    ));
                }
                // The blocks, in the spec file's own format, under a
                // stand-in `api` line (line numbers kept: one blank per line
                // before the blocks).
                let mut text = format!("api 0 {api}\n");
                text.push_str(&"\n".repeat(start.saturating_sub(1)));
                for l in &lines[start..i] {
                    text.push_str(&l[2..]);
                    text.push('\n');
                }
                let spec = Spec::parse(file, &text).map_err(|e| OverlayError {
                    file: file.to_string(),
                    line: e.line,
                    reason: e.reason,
                })?;
                let a = spec.apis.into_iter().next().expect("the stand-in api line");
                let blocks: Vec<Block> = a.requests.into_iter().chain(a.responses).collect();
                if let Some(b) = blocks
                    .iter()
                    .find(|b| b.message_title().map(|t| t.2) != Some(version))
                {
                    return Err(err(format!(
                        "block `{}` is not version {version}",
                        b.bnf.title
                    )));
                }
                Fact::Version {
                    api: api.into(),
                    version,
                    blocks,
                }
            }
            _ => return Err(err(format!("unrecognised overlay entry: {entry:?}"))),
        };
        facts.push(fact);
    }
    Ok(facts)
}

/// Fits the overlay to the page: adds its `version` blocks, and keeps only
/// the facts about APIs, versions and fields the page has. Returns the facts
/// kept and one line for each entry skipped (the overlay is written for the
/// newest protocol; an older page lacks some of what it names, and a newer
/// one may state a version the overlay had to add by hand).
///
/// # Errors
/// A message naming the API and version when a `version` block disagrees
/// with the page's own block for that version.
pub fn reconcile(spec: &mut Spec, facts: &[Fact]) -> Result<(Vec<Fact>, Vec<String>), String> {
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    // Fields the overlay itself adds (tagged ones) exist too.
    let tagged: Vec<(&str, Direction, Vec<String>)> = facts
        .iter()
        .filter_map(|f| match f {
            Fact::Tagged {
                api,
                dir,
                parent,
                field,
                ..
            } => {
                let mut p = parent.clone();
                p.push(field.name.clone());
                Some((api.as_str(), *dir, p))
            }
            _ => None,
        })
        .collect();
    let added = |api: &str, dir: Direction, path: &[String]| {
        tagged
            .iter()
            .any(|(a, d, p)| *a == api && *d == dir && path.starts_with(p))
    };
    for f in facts {
        let (api, what) = match f {
            Fact::Nullable { api, path, .. } | Fact::Default { api, path, .. } => {
                (api, path.join("."))
            }
            Fact::Tagged {
                api, parent, field, ..
            } => {
                let mut p = parent.clone();
                p.push(field.name.clone());
                (api, p.join("."))
            }
            Fact::HeaderVersion { api, .. } => (api, String::new()),
            Fact::Version { api, version, .. } => (api, format!("version {version}")),
        };
        let Some(a) = spec.apis.iter_mut().find(|a| a.name == *api) else {
            skipped.push(format!(
                "overlay: skipped {api} {what}: the page has no {api} API"
            ));
            continue;
        };
        match f {
            Fact::Version {
                version, blocks, ..
            } => {
                for b in blocks {
                    let Some((_, dir, _)) = b.message_title() else {
                        continue;
                    };
                    let list = match dir {
                        Direction::Request => &mut a.requests,
                        Direction::Response => &mut a.responses,
                    };
                    match list
                        .iter()
                        .find(|x| x.message_title().map(|t| t.2) == Some(*version))
                    {
                        Some(page) if page.bnf.plain() == b.bnf.plain() => skipped.push(format!(
                            "overlay: skipped {api} {} version {version}: the page has it (and agrees)",
                            dir.as_str()
                        )),
                        Some(_) => {
                            return Err(format!(
                                "overlay: {api} {} version {version} differs from the page's",
                                dir.as_str()
                            ))
                        }
                        None => {
                            list.push(b.clone());
                            list.sort_by_key(|x| x.message_title().map(|t| t.2));
                        }
                    }
                }
            }
            Fact::Nullable { dir, path, .. } | Fact::Default { dir, path, .. } => {
                if field_exists(a, *dir, path) || added(api, *dir, path) {
                    kept.push(f.clone());
                } else {
                    skipped.push(format!(
                        "overlay: skipped {api} {} {what}: no version on the page has that field",
                        dir.as_str()
                    ));
                }
            }
            Fact::Tagged { dir, parent, .. } => {
                if parent.is_empty() || field_exists(a, *dir, parent) || added(api, *dir, parent) {
                    kept.push(f.clone());
                } else {
                    skipped.push(format!(
                        "overlay: skipped tagged {api} {} {what}: the page has no `{}`",
                        dir.as_str(),
                        parent.join(".")
                    ));
                }
            }
            Fact::HeaderVersion { .. } => kept.push(f.clone()),
        }
    }
    Ok((kept, skipped))
}

/// Whether any version of the API's request or response has the field at
/// `path` (a tagged field counts).
fn field_exists(api: &crate::spec::Api, dir: Direction, path: &[String]) -> bool {
    let blocks = match dir {
        Direction::Request => &api.requests,
        Direction::Response => &api.responses,
    };
    blocks.iter().any(|b| {
        let mut items: &[Item] = &b.bnf.items;
        for (i, name) in path.iter().enumerate() {
            let Some(Item::Field(f)) = items
                .iter()
                .find(|it| matches!(it, Item::Field(f) if f.name == *name))
            else {
                return false;
            };
            match &f.ty {
                crate::bnf::FieldType::Struct(sub) => items = sub,
                crate::bnf::FieldType::Primitive(_) if i + 1 == path.len() => return true,
                crate::bnf::FieldType::Primitive(_) => return false,
            }
        }
        true
    })
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
    fn a_version_entry_adds_blocks_skips_an_agreeing_page_and_refuses_a_contradiction() {
        let text = concat!(
            "version Heartbeat 9 # a newer Kafka\n",
            "  Heartbeat Request (Version: 9) => group_id TAG_BUFFER\n",
            "    group_id => COMPACT_STRING\n",
            "    | group_id: The group.\n",
            "    | _tagged_fields: The tagged fields\n",
            "  Heartbeat Response (Version: 9) => error_code TAG_BUFFER\n",
            "    error_code => INT16\n",
            "    | error_code: The error.\n",
            "    | _tagged_fields: The tagged fields\n",
        );
        let facts = parse("o", text).unwrap();
        let Fact::Version {
            api,
            version,
            blocks,
        } = &facts[0]
        else {
            panic!("{facts:?}")
        };
        assert_eq!((api.as_str(), *version, blocks.len()), ("Heartbeat", 9, 2));
        let mut spec = Spec::parse("s", "api 12 Heartbeat\n").unwrap();
        let (_, skipped) = reconcile(&mut spec, &facts).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(spec.apis[0].requests.len(), 1);
        assert_eq!(spec.apis[0].responses.len(), 1);
        // A page that has the version now, the same: skipped, said once each.
        let (_, skipped) = reconcile(&mut spec, &facts).unwrap();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].contains("the page has it"), "{skipped:?}");
        assert_eq!(spec.apis[0].requests.len(), 1);
        // A page that has it, differently: an error naming API and version.
        spec.apis[0].requests[0].bnf.items.clear();
        let e = reconcile(&mut spec, &facts).unwrap_err();
        assert!(e.contains("Heartbeat Request version 9 differs"), "{e}");
        // A page without the API: skipped.
        let mut other = Spec::parse("s", "api 13 LeaveGroup\n").unwrap();
        let (kept, skipped) = reconcile(&mut other, &facts).unwrap();
        assert!(kept.is_empty());
        assert!(
            skipped[0].contains("the page has no Heartbeat API"),
            "{skipped:?}"
        );
        // A block of another version, a bad BNF (line named), no blocks.
        let e = parse(
            "o",
            &text.replace("(Version: 9) => error_code", "(Version: 8) => error_code"),
        )
        .unwrap_err();
        assert!(e.reason.contains("not version 9"), "{e}");
        let e = parse(
            "o",
            &text.replace("    error_code => INT16\n", "    error_code INT16\n"),
        )
        .unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        let e = parse("o", "version Heartbeat 9 # x\n").unwrap_err();
        assert!(e.reason.contains("indented"), "{e}");
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
