//! The scraper against small hand-written pages and against the real Kafka
//! 3.9 page in ../shared (skipped with a reason when absent, outside CI).

mod pages;

use std::path::{Path, PathBuf};
use wipro_gen::spec::Spec;

const MAIN: &str = r##"<html><body>
<!--#include virtual="../includes/_header.htm" -->
<p>The protocol is built out of the following primitive types.</p>
<!--#include virtual="generated/types.html" -->
<table class="data-table"><tbody>
<tr><th>Error</th><th>Code</th><th>Retriable</th><th>Description</th></tr>
<tr><td>NONE</td><td>0</td><td>False</td><td></td></tr>
<tr><td>NOT_LEADER_OR_FOLLOWER</td><td>6</td><td>True</td><td>Not the
   leader.</td></tr>
</tbody></table>
<table class="data-table"><tbody>
<tr><th>Name</th><th>Key</th></tr>
<tr><td><a href="#The_Messages_Fetch">Fetch</a></td><td>1</td></tr>
</tbody></table>
<!--#include virtual="generated/messages.html" -->
</body></html>
"##;

const TYPES: &str = r##"<table class="data-table"><tbody>
<tr><th>Type</th><th>Description</th></tr>
<tr><td>INT8</td><td>Between -2<sup>7</sup> and 2<sup>7</sup>-1.</td></tr>
<tr><td>INT32</td><td>Four bytes.</td></tr>
</tbody></table>
"##;

/// An old-style page: no TAG_BUFFER anywhere, an array of primitives, and a
/// second API that is missing from the key table.
const MESSAGES: &str = r##"<h5>Headers:</h5>
<pre>Request Header v0 => request_api_key correlation_id 
  request_api_key => INT16
  correlation_id => INT32
</pre>
<table class="data-table"><tbody>
<tr><th>Field</th><th>Description</th></tr>
<tr><td>request_api_key</td><td>The API key.</td></tr>
<tr><td>correlation_id</td><td>The correlation ID.</td></tr>
</tbody></table>
<h5><a name="The_Messages_Fetch">Fetch API (Key: 1):</a></h5>
<b>Requests:</b><br>
<div><pre>Fetch Request (Version: 0) => replica_id [topics] 
  replica_id => INT32
  topics => topic [partitions] 
    topic => STRING
    partitions => INT32
</pre><table class="data-table"><tbody>
<tr><th>Field</th><th>Description</th></tr>
<tr><td>replica_id</td><td>The replica.</td></tr>
<tr><td>topics</td><td>The topics.</td></tr>
<tr><td>topic</td><td>The topic &amp; name.</td></tr>
<tr><td>partitions</td><td>The partitions.</td></tr>
</tbody></table>
</div>
<b>Responses:</b><br>
<div><pre>Fetch Response (Version: 0) => error_code 
  error_code => INT16
</pre><table class="data-table"><tbody>
<tr><th>Field</th><th>Description</th></tr>
<tr><td>error_code</td><td>The error.</td></tr>
</tbody></table>
</div>
<h5><a name="The_Messages_Hidden">Hidden API (Key: 99):</a></h5>
<b>Requests:</b><br>
<div><pre>Hidden Request (Version: 0) => 
</pre><table class="data-table"><tbody>
<tr><th>Field</th><th>Description</th></tr>
</tbody></table>
</div>
<b>Responses:</b><br>
<div><pre>Hidden Response (Version: 0) => 
</pre><table class="data-table"><tbody>
<tr><th>Field</th><th>Description</th></tr>
</tbody></table>
</div>
"##;

fn page(dir: &Path, messages: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("generated")).unwrap();
    std::fs::write(dir.join("protocol.html"), MAIN).unwrap();
    std::fs::write(dir.join("generated/types.html"), TYPES).unwrap();
    std::fs::write(dir.join("generated/messages.html"), messages).unwrap();
    dir.join("protocol.html")
}

fn scrape_err(messages: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let html = page(dir.path(), messages);
    wipro_gen::scrape::scrape(&html, "t")
        .unwrap_err()
        .to_string()
}

#[test]
fn old_style_page_with_includes() {
    let dir = tempfile::tempdir().unwrap();
    let html = page(dir.path(), MESSAGES);
    let spec = wipro_gen::scrape::scrape(&html, "t").unwrap();
    assert_eq!(
        spec.summary(),
        "apis=2 request_versions=2 response_versions=2 errors=2 types=2 headers=1"
    );
    assert_eq!(spec.types[0].doc, "Between -2^7 and 2^7-1.");
    assert_eq!(spec.errors[1].doc, "Not the leader.");
    assert!(spec.errors[1].retriable);
    assert_eq!(spec.api_keys, [("Fetch".to_string(), 1)]);
    let fetch = spec.api("Fetch").unwrap();
    assert_eq!(
        fetch.requests[0].bnf.lines(),
        [
            "Fetch Request (Version: 0) => replica_id [topics]",
            "  replica_id => INT32",
            "  topics => topic [partitions]",
            "    topic => STRING",
            "    partitions => INT32",
        ]
    );
    assert_eq!(
        fetch.requests[0].docs[2],
        ("topic".to_string(), "The topic & name.".to_string())
    );
    assert_eq!(spec.api("Hidden").unwrap().key, 99);
    // print/parse round trip on the scraped fixture
    let text = spec.print();
    assert_eq!(Spec::parse("x", &text).unwrap(), spec);
}

