//! The model in the middle: each message's per-version BNFs merged into one
//! struct tree, every field with the versions where it exists and one Rust
//! type over all of them, overlay facts merged in.
//!
//! Naming rule for nested structs: `<Api><Request|Response><Field>`, the
//! field name in CamelCase and singular (`topics` -> `Topic`), so the Metadata
//! response's `topics` hold `MetadataResponseTopic`s. Where two different
//! fields of one message would get the same name, each of them takes its
//! parent struct's name as prefix instead (`…TopicPartition`), repeated
//! until names are unique.

use crate::bnf::{Field, FieldType, Item};
use crate::overlay::{Fact, Versions};
use crate::spec::{Api, Block, Direction, Spec};
use std::collections::{BTreeMap, HashMap};

/// A set of versions, bit `v` for version `v`.
pub type VersionSet = u64;

/// The set holding the versions of `v` that lie in `0..64`.
pub fn set_of(v: Versions) -> VersionSet {
    (0..64i16)
        .filter(|&x| v.contains(x))
        .fold(0, |s, x| s | (1 << x))
}

/// Inclusive ranges of a set, ascending.
pub fn ranges(set: VersionSet) -> Vec<(i16, i16)> {
    let mut out: Vec<(i16, i16)> = Vec::new();
    for v in 0..64i16 {
        if set & (1 << v) != 0 {
            match out.last_mut() {
                Some(r) if r.1 == v - 1 => r.1 = v,
                _ => out.push((v, v)),
            }
        }
    }
    out
}

/// A primitive's Rust representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// `bool`.
    Bool,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `f64`.
    F64,
    /// `Uuid`.
    Uuid,
    /// `StrBytes`.
    Str,
    /// `Bytes` (BYTES and RECORDS).
    Bytes,
    /// `Int32Array`: an `ARRAY(INT32)` element of an array (pages 1.1 to 2.4,
    /// CreatePartitions v0's assignment).
    Int32Array,
}

/// A primitive token's Rust base type and whether the token carries null.
pub fn token_base(token: &str) -> Option<(Base, bool)> {
    Some(match token {
        "BOOLEAN" => (Base::Bool, false),
        "INT8" => (Base::I8, false),
        "INT16" => (Base::I16, false),
        "INT32" => (Base::I32, false),
        "INT64" => (Base::I64, false),
        "UINT16" => (Base::U16, false),
        "UINT32" => (Base::U32, false),
        "FLOAT64" => (Base::F64, false),
        "UUID" => (Base::Uuid, false),
        "ARRAY(INT32)" => (Base::Int32Array, false),
        "STRING" | "COMPACT_STRING" => (Base::Str, false),
        "NULLABLE_STRING" | "COMPACT_NULLABLE_STRING" => (Base::Str, true),
        "BYTES" | "COMPACT_BYTES" => (Base::Bytes, false),
        "NULLABLE_BYTES"
        | "COMPACT_NULLABLE_BYTES"
        | "RECORDS"
        | "COMPACT_RECORDS"
        | "NULLABLE_RECORDS"
        | "COMPACT_NULLABLE_RECORDS" => (Base::Bytes, true),
        _ => return None,
    })
}

/// What one field (or array element) holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elem {
    /// A primitive.
    Prim(Base),
    /// A struct, by its Rust type name.
    Struct(String),
}

/// One field of a merged struct.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldModel {
    /// The page's name (snake case).
    pub name: String,
    /// Its description (from the newest version that documents it).
    pub doc: String,
    /// Where it exists.
    pub versions: VersionSet,
    /// An array of `elem`.
    pub array: bool,
    /// What it (or each element) holds.
    pub elem: Elem,
    /// For arrays: elements may be null (a nullable token).
    pub elem_nullable: bool,
    /// Versions where the field itself may be null.
    pub nullable: VersionSet,
    /// The part of `nullable` that is leniency for broker quirks only.
    pub lenient_nullable: VersionSet,
    /// The primitive token used in each version (empty for structs).
    pub tokens: BTreeMap<i16, String>,
    /// Its tag, for a tagged field.
    pub tag: Option<u32>,
    /// Its default (a Rust literal) when not the type's zero value.
    pub default: Option<String>,
}

