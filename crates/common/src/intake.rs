//! Taking batches in: a stage's input subject, consumed in the stage's queue group, and the
//! stage announced as a NATS service.
//!
//! NATS hands each batch to one replica of the queue group, so scaling a stage is starting
//! replicas. Each replica also answers the NATS service protocol (`$SRV.PING|INFO|STATS`, for
//! all services, by name, and by id), so `nats micro ls|info|stats hasher` shows every replica
//! with its request count and processing time, and senders can probe `$SRV.PING.<stage>`.
//!
//! The service verbs are answered here rather than by async-nats's service endpoint because
//! that endpoint can only unsubscribe, which drops batches already on their way to the
//! replica; this intake *drains* its subscription on shutdown (unsubscribe, then a round trip
//! to the server) and yields every batch delivered before, so they are finished, not lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::service::{Info, PingResponse, Stats, endpoint};
use async_nats::{Client, HeaderMap, Message, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::shutdown::Shutdown;
use crate::stats::Counter;
use crate::subjects::Stage;
use crate::throttle::Throttle;

/// Header naming a service error, as the NATS service protocol does.
pub use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};

/// Custom data for the service's `$SRV.STATS` answer (e.g. lost, busy, in flight).
pub type StatsData = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Request count, errors and processing time of the endpoint, as `$SRV.STATS` reports them.
#[derive(Default)]
struct EndpointTally {
    requests: usize,
    errors: usize,
    processing_time: Duration,
    last_error: Option<async_nats::service::error::Error>,
}

/// What the verb answerer needs to know about this replica.
struct Identity {
    stage: Stage,
    id: String,
    endpoint: endpoint::Info,
    metadata: HashMap<String, String>,
    started: async_nats::datetime::DateTime,
    tally: Mutex<EndpointTally>,
    stats_data: StatsData,
}

/// Receives the batches; see the module docs.
pub struct Intake {
    batches: Subscriber,
    stopping: bool,
    responder: Arc<Responder>,
}

/// Answers batches (from any task) and the service protocol.
pub struct Responder {
    client: Client,
    identity: Arc<Identity>,
    verbs: JoinHandle<()>,
    rejected: Arc<Counter>,
    reject_log: Throttle,
}

/// One batch taken in; answer it with [`Responder::ack`] or [`Responder::refuse`].
pub struct Incoming {
    pub message: Message,
    received: Instant,
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
        let id = client
            .new_inbox()
            .rsplit('.')
            .next()
            .unwrap_or("0")
            .to_owned();
        let identity = Arc::new(Identity {
            stage,
            id: id.clone(),
            endpoint: endpoint::Info {
                name: subject.rsplit('.').next().unwrap_or(subject).to_owned(),
                subject: subject.to_owned(),
                queue_group: stage.queue_group().to_owned(),
                metadata: HashMap::new(),
            },
            metadata: [("instance".to_owned(), instance.to_owned())].into(),
            started: async_nats::datetime::now(),
            tally: Mutex::default(),
            stats_data,
        });
        // `$SRV.<verb>`, `$SRV.<verb>.<name>`, `$SRV.<verb>.<name>.<id>` for every verb.
        let mut verb_subs = Vec::new();
        for pattern in [
            "$SRV.*".to_owned(),
            format!("$SRV.*.{stage}"),
            format!("$SRV.*.{stage}.{id}"),
        ] {
            verb_subs.push(client.subscribe(pattern).await?);
        }
        let batches = client
            .queue_subscribe(subject.to_owned(), stage.queue_group().to_owned())
            .await?;
        // Make sure the server has the subscriptions before anyone is told we are here.
        client.flush().await?;
        let verbs = tokio::spawn(answer_verbs(client.clone(), identity.clone(), verb_subs));
        tracing::info!(%subject, queue_group = stage.queue_group(), service_id = %id, "taking batches");
        let responder = Responder {
            client: client.clone(),
            identity,
            verbs,
            rejected,
            reject_log: Throttle::default(),
        };
        Ok(Intake {
            batches,
            stopping: false,
            responder: Arc::new(responder),
        })
    }

    pub fn responder(&self) -> Arc<Responder> {
        self.responder.clone()
    }

    /// The next batch. Once `stop` fires, stops taking new ones (draining the subscription)
    /// and returns those already delivered, then `None`.
    pub async fn next(&mut self, stop: &Shutdown) -> Option<Incoming> {
        if !self.stopping {
            tokio::select! {
                message = self.batches.next() => return message.map(Incoming::new),
                _ = stop.triggered() => {
                    self.stopping = true;
                    if let Err(e) = self.batches.drain().await {
                        tracing::warn!("could not drain the subscription: {e}");
                    }
                }
            }
        }
        self.batches.next().await.map(Incoming::new)
    }
}

