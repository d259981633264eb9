//! hasher: computes the SHA-256 digest of each number and hands the batch on to the workers.
//!
//! A batch is acknowledged to rng once hashed and handed on to `<prefix>.digests`; while no
//! worker listens, it goes back to rng unhashed ("turned away"), which holds it. Backpressure
//! and the bound on what one batch may cost: docs/architecture.md.
//!
//! One batch's path: [`run`] takes it from the intake, refuses it there if it is malformed or
//! too costly, and gives it a task of its own if the queue has room, where `Hashing::take`
//! waits for a slot, hashes it, hands it on and answers rng.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chocominer_codec::{DigestBody, NumberBatch, Numbers, PREFIX_LEN};
use chocominer_influx::schema::{self, FieldValue, Measurement, hasher};
use chocominer_model::Stage;
use chocominer_pipeline::runtime::StageRuntime;
use chocominer_pipeline::stats::{Counter, Meter};
use chocominer_pipeline::{CommonArgs, Incoming, IntakeStats, Sender, SenderStats};
use chocominer_process::{Shutdown, Throttle};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio_util::task::TaskTracker;

mod digest;
pub use digest::digest_prefixes;
use digest::prefix_each;

/// How long a stopping hasher goes on hashing the batches it has; any other is given back to
/// rng. Room for the demo's `STOP_FENCE` batches (about 3 s) and a slow batch in hand.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "hasher", version, about = "ChocoMiner hasher: SHA-256 of every number, handed on to the workers", after_help = chocominer_process::ENV_HELP)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Simulated cost of one hash, in milliseconds [default: demo 50, full 0].
    #[arg(long, env = "HASHER_DELAY_MS")]
    pub delay_ms: Option<u64>,
    /// Batches hashed at once [default: demo 1, full twice the number of cores].
    #[arg(long, env = "HASHER_CONCURRENCY", value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: Option<u64>,
    /// Digest batches that may wait for a worker's acknowledgement at once [default: demo 16,
    /// full 8].
    #[arg(long, env = "HASHER_IN_FLIGHT", value_parser = clap::value_parser!(u64).range(1..))]
    pub in_flight: Option<u64>,
    /// Batches taken in that may wait for a hashing slot; more are given back to rng, which
    /// holds them until a hasher has room [default: 128].
    #[arg(long, env = "HASHER_QUEUE", value_parser = clap::value_parser!(u64).range(1..))]
    pub queue: Option<u64>,
}

/// Totals of a run, in numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    /// Numbers hashed.
    pub hashed: u64,
    /// Numbers handed on and acknowledged by a worker.
    pub acked: u64,
    /// Numbers handed on whose batch was lost on the way to the workers.
    pub lost: u64,
    /// Messages refused: malformed, or batches too costly to hash.
    pub rejected: u64,
    /// Batches dropped unfinished because their sender gave up on them, or would have first.
    pub expired: u64,
    /// Batches given back to rng because `HASHER_QUEUE` batches were already waiting.
    pub queue_full: u64,
    /// Times it waited for a worker to come back (each logged once).
    pub waits: u64,
    /// Messages on its reply inbox that named no batch it sent: ignored.
    pub stray: u64,
}

/// Counters of a hasher, for its per-second point and its NATS stats.
#[derive(Default)]
struct HasherMeter {
    hashes: Counter,
    busy_ns: Counter,
    concurrency: usize,
    sender: Arc<SenderStats>,
    intake: Arc<IntakeStats>,
    queue_full: Counter,
    /// Last second's busy share, as f64 bits, for `$SRV.STATS`.
    last_busy: AtomicU64,
}

