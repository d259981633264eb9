//! The health endpoints of the stages (`HEALTH_LISTEN`) and their probe (`--health-check`),
//! against a real nats-server: ready once a stage takes batches, not ready the moment it is
//! told to stop while it still finishes its batch, not ready while NATS is out of reach; the
//! probe's exit codes from the real binary.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use async_nats::Client;
use chocominer_codec::{BatchHeaders, NUMBER_LEN, NumberBatch, Numbers};
use chocominer_process::Shutdown;
use futures::StreamExt;
use testkit::{NatsServer, Service, cargo_bin_async, eventually, free_port, parse};
use tokio::time::timeout;

const NUMBERS: &str = "chocominer.numbers";
const POLL: Duration = Duration::from_millis(50);
const SOON: Duration = Duration::from_secs(30);
/// Numbers in the slow batch: at the hasher's 100 ms a hash, it takes 5 s to finish.
const SLOW_BATCH: usize = 50;

/// `GET http://127.0.0.1:<port><path>`: status and body, or `None` when nothing answers.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let response = testkit::http_client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

/// Waits until `/readyz` on `port` answers `status` with `body`.
async fn eventually_readyz(port: u16, status: u16, body: &str) {
    eventually(
        &format!("/readyz on port {port} answers {status} {body:?}"),
        SOON,
        POLL,
        || async move { (get(port, "/readyz").await? == (status, body.to_owned())).then_some(()) },
    )
    .await;
}

/// Arguments of a stage on `nats` (as the NATS user named after the stage), with no stats,
/// its health server on `port`, then `extra`.
fn args(bin: &str, nats: &NatsServer, port: u16, extra: &[&str]) -> Vec<String> {
    let mut args = args_on(bin, &nats.url(), port, &nats.user_args(bin));
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// Arguments of a stage on `nats_url`, with no stats, its health server on `port`, then
/// `extra`.
fn args_on(bin: &str, nats_url: &str, port: u16, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        bin,
        "--nats-url",
        nats_url,
        "--influx-url",
        "",
        "--health-listen",
        &format!("127.0.0.1:{port}"),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().cloned());
    args
}

