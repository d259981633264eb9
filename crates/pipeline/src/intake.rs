//! Taking batches in: the input side of a stage, as [`sender`](crate::sender) is its output
//! side. A stage's input subject is consumed in the stage's queue group, and the stage is
//! announced as a NATS service.
//!
//! NATS hands each batch to one replica of the queue group, so scaling a stage is starting
//! replicas. Each replica also answers the NATS service protocol ([`crate::service`], on a
//! connection of its own), so `nats micro ls|info|stats hasher` shows every replica with its
//! request count and processing time, and `chocominer status` counts them by
//! `$SRV.PING.<stage>`.
//!
//! NATS picks one *subscription* of the group at random for each batch, not the replica with
//! the least to do, so with several replicas some sit idle while others have a queue (with 10
//! demo hashers behind rng's window of 32, 15 % of the hashing went that way). A replica given
//! a [`capacity`](IntakeConfig::capacity) therefore makes extra subscriptions in the group while it
//! holds fewer batches than that: [`EXTRA_SUBSCRIPTIONS`] per batch short, each one the server
//! ends after one batch. An idle replica is then several times likelier to get the next batch
//! than a busy one, whose only subscription is its own. Extra subscriptions are never withdrawn (a
//! subscription ended by the client loses the batch the server may already be sending it);
//! they are only not renewed, and each takes one batch at most.
//!
//! Every batch taken in is settled once (what its sender makes of each: the sender module's *A
//! batch's life*), through its [`Incoming`]: acknowledged, refused as
//! malformed, turned away (the stage cannot hand it on now), or dropped without an answer
//! because its sender has already counted it as lost — or will, because the answer cannot
//! reach it: an answer may only go out on the NATS connection the batch came on (the server
//! lets a receiver answer a request it delivered, once; a server restarted, or another node of
//! a cluster, knows nothing of it and refuses the answer). So a batch that came before the
//! connection broke is not worked on after: its sender counts it lost, and it is not judged
//! too. The intake reads the batch's headers
//! and counts what it refused or dropped in [`IntakeStats`], which the stage's meter reads.
//!
//! Stopping without losing batches on their way to the replica: async-nats's endpoint can only
//! unsubscribe, and its `drain` (0.51) forgets the subscription before the server has
//! confirmed, so batches the server already sent are dropped by the client. This intake
//! instead asks the server to auto-unsubscribe after [`STOP_FENCE`] more batches than it has
//! received: server and client count the same messages, so the subscription ends exactly
//! when the last batch the server sends has arrived — none in transit is dropped. It takes at
//! most that many new batches after the stop (and finishes them), and one more per extra
//! subscription left; if traffic has stopped instead, it ends after a quiet period, once a
//! round trip to the server has flushed the wire. The quiet period starts only once every
//! batch taken in is settled: until then an answer of ours can make a sender send again, and
//! a batch the server routes here just as the subscription ends client-side would be lost.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use async_nats::connection::State;
use async_nats::{Client, HeaderMap, Message, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{SelectAll, Stream};
use tokio::sync::Notify;

use crate::codec::{
    BatchHeaders, HEADER_BATCH, HEADER_INSTANCE, HEADER_SENT_MS, HEADER_TTL_MS, parse_sent_at,
    parse_ttl,
};
use crate::service::{Identity, Service};
use crate::stats::Counter;
use crate::transit::{Seen, Transit};
use chocominer_model::Stage;
use chocominer_process::Shutdown;
use chocominer_process::Throttle;
use chocominer_process::{Connector, round_trip};

/// Header naming a service error, as the NATS service protocol does.
pub use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};

/// The service error code of a receiver that cannot take a batch now but may later (its own
/// next stage is gone): the sender holds the batch and waits, as for "no responders".
pub(crate) const TURNED_AWAY: u16 = 503;

/// Batches a stopping replica may still take after the stop: more than can be in transit to
/// it, few enough to finish quickly (32 demo hashes take about 3 s).
pub const STOP_FENCE: u64 = 32;
/// With nothing unsettled and no batch for this long after the fence, traffic has stopped: the
/// intake ends.
const QUIET: Duration = Duration::from_millis(250);
/// Extra subscriptions in the queue group a replica makes per batch it is short of its capacity.
/// Measured with 8 and 10 demo hashers (issue 11's bench) and a model of the routing: 2 gives
/// 98 % of what the hashers can do, against 85-87 % with none; more only adds subscriptions.
pub const EXTRA_SUBSCRIPTIONS: usize = 2;

