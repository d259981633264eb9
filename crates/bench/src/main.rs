//! `bench`: how fast ChocoMiner goes on this machine, in one run, against the targets of
//! issue 11.
//!
//! 1. The in-process limit per encoding: rng's `NumberMaker` and the hasher's `digest_prefixes` on
//!    every core, no NATS (`bench::limit`).
//! 2. The full profile end to end per encoding: release rng, hasher and worker processes on a
//!    nats-server of the bench's own (and an influxd with `--with-influx`), each timed from
//!    spawn to ready, warmed up, then measured: rate and its ratio to the limit, CPU and peak
//!    memory per process, nats-server's traffic, lost numbers and conservation (`full.rs`).
//! 3. The demo profile's scaling over H hashers (`demo.rs`).
//!
//! The result goes to stdout as Markdown and to `--out-dir` as Markdown and JSON. Exit code:
//! 0 when the bench ran, even with targets missed (they are marked); 1 with `--check` when one
//! was missed; 2 on errors.

mod demo;
mod full;
mod stages;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench::limit;
use bench::model::{Bench, Settings};
use bench::{machine, render, targets};
use chocominer_codec::{CONFIGURED_MAX_PAYLOAD, NumberEncoding};
use chocominer_pipeline::Profile;
use clap::Parser;
use clap::builder::FalseyValueParser;
use testkit::results::{parse_duration, stage_bins, write_result};

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Measure ChocoMiner on this machine: the in-process hashing limit, the full profile \
             end to end (release rng, hasher and worker as processes) per encoding, and the \
             demo profile's scaling over hashers, against the targets of issue 11",
    after_help = "Every option can also be set by the environment variable shown with it. \
                  `just bench` builds the release binaries first. Exit code: 0 when the bench \
                  ran (missed targets are marked in the report), 1 with --check when a target \
                  was missed, 2 on errors."
)]
pub struct Config {
    /// How long the in-process limit hashes, per encoding, e.g. 5s.
    #[arg(long, env = "BENCH_LIMIT_TIME", default_value = "5s", value_parser = parse_duration)]
    pub limit_time: Duration,
    /// How long the full profile runs before it is measured, per encoding.
    #[arg(long, env = "BENCH_WARM_UP", default_value = "5s", value_parser = parse_duration)]
    pub warm_up: Duration,
    /// How long the full profile is measured, per encoding.
    #[arg(long, env = "BENCH_DURATION", default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// The encodings of the limit and the full profile, comma-separated.
    #[arg(
        long,
        env = "BENCH_ENCODINGS",
        value_enum,
        value_delimiter = ',',
        default_value = "seeded,raw"
    )]
    pub encodings: Vec<NumberEncoding>,
    /// The numbers of hashers the demo profile runs with, comma-separated.
    #[arg(
        long,
        env = "BENCH_DEMO_HASHERS",
        value_delimiter = ',',
        default_value = "1,2,4,8,10",
        value_parser = clap::value_parser!(u32).range(1..=64)
    )]
    pub demo_hashers: Vec<u32>,
    /// How long the demo runs before it is measured, per number of hashers.
    #[arg(long, env = "BENCH_DEMO_WARM_UP", default_value = "5s", value_parser = parse_duration)]
    pub demo_warm_up: Duration,
    /// How long the demo is measured, per number of hashers.
    #[arg(long, env = "BENCH_DEMO_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub demo_duration: Duration,
    /// Skip the full profile end to end (the limit is still measured).
    #[arg(long, env = "BENCH_SKIP_FULL", value_parser = FalseyValueParser::new())]
    pub skip_full: bool,
    /// Skip the demo profile's scaling.
    #[arg(long, env = "BENCH_SKIP_DEMO", value_parser = FalseyValueParser::new())]
    pub skip_demo: bool,
    /// Also start an influxd, and have the stages write their stats to it as in production.
    #[arg(long, env = "BENCH_WITH_INFLUX", value_parser = FalseyValueParser::new())]
    pub with_influx: bool,
    /// Exit 1 when a target is missed.
    #[arg(long, env = "BENCH_CHECK", value_parser = FalseyValueParser::new())]
    pub check: bool,
    /// Where the rng, hasher and worker binaries are [default: beside this one].
    #[arg(long, env = "BENCH_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Where the result is written (bench-<time>.md and .json), besides stdout.
    #[arg(long, env = "BENCH_OUT_DIR", default_value = "bench/results")]
    pub out_dir: PathBuf,
}

