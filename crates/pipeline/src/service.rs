//! The NATS service protocol (`$SRV.PING|INFO|STATS`) for one replica of a stage, so that
//! `nats micro ls|info|stats hasher` and `chocominer status` see each replica with its figures.
//!
//! It is answered on a NATS connection of its own, which [`Service`] replaces: a request
//! async-nats 0.51 cannot read ends that connection (docs/architecture.md), not the batches'.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_nats::service::{Info, PingResponse, Stats, endpoint};
use async_nats::{Client, Subscriber};
use futures::StreamExt;
use tokio::task::JoinHandle;

use chocominer_model::{Stage, is_people_inbox};
use chocominer_process::{Connector, Throttle, now_ns, round_trip};

/// Pause before reopening, times the reopens in a row (up to [`MAX_PAUSES`]), once the budget
/// of [`QUICK_REOPENS`] is spent: what ended the last connection may come again at once.
const REOPEN_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSES: u32 = 20;
/// Reopens without a pause, one more earned each [`REOPEN_REFILL`]: one a second costs only a
/// moment's absence each (measured: 99 of 100 probes answered at that rate, against 84 with a
/// pause before each); a flood meets the pauses.
const QUICK_REOPENS: u32 = 10;
const REOPEN_REFILL: Duration = Duration::from_secs(1);

const VERBS: [&str; 3] = ["PING", "INFO", "STATS"];

/// Custom data for the service's `$SRV.STATS` answer (e.g. lost, busy, in flight).
pub(crate) type StatsData = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The endpoint's figures in `$SRV.STATS`.
#[derive(Default)]
pub(crate) struct EndpointTally {
    requests: usize,
    errors: usize,
    processing_time: Duration,
    last_error: Option<async_nats::service::error::Error>,
}

/// What the service protocol says about this replica.
pub(crate) struct Identity {
    pub(crate) stage: Stage,
    id: String,
    endpoint: endpoint::Info,
    metadata: HashMap<String, String>,
    started: async_nats::datetime::DateTime,
    tally: Mutex<EndpointTally>,
    pub(crate) stats_data: OnceLock<StatsData>,
}

impl Identity {
    /// The subject the replica takes its batches on.
    pub(crate) fn subject(&self) -> &str {
        &self.endpoint.subject
    }

    /// Replica `id` of `stage`, taking its batches on `subject`, run as `instance`.
    pub(crate) fn new(stage: Stage, id: String, subject: &str, instance: String) -> Identity {
        Identity {
            stage,
            id,
            endpoint: endpoint::Info {
                name: subject.rsplit('.').next().unwrap_or(subject).to_owned(),
                subject: subject.to_owned(),
                queue_group: stage.queue_group().to_owned(),
                metadata: HashMap::new(),
            },
            metadata: [("instance".to_owned(), instance)].into(),
            started: started_now(),
            tally: Mutex::default(),
            stats_data: OnceLock::new(),
        }
    }

    /// Counts a batch answered, and its error if it was refused.
    pub(crate) fn tally(
        &self,
        processing_time: Duration,
        error: Option<async_nats::service::error::Error>,
    ) {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        tally.requests += 1;
        tally.processing_time += processing_time;
        if let Some(error) = error {
            tally.errors += 1;
            tally.last_error = Some(error);
        }
    }

    /// Each verb for every service, for its stage and for itself, written out: a wildcard
    /// (`$SRV.*`) needs a permission nats-server also reads as allowing `$SRV.>`.
    fn subjects(&self) -> Vec<String> {
        let (stage, id) = (self.stage, &self.id);
        VERBS
            .iter()
            .flat_map(|verb| {
                [
                    format!("$SRV.{verb}"),
                    format!("$SRV.{verb}.{stage}"),
                    format!("$SRV.{verb}.{stage}.{id}"),
                ]
            })
            .collect()
    }