impl Responder {
    /// Acknowledges a batch: it has been handed on or recorded.
    pub async fn ack(&self, incoming: Incoming) {
        self.answer(&incoming, Bytes::new(), HeaderMap::new(), None)
            .await;
    }

    /// Refuses a malformed message: counts it (in the counter given at start), logs it
    /// (rate-limited) and answers the sender with a service error, if it asked for an answer.
    pub async fn refuse(&self, incoming: Incoming, why: impl std::fmt::Display) {
        self.rejected.add(1);
        let message = &incoming.message;
        if let Some(left_out) = self.reject_log.admit() {
            tracing::warn!(
                stage = %self.identity.stage,
                subject = %message.subject,
                bytes = message.payload.len(),
                rejected_total = self.rejected.total(),
                similar_left_out = left_out,
                "refused a malformed message: {why}"
            );
        }
        let error = async_nats::service::error::Error {
            status: why.to_string(),
            code: 400,
        };
        let mut headers = HeaderMap::new();
        headers.insert(NATS_SERVICE_ERROR, error.status.as_str());
        headers.insert(NATS_SERVICE_ERROR_CODE, "400");
        self.answer(&incoming, Bytes::new(), headers, Some(error))
            .await;
    }

    async fn answer(
        &self,
        incoming: &Incoming,
        body: Bytes,
        headers: HeaderMap,
        error: Option<async_nats::service::error::Error>,
    ) {
        {
            let mut tally = self.identity.tally.lock().unwrap();
            tally.requests += 1;
            tally.processing_time += incoming.received.elapsed();
            if let Some(error) = error {
                tally.errors += 1;
                tally.last_error = Some(error);
            }
        }
        let Some(reply) = incoming.message.reply.clone() else {
            return;
        };
        let sent = if headers.is_empty() {
            self.client.publish(reply, body).await
        } else {
            self.client.publish_with_headers(reply, headers, body).await
        };
        if let Err(e) = sent {
            tracing::warn!("could not answer a batch: {e}");
        }
    }

    /// Stops answering the service protocol: this replica is gone from `nats micro ls`.
    pub fn close(&self) {
        self.verbs.abort();
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.verbs.abort();
    }
}

impl Incoming {
    fn new(message: Message) -> Self {
        Incoming {
            message,
            received: Instant::now(),
        }
    }
}

async fn answer_verbs(client: Client, me: Arc<Identity>, subs: Vec<Subscriber>) {
    let mut requests = futures::stream::select_all(subs);
    while let Some(request) = requests.next().await {
        let Some(reply) = request.reply else { continue };
        let verb = request.subject.split('.').nth(1).unwrap_or_default();
        let body = match verb {
            "PING" => serde_json::to_vec(&PingResponse {
                kind: "io.nats.micro.v1.ping_response".into(),
                name: me.stage.name().into(),
                id: me.id.clone(),
                version: env!("CARGO_PKG_VERSION").into(),
                metadata: me.metadata.clone(),
            }),
            "INFO" => serde_json::to_vec(&Info {
                kind: "io.nats.micro.v1.info_response".into(),
                name: me.stage.name().into(),
                id: me.id.clone(),
                description: format!("ChocoMiner {} stage", me.stage),
                version: env!("CARGO_PKG_VERSION").into(),
                metadata: me.metadata.clone(),
                endpoints: vec![me.endpoint.clone()],
            }),
            "STATS" => {
                let endpoint = {
                    let tally = me.tally.lock().unwrap();
                    endpoint::Stats {
                        name: me.endpoint.name.clone(),
                        subject: me.endpoint.subject.clone(),
                        queue_group: me.endpoint.queue_group.clone(),
                        requests: tally.requests,
                        errors: tally.errors,
                        processing_time: tally.processing_time,
                        average_processing_time: tally
                            .processing_time
                            .checked_div(tally.requests.max(1) as u32)
                            .unwrap_or_default(),
                        last_error: tally.last_error.clone(),
                        data: Some((me.stats_data)()),
                    }
                };
                serde_json::to_vec(&Stats {
                    kind: "io.nats.micro.v1.stats_response".into(),
                    name: me.stage.name().into(),
                    id: me.id.clone(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    started: me.started,
                    endpoints: vec![endpoint],
                })
            }
            _ => continue,
        };
        if let Ok(body) = body {
            let _ = client.publish(reply, body.into()).await;
        }
    }
}
