//! What the end-to-end tests share: a real nats-server and influxd per test ([`Stack`]), the
//! three services run in-process ([`Service`]) or as processes ([`ChildService`]), a plain
//! subscription counting the digests that flow ([`DigestFlow`]), and InfluxDB queries.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use chocominer_pipeline::Shutdown;
use chocominer_pipeline::codec::{DigestBatch, HEADER_INSTANCE};
use chocominer_pipeline::nugget::{Nugget, leading_zero_bits};
use clap::Parser;
use futures::StreamExt;
use serde_json::{Map, Value};
use testkit::{Influx, NatsServer, eventually};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout, timeout_at};

pub const NUMBERS: &str = "chocominer.numbers";
pub const DIGESTS: &str = "chocominer.digests";
pub const NUGGETS: &str = "chocominer.nuggets";
/// The services' default database; every test has an influxd of its own.
pub const DB: &str = "chocominer";

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(100);
/// How long to wait for something that happens within a second or two on an idle machine.
pub const SOON: Duration = Duration::from_secs(30);
/// Upper bound on anything counted in a test, for decoding digest batches.
const MAX_BATCH: usize = 1 << 20;

/// A nats-server and an influxd of the test's own, and a NATS client for the test.
pub struct Stack {
    pub nats: NatsServer,
    pub influx: Influx,
    pub client: Client,
}

impl Stack {
    pub async fn start() -> Stack {
        testkit::init_tracing();
        let (nats, influx) = tokio::join!(NatsServer::start(), Influx::start());
        // Created up front so that queries never race the services' own CREATE DATABASE.
        influx.create_database(DB).await;
        let client = async_nats::connect(nats.url())
            .await
            .expect("the test's NATS client connects");
        Stack {
            nats,
            influx,
            client,
        }
    }

