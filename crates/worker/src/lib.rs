//! worker: judges every digest, keeps the nuggets, and counts hashes and nuggets per second.
//!
//! Replicas consume `<prefix>.digests` in queue group `worker`. A digest with at least
//! `DIFFICULTY` leading zero bits is a nugget: it is published as one JSON object on
//! `<prefix>.nuggets` and stored as a `nugget` point (number and digest, so anyone can verify
//! it). Every second the `worker` point carries the hashes judged and nuggets found — the
//! figures the dashboards graph — and the difficulty in force, so that a dashboard can tell
//! nuggets found at different difficulties apart. A batch is acknowledged once judged and
//! recorded.
//!
//! A digest batch may come from anyone who can publish on `<prefix>.digests`, so a digest is
//! not taken on trust: every nugget candidate is hashed again (one SHA-256 each; they are
//! rare), its number expanded from the seed for a seeded batch, and a candidate whose digest
//! is not its number's SHA-256 is counted as `forged` and logged (rate-limited), never
//! recorded or published.
//!
//! `WORKER_DELAY_MS` simulates a costly judgement of each batch (0, none, by default): it makes
//! the worker stage the slow one, to watch a slow stage slow the ones before it and to test
//! that nothing piles up meanwhile.
//!
//! One batch's path: [`run`] takes it from the intake and `Judging::take` decodes it, judges
//! every digest, records and publishes the nuggets, and acknowledges it to the hasher.

use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use chocominer_pipeline::codec::DigestBatch;
use chocominer_pipeline::nugget::{self, Nugget};
use chocominer_pipeline::runtime::StageRuntime;
use chocominer_pipeline::stats::schema::{self, FieldValue, Measurement, worker};
use chocominer_pipeline::stats::{Counter, Meter, Point, StatsSink};
use chocominer_pipeline::{CommonArgs, Shutdown, Stage, Throttle};
use chocominer_pipeline::{Incoming, Intake, IntakeConfig, IntakeStats};

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "worker", version, about = "ChocoMiner worker: finds the nuggets among the digests and counts them", after_help = chocominer_pipeline::ENV_HELP)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Leading zero bits that make a digest a nugget [default: demo 4, full 23].
    #[arg(long, env = "DIFFICULTY", value_parser = clap::value_parser!(u32).range(0..=256))]
    pub difficulty: Option<u32>,
    /// Simulated cost of judging one batch (whatever its size), in milliseconds, to make the
    /// worker stage slower than the hashers; 0 = none.
    #[arg(long, env = "WORKER_DELAY_MS", default_value_t = 0)]
    pub delay_ms: u64,
}

/// Totals of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    /// Digests judged.
    pub judged: u64,
    pub nuggets: u64,
    /// Nugget candidates whose digest was not SHA-256 of their number: not recorded.
    pub forged: u64,
    /// Malformed messages refused.
    pub rejected: u64,
}

struct WorkerMeter {
    hashes: Counter,
    nuggets: Counter,
    forged: Counter,
    /// Malformed messages refused, and batches dropped because their hasher had already
    /// given up on them.
    intake: Arc<IntakeStats>,
    /// Leading zero bits that make a nugget here: a gauge, written every second.
    difficulty: u32,
}

impl WorkerMeter {
    fn new(difficulty: u32, intake: Arc<IntakeStats>) -> WorkerMeter {
        WorkerMeter {
            hashes: Counter::default(),
            nuggets: Counter::default(),
            forged: Counter::default(),
            intake,
            difficulty,
        }
    }

    fn stats_data(&self) -> serde_json::Value {
        serde_json::json!({
            "hashes": self.hashes.total(),
            "nuggets": self.nuggets.total(),
            "forged": self.forged.total(),
            "rejected": self.intake.rejected.total(),
            "expired": self.intake.expired.total(),
            "difficulty": self.difficulty,
        })
    }
}

impl Meter for WorkerMeter {
    fn measurement(&self) -> &'static Measurement {
        &schema::WORKER
    }

    fn fields(&self, _period: Duration) -> Vec<FieldValue> {
        vec![
            worker::HASHES.of(self.hashes.take_delta()),
            worker::NUGGETS.of(self.nuggets.take_delta()),
            worker::FORGED.of(self.forged.take_delta()),
            worker::REJECTED.of(self.intake.rejected.take_delta()),
            worker::EXPIRED.of(self.intake.expired.take_delta()),
            worker::DIFFICULTY.at(self.difficulty),
        ]
    }
}

pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<Report> {
    let difficulty = config
        .difficulty
        .unwrap_or(config.common.profile.defaults().difficulty);
    let Some(runtime) = StageRuntime::start(Stage::Worker, &config.common, &shutdown).await? else {
        return Ok(Report::default());
    };
    let mut intake = Intake::start(
        runtime.client.clone(),
        IntakeConfig {
            stage: Stage::Worker,
            subject: runtime.subjects.digests.clone(),
            instance: runtime.instance.clone(),
            service: runtime.service_connector(),
            // Judging is quick: one place in the group is enough.
            room: None,
        },
    )
    .await?;
    let meter = Arc::new(WorkerMeter::new(difficulty, intake.stats()));
    intake.set_stats_data({
        let meter = meter.clone();
        move || meter.stats_data()
    });
    runtime.health.set_ready();
    let reporter = runtime.report(meter.clone());
    let delay = Duration::from_millis(config.delay_ms);
    tracing::info!(difficulty, ?delay, nuggets = %runtime.subjects.nuggets, "judging digests");

    let judging = Judging {
        meter,
        max_payload: runtime.max_payload(),
        sink: runtime.sink(),
        client: runtime.client.clone(),
        nuggets: runtime.subjects.nuggets.clone(),
        forgery_log: Throttle::default(),
        delay,
    };
    while let Some(incoming) = intake.next(&shutdown).await {
        judging.take(incoming).await;
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
    /// Simulated cost of a batch (`WORKER_DELAY_MS`).
    delay: Duration,
}

impl Judging {
    /// One batch, from its arrival to its answer to the hasher: decode, judge every digest,
    /// check and record the nuggets, acknowledge.
    async fn take(&self, incoming: Incoming) {
        let batch = match DigestBatch::decode(incoming.body(), self.max_payload) {
            Ok(batch) => batch,
            Err(e) => return incoming.refuse(e).await,
        };
        // The simulated cost comes before the expiry check: a batch whose sender gave up on
        // it meanwhile is dropped, not counted twice (lost there, judged here).
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if incoming.expired() {
            return incoming.drop_expired();
        }
        // Judged, it must be acknowledged; if that cannot be, the hasher counts it lost, so it
        // is not judged either.
        if !incoming.answerable() {
            return incoming.drop_unanswerable();
        }
        let origin = incoming.origin();
        let difficulty = self.meter.difficulty;
        for (index, digest) in batch.digests().enumerate() {
            if !nugget::is_nugget(digest, difficulty) {
                continue;
            }
            let number = batch.numbers.number(index);
            if !nugget::is_digest_of(&number, digest) {
                self.forged(&incoming, &number, digest);
                continue;
            }
            let found = record_nugget(&self.sink, &number, digest, difficulty, origin.clone());
            self.publish(&found).await;
            self.meter.nuggets.add(1);
        }
        self.meter.hashes.add(batch.count() as u64);
        // Judged and recorded: acknowledge to the hasher.
        incoming.ack().await;
    }

    /// Counts a nugget candidate whose digest is not its number's, and says so (rate-limited).
    fn forged(&self, incoming: &Incoming, number: &[u8], digest: &[u8]) {
        self.meter.forged.add(1);
        if let Some(left_out) = self.forgery_log.admit() {
            // The sender's name comes from the message: Debug-quoted, it cannot forge log lines.
            tracing::warn!(
                sender = ?incoming.sender(),
                batch = ?incoming.origin(),
                number = %hex::encode(number),
                digest = %hex::encode(digest),
                forged_total = self.meter.forged.total(),
                similar_left_out = left_out,
                "refused a forged nugget: its digest is not SHA-256 of its number (not recorded)"
            );
        }
    }

    /// Publishes a nugget on the live feed.
    async fn publish(&self, found: &Nugget) {
        let json = serde_json::to_vec(found).expect("a nugget always serializes");
        if let Err(e) = self.client.publish(self.nuggets.clone(), json.into()).await {
            // The nugget is in InfluxDB regardless; only the live feed missed it.
            tracing::warn!("could not publish a nugget on {}: {e}", self.nuggets);
        }
    }
}

fn record_nugget(
    sink: &StatsSink,
    number: &[u8],
    digest: &[u8],
    difficulty: u32,
    batch: Option<String>,
) -> Nugget {
    let found = Nugget {
        number: hex::encode(number),
        digest: hex::encode(digest),
        zero_bits: nugget::leading_zero_bits(digest),
        difficulty,
        instance: sink.instance().to_owned(),
        batch,
        found_at_ns: sink.event_time_ns(),
    };
    sink.push(Point {
        measurement: &schema::NUGGET,
        fields: vec![
            schema::nugget::NUMBER.of(found.number.clone()),
            schema::nugget::DIGEST.of(found.digest.clone()),
            schema::nugget::ZERO_BITS.of(found.zero_bits),
        ],
        time_ns: found.found_at_ns,
    });
    tracing::debug!(digest = %found.digest, "nugget");
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_point_carries_counts_since_the_last_one_and_the_difficulty() {
        let meter = WorkerMeter::new(23, Arc::default());
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
