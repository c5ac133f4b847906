//! The `kpax` binary over TLS and SASL, against kpax's in-process fake
//! cluster (no broker on this machine offers TLS or SASL): certificates
//! from a test CA, SCRAM and PLAIN credentials from the environment, a
//! password file or a config file, and the one-line errors for refused
//! credentials, an untrusted certificate and incomplete flags.

use kpax_fake::{FakeCluster, FakeOptions, FakeSasl, FakeTls};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use tokio::process::Command;

const RUN_BOUND: Duration = Duration::from_secs(30);

/// Runs `kpax args` with `env` set (and no inherited KPAX_* variables).
async fn kpax(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kpax"));
    cmd.args(args)
        .env_remove("KPAX_BROKERS")
        .env_remove("KPAX_SASL_PASSWORD")
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

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: exit {:?}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A failure as one `kpax: error: ...` line with a non-zero exit.
fn one_line_error(o: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{what}: succeeded\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: stderr is not one line: {err}");
    assert!(lines[0].starts_with("kpax: error: "), "{what}: {err}");
    lines[0].to_string()
}

struct Pki {
    ca: String,
    cert: String,
    key: String,
}

/// A CA and a certificate it signed for localhost / 127.0.0.1.
fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "kpax cli test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// SASL_SSL with SCRAM-SHA-512: produce, consume and meta through the
/// binary; the password from the environment, then from a file, then
/// from a properties file with every setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_over_sasl_ssl() {
    let pki = pki();
    let fake = FakeCluster::with_options(FakeOptions {
        tls: Some(FakeTls::new(pki.cert.as_bytes(), pki.key.as_bytes()).unwrap()),
        sasl: Some(FakeSasl::new().with_user("alice", "alice-pw")),
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    fake.create_topic("secure", 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &pki.ca);
    let b = fake.bootstrap();
    let common = [
        "-b",
        b.as_str(),
        "--tls-ca",
        ca.as_str(),
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--sasl-username",
        "alice",
    ];
    let env = [("KPAX_SASL_PASSWORD", "alice-pw")];

    let mut args = vec!["produce"];
    args.extend_from_slice(&common);
    args.extend_from_slice(&["secure", "one", "two"]);
    ok(&kpax(&args, &env).await, "produce over SASL_SSL");

    let pw = write(dir.path(), "pw", "alice-pw\n");
    let mut args = vec!["consume"];
    args.extend_from_slice(&common);
    args.extend_from_slice(&[
        "--sasl-password-file",
        pw.as_str(),
        "secure",
        "--offset",
        "earliest",
        "-n",
        "2",
    ]);
    let out = ok(&kpax(&args, &[]).await, "consume over SASL_SSL");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["one", "two"], "{out}");

    let props = write(
        dir.path(),
        "client.properties",
        &format!(
            "bootstrap.servers={b}\nsecurity.protocol=SASL_SSL\nssl.ca.location={ca}\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=alice\nsasl.password=alice-pw\n"
        ),
    );
    let out = ok(
        &kpax(&["meta", "--config", props.as_str()], &[]).await,
        "meta from a properties file",
    );
    assert!(out.contains("secure"), "{out}");
    assert!(
        fake.authentications() >= 3,
        "the fake saw no SASL exchanges"
    );
}

/// Refused credentials, an untrusted certificate, and incomplete flags are
/// one-line errors, quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_errors_are_one_line() {
    let pki = pki();
    let other = pki_other_ca();
    let fake = FakeCluster::with_options(FakeOptions {
        tls: Some(FakeTls::new(pki.cert.as_bytes(), pki.key.as_bytes()).unwrap()),
        sasl: Some(FakeSasl::new().with_user("alice", "alice-pw")),
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &pki.ca);
    let wrong_ca = write(dir.path(), "other.pem", &other);
    let b = fake.bootstrap();
    let t0 = Instant::now();

    let e = one_line_error(
        &kpax(
            &[
                "meta",
                "-b",
                &b,
                "--tls-ca",
                &ca,
                "--sasl-mechanism",
                "PLAIN",
                "--sasl-username",
                "alice",
                "--timeout",
                "10s",
            ],
            &[("KPAX_SASL_PASSWORD", "wrong")],
        )
        .await,
        "wrong password",
    );
    assert!(e.to_lowercase().contains("auth"), "{e}");

    let e = one_line_error(
        &kpax(
            &[
                "meta",
                "-b",
                &b,
                "--tls-ca",
                &wrong_ca,
                "--sasl-mechanism",
                "PLAIN",
                "--sasl-username",
                "alice",
                "--timeout",
                "10s",
            ],
            &[("KPAX_SASL_PASSWORD", "alice-pw")],
        )
        .await,
        "untrusted certificate",
    );
    assert!(
        e.to_lowercase().contains("tls") || e.contains("certificate"),
        "{e}"
    );

    let e = one_line_error(
        &kpax(
            &[
                "meta",
                "-b",
                &b,
                "--tls-ca",
                &ca,
                "--sasl-username",
                "alice",
            ],
            &[],
        )
        .await,
        "no mechanism",
    );
    assert!(e.contains("--sasl-mechanism"), "{e}");
    let e = one_line_error(
        &kpax(
            &[
                "meta",
                "-b",
                &b,
                "--sasl-mechanism",
                "SCRAM-SHA-256",
                "--sasl-username",
                "alice",
            ],
            &[],
        )
        .await,
        "no password",
    );
    assert!(e.contains("KPAX_SASL_PASSWORD"), "{e}");
    let e = one_line_error(
        &kpax(&["meta", "-b", &b, "--security-protocol", "TLS1"], &[]).await,
        "bad protocol",
    );
    assert!(e.contains("security protocol"), "{e}");
    let e = one_line_error(
        &kpax(&["meta", "-b", &b, "--tls-cert", &ca], &[]).await,
        "cert without key",
    );
    assert!(e.contains("--tls-key"), "{e}");
    assert!(
        t0.elapsed() < Duration::from_secs(25),
        "took {:?}",
        t0.elapsed()
    );
}

/// A certificate from a CA the fake's certificate was not signed by.
fn pki_other_ca() -> String {
    pki().ca
}

/// OAUTHBEARER from the command line: the token comes from the password
/// sources and no user is needed; a refused token is one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_token_from_the_environment() {
    let fake = FakeCluster::with_options(FakeOptions {
        sasl: Some(
            FakeSasl::new()
                .with_mechanisms(&["OAUTHBEARER"])
                .with_oauthbearer_token("eyJ.good.token"),
        ),
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    fake.create_topic("bearer", 1).unwrap();
    let b = fake.bootstrap();
    let args = [
        "produce",
        "-b",
        b.as_str(),
        "--sasl-mechanism",
        "OAUTHBEARER",
        "bearer",
        "hello",
    ];
    ok(
        &kpax(&args, &[("KPAX_SASL_PASSWORD", "eyJ.good.token")]).await,
        "produce with a bearer token",
    );
    assert!(fake.authentications() >= 1, "authenticated");
    let line = one_line_error(
        &kpax(&args, &[("KPAX_SASL_PASSWORD", "eyJ.bad.token")]).await,
        "a refused token",
    );
    assert!(line.contains("OAUTHBEARER"), "{line}");
    assert!(
        !line.contains("eyJ.bad.token"),
        "the token is never shown: {line}"
    );
}