    /// Command-line arguments for a service of this stack: NATS and InfluxDB URLs, the
    /// instance name, then `extra`.
    pub fn args(&self, bin: &str, instance: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            bin.into(),
            "--nats-url".into(),
            self.nats.url(),
            "--influx-url".into(),
            self.influx.url(),
            "--instance".into(),
            instance.into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    pub fn spawn_rng(
        &self,
        instance: &str,
        extra: &[&str],
        shutdown: &Shutdown,
    ) -> Service<rng::Report> {
        let config = parse::<rng::Config>(self.args("rng", instance, extra));
        Service::spawn(instance, rng::run(config, shutdown.clone()))
    }

    pub fn spawn_hasher(
        &self,
        instance: &str,
        extra: &[&str],
        shutdown: &Shutdown,
    ) -> Service<hasher::Report> {
        let config = parse::<hasher::Config>(self.args("hasher", instance, extra));
        Service::spawn(instance, hasher::run(config, shutdown.clone()))
    }

    pub fn spawn_worker(
        &self,
        instance: &str,
        extra: &[&str],
        shutdown: &Shutdown,
    ) -> Service<worker::Report> {
        let config = parse::<worker::Config>(self.args("worker", instance, extra));
        Service::spawn(instance, worker::run(config, shutdown.clone()))
    }

    /// Waits until every one of `instances` answers `$SRV.INFO.<stage>` with its endpoint
    /// registered, i.e. is subscribed to its input subject.
    pub async fn wait_for_service(&self, stage: &str, instances: &[&str]) {
        let client = &self.client;
        eventually(
            &format!("{stage} instances {instances:?} registered as NATS services"),
            SOON,
            POLL,
            || async move {
                let seen = service_instances(client, stage, instances).await;
                instances.iter().all(|i| seen.contains(*i)).then_some(())
            },
        )
        .await;
    }

    pub async fn rows(&self, q: &str) -> Vec<Map<String, Value>> {
        self.influx.rows(DB, q).await
    }

    /// `sum(field)` over every point of `measurement` (0 when there are none).
    pub async fn sum(&self, measurement: &str, field: &str) -> i64 {
        let rows = self
            .rows(&format!(r#"SELECT sum("{field}") FROM "{measurement}""#))
            .await;
        rows.first().map_or(0, |row| as_i64(&row["sum"]))
    }

    /// `sum(field)` of `measurement` per `instance` tag.
    /// Waits until InfluxDB's `sum(field)` over `measurement` is `expected` (the last points
    /// of a stopping service arrive a moment after its report).
    pub async fn eventually_sum(&self, measurement: &str, field: &str, expected: u64) {
        let what = format!("sum({measurement}.{field})");
        eventually_eq(&what, SOON, expected as i64, || {
            self.sum(measurement, field)
        })
        .await;
    }

    pub async fn sums_by_instance(&self, measurement: &str, field: &str) -> BTreeMap<String, i64> {
        let rows = self
            .rows(&format!(
                r#"SELECT sum("{field}") FROM "{measurement}" GROUP BY "instance""#
            ))
            .await;
        rows.iter()
            .map(|row| {
                let instance = row["instance"].as_str().expect("instance tag").to_owned();
                (instance, as_i64(&row["sum"]))
            })
            .collect()
    }

    /// Every point of `measurement` from `instance`, oldest first.
    pub async fn points(&self, measurement: &str, instance: &str) -> Vec<Map<String, Value>> {
        self.rows(&format!(
            r#"SELECT * FROM "{measurement}" WHERE "instance" = '{instance}' ORDER BY time ASC"#
        ))
        .await
    }
}

fn parse<C: Parser>(args: Vec<String>) -> C {
    C::try_parse_from(&args).unwrap_or_else(|e| panic!("bad test arguments {args:?}: {e}"))
}

pub fn as_i64(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_f64().map(|f| f.round() as i64))
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

/// The `instance` metadata of the `stage` services that answer `$SRV.INFO.<stage>` with at
/// least one endpoint, collected for up to half a second (less once all `wanted` answered).
async fn service_instances(client: &Client, stage: &str, wanted: &[&str]) -> HashSet<String> {
    let mut seen = HashSet::new();
    let inbox = client.new_inbox();
    let Ok(mut replies) = client.subscribe(inbox.clone()).await else {
        return seen;
    };
    if client
        .publish_with_reply(format!("$SRV.INFO.{stage}"), inbox, Bytes::new())
        .await
        .is_err()
    {
        return seen;
    }
    let deadline = Instant::now() + Duration::from_millis(500);
    for _ in 0..100 {
        let Ok(Some(reply)) = timeout_at(deadline, replies.next()).await else {
            break;
        };
        let Ok(info) = serde_json::from_slice::<Value>(&reply.payload) else {
            continue;
        };
        let has_endpoint = info["endpoints"].as_array().is_some_and(|e| !e.is_empty());
        if let (true, Some(instance)) = (has_endpoint, info["metadata"]["instance"].as_str()) {
            seen.insert(instance.to_owned());
        }
        if wanted.iter().all(|w| seen.contains(*w)) {
            break;
        }
    }
    seen
}

/// Polls `f` every [`POLL`] until it returns `expected`; panics with the last value seen
/// after `within`.
pub async fn eventually_eq<T, F, Fut>(what: &str, within: Duration, expected: T, mut f: F) -> T
where
    T: PartialEq + Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + within;
    let max_rounds = within.as_millis() / POLL.as_millis() + 2;
    let mut last = None;
    for _ in 0..max_rounds {
        match timeout_at(deadline, f()).await {
            Ok(value) if value == expected => return value,
            Ok(value) => last = Some(value),
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            break;
        }
        sleep(POLL).await;
    }
    panic!("{what}: expected {expected:?}, last seen {last:?} (waited {within:?})");
}

pub use testkit::Service;

#[derive(Debug, Default)]
struct Counts {
    total: u64,
    by_instance: HashMap<String, u64>,
}

/// A plain (non-queue) subscription on `chocominer.digests` that counts the numbers in every
/// well-formed digest batch, in total and per sending hasher (`Chocominer-Instance`).
///
/// While it is subscribed, a hasher sending to a stopped worker gets no "no responders" (this
/// observer is a subscriber too) and waits for its ack timeout instead: [`DigestFlow::stop`]
/// it before stopping the pipeline when the test counts what was lost at shutdown.
pub struct DigestFlow {
    counts: Arc<Mutex<Counts>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl DigestFlow {
    pub async fn watch(client: &Client) -> DigestFlow {
        let mut digests = client
            .subscribe(DIGESTS)
            .await
            .expect("subscribe to digests");
        // The subscription is in place at the server once the flush returns.
        client.flush().await.expect("flush the subscription");
        let counts = Arc::new(Mutex::new(Counts::default()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let counts = counts.clone();
            async move {
                loop {
                    let message = tokio::select! {
                        message = digests.next() => message,
                        _ = &mut stopped => {
                            let _ = digests.unsubscribe().await;
                            return;
                        }
                    };
                    let Some(message) = message else { return };
                    let Ok(batch) = DigestBatch::decode(&message.payload, MAX_BATCH) else {
                        continue;
                    };
                    let instance = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(HEADER_INSTANCE))
                        .map_or_else(String::new, |v| v.as_str().to_owned());
                    let n = batch.count() as u64;
                    let mut counts = counts.lock().unwrap();
                    counts.total += n;
                    *counts.by_instance.entry(instance).or_default() += n;
                }
            }
        });
        DigestFlow {
            counts,
            stop: Some(stop),
            task,
        }
    }

    /// Unsubscribes, and makes sure the server has taken the unsubscription.
    pub async fn stop(mut self, client: &Client) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the digest observer stops")
            .expect("the digest observer did not panic");
        client.flush().await.expect("flush the unsubscription");
    }

    /// Numbers seen in digest batches so far.
    pub fn total(&self) -> u64 {
        self.counts.lock().unwrap().total
    }

    /// Numbers seen in digest batches sent by hasher `instance`.
    pub fn of(&self, instance: &str) -> u64 {
        let counts = self.counts.lock().unwrap();
        counts.by_instance.get(instance).copied().unwrap_or(0)
    }

    /// Digests per second over a measuring window of `window`.
    pub async fn rate_over(&self, window: Duration) -> f64 {
        let (before, started) = (self.total(), Instant::now());
        sleep(window).await;
        let after = self.total();
        (after - before) as f64 / started.elapsed().as_secs_f64()
    }

    /// Waits until `done(self)` holds.
    pub async fn wait_until(&self, what: &str, within: Duration, done: impl Fn(&Self) -> bool) {
        eventually(what, within, Duration::from_millis(20), || {
            let ok = done(self);
            async move { ok.then_some(()) }
        })
        .await;
    }
}

impl Drop for DigestFlow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks one `nugget` point read from InfluxDB: its digest is SHA-256 of its number, meets
/// `difficulty`, and its `zero_bits` field is right.
pub fn check_nugget_point(row: &Map<String, Value>, difficulty: u32) {
    let number = row["number"].as_str().unwrap_or_else(|| panic!("{row:?}"));
    let digest = row["digest"].as_str().unwrap_or_else(|| panic!("{row:?}"));
    if let Err(e) = Nugget::verify(number, digest, difficulty) {
        panic!("nugget point {row:?} does not verify: {e}");
    }
    let bits = leading_zero_bits(&hex::decode(digest).expect("hex digest"));
    assert_eq!(as_i64(&row["zero_bits"]), i64::from(bits), "{row:?}");
    assert!(bits >= difficulty, "{row:?}");
}

/// Asserts that `times` (ns, ascending) are exactly one second apart: one point per second,
/// none missing, none doubled.
pub fn assert_one_per_second(what: &str, times: &[i64]) {
    const SECOND: i64 = 1_000_000_000;
    assert!(times.len() >= 2, "{what}: only {} points", times.len());
    let gaps: Vec<(i64, i64)> = times
        .windows(2)
        .filter(|w| w[1] - w[0] != SECOND)
        .map(|w| (w[0], w[1] - w[0]))
        .collect();
    assert!(
        gaps.is_empty(),
        "{what}: {} points over {} s; not 1 s apart at (time, step ns): {gaps:?}; all: {times:?}",
        times.len(),
        (times[times.len() - 1] - times[0]) / SECOND,
    );
    assert_eq!(
        times.len() as i64,
        (times[times.len() - 1] - times[0]) / SECOND + 1,
        "{what}"
    );
}

/// A stage run as a real process from its built binary, its output in a log file. Killed
/// (SIGKILL) when dropped.
pub struct ChildService {
    name: String,
    child: tokio::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChildService {
    pub fn spawn(bin: &Path, name: &str, args: &[String]) -> ChildService {
        let dir = tempfile::Builder::new()
            .prefix("e2e-child-")
            .tempdir()
            .expect("temp dir for a child's log");
        let log = dir.path().join(format!("{name}.log"));
        let out = File::create(&log).expect("create child log");
        let err = out.try_clone().expect("clone log handle");
        let child = tokio::process::Command::new(bin)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({}): {e}", bin.display()));
        ChildService {
            name: name.to_owned(),
            child,
            log,
            _dir: dir,
        }
    }

    /// SIGKILLs the process and reaps it.
    pub async fn kill(&mut self) -> ExitStatus {
        self.child.start_kill().expect("send SIGKILL");
        self.wait(Duration::from_secs(10)).await
    }

    /// SIGTERMs the process (a graceful stop) and waits for it to exit.
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        let pid = self.child.id().expect("the child has not been reaped yet");
        let pid = libc::pid_t::try_from(pid).expect("pid fits in pid_t");
        // SAFETY: `kill` has no memory-safety preconditions; `pid` is our unreaped child.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM to {}", self.name);
        self.wait(within).await
    }

    /// Whether the process has exited (reaping it if so).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    async fn wait(&mut self, within: Duration) -> ExitStatus {
        match timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("wait for child"),
            Err(_) => panic!(
                "{} did not exit within {within:?}; log tail:\n{}",
                self.name,
                self.log_tail()
            ),
        }
    }

    /// The last lines the process logged.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}
