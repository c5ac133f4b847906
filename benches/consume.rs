//! Consume throughput and client CPU: kpax against rdkafka, same broker, same data.
//!
//! One binary, four roles (each client in its own process, so its CPU time is
//! measured apart from the broker's and from the other client's):
//!
//! - driver (the default): for every case and repetition and for each client
//!   it starts a fresh librdkafka mock (`serve-mock`), fills topic `bench`
//!   (6 partitions) with N records from this process (rdkafka producer, not
//!   timed), reads the partitions' watermarks, runs `client kpax|rdkafka` in a
//!   fresh process, samples the broker's CPU around it and prints the medians
//!   side by side with the ratios kpax/rdkafka;
//! - `serve-mock BROKERS`: the mock cluster, printing `BOOTSTRAP=...`;
//! - `fill --bootstrap B --records N --size S`: the fill alone, printing
//!   `RANGES=low-high,...` (for profiling a client by hand);
//! - `client kpax|rdkafka --bootstrap B --records N --size S --ranges R`:
//!   consumes N records by assignment (no group) and prints one line.
//!
//! The mock keeps only the last 5 MiB per partition (not configurable), so
//! "from the beginning" means the retained range `[low, high)` of each
//! partition; the client reads all of it, re-assigns every partition at `low`
//! (a pass) and repeats until it has N records, stopping at the N-th.
//!
//! `scripts/bench-consume.sh` builds and runs it; the results and the exact
//! commands are in `benches/CONSUME_RESULTS.md`. Driver options:
//! `--brokers mock3,mock1` `--cases 100:2000000,1024:600000` `--reps 3`
//! `--pin` (client on cpu0, broker on cpu1) `--raw FILE` `--no-check-crcs`
//! (rdkafka: `check.crcs=false`; kpax always verifies CRCs).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    num, offset_of, opt, opts, pool_for, self_cpu, thread_cpu, threads_field, BoxError, Broker,
    Metric, Run, PARTITIONS,
};

/// Consumer settings shared by both clients.
const FETCH_MAX_BYTES: i32 = 50 << 20;
const PARTITION_MAX_BYTES: i32 = 8 << 20;
const FETCH_MAX_WAIT_MS: u64 = 5;

