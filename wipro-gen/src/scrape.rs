//! HTML -> [`Spec`]: reads the Kafka protocol page, follows its server-side
//! includes, and states what its tables and BNFs say, inventing nothing.

use crate::bnf::{Bnf, Dialect};
use crate::spec::{Api, Block, Direction, ErrorDoc, Spec, TypeDoc};
use scraper::{ElementRef, Html, Node, Selector};
use std::path::{Path, PathBuf};

/// Why a page could not be scraped.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The page's content does not have the expected shape.
    #[error("{file}:{line}: {api}{version}{reason}")]
    Content {
        /// The file the problem is in (after following includes).
        file: String,
        /// The 1-based line, or 0 when unknown.
        line: usize,
        /// `API: ` when the problem is inside an API section, else empty.
        api: String,
        /// `vN: ` when the problem is inside a version, else empty.
        version: String,
        /// What is wrong.
        reason: String,
    },
}

/// A span of the assembled page that came from one file.
struct Segment {
    /// Byte offset in the assembled text where the span starts.
    start: usize,
    file: String,
    /// The file's line number at `start`.
    first_line: usize,
}

/// The page with its includes expanded, and where each part came from.
struct Assembled {
    text: String,
    segments: Vec<Segment>,
}

impl Assembled {
    fn locate(&self, offset: usize) -> (String, usize) {
        let seg = self
            .segments
            .iter()
            .rev()
            .find(|s| s.start <= offset)
            .expect("segment 0 starts at 0");
        let line = seg.first_line + self.text[seg.start..offset].matches('\n').count();
        (seg.file.clone(), line)
    }
}

/// Expands `<!--#include virtual="..." -->` lines relative to the including
/// file. Includes that cannot be found are skipped with a warning on stderr.
fn assemble(path: &Path, out: &mut Assembled, depth: usize) -> Result<(), ScrapeError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScrapeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.display().to_string();
    let mut rest = text.as_str();
    let mut line = 1;
    const OPEN: &str = "<!--#include virtual=\"";
    loop {
        out.segments.push(Segment {
            start: out.text.len(),
            file: name.clone(),
            first_line: line,
        });
        let Some(at) = rest.find(OPEN) else {
            out.text.push_str(rest);
            return Ok(());
        };
        out.text.push_str(&rest[..at]);
        line += rest[..at].matches('\n').count();
        let after = &rest[at + OPEN.len()..];
        let Some(q) = after.find('"') else {
            return Err(content(
                &name,
                line,
                "",
                None,
                "unterminated include directive",
            ));
        };
        let target = &after[..q];
        let Some(end) = after[q..].find("-->") else {
            return Err(content(
                &name,
                line,
                "",
                None,
                "unterminated include directive",
            ));
        };
        rest = &after[q + end + 3..];
        let inc = dir.join(target);
        if depth < 8 && inc.is_file() {
            assemble(&inc, out, depth + 1)?;
        } else {
            eprintln!("warning: {name}:{line}: include {target:?} not found; skipped");
        }
    }
}

fn content(file: &str, line: usize, api: &str, version: Option<i16>, reason: &str) -> ScrapeError {
    ScrapeError::Content {
        file: file.to_string(),
        line,
        api: if api.is_empty() {
            String::new()
        } else {
            format!("{api}: ")
        },
        version: version.map(|v| format!("v{v}: ")).unwrap_or_default(),
        reason: reason.to_string(),
    }
}

/// The text of a table cell or heading: white space folded, `<sup>` written
/// as `^` so that "2<sup>7</sup>" reads "2^7", and nested tables left out
/// (4.0 and 4.1 pages nest the tagged fields' table in a cell).
fn text_of(el: ElementRef<'_>) -> String {
    fn walk(node: ego_tree::NodeRef<'_, Node>, raw: &mut String) {
        for child in node.children() {
            match child.value() {
                Node::Text(t) => raw.push_str(&t[..]),
                Node::Element(e) if e.name() == "sup" => {
                    raw.push('^');
                    walk(child, raw);
                }
                Node::Element(e) if e.name() == "table" => {}
                _ => walk(child, raw),
            }
        }
    }
    let mut raw = String::new();
    walk(*el, &mut raw);
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("static selector")
}

/// The header cells of a table (`th` text), used to recognise it.
fn table_heads(table: ElementRef<'_>) -> Vec<String> {
    table.select(&sel("th")).map(text_of).collect()
}

/// The table an element is in (its nearest `table` ancestor).
fn owning_table(el: ElementRef<'_>) -> Option<ego_tree::NodeId> {
    el.ancestors()
        .find(|a| a.value().as_element().is_some_and(|e| e.name() == "table"))
        .map(|a| a.id())
}

