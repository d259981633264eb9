//! Sending batches downstream as requests, with a bounded window of unacknowledged ones.
//!
//! Each batch is published with a reply subject `<inbox>.<seq>` on the sender's own inbox
//! subscription (not `Client::request`, whose entries stay in the client's reply map when no
//! reply comes). A sender keeps at most `max_in_flight` batches unacknowledged, so a slow
//! stage slows the stages before it and nobody buffers without bound. Every batch ends in
//! exactly one of: acknowledged, refused by the receiver, "no responders", or no
//! acknowledgement within `ack_timeout`; the last three count as lost, in numbers and batches,
//! and are logged (rate-limited). When nobody consumes the subject the sender waits, saying so
//! once, and probes the stage's NATS service (`$SRV.PING.<stage>`) until one is back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{Client, HeaderMap, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::intake::NATS_SERVICE_ERROR as SERVICE_ERROR_HEADER;
use crate::shutdown::Shutdown;
use crate::stats::Counter;
use crate::subjects::Stage;
use crate::throttle::Throttle;

/// How often a waiting sender asks whether a consumer is back.
const PROBE_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Subject the batches go to.
    pub subject: String,
    /// The stage that consumes it (for messages and the presence probe).
    pub target: Stage,
    pub max_in_flight: usize,
    pub ack_timeout: Duration,
}

/// What happened to the batches sent, in numbers and batches.
#[derive(Debug, Default)]
pub struct SenderStats {
    pub sent: Counter,
    pub acked: Counter,
    pub lost: Counter,
    pub lost_batches: Counter,
    in_flight: std::sync::atomic::AtomicUsize,
    /// The most batches that may be in flight.
    window: usize,
}

impl SenderStats {
    /// Batches sent and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The most batches that may be in flight: when `in_flight` stays there, the receiving
    /// stage is what holds this sender back.
    pub fn window(&self) -> usize {
        self.window
    }
}

/// Shutdown came while waiting; nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped before the batch could be sent")]
pub struct Stopped;

struct Pending {
    count: u64,
    deadline: Instant,
    _permit: OwnedSemaphorePermit,
}

struct Shared {
    config: SenderConfig,
    pending: Mutex<HashMap<u64, Pending>>,
    stats: Arc<SenderStats>,
    /// Set by "no responders"; cleared when a consumer answers again.
    absent: AtomicBool,
    /// Whether this absence was already announced in the logs.
    announced: AtomicBool,
    settled: Notify,
    loss_log: Throttle,
}

impl Shared {
    /// Settles a batch; returns its size if it was still pending.
    fn settle(&self, seq: u64) -> Option<u64> {
        let pending = self.pending.lock().unwrap().remove(&seq)?;
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.settled.notify_waiters();
        Some(pending.count)
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
}

/// Sends batches to one subject; see the module docs.
pub struct Sender {
    client: Client,
    inbox: String,
    window: Arc<Semaphore>,
    shared: Arc<Shared>,
    next_seq: std::sync::atomic::AtomicU64,
    tasks: Vec<JoinHandle<()>>,
}

/// Room for one batch in the window, with its sequence number.
pub struct Slot<'a> {
    sender: &'a Sender,
    seq: u64,
    permit: OwnedSemaphorePermit,
}