fn main() {
    let args = common::args();
    let r = match args.first().map(String::as_str) {
        Some("serve-mock") => common::serve_mock(&args[1..]),
        Some("fill") => fill_cmd(&args[1..]),
        Some("client") => client(&args[1..]),
        _ => drive(&args),
    };
    if let Err(e) = r {
        eprintln!("consume bench: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- fill

/// Produces `n` keyless records of `size` bytes (rdkafka, acks=1, 1 MB
/// batches), waits for every ack, then returns each partition's retained
/// range `(low, high)` from ListOffsets.
fn fill(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    n: u64,
    size: usize,
    compression: &str,
) -> Result<Vec<(i64, i64)>, BoxError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let pool = pool_for(compression);
    let span = pool.len() - size;
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "1")
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("compression.type", compression)
        .set("queue.buffering.max.messages", "10000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()?;
    for i in 0..n {
        let off = offset_of(i, span);
        let mut rec = BaseRecord::<(), [u8], ()>::to(topic).payload(&pool[off..off + size]);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    producer.poll(Duration::from_millis(1));
                    rec = r;
                }
                Err((e, _)) => return Err(format!("fill send: {e:?}").into()),
            }
        }
        if i % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60))?;
    drop(producer);
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kpax-bench-fill")
        .create()?;
    // Kafka may answer ListOffsets from a replica that has not caught up
    // yet: look again until the ranges hold at least what was written
    // (the mock, which drops old records, holds less: its ranges stand).
    // A partition's leader may also not know yet that it leads (a fresh
    // 1,000-partition topic on Kafka: NotLeaderForPartition): ask again.
    let t0 = Instant::now();
    loop {
        let mut ranges = Vec::new();
        for p in 0..partitions {
            let r = loop {
                match c.fetch_watermarks(topic, p, Duration::from_secs(10)) {
                    Ok(r) => break r,
                    Err(e) if t0.elapsed() < Duration::from_secs(30) => {
                        eprintln!("watermarks of {topic}-{p}: {e}; asking again");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            ranges.push(r);
        }
        let held: i64 = ranges.iter().map(|(l, h)| h - l).sum();
        if held >= n as i64 || (held > 0 && ranges.iter().any(|(l, _)| *l > 0)) {
            return Ok(ranges);
        }
        if t0.elapsed() > Duration::from_secs(30) {
            return Err(format!("fill: {held} of {n} records in {topic} after 30 s").into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ranges_arg(r: &[(i64, i64)]) -> String {
    r.iter()
        .map(|(l, h)| format!("{l}-{h}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn fill_cmd(args: &[String]) -> Result<(), BoxError> {
    let o = opts(args);
    let boot = o.get("bootstrap").ok_or("--bootstrap")?;
    let topic = o.get("topic").map_or(common::TOPIC, String::as_str);
    let compression = o.get("compression").map_or("none", String::as_str);
    let r = fill(
        boot,
        topic,
        opt(&o, "partitions", PARTITIONS),
        opt(&o, "records", 1_000_000),
        opt(&o, "size", 100),
        compression,
    )?;
    println!("RANGES={}", ranges_arg(&r));
    Ok(())
}

// ---------------------------------------------------------------- clients

struct ClientArgs {
    bootstrap: String,
    topic: String,
    records: u64,
    /// Per partition `(low, high)`: the range read in each pass.
    ranges: Vec<(i64, i64)>,
    check_crcs: bool,
}

impl ClientArgs {
    fn per_pass(&self) -> u64 {
        self.ranges.iter().map(|(l, h)| (h - l) as u64).sum()
    }
}

/// What a client saw, sampled at the N-th record (before teardown).
struct Outcome {
    wall_s: f64,
    got: u64,
    bytes: u64,
    passes: u64,
    first_s: f64,
    cpu: (f64, f64),
    threads: BTreeMap<String, f64>,
}

fn client(args: &[String]) -> Result<(), BoxError> {
    let which = args.first().cloned().unwrap_or_default();
    let o = opts(&args[1..]);
    let ranges = common::parse_ranges(o.get("ranges").ok_or("--ranges")?)?;
    let a = ClientArgs {
        bootstrap: o.get("bootstrap").cloned().ok_or("--bootstrap")?,
        topic: o
            .get("topic")
            .cloned()
            .unwrap_or_else(|| common::TOPIC.into()),
        records: opt(&o, "records", 1_000_000),
        ranges,
        check_crcs: !o.contains_key("no-check-crcs"),
    };
    if a.per_pass() == 0 {
        return Err("empty ranges".into());
    }
    let size: usize = opt(&o, "size", 100);
    let c0 = self_cpu();
    let t0 = Instant::now();
    let out = match which.as_str() {
        "kpax" => run_kpax(&a, t0)?,
        "rdkafka" => run_rdkafka(&a, t0)?,
        w => return Err(format!("unknown client {w:?}").into()),
    };
    let (user, sys) = (out.cpu.0 - c0.0, out.cpu.1 - c0.1);
    let cpu = user + sys;
    let n = out.got as f64;
    println!(
        "client={which} size={size} records={} got={} bytes={} passes={} per_pass={} first_s={:.4} \
         wall_s={:.4} rec_s={:.0} mb_s={:.1} user_s={user:.3} sys_s={sys:.3} cpu_s={cpu:.3} \
         us_per_rec={:.4} rss_kb={} threads={}",
        a.records,
        out.got,
        out.bytes,
        out.passes,
        a.per_pass(),
        out.first_s,
        out.wall_s,
        n / out.wall_s,
        out.bytes as f64 / out.wall_s / 1e6,
        cpu * 1e6 / n,
        common::peak_rss_kb(),
        threads_field(&out.threads),
    );
    if out.got != a.records || out.bytes != a.records * size as u64 {
        return Err(format!(
            "read {} records / {} bytes, expected {} / {}",
            out.got,
            out.bytes,
            a.records,
            a.records * size as u64
        )
        .into());
    }
    Ok(())
}

fn run_kpax(a: &ClientArgs, t0: Instant) -> Result<Outcome, BoxError> {
    use kpax::consumer::{Consumer, ConsumerConfig, StartAt};

    let workers: usize = std::env::var("KPAX_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let bootstrap: Vec<String> = a.bootstrap.split(',').map(str::to_string).collect();
        let cluster = kpax::Cluster::new(bootstrap, kpax::ClientConfig::default())?;
        let config = ConsumerConfig::default()
            .with_fetch_max_bytes(FETCH_MAX_BYTES, PARTITION_MAX_BYTES)
            .with_fetch_max_wait(Duration::from_millis(FETCH_MAX_WAIT_MS))
            .with_buffer_memory(1 << 30)
            .with_auto_commit(false);
        let c = Consumer::new(cluster, config)?;
        // Stall guard off the hot path (a per-recv tokio timeout cost ~5 % of
        // the client's instructions under callgrind).
        let progress = Arc::new(AtomicU64::new(0));
        watchdog(progress.clone());
        let per_pass = a.per_pass();
        let (mut got, mut bytes, mut xsum, mut passes) = (0u64, 0u64, 0u64, 0u64);
        let mut first_s = 0.0;
        'outer: loop {
            passes += 1;
            // Each partition at its low offset. `assign(.., StartAt::Offset(_))`
            // never resolves a position (kpax bug: the fetcher's resolve_starts
            // skips `Offset`), so assign at Earliest (= low on the mock) and
            // seek to the offset at once; seek sets the position directly.
            if passes == 1 {
                c.assign(
                    (0..a.ranges.len())
                        .map(|p| kpax::TopicPartition::new(a.topic.clone(), p as i32)),
                    StartAt::Earliest,
                );
            }
            for (p, (low, _)) in a.ranges.iter().enumerate() {
                c.seek(&a.topic, p as i32, StartAt::Offset(*low));
            }
            let mut in_pass = 0;
            while in_pass < per_pass {
                let r = c.recv().await?;
                if got == 0 {
                    first_s = t0.elapsed().as_secs_f64();
                }
                let v = r.value().unwrap_or(&[]);
                bytes += v.len() as u64;
                xsum = xsum.wrapping_add(u64::from(*v.first().unwrap_or(&0)));
                in_pass += 1;
                got += 1;
                progress.store(got, Ordering::Relaxed);
                if got == a.records {
                    break 'outer;
                }
            }
        }
        std::hint::black_box(xsum);
        let out = Outcome {
            wall_s: t0.elapsed().as_secs_f64(),
            got,
            bytes,
            passes,
            first_s,
            cpu: self_cpu(),
            threads: thread_cpu("self"),
        };
        c.close().await;
        Ok(out)
    })
}

/// Exits the process when `progress` has not moved for 20 s.
fn watchdog(progress: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let mut last = u64::MAX;
        loop {
            std::thread::sleep(Duration::from_secs(20));
            let now = progress.load(Ordering::Relaxed);
            if now == last {
                eprintln!("consume bench: client stalled after {now} records");
                std::process::exit(2);
            }
            last = now;
        }
    });
}

fn run_rdkafka(a: &ClientArgs, t0: Instant) -> Result<Outcome, BoxError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};

    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("group.id", "kpax-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.max.bytes", FETCH_MAX_BYTES.to_string())
        .set("max.partition.fetch.bytes", PARTITION_MAX_BYTES.to_string())
        .set("receive.message.max.bytes", "104857600")
        .set("fetch.wait.max.ms", FETCH_MAX_WAIT_MS.to_string())
        .set("queued.min.messages", "10000000")
        .set("queued.max.messages.kbytes", "2097151")
        .set("check.crcs", if a.check_crcs { "true" } else { "false" })
        .create()?;
    let progress = Arc::new(AtomicU64::new(0));
    watchdog(progress.clone());
    let per_pass = a.per_pass();
    let (mut got, mut bytes, mut xsum, mut passes) = (0u64, 0u64, 0u64, 0u64);
    let mut first_s = 0.0;
    'outer: loop {
        passes += 1;
        let mut tpl = TopicPartitionList::new();
        for (p, (low, _)) in a.ranges.iter().enumerate() {
            tpl.add_partition_offset(&a.topic, p as i32, Offset::Offset(*low))?;
        }
        c.assign(&tpl)?;
        let mut in_pass = 0;
        while in_pass < per_pass {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    if got == 0 {
                        first_s = t0.elapsed().as_secs_f64();
                    }
                    let v = m.payload().unwrap_or(&[]);
                    bytes += v.len() as u64;
                    xsum = xsum.wrapping_add(u64::from(*v.first().unwrap_or(&0)));
                    in_pass += 1;
                    got += 1;
                    progress.store(got, Ordering::Relaxed);
                    if got == a.records {
                        break 'outer;
                    }
                }
                Some(Err(e)) => eprintln!("rdkafka consume error: {e:?}"),
                None => {}
            }
        }
    }
    std::hint::black_box(xsum);
    Ok(Outcome {
        wall_s: t0.elapsed().as_secs_f64(),
        got,
        bytes,
        passes,
        first_s,
        cpu: self_cpu(),
        threads: thread_cpu("self"),
    })
}

