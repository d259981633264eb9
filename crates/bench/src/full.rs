//! The full profile end to end for one encoding: one rng, hasher and worker process on a
//! nats-server of their own, timed to ready, warmed up, then measured over a window: the
//! worker's rate cross-checked against the hasher's and rng's, CPU time and peak memory of
//! every process, nats-server's traffic; then stopped, their stop reports read.

use std::time::Duration;

use anyhow::Context;
use bench::model::{FullRun, ProcessFigures, Traffic};
use chocominer_codec::NumberEncoding;
use serde_json::Value;
use testkit::{Stack, procstat};
use tokio::time::Instant;

use crate::Config;
use crate::stages::{self, Bins, Stage};

/// The processes measured, in the order of the report: the stages, nats-server, the bench.
const PROCESSES: [&str; 5] = ["rng", "hasher", "worker", "nats-server", "bench"];

/// The counters at one end of the window.
struct Snapshot {
    at: Instant,
    worker: u64,
    hasher: u64,
    /// Batches rng's connection has published.
    rng_batches: u64,
    varz: Value,
    /// CPU time of each of [`PROCESSES`].
    cpu: Vec<Option<Duration>>,
}

/// Runs the full profile with `encoding` batches of `batch` numbers; the run, and the
/// nats-server version.
pub async fn run(
    config: &Config,
    bins: &Bins,
    encoding: NumberEncoding,
    batch: usize,
    limit: Option<f64>,
) -> anyhow::Result<(FullRun, Option<String>)> {
    let name = encoding.name();
    let mut stack = stages::start_stack(config, bins).await;
    let args = ["--profile", "full"];
    // The consumers first, so rng's first batches find them.
    let worker = stages::spawn_ready(&stack, "worker", &bins.worker, "w1", &args).await?;
    let hasher = stages::spawn_ready(&stack, "hasher", &bins.hasher, "h1", &args).await?;
    stack.wait_for_service("worker", &["w1"]).await;
    stack.wait_for_service("hasher", &["h1"]).await;
    // Only rng chooses the encoding: the others take whatever comes.
    let rng_args = ["--profile", "full", "--numbers", name];
    let rng = stages::spawn_ready(&stack, "rng", &bins.rng, "r1", &rng_args).await?;
    // In the order of PROCESSES.
    let mut stages = [rng, hasher, worker];

    let what = format!("full {name}");
    stages::watch(
        &stack,
        &mut stages,
        &format!("{what} warm-up"),
        config.warm_up,
    )
    .await?;
    let first = snapshot(&mut stack, &mut stages).await?;
    stages::watch(
        &stack,
        &mut stages,
        &format!("{what} measuring"),
        config.duration,
    )
    .await?;
    let last = snapshot(&mut stack, &mut stages).await?;
    let peaks: Vec<u64> = pids(&mut stack, &mut stages)
        .into_iter()
        .map(|pid| {
            pid.and_then(procstat::memory)
                .map_or(0, |memory| memory.peak_rss)
        })
        .collect();
    let stops = stages::stop(&mut stages).await;
    if stops.lost().is_some_and(|lost| lost > 0) {
        // What the stages said about it: the run's figures alone cannot tell why.
        for stage in &stages {
            let log = stage.process.log();
            let warnings: Vec<_> = log.lines().filter(|l| l.contains(" WARN ")).collect();
            tracing::warn!(
                "full {name}: numbers lost; {} {}'s warnings:\n{}",
                stage.stage,
                stage.instance,
                warnings.join("\n")
            );
        }
    }

    let seconds = last.at.duration_since(first.at).as_secs_f64();
    let worker_hashes = last.worker.saturating_sub(first.worker);
    let rate = worker_hashes as f64 / seconds.max(1e-9);
    let ready = |name: &str| {
        stages
            .iter()
            .find(|s| s.stage == name)
            .map(|s| s.ready.as_secs_f64() * 1e3)
    };
    let processes = PROCESSES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let cpu = match (first.cpu[i], last.cpu[i]) {
                (Some(a), Some(b)) => b.saturating_sub(a).as_secs_f64(),
                _ => 0.0,
            };
            ProcessFigures {
                name: (*name).to_owned(),
                cpu_s: cpu,
                cpu_share: cpu / seconds.max(1e-9),
                peak_rss_bytes: peaks[i],
                ready_ms: ready(name),
            }
        })
        .collect();
    let run = FullRun {
        encoding: name.to_owned(),
        batch,
        seconds,
        worker_hashes,
        hasher_hashes: last.hasher.saturating_sub(first.hasher),
        rng_numbers: last.rng_batches.saturating_sub(first.rng_batches) * batch as u64,
        rate,
        limit,
        ratio: limit.map(|limit| rate / limit.max(1e-9)),
        processes,
        traffic: Traffic::between(&first.varz, &last.varz, seconds),
        lost: stops.lost(),
        conserved: stops.conserved(),
        stops,
    };
    let version = last.varz["version"].as_str().map(str::to_owned);
    tracing::info!(
        "{what}: {} hashes/s, {} of the limit, lost {:?}",
        testkit::results::rate(run.rate),
        run.ratio.map_or("-".into(), |r| format!("{r:.2}")),
        run.lost
    );
    Ok((run, version))
}

/// The pids of [`PROCESSES`] (`None` for one that has exited).
fn pids(stack: &mut Stack, stages: &mut [Stage; 3]) -> Vec<Option<u32>> {
    let mut pids: Vec<Option<u32>> = stages.iter_mut().map(|s| s.process.pid()).collect();
    pids.push(stack.nats.pid());
    pids.push(Some(std::process::id()));
    pids
}

async fn snapshot(stack: &mut Stack, stages: &mut [Stage; 3]) -> anyhow::Result<Snapshot> {
    let cpu = pids(stack, stages)
        .into_iter()
        .map(|pid| pid.and_then(procstat::cpu_time))
        .collect();
    let worker = stages::hashes(stack, "worker", 1).await?;
    let at = Instant::now();
    let hasher = stages::hashes(stack, "hasher", 1).await?;
    let rng_batches = stack
        .nats
        .connections()
        .await
        .iter()
        .find(|c| c["name"] == "rng r1")
        .and_then(|c| c["in_msgs"].as_u64())
        .context("rng's connection in nats-server's /connz")?;
    Ok(Snapshot {
        at,
        worker,
        hasher,
        rng_batches,
        varz: stack.nats.varz().await,
        cpu,
    })
}
