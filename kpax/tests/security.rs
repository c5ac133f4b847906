//! TLS and SASL against kpax's own fake cluster (kpax-fake serves both;
//! no broker on this machine offers SASL or TLS): a produce/fetch round
//! trip over TLS, certificate failures, PLAIN and SCRAM-SHA-256/512,
//! refused credentials, KIP-368 re-authentication under load, and
//! credentials kept out of `Debug`.

use kpax::config::{Pem, SaslConfig, SaslMechanism, SecurityProtocol, TlsConfig};
use kpax::consumer::StartAt;
use kpax::proto::generated::{ApiKey, MetadataRequest};
use kpax::ProducerRecord;
use kpax::{ClientConfig, Cluster, Consumer, ConsumerConfig, Error, Producer, ProducerConfig};
use kpax_fake::{FakeCluster, FakeOptions, FakeSasl, FakeTls};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A CA and a certificate it signed for localhost / 127.0.0.1.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    (params.self_signed(&key).unwrap(), key)
}

fn pki() -> Pki {
    let (ca_cert, ca_key) = ca("kpax test CA");
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "kpax-fake");
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn tls_fake(pki: &Pki) -> FakeOptions {
    FakeOptions {
        tls: Some(FakeTls::new(pki.cert.as_bytes(), pki.key.as_bytes()).unwrap()),
        ..FakeOptions::default()
    }
}

fn fast() -> ClientConfig {
    ClientConfig::default()
        .with_request_timeout(Duration::from_secs(10))
        .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(500))
}