impl FieldModel {
    /// Whether the Rust type is wrapped in `Option`.
    pub fn is_option(&self) -> bool {
        self.nullable != 0
    }
}

/// One merged struct.
#[derive(Debug, Clone, PartialEq)]
pub struct StructModel {
    /// The Rust type name.
    pub name: String,
    /// The field path from the message root (empty for the root).
    pub path: Vec<String>,
    /// Its description.
    pub doc: String,
    /// Versions in which it appears.
    pub versions: VersionSet,
    /// Versions in which it ends with a tagged-field section.
    pub flexible: VersionSet,
    /// Fields in wire order (tagged fields last, by tag).
    pub fields: Vec<FieldModel>,
}

/// One message (request or response, or a header) over all its versions.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageModel {
    /// The API name (or `Request`/`Response` for headers).
    pub api: String,
    /// Request or response.
    pub dir: Direction,
    /// The lowest version.
    pub min: i16,
    /// The highest version.
    pub max: i16,
    /// Every struct, the root first.
    pub structs: Vec<StructModel>,
}

impl MessageModel {
    /// The root struct.
    pub fn root(&self) -> &StructModel {
        &self.structs[0]
    }

    /// The first flexible version, if any.
    pub fn first_flexible(&self) -> Option<i16> {
        let f = self.root().flexible;
        (f != 0).then(|| f.trailing_zeros() as i16)
    }
}

/// One API: its key, both messages and the header versions they use.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiModel {
    /// The API name.
    pub name: String,
    /// The API key.
    pub key: i16,
    /// The request.
    pub request: MessageModel,
    /// The response.
    pub response: MessageModel,
    /// Request header version overrides: `(versions, header version)`.
    pub request_header: Vec<(Versions, i16)>,
    /// Response header version overrides.
    pub response_header: Vec<(Versions, i16)>,
}

/// Why the model could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}: {reason}")]
pub struct ModelError {
    /// The message (e.g. `FetchRequest`) or overlay entry concerned.
    pub message: String,
    /// What is wrong, naming the field and versions.
    pub reason: String,
}

/// A field before naming: the merged per-version occurrences.
struct RawField {
    versions: VersionSet,
    array: Option<bool>,
    tokens: BTreeMap<i16, String>,
    sub: Vec<(i16, Vec<Item>)>,
    tag: Option<u32>,
    /// Versions where the page marks it nullable (`?`).
    nullable: VersionSet,
}

/// A tagged field as the page states it, without its tag (kept apart).
fn plain_field(f: &Field) -> Field {
    Field {
        tag: None,
        ..f.clone()
    }
}

/// Keeps the nullability the page states in any version of a tagged field.
fn nullable_tagged(into: &mut Field, f: &Field) {
    into.nullable |= f.nullable;
}

