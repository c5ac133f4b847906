//! Produce throughput, client CPU and memory: kpax against rdkafka, the
//! Java client and franz-go, same broker, same settings.
//!
//! One binary, three roles (each client in its own process, so each
//! client's CPU time is measured apart from the broker's and from the other
//! clients'):
//!
//! - driver (the default): for every case and repetition it starts a fresh
//!   broker (the librdkafka mock, via `serve-mock`, or tansu; on real Kafka a
//!   fresh topic), runs each client against it one after the other in fresh
//!   processes (the order rotates by repetition), samples the broker's CPU
//!   around each, and prints the medians side by side with kpax's ratio to
//!   each peer;
//! - `serve-mock BROKERS`: a librdkafka mock cluster with topic `bench`
//!   (6 partitions), printing `BOOTSTRAP=...` and then serving until killed;
//! - `client kpax|rdkafka ...`: produces N records and prints one `key=value`
//!   line (the Java and Go peers in `benches/peers/` print the same keys).
//!
//! `scripts/bench.sh` runs the whole matrix; `scripts/bench-produce.sh`
//! builds and runs this alone; results and commands are in
//! `benches/PRODUCE_RESULTS.md` and `benches/RESULTS.md`.
//!
//! Driver options (after `cargo bench --bench produce --`, or on the binary):
//! `--brokers mock3,tansu,kafka` `--clients kpax,rdkafka,java,franz`
//! `--cases 100:5000000,1024:1500000` `--acks all,1` `--compression none,lz4,zstd`
//! `--reps 5` `--pin` (client on cpu0, broker on cpu1) `--batch 65536`
//! `--linger-ms 5` `--raw FILE` (appends every client line) `--icount N1:N2`
//! (instructions per record under callgrind: (Ir(N2) - Ir(N1)) / (N2 - N1),
//! which cancels start-up; runs against mock3, one repetition).

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{
    num, offset_of, opt, opts, pool_for, self_cpu, thread_cpu, threads_field, BoxError, Broker,
    Metric, Run,
};

