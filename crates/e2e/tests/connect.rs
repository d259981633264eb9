//! Connecting to NATS: through `NATS_URL`, a comma-separated list of servers is a list, tried
//! server by server in the order given, not one malformed address; over TLS and mutual TLS, with a CA and
//! certificates the test makes, where a connection that does not match the server's set-up is
//! refused, at once.

use std::time::Duration;

use chocominer_process::{NatsArgs, Shutdown};
use testkit::NatsServer;
use testkit::tls::TestCa;

fn args(nats: &NatsServer, nats_url: String) -> NatsArgs {
    let mut settings = vec![
        "--nats-url".to_owned(),
        nats_url,
        "--subject-prefix".into(),
        "t".into(),
    ];
    settings.extend(nats.user_args("debug"));
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    testkit::nats_args(&settings)
}

#[tokio::test]
async fn a_list_of_urls_connects_through_the_server_that_answers() {
    let nats = NatsServer::start().await;
    // Nothing listens on the first one: the client must go on to the second.
    let nobody = testkit::free_port();
    let args = args(
        &nats,
        format!(
            "nats://127.0.0.1:{nobody}, nats://127.0.0.1:{}",
            nats.port()
        ),
    );
    assert_eq!(args.server_urls().len(), 2);
    let connected = tokio::time::timeout(
        Duration::from_secs(20),
        chocominer_process::connect(&args, "list-test", &Shutdown::new()),
    )
    .await
    .expect("connected within 20 s")
    .unwrap()
    .expect("connected");
    connected.flush().await.unwrap();
    assert_eq!(connected.server_info().port, nats.port());
}

/// Two servers up: every connection goes to the first of the list (the client would shuffle
/// it otherwise), so a stage can be put on the server people listed first.
#[tokio::test]
async fn the_first_url_of_a_list_is_tried_first() {
    let (first, second) = tokio::join!(NatsServer::start(), NatsServer::start());
    for (a, b) in [(&first, &second), (&second, &first)] {
        // Both servers have the same users but their own passwords: `a`'s are given.
        let args = args(a, format!("{}, {}", a.url(), b.url()));
        // With a shuffled list, 8 connections in a row to the first would be a 1 in 256 chance.
        for _ in 0..8 {
            let client = tokio::time::timeout(
                Duration::from_secs(20),
                chocominer_process::connect(&args, "order-test", &Shutdown::new()),
            )
            .await
            .expect("connected within 20 s")
            .unwrap()
            .expect("connected");
            assert_eq!(client.server_info().port, a.port());
        }
    }
}

/// Connects to `nats` with `settings`, as its debug user; `Err` (the one line a stage would
/// log) when it is refused. A refusal must come at once: waiting would not mend it.
async fn connect_with(nats: &NatsServer, settings: &[&str]) -> Result<async_nats::Client, String> {
    let user = nats.user_args("debug");
    let settings: Vec<&str> = settings
        .iter()
        .copied()
        .chain(user.iter().map(String::as_str))
        .collect();
    let args = testkit::nats_args(&settings);
    let shutdown = Shutdown::new();
    let attempt = chocominer_process::connect(&args, "tls-test", &shutdown);
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(Ok(Some(client))) => Ok(client),
        Ok(Ok(None)) => unreachable!("no shutdown was triggered"),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => panic!("{settings:?}: neither connected nor refused within 10 s"),
    }
}

/// What a client that does not speak TLS gets from the server: its first line after CONNECT.
async fn plain_client_answer(port: u16) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let info = lines.next_line().await.unwrap().unwrap_or_default();
    assert!(info.contains("\"tls_required\":true"), "{info}");
    // The server may already have closed the socket: a failed write is a refusal too.
    let _ = write
        .write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
        .await;
    let answer = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    match answer {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) | Ok(Err(_)) => "(closed)".to_owned(),
        Err(_) => panic!("the server neither answered nor closed within 10 s"),
    }
}

