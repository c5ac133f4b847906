//! TLS and SASL against Apache Kafka's own listeners (the 4.x cluster of
//! `scripts/kafka.sh`: SSL with client certificates requested,
//! SASL_PLAINTEXT and SASL_SSL with PLAIN, SCRAM-SHA-256/512 and
//! OAUTHBEARER with unsecured tokens). Each case produces records with kpax
//! over the secured listener and reads them back over it; wrong
//! credentials and an untrusted certificate are clear errors that never
//! show the secret. Without `KPAX_KAFKA` these tests print why they skip
//! (under CI they fail).

mod harness;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::{Cluster as TestCluster, KafkaNodes, Listener};
use kpax::config::{OAuthBearerToken, Pem, SaslConfig, SecurityProtocol, TlsConfig};
use kpax::consumer::StartAt;
use kpax::ProducerRecord;
use kpax::{ClientConfig, Cluster, Consumer, ConsumerConfig, Error, Producer, ProducerConfig};

fn base() -> ClientConfig {
    harness::client::client_config()
}

fn tls(nodes: &KafkaNodes) -> TlsConfig {
    TlsConfig::default().with_ca_file(nodes.ca())
}

/// An unsecured JWS (`alg: none`) for Kafka's unsecured OAUTHBEARER
/// validator: subject `sub`, valid for an hour.
fn unsecured_jws(sub: &str) -> String {
    use std::fmt::Write as _;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let b64 = |s: &str| {
        // base64url without padding, written out to need no crate here
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let b = s.as_bytes();
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..=c.len() {
                let _ = out.write_char(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    format!(
        "{}.{}.",
        b64(r#"{"alg":"none"}"#),
        b64(&format!(
            r#"{{"sub":"{sub}","iat":{now},"exp":{}}}"#,
            now + 3600
        ))
    )
}

/// Produces three records over `config` (bootstrapped at `bootstrap`) to a
/// fresh topic and reads them back over the same listener.
async fn roundtrip(tc: &TestCluster, bootstrap: String, config: ClientConfig) {
    let topic = tc.topic(1).await;
    let cluster = Cluster::new([bootstrap.as_str()], config).expect("cluster");
    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).unwrap();
    for i in 0..3 {
        let meta = producer
            .send(ProducerRecord::new(&topic.name, format!("secret-{i}")).with_partition(0))
            .await
            .unwrap()
            .await
            .unwrap_or_else(|e| panic!("produce over {bootstrap}: {e}"));
        assert_eq!(meta.offset, i);
    }
    assert!(producer.close(Duration::from_secs(10)).await);
    let consumer = Consumer::new(cluster, ConsumerConfig::default()).unwrap();
    consumer.assign([(topic.name.clone(), 0)], StartAt::Earliest);
    for i in 0..3 {
        let r = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("record in time")
            .unwrap();
        assert_eq!(r.value(), Some(format!("secret-{i}").as_bytes()));
    }
    consumer.close().await;
}

/// The first error a metadata request over `config` meets.
async fn connect_error(bootstrap: String, config: ClientConfig) -> Error {
    let cluster = Cluster::new([bootstrap.as_str()], config).expect("cluster");
    tokio::time::timeout(Duration::from_secs(20), cluster.refresh(None))
        .await
        .expect("an answer in time")
        .expect_err("connecting must fail")
}

macro_rules! on_kafka {
    ($name:ident, |$tc:ident, $nodes:ident| $body:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some($tc) = TestCluster::kafka() else {
                return;
            };
            let Some($nodes) = $tc.kafka_nodes().cloned() else {
                harness::skip_or_fail(
                    "KPAX_BROKERS has no secured listeners the harness knows; set KPAX_KAFKA",
                );
                return;
            };
            $body.await;
        }
    };
}

on_kafka!(tls_without_client_certificate, |tc, nodes| roundtrip(
    &tc,
    nodes.bootstrap(Listener::Ssl),
    base()
        .with_security_protocol(SecurityProtocol::Ssl)
        .with_tls(tls(&nodes)),
));

on_kafka!(tls_with_client_certificate, |tc, nodes| {
    let (cert, key) = nodes.client_cert();
    roundtrip(
        &tc,
        nodes.bootstrap(Listener::Ssl),
        base()
            .with_security_protocol(SecurityProtocol::Ssl)
            .with_tls(tls(&nodes).with_client_cert(Pem::File(cert), Pem::File(key))),
    )
});

on_kafka!(
    tls_with_an_untrusted_ca_is_a_clear_error,
    |_tc, nodes| async move {
        // The platform roots do not know the test CA.
        let e = connect_error(
            nodes.bootstrap(Listener::Ssl),
            base()
                .with_security_protocol(SecurityProtocol::Ssl)
                .with_tls(TlsConfig::default()),
        )
        .await;
        let text = e.to_string();
        assert!(
            text.contains("certificate") || text.contains("TLS") || text.contains("tls"),
            "{text}"
        );
    }
);

on_kafka!(sasl_plain, |tc, nodes| {
    let (user, password) = nodes.plain_user();
    roundtrip(
        &tc,
        nodes.bootstrap(Listener::SaslPlaintext),
        base()
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(SaslConfig::plain(user, password)),
    )
});

on_kafka!(sasl_scram_sha_256, |tc, nodes| {
    let (user, password) = nodes.scram_user();
    roundtrip(
        &tc,
        nodes.bootstrap(Listener::SaslPlaintext),
        base()
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(SaslConfig::scram_sha_256(user, password)),
    )
});

on_kafka!(sasl_ssl_scram_sha_512, |tc, nodes| {
    let (user, password) = nodes.scram_user();
    roundtrip(
        &tc,
        nodes.bootstrap(Listener::SaslSsl),
        base()
            .with_security_protocol(SecurityProtocol::SaslSsl)
            .with_tls(tls(&nodes))
            .with_sasl(SaslConfig::scram_sha_512(user, password)),
    )
});

on_kafka!(sasl_oauthbearer_unsecured_token, |tc, nodes| roundtrip(
    &tc,
    nodes.bootstrap(Listener::SaslSsl),
    base()
        .with_security_protocol(SecurityProtocol::SaslSsl)
        .with_tls(tls(&nodes))
        .with_sasl(SaslConfig::oauthbearer_token(OAuthBearerToken::new(
            unsecured_jws("kpax")
        ))),
));

on_kafka!(
    wrong_credentials_are_an_authentication_error,
    |_tc, nodes| async move {
        let (user, _) = nodes.scram_user();
        let (plain_user, _) = nodes.plain_user();
        let wrong = "not-the-password-4711";
        for sasl in [
            SaslConfig::plain(plain_user, wrong),
            SaslConfig::scram_sha_256(user.clone(), wrong),
            SaslConfig::scram_sha_512(user, wrong),
        ] {
            let mechanism = sasl.mechanism.name();
            let config = base()
                .with_security_protocol(SecurityProtocol::SaslPlaintext)
                .with_sasl(sasl);
            assert!(
                !format!("{config:?}").contains(wrong),
                "Debug shows the password"
            );
            let e = connect_error(nodes.bootstrap(Listener::SaslPlaintext), config).await;
            assert!(
                matches!(&e, Error::Authentication { mechanism: m, .. } if m == mechanism),
                "{mechanism}: {e:?}"
            );
            assert!(!e.to_string().contains(wrong), "{e}");
            assert!(!format!("{e:?}").contains(wrong), "{e:?}");
        }
    }
);

on_kafka!(
    a_plaintext_client_on_a_sasl_listener_fails_fast,
    |_tc, nodes| async move {
        // Kafka closes a connection whose first request is not SaslHandshake or
        // ApiVersions on a SASL listener: a clear error, not a hang.
        let e = connect_error(nodes.bootstrap(Listener::SaslPlaintext), base()).await;
        assert!(!e.to_string().is_empty(), "{e:?}");
    }
);

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
#[test]
fn no_secret_appears_in_the_logs() {
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
    // One thread: every task the runtime spawns logs to `subscriber`.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    {
        use tracing_subscriber::util::SubscriberInitExt as _;
        let _log_here = subscriber.set_default();
        rt.block_on(async {
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
        });
        drop(rt);
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
