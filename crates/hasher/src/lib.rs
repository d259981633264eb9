//! hasher: computes the SHA-256 digest of each number and hands the batch on to the workers.
//!
//! Replicas consume `<prefix>.numbers` in queue group `hasher`, so NATS spreads batches over
//! however many are running. A batch is acknowledged to rng once it has been hashed and handed
//! on to `<prefix>.digests`; the hasher keeps at most `HASHER_IN_FLIGHT` digest batches
//! unacknowledged by the workers, so a slow worker stage slows it, and it slows rng. While no
//! worker is listening it gives rng's batches back unhashed ("turned away"): rng holds them and
//! waits, so stopping every worker loses nothing.
//! `HASHER_DELAY_MS` simulates a costly hash (the demo's bottleneck); with no delay a batch is
//! hashed in place on a runtime worker thread (`block_in_place`, other tasks move off it), up
//! to `HASHER_CONCURRENCY` batches at once (in the full profile one per core by default).
//!
//! What one batch may cost is bounded, whoever sent it (a 38-byte seeded batch may ask for
//! 32,736 numbers: 55 minutes at the demo's 100 ms each). A batch whose hashing would take
//! longer than its own time to live or than the hasher's own ack timeout is refused on
//! arrival, counted as rejected. A batch is left unfinished as soon as it could no longer be
//! finished in time, checked while it waits for a slot and before every number: dropped as
//! expired when its sender would give up on it first, and, once the hasher is told to stop,
//! given back to rng unhashed when it cannot be finished within [`STOP_GRACE`] (rng resends
//! it to another hasher). At most `HASHER_QUEUE` batches wait for a slot; more
//! are given back to rng, which holds them until a hasher has room: a flood cannot make a
//! hasher hold more than that.
//!
//! One batch's path: [`run`] takes it from the intake, refuses it there if it is malformed or
//! too costly, and gives it a task of its own if the queue has room, where `Hashing::take`
//! waits for a slot, hashes it, hands it on through the sender and answers rng.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chocominer_pipeline::codec::{DIGEST_LEN, DigestBody, NumberBatch, Numbers};
use chocominer_pipeline::runtime::StageRuntime;
use chocominer_pipeline::stats::schema::{self, FieldValue, Measurement, hasher};
use chocominer_pipeline::stats::{Counter, Meter};
use chocominer_pipeline::{CommonArgs, Shutdown, Stage, Throttle};
use chocominer_pipeline::{Incoming, Intake, IntakeConfig, IntakeStats};
use chocominer_pipeline::{NoConsumer, Sender, SenderStats};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio_util::task::TaskTracker;

mod digest;
pub use digest::digest_all;
use digest::digest_each;

/// How long a stopping hasher goes on hashing the batches it has: one it cannot finish within
/// this of the stop is given back to rng unhashed. Room for the demo's [`STOP_FENCE`] batches
/// (about 3 s) and for a slow batch in hand.
///
/// [`STOP_FENCE`]: chocominer_pipeline::STOP_FENCE
pub const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "hasher", version, about = "ChocoMiner hasher: SHA-256 of every number, handed on to the workers", after_help = chocominer_pipeline::ENV_HELP)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Simulated cost of one hash, in milliseconds [default: demo 100, full 0].
    #[arg(long, env = "HASHER_DELAY_MS")]
    pub delay_ms: Option<u64>,
    /// Batches hashed at once [default: demo 1, full number of cores].
    #[arg(long, env = "HASHER_CONCURRENCY", value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: Option<u64>,
    /// Digest batches that may wait for a worker's acknowledgement at once [default: 8].
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
    /// Numbers hashed and handed on.
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

