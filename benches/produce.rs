//! Produce throughput and client CPU: kpax against rdkafka, same broker, same settings.
//!
//! One binary, three roles (each in its own process, so each client's CPU
//! time is measured apart from the broker's and from the other client's):
//!
//! - driver (the default): for every case and repetition it starts a fresh
//!   broker process (the librdkafka mock, via `serve-mock`, or tansu), runs
//!   `client kpax` and `client rdkafka` against it one after the other in
//!   fresh processes, samples the broker's CPU around each, and prints the
//!   medians side by side with the ratios kpax/rdkafka;
//! - `serve-mock BROKERS`: a librdkafka mock cluster with topic `bench`
//!   (6 partitions), printing `BOOTSTRAP=...` and then serving until killed;
//! - `client kpax|rdkafka ...`: produces N records and prints one `key=value` line.
//!
//! `scripts/bench-produce.sh` builds and runs it; the results and the exact
//! commands are in `benches/PRODUCE_RESULTS.md`.
//!
//! Driver options (after `cargo bench --bench produce --`, or on the binary):
//! `--brokers mock3,tansu` `--cases 100:5000000,1024:1500000` `--acks all,1`
//! `--reps 5` `--pin` (client on cpu0, broker on cpu1) `--batch 65536`
//! `--linger-ms 5` `--raw FILE` (appends every client line) `--icount N1:N2`
//! (instructions per record under callgrind: (Ir(N2) - Ir(N1)) / (N2 - N1),
//! which cancels start-up; runs against mock3, one repetition).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOPIC: &str = "bench";
const PARTITIONS: i32 = 6;
const CLK_TCK: f64 = 100.0;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    // `cargo bench` appends `--bench`; ignore it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let r = match args.first().map(String::as_str) {
        Some("serve-mock") => serve_mock(&args[1..]),
        Some("client") => client(&args[1..]),
        _ => drive(&args),
    };
    if let Err(e) = r {
        eprintln!("produce bench: {e}");
        std::process::exit(1);
    }
}

/// `--key value` options.
fn opts(args: &[String]) -> BTreeMap<String, String> {
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

fn opt<T: std::str::FromStr>(m: &BTreeMap<String, String>, k: &str, d: T) -> T {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or(d)
}

// ---------------------------------------------------------------- CPU clocks

/// This process's user and system CPU seconds (`/proc/self/stat`, all
/// threads, exited ones included: what `getrusage(RUSAGE_SELF)` reports).
fn self_cpu() -> (f64, f64) {
    proc_cpu("self").unwrap_or((0.0, 0.0))
}

fn proc_cpu(pid: &str) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may contain spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // state is field 3 overall = index 0 here; utime 14 -> 11, stime 15 -> 12.
    let u: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((u / CLK_TCK, st / CLK_TCK))
}

