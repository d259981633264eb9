//! Taking batches in: the input side of a stage, as [`sender`](crate::sender) is its output
//! side, in the stage's queue group, answering the NATS service protocol ([`crate::service`]).
//!
//! Extra subscriptions, each ended by the server after one batch, steer NATS's random choice
//! towards a replica short of its [`capacity`](IntakeConfig::capacity) (docs/performance.md,
//! "Random routing"). They are never withdrawn, only not renewed: a subscription ended by the
//! client loses the batch the server may already be sending it.
//!
//! Every batch taken in is settled once, through its [`Incoming`] (the sender module's *A
//! batch's life*).
//!
//! Stopping drops no batch on its way here (async-nats's `drain`, 0.51, forgets the
//! subscription before the server has confirmed, dropping what the server already sent): the
//! intake asks the server to unsubscribe after [`STOP_FENCE`] more batches than it has
//! received. Server and client count the same messages, so the subscription ends exactly at the
//! last batch sent. If traffic stops first, the intake ends after `QUIET` with nothing
//! unsettled (until then an answer of ours can make a sender send again).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use async_nats::connection::State;
use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use async_nats::{Client, HeaderMap, Message, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{SelectAll, Stream};
use tokio::sync::Notify;

use crate::service::{Identity, Service};
use crate::stats::Counter;
use crate::transit::{Seen, Transit};
use chocominer_codec::{
    BatchHeaders, HEADER_BATCH, HEADER_INSTANCE, HEADER_SENT_MS, HEADER_TTL_MS, parse_sent_at,
    parse_ttl,
};
use chocominer_model::Stage;
use chocominer_process::{Connector, Shutdown, Throttle, round_trip};

/// The service error code of a batch turned away: its sender holds it and waits, as for "no
/// responders".
pub(crate) const TURNED_AWAY: usize = 503;

/// Batches a stopping replica may still take: more than can be in transit to it, few enough to
/// finish quickly (32 demo hashes take about 3 s).
pub const STOP_FENCE: u64 = 32;
/// After the fence, with nothing unsettled, no batch for this long means traffic has stopped.
const QUIET: Duration = Duration::from_millis(250);
/// Measured with 8 and 10 demo hashers: 2 gives 98 % of what the hashers can do, against
/// 85-87 % with none; more only adds subscriptions.
pub const EXTRA_SUBSCRIPTIONS: usize = 2;

/// Where a stage takes its batches from.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// The stage taking the batches: its queue group and service name.
    pub stage: Stage,
    pub subject: String,
    /// This instance, in the service's metadata.
    pub instance: String,
    /// Opens the connection the service protocol is answered on.
    pub service: Connector,
    /// How many batches the replica can hold without keeping any waiting long: while it holds
    /// fewer, it makes extra subscriptions. `None`: its own subscription only.
    pub capacity: Option<usize>,
}

/// Batches taken in and not worked on, counted in batches.
#[derive(Debug, Default)]
pub struct IntakeStats {
    /// Messages refused: malformed, or unfit to take (a batch too costly to hash).
    pub rejected: Counter,
    /// Batches dropped because their sender counts them as lost, or will.
    pub expired: Counter,
}

/// Receives the batches; see the module docs.
pub struct Intake {
    /// The replica's own subscription in the queue group and its extra ones.
    batches: SelectAll<Member>,
    /// Batches received on the replica's own subscription (as the server counts them).
    received: u64,
    capacity: Option<usize>,
    /// Extra subscriptions made and not yet used.
    extra_subscriptions: usize,
    state: IntakeState,
    /// Batches taken off the subscription while stopping, not yet handed out.
    held: VecDeque<Incoming>,
    shared: Arc<Shared>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntakeState {
    Running,
    Stopping,
    Done,
}

/// A subscription in the queue group: the replica's own, or an extra one.
struct Member {
    subscription: Subscriber,
    own: bool,
}

impl Stream for Member {
    /// Whether it came through the replica's own subscription, and the batch.
    type Item = (bool, Message);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let own = self.own;
        self.subscription
            .poll_next_unpin(cx)
            .map(|message| message.map(|m| (own, m)))
    }
}

/// Batches taken in and not yet settled.
#[derive(Debug, Default)]
struct Holding {
    batches: AtomicUsize,
    /// One was settled: the intake may make extra subscriptions again.
    settled: Notify,
}

/// One batch held, until it is settled (dropped).
struct Held(Arc<Holding>);