/// Counters of a hasher, shared by its tasks, its per-second point and its NATS stats.
struct HasherMeter {
    hashes: Counter,
    busy_ns: Counter,
    concurrency: usize,
    sender: Arc<SenderStats>,
    /// Messages refused, and batches dropped because rng had given up on them.
    intake: Arc<IntakeStats>,
    /// Batches given back because the queue was full.
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
    fn new(concurrency: usize, sender: Arc<SenderStats>, intake: Arc<IntakeStats>) -> Self {
        HasherMeter {
            hashes: Counter::default(),
            busy_ns: Counter::default(),
            concurrency,
            sender,
            intake,
            queue_full: Counter::default(),
            last_busy: AtomicU64::new(0),
        }
    }

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

/// The simulated hashing time of `count` numbers at `delay` each, saturating: the count is the
/// sender's and the delay the operator's, neither to be trusted with an overflow.
fn cost(delay: Duration, count: usize) -> Duration {
    u32::try_from(count)
        .ok()
        .and_then(|count| delay.checked_mul(count))
        .unwrap_or(Duration::MAX)
}

/// Sleeps until `at`; for ever without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
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
    let sender = runtime
        .sender(
            config
                .in_flight
                .map_or(defaults.hasher_in_flight, |n| n as usize),
        )
        .await?;
    let mut intake = Intake::start(
        runtime.client.clone(),
        IntakeConfig {
            stage: Stage::Hasher,
            subject: runtime.subjects.numbers.clone(),
            instance: runtime.instance.clone(),
            service: runtime.service_connector(),
            // A batch per hashing slot and two more at hand: while it holds fewer, NATS is
            // steered towards this hasher (`EXTRA_SUBSCRIPTIONS` in the pipeline's intake).
            capacity: Some(concurrency + 2),
        },
    )
    .await?;
    let meter = Arc::new(HasherMeter::new(
        concurrency,
        sender.stats(),
        intake.stats(),
    ));
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
        queue_log: Throttle::default(),
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
    // Every batch is taken off the subscription at once and waits for a hashing slot in its
    // own task: its time here then counts from its arrival, so a batch rng has given up on is
    // recognised as expired (a batch left in the client's buffer would look fresh).
    let batches = TaskTracker::new();
    while let Some(incoming) = intake.next(&shutdown).await {
        // Malformed or too costly: refused on arrival, before it takes a permit or waits.
        if let Err(why) = hashing.admit(&incoming) {
            incoming.refuse(why).await;
            continue;
        }
        let Ok(permit) = taken_in.clone().try_acquire_owned() else {
            hashing.queue_full(incoming, queue).await;
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
    let report = hashing.report();
    runtime.finish(reporter).await;
    Ok(report)
}

/// What hashing a batch needs, shared by the batches' tasks.
struct Hashing {
    /// To the workers.
    sender: Sender,
    meter: Arc<HasherMeter>,
    /// Simulated cost of one hash.
    delay: Duration,
    /// The most simulated hashing time one batch may cost: the hasher's own ack timeout.
    max_cost: Duration,
    max_payload: usize,
    /// One per batch hashed at once.
    slots: Semaphore,
    /// When each free slot's last simulated hash was done (see [`Slot`]).
    free_at: Mutex<Vec<tokio::time::Instant>>,
    stop: Shutdown,
    /// Once stopping: when the hashing must be done ([`STOP_GRACE`] after the stop).
    stop_by: OnceLock<Instant>,
    /// Batches given back because the hasher is stopping.
    unfinished_log: Throttle,
    /// Batches given back because the queue is full.
    queue_log: Throttle,
}

/// The longest gap between two simulated hashes on a slot that still counts as the hasher's
/// bookkeeping (handing on, acknowledging, the timer's millisecond), not as idle time.
const BOOKKEEPING: Duration = Duration::from_millis(10);

/// A hashing slot held by a batch, and when the slot's last simulated hash was done. The
/// demo's cost is a pace, one hash per `delay` on each slot: a slot kept busy is due its next
/// hash `delay` after its last one, so the bookkeeping between two batches (handing on,
/// acknowledging, taking the next: about a millisecond) does not add to every hash. Given back
/// to the hasher when dropped.
struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
    free_at: tokio::time::Instant,
    hashing: &'a Hashing,
}

impl Slot<'_> {
    /// When the next simulated hash on this slot starts: when its last one was done, or when
    /// the batch arrived if later, unless that is more than [`BOOKKEEPING`] ago (the slot was
    /// idle or held up): then now.
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
    /// The hasher is stopping and would not be done with it within [`STOP_GRACE`]: given back
    /// to rng, which resends it.
    Stopping,
}

