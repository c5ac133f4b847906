//! Tagged fields, checked against an independent source: Kafka's own message
//! schemas (`common/message/*.json` in the kafka-clients jar, which
//! `scripts/kafka-pages.sh` extracts beside each page). For every message and
//! every flexible version kpax-proto has, the tagged fields it types must be
//! exactly the schema's: none missing, none extra, the same tags, the same
//! types (array or not, which primitive, or a struct) and the same defaults.
//!
//! The protocol page does not document tagged fields before 4.2 and loses
//! array marks on them after, so the overlay carries them; this test is what
//! keeps the overlay honest.
//!
//! The schemas come from `$KPAX_PAGES` (default ~/.cache/kpax/kafka-protocol),
//! releases 4.4.0 and 3.9.2 (newest first: a version is checked against the
//! newest release whose schema has it). Outside CI a missing folder skips the
//! test with a printed reason; in CI (`CI` set) it fails.

mod pages;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use wipro_gen::model::{Base, Elem, FieldModel};

const RELEASES: [&str; 2] = ["4.4.0", "3.9.2"];

fn schema_dirs() -> Option<Vec<PathBuf>> {
    pages::release_paths(&RELEASES, "common/message")
}

/// Kafka's JSON with its `//` comment lines removed.
fn read_schema(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: String = text
        .lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `"0+"`, `"3-5"`, `"7"`, `"none"`.
fn in_versions(spec: Option<&Value>, v: i16) -> bool {
    let Some(s) = spec.and_then(Value::as_str) else {
        return false;
    };
    if s == "none" {
        return false;
    }
    if let Some(min) = s.strip_suffix('+') {
        return min.parse::<i16>().is_ok_and(|m| v >= m);
    }
    if let Some((a, b)) = s.split_once('-') {
        return a.parse::<i16>().is_ok_and(|a| v >= a) && b.parse::<i16>().is_ok_and(|b| v <= b);
    }
    s.parse::<i16>() == Ok(v)
}

/// Kafka's field name in the page's snake case (as its generator writes it).
fn snake(name: &str) -> String {
    let mut out = String::new();
    let mut prev_upper = true;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if !prev_upper {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_upper = true;
        } else {
            out.push(c);
            prev_upper = false;
        }
    }
    out
}

/// What a tagged field is, in comparable words: `[]` for an array, then the
/// primitive or `struct`; and its default.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    tag: u32,
    ty: String,
    default: String,
}

fn json_type(ty: &str) -> String {
    let (array, elem) = match ty.strip_prefix("[]") {
        Some(e) => ("[]", e),
        None => ("", ty),
    };
    let elem = match elem {
        "bool" => "bool",
        "int8" => "i8",
        "int16" => "i16",
        "int32" => "i32",
        "int64" => "i64",
        "uint16" => "u16",
        "uint32" => "u32",
        "float64" => "f64",
        "uuid" => "uuid",
        "string" => "str",
        "bytes" | "records" => "bytes",
        _ => "struct",
    };
    format!("{array}{elem}")
}

fn model_type(f: &FieldModel) -> String {
    let elem = match &f.elem {
        Elem::Struct(_) => "struct",
        Elem::Prim(b) => match b {
            Base::Bool => "bool",
            Base::I8 => "i8",
            Base::I16 => "i16",
            Base::I32 => "i32",
            Base::I64 => "i64",
            Base::U16 => "u16",
            Base::U32 => "u32",
            Base::F64 => "f64",
            Base::Uuid => "uuid",
            Base::Str => "str",
            Base::Bytes => "bytes",
            Base::Int32Array => "[]i32",
        },
    };
    format!("{}{elem}", if f.array { "[]" } else { "" })
}

/// A default in comparable form: numbers in decimal, the type's zero (and
/// null, and no default) as empty.
fn norm_default(d: &str) -> String {
    let d = d.trim();
    let n = if let Some(h) = d.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else {
        d.parse::<i64>().ok()
    };
    match (d, n) {
        (_, Some(0)) | ("", _) | ("false", _) | ("null", _) | ("0.0", _) => String::new(),
        (_, Some(n)) => n.to_string(),
        (d, None) => d.to_string(),
    }
}

