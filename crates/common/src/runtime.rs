//! What every stage process does around its own work: start-up, stats plumbing, the end.
//!
//! [`main`] is the whole `main` of a stage binary: logging, one `Config` parsed once, signals
//! turned into a [`Shutdown`], then the stage's `run(config, shutdown)`. [`StageRuntime`] holds
//! what `run` needs from the outside world (NATS client, subjects, stats sink) and closes it
//! in the right order.

use std::fmt::Debug;
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;

use crate::config::CommonArgs;
use crate::connection;
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
    crate::telemetry::init();
    let config: C = crate::config::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match run(config, Shutdown::on_signals()).await {
            Ok(report) => {
                tracing::info!(?report, "stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// A running stage's connections to NATS and InfluxDB.
pub struct StageRuntime {
    pub stage: Stage,
    pub instance: String,
    pub subjects: Subjects,
    pub client: Client,
    writer: StatsWriter,
}

impl StageRuntime {
    /// Starts stats and connects to NATS (waiting for it). `None` if shutdown came first.
    pub async fn start(
        stage: Stage,
        common: &CommonArgs,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Option<StageRuntime>> {
        let instance = common.instance_name();
        tracing::info!(%stage, %instance, profile = ?common.profile, "starting");
        let writer = StatsWriter::start(&common.influx, &instance)?;
        let name = format!("{stage} {instance}");
        let Some(client) = connection::connect(&common.nats, &name, shutdown).await? else {
            writer.close(Duration::ZERO).await;
            return Ok(None);
        };
        Ok(Some(StageRuntime {
            stage,
            instance,
            subjects: common.subjects(),
            client,
            writer,
        }))
    }

    pub fn sink(&self) -> StatsSink {
        self.writer.sink()
    }

    /// The largest message the server accepts.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    /// Starts the per-second stats of `meter`.
    pub fn report(&self, meter: Arc<dyn Meter>) -> Reporter {
        Reporter::start(meter, self.sink())
    }

    /// Emits the last stats point, writes what is held, flushes NATS.
    pub async fn finish(self, reporter: Reporter) -> WriteReport {
        reporter.stop().await;
        if let Err(e) = self.client.flush().await {
            tracing::debug!("flushing NATS: {e}");
        }
        let report = self.writer.close(STATS_GRACE).await;
        tracing::info!(?report, "stats points to InfluxDB");
        report
    }
}