/// Why a hashed batch was not handed on.
enum NotHandedOn {
    /// rng gave up on it while it waited for room: sending it would count it twice.
    Expired,
    /// The NATS connection it came on broke: rng cannot get its answer and counts it lost,
    /// so it must not reach the workers.
    Unanswerable,
    /// No worker takes batches now: rng gets it back and resends it later.
    NoConsumer(NoConsumer),
}

impl Hashing {
    /// Whether a batch may be taken in: it decodes, and hashing it would cost no more than its
    /// time to live (it could never be acknowledged in time) nor than the hasher's own ack
    /// timeout (a sender's time to live is not trusted beyond what ours would be). Cheap, so
    /// it is checked on arrival, in the order batches come.
    fn admit(&self, incoming: &Incoming) -> Result<(), String> {
        let count = NumberBatch::decode(incoming.body(), self.max_payload)
            .map_err(|e| e.to_string())?
            .count();
        let cost = self.cost(count);
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

    /// The simulated hashing time of `count` numbers.
    fn cost(&self, count: usize) -> Duration {
        cost(self.delay, count)
    }

    /// Once stopping: when the hashing must be done. Set the first time it is asked after the
    /// stop, which `run` does at once.
    fn stop_by(&self) -> Option<Instant> {
        self.stop
            .is_triggered()
            .then(|| *self.stop_by.get_or_init(|| Instant::now() + STOP_GRACE))
    }

    /// Why a batch that still needs `remaining` hashing time must be left unfinished now, if it
    /// must: it would not be done before its sender gives up on it, or, once the hasher is
    /// stopping, before the stop grace ends.
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

    /// One batch, from its arrival to its answer to rng: wait for a slot, hash, hand on to the
    /// workers, acknowledge. `_permit` counts it among the batches taken in until it is done.
    async fn take(&self, mut incoming: Incoming, _permit: OwnedSemaphorePermit) {
        // Decoded on arrival already (`admit`): this does not fail.
        let numbers = match NumberBatch::decode(incoming.body(), self.max_payload) {
            Ok(batch) => batch.numbers,
            Err(e) => return incoming.refuse(e).await,
        };
        let mut slot = match self.take_slot(&incoming, self.cost(numbers.count())).await {
            Ok(slot) => slot,
            Err(why) => return self.leave_unfinished(incoming, why).await,
        };
        // Nobody downstream takes digests now: give the batch back unhashed; rng holds it and
        // waits, so nothing is lost while the workers are gone.
        if self.sender.is_waiting() {
            return incoming.turn_away("no worker is listening").await;
        }
        let body = match self.hash(&numbers, &incoming, &mut slot).await {
            Ok(body) => body,
            Err(why) => return self.leave_unfinished(incoming, why).await,
        };
        let count = numbers.count() as u64;
        // The digest batch has the numbers now: a batch waiting for room to be handed on need
        // not keep rng's message too (half a megabyte of raw numbers).
        incoming.release_body();
        match self.hand_on(body, count as usize, &incoming).await {
            // The batch is with the workers now (its fate theirs and the sender's to count):
            // acknowledge it to rng.
            Ok(()) => {
                self.meter.hashes.add(count);
                incoming.ack().await;
            }
            Err(NotHandedOn::Expired) => {
                self.meter.hashes.add(count);
                incoming.drop_expired();
            }
            Err(NotHandedOn::Unanswerable) => {
                self.meter.hashes.add(count);
                incoming.drop_unanswerable();
            }
            // Given back: it will be hashed again when it comes back, and counted then.
            Err(NotHandedOn::NoConsumer(why)) => incoming.turn_away(why).await,
        }
    }

    /// Waits for a hashing slot for a batch that takes `cost` to hash, unless it must be let
    /// go first: checked on arrival, at the stop, and once it could no longer be finished in
    /// time (before its sender gives up on it, or within the stop grace).
    async fn take_slot(&self, incoming: &Incoming, cost: Duration) -> Result<Slot<'_>, Unfinished> {
        // Each wake-up but the slot's comes once (the stop, the latest start), and the check
        // after the latest start lets the batch go: three rounds do; a fourth is a margin, and
        // after it the batch is left unfinished anyway.
        for _ in 0..4 {
            if let Some(why) = self.must_leave_unfinished(incoming, cost) {
                return Err(why);
            }
            // The last moment it can start and still be done in time (`None`: no such moment
            // that matters).
            let latest_start = [incoming.deadline(), self.stop_by()]
                .into_iter()
                .flatten()
                .min()
                .and_then(|by| by.checked_sub(cost))
                .map(tokio::time::Instant::from_std);
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
                _ = sleep_until(latest_start) => {}
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

    /// Gives a batch back to its sender because `queue` batches already wait here: rng holds
    /// it and sends it again, to whichever hasher has room. Not lost, and not held here.
    async fn queue_full(&self, incoming: Incoming, queue: usize) {
        self.meter.queue_full.add(1);
        if let Some(left_out) = self.queue_log.admit() {
            tracing::warn!(
                queue,
                queue_full_total = self.meter.queue_full.total(),
                similar_left_out = left_out,
                "{queue} batches already wait for a hashing slot (HASHER_QUEUE): gave one back \
                 to its sender"
            );
        }
        incoming.turn_away("the hasher's queue is full").await;
    }

    /// Hashes a batch, counting the time spent as busy; a batch that must be left unfinished on
    /// the way is.
    async fn hash(
        &self,
        numbers: &Numbers<'_>,
        incoming: &Incoming,
        slot: &mut Slot<'_>,
    ) -> Result<DigestBody, Unfinished> {
        if !self.delay.is_zero() {
            return self.hash_slowly(numbers, incoming, slot).await;
        }
        let started = Instant::now();
        // The largest batch takes a few milliseconds: nothing to stop for. Tell the scheduler,
        // so other tasks move to another thread meanwhile (possible on the multi-threaded
        // runtime only).
        use tokio::runtime::{Handle, RuntimeFlavor};
        let mut body = DigestBody::new(numbers);
        match Handle::current().runtime_flavor() {
            RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| digest_each(numbers, body.digests_mut()))
            }
            _ => digest_each(numbers, body.digests_mut()),
        };
        self.meter.busy_ns.add(started.elapsed().as_nanos() as u64);
        Ok(body)
    }

