//! The Java client (kafka-clients of the bundled Kafka release) for interop
//! tests, driven through `tests/java/Helper.java`: the helper's header
//! comment is the line protocol used here.
//!
//! The helper is compiled once per test process with `javac` into a temp
//! folder (a launch then takes ~0.2 s instead of the source launcher's
//! ~1.5 s) and run with small heaps. Without a JDK or the release's jars the
//! tests skip with the reason (under CI they fail).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::KafkaNodes;

/// The Java client of one Kafka release.
#[derive(Debug, Clone)]
pub struct Java {
    lib: PathBuf,
    classes: PathBuf,
}

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/Helper.java")
}

/// Per lib folder, where the helper was compiled to (or why not).
type Compiled = Vec<(PathBuf, Result<PathBuf, String>)>;

/// Compiles the helper once per process (per lib folder).
fn compile(lib: &Path) -> Result<PathBuf, String> {
    static DONE: OnceLock<Mutex<Compiled>> = OnceLock::new();
    let done = DONE.get_or_init(|| Mutex::new(Vec::new()));
    let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = done.iter().find(|(l, _)| l == lib) {
        return r.clone();
    }
    let out = std::env::temp_dir().join(format!(
        "kpax-java-helper-{}-{}",
        std::process::id(),
        done.len()
    ));
    let r = (|| {
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let o = Command::new("javac")
            .arg("-nowarn")
            .arg("-d")
            .arg(&out)
            .arg("-cp")
            .arg(lib.join("*"))
            .arg(source())
            .output()
            .map_err(|e| format!("javac (a JDK is needed for the Java interop tests): {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "javac Helper.java failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok(out.clone())
    })();
    done.push((lib.to_path_buf(), r.clone()));
    r
}

impl Java {
    /// The Java client of `nodes`' release, or `None` after printing why
    /// (a failure under CI).
    pub fn of(nodes: &KafkaNodes) -> Option<Java> {
        let lib = nodes.lib();
        let found = std::fs::read_dir(&lib).ok().is_some_and(|d| {
            d.filter_map(|e| e.ok()).any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("kafka-clients-")
            })
        });
        if !found {
            super::skip_or_fail(&format!(
                "no kafka-clients jar in {} (run scripts/kafka.sh fetch)",
                lib.display()
            ));
            return None;
        }
        match compile(&lib) {
            Ok(classes) => Some(Java { lib, classes }),
            Err(e) => {
                super::skip_or_fail(&e);
                None
            }
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cp = std::ffi::OsString::from(self.lib.join("*"));
        cp.push(":");
        cp.push(&self.classes);
        let mut c = Command::new("java");
        c.args([
            "-Xms32m",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
        ])
        .arg("-cp")
        .arg(cp)
        .arg("Helper")
        .args(args);
        c
    }

    /// Starts the helper with `args`; its stdout lines are collected as
    /// they come.
    pub fn spawn(&self, args: &[&str]) -> JavaProcess {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start java");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        let errors = Arc::new(Mutex::new(String::new()));
        let err_sink = Arc::clone(&errors);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut e = err_sink.lock().unwrap();
                e.push_str(&line);
                e.push('\n');
            }
        });
        JavaProcess {
            args: args.join(" "),
            stdin: child.stdin.take(),
            child,
            lines,
            errors,
        }
    }

    /// Runs the helper with `args`, feeds it `input`, and returns its
    /// stdout lines once it exits successfully within `bound`.
    pub async fn run(&self, args: &[&str], input: &str, bound: Duration) -> Vec<String> {
        let mut p = self.spawn(args);
        p.send(input);
        p.close_stdin();
        p.wait(bound).await
    }
}

/// A running helper.
pub struct JavaProcess {
    args: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    errors: Arc<Mutex<String>>,
}

impl JavaProcess {
    /// Writes `text` to the helper's stdin.
    pub fn send(&mut self, text: &str) {
        let w = self.stdin.as_mut().expect("stdin open");
        w.write_all(text.as_bytes()).expect("write to java");
        w.flush().expect("flush to java");
    }

