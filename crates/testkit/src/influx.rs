//! A real InfluxDB 1.x (`influxd`) on free local ports with its data in a temp dir, plus
//! helpers to query and write it through the project's own client (`chocominer-influx`). It can
//! be stopped and restarted on the same port and data, to test clients that must survive an
//! InfluxDB outage.
//!
//! It checks credentials, as every deployment of ChocoMiner does (`auth-enabled` in the one
//! config template): on its first start it gets an administrator, a writer and a reader
//! ([`Role`]), each with a random password, and [`Influx::create_database`] grants the writer
//! WRITE and the reader READ on the new database. The stages get the writer's credentials
//! ([`Influx::writer_args`], [`Influx::writer`]), the front ends the reader's
//! ([`Influx::reader_args`], [`Influx::reader`]), and the test's own queries and writes
//! ([`Influx::client`], [`Influx::rows`], [`Influx::write`]) go as the administrator.

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chocominer_influx::{Client, InfluxArgs, Row, Secret};
use tempfile::TempDir;

use crate::free_port;
use crate::process::{self, Process, START_ATTEMPTS, StartError};

/// How long influxd may take to answer `/ping`.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// How long [`Influx::stop`] waits after SIGTERM before it SIGKILLs.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Who a request to the test's influxd goes as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// All privileges: creates the users and databases, and serves the test's own queries.
    Admin,
    /// WRITE on each database made by [`Influx::create_database`]: the stages.
    Writer,
    /// READ on each of them: the dashboard and `chocominer status`.
    Reader,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Writer, Role::Reader];

    /// The user's name in InfluxDB.
    pub fn user(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Writer => "writer",
            Role::Reader => "reader",
        }
    }
}