impl Held {
    fn new(holding: &Arc<Holding>) -> Held {
        holding.batches.fetch_add(1, Ordering::Relaxed);
        Held(holding.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.batches.fetch_sub(1, Ordering::Relaxed);
        self.0.settled.notify_one();
    }
}

/// What answering a batch needs; shared with every [`Incoming`].
struct Shared {
    client: Client,
    identity: Arc<Identity>,
    stats: Arc<IntakeStats>,
    service: Service,
    /// For refused and dropped batches alike.
    reject_log: Throttle,
    holding: Arc<Holding>,
    /// Read as each batch arrives, noted as each proves to be a batch.
    transit: Mutex<Transit>,
}

/// The connection to NATS as the server knows it: the server's id (new at every start) and the
/// client's.
fn session(client: &Client) -> (String, u64) {
    let info = client.server_info();
    (info.server_id, info.client_id)
}

/// One batch taken in, settled once by one of the methods that take it.
pub struct Incoming {
    message: Message,
    received: Instant,
    /// The connection it came on.
    session: (String, u64),
    late: Duration,
    /// Its transit figure, noted once it proves to be a batch.
    seen: Option<Seen>,
    shared: Arc<Shared>,
    _held: Held,
}

impl Intake {
    /// Joins the stage's queue group on `subject` and starts answering the service protocol.
    pub async fn start(client: Client, config: IntakeConfig) -> anyhow::Result<Intake> {
        let IntakeConfig {
            stage,
            subject,
            instance,
            service,
            capacity,
        } = config;
        let inbox = client.new_inbox();
        let id = inbox.rsplit('.').next().unwrap_or("0").to_owned();
        let batches = client
            .queue_subscribe(subject.clone(), stage.queue_group().to_owned())
            .await?;
        // Subscribed on the server before the replica answers `$SRV` or says it is ready.
        round_trip(&client).await?;
        let identity = Arc::new(Identity::new(stage, id.clone(), &subject, instance));
        let service = Service::start(service, identity.clone()).await?;
        tracing::info!(%subject, queue_group = stage.queue_group(), service_id = %id, "taking batches");
        Ok(Intake {
            batches: std::iter::once(Member {
                subscription: batches,
                own: true,
            })
            .collect(),
            received: 0,
            capacity,
            extra_subscriptions: 0,
            state: IntakeState::Running,
            held: VecDeque::new(),
            shared: Arc::new(Shared {
                transit: Mutex::default(),
                client,
                identity,
                stats: Arc::default(),
                service,
                reject_log: Throttle::default(),
                holding: Arc::default(),
            }),
        })
    }

    pub fn stats(&self) -> Arc<IntakeStats> {
        self.shared.stats.clone()
    }

    /// Sets the stage's own figures in this replica's `$SRV.STATS` answer; only the first call
    /// counts. (The figures come from the stage's meter, which reads [`stats`](Self::stats).)
    pub fn set_stats_data(&self, data: impl Fn() -> serde_json::Value + Send + Sync + 'static) {
        let _ = self.shared.identity.stats_data.set(Box::new(data));
    }

    /// The next batch. Once `stop` fires, those already delivered or on their way, then `None`.
    pub async fn next(&mut self, stop: &Shutdown) -> Option<Incoming> {
        while self.state == IntakeState::Running {
            self.subscribe_extra().await;
            let holding = self.shared.holding.clone();
            tokio::select! {
                message = self.batches.next() => {
                    return message.map(|(own, m)| self.taken(own, m));
                }
                // Capacity again: maybe more extra subscriptions.
                _ = holding.settled.notified(), if self.capacity.is_some() => {}
                _ = stop.triggered() => self.begin_stop().await,
            }
        }
        if let Some(incoming) = self.held.pop_front() {
            return Some(incoming);
        }
        if self.state == IntakeState::Done {
            return None;
        }
        // Traffic has stopped once nothing taken in is unsettled and no batch came for QUIET.
        let holding = self.shared.holding.clone();
        loop {
            let quiet = if holding.batches.load(Ordering::Relaxed) > 0 {
                tokio::select! {
                    message = self.batches.next() => Ok(message),
                    _ = holding.settled.notified() => continue,
                }
            } else {
                tokio::time::timeout(QUIET, self.batches.next()).await
            };
            return match quiet {
                Ok(Some((own, message))) => Some(self.taken(own, message)),
                // Every subscription reached its fence and ended, or whatever the server sent
                // before the fence has arrived.
                Ok(None) | Err(_) => {
                    self.state = IntakeState::Done;
                    for member in self.batches.iter_mut() {
                        let _ = member.subscription.unsubscribe().await;
                    }
                    None
                }
            };
        }
    }