    fn answer(&self, verb: &str) -> Option<serde_json::Result<Vec<u8>>> {
        let body = match verb {
            "PING" => serde_json::to_vec(&PingResponse {
                kind: "io.nats.micro.v1.ping_response".into(),
                name: self.stage.name().into(),
                id: self.id.clone(),
                version: env!("CARGO_PKG_VERSION").into(),
                metadata: self.metadata.clone(),
            }),
            "INFO" => serde_json::to_vec(&Info {
                kind: "io.nats.micro.v1.info_response".into(),
                name: self.stage.name().into(),
                id: self.id.clone(),
                description: format!("ChocoMiner {} stage", self.stage),
                version: env!("CARGO_PKG_VERSION").into(),
                metadata: self.metadata.clone(),
                endpoints: vec![self.endpoint.clone()],
            }),
            "STATS" => {
                let endpoint = {
                    let tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
                    endpoint::Stats {
                        name: self.endpoint.name.clone(),
                        subject: self.endpoint.subject.clone(),
                        queue_group: self.endpoint.queue_group.clone(),
                        requests: tally.requests,
                        errors: tally.errors,
                        processing_time: tally.processing_time,
                        average_processing_time: tally
                            .processing_time
                            .checked_div(tally.requests.max(1) as u32)
                            .unwrap_or_default(),
                        last_error: tally.last_error.clone(),
                        data: self.stats_data.get().map(|data| data()),
                    }
                };
                // async-nats's `Stats` lacks the service's `metadata`, which the service API
                // (ADR-32) puts in every response, and which nats-py's `ServiceStats` requires.
                serde_json::to_value(Stats {
                    kind: "io.nats.micro.v1.stats_response".into(),
                    name: self.stage.name().into(),
                    id: self.id.clone(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    started: self.started,
                    endpoints: vec![endpoint],
                })
                .and_then(|mut stats| {
                    stats["metadata"] = serde_json::to_value(&self.metadata)?;
                    serde_json::to_vec(&stats)
                })
            }
            _ => return None,
        };
        Some(body)
    }
}

/// The task that answers the service protocol and replaces its connection should it die.
pub(crate) struct Service(JoinHandle<()>);

impl Service {
    /// Returns once answering has begun, so a replica is counted as soon as it says it is ready.
    pub(crate) async fn start(connector: Connector, me: Arc<Identity>) -> anyhow::Result<Service> {
        Ok(Service(match listen(&connector, &me).await? {
            Some((client, subs)) => tokio::spawn(serve(connector, me, client, subs)),
            // Shutdown came first: nothing to answer.
            None => tokio::spawn(async {}),
        }))
    }

    pub(crate) fn close(&self) {
        self.0.abort();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.close();
    }
}

/// A new service connection, subscribed on the server; `None` if shutdown came first.
async fn listen(
    connector: &Connector,
    me: &Identity,
) -> anyhow::Result<Option<(Client, Vec<Subscriber>)>> {
    let Some(client) = connector.open().await? else {
        return Ok(None);
    };
    let mut subs = Vec::new();
    for subject in me.subjects() {
        subs.push(client.subscribe(subject).await?);
    }
    round_trip(&client).await?;
    Ok(Some((client, subs)))
}

/// Answers on `client` until its subscriptions end, then on a new connection; for ever.
async fn serve(connector: Connector, me: Arc<Identity>, client: Client, subs: Vec<Subscriber>) {
    let (mut client, mut subs) = (client, subs);
    let mut in_a_row = 0u32;
    let mut budget = ReopenBudget::new();
    let ended_log = Throttle::default();
    loop {
        let answered = answer(&client, &me, subs).await;
        // The client's connection task is gone (it panicked) or was closed: it stays gone.
        in_a_row = if answered > 0 { 1 } else { in_a_row + 1 };
        if let Some(left_out) = ended_log.admit() {
            tracing::warn!(
                connection = connector.name(),
                similar_left_out = left_out,
                "the NATS connection answering the service protocol ($SRV) has ended (a \
                 malformed request can end it); opening a new one (batches flow on another \
                 connection and are not affected)"
            );
        }
        if !budget.take(Instant::now()) {
            tokio::time::sleep(REOPEN_PAUSE * in_a_row.min(MAX_PAUSES)).await;
        }
        match listen(&connector, &me).await {
            Ok(Some(opened)) => (client, subs) = opened,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(connection = connector.name(), "cannot open it: {e:#}");
                subs = Vec::new();
            }
        }
    }
}