/// A running (or stopped) influxd 1.x. Killed (SIGKILL) on drop and its data removed.
#[derive(Debug)]
pub struct Influx {
    // Declared before `dir`, so the server is gone before its directory is removed.
    process: Option<Process>,
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    /// The passwords of [`Role::ALL`], in that order; each also in `<dir>/<user>.password`.
    passwords: [String; 3],
    /// The administrator's client: one connection pool for every query the test makes.
    admin: Client,
    /// Whether the users exist (they do from the first start on: they live in the data).
    users_created: bool,
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
            let passwords = Role::ALL.map(|role| {
                let password = random_password();
                let path = dir.path().join(format!("{}.password", role.user()));
                // With a line break, as `echo` writes one: the stages drop it.
                fs::write(&path, format!("{password}\n")).expect("write a password file");
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                    .expect("chmod 600 a password file");
                password
            });
            let url = format!("http://127.0.0.1:{port}");
            let admin = Client::new(&credentials(&url, "", Role::Admin, &passwords[0]))
                .expect("a client for the test influxd")
                .times_in_ns();
            let mut influx = Influx {
                process: None,
                dir,
                bin: bin.clone(),
                port,
                passwords,
                admin,
                users_created: false,
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

    /// The server's pid while it runs (to read its memory and CPU time, see
    /// [`crate::procstat`]); `None` while it is stopped.
    pub fn pid(&mut self) -> Option<u32> {
        self.process.as_mut()?.pid()
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
    /// server, as the administrator, with times in nanoseconds, the precision the stages write.
    /// Every call shares one connection pool.
    pub fn client(&self, db: &str) -> Client {
        self.admin.with_db(db)
    }

    /// The password of `role`.
    pub fn password(&self, role: Role) -> &str {
        &self.passwords[Role::ALL.iter().position(|r| *r == role).unwrap_or(0)]
    }

    /// The file holding the password of `role` (mode 0600, with a trailing line break).
    pub fn password_file(&self, role: Role) -> PathBuf {
        self.dir.path().join(format!("{}.password", role.user()))
    }

    /// The settings of a client of database `db` as `role`: this server's URL, the user, the
    /// password as read from its file.
    pub fn args(&self, db: &str, role: Role) -> InfluxArgs {
        credentials(&self.url(), db, role, self.password(role))
    }

    /// The stages' settings for database `db`: the writer's credentials.
    pub fn writer(&self, db: &str) -> InfluxArgs {
        self.args(db, Role::Writer)
    }

    /// The front ends' settings for database `db`: the reader's credentials.
    pub fn reader(&self, db: &str) -> InfluxArgs {
        self.args(db, Role::Reader)
    }

    /// Command-line arguments for this server as `role`: `--influx-url`, `--influx-user` and
    /// `--influx-password-file`, as a deployment passes them.
    pub fn role_args(&self, role: Role) -> Vec<String> {
        vec![
            "--influx-url".into(),
            self.url(),
            "--influx-user".into(),
            role.user().into(),
            "--influx-password-file".into(),
            self.password_file(role).display().to_string(),
        ]
    }

    /// [`Influx::role_args`] of the writer: what a stage is started with.
    pub fn writer_args(&self) -> Vec<String> {
        self.role_args(Role::Writer)
    }

    /// [`Influx::role_args`] of the reader: what the dashboard and `chocominer status` are
    /// started with.
    pub fn reader_args(&self) -> Vec<String> {
        self.role_args(Role::Reader)
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

    /// Creates database `db` and grants the writer WRITE and the reader READ on it.
    pub async fn create_database(&self, db: &str) {
        self.client(db)
            .create_database()
            .await
            .unwrap_or_else(|e| panic!("influx create database {db}: {e}"));
        let db = quote(db);
        self.admin_statements(&[
            format!("GRANT WRITE ON {db} TO {}", quote(Role::Writer.user())),
            format!("GRANT READ ON {db} TO {}", quote(Role::Reader.user())),
        ])
        .await;
    }

    /// Runs statements as the administrator; panics unless each succeeds.
    async fn admin_statements(&self, statements: &[String]) {
        for statement in statements {
            self.admin
                .query(std::slice::from_ref(statement))
                .await
                .unwrap_or_else(|e| panic!("influx {statement:?}: {e}"));
        }
    }

    /// Creates the three users. InfluxDB lets the first administrator be created without
    /// credentials while it has no user at all; the others are created by that administrator.
    async fn create_users(&self) {
        let admin = format!(
            "CREATE USER {} WITH PASSWORD {} WITH ALL PRIVILEGES",
            quote(Role::Admin.user()),
            literal(self.password(Role::Admin))
        );
        let anonymous =
            Client::new(&InfluxArgs::new(&self.url(), "")).expect("a client for the test influxd");
        anonymous
            .query(&[admin])
            .await
            .unwrap_or_else(|e| panic!("influx: creating the administrator: {e}"));
        let users: Vec<String> = [Role::Writer, Role::Reader]
            .iter()
            .map(|&role| {
                format!(
                    "CREATE USER {} WITH PASSWORD {}",
                    quote(role.user()),
                    literal(self.password(role))
                )
            })
            .collect();
        self.admin_statements(&users).await;
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
        // influxd overrides its config from INFLUXDB_* variables: don't inherit any, and give
        // it those it runs with everywhere (no continuous queries, the query limits).
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("INFLUXDB_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(process::env_file(SERVER_ENV));
        let process = Process::spawn("influxd", cmd, self.dir.path().join("influxd.log"));
        // `/ping` answers without credentials.
        let client = self.client("");
        let process = process.wait_ready(READY_WITHIN, || client.ping()).await?;
        tracing::debug!(port = self.port, "influxd ready");
        self.process = Some(process);
        if !self.users_created {
            self.create_users().await;
            self.users_created = true;
        }
        Ok(())
    }
}

/// The settings of a client of `url` and database `db` as `role`, with `password`.
fn credentials(url: &str, db: &str, role: Role, password: &str) -> InfluxArgs {
    InfluxArgs {
        influx_user: Some(role.user().to_owned()),
        influx_password_file: Some(Secret::new(password)),
        ..InfluxArgs::new(url, db)
    }
}

/// 32 random hex digits, from the standard library's randomly keyed hasher.
fn random_password() -> String {
    (0..2)
        .map(|_| format!("{:016x}", RandomState::new().build_hasher().finish()))
        .collect()
}

/// `name` as an InfluxQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `text` as an InfluxQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The InfluxDB server settings every influxd of ours runs with (as INFLUXDB_* variables).
const SERVER_ENV: &str = "influxdb/server.env";

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
