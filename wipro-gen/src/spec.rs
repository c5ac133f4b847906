//! The spec file: everything the protocol page states, as plain text that a
//! person can review and that [`Spec::parse`] reads back exactly.
//!
//! ```text
//! source kafka-protocol/3.9/protocol.html
//! type INT8 | Represents an integer between -2^7 and 2^7-1 inclusive.
//! error 3 UNKNOWN_TOPIC_OR_PARTITION retriable | This server does not host this topic-partition.
//! api_key 0 Produce
//!
//! header
//! Request Header v0 => request_api_key request_api_version correlation_id
//!   request_api_key => INT16
//!   | request_api_key: The API key of this request.
//!
//! api 0 Produce
//! Produce Request (Version: 0) => acks timeout_ms [topic_data]
//!   acks => INT16
//!   ...
//!   | acks: The number of acknowledgments ...
//! ```
//!
//! A block is a BNF (see [`crate::bnf`]) followed by its field description
//! table, one `| name: description` line per row, in the page's order (which
//! is the BNF's depth-first order; the parser checks it). Blank lines and
//! `#` comments separate sections; the printer writes them the same way every
//! time, so `print(parse(file)) == file`.

use crate::bnf::{Bnf, BnfError};
use std::fmt::Write as _;

/// A primitive type and its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDoc {
    /// The type name, e.g. `COMPACT_STRING`.
    pub name: String,
    /// The page's description.
    pub doc: String,
}

/// One row of the error table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDoc {
    /// The error name, e.g. `NOT_LEADER_OR_FOLLOWER`.
    pub name: String,
    /// The numeric code.
    pub code: i16,
    /// Whether the page marks it retriable.
    pub retriable: bool,
    /// The page's description (may be empty).
    pub doc: String,
}

/// A BNF with the description of each of its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The parsed BNF.
    pub bnf: Bnf,
    /// `(field name, description)` rows in the page's order.
    pub docs: Vec<(String, String)>,
}

/// Whether a block is a request or a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// A request (client to broker).
    Request,
    /// A response (broker to client).
    Response,
}

impl Direction {
    /// `Request` or `Response`, as the page writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "Request",
            Direction::Response => "Response",
        }
    }
}

impl Block {
    /// For a message block titled `Name Request (Version: N)`: the API name,
    /// the direction and the version.
    pub fn message_title(&self) -> Option<(&str, Direction, i16)> {
        parse_message_title(&self.bnf.title)
    }

    /// For a header block titled `Request Header vN`: the direction and N.
    pub fn header_title(&self) -> Option<(Direction, i16)> {
        parse_header_title(&self.bnf.title)
    }

    /// Each description row with the path of the field it describes. Rows are
    /// matched by name in the BNF's order (the row list may skip fields).
    pub fn doc_rows(&self) -> Vec<(Vec<String>, &str)> {
        let paths = self.bnf.doc_paths();
        let repeated = self.bnf.doc_paths_repeated();
        if repeated.len() == self.docs.len() && paths.len() != self.docs.len() {
            // A page before 2.4 that documents a repeated struct again: the
            // rows follow the walk that repeats it.
            return repeated
                .into_iter()
                .zip(&self.docs)
                .map(|(p, (_, d))| (p, d.as_str()))
                .collect();
        }
        let mut out = Vec::new();
        let mut at = 0;
        for (name, doc) in &self.docs {
            if let Some(k) = paths[at..].iter().position(|p| p.last() == Some(name)) {
                out.push((paths[at + k].clone(), doc.as_str()));
                at += k + 1;
            }
        }
        out
    }

    /// The description of each `(name, doc)` row is checked against the BNF:
    /// the names must be the BNF's depth-first names; when not `complete`,
    /// some may be missing (4.2+ pages lose rows after a tagged struct's
    /// nested table, and write none for the tag section), but those there
    /// must come in the BNF's order.
    pub fn check_docs(&self, complete: bool) -> Result<(), String> {
        let want = self.bnf.doc_names();
        let got: Vec<&str> = self.docs.iter().map(|(n, _)| n.as_str()).collect();
        let repeated = self.bnf.doc_names_repeated();
        let exact = want.iter().map(String::as_str).eq(got.iter().copied())
            || repeated.iter().map(String::as_str).eq(got.iter().copied());
        let ok = exact
            || !complete && {
                let mut rest = want.iter().map(String::as_str);
                got.iter().all(|g| rest.any(|w| w == *g))
            };
        if !ok {
            return Err(format!(
                "field description table does not match the BNF: BNF fields {want:?}, table rows {got:?}"
            ));
        }
        Ok(())
    }
}

