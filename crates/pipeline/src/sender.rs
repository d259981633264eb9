//! Sending batches to the next stage: the output side of a stage, as [`intake`](crate::intake)
//! is its input side.
//!
//! Each batch is published with the reply subject `<inbox>.<seq>` on the sender's own inbox
//! subscription (not `Client::request`, whose entries stay in the client's reply map when no
//! reply comes); at most `max_in_flight` are unacknowledged (the window). The rules and their
//! reasons (an answer names its batch, anything else is stray): docs/architecture.md.
//!
//! # A batch's life
//!
//! The one place that says how a batch ends. Seen from its sender:
//!
//! ```text
//!                 a credit in the window
//!   made ───────────────────────────────► in flight ──── answer naming it: ack ──► ACKNOWLEDGED
//!                                          │  ▲  │
//!    "no responders", or turned away (503) │  │  ├── answer naming it: refused ────► REFUSED
//!                                          ▼  │  │   (malformed, too costly)         (counted lost)
//!                                     waiting ┘  │
//!              resent every PROBE_EVERY (the     └── no answer within ack_timeout ──► LOST, once
//!              oldest); all resent at the first      (out of the window at once;       LATE_GRACE
//!              ack of a batch sent since             an ack within LATE_GRACE          has passed
//!                                                    makes it ACKNOWLEDGED)
//!   waiting or unpublishable when the sender stops ─────────────────────────────────► LOST
//! ```
//!
//! A batch ends three ways, counted in [`SenderStats`]: acknowledged (`acked`, and `late` too
//! when after its ack timeout), refused or lost (both in `lost` and `lost_batches`). Waiting is
//! no end: the batch goes out again. The receiver's endings map onto these: it acknowledges
//! (handed on, or judged), refuses (malformed, or costlier to hash than its time to live or the
//! hasher's ack timeout), turns it away or gives it back unhashed at a stop (it waits), or
//! drops it unanswered once its sender has given up on it (expired: lost here).
//!
//! The time settings along that path, and what each bounds:
//!
//! | setting | value | bounds |
//! | --- | --- | --- |
//! | `ACK_TIMEOUT_MS` (`ack_timeout`) | demo 10 s, full 5 s | how long a batch stays in the window unanswered; sent as its time to live (`Chocominer-Ttl-Ms`), of which a receiver keeps nine tenths (the rest is the wire's); on a hasher also the most one batch may cost to hash |
//! | [`LATE_GRACE`] | 5 s | how long after that an answer still counts it acknowledged, not lost |
//! | `PROBE_EVERY` | 500 ms | how often a sender with waiting batches tries again |
//! | transit `PERIOD` | 10 s | how long a sender's transit baseline (its shortest recent transits) is kept, against which lateness (a frozen receiver) is measured |
//! | intake `QUIET` | 250 ms | after the stop fence, how long without a batch (and with none unsettled) before the intake ends |
//! | hasher `STOP_GRACE` | 10 s | how long a stopping hasher keeps hashing; what cannot be finished by then is given back |
//!
//! No other time decides what becomes of a batch: the other durations in the code pace the
//! demo's hashing, retry the connection to NATS, write the stats and space out log lines.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use async_nats::{Client, HeaderMap, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::intake::{TURNED_AWAY, header};
use crate::stats::Counter;
use chocominer_codec::{
    BatchHeaders, HEADER_BATCH, HEADER_SENT_MS, HEADER_TTL_MS, batch_id, format_sent_at, format_ttl,
};
use chocominer_model::Stage;
use chocominer_process::{Shutdown, Throttle};

/// How often a waiting sender resends its oldest waiting batch, to see if a consumer is back.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// How long after its `ack_timeout` an acknowledgement still counts a batch delivered, not lost:
/// one kept in a client while its NATS connection was mended, or read late by a frozen sender.
pub const LATE_GRACE: Duration = Duration::from_secs(5);

