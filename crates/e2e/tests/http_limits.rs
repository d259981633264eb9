//! The HTTP listeners under a flood of idle and slow connections, each binary run as a real
//! process: the dashboard (`webui`) and a stage's health server (`HEALTH_LISTEN`, here the
//! worker's). Thousands of sockets that send nothing, some that trickle half a request head,
//! and a kept-alive one left idle: `/healthz` must keep answering while they are open, the
//! server must close them within its header timeout, and its memory must stay bounded.
//!
//! The server runs with an open-file limit of [`SERVER_FILES`], so that the few thousand
//! sockets a test can open reach it, as 20,000 reach a limit of 20,000: a server that keeps
//! every idle socket then cannot accept the probe's.

use std::path::Path;
use std::time::Duration;

use chocominer_process::http::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
use testkit::{StageProcess, cargo_bin_async, eventually, free_port};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::{Instant, timeout, timeout_at};

const MB: u64 = 1 << 20;
/// The open-file limit of the server process (`ulimit -n`).
const SERVER_FILES: u64 = 4096;
/// Idle connections opened in each wave of the flood, and the waves: 6,000 in all, past
/// `SERVER_FILES`.
const WAVE: usize = 1000;
const WAVES: usize = 6;
/// Connections that trickle half a request head, one byte per [`TRICKLE_EVERY`] each.
const TRICKLERS: usize = 50;
const TRICKLE_EVERY: Duration = Duration::from_millis(500);
/// Silent connections opened beside the tricklers, before the flood.
const SILENT: usize = 50;
/// How long one connection attempt may take: a server that accepts nothing any more has a
/// full backlog, and the kernel drops the next attempts.
const CONNECT_WITHIN: Duration = Duration::from_secs(2);
/// How long `/healthz` may take to answer during the flood, polled.
const PROBE_WITHIN: Duration = Duration::from_secs(3);
/// Time past the header timeout within which the server must have closed a connection (a
/// loaded 2-core machine).
const MARGIN: Duration = Duration::from_secs(5);
/// How much the server's peak resident memory may grow over its memory before the flood: it
/// holds at most the connection cap, about 1 KB each while silent, 10 KB trickling, with room
/// to spare (it grows by under 3 MB). A server that keeps every idle socket grows by 4 to 6 KB
/// for each (18 to 26 MB for the 4,000 that reach its open-file limit).
const GROWTH_BOUND: u64 = 8 * MB;
const SOON: Duration = Duration::from_secs(30);

