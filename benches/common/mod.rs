//! What the produce and consume benchmarks share: options, CPU and memory
//! clocks, the payload pool, the brokers (librdkafka's mock, tansu, a real
//! Kafka cluster), the clients (kpax and rdkafka in this binary, the Java
//! client and franz-go as their own programs in `benches/peers/`), and the
//! result lines.
//!
//! Every client prints one `key=value` line with the same keys, so the
//! driver and `scripts/bench-report.py` read them all alike.

// Each bench binary uses a part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The benchmark topic on the mock and tansu (a fresh one per run on Kafka).
pub const TOPIC: &str = "bench";
/// Partitions of a benchmark topic unless `--partitions` says otherwise.
pub const PARTITIONS: i32 = 6;
const CLK_TCK: f64 = 100.0;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The command line, without the `--bench` that `cargo bench` appends.
pub fn args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect()
}

/// `--key value` options (`--flag` alone is `"1"`).
pub fn opts(args: &[String]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        if let Some(k) = a.strip_prefix("--") {
            let v = match it.peek() {
                Some(v) if !v.starts_with("--") => it.next().cloned().unwrap_or_default(),
                _ => "1".to_string(),
            };
            m.insert(k.to_string(), v);
        }
    }
    m
}

/// Option `k` parsed, or `d` when absent.
pub fn opt<T: std::str::FromStr>(m: &BTreeMap<String, String>, k: &str, d: T) -> T {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or(d)
}

/// Option `k` as a comma-separated list, or `d`'s.
pub fn list(m: &BTreeMap<String, String>, k: &str, d: &str) -> Vec<String> {
    m.get(k)
        .map_or(d, String::as_str)
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// `SIZE:N,...` cases.
pub fn cases(m: &BTreeMap<String, String>, d: &str) -> Vec<(usize, u64)> {
    list(m, "cases", d)
        .iter()
        .filter_map(|c| {
            let (s, n) = c.split_once(':')?;
            Some((s.parse().ok()?, n.parse().ok()?))
        })
        .collect()
}

// ---------------------------------------------------------------- CPU and memory

/// This process's user and system CPU seconds (`/proc/self/stat`, all
/// threads, exited ones included: what `getrusage(RUSAGE_SELF)` reports).
pub fn self_cpu() -> (f64, f64) {
    proc_cpu("self").unwrap_or((0.0, 0.0))
}

/// User and system CPU seconds of process `pid`.
pub fn proc_cpu(pid: &str) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may contain spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // state is field 3 overall = index 0 here; utime 14 -> 11, stime 15 -> 12.
    let u: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((u / CLK_TCK, st / CLK_TCK))
}

/// On-CPU seconds per thread name (`/proc/PID/task/*/schedstat`, ns
/// precision; threads alive now), numbered threads grouped (rdk:broker3 ->
/// rdk:broker).
pub fn thread_cpu(pid: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return m;
    };
    for e in dir.flatten() {
        let p = e.path();
        let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        let name: String = name
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .into();
        let ns: f64 = std::fs::read_to_string(p.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0.0);
        *m.entry(name).or_insert(0.0) += ns / 1e9;
    }
    m
}

/// `name:seconds,...` of the threads that used at least 5 ms.
pub fn threads_field(threads: &BTreeMap<String, f64>) -> String {
    threads
        .iter()
        .filter(|(_, v)| **v >= 0.005)
        .map(|(k, v)| format!("{}:{v:.3}", k.replace(' ', "_")))
        .collect::<Vec<_>>()
        .join(",")
}

/// This process's peak resident set in KiB (`VmHWM`).
pub fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------- payloads

/// Words of the compressible pool (the Java and Go peers use the same list).
const WORDS: [&str; 16] = [
    "kafka",
    "record",
    "batch",
    "offset",
    "leader",
    "epoch",
    "partition",
    "topic",
    "consumer",
    "producer",
    "group",
    "commit",
    "fetch",
    "broker",
    "replica",
    "segment",
];