/// What `<bin> --health-check <args>` did: its exit code, stdout and stderr.
struct Probe {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn probe(bin: &Path, args: &[&str]) -> Probe {
    let output = tokio::process::Command::new(bin)
        .arg("--health-check")
        .args(args)
        .env_remove("HEALTH_LISTEN")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {} --health-check: {e}", bin.display()));
    Probe {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Sends one raw batch of `count` numbers to the hashers as rng would; returns the
/// subscription its answer comes back on.
async fn send_batch(client: &Client, count: usize) -> async_nats::Subscriber {
    let inbox = client.new_inbox();
    let answers = client.subscribe(inbox.clone()).await.expect("subscribe");
    let raw = vec![7u8; count * NUMBER_LEN];
    let body = NumberBatch {
        seq: 1,
        numbers: Numbers::Raw(&raw),
    }
    .encode();
    let headers = BatchHeaders::new("test", 1, count).to_header_map();
    client
        .publish_with_reply_and_headers(NUMBERS, inbox, headers, body)
        .await
        .expect("publish the batch");
    // Once flushed, the server has routed the batch: the hasher finishes it even if told to
    // stop right after.
    client.flush().await.expect("flush");
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_stage_is_not_ready_at_once_and_alive_until_it_exits() {
    testkit::init_tracing();
    let bin = cargo_bin_async("hasher").await;
    let nats = NatsServer::start().await;
    let client = nats.connect_as("rng").await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");

    let worker_stop = Shutdown::new();
    let worker_config: worker::Config =
        parse(&args("worker", &nats, free_port(), &["--delay-ms", "0"]));
    let worker = Service::spawn("worker", &worker_stop, |s| worker::run(worker_config, s));
    let hasher_stop = Shutdown::new();
    let hasher_config: hasher::Config = parse(&args(
        "hasher",
        &nats,
        port,
        &["--delay-ms", "100", "--concurrency", "1"],
    ));
    let hasher = Service::spawn("hasher", &hasher_stop, |s| hasher::run(hasher_config, s));

    eventually_readyz(port, 200, "ready").await;
    assert_eq!(get(port, "/healthz").await, Some((200, "ok".into())));
    assert_eq!(get(port, "/metrics").await.map(|(s, _)| s), Some(404));
    let ready = probe(&bin, &["--health-listen", &listen]).await;
    assert_eq!(ready.code, Some(0), "{}{}", ready.stdout, ready.stderr);
    assert_eq!(ready.stdout, format!("ready (http://{listen}/readyz)\n"));

    // A batch that takes the hasher 5 s, then the stop: not ready on the very first ask.
    let mut answers = send_batch(&client, SLOW_BATCH).await;
    hasher_stop.trigger();
    assert_eq!(
        get(port, "/readyz").await,
        Some((503, "not ready: stopping".into()))
    );
    assert_eq!(get(port, "/healthz").await, Some((200, "ok".into())));
    let stopping = probe(&bin, &["--health-listen", &listen]).await;
    assert_eq!(
        stopping.code,
        Some(1),
        "{}{}",
        stopping.stdout,
        stopping.stderr
    );
    assert_eq!(
        stopping.stdout,
        format!("not ready: stopping (http://{listen}/readyz answered 503)\n")
    );
    assert!(
        hasher.is_running(),
        "the hasher ended before it finished its batch: the answers above came too late \
         to show anything"
    );
    assert_eq!(get(port, "/healthz").await, Some((200, "ok".into())));

    // It finishes the batch, then its health server goes with it.
    let report = hasher.report().await;
    assert_eq!(report.hashed, SLOW_BATCH as u64);
    assert_eq!(report.acked, SLOW_BATCH as u64);
    let answer = timeout(SOON, answers.next())
        .await
        .expect("the batch is answered")
        .expect("an answer");
    assert!(answer.status.is_none(), "not acknowledged: {answer:?}");
    assert_eq!(
        get(port, "/healthz").await,
        None,
        "still serving after exit"
    );
    let gone = probe(&bin, &["--health-listen", &listen]).await;
    assert_eq!(gone.code, Some(1), "{}{}", gone.stdout, gone.stderr);
    assert!(
        gone.stdout.starts_with(&format!(
            "not ready: no answer from http://{listen}/readyz: "
        )),
        "{}",
        gone.stdout
    );
    assert_eq!(gone.stdout.lines().count(), 1, "{}", gone.stdout);

    worker_stop.trigger();
    worker.report().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_needs_the_address_and_reads_0_0_0_0_as_loopback() {
    let bin = cargo_bin_async("hasher").await;
    let unset = probe(&bin, &[]).await;
    assert_eq!(unset.code, Some(2), "{}{}", unset.stdout, unset.stderr);
    assert_eq!(unset.stdout, "");
    assert!(unset.stderr.starts_with("error: "), "{}", unset.stderr);
    assert!(unset.stderr.contains("HEALTH_LISTEN"), "{}", unset.stderr);
    assert_eq!(unset.stderr.lines().count(), 1, "{}", unset.stderr);
    let empty = probe(&bin, &["--health-listen", ""]).await;
    assert_eq!(empty.code, Some(2), "{}{}", empty.stdout, empty.stderr);

    // The address a container sets, asked on loopback; nothing listens there.
    let port = free_port();
    let nothing = probe(&bin, &["--health-listen", &format!("0.0.0.0:{port}")]).await;
    assert_eq!(
        nothing.code,
        Some(1),
        "{}{}",
        nothing.stdout,
        nothing.stderr
    );
    assert!(
        nothing.stdout.starts_with(&format!(
            "not ready: no answer from http://127.0.0.1:{port}/readyz: "
        )),
        "{}",
        nothing.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_is_not_ready_while_nats_is_out_of_reach() {
    testkit::init_tracing();
    // No NATS yet: alive, waiting for it.
    let port = free_port();
    let nowhere = format!("nats://127.0.0.1:{}", free_port());
    let stop = Shutdown::new();
    let config: worker::Config = parse(&args_on("worker", &nowhere, port, &[]));
    let waiting = Service::spawn("worker", &stop, |s| worker::run(config, s));
    eventually_readyz(port, 503, "not ready: connecting to NATS").await;
    assert_eq!(get(port, "/healthz").await, Some((200, "ok".into())));
    stop.trigger();
    waiting.report().await;
    assert_eq!(
        get(port, "/healthz").await,
        None,
        "still serving after exit"
    );

    // Connected, then NATS goes away: not ready while the client reconnects.
    let nats = NatsServer::start().await;
    let port = free_port();
    let config: worker::Config = parse(&args("worker", &nats, port, &[]));
    // Left running when the test ends: it would wait for NATS to flush its last stats.
    let _worker = Service::spawn("worker", &Shutdown::new(), |s| worker::run(config, s));
    eventually_readyz(port, 200, "ready").await;
    drop(nats);
    eventually_readyz(port, 503, "not ready: NATS connection lost, reconnecting").await;
    assert_eq!(get(port, "/healthz").await, Some((200, "ok".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rng_is_ready_once_it_sends_even_with_no_hasher() {
    testkit::init_tracing();
    let nats = NatsServer::start().await;
    let port = free_port();
    let stop = Shutdown::new();
    let config: rng::Config = parse(&args("rng", &nats, port, &[]));
    let rng = Service::spawn("rng", &stop, |s| rng::run(config, s));
    // It holds its batches until a hasher comes: waiting is no reason to restart it.
    eventually_readyz(port, 200, "ready").await;
    stop.trigger();
    rng.report().await;
    assert_eq!(
        get(port, "/healthz").await,
        None,
        "still serving after exit"
    );
}