/// On-CPU seconds per thread name (`/proc/PID/task/*/schedstat`, ns precision;
/// only threads alive now).
fn thread_cpu(pid: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return m;
    };
    for e in dir.flatten() {
        let p = e.path();
        let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        // Group numbered threads: rdk:broker3 -> rdk:broker, tokio-runtime-w -> as is.
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

// ---------------------------------------------------------------- payloads

/// xorshift bytes; record i is `pool[(i * 7919) % span..][..size]`.
fn payload_pool(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn offset_of(i: u64, span: usize) -> usize {
    (i as usize).wrapping_mul(7919) % span
}

// ---------------------------------------------------------------- mock broker

fn serve_mock(args: &[String]) -> Result<(), BoxError> {
    let n: i32 = args.first().and_then(|v| v.parse().ok()).unwrap_or(3);
    let mc = rdkafka::mocking::MockCluster::new(n)?;
    mc.create_topic(TOPIC, PARTITIONS, n.min(3))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "BOOTSTRAP={}", mc.bootstrap_servers())?;
    out.flush()?;
    drop(out);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

// ---------------------------------------------------------------- clients

struct ClientArgs {
    which: String,
    bootstrap: String,
    records: u64,
    size: usize,
    acks_all: bool,
    batch: usize,
    linger_ms: u64,
    buffer: usize,
}

struct Outcome {
    enqueued_s: f64,
    wall_s: f64,
    ok: u64,
    err: u64,
    /// Process CPU (user, system) and per-thread CPU at the last outcome,
    /// before the client is torn down (its threads exit then).
    cpu: (f64, f64),
    threads: BTreeMap<String, f64>,
}

impl Outcome {
    fn at(enqueued_s: f64, t0: Instant, ok: u64, err: u64) -> Outcome {
        Outcome {
            enqueued_s,
            wall_s: t0.elapsed().as_secs_f64(),
            ok,
            err,
            cpu: self_cpu(),
            threads: thread_cpu("self"),
        }
    }
}

fn client(args: &[String]) -> Result<(), BoxError> {
    let which = args.first().cloned().unwrap_or_default();
    let o = opts(&args[1..]);
    let a = ClientArgs {
        which,
        bootstrap: o.get("bootstrap").cloned().ok_or("--bootstrap")?,
        records: opt(&o, "records", 1_000_000),
        size: opt(&o, "size", 100),
        acks_all: o.get("acks").map(String::as_str) != Some("1"),
        batch: opt(&o, "batch", 65536),
        linger_ms: opt(&o, "linger-ms", 5),
        buffer: opt(&o, "buffer-mb", 256usize) << 20,
    };
    let c0 = self_cpu();
    let t0 = Instant::now();
    let out = match a.which.as_str() {
        "kpax" => run_kpax(&a, t0)?,
        "rdkafka" => run_rdkafka(&a, t0)?,
        w => return Err(format!("unknown client {w:?}").into()),
    };
    let c1 = out.cpu;
    let threads = &out.threads;
    let (user, sys) = (c1.0 - c0.0, c1.1 - c0.1);
    let cpu = user + sys;
    let n = a.records as f64;
    let th: Vec<String> = threads
        .iter()
        .filter(|(_, v)| **v >= 0.005)
        .map(|(k, v)| format!("{}:{v:.3}", k.replace(' ', "_")))
        .collect();
    println!(
        "client={} size={} records={} acks={} ok={} err={} enq_s={:.4} wall_s={:.4} rec_s={:.0} \
         user_s={user:.3} sys_s={sys:.3} cpu_s={cpu:.3} us_per_rec={:.4} threads={}",
        a.which,
        a.size,
        a.records,
        if a.acks_all { "all" } else { "1" },
        out.ok,
        out.err,
        out.enqueued_s,
        out.wall_s,
        n / out.wall_s,
        cpu * 1e6 / n,
        th.join(","),
    );
    if out.err > 0 || out.ok != a.records {
        return Err(format!("{} of {} delivered, {} errors", out.ok, a.records, out.err).into());
    }
    Ok(())
}

fn run_kpax(a: &ClientArgs, t0: Instant) -> Result<Outcome, BoxError> {
    use kpax::producer::{Acks, Producer, ProducerConfig, ProducerRecord};
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    let workers: usize = std::env::var("KPAX_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let pool = bytes::Bytes::from(payload_pool(4 << 20));
    let span = pool.len() - a.size;
    rt.block_on(async {
        let bootstrap: Vec<String> = a.bootstrap.split(',').map(str::to_string).collect();
        let cluster = kpax::Cluster::new(bootstrap, kpax::ClientConfig::default())?;
        let config = ProducerConfig::default()
            .with_acks(if a.acks_all { Acks::All } else { Acks::Leader })
            .with_idempotence(a.acks_all)
            .with_linger(Duration::from_millis(a.linger_ms))
            .with_batch_size(a.batch)
            .with_max_request_size(a.batch.max(1 << 20))
            .with_buffer_memory(a.buffer)
            .with_compression(kpax::proto::records::Compression::None);
        let p = Producer::new(cluster, config)?;
        let (mut ok, mut err) = (0u64, 0u64);
        let mut count = |r: kpax::Result<kpax::RecordMetadata>| match r {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        };
        let mut cx = Context::from_waker(Waker::noop());
        let mut pending = VecDeque::new();
        for i in 0..a.records {
            let off = offset_of(i, span);
            let rec = ProducerRecord::new(TOPIC, pool.slice(off..off + a.size));
            pending.push_back(p.send(rec).await?);
            // Collect finished outcomes as often as rdkafka's poll(0) below.
            if i % 1024 == 0 {
                while let Some(f) = pending.front_mut() {
                    match Pin::new(f).poll(&mut cx) {
                        Poll::Ready(r) => {
                            count(r);
                            pending.pop_front();
                        }
                        Poll::Pending => break,
                    }
                }
            }
        }
        let enqueued_s = t0.elapsed().as_secs_f64();
        for f in pending {
            count(f.await);
        }
        let out = Outcome::at(enqueued_s, t0, ok, err);
        p.close(Duration::from_secs(5)).await;
        Ok(out)
    })
}

struct RdCtx {
    ok: AtomicU64,
    err: AtomicU64,
}

impl rdkafka::ClientContext for RdCtx {}

impl rdkafka::producer::ProducerContext for RdCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.err.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn run_rdkafka(a: &ClientArgs, t0: Instant) -> Result<Outcome, BoxError> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let pool = payload_pool(4 << 20);
    let span = pool.len() - a.size;
    let producer: BaseProducer<RdCtx> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("acks", if a.acks_all { "all" } else { "1" })
        .set(
            "enable.idempotence",
            if a.acks_all { "true" } else { "false" },
        )
        .set("linger.ms", a.linger_ms.to_string())
        .set("batch.size", a.batch.to_string())
        .set("compression.type", "none")
        .set("max.in.flight.requests.per.connection", "5")
        .set("queue.buffering.max.messages", "10000000")
        .set("queue.buffering.max.kbytes", (a.buffer >> 10).to_string())
        .set("message.max.bytes", a.batch.max(1 << 20).to_string())
        .create_with_context(RdCtx {
            ok: AtomicU64::new(0),
            err: AtomicU64::new(0),
        })?;
    let ctx = producer.context();
    let done = |c: &RdCtx| c.ok.load(Ordering::Relaxed) + c.err.load(Ordering::Relaxed);
    for i in 0..a.records {
        let off = offset_of(i, span);
        let mut rec = BaseRecord::<(), [u8], ()>::to(TOPIC).payload(&pool[off..off + a.size]);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    producer.poll(Duration::from_millis(1));
                    rec = r;
                }
                Err((e, _)) => return Err(format!("send: {e:?}").into()),
            }
        }
        if i % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    let enqueued_s = t0.elapsed().as_secs_f64();
    // Not flush(): it rounds up to its 100 ms poll; poll(<1 ms) busy-spins.
    while producer.in_flight_count() > 0 || done(ctx) < a.records {
        let before = done(ctx);
        producer.poll(Duration::ZERO);
        if done(ctx) == before {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    Ok(Outcome::at(
        enqueued_s,
        t0,
        ctx.ok.load(Ordering::Relaxed),
        ctx.err.load(Ordering::Relaxed),
    ))
}

// ---------------------------------------------------------------- driver

struct Broker {
    child: Child,
    bootstrap: String,
}

impl Broker {
    fn start(kind: &str, pin: bool) -> Result<Broker, BoxError> {
        let cpu = pin.then_some("1");
        if kind == "tansu" {
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
            let mut cmd = command(&tansu, cpu);
            cmd.args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            let child = cmd.spawn()?;
            let t = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if t.elapsed() > Duration::from_secs(10) {
                    return Err("tansu did not start".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let st = Command::new(&tansu)
                .args(["topic", "create", "--broker", &url, "--partitions"])
                .arg(PARTITIONS.to_string())
                .arg(TOPIC)
                .stdout(Stdio::null())
                .status()?;
            if !st.success() {
                return Err("tansu topic create failed".into());
            }
            return Ok(Broker {
                child,
                bootstrap: format!("127.0.0.1:{port}"),
            });
        }
        let n = kind.strip_prefix("mock").unwrap_or("3");
        let exe = std::env::current_exe()?;
        let mut child = command(exe.as_os_str(), cpu)
            .args(["serve-mock", n])
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
        Ok(Broker { child, bootstrap })
    }

    fn cpu(&self) -> f64 {
        let (u, s) = proc_cpu(&self.child.id().to_string()).unwrap_or((0.0, 0.0));
        u + s
    }
}

/// `prog`, under `taskset -c CPU` when pinned.
fn command(prog: impl AsRef<std::ffi::OsStr>, cpu: Option<&str>) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", c]).arg(prog);
            cmd
        }
        None => Command::new(prog),
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_line(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn num(m: &BTreeMap<String, String>, k: &str) -> f64 {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
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

struct Run {
    client: BTreeMap<String, String>,
    broker_cpu: f64,
}

fn drive(args: &[String]) -> Result<(), BoxError> {
    let o = opts(args);
    let brokers: Vec<String> = o
        .get("brokers")
        .map_or("mock3", String::as_str)
        .split(',')
        .map(String::from)
        .collect();
    let cases: Vec<(usize, u64)> = o
        .get("cases")
        .map_or("100:5000000,1024:1500000", String::as_str)
        .split(',')
        .filter_map(|c| {
            let (s, n) = c.split_once(':')?;
            Some((s.parse().ok()?, n.parse().ok()?))
        })
        .collect();
    let acks: Vec<String> = o
        .get("acks")
        .map_or("all,1", String::as_str)
        .split(',')
        .map(String::from)
        .collect();
    let reps: usize = opt(&o, "reps", 5);
    let pin = o.contains_key("pin");
    let batch: usize = opt(&o, "batch", 65536);
    let linger: u64 = opt(&o, "linger-ms", 5);
    let exe = std::env::current_exe()?;
    let mut raw = match o.get("raw") {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => None,
    };
    if let Some(icount) = o.get("icount") {
        return drive_icount(icount, &cases, &acks, batch, linger);
    }
    println!(
        "# produce bench: brokers {brokers:?}, cases {cases:?}, acks {acks:?}, {reps} reps, \
         pin {pin}, batch {batch}, linger {linger} ms, {PARTITIONS} partitions, no compression"
    );
    println!("# load: {}", load());
    for broker in &brokers {
        for &(size, n) in &cases {
            for ack in &acks {
                let mut runs: BTreeMap<&str, Vec<Run>> = BTreeMap::new();
                for rep in 0..reps {
                    // Alternate which client goes first.
                    let order = if rep % 2 == 0 {
                        ["kpax", "rdkafka"]
                    } else {
                        ["rdkafka", "kpax"]
                    };
                    for which in order {
                        let b = Broker::start(broker, pin)?;
                        let mut cmd = command(&exe, pin.then_some("0"));
                        cmd.args(["client", which, "--bootstrap", &b.bootstrap])
                            .args(["--records", &n.to_string(), "--size", &size.to_string()])
                            .args(["--acks", ack, "--batch", &batch.to_string()])
                            .args(["--linger-ms", &linger.to_string()]);
                        let bc0 = b.cpu();
                        let out = cmd.stderr(Stdio::inherit()).output()?;
                        let bc1 = b.cpu();
                        drop(b);
                        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
                        if !out.status.success() {
                            return Err(format!("{which} client failed: {line}").into());
                        }
                        let line = format!(
                            "broker={broker} pin={pin} rep={rep} {line} broker_cpu_s={:.3}",
                            bc1 - bc0
                        );
                        eprintln!("{line}");
                        if let Some(f) = raw.as_mut() {
                            writeln!(f, "{line}")?;
                        }
                        runs.entry(which).or_default().push(Run {
                            client: parse_line(&line),
                            broker_cpu: bc1 - bc0,
                        });
                    }
                }
                report(broker, size, n, ack, &runs);
            }
        }
    }
    println!("# load after: {}", load());
    Ok(())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A table row: its name and how to read it from one run.
type Metric<'a> = (&'a str, &'a dyn Fn(&Run) -> f64);

fn report(broker: &str, size: usize, n: u64, acks: &str, runs: &BTreeMap<&str, Vec<Run>>) {
    let med = |which: &str, f: &dyn Fn(&Run) -> f64| -> f64 {
        median(
            runs.get(which)
                .map_or(vec![], |v| v.iter().map(f).collect()),
        )
    };
    let rows: [Metric; 9] = [
        ("rec/s", &|r| num(&r.client, "rec_s")),
        ("wall s", &|r| num(&r.client, "wall_s")),
        ("enqueued at s", &|r| num(&r.client, "enq_s")),
        ("ack tail % of wall", &|r| {
            let w = num(&r.client, "wall_s");
            100.0 * (w - num(&r.client, "enq_s")) / w
        }),
        ("client CPU s", &|r| num(&r.client, "cpu_s")),
        ("client CPU s / M rec", &|r| num(&r.client, "us_per_rec")),
        ("client busy (cores)", &|r| {
            num(&r.client, "cpu_s") / num(&r.client, "wall_s")
        }),
        ("broker CPU s", &|r| r.broker_cpu),
        ("broker busy (cores)", &|r| {
            r.broker_cpu / num(&r.client, "wall_s")
        }),
    ];
    println!();
    println!(
        "## {broker}, {size} B x {n}, acks={acks} (median of {})",
        runs.get("kpax").map_or(0, Vec::len)
    );
    println!("| metric | kpax | rdkafka | kpax/rdkafka |");
    println!("|---|---|---|---|");
    for (name, f) in rows {
        let k = med("kpax", f);
        let r = med("rdkafka", f);
        println!("| {name} | {} | {} | {:.2} |", fmt(k), fmt(r), k / r);
    }
    let _ = std::io::stdout().flush();
}

fn fmt(x: f64) -> String {
    if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// Instructions per record under callgrind, start-up cancelled out.
fn drive_icount(
    spec: &str,
    cases: &[(usize, u64)],
    acks: &[String],
    batch: usize,
    linger: u64,
) -> Result<(), BoxError> {
    let (n1, n2) = spec
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .ok_or("--icount N1:N2")?;
    let exe = std::env::current_exe()?;
    let dir = std::env::var("ICOUNT_DIR").unwrap_or_else(|_| "/tmp/kpax-produce-icount".into());
    std::fs::create_dir_all(&dir)?;
    println!("| client | size | acks | Ir({n1}) | Ir({n2}) | instructions/record |");
    println!("|---|---|---|---|---|---|");
    for &(size, _) in cases {
        for ack in acks {
            for which in ["kpax", "rdkafka"] {
                let mut ir = Vec::new();
                for n in [n1, n2] {
                    let b = Broker::start("mock3", false)?;
                    let file = format!("{dir}/callgrind.{which}.{size}.acks{ack}.{n}.out");
                    let st = Command::new("valgrind")
                        .args(["--tool=callgrind", "--dump-instr=no"])
                        .arg(format!("--callgrind-out-file={file}"))
                        .arg(&exe)
                        .args(["client", which, "--bootstrap", &b.bootstrap])
                        .args(["--records", &n.to_string(), "--size", &size.to_string()])
                        .args(["--acks", ack, "--batch", &batch.to_string()])
                        .args(["--linger-ms", &linger.to_string()])
                        .stdout(Stdio::inherit())
                        .stderr(Stdio::null())
                        .status()?;
                    drop(b);
                    if !st.success() {
                        return Err(format!("callgrind {which} {n} failed").into());
                    }
                    ir.push(callgrind_total(&file)?);
                }
                println!(
                    "| {which} | {size} | {ack} | {} | {} | {:.0} |",
                    ir[0],
                    ir[1],
                    (ir[1] - ir[0]) as f64 / (n2 - n1) as f64
                );
                let _ = std::io::stdout().flush();
            }
        }
    }
    Ok(())
}

fn callgrind_total(file: &str) -> Result<u64, BoxError> {
    let s = std::fs::read_to_string(file)?;
    s.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("{file}: no totals").into())
}
