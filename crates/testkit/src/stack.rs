//! A pipeline on real servers: a nats-server and an influxd of the test's own ([`Stack`]), the
//! stages run in-process against them (one at a time, or rng → hasher → worker at once as a
//! [`Pipeline`]) or as processes, and the stats they write to InfluxDB, read back.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use chocominer_process::Shutdown;
use clap::Parser;
use futures::StreamExt;
use serde_json::{Map, Value};
use tokio::time::{Instant, timeout_at};

use crate::{Influx, NatsServer, Service, StageProcess, eventually, eventually_eq};

/// The stages' default database, created by [`Stack::start`]; every test has an influxd of its
/// own.
pub const DB: &str = "chocominer";
/// How often [`Stack`]'s waits poll.
pub const POLL: Duration = Duration::from_millis(100);
/// How long [`Stack`]'s waits wait for what takes a second or two on an idle machine.
pub const SOON: Duration = Duration::from_secs(30);

/// A nats-server and (unless [`Stack::nats_only`]) an influxd of the test's own, and a NATS
/// client for the test. Dropping it kills both servers.
pub struct Stack {
    pub nats: NatsServer,
    influx: Option<Influx>,
    recorder: Option<Recorder>,
    pub client: Client,
}

/// The `recorder` binary in front of the stack's influxd, as deployed: the stages write to it
/// as user `stages`, it writes on as InfluxDB's writer.
struct Recorder {
    url: String,
    password_file: PathBuf,
    process: StageProcess,
    // Holds the password file.
    _dir: tempfile::TempDir,
}

/// The stages' password for the recorder of [`Stack::start_with_recorder`].
pub const STAGES_PASSWORD: &str = "stages-password-of-the-tests";

impl Stack {
    /// nats-server and influxd, started side by side, with the stats database [`DB`] created up
    /// front, as an administrator does (the stages' writer may not create it), with the
    /// writer's and the reader's rights on it.
    pub async fn start() -> Stack {
        crate::init_tracing();
        let (nats, influx) = tokio::join!(NatsServer::start(), Influx::start());
        influx.create_database(DB).await;
        Stack::with(nats, Some(influx)).await
    }