fn main() -> ExitCode {
    // Its NATS client's own INFO lines are left out (as every binary's, see DEFAULT_FILTER):
    // the client of a stack already stopped would say every few seconds that it reconnects.
    chocominer_process::init_telemetry();
    let mut config = Config::parse();
    // Increasing, once each: the efficiency is against the smallest H.
    config.demo_hashers.sort_unstable();
    config.demo_hashers.dedup();
    config.encodings.dedup();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // The test harness panics when a server cannot start: an error of the run, exit 2.
    let started_at = time::OffsetDateTime::now_utc();
    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(bench(&config, &started_at))
    }));
    let bench = match ran {
        Ok(Ok(bench)) => bench,
        Ok(Err(e)) => {
            tracing::error!("{e:#}");
            return ExitCode::from(2);
        }
        Err(_) => return ExitCode::from(2),
    };
    let markdown = render::markdown(&bench);
    println!("{markdown}");
    let json = match serde_json::to_value(&bench) {
        Ok(json) => json,
        Err(e) => {
            tracing::error!("the result as JSON: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = write_result(&config.out_dir, "bench", &started_at, &markdown, &json) {
        tracing::error!("{e:#}");
        return ExitCode::from(2);
    }
    let missed = bench.targets.iter().filter(|t| !t.pass).count();
    if missed > 0 {
        tracing::warn!(missed, "targets missed");
    }
    if config.check && missed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The full profile's batch of `encoding`: what rng makes by default on the project's
/// nats-server.
fn batch_of(encoding: NumberEncoding) -> usize {
    Profile::Full
        .defaults()
        .rng_batch_for(encoding, CONFIGURED_MAX_PAYLOAD)
}

/// Runs every part asked for.
async fn bench(config: &Config, started_at: &time::OffsetDateTime) -> anyhow::Result<Bench> {
    let mut machine = machine::this_machine();
    let bins = if config.skip_full && config.skip_demo {
        None
    } else {
        let [rng, hasher, worker] =
            stage_bins(config.bin_dir.as_deref(), "BENCH_BIN_DIR", "just bench")?;
        Some(stages::Bins {
            rng,
            hasher,
            worker,
        })
    };
    let threads = machine.cores;
    let mut limits = Vec::new();
    for &encoding in &config.encodings {
        let batch = batch_of(encoding);
        let name = encoding.name();
        tracing::info!(
            threads,
            batch,
            "limit {name}: hashing for {:?}",
            config.limit_time
        );
        let time = config.limit_time;
        let limit =
            tokio::task::spawn_blocking(move || limit::measure(encoding, batch, threads, time))
                .await?;
        tracing::info!("limit {name}: {}", testkit::results::rate(limit.rate));
        limits.push(limit);
    }

    let mut full = Vec::new();
    if let (false, Some(bins)) = (config.skip_full, &bins) {
        for (&encoding, limit) in config.encodings.iter().zip(&limits) {
            let (run, version) =
                full::run(config, bins, encoding, batch_of(encoding), Some(limit.rate)).await?;
            machine.nats_server = machine.nats_server.or(version);
            full.push(run);
        }
    }
    let demo = match (config.skip_demo, &bins) {
        (false, Some(bins)) => {
            let (demo, version) = demo::run(config, bins).await?;
            machine.nats_server = machine.nats_server.or(version);
            Some(demo)
        }
        _ => None,
    };

    let mut bench = Bench {
        started_at: started_at
            .format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .unwrap_or_default(),
        machine,
        settings: settings(config),
        limit: limits,
        full,
        demo,
        targets: Vec::new(),
    };
    bench.targets = targets::judge(&bench);
    Ok(bench)
}

fn settings(config: &Config) -> Settings {
    Settings {
        limit_time_s: config.limit_time.as_secs_f64(),
        warm_up_s: config.warm_up.as_secs_f64(),
        duration_s: config.duration.as_secs_f64(),
        demo_hashers: config.demo_hashers.clone(),
        demo_warm_up_s: config.demo_warm_up.as_secs_f64(),
        demo_duration_s: config.demo_duration.as_secs_f64(),
        encodings: config
            .encodings
            .iter()
            .map(|&e| e.name().to_owned())
            .collect(),
        batches: config.encodings.iter().map(|&e| batch_of(e)).collect(),
        skip_full: config.skip_full,
        skip_demo: config.skip_demo,
        with_influx: config.with_influx,
    }
}
