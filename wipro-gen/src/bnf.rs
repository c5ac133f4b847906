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
//!
//! Kafka's pages write this in three [`Dialect`]s over the releases; the
//! parser reads all three and the spec file holds the first, which also
//! carries what only the newest pages state: `?` before a field that may be
//! null (`?[topics]`, `?cursor`) and `<tag: N>` after a tagged field's name.

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
    /// The page says the array or struct may be null (`?`; 4.2+ pages only).
    pub nullable: bool,
    /// The page says the field is tagged, with this tag (`<tag: N>`; 4.2+
    /// pages only).
    pub tag: Option<u32>,
}

/// How a page writes its BNFs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `a [b] TAG_BUFFER` (pages up to 3.9, and the spec file).
    TagBuffer,
    /// `a [b] _tagged_fields` (4.0 and 4.1 pages).
    TaggedFieldsWord,
    /// `{ a (b) c<tag: 0> }`: braces round every struct, `(b)` a compact
    /// array, `?` a nullable array or struct, tagged fields named with their
    /// tags, no token for the tag section (4.2 pages onwards).
    Braces,
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
    Name {
        name: String,
        array: bool,
        nullable: bool,
        tag: Option<u32>,
    },
}

/// A field name with an optional `<tag:N>` suffix (the caller has removed
/// the space the page writes after `tag:`).
fn split_tag(tok: &str) -> Option<(&str, Option<u32>)> {
    match tok.split_once("<tag:") {
        None => Some((tok, None)),
        Some((name, rest)) => Some((name, Some(rest.strip_suffix('>')?.parse().ok()?))),
    }
}

/// The right-hand side of a struct line: its references, whether the page
/// wrote it in braces, and whether the braces were `?{` (a nullable struct).
struct Seq {
    refs: Vec<Ref>,
    braces: bool,
    nullable: bool,
    word: bool,
}

