//! A real InfluxDB 1.x (`influxd`) on free local ports with its data in a temp dir, plus
//! helpers to query it over the 1.x HTTP API. It can be stopped and restarted on the same port
//! and data, to test clients that must survive an InfluxDB outage.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value};
use tempfile::TempDir;

use crate::process::{self, Process, START_ATTEMPTS, StartError};
use crate::{free_port, http_client};

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
    client: reqwest::Client,
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
                client: http_client(),
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

    /// Runs a read query (`GET /query?db=..&q=..&epoch=ns`) and returns the JSON response.
    /// Panics on an HTTP error or an `"error"` in the response or any of its results.
    pub async fn query(&self, db: &str, q: &str) -> Value {
        self.send_query(Method::GET, db, q).await
    }

    /// Runs a statement that changes state (`POST /query`), e.g. `CREATE DATABASE "x"` or
    /// `DROP MEASUREMENT m` (`db` may be empty). Panics like [`Influx::query`].
    pub async fn exec(&self, db: &str, q: &str) -> Value {
        self.send_query(Method::POST, db, q).await
    }

    /// Creates database `db` (a no-op if it exists).
    pub async fn create_database(&self, db: &str) {
        self.exec("", &format!("CREATE DATABASE \"{db}\"")).await;
    }

    /// Writes line protocol with nanosecond timestamps (`POST /write?db=..`); panics unless
    /// the server answers 204.
    pub async fn write(&self, db: &str, lines: &str) {
        let url = self.endpoint("/write", &[("db", db)]);
        let response = self
            .client
            .post(url)
            .body(lines.to_owned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("influx write to {db}: {e}"));
        let status = response.status();
        if status != StatusCode::NO_CONTENT {
            let body = response.text().await.unwrap_or_default();
            panic!("influx write to {db}: HTTP {status}: {body}");
        }
    }

    /// Runs `q` with [`Influx::query`] and flattens `results[0].series[*]` into one map per row
    /// (column name -> value), each also holding its series' tags (`GROUP BY` tags). Empty when
    /// there are no series.
    pub async fn rows(&self, db: &str, q: &str) -> Vec<Map<String, Value>> {
        let response = self.query(db, q).await;
        let Some(series) = response
            .pointer("/results/0/series")
            .and_then(Value::as_array)
        else {
            return Vec::new();
        };
        let mut rows = Vec::new();
        for series in series {
            let columns: Vec<&str> = series["columns"]
                .as_array()
                .unwrap_or_else(|| panic!("series without columns in {response}"))
                .iter()
                .map(|column| column.as_str().expect("column names are strings"))
                .collect();
            let empty = Vec::new();
            let values = series["values"].as_array().unwrap_or(&empty);
            for value in values {
                let value = value.as_array().expect("a row is an array of values");
                let mut row: Map<String, Value> = columns
                    .iter()
                    .map(|c| c.to_string())
                    .zip(value.iter().cloned())
                    .collect();
                if let Some(tags) = series["tags"].as_object() {
                    for (tag, tag_value) in tags {
                        row.entry(tag.clone()).or_insert_with(|| tag_value.clone());
                    }
                }
                rows.push(row);
            }
        }
        rows
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
        let ping = self.endpoint("/ping", &[]);
        let process = process
            .wait_ready(READY_WITHIN, || async {
                self.client
                    .get(ping.clone())
                    .send()
                    .await
                    .is_ok_and(|response| response.status() == StatusCode::NO_CONTENT)
            })
            .await?;
        tracing::debug!(port = self.port, "influxd ready");
        self.process = Some(process);
        Ok(())
    }

    async fn send_query(&self, method: Method, db: &str, q: &str) -> Value {
        let url = self.endpoint("/query", &[("db", db), ("q", q), ("epoch", "ns")]);
        let response = self
            .client
            .request(method, url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("influx query {q:?}: {e}"));
        let status = response.status();
        let body = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("influx query {q:?}: {e}"));
        assert!(
            status.is_success(),
            "influx query {q:?}: HTTP {status}: {body}"
        );
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("influx query {q:?}: {e} in response {body}"));
        let results = json["results"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let error = std::iter::once(&json)
            .chain(results)
            .find_map(|r| r.get("error"));
        if let Some(error) = error {
            panic!("influx query {q:?}: {error}");
        }
        json
    }

    fn endpoint(&self, path: &str, params: &[(&str, &str)]) -> Url {
        Url::parse_with_params(&format!("{}{path}", self.url()), params).expect("valid influx URL")
    }
}

/// Writes `influxdb.conf` into `dir`: everything local to `dir`, HTTP on `http_port`, the
/// backup/RPC service on `rpc_port`, and everything not needed by tests off.
fn write_config(dir: &Path, http_port: u16, rpc_port: u16) {
    let path = dir.join("influxdb.conf");
    let dir = dir.display();
    // Upstream spells the usage-reporting switch `reporting-disabled`; Debian's build renamed
    // it `reporting-enabled` (default off). Unknown keys are ignored, so set both.
    let conf = format!(
        r#"reporting-disabled = true
reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{dir}/meta"
  logging-enabled = false

[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false

[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  pprof-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[logging]
  level = "warn"
  suppress-logo = true
"#
    );
    fs::write(path, conf).expect("write influxd config");
}
