//! Several releases' pages as one spec: `wipro-gen scrape --html A --html B`.
//!
//! Kafka 4.0 removed old versions from its page (KIP-896) while older
//! brokers still speak them, so a client's protocol is the union of pages.
//! Each message's versions are the union of the pages' versions. Where two
//! pages describe the same version they must agree on its wire form, field
//! by field (names, order, types, arrays); where they do, the block of the
//! page that states more is kept: a 4.2+ page states nullability and tagged
//! fields, which older pages leave to the overlay. The tables (types,
//! errors, API keys) are merged by name or code; a later page's descriptions
//! win, and a name given two codes is an error.

use crate::bnf::{Bnf, FieldType, Item};
use crate::spec::{Api, Block, Direction, Spec};

/// Merges `pages` (in the order given; later ones are newer) into one spec.
///
/// # Errors
/// A message naming API, direction, version and field where two pages
/// disagree on a version, or the error or API whose code differs.
pub fn merge(pages: Vec<Spec>) -> Result<Spec, String> {
    // Versions some page calls unstable (4.0+ pages say so of early-access
    // APIs, such as the share groups' v0 that 3.9 carried and 4.x changed):
    // their blocks may differ between pages, and the newest page's is kept.
    let unstable: Vec<(String, i16)> = pages
        .iter()
        .flat_map(|p| &p.notes)
        .filter(|n| n.contains("is unstable."))
        .filter_map(|n| {
            let title = n.split(": the page says").next()?;
            crate::spec::parse_message_title(title).map(|(a, _, v)| (a.to_string(), v))
        })
        .collect();
    let mut it = pages.into_iter();
    let Some(mut out) = it.next() else {
        return Err("no page to merge".into());
    };
    let first_source = out.source.clone();
    out.notes = out
        .notes
        .iter()
        .map(|n| format!("{first_source}: {n}"))
        .collect();
    for page in it {
        out.source = format!("{} + {}", out.source, page.source);
        for n in &page.notes {
            out.notes.push(format!("{}: {n}", page.source));
        }
        for t in page.types {
            match out.types.iter_mut().find(|x| x.name == t.name) {
                Some(x) if !t.doc.is_empty() => x.doc = t.doc,
                Some(_) => {}
                None => out.types.push(t),
            }
        }
        for e in page.errors {
            if let Some(x) = out
                .errors
                .iter()
                .find(|x| x.name == e.name && x.code != e.code)
            {
                return Err(format!(
                    "error {} has code {} on one page and {} on {}",
                    e.name, x.code, e.code, page.source
                ));
            }
            match out.errors.iter_mut().find(|x| x.code == e.code) {
                Some(x) => *x = e,
                None => out.errors.push(e),
            }
        }
        out.errors.sort_by_key(|e| e.code);
        // An API the newer page names differently under the same key is
        // renamed (KIP-1142 made ListClientMetricsResources ListConfigResources).
        for (name, key) in &page.api_keys {
            let Some(i) = out.api_keys.iter().position(|(n, k)| k == key && n != name) else {
                continue;
            };
            let old = out.api_keys[i].0.clone();
            out.notes.push(format!(
                "API key {key} is {old} on the older page and {name} on {}: the newer name is used",
                page.source
            ));
            out.api_keys[i].0 = name.clone();
            if let Some(a) = out.apis.iter_mut().find(|a| a.name == old) {
                a.name = name.clone();
                for b in a.requests.iter_mut().chain(a.responses.iter_mut()) {
                    if let Some(rest) = b.bnf.title.strip_prefix(old.as_str()) {
                        b.bnf.title = format!("{name}{rest}");
                    }
                }
            }
        }
        for (name, key) in page.api_keys {
            match out.api_keys.iter().find(|(n, _)| *n == name) {
                Some((_, k)) if *k != key => {
                    return Err(format!(
                        "API {name} has key {k} on one page and {key} on {}",
                        page.source
                    ))
                }
                Some(_) => {}
                None => out.api_keys.push((name, key)),
            }
        }
        out.api_keys.sort_by_key(|(_, k)| *k);
        merge_blocks(
            &mut out.headers,
            page.headers,
            "header",
            |b| b.header_title(),
            &mut out.notes,
            &[],
        )?;
        for a in page.apis {
            match out.apis.iter_mut().find(|x| x.name == a.name) {
                Some(x) if x.key != a.key => {
                    return Err(format!(
                        "API {} has key {} on one page and {} on {}",
                        a.name, x.key, a.key, page.source
                    ))
                }
                Some(x) => merge_api(x, a, &mut out.notes, &unstable)?,
                None => out.apis.push(a),
            }
        }
        out.apis.sort_by_key(|a| a.key);
    }
    Ok(out)
}