    /// [`Stack::start`], and the `recorder` binary `bin` between the stages and influxd, as
    /// `just up`, Compose and Kubernetes run them: stages started on this stack write their
    /// stats to it as user `stages` with [`STAGES_PASSWORD`], and never hold InfluxDB's writer
    /// password.
    pub async fn start_with_recorder(bin: &Path) -> Stack {
        let mut stack = Stack::start().await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let password_file = dir.path().join("recorder-stages.password");
        std::fs::write(&password_file, STAGES_PASSWORD).expect("the stages' password file");
        let listen = format!("127.0.0.1:{}", crate::free_port());
        let mut args = vec![
            "--listen".to_owned(),
            listen.clone(),
            "--password-file".to_owned(),
            password_file.display().to_string(),
        ];
        args.extend(stack.influx().writer_args());
        let process = StageProcess::spawn(bin, "recorder", &args);
        let url = format!("http://{listen}");
        let ping = format!("{url}/ping");
        let http = crate::http_client();
        let (ping, http) = (&ping, &http);
        let answered = timeout_at(Instant::now() + SOON, async move {
            loop {
                if let Ok(answer) = http.get(ping).send().await
                    && answer.status() == 204
                {
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        assert!(
            answered.is_ok(),
            "the recorder did not answer {ping} within {SOON:?}: {}",
            process.log_tail()
        );
        stack.recorder = Some(Recorder {
            url,
            password_file,
            process,
            _dir: dir,
        });
        stack
    }

    /// The recorder's URL (the stages' InfluxDB); panics unless [`Stack::start_with_recorder`].
    pub fn recorder_url(&self) -> &str {
        &self
            .recorder
            .as_ref()
            .expect("no recorder (Stack::start_with_recorder)")
            .url
    }

    /// The recorder's log so far; panics unless [`Stack::start_with_recorder`].
    pub fn recorder_log(&self) -> String {
        self.recorder
            .as_ref()
            .expect("no recorder (Stack::start_with_recorder)")
            .process
            .log()
    }

    /// nats-server only: stages started on it write no stats.
    pub async fn nats_only() -> Stack {
        crate::init_tracing();
        Stack::with(NatsServer::start().await, None).await
    }

    /// `nats` only, e.g. a [`NatsServer::start_without_authorization`]: stages started on it
    /// write no stats.
    pub async fn nats_only_on(nats: NatsServer) -> Stack {
        crate::init_tracing();
        Stack::with(nats, None).await
    }

    async fn with(nats: NatsServer, influx: Option<Influx>) -> Stack {
        // The test watches as people do: may read everything and ask the services, may not
        // publish into the pipeline (a test that does connects as that role, `connect_as`).
        let client = nats.connect_as("debug").await;
        Stack {
            nats,
            influx,
            recorder: None,
            client,
        }
    }

    /// The influxd; panics on a [`Stack::nats_only`].
    pub fn influx(&self) -> &Influx {
        self.influx
            .as_ref()
            .expect("this stack has no influxd (Stack::nats_only)")
    }

    /// The influxd, to stop and restart it; panics on a [`Stack::nats_only`].
    pub fn influx_mut(&mut self) -> &mut Influx {
        self.influx
            .as_mut()
            .expect("this stack has no influxd (Stack::nats_only)")
    }

    /// A NATS client of the test connected as `role` (e.g. `rng` to send numbers as rng does).
    pub async fn connect_as(&self, role: &str) -> Client {
        self.nats.connect_as(role).await
    }

    /// Command-line arguments of a stage of this stack, without the program name: its NATS
    /// URL (unless `extra` has a `--nats-url` of its own, e.g. a list) and credentials (the
    /// NATS user named after the stage), its InfluxDB URL and the writer's credentials (the
    /// recorder's URL and the stages' credentials on a [`Stack::start_with_recorder`]; an
    /// empty URL, so no stats, on a [`Stack::nats_only`]), its instance name, a worker's
    /// `--delay-ms 0` (unless `extra` has one), then `extra`.
    pub fn stage_args(&self, stage: &str, instance: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        // Given twice, clap would refuse it.
        if !extra.contains(&"--nats-url") {
            args.extend(["--nats-url".into(), self.nats.url()]);
        }
        args.extend(self.nats.user_args(stage));
        match (&self.recorder, &self.influx) {
            (Some(recorder), _) => args.extend([
                "--influx-url".into(),
                recorder.url.clone(),
                "--influx-user".into(),
                "stages".into(),
                "--influx-password-file".into(),
                recorder.password_file.display().to_string(),
            ]),
            (None, Some(influx)) => args.extend(influx.writer_args()),
            (None, None) => args.extend(["--influx-url".into(), String::new()]),
        }
        args.extend(["--instance".into(), instance.into()]);
        // A worker judges at once unless the test sets its pace: the demo's 300 ms a hash is
        // the lesson's (played by scripts/test-lesson.sh and the container test), and would
        // make every other test wait on it.
        if stage == "worker" && !extra.contains(&"--delay-ms") {
            args.extend(["--delay-ms".into(), "0".into()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    /// rng `instance` in-process with `extra` arguments, stopping on `shutdown`.
    pub fn spawn_rng(
        &self,
        instance: &str,
        extra: &[&str],
        shutdown: &Shutdown,
    ) -> Service<rng::Report> {
        self.spawn_stage("rng", instance, extra, shutdown, rng::run)
    }

    /// A hasher `instance` in-process with `extra` arguments, stopping on `shutdown`.
    pub fn spawn_hasher(
        &self,
        instance: &str,
        extra: &[&str],
        shutdown: &Shutdown,
    ) -> Service<hasher::Report> {
        self.spawn_stage("hasher", instance, extra, shutdown, hasher::run)
    }

    /// A worker `instance` in-process with `extra` arguments, stopping on `shutdown`.
    pub fn spawn_worker(
        &self,
        instance: &str,
        extra: &[&str],
        shutdown: &Shutdown,
    ) -> Service<worker::Report> {
        self.spawn_stage("worker", instance, extra, shutdown, worker::run)
    }

    /// A stage `instance` as a process of `bin` (a stage binary from [`crate::cargo_bin`],
    /// named after its stage) with `extra` arguments.
    pub fn spawn_process(&self, bin: &Path, instance: &str, extra: &[&str]) -> StageProcess {
        let stage = bin
            .file_stem()
            .and_then(|name| name.to_str())
            .expect("a stage binary named after its stage");
        StageProcess::spawn(bin, instance, &self.stage_args(stage, instance, extra))
    }

    /// The usual pipeline of a test: one worker `w1`, one hasher `h1` and one rng `r1`, with no
    /// extra arguments until the [`PipelineBuilder`] is told otherwise.
    pub fn pipeline(&self) -> PipelineBuilder<'_> {
        PipelineBuilder {
            stack: self,
            rng: Planned::new("r1", &[]),
            hasher: Planned::new("h1", &[]),
            worker: Planned::new("w1", &[]),
        }
    }

    /// `run(config, shutdown)` on a task, `config` parsed from the arguments of `stage`.
    fn spawn_stage<C, F, Fut, R>(
        &self,
        stage: &str,
        instance: &str,
        extra: &[&str],
        shutdown: &Shutdown,
        run: F,
    ) -> Service<R>
    where
        C: Parser,
        F: FnOnce(C, Shutdown) -> Fut,
        Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
        R: Send + 'static,
    {
        let mut args = vec![stage.to_owned()];
        args.extend(self.stage_args(stage, instance, extra));
        let config: C = crate::parse(&args);
        Service::spawn(instance, shutdown, |shutdown| run(config, shutdown))
    }

    /// Waits until every one of `instances` answers `$SRV.INFO.<stage>` with its endpoint
    /// registered, i.e. is subscribed to its input subject.
    pub async fn wait_for_service(&self, stage: &str, instances: &[&str]) {
        wait_for_service(&self.client, stage, instances).await;
    }

    /// The `$SRV.STATS.<stage>` answers of its `replicas` replicas (see [`service_stats`]).
    pub async fn service_stats(&self, stage: &str, replicas: usize) -> Vec<Value> {
        service_stats(&self.client, stage, replicas).await
    }

    /// The rows of an InfluxQL query on [`DB`] (see [`Influx::rows`]).
    pub async fn rows(&self, q: &str) -> Vec<Map<String, Value>> {
        self.influx().rows(DB, q).await
    }

    /// `sum(field)` over every point of `measurement` (0 when there are none).
    pub async fn sum(&self, measurement: &str, field: &str) -> i64 {
        let rows = self
            .rows(&format!(r#"SELECT sum("{field}") FROM "{measurement}""#))
            .await;
        rows.first().map_or(0, |row| as_i64(&row["sum"]))
    }

    /// Waits until `sum(field)` over `measurement` is `expected` (the last points of a stopping
    /// stage arrive a moment after its report).
    pub async fn eventually_sum(&self, measurement: &str, field: &str, expected: u64) {
        let what = format!("sum({measurement}.{field})");
        let expected = i64::try_from(expected).expect("a sum that fits in i64");
        eventually_eq(&what, SOON, POLL, expected, || self.sum(measurement, field)).await;
    }

    /// `sum(field)` of `measurement` per `instance` tag.
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

/// Waits until every one of `instances` answers `$SRV.INFO.<stage>`, asked through `client`,
/// with its endpoint registered, i.e. is subscribed to its input subject.
pub async fn wait_for_service(client: &Client, stage: &str, instances: &[&str]) {
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

/// A JSON number from InfluxDB as an integer (floats rounded); panics on anything else.
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
    service_answers(client, &format!("$SRV.INFO.{stage}"), |info| {
        let has_endpoint = info["endpoints"].as_array().is_some_and(|e| !e.is_empty());
        if let (true, Some(instance)) = (has_endpoint, info["metadata"]["instance"].as_str()) {
            seen.insert(instance.to_owned());
        }
        wanted.iter().all(|w| seen.contains(*w))
    })
    .await;
    seen
}

/// The `$SRV.STATS.<stage>` answers of the `replicas` replicas of `stage` (each its custom
/// figures under `data`, e.g. `data.hashes`), asked through `client`; fewer if not all of them
/// answered within half a second.
pub async fn service_stats(client: &Client, stage: &str, replicas: usize) -> Vec<Value> {
    let mut answers = Vec::new();
    service_answers(client, &format!("$SRV.STATS.{stage}"), |stats| {
        answers.push(stats);
        answers.len() >= replicas
    })
    .await;
    answers
}

/// Asks `subject` (a `$SRV` verb, every replica answers) and hands each JSON answer to
/// `enough` until it says that was enough, for up to half a second.
async fn service_answers(client: &Client, subject: &str, mut enough: impl FnMut(Value) -> bool) {
    let inbox = client.new_inbox();
    let Ok(mut replies) = client.subscribe(inbox.clone()).await else {
        return;
    };
    if client
        .publish_with_reply(subject.to_owned(), inbox, Bytes::new())
        .await
        .is_err()
    {
        return;
    }
    let deadline = Instant::now() + Duration::from_millis(500);
    for _ in 0..1000 {
        let Ok(Some(reply)) = timeout_at(deadline, replies.next()).await else {
            break;
        };
        let Ok(answer) = serde_json::from_slice::<Value>(&reply.payload) else {
            continue;
        };
        if enough(answer) {
            break;
        }
    }
}

/// Names and arguments of the three stages of a [`Pipeline`], from [`Stack::pipeline`].
pub struct PipelineBuilder<'a> {
    stack: &'a Stack,
    rng: Planned,
    hasher: Planned,
    worker: Planned,
}

/// A stage instance to start: its name and extra arguments.
struct Planned {
    instance: String,
    extra: Vec<String>,
}

impl Planned {
    fn new(instance: &str, extra: &[&str]) -> Planned {
        Planned {
            instance: instance.to_owned(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn extra(&self) -> Vec<&str> {
        self.extra.iter().map(String::as_str).collect()
    }
}

impl PipelineBuilder<'_> {
    /// rng's instance name and extra arguments.
    pub fn rng(mut self, instance: &str, extra: &[&str]) -> Self {
        self.rng = Planned::new(instance, extra);
        self
    }

    /// The hasher's instance name and extra arguments.
    pub fn hasher(mut self, instance: &str, extra: &[&str]) -> Self {
        self.hasher = Planned::new(instance, extra);
        self
    }

    /// The worker's instance name and extra arguments.
    pub fn worker(mut self, instance: &str, extra: &[&str]) -> Self {
        self.worker = Planned::new(instance, extra);
        self
    }

    /// Starts the worker and the hasher, waits until both take batches (registered as NATS
    /// services), then starts rng: no batch of the run meets an empty queue group.
    pub async fn start(self) -> Pipeline {
        let (stack, shutdown) = (self.stack, Shutdown::new());
        let (w, h, r) = (&self.worker, &self.hasher, &self.rng);
        let worker = stack.spawn_worker(&w.instance, &w.extra(), &shutdown);
        let hasher = stack.spawn_hasher(&h.instance, &h.extra(), &shutdown);
        stack.wait_for_service("worker", &[&w.instance]).await;
        stack.wait_for_service("hasher", &[&h.instance]).await;
        let rng = stack.spawn_rng(&r.instance, &r.extra(), &shutdown);
        Pipeline {
            shutdown,
            rng,
            hasher,
            worker,
        }
    }
}

/// rng → hasher → worker in-process on one [`Shutdown`], from [`Stack::pipeline`].
pub struct Pipeline {
    shutdown: Shutdown,
    pub rng: Service<rng::Report>,
    pub hasher: Service<hasher::Report>,
    pub worker: Service<worker::Report>,
}

impl Pipeline {
    /// Whether all three stages still run.
    pub fn is_running(&self) -> bool {
        self.rng.is_running() && self.hasher.is_running() && self.worker.is_running()
    }

    /// Stops the three at once (one shutdown: each finishes the batches it holds) and returns
    /// their reports.
    pub async fn stop(self) -> (rng::Report, hasher::Report, worker::Report) {
        self.shutdown.trigger();
        tokio::join!(
            self.rng.report(),
            self.hasher.report(),
            self.worker.report()
        )
    }
}