impl Meter for HasherMeter {
    fn measurement(&self) -> &'static Measurement {
        &schema::HASHER
    }

    fn fields(&self, period: Duration) -> Vec<FieldValue> {
        let capacity = period.as_nanos() as f64 * self.concurrency as f64;
        let busy = (self.busy_ns.take_delta() as f64 / capacity.max(1.0)).min(1.0);
        self.last_busy.store(busy.to_bits(), Ordering::Relaxed);
        vec![
            hasher::HASHES.of(self.hashes.take_delta()),
            hasher::BUSY.at((busy * 1000.0).round() / 1000.0),
            hasher::LOST.of(self.sender.lost.take_delta()),
            hasher::REJECTED.of(self.intake.rejected.take_delta()),
            hasher::EXPIRED.of(self.intake.expired.take_delta()),
            hasher::IN_FLIGHT.at(self.sender.in_flight()),
            hasher::WINDOW.at(self.sender.window()),
            hasher::WAITING.at(self.sender.waiting()),
            hasher::STRAY.of(self.sender.stray.take_delta()),
        ]
    }
}

impl HasherMeter {
    fn stats_data(&self) -> serde_json::Value {
        serde_json::json!({
            "hashes": self.hashes.total(),
            "busy": f64::from_bits(self.last_busy.load(Ordering::Relaxed)),
            "in_flight": self.sender.in_flight(),
            "lost": self.sender.lost.total(),
            "rejected": self.intake.rejected.total(),
            "expired": self.intake.expired.total(),
            "queue_full": self.queue_full.total(),
            "waiting": self.sender.waiting(),
            "stray": self.sender.stray.total(),
        })
    }
}

/// The simulated time of hashing `count` numbers at `delay` each, saturating, never overflowing.
fn cost(delay: Duration, count: usize) -> Duration {
    u32::try_from(count)
        .ok()
        .and_then(|count| delay.checked_mul(count))
        .unwrap_or(Duration::MAX)
}

pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<Report> {
    let defaults = config.common.profile.defaults();
    let Some(runtime) = StageRuntime::start(Stage::Hasher, &config.common, &shutdown).await? else {
        return Ok(Report::default());
    };
    let delay = config
        .delay_ms
        .map_or(defaults.hasher_delay, Duration::from_millis);
    let concurrency = config
        .concurrency
        .map_or(defaults.hasher_concurrency, |n| n as usize);
    let max_cost = config.common.ack_timeout();
    let queue = config.queue.map_or(defaults.hasher_queue, |n| n as usize);
    let in_flight = config
        .in_flight
        .map_or(defaults.hasher_in_flight, |n| n as usize);
    let sender = runtime.sender(in_flight).await?;
    // With a simulated cost, a batch per hashing slot and two more at hand: while it holds
    // fewer, NATS is steered here. Not at full speed, where a batch takes a millisecond
    // wherever it lands, and the steering's short-lived subscriptions can lose a batch
    // (docs/performance.md, "Random routing").
    let capacity = (!delay.is_zero()).then_some(concurrency + 2);
    let mut intake = runtime.intake(&runtime.subjects.numbers, capacity).await?;
    let meter = Arc::new(HasherMeter {
        concurrency,
        sender: sender.stats(),
        intake: intake.stats(),
        ..Default::default()
    });
    intake.set_stats_data({
        let meter = meter.clone();
        move || meter.stats_data()
    });
    runtime.health.set_ready();
    let reporter = runtime.report(meter.clone());
    tracing::info!(?delay, concurrency, ?max_cost, queue, "hashing");

    let hashing = Arc::new(Hashing {
        sender,
        meter,
        delay,
        max_cost,
        max_payload: runtime.max_payload(),
        slots: Semaphore::new(concurrency),
        free_at: Mutex::new(vec![tokio::time::Instant::now(); concurrency]),
        stop: shutdown.clone(),
        stop_by: OnceLock::new(),
        unfinished_log: Throttle::default(),
    });
    // The stop grace counts from the stop itself, not from the first batch to notice it.
    let stop_watch = tokio::spawn({
        let (hashing, shutdown) = (hashing.clone(), shutdown.clone());
        async move {
            shutdown.triggered().await;
            hashing.stop_by();
        }
    });
    // A permit for each batch taken in and not yet answered: those hashed and those waiting.
    let taken_in = Arc::new(Semaphore::new(concurrency + queue));
    // Every batch waits for a hashing slot in a task of its own, not in the client's buffer,
    // where it would look fresh: a batch rng has given up on is recognised as expired.
    let batches = TaskTracker::new();
    let queue_log = Throttle::default();
    while let Some(incoming) = intake.next(&shutdown).await {
        // Malformed or too costly: refused on arrival, before it takes a permit or waits.
        if let Err(why) = hashing.admit(&incoming) {
            incoming.refuse(why).await;
            continue;
        }
        let Ok(permit) = taken_in.clone().try_acquire_owned() else {
            // Given back: rng holds it and resends it to whichever hasher has room.
            hashing.meter.queue_full.add(1);
            if let Some(left_out) = queue_log.admit() {
                tracing::warn!(
                    queue,
                    queue_full_total = hashing.meter.queue_full.total(),
                    similar_left_out = left_out,
                    "{queue} batches already wait for a hashing slot (HASHER_QUEUE): gave one back \
                     to its sender"
                );
            }
            incoming.turn_away("the hasher's queue is full").await;
            continue;
        };
        let hashing = hashing.clone();
        batches.spawn(async move { hashing.take(incoming, permit).await });
    }
    // Wait for the batches taken, then for the workers' acknowledgements.
    batches.close();
    batches.wait().await;
    stop_watch.abort();
    hashing.sender.close().await;
    intake.close();
    let (meter, sent) = (&hashing.meter, hashing.sender.stats());
    let report = Report {
        hashed: meter.hashes.total(),
        acked: sent.acked.total(),
        lost: sent.lost.total(),
        rejected: meter.intake.rejected.total(),
        expired: meter.intake.expired.total(),
        queue_full: meter.queue_full.total(),
        waits: sent.waits.total(),
        stray: sent.stray.total(),
    };
    runtime.finish(reporter).await;
    Ok(report)
}