fn merge_api(
    into: &mut Api,
    from: Api,
    notes: &mut Vec<String>,
    unstable: &[(String, i16)],
) -> Result<(), String> {
    let title = |b: &Block| b.message_title().map(|(_, d, v)| (d, v));
    let unstable: Vec<i16> = unstable
        .iter()
        .filter(|(a, _)| *a == into.name)
        .map(|(_, v)| *v)
        .collect();
    let name = into.name.clone();
    merge_blocks(
        &mut into.requests,
        from.requests,
        &name,
        title,
        notes,
        &unstable,
    )?;
    merge_blocks(
        &mut into.responses,
        from.responses,
        &name,
        title,
        notes,
        &unstable,
    )
}

/// Adds `from`'s blocks to `into`: new versions join, the same version must
/// agree and the richer block is kept; the result is in version order.
fn merge_blocks(
    into: &mut Vec<Block>,
    from: Vec<Block>,
    what: &str,
    key: impl Fn(&Block) -> Option<(Direction, i16)>,
    notes: &mut Vec<String>,
    unstable: &[i16],
) -> Result<(), String> {
    for b in from {
        let k = key(&b);
        let (dir, v) = k.unwrap_or((Direction::Request, -1));
        // A field the newer page renames is renamed in every version the
        // older page gives (one message, one name), and said in a note.
        for _ in 0..64 {
            let Some(x) = into.iter().find(|x| key(x) == k) else {
                break;
            };
            match difference(&x.bnf.plain(), &b.bnf.plain()) {
                Some(Diff::Rename { parent, old, new }) => {
                    notes.push(format!(
                        "{what} {}: `{}` is named `{new}` from v{v} on the newer page; that name is used in every version",
                        dir.as_str(),
                        parent.iter().chain([&old]).cloned().collect::<Vec<_>>().join(".")
                    ));
                    for y in into.iter_mut() {
                        rename(y, &parent, &old, &new);
                    }
                }
                Some(Diff::Other(diff)) if unstable.contains(&v) => {
                    notes.push(format!(
                        "{what} {} v{v}: a page calls this version unstable and the newer page changes it ({diff}): the newer page's is kept",
                        dir.as_str()
                    ));
                    if let Some(x) = into.iter_mut().find(|x| key(x) == k) {
                        *x = b.clone();
                    }
                    break;
                }
                Some(Diff::Other(diff)) => {
                    return Err(format!(
                        "{what} {} v{v}: the pages disagree: {diff}",
                        dir.as_str()
                    ))
                }
                None => break,
            }
        }
        match into.iter_mut().find(|x| key(x) == k) {
            Some(x) => {
                if states_more(&b.bnf, &x.bnf) {
                    // Keep the descriptions that cover more fields.
                    let docs = if b.docs.len() >= x.docs.len() {
                        b.docs.clone()
                    } else {
                        x.docs.clone()
                    };
                    *x = Block { bnf: b.bnf, docs };
                } else if b.docs.len() >= x.docs.len() && x.bnf == b.bnf {
                    x.docs = b.docs;
                }
            }
            None => into.push(b),
        }
    }
    into.sort_by_key(&key);
    Ok(())
}

/// Whether `a` states something `b` does not (a nullability mark, a tagged
/// field, a more precise records token).
fn states_more(a: &Bnf, b: &Bnf) -> bool {
    a != b && a.plain() == b.plain() && marks(&a.items) > marks(&b.items)
}

fn marks(items: &[Item]) -> usize {
    items
        .iter()
        .map(|i| match i {
            Item::TagBuffer => 0,
            Item::Field(f) => {
                usize::from(f.nullable)
                    + usize::from(f.tag.is_some())
                    + match &f.ty {
                        FieldType::Struct(sub) => marks(sub),
                        FieldType::Primitive(t) => usize::from(t.contains("NULLABLE_RECORDS")),
                    }
            }
        })
        .sum()
}

