//! The BNF of one message version, as the Kafka protocol page writes it.
//!
//! ```text
//! Produce Request (Version: 3) => transactional_id acks [topic_data] TAG_BUFFER
//!   transactional_id => NULLABLE_STRING
//!   topic_data => name [partition_data] TAG_BUFFER
//!     name => COMPACT_STRING
//! ```
//!
//! The first line names the top-level fields in order (`[x]` is an array of
//! `x`; `TAG_BUFFER` is the tagged-field section). Each field is then defined
//! on its own line, indented two spaces per level, either as one primitive
//! type (upper case) or as the sequence of its own fields (a struct). The
//! definitions follow the order of first use, depth first, so printing the
//! tree back gives the page's text.

use std::fmt;

/// One item of a field sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The tagged-field section of a flexible version (`TAG_BUFFER`).
    TagBuffer,
    /// A named field.
    Field(Field),
}

/// A named field: a primitive or a struct, possibly an array of either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name as the page writes it (snake case).
    pub name: String,
    /// Written `[name]` in its parent's sequence: an array.
    pub array: bool,
    /// What the field holds.
    pub ty: FieldType,
}

/// What a field holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// A primitive type name such as `INT32` or `COMPACT_STRING`.
    Primitive(String),
    /// A struct with its own sequence of items.
    Struct(Vec<Item>),
}

/// Why BNF text could not be parsed. `line` counts from 0 at the title line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("BNF line {line}: {reason}: {text:?}")]
pub struct BnfError {
    /// The line (0 = the title line) where the problem is.
    pub line: usize,
    /// The offending line's text.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A parsed BNF: the title (left of `=>` on the first line) and the items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bnf {
    /// The title, e.g. `Produce Request (Version: 3)` or `Request Header v1`.
    pub title: String,
    /// The top-level items.
    pub items: Vec<Item>,
}

/// Is `s` a primitive type token (upper case letters, digits, underscores)?
pub fn is_type_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn is_name_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A reference in a sequence, before its definition is known.
enum Ref {
    Tag,
    Name { name: String, array: bool },
}

fn parse_refs(rhs: &str, line: usize, text: &str) -> Result<Vec<Ref>, BnfError> {
    let err = |reason: String| BnfError {
        line,
        text: text.to_string(),
        reason,
    };
    let mut refs = Vec::new();
    for tok in rhs.split_whitespace() {
        if tok == "TAG_BUFFER" {
            refs.push(Ref::Tag);
        } else if let Some(inner) = tok.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            if !is_name_token(inner) {
                return Err(err(format!("bad array reference `{tok}`")));
            }
            refs.push(Ref::Name {
                name: inner.to_string(),
                array: true,
            });
        } else if is_name_token(tok) {
            refs.push(Ref::Name {
                name: tok.to_string(),
                array: false,
            });
        } else {
            return Err(err(format!("unexpected token `{tok}`")));
        }
    }
    Ok(refs)
}

struct Def {
    indent: usize,
    name: String,
    rhs: String,
    line: usize,
    text: String,
}

impl Bnf {
    /// Parses BNF lines (title line first). Trailing white space is ignored.
    ///
    /// # Errors
    /// A [`BnfError`] naming the line for a line without `=>`, a bad token,
    /// a field used but never defined, a definition never used, a definition
    /// out of order, or bad indentation.
    pub fn parse<S: AsRef<str>>(lines: &[S]) -> Result<Bnf, BnfError> {
        let first = lines.first().map(|l| l.as_ref().trim_end()).unwrap_or("");
        let Some((title, rhs)) = split_arrow(first) else {
            return Err(BnfError {
                line: 0,
                text: first.to_string(),
                reason: "title line has no `=>`".into(),
            });
        };
        let top = parse_refs(rhs, 0, first)?;
        let mut defs = Vec::new();
        for (i, raw) in lines.iter().enumerate().skip(1) {
            let text = raw.as_ref().trim_end();
            let indent = text.len() - text.trim_start_matches(' ').len();
            let err = |reason: &str| BnfError {
                line: i,
                text: text.to_string(),
                reason: reason.to_string(),
            };
            if indent == 0 || indent % 2 != 0 {
                return Err(err(
                    "definition must be indented by a positive multiple of two spaces",
                ));
            }
            let Some((name, rhs)) = split_arrow(text.trim_start()) else {
                return Err(err("definition has no `=>`"));
            };
            if !is_name_token(name) {
                return Err(err("bad field name"));
            }
            defs.push(Def {
                indent: indent / 2,
                name: name.to_string(),
                rhs: rhs.to_string(),
                line: i,
                text: text.to_string(),
            });
        }
        let mut pos = 0;
        let items = resolve(top, 1, &defs, &mut pos, 0, first)?;
        if let Some(d) = defs.get(pos) {
            return Err(BnfError {
                line: d.line,
                text: d.text.clone(),
                reason: "definition is not used by the field sequence it follows".into(),
            });
        }
        Ok(Bnf {
            title: title.to_string(),
            items,
        })
    }