async fn produce_and_fetch(fake: &FakeCluster, config: ClientConfig, topic: &str) {
    fake.create_topic(topic, 1).unwrap();
    let cluster = Cluster::new([fake.bootstrap()], config).unwrap();
    assert_eq!(cluster.partitions(topic).await.unwrap(), vec![0]);
    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).unwrap();
    let mut offsets = Vec::new();
    for i in 0..3 {
        let value = format!("secret-{i}");
        let meta = producer
            .send(ProducerRecord::new(topic, value).with_key("k"))
            .await
            .unwrap()
            .await
            .unwrap();
        offsets.push(meta.offset);
    }
    assert_eq!(offsets, vec![0, 1, 2]);
    producer.close(Duration::from_secs(5)).await;
    let consumer = Consumer::new(cluster, ConsumerConfig::default()).unwrap();
    consumer.assign(
        [kpax::TopicPartition::new(topic.to_string(), 0)],
        StartAt::Earliest,
    );
    for i in 0..3 {
        let r = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
            .await
            .expect("record within 10 s")
            .unwrap();
        assert_eq!(r.offset, i);
        assert_eq!(r.value(), Some(format!("secret-{i}").as_bytes()));
    }
    consumer.close().await;
    assert_eq!(fake.high_watermark(topic, 0), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_round_trip_metadata_produce_fetch() {
    let pki = pki();
    let fake = FakeCluster::with_options(tls_fake(&pki)).await.unwrap();
    let config = fast()
        .with_security_protocol(SecurityProtocol::Ssl)
        .with_tls(TlsConfig::default().with_ca_pem(pki.ca.clone()));
    produce_and_fetch(&fake, config, "tls-events").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_ca_file_and_a_server_name_override() {
    let pki = pki();
    let fake = FakeCluster::with_options(tls_fake(&pki)).await.unwrap();
    let path = std::env::temp_dir().join(format!("kpax-ca-{}.pem", std::process::id()));
    std::fs::write(&path, &pki.ca).unwrap();
    // The certificate names localhost; the address is 127.0.0.1.
    let config = fast()
        .with_security_protocol(SecurityProtocol::Ssl)
        .with_tls(
            TlsConfig::default()
                .with_ca_file(&path)
                .with_server_name("localhost"),
        );
    let broker = kpax::Broker::new(fake.bootstrap(), None, Arc::new(config));
    let md = broker
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    assert_eq!(md.brokers.len(), 1);
    // A name the certificate does not carry is refused.
    let wrong = fast()
        .with_security_protocol(SecurityProtocol::Ssl)
        .with_tls(
            TlsConfig::default()
                .with_ca_file(&path)
                .with_server_name("kafka.example"),
        );
    let broker = kpax::Broker::new(fake.bootstrap(), None, Arc::new(wrong));
    let e = broker.api_versions().await.unwrap_err();
    assert!(matches!(e, Error::Tls { .. }), "{e}");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_wrong_ca_is_a_typed_tls_error() {
    let pki = pki();
    let fake = FakeCluster::with_options(tls_fake(&pki)).await.unwrap();
    let (other_ca, _) = ca("some other CA");
    let config = fast()
        .with_security_protocol(SecurityProtocol::Ssl)
        .with_tls(TlsConfig::default().with_ca_pem(other_ca.pem()));
    let broker = kpax::Broker::new(fake.bootstrap(), None, Arc::new(config));
    let started = Instant::now();
    let e = broker.api_versions().await.unwrap_err();
    assert!(
        matches!(&e, Error::Tls { reason, .. } if reason.contains("certificate")),
        "{e}"
    );
    assert!(!e.is_retriable());
    assert!(started.elapsed() < Duration::from_secs(5));
    // The test-only switch accepts the same broker.
    let config = fast()
        .with_security_protocol(SecurityProtocol::Ssl)
        .with_tls(TlsConfig::default().dangerous_skip_verification_for_tests_only());
    let broker = kpax::Broker::new(fake.bootstrap(), None, Arc::new(config));
    assert!(broker.api_versions().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_client_against_a_tls_listener_fails_cleanly() {
    let pki = pki();
    let fake = FakeCluster::with_options(tls_fake(&pki)).await.unwrap();
    let broker = kpax::Broker::new(
        fake.bootstrap(),
        None,
        Arc::new(fast().with_request_timeout(Duration::from_secs(3))),
    );
    let e = broker.api_versions().await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Network { .. }
                | Error::ClosedOnRequest { .. }
                | Error::Protocol { .. }
                | Error::Timeout { .. }
        ),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_presents_the_client_certificate() {
    let pki = pki();
    // The client's certificate, signed by its own CA.
    let (client_ca, client_ca_key) = ca("kpax client CA");
    let client_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["kpax-client".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "kpax-client");
    let client_cert = params
        .signed_by(&client_key, &client_ca, &client_ca_key)
        .unwrap();
    let fake = FakeCluster::with_options(FakeOptions {
        tls: Some(
            FakeTls::with_client_auth(
                pki.cert.as_bytes(),
                pki.key.as_bytes(),
                client_ca.pem().as_bytes(),
            )
            .unwrap(),
        ),
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    let config = fast()
        .with_security_protocol(SecurityProtocol::Ssl)
        .with_tls(
            TlsConfig::default()
                .with_ca_pem(pki.ca.clone())
                .with_client_cert(
                    Pem::Inline(client_cert.pem().into_bytes()),
                    Pem::Inline(client_key.serialize_pem().into_bytes()),
                ),
        );
    let broker = kpax::Broker::new(fake.bootstrap(), None, Arc::new(config));
    let md = broker
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    assert_eq!(md.brokers.len(), 1);
}

fn sasl_fake(sasl: FakeSasl) -> FakeOptions {
    FakeOptions {
        sasl: Some(sasl),
        ..FakeOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plain_round_trip() {
    let fake = FakeCluster::with_options(sasl_fake(FakeSasl::new().with_user("alice", "alice-pw")))
        .await
        .unwrap();
    let config = fast()
        .with_security_protocol(SecurityProtocol::SaslPlaintext)
        .with_sasl(SaslConfig::plain("alice", "alice-pw"));
    produce_and_fetch(&fake, config, "plain-events").await;
    assert!(fake.authentications() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_scram_sha_256_round_trip() {
    let fake = FakeCluster::with_options(sasl_fake(
        FakeSasl::new()
            .with_mechanisms(&["SCRAM-SHA-256"])
            .with_user("bob", "bob-pw"),
    ))
    .await
    .unwrap();
    let config = fast()
        .with_security_protocol(SecurityProtocol::SaslPlaintext)
        .with_sasl(SaslConfig::scram_sha_256("bob", "bob-pw"));
    produce_and_fetch(&fake, config, "scram256-events").await;
    assert!(fake.authentications() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_scram_sha_512_over_tls_round_trip() {
    let pki = pki();
    let fake = FakeCluster::with_options(FakeOptions {
        sasl: Some(
            FakeSasl::new()
                .with_mechanisms(&["SCRAM-SHA-512"])
                .with_user("carol,=x", "carol-pw"),
        ),
        ..tls_fake(&pki)
    })
    .await
    .unwrap();
    let config = fast()
        .with_security_protocol(SecurityProtocol::SaslSsl)
        .with_tls(TlsConfig::default().with_ca_pem(pki.ca.clone()))
        .with_sasl(SaslConfig::scram_sha_512("carol,=x", "carol-pw"));
    produce_and_fetch(&fake, config, "scram512-events").await;
    assert!(fake.authentications() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_authentication_error_fast_and_without_a_reconnect_storm() {
    for mechanism in [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
        SaslMechanism::OAuthBearer,
    ] {
        let fake = FakeCluster::with_options(sasl_fake(
            FakeSasl::new()
                .with_user("dave", "right")
                .with_oauthbearer_token("right"),
        ))
        .await
        .unwrap();
        let config = fast()
            .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(600))
            .with_security_protocol(SecurityProtocol::SaslPlaintext)
            .with_sasl(SaslConfig::new(mechanism, "dave", "wrong-password-123"));
        let broker = kpax::Broker::new(fake.bootstrap(), None, Arc::new(config));
        let started = Instant::now();
        let e = broker
            .send(&MetadataRequest::default().with_topics(None))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        match &e {
            Error::Authentication {
                mechanism: m,
                message,
                ..
            } => {
                assert_eq!(m, mechanism.name());
                assert!(message.contains("SASL_AUTHENTICATION_FAILED"), "{message}");
            }
            other => panic!("{mechanism:?}: {other}"),
        }
        assert!(!e.is_retriable());
        assert!(!e.to_string().contains("wrong-password-123"));
        assert_eq!(fake.authentications(), 0);
        // Retrying at once waits out the longest backoff: no tight loop.
        let until = Instant::now() + Duration::from_millis(1000);
        while Instant::now() < until {
            let _ = broker
                .send(&MetadataRequest::default().with_topics(None))
                .await;
        }
        let handshakes = fake.request_count(ApiKey::SaslHandshake);
        assert!(
            handshakes <= 4,
            "{mechanism:?}: {handshakes} handshakes in about 1 s"
        );
        assert_eq!(fake.request_count(ApiKey::Metadata), 0);
    }
}

/// Hands out `tok-N` (N counting calls) with a `logicalCluster` extension.
struct CountingProvider(std::sync::atomic::AtomicUsize);

impl kpax::OAuthBearerTokenProvider for CountingProvider {
    fn token(&self) -> kpax::TokenFuture<'_> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Box::pin(async move {
            if n > 1000 {
                return Err("identity provider down".into());
            }
            Ok(kpax::OAuthBearerToken::new(format!("tok-{n}"))
                .with_extension("logicalCluster", "lkc-1"))
        })
    }
}

/// OAUTHBEARER (KIP-255) with a provider: every (re-)authentication asks
/// it for a token, and the extensions reach the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_oauthbearer_asks_the_provider_at_every_authentication() {
    let mut sasl = FakeSasl::new()
        .with_mechanisms(&["OAUTHBEARER"])
        .with_session_lifetime(Duration::from_millis(600));
    for n in 1..=50 {
        sasl = sasl.with_oauthbearer_token(format!("tok-{n}"));
    }
    let fake = FakeCluster::with_options(sasl_fake(sasl.clone()))
        .await
        .unwrap();
    let provider = Arc::new(CountingProvider(Default::default()));
    let config = fast()
        .with_security_protocol(SecurityProtocol::SaslPlaintext)
        .with_sasl(SaslConfig::oauthbearer(provider.clone()));
    produce_and_fetch(&fake, config.clone(), "oauth-events").await;
    // Keep one connection busy past two session lifetimes: re-authentication.
    let broker = kpax::Broker::new(fake.bootstrap(), None, Arc::new(config));
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        broker
            .send(&MetadataRequest::default().with_topics(None))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = provider.0.load(std::sync::atomic::Ordering::SeqCst);
    assert!(calls >= 3, "the provider was asked {calls} times");
    let seen = sasl.oauthbearer_extensions_seen();
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(
        seen.iter()
            .all(|e| e == &[("logicalCluster".to_string(), "lkc-1".to_string())]),
        "{seen:?}"
    );

    // A provider that fails: an authentication error with its reason.
    provider.0.store(5000, std::sync::atomic::Ordering::SeqCst);
    let config = fast()
        .with_security_protocol(SecurityProtocol::SaslPlaintext)
        .with_sasl(SaslConfig::oauthbearer(provider));
    let e = kpax::Broker::new(fake.bootstrap(), None, Arc::new(config))
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Authentication { message, .. } if message.contains("identity provider down")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mechanism_the_broker_does_not_enable_is_an_authentication_error() {
    let fake = FakeCluster::with_options(sasl_fake(
        FakeSasl::new()
            .with_mechanisms(&["SCRAM-SHA-512"])
            .with_user("erin", "pw"),
    ))
    .await
    .unwrap();
    let config = fast()
        .with_security_protocol(SecurityProtocol::SaslPlaintext)
        .with_sasl(SaslConfig::plain("erin", "pw"));
    let broker = kpax::Broker::new(fake.bootstrap(), None, Arc::new(config));
    let e = broker.api_versions().await.unwrap_err();
    assert!(
        matches!(&e, Error::Authentication { message, .. } if message.contains("UNSUPPORTED_SASL_MECHANISM") && message.contains("SCRAM-SHA-512")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_without_credentials_is_a_config_error() {
    let fake = FakeCluster::with_options(sasl_fake(FakeSasl::new()))
        .await
        .unwrap();
    let config = fast().with_security_protocol(SecurityProtocol::SaslPlaintext);
    let broker = kpax::Broker::new(fake.bootstrap(), None, Arc::new(config));
    let e = broker.api_versions().await.unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
}

/// Sessions of 1 s: a steady stream of requests from several tasks over
/// ~4.5 s keeps working across several re-authentications on the same
/// connections, with no request failed (the fake closes the connection on
/// any request after expiry or in the middle of a re-authentication).
async fn reauthenticates_under_load(sasl: SaslConfig, over_tls: bool, max_in_flight: usize) {
    let pki = pki();
    let base = if over_tls {
        tls_fake(&pki)
    } else {
        FakeOptions::default()
    };
    let fake = FakeCluster::with_options(FakeOptions {
        sasl: Some(
            FakeSasl::new()
                .with_user("frank", "frank-pw")
                .with_session_lifetime(Duration::from_secs(1)),
        ),
        ..base
    })
    .await
    .unwrap();
    fake.create_topic("reauth", 1).unwrap();
    let protocol = if over_tls {
        SecurityProtocol::SaslSsl
    } else {
        SecurityProtocol::SaslPlaintext
    };
    let config = fast()
        .with_security_protocol(protocol)
        .with_max_in_flight(max_in_flight)
        .with_tls(TlsConfig::default().with_ca_pem(pki.ca.clone()))
        .with_sasl(sasl);
    let cluster = Cluster::new([fake.bootstrap()], config).unwrap();
    let broker = cluster.leader("reauth", 0).await.unwrap();
    let producer = Producer::new(cluster.clone(), ProducerConfig::default()).unwrap();
    // Warm up: every connection the load will use is open.
    producer
        .send(ProducerRecord::new("reauth", "first"))
        .await
        .unwrap()
        .await
        .unwrap();
    broker
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    // Every connection here is on the default lane, which asks ApiVersions.
    let connections = fake.request_count(ApiKey::ApiVersions);
    let auths_before = fake.authentications();
    let ok = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_millis(4500);
    let mut tasks = Vec::new();
    for t in 0..4 {
        let broker = broker.clone();
        let producer = producer.clone();
        let ok = ok.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < until {
                let request = async {
                    if t % 2 == 0 {
                        broker
                            .send(&MetadataRequest::default().with_topics(None))
                            .await
                            .unwrap_or_else(|e| panic!("metadata {i} failed: {e}"));
                    } else {
                        producer
                            .send(ProducerRecord::new("reauth", format!("{t}-{i}")))
                            .await
                            .unwrap()
                            .await
                            .unwrap_or_else(|e| panic!("produce {i} failed: {e}"));
                    }
                };
                tokio::time::timeout(Duration::from_secs(5), request)
                    .await
                    .unwrap_or_else(|_| panic!("request {i} of task {t} stalled"));
                ok.fetch_add(1, Ordering::Relaxed);
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    producer.close(Duration::from_secs(5)).await;
    let reauths = fake.authentications() - auths_before;
    // One re-authentication per connection every 0.85-0.95 s plus the
    // exchange itself (SCRAM's 4096 PBKDF2 rounds on both sides take a
    // while in a debug build): at least two each in 4.5 s.
    assert!(
        reauths >= 2 * connections,
        "{reauths} re-authentications on {connections} connections"
    );
    // No reconnects: ApiVersions is asked once per connection.
    assert_eq!(
        fake.request_count(ApiKey::ApiVersions),
        connections,
        "connections were reopened"
    );
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "{}",
        ok.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_keeps_scram_sessions_alive_under_load() {
    reauthenticates_under_load(SaslConfig::scram_sha_256("frank", "frank-pw"), false, 64).await;
}

/// With one request in flight per connection, requests waiting for the
/// re-authentication must not hold the slot the exchange needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_with_one_slot_in_flight_does_not_stall() {
    reauthenticates_under_load(SaslConfig::scram_sha_256("frank", "frank-pw"), false, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_keeps_plain_over_tls_sessions_alive_under_load() {
    reauthenticates_under_load(SaslConfig::plain("frank", "frank-pw"), true, 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sasl_listener_closes_on_requests_before_authentication() {
    let fake = FakeCluster::with_options(sasl_fake(FakeSasl::new().with_user("ivan", "pw")))
        .await
        .unwrap();
    let broker = kpax::Broker::new(fake.bootstrap(), None, Arc::new(fast()));
    let e = broker
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ClosedOnRequest {
                api: ApiKey::Metadata,
                ..
            }
        ),
        "{e}"
    );
}

/// SaslAuthenticate v0 carries no session lifetime, so the client cannot
/// know when to re-authenticate: once the session expires the listener
/// closes the connection on the next request (what the re-authentication
/// tests above would see without KIP-368).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_closes_the_connection() {
    let fake = FakeCluster::with_options(sasl_fake(
        FakeSasl::new()
            .with_user("judy", "pw")
            .with_session_lifetime(Duration::from_millis(500)),
    ))
    .await
    .unwrap();
    let config = fast()
        .with_version_cap(ApiKey::SaslAuthenticate, 0)
        .with_security_protocol(SecurityProtocol::SaslPlaintext)
        .with_sasl(SaslConfig::scram_sha_256("judy", "pw"));
    let broker = kpax::Broker::new(fake.bootstrap(), None, Arc::new(config));
    let md = MetadataRequest::default().with_topics(None);
    broker.send(&md).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let e = broker.send(&md).await.unwrap_err();
    assert!(matches!(e, Error::ClosedOnRequest { .. }), "{e}");
    assert_eq!(fake.authentications(), 1);
    // The next request opens a new connection and signs in again.
    broker.send(&md).await.unwrap();
    assert_eq!(fake.authentications(), 2);
}

#[test]
fn credentials_never_show_in_debug_output() {
    let config = ClientConfig::default()
        .with_security_protocol(SecurityProtocol::SaslSsl)
        .with_sasl(SaslConfig::scram_sha_256("grace", "Tr0ub4dor&3"))
        .with_tls(TlsConfig::default().with_client_cert(
            Pem::Inline(b"-----BEGIN CERTIFICATE-----".to_vec()),
            Pem::Inline(b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC".to_vec()),
        ));
    for shown in [
        format!("{config:?}"),
        format!("{config:#?}"),
        format!("{:?}", config.sasl),
    ] {
        assert!(!shown.contains("Tr0ub4dor"), "{shown}");
        assert!(!shown.contains("MIIEvQIBADAN"), "{shown}");
        assert!(shown.contains("grace"), "{shown}");
    }
    let fake_sasl = FakeSasl::new().with_user("grace", "Tr0ub4dor&3");
    assert!(!format!("{fake_sasl:?}").contains("Tr0ub4dor"));
}
