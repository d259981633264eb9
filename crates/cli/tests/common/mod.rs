//! What the `chocominer` command's tests share beyond `testkit`'s pipeline on real servers: the
//! built `chocominer` binary run as a subprocess pointed at a [`Stack`], to its end or read line
//! by line while it runs.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use testkit::Stack;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::time::timeout;

/// How long a `chocominer` run or a condition may take on a loaded machine.
pub const SOON: Duration = Duration::from_secs(60);

/// `chocominer <args> --nats-url … --nats-user cli … [--influx-url … --influx-user reader …]`,
/// pointed at `stack`: it connects as the `cli` NATS user and `status` and `ping` read
/// InfluxDB as its reader, as it is deployed.
pub fn chocominer_on(stack: &Stack, args: &[&str]) -> Command {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--nats-url".into(), stack.nats.url()]);
    all.extend(stack.nats.user_args("cli"));
    if matches!(args.first(), Some(&"status" | &"ping")) {
        all.extend(stack.influx().reader_args());
    }
    chocominer(&all)
}

/// Runs `chocominer <args>` on `stack` to its end and returns its stdout; panics if it fails.
pub async fn run(stack: &Stack, args: &[&str]) -> String {
    let output = finish(chocominer_on(stack, args), args).await;
    assert!(
        output.status.success(),
        "chocominer {args:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("stdout is UTF-8")
}

/// `chocominer status --json` on `stack`, parsed.
pub async fn status(stack: &Stack) -> serde_json::Value {
    let out = run(stack, &["status", "--json"]).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}: {out}"))
}

/// The `chocominer` binary with `args`, its output piped, killed if the test drops it.
pub fn chocominer(args: &[String]) -> Command {
    command(Path::new(env!("CARGO_BIN_EXE_chocominer")), args)
}

/// `bin args`, its output piped, plain text logs at the default level, killed if the test
/// drops it.
pub fn command(bin: &Path, args: &[impl AsRef<std::ffi::OsStr>]) -> Command {
    let mut cmd = Command::new(bin);
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
