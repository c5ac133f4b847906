//! The layering of kpax's modules, checked by reading the sources: no
//! import circle between kpax's top-level modules, and the three
//! user-facing parts (producer, consumer, admin) side by side, none
//! importing another; none in kpax-fake (model below handlers) or in
//! kpax-proto outside its generated code. A module's dependencies are the `crate::<module>`
//! paths in its non-comment, non-test code.
//!
//! The layers, lowest first: error, transaction, versions, properties,
//! metrics, topic_partition (ground floor); config; broker; cluster; producer, consumer,
//! admin; share and fanout (which use the parts below them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module -> the other top-level modules its code names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_str()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Code before the unit tests, without comments.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let deps = graph.entry(top.clone()).or_default();
            for line in code.lines() {
                let line = line.split("//").next().unwrap_or("");
                let mut rest = line;
                while let Some(i) = rest.find("crate::") {
                    rest = &rest[i + "crate::".len()..];
                    // `crate::{a, b::c}` names each
                    let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                        group
                            .split('}')
                            .next()
                            .unwrap_or("")
                            .split(',')
                            .map(|s| s.trim())
                            .collect()
                    } else {
                        vec![rest]
                    };
                    for n in names {
                        let m: String = n
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !m.is_empty() && m != top && m.chars().next().unwrap().is_lowercase() {
                            deps.insert(m);
                        }
                    }
                }
            }
        }
    }
    graph
}

/// Family -> the other families (siblings in `dir`) its code names, as
/// `super::<family>` or `crate::handlers::<family>`; `handle` stands for
/// the dispatcher itself.
fn family_graph(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read handlers") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let me = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let deps = graph.entry(me.clone()).or_default();
        for line in code.lines() {
            let line = line.split("//").next().unwrap_or("");
            for prefix in ["super::", "crate::handlers::"] {
                let mut rest = line;
                while let Some(i) = rest.find(prefix) {
                    rest = &rest[i + prefix.len()..];
                    let names: Vec<&str> = match rest.strip_prefix('{') {
                        Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
                        None => vec![rest],
                    };
                    for n in names {
                        let m: String = n
                            .trim()
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !m.is_empty() && m != me {
                            deps.insert(m);
                        }
                    }
                }
            }
        }
    }
    graph
}

/// Every cycle's members (strongly connected components larger than one).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for d in graph.get(&m).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in graph.keys() {
        if !reach(m).contains(m) || out.iter().any(|c| c.contains(m)) {
            continue;
        }
        let mine = reach(m);
        let cycle: Vec<String> = graph
            .keys()
            .filter(|o| *o == m || (mine.contains(*o) && reach(o).contains(m)))
            .cloned()
            .collect();
        out.push(cycle);
    }
    out
}

#[test]
fn kpax_modules_have_no_import_circle() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("kpax/src"));
    for must in [
        "broker", "cluster", "producer", "consumer", "admin", "error",
    ] {
        assert!(graph.contains_key(must), "no module {must}: {graph:?}");
    }
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "import circles: {found:?}\ngraph: {graph:#?}"
    );
    for (part, others) in [
        ("producer", ["consumer", "admin"]),
        ("consumer", ["producer", "admin"]),
        ("admin", ["producer", "consumer"]),
    ] {
        for o in others {
            assert!(
                !graph[part].contains(o),
                "{part} imports {o}: the user-facing parts stand side by side"
            );
        }
    }
    for ground in [
        "error",
        "transaction",
        "versions",
        "properties",
        "metrics",
        "topic_partition",
    ] {
        let deps = &graph[ground];
        let allowed: &[&str] = match ground {
            "error" => &["transaction"],
            "properties" => &["error"],
            _ => &[],
        };
        assert!(
            deps.iter().all(|d| allowed.contains(&d.as_str())),
            "{ground} is ground floor but imports {deps:?}"
        );
    }
}

#[test]
fn kpax_fake_and_kpax_proto_have_no_import_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fake = module_graph(&root.join("kpax-fake/src"));
    assert!(fake.contains_key("handlers") && fake.contains_key("context"));
    let found = cycles(&fake);
    assert!(
        found.is_empty(),
        "kpax-fake import circles: {found:?}\ngraph: {fake:#?}"
    );
    assert!(
        fake["context"].iter().all(|d| d == "state"),
        "kpax-fake's context stands on the model only: {:?}",
        fake["context"]
    );
    for model in [
        "state",
        "group",
        "consumer_group",
        "share_group",
        "transactions",
        "log",
    ] {
        for handler in ["handlers", "context", "server", "timers"] {
            assert!(
                !fake[model].contains(handler),
                "kpax-fake's model {model} imports {handler}, which stands above it"
            );
        }
    }
    // The handler families (`handlers/*.rs`) stand on the context and the
    // model; they may name each other (produce and fetch use txn's
    // coordinator checks) but never the dispatch in `handlers.rs`, and
    // form no circle.
    let families = family_graph(&root.join("kpax-fake/src/handlers"));
    for must in [
        "metadata", "topics", "produce", "fetch", "offsets", "groups", "txn", "admin",
    ] {
        assert!(
            families.contains_key(must),
            "no handler family {must}: {families:?}"
        );
    }
    for (family, deps) in &families {
        assert!(
            !deps.contains("handle"),
            "kpax-fake's handler family {family} calls the dispatcher"
        );
    }
    let found = cycles(&families);
    assert!(
        found.is_empty(),
        "kpax-fake handler family circles: {found:?}\ngraph: {families:#?}"
    );
    // Generated code and the Message trait it implements name each other;
    // everything else stands apart.
    let mut proto = module_graph(&root.join("kpax-proto/src"));
    proto.remove("generated");
    for deps in proto.values_mut() {
        deps.remove("generated");
    }
    let found = cycles(&proto);
    assert!(found.is_empty(), "kpax-proto import circles: {found:?}");
}

#[test]
fn the_checker_finds_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
}
