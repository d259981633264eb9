//! worker: judges every digest, keeps the nuggets, and counts hashes and nuggets per second.
//!
//! A digest with at least `DIFFICULTY` leading zero bits is a nugget: published as JSON on
//! `<prefix>.nuggets` and stored as a `nugget` point. A digest batch carries only the start of
//! each digest; the worker computes the whole digest of each candidate, so no digest it records
//! is taken on trust (why: docs/architecture.md): a batch with a forged prefix or a copied
//! nugget is refused whole.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::Client;
use chocominer_codec::{DIGEST_LEN, DigestBatch, NUMBER_LEN, prefix_of};
use chocominer_influx::schema::{self, FieldValue, Measurement, worker};
use chocominer_model::Stage;
use chocominer_model::nugget::{self, Nugget};
use chocominer_pipeline::runtime::StageRuntime;
use chocominer_pipeline::stats::{Counter, Meter, Point, StatsSink};
use chocominer_pipeline::{CommonArgs, Incoming, IntakeStats};
use chocominer_process::{Shutdown, Throttle};

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "worker", version, about = "ChocoMiner worker: finds the nuggets among the digests and counts them", after_help = chocominer_process::ENV_HELP)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Leading zero bits that make a digest a nugget [default: demo 4, full 23].
    #[arg(long, env = "DIFFICULTY", value_parser = clap::value_parser!(u32).range(0..=256))]
    pub difficulty: Option<u32>,
    /// Simulated cost of judging one hash, in milliseconds (fractions allowed, e.g. 0.1); a
    /// batch costs its hashes times this, judged one batch at a time; 0 = none
    /// [default: demo 300, full 0].
    #[arg(long, env = "WORKER_DELAY_MS", value_parser = parse_delay_ms)]
    pub delay_ms: Option<f64>,
}

/// Totals of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    /// Digests judged.
    pub judged: u64,
    pub nuggets: u64,
    /// Nugget candidates whose digest prefix was not SHA-256's of their number: their batch
    /// refused.
    pub forged: u64,
    /// Messages refused: malformed, or with forged prefixes or copied nuggets.
    pub rejected: u64,
}

#[derive(Default)]
struct WorkerMeter {
    hashes: Counter,
    nuggets: Counter,
    forged: Counter,
    /// Time spent judging (the simulated cost included).
    busy_ns: Counter,
    /// Last second's busy share, as f64 bits, for `$SRV.STATS`.
    last_busy: AtomicU64,
    intake: Arc<IntakeStats>,
    difficulty: u32,
}

impl WorkerMeter {
    fn stats_data(&self) -> serde_json::Value {
        serde_json::json!({
            "hashes": self.hashes.total(),
            "nuggets": self.nuggets.total(),
            "forged": self.forged.total(),
            "rejected": self.intake.rejected.total(),
            "expired": self.intake.expired.total(),
            "difficulty": self.difficulty,
            "busy": f64::from_bits(self.last_busy.load(Ordering::Relaxed)),
        })
    }
}

impl Meter for WorkerMeter {
    fn measurement(&self) -> &'static Measurement {
        &schema::WORKER
    }

    fn fields(&self, period: Duration) -> Vec<FieldValue> {
        // One batch is judged at a time: the second's capacity is the second.
        let busy =
            (self.busy_ns.take_delta() as f64 / (period.as_nanos() as f64).max(1.0)).min(1.0);
        self.last_busy.store(busy.to_bits(), Ordering::Relaxed);
        vec![
            worker::HASHES.of(self.hashes.take_delta()),
            worker::NUGGETS.of(self.nuggets.take_delta()),
            worker::FORGED.of(self.forged.take_delta()),
            worker::REJECTED.of(self.intake.rejected.take_delta()),
            worker::EXPIRED.of(self.intake.expired.take_delta()),
            worker::DIFFICULTY.at(self.difficulty),
            worker::BUSY.at((busy * 1000.0).round() / 1000.0),
        ]
    }
}

pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<Report> {
    let defaults = config.common.profile.defaults();
    let difficulty = config.difficulty.unwrap_or(defaults.difficulty);
    let delay = config.delay_ms.map_or(defaults.worker_delay, |ms| {
        Duration::from_secs_f64(ms / 1000.0)
    });
    let Some(runtime) = StageRuntime::start(Stage::Worker, &config.common, &shutdown).await? else {
        return Ok(Report::default());
    };
    // One subscription: a worker judges one batch at a time, and batches queued on extra
    // subscriptions waited past their senders' patience (measured: 15-33 s, lost).
    let mut intake = runtime.intake(&runtime.subjects.digests, None).await?;
    let meter = Arc::new(WorkerMeter {
        intake: intake.stats(),
        difficulty,
        ..Default::default()
    });
    intake.set_stats_data({
        let meter = meter.clone();
        move || meter.stats_data()
    });
    runtime.health.set_ready();
    let reporter = runtime.report(meter.clone());
    tracing::info!(difficulty, ?delay, nuggets = %runtime.subjects.nuggets, "judging digests");

    let judging = Judging {
        meter,
        max_payload: runtime.max_payload(),
        sink: runtime.sink(),
        client: runtime.client.clone(),
        nuggets: runtime.subjects.nuggets.clone(),
        forgery_log: Throttle::default(),
        recent: Mutex::new(nugget::Recent::new(RECENT_NUGGETS)),
        delay,
    };
    while let Some(incoming) = intake.next(&shutdown).await {
        let started = Instant::now();
        judging.judge(incoming).await;
        let busy = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        judging.meter.busy_ns.add(busy);
    }
    intake.close();
    let report = Report {
        judged: judging.meter.hashes.total(),
        nuggets: judging.meter.nuggets.total(),
        forged: judging.meter.forged.total(),
        rejected: judging.meter.intake.rejected.total(),
    };
    runtime.finish(reporter).await;
    Ok(report)
}

/// What judging a batch needs.
struct Judging {
    meter: Arc<WorkerMeter>,
    max_payload: usize,
    /// Where nuggets are stored.
    sink: StatsSink,
    client: Client,
    /// Subject of the live feed of nuggets.
    nuggets: String,
    /// For forged nugget candidates: one warning, then at most one per period.
    forgery_log: Throttle,
    /// The nuggets recorded lately, to refuse one sent again.
    recent: Mutex<nugget::Recent>,
    /// Simulated cost of a hash (`WORKER_DELAY_MS`).
    delay: Duration,
}

impl Judging {
    /// Decodes the batch, judges every digest, checks and records the nuggets, acknowledges.
    async fn judge(&self, incoming: Incoming) {
        let batch = match DigestBatch::decode(incoming.body(), self.max_payload) {
            Ok(batch) => batch,
            Err(e) => return incoming.refuse(e).await,
        };
        // Paid before the expiry check, so a batch its sender gave up on meanwhile is dropped;
        // not paid for one that cannot be judged in time, which would delay those behind it.
        if !self.delay.is_zero() {
            let cost = self
                .delay
                .saturating_mul(u32::try_from(batch.count()).unwrap_or(u32::MAX));
            let done = Instant::now().checked_add(cost);
            if incoming
                .deadline()
                .is_some_and(|deadline| done.is_none_or(|done| done >= deadline))
            {
                return incoming.drop_expired();
            }
            tokio::time::sleep(cost).await;
        }
        if incoming.expired() {
            return incoming.drop_expired();
        }
        // Judged, it must be acknowledged: if it cannot be, the hasher counts it lost.
        if !incoming.answerable() {
            return incoming.drop_unanswerable();
        }
        let difficulty = self.meter.difficulty;
        // A prefix decides up to its 32 bits; past that, the whole digest of each candidate does.
        let candidate = difficulty.min(u32::BITS);
        let mut found = Vec::new();
        let mut forged = 0;
        for (index, prefix) in batch.prefixes().enumerate() {
            if prefix.leading_zeros() < candidate {
                continue;
            }
            let number = batch.numbers.number(index);
            let digest = nugget::digest_of(&number);
            if prefix_of(&digest) != prefix {
                self.forged(&incoming, &number, prefix);
                forged += 1;
            } else if nugget::is_nugget(&digest, difficulty) {
                found.push((number, digest));
            }
        }
        let wrong = wrong_in_sample(&batch);
        let copies = self.remember(&found, forged + wrong == 0);
        if forged + wrong + copies > 0 {
            return incoming
                .refuse(format!(
                    "digest prefixes that are not SHA-256's of their numbers ({forged} nugget \
                     candidates, {wrong} of the prefixes sampled) or nuggets recorded before \
                     ({copies})"
                ))
                .await;
        }
        for (number, digest) in found {
            self.record(&number, &digest, incoming.origin()).await;
        }
        self.meter.hashes.add(batch.count() as u64);
        incoming.ack().await;
    }