/// Parses `Name Request (Version: N)` / `Name Response (Version: N)`.
pub fn parse_message_title(title: &str) -> Option<(&str, Direction, i16)> {
    let (head, rest) = title.split_once(" (Version: ")?;
    let version: i16 = rest.strip_suffix(')')?.parse().ok()?;
    let (name, dir) = head.rsplit_once(' ')?;
    let dir = match dir {
        "Request" => Direction::Request,
        "Response" => Direction::Response,
        _ => return None,
    };
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some((name, dir, version))
}

/// Parses `Request Header vN` / `Response Header vN`.
pub fn parse_header_title(title: &str) -> Option<(Direction, i16)> {
    let (dir, v) = title.split_once(" Header v")?;
    let dir = match dir {
        "Request" => Direction::Request,
        "Response" => Direction::Response,
        _ => return None,
    };
    Some((dir, v.parse().ok()?))
}

/// One API section: its name and key, and every request and response version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// The API name, e.g. `Produce`.
    pub name: String,
    /// The API key.
    pub key: i16,
    /// Every request version, in the page's order.
    pub requests: Vec<Block>,
    /// Every response version, in the page's order.
    pub responses: Vec<Block>,
}

/// The whole spec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Spec {
    /// Where it was scraped from (a path, informational).
    pub source: String,
    /// What the scraper stated that the page does not write out itself
    /// (each with the rule it follows), one `note` line each.
    pub notes: Vec<String>,
    /// The primitive types table.
    pub types: Vec<TypeDoc>,
    /// The error table.
    pub errors: Vec<ErrorDoc>,
    /// The API key table: `(name, key)`.
    pub api_keys: Vec<(String, i16)>,
    /// Request and response headers, every version.
    pub headers: Vec<Block>,
    /// Every API section.
    pub apis: Vec<Api>,
}

/// A spec file line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct SpecError {
    /// The file's name.
    pub file: String,
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

const PREAMBLE: &str =
    "# The Kafka protocol as its documentation states it, scraped by `wipro-gen scrape`.
# Do not edit: rescrape instead. Facts the page does not carry live in overlay.txt.
";

impl Spec {
    /// The number of request versions and of response versions.
    pub fn version_counts(&self) -> (usize, usize) {
        self.apis.iter().fold((0, 0), |(q, r), a| {
            (q + a.requests.len(), r + a.responses.len())
        })
    }

    /// The summary line printed after a scrape.
    pub fn summary(&self) -> String {
        let (q, r) = self.version_counts();
        format!(
            "apis={} request_versions={q} response_versions={r} errors={} types={} headers={}",
            self.apis.len(),
            self.errors.len(),
            self.types.len(),
            self.headers.len()
        )
    }

    /// Looks an API up by name.
    pub fn api(&self, name: &str) -> Option<&Api> {
        self.apis.iter().find(|a| a.name == name)
    }

    /// The spec as text (see the module docs for the format).
    pub fn print(&self) -> String {
        let mut s = String::from(PREAMBLE);
        let _ = writeln!(s, "source {}", self.source);
        for n in &self.notes {
            let _ = writeln!(s, "note {n}");
        }
        s.push_str("\n# Primitive types\n");
        for t in &self.types {
            let _ = writeln!(s, "type {} |{}", t.name, lead_space(&t.doc));
        }
        s.push_str("\n# Error codes\n");
        for e in &self.errors {
            let r = if e.retriable { "retriable" } else { "fatal" };
            let _ = writeln!(s, "error {} {} {r} |{}", e.code, e.name, lead_space(&e.doc));
        }
        s.push_str("\n# API keys\n");
        for (name, key) in &self.api_keys {
            let _ = writeln!(s, "api_key {key} {name}");
        }
        s.push_str("\n# Headers\n");
        for h in &self.headers {
            s.push_str("\nheader\n");
            print_block(&mut s, h);
        }
        for a in &self.apis {
            let _ = writeln!(
                s,
                "\n# {} (key {})\napi {} {}",
                a.name, a.key, a.key, a.name
            );
            for b in a.requests.iter().chain(&a.responses) {
                s.push('\n');
                print_block(&mut s, b);
            }
        }
        s
    }

