//! No secret in kpax's logs: every trace, at TRACE level, captured by a
//! global subscriber while kpax authenticates against Apache Kafka's own
//! SASL listeners (`KPAX_KAFKA`) with each mechanism, right and wrong. A
//! test binary of its own, so that the global subscriber sees every thread
//! and no other test's logging competes with it. Without `KPAX_KAFKA` it
//! prints why it skips (under CI it fails).

mod harness;

use harness::security::{base, connect_error, roundtrip, tls, unsecured_jws};
use harness::{Cluster as TestCluster, Listener};
use kpax::config::{OAuthBearerToken, SaslConfig, SecurityProtocol};
use kpax::Error;

/// A `MakeWriter` that appends every log line to one shared buffer.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// With every kpax trace on (TRACE level, captured), authenticating with
/// each mechanism, right and wrong, writes no password and no token into
/// the logs. The capture is checked to hold the authentications, so an empty
/// log cannot pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_the_logs() {
    let Some(tc) = TestCluster::kafka() else {
        return;
    };
    let Some(nodes) = tc.kafka_nodes().cloned() else {
        harness::skip_or_fail(
            "KPAX_BROKERS has no secured listeners the harness knows; set KPAX_KAFKA",
        );
        return;
    };
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(log.clone())
        .with_ansi(false)
        .finish();
    let (scram_user, scram_password) = nodes.scram_user();
    let (plain_user, plain_password) = nodes.plain_user();
    let token = unsecured_jws("kpax-log-check");
    let wrong = "wrong-password-0815";
    // The global subscriber: every thread of the runtime logs to it (this
    // binary has no other test).
    use tracing_subscriber::util::SubscriberInitExt as _;
    subscriber.try_init().expect("the only subscriber");
    let sasl_ssl = |sasl: SaslConfig| {
        base()
            .with_security_protocol(SecurityProtocol::SaslSsl)
            .with_tls(tls(&nodes))
            .with_sasl(sasl)
    };
    roundtrip(
        &tc,
        nodes.bootstrap(Listener::SaslSsl),
        sasl_ssl(SaslConfig::scram_sha_256(
            scram_user.clone(),
            scram_password.clone(),
        )),
    )
    .await;
    roundtrip(
        &tc,
        nodes.bootstrap(Listener::SaslPlaintext),
        base()
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(SaslConfig::plain(
                plain_user.clone(),
                plain_password.clone(),
            )),
    )
    .await;
    roundtrip(
        &tc,
        nodes.bootstrap(Listener::SaslSsl),
        sasl_ssl(SaslConfig::oauthbearer_token(OAuthBearerToken::new(
            token.clone(),
        ))),
    )
    .await;
    for sasl in [
        SaslConfig::plain(plain_user.clone(), wrong),
        SaslConfig::scram_sha_512(scram_user.clone(), wrong),
    ] {
        let config = base()
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(sasl);
        let e = connect_error(nodes.bootstrap(Listener::SaslPlaintext), config).await;
        assert!(matches!(e, Error::Authentication { .. }), "{e:?}");
    }
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    assert!(
        text.contains("authenticated") && text.contains("SCRAM-SHA-256") && text.contains("PLAIN"),
        "the capture holds no SASL exchange ({} bytes); is tracing at trace level reaching it?",
        text.len()
    );
    for (what, secret) in [
        ("SCRAM password", scram_password.as_str()),
        ("PLAIN password", plain_password.as_str()),
        ("the wrong password", wrong),
        ("the OAUTHBEARER token", token.as_str()),
    ] {
        assert!(
            !text.contains(secret),
            "{what} appears in the logs:\n{}",
            text.lines()
                .filter(|l| l.contains(secret))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