/// What hashing a batch needs, shared by the batches' tasks.
struct Hashing {
    sender: Sender,
    meter: Arc<HasherMeter>,
    /// Simulated cost of one hash.
    delay: Duration,
    /// The most one batch may cost: the hasher's own ack timeout.
    max_cost: Duration,
    max_payload: usize,
    /// One per batch hashed at once.
    slots: Semaphore,
    /// When each free slot's last simulated hash was done (see [`Slot`]).
    free_at: Mutex<Vec<tokio::time::Instant>>,
    stop: Shutdown,
    /// Once stopping: when the hashing must be done ([`STOP_GRACE`] after the stop).
    stop_by: OnceLock<Instant>,
    /// For batches given back because the hasher is stopping.
    unfinished_log: Throttle,
}

/// The longest gap between two simulated hashes on a slot that still counts as the hasher's
/// bookkeeping (handing on, acknowledging, the timer's millisecond), not as idle time.
const BOOKKEEPING: Duration = Duration::from_millis(10);

/// A hashing slot held by a batch (given back when dropped), and when its last simulated hash
/// was done. The demo's cost is a pace, one hash per `delay` on each slot, so the bookkeeping
/// between two batches (about a millisecond) does not add to every hash.
struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
    free_at: tokio::time::Instant,
    hashing: &'a Hashing,
}

impl Slot<'_> {
    /// When the next simulated hash on this slot starts: when its last one was done or the batch
    /// arrived, whichever is later, or now if that is more than [`BOOKKEEPING`] ago.
    fn next_start(&self, incoming: &Incoming) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let arrived = tokio::time::Instant::from_std(incoming.received_at());
        let start = self.free_at.max(arrived);
        if now.saturating_duration_since(start) > BOOKKEEPING {
            now
        } else {
            start
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.hashing.free_at.lock().unwrap().push(self.free_at);
    }
}

/// Why a batch is left unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unfinished {
    /// It would not be done before its sender gives up on it: dropped, counted as expired.
    Expired,
    /// It would not be done within [`STOP_GRACE`] of the stop: given back to rng, which resends it.
    Stopping,
}

