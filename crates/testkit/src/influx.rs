//! A real InfluxDB 1.x (`influxd`) on free local ports with its data in a temp dir, plus
//! helpers to query and write it through the project's own client (`chocominer-influx`). It can be stopped and restarted on the same port
//! and data, to test clients that must survive an InfluxDB outage.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chocominer_influx::{Client, InfluxArgs, Row};
use tempfile::TempDir;

use crate::free_port;
use crate::process::{self, Process, START_ATTEMPTS, StartError};

/// How long influxd may take to answer `/ping`.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// How long [`Influx::stop`] waits after SIGTERM before it SIGKILLs.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running (or stopped) influxd 1.x. Killed (SIGKILL) on drop and its data removed.
#[derive(Debug)]
pub struct Influx {
    // Declared before `dir`, so the server is gone before its directory is removed.
    process: Option<Process>,
    dir: TempDir,
    bin: PathBuf,
    port: u16,
}

impl Influx {
    /// Starts an influxd with an empty data directory.
    pub async fn start() -> Influx {
        let bin = process::find_binary("influxd", "INFLUXD_BIN", &[]);
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("testkit-influx-")
                .tempdir()
                .expect("create temp dir for influxd");
            let port = free_port();
            write_config(dir.path(), port, free_port());
            let mut influx = Influx {
                process: None,
                dir,
                bin: bin.clone(),
                port,
            };
            match influx.launch().await {
                Ok(()) => return influx,
                Err(StartError::PortTaken(message)) => last_error = Some(message),
                Err(StartError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!(
            "influxd: ports taken on all {START_ATTEMPTS} attempts; last: {}",
            last_error.unwrap_or_default()
        );
    }

    /// The HTTP API URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server: SIGTERM, then SIGKILL if it has not exited within 10 s. Keeps the data
    /// and the port for [`Influx::restart`]. Does nothing if it is already stopped.
    pub async fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.terminate(STOP_GRACE).await;
            tracing::debug!(port = self.port, "influxd stopped");
        }
    }

    /// Starts the server again on the same port with the same data, stopping it first if it is
    /// running. Panics if it does not come up (e.g. someone took the port meanwhile).
    pub async fn restart(&mut self) {
        self.stop().await;
        if let Err(error) = self.launch().await {
            panic!("influxd restart on port {}: {}", self.port, error.message());
        }
    }

    /// The project's InfluxDB client ([`chocominer_influx::Client`]) for database `db` of this
    /// server, with times in nanoseconds, the precision the stages write.
    pub fn client(&self, db: &str) -> Client {
        Client::new(&InfluxArgs {
            influx_url: self.url(),
            influx_db: db.to_owned(),
            influx_user: None,
            influx_password: None,
        })
        .expect("a client for the test influxd")
        .times_in_ns()
    }

    /// The rows of one InfluxQL statement `q` on `db`, times in nanoseconds. Panics with the
    /// client's one-line error when InfluxDB refuses it (an HTTP error, a statement error, a
    /// missing database).
    pub async fn rows(&self, db: &str, q: &str) -> Vec<Row> {
        let mut results = self
            .client(db)
            .query(&[q.to_owned()])
            .await
            .unwrap_or_else(|e| panic!("influx query {q:?}: {e}"));
        results.pop().unwrap_or_default()
    }

    /// Creates database `db`.
    pub async fn create_database(&self, db: &str) {
        self.client(db)
            .create_database()
            .await
            .unwrap_or_else(|e| panic!("influx create database {db}: {e}"));
    }

    /// Writes line protocol (nanosecond timestamps) to `db`; panics unless InfluxDB takes it.
    pub async fn write(&self, db: &str, lines: &str) {
        self.client(db)
            .write(&[lines.to_owned()])
            .await
            .unwrap_or_else(|e| panic!("influx write to {db}: {e}"));
    }

    /// Spawns influxd on the config in the temp dir and waits until `/ping` answers 204.
    async fn launch(&mut self) -> Result<(), StartError> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run")
            .arg("-config")
            .arg(self.dir.path().join("influxdb.conf"));
        // influxd overrides its config from INFLUXDB_* variables: don't inherit any.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("INFLUXDB_") {
                cmd.env_remove(key);
            }
        }
        let process = Process::spawn("influxd", cmd, self.dir.path().join("influxd.log"));
        let client = self.client("");
        let process = process.wait_ready(READY_WITHIN, || client.ping()).await?;
        tracing::debug!(port = self.port, "influxd ready");
        self.process = Some(process);
        Ok(())
    }
}

/// The project's InfluxDB config template, also `just up`'s (scripts/lib.sh influx_conf).
const CONFIG_TEMPLATE: &str = include_str!("../../../influxdb/influxdb.conf");

/// Writes `influxdb.conf` into `dir` from the template: data in `dir`, HTTP on `http_port`, the
/// backup/RPC service on `rpc_port`, all on loopback.
fn write_config(dir: &Path, http_port: u16, rpc_port: u16) {
    let conf = CONFIG_TEMPLATE
        .replace("@DIR@", &dir.display().to_string())
        .replace("@HTTP_ADDR@", &format!("127.0.0.1:{http_port}"))
        .replace("@RPC_ADDR@", &format!("127.0.0.1:{rpc_port}"));
    fs::write(dir.join("influxdb.conf"), conf).expect("write influxd config");
}
