//! Taking batches in: a stage's input subject, consumed in the stage's queue group, and the
//! stage announced as a NATS service.
//!
//! NATS hands each batch to one replica of the queue group, so scaling a stage is starting
//! replicas. Each replica also answers the NATS service protocol (`$SRV.PING|INFO|STATS`, for
//! all services, by name, and by id), so `nats micro ls|info|stats hasher` shows every replica
//! with its request count and processing time, and `chocominer status` counts them by
//! `$SRV.PING.<stage>`.
//!
//! Stopping without losing batches on their way to the replica: async-nats's endpoint can only
//! unsubscribe, and its `drain` (0.51) forgets the subscription before the server has
//! confirmed, so batches the server already sent are dropped by the client. This intake
//! instead asks the server to auto-unsubscribe after [`STOP_FENCE`] more batches than it has
//! received: server and client count the same messages, so the subscription ends exactly
//! when the last batch the server sends has arrived — none in transit is dropped. It takes at
//! most that many new batches after the stop (and finishes them); if traffic has stopped
//! instead, it ends after a quiet spell, once a round trip to the server has flushed the wire.

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

/// Batches a stopping replica may still take after the stop: more than can be in transit to
/// it, few enough to finish quickly (32 demo hashes take about 3 s).
pub const STOP_FENCE: u64 = 32;
/// Most of the margin by which a receiver gives up on a batch before its sender does.
const EXPIRY_MARGIN: Duration = Duration::from_millis(500);
/// With no batch for this long after the fence, traffic has stopped: the intake ends.
const QUIET: Duration = Duration::from_millis(250);

/// Receives the batches; see the module docs.
pub struct Intake {
    client: Client,
    batches: Subscriber,
    /// Batches received from the subscription so far (what the server counts too).
    received: u64,
    state: IntakeState,
    /// Batches taken off the subscription while stopping, not yet handed out.
    held: std::collections::VecDeque<Message>,
    responder: Arc<Responder>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntakeState {
    Running,
    Stopping,
    Done,
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
            client: client.clone(),
            batches,
            received: 0,
            state: IntakeState::Running,
            held: Default::default(),
            responder: Arc::new(responder),
        })
    }

    pub fn responder(&self) -> Arc<Responder> {
        self.responder.clone()
    }

    /// The next batch. Once `stop` fires, stops taking new ones and returns those already
    /// delivered or on their way, then `None`.
    pub async fn next(&mut self, stop: &Shutdown) -> Option<Incoming> {
        if self.state == IntakeState::Running {
            tokio::select! {
                message = self.batches.next() => {
                    self.received += u64::from(message.is_some());
                    return message.map(Incoming::new);
                }
                _ = stop.triggered() => self.begin_stop().await,
            }
        }
        if let Some(message) = self.held.pop_front() {
            return Some(Incoming::new(message));
        }
        if self.state == IntakeState::Done {
            return None;
        }
        match tokio::time::timeout(QUIET, self.batches.next()).await {
            Ok(Some(message)) => {
                self.received += 1;
                Some(Incoming::new(message))
            }
            // The subscription reached its fence and ended.
            Ok(None) => {
                self.state = IntakeState::Done;
                None
            }
            // Traffic has stopped: whatever the server sent before the fence has arrived.
            Err(_) => {
                self.state = IntakeState::Done;
                let _ = self.batches.unsubscribe().await;
                None
            }
        }
    }

    async fn begin_stop(&mut self) {
        use futures::FutureExt;
        self.state = IntakeState::Stopping;
        // Take what has already arrived, so the fence counts from an exact figure.
        while let Some(Some(message)) = self.batches.next().now_or_never() {
            self.received += 1;
            self.held.push_back(message);
        }
        let fence = self.received + STOP_FENCE;
        if let Err(e) = self.batches.unsubscribe_after(fence).await {
            tracing::warn!("could not leave the queue group: {e}");
        }
        // A round trip: every batch the server sent before it saw the fence is now here.
        if let Err(e) = self.client.flush().await {
            tracing::warn!("could not flush NATS while stopping: {e}");
        }
        tracing::info!(
            held = self.held.len(),
            "stopped taking batches; finishing those delivered"
        );
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

    /// Gives a batch back to its sender unprocessed, because this stage cannot hand it on now
    /// (its own next stage is gone): a service error with code
    /// [`TURNED_AWAY`](crate::sender::TURNED_AWAY), on which the sender holds the batch and
    /// waits, as for "no responders". Not a malformed message: not counted as rejected.
    pub async fn turn_away(&self, incoming: Incoming, why: impl std::fmt::Display) {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_SERVICE_ERROR, why.to_string().as_str());
        headers.insert(
            NATS_SERVICE_ERROR_CODE,
            crate::sender::TURNED_AWAY.to_string().as_str(),
        );
        self.answer(&incoming, Bytes::new(), headers, None).await;
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

    /// Drops a batch its sender has already counted as lost (see [`Incoming::expired`]):
    /// counted in `expired`, logged (rate-limited), not answered.
    pub fn drop_expired(&self, incoming: Incoming, expired: &Counter) {
        expired.add(1);
        if let Some(left_out) = self.reject_log.admit() {
            tracing::warn!(
                stage = %self.identity.stage,
                waited = ?incoming.received.elapsed(),
                expired_total = expired.total(),
                similar_left_out = left_out,
                "dropped a batch its sender has already counted as lost (it waited too long here)"
            );
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

    /// Whether the sender has (about) given up on this batch: it counts a batch as lost once
    /// its `Chocominer-Ttl-Ms` has passed, so finishing it now would count it twice (lost and
    /// done). Judged from when the batch arrived here, with a margin for the time on the wire.
    pub fn expired(&self) -> bool {
        let ttl = self
            .message
            .headers
            .as_ref()
            .and_then(|h| h.get(crate::codec::HEADER_TTL_MS))
            .and_then(|v| v.as_str().parse::<u64>().ok())
            .map(Duration::from_millis);
        match ttl {
            Some(ttl) => self.received.elapsed() + (ttl / 10).min(EXPIRY_MARGIN) >= ttl,
            None => false,
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