/// Merges the blocks of one message (all versions) with the overlay facts.
///
/// # Errors
/// A [`ModelError`] for a field whose type cannot be one Rust type over all
/// versions, inconsistent field order, an unknown token, or an overlay fact
/// that names no field.
pub fn merge_message(
    api: &str,
    dir: Direction,
    type_name: &str,
    blocks: &[(i16, &Block)],
    facts: &[Fact],
) -> Result<MessageModel, ModelError> {
    let err = |reason: String| ModelError {
        message: type_name.to_string(),
        reason,
    };
    let min = blocks
        .iter()
        .map(|b| b.0)
        .min()
        .ok_or_else(|| err("no versions".into()))?;
    let max = blocks.iter().map(|b| b.0).max().unwrap_or(min);
    let mut docs: HashMap<Vec<String>, String> = HashMap::new();
    for (_, b) in blocks {
        for (path, doc) in b.doc_rows() {
            if !doc.is_empty() {
                docs.insert(path, doc.to_string());
            }
        }
    }
    let occurrences: Vec<(i16, Vec<Item>)> = blocks
        .iter()
        .map(|(v, b)| (*v, b.bnf.items.clone()))
        .collect();
    let mut raw_structs: Vec<(Vec<String>, VersionSet, VersionSet, Vec<FieldModel>)> = Vec::new();
    let mut struct_paths: Vec<Vec<String>> = Vec::new();
    merge_struct(
        type_name,
        &[],
        &occurrences,
        facts,
        api,
        dir,
        &docs,
        &mut raw_structs,
        &mut struct_paths,
    )?;

    // Name the structs: <Message><Singular>, parents prefixed on collision.
    let mut names: HashMap<Vec<String>, String> = HashMap::new();
    names.insert(Vec::new(), type_name.to_string());
    let mut depth_of_prefix: HashMap<Vec<String>, usize> = HashMap::new();
    loop {
        let mut proposed: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        for p in struct_paths.iter().filter(|p| !p.is_empty()) {
            let d = *depth_of_prefix.get(p).unwrap_or(&1);
            let start = p.len().saturating_sub(d);
            let mut n = type_name.to_string();
            for seg in &p[start..] {
                n.push_str(&singular_camel(seg));
            }
            proposed.entry(n).or_default().push(p.clone());
        }
        let mut changed = false;
        for (n, ps) in &proposed {
            if ps.len() > 1 || n == type_name {
                for p in ps {
                    let d = depth_of_prefix.entry(p.clone()).or_insert(1);
                    if *d < p.len() {
                        *d += 1;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            for (n, ps) in proposed {
                if ps.len() > 1 {
                    return Err(err(format!("struct name {n} cannot be made unique")));
                }
                names.insert(ps[0].clone(), n);
            }
            break;
        }
    }
    let mut structs = Vec::new();
    for (path, versions, flexible, mut fields) in raw_structs {
        for f in &mut fields {
            if let Elem::Struct(p) = &f.elem {
                let mut child = path.clone();
                child.push(p.clone());
                f.elem = Elem::Struct(names[&child].clone());
            }
        }
        structs.push(StructModel {
            name: names[&path].clone(),
            doc: if path.is_empty() {
                String::new()
            } else {
                docs.get(&path).cloned().unwrap_or_default()
            },
            path,
            versions,
            flexible,
            fields,
        });
    }
    // Every overlay fact for this message must have found its field.
    for fact in facts {
        let (fa, fd, path) = match fact {
            Fact::Nullable { api, dir, path, .. } | Fact::Default { api, dir, path, .. } => {
                (api, dir, path.clone())
            }
            // A tagged field is placed in its parent (which the overlay's
            // reconcile found), or in no version when the page has no
            // flexible version where the overlay names it.
            Fact::Tagged { .. } | Fact::HeaderVersion { .. } | Fact::Version { .. } => continue,
        };
        let under_tagged = facts.iter().any(|t| match t {
            Fact::Tagged {
                api: ta,
                dir: td,
                parent,
                field,
                ..
            } => {
                ta == fa
                    && td == fd
                    && path.starts_with(parent)
                    && path.get(parent.len()) == Some(&field.name)
            }
            _ => false,
        });
        if fa == api && *fd == dir && !under_tagged {
            let (parent, last) = path.split_at(path.len().saturating_sub(1));
            let found = structs.iter().any(|s| {
                s.path == parent && s.fields.iter().any(|f| Some(&f.name) == last.first())
            });
            if !found {
                return Err(err(format!(
                    "overlay names field `{}` which does not exist",
                    path.join(".")
                )));
            }
        }
    }
    Ok(MessageModel {
        api: api.to_string(),
        dir,
        min,
        max,
        structs,
    })
}

#[allow(clippy::too_many_arguments)]
fn merge_struct(
    type_name: &str,
    path: &[String],
    occurrences: &[(i16, Vec<Item>)],
    facts: &[Fact],
    api: &str,
    dir: Direction,
    docs: &HashMap<Vec<String>, String>,
    out: &mut Vec<(Vec<String>, VersionSet, VersionSet, Vec<FieldModel>)>,
    struct_paths: &mut Vec<Vec<String>>,
) -> Result<(), ModelError> {
    let err = |reason: String| ModelError {
        message: type_name.to_string(),
        reason,
    };
    let at = |name: &str| {
        let mut p = path.to_vec();
        p.push(name.to_string());
        p.join(".")
    };
    let mut versions: VersionSet = 0;
    let mut flexible: VersionSet = 0;
    let mut order: Vec<String> = Vec::new();
    let mut raw: HashMap<String, RawField> = HashMap::new();
    let mut page_tagged: Vec<(i16, u32, &Field)> = Vec::new();
    for (v, items) in occurrences {
        versions |= 1 << v;
        let mut prev: Option<usize> = None;
        for (i, item) in items.iter().enumerate() {
            let f: &Field = match item {
                Item::TagBuffer => {
                    if i + 1 != items.len() {
                        return Err(err(format!(
                            "v{v}: TAG_BUFFER is not last in `{}`",
                            path.join(".")
                        )));
                    }
                    flexible |= 1 << v;
                    continue;
                }
                Item::Field(f) => f,
            };
            if let Some(tag) = f.tag {
                // A tagged field the page states (4.2+ pages): it joins the
                // overlay's, after the positional fields.
                page_tagged.push((*v, tag, f));
                continue;
            }
            let pos = match order.iter().position(|n| *n == f.name) {
                Some(p) => {
                    if prev.is_some_and(|q| p < q) {
                        return Err(err(format!(
                            "v{v}: field `{}` is out of order with earlier versions",
                            at(&f.name)
                        )));
                    }
                    p
                }
                None => {
                    let p = prev.map_or(0, |q| q + 1);
                    order.insert(p, f.name.clone());
                    p
                }
            };
            prev = Some(pos);
            let r = raw.entry(f.name.clone()).or_insert_with(|| RawField {
                versions: 0,
                array: None,
                tokens: BTreeMap::new(),
                sub: Vec::new(),
                tag: None,
                nullable: 0,
            });
            r.versions |= 1 << v;
            if f.nullable {
                r.nullable |= 1 << v;
            }
            if r.array.is_some_and(|a| a != f.array) {
                return Err(err(format!(
                    "field `{}` is an array in some versions and not in others (v{v})",
                    at(&f.name)
                )));
            }
            r.array = Some(f.array);
            match &f.ty {
                FieldType::Primitive(t) => {
                    // The wire token: NULLABLE_RECORDS is RECORDS on the wire.
                    r.tokens.insert(*v, crate::bnf::plain_token(t).to_string());
                }
                FieldType::Struct(sub) => r.sub.push((*v, sub.clone())),
            }
        }
    }
    // Tagged fields come after the positional ones, by tag: those the page
    // states, and the overlay's (for pages that do not state them). Where
    // both name a field they must agree on its tag and type.
    let mut tagged: Vec<(u32, VersionSet, Field)> = Vec::new();
    for (v, tag, f) in page_tagged {
        let plain = plain_field(f);
        match tagged.iter_mut().find(|t| t.2.name == f.name) {
            Some(t) if t.0 != tag => {
                return Err(err(format!(
                    "tagged field `{}` has tag {} in some versions and {tag} in v{v}",
                    at(&f.name),
                    t.0
                )))
            }
            Some(t) => {
                t.1 |= 1 << v;
                nullable_tagged(&mut t.2, f);
            }
            None => tagged.push((tag, 1 << v, plain)),
        }
    }
    for f in facts {
        let Fact::Tagged {
            api: a,
            dir: d,
            parent,
            versions,
            tag,
            field,
        } = f
        else {
            continue;
        };
        if a != api || *d != dir || parent != path {
            continue;
        }
        let set = set_of(*versions) & flexible;
        match tagged.iter_mut().find(|t| t.2.name == field.name) {
            Some(t) if t.0 != *tag => {
                return Err(err(format!(
                    "overlay gives tagged field `{}` tag {tag}; the page says tag {}",
                    at(&field.name),
                    t.0
                )))
            }
            // The page does not mark a tagged field that is an array (4.4's
            // writes ApiVersions' `supported_features<tag: 0>`, an array, like
            // a struct): the overlay says which, the rest must agree.
            Some(t)
                if crate::bnf::Bnf::plain_items(std::slice::from_ref(&Item::Field(Field {
                    array: field.array,
                    ..t.2.clone()
                }))) != crate::bnf::Bnf::plain_items(std::slice::from_ref(&Item::Field(
                    field.clone(),
                ))) =>
            {
                return Err(err(format!(
                    "overlay types tagged field `{}` differently from the page",
                    at(&field.name)
                )))
            }
            Some(t) => {
                t.1 |= set;
                t.2.array = field.array;
            }
            None if set != 0 => tagged.push((*tag, set, field.clone())),
            None => {}
        }
    }
    tagged.sort_by_key(|t| t.0);
    for (tag, set, field) in tagged {
        if raw.contains_key(&field.name) {
            return Err(err(format!(
                "tagged field `{}` clashes with a positional field",
                at(&field.name)
            )));
        }
        let mut r = RawField {
            versions: set,
            array: Some(field.array),
            tokens: BTreeMap::new(),
            sub: Vec::new(),
            tag: Some(tag),
            nullable: if field.nullable { set } else { 0 },
        };
        for v in ranges(set).into_iter().flat_map(|(a, b)| a..=b) {
            match &field.ty {
                FieldType::Primitive(t) => {
                    r.tokens.insert(v, crate::bnf::plain_token(t).to_string());
                }
                FieldType::Struct(sub) => r.sub.push((v, sub.clone())),
            }
        }
        order.push(field.name.clone());
        raw.insert(field.name.clone(), r);
    }

    struct_paths.push(path.to_vec());
    let slot = out.len();
    out.push((path.to_vec(), versions, flexible, Vec::new()));
    let mut fields = Vec::new();
    for name in order {
        let r = raw.remove(&name).expect("ordered names are in raw");
        let mut fpath = path.to_vec();
        fpath.push(name.clone());
        let (overlay_nullable, lenient_nullable): (VersionSet, VersionSet) = facts
            .iter()
            .filter_map(|f| match f {
                Fact::Nullable {
                    api: a,
                    dir: d,
                    path: p,
                    versions,
                    lenient,
                } if a == api && *d == dir && *p == fpath => Some((set_of(*versions), *lenient)),
                _ => None,
            })
            .fold((0, 0), |(s, l), (x, lenient)| {
                (s | x, if lenient { l | x } else { l })
            });
        let overlay_nullable = overlay_nullable | r.nullable;
        let default = facts.iter().find_map(|f| match f {
            Fact::Default {
                api: a,
                dir: d,
                path: p,
                value,
            } if a == api && *d == dir && *p == fpath => Some(value.clone()),
            _ => None,
        });
        let array = r.array.unwrap_or(false);
        let (elem, token_nullable, elem_nullable) = if !r.sub.is_empty() {
            if !r.tokens.is_empty() {
                return Err(err(format!(
                    "field `{}` is a struct in versions {:?} and a primitive in {:?}",
                    at(&name),
                    r.sub.iter().map(|s| s.0).collect::<Vec<_>>(),
                    r.tokens.keys().collect::<Vec<_>>()
                )));
            }
            merge_struct(
                type_name,
                &fpath,
                &r.sub,
                facts,
                api,
                dir,
                docs,
                out,
                struct_paths,
            )?;
            (Elem::Struct(name.clone()), 0, false)
        } else {
            let mut base: Option<(Base, i16)> = None;
            let mut nullable_set: VersionSet = 0;
            for (v, t) in &r.tokens {
                let Some((b, n)) = token_base(t) else {
                    return Err(err(format!("field `{}` v{v}: unknown type {t}", at(&name))));
                };
                if let Some((b0, v0)) = base {
                    if b0 != b {
                        return Err(err(format!(
                            "field `{}` changes type from {} (v{v0}) to {t} (v{v}); one Rust type cannot hold both",
                            at(&name),
                            r.tokens[&v0]
                        )));
                    }
                } else {
                    base = Some((b, *v));
                }
                if n {
                    nullable_set |= 1 << v;
                }
            }
            let (b, _) = base.ok_or_else(|| err(format!("field `{}` has no type", at(&name))))?;
            if array {
                (Elem::Prim(b), 0, nullable_set != 0)
            } else {
                (Elem::Prim(b), nullable_set, false)
            }
        };
        fields.push(FieldModel {
            doc: docs.get(&fpath).cloned().unwrap_or_default(),
            name,
            versions: r.versions,
            array,
            elem,
            elem_nullable,
            // A `null_on_read` fact does not make the Rust type optional:
            // null is accepted on read (as None or the default), never written.
            nullable: (token_nullable | (overlay_nullable & !lenient_nullable)) & r.versions,
            lenient_nullable: lenient_nullable & !token_nullable & r.versions,
            tokens: r.tokens,
            tag: r.tag,
            default,
        });
    }
    out[slot].3 = fields;
    Ok(())
}

/// `topic_data` -> `TopicData`, `topics` -> `Topic`, `entries` -> `Entry`.
pub fn singular_camel(name: &str) -> String {
    let s = singular(name);
    camel(&s)
}

/// snake_case -> CamelCase.
pub fn camel(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn singular(name: &str) -> String {
    if let Some(s) = name.strip_suffix("ies") {
        return format!("{s}y");
    }
    for suffix in ["sses", "xes", "ches", "shes", "uses"] {
        if let Some(s) = name.strip_suffix(suffix) {
            return format!("{s}{}", &suffix[..suffix.len() - 2]);
        }
    }
    if name.ends_with('s') && !name.ends_with("ss") && !name.ends_with("us") {
        return name[..name.len() - 1].to_string();
    }
    name.to_string()
}

/// Builds every API's model from the spec and overlay.
///
/// # Errors
/// The first [`ModelError`].
pub fn build(spec: &Spec, facts: &[Fact]) -> Result<Vec<ApiModel>, ModelError> {
    spec.apis.iter().map(|a| build_api(a, facts)).collect()
}

fn build_api(a: &Api, facts: &[Fact]) -> Result<ApiModel, ModelError> {
    let blocks = |bs: &[Block]| -> Vec<(i16, Block)> {
        bs.iter()
            .filter_map(|b| b.message_title().map(|t| (t.2, b.clone())))
            .collect()
    };
    let reqs = blocks(&a.requests);
    let resps = blocks(&a.responses);
    let refs = |v: &[(i16, Block)]| -> Vec<(i16, Block)> { v.to_vec() };
    let reqs = refs(&reqs);
    let resps = refs(&resps);
    let rq: Vec<(i16, &Block)> = reqs.iter().map(|(v, b)| (*v, b)).collect();
    let rs: Vec<(i16, &Block)> = resps.iter().map(|(v, b)| (*v, b)).collect();
    let header = |dir: Direction| -> Vec<(Versions, i16)> {
        facts
            .iter()
            .filter_map(|f| match f {
                Fact::HeaderVersion {
                    api,
                    dir: d,
                    versions,
                    header,
                } if *api == a.name && *d == dir => Some((*versions, *header)),
                _ => None,
            })
            .collect()
    };
    Ok(ApiModel {
        name: a.name.clone(),
        key: a.key,
        request: merge_message(
            &a.name,
            Direction::Request,
            &format!("{}Request", a.name),
            &rq,
            facts,
        )?,
        response: merge_message(
            &a.name,
            Direction::Response,
            &format!("{}Response", a.name),
            &rs,
            facts,
        )?,
        request_header: header(Direction::Request),
        response_header: header(Direction::Response),
    })
}

/// Builds the request or response header model from the spec's header blocks.
///
/// # Errors
/// As [`merge_message`].
pub fn build_header(spec: &Spec, dir: Direction) -> Result<MessageModel, ModelError> {
    let blocks: Vec<(i16, &Block)> = spec
        .headers
        .iter()
        .filter_map(|b| b.header_title().filter(|t| t.0 == dir).map(|t| (t.1, b)))
        .collect();
    merge_message(
        dir.as_str(),
        dir,
        &format!("{}Header", dir.as_str()),
        &blocks,
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bnf::Bnf;

    fn block(text: &str, docs: &[(&str, &str)]) -> Block {
        let lines: Vec<&str> = text.lines().collect();
        Block {
            bnf: Bnf::parse(&lines).unwrap(),
            docs: docs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    fn merge(blocks: &[Block], facts: &[Fact]) -> Result<MessageModel, ModelError> {
        let bs: Vec<(i16, &Block)> = blocks
            .iter()
            .map(|b| (b.message_title().unwrap().2, b))
            .collect();
        merge_message("Fetch", Direction::Request, "FetchRequest", &bs, facts)
    }

    #[test]
    fn fields_get_version_ranges_and_order() {
        let v0 = block("Fetch Request (Version: 0) => a [topics]\n  a => INT32\n  topics => name\n    name => STRING", &[]);
        let v1 = block(
            "Fetch Request (Version: 1) => x a [topics] TAG_BUFFER\n  x => INT8\n  a => INT32\n  topics => name id TAG_BUFFER\n    name => COMPACT_STRING\n    id => UUID",
            &[("x", "new"), ("a", "A."), ("topics", "T."), ("name", "N."), ("id", "I."), ("_tagged_fields", ""), ("_tagged_fields", "")],
        );
        let m = merge(&[v0, v1], &[]).unwrap();
        let root = m.root();
        assert_eq!(
            root.fields
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>(),
            ["x", "a", "topics"]
        );
        assert_eq!(root.fields[0].versions, 0b10);
        assert_eq!(root.fields[1].versions, 0b11);
        assert_eq!(root.flexible, 0b10);
        assert_eq!(m.first_flexible(), Some(1));
        assert_eq!(m.structs[1].name, "FetchRequestTopic");
        assert_eq!(
            root.fields[2].elem,
            Elem::Struct("FetchRequestTopic".into())
        );
        // STRING vs COMPACT_STRING is encoding only: one non-null Rust type
        assert_eq!(m.structs[1].fields[0].nullable, 0);
        assert_eq!(m.structs[1].fields[0].doc, "N.");
    }

    #[test]
    fn nullable_in_any_version_makes_option_and_overlay_adds_nullability() {
        let v0 = block(
            "Fetch Request (Version: 0) => s [ids]\n  s => STRING\n  ids => INT32",
            &[],
        );
        let v1 = block(
            "Fetch Request (Version: 1) => s [ids]\n  s => NULLABLE_STRING\n  ids => INT32",
            &[],
        );
        let facts = crate::overlay::parse("o", "nullable Fetch request ids 1+ # test\n").unwrap();
        let m = merge(&[v0, v1], &facts).unwrap();
        assert_eq!(m.root().fields[0].nullable, 0b10);
        assert!(m.root().fields[0].is_option());
        assert_eq!(m.root().fields[1].nullable, 0b10);
        let bad = crate::overlay::parse("o", "nullable Fetch request nope 1+ # test\n").unwrap();
        let v0 = block("Fetch Request (Version: 0) => s\n  s => STRING", &[]);
        assert!(merge(&[v0], &bad)
            .unwrap_err()
            .reason
            .contains("`nope` which does not exist"));
    }

    #[test]
    fn type_conflict_is_an_error_naming_the_field() {
        let v0 = block(
            "Fetch Request (Version: 0) => t [p]\n  t => INT32\n  p => INT8",
            &[],
        );
        let v1 = block(
            "Fetch Request (Version: 1) => t [p]\n  t => INT64\n  p => INT8",
            &[],
        );
        let e = merge(&[v0, v1], &[]).unwrap_err();
        assert_eq!(e.message, "FetchRequest");
        assert!(
            e.reason
                .contains("field `t` changes type from INT32 (v0) to INT64 (v1)"),
            "{e}"
        );
    }

    #[test]
    fn tagged_fields_from_the_overlay() {
        let v0 = block("Fetch Request (Version: 0) => a\n  a => INT32", &[]);
        let v1 = block(
            "Fetch Request (Version: 1) => a TAG_BUFFER\n  a => INT32",
            &[],
        );
        let facts = crate::overlay::parse(
            "o",
            "tagged Fetch request . 0+ tag=3 # test\n  cluster_id => COMPACT_NULLABLE_STRING\n",
        )
        .unwrap();
        let m = merge(&[v0, v1], &facts).unwrap();
        let f = &m.root().fields[1];
        assert_eq!(
            (f.name.as_str(), f.tag, f.versions),
            ("cluster_id", Some(3), 0b10)
        );
    }

    #[test]
    fn naming_rule_and_collisions() {
        assert_eq!(singular_camel("topics"), "Topic");
        assert_eq!(singular_camel("topic_data"), "TopicData");
        assert_eq!(singular_camel("entries"), "Entry");
        assert_eq!(singular_camel("aborted_transactions"), "AbortedTransaction");
        assert_eq!(singular_camel("addresses"), "Address");
        assert_eq!(singular_camel("status"), "Status");
        let v0 = block(
            "Fetch Request (Version: 0) => [topics] [groups]\n  topics => [partitions]\n    partitions => a\n      a => INT8\n  groups => [partitions]\n    partitions => b\n      b => INT8",
            &[],
        );
        let m = merge(&[v0], &[]).unwrap();
        let names: Vec<&str> = m.structs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "FetchRequest",
                "FetchRequestTopic",
                "FetchRequestTopicPartition",
                "FetchRequestGroup",
                "FetchRequestGroupPartition"
            ]
        );
    }
}