    /// Closes the helper's stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Every stdout line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the lines so far; panics after `bound`.
    pub async fn wait_until(
        &mut self,
        what: &str,
        bound: Duration,
        done: impl Fn(&[String]) -> bool,
    ) {
        let start = Instant::now();
        loop {
            if done(&self.lines.lock().unwrap()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // It may have printed the last lines just before exiting.
                tokio::time::sleep(Duration::from_millis(200)).await;
                if done(&self.lines.lock().unwrap()) {
                    return;
                }
                panic!(
                    "java {}: exited ({status}) before {what}\nstdout: {:?}\nstderr: {}",
                    self.args,
                    self.lines(),
                    self.errors.lock().unwrap()
                );
            }
            assert!(
                start.elapsed() < bound,
                "java {}: no {what} within {bound:?}\nstdout tail: {:?}\nstderr: {}",
                self.args,
                self.lines().iter().rev().take(5).collect::<Vec<_>>(),
                self.errors.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the helper to exit successfully within `bound` and
    /// returns its stdout lines (all printed before exit).
    pub async fn wait(mut self, bound: Duration) -> Vec<String> {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for java") {
                break s;
            }
            if start.elapsed() > bound {
                let _ = self.child.kill();
                panic!(
                    "java {} ran longer than {bound:?}\nstdout tail: {:?}\nstderr: {}",
                    self.args,
                    self.lines().iter().rev().take(5).collect::<Vec<_>>(),
                    self.errors.lock().unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // The reader threads end at EOF, right after the exit.
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_secs(2)
            && !self
                .lines
                .lock()
                .unwrap()
                .last()
                .is_some_and(|l| l.starts_with("done"))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            status.success(),
            "java {}: {status}\nstderr: {}\nstdout tail: {:?}",
            self.args,
            self.errors.lock().unwrap(),
            self.lines().iter().rev().take(5).collect::<Vec<_>>()
        );
        self.lines()
    }

    /// Asks a `consume --stdin-control` helper to stop, and waits for it.
    pub async fn stop(mut self, bound: Duration) -> Vec<String> {
        self.send("stop\n");
        self.wait(bound).await
    }
}

impl Drop for JavaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes as the helper writes them: lowercase hex, `-` for null.
pub fn hex(b: Option<&[u8]>) -> String {
    match b {
        None => "-".into(),
        Some(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// The helper's hex (or `-`) back to bytes.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s == "-" {
        return None;
    }
    Some(
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex from java"))
            .collect(),
    )
}

/// A header list in the helper's encoding.
pub fn headers(hs: &[(&str, Option<&[u8]>)]) -> String {
    hs.iter()
        .map(|(k, v)| format!("{k}={}", hex(*v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// One `produce` input line.
pub fn record_line(
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    hs: &[(&str, Option<&[u8]>)],
) -> String {
    format!(
        "{}\t{}\t{}\t{}\n",
        partition.map_or("-".to_string(), |p| p.to_string()),
        hex(key),
        hex(value),
        headers(hs)
    )
}

/// A record as the helper's consumer printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Option<Vec<u8>>,
    /// Its headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The `rec` lines of a consume.
pub fn records(lines: &[String]) -> Vec<JavaRecord> {
    lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0] == "rec").then(|| JavaRecord {
                partition: f[1].parse().unwrap(),
                offset: f[2].parse().unwrap(),
                key: unhex(f[3]),
                value: unhex(f[4]),
                headers: if f[5].is_empty() {
                    Vec::new()
                } else {
                    f[5].split(',')
                        .map(|h| {
                            let (k, v) = h.split_once('=').expect("name=hex");
                            (k.to_string(), unhex(v))
                        })
                        .collect()
                },
            })
        })
        .collect()
}

/// The `ack` lines of a produce: `(seq, partition, offset)`, sorted by seq.
pub fn acks(lines: &[String]) -> Vec<(usize, i32, i64)> {
    let mut out: Vec<(usize, i32, i64)> = lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0] == "ack").then(|| {
                (
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                )
            })
        })
        .collect();
    out.sort();
    out
}

/// The `err` lines of a produce: `(seq, error)`.
pub fn errors(lines: &[String]) -> Vec<(usize, String)> {
    lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(3, '\t').collect();
            (f[0] == "err").then(|| (f[1].parse().unwrap(), f[2].to_string()))
        })
        .collect()
}

/// The partitions of the `assigned`/`revoked`/`lost` line `l`, if it is one.
pub fn assignment_change(l: &str) -> Option<(&str, Vec<i32>)> {
    let (kind, ps) = l.split_once('\t').unwrap_or((l, ""));
    matches!(kind, "assigned" | "revoked" | "lost").then(|| {
        (
            kind,
            ps.split(',')
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().unwrap())
                .collect(),
        )
    })
}
