//! The `kpax` binary run as a subprocess against real brokers: the
//! in-process fake cluster (kpax-fake) always, Apache Kafka (`KPAX_KAFKA`) for the
//! admin flow when it is there (a failure under CI when it is not), and
//! bad input of every kind.

#[path = "../../tests/harness/mod.rs"]
mod harness;

use kpax_fake::{FakeCluster, FakeOptions, VersionTable};
use serde_json::Value;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

/// Longest any one run of the binary may take in these tests.
const RUN_BOUND: Duration = Duration::from_secs(30);

/// Runs `kpax args` (with `stdin` fed in, if any) within [`RUN_BOUND`];
/// `KPAX_BROKERS` is never inherited.
async fn kpax(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kpax"));
    cmd.args(args)
        .env_remove("KPAX_BROKERS")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("start kpax");
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        w.write_all(input.as_bytes()).await.expect("write stdin");
        drop(w);
    }
    tokio::time::timeout(RUN_BOUND, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kpax {args:?} ran longer than {RUN_BOUND:?}"))
        .expect("kpax output")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: exit {:?}\nstderr: {}\nstdout: {}",
        o.status.code(),
        stderr(o),
        stdout(o)
    );
    stdout(o)
}

/// Asserts a failure reported as one line `kpax: error: ...` with exit
/// code 1, and returns that line.
fn one_line_error(o: &Output, what: &str) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{what}: expected exit 1\nstderr: {err}\nstdout: {}",
        stdout(o)
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: stderr is not one line: {err}");
    assert!(lines[0].starts_with("kpax: error: "), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    lines[0].to_string()
}

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