    /// Reads a spec file's text; `file` names it in errors.
    ///
    /// # Errors
    /// A [`SpecError`] with the line for any line that does not fit the
    /// format, a BNF that does not parse, a description table that does not
    /// match its BNF, or a block outside an API section.
    pub fn parse(file: &str, text: &str) -> Result<Spec, SpecError> {
        let err = |line: usize, reason: String| SpecError {
            file: file.to_string(),
            line,
            reason,
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut spec = Spec::default();
        let mut i = 0;
        let mut in_header = false;
        while i < lines.len() {
            let line = lines[i];
            let lno = i + 1;
            if line.is_empty() || line.starts_with('#') {
                i += 1;
                continue;
            }
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            match word {
                "source" => spec.source = rest.to_string(),
                "note" => spec.notes.push(rest.to_string()),
                "type" => {
                    let (name, doc) = split_doc(rest)
                        .ok_or_else(|| err(lno, "type line needs `NAME | doc`".into()))?;
                    spec.types.push(TypeDoc {
                        name: name.to_string(),
                        doc,
                    });
                }
                "error" => {
                    let (head, doc) = split_doc(rest)
                        .ok_or_else(|| err(lno, "error line needs `| doc`".into()))?;
                    let parts: Vec<&str> = head.split(' ').collect();
                    let [code, name, r] = parts[..] else {
                        return Err(err(
                            lno,
                            "error line needs `CODE NAME retriable|fatal | doc`".into(),
                        ));
                    };
                    let code = code
                        .parse()
                        .map_err(|_| err(lno, format!("bad error code `{code}`")))?;
                    let retriable = match r {
                        "retriable" => true,
                        "fatal" => false,
                        _ => {
                            return Err(err(
                                lno,
                                format!("expected `retriable` or `fatal`, found `{r}`"),
                            ))
                        }
                    };
                    spec.errors.push(ErrorDoc {
                        name: name.to_string(),
                        code,
                        retriable,
                        doc,
                    });
                }
                "api_key" => {
                    let (key, name) = rest
                        .split_once(' ')
                        .ok_or_else(|| err(lno, "api_key line needs `KEY NAME`".into()))?;
                    let key = key
                        .parse()
                        .map_err(|_| err(lno, format!("bad api key `{key}`")))?;
                    spec.api_keys.push((name.to_string(), key));
                }
                "header" => in_header = true,
                "api" => {
                    in_header = false;
                    let (key, name) = rest
                        .split_once(' ')
                        .ok_or_else(|| err(lno, "api line needs `KEY NAME`".into()))?;
                    let key = key
                        .parse()
                        .map_err(|_| err(lno, format!("bad api key `{key}`")))?;
                    spec.apis.push(Api {
                        name: name.to_string(),
                        key,
                        requests: Vec::new(),
                        responses: Vec::new(),
                    });
                }
                _ if line.contains(" =>") => {
                    let start = i;
                    i += 1;
                    while i < lines.len()
                        && lines[i].starts_with("  ")
                        && !lines[i].starts_with("  |")
                    {
                        i += 1;
                    }
                    let bnf = Bnf::parse(&lines[start..i]).map_err(|e: BnfError| {
                        err(start + 1 + e.line, format!("{}: {e}", lines[start]))
                    })?;
                    let mut docs = Vec::new();
                    while i < lines.len() {
                        let Some(row) = lines[i].strip_prefix("  | ") else {
                            break;
                        };
                        let (n, d) = row.split_once(':').ok_or_else(|| {
                            err(i + 1, "description row needs `| name: text`".into())
                        })?;
                        docs.push((n.to_string(), d.strip_prefix(' ').unwrap_or(d).to_string()));
                        i += 1;
                    }
                    let block = Block { bnf, docs };
                    block
                        .check_docs(false)
                        .map_err(|r| err(start + 1, format!("{}: {r}", lines[start])))?;
                    if in_header {
                        if block.header_title().is_none() {
                            return Err(err(
                                start + 1,
                                format!("not a header title: {}", block.bnf.title),
                            ));
                        }
                        spec.headers.push(block);
                    } else {
                        let Some((name, dir, _)) = block.message_title() else {
                            return Err(err(
                                start + 1,
                                format!("not a message title: {}", block.bnf.title),
                            ));
                        };
                        let Some(api) = spec.apis.last_mut() else {
                            return Err(err(
                                start + 1,
                                "message block before any `api` line".into(),
                            ));
                        };
                        if name != api.name {
                            return Err(err(
                                start + 1,
                                format!("block of `{name}` inside the section of `{}`", api.name),
                            ));
                        }
                        match dir {
                            Direction::Request => api.requests.push(block),
                            Direction::Response => api.responses.push(block),
                        }
                    }
                    continue;
                }
                _ => return Err(err(lno, format!("unrecognised line: {line:?}"))),
            }
            i += 1;
        }
        Ok(spec)
    }
}

fn lead_space(doc: &str) -> String {
    if doc.is_empty() {
        String::new()
    } else {
        format!(" {doc}")
    }
}

fn split_doc(rest: &str) -> Option<(&str, String)> {
    let (head, doc) = rest.split_once(" |")?;
    Some((head, doc.strip_prefix(' ').unwrap_or(doc).to_string()))
}

fn print_block(s: &mut String, b: &Block) {
    for l in b.bnf.lines() {
        s.push_str(&l);
        s.push('\n');
    }
    for (n, d) in &b.docs {
        let _ = writeln!(s, "  | {n}:{}", lead_space(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str =
        "# The Kafka protocol as its documentation states it, scraped by `wipro-gen scrape`.
# Do not edit: rescrape instead. Facts the page does not carry live in overlay.txt.
source x/protocol.html

# Primitive types
type INT8 | Represents an integer between -2^7 and 2^7-1 inclusive.

# Error codes
error -1 UNKNOWN_SERVER_ERROR fatal | The server experienced an unexpected error.
error 0 NONE fatal |

# API keys
api_key 18 ApiVersions

# Headers

header
Response Header v0 => correlation_id
  correlation_id => INT32
  | correlation_id: The correlation ID of this response.

# ApiVersions (key 18)
api 18 ApiVersions

ApiVersions Request (Version: 0) =>

ApiVersions Response (Version: 0) => error_code [api_keys]
  error_code => INT16
  api_keys => api_key min_version max_version
    api_key => INT16
    min_version => INT16
    max_version => INT16
  | error_code: The top-level error code.
  | api_keys: The APIs supported by the broker.
  | api_key: The API index.
  | min_version: The minimum supported version, inclusive.
  | max_version: The maximum supported version, inclusive.
";

    #[test]
    fn print_parse_round_trip() {
        let spec = Spec::parse("sample", SAMPLE).unwrap();
        assert_eq!(
            spec.summary(),
            "apis=1 request_versions=1 response_versions=1 errors=2 types=1 headers=1"
        );
        assert_eq!(spec.errors[1].doc, "");
        assert_eq!(spec.print(), SAMPLE);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let bad = SAMPLE.replace("error 0 NONE fatal |", "error zero NONE fatal |");
        let e = Spec::parse("f.txt", &bad).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("f.txt", 10));
        assert!(e.reason.contains("bad error code"));

        // Rows may be missing (4.2+ pages lose some), but not name a field
        // the BNF lacks.
        let bad = SAMPLE.replace(
            "  | api_key: The API index.\n",
            "  | api_kee: The API index.\n",
        );
        let e = Spec::parse("f.txt", &bad).unwrap_err();
        assert_eq!(e.line, 27);
        assert!(e.reason.contains("does not match the BNF"), "{e}");

        let bad = SAMPLE.replace("    min_version => INT16\n", "    min_version =>\n");
        let e = Spec::parse("f.txt", &bad).unwrap_err();
        assert_eq!(e.line, 31);
        assert!(e.reason.contains("no type"), "{e}");

        let bad = SAMPLE.replace("api_key 18 ApiVersions", "bogus 18");
        assert!(Spec::parse("f.txt", &bad)
            .unwrap_err()
            .reason
            .contains("unrecognised"));
    }

    #[test]
    fn titles() {
        assert_eq!(
            parse_message_title("Produce Request (Version: 3)"),
            Some(("Produce", Direction::Request, 3))
        );
        assert_eq!(
            parse_header_title("Response Header v1"),
            Some((Direction::Response, 1))
        );
        assert_eq!(parse_message_title("Produce Thing (Version: 3)"), None);
    }
}