/// How two pages' blocks of one version differ.
#[derive(Debug)]
enum Diff {
    /// The same wire form under a new name (Kafka renames fields now and
    /// then, e.g. TxnOffsetCommit's `generation_id` became
    /// `generation_id_or_member_epoch` with KIP-848).
    Rename {
        parent: Vec<String>,
        old: String,
        new: String,
    },
    /// Anything else, in words.
    Other(String),
}

/// Renames a field in a block (BNF and description rows).
fn rename(block: &mut Block, parent: &[String], old: &str, new: &str) {
    fn walk(items: &mut [Item], parent: &[String], old: &str, new: &str) {
        for item in items {
            if let Item::Field(f) = item {
                match parent.split_first() {
                    None if f.name == old => f.name = new.to_string(),
                    Some((head, rest)) if f.name == *head => {
                        if let FieldType::Struct(sub) = &mut f.ty {
                            walk(sub, rest, old, new);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    walk(&mut block.bnf.items, parent, old, new);
    for (name, _) in &mut block.docs {
        if name == old {
            *name = new.to_string();
        }
    }
}

/// Whether two sequences have the same wire form, whatever their names.
fn same_shape(a: &[Item], b: &[Item]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Item::TagBuffer, Item::TagBuffer) => true,
            (Item::Field(x), Item::Field(y)) => {
                x.array == y.array
                    && match (&x.ty, &y.ty) {
                        (FieldType::Primitive(s), FieldType::Primitive(t)) => s == t,
                        (FieldType::Struct(s), FieldType::Struct(t)) => same_shape(s, t),
                        _ => false,
                    }
            }
            _ => false,
        })
}

/// The first difference between two BNFs' field trees.
fn difference(a: &Bnf, b: &Bnf) -> Option<Diff> {
    fn walk(a: &[Item], b: &[Item], path: &mut Vec<String>) -> Option<Diff> {
        for k in 0..a.len().max(b.len()) {
            let at = |p: &Vec<String>, n: &str| {
                let mut p = p.clone();
                p.push(n.to_string());
                p.join(".")
            };
            match (a.get(k), b.get(k)) {
                (Some(Item::TagBuffer), Some(Item::TagBuffer)) => {}
                (Some(Item::Field(x)), Some(Item::Field(y))) => {
                    if x.name != y.name {
                        let same_wire = x.array == y.array
                            && match (&x.ty, &y.ty) {
                                (FieldType::Primitive(s), FieldType::Primitive(t)) => s == t,
                                (FieldType::Struct(s), FieldType::Struct(t)) => same_shape(s, t),
                                _ => false,
                            };
                        if same_wire {
                            return Some(Diff::Rename {
                                parent: path.clone(),
                                old: x.name.clone(),
                                new: y.name.clone(),
                            });
                        }
                        return Some(Diff::Other(format!(
                            "field `{}` on one, `{}` on the other",
                            at(path, &x.name),
                            at(path, &y.name)
                        )));
                    }
                    if x.array != y.array {
                        return Some(Diff::Other(format!(
                            "`{}` is an array on one page only",
                            at(path, &x.name)
                        )));
                    }
                    match (&x.ty, &y.ty) {
                        (FieldType::Primitive(s), FieldType::Primitive(t)) if s != t => {
                            return Some(Diff::Other(format!(
                                "`{}` is {s} on one, {t} on the other",
                                at(path, &x.name)
                            )))
                        }
                        (FieldType::Struct(s), FieldType::Struct(t)) => {
                            path.push(x.name.clone());
                            let d = walk(s, t, path);
                            path.pop();
                            if d.is_some() {
                                return d;
                            }
                        }
                        (FieldType::Primitive(_), FieldType::Primitive(_)) => {}
                        _ => {
                            return Some(Diff::Other(format!(
                                "`{}` is a struct on one page and a primitive on the other",
                                at(path, &x.name)
                            )))
                        }
                    }
                }
                (x, y) => {
                    let name = |i: Option<&Item>| match i {
                        Some(Item::Field(f)) => format!("`{}`", at(path, &f.name)),
                        Some(Item::TagBuffer) => "the tag section".to_string(),
                        None => "nothing".to_string(),
                    };
                    return Some(Diff::Other(format!(
                        "{} on one, {} on the other",
                        name(x),
                        name(y)
                    )));
                }
            }
        }
        None
    }
    walk(&a.items, &b.items, &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Spec {
        Spec::parse("t", text).unwrap()
    }

    const OLD: &str = "source old\ntype INT32 | old doc\nerror 0 NONE fatal |\napi_key 12 Heartbeat\n\
api 12 Heartbeat\n\n\
Heartbeat Request (Version: 0) => group_id\n  group_id => STRING\n  | group_id: The group.\n\n\
Heartbeat Request (Version: 1) => group_id\n  group_id => STRING\n  | group_id: The group.\n\n\
Heartbeat Response (Version: 0) => error_code\n  error_code => INT16\n  | error_code: The error.\n\n\
Heartbeat Response (Version: 1) => error_code\n  error_code => INT16\n  | error_code: The error.\n";

    const NEW: &str = "source new\ntype INT32 | new doc\nerror 0 NONE fatal |\nerror 1 X fatal |\napi_key 12 Heartbeat\n\
api 12 Heartbeat\n\n\
Heartbeat Request (Version: 1) => group_id\n  group_id => STRING\n  | group_id: The group id.\n\n\
Heartbeat Request (Version: 2) => group_id ?[topics] TAG_BUFFER\n  group_id => COMPACT_STRING\n  topics => COMPACT_STRING\n  | group_id: The group id.\n\n\
Heartbeat Response (Version: 1) => error_code\n  error_code => INT16\n  | error_code: The error.\n\n\
Heartbeat Response (Version: 2) => error_code TAG_BUFFER\n  error_code => INT16\n  | error_code: The error.\n";

    #[test]
    fn versions_are_the_union_and_tables_merge() {
        let m = merge(vec![spec(OLD), spec(NEW)]).unwrap();
        assert_eq!(m.source, "old + new");
        let hb = &m.apis[0];
        let versions: Vec<i16> = hb
            .requests
            .iter()
            .filter_map(|b| b.message_title())
            .map(|t| t.2)
            .collect();
        assert_eq!(versions, [0, 1, 2]);
        assert_eq!(hb.responses.len(), 3);
        assert_eq!(m.types[0].doc, "new doc");
        assert_eq!(m.errors.len(), 2);
        // The same version, agreeing: the newer page's descriptions.
        assert_eq!(hb.requests[1].docs[0].1, "The group id.");
        // The printed merge reads back.
        assert_eq!(Spec::parse("m", &m.print()).unwrap(), m);
    }

    #[test]
    fn pages_that_disagree_on_a_version_are_an_error_naming_it() {
        let bad = NEW.replace(
            "Heartbeat Request (Version: 1) => group_id\n  group_id => STRING",
            "Heartbeat Request (Version: 1) => group_id\n  group_id => NULLABLE_STRING",
        );
        let e = merge(vec![spec(OLD), spec(&bad)]).unwrap_err();
        assert!(
            e.contains("Heartbeat Request v1")
                && e.contains("`group_id` is STRING on one, NULLABLE_STRING"),
            "{e}"
        );
        let bad = NEW.replace("error 1 X fatal |", "error 1 NONE fatal |");
        assert!(merge(vec![spec(OLD), spec(&bad)])
            .unwrap_err()
            .contains("error NONE has code 0"));
        let bad = NEW.replace("api_key 12 Heartbeat", "api_key 13 Heartbeat");
        assert!(merge(vec![spec(OLD), spec(&bad)])
            .unwrap_err()
            .contains("key 12"));
    }

    #[test]
    fn the_block_that_states_more_is_kept() {
        let richer = NEW.replace(
            "Heartbeat Request (Version: 1) => group_id\n  group_id => STRING",
            "Heartbeat Request (Version: 1) => group_id ?[topics]\n  group_id => STRING\n  topics => STRING",
        );
        let plain = NEW.replace(
            "Heartbeat Request (Version: 1) => group_id\n  group_id => STRING",
            "Heartbeat Request (Version: 1) => group_id [topics]\n  group_id => STRING\n  topics => STRING",
        );
        for (a, b) in [(&plain, &richer), (&richer, &plain)] {
            let m = merge(vec![spec(a), spec(b)]).unwrap();
            let Item::Field(f) = &m.apis[0].requests[0].bnf.items[1] else {
                panic!()
            };
            assert!(f.nullable, "{a} + {b}");
        }
    }
}