    /// The BNF's lines as the page writes them (without trailing spaces).
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("{} =>{}", self.title, seq_text(&self.items))];
        print_defs(&self.items, 1, &mut out);
        out
    }

    /// Every name in depth-first order, with `_tagged_fields` for each
    /// `TAG_BUFFER`: the order of the page's field description table.
    ///
    /// The page documents a struct's fields once: where a struct repeats the
    /// exact shape of one met earlier in the walk (DescribeQuorum's
    /// `observers` repeats `current_voters`), its subtree has no rows.
    pub fn doc_names(&self) -> Vec<String> {
        self.doc_paths()
            .into_iter()
            .filter_map(|mut p| p.pop())
            .collect()
    }

    /// The path from the root of each row of [`Bnf::doc_names`].
    pub fn doc_paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        walk_names(&self.items, &mut Vec::new(), &mut out, &mut seen);
        out
    }
}

fn walk_names<'a>(
    items: &'a [Item],
    path: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
    seen: &mut Vec<&'a [Item]>,
) {
    for item in items {
        match item {
            Item::TagBuffer => {
                path.push("_tagged_fields".into());
                out.push(path.clone());
                path.pop();
            }
            Item::Field(f) => {
                path.push(f.name.clone());
                out.push(path.clone());
                if let FieldType::Struct(sub) = &f.ty {
                    if !seen.contains(&sub.as_slice()) {
                        seen.push(sub);
                        walk_names(sub, path, out, seen);
                    }
                }
                path.pop();
            }
        }
    }
}

fn split_arrow(s: &str) -> Option<(&str, &str)> {
    let (l, r) = s.split_once(" =>")?;
    Some((l.trim_end(), r))
}

fn resolve(
    refs: Vec<Ref>,
    depth: usize,
    defs: &[Def],
    pos: &mut usize,
    parent_line: usize,
    parent_text: &str,
) -> Result<Vec<Item>, BnfError> {
    let mut items = Vec::with_capacity(refs.len());
    for r in refs {
        match r {
            Ref::Tag => items.push(Item::TagBuffer),
            Ref::Name { name, array } => {
                let Some(def) = defs.get(*pos) else {
                    return Err(BnfError {
                        line: parent_line,
                        text: parent_text.to_string(),
                        reason: format!("field `{name}` has no type (no definition follows)"),
                    });
                };
                if def.indent != depth || def.name != name {
                    return Err(BnfError {
                        line: def.line,
                        text: def.text.clone(),
                        reason: format!(
                            "expected the definition of `{name}` at indent {}, found `{}` at indent {}",
                            depth * 2,
                            def.name,
                            def.indent * 2
                        ),
                    });
                }
                *pos += 1;
                let rhs = def.rhs.trim();
                let ty = if is_type_token(rhs) && rhs != "TAG_BUFFER" {
                    FieldType::Primitive(rhs.to_string())
                } else if rhs.is_empty() {
                    return Err(BnfError {
                        line: def.line,
                        text: def.text.clone(),
                        reason: format!("field `{name}` has no type"),
                    });
                } else {
                    let sub = parse_refs(rhs, def.line, &def.text)?;
                    FieldType::Struct(resolve(sub, depth + 1, defs, pos, def.line, &def.text)?)
                };
                items.push(Item::Field(Field { name, array, ty }));
            }
        }
    }
    Ok(items)
}