    /// The demo's costly hash: one number at a time, `delay` each on its slot (see [`Slot`]),
    /// counted as busy number by number (a long batch shows in the busy share while it lasts).
    /// Before each number, and at once when the stop comes, it checks whether the batch must be
    /// left unfinished.
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
            let remaining = self.cost(count - index);
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
            let digest = &mut body.digests_mut()[index * DIGEST_LEN..(index + 1) * DIGEST_LEN];
            digest::digest_into(&numbers.number(index), digest);
            self.meter.busy_ns.add(started.elapsed().as_nanos() as u64);
        }
        Ok(body)
    }

    /// Sends numbers and digests to the workers, once the window has room.
    async fn hand_on(
        &self,
        body: DigestBody,
        count: usize,
        incoming: &Incoming,
    ) -> Result<(), NotHandedOn> {
        let credit = self
            .sender
            .reserve_unless_waiting()
            .await
            .map_err(NotHandedOn::NoConsumer)?;
        if incoming.expired() {
            return Err(NotHandedOn::Expired);
        }
        if !incoming.answerable() {
            return Err(NotHandedOn::Unanswerable);
        }
        let body = body.finish(credit.seq());
        credit.send(body, count, incoming.origin()).await;
        Ok(())
    }

    /// The totals, once every batch is settled.
    fn report(&self) -> Report {
        let sent = self.sender.stats();
        Report {
            hashed: self.meter.hashes.total(),
            acked: sent.acked.total(),
            lost: sent.lost.total(),
            rejected: self.meter.intake.rejected.total(),
            expired: self.meter.intake.expired.total(),
            queue_full: self.meter.queue_full.total(),
            waits: sent.waits.total(),
            stray: sent.stray.total(),
        }
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
