//! What every stage process does around its own work: start-up, stats plumbing, the end.
//!
//! [`main`] is the whole `main` of a stage binary (and of the dashboard): logging, one `Config`
//! parsed once, signals turned into a [`Shutdown`], then the stage's `run(config, shutdown)` —
//! or, with `--health-check`, only the probe ([`health::check`]). [`StageRuntime`] holds what
//! `run` needs from the outside world (NATS client, subjects, stats sink, health endpoints) and
//! closes it in the right order.

use std::fmt::Debug;
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::Client;

use crate::config::{CommonArgs, HealthArgs};
use crate::connection::{self, Connector};
use crate::health::{self, Health, HealthServer};
use crate::sender::{Sender, SenderConfig};
use crate::shutdown::Shutdown;
use crate::stats::{Meter, Reporter, StatsSink, StatsWriter, WriteReport};
use crate::subjects::{Stage, Subjects};

/// How long a stopping stage keeps trying to write its last stats points.
const STATS_GRACE: Duration = Duration::from_secs(10);

/// Runs a stage binary: `main() { runtime::main(stage::run) }`.
pub fn main<C, R, F, Fut>(run: F) -> ExitCode
where
    C: clap::Parser,
    R: Debug,
    F: FnOnce(C, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<R>>,
{
    one_malloc_arena();
    crate::telemetry::init();
    // Every binary's Config flattens HealthArgs somewhere: read it from the same command line.
    let (config, health): (C, HealthArgs) = crate::config::parse_with();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if health.health_check {
        return runtime.block_on(health::check(&health));
    }
    runtime.block_on(async move {
        match run(config, Shutdown::on_signals()).await {
            Ok(report) => {
                tracing::info!(?report, "stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e:#}");
                // An unworkable setting is a usage error, as clap's are.
                if e.is::<crate::config::SettingError>() {
                    ExitCode::from(2)
                } else {
                    ExitCode::FAILURE
                }
            }
        }
    })
}

/// Asks glibc for one malloc arena instead of one per thread that allocates (up to eight per
/// core). A stage allocates its 1 MB batches on one thread and frees them on another, and
/// every arena kept such memory mapped: with one arena the full profile's hasher peaked at
/// 16 MB instead of 52, at the same rate (`just bench`). A `MALLOC_ARENA_MAX` set by the
/// operator wins. Other C libraries (musl, in the container images) have no such arenas.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: runs first thing in `main`, before any other thread exists; mallopt only
        // sets one of malloc's tunables.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// A running stage's connections to NATS and InfluxDB, and its health endpoints.
pub struct StageRuntime {
    pub stage: Stage,
    pub instance: String,
    pub subjects: Subjects,
    pub client: Client,
    /// Not ready until the stage calls [`Health::set_ready`] once it takes its input (rng: once
    /// its sender runs); not ready while NATS is unreachable, and from the moment shutdown is
    /// triggered.
    pub health: Health,
    health_server: Option<HealthServer>,
    writer: StatsWriter,
    service: Connector,
    ack_timeout: Duration,
}

impl StageRuntime {
    /// Serves the health endpoints (if `HEALTH_LISTEN` is set), starts stats and connects to
    /// NATS (waiting for it). `None` if shutdown came first.
    pub async fn start(
        stage: Stage,
        common: &CommonArgs,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Option<StageRuntime>> {
        let instance = common.instance_name();
        tracing::info!(%stage, %instance, profile = ?common.profile, "starting");
        let health = Health::new(shutdown);
        let health_server = HealthServer::start(&common.health, &health).await?;
        let writer = StatsWriter::start(&common.influx, &instance)?;
        let name = format!("{stage} {instance}");
        health.set_not_ready("connecting to NATS");
        let Some(client) = connection::connect(&common.nats, &name, shutdown).await? else {
            writer.close(Duration::ZERO).await;
            if let Some(server) = health_server {
                server.stop().await;
            }
            return Ok(None);
        };
        health.follow_nats(&client);
        health.set_not_ready(match stage {
            Stage::Rng => "starting to send",
            Stage::Hasher | Stage::Worker => "subscribing to its input",
        });
        Ok(Some(StageRuntime {
            stage,
            instance,
            subjects: common.subjects(),
            client,
            health,
            health_server,
            writer,
            service: Connector::new(&common.nats, format!("{name} service"), shutdown),
            ack_timeout: common.ack_timeout(),
        }))
    }

    /// How the stage's intake opens the connection it answers the NATS service protocol on:
    /// one of its own, named "`<stage> <instance> service`" (see the `service` module).
    pub fn service_connector(&self) -> Connector {
        self.service.clone()
    }

    pub fn sink(&self) -> StatsSink {
        self.writer.sink()
    }

    /// Starts the sender that hands this stage's batches on to the next stage (rng to the
    /// hashers, a hasher to the workers), with a window of `max_in_flight` batches and the
    /// stage's ack timeout.
    pub async fn sender(&self, max_in_flight: usize) -> anyhow::Result<Sender> {
        let (subject, target) = self
            .subjects
            .output_of(self.stage)
            .with_context(|| format!("the {} hands no batches on", self.stage))?;
        Sender::start(
            self.client.clone(),
            SenderConfig {
                subject: subject.to_owned(),
                target,
                instance: self.instance.clone(),
                max_in_flight,
                ack_timeout: self.ack_timeout,
            },
        )
        .await
    }

    /// The largest message the server accepts.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    /// Starts the per-second stats of `meter`.
    pub fn report(&self, meter: Arc<dyn Meter>) -> Reporter {
        Reporter::start(meter, self.sink())
    }

    /// Emits the last stats point, writes what is held, flushes NATS; then closes the health
    /// endpoints, which said "alive, not ready" all along the stop.
    pub async fn finish(self, reporter: Reporter) -> WriteReport {
        reporter.stop().await;
        if let Err(e) = self.client.flush().await {
            tracing::debug!("flushing NATS: {e}");
        }
        let report = self.writer.close(STATS_GRACE).await;
        tracing::info!(?report, "stats points to InfluxDB");
        if let Some(server) = self.health_server {
            server.stop().await;
        }
        report
    }
}