#[test]
fn run_scrape_writes_the_spec_and_keeps_it_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let html = page(&dir.path().join("page"), MESSAGES);
    let root = dir.path().join("ws");
    let summary = wipro_gen::run_scrape(&root, std::slice::from_ref(&html)).unwrap();
    assert!(summary.starts_with("apis=2 "));
    let written = std::fs::read_to_string(root.join(wipro_gen::SPEC_FILE)).unwrap();
    // a broken page fails and leaves the spec as it was
    std::fs::write(
        dir.path().join("page/generated/messages.html"),
        MESSAGES.replace("    partitions => INT32\n", ""),
    )
    .unwrap();
    let e = wipro_gen::run_scrape(&root, std::slice::from_ref(&html)).unwrap_err();
    assert!(e.contains("Fetch: v0:") && e.contains("no type"), "{e}");
    assert_eq!(
        std::fs::read_to_string(root.join(wipro_gen::SPEC_FILE)).unwrap(),
        written
    );
}

#[test]
fn unreadable_file() {
    let e = wipro_gen::scrape::scrape(Path::new("/nonexistent/protocol.html"), "t").unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot read /nonexistent/protocol.html"),
        "{e}"
    );
}

#[test]
fn missing_section() {
    let e = scrape_err("");
    assert!(
        e.contains("missing section: the request/response headers"),
        "{e}"
    );
    let no_responses = MESSAGES
        .split("<b>Responses:</b>")
        .next()
        .unwrap()
        .to_string();
    let e = scrape_err(&no_responses);
    assert!(
        e.contains("Fetch: ") && e.contains("missing section"),
        "{e}"
    );
}

#[test]
fn bnf_line_that_does_not_parse_names_file_api_version_line() {
    let e = scrape_err(&MESSAGES.replace("  replica_id => INT32\n", "  replica_id -> INT32\n"));
    assert!(
        e.contains("messages.html:14: Fetch: v0: definition has no `=>`"),
        "{e}"
    );
}

#[test]
fn field_with_no_type() {
    let e = scrape_err(&MESSAGES.replace("    topic => STRING\n", "    topic =>\n"));
    assert!(
        e.contains("Fetch: v0:") && e.contains("`topic` has no type"),
        "{e}"
    );
}

#[test]
fn description_table_not_matching_bnf() {
    let e = scrape_err(&MESSAGES.replace("<tr><td>topics</td><td>The topics.</td></tr>\n", ""));
    assert!(
        e.contains("messages.html:13: Fetch: v0: field description table does not match"),
        "{e}"
    );
}

fn shared_page() -> Option<PathBuf> {
    let p = wipro_gen::workspace_root().join("../shared/kafka-protocol/3.9/protocol.html");
    if p.is_file() {
        Some(p)
    } else if std::env::var_os("CI").is_some() {
        panic!("{} is missing in CI", p.display());
    } else {
        eprintln!(
            "skipped: {} not found (the Kafka 3.9 protocol page lives outside the repository)",
            p.display()
        );
        None
    }
}

#[test]
fn kafka_3_9_page_scrapes_alone() {
    let Some(html) = shared_page() else { return };
    let spec = wipro_gen::scrape::scrape(&html, &wipro_gen::source_label(&html)).unwrap();
    assert_eq!(
        spec.summary(),
        "apis=79 request_versions=305 response_versions=305 errors=129 types=21 headers=5"
    );
    let back = Spec::parse("3.9", &spec.print()).unwrap();
    assert!(back == spec, "the 3.9 page's spec does not read back");
}

/// The 4.0.1 and 4.4.0 pages `scripts/kafka-pages.sh` makes.
fn newer_pages() -> Option<Vec<PathBuf>> {
    pages::release_paths(&["4.0.1", "4.4.0"], "protocol.html")
}

#[test]
fn the_3_9_4_0_and_4_4_pages_merge_into_the_committed_spec() {
    let Some(html) = shared_page() else { return };
    let Some(newer) = newer_pages() else { return };
    let mut pages = vec![html];
    pages.extend(newer);
    let spec = wipro_gen::scrape_pages(&pages).unwrap();
    assert_eq!(
        spec.summary(),
        "apis=86 request_versions=348 response_versions=348 errors=138 types=29 headers=5"
    );
    let committed =
        std::fs::read_to_string(wipro_gen::workspace_root().join(wipro_gen::SPEC_FILE)).unwrap();
    assert!(
        spec.print() == committed,
        "merging the 3.9, 4.0 and 4.4 pages no longer gives spec/protocol.txt: rescrape and review the diff"
    );
}

#[test]
fn committed_spec_round_trips() {
    let committed =
        std::fs::read_to_string(wipro_gen::workspace_root().join(wipro_gen::SPEC_FILE)).unwrap();
    let spec = Spec::parse(wipro_gen::SPEC_FILE, &committed).unwrap();
    assert_eq!(spec.apis.len(), 86);
    assert!(
        spec.print() == committed,
        "print(parse(spec)) differs from the file"
    );
}