fn parse_refs(rhs: &str, line: usize, text: &str) -> Result<Seq, BnfError> {
    let err = |reason: String| BnfError {
        line,
        text: text.to_string(),
        reason,
    };
    let rhs = rhs.replace("<tag: ", "<tag:");
    let mut toks: Vec<&str> = rhs.split_whitespace().collect();
    let mut seq = Seq {
        refs: Vec::new(),
        braces: false,
        nullable: false,
        word: false,
    };
    if let Some(first @ ("{" | "?{")) = toks.first().copied() {
        if toks.last() != Some(&"}") || toks.len() < 2 {
            return Err(err("`{` without its closing `}`".into()));
        }
        seq.braces = true;
        seq.nullable = first == "?{";
        toks = toks[1..toks.len() - 1].to_vec();
    }
    for tok in toks {
        if tok == "TAG_BUFFER" || tok == "_tagged_fields" {
            if seq.braces {
                return Err(err(format!("`{tok}` inside braces")));
            }
            seq.word |= tok == "_tagged_fields";
            seq.refs.push(Ref::Tag);
            continue;
        }
        let (nullable, rest) = match tok.strip_prefix('?') {
            Some(r) => (true, r),
            None => (false, tok),
        };
        let (array, inner) =
            if let Some(i) = rest.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                (true, i)
            } else if let Some(i) = rest.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
                if !seq.braces {
                    return Err(err(format!("compact array `{tok}` outside braces")));
                }
                (true, i)
            } else {
                (false, rest)
            };
        let Some((name, tag)) = split_tag(inner) else {
            return Err(err(format!("bad tag in `{tok}`")));
        };
        if !is_name_token(name) {
            return Err(err(format!("unexpected token `{tok}`")));
        }
        seq.refs.push(Ref::Name {
            name: name.to_string(),
            array,
            nullable,
            tag,
        });
    }
    Ok(seq)
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
        Bnf::parse_dialect(lines).map(|(bnf, _)| bnf)
    }

    /// Parses BNF lines in any [`Dialect`] and says which one they use.
    /// Every sequence of one BNF must use the same dialect.
    ///
    /// # Errors
    /// As [`Bnf::parse`], and for a mix of dialects.
    pub fn parse_dialect<S: AsRef<str>>(lines: &[S]) -> Result<(Bnf, Dialect), BnfError> {
        let first = lines.first().map(|l| l.as_ref().trim_end()).unwrap_or("");
        let Some((title, rhs)) = split_arrow(first) else {
            return Err(BnfError {
                line: 0,
                text: first.to_string(),
                reason: "title line has no `=>`".into(),
            });
        };
        let top = parse_refs(rhs, 0, first)?;
        let mut dialect = if top.braces {
            Dialect::Braces
        } else if top.word {
            Dialect::TaggedFieldsWord
        } else {
            Dialect::TagBuffer
        };
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
            let name = name.replace("<tag: ", "<tag:");
            if !split_tag(&name).is_some_and(|(n, _)| is_name_token(n)) {
                return Err(err("bad field name"));
            }
            defs.push(Def {
                indent: indent / 2,
                name,
                rhs: rhs.to_string(),
                line: i,
                text: text.to_string(),
            });
        }
        let mut pos = 0;
        let items = resolve(top.refs, 1, &defs, &mut pos, 0, first, &mut dialect)?;
        if let Some(d) = defs.get(pos) {
            return Err(BnfError {
                line: d.line,
                text: d.text.clone(),
                reason: "definition is not used by the field sequence it follows".into(),
            });
        }
        Ok((
            Bnf {
                title: title.to_string(),
                items,
            },
            dialect,
        ))
    }

    /// The BNF's lines as the spec file writes them (the
    /// [`Dialect::TagBuffer`] form, without trailing spaces).
    pub fn lines(&self) -> Vec<String> {
        self.lines_in(Dialect::TagBuffer)
    }

    /// The BNF's lines as a page of `dialect` writes them.
    pub fn lines_in(&self, dialect: Dialect) -> Vec<String> {
        let flexible = self.items.contains(&Item::TagBuffer);
        let mut out = vec![format!(
            "{} =>{}",
            self.title,
            seq_text(&self.items, dialect, flexible, false)
        )];
        print_defs(&self.items, 1, dialect, flexible, &mut out);
        out
    }

    /// Adds every primitive token the BNF uses to `out`.
    pub fn primitive_tokens(&self, out: &mut std::collections::BTreeSet<String>) {
        fn walk(items: &[Item], out: &mut std::collections::BTreeSet<String>) {
            for item in items {
                if let Item::Field(f) = item {
                    match &f.ty {
                        FieldType::Primitive(t) => {
                            out.insert(t.clone());
                        }
                        FieldType::Struct(sub) => walk(sub, out),
                    }
                }
            }
        }
        walk(&self.items, out);
    }

    /// Whether the BNF is of a flexible version (it has a tag section).
    pub fn is_flexible(&self) -> bool {
        self.items.contains(&Item::TagBuffer)
    }

    /// Marks a [`Dialect::Braces`] BNF as a flexible version's: adds the tag
    /// section (which that dialect does not write) to every struct.
    pub fn set_flexible(&mut self) {
        fn add(items: &mut Vec<Item>) {
            for item in items.iter_mut() {
                if let Item::Field(Field {
                    ty: FieldType::Struct(sub),
                    ..
                }) = item
                {
                    add(sub);
                }
            }
            if !items.contains(&Item::TagBuffer) {
                items.push(Item::TagBuffer);
            }
        }
        add(&mut self.items);
    }

    /// The same BNF without what only [`Dialect::Braces`] pages state
    /// (nullability marks and tagged fields): the form in which an older
    /// page writes the same version, for comparing two pages.
    pub fn plain(&self) -> Bnf {
        Bnf {
            title: self.title.clone(),
            items: strip_marks(&self.items),
        }
    }

    /// [`Bnf::plain`] of a sequence (a tagged field at its top is kept,
    /// without its tag).
    pub fn plain_items(items: &[Item]) -> Vec<Item> {
        let untagged: Vec<Item> = items
            .iter()
            .map(|i| match i {
                Item::Field(f) => Item::Field(Field {
                    tag: None,
                    ..f.clone()
                }),
                Item::TagBuffer => Item::TagBuffer,
            })
            .collect();
        strip_marks(&untagged)
    }
}