fn seq_text(items: &[Item]) -> String {
    let mut s = String::new();
    for item in items {
        s.push(' ');
        match item {
            Item::TagBuffer => s.push_str("TAG_BUFFER"),
            Item::Field(f) if f.array => {
                s.push('[');
                s.push_str(&f.name);
                s.push(']');
            }
            Item::Field(f) => s.push_str(&f.name),
        }
    }
    s
}

fn print_defs(items: &[Item], depth: usize, out: &mut Vec<String>) {
    for item in items {
        if let Item::Field(f) = item {
            let pad = "  ".repeat(depth);
            match &f.ty {
                FieldType::Primitive(t) => out.push(format!("{pad}{} => {t}", f.name)),
                FieldType::Struct(sub) => {
                    out.push(format!("{pad}{} =>{}", f.name, seq_text(sub)));
                    print_defs(sub, depth + 1, out);
                }
            }
        }
    }
}

impl fmt::Display for Bnf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.lines() {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCE: &str =
        "Produce Request (Version: 9) => transactional_id acks [topic_data] TAG_BUFFER
  transactional_id => COMPACT_NULLABLE_STRING
  acks => INT16
  topic_data => name [partition_data] TAG_BUFFER
    name => COMPACT_STRING
    partition_data => index records TAG_BUFFER
      index => INT32
      records => COMPACT_RECORDS";

    fn lines(s: &str) -> Vec<&str> {
        s.lines().collect()
    }

    #[test]
    fn parses_nesting_and_prints_back() {
        let bnf = Bnf::parse(&lines(PRODUCE)).unwrap();
        assert_eq!(bnf.title, "Produce Request (Version: 9)");
        assert_eq!(bnf.items.len(), 4);
        let Item::Field(td) = &bnf.items[2] else {
            panic!()
        };
        assert!(td.array);
        let FieldType::Struct(sub) = &td.ty else {
            panic!()
        };
        assert_eq!(sub.len(), 3);
        assert_eq!(bnf.lines(), lines(PRODUCE));
        assert_eq!(
            bnf.doc_names(),
            [
                "transactional_id",
                "acks",
                "topic_data",
                "name",
                "partition_data",
                "index",
                "records",
                "_tagged_fields",
                "_tagged_fields",
                "_tagged_fields"
            ]
        );
    }

    #[test]
    fn array_of_primitives() {
        let src = "Fetch Request (Version: 7) => [forgotten]\n  forgotten => topic [partitions]\n    topic => STRING\n    partitions => INT32";
        let bnf = Bnf::parse(&lines(src)).unwrap();
        let Item::Field(f) = &bnf.items[0] else {
            panic!()
        };
        let FieldType::Struct(sub) = &f.ty else {
            panic!()
        };
        assert_eq!(
            sub[1],
            Item::Field(Field {
                name: "partitions".into(),
                array: true,
                ty: FieldType::Primitive("INT32".into())
            })
        );
    }

    #[test]
    fn empty_message() {
        let bnf = Bnf::parse(&["ApiVersions Request (Version: 0) => "]).unwrap();
        assert!(bnf.items.is_empty());
        assert_eq!(bnf.lines(), ["ApiVersions Request (Version: 0) =>"]);
    }

    #[test]
    fn field_without_type_is_an_error() {
        let e = Bnf::parse(&["X Request (Version: 0) => a b", "  a => INT8"]).unwrap_err();
        assert!(e.reason.contains("`b` has no type"), "{e}");
        let e = Bnf::parse(&["X Request (Version: 0) => a", "  a =>"]).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.reason.contains("no type"), "{e}");
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert_eq!(Bnf::parse(&["no arrow here"]).unwrap_err().line, 0);
        let e = Bnf::parse(&["X Request (Version: 0) => a", " a => INT8"]).unwrap_err();
        assert!(e.reason.contains("indented"));
        let e = Bnf::parse(&["X Request (Version: 0) => a", "  b => INT8"]).unwrap_err();
        assert!(e.reason.contains("expected the definition of `a`"));
        let e =
            Bnf::parse(&["X Request (Version: 0) => a", "  a => INT8", "  c => INT8"]).unwrap_err();
        assert_eq!(e.line, 2);
        let e = Bnf::parse(&["X Request (Version: 0) => a$"]).unwrap_err();
        assert!(e.reason.contains("unexpected token"));
    }
}