// ---------------------------------------------------------------- driver

fn drive(args: &[String]) -> Result<(), BoxError> {
    let o = opts(args);
    let brokers = common::list(&o, "brokers", "mock3");
    let clients = common::list(&o, "clients", "kpax,rdkafka");
    let cases = common::cases(&o, "100:2000000,1024:600000");
    let codecs = common::list(&o, "compression", "none");
    let reps: usize = opt(&o, "reps", 3);
    let pin = o.contains_key("pin");
    let crcs = !o.contains_key("no-check-crcs");
    let partitions = common::list(&o, "partitions", &PARTITIONS.to_string());
    let mut raw = common::raw_file(&o)?;
    println!(
        "# consume bench: brokers {brokers:?}, clients {clients:?}, cases {cases:?}, \
         compression {codecs:?}, {reps} reps, pin {pin}, partitions {partitions:?}, fetch max \
         {FETCH_MAX_BYTES} B / partition {PARTITION_MAX_BYTES} B, max wait {FETCH_MAX_WAIT_MS} ms, \
         rdkafka check.crcs {crcs}"
    );
    println!("# load: {}", common::load());
    let floor = common::copy_crc_floor();
    println!("# copy + CRC32C floor: {} s/GB", common::fmt(floor));
    for broker in &brokers {
        // On Kafka one topic per case, filled once, serves every run (it
        // keeps everything); the mock is fresh and filled per client run.
        let fresh = broker != "kafka";
        for parts in &partitions {
            let parts: i32 = parts
                .parse()
                .map_err(|_| format!("--partitions {parts:?}"))?;
            for &(size, n) in &cases {
                for codec in &codecs {
                    let mut runs: BTreeMap<String, Vec<Run>> = BTreeMap::new();
                    let mut kept: Option<(Broker, Vec<(i64, i64)>)> = None;
                    for rep in 0..reps {
                        let mut order = clients.clone();
                        order.rotate_left(rep % clients.len().max(1));
                        for which in &order {
                            if fresh || kept.is_none() {
                                drop(kept.take());
                                let b = Broker::start(broker, pin, parts)?;
                                let ranges = fill(&b.bootstrap, &b.topic, parts, n, size, codec)?;
                                std::thread::sleep(Duration::from_millis(300));
                                kept = Some((b, ranges));
                            }
                            let (b, ranges) = kept.as_ref().ok_or("no broker")?;
                            let mut cmd = common::client_command(
                                which,
                                "consume",
                                broker,
                                pin.then_some("0"),
                            )?;
                            cmd.args(["--bootstrap", &b.bootstrap, "--topic", &b.topic])
                                .args(["--records", &n.to_string(), "--size", &size.to_string()])
                                .args([
                                    "--ranges",
                                    &common::ranges_value(ranges, &std::env::temp_dir())?,
                                ]);
                            if !crcs && which == "rdkafka" {
                                cmd.arg("--no-check-crcs");
                            }
                            let prefix = format!(
                                "bench=consume broker={broker} pin={pin} rep={rep} \
                                 partitions={parts} compression={codec}"
                            );
                            let run = common::run_client(cmd, which, b, &prefix, &mut raw)?;
                            if fresh {
                                kept = None;
                            }
                            runs.entry(which.clone()).or_default().push(run);
                        }
                    }
                    drop(kept);
                    let own: [Metric; 4] = [
                        ("rec/s", &|r| num(&r.client, "rec_s")),
                        ("MB/s", &|r| num(&r.client, "mb_s")),
                        ("wall s", &|r| num(&r.client, "wall_s")),
                        ("first record at s", &|r| num(&r.client, "first_s")),
                    ];
                    let passes: Metric = ("passes", &|r| num(&r.client, "passes"));
                    let rows: Vec<Metric> = own
                        .into_iter()
                        .chain(common::COST_ROWS)
                        .chain([passes])
                        .collect();
                    common::report(
                        &format!(
                            "{broker}, {parts} partitions, {size} B x {n}, compression {codec}"
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
    println!("# load after: {}", common::load());
    Ok(())
}