async fn fake(brokers: usize) -> FakeCluster {
    FakeCluster::new(brokers)
        .await
        .expect("start the fake cluster")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_consume_round_trips_on_the_fake() {
    let fc = fake(3).await;
    fc.create_topic("rt", 3).unwrap();
    let b = fc.bootstrap();
    let input: String = (0..30).map(|i| format!("k{i}:v{i}\n")).collect();
    let out = ok(
        &kpax(&["produce", "-b", &b, "rt", "-K", ":"], Some(&input)).await,
        "produce",
    );
    let acks: Vec<&str> = out.lines().collect();
    assert_eq!(acks.len(), 30, "{out}");
    assert!(
        acks.iter().all(|l| l.starts_with("rt-") && l.contains('@')),
        "{out}"
    );
    let hw: i64 = (0..3).map(|p| fc.high_watermark("rt", p).unwrap()).sum();
    assert_eq!(hw, 30);

    let out = ok(
        &kpax(&["consume", "-b", &b, "rt", "--format", "json"], None).await,
        "consume json",
    );
    let recs = json_lines(&out);
    assert_eq!(recs.len(), 30, "{out}");
    let mut got: Vec<(String, String)> = recs
        .iter()
        .map(|r| {
            assert_eq!(r["topic"], "rt");
            (
                r["key"].as_str().unwrap().to_string(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = (0..30)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    want.sort();
    assert_eq!(got, want);

    let out = ok(
        &kpax(&["consume", "-b", &b, "rt", "--count-only"], None).await,
        "count",
    );
    assert_eq!(out.trim(), "30 records");
    let out = ok(
        &kpax(
            &["consume", "-b", &b, "rt", "-n", "4", "-f", "kv", "-K", "="],
            None,
        )
        .await,
        "count 4",
    );
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(
        out.lines().all(|l| l.starts_with('k') && l.contains("=v")),
        "{out}"
    );

    let out = ok(
        &kpax(&["tail", "-b", &b, "rt", "-n", "2"], None).await,
        "tail",
    );
    assert_eq!(out.lines().count(), 6, "two per partition: {out}");

    // --partition, and produce's --count
    let out = ok(
        &kpax(
            &["produce", "-b", &b, "rt", "-p", "1", "--count", "x", "y"],
            None,
        )
        .await,
        "produce to a partition",
    );
    assert_eq!(out.trim(), "produced 2 records to rt");
    let out = ok(
        &kpax(&["consume", "-b", &b, "rt", "-p", "1", "-o", "-2"], None).await,
        "consume the last two of partition 1",
    );
    assert_eq!(out, "x\ny\n");

    let out = ok(
        &kpax(&["produce", "-b", &b, "rt", "-p", "2", "--json", "j"], None).await,
        "produce --json",
    );
    let acks = json_lines(&out);
    assert_eq!(acks.len(), 1, "{out}");
    assert_eq!(acks[0]["partition"], 2);
    assert_eq!(
        acks[0]["offset"].as_i64(),
        Some(fc.high_watermark("rt", 2).unwrap() - 1)
    );
}

/// The fields of a `consume -f json` line that a copy must keep.
fn copied_fields(r: &Value) -> Value {
    let mut r = r.clone();
    let o = r.as_object_mut().unwrap();
    o.remove("topic");
    o.remove("offset");
    r
}

/// Produces records of every shape from JSON lines to `src`, copies `src`
/// to `dst` through `consume -f json | produce -f json --keep-partition`,
/// and checks the copy equals the original in every field but the offset;
/// both topics have 3 partitions.
async fn json_copy_is_byte_for_byte(b: &str, src: &str, dst: &str) {
    // binary key, value and header; a null value; a null header value;
    // explicit timestamps and partitions; a plain string line
    let input = concat!(
        r#"{"partition":2,"timestamp":1600000000123,"key":"AP8=","key_base64":true,"value":"/w==","value_base64":true,"headers":[{"key":"bin","value":"AP8B","value_base64":true},{"key":"n","value":null}]}"#,
        "\n",
        r#"{"partition":0,"timestamp":1600000000456,"key":"tomb","value":null}"#,
        "\n",
        r#"{"partition":1,"key":"k","value":"é ünïcode","headers":[{"key":"h","value":"v"}]}"#,
        "\n",
        r#""just a value""#,
        "\n",
    );
    ok(
        &kpax(
            &["produce", "-b", b, src, "-f", "json", "--keep-partition"],
            Some(input),
        )
        .await,
        "produce json",
    );
    let src_out = ok(
        &kpax(&["consume", "-b", b, src, "-f", "json"], None).await,
        "consume src",
    );
    let src_recs = json_lines(&src_out);
    assert_eq!(src_recs.len(), 4, "{src_out}");
    let first = src_recs.iter().find(|r| r["partition"] == 2).unwrap();
    assert_eq!(first["timestamp"], 1600000000123i64, "{first}");
    assert_eq!(first["key"], "AP8=");
    assert_eq!(first["key_base64"], true);
    assert_eq!(first["headers"][0]["value"], "AP8B");
    assert_eq!(first["headers"][1]["value"], Value::Null);
    let tomb = src_recs.iter().find(|r| r["key"] == "tomb").unwrap();
    assert_eq!(tomb["value"], Value::Null, "null stays null: {tomb}");

    // the copy: consume's output as produce's input
    ok(
        &kpax(
            &["produce", "-b", b, dst, "-f", "json", "--keep-partition"],
            Some(&src_out),
        )
        .await,
        "produce the copy",
    );
    let dst_out = ok(
        &kpax(&["consume", "-b", b, dst, "-f", "json"], None).await,
        "consume dst",
    );
    let sorted = |s: &str| {
        let mut v: Vec<String> = json_lines(s)
            .iter()
            .map(|r| copied_fields(r).to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&dst_out), sorted(&src_out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_feeds_json_input_byte_for_byte() {
    let fc = fake(1).await;
    fc.create_topic("src", 3).unwrap();
    fc.create_topic("dst", 3).unwrap();
    let b = fc.bootstrap();
    json_copy_is_byte_for_byte(&b, "src", "dst").await;

    // -Z: empty keys and values are nulls
    ok(
        &kpax(
            &["produce", "-b", &b, "dst", "-p", "0", "-K", ":", "-Z"],
            Some(":\nk:\n"),
        )
        .await,
        "produce -Z",
    );
    let out = ok(
        &kpax(
            &[
                "consume", "-b", &b, "dst", "-p", "0", "-o", "-2", "-f", "json",
            ],
            None,
        )
        .await,
        "consume the tombstones",
    );
    let recs = json_lines(&out);
    assert_eq!(recs.len(), 2, "{out}");
    assert_eq!(
        (&recs[0]["key"], &recs[0]["value"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        (&recs[1]["key"], &recs[1]["value"]),
        (&Value::from("k"), &Value::Null)
    );

    // bad JSON input: one line saying which record and why, nothing sent
    let before = fc.high_watermark("dst", 1).unwrap();
    let o = kpax(
        &["produce", "-b", &b, "dst", "-f", "json"],
        Some("{\"vlaue\":\"x\"}\n"),
    )
    .await;
    let e = one_line_error(&o, "a typo in a JSON field");
    assert!(
        e.contains("record 1: unknown record field \"vlaue\""),
        "{e}"
    );
    let o = kpax(
        &["produce", "-b", &b, "dst", "-f", "json", "--keep-partition"],
        Some("{\"partition\":9,\"value\":\"x\"}\n"),
    )
    .await;
    let e = one_line_error(&o, "a partition the topic lacks");
    assert!(e.contains("no partition 9"), "{e}");
    assert_eq!(fc.high_watermark("dst", 1).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_protocol_traces_every_request_on_stderr() {
    let fc = fake(1).await;
    fc.create_topic("traced", 1).unwrap();
    let b = fc.bootstrap();
    let o = kpax(
        &["-d", "protocol", "produce", "-b", &b, "traced", "x"],
        None,
    )
    .await;
    ok(&o, "produce -d protocol");
    let err = stderr(&o);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("kpax::protocol"))
        .collect();
    for api in ["ApiVersions", "Metadata", "InitProducerId", "Produce"] {
        assert!(
            lines.iter().any(|l| l.contains(&format!("api={api} "))
                && l.contains("latency_us=")
                && l.contains("response_bytes=")),
            "no traced {api} exchange in:\n{err}"
        );
    }
    assert!(
        !err.contains('\u{1b}'),
        "no colours when stderr is not a terminal: {err}"
    );
    // silent without the flags; -v shows more than -d protocol alone
    let o = kpax(&["produce", "-b", &b, "traced", "y"], None).await;
    ok(&o, "produce");
    assert_eq!(stderr(&o), "");
    let o = kpax(&["produce", "-vv", "-b", &b, "traced", "z"], None).await;
    ok(&o, "produce -vv");
    assert!(stderr(&o).contains("kpax::broker"), "{}", stderr(&o));
    // an unknown context is a usage error
    let o = kpax(&["-d", "protocl", "meta", "-b", &b], None).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("-d protocl: unknown context"),
        "{}",
        stderr(&o)
    );
}

/// kcat's habits: format strings, the offset grammar (+N, @TIME), -c,
/// -e, and a header filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_speaks_kcat() {
    let fc = fake(1).await;
    fc.create_topic("kc", 1).unwrap();
    let b = fc.bootstrap();
    let input = concat!(
        r#"{"timestamp":1000,"key":"a","value":"one","headers":[{"key":"type","value":"x"}]}"#,
        "\n",
        r#"{"timestamp":2000,"key":"b","value":"two","headers":[{"key":"type","value":"y"}]}"#,
        "\n",
        r#"{"timestamp":3000,"key":"c","value":"three","headers":[{"key":"type","value":"x"},{"key":"bin","value":"/w==","value_base64":true}]}"#,
        "\n",
        r#"{"timestamp":4000,"value":"four"}"#,
        "\n",
    );
    ok(
        &kpax(&["produce", "-b", &b, "kc", "-f", "json"], Some(input)).await,
        "produce",
    );
    let consume = |extra: &[&str]| {
        let mut args = vec!["consume", "-b", b.as_str(), "kc"];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ok(&kpax(&args, None).await, &format!("consume {args:?}"))
        }
    };
    assert_eq!(
        consume(&["-f", "%t %p %o %T %k=%s %K %S [%h]\\n"]).await,
        "kc 0 0 1000 a=one 1 3 [type=x]\nkc 0 1 2000 b=two 1 3 [type=y]\n\
         kc 0 2 3000 c=three 1 5 [type=x,bin=\u{fffd}]\nkc 0 3 4000 =four -1 4 []\n"
    );
    assert_eq!(
        consume(&["-o", "+2", "-f", "%o %xh\\n", "-e"]).await,
        "2 type=78,bin=ff\n3 \n"
    );
    assert_eq!(
        consume(&["-o", "@2500", "-c", "1", "-f", "%s\\n"]).await,
        "three\n"
    );
    assert_eq!(consume(&["-o", "-1", "-f", "%bs\\n"]).await, "Zm91cg==\n");
    assert_eq!(
        consume(&["--filter-header", "type=x"]).await,
        "one\nthree\n"
    );
    assert_eq!(
        consume(&[
            "--filter-header",
            "type",
            "--filter-header",
            "bin",
            "-f",
            "%k\\n"
        ])
        .await,
        "c\n"
    );
    assert_eq!(
        consume(&["--filter-header", "type=x", "-c", "1"]).await,
        "one\n"
    );
    for (args, want) in [
        (&["-f", "%q"][..], "unknown token %q"),
        (&["-o", "+x"][..], "expected beginning, end"),
        (
            &["--filter-header", "=v"][..],
            "expected NAME or NAME=VALUE",
        ),
    ] {
        let mut all = vec!["consume", "-b", b.as_str(), "kc"];
        all.extend_from_slice(args);
        let o = kpax(&all, None).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_reads_a_time_range() {
    let fc = fake(1).await;
    fc.create_topic("times", 1).unwrap();
    let b = fc.bootstrap();
    ok(
        &kpax(&["produce", "-b", &b, "times", "early1", "early2"], None).await,
        "early",
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let middle = now_ms().to_string();
    tokio::time::sleep(Duration::from_millis(50)).await;
    ok(
        &kpax(&["produce", "-b", &b, "times", "late1"], None).await,
        "late",
    );
    let out = ok(
        &kpax(&["consume", "-b", &b, "times", "--from", &middle], None).await,
        "from",
    );
    assert_eq!(out, "late1\n");
    let out = ok(
        &kpax(&["consume", "-b", &b, "times", "--to", &middle], None).await,
        "to",
    );
    assert_eq!(out, "early1\nearly2\n");
    let out = ok(
        &kpax(
            &["consume", "-b", &b, "times", "--from", "-1h", "--to", "now"],
            None,
        )
        .await,
        "relative",
    );
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_shows_the_topic_as_a_table_and_as_json() {
    let fc = fake(3).await;
    fc.create_topic("shown", 4).unwrap();
    let b = fc.bootstrap();
    let out = ok(&kpax(&["meta", "-b", &b], None).await, "meta");
    assert!(
        out.contains("TOPIC  PARTITION  LEADER  REPLICAS  ISR"),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("shown ")).count(),
        4,
        "{out}"
    );

    let out = ok(
        &kpax(&["topics", "-b", &b, "--json", "shown"], None).await,
        "meta json",
    );
    let v: Value = serde_json::from_str(&out).expect("meta --json parses");
    assert_eq!(v["brokers"].as_array().unwrap().len(), 3);
    let topics = v["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0]["name"], "shown");
    let parts = topics[0]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 4);
    for p in parts {
        let leader = p["leader"].as_i64().unwrap();
        assert_eq!(
            Some(leader as i32),
            fc.leader("shown", p["partition"].as_i64().unwrap() as i32)
        );
    }

    let line = one_line_error(&kpax(&["meta", "-b", &b, "nosuch"], None).await, "unknown");
    assert!(line.contains("\"nosuch\""), "{line}");
}

/// `consume --group-protocol consumer` joins with the consumer group
/// protocol (KIP-848) and commits what it read; a second run resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_with_the_consumer_group_protocol() {
    let fc = fake(1).await;
    fc.create_topic("cp", 2).unwrap();
    let b = fc.bootstrap();
    let values: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let mut args = vec!["produce", "-b", &b, "cp", "--count"];
    args.extend(values.iter().map(String::as_str));
    ok(&kpax(&args, None).await, "produce");
    let consume = [
        "consume",
        "-b",
        &b,
        "cp",
        "-g",
        "g2",
        "--group-protocol",
        "consumer",
    ];
    let mut with_stats = consume.to_vec();
    with_stats.extend(["--stats", "--stats-every", "10ms"]);
    let o = kpax(&with_stats, None).await;
    let out = ok(&o, "consume, consumer protocol");
    let stats = stderr(&o);
    for want in [
        "records consumed  10\n",
        "records fetched   10\n",
        "commits           1 (0 failed",
        "lag               0 (cp-0: 0, cp-1: 0)\n",
    ] {
        assert!(stats.contains(want), "{want:?} not in --stats:\n{stats}");
    }
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    let mut want: Vec<&str> = values.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(got, want);
    let committed: i64 = (0..2)
        .filter_map(|p| fc.committed("g2", "cp", p).map(|c| c.offset))
        .sum();
    assert_eq!(committed, 10, "both partitions committed to their ends");
    assert!(
        fc.request_count(kpax::proto::generated::ApiKey::ConsumerGroupHeartbeat) > 0
            && fc.request_count(kpax::proto::generated::ApiKey::JoinGroup) == 0,
        "used the consumer protocol"
    );
    let out = ok(&kpax(&consume, None).await, "resume");
    assert_eq!(out, "", "nothing left after the committed offsets");
    let out = ok(
        &kpax(&["group", "list", "-b", &b, "--json"], None).await,
        "group list",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let g2 = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "g2")
        .unwrap_or_else(|| panic!("g2 listed: {out}"))
        .clone();
    assert_eq!(g2["protocol_type"], "consumer", "{out}");
    assert_eq!(g2["state"], "Empty", "every member left: {out}");
    let o = kpax(
        &["consume", "-b", &b, "cp", "--group-protocol", "consumer"],
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("--group"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_and_rollback_move_a_groups_committed_offsets() {
    let fc = fake(1).await;
    fc.create_topic("og", 1).unwrap();
    let b = fc.bootstrap();
    let values: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let mut args = vec!["produce", "-b", &b, "og", "--count"];
    args.extend(values.iter().map(String::as_str));
    ok(&kpax(&args, None).await, "produce");

    let out = ok(
        &kpax(&["consume", "-b", &b, "og", "-g", "g1"], None).await,
        "consume as a group member",
    );
    assert_eq!(out.lines().count(), 10, "{out}");
    assert_eq!(fc.committed("g1", "og", 0).map(|c| c.offset), Some(10));

    let out = ok(
        &kpax(&["offset", "-b", &b, "g1", "og", "--json"], None).await,
        "offset",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["partitions"][0]["committed"], 10);
    assert_eq!(v["partitions"][0]["end"], 10);
    assert_eq!(v["total_lag"], 0);

    let out = ok(
        &kpax(&["rollback", "-b", &b, "g1", "og", "--to", "-1h"], None).await,
        "rollback",
    );
    assert!(out.contains("og     0          10      0"), "{out}");
    assert_eq!(fc.committed("g1", "og", 0).map(|c| c.offset), Some(0));
    let out = ok(
        &kpax(&["offset", "-b", &b, "g1", "og"], None).await,
        "offset after",
    );
    assert!(out.contains("group g1: total lag 10"), "{out}");

    // A dry run commits nothing; forward to now is the end.
    ok(
        &kpax(
            &["rollback", "-b", &b, "g1", "og", "--to", "now", "--dry-run"],
            None,
        )
        .await,
        "dry run",
    );
    assert_eq!(fc.committed("g1", "og", 0).map(|c| c.offset), Some(0));
    ok(
        &kpax(&["rollback", "-b", &b, "g1", "og", "--to", "now"], None).await,
        "to now",
    );
    assert_eq!(fc.committed("g1", "og", 0).map(|c| c.offset), Some(10));

    // The group member resumes from the committed offset: nothing left.
    let out = ok(
        &kpax(&["consume", "-b", &b, "og", "-g", "g1"], None).await,
        "resume",
    );
    assert_eq!(out, "");

    let out = ok(
        &kpax(&["group", "list", "-b", &b, "--json"], None).await,
        "group list",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == "g1"),
        "{out}"
    );
    ok(
        &kpax(&["group", "describe", "-b", &b, "g1"], None).await,
        "describe",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_create_describe_delete_on_the_fake() {
    let fc = fake(3).await;
    let b = fc.bootstrap();
    let out = ok(
        &kpax(&["topic", "create", "-b", &b, "made", "-p", "5"], None).await,
        "create",
    );
    assert_eq!(out.trim(), "created topic made");
    assert_eq!(fc.high_watermark("made", 4), Some(0));
    let out = ok(
        &kpax(&["topic", "describe", "-b", &b, "made", "--json"], None).await,
        "describe",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["partitions"].as_array().unwrap().len(), 5);
    let line = one_line_error(
        &kpax(&["topic", "create", "-b", &b, "made"], None).await,
        "create twice",
    );
    assert!(line.contains("TOPIC_ALREADY_EXISTS"), "{line}");
    ok(
        &kpax(&["topic", "delete", "-b", &b, "made"], None).await,
        "delete",
    );
    assert_eq!(fc.high_watermark("made", 0), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_explains_features_by_the_versions_offered() {
    let fc = fake(1).await;
    let out = ok(
        &kpax(&["versions", "-b", &fc.bootstrap()], None).await,
        "versions",
    );
    assert!(out.contains("idempotence on (Produce v"), "{out}");
    // The fake serves transactions, fetch sessions and share groups, not
    // the share-group offset APIs.
    assert!(out.contains("transactions on ("), "{out}");
    assert!(
        out.contains("fetch sessions (KIP-227) on (Fetch v"),
        "{out}"
    );
    assert!(out.contains("share groups (KIP-932) on ("), "{out}");
    assert!(
        out.contains("share-group offsets off: broker 1 does not offer DescribeShareGroupOffsets"),
        "{out}"
    );
    let old = FakeCluster::with_options(FakeOptions {
        brokers: 1,
        versions: VersionTable::kafka_0_10(),
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    let out = ok(
        &kpax(&["versions", "-b", &old.bootstrap()], None).await,
        "0.10",
    );
    assert!(
        out.contains("idempotence off: broker 1 offers Produce v2, needs v3"),
        "{out}"
    );
    assert!(
        out.contains("zstd off: broker 1 offers Produce v2, needs v7"),
        "{out}"
    );
    assert!(
        out.contains("fetch sessions (KIP-227) off: broker 1 offers Fetch v"),
        "{out}"
    );
    let out = ok(
        &kpax(&["versions", "-b", &old.bootstrap(), "--json"], None).await,
        "json",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let produce = v["brokers"][0]["apis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["api"] == "Produce")
        .unwrap()
        .clone();
    assert_eq!(produce["uses"], 2);
}

/// Relays one connection to `upstream`, keeping what each side sent.
async fn relay(listener: TcpListener, upstream: String) -> (Vec<u8>, Vec<u8>) {
    let (client, _) = listener.accept().await.unwrap();
    let server = TcpStream::connect(upstream).await.unwrap();
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = cr.read(&mut buf).await {
            if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    });
    let down = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = sr.read(&mut buf).await {
            if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    });
    (up.await.unwrap(), down.await.unwrap())
}

/// Splits a byte stream into size-prefixed frames (prefix kept).
fn frames(mut s: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while s.len() >= 4 {
        let n = i32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize;
        if s.len() < 4 + n {
            break;
        }
        out.push(s[..4 + n].to_vec());
        s = &s[4 + n..];
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decode_prints_frames_captured_from_a_real_exchange() {
    let fc = fake(1).await;
    fc.create_topic("seen", 2).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let via = listener.local_addr().unwrap().to_string();
    let capture = tokio::spawn(relay(listener, fc.bootstrap()));
    ok(
        &kpax(&["meta", "-b", &via, "seen"], None).await,
        "meta through the relay",
    );
    let (sent, received) = tokio::time::timeout(Duration::from_secs(10), capture)
        .await
        .expect("the relay ends when kpax exits")
        .unwrap();
    let requests = frames(&sent);
    let responses = frames(&received);
    // The bootstrap connection's Metadata exchange (the brokers; later
    // requests go to the brokers it names, not through the relay).
    let (metadata, response) = requests
        .iter()
        .filter(|f| i16::from_be_bytes([f[4], f[5]]) == 3)
        .find_map(|req| {
            let resp = responses.iter().find(|f| f[4..8] == req[8..12])?;
            Some((req, resp))
        })
        .expect("a Metadata request and its response went through the relay");
    let version = i16::from_be_bytes([metadata[6], metadata[7]]);

    // A request describes itself; with or without the size prefix.
    for frame in [&metadata[..], &metadata[4..]] {
        let out = ok(
            &kpax(&["decode", &hex(frame)], None).await,
            "decode request",
        );
        assert!(
            out.starts_with(&format!("request Metadata v{version}")),
            "{out}"
        );
        assert!(out.contains("MetadataRequest"), "{out}");
        assert!(out.contains("allow_auto_topic_creation"), "{out}");
    }

    // Its response, from stdin, needs the API and version.
    let out = ok(
        &kpax(
            &[
                "decode",
                "--api",
                "metadata",
                "--version",
                &version.to_string(),
            ],
            Some(&hex(response)),
        )
        .await,
        "decode response",
    );
    assert!(
        out.starts_with(&format!("response Metadata v{version}")),
        "{out}"
    );
    let port = fc.broker_addr(1).unwrap().port();
    assert!(out.contains("\"kpax-fake\""), "the cluster id: {out}");
    assert!(out.contains(&format!("port: {port},")), "the broker: {out}");

    // Cut short, it is a one-line error.
    let cut = &metadata[..metadata.len() - 2];
    let line = one_line_error(&kpax(&["decode", &hex(cut)], None).await, "truncated");
    assert!(line.contains("truncated"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_one_line_and_a_nonzero_exit_within_bounded_time() {
    let fc = fake(1).await;
    fc.create_topic("here", 1).unwrap();
    let b = fc.bootstrap();

    let t0 = Instant::now();
    let line = one_line_error(
        &kpax(&["meta", "-b", "127.0.0.1:1", "--timeout", "5s"], None).await,
        "unreachable",
    );
    assert!(line.contains("127.0.0.1:1"), "{line}");
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let line = one_line_error(
        &kpax(
            &["consume", "-b", "127.0.0.1:1", "x", "--timeout", "2s"],
            None,
        )
        .await,
        "unreachable consume",
    );
    assert!(
        line.contains("127.0.0.1:1") || line.contains("no answer"),
        "{line}"
    );

    for args in [
        vec!["consume", "-b", &b, "nosuch"],
        vec!["produce", "-b", &b, "nosuch", "v"],
        vec!["tail", "-b", &b, "nosuch"],
    ] {
        let line = one_line_error(&kpax(&args, None).await, "unknown topic");
        assert!(line.contains("nosuch"), "{args:?}: {line}");
    }
    let line = one_line_error(
        &kpax(&["produce", "-b", &b, "here", "-p", "7", "v"], None).await,
        "unknown partition",
    );
    assert!(line.contains("no partition 7"), "{line}");

    for (hexed, want) in [
        ("zz", "not a hex digit"),
        ("abc", "odd"),
        ("ffff000000", ""),
    ] {
        let line = one_line_error(&kpax(&["decode", hexed], None).await, "bad hex");
        assert!(line.contains(want), "{hexed}: {line}");
    }

    // Malformed flags: clap's usage error, exit code 2.
    for args in [
        vec!["consume", "-b", &b, "here", "--count", "lots"],
        vec!["consume", "-b", &b, "here", "--offset", "banana"],
        vec!["consume", "-b", &b, "here", "--from", "yesterday"],
        vec!["produce", "-b", &b, "here", "--acks", "2", "v"],
        vec!["meta", "-b", "no-port"],
        vec!["meta", "--timeout", "forever", "-b", &b],
        vec!["frobnicate"],
        vec!["decode", "--api", "Nope", "--version", "1", "00"],
    ] {
        let o = kpax(&args, None).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("error"), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }

    let o = kpax(&["meta"], None).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no brokers"), "{}", stderr(&o));

    let dir = std::env::temp_dir().join(harness::unique_name("cfg"));
    std::fs::write(
        &dir,
        format!("bootstrap.servers={b}\nsasl.jaas.config=PLAIN\n"),
    )
    .unwrap();
    let line = one_line_error(
        &kpax(&["meta", "--config", dir.to_str().unwrap()], None).await,
        "unknown config key",
    );
    assert!(
        line.contains("line 2") && line.contains("sasl.jaas.config"),
        "{line}"
    );
    // The producer's and consumer's keys are checked before connecting
    // (nothing listens on port 1), naming where the bad value was given.
    for (args, want) in [
        (
            vec![
                "produce",
                "-b",
                "127.0.0.1:1",
                "t",
                "-X",
                "linger.ms=soon",
                "v",
            ],
            "-X line 1: linger.ms: expected a whole number",
        ),
        (
            vec![
                "produce",
                "-b",
                "127.0.0.1:1",
                "t",
                "-X",
                "acks=1",
                "-X",
                "transactional.id=x",
                "v",
            ],
            "transactional.id: needs acks=all",
        ),
        (
            vec![
                "consume",
                "-b",
                "127.0.0.1:1",
                "t",
                "-X",
                "isolation.level=maybe",
            ],
            "-X line 1: isolation.level: expected read_uncommitted or read_committed",
        ),
    ] {
        let t0 = Instant::now();
        let line = one_line_error(&kpax(&args, None).await, "bad client setting");
        assert!(line.contains(want), "{args:?}: {line}");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{args:?} tried to connect"
        );
    }
    std::fs::write(&dir, format!("bootstrap.servers={b}\nclient.id=cfg-test\n")).unwrap();
    let out = ok(
        &kpax(&["meta", "--config", dir.to_str().unwrap(), "here"], None).await,
        "config file",
    );
    assert!(out.contains("here"), "{out}");

    // A file's producer settings reach the producer: acks=0 means no
    // offsets come back; --acks overrides the file.
    std::fs::write(
        &dir,
        format!("bootstrap.servers={b}\nacks=0\nlinger.ms=1\ncompression.type=gzip\n"),
    )
    .unwrap();
    let cfg = dir.to_str().unwrap();
    let out = ok(
        &kpax(&["produce", "--config", cfg, "here", "a", "b"], None).await,
        "produce with acks=0 from the file",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["here-0@-1", "here-0@-1"],
        "{out}"
    );
    let out = ok(
        &kpax(
            &["produce", "--config", cfg, "--acks", "all", "here", "c"],
            None,
        )
        .await,
        "produce with --acks all over the file",
    );
    assert!(
        out.trim().starts_with("here-0@") && !out.contains("@-1"),
        "{out}"
    );
    let out = ok(
        &kpax(
            &[
                "consume",
                "--config",
                cfg,
                "-X",
                "isolation.level=read_committed",
                "here",
            ],
            None,
        )
        .await,
        "consume with the file's settings",
    );
    let mut values: Vec<&str> = out.lines().collect();
    values.sort_unstable();
    assert_eq!(values, ["a", "b", "c"], "{out}");
    let _ = std::fs::remove_file(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_meta_versions_on_librdkafkas_mock() {
    let cluster = harness::Cluster::mock(3);
    let topic = cluster.topic(2).await;
    let b = cluster.bootstrap().to_string();
    let out = ok(
        &kpax(
            &[
                "produce",
                "-b",
                &b,
                &topic.name,
                "-K",
                ":",
                "a:1",
                "b:2",
                "c:3",
            ],
            None,
        )
        .await,
        "produce",
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    let out = ok(
        &kpax(
            &["consume", "-b", &b, &topic.name, "-f", "kv", "-K", ":"],
            None,
        )
        .await,
        "consume",
    );
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    assert_eq!(got, ["a:1", "b:2", "c:3"]);
    let out = ok(
        &kpax(&["meta", "-b", &b, "--json", &topic.name], None).await,
        "meta",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["brokers"].as_array().unwrap().len(), 3);
    assert_eq!(v["topics"][0]["partitions"].as_array().unwrap().len(), 2);
    let out = ok(&kpax(&["versions", "-b", &b], None).await, "versions");
    assert_eq!(out.matches("features:").count(), 3, "{out}");
    // The mock has no CreateTopics: a one-line error, not a hang.
    let line = one_line_error(
        &kpax(
            &["topic", "create", "-b", &b, "x", "--timeout", "10s"],
            None,
        )
        .await,
        "create on the mock",
    );
    assert!(line.contains("CreateTopics"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_group_flow_on_kafka() {
    let Some(cluster) = harness::Cluster::kafka() else {
        return;
    };
    let b = cluster.bootstrap().to_string();
    let topic = harness::unique_name("cli");
    let group = harness::unique_name("cli-group");
    let out = ok(
        &kpax(&["topic", "create", "-b", &b, &topic, "-p", "1"], None).await,
        "create",
    );
    assert_eq!(out.trim(), format!("created topic {topic}"));
    let out = ok(
        &kpax(&["meta", "-b", &b, "--json", &topic], None).await,
        "meta",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["topics"][0]["partitions"].as_array().unwrap().len(), 1);

    // One record per run.
    for i in 0..3 {
        let v = format!("k{i}:v{i}");
        ok(
            &kpax(&["produce", "-b", &b, &topic, "-K", ":", &v], None).await,
            "produce",
        );
    }
    let o = kpax(
        &[
            "consume", "-b", &b, &topic, "-g", &group, "-f", "json", "--stats",
        ],
        None,
    )
    .await;
    let out = ok(&o, "consume as a group member");
    let recs = json_lines(&out);
    assert_eq!(recs.len(), 3, "{out}");
    assert_eq!(recs[0]["key"], "k0");
    let stats = stderr(&o);
    for want in [
        "records consumed  3\n",
        "records fetched   3\n",
        "rebalances        1\n",
        "commits           1 (0 failed",
        &format!("lag               0 ({topic}-0: 0)\n"),
    ] {
        assert!(stats.contains(want), "{want:?} not in --stats:\n{stats}");
    }

    let out = ok(
        &kpax(&["offset", "-b", &b, &group, &topic, "--json"], None).await,
        "offset",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["partitions"][0]["committed"], 3, "{out}");

    let out = ok(
        &kpax(
            &[
                "rollback", "-b", &b, &group, &topic, "--to", "-1h", "--json",
            ],
            None,
        )
        .await,
        "rollback",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let after = v["topics"][0]["partitions"][0]["after"].as_i64().unwrap();
    assert!(after < 3, "{out}");
    let out = ok(
        &kpax(&["offset", "-b", &b, &group, &topic, "--json"], None).await,
        "offset",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["partitions"][0]["committed"].as_i64(),
        Some(after),
        "{out}"
    );

    // group seek: back to the end, then to offset 1, only with --execute
    let out = ok(
        &kpax(
            &[
                "group",
                "seek",
                "-b",
                &b,
                &group,
                "--to",
                "end",
                "--execute",
                "--json",
            ],
            None,
        )
        .await,
        "seek to end",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["topics"][0]["partitions"][0]["after"], 3, "{out}");
    let out = ok(
        &kpax(&["group", "seek", "-b", &b, &group, "--offset", "1"], None).await,
        "seek dry run",
    );
    assert!(out.contains("dry run"), "{out}");
    ok(
        &kpax(
            &[
                "group",
                "seek",
                "-b",
                &b,
                &group,
                "-t",
                &topic,
                "--offset",
                "1",
                "--execute",
            ],
            None,
        )
        .await,
        "seek to 1",
    );
    let out = ok(
        &kpax(&["offset", "-b", &b, &group, &topic, "--json"], None).await,
        "offset after seek",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["partitions"][0]["committed"], 1, "{out}");
    let out = ok(
        &kpax(&["group", "describe", "-b", &b, &group], None).await,
        "describe",
    );
    assert!(out.contains(&format!("group {group}: state")), "{out}");
    ok(
        &kpax(&["topic", "describe", "-b", &b, &topic], None).await,
        "topic describe",
    );
    ok(&kpax(&["versions", "-b", &b], None).await, "versions");
    ok(
        &kpax(&["topic", "delete", "-b", &b, &topic], None).await,
        "delete",
    );
    let line = one_line_error(&meta_of_deleted(&b, &topic).await, "deleted");
    assert!(line.contains(&topic), "{line}");
}

/// `kpax meta -b b topic` for a topic just deleted, once it fails (within
/// 20 s): Kafka deletes a topic asynchronously, and a broker's metadata may
/// still show it for a moment after DeleteTopics returned.
async fn meta_of_deleted(b: &str, topic: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = kpax(&["meta", "-b", b, topic], None).await;
        if !o.status.success() || Instant::now() > deadline {
            return o;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// On Apache Kafka: `kpax demo --brokers` (its own topic, every record
/// read back once, the topic deleted afterwards) and the lossless JSON
/// copy (`consume -f json | produce -f json`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_and_json_copy_on_kafka() {
    let Some(cluster) = harness::Cluster::kafka() else {
        return;
    };
    let b = cluster.bootstrap().to_string();
    let out = ok(
        &kpax(&["demo", "20000", "64", "--brokers", &b], None).await,
        "demo on Kafka",
    );
    assert!(out.contains("produced 20000 records of 64 B"), "{out}");
    assert!(out.contains("every record read back exactly once"), "{out}");
    assert!(
        !out.contains("rode through"),
        "no fault on a real cluster: {out}"
    );
    let topic = out
        .split_whitespace()
        .find(|w| w.starts_with("kpax-demo-"))
        .unwrap_or_else(|| panic!("no demo topic named: {out}"));
    let line = one_line_error(&meta_of_deleted(&b, topic).await, "demo topic deleted");
    assert!(line.contains(topic), "{line}");

    let src = harness::unique_name("cli-json-src");
    let dst = harness::unique_name("cli-json-dst");
    ok(
        &kpax(&["topic", "create", "-b", &b, &src, &dst, "-p", "3"], None).await,
        "create",
    );
    json_copy_is_byte_for_byte(&b, &src, &dst).await;
}

/// On Apache Kafka: consume by offset (N and -N) and by time (real
/// ListOffsets by timestamp), tail, `versions` with the client's own caps,
/// and produce/consume over SASL_SSL (SCRAM-SHA-512) and mutual TLS with
/// the CLI's security flags; a wrong password is a one-line authentication
/// error that does not show the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_by_offset_and_time_tail_versions_and_security_on_kafka() {
    let Some(cluster) = harness::Cluster::kafka() else {
        return;
    };
    let b = cluster.bootstrap().to_string();
    let topic = harness::unique_name("cli-time");
    ok(
        &kpax(&["topic", "create", "-b", &b, &topic, "-p", "2"], None).await,
        "create",
    );
    ok(
        &kpax(
            &["produce", "-b", &b, &topic, "-p", "0", "e0", "e1", "e2"],
            None,
        )
        .await,
        "early records",
    );
    // Kafka stamps CreateTime from the client: leave a clear gap around
    // `middle` so that clock granularity cannot blur the boundary.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let middle = now_ms().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ok(
        &kpax(&["produce", "-b", &b, &topic, "-p", "0", "l0", "l1"], None).await,
        "late records",
    );
    ok(
        &kpax(&["produce", "-b", &b, &topic, "-p", "1", "other"], None).await,
        "partition 1",
    );

    let consume = |extra: &'static [&'static str]| {
        let mut args = vec!["consume", "-b", b.as_str(), topic.as_str(), "-p", "0"];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| async move {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        kpax(&a, None).await
    };
    assert_eq!(
        ok(&run(consume(&["--offset", "3"])).await, "offset 3"),
        "l0\nl1\n"
    );
    assert_eq!(
        ok(&run(consume(&["--offset", "-1"])).await, "offset -1"),
        "l1\n"
    );
    assert_eq!(
        ok(
            &run(consume(&["--offset", "1", "-n", "2"])).await,
            "offset 1, 2 records"
        ),
        "e1\ne2\n"
    );
    let mut from = consume(&[]);
    from.extend(["--from".to_string(), middle.clone()]);
    assert_eq!(ok(&run(from).await, "from the middle"), "l0\nl1\n");
    let mut to = consume(&[]);
    to.extend(["--to".to_string(), middle.clone()]);
    assert_eq!(ok(&run(to).await, "up to the middle"), "e0\ne1\ne2\n");
    // Every partition, an hour back to now: all six.
    let out = ok(
        &kpax(
            &[
                "consume",
                "-b",
                &b,
                &topic,
                "--from",
                "-1h",
                "--to",
                "now",
                "--count-only",
            ],
            None,
        )
        .await,
        "count the last hour",
    );
    assert_eq!(out.trim(), "6 records", "{out}");

    let out = ok(
        &kpax(&["tail", "-b", &b, &topic, "-n", "2", "-f", "json"], None).await,
        "tail",
    );
    let mut tail: Vec<(i64, i64, String)> = json_lines(&out)
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    tail.sort();
    assert_eq!(
        tail,
        [
            (0, 3, "l0".to_string()),
            (0, 4, "l1".to_string()),
            (1, 0, "other".to_string())
        ]
    );

    // versions: every broker, and Fetch used at the client's cap (v12,
    // topics by name) though Kafka 4.x offers more.
    let out = ok(
        &kpax(&["versions", "-b", &b, "--json"], None).await,
        "versions",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let brokers = v["brokers"].as_array().unwrap();
    assert_eq!(
        brokers.len(),
        cluster.broker_count().unwrap() as usize,
        "{out}"
    );
    for broker in brokers {
        let fetch = broker["apis"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["api"] == "Fetch")
            .expect("Fetch offered");
        assert!(fetch["broker"][1].as_i64().unwrap() > 12, "{fetch}");
        assert_eq!(fetch["uses"], 12, "{fetch}");
        assert_eq!(fetch["client_cap"], 12, "{fetch}");
        let produce = broker["apis"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["api"] == "Produce")
            .unwrap();
        // The highest version both sides know, within kpax's own cap
        // (Produce v12+ is transactions v2 and topic ids, not implemented).
        let common = produce["broker"][1]
            .as_i64()
            .unwrap()
            .min(produce["kpax"][1].as_i64().unwrap())
            .min(produce["client_cap"].as_i64().unwrap_or(i64::MAX));
        assert_eq!(produce["client_cap"], 11, "{produce}");
        assert_eq!(produce["uses"].as_i64(), Some(common), "{produce}");
    }
    let table = ok(&kpax(&["versions", "-b", &b], None).await, "versions table");
    assert!(table.contains("Fetch at most v12"), "{table}");

    // The CLI's security flags against Kafka's own listeners.
    let nodes = cluster.kafka_nodes().expect("a bundled cluster").clone();
    let ca = nodes.ca().display().to_string();
    let sasl_ssl = nodes.bootstrap(harness::Listener::SaslSsl);
    let (user, password) = nodes.scram_user();
    let secure = |cmd: &str, pw: &str, tail: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kpax"));
        c.args([
            cmd,
            "-b",
            &sasl_ssl,
            "--tls-ca",
            &ca,
            "--sasl-mechanism",
            "SCRAM-SHA-512",
            "--sasl-username",
            &user,
            "--timeout",
            "15s",
        ])
        .args(tail)
        .env_remove("KPAX_BROKERS")
        .env("KPAX_SASL_PASSWORD", pw)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        c
    };
    let run_cmd = |mut c: Command| async move {
        tokio::time::timeout(RUN_BOUND, c.output())
            .await
            .expect("in time")
            .expect("kpax output")
    };
    ok(
        &run_cmd(secure("produce", &password, &[&topic, "-p", "1", "sasl"])).await,
        "produce over SASL_SSL",
    );
    let out = ok(
        &run_cmd(secure(
            "consume",
            &password,
            &[&topic, "-p", "1", "--offset", "-1"],
        ))
        .await,
        "consume over SASL_SSL",
    );
    assert_eq!(out, "sasl\n");
    let wrong = "not-the-password-2024";
    let o = run_cmd(secure("meta", wrong, &[])).await;
    let line = one_line_error(&o, "wrong password");
    assert!(line.to_lowercase().contains("authentication"), "{line}");
    assert!(!stderr(&o).contains(wrong) && !stdout(&o).contains(wrong));

    let (cert, key) = nodes.client_cert();
    let ssl = nodes.bootstrap(harness::Listener::Ssl);
    let out = ok(
        &kpax(
            &[
                "consume",
                "-b",
                &ssl,
                "--tls-ca",
                &ca,
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
                &topic,
                "-p",
                "1",
            ],
            None,
        )
        .await,
        "consume over mutual TLS",
    );
    assert_eq!(out, "other\nsasl\n");
    ok(
        &kpax(&["topic", "delete", "-b", &b, &topic], None).await,
        "delete",
    );
}

/// `kpax share consume` on Kafka 4.x: released records come back with a
/// higher delivery count, accepted ones do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_consume_releases_and_accepts_on_kafka() {
    let Some(cluster) = harness::Cluster::kafka() else {
        return;
    };
    let b = cluster.bootstrap().to_string();
    let topic = harness::unique_name("cli-share");
    let group = harness::unique_name("cli-share-group");
    ok(
        &kpax(&["topic", "create", "-b", &b, &topic, "-p", "1"], None).await,
        "create",
    );
    ok(
        &kpax(&["produce", "-b", &b, &topic, "s0", "s1", "s2"], None).await,
        "produce",
    );
    let share = |ack: &'static str| {
        let (b, topic, group) = (b.clone(), topic.clone(), group.clone());
        async move {
            kpax(
                &[
                    "share",
                    "consume",
                    "-b",
                    &b,
                    &group,
                    &topic,
                    "--reset",
                    "earliest",
                    "-n",
                    "3",
                    "--ack",
                    ack,
                    "--delivery-count",
                ],
                None,
            )
            .await
        }
    };
    let first = ok(&share("release").await, "share consume --ack release");
    assert_eq!(first, "1\ts0\n1\ts1\n1\ts2\n", "{first}");
    let second = ok(&share("accept").await, "share consume --ack accept");
    assert_eq!(second, "2\ts0\n2\ts1\n2\ts2\n", "{second}");
    let none = kpax(
        &[
            "share", "consume", "-b", &b, &group, &topic, "-n", "1", "--idle", "3s",
        ],
        None,
    )
    .await;
    let line = one_line_error(&none, "nothing left in the share group");
    assert!(line.contains("no record from share group"), "{line}");
    // The members left: the group is empty; an unknown group is an error.
    let described = ok(
        &kpax(&["share", "describe", "-b", &b, &group], None).await,
        "share describe",
    );
    assert!(
        described.starts_with(&format!("share group {group}: state Empty")),
        "{described}"
    );
    // Start offsets: all three accepted (no lag); a dry run only shows;
    // --execute moves the start back to 0 and the records come again, each
    // a first time.
    let offsets = ok(
        &kpax(&["share", "offsets", "-b", &b, &group, "--json"], None).await,
        "share offsets",
    );
    let v: Value = serde_json::from_str(&offsets).expect("json");
    assert_eq!(v["partitions"][0]["partition"], 0, "{offsets}");
    assert_eq!(v["partitions"][0]["lag"], 0, "{offsets}");
    let dry = ok(
        &kpax(
            &[
                "share", "reset", "-b", &b, &group, &topic, "--to", "earliest",
            ],
            None,
        )
        .await,
        "share reset (dry run)",
    );
    assert!(dry.contains("dry run"), "{dry}");
    let set = ok(
        &kpax(
            &[
                "share",
                "reset",
                "-b",
                &b,
                &group,
                &topic,
                "--to",
                "earliest",
                "--execute",
            ],
            None,
        )
        .await,
        "share reset --execute",
    );
    assert!(set.contains("start offsets set"), "{set}");
    let third = ok(&share("accept").await, "share consume after the reset");
    assert_eq!(third, "1\ts0\n1\ts1\n1\ts2\n", "{third}");
    let deleted = ok(
        &kpax(
            &[
                "share",
                "delete-offsets",
                "-b",
                &b,
                &group,
                "--topic",
                &topic,
            ],
            None,
        )
        .await,
        "share delete-offsets",
    );
    assert!(deleted.contains("deleted the state"), "{deleted}");
    let missing = format!("{group}-missing");
    let unknown = kpax(&["share", "describe", "-b", &b, &missing], None).await;
    let line = one_line_error(&unknown, "describe an unknown share group");
    assert!(line.contains("GROUP_ID_NOT_FOUND"), "{line}");
    let bad = kpax(
        &[
            "share", "consume", "-b", &b, &group, &topic, "--reset", "sometime",
        ],
        None,
    )
    .await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

/// A share-group member that is SIGSTOPped while it holds records (a
/// `kpax share consume` process blocked on a full stdout pipe, then
/// stopped) loses them when the acquisition lock expires: between what the
/// stopped member printed and what a second member gets, every record is
/// there; what the second member gets from the stopped one's hold comes
/// delivered again, after the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigstopped_share_member_loses_its_records_when_the_lock_expires() {
    use kpax::producer::{Producer, ProducerConfig, ProducerRecord};
    use kpax::share::{AcknowledgeType, ShareConsumer, ShareConsumerConfig};
    use std::collections::{BTreeMap, BTreeSet};
    let Some(cluster) = harness::Cluster::kafka() else {
        return;
    };
    const N: usize = 40;
    let b = cluster.bootstrap().to_string();
    let topic = cluster.topic(1).await;
    let group = cluster.group_id();
    cluster
        .set_group_configs(
            &group,
            &[
                ("share.auto.offset.reset", "earliest"),
                ("share.record.lock.duration.ms", "15000"),
            ],
        )
        .await;
    // 40 records of 8 KiB: five times what a pipe holds.
    let producer = Producer::new(cluster.kpax(), ProducerConfig::default()).unwrap();
    let mut acks = Vec::new();
    for i in 0..N {
        let value = format!("{i:04}-{}", "x".repeat(8 * 1024));
        acks.push(
            producer
                .send(ProducerRecord::new(topic.name.as_str(), value).with_partition(0))
                .await
                .unwrap(),
        );
    }
    for a in acks {
        a.await.expect("record acknowledged");
    }
    assert!(producer.close(Duration::from_secs(30)).await);

    let mut stopped = Command::new(env!("CARGO_BIN_EXE_kpax"))
        .args([
            "share",
            "consume",
            "-b",
            &b,
            &group,
            &topic.name,
            "--idle",
            "120s",
        ])
        .env_remove("KPAX_BROKERS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start kpax share consume");
    // Wait for its first record, let the pipe fill up, stop it, then read
    // everything it printed.
    let mut out = stopped.stdout.take().expect("stdout");
    let mut printed = vec![0u8; 4];
    tokio::time::timeout(Duration::from_secs(60), out.read_exact(&mut printed))
        .await
        .expect("the first member prints a record")
        .expect("read");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = stopped.id().expect("pid").to_string();
    let st = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("kill -STOP");
    assert!(st.success());
    let stopped_at = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), out.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        printed.extend_from_slice(&buf[..n]);
    }
    let by_stopped: BTreeSet<String> = String::from_utf8_lossy(&printed)
        .lines()
        .filter(|l| l.len() > 4)
        .map(|l| l[..4].to_string())
        .collect();
    assert!(
        !by_stopped.is_empty() && by_stopped.len() < N,
        "the stopped member printed {} records",
        by_stopped.len()
    );

    let other =
        ShareConsumer::new(cluster.kpax(), ShareConsumerConfig::new(group.clone())).unwrap();
    other.subscribe([topic.name.clone()]).unwrap();
    let mut got: BTreeMap<String, (i16, Duration)> = BTreeMap::new();
    let all: BTreeSet<String> = (0..N).map(|i| format!("{i:04}")).collect();
    while !all
        .iter()
        .all(|v| got.contains_key(v) || by_stopped.contains(v))
    {
        let r = tokio::time::timeout(Duration::from_secs(60), other.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} records reached the second member, {} printed by the stopped one, of {N}",
                    got.len(),
                    by_stopped.len()
                )
            })
            .unwrap();
        let v = String::from_utf8_lossy(&r.value().unwrap()[..4]).to_string();
        other.acknowledge(&r, AcknowledgeType::Accept).unwrap();
        let seen = (r.delivery_count, stopped_at.elapsed());
        assert!(got.insert(v.clone(), seen).is_none(), "{v} twice");
    }
    other.commit().await.unwrap();
    other.close().await;
    let _ = stopped.start_kill();
    let again: Vec<_> = got.iter().filter(|(_, (c, _))| *c > 1).collect();
    eprintln!(
        "stopped member printed {}; second member got {}, {} of them delivered again, the first {:?} after SIGSTOP",
        by_stopped.len(),
        got.len(),
        again.len(),
        again.iter().map(|(_, (_, t))| *t).min()
    );
    assert!(
        !again.is_empty(),
        "the stopped member held records: {got:?}"
    );
    for (v, (_, t)) in &again {
        assert!(
            *t >= Duration::from_secs(5),
            "{v} delivered again before the 15 s lock could expire: {t:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef kpax"),
        ("fish", "complete -c kpax"),
    ] {
        let out = ok(&kpax(&["completions", shell], None).await, shell);
        assert!(
            out.contains(marker),
            "{shell}: {}",
            &out[..out.len().min(300)]
        );
        for sub in ["consume", "produce", "share", "completions"] {
            assert!(out.contains(sub), "{shell} completes no {sub}");
        }
    }
    let o = kpax(&["completions", "tcsh"], None).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_seek_moves_committed_offsets_only_with_execute() {
    let fc = fake(1).await;
    fc.create_topic("sk", 2).unwrap();
    let b = fc.bootstrap();
    let values: Vec<String> = (0..6).map(|i| format!("v{i}")).collect();
    let mut args = vec!["produce", "-b", b.as_str(), "sk", "-p", "0", "--count"];
    args.extend(values.iter().map(String::as_str));
    ok(&kpax(&args, None).await, "produce to 0");
    ok(
        &kpax(
            &[
                "produce", "-b", &b, "sk", "-p", "1", "--count", "a", "b", "c", "d",
            ],
            None,
        )
        .await,
        "produce to 1",
    );
    ok(
        &kpax(
            &["consume", "-b", &b, "sk", "-g", "g", "--count-only"],
            None,
        )
        .await,
        "consume as g",
    );
    let committed = |fc: &FakeCluster| {
        (
            fc.committed("g", "sk", 0).map(|c| c.offset),
            fc.committed("g", "sk", 1).map(|c| c.offset),
        )
    };
    assert_eq!(committed(&fc), (Some(6), Some(4)));
    // a dry run shows the moves and commits nothing
    let out = ok(
        &kpax(&["group", "seek", "-b", &b, "g", "--to", "start"], None).await,
        "dry run",
    );
    assert!(out.contains("dry run, nothing committed"), "{out}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.starts_with("sk"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [["sk", "0", "6", "0"], ["sk", "1", "4", "0"]],
        "{out}"
    );
    assert_eq!(committed(&fc), (Some(6), Some(4)));
    ok(
        &kpax(
            &["group", "seek", "-b", &b, "g", "--to", "start", "--execute"],
            None,
        )
        .await,
        "to start",
    );
    assert_eq!(committed(&fc), (Some(0), Some(0)));
    ok(
        &kpax(
            &["group", "seek", "-b", &b, "g", "--offset", "3", "--execute"],
            None,
        )
        .await,
        "to 3",
    );
    assert_eq!(committed(&fc), (Some(3), Some(3)));
    // past the end: clamped, with a warning
    let o = kpax(
        &[
            "group",
            "seek",
            "-b",
            &b,
            "g",
            "-t",
            "sk",
            "--offset",
            "100",
            "--execute",
            "--json",
        ],
        None,
    )
    .await;
    let v: Value = serde_json::from_str(&ok(&o, "to 100")).unwrap();
    assert_eq!(v["topics"][0]["partitions"][1]["after"], 4, "{v}");
    assert!(stderr(&o).contains("outside the log"), "{}", stderr(&o));
    assert_eq!(committed(&fc), (Some(6), Some(4)));
    // bad flags
    let o = kpax(&["group", "seek", "-b", &b, "g"], None).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = one_line_error(
        &kpax(&["group", "seek", "-b", &b, "nobody", "--to", "end"], None).await,
        "a group without offsets",
    );
    assert!(e.contains("no committed offsets"), "{e}");
}

/// Each partition's records of `topic` on `b` as `consume -f json` shows
/// them (read_committed), without topic and offset, in offset order.
async fn by_partition(b: &str, topic: &str) -> std::collections::BTreeMap<i64, Vec<String>> {
    let out = ok(
        &kpax(
            &[
                "consume",
                "-b",
                b,
                topic,
                "-f",
                "json",
                "-X",
                "isolation.level=read_committed",
            ],
            None,
        )
        .await,
        "consume the mirror's input or output",
    );
    let mut recs = json_lines(&out);
    recs.sort_by_key(|r| (r["partition"].as_i64(), r["offset"].as_i64()));
    let mut parts = std::collections::BTreeMap::new();
    for r in &recs {
        parts
            .entry(r["partition"].as_i64().unwrap())
            .or_insert_with(Vec::new)
            .push(copied_fields(r).to_string());
    }
    parts
}

/// `kpax mirror` from `a` to `b`: the destination topic is created with
/// the source's partition count and holds the source's records partition
/// by partition, in order, in every field but the offset (binary keys,
/// nulls, headers, timestamps); a second run copies only what is new, a
/// third nothing; with different partition counts records go by key.
async fn mirror_is_exact_and_resumes(a: &str, b: &str) {
    let src = harness::unique_name("mirror-src");
    let group = harness::unique_name("mirror-group");
    ok(
        &kpax(&["topic", "create", "-b", a, &src, "-p", "3"], None).await,
        "create the source",
    );
    let mut input = String::from(concat!(
        r#"{"partition":2,"timestamp":1600000000123,"key":"AP8=","key_base64":true,"value":"/w==","value_base64":true,"headers":[{"key":"bin","value":"AP8B","value_base64":true},{"key":"n","value":null}]}"#,
        "\n",
        r#"{"partition":0,"timestamp":1600000000456,"key":"tomb","value":null}"#,
        "\n",
    ));
    for i in 0..300 {
        input.push_str(&format!(
            "{{\"partition\":{},\"key\":\"k{i}\",\"value\":\"v{i}\",\"headers\":[{{\"key\":\"i\",\"value\":\"{i}\"}}]}}\n",
            i % 3
        ));
    }
    let produce = |input: String| {
        let src = src.clone();
        async move {
            ok(
                &kpax(
                    &["produce", "-b", a, &src, "-f", "json", "--keep-partition"],
                    Some(&input),
                )
                .await,
                "produce to the source",
            );
        }
    };
    produce(input).await;
    let mirror = |topic: String, group: String| async move {
        ok(
            &kpax(
                &[
                    "mirror", "--from", a, "--to", b, &topic, "-G", &group, "-q", "--batch", "64",
                ],
                None,
            )
            .await,
            "mirror",
        )
    };
    let out = mirror(src.clone(), group.clone()).await;
    assert!(out.contains("mirrored 302 records"), "{out}");
    let want = by_partition(a, &src).await;
    assert_eq!(want.values().map(Vec::len).sum::<usize>(), 302);
    assert_eq!(by_partition(b, &src).await, want, "the copy differs");

    // resumed from the offsets committed in the transactions
    let more: String = (300..350)
        .map(|i| {
            format!(
                "{{\"partition\":{},\"key\":\"k{i}\",\"value\":\"v{i}\"}}\n",
                i % 3
            )
        })
        .collect();
    produce(more).await;
    let out = mirror(src.clone(), group.clone()).await;
    assert!(out.contains("mirrored 50 records"), "{out}");
    let out = mirror(src.clone(), group.clone()).await;
    assert!(out.contains("mirrored 0 records"), "{out}");
    let want = by_partition(a, &src).await;
    assert_eq!(want.values().map(Vec::len).sum::<usize>(), 352);
    assert_eq!(
        by_partition(b, &src).await,
        want,
        "the resumed copy differs"
    );

    // 2 partitions into 5: by key, each key in one partition
    let odd = harness::unique_name("mirror-odd");
    ok(
        &kpax(&["topic", "create", "-b", a, &odd, "-p", "2"], None).await,
        "create",
    );
    ok(
        &kpax(&["topic", "create", "-b", b, &odd, "-p", "5"], None).await,
        "create",
    );
    let keyed: String = (0..200).map(|i| format!("key{}:v{i}\n", i % 23)).collect();
    ok(
        &kpax(&["produce", "-b", a, &odd, "-K", ":"], Some(&keyed)).await,
        "produce keyed",
    );
    let out = mirror(odd.clone(), harness::unique_name("mirror-odd-group")).await;
    assert!(out.contains("mirrored 200 records"), "{out}");
    let got = by_partition(b, &odd).await;
    let mut values: Vec<String> = Vec::new();
    let mut partition_of: std::collections::BTreeMap<String, i64> = Default::default();
    for (p, recs) in &got {
        for r in recs {
            let v: Value = serde_json::from_str(r).unwrap();
            let key = v["key"].as_str().unwrap().to_string();
            assert_eq!(
                *partition_of.entry(key.clone()).or_insert(*p),
                *p,
                "{key} split"
            );
            values.push(v["value"].as_str().unwrap().to_string());
        }
    }
    values.sort();
    let mut want: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(values, want);
    assert!(got.len() > 2, "5 partitions used by key: {:?}", got.keys());
}

/// A mirror killed (SIGKILL) in the middle of following a topic that is
/// being written, then run again: the destination, read read_committed,
/// equals the source, each record once, in order per partition (the
/// killed mirror's open transaction is aborted when the next one starts
/// with the same transactional id).
async fn mirror_killed_mid_run_resumes_exactly(a: &str, b: &str) {
    let src = harness::unique_name("mirror-kill");
    let group = harness::unique_name("mirror-kill-group");
    ok(
        &kpax(&["topic", "create", "-b", a, &src, "-p", "3"], None).await,
        "create the source",
    );
    let produce_chunk = |c: usize| {
        let input: String = (0..500).map(|i| format!("k{c}-{i}:v{c}-{i}\n")).collect();
        let src = src.clone();
        async move {
            ok(
                &kpax(&["produce", "-b", a, &src, "-K", ":"], Some(&input)).await,
                "produce a chunk",
            );
        }
    };
    produce_chunk(0).await;
    let mut follower = Command::new(env!("CARGO_BIN_EXE_kpax"))
        .args([
            "mirror",
            "--from",
            a,
            "--to",
            b,
            &src,
            "-G",
            &group,
            "-q",
            "--follow",
            "--batch",
            "50",
            "--commit-every",
            "20ms",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the mirror");
    for c in 1..6 {
        produce_chunk(c).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Killed once it has committed something (so the rerun resumes).
    let deadline = Instant::now() + Duration::from_secs(20);
    while by_partition(b, &src).await.values().all(Vec::is_empty) {
        assert!(
            Instant::now() < deadline,
            "the following mirror copied nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    follower.start_kill().expect("SIGKILL the mirror");
    let status = follower.wait().await.expect("the killed mirror");
    assert!(!status.success(), "the mirror was killed: {status:?}");
    for c in 6..8 {
        produce_chunk(c).await;
    }
    let out = ok(
        &kpax(
            &["mirror", "--from", a, "--to", b, &src, "-G", &group, "-q"],
            None,
        )
        .await,
        "the mirror run again",
    );
    let rerun: usize = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count: {out}"));
    assert!(
        (1000..8 * 500).contains(&rerun),
        "the rerun copies what the killed one had not committed: {out}"
    );
    let want = by_partition(a, &src).await;
    assert_eq!(want.values().map(Vec::len).sum::<usize>(), 8 * 500);
    let got = by_partition(b, &src).await;
    assert_eq!(
        got.values().map(Vec::len).sum::<usize>(),
        8 * 500,
        "records lost or copied twice"
    );
    assert_eq!(got, want, "the copy differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_copies_exactly_once_and_resumes_on_the_fake() {
    let (fa, fb) = (fake(1).await, fake(2).await);
    let (a, b) = (fa.bootstrap(), fb.bootstrap());
    mirror_is_exact_and_resumes(&a, &b).await;
    mirror_killed_mid_run_resumes_exactly(&a, &b).await;

    let o = kpax(&["mirror", "--from", &a, "--to", &a, "t"], None).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("onto itself"), "{}", stderr(&o));
    let line = one_line_error(
        &kpax(
            &[
                "mirror",
                "--from",
                &a,
                "--to",
                &b,
                "nosuch",
                "--timeout",
                "5s",
            ],
            None,
        )
        .await,
        "unknown source topic",
    );
    assert!(line.contains("nosuch"), "{line}");
}

/// Apache Kafka 4 to Kafka 3.9: two real clusters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_copies_exactly_once_and_resumes_from_kafka_4_to_3_9() {
    let Some(k4) = harness::Cluster::kafka() else {
        return;
    };
    let Some(k39) = harness::Cluster::kafka_3_9() else {
        return;
    };
    mirror_is_exact_and_resumes(k4.bootstrap(), k39.bootstrap()).await;
    mirror_killed_mid_run_resumes_exactly(k4.bootstrap(), k39.bootstrap()).await;
}

/// Runs `kpax args` with extra environment variables (else as [`kpax`]).
async fn kpax_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kpax"));
    cmd.args(args)
        .env_remove("KPAX_BROKERS")
        .env_remove("KPAX_PROFILE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tokio::time::timeout(RUN_BOUND, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("kpax {args:?} ran longer than {RUN_BOUND:?}"))
        .expect("kpax output")
}

/// Named profiles: --profile and KPAX_PROFILE pick a section of the
/// profiles file (shared keys under its own), its brokers beat
/// KPAX_BROKERS, --brokers and --config beat it; list and show (password
/// redacted); unknown profiles and bad files are errors naming what is
/// wrong, before anything connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_name_clusters() {
    let fc = fake(1).await;
    fc.create_topic("prof", 1).unwrap();
    let b = fc.bootstrap();
    let file = std::env::temp_dir().join(harness::unique_name("profiles"));
    std::fs::write(
        &file,
        format!(
            "client.id=shared-id\n\n[fake]\nbootstrap.servers={b}\n\n[nowhere]\nbootstrap.servers=127.0.0.1:1\nsasl.mechanism=PLAIN\nsasl.username=u\nsasl.password=hunter2\n"
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let env = [("KPAX_PROFILES", f), ("KPAX_BROKERS", "127.0.0.1:1")];
    let out = ok(
        &kpax_env(&["meta", "--profile", "fake", "prof"], &env).await,
        "--profile",
    );
    assert!(out.contains("prof"), "{out}");
    let with_env = [
        ("KPAX_PROFILES", f),
        ("KPAX_PROFILE", "fake"),
        ("KPAX_BROKERS", "127.0.0.1:1"),
    ];
    let out = ok(
        &kpax_env(&["produce", "prof", "--json", "v"], &with_env).await,
        "KPAX_PROFILE",
    );
    assert!(out.contains("\"partition\":0"), "{out}");
    // --brokers beats the profile's
    let line = one_line_error(
        &kpax_env(
            &[
                "meta",
                "--profile",
                "fake",
                "-b",
                "127.0.0.1:1",
                "--timeout",
                "2s",
            ],
            &env,
        )
        .await,
        "--brokers over the profile",
    );
    assert!(line.contains("127.0.0.1:1"), "{line}");

    let out = ok(&kpax_env(&["profile", "list"], &env).await, "profile list");
    assert!(out.contains("fake") && out.contains(&b), "{out}");
    assert!(out.contains("nowhere"), "{out}");
    let out = ok(
        &kpax_env(&["profile", "show", "nowhere"], &env).await,
        "profile show",
    );
    assert!(out.contains("client.id=shared-id"), "{out}");
    assert!(out.contains("sasl.password=<redacted>"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");

    let o = kpax_env(&["meta", "--profile", "staging"], &env).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no profile \"staging\" (defined: fake, nowhere)"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&file, "[fake]\nbootstrap.servers=h:1\n[fake]\n").unwrap();
    let line = one_line_error(
        &kpax_env(&["meta", "--profile", "fake"], &env).await,
        "bad profiles file",
    );
    assert!(
        line.contains("line 3: profile [fake] is defined twice"),
        "{line}"
    );
    let missing = file.with_extension("missing");
    let o = kpax_env(
        &["meta", "--profile", "fake"],
        &[("KPAX_PROFILES", missing.to_str().unwrap())],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no profiles file at"), "{}", stderr(&o));
    let _ = std::fs::remove_file(&file);
}

/// The partition of each line `produce` printed (`topic-P@O`).
fn produced_partitions(out: &str, topic: &str) -> Vec<i32> {
    out.lines()
        .map(|l| {
            let rest = l
                .strip_prefix(&format!("{topic}-"))
                .unwrap_or_else(|| panic!("{l}"));
            rest.split('@').next().unwrap().parse().unwrap()
        })
        .collect()
}

/// `--partitioner` and the `partitioner` key place records: round-robin
/// spreads one key over every partition, murmur2 puts it where the Java
/// client would, librdkafka's CRC32 one is refused with its reason.
async fn partitioners_place_records(b: &str) {
    let topic = harness::unique_name("cli-partitioner");
    ok(
        &kpax(&["topic", "create", "-b", b, &topic, "-p", "3"], None).await,
        "create",
    );
    let same_key: String = (0..30).map(|i| format!("k:v{i}\n")).collect();
    let out = ok(
        &kpax(
            &[
                "produce",
                "-b",
                b,
                &topic,
                "-K",
                ":",
                "--partitioner",
                "round-robin",
            ],
            Some(&same_key),
        )
        .await,
        "round-robin",
    );
    let mut per = [0; 3];
    for p in produced_partitions(&out, &topic) {
        per[p as usize] += 1;
    }
    assert_eq!(per, [10, 10, 10], "{out}");
    let out = ok(
        &kpax(
            &[
                "produce",
                "-b",
                b,
                &topic,
                "-K",
                ":",
                "-X",
                "partitioner=murmur2",
            ],
            Some(&same_key),
        )
        .await,
        "murmur2",
    );
    let want = kpax::producer::partitioner::murmur2_partition(b"k", 3);
    assert!(
        produced_partitions(&out, &topic).iter().all(|p| *p == want),
        "{out}"
    );
    let o = kpax(
        &[
            "produce",
            "-b",
            b,
            &topic,
            "--partitioner",
            "consistent_random",
            "v",
        ],
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not offered"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioners_place_records_on_the_fake() {
    let fc = fake(1).await;
    partitioners_place_records(&fc.bootstrap()).await;
}

/// Profiles, the properties keys and the partitioner on Apache Kafka: a
/// profile naming the cluster with producer keys (acks=0 gives no
/// offsets back, and returns before Kafka has written: the consumer
/// follows until both came) and consumer keys (read_committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_properties_and_partitioners_on_kafka() {
    let Some(cluster) = harness::Cluster::kafka() else {
        return;
    };
    let b = cluster.bootstrap().to_string();
    partitioners_place_records(&b).await;
    let topic = harness::unique_name("cli-profile");
    ok(
        &kpax(&["topic", "create", "-b", &b, &topic, "-p", "1"], None).await,
        "create",
    );
    let file = std::env::temp_dir().join(harness::unique_name("profiles"));
    std::fs::write(
        &file,
        format!("[kafka]\nbootstrap.servers={b}\nacks=0\ncompression.type=zstd\nisolation.level=read_committed\n"),
    )
    .unwrap();
    let env = [("KPAX_PROFILES", file.to_str().unwrap())];
    let out = ok(
        &kpax_env(&["produce", "--profile", "kafka", &topic, "a", "b"], &env).await,
        "produce with the profile's acks=0",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [format!("{topic}-0@-1"), format!("{topic}-0@-1")],
        "{out}"
    );
    let out = ok(
        &kpax_env(
            &[
                "consume",
                "--profile",
                "kafka",
                &topic,
                "--follow",
                "-c",
                "2",
            ],
            &env,
        )
        .await,
        "consume with the profile",
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["a", "b"], "{out}");
    let _ = std::fs::remove_file(&file);
}