/// Where a stage takes its batches from.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// The stage taking the batches: its queue group and service name.
    pub stage: Stage,
    /// Subject the batches come on.
    pub subject: String,
    /// This instance, in the service's metadata.
    pub instance: String,
    /// How to open the connection the replica answers the service protocol on (see
    /// the `service` module for why it is not the batches' own).
    pub service: Connector,
    /// How many batches the replica can hold without keeping any waiting long (a hasher: one
    /// per hashing slot, and a little more so the next is at hand): while it holds fewer, it
    /// makes extra subscriptions in its queue group (see the module docs). `None`: its own
    /// subscription only.
    pub capacity: Option<usize>,
}

/// Batches taken in and not worked on, counted in batches.
#[derive(Debug, Default)]
pub struct IntakeStats {
    /// Messages refused: malformed, or unfit to take (a batch too costly to hash).
    pub rejected: Counter,
    /// Batches dropped because their sender had counted them as lost, or would have before
    /// they could be finished.
    pub expired: Counter,
}

/// Receives the batches; see the module docs.
pub struct Intake {
    /// The replica's own subscription in the queue group and its extra ones.
    batches: SelectAll<Member>,
    /// Batches received from the replica's own subscription so far (what the server counts too).
    received: u64,
    /// See [`IntakeConfig::capacity`].
    capacity: Option<usize>,
    /// Extra subscriptions made and not yet used (each takes one batch).
    extra_subscriptions: usize,
    state: IntakeState,
    /// Batches taken off the subscription while stopping, not yet handed out.
    held: VecDeque<Message>,
    shared: Arc<Shared>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntakeState {
    Running,
    Stopping,
    Done,
}

/// A subscription in the stage's queue group: the replica's own, or an extra one that ends
/// after one batch.
struct Member {
    subscription: Subscriber,
    own: bool,
}

impl Stream for Member {
    /// The batch, and whether it came through the replica's own subscription.
    type Item = (bool, Message);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let own = self.own;
        self.subscription
            .poll_next_unpin(cx)
            .map(|message| message.map(|m| (own, m)))
    }
}

/// Batches taken in and not yet settled: what the replica holds.
#[derive(Debug, Default)]
struct Holding {
    batches: AtomicUsize,
    /// One was settled: the intake may make extra subscriptions again.
    settled: Notify,
}

/// One batch held, from its arrival until it is settled (dropped).
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

/// What answering a batch needs; shared with every [`Incoming`], which may be answered from
/// any task.
struct Shared {
    client: Client,
    identity: Arc<Identity>,
    stats: Arc<IntakeStats>,
    /// The answerer of the service protocol.
    service: Service,
    /// For refused and dropped batches alike.
    reject_log: Throttle,
    holding: Arc<Holding>,
    /// How long batches took to get here, by their senders' clocks: read as each arrives,
    /// noted as each proves to be a batch.
    transit: Mutex<Transit>,
}

/// A connection to NATS, as the server knows it: the server's id (new at every start) and the
/// client's id there.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    server: String,
    client: u64,
}

impl Session {
    fn of(client: &Client) -> Session {
        let info = client.server_info();
        Session {
            server: info.server_id,
            client: info.client_id,
        }
    }
}

/// One batch taken in. Settle it once (each way takes it): [`ack`](Self::ack),
/// [`refuse`](Self::refuse), [`turn_away`](Self::turn_away),
/// [`drop_expired`](Self::drop_expired) or [`drop_unanswerable`](Self::drop_unanswerable).
pub struct Incoming {
    message: Message,
    received: Instant,
    /// The connection it came on.
    session: Session,
    /// How much longer than its sender's transit baseline it took to get here (a wait this
    /// process's clock did not see, such as a freeze).
    late: Duration,
    /// Its transit figure, noted (under the sender its headers name) once it proves to be a
    /// batch.
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
        let id = client
            .new_inbox()
            .rsplit('.')
            .next()
            .unwrap_or("0")
            .to_owned();
        let batches = client
            .queue_subscribe(subject.clone(), stage.queue_group().to_owned())
            .await?;
        // The server has the queue subscription before the replica answers `$SRV` (which is
        // how tests and `chocominer status` learn it is there), and before it says it is ready.
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

    /// The batches refused or dropped, for the stage's meter and report.
    pub fn stats(&self) -> Arc<IntakeStats> {
        self.shared.stats.clone()
    }

    /// Sets the stage's own figures in this replica's `$SRV.STATS` answer (none until then).
    /// Set after the start because they come from the stage's meter, which reads the intake's
    /// [`stats`](Self::stats); only the first call counts.
    pub fn set_stats_data(&self, data: impl Fn() -> serde_json::Value + Send + Sync + 'static) {
        let _ = self.shared.identity.stats_data.set(Box::new(data));
    }