impl Hashing {
    /// Whether a batch may be taken in: it decodes, and hashing it would cost no more than its
    /// time to live nor than our own ack timeout (a sender's is not trusted beyond ours).
    fn admit(&self, incoming: &Incoming) -> Result<(), String> {
        let count = NumberBatch::decode(incoming.body(), self.max_payload)
            .map_err(|e| e.to_string())?
            .count();
        let cost = cost(self.delay, count);
        let (limit, what) = match incoming.ttl() {
            Some(ttl) if ttl < self.max_cost => (ttl, "its time to live"),
            _ => (self.max_cost, "one batch may cost (ACK_TIMEOUT_MS)"),
        };
        if cost > limit {
            return Err(format!(
                "hashing its {count} numbers would take {cost:.1?}, more than {what}, {limit:.1?}"
            ));
        }
        Ok(())
    }

    /// Once stopping: when the hashing must be done, fixed when first asked (`run` asks at once).
    fn stop_by(&self) -> Option<Instant> {
        self.stop
            .is_triggered()
            .then(|| *self.stop_by.get_or_init(|| Instant::now() + STOP_GRACE))
    }

    /// Why a batch that still needs `remaining` hashing time must be left unfinished now, if so.
    fn must_leave_unfinished(
        &self,
        incoming: &Incoming,
        remaining: Duration,
    ) -> Option<Unfinished> {
        // `None`: so far ahead that it is never in time.
        let done = Instant::now().checked_add(remaining);
        let too_late = |by: Instant| done.is_none_or(|done| done >= by);
        if incoming.deadline().is_some_and(too_late) {
            return Some(Unfinished::Expired);
        }
        if self.stop_by().is_some_and(too_late) {
            return Some(Unfinished::Stopping);
        }
        None
    }

    /// One batch, from its arrival to its answer; `_permit` counts it among those taken in.
    async fn take(&self, mut incoming: Incoming, _permit: OwnedSemaphorePermit) {
        // Decoded on arrival already (`admit`): this does not fail.
        let numbers = match NumberBatch::decode(incoming.body(), self.max_payload) {
            Ok(batch) => batch.numbers,
            Err(e) => return incoming.refuse(e).await,
        };
        let count = numbers.count();
        let mut slot = match self.take_slot(&incoming, cost(self.delay, count)).await {
            Ok(slot) => slot,
            Err(why) => return self.leave_unfinished(incoming, why).await,
        };
        // No worker takes digests now: given back unhashed, rng holds it until one does.
        if self.sender.is_waiting() {
            return incoming.turn_away("no worker is listening").await;
        }
        let hashed = if self.delay.is_zero() {
            Ok(self.hash(&numbers))
        } else {
            self.hash_slowly(&numbers, &incoming, &mut slot).await
        };
        let body = match hashed {
            Ok(body) => body,
            Err(why) => return self.leave_unfinished(incoming, why).await,
        };
        // The digest batch has the numbers now: no need to keep rng's message (up to half a MB).
        incoming.release_body();
        let credit = match self.sender.reserve_unless_waiting().await {
            Ok(credit) => credit,
            // Given back: it will be hashed again when it comes back, and counted then.
            Err(why) => return incoming.turn_away(why).await,
        };
        self.meter.hashes.add(count as u64);
        if incoming.expired() {
            // rng gave up on it while it waited for room: sending it would count it twice.
            incoming.drop_expired();
        } else if !incoming.answerable() {
            // Its NATS connection broke: rng counts it lost, so it must not reach the workers.
            incoming.drop_unanswerable();
        } else {
            // With the workers now (its fate theirs and the sender's to count): acknowledged.
            let body = body.finish(credit.seq());
            credit.send(body, count, incoming.origin()).await;
            incoming.ack().await;
        }
    }