/// Where a stage sends its batches, and how many may be unacknowledged.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub subject: String,
    /// The stage that consumes it (for messages).
    pub target: Stage,
    /// This instance, named in every batch's headers.
    pub instance: String,
    pub max_in_flight: usize,
    /// How long a batch may wait for its acknowledgement; sent along as its time to live.
    pub ack_timeout: Duration,
}

/// What happened to the batches sent, in numbers and batches.
#[derive(Debug, Default)]
pub struct SenderStats {
    pub sent: Counter,
    pub acked: Counter,
    pub lost: Counter,
    pub lost_batches: Counter,
    /// Batches acknowledged after their `ack_timeout`, within [`LATE_GRACE`] (also in `acked`).
    pub late: Counter,
    /// Times the sender started waiting for a consumer.
    pub waits: Counter,
    /// Messages on the reply inbox that named no batch of this sender.
    pub stray: Counter,
    in_flight: AtomicUsize,
    waiting: AtomicUsize,
    window: usize,
}

impl SenderStats {
    /// Batches sent and not yet settled, waiting ones included.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Batches nobody could take, waiting until a consumer is back.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The most batches that may be in flight.
    pub fn window(&self) -> usize {
        self.window
    }
}

/// Shutdown came while waiting; nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped before the batch could be sent")]
pub struct Stopped;

/// Nobody downstream can take a batch now, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoConsumer(String);

