//! rng: makes random 32-byte numbers and sends them, in batches, to the hashers.
//!
//! Paced by `RNG_RATE`, it sends batches on `<prefix>.numbers` with at most `RNG_IN_FLIGHT`
//! unacknowledged: when the hashers fall behind it slows down, when none is there it waits.

use std::sync::Arc;
use std::time::Duration;

use chocominer_codec::{NUMBER_LEN, NumberBatch, NumberEncoding, Numbers, max_batch_for_payload};
use chocominer_influx::schema::{self, FieldValue, Measurement, rng};
use chocominer_model::Stage;
use chocominer_pipeline::runtime::StageRuntime;
use chocominer_pipeline::stats::Meter;
use chocominer_pipeline::{CommonArgs, RateLimiter, SenderStats};
use chocominer_process::{SettingError, Shutdown};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "rng", version, about = "ChocoMiner rng: makes random 32-byte numbers for the hashers", after_help = chocominer_process::ENV_HELP)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Numbers per second made by this instance; 0 = unlimited [default: demo 10, full 0].
    #[arg(long, env = "RNG_RATE", value_parser = numbers_per_second)]
    pub rate: Option<f64>,
    /// Numbers per batch [default: demo 1, full 32000, lowered to fit]. Their digest batch must
    /// fit the server's max payload (32 bytes a number seeded, 64 raw: 1 MB holds about 32,000
    /// or 16,000); a larger batch is refused once connected, naming the limit.
    #[arg(long, env = "RNG_BATCH", value_parser = clap::value_parser!(u64).range(1..=largest_batch()))]
    pub batch: Option<u64>,
    /// How numbers travel: raw (32 bytes each) or seeded (a ChaCha8 seed per batch whose
    /// keystream is the batch) [default: demo raw, full seeded].
    #[arg(long, env = "RNG_NUMBERS", value_enum)]
    pub numbers: Option<NumberEncoding>,
    /// Seed for a reproducible stream of numbers [default: random].
    #[arg(long, env = "RNG_SEED")]
    pub seed: Option<u64>,
    /// Batches that may wait for an acknowledgement at once [default: demo 16, full 16, or 4
    /// with raw numbers].
    #[arg(long, env = "RNG_IN_FLIGHT", value_parser = clap::value_parser!(u64).range(1..))]
    pub in_flight: Option<u64>,
}

/// The most numbers a batch may hold with any server: seeded, in nats-server's largest payload.
fn largest_batch() -> u64 {
    max_batch_for_payload(
        chocominer_process::NATS_PAYLOAD_LIMIT,
        NumberEncoding::Seeded,
    ) as u64
}

/// `RNG_RATE`'s value parser: a finite number of numbers per second, 0 or more (0 = no limit).
fn numbers_per_second(text: &str) -> Result<f64, String> {
    let rate: f64 = text.trim().parse().map_err(|e| format!("{e}"))?;
    if !rate.is_finite() || rate < 0.0 {
        return Err("expected numbers per second, 0 or more (0 = unlimited)".into());
    }
    Ok(rate)
}

/// Totals of a run, in numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    /// Numbers made and sent.
    pub generated: u64,
    /// Numbers whose batch a hasher acknowledged.
    pub acked: u64,
    /// Numbers whose batch was lost: not acknowledged in time, refused, or still waiting (no
    /// hasher there) when rng stopped.
    pub lost: u64,
    pub lost_batches: u64,
    /// Times it waited for a hasher to come back (each logged once).
    pub waits: u64,
    /// Messages on its reply inbox that named no batch it sent: ignored.
    pub stray: u64,
}

struct RngMeter {
    sender: Arc<SenderStats>,
    /// Numbers/s this instance may make; 0 = unlimited.
    rate_limit: f64,
}

impl Meter for RngMeter {
    fn measurement(&self) -> &'static Measurement {
        &schema::RNG
    }

    fn fields(&self, _period: Duration) -> Vec<FieldValue> {
        vec![
            rng::NUMBERS.of(self.sender.sent.take_delta()),
            rng::LOST.of(self.sender.lost.take_delta()),
            rng::IN_FLIGHT.at(self.sender.in_flight()),
            rng::WINDOW.at(self.sender.window()),
            rng::RATE_LIMIT.at(self.rate_limit),
            rng::WAITING.at(self.sender.waiting()),
            rng::STRAY.of(self.sender.stray.take_delta()),
        ]
    }
}

pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<Report> {
    let defaults = config.common.profile.defaults();
    let Some(runtime) = StageRuntime::start(Stage::Rng, &config.common, &shutdown).await? else {
        return Ok(Report::default());
    };
    let rate = config.rate.unwrap_or(defaults.rng_rate);
    let encoding = config.numbers.unwrap_or(defaults.rng_numbers);
    let max_payload = runtime.max_payload();
    // The defaults are lowered to fit; a batch asked for is refused if it does not, before
    // anything is sent (nothing for the runtime's stop to settle).
    let batch = match config.batch {
        Some(batch) => batch as usize,
        None => defaults.rng_batch_for(encoding, max_payload),
    };
    let max_batch = max_batch_for_payload(max_payload, encoding);
    if batch > max_batch {
        return Err(SettingError {
            setting: "RNG_BATCH",
            reason: format!(
                "{batch} {} numbers make digest batches larger than the server's max payload of \
                 {max_payload} bytes; at most {max_batch} fit (or raise max_payload in the \
                 nats-server config)",
                encoding.name(),
            ),
        }
        .into());
    }
    let in_flight = config
        .in_flight
        .map_or(defaults.rng_in_flight_for(encoding), |n| n as usize);
    let sender = runtime.sender(in_flight).await?;
    runtime.health.set_ready();
    let reporter = runtime.report(Arc::new(RngMeter {
        sender: sender.stats(),
        rate_limit: rate.max(0.0),
    }));
    let mut maker = NumberMaker::new(config.seed, encoding, batch);
    tracing::info!(
        rate = if rate > 0.0 { format!("{rate}/s") } else { "unlimited".into() },
        batch,
        ?encoding,
        subject = %runtime.subjects.numbers,
        "making numbers"
    );

    let mut limiter = RateLimiter::new(rate);
    loop {
        tokio::select! {
            _ = limiter.acquire(batch) => {}
            _ = shutdown.triggered() => break,
        }
        let Ok(credit) = sender.reserve(&shutdown).await else {
            break;
        };
        let body = NumberBatch {
            seq: credit.seq(),
            numbers: maker.make(),
        }
        .encode();
        credit.send(body, batch, None).await;
    }

    sender.close().await;
    let sent = sender.stats();
    let report = Report {
        generated: sent.sent.total(),
        acked: sent.acked.total(),
        lost: sent.lost.total(),
        lost_batches: sent.lost_batches.total(),
        waits: sent.waits.total(),
        stray: sent.stray.total(),
    };
    runtime.finish(reporter).await;
    Ok(report)
}

/// Makes one batch's numbers after another from one random stream: public for `just bench`.
pub struct NumberMaker {
    rng: ChaCha8Rng,
    encoding: NumberEncoding,
    batch: usize,
    /// The last raw batch (reused; empty when seeded).
    raw: Vec<u8>,
}

impl NumberMaker {
    /// Seeded with `seed` for a reproducible stream, else at random.
    pub fn new(seed: Option<u64>, encoding: NumberEncoding, batch: usize) -> Self {
        let rng = match seed {
            Some(seed) => ChaCha8Rng::seed_from_u64(seed),
            None => ChaCha8Rng::from_rng(&mut rand::rng()),
        };
        let raw_len = match encoding {
            NumberEncoding::Raw => batch * NUMBER_LEN,
            NumberEncoding::Seeded => 0,
        };
        NumberMaker {
            rng,
            encoding,
            batch,
            raw: vec![0; raw_len],
        }
    }

    /// The next batch: the numbers themselves, or a seed whose keystream they are.
    pub fn make(&mut self) -> Numbers<'_> {
        match self.encoding {
            NumberEncoding::Raw => {
                self.rng.fill_bytes(&mut self.raw);
                Numbers::Raw(&self.raw)
            }
            NumberEncoding::Seeded => {
                let mut seed = [0u8; 32];
                self.rng.fill_bytes(&mut seed);
                Numbers::Seeded {
                    seed,
                    count: self.batch as u32,
                }
            }
        }
    }
}
