//! What a stage's `run` needs from the outside world, started and closed in the right order.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::Client;

use chocominer_process::health::{Health, HealthServer};
use chocominer_process::{Connector, Shutdown, connect};

use crate::config::CommonArgs;
use crate::intake::{Intake, IntakeConfig};
use crate::sender::{Sender, SenderConfig};
use crate::stats::{Meter, Reporter, StatsSink, StatsWriter, WriteReport};
use chocominer_model::{Stage, Subjects};

/// How long a stopping stage keeps trying to write its last stats points.
const STATS_GRACE: Duration = Duration::from_secs(10);

/// A running stage's connections to NATS and InfluxDB, and its health endpoints.
pub struct StageRuntime {
    pub stage: Stage,
    pub instance: String,
    pub subjects: Subjects,
    pub client: Client,
    /// The stage calls [`Health::set_ready`] once it takes its input (rng: once it sends).
    pub health: Health,
    health_server: Option<HealthServer>,
    writer: StatsWriter,
    /// Opens the intake's service protocol connection, "`<stage> <instance> service`".
    service: Connector,
    ack_timeout: Duration,
}

impl StageRuntime {
    /// Serves the health endpoints, starts stats and connects to NATS (waiting for it); `None`
    /// if shutdown came first.
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
        let Some(client) = connect(&common.nats, &name, shutdown).await? else {
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

    /// Joins this stage's queue group on `subject`; `capacity`: [`IntakeConfig::capacity`].
    pub async fn intake(&self, subject: &str, capacity: Option<usize>) -> anyhow::Result<Intake> {
        let config = IntakeConfig {
            stage: self.stage,
            subject: subject.to_owned(),
            instance: self.instance.clone(),
            service: self.service.clone(),
            capacity,
        };
        Intake::start(self.client.clone(), config).await
    }

    pub fn sink(&self) -> StatsSink {
        self.writer.sink()
    }

    /// Starts the sender that hands this stage's batches on to the next stage.
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

    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    pub fn report(&self, meter: Arc<dyn Meter>) -> Reporter {
        Reporter::start(meter, self.sink())
    }

    /// Emits the last stats point, flushes NATS, writes what is held; then closes the health
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