    fn taken(&mut self, own: bool, message: Message) -> Incoming {
        if own {
            self.received += 1;
        } else {
            self.extra_subscriptions = self.extra_subscriptions.saturating_sub(1);
        }
        let received = Instant::now();
        let seen = header(&message, HEADER_SENT_MS)
            .and_then(parse_sent_at)
            .map(|sent| Seen::new(sent, SystemTime::now()));
        let late = seen.map_or(Duration::ZERO, |seen| {
            let transit = self.shared.transit.lock().unwrap();
            transit.late_by(header(&message, HEADER_INSTANCE).unwrap_or(""), seen)
        });
        Incoming {
            message,
            received,
            session: session(&self.shared.client),
            late,
            seen,
            _held: Held::new(&self.shared.holding),
            shared: self.shared.clone(),
        }
    }

    /// Makes extra subscriptions up to [`EXTRA_SUBSCRIPTIONS`] per batch short of the capacity.
    /// One that cannot be made is not: the replica still has its own.
    async fn subscribe_extra(&mut self) {
        let Some(capacity) = self.capacity else {
            return;
        };
        let holding = self.shared.holding.batches.load(Ordering::Relaxed);
        let wanted = capacity.saturating_sub(holding) * EXTRA_SUBSCRIPTIONS;
        while self.extra_subscriptions < wanted {
            let identity = &self.shared.identity;
            let taken = async {
                let mut subscription = self
                    .shared
                    .client
                    .queue_subscribe(
                        identity.subject().to_owned(),
                        identity.stage.queue_group().to_owned(),
                    )
                    .await?;
                subscription.unsubscribe_after(1).await?;
                anyhow::Ok(subscription)
            };
            match taken.await {
                Ok(subscription) => {
                    self.extra_subscriptions += 1;
                    self.batches.push(Member {
                        subscription,
                        own: false,
                    });
                }
                Err(e) => {
                    tracing::debug!(
                        "could not make an extra subscription in the queue group: {e:#}"
                    );
                    return;
                }
            }
        }
    }

    async fn begin_stop(&mut self) {
        use futures::FutureExt;
        self.state = IntakeState::Stopping;
        // Take what has already arrived, so the fence counts from an exact figure.
        while let Some(Some((own, message))) = self.batches.next().now_or_never() {
            let incoming = self.taken(own, message);
            self.held.push_back(incoming);
        }
        // Extra subscriptions end after their one batch anyway.
        let fence = self.received + STOP_FENCE;
        if let Some(own) = self.batches.iter_mut().find(|member| member.own)
            && let Err(e) = own.subscription.unsubscribe_after(fence).await
        {
            tracing::warn!("could not leave the queue group: {e}");
        }
        // A round trip: every batch the server sent before it saw the fence is now here.
        if let Err(e) = round_trip(&self.shared.client).await {
            tracing::warn!("while stopping: {e:#}");
        }
        tracing::info!(
            held = self.held.len(),
            "stopped taking batches; finishing those delivered"
        );
    }

    /// Stops answering the service protocol: this replica is gone from `nats micro ls`.
    pub fn close(&self) {
        self.shared.service.close();
    }
}

impl Incoming {
    pub fn body(&self) -> &[u8] {
        &self.message.payload
    }

    /// Lets go of the encoded batch (its numbers copied on) while it waits to be answered;
    /// [`body`](Self::body) is empty from then on.
    pub fn release_body(&mut self) {
        self.message.payload = Bytes::new();
    }

    /// When it was taken off the subscription, by this process's clock.
    pub fn received_at(&self) -> Instant {
        self.received
    }

    /// The id of the rng batch whose numbers these are (a hasher's origin, or rng's own id),
    /// from the headers, which are informative: the body alone is authoritative.
    pub fn origin(&self) -> Option<String> {
        let headers = BatchHeaders::from_header_map(self.message.headers.as_ref()?)?;
        Some(headers.origin.unwrap_or(headers.batch))
    }

    /// The instance that says it sent this batch (`Chocominer-Instance`): for logs, not trusted.
    pub fn sender(&self) -> Option<String> {
        header(&self.message, HEADER_INSTANCE).map(str::to_owned)
    }

    /// How long its sender waits for the answer (`Chocominer-Ttl-Ms`), if it says.
    pub fn ttl(&self) -> Option<Duration> {
        parse_ttl(header(&self.message, HEADER_TTL_MS)?)
    }

    /// When the sender (about) gives up on this batch: its time to live from its arrival, less
    /// a tenth for the wire and its [`late_by`](Self::late_by). `None` without a time to live,
    /// or with one too long for the clock.
    pub fn deadline(&self) -> Option<Instant> {
        let ttl = self.ttl()?;
        let left = (ttl - ttl / 10).checked_sub(self.late).unwrap_or_default();
        self.received.checked_add(left)
    }