/// A batch sent and not yet settled.
struct Pending {
    count: u64,
    /// `Some(deadline)` while on its way; `None` while waiting because nobody could take it.
    deadline: Option<Instant>,
    /// When it was last put on its way.
    sent_at: Instant,
    headers: HeaderMap,
    body: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// The wait for a consumer, from the first batch nobody took to the first acknowledgement.
#[derive(Default)]
struct ConsumerWait {
    /// Since when no new batch is sent. Only the acknowledgement of a batch sent since ends
    /// it: a stopping replica still acknowledges batches it took before it left.
    waiting: Option<Instant>,
    /// When the wait was logged; the resumption is logged once too.
    announced: Option<Instant>,
    why: String,
    next_probe: Option<Instant>,
}

struct Shared {
    client: Client,
    inbox: String,
    config: SenderConfig,
    pending: Mutex<BTreeMap<u64, Pending>>,
    /// Batches past their `ack_timeout`, out of the window: their size, and when they are
    /// counted lost unless acknowledged first.
    overdue: Mutex<BTreeMap<u64, (u64, Instant)>>,
    consumer_wait: Mutex<ConsumerWait>,
    stats: Arc<SenderStats>,
    /// A batch settled, or the wait began or ended.
    changed: Notify,
    /// A consumer is back: the timer task resends what waits at once.
    resend_now: Notify,
    loss_log: Throttle,
    late_log: Throttle,
    stray_log: Throttle,
}

enum Answer {
    Acked,
    /// Not delivered (no replica at all): it waits for a consumer.
    NobodyTook(String),
    /// Given back by a replica that cannot take it now: it waits too, but a replica is there.
    TurnedAway(String),
    Refused(String),
}

impl Shared {
    /// Takes a batch out of the window, if it is still there.
    fn take(&self, seq: u64) -> Option<Pending> {
        let pending = self.pending.lock().unwrap().remove(&seq)?;
        if pending.deadline.is_none() {
            self.stats.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.changed.notify_waiters();
        Some(pending)
    }

    fn count_lost(&self, batches: u64, numbers: u64, why: &str) {
        self.stats.lost.add(numbers);
        self.stats.lost_batches.add(batches);
        if let Some(left_out) = self.loss_log.admit() {
            tracing::warn!(
                to = %self.config.target,
                subject = %self.config.subject,
                batches,
                numbers,
                lost_total = self.stats.lost.total(),
                similar_left_out = left_out,
                "batches lost: {why}"
            );
        }
    }

    /// Moves the batches `seqs` still pending out of the window, to be counted lost after
    /// [`LATE_GRACE`] unless acknowledged first.
    fn overdue(&self, seqs: Vec<u64>) {
        let lost_at = Instant::now() + LATE_GRACE;
        // Locked across the move (before `pending`, as in `close`): a batch is always in one.
        let mut overdue = self.overdue.lock().unwrap();
        for seq in seqs {
            if let Some(Pending { count, .. }) = self.take(seq) {
                overdue.insert(seq, (count, lost_at));
            }
        }
    }

    fn take_overdue(&self, seq: u64) -> Option<u64> {
        let (count, _) = self.overdue.lock().unwrap().remove(&seq)?;
        self.changed.notify_waiters();
        Some(count)
    }

    /// Counts the overdue batches whose grace is over by `now` (`None`: all) as lost.
    fn lose_overdue(&self, now: Option<Instant>) {
        let (mut batches, mut numbers) = (0, 0);
        self.overdue.lock().unwrap().retain(|_, (count, lost_at)| {
            let keep = now.is_some_and(|now| *lost_at > now);
            if !keep {
                batches += 1;
                numbers += *count;
            }
            keep
        });
        if batches > 0 {
            self.changed.notify_waiters();
            let why = format!(
                "no acknowledgement from {} within {:?} (and {LATE_GRACE:?} more)",
                self.config.target, self.config.ack_timeout
            );
            self.count_lost(batches, numbers, &why);
        }
    }

    fn stray(&self, message: &async_nats::Message) {
        self.stats.stray.add(1);
        if let Some(left_out) = self.stray_log.admit() {
            tracing::warn!(
                from = %self.config.target,
                subject = %message.subject,
                bytes = message.payload.len(),
                stray_total = self.stats.stray.total(),
                similar_left_out = left_out,
                "ignored a message on the reply inbox that names no batch sent here (someone \
                 else's request may have named this inbox as its reply subject)"
            );
        }
    }

    fn acked_late(&self, seq: u64, count: u64) {
        self.stats.acked.add(count);
        self.stats.late.add(1);
        if let Some(left_out) = self.late_log.admit() {
            tracing::info!(
                seq,
                numbers = count,
                late_total = self.stats.late.total(),
                similar_left_out = left_out,
                "a {} acknowledged a batch after {:?}: counted delivered, not lost",
                self.config.target,
                self.config.ack_timeout
            );
        }
    }

    /// The pending batches that match `filter`, oldest first.
    fn seqs_where(&self, filter: impl Fn(&Pending) -> bool) -> Vec<u64> {
        let pending = self.pending.lock().unwrap();
        pending
            .iter()
            .filter(|(_, batch)| filter(batch))
            .map(|(seq, _)| *seq)
            .collect()
    }

    fn is_waiting(&self) -> bool {
        self.consumer_wait.lock().unwrap().waiting.is_some()
    }

    /// A batch on its way came back untaken: it waits for a consumer (logged once per wait).
    /// `turned_away`: a replica gave it back, so the advice is not to start one.
    fn wait_for_consumer(&self, seq: u64, why: String, turned_away: bool) {
        {
            let mut pending = self.pending.lock().unwrap();
            let Some(batch) = pending.get_mut(&seq) else {
                return;
            };
            if batch.deadline.take().is_some() {
                self.stats.waiting.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut consumer_wait = self.consumer_wait.lock().unwrap();
        if consumer_wait.waiting.is_none() {
            consumer_wait.waiting = Some(Instant::now());
            consumer_wait.next_probe = Some(Instant::now() + PROBE_EVERY);
            self.changed.notify_waiters();
        }
        if consumer_wait.announced.is_none() {
            consumer_wait.announced = Some(Instant::now());
            self.stats.waits.add(1);
            let target = self.config.target;
            let until = if turned_away {
                format!("until a {target} takes them")
            } else {
                format!("for a {target} (start one, e.g. `just scale {target} 1`)")
            };
            tracing::warn!(subject = %self.config.subject, "{why}: the batches wait {until}");
        }
        consumer_wait.why = why;
    }

    /// A batch sent at `sent_at` was acknowledged: ends a wait begun before then (logged once).
    fn consumer_seen(&self, sent_at: Instant) {
        let mut consumer_wait = self.consumer_wait.lock().unwrap();
        if consumer_wait.waiting.is_some_and(|since| sent_at < since) {
            return;
        }
        let was_waiting = consumer_wait.waiting.take().is_some();
        if let Some(since) = consumer_wait.announced.take() {
            tracing::info!(
                waited = ?since.elapsed(),
                waiting = self.stats.waiting(),
                "a {} took a batch: resuming",
                self.config.target
            );
        }
        if was_waiting {
            self.changed.notify_waiters();
            self.resend_now.notify_one();
        }
    }

    /// Puts a batch on its way again, if it still waits.
    async fn resend(&self, seq: u64) {
        let (headers, body) = {
            let mut pending = self.pending.lock().unwrap();
            let Some(batch) = pending.get_mut(&seq).filter(|b| b.deadline.is_none()) else {
                return;
            };
            self.stats.waiting.fetch_sub(1, Ordering::Relaxed);
            batch.sent_at = Instant::now();
            batch.deadline = Some(batch.sent_at + self.config.ack_timeout);
            // Its time to live counts from now for the receiver too.
            let sent_at = format_sent_at(SystemTime::now());
            batch.headers.insert(HEADER_SENT_MS, sent_at.as_str());
            (batch.headers.clone(), batch.body.clone())
        };
        self.transmit(seq, headers, body).await;
    }

    /// Publishes a batch of the window; one that cannot even be published is lost.
    async fn transmit(&self, seq: u64, headers: HeaderMap, body: Bytes) {
        let reply = format!("{}.{seq}", self.inbox);
        let published = self
            .client
            .publish_with_reply_and_headers(self.config.subject.clone(), reply, headers, body)
            .await;
        if let Err(err) = published
            && let Some(pending) = self.take(seq)
        {
            self.count_lost(1, pending.count, &format!("could not publish: {err}"));
        }
    }
}

/// Sends batches to one subject; see the module docs.
pub struct Sender {
    window: Arc<Semaphore>,
    shared: Arc<Shared>,
    next_seq: AtomicU64,
    /// `receive_replies` and `expire_and_resend`, ended by `close` or the drop.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Room for one batch in the window, with its sequence number; spent by [`send`](Credit::send).
pub struct Credit<'a> {
    sender: &'a Sender,
    seq: u64,
    permit: OwnedSemaphorePermit,
}

impl Sender {
    /// Subscribes to the replies and starts the tasks.
    pub async fn start(client: Client, config: SenderConfig) -> anyhow::Result<Sender> {
        let inbox = client.new_inbox();
        let replies = client.subscribe(format!("{inbox}.*")).await?;
        let window = config.max_in_flight.max(1);
        let shared = Arc::new(Shared {
            client,
            inbox,
            pending: Mutex::new(BTreeMap::new()),
            overdue: Mutex::new(BTreeMap::new()),
            consumer_wait: Mutex::default(),
            stats: Arc::new(SenderStats {
                window,
                ..Default::default()
            }),
            changed: Notify::new(),
            resend_now: Notify::new(),
            loss_log: Throttle::default(),
            late_log: Throttle::default(),
            stray_log: Throttle::default(),
            config,
        });
        let tasks = vec![
            tokio::spawn(receive_replies(replies, shared.clone())),
            tokio::spawn(expire_and_resend(shared.clone())),
        ];
        Ok(Sender {
            window: Arc::new(Semaphore::new(window)),
            shared,
            next_seq: AtomicU64::new(1),
            tasks: Mutex::new(tasks),
        })
    }

    pub fn stats(&self) -> Arc<SenderStats> {
        self.shared.stats.clone()
    }

    pub fn is_waiting(&self) -> bool {
        self.shared.is_waiting()
    }

    /// For a new batch (rng's): waits until a consumer is there and the window has room, or
    /// `stop` fires.
    pub async fn reserve(&self, stop: &Shutdown) -> Result<Credit<'_>, Stopped> {
        loop {
            let changed = self.shared.changed.notified();
            if !self.shared.is_waiting() {
                break;
            }
            tokio::select! {
                _ = changed => {}
                _ = stop.triggered() => return Err(Stopped),
            }
        }
        let permit = tokio::select! {
            permit = self.window.clone().acquire_owned() => permit.expect("window is never closed"),
            _ = stop.triggered() => return Err(Stopped),
        };
        Ok(self.credit(permit))
    }

    /// For a batch taken from upstream (the hasher's): while nobody downstream takes batches,
    /// [`NoConsumer`] at once, so the caller can turn its batch away instead of sitting on it.
    /// Room in the window comes as acknowledgements arrive or time out: no stop signal needed.
    pub async fn reserve_unless_waiting(&self) -> Result<Credit<'_>, NoConsumer> {
        loop {
            let changed = self.shared.changed.notified();
            if self.shared.is_waiting() {
                let why = self.shared.consumer_wait.lock().unwrap().why.clone();
                return Err(NoConsumer(why));
            }
            tokio::select! {
                permit = self.window.clone().acquire_owned() => {
                    return Ok(self.credit(permit.expect("window is never closed")));
                }
                _ = changed => {}
            }
        }
    }

    fn credit(&self, permit: OwnedSemaphorePermit) -> Credit<'_> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        Credit {
            sender: self,
            seq,
            permit,
        }
    }