/// The payload pool every client draws from: xorshift bytes (incompressible),
/// or with `words` the same generator picking words separated by spaces
/// (what lz4 and zstd have something to do with). Record i is
/// `pool[offset_of(i, pool.len() - size)..][..size]`.
pub fn payload_pool(len: usize, words: bool) -> Vec<u8> {
    let mut p = Vec::with_capacity(len);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while p.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if !words {
            p.push(x as u8);
            continue;
        }
        let w = WORDS[((x >> 32) & 15) as usize].as_bytes();
        let take = w.len().min(len - p.len());
        p.extend_from_slice(&w[..take]);
        if p.len() < len {
            p.push(b' ');
        }
    }
    p
}

/// Where record `i`'s payload starts in a pool with `span` usable bytes.
pub fn offset_of(i: u64, span: usize) -> usize {
    (i.wrapping_mul(7919) % span as u64) as usize
}

/// The pool for `compression` (words unless "none").
pub fn pool_for(compression: &str) -> Vec<u8> {
    payload_pool(4 << 20, compression != "none")
}

// ---------------------------------------------------------------- brokers

/// `serve-mock BROKERS [PARTITIONS]`: a librdkafka mock cluster with topic
/// `bench`, printing `BOOTSTRAP=...` and then serving until killed.
pub fn serve_mock(args: &[String]) -> Result<(), BoxError> {
    let n: i32 = args.first().and_then(|v| v.parse().ok()).unwrap_or(3);
    let parts: i32 = args
        .get(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(PARTITIONS);
    let mc = rdkafka::mocking::MockCluster::new(n)?;
    mc.create_topic(TOPIC, parts, n.min(3))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "BOOTSTRAP={}", mc.bootstrap_servers())?;
    out.flush()?;
    drop(out);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// `prog`, under `taskset -c CPU` when pinned.
pub fn command(prog: impl AsRef<std::ffi::OsStr>, cpu: Option<&str>) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", c]).arg(prog);
            cmd
        }
        None => Command::new(prog),
    }
}

/// A broker for one or more client runs: a fresh mock or tansu process, or
/// a fresh topic on a running Kafka cluster (`kafka`: the cluster of
/// `$KPAX_KAFKA`, a state file of `scripts/kafka.sh`).
pub struct Broker {
    pub bootstrap: String,
    pub topic: String,
    child: Option<Child>,
    /// The processes whose CPU is the broker's.
    pids: Vec<String>,
    /// Kafka: the topic is deleted on drop.
    kafka: Option<(tokio::runtime::Runtime, kpax::admin::Admin)>,
}

static TOPICS: AtomicUsize = AtomicUsize::new(0);