/// How many service connections may still be reopened at once ([`QUICK_REOPENS`]).
struct ReopenBudget {
    left: u32,
    refilled: Instant,
}

impl ReopenBudget {
    fn new() -> ReopenBudget {
        ReopenBudget {
            left: QUICK_REOPENS,
            refilled: Instant::now(),
        }
    }

    /// Takes one quick reopen, if any is left at `now`.
    fn take(&mut self, now: Instant) -> bool {
        let earned = now.duration_since(self.refilled).as_nanos() / REOPEN_REFILL.as_nanos();
        let earned = u32::try_from(earned).unwrap_or(u32::MAX);
        if self.left.saturating_add(earned) >= QUICK_REOPENS {
            (self.left, self.refilled) = (QUICK_REOPENS, now);
        } else if earned > 0 {
            self.left += earned;
            self.refilled += REOPEN_REFILL * earned;
        }
        let quick = self.left > 0;
        self.left = self.left.saturating_sub(1);
        quick
    }
}

/// Answers every request on `subs` until they end; returns how many it answered.
async fn answer(client: &Client, me: &Identity, subs: Vec<Subscriber>) -> u64 {
    let mut answered = 0;
    let unanswered = Throttle::default();
    let mut requests = futures::stream::select_all(subs);
    while let Some(request) = requests.next().await {
        let Some(reply) = request.reply else { continue };
        // Else anyone who saw a batch could have every replica answer on a stage's inbox (or
        // a pipeline subject). The server refuses those too; this keeps a stage from trying.
        if !is_people_inbox(&reply) {
            if let Some(left_out) = unanswered.admit() {
                tracing::warn!(
                    subject = %request.subject,
                    reply = %reply,
                    similar_left_out = left_out,
                    "did not answer a service request: its reply subject is not a client's \
                     inbox (it may name a pipeline stage's inbox or subject)"
                );
            }
            continue;
        }
        let verb = request.subject.split('.').nth(1).unwrap_or_default();
        if let Some(Ok(body)) = me.answer(verb) {
            let _ = client.publish(reply, body.into()).await;
            answered += 1;
        }
    }
    answered
}

/// Now, for `started`, in milliseconds never on a whole second: nats-py's `nats.micro` reads
/// one to six fraction digits, Go's and Rust's clients any.
fn started_now() -> async_nats::datetime::DateTime {
    let millis = now_ns() / 1_000_000;
    let millis = if millis % 1_000 == 0 {
        millis + 1
    } else {
        millis
    };
    async_nats::datetime::from_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or_else(|_| async_nats::datetime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reopen_budget_allows_a_few_at_once_then_one_per_refill() {
        let mut budget = ReopenBudget::new();
        let start = budget.refilled;
        for i in 0..QUICK_REOPENS {
            assert!(budget.take(start), "quick reopen {i}");
        }
        assert!(!budget.take(start), "a flood meets the pauses");
        assert!(!budget.take(start + REOPEN_REFILL / 2));
        assert!(budget.take(start + REOPEN_REFILL), "one earned back");
        assert!(!budget.take(start + REOPEN_REFILL));
        // One a refill period, for ever.
        for i in 2..50 {
            assert!(budget.take(start + REOPEN_REFILL * i), "at {i}");
        }
        // Long idle: full again, no more.
        let later = start + REOPEN_REFILL * 1000;
        for _ in 0..QUICK_REOPENS {
            assert!(budget.take(later));
        }
        assert!(!budget.take(later));
    }
}