    /// How many of the nuggets `found` are copies (of one recorded lately, or twice in the batch);
    /// with none, and the batch otherwise `sound`, they are remembered.
    fn remember(&self, found: &[([u8; NUMBER_LEN], [u8; DIGEST_LEN])], sound: bool) -> usize {
        let mut recent = self.recent.lock().unwrap();
        let mut in_batch = std::collections::HashSet::new();
        let copies = found
            .iter()
            .filter(|(_, digest)| recent.contains(digest) || !in_batch.insert(*digest))
            .count();
        if copies == 0 && sound {
            for (_, digest) in found {
                recent.insert(digest);
            }
        }
        copies
    }

    /// Counts a forged nugget candidate, and says so (rate-limited).
    fn forged(&self, incoming: &Incoming, number: &[u8], prefix: u32) {
        self.meter.forged.add(1);
        if let Some(left_out) = self.forgery_log.admit() {
            // The sender's name comes from the message: Debug-quoted, it cannot forge log lines.
            tracing::warn!(
                sender = ?incoming.sender(),
                batch = ?incoming.origin(),
                number = %hex::encode(number),
                prefix = %format!("{prefix:08x}"),
                forged_total = self.meter.forged.total(),
                similar_left_out = left_out,
                "a forged nugget: its digest prefix is not SHA-256's of its number (its batch is \
                 refused)"
            );
        }
    }

    /// Stores a nugget (a point with the stats) and publishes it on the live feed.
    async fn record(&self, number: &[u8], digest: &[u8], batch: Option<String>) {
        let found = Nugget {
            number: hex::encode(number),
            digest: hex::encode(digest),
            zero_bits: nugget::leading_zero_bits(digest),
            difficulty: self.meter.difficulty,
            instance: self.sink.instance().to_owned(),
            batch,
            found_at_ns: self.sink.event_time_ns(),
        };
        self.sink.push(Point {
            measurement: &schema::NUGGET,
            fields: vec![
                schema::nugget::NUMBER.of(found.number.clone()),
                schema::nugget::DIGEST.of(found.digest.clone()),
                schema::nugget::ZERO_BITS.of(found.zero_bits),
            ],
            time_ns: found.found_at_ns,
        });
        tracing::debug!(digest = %found.digest, "nugget");
        let json = serde_json::to_vec(&found).expect("a nugget always serializes");
        if let Err(e) = self.client.publish(self.nuggets.clone(), json.into()).await {
            // Only the live feed missed it: its point goes with the stats all the same.
            tracing::warn!("could not publish a nugget on {}: {e}", self.nuggets);
        }
        self.meter.nuggets.add(1);
    }
}

/// One prefix in this many is checked against its number's digest (at least one a batch):
/// made-up prefixes in any number worth counting are caught, for about 3 % of the hashing.
const SAMPLE_ONE_IN: usize = 32;
/// The sample is taken in runs of this many numbers, one run at random in each stretch of
/// `SAMPLE_ONE_IN` runs: a seeded run is expanded at once, where single numbers would each pay
/// for setting up the keystream (the worker's CPU time a hash fell from 8 to 5 ns).
const SAMPLE_RUN: usize = 64;
/// Nuggets remembered to refuse copies: minutes of the demo's, seconds of the full profile's.
const RECENT_NUGGETS: usize = 4096;

