//! hasher: computes the SHA-256 digest of each number and hands the batch on to the workers.
//!
//! Replicas consume `<prefix>.numbers` in queue group `hasher`, so NATS spreads batches over
//! however many are running. A batch is acknowledged to rng once it has been hashed and handed
//! on to `<prefix>.digests`; the hasher keeps at most `HASHER_IN_FLIGHT` digest batches
//! unacknowledged by the workers, so a slow worker stage slows it, and it slows rng. While no
//! worker is listening it gives rng's batches back unhashed ("turned away"): rng holds them and
//! waits, so stopping every worker loses nothing.
//! `HASHER_DELAY_MS` simulates a costly hash (the demo's bottleneck); with no delay the
//! hashing runs on a blocking thread per batch, on every core.
//!
//! One batch's path: [`run`] takes it from the intake and gives it a task of its own, where
//! `Hashing::take` decodes it, hashes it, hands it on through the sender and answers rng.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chocominer_pipeline::codec::{self, DigestBatch, NumberBatch, Numbers};
use chocominer_pipeline::runtime::StageRuntime;
use chocominer_pipeline::stats::schema::{self, FieldValue, Measurement, hasher};
use chocominer_pipeline::stats::{Counter, Meter};
use chocominer_pipeline::{CommonArgs, Shutdown, Stage};
use chocominer_pipeline::{Incoming, Intake, IntakeConfig, IntakeStats};
use chocominer_pipeline::{NoConsumer, Sender, SenderConfig, SenderStats};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

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
    /// Malformed messages refused.
    pub rejected: u64,
    /// Times it waited for a worker to come back (each logged once).
    pub waits: u64,
}

/// Counters of a hasher, shared by its tasks, its per-second point and its NATS stats.
struct HasherMeter {
    hashes: Counter,
    busy_ns: Counter,
    concurrency: usize,
    sender: Arc<SenderStats>,
    /// Malformed messages refused, and batches dropped because rng had already given up on
    /// them.
    intake: Arc<IntakeStats>,
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
            hasher::WAITING.at(self.sender.held()),
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
            "waiting": self.sender.held(),
        })
    }
}

/// SHA-256 of each number, concatenated.
fn digest_all(numbers: &Numbers) -> Vec<u8> {
    let mut digests = Vec::with_capacity(numbers.count() * codec::DIGEST_LEN);
    numbers.for_each_run(|run| {
        for number in run.chunks_exact(codec::NUMBER_LEN) {
            digests.extend_from_slice(&Sha256::digest(number));
        }
    });
    digests
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
    let sender = Sender::start(
        runtime.client.clone(),
        SenderConfig {
            subject: runtime.subjects.digests.clone(),
            target: Stage::Worker,
            instance: runtime.instance.clone(),
            max_in_flight: config
                .in_flight
                .map_or(defaults.hasher_in_flight, |n| n as usize),
            ack_timeout: config.common.ack_timeout(),
        },
    )
    .await?;
    let mut intake = Intake::start(
        runtime.client.clone(),
        IntakeConfig {
            stage: Stage::Hasher,
            subject: runtime.subjects.numbers.clone(),
            instance: runtime.instance.clone(),
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
    tracing::info!(?delay, concurrency, "hashing");

    let hashing = Arc::new(Hashing {
        sender,
        meter,
        delay,
        max_payload: runtime.max_payload(),
        slots: Semaphore::new(concurrency),
    });
    // Every batch is taken off the subscription at once and waits for a hashing slot in its
    // own task: its time here then counts from its arrival, so a batch rng has given up on is
    // recognised as expired (a batch left in the client's buffer would look fresh).
    let batches = TaskTracker::new();
    while let Some(incoming) = intake.next(&shutdown).await {
        let hashing = hashing.clone();
        batches.spawn(async move { hashing.take(incoming).await });
    }
    // Wait for the batches taken, then for the workers' acknowledgements.
    batches.close();
    batches.wait().await;
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
    max_payload: usize,
    /// One per batch hashed at once.
    slots: Semaphore,
}

/// Why a hashed batch was not handed on.
enum NotHandedOn {
    /// rng gave up on it while it waited for room: sending it would count it twice.
    Expired,
    /// No worker takes batches now: rng gets it back and resends it later.
    NoConsumer(NoConsumer),
}

impl Hashing {
    /// One batch, from its arrival to its answer to rng: wait for a slot, decode, hash, hand
    /// on to the workers, acknowledge.
    async fn take(&self, incoming: Incoming) {
        let _slot = self.slots.acquire().await.expect("never closed");
        let numbers = match NumberBatch::decode(incoming.body(), self.max_payload) {
            Ok(batch) => batch.numbers,
            Err(e) => return incoming.refuse(e).await,
        };
        if incoming.expired() {
            return incoming.drop_expired();
        }
        // Nobody downstream takes digests now: give the batch back unhashed; rng holds it and
        // waits, so nothing is lost while the workers are gone.
        if self.sender.is_waiting() {
            return incoming.turn_away("no worker is listening").await;
        }
        let digests = self.hash(&numbers).await;
        let count = numbers.count() as u64;
        match self.hand_on(numbers, &digests, &incoming).await {
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
            // Given back: it will be hashed again when it comes back, and counted then.
            Err(NotHandedOn::NoConsumer(why)) => incoming.turn_away(why).await,
        }
    }

    /// Hashes a batch and counts the time spent.
    async fn hash(&self, numbers: &Numbers<'_>) -> Vec<u8> {
        let started = Instant::now();
        let digests = if self.delay.is_zero() {
            // A large batch takes a fraction of a millisecond: tell the scheduler, so other
            // tasks move to another thread meanwhile (possible on the multi-threaded runtime
            // only).
            use tokio::runtime::{Handle, RuntimeFlavor};
            match Handle::current().runtime_flavor() {
                RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| digest_all(numbers)),
                _ => digest_all(numbers),
            }
        } else {
            // The demo's costly hash: one at a time, `delay` each.
            let mut digests = Vec::with_capacity(numbers.count() * codec::DIGEST_LEN);
            for number in numbers.to_vec().chunks_exact(codec::NUMBER_LEN) {
                tokio::time::sleep(self.delay).await;
                digests.extend_from_slice(&Sha256::digest(number));
            }
            digests
        };
        self.meter.busy_ns.add(started.elapsed().as_nanos() as u64);
        digests
    }

    /// Sends numbers and digests to the workers, once the window has room.
    async fn hand_on(
        &self,
        numbers: Numbers<'_>,
        digests: &[u8],
        incoming: &Incoming,
    ) -> Result<(), NotHandedOn> {
        let slot = self
            .sender
            .reserve_unless_waiting()
            .await
            .map_err(NotHandedOn::NoConsumer)?;
        if incoming.expired() {
            return Err(NotHandedOn::Expired);
        }
        let count = numbers.count();
        let body = DigestBatch {
            seq: slot.seq(),
            numbers,
            digests,
        }
        .encode();
        slot.send(body, count, incoming.origin()).await;
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
            waits: sent.waits.total(),
        }
    }
}
