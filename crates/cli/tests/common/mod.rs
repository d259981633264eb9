//! What the `chocominer` command's tests share: a real nats-server and influxd per test, the
//! three stages run in-process against them, and the built `chocominer` binary run as a
//! subprocess pointed at them.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

use std::process::{Output, Stdio};
use std::time::Duration;

use chocominer_pipeline::Shutdown;
use clap::Parser;
use testkit::{Influx, NatsServer};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// The stages' default database; every test has an influxd of its own.
pub const DB: &str = "chocominer";
/// How long a `chocominer` run or a condition may take on a loaded machine.
pub const SOON: Duration = Duration::from_secs(60);
/// How long a stopped stage may take to finish its batches in flight.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// A nats-server (and, for `status`, an influxd) of the test's own.
pub struct Stack {
    pub nats: NatsServer,
    pub influx: Option<Influx>,
}

impl Stack {
    /// nats-server and influxd, with the stats database created up front.
    pub async fn start() -> Stack {
        testkit::init_tracing();
        let (nats, influx) = tokio::join!(NatsServer::start(), Influx::start());
        influx.create_database(DB).await;
        Stack {
            nats,
            influx: Some(influx),
        }
    }

    /// nats-server only.
    pub async fn nats_only() -> Stack {
        testkit::init_tracing();
        Stack {
            nats: NatsServer::start().await,
            influx: None,
        }
    }

    fn influx_url(&self) -> String {
        self.influx.as_ref().map_or_else(String::new, Influx::url)
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.nats.url())
            .await
            .expect("the test's NATS client connects")
    }

    /// Arguments of a stage of this stack: its URLs, instance name, then `extra`.
    fn stage_args(&self, bin: &str, instance: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            bin.into(),
            "--nats-url".into(),
            self.nats.url(),
            "--influx-url".into(),
            self.influx_url(),
            "--instance".into(),
            instance.into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    pub fn spawn_rng(&self, instance: &str, extra: &[&str]) -> Stage<rng::Report> {
        let config = parse::<rng::Config>(self.stage_args("rng", instance, extra));
        Stage::spawn(instance, |shutdown| rng::run(config, shutdown))
    }

    pub fn spawn_hasher(&self, instance: &str, extra: &[&str]) -> Stage<hasher::Report> {
        let config = parse::<hasher::Config>(self.stage_args("hasher", instance, extra));
        Stage::spawn(instance, |shutdown| hasher::run(config, shutdown))
    }

    pub fn spawn_worker(&self, instance: &str, extra: &[&str]) -> Stage<worker::Report> {
        let config = parse::<worker::Config>(self.stage_args("worker", instance, extra));
        Stage::spawn(instance, |shutdown| worker::run(config, shutdown))
    }

    /// `chocominer <args> --nats-url … [--influx-url …]`, pointed at this stack.
    pub fn chocominer(&self, args: &[&str]) -> Command {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--nats-url".into(), self.nats.url()]);
        if args.first() == Some(&"status") {
            all.extend(["--influx-url".into(), self.influx_url()]);
        }
        chocominer(&all)
    }

    /// Runs `chocominer <args>` to its end and returns its stdout; panics if it fails.
    pub async fn run(&self, args: &[&str]) -> String {
        let output = finish(self.chocominer(args), args).await;
        assert!(
            output.status.success(),
            "chocominer {args:?} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("stdout is UTF-8")
    }

    /// `status --json`, parsed.
    pub async fn status(&self) -> serde_json::Value {
        let out = self.run(&["status", "--json"]).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}: {out}"))
    }
}

/// The `chocominer` binary with `args`, its output piped, killed if the test drops it.
pub fn chocominer(args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chocominer"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `cmd` to its end, within [`SOON`].
pub async fn finish(mut cmd: Command, args: &[&str]) -> Output {
    let child = cmd.spawn().expect("spawn chocominer");
    timeout(SOON, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("chocominer {args:?} did not end within {SOON:?}"))
        .expect("wait for chocominer")
}

/// A `chocominer` that keeps running (such as `sub`), read line by line.
pub struct Running {
    child: Child,
    pub stdout: Lines<BufReader<ChildStdout>>,
    pub stderr: Lines<BufReader<ChildStderr>>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd.spawn().expect("spawn chocominer");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let stderr = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for the "watching …" line `sub` prints once it is subscribed.
    pub async fn subscribed(&mut self) {
        let line = timeout(SOON, self.stderr.next_line())
            .await
            .expect("sub says it watches within a minute")
            .expect("read sub's stderr")
            .expect("sub's stderr still open");
        assert!(line.starts_with("watching "), "{line}");
    }

    /// The next line of stdout; `None` at its end.
    pub async fn next_line(&mut self) -> Option<String> {
        timeout(SOON, self.stdout.next_line())
            .await
            .expect("sub prints a line within a minute")
            .expect("read sub's stdout")
    }

    /// Waits for the process to exit and returns whether it succeeded.
    pub async fn success(mut self) -> bool {
        timeout(SOON, self.child.wait())
            .await
            .expect("chocominer exits within a minute")
            .expect("wait for chocominer")
            .success()
    }
}

/// A stage running in-process on the test's runtime, with a shutdown of its own.
pub struct Stage<R> {
    name: String,
    shutdown: Shutdown,
    handle: JoinHandle<anyhow::Result<R>>,
}

impl<R: Send + 'static> Stage<R> {
    fn spawn<F, Fut>(name: &str, run: F) -> Stage<R>
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
    {
        let shutdown = Shutdown::new();
        Stage {
            name: name.to_owned(),
            handle: tokio::spawn(run(shutdown.clone())),
            shutdown,
        }
    }

    /// Stops it gracefully and waits until it has.
    pub async fn stop(self) -> R {
        self.shutdown.trigger();
        match timeout(STOP_WITHIN, self.handle).await {
            Err(_) => panic!("{} did not stop within {STOP_WITHIN:?}", self.name),
            Ok(Err(e)) => panic!("{} panicked: {e}", self.name),
            Ok(Ok(Err(e))) => panic!("{} failed: {e:#}", self.name),
            Ok(Ok(Ok(report))) => report,
        }
    }
}

fn parse<C: Parser>(args: Vec<String>) -> C {
    C::try_parse_from(&args).unwrap_or_else(|e| panic!("bad test arguments {args:?}: {e}"))
}