/// Rows of `td` cells, skipping rows that hold only `th` and the rows of
/// tables nested in a cell.
fn table_rows(table: ElementRef<'_>) -> Vec<Vec<String>> {
    table
        .select(&sel("tr"))
        .filter(|tr| owning_table(*tr) == Some(table.id()))
        .map(|tr| {
            tr.select(&sel("td"))
                .filter(|td| owning_table(*td) == Some(table.id()))
                .map(text_of)
                .collect::<Vec<_>>()
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// Scrapes the page at `html` (following includes) into a [`Spec`].
///
/// # Errors
/// [`ScrapeError::Read`] for an unreadable page; [`ScrapeError::Content`]
/// naming file, line, API and version for a missing section, a BNF that does
/// not parse, a field with no type, or a description table that does not
/// match its BNF.
pub fn scrape(html: &Path, source_label: &str) -> Result<Spec, ScrapeError> {
    let mut page = Assembled {
        text: String::new(),
        segments: Vec::new(),
    };
    assemble(html, &mut page, 0)?;
    let doc = Html::parse_document(&page.text);
    let top = html.display().to_string();
    let mut spec = Spec {
        source: source_label.to_string(),
        ..Spec::default()
    };

    // The three constant tables, recognised by their header cells.
    for table in doc.select(&sel("table")) {
        let heads = table_heads(table);
        let heads: Vec<&str> = heads.iter().map(String::as_str).collect();
        match heads[..] {
            ["Type", "Description"] => {
                for r in table_rows(table) {
                    let [name, d] = &r[..] else {
                        return Err(content(
                            &top,
                            0,
                            "",
                            None,
                            &format!("types table row with {} cells", r.len()),
                        ));
                    };
                    spec.types.push(TypeDoc {
                        name: name.clone(),
                        doc: d.clone(),
                    });
                }
            }
            ["Error", "Code", "Retriable", "Description"] => {
                for r in table_rows(table) {
                    let [name, code, retriable, d] = &r[..] else {
                        return Err(content(
                            &top,
                            0,
                            "",
                            None,
                            &format!("error table row with {} cells", r.len()),
                        ));
                    };
                    let bad = |what: &str| {
                        content(&top, 0, "", None, &format!("error {name}: bad {what}"))
                    };
                    spec.errors.push(ErrorDoc {
                        name: name.clone(),
                        code: code.parse().map_err(|_| bad("code"))?,
                        retriable: match retriable.as_str() {
                            "True" => true,
                            "False" => false,
                            _ => return Err(bad("retriable flag")),
                        },
                        doc: d.clone(),
                    });
                }
            }
            ["Name", "Key"] => {
                for r in table_rows(table) {
                    let [name, key] = &r[..] else {
                        return Err(content(
                            &top,
                            0,
                            "",
                            None,
                            &format!("api key table row with {} cells", r.len()),
                        ));
                    };
                    let key = key.parse().map_err(|_| {
                        content(
                            &top,
                            0,
                            "",
                            None,
                            &format!("api key table: bad key for {name}"),
                        )
                    })?;
                    spec.api_keys.push((name.clone(), key));
                }
            }
            _ => {}
        }
    }
    let known_types = spec.types.is_empty();
    for (what, empty) in [
        ("error table", spec.errors.is_empty()),
        ("API key table", spec.api_keys.is_empty()),
    ] {
        if empty {
            return Err(content(
                &top,
                0,
                "",
                None,
                &format!("missing section: the {what}"),
            ));
        }
    }

    // Headers and messages: walk h5 / b / pre in document order.
    let mut in_messages = false;
    let mut direction: Option<Direction> = None;
    let mut search_from = 0;
    for el in doc.select(&sel("h5, b, pre")) {
        let name = el.value().name();
        let text = text_of(el);
        match name {
            "h5" => {
                if text == "Headers:" {
                    in_messages = true;
                    continue;
                }
                let anchor = el
                    .select(&sel("a[name]"))
                    .next()
                    .and_then(|a| a.value().attr("name"));
                if let Some(anchor) = anchor.filter(|a| a.starts_with("The_Messages_")) {
                    in_messages = true;
                    direction = None;
                    let Some((api, key)) = parse_api_heading(&text) else {
                        return Err(content(
                            &top,
                            0,
                            "",
                            None,
                            &format!("API heading not understood: {text:?}"),
                        ));
                    };
                    if anchor != format!("The_Messages_{api}") {
                        return Err(content(
                            &top,
                            0,
                            api,
                            None,
                            &format!("anchor {anchor} does not name the API"),
                        ));
                    }
                    spec.apis.push(Api {
                        name: api.to_string(),
                        key,
                        requests: Vec::new(),
                        responses: Vec::new(),
                    });
                }
            }
            "b" if in_messages => {
                direction = match text.as_str() {
                    "Requests:" => Some(Direction::Request),
                    "Responses:" => Some(Direction::Response),
                    _ => direction,
                }
            }
            "pre" if in_messages => {
                let raw: String = el.text().collect();
                let lines: Vec<&str> = raw.lines().filter(|l| !l.trim().is_empty()).collect();
                let title_line = lines.first().copied().unwrap_or("");
                let (file, line) = match page.text[search_from..].find(title_line.trim_end()) {
                    Some(off) if !title_line.trim().is_empty() => {
                        search_from += off;
                        page.locate(search_from)
                    }
                    _ => (top.clone(), 0),
                };
                let api_name = spec.apis.last().map(|a| a.name.clone()).unwrap_or_default();
                let (mut bnf, dialect) = Bnf::parse_dialect(&lines).map_err(|e| {
                    let version = crate::spec::parse_message_title(
                        title_line.split(" =>").next().unwrap_or("").trim(),
                    )
                    .map(|t| t.2);
                    content(
                        &file,
                        line + e.line,
                        &api_name,
                        version,
                        &format!("{} ({})", e.reason, e.text),
                    )
                })?;
                // What follows the BNF: 4.2+ pages state the header version
                // in a paragraph, then comes the description table.
                let mut header_version = None;
                let mut table = None;
                for sib in el.next_siblings().filter_map(ElementRef::wrap) {
                    match sib.value().name() {
                        "p" => {
                            let t = text_of(sib);
                            if let Some(v) = t
                                .strip_prefix("Request header version: ")
                                .or_else(|| t.strip_prefix("Response header version: "))
                            {
                                header_version = Some(v.parse::<i16>().map_err(|_| {
                                    content(
                                        &file,
                                        line,
                                        &api_name,
                                        None,
                                        &format!("bad header version paragraph {t:?}"),
                                    )
                                })?);
                            } else if t.starts_with("This version of the")
                                && t.ends_with("is unstable.")
                            {
                                let title = title_line.split(" =>").next().unwrap_or("").trim();
                                spec.notes.push(format!("{title}: the page says \"{t}\""));
                            } else {
                                break;
                            }
                        }
                        "table" => {
                            table = Some(sib);
                            break;
                        }
                        _ => break,
                    }
                }
                if dialect == Dialect::Braces {
                    // Those pages write no tag section: a flexible version is
                    // one whose header is flexible (request v2, response v1),
                    // or which uses compact types (ApiVersions' response keeps
                    // header v0 for old clients but its body is flexible).
                    let compact = lines.iter().any(|l| {
                        l.split_once("=>").is_some_and(|(_, rhs)| {
                            rhs.split_whitespace().any(|t| {
                                t.starts_with("COMPACT_")
                                    || t.starts_with('(')
                                    || t.starts_with("?(")
                            })
                        })
                    });
                    let title = title_line.split(" =>").next().unwrap_or("").trim();
                    // A message's header version is in the paragraph; a
                    // header block's own version is in its title.
                    let header = match crate::spec::parse_header_title(title) {
                        Some((dir, v)) => Some((dir, v)),
                        None => block_direction(title_line).zip(header_version),
                    };
                    let flexible_header = match header {
                        Some((Direction::Request, v)) => v >= 2,
                        Some((Direction::Response, v)) => v >= 1,
                        None => false,
                    };
                    if compact || flexible_header {
                        bnf.set_flexible();
                    }
                }
                // Printing must give the page's lines back; anything else means
                // the parse dropped something the page says.
                let printed = bnf.lines_in(dialect);
                if let Some(k) = (0..lines.len().max(printed.len())).find(|&k| {
                    printed.get(k).map(String::as_str) != lines.get(k).map(|l| l.trim_end())
                }) {
                    let version = bnf
                        .title
                        .rsplit("Version: ")
                        .next()
                        .and_then(|v| v.trim_end_matches(')').parse().ok());
                    return Err(content(
                        &file,
                        line + k,
                        &api_name,
                        version,
                        &format!(
                            "BNF line is not in the page's layout: {:?}",
                            lines.get(k).unwrap_or(&"")
                        ),
                    ));
                }
                let docs: Vec<(String, String)> = match table {
                    Some(t) => table_rows(t)
                        .into_iter()
                        .map(|r| {
                            let mut it = r.into_iter();
                            let name = it.next().unwrap_or_default();
                            // 4.2+ pages name a tagged field's row `name<tag: N>`.
                            let name = match name.split_once("<tag:") {
                                Some((n, _)) => n.to_string(),
                                None => name,
                            };
                            (name, it.next().unwrap_or_default())
                        })
                        .collect(),
                    None => Vec::new(),
                };
                let complete = dialect != Dialect::Braces;
                let mut block = Block { bnf, docs };
                if block.header_title().is_none() && block.message_title().is_none() {
                    // Pages before 2.4 write one unversioned request header
                    // (with client_id) and one response header.
                    match block.bnf.title.as_str() {
                        "Request Header" => {
                            block.bnf.title = "Request Header v1".into();
                            let mut v0 = block.clone();
                            v0.bnf.title = "Request Header v0".into();
                            v0.bnf.items.retain(|i| !matches!(i, crate::bnf::Item::Field(f) if f.name == "client_id"));
                            v0.docs.retain(|(n, _)| n != "client_id");
                            spec.headers.push(v0);
                            spec.notes.push("the page writes one unversioned request header: it is v1, and v0 is v1 without client_id (RequestHeader.json: clientId is in versions 1+; v0 serves ControlledShutdown v0 only)".into());
                        }
                        "Response Header" => {
                            block.bnf.title = "Response Header v0".into();
                            spec.notes.push(
                                "the page writes one unversioned response header: it is v0".into(),
                            );
                        }
                        _ => {}
                    }
                }
                if let Some((dir, v)) = block.header_title() {
                    if !spec.apis.is_empty() {
                        return Err(content(
                            &file,
                            line,
                            &api_name,
                            Some(v),
                            "header BNF inside an API section",
                        ));
                    }
                    block.check_docs(complete).map_err(|r| {
                        content(
                            &file,
                            line,
                            &format!("{} Header", dir.as_str()),
                            Some(v),
                            &r,
                        )
                    })?;
                    spec.headers.push(block);
                } else if let Some((api, dir, v)) = block.message_title() {
                    let Some(cur) = spec.apis.last_mut() else {
                        return Err(content(
                            &file,
                            line,
                            api,
                            Some(v),
                            "message BNF before any API section",
                        ));
                    };
                    if api != cur.name {
                        return Err(content(
                            &file,
                            line,
                            &cur.name,
                            Some(v),
                            &format!("BNF of {api} inside the section of {}", cur.name),
                        ));
                    }
                    if direction != Some(dir) {
                        return Err(content(
                            &file,
                            line,
                            api,
                            Some(v),
                            &format!("{} BNF outside the {}s list", dir.as_str(), dir.as_str()),
                        ));
                    }
                    block
                        .check_docs(complete)
                        .map_err(|r| content(&file, line, api, Some(v), &r))?;
                    match dir {
                        Direction::Request => cur.requests.push(block),
                        Direction::Response => cur.responses.push(block),
                    }
                } else {
                    return Err(content(
                        &file,
                        line,
                        &api_name,
                        None,
                        &format!("BNF title not understood: {:?}", block.bnf.title),
                    ));
                }
            }
            _ => {}
        }
    }
    if known_types {
        // Pages before 2.0 have no types table: state the types their BNFs
        // use, which the generator knows, and say so.
        let mut used = std::collections::BTreeSet::new();
        for b in spec.headers.iter().chain(
            spec.apis
                .iter()
                .flat_map(|a| a.requests.iter().chain(&a.responses)),
        ) {
            b.bnf.primitive_tokens(&mut used);
        }
        spec.types = used
            .into_iter()
            .map(|name| TypeDoc {
                name,
                doc: String::new(),
            })
            .collect();
        spec.notes.push("the page has no primitive types table: the types listed are the ones its BNFs use, undocumented".into());
    }
    if spec.headers.is_empty() {
        return Err(content(
            &top,
            0,
            "",
            None,
            "missing section: the request/response headers",
        ));
    }
    if spec.apis.is_empty() {
        return Err(content(
            &top,
            0,
            "",
            None,
            "missing section: the API messages",
        ));
    }
    for a in &spec.apis {
        if a.requests.is_empty() || a.responses.is_empty() {
            return Err(content(
                &top,
                0,
                &a.name,
                None,
                "missing section: the API has no request or no response versions",
            ));
        }
    }
    Ok(spec)
}

/// `Request` or `Response`, from a message BNF's first line.
fn block_direction(title_line: &str) -> Option<Direction> {
    let title = title_line.split(" =>").next()?.trim();
    crate::spec::parse_message_title(title).map(|t| t.1)
}

/// Parses `Produce API (Key: 0):`.
fn parse_api_heading(text: &str) -> Option<(&str, i16)> {
    let (name, rest) = text.split_once(" API (Key: ")?;
    let key = rest.trim_end_matches(':').strip_suffix(')')?.parse().ok()?;
    Some((name, key))
}