    /// How much longer than its sender's transit baseline this one took to get here: a wait
    /// this process's clock did not see, such as a freeze (the `transit` module).
    pub fn late_by(&self) -> Duration {
        self.late
    }

    /// Whether the [`deadline`](Self::deadline) has passed: finishing it now would count it
    /// twice, lost and done.
    pub fn expired(&self) -> bool {
        self.deadline()
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Whether its answer can still reach its sender: the connection it came on is still up.
    /// Checked before the work the answer confirms; if not, [drop](Self::drop_unanswerable) it.
    pub fn answerable(&self) -> bool {
        let client = &self.shared.client;
        client.connection_state() == State::Connected && session(client) == self.session
    }

    /// Drops a batch whose answer could not reach its sender: counted as expired, not answered.
    pub fn drop_unanswerable(self) {
        self.drop_unanswered(
            "dropped a batch that came before the NATS connection broke: its answer cannot \
             reach its sender, which counts it lost",
        );
    }

    /// Acknowledges the batch: it has been handed on or recorded.
    pub async fn ack(mut self) {
        self.note_transit();
        self.answer(None).await;
    }

    /// Notes the transit figure of a proven batch (never of a message refused as malformed).
    fn note_transit(&mut self) {
        if let Some(seen) = self.seen.take() {
            let mut transit = self.shared.transit.lock().unwrap();
            let sender = header(&self.message, HEADER_INSTANCE).unwrap_or("");
            transit.note(sender, seen, self.received);
        }
    }

    /// Refuses a message, malformed or unfit to take (too costly to hash): counted as rejected,
    /// answered with a service error.
    pub async fn refuse(self, why: impl std::fmt::Display) {
        let shared = &self.shared;
        shared.stats.rejected.add(1);
        if let Some(left_out) = shared.reject_log.admit() {
            tracing::warn!(
                stage = %shared.identity.stage,
                subject = %self.message.subject,
                bytes = self.message.payload.len(),
                rejected_total = shared.stats.rejected.total(),
                similar_left_out = left_out,
                "refused a message: {why}"
            );
        }
        self.answer(Some((400, why.to_string()))).await;
    }

    /// Gives the batch back unprocessed, because this stage cannot hand it on now: its sender
    /// holds it and waits (service error 503). Not counted as rejected.
    pub async fn turn_away(self, why: impl std::fmt::Display) {
        self.answer(Some((TURNED_AWAY, why.to_string()))).await;
    }

    /// Drops a batch its sender counts as lost, or will before it could be finished: counted as
    /// expired, not answered.
    pub fn drop_expired(mut self) {
        self.note_transit();
        self.drop_unanswered(
            "dropped a batch its sender counts as lost (it could not be finished here in time)",
        );
    }

    fn drop_unanswered(self, why: &str) {
        let shared = &self.shared;
        shared.stats.expired.add(1);
        if let Some(left_out) = shared.reject_log.admit() {
            tracing::warn!(
                stage = %shared.identity.stage,
                waited = ?self.received.elapsed(),
                late_on_arrival = ?self.late,
                expired_total = shared.stats.expired.total(),
                similar_left_out = left_out,
                "{why}"
            );
        }
    }

    /// Tallies the batch for `$SRV.STATS` (a batch turned away is no error) and answers it, if
    /// asked, with the service error `(code, status)` if any, naming it as it named itself
    /// (`Chocominer-Batch`): its sender takes nothing else as an answer.
    async fn answer(self, error: Option<(usize, String)>) {
        let mut headers = HeaderMap::new();
        if let Some((code, status)) = &error {
            headers.insert(NATS_SERVICE_ERROR, status.as_str());
            headers.insert(NATS_SERVICE_ERROR_CODE, code.to_string().as_str());
        }
        let error = error
            .filter(|(code, _)| *code != TURNED_AWAY)
            .map(|(code, status)| async_nats::service::error::Error { status, code });
        self.shared.identity.tally(self.received.elapsed(), error);
        let Some(reply) = self.message.reply.clone() else {
            return;
        };
        if let Some(batch) = header(&self.message, HEADER_BATCH) {
            headers.insert(HEADER_BATCH, batch);
        }
        let client = &self.shared.client;
        let sent = if headers.is_empty() {
            client.publish(reply, Bytes::new()).await
        } else {
            client
                .publish_with_headers(reply, headers, Bytes::new())
                .await
        };
        if let Err(e) = sent {
            tracing::warn!("could not answer a batch: {e}");
        }
    }
}

pub(crate) fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    Some(message.headers.as_ref()?.get(name)?.as_str())
}