    /// Waits until every batch sent is settled (an overdue one acknowledged or past its
    /// [`LATE_GRACE`]), then stops listening; batches still waiting for a consumer are lost.
    pub async fn close(&self) {
        let shared = &self.shared;
        let deadline =
            Instant::now() + shared.config.ack_timeout + LATE_GRACE + Duration::from_secs(1);
        loop {
            let changed = shared.changed.notified();
            let (on_the_way, waiting, overdue) = {
                let overdue = shared.overdue.lock().unwrap();
                let pending = shared.pending.lock().unwrap();
                let waiting = pending.values().filter(|p| p.deadline.is_none()).count();
                (pending.len() - waiting, waiting, !overdue.is_empty())
            };
            // Waiting batches go out again once a consumer is back, so wait for them only then.
            let nothing_to_wait_for =
                on_the_way == 0 && !overdue && (waiting == 0 || shared.is_waiting());
            if nothing_to_wait_for || Instant::now() >= deadline {
                break;
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
        // No task may count a batch after the stage has reported.
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        let (mut batches, mut numbers) = (0, 0);
        for seq in shared.seqs_where(|batch| batch.deadline.is_none()) {
            if let Some(pending) = shared.take(seq) {
                batches += 1;
                numbers += pending.count;
            }
        }
        if batches > 0 {
            let why = format!("stopping while no {} takes them", shared.config.target);
            shared.count_lost(batches, numbers, &why);
        }
        shared.overdue(shared.seqs_where(|batch| batch.deadline.is_some()));
        shared.lose_overdue(None);
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        for task in self.tasks.lock().unwrap().iter() {
            task.abort();
        }
    }
}

impl Credit<'_> {
    /// The batch's sequence number, unique for this sender.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Publishes `body`, a batch of `count` numbers; `origin`: for a batch made from another
    /// (the hasher's digests), the rng batch its numbers came from.
    pub async fn send(self, body: Bytes, count: usize, origin: Option<String>) {
        let (shared, seq) = (&self.sender.shared, self.seq);
        let config = &shared.config;
        let mut headers = BatchHeaders::new(&config.instance, seq, count);
        headers.origin = origin;
        let mut headers = headers.to_header_map();
        headers.insert(HEADER_TTL_MS, format_ttl(config.ack_timeout).as_str());
        headers.insert(HEADER_SENT_MS, format_sent_at(SystemTime::now()).as_str());
        let count = count as u64;
        shared.pending.lock().unwrap().insert(
            seq,
            Pending {
                count,
                deadline: Some(Instant::now() + config.ack_timeout),
                sent_at: Instant::now(),
                headers: headers.clone(),
                body: body.clone(),
                _permit: self.permit,
            },
        );
        shared.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        shared.stats.sent.add(count);
        shared.transmit(seq, headers, body).await;
    }
}

/// How `reply` answers the batch named `batch`; `None` if it settles nothing: an answer names
/// its batch, and only the server's own "no responders" names none (only the server sends it).
fn classify(reply: &async_nats::Message, target: Stage, batch: &str) -> Option<Answer> {
    if reply.status == Some(StatusCode::NO_RESPONDERS) {
        return Some(Answer::NobodyTook(format!("no {target} is listening")));
    }
    if header(reply, HEADER_BATCH) != Some(batch) {
        return None;
    }
    let code = header(reply, NATS_SERVICE_ERROR_CODE);
    Some(match header(reply, NATS_SERVICE_ERROR) {
        None => Answer::Acked,
        Some(error) if code == Some(TURNED_AWAY.to_string().as_str()) => {
            Answer::TurnedAway(format!("the {target} turned a batch away: {error}"))
        }
        Some(error) => Answer::Refused(format!("{target} refused it: {error}")),
    })
}

async fn receive_replies(mut replies: async_nats::Subscriber, shared: Arc<Shared>) {
    while let Some(reply) = replies.next().await {
        let Some(Ok(seq)) = reply.subject.rsplit('.').next().map(str::parse::<u64>) else {
            continue;
        };
        let batch = batch_id(&shared.config.instance, seq);
        let Some(answer) = classify(&reply, shared.config.target, &batch) else {
            shared.stray(&reply);
            continue;
        };
        // Past its time: out of the window, so it cannot wait again either.
        if let Some(count) = shared.take_overdue(seq) {
            match answer {
                Answer::Acked => shared.acked_late(seq, count),
                Answer::NobodyTook(why) | Answer::TurnedAway(why) | Answer::Refused(why) => {
                    shared.count_lost(1, count, &format!("after its time, {why}"))
                }
            }
            continue;
        }
        match answer {
            Answer::NobodyTook(why) => shared.wait_for_consumer(seq, why, false),
            Answer::TurnedAway(why) => shared.wait_for_consumer(seq, why, true),
            Answer::Refused(why) => {
                if let Some(batch) = shared.take(seq) {
                    shared.count_lost(1, batch.count, &why);
                }
            }
            Answer::Acked => match shared.take(seq) {
                Some(batch) => {
                    shared.stats.acked.add(batch.count);
                    shared.consumer_seen(batch.sent_at);
                }
                // Already counted as lost: the receiver was later than the grace too.
                None => tracing::debug!(seq, "acknowledgement after the grace"),
            },
        }
    }
}

/// Moves the batches not acknowledged in time out of the window, counts those past their
/// grace lost, and resends waiting batches: all once a consumer is back, else the oldest every
/// [`PROBE_EVERY`].
async fn expire_and_resend(shared: Arc<Shared>) {
    let every = (shared.config.ack_timeout / 4)
        .clamp(Duration::from_millis(10), Duration::from_millis(250));
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shared.resend_now.notified() => {}
        }
        let now = Instant::now();
        shared.overdue(shared.seqs_where(|batch| batch.deadline.is_some_and(|d| d <= now)));
        shared.lose_overdue(Some(now));
        let waiting = shared.seqs_where(|batch| batch.deadline.is_none());
        let resend: Vec<u64> = {
            let mut consumer_wait = shared.consumer_wait.lock().unwrap();
            if consumer_wait.waiting.is_none() {
                waiting
            } else if waiting.is_empty() && shared.pending.lock().unwrap().is_empty() {
                // The probes themselves were lost (a receiver took them and died): the next
                // new batch is the probe.
                consumer_wait.waiting = None;
                shared.changed.notify_waiters();
                Vec::new()
            } else if consumer_wait.next_probe.is_some_and(|at| at <= now) && !waiting.is_empty() {
                consumer_wait.next_probe = Some(now + PROBE_EVERY);
                waiting.into_iter().take(1).collect()
            } else {
                Vec::new()
            }
        };
        for seq in resend {
            shared.resend(seq).await;
        }
    }
}
