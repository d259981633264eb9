//! Taking batches in: a stage's input subject as a NATS service endpoint in a queue group.
//!
//! hasher and worker register as NATS services named after their stage, so
//! `nats micro ls|info|stats hasher` shows every replica with its request count and
//! processing time, and senders can probe `$SRV.PING.<stage>`. The endpoint subscribes in the
//! stage's queue group: NATS hands each batch to one replica, so scaling is starting replicas.
//! On shutdown the intake unsubscribes, then still yields the batches already delivered to it,
//! so they are finished rather than lost.

use std::sync::Arc;

use anyhow::Context;
use async_nats::Client;
use async_nats::service::{Request, Service, ServiceExt, endpoint::Endpoint};
use futures::StreamExt;

use crate::shutdown::Shutdown;
use crate::stats::Counter;
use crate::subjects::Stage;
use crate::throttle::Throttle;

/// Custom data for the service's `$SRV.STATS` answer (e.g. lost, busy, in flight).
pub type StatsData = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

pub struct Intake {
    stage: Stage,
    service: Service,
    endpoint: Endpoint,
    stopping: bool,
    rejected: Arc<Counter>,
    reject_log: Throttle,
}

impl Intake {
    pub async fn start(
        client: &Client,
        stage: Stage,
        subject: &str,
        instance: &str,
        rejected: Arc<Counter>,
        stats_data: StatsData,
    ) -> anyhow::Result<Intake> {
        let metadata = [("instance".to_owned(), instance.to_owned())].into();
        let service = client
            .service_builder()
            .description(format!("ChocoMiner {stage} stage"))
            .metadata(metadata)
            .queue_group(stage.queue_group())
            .stats_handler(move |_endpoint, _stats| stats_data())
            .start(stage.name(), env!("CARGO_PKG_VERSION"))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("cannot register the NATS service")?;
        let endpoint_name = subject.rsplit('.').next().unwrap_or(subject);
        let endpoint = service
            .endpoint_builder()
            .name(endpoint_name)
            .add(subject)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("cannot subscribe to {subject}"))?;
        tracing::info!(%subject, queue_group = stage.queue_group(), "taking batches");
        Ok(Intake {
            stage,
            service,
            endpoint,
            stopping: false,
            rejected,
            reject_log: Throttle::default(),
        })
    }

    /// The next batch. Once `stop` fires, stops taking new ones and returns those already
    /// delivered, then `None`.
    pub async fn next(&mut self, stop: &Shutdown) -> Option<Request> {
        if !self.stopping {
            tokio::select! {
                request = self.endpoint.next() => return request,
                _ = stop.triggered() => {
                    self.stopping = true;
                    if let Err(e) = self.endpoint.stop().await {
                        tracing::warn!("could not unsubscribe: {e}");
                    }
                }
            }
        }
        self.endpoint.next().await
    }

    /// Refuses a malformed message: counts it (in the counter given at start), logs it (rate-limited) and answers the sender
    /// with a service error, if it asked for an answer.
    pub async fn refuse(&self, request: &Request, why: &dyn std::fmt::Display) {
        self.rejected.add(1);
        if let Some(left_out) = self.reject_log.admit() {
            tracing::warn!(
                stage = %self.stage,
                subject = %request.message.subject,
                bytes = request.message.payload.len(),
                rejected_total = self.rejected.total(),
                similar_left_out = left_out,
                "refused a malformed message: {why}"
            );
        }
        if request.message.reply.is_some() {
            let error = async_nats::service::error::Error {
                status: why.to_string(),
                code: 400,
            };
            let _ = request.respond(Err(error)).await;
        }
    }

    /// Deregisters the service.
    pub async fn close(self) {
        if let Err(e) = self.service.stop().await {
            tracing::debug!("stopping the NATS service: {e}");
        }
    }
}