/// One test at a time: each holds thousands of sockets and a core.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_survives_a_flood_of_idle_connections() {
    let _one = ONE_AT_A_TIME.lock().await;
    let port = free_port();
    // No InfluxDB: the dashboard serves all the same.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let args = [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--influx-url",
        &nowhere,
    ];
    flood("webui", &args, port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_health_server_survives_a_flood_of_idle_connections() {
    let _one = ONE_AT_A_TIME.lock().await;
    let port = free_port();
    // No NATS: the worker waits for it, its health server up all along.
    let nats = format!("nats://127.0.0.1:{}", free_port());
    let args = [
        "--nats-url",
        &nats,
        "--influx-url",
        "",
        "--health-listen",
        &format!("127.0.0.1:{port}"),
    ];
    flood("worker", &args, port).await;
}

/// What the flood did to the server.
#[derive(Debug)]
// Read through Debug, in the log and the failure messages.
#[allow(dead_code)]
struct Findings {
    /// `/healthz` went unanswered for [`PROBE_WITHIN`] after this many flood connections.
    probe_failed_after: Option<usize>,
    /// Flood connections that could not even connect within [`CONNECT_WITHIN`].
    not_connected: usize,
    /// Idle connections (silent, trickling, kept alive, the flood's) still open past their
    /// deadline, of all of them.
    left_open: usize,
    idle_total: usize,
    /// Growth of the server's peak resident memory over its resident memory before.
    growth: u64,
    baseline: u64,
}

/// An open connection, as read by the test, and when the server's timeout for it started.
type Idle = (Box<dyn AsyncRead + Unpin + Send>, Instant);

/// Runs `bin` with `args` (its HTTP server on `port`), floods it, and asserts what holds.
async fn flood(bin: &str, args: &[&str], port: u16) {
    testkit::init_tracing();
    raise_own_file_limit(WAVE * WAVES + TRICKLERS + SILENT + 500);
    let path = cargo_bin_async(bin).await;
    let mut server = spawn_with_file_limit(&path, bin, args);
    let address = format!("127.0.0.1:{port}");
    eventually(&format!("{bin} answers /healthz"), SOON, POLL, || {
        healthz(port)
    })
    .await;
    let baseline = server.memory().expect("the server runs").rss;
    let started = Instant::now();

    // Silent and trickling connections, and one kept alive after an answer.
    let mut idle: Vec<Idle> = Vec::new();
    for _ in 0..SILENT {
        let stream = connect(&address).await.expect("connect before the flood");
        idle.push((Box::new(stream), Instant::now()));
    }
    let mut trickle_writers = Vec::new();
    for _ in 0..TRICKLERS {
        let stream = connect(&address).await.expect("connect before the flood");
        let (read, write) = stream.into_split();
        trickle_writers.push(write);
        idle.push((Box::new(read), Instant::now()));
    }
    let trickling = tokio::spawn(trickle(trickle_writers));
    let mut kept = connect(&address).await.expect("connect before the flood");
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
    kept.write_all(request.as_bytes()).await.unwrap();
    let mut answer = [0u8; 512];
    let n = timeout(SOON, kept.read(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    idle.push((Box::new(kept), Instant::now()));

    // The flood, in waves, /healthz asked after each.
    let mut not_connected = 0;
    let mut probe_failed_after = None;
    let mut flooded = 0;
    'waves: for _ in 0..WAVES {
        for _ in 0..WAVE {
            match connect(&address).await {
                Some(stream) => {
                    idle.push((Box::new(stream), Instant::now()));
                    flooded += 1;
                }
                None => {
                    // The backlog is full: the server takes nothing any more.
                    not_connected += 1;
                    break;
                }
            }
        }
        if !answers_within(port, PROBE_WITHIN).await {
            probe_failed_after = Some(flooded);
            break 'waves;
        }
        if not_connected > 0 {
            break 'waves;
        }
    }
    tracing::info!(
        flooded,
        seconds = started.elapsed().as_secs_f64(),
        "flood done"
    );

    // Every idle connection closed by the server within the header timeout and a margin.
    let idle_total = idle.len();
    let left_open = count_left_open(idle).await;
    trickling.abort();
    let peak = server.memory().expect("the server runs").peak_rss;
    let findings = Findings {
        probe_failed_after,
        not_connected,
        left_open,
        idle_total,
        growth: peak.saturating_sub(baseline),
        baseline,
    };
    tracing::info!(?findings, "{bin} under the flood");

    assert!(
        findings.probe_failed_after.is_none() && findings.not_connected == 0,
        "{bin}: /healthz unanswered or connections not taken under the flood: {findings:?}\n{}",
        server.log_tail()
    );
    assert_eq!(
        findings.left_open,
        0,
        "{bin}: idle connections left open past {:?}: {findings:?}",
        HEADER_READ_TIMEOUT + MARGIN
    );
    assert!(
        findings.growth < GROWTH_BOUND,
        "{bin}: peak memory grew by {} MB under the flood (bound {} MB): {findings:?}",
        findings.growth / MB,
        GROWTH_BOUND / MB
    );
    // Said in the log, a line per few seconds at most, not one per connection.
    let log = server.log();
    let reports = log
        .lines()
        .filter(|l| l.contains("closed connections in the last"))
        .count();
    let seconds = started.elapsed().as_secs() as usize;
    assert!(
        (1..=seconds / 5 + 2).contains(&reports),
        "{bin}: {reports} report lines in {seconds} s:\n{log}"
    );
    assert!(
        log.contains(&format!("at the cap of {MAX_CONNECTIONS} open connections")),
        "{bin}: the evictions are not reported:\n{log}"
    );
    assert!(
        healthz(port).await.is_some(),
        "{bin}: /healthz after the flood"
    );
    let status = server.terminate(SOON).await;
    assert!(status.success(), "{bin} stopped with {status}");
}

const POLL: Duration = Duration::from_millis(100);

/// `GET /healthz`: `Some` when it answers 200 `ok` within a second.
async fn healthz(port: u16) -> Option<()> {
    let asked = async {
        let response = testkit::http_client()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .ok()?;
        let ok = response.status() == 200 && response.text().await.ok()? == "ok";
        ok.then_some(())
    };
    timeout(Duration::from_secs(1), asked).await.ok()?
}

/// Whether `/healthz` answers, asked every [`POLL`] for `within`.
async fn answers_within(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if healthz(port).await.is_some() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A connection to `address`, or `None` if it takes more than [`CONNECT_WITHIN`].
async fn connect(address: &str) -> Option<TcpStream> {
    match timeout(CONNECT_WITHIN, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => panic!("connect to {address}: {e}"),
        Err(_) => None,
    }
}

/// Half a request head on each of `writers`, then a byte each every [`TRICKLE_EVERY`], for a
/// minute at most; a writer whose connection is closed drops out.
async fn trickle(mut writers: Vec<OwnedWriteHalf>) {
    for writer in &mut writers {
        let _ = writer.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ").await;
    }
    for _ in 0..120 {
        tokio::time::sleep(TRICKLE_EVERY).await;
        let mut open = Vec::with_capacity(writers.len());
        for mut writer in writers {
            if writer.write_all(b"a").await.is_ok() {
                open.push(writer);
            }
        }
        writers = open;
    }
}

/// How many of `idle` the server leaves open past their header timeout and [`MARGIN`].
async fn count_left_open(idle: Vec<Idle>) -> usize {
    let checks = idle.into_iter().map(|(mut stream, since)| async move {
        let deadline = since + HEADER_READ_TIMEOUT + MARGIN;
        let mut buf = [0u8; 256];
        loop {
            match timeout_at(deadline, stream.read(&mut buf)).await {
                // Closed: end of stream, or reset.
                Ok(Ok(0) | Err(_)) => return false,
                Ok(Ok(_)) => continue,
                Err(_) => return true,
            }
        }
    });
    futures::future::join_all(checks)
        .await
        .into_iter()
        .filter(|&open| open)
        .count()
}

/// Runs `bin args` as a process whose open-file limit is [`SERVER_FILES`].
fn spawn_with_file_limit(bin: &Path, name: &str, args: &[&str]) -> StageProcess {
    let mut shell = vec![
        "-c".to_owned(),
        format!("ulimit -n {SERVER_FILES} && exec \"$0\" \"$@\""),
        bin.display().to_string(),
    ];
    shell.extend(args.iter().map(|a| a.to_string()));
    StageProcess::spawn(Path::new("/bin/sh"), name, &shell)
}

/// Raises this process's soft limit on open files to `needed` at least, for the test's own
/// sockets; panics when the hard limit is lower.
fn raise_own_file_limit(needed: usize) {
    let needed = needed as libc::rlim_t;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur >= needed {
            return;
        }
        assert!(
            limit.rlim_max >= needed,
            "this test opens {needed} sockets; the hard limit on open files is {} (ulimit -Hn)",
            limit.rlim_max
        );
        limit.rlim_cur = needed;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}
