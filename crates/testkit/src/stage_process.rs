//! A stage run as a real process from its built binary (see [`crate::cargo_bin`]), for tests
//! that signal it: SIGKILL to see what dies with it, SIGTERM for a graceful stop, SIGSTOP and
//! SIGCONT to freeze and thaw it; and for tests that measure its memory.

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::Process;
use crate::procstat::{self, Memory};

/// How long a SIGKILLed process may take to be reaped.
const KILLED_WITHIN: Duration = Duration::from_secs(10);

/// A stage process, its output in a log file of its own. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct StageProcess {
    // Declared before `_dir`, so the process is gone before its log is removed.
    process: Process,
    _dir: TempDir,
}

impl StageProcess {
    /// Runs `bin args` (no program name in `args`) with `NO_COLOR=1`, stdin closed and its
    /// output in `<temp dir>/<name>.log`. [`crate::Stack::spawn_process`] builds the arguments
    /// of a stage of a stack. It logs with its own default filter, as shipped, whatever the
    /// test's RUST_LOG; `TESTKIT_STAGE_RUST_LOG` gives it another.
    pub fn spawn(bin: &Path, name: &str, args: &[String]) -> StageProcess {
        let dir = tempfile::Builder::new()
            .prefix("testkit-stage-")
            .tempdir()
            .expect("temp dir for a stage's log");
        let mut cmd = Command::new(bin);
        cmd.args(args).env("NO_COLOR", "1");
        match std::env::var_os("TESTKIT_STAGE_RUST_LOG") {
            Some(filter) => cmd.env("RUST_LOG", filter),
            None => cmd.env_remove("RUST_LOG"),
        };
        let process = Process::spawn(name, cmd, dir.path().join(format!("{name}.log")));
        StageProcess { process, _dir: dir }
    }

    /// SIGKILLs the process and reaps it.
    pub async fn kill(&mut self) -> ExitStatus {
        self.process.signal(libc::SIGKILL);
        self.exit_within(KILLED_WITHIN).await
    }

    /// SIGTERMs the process (a graceful stop) and waits up to `within` for it to exit; panics
    /// with its log tail if it does not.
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.process.signal(libc::SIGTERM);
        self.exit_within(within).await
    }

    /// SIGSTOPs the process: frozen as a paused container or a stuck VM is, its sockets open
    /// and its timers running, until [`thaw`](Self::thaw).
    pub fn freeze(&mut self) {
        self.process.signal(libc::SIGSTOP);
    }

    /// SIGCONTs a [`freeze`](Self::freeze)d process.
    pub fn thaw(&mut self) {
        self.process.signal(libc::SIGCONT);
    }

    /// Whether the process has exited (reaping it if so).
    pub fn has_exited(&mut self) -> bool {
        self.process.try_status().is_some()
    }

    /// How much memory the process holds now and has held at most, from the kernel
    /// (`/proc/<pid>/status`); `None` once it has exited.
    pub fn memory(&mut self) -> Option<Memory> {
        procstat::memory(self.pid()?)
    }

    /// Its pid while it runs; `None` once it has exited (the pid may be another's then).
    pub fn pid(&mut self) -> Option<u32> {
        self.process.pid()
    }

    /// Everything the process has logged so far.
    pub fn log(&self) -> String {
        self.process.own_log()
    }

    /// The last lines the process logged.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    async fn exit_within(&mut self, within: Duration) -> ExitStatus {
        match self.process.wait_exit(within).await {
            Some(status) => status,
            None => panic!(
                "{} did not exit within {within:?}; log tail:\n{}",
                self.process.name(),
                self.log_tail()
            ),
        }
    }
}
