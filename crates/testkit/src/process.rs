//! Child-process plumbing shared by the servers and the stages run as processes: finding a
//! binary, spawning it with its output in a log file, waiting until it is ready, signalling it,
//! waiting for it to exit, and killing it on drop.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;
use std::{env, fs};

use tokio::time::{Instant, sleep, timeout_at};

/// How often readiness and exit are polled.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(20);

/// How many times a server start is retried when one of its freshly chosen ports was taken.
pub(crate) const START_ATTEMPTS: usize = 3;

/// How many lines of a server's log are shown when it fails.
const LOG_TAIL_LINES: usize = 40;

/// The workspace root, two levels above this crate.
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Finds `name`: the path in `$env_var` if set, else the first of `candidates` that exists,
/// else `name` on `PATH`. Panics with a hint to install the dependencies.
pub(crate) fn find_binary(name: &str, env_var: &str, candidates: &[PathBuf]) -> PathBuf {
    if let Some(path) = env::var_os(env_var) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "{env_var}={} is not a file", path.display());
        return path;
    }
    let on_path = env::var_os("PATH")
        .map(|paths| {
            env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    candidates
        .iter()
        .chain(&on_path)
        .find(|path| path.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{name} not found (set {env_var} or put it on PATH): run scripts/install-deps.sh"
            )
        })
}

/// Why a server did not come up.
pub(crate) enum StartError {
    /// It exited because one of its ports was already in use: retry with other ports.
    PortTaken(String),
    /// Anything else.
    Failed(String),
}

impl StartError {
    /// What happened, including the server's log tail.
    pub(crate) fn message(&self) -> &str {
        match self {
            StartError::PortTaken(message) | StartError::Failed(message) => message,
        }
    }
}

/// A child process with its output in a log file. Killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub(crate) struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    /// Length of the log when this process was spawned: a restart appends to the same log.
    log_start: u64,
    /// How it ended, once reaped: its pid may belong to another process from then on.
    status: Option<ExitStatus>,
}

impl Process {
    /// Spawns `cmd` with stdin closed and stdout/stderr appended to `log`.
    pub(crate) fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Process {
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("open {name} log {}: {e}", log.display()));
        let log_start = out.metadata().map_or(0, |meta| meta.len());
        let err = out.try_clone().expect("clone log file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        tracing::debug!(name, pid = child.id(), log = %log.display(), "spawned");
        Process {
            name: name.to_owned(),
            child,
            log,
            log_start,
            status: None,
        }
    }

    /// Polls `probe` every [`POLL_EVERY`] until it reports ready while the process is still
    /// running, the process exits, or `within` elapses.
    pub(crate) async fn wait_ready<F, Fut>(
        mut self,
        within: Duration,
        mut probe: F,
    ) -> Result<Process, StartError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + within;
        let max_rounds = within.as_millis() / POLL_EVERY.as_millis() + 2;
        for _ in 0..max_rounds {
            let ready = timeout_at(deadline, probe()).await.unwrap_or(false);
            // Checked after the probe, so a ready answer cannot come from another process that
            // holds the port ours failed to bind.
            if let Some(status) = self.try_status() {
                let message = format!(
                    "{} exited with {status} before it was ready; log tail:\n{}",
                    self.name,
                    self.log_tail()
                );
                return Err(if self.own_log().contains("address already in use") {
                    StartError::PortTaken(message)
                } else {
                    StartError::Failed(message)
                });
            }
            if ready {
                return Ok(self);
            }
            if Instant::now() >= deadline {
                break;
            }
            sleep(POLL_EVERY).await;
        }
        Err(StartError::Failed(format!(
            "{} not ready within {within:?}; log tail:\n{}",
            self.name,
            self.log_tail()
        )))
    }

    /// Sends SIGTERM and waits up to `grace` for the process to exit, then SIGKILLs it.
    pub(crate) async fn terminate(mut self, grace: Duration) {
        self.signal(libc::SIGTERM);
        if self.wait_exit(grace).await.is_none() {
            tracing::warn!(name = self.name, ?grace, "did not exit on SIGTERM, killing");
            // Drop sends SIGKILL and reaps.
        }
    }

    /// How the process ended, reaping it if it has just exited; `None` while it runs.
    pub(crate) fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait on a child process");
        }
        self.status
    }

    /// Sends `signal` (`libc::SIGTERM`, ...), unless the process has already been reaped.
    pub(crate) fn signal(&mut self, signal: libc::c_int) {
        if self.try_status().is_some() {
            return;
        }
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits in pid_t");
        // SAFETY: `kill` has no memory-safety preconditions. `pid` is our unreaped child, so it
        // cannot have been recycled for another process.
        unsafe { libc::kill(pid, signal) };
    }

    /// Its pid while it runs; `None` once it has exited (the pid may be another's then).
    pub(crate) fn pid(&mut self) -> Option<u32> {
        match self.try_status() {
            Some(_) => None,
            None => Some(self.child.id()),
        }
    }

    /// Polls every [`POLL_EVERY`] until the process has exited; `None` if it still runs after
    /// `within`.
    pub(crate) async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        let max_rounds = within.as_millis() / POLL_EVERY.as_millis() + 2;
        for _ in 0..max_rounds {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                break;
            }
            sleep(POLL_EVERY).await;
        }
        None
    }

    /// The name it was spawned under, for messages.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// What this process (not an earlier one sharing the log) wrote to the log.
    pub(crate) fn own_log(&self) -> String {
        let log = fs::read(&self.log).unwrap_or_default();
        let start = usize::try_from(self.log_start)
            .unwrap_or(usize::MAX)
            .min(log.len());
        String::from_utf8_lossy(&log[start..]).into_owned()
    }

    /// The last lines of the log file.
    pub(crate) fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log.display()));
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Both fail only when the process was already reaped, which is fine. After SIGKILL the
        // wait is immediate.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `KEY=VALUE` lines of a file of the workspace (`#` comments and blank lines skipped): the
/// settings a server of ours runs with everywhere (nats/go-runtime.env, influxdb/server.env).
pub(crate) fn env_file(relative: &str) -> Vec<(String, String)> {
    let path = workspace_root().join(relative);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: not KEY=VALUE: {line}", path.display()));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}