/// How many of a random sample of `batch`'s prefixes are not those of their numbers' digests.
fn wrong_in_sample(batch: &DigestBatch<'_>) -> usize {
    let stretch = SAMPLE_RUN * SAMPLE_ONE_IN;
    let mut run = [0u8; SAMPLE_RUN * NUMBER_LEN];
    let mut wrong = 0;
    for start in (0..batch.count()).step_by(stretch) {
        let len = (batch.count() - start).min(stretch);
        let sampled = len.div_ceil(SAMPLE_ONE_IN).min(SAMPLE_RUN);
        let first = start + rand::random_range(0..=len - sampled);
        let numbers = &mut run[..sampled * NUMBER_LEN];
        batch.numbers.copy_run(first, numbers);
        wrong += numbers
            .chunks_exact(NUMBER_LEN)
            .zip(first..)
            .filter(|&(number, i)| prefix_of(&nugget::digest_of(number)) != batch.prefix(i))
            .count();
    }
    wrong
}

/// `WORKER_DELAY_MS`: a finite number of milliseconds from 0 to an hour.
fn parse_delay_ms(text: &str) -> Result<f64, String> {
    let ms: f64 = text.trim().parse().map_err(|e| format!("{e}"))?;
    if (0.0..=3_600_000.0).contains(&ms) {
        Ok(ms)
    } else {
        Err("a number of milliseconds from 0 to 3600000".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_checks_one_prefix_in_32_and_at_least_one() {
        for count in [1, 31, 33, 2048, 2049, 5000] {
            let numbers = chocominer_codec::Numbers::Seeded {
                seed: [3; 32],
                count: count as u32,
            };
            let right: Vec<u8> = (0..count)
                .flat_map(|i| prefix_of(&nugget::digest_of(&numbers.number(i))).to_be_bytes())
                .collect();
            let batch = |prefixes| DigestBatch {
                seq: 1,
                numbers,
                prefixes,
            };
            assert_eq!(wrong_in_sample(&batch(&right)), 0, "{count} numbers");
            // Every prefix made up: each one sampled is caught.
            let made_up: Vec<u8> = right.iter().map(|b| !b).collect();
            let caught = wrong_in_sample(&batch(&made_up));
            let stretches = count.div_ceil(SAMPLE_RUN * SAMPLE_ONE_IN);
            assert!(
                caught >= count / SAMPLE_ONE_IN && caught >= 1,
                "{count}: {caught}"
            );
            assert!(
                caught <= count / SAMPLE_ONE_IN + stretches,
                "{count}: {caught}"
            );
        }
    }

    #[test]
    fn the_delay_is_a_finite_number_of_milliseconds() {
        assert_eq!(parse_delay_ms("300"), Ok(300.0));
        assert_eq!(parse_delay_ms("0.1"), Ok(0.1));
        for bad in ["-1", "NaN", "inf", "1e9", "abc", ""] {
            assert!(parse_delay_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_point_carries_counts_since_the_last_one_and_the_difficulty() {
        let meter = WorkerMeter {
            difficulty: 23,
            ..Default::default()
        };
        meter.hashes.add(1000);
        meter.nuggets.add(2);
        meter.forged.add(3);
        let period = Duration::from_secs(1);
        assert_eq!(meter.measurement(), &schema::WORKER);
        let fields = meter.fields(period);
        assert_eq!(
            fields,
            [
                worker::HASHES.of(1000),
                worker::NUGGETS.of(2),
                worker::FORGED.of(3),
                worker::REJECTED.of(0),
                worker::EXPIRED.of(0),
                worker::DIFFICULTY.at(23u32),
                worker::BUSY.at(0.0),
            ]
        );
        assert_eq!(schema::WORKER.check(&fields), Ok(()));
        // Counts restart from zero each second; the difficulty is a gauge and stays.
        let next = meter.fields(period);
        assert_eq!(next[0], worker::HASHES.of(0));
        assert_eq!(next[2], worker::FORGED.of(0));
        assert_eq!(next[5], worker::DIFFICULTY.at(23u32));
    }
}