/// TLS where the server requires it: `NATS_CA` connects, verifying the server against that CA
/// (without a panic, though two rustls crypto back ends are in the build); a client that does
/// not speak TLS is refused; one without the CA is refused at once, not left waiting.
#[tokio::test]
async fn tls_connects_with_the_ca_and_plain_is_refused() {
    testkit::init_tracing();
    let ca = TestCa::new("ChocoMiner test CA");
    let nats = NatsServer::start_with_config(&ca.nats_tls_block(false)).await;
    let url = format!("tls://127.0.0.1:{}", nats.port());
    let ca_file = ca.ca.to_str().unwrap();

    let client = connect_with(&nats, &["--nats-url", &url, "--nats-ca", ca_file])
        .await
        .expect("connects with the CA");
    client.flush().await.unwrap();
    assert!(client.server_info().tls_required);

    let answer = plain_client_answer(nats.port()).await;
    assert_ne!(answer, "PONG", "a plain client was served");
    tracing::info!(%answer, "a plain client");

    let plain_url = format!("nats://127.0.0.1:{}", nats.port());
    let refused = connect_with(&nats, &["--nats-url", &plain_url]).await.err();
    let refused = refused.expect("a client without the CA cannot verify the server");
    assert!(refused.contains("certificate"), "{refused}");
}

/// A client that asks for TLS (`NATS_TLS`) refuses a server without it, rather than talk plain.
#[tokio::test]
async fn a_client_asking_for_tls_refuses_a_plain_server() {
    testkit::init_tracing();
    let nats = NatsServer::start().await;
    let url = nats.url();
    let refused = connect_with(&nats, &["--nats-url", &url, "--nats-tls"])
        .await
        .err();
    let refused = refused.expect("no TLS, no connection");
    tracing::info!(%refused, "TLS asked of a plain server");
    assert!(refused.starts_with("cannot connect to NATS"), "{refused}");
}

/// Mutual TLS: a server that verifies its clients takes one with a certificate its CA signed,
/// and refuses one without a certificate or with one from another CA.
#[tokio::test]
async fn mutual_tls_takes_only_clients_the_ca_signed() {
    testkit::init_tracing();
    let ca = TestCa::new("ChocoMiner test CA");
    let nats = NatsServer::start_with_config(&ca.nats_tls_block(true)).await;
    let url = format!("tls://127.0.0.1:{}", nats.port());
    let ca_file = ca.ca.to_str().unwrap();
    let mine = ca.client("hasher");
    let other_ca = TestCa::new("Another CA");
    let stranger = other_ca.client("hasher");
    let with_cert = |cert: &testkit::tls::CertFiles| {
        [
            "--nats-url".to_owned(),
            url.clone(),
            "--nats-ca".to_owned(),
            ca_file.to_owned(),
            "--nats-cert".to_owned(),
            cert.cert.display().to_string(),
            "--nats-key".to_owned(),
            cert.key.display().to_string(),
        ]
    };

    let settings = with_cert(&mine);
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let client = connect_with(&nats, &settings)
        .await
        .expect("its certificate is taken");
    client.flush().await.unwrap();

    let refused = connect_with(&nats, &["--nats-url", &url, "--nats-ca", ca_file])
        .await
        .expect_err("no client certificate, no connection");
    tracing::info!(%refused, "no client certificate");
    assert!(refused.contains("CertificateRequired"), "{refused}");

    let settings = with_cert(&stranger);
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let refused = connect_with(&nats, &settings)
        .await
        .expect_err("a certificate from another CA, no connection");
    tracing::info!(%refused, "a client certificate from another CA");
    assert!(refused.contains("UnknownCA"), "{refused}");
}

/// A client certificate without its key (or the reverse) is a configuration error.
#[test]
fn a_client_certificate_needs_its_key() {
    let ca = TestCa::new("ChocoMiner test CA");
    let cert = ca.client("rng");
    let parse = |args: &[&str]| {
        #[derive(clap::Parser)]
        struct Settings {
            #[command(flatten)]
            nats: NatsArgs,
        }
        use clap::Parser;
        Settings::try_parse_from(std::iter::once("test").chain(args.iter().copied())).map(|_| ())
    };
    let cert_file = cert.cert.to_str().unwrap();
    let key_file = cert.key.to_str().unwrap();
    let error = parse(&["--nats-cert", cert_file]).unwrap_err().to_string();
    assert!(error.contains("--nats-key"), "{error}");
    let error = parse(&["--nats-key", key_file]).unwrap_err().to_string();
    assert!(error.contains("--nats-cert"), "{error}");
    parse(&["--nats-cert", cert_file, "--nats-key", key_file]).expect("both given");
}