/// The items without nullability marks and tagged fields (see [`Bnf::plain`]).
fn strip_marks(items: &[Item]) -> Vec<Item> {
    fn strip(items: &[Item]) -> Vec<Item> {
        items
            .iter()
            .filter_map(|item| match item {
                Item::TagBuffer => Some(Item::TagBuffer),
                Item::Field(f) if f.tag.is_some() => None,
                Item::Field(f) => Some(Item::Field(Field {
                    name: f.name.clone(),
                    array: f.array,
                    ty: match &f.ty {
                        FieldType::Primitive(t) => FieldType::Primitive(plain_token(t).into()),
                        FieldType::Struct(sub) => FieldType::Struct(strip(sub)),
                    },
                    nullable: false,
                    tag: None,
                })),
            })
            .collect()
    }
    strip(items)
}

impl Bnf {
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

    /// Like [`Bnf::doc_names`], with a repeated struct's rows repeated (as
    /// pages before 2.4 write them).
    pub fn doc_names_repeated(&self) -> Vec<String> {
        self.doc_paths_repeated()
            .into_iter()
            .filter_map(|mut p| p.pop())
            .collect()
    }

    /// The path from the root of each row of [`Bnf::doc_names_repeated`].
    pub fn doc_paths_repeated(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        walk_names(&self.items, &mut Vec::new(), &mut out, &mut None);
        out
    }

    /// The path from the root of each row of [`Bnf::doc_names`].
    pub fn doc_paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        walk_names(&self.items, &mut Vec::new(), &mut out, &mut Some(&mut seen));
        out
    }
}

