//! The pipeline over mutual TLS, against a real nats-server that verifies its clients with a
//! CA the test makes: every stage connects with a certificate of its own, batches flow, and
//! every connection the server holds is a TLS one.

use std::time::Duration;

use bytes::Bytes;
use chocominer_process::Shutdown;
use testkit::tls::TestCa;
use testkit::{NatsServer, POLL, SOON, Service, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_runs_over_mutual_tls() {
    testkit::init_tracing();
    let ca = TestCa::new("ChocoMiner test CA");
    let nats = NatsServer::start_with_config(&ca.nats_tls_block(true)).await;
    let url = format!("tls://127.0.0.1:{}", nats.port());
    // Its own certificate for each instance, and the NATS user of its role.
    let settings = |role: &str, instance: &str| -> Vec<String> {
        let cert = ca.client(instance);
        let mut settings = [
            "--nats-url",
            &url,
            "--nats-ca",
            ca.ca.to_str().unwrap(),
            "--nats-cert",
            cert.cert.to_str().unwrap(),
            "--nats-key",
            cert.key.to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec();
        settings.extend(nats.user_args(role));
        settings
    };
    let command = |stage: &str, instance: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec![stage.to_owned()];
        args.extend(settings(stage, instance));
        args.extend(["--influx-url", "", "--instance", instance].map(str::to_owned));
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let test_settings = settings("debug", "test");
    let test_settings: Vec<&str> = test_settings.iter().map(String::as_str).collect();
    let client = chocominer_process::connect(
        &testkit::nats_args(&test_settings),
        "test",
        &Shutdown::new(),
    )
    .await
    .expect("the test connects over mutual TLS")
    .expect("no shutdown");

    let shutdown = Shutdown::new();
    let worker_config = testkit::parse(&command("worker", "w1", &["--delay-ms", "0"]));
    let worker = Service::spawn("w1", &shutdown, |s| worker::run(worker_config, s));
    let hasher_config = testkit::parse(&command("hasher", "h1", &["--delay-ms", "0"]));
    let hasher = Service::spawn("h1", &shutdown, |s| hasher::run(hasher_config, s));
    for stage in ["worker", "hasher"] {
        eventually(&format!("{stage} answers PING"), SOON, POLL, || async {
            let ping = client.request(format!("$SRV.PING.{stage}"), Bytes::new());
            tokio::time::timeout(Duration::from_secs(1), ping)
                .await
                .ok()?
                .ok()
        })
        .await;
    }
    let rng_config = testkit::parse(&command("rng", "r1", &["--rate", "1000", "--batch", "10"]));
    let rng = Service::spawn("r1", &shutdown, |s| rng::run(rng_config, s));

    let judged = eventually("200 digests judged", SOON, POLL, || async {
        let stats = client
            .request("$SRV.STATS.worker", Bytes::new())
            .await
            .ok()?;
        let stats: serde_json::Value = serde_json::from_slice(&stats.payload).ok()?;
        let hashes = stats["endpoints"][0]["data"]["hashes"].as_u64()?;
        (hashes >= 200).then_some(hashes)
    })
    .await;

    // Every connection the server holds (the stages' two each, the test's) is a TLS one.
    let connections = nats.connections().await;
    let names: Vec<&str> = connections
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default())
        .collect();
    for stage in [
        "rng r1",
        "hasher h1",
        "hasher h1 service",
        "worker w1",
        "worker w1 service",
    ] {
        assert!(names.contains(&stage), "{stage} not among {names:?}");
    }
    for connection in &connections {
        assert!(
            connection["tls_version"]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "not TLS: {connection}"
        );
    }

    shutdown.trigger();
    let (rng, hasher, worker) = tokio::join!(rng.report(), hasher.report(), worker.report());
    tracing::info!(
        judged,
        connections = connections.len(),
        generated = rng.generated,
        "pipeline over mutual TLS"
    );
    assert_eq!(rng.lost + hasher.lost, 0, "{rng:?} {hasher:?}");
    assert_eq!(rng.generated, worker.judged, "{rng:?} {worker:?}");
}