impl Sender {
    pub async fn start(client: Client, config: SenderConfig) -> anyhow::Result<Sender> {
        let inbox = client.new_inbox();
        let replies = client.subscribe(format!("{inbox}.*")).await?;
        let window = config.max_in_flight.max(1);
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            stats: Arc::new(SenderStats {
                window,
                ..Default::default()
            }),
            absent: AtomicBool::new(false),
            announced: AtomicBool::new(false),
            settled: Notify::new(),
            loss_log: Throttle::default(),
            config,
        });
        let tasks = vec![
            tokio::spawn(receive_replies(replies, shared.clone())),
            tokio::spawn(expire(shared.clone())),
        ];
        Ok(Sender {
            client,
            inbox,
            window: Arc::new(Semaphore::new(window)),
            shared,
            next_seq: std::sync::atomic::AtomicU64::new(1),
            tasks,
        })
    }

    pub fn stats(&self) -> Arc<SenderStats> {
        self.shared.stats.clone()
    }

    /// Waits for a consumer (if none was there) and for room in the window. Gives up with
    /// [`Stopped`] when `stop` fires.
    pub async fn reserve(&self, stop: &Shutdown) -> Result<Slot<'_>, Stopped> {
        self.wait_for_consumer(stop).await?;
        let permit = tokio::select! {
            permit = self.window.clone().acquire_owned() => permit.expect("window is never closed"),
            _ = stop.triggered() => return Err(Stopped),
        };
        Ok(self.slot(permit))
    }

    /// Like [`reserve`](Self::reserve) for a batch that is already taken and must be handed
    /// on: only the wait for an absent consumer gives up on `stop`; room in the window always
    /// comes, as acknowledgements arrive or time out.
    pub async fn reserve_to_hand_on(&self, stop: &Shutdown) -> Result<Slot<'_>, Stopped> {
        self.wait_for_consumer(stop).await?;
        let permit = self
            .window
            .clone()
            .acquire_owned()
            .await
            .expect("window is never closed");
        Ok(self.slot(permit))
    }

    fn slot(&self, permit: OwnedSemaphorePermit) -> Slot<'_> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        Slot {
            sender: self,
            seq,
            permit,
        }
    }

    /// Counts numbers that could not even be sent (e.g. shutdown while no consumer was there).
    pub fn count_lost(&self, batches: u64, numbers: u64, why: &str) {
        self.shared.count_lost(batches, numbers, why);
    }

    async fn wait_for_consumer(&self, stop: &Shutdown) -> Result<(), Stopped> {
        if !self.shared.absent.load(Ordering::Relaxed) {
            return Ok(());
        }
        let target = self.shared.config.target;
        let probe = format!("$SRV.PING.{}", target.name());
        let started = Instant::now();
        if !stop.is_triggered() && !self.shared.announced.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                subject = %self.shared.config.subject,
                "no {target} is listening: waiting for one (start one, e.g. `just scale {target} 1`)"
            );
        }
        loop {
            if stop.is_triggered() {
                return Err(Stopped);
            }
            let ping = tokio::time::timeout(
                Duration::from_secs(2),
                self.client.request(probe.clone(), Bytes::new()),
            );
            if let Ok(Ok(_)) = ping.await {
                self.shared.absent.store(false, Ordering::Relaxed);
                if self.shared.announced.swap(false, Ordering::Relaxed) {
                    tracing::info!(waited = ?started.elapsed(), "a {target} is back: resuming");
                }
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(PROBE_EVERY) => {}
                _ = stop.triggered() => return Err(Stopped),
            }
        }
    }

    /// Waits until every batch sent is settled (acknowledged, refused or timed out), then
    /// stops listening for replies.
    pub async fn close(&self) {
        let deadline = Instant::now() + self.shared.config.ack_timeout + Duration::from_secs(1);
        loop {
            let settled = self.shared.settled.notified();
            if self.shared.pending.lock().unwrap().is_empty() || Instant::now() >= deadline {
                break;
            }
            let _ = tokio::time::timeout_at(deadline, settled).await;
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Slot<'_> {
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Publishes the batch of `count` numbers; its fate is tracked from here on.
    pub async fn send(self, mut headers: HeaderMap, body: Bytes, count: u64) {
        let Slot {
            sender,
            seq,
            permit,
        } = self;
        let shared = &sender.shared;
        let deadline = Instant::now() + shared.config.ack_timeout;
        let ttl_ms = shared.config.ack_timeout.as_millis().to_string();
        headers.insert(crate::codec::HEADER_TTL_MS, ttl_ms.as_str());
        shared.pending.lock().unwrap().insert(
            seq,
            Pending {
                count,
                deadline,
                _permit: permit,
            },
        );
        shared.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        shared.stats.sent.add(count);
        let reply = format!("{}.{seq}", sender.inbox);
        let published = sender
            .client
            .publish_with_reply_and_headers(shared.config.subject.clone(), reply, headers, body)
            .await;
        if let Err(err) = published
            && let Some(count) = shared.settle(seq)
        {
            shared.count_lost(1, count, &format!("could not publish: {err}"));
        }
    }
}

async fn receive_replies(mut replies: async_nats::Subscriber, shared: Arc<Shared>) {
    while let Some(reply) = replies.next().await {
        let Some(seq) = reply
            .subject
            .rsplit('.')
            .next()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let Some(count) = shared.settle(seq) else {
            // Already counted as lost by the timeout: the receiver was just late.
            tracing::debug!(seq, "late acknowledgement");
            continue;
        };
        if reply.status == Some(StatusCode::NO_RESPONDERS) {
            shared.absent.store(true, Ordering::Relaxed);
            shared.count_lost(
                1,
                count,
                &format!("no {} is listening", shared.config.target),
            );
        } else if let Some(error) = reply
            .headers
            .as_ref()
            .and_then(|h| h.get(SERVICE_ERROR_HEADER))
        {
            shared.count_lost(
                1,
                count,
                &format!("{} refused it: {error}", shared.config.target),
            );
        } else {
            shared.absent.store(false, Ordering::Relaxed);
            shared.stats.acked.add(count);
        }
    }
}

/// Counts batches whose acknowledgement did not come in time as lost.
async fn expire(shared: Arc<Shared>) {
    let every = (shared.config.ack_timeout / 4)
        .clamp(Duration::from_millis(10), Duration::from_millis(250));
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let expired: Vec<u64> = {
            let pending = shared.pending.lock().unwrap();
            pending
                .iter()
                .filter(|(_, p)| p.deadline <= now)
                .map(|(seq, _)| *seq)
                .collect()
        };
        if expired.is_empty() {
            continue;
        }
        let (mut batches, mut numbers) = (0, 0);
        for seq in expired {
            if let Some(count) = shared.settle(seq) {
                batches += 1;
                numbers += count;
            }
        }
        if batches > 0 {
            let why = format!(
                "no acknowledgement from {} within {:?}",
                shared.config.target, shared.config.ack_timeout
            );
            shared.count_lost(batches, numbers, &why);
        }
    }
}