/// The schema's tagged fields at version `v`: `(struct path, name) -> shape`.
fn schema_tagged(schema: &Value, v: i16) -> BTreeMap<(Vec<String>, String), Shape> {
    let common: BTreeMap<String, &Value> = schema
        .get("commonStructs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| Some((s.get("name")?.as_str()?.to_string(), s.get("fields")?)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    fn walk(
        fields: &Value,
        path: &mut Vec<String>,
        v: i16,
        common: &BTreeMap<String, &Value>,
        out: &mut BTreeMap<(Vec<String>, String), Shape>,
    ) {
        for f in fields.as_array().into_iter().flatten() {
            let name = snake(f["name"].as_str().unwrap_or_default());
            let ty = f["type"].as_str().unwrap_or_default();
            let tagged = in_versions(f.get("taggedVersions"), v);
            let present = in_versions(f.get("versions"), v) || tagged;
            if !present {
                continue;
            }
            if tagged {
                let default = match f.get("default") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Bool(b)) => b.to_string(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => String::new(),
                };
                out.insert(
                    (path.clone(), name.clone()),
                    Shape {
                        tag: f["tag"].as_u64().unwrap_or(u64::MAX) as u32,
                        ty: json_type(ty),
                        default: norm_default(&default),
                    },
                );
            }
            let sub = f
                .get("fields")
                .or_else(|| common.get(ty.trim_start_matches("[]")).copied());
            if let Some(sub) = sub {
                path.push(name);
                walk(sub, path, v, common, out);
                path.pop();
            }
        }
    }
    walk(&schema["fields"], &mut Vec::new(), v, &common, &mut out);
    out
}

/// A `(struct path, name)` key as `a.b.name`.
fn dotted(k: &(Vec<String>, String)) -> String {
    k.0.iter()
        .chain([&k.1])
        .cloned()
        .collect::<Vec<_>>()
        .join(".")
}

#[test]
fn every_tagged_field_matches_kafkas_message_schemas() {
    let Some(dirs) = schema_dirs() else {
        return;
    };
    let root = wipro_gen::workspace_root();
    let (_, apis) = wipro_gen::build_models(&root).unwrap();
    let mut problems = Vec::new();
    let mut checked = 0;
    for api in &apis {
        for (msg, suffix) in [(&api.request, "Request"), (&api.response, "Response")] {
            let file = format!("{}{suffix}.json", api.name);
            let schemas: Vec<Value> = dirs
                .iter()
                .map(|d| d.join(&file))
                .filter(|p| p.is_file())
                .map(|p| read_schema(&p))
                .collect();
            for v in msg.min..=msg.max {
                if msg.root().flexible & (1 << v) == 0 {
                    continue;
                }
                let Some(schema) = schemas
                    .iter()
                    .find(|s| in_versions(s.get("validVersions"), v))
                else {
                    problems.push(format!(
                        "{}{suffix} v{v}: no schema of {} has this version",
                        api.name,
                        RELEASES.join(" or ")
                    ));
                    continue;
                };
                let want = schema_tagged(schema, v);
                let mut got = BTreeMap::new();
                for s in &msg.structs {
                    if s.versions & (1 << v) == 0 {
                        continue;
                    }
                    for f in &s.fields {
                        if let Some(tag) = f.tag.filter(|_| f.versions & (1 << v) != 0) {
                            got.insert(
                                (s.path.clone(), f.name.clone()),
                                Shape {
                                    tag,
                                    ty: model_type(f),
                                    default: norm_default(f.default.as_deref().unwrap_or("")),
                                },
                            );
                        }
                    }
                }
                checked += 1;
                for (k, w) in &want {
                    let at = dotted(k);
                    match got.get(k) {
                        None => problems.push(format!(
                            "{}{suffix} v{v}: tagged `{at}` {w:?} missing",
                            api.name
                        )),
                        Some(g) if g != w => problems.push(format!(
                            "{}{suffix} v{v}: tagged `{at}`: kpax {g:?}, Kafka {w:?}",
                            api.name
                        )),
                        Some(_) => {}
                    }
                }
                for k in got.keys().filter(|k| !want.contains_key(*k)) {
                    let at = dotted(k);
                    problems.push(format!(
                        "{}{suffix} v{v}: tagged `{at}` is not in Kafka's schema",
                        api.name
                    ));
                }
            }
        }
    }
    eprintln!("checked the tagged fields of {checked} flexible message versions");
    assert!(
        checked > 100,
        "only {checked} flexible message versions checked"
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
