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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chocominer_pipeline::codec::{self, BatchHeaders, DigestBatch, NumberBatch, Numbers};
use chocominer_pipeline::config::HealthArgs;
use chocominer_pipeline::intake::{Incoming, Intake};
use chocominer_pipeline::runtime::StageRuntime;
use chocominer_pipeline::sender::{NoConsumer, Sender, SenderConfig, SenderStats};
use chocominer_pipeline::stats::schema::{self, FieldValue, Measurement, hasher};
use chocominer_pipeline::stats::{Counter, Meter};
use chocominer_pipeline::{CommonArgs, Shutdown, Stage};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "hasher", version, about = "ChocoMiner hasher: SHA-256 of every number, handed on to the workers", after_help = chocominer_pipeline::config::ENV_HELP)]
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

/// The health options, for `runtime::main` (`--health-check`).
impl AsRef<HealthArgs> for Config {
    fn as_ref(&self) -> &HealthArgs {
        &self.common.health
    }
}

/// Totals of a run, in numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
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
    rejected: Arc<Counter>,
    /// Batches dropped because rng had already given up on them.
    expired: Counter,
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
            hasher::REJECTED.of(self.rejected.take_delta()),
            hasher::EXPIRED.of(self.expired.take_delta()),
            hasher::IN_FLIGHT.at(self.sender.in_flight()),
            hasher::WINDOW.at(self.sender.window()),
            hasher::WAITING.at(self.sender.held()),
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
            "rejected": self.rejected.total(),
            "expired": self.expired.total(),
            "waiting": self.sender.held(),
        })
    }
}

/// SHA-256 of each number, concatenated.
pub fn digest_all(numbers: &Numbers) -> Vec<u8> {
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
    let max_payload = runtime.max_payload();
    let sender = Arc::new(
        Sender::start(
            runtime.client.clone(),
            SenderConfig {
                subject: runtime.subjects.digests.clone(),
                target: Stage::Worker,
                max_in_flight: config
                    .in_flight
                    .map_or(defaults.hasher_in_flight, |n| n as usize),
                ack_timeout: config.common.ack_timeout(),
            },
        )
        .await?,
    );
    let rejected = Arc::new(Counter::default());
    let meter = Arc::new(HasherMeter {
        hashes: Counter::default(),
        busy_ns: Counter::default(),
        concurrency,
        sender: sender.stats(),
        rejected: rejected.clone(),
        expired: Counter::default(),
        last_busy: AtomicU64::new(0),
    });
    let stats_meter = meter.clone();
    let mut intake = Intake::start(
        &runtime.client,
        Stage::Hasher,
        &runtime.subjects.numbers,
        &runtime.instance,
        rejected.clone(),
        Box::new(move || stats_meter.stats_data()),
    )
    .await?;
    runtime.health.set_ready();
    let reporter = runtime.report(meter.clone());
    tracing::info!(?delay, concurrency, "hashing");

    let responder = intake.responder();
    let slots = Arc::new(Semaphore::new(concurrency));
    let instance: Arc<str> = runtime.instance.as_str().into();
    // Every batch is taken off the subscription at once and waits for a hashing slot in its
    // own task: its time here then counts from its arrival, so a batch rng has given up on is
    // recognised as expired (a batch left in the client's buffer would look fresh).
    let batches = TaskTracker::new();
    while let Some(request) = intake.next(&shutdown).await {
        let (sender, meter, instance, responder, slots) = (
            sender.clone(),
            meter.clone(),
            instance.clone(),
            responder.clone(),
            slots.clone(),
        );
        batches.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("never closed");
            let payload = request.message.payload.clone();
            let batch = match NumberBatch::decode(&payload, max_payload) {
                Ok(batch) => batch,
                Err(e) => return responder.refuse(request, e).await,
            };
            if request.expired() {
                return responder.drop_expired(request, &meter.expired);
            }
            // Nobody downstream takes digests now: give the batch back unhashed; rng holds
            // it and waits, so nothing is lost while the workers are gone.
            if sender.is_waiting() {
                return responder.turn_away(request, "no worker is listening").await;
            }
            let origin = request
                .message
                .headers
                .as_ref()
                .and_then(BatchHeaders::from_header_map)
                .map(|h| h.batch);
            let (digests, spent) = hash(&batch.numbers, delay).await;
            let count = batch.count() as u64;
            meter.busy_ns.add(spent.as_nanos() as u64);
            let batch = Hashed {
                numbers: batch.numbers,
                digests: &digests,
                origin,
            };
            match hand_on(&sender, &instance, batch, &request).await {
                // The batch is with the workers now: acknowledge it to rng.
                Ok(()) => {
                    meter.hashes.add(count);
                    responder.ack(request).await;
                }
                Err(NotHandedOn::Expired) => {
                    meter.hashes.add(count);
                    responder.drop_expired(request, &meter.expired);
                }
                // Given back: it will be hashed again when it comes back, and counted then.
                Err(NotHandedOn::NoConsumer(why)) => responder.turn_away(request, why).await,
            }
        });
    }
    // Wait for the batches taken, then for the workers' acknowledgements.
    batches.close();
    batches.wait().await;
    sender.close().await;
    responder.close();
    let stats = sender.stats();
    let report = Report {
        hashed: meter.hashes.total(),
        acked: stats.acked.total(),
        lost: stats.lost.total(),
        rejected: rejected.total(),
        waits: stats.waits.total(),
    };
    runtime.finish(reporter).await;
    Ok(report)
}

/// Hashes a batch; returns the digests and the time spent.
async fn hash(numbers: &Numbers<'_>, delay: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let digests = if delay.is_zero() {
        // A large batch takes a fraction of a millisecond: tell the scheduler, so other tasks
        // move to another thread meanwhile (possible on the multi-threaded runtime only).
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::current().runtime_flavor() {
            RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| digest_all(numbers)),
            _ => digest_all(numbers),
        }
    } else {
        // The demo's costly hash: one at a time, `delay` each.
        let mut digests = Vec::with_capacity(numbers.count() * codec::DIGEST_LEN);
        for number in numbers.to_vec().chunks_exact(codec::NUMBER_LEN) {
            tokio::time::sleep(delay).await;
            digests.extend_from_slice(&Sha256::digest(number));
        }
        digests
    };
    (digests, started.elapsed())
}

/// A hashed batch, to be handed on to the workers.
struct Hashed<'a> {
    numbers: Numbers<'a>,
    digests: &'a [u8],
    origin: Option<String>,
}

/// Why a hashed batch was not handed on.
enum NotHandedOn {
    /// rng gave up on it while it waited for room: sending it would count it twice.
    Expired,
    /// No worker takes batches now: rng gets it back and resends it later.
    NoConsumer(NoConsumer),
}

/// Sends numbers and digests to the workers, once the window has room.
async fn hand_on(
    sender: &Sender,
    instance: &str,
    batch: Hashed<'_>,
    request: &Incoming,
) -> Result<(), NotHandedOn> {
    let count = batch.numbers.count();
    let slot = sender
        .reserve_unless_waiting()
        .await
        .map_err(NotHandedOn::NoConsumer)?;
    if request.expired() {
        return Err(NotHandedOn::Expired);
    }
    let body = DigestBatch {
        seq: slot.seq(),
        numbers: batch.numbers,
        digests: batch.digests,
    }
    .encode();
    let mut headers = BatchHeaders::new(instance, slot.seq(), count);
    headers.origin = batch.origin;
    slot.send(headers.to_header_map(), body, count as u64).await;
    Ok(())
}