impl Broker {
    /// Starts broker `kind` (`mock3`, `mock1`, `tansu`, `kafka`) with a
    /// topic of `partitions` partitions; `pin` puts a broker process on cpu1.
    pub fn start(kind: &str, pin: bool, partitions: i32) -> Result<Broker, BoxError> {
        let cpu = pin.then_some("1");
        match kind {
            "kafka" => Broker::kafka(partitions),
            "tansu" => Broker::tansu(cpu, partitions),
            _ => {
                let n = kind.strip_prefix("mock").unwrap_or("3");
                let exe = std::env::current_exe()?;
                let mut child = command(exe.as_os_str(), cpu)
                    .args(["serve-mock", n, &partitions.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .spawn()?;
                let mut line = String::new();
                BufReader::new(child.stdout.take().ok_or("mock stdout")?).read_line(&mut line)?;
                let bootstrap = line
                    .trim()
                    .strip_prefix("BOOTSTRAP=")
                    .ok_or("mock: no BOOTSTRAP line")?
                    .to_string();
                Ok(Broker {
                    bootstrap,
                    topic: TOPIC.into(),
                    pids: vec![child.id().to_string()],
                    child: Some(child),
                    kafka: None,
                })
            }
        }
    }

    fn tansu(cpu: Option<&str>, partitions: i32) -> Result<Broker, BoxError> {
        let tansu = std::env::var("TANSU").unwrap_or_else(|_| {
            format!(
                "{}/.local/kpax-tools/bin/tansu",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = command(&tansu, cpu)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t.elapsed() > Duration::from_secs(10) {
                return Err("tansu did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let st = Command::new(&tansu)
            .args(["topic", "create", "--broker", &url, "--partitions"])
            .arg(partitions.to_string())
            .arg(TOPIC)
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            return Err("tansu topic create failed".into());
        }
        Ok(Broker {
            bootstrap: format!("127.0.0.1:{port}"),
            topic: TOPIC.into(),
            pids: vec![child.id().to_string()],
            child: Some(child),
            kafka: None,
        })
    }

    fn kafka(partitions: i32) -> Result<Broker, BoxError> {
        let path = std::env::var("KPAX_KAFKA").map_err(|_| {
            "broker kafka: set KPAX_KAFKA to a cluster's state file \
             (scripts/kafka.sh start --nodes 3 --dir D; KPAX_KAFKA=D/state)"
        })?;
        let state = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let get = |k: &str| {
            state
                .lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_string)
        };
        let bootstrap = get("bootstrap.plaintext").ok_or(format!("{path}: no bootstrap"))?;
        let nodes: i32 = get("nodes").and_then(|n| n.parse().ok()).unwrap_or(1);
        let pids: Vec<String> = (1..=nodes)
            .chain(0..1)
            .filter_map(|n| get(&format!("node.{n}.pid")))
            .collect();
        let topic = format!(
            "bench-{}-{}",
            std::process::id(),
            TOPICS.fetch_add(1, Ordering::Relaxed)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let admin = rt.block_on(async {
            let cluster = kpax::Cluster::new(
                bootstrap.split(',').map(str::to_string).collect::<Vec<_>>(),
                kpax::ClientConfig::default(),
            )?;
            let admin = kpax::admin::Admin::new(cluster);
            let rf = nodes.min(3) as i16;
            let t = kpax::admin::NewTopic::new(topic.clone(), partitions, rf)
                .with_config("min.insync.replicas", rf.min(2).to_string());
            for (name, r) in admin.create_topics(&[t], false).await? {
                r.map_err(|e| format!("create topic {name}: {e}"))?;
            }
            // Until every partition has a leader in the metadata.
            let t0 = Instant::now();
            loop {
                let c = admin.cluster();
                let ready = c.refresh(Some(&[topic.as_str()])).await.is_ok()
                    && c.topic(&topic).await.is_ok_and(|t| {
                        t.partitions.len() == partitions as usize
                            && t.partitions.iter().all(|p| p.leader >= 0)
                    });
                if ready {
                    break;
                }
                if t0.elapsed() > Duration::from_secs(120) {
                    return Err(format!("topic {topic}: no leaders after 120 s").into());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok::<_, BoxError>(admin)
        })?;
        Ok(Broker {
            bootstrap,
            topic,
            child: None,
            pids,
            kafka: Some((rt, admin)),
        })
    }

    /// The broker's CPU seconds so far (all nodes).
    pub fn cpu(&self) -> f64 {
        self.pids
            .iter()
            .filter_map(|p| proc_cpu(p))
            .map(|(u, s)| u + s)
            .sum()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some((rt, admin)) = self.kafka.take() {
            let _ = rt.block_on(admin.delete_topics(&[self.topic.as_str()]));
        }
    }
}

// ---------------------------------------------------------------- clients

/// The clients: kpax and rdkafka run as `client NAME` of this binary, the
/// Java client and franz-go as the programs in `benches/peers/`, found
/// through `KPAX_BENCH_JAVA_CP` (the classpath: kafka-clients' jars and the
/// compiled `Bench` class) and `KPAX_BENCH_FRANZ` (the built binary);
/// `scripts/bench.sh` builds both and sets them.
///
/// On librdkafka's mock (`broker` `mock*`) franz-go is told to send
/// ApiVersions v2 at most, and the Java client is refused: the mock answers
/// ApiVersions v3 and later (which both send) with an UNSUPPORTED_VERSION
/// body they cannot read, and they retry forever.
pub fn client_command(
    which: &str,
    role: &str,
    broker: &str,
    cpu: Option<&str>,
) -> Result<Command, BoxError> {
    let mock = broker.starts_with("mock");
    match which {
        "kpax" | "rdkafka" => {
            let mut c = command(std::env::current_exe()?, cpu);
            c.args(["client", which]);
            Ok(c)
        }
        "java" if mock => Err(
            "client java: librdkafka's mock answers ApiVersions v3+ with a \
             body the Java client cannot read (it reconnects forever); run java on tansu or kafka"
                .into(),
        ),
        "java" => {
            let cp = std::env::var("KPAX_BENCH_JAVA_CP").map_err(|_| {
                "client java: set KPAX_BENCH_JAVA_CP (scripts/bench.sh compiles \
                 benches/peers/java/Bench.java against kafka-clients and sets it)"
            })?;
            let mut c = command("java", cpu);
            c.args(["-Xms256m", "-Xmx1g", "-cp", &cp, "Bench", role]);
            Ok(c)
        }
        "franz" => {
            let bin = std::env::var("KPAX_BENCH_FRANZ").map_err(|_| {
                "client franz: set KPAX_BENCH_FRANZ (scripts/bench.sh builds \
                 benches/peers/franz with go build and sets it)"
            })?;
            let mut c = command(bin, cpu);
            c.arg(role);
            if mock {
                c.args(["--api-versions-max", "2"]);
            }
            Ok(c)
        }
        w => Err(format!("unknown client {w:?}: kpax, rdkafka, java or franz").into()),
    }
}

/// The `--ranges` value for `ranges` (per partition `low-high`): inline,
/// or `@FILE` (written under `dir`) when it is too long for one argument
/// (Linux takes at most 128 KiB per argument). Every consume client reads both.
pub fn ranges_value(ranges: &[(i64, i64)], dir: &std::path::Path) -> Result<String, BoxError> {
    let s = ranges
        .iter()
        .map(|(l, h)| format!("{l}-{h}"))
        .collect::<Vec<_>>()
        .join(",");
    if s.len() < 64 << 10 {
        return Ok(s);
    }
    let path = dir.join(format!("kpax-bench-ranges-{}", std::process::id()));
    std::fs::write(&path, &s)?;
    Ok(format!("@{}", path.display()))
}

/// Reads a `--ranges` value: `low-high,...` inline or `@FILE`.
pub fn parse_ranges(v: &str) -> Result<Vec<(i64, i64)>, BoxError> {
    let text = match v.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("--ranges {v}: {e}"))?,
        None => v.to_string(),
    };
    text.trim()
        .split(',')
        .map(|r| {
            let (l, h) = r.split_once('-')?;
            let (l, h): (i64, i64) = (l.parse().ok()?, h.parse().ok()?);
            (l <= h).then_some((l, h))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("--ranges: not low-high,... ({} bytes)", text.len()).into())
}

// ---------------------------------------------------------------- results

/// One client run: its line and the broker's CPU around it.
pub struct Run {
    pub client: BTreeMap<String, String>,
    pub broker_cpu: f64,
}

pub fn parse_line(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn num(m: &BTreeMap<String, String>, k: &str) -> f64 {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

pub fn fmt(x: f64) -> String {
    if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// A table row: its name and how to read it from one run.
pub type Metric<'a> = (&'a str, &'a dyn Fn(&Run) -> f64);

fn cpu_s(r: &Run) -> f64 {
    num(&r.client, "cpu_s")
}
fn cpu_per_m(r: &Run) -> f64 {
    num(&r.client, "us_per_rec")
}
fn busy(r: &Run) -> f64 {
    num(&r.client, "cpu_s") / num(&r.client, "wall_s")
}
fn rss_mib(r: &Run) -> f64 {
    num(&r.client, "rss_kb") / 1024.0
}
fn broker_cpu_s(r: &Run) -> f64 {
    r.broker_cpu
}
fn broker_busy(r: &Run) -> f64 {
    r.broker_cpu / num(&r.client, "wall_s")
}

/// The rows every table has after its own: client CPU, memory, broker.
pub const COST_ROWS: [Metric<'static>; 6] = [
    ("client CPU s", &cpu_s),
    ("client CPU s / M rec", &cpu_per_m),
    ("client busy (cores)", &busy),
    ("client peak RSS MiB", &rss_mib),
    ("broker CPU s", &broker_cpu_s),
    ("broker busy (cores)", &broker_busy),
];

/// Prints one case's table: a column per client (medians), then kpax's
/// ratio to each other client.
pub fn report(title: &str, clients: &[String], runs: &BTreeMap<String, Vec<Run>>, rows: &[Metric]) {
    let med = |which: &str, f: &dyn Fn(&Run) -> f64| -> f64 {
        median(
            runs.get(which)
                .map_or(vec![], |v| v.iter().map(f).collect()),
        )
    };
    let others: Vec<&String> = clients.iter().filter(|c| *c != "kpax").collect();
    println!();
    println!(
        "## {title} (median of {})",
        runs.get("kpax").map_or(0, Vec::len)
    );
    let mut head = String::from("| metric |");
    let mut rule = String::from("|---|");
    for c in clients {
        head += &format!(" {c} |");
        rule += "---|";
    }
    for c in &others {
        head += &format!(" kpax/{c} |");
        rule += "---|";
    }
    println!("{head}");
    println!("{rule}");
    for (name, f) in rows {
        let mut line = format!("| {name} |");
        for c in clients {
            line += &format!(" {} |", fmt(med(c, f)));
        }
        for c in &others {
            line += &format!(" {:.2} |", med("kpax", f) / med(c, f));
        }
        println!("{line}");
    }
    let _ = std::io::stdout().flush();
}

/// The floor under a client's cost per byte: copying the bytes once and
/// one CRC32C pass over them (what a record batch costs at the least),
/// in seconds per GB, measured in this process (best of 5 passes over
/// 64 MiB, so that it sits in the same run as the clients).
pub fn copy_crc_floor() -> f64 {
    const LEN: usize = 64 << 20;
    let src: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
    let mut dst = vec![0u8; LEN];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        let crc = crc32c::crc32c(std::hint::black_box(&dst));
        std::hint::black_box(crc);
        best = best.min(t.elapsed().as_secs_f64());
    }
    best / (LEN as f64 / 1e9)
}

/// Prints kpax's client CPU per GB of payload (`payload_bytes` per run,
/// median) beside the copy + CRC32C floor, and their ratio.
pub fn report_floor(runs: &BTreeMap<String, Vec<Run>>, payload_bytes: f64, floor: f64) {
    let cpu = median(
        runs.get("kpax")
            .map_or(vec![], |v| v.iter().map(cpu_s).collect()),
    );
    let per_gb = cpu / (payload_bytes / 1e9);
    println!(
        "\nkpax client CPU {} s/GB of payload; copy + CRC32C floor {} s/GB; kpax = {:.1}x the floor",
        fmt(per_gb),
        fmt(floor),
        per_gb / floor
    );
}

/// Runs one client process to its end and returns its run: its line
/// prefixed with `prefix` and the broker's CPU around it, also printed to
/// stderr and appended to `raw`.
pub fn run_client(
    mut cmd: Command,
    which: &str,
    broker: &Broker,
    prefix: &str,
    raw: &mut Option<std::fs::File>,
) -> Result<Run, BoxError> {
    let bc0 = broker.cpu();
    let out = cmd.stderr(Stdio::inherit()).output()?;
    let bc1 = broker.cpu();
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(format!("{which} client failed ({}): {line}", out.status).into());
    }
    let line = format!("{prefix} {line} broker_cpu_s={:.3}", bc1 - bc0);
    eprintln!("{line}");
    if let Some(f) = raw.as_mut() {
        writeln!(f, "{line}")?;
    }
    Ok(Run {
        client: parse_line(&line),
        broker_cpu: bc1 - bc0,
    })
}

/// Where `--raw FILE` lines go (appended), if anywhere.
pub fn raw_file(o: &BTreeMap<String, String>) -> Result<Option<std::fs::File>, BoxError> {
    Ok(match o.get("raw") {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => None,
    })
}