fn walk_names<'a>(
    items: &'a [Item],
    path: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
    seen: &mut Option<&mut Vec<&'a [Item]>>,
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
                    let first = match seen {
                        Some(seen) if seen.contains(&sub.as_slice()) => false,
                        Some(seen) => {
                            seen.push(sub);
                            true
                        }
                        None => true,
                    };
                    if first {
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

/// The token an older page writes for the same wire type: 4.2+ pages say
/// `NULLABLE_RECORDS` where older ones say `RECORDS` (which was always
/// nullable on the wire).
pub fn plain_token(t: &str) -> &str {
    match t {
        "NULLABLE_RECORDS" => "RECORDS",
        "COMPACT_NULLABLE_RECORDS" => "COMPACT_RECORDS",
        t => t,
    }
}

fn resolve(
    refs: Vec<Ref>,
    depth: usize,
    defs: &[Def],
    pos: &mut usize,
    parent_line: usize,
    parent_text: &str,
    dialect: &mut Dialect,
) -> Result<Vec<Item>, BnfError> {
    let mut items = Vec::with_capacity(refs.len());
    for r in refs {
        match r {
            Ref::Tag => items.push(Item::TagBuffer),
            Ref::Name {
                name,
                array,
                mut nullable,
                tag,
            } => {
                let written = match tag {
                    Some(t) => format!("{name}<tag:{t}>"),
                    None => name.clone(),
                };
                let Some(def) = defs.get(*pos) else {
                    return Err(BnfError {
                        line: parent_line,
                        text: parent_text.to_string(),
                        reason: format!("field `{name}` has no type (no definition follows)"),
                    });
                };
                if def.indent != depth || def.name != written {
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
                let primitive_null = |what: &str| BnfError {
                    line: def.line,
                    text: def.text.clone(),
                    reason: format!(
                        "`?` on {what} `{name}` (a nullable primitive has a NULLABLE_ type)"
                    ),
                };
                let ty = if is_type_token(rhs) && rhs != "TAG_BUFFER" {
                    if nullable && !array {
                        return Err(primitive_null("the primitive"));
                    }
                    FieldType::Primitive(rhs.to_string())
                } else if let Some(elem) = rhs
                    .strip_prefix("ARRAY(")
                    .and_then(|r| r.strip_suffix(')'))
                    .filter(|e| is_type_token(e))
                {
                    // Pages 1.1 to 2.4 write CreatePartitions' assignment as
                    // `[assignment]` with `assignment => ARRAY(INT32)`: an
                    // array of arrays, which newer pages write as a struct.
                    FieldType::Primitive(format!("ARRAY({elem})"))
                } else if rhs.is_empty() {
                    return Err(BnfError {
                        line: def.line,
                        text: def.text.clone(),
                        reason: format!("field `{name}` has no type"),
                    });
                } else {
                    let sub = parse_refs(rhs, def.line, &def.text)?;
                    let braces = *dialect == Dialect::Braces;
                    if sub.braces != braces {
                        return Err(BnfError {
                            line: def.line,
                            text: def.text.clone(),
                            reason: "struct written with braces in a BNF without them, or without in one with".into(),
                        });
                    }
                    if sub.word {
                        *dialect = Dialect::TaggedFieldsWord;
                    }
                    nullable |= sub.nullable;
                    FieldType::Struct(resolve(
                        sub.refs,
                        depth + 1,
                        defs,
                        pos,
                        def.line,
                        &def.text,
                        dialect,
                    )?)
                };
                items.push(Item::Field(Field {
                    name,
                    array,
                    ty,
                    nullable,
                    tag,
                }));
            }
        }
    }
    Ok(items)
}

/// A field's name as its definition line starts.
fn def_name(f: &Field) -> String {
    match f.tag {
        Some(t) => format!("{}<tag: {t}>", f.name),
        None => f.name.clone(),
    }
}

/// The right-hand side of a struct line (with its leading space), for the
/// struct `nullable` when it is one.
fn seq_text(items: &[Item], dialect: Dialect, flexible: bool, nullable: bool) -> String {
    let braces = dialect == Dialect::Braces;
    let mut s = String::new();
    if braces {
        s.push_str(if nullable { " ?{" } else { " {" });
    }
    for item in items {
        match item {
            Item::TagBuffer if braces => continue,
            Item::TagBuffer if dialect == Dialect::TaggedFieldsWord => {
                s.push_str(" _tagged_fields")
            }
            Item::TagBuffer => s.push_str(" TAG_BUFFER"),
            Item::Field(f) => {
                s.push(' ');
                // The nullable mark goes on the reference, except for a
                // nullable struct on a braces page (`x => ?{ ... }`).
                let struct_field = matches!(f.ty, FieldType::Struct(_));
                if f.nullable && (f.array || !braces || !struct_field) {
                    s.push('?');
                }
                let name = def_name(f);
                match (f.array, braces && flexible) {
                    (true, true) => s.push_str(&format!("({name})")),
                    (true, false) => s.push_str(&format!("[{name}]")),
                    (false, _) => s.push_str(&name),
                }
            }
        }
    }
    if braces {
        s.push_str(" }");
    }
    s
}

fn print_defs(
    items: &[Item],
    depth: usize,
    dialect: Dialect,
    flexible: bool,
    out: &mut Vec<String>,
) {
    for item in items {
        if let Item::Field(f) = item {
            let pad = "  ".repeat(depth);
            match &f.ty {
                FieldType::Primitive(t) => out.push(format!("{pad}{} => {t}", def_name(f))),
                FieldType::Struct(sub) => {
                    let nullable_struct = f.nullable && !f.array && dialect == Dialect::Braces;
                    out.push(format!(
                        "{pad}{} =>{}",
                        def_name(f),
                        seq_text(sub, dialect, flexible, nullable_struct)
                    ));
                    print_defs(sub, depth + 1, dialect, flexible, out);
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
                ty: FieldType::Primitive("INT32".into()),
                nullable: false,
                tag: None,
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