    /// The next batch. Once `stop` fires, stops taking new ones and returns those already
    /// delivered or on their way, then `None`.
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
        if let Some(message) = self.held.pop_front() {
            return Some(self.incoming(message));
        }
        if self.state == IntakeState::Done {
            return None;
        }
        // Traffic has stopped once nothing taken in is unsettled (answering one lets its sender
        // send again, perhaps to us) and no batch has come for QUIET since.
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
                // Every subscription reached its fence and ended.
                Ok(None) => {
                    self.state = IntakeState::Done;
                    None
                }
                // Whatever the server sent before the fence has arrived.
                Err(_) => {
                    self.state = IntakeState::Done;
                    for member in self.batches.iter_mut() {
                        let _ = member.subscription.unsubscribe().await;
                    }
                    None
                }
            };
        }
    }

    /// Counts a batch off the subscription it came through.
    fn taken(&mut self, own: bool, message: Message) -> Incoming {
        if own {
            self.received += 1;
        } else {
            self.extra_subscriptions = self.extra_subscriptions.saturating_sub(1);
        }
        self.incoming(message)
    }

    /// Makes extra subscriptions in the queue group, up to [`EXTRA_SUBSCRIPTIONS`] per batch the
    /// replica is short of its capacity (see the module docs). One that cannot be made is not:
    /// the replica still has its own.
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

    fn incoming(&mut self, message: Message) -> Incoming {
        let received = Instant::now();
        let seen = message.headers.as_ref().and_then(|headers| {
            let sent = parse_sent_at(headers.get(HEADER_SENT_MS)?.as_str())?;
            Some(Seen::new(sent, SystemTime::now()))
        });
        let late = seen.map_or(Duration::ZERO, |seen| {
            let transit = self.shared.transit.lock().unwrap();
            transit.late_by(claimed_sender(&message), seen)
        });
        Incoming {
            message,
            received,
            session: Session::of(&self.shared.client),
            late,
            seen,
            _held: Held::new(&self.shared.holding),
            shared: self.shared.clone(),
        }
    }

    async fn begin_stop(&mut self) {
        use futures::FutureExt;
        self.state = IntakeState::Stopping;
        // Take what has already arrived, so the fence counts from an exact figure.
        while let Some(Some((own, message))) = self.batches.next().now_or_never() {
            if own {
                self.received += 1;
            }
            self.held.push_back(message);
        }
        // Extra subscriptions end after their one batch anyway: only the replica's own needs a
        // fence.
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
    /// The encoded batch.
    pub fn body(&self) -> &[u8] {
        &self.message.payload
    }

    /// Lets go of the encoded batch once it is no longer needed (its numbers copied on), so a
    /// batch waiting to be answered does not keep it in memory; [`body`](Self::body) is empty
    /// from then on.
    pub fn release_body(&mut self) {
        self.message.payload = Bytes::new();
    }

    /// When it was taken off the subscription, by this process's clock.
    pub fn received_at(&self) -> Instant {
        self.received
    }

    /// The id of the rng batch whose numbers these are, from the headers: the origin a hasher
    /// names, or, for a batch straight from rng, its own id. `None` without the headers (they
    /// are informative; the body alone is authoritative).
    pub fn origin(&self) -> Option<String> {
        let headers = BatchHeaders::from_header_map(self.message.headers.as_ref()?)?;
        Some(headers.origin.unwrap_or(headers.batch))
    }

    /// The instance that says it sent this batch (`Chocominer-Instance`), if it says: for log
    /// lines, not to be trusted.
    pub fn sender(&self) -> Option<String> {
        let headers = self.message.headers.as_ref()?;
        Some(headers.get(HEADER_INSTANCE)?.as_str().to_owned())
    }

    /// How long its sender waits for the answer before counting the batch as lost
    /// (`Chocominer-Ttl-Ms`); `None` without the header (e.g. a hand-made request).
    pub fn ttl(&self) -> Option<Duration> {
        let ttl = self.message.headers.as_ref()?.get(HEADER_TTL_MS)?;
        parse_ttl(ttl.as_str())
    }

    /// When the sender (about) gives up on this batch: its time to live from its arrival
    /// here, less a margin for the time on the wire, less the time it waited on its way
    /// beyond what its sender's batches usually take (read from `Chocominer-Sent-Ms`, see
    /// the `transit` module: a batch that reached a frozen replica is stale when the
    /// replica thaws). From then on it is [`expired`](Self::expired); work that cannot be
    /// done by then is wasted. `None` without a time to live, or with one too long for the
    /// clock (it comes from the message).
    pub fn deadline(&self) -> Option<Instant> {
        let ttl = self.ttl()?;
        // A tenth of it is the margin for the wire: the receiver gives up first.
        let left = (ttl - ttl / 10).checked_sub(self.late).unwrap_or_default();
        self.received.checked_add(left)
    }

    /// How much longer than its sender's transit baseline (its shortest recent transits) this one
    /// took to get here.
    pub fn late_by(&self) -> Duration {
        self.late
    }

    /// Whether the sender has (about) given up on this batch: it counts a batch as lost once
    /// its `Chocominer-Ttl-Ms` has passed, so finishing it now would count it twice (lost and
    /// done). See [`deadline`](Self::deadline).
    pub fn expired(&self) -> bool {
        self.deadline()
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Whether its answer can still reach its sender: the connection it came on is still the
    /// one this stage is connected with (see the module docs). Checked before the work that
    /// the answer confirms (handing on, judging): a batch that is not must be
    /// [dropped](Self::drop_unanswerable).
    pub fn answerable(&self) -> bool {
        let client = &self.shared.client;
        client.connection_state() == State::Connected && Session::of(client) == self.session
    }

    /// Drops a batch whose answer could not reach its sender (see
    /// [`answerable`](Self::answerable)): its sender counts it lost. Counted as expired,
    /// logged (rate-limited), not answered.
    pub fn drop_unanswerable(self) {
        self.drop_unanswered(
            "dropped a batch that came before the NATS connection broke: its answer cannot \
             reach its sender, which counts it lost",
        );
    }

    /// Acknowledges the batch: it has been handed on or recorded.
    pub async fn ack(mut self) {
        self.note_transit();
        self.answer(HeaderMap::new(), None).await;
    }

    /// Notes the batch's transit figure: it has proved to be a batch, taken or found stale
    /// (see the `transit` module; a message refused as malformed is never noted).
    fn note_transit(&mut self) {
        if let Some(seen) = self.seen.take() {
            let mut transit = self.shared.transit.lock().unwrap();
            transit.note(claimed_sender(&self.message), seen, self.received);
        }
    }

    /// Refuses a message, malformed or otherwise unfit to take (a batch too costly to hash):
    /// counts it as rejected, logs it (rate-limited) and answers the sender with a service
    /// error, if it asked for an answer.
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
        let error = async_nats::service::error::Error {
            status: why.to_string(),
            code: 400,
        };
        let mut headers = HeaderMap::new();
        headers.insert(NATS_SERVICE_ERROR, error.status.as_str());
        headers.insert(NATS_SERVICE_ERROR_CODE, "400");
        self.answer(headers, Some(error)).await;
    }

    /// Gives the batch back to its sender unprocessed, because this stage cannot hand it on
    /// now (its own next stage is gone): a service error with the code the sender reads as
    /// "turned away", on which it holds the batch and waits, as for "no responders". Not a
    /// malformed message: not counted as rejected.
    pub async fn turn_away(self, why: impl std::fmt::Display) {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_SERVICE_ERROR, why.to_string().as_str());
        headers.insert(NATS_SERVICE_ERROR_CODE, TURNED_AWAY.to_string().as_str());
        self.answer(headers, None).await;
    }

    /// Drops a batch its sender has counted as lost (see [`expired`](Self::expired)), or will
    /// have before the batch could be finished: counted as expired, logged (rate-limited), not
    /// answered.
    pub fn drop_expired(mut self) {
        self.note_transit();
        self.drop_unanswered(
            "dropped a batch its sender counts as lost (it could not be finished here in time)",
        );
    }

    /// Counts a batch dropped without an answer as expired and says why (rate-limited).
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

    /// Tallies the batch for `$SRV.STATS` and answers it, if its sender asked for an answer.
    /// Every answer names the batch it settles (`Chocominer-Batch`, as the batch named itself):
    /// its sender takes nothing else as one, so a message that merely reaches its reply inbox
    /// (a service reply turned there by someone else's request) settles no batch.
    async fn answer(
        self,
        mut headers: HeaderMap,
        error: Option<async_nats::service::error::Error>,
    ) {
        self.shared.identity.tally(self.received.elapsed(), error);
        let Some(reply) = self.message.reply else {
            return;
        };
        if let Some(batch) = self
            .message
            .headers
            .as_ref()
            .and_then(|h| h.get(HEADER_BATCH))
        {
            headers.insert(HEADER_BATCH, batch.as_str());
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

/// The sender a message names (`Chocominer-Instance`), empty if none: borrowed, as a transit
/// figure is looked up for every batch and its name copied only for a sender new to it.
fn claimed_sender(message: &Message) -> &str {
    message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(HEADER_INSTANCE))
        .map_or("", |value| value.as_str())
}