fn main() {
    let args = common::args();
    let r = match args.first().map(String::as_str) {
        Some("serve-mock") => common::serve_mock(&args[1..]),
        Some("client") => client(&args[1..]),
        _ => drive(&args),
    };
    if let Err(e) = r {
        eprintln!("produce bench: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- clients

struct ClientArgs {
    which: String,
    bootstrap: String,
    topic: String,
    compression: String,
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
        topic: o
            .get("topic")
            .cloned()
            .unwrap_or_else(|| common::TOPIC.into()),
        compression: o
            .get("compression")
            .cloned()
            .unwrap_or_else(|| "none".into()),
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
    let (user, sys) = (c1.0 - c0.0, c1.1 - c0.1);
    let cpu = user + sys;
    let n = a.records as f64;
    println!(
        "client={} size={} records={} acks={} compression={} ok={} err={} enq_s={:.4} wall_s={:.4} \
         rec_s={:.0} user_s={user:.3} sys_s={sys:.3} cpu_s={cpu:.3} us_per_rec={:.4} rss_kb={} \
         threads={}",
        a.which,
        a.size,
        a.records,
        if a.acks_all { "all" } else { "1" },
        a.compression,
        out.ok,
        out.err,
        out.enqueued_s,
        out.wall_s,
        n / out.wall_s,
        cpu * 1e6 / n,
        common::peak_rss_kb(),
        threads_field(&out.threads),
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
    let pool = bytes::Bytes::from(pool_for(&a.compression));
    let span = pool.len() - a.size;
    let compression = match a.compression.as_str() {
        "none" => kpax::proto::records::Compression::None,
        "gzip" => kpax::proto::records::Compression::Gzip,
        "snappy" => kpax::proto::records::Compression::Snappy,
        "lz4" => kpax::proto::records::Compression::Lz4,
        "zstd" => kpax::proto::records::Compression::Zstd,
        c => return Err(format!("--compression {c:?}: none, gzip, snappy, lz4 or zstd").into()),
    };
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
            .with_compression(compression);
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
            let rec = ProducerRecord::new(a.topic.as_str(), pool.slice(off..off + a.size));
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

    let pool = pool_for(&a.compression);
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
        .set("compression.type", &a.compression)
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
        let mut rec = BaseRecord::<(), [u8], ()>::to(&a.topic).payload(&pool[off..off + a.size]);
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

fn drive(args: &[String]) -> Result<(), BoxError> {
    let o = opts(args);
    let brokers = common::list(&o, "brokers", "mock3");
    let clients = common::list(&o, "clients", "kpax,rdkafka");
    let cases = common::cases(&o, "100:5000000,1024:1500000");
    let acks = common::list(&o, "acks", "all,1");
    let codecs = common::list(&o, "compression", "none");
    let reps: usize = opt(&o, "reps", 5);
    let pin = o.contains_key("pin");
    let batch: usize = opt(&o, "batch", 65536);
    let linger: u64 = opt(&o, "linger-ms", 5);
    let partitions = common::list(&o, "partitions", &common::PARTITIONS.to_string());
    let mut raw = common::raw_file(&o)?;
    if let Some(icount) = o.get("icount") {
        return drive_icount(icount, &cases, &acks, batch, linger);
    }
    println!(
        "# produce bench: brokers {brokers:?}, clients {clients:?}, cases {cases:?}, acks {acks:?}, \
         compression {codecs:?}, {reps} reps, pin {pin}, batch {batch}, linger {linger} ms, \
         partitions {partitions:?}"
    );
    println!("# load: {}", common::load());
    let floor = common::copy_crc_floor();
    println!("# copy + CRC32C floor: {} s/GB", common::fmt(floor));
    for broker in &brokers {
        for parts in &partitions {
            let parts: i32 = parts
                .parse()
                .map_err(|_| format!("--partitions {parts:?}"))?;
            for &(size, n) in &cases {
                for ack in &acks {
                    for codec in &codecs {
                        let mut runs: BTreeMap<String, Vec<Run>> = BTreeMap::new();
                        for rep in 0..reps {
                            // Rotate which client goes first.
                            let mut order = clients.clone();
                            order.rotate_left(rep % clients.len().max(1));
                            for which in &order {
                                let b = Broker::start(broker, pin, parts)?;
                                let mut cmd = common::client_command(
                                    which,
                                    "produce",
                                    broker,
                                    pin.then_some("0"),
                                )?;
                                cmd.args(["--bootstrap", &b.bootstrap, "--topic", &b.topic])
                                    .args([
                                        "--records",
                                        &n.to_string(),
                                        "--size",
                                        &size.to_string(),
                                    ])
                                    .args(["--acks", ack, "--batch", &batch.to_string()])
                                    .args(["--linger-ms", &linger.to_string()])
                                    .args(["--compression", codec]);
                                let prefix = format!(
                                    "bench=produce broker={broker} pin={pin} rep={rep} \
                                     partitions={parts}"
                                );
                                let run = common::run_client(cmd, which, &b, &prefix, &mut raw)?;
                                drop(b);
                                runs.entry(which.clone()).or_default().push(run);
                            }
                        }
                        let own: [Metric; 4] = [
                            ("rec/s", &|r| num(&r.client, "rec_s")),
                            ("wall s", &|r| num(&r.client, "wall_s")),
                            ("enqueued at s", &|r| num(&r.client, "enq_s")),
                            ("ack tail % of wall", &|r| {
                                let w = num(&r.client, "wall_s");
                                100.0 * (w - num(&r.client, "enq_s")) / w
                            }),
                        ];
                        let rows: Vec<Metric> = own.into_iter().chain(common::COST_ROWS).collect();
                        common::report(
                            &format!(
                                "{broker}, {parts} partitions, {size} B x {n}, acks={ack}, \
                             compression {codec}"
                            ),
                            &clients,
                            &runs,
                            &rows,
                        );
                        common::report_floor(&runs, (size as u64 * n) as f64, floor);
                    }
                }
            }
        }
    }
    println!("# load after: {}", common::load());
    Ok(())
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
                    let b = Broker::start("mock3", false, common::PARTITIONS)?;
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