    /// Waits for a hashing slot for a batch that takes `cost` to hash, unless it must be left
    /// unfinished first: checked on arrival, at the stop, and at its latest start.
    async fn take_slot(&self, incoming: &Incoming, cost: Duration) -> Result<Slot<'_>, Unfinished> {
        // Each wake-up but the slot's comes once (the stop, the latest start), and the check
        // after the latest start lets the batch go: three rounds do, a fourth is a margin.
        for _ in 0..4 {
            if let Some(why) = self.must_leave_unfinished(incoming, cost) {
                return Err(why);
            }
            // The last moment it can start and still be done in time, if there is one.
            let latest_start = [incoming.deadline(), self.stop_by()]
                .into_iter()
                .flatten()
                .min()
                .and_then(|by| by.checked_sub(cost));
            let wake = tokio::time::sleep_until(latest_start.unwrap_or_else(Instant::now).into());
            tokio::select! {
                permit = self.slots.acquire() => {
                    let permit = permit.expect("never closed");
                    let free_at = self.free_at.lock().unwrap().pop();
                    return Ok(Slot {
                        _permit: permit,
                        free_at: free_at.unwrap_or_else(tokio::time::Instant::now),
                        hashing: self,
                    });
                }
                _ = wake, if latest_start.is_some() => {}
                _ = self.stop.triggered(), if !self.stop.is_triggered() => {}
            }
        }
        Err(self
            .must_leave_unfinished(incoming, cost)
            .unwrap_or(Unfinished::Expired))
    }

    /// Lets a batch go unfinished (see [`Unfinished`]).
    async fn leave_unfinished(&self, incoming: Incoming, why: Unfinished) {
        match why {
            Unfinished::Expired => incoming.drop_expired(),
            Unfinished::Stopping => {
                if let Some(left_out) = self.unfinished_log.admit() {
                    tracing::info!(
                        similar_left_out = left_out,
                        "stopping: gave back to its sender a batch it could not finish within \
                         {STOP_GRACE:?} of the stop"
                    );
                }
                incoming.turn_away("the hasher is stopping").await;
            }
        }
    }

    /// Hashes a batch at full speed, counting the time spent as busy. The largest batch takes a
    /// few milliseconds: nothing to stop for, but on the multi-threaded runtime other tasks are
    /// moved off this thread meanwhile.
    fn hash(&self, numbers: &Numbers<'_>) -> DigestBody {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let started = Instant::now();
        let mut body = DigestBody::new(numbers);
        let prefixes = body.prefixes_mut();
        if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(|| prefix_each(numbers, prefixes));
        } else {
            prefix_each(numbers, prefixes);
        }
        self.meter.busy_ns.add(started.elapsed().as_nanos() as u64);
        body
    }

    /// The demo's costly hash: one number at a time, `delay` each on its slot (see [`Slot`]),
    /// counted as busy number by number; before each, and at the stop, it checks whether the
    /// batch must be left unfinished.
    async fn hash_slowly(
        &self,
        numbers: &Numbers<'_>,
        incoming: &Incoming,
        slot: &mut Slot<'_>,
    ) -> Result<DigestBody, Unfinished> {
        let count = numbers.count();
        let mut body = DigestBody::new(numbers);
        for index in 0..count {
            let started = Instant::now();
            let hashed_at = slot.next_start(incoming) + self.delay;
            let remaining = cost(self.delay, count - index);
            if let Some(why) = self.must_leave_unfinished(incoming, remaining) {
                return Err(why);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(hashed_at) => {}
                _ = self.stop.triggered(), if !self.stop.is_triggered() => {
                    if let Some(why) = self.must_leave_unfinished(incoming, remaining) {
                        return Err(why);
                    }
                    tokio::time::sleep_until(hashed_at).await;
                }
            }
            slot.free_at = hashed_at;
            let prefix = &mut body.prefixes_mut()[index * PREFIX_LEN..(index + 1) * PREFIX_LEN];
            digest::prefix_into(&numbers.number(index), prefix);
            self.meter.busy_ns.add(started.elapsed().as_nanos() as u64);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_costs_its_numbers_times_the_delay_and_never_overflows() {
        let demo = Duration::from_millis(100);
        // The attack: a 38-byte seeded batch of the most numbers 1 MB allows.
        assert_eq!(cost(demo, 32_736), Duration::from_millis(3_273_600));
        assert_eq!(cost(Duration::ZERO, 32_736), Duration::ZERO);
        assert_eq!(cost(Duration::MAX, 2), Duration::MAX);
        assert_eq!(cost(demo, usize::MAX), Duration::MAX);
        assert_eq!(cost(demo, 0), Duration::ZERO);
    }
}
