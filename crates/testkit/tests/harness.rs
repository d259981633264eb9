//! Proves the harness itself: the servers it starts are real, reachable, configurable, and
//! (for InfluxDB) keep their data across stop/restart; a pipeline started on a stack hashes,
//! writes its stats and stops gracefully; a stage process obeys SIGTERM and SIGKILL; the waits
//! say what they waited for.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use chocominer_process::Shutdown;
use serde_json::json;
use testkit::{
    Influx, NatsServer, SOON, Stack, eventually, eventually_eq, eventually_ok, init_tracing,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Connects to `server` and returns the `INFO {...}` line it greets every client with.
async fn info_line(server: &NatsServer) -> String {
    let stream = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .expect("connect to nats");
    let mut line = String::new();
    timeout(
        Duration::from_secs(5),
        BufReader::new(stream).read_line(&mut line),
    )
    .await
    .expect("INFO within 5 s")
    .expect("read INFO");
    line
}

async fn get_status(url: &str) -> Option<reqwest::StatusCode> {
    testkit::http_client()
        .get(url)
        .send()
        .await
        .ok()
        .map(|response| response.status())
}

#[tokio::test]
async fn nats_server_greets_clients_and_is_healthy() {
    init_tracing();
    let server = NatsServer::start().await;

    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    let info = info_line(&server).await;
    assert!(info.starts_with("INFO {"), "unexpected greeting: {info:?}");
    let healthz = format!("{}/healthz", server.monitor_url());
    assert_eq!(get_status(&healthz).await, Some(reqwest::StatusCode::OK));
}

#[tokio::test]
async fn nats_server_runs_the_projects_config_with_a_password_per_role() {
    let server = NatsServer::start().await;
    let info = info_line(&server).await;
    assert!(info.contains(r#""auth_required":true"#), "{info}");
    let roles: Vec<&str> = server.roles().collect();
    assert_eq!(roles, ["cli", "debug", "hasher", "rng", "worker"]);
    let password = std::fs::read_to_string(server.password_file("rng")).unwrap();
    assert_eq!(password.trim_end(), server.password("rng"));
    assert_ne!(server.password("rng"), server.password("hasher"));
    // A client gets in with its role's password.
    let client = server.connect_as("debug").await;
    client.flush().await.expect("the debug user is let in");
}

#[tokio::test]
async fn nats_server_applies_extra_config() {
    let server = NatsServer::start_with_config("max_payload: 4096").await;

    let info = info_line(&server).await;
    assert!(
        info.contains(r#""max_payload":4096"#),
        "max_payload not applied: {info}"
    );
}

#[tokio::test]
#[should_panic(expected = "log tail")]
async fn nats_server_with_bad_config_panics_with_its_log() {
    NatsServer::start_with_config("this is { not a config").await;
}

#[tokio::test]
async fn influx_round_trip_survives_restart() {
    init_tracing();
    let mut influx = Influx::start().await;
    influx.create_database("t").await;
    influx.write("t", "m,instance=a v=1i 1000000000").await;

    let expected = json!({"time": 1_000_000_000, "v": 1, "instance": "a"});
    let rows = influx.rows("t", "SELECT * FROM m GROUP BY *").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(serde_json::Value::Object(rows[0].clone()), expected);
    assert!(influx.rows("t", "SELECT * FROM absent").await.is_empty());

    let ping = format!("{}/ping", influx.url());
    influx.stop().await;
    assert_eq!(
        get_status(&ping).await,
        None,
        "influxd still answers after stop()"
    );

    influx.restart().await;
    assert_eq!(
        get_status(&ping).await,
        Some(reqwest::StatusCode::NO_CONTENT)
    );
    let rows = influx.rows("t", "SELECT * FROM m GROUP BY *").await;
    assert_eq!(
        rows.into_iter()
            .map(serde_json::Value::Object)
            .collect::<Vec<_>>(),
        [expected]
    );
}

#[tokio::test]
#[should_panic(expected = "error parsing query")]
async fn influx_query_panics_on_influxql_error() {
    let influx = Influx::start().await;
    influx.rows("t", "SELEC nothing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_influx_instances_start_in_parallel() {
    let started = Instant::now();
    let servers = start_influxes(4).await;
    let elapsed = started.elapsed();

    let mut urls: Vec<String> = servers.iter().map(Influx::url).collect();
    urls.sort();
    urls.dedup();
    assert_eq!(
        urls.len(),
        servers.len(),
        "instances share a port: {urls:?}"
    );
    for server in &servers {
        server.create_database("p").await;
    }
    assert!(
        elapsed < Duration::from_secs(10),
        "4 parallel starts took {elapsed:?}"
    );
}

/// Starts `n` Influx instances concurrently on separate tasks.
async fn start_influxes(n: usize) -> Vec<Influx> {
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(Influx::start())).collect();
    let mut servers = Vec::with_capacity(n);
    for task in tasks {
        servers.push(task.await.expect("Influx::start task"));
    }
    servers
}

#[tokio::test]
async fn eventually_returns_the_first_some() {
    let mut calls = 0;
    let value = eventually(
        "third call",
        Duration::from_secs(5),
        Duration::from_millis(1),
        || {
            calls += 1;
            let done = calls >= 3;
            async move { done.then_some(calls) }
        },
    )
    .await;
    assert_eq!(value, 3);
}

#[tokio::test]
#[should_panic(expected = "timed out after 50ms waiting for: never")]
async fn eventually_panics_with_what_on_timeout() {
    eventually(
        "never",
        Duration::from_millis(50),
        Duration::from_millis(10),
        || async { None::<()> },
    )
    .await;
}

#[tokio::test]
#[should_panic(expected = "database not found")]
async fn influx_query_panics_on_statement_error() {
    let influx = Influx::start().await;
    influx.rows("absent", "SELECT * FROM m").await;
}

#[test]
fn cargo_bin_builds_a_workspace_binary() {
    let path = testkit::cargo_bin("hasher");
    assert!(path.is_file(), "{} is not a file", path.display());
    assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("hasher"));
    let output = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .expect("run the built hasher");
    assert!(output.status.success(), "hasher --version: {output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("hasher "),
        "{output:?}"
    );
    // Asked again, it answers with the same binary.
    assert_eq!(testkit::cargo_bin("hasher"), path);
}

#[test]
#[should_panic(expected = "cargo_bin(\"no-such-binary\")")]
fn cargo_bin_panics_on_an_unknown_binary() {
    testkit::cargo_bin("no-such-binary");
}

#[tokio::test]
#[should_panic(expected = "timed out after 50ms waiting for: the answer = 42; last: 41")]
async fn eventually_eq_panics_with_the_last_value_seen() {
    eventually_eq(
        "the answer",
        Duration::from_millis(50),
        Duration::from_millis(10),
        42,
        || async { 41 },
    )
    .await;
}

#[tokio::test]
async fn eventually_ok_returns_the_first_ok() {
    let mut calls = 0;
    let value = eventually_ok(
        "second call",
        Duration::from_secs(5),
        Duration::from_millis(1),
        || {
            calls += 1;
            let answer = if calls >= 2 { Ok(calls) } else { Err("first") };
            async move { answer }
        },
    )
    .await;
    assert_eq!(value, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_on_a_stack_hashes_writes_its_stats_and_stops_gracefully() {
    let stack = Stack::start().await;
    let pipeline = stack
        .pipeline()
        .rng("r1", &["--rate", "500", "--batch", "10"])
        .hasher("h1", &["--delay-ms", "0"])
        .start()
        .await;
    let s = &stack;
    eventually("worker hashes in InfluxDB", SOON, testkit::POLL, || async {
        (s.sum("worker", "hashes").await > 0).then_some(())
    })
    .await;
    assert!(pipeline.is_running());

    let (rng, hasher, worker) = pipeline.stop().await;
    assert!(worker.judged > 0, "{worker:?}");
    assert_eq!(
        rng.generated,
        worker.judged + rng.lost + hasher.lost,
        "{rng:?} {hasher:?} {worker:?}"
    );
    stack
        .eventually_sum("worker", "hashes", worker.judged)
        .await;
    stack.eventually_sum("rng", "numbers", rng.generated).await;
    let hashers = stack.sums_by_instance("hasher", "hashes").await;
    assert_eq!(hashers.keys().collect::<Vec<_>>(), ["h1"], "{hashers:?}");
    assert!(!stack.points("worker", "w1").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_process_has_a_memory_stops_on_sigterm_and_dies_on_sigkill() {
    let bin = testkit::cargo_bin_async("worker").await;
    let stack = Stack::nats_only().await;
    let mut graceful = stack.spawn_process(&bin, "w-term", &[]);
    let mut killed = stack.spawn_process(&bin, "w-kill", &[]);
    stack
        .wait_for_service("worker", &["w-term", "w-kill"])
        .await;
    assert!(!graceful.has_exited(), "{}", graceful.log_tail());
    // Its memory, as the kernel counts it: a few MB resident, never more than at its peak.
    let memory = graceful.memory().expect("a running process has a memory");
    assert!(memory.rss > 1 << 20, "{memory:?}");
    assert!(memory.peak_rss >= memory.rss, "{memory:?}");

    let status = killed.kill().await;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(killed.has_exited());
    assert_eq!(killed.memory(), None, "an exited process has no memory");
    let status = graceful.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}: {}", graceful.log_tail());
}

#[tokio::test]
async fn a_service_stops_on_its_own_shutdown() {
    let nats = NatsServer::start().await;
    let mut args = ["worker", "--nats-url", &nats.url(), "--influx-url", ""]
        .map(String::from)
        .to_vec();
    args.extend(nats.user_args("worker"));
    args.extend(["--instance".into(), "w1".into()]);
    let config: worker::Config = testkit::parse(&args);
    let service = testkit::Service::spawn("w1", &Shutdown::new(), |shutdown| {
        worker::run(config, shutdown)
    });
    assert!(service.is_running());
    let report = service.stop().await;
    assert_eq!(report.judged, 0, "{report:?}");
}
