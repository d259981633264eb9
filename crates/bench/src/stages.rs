//! The stage processes of a bench run, for the full profile and the demo alike: spawned with a
//! health address and timed until `/readyz` answers 200, watched while the pipeline runs (a
//! progress line every few seconds), counted through the worker's `$SRV.STATS`, and stopped
//! with SIGTERM in pipeline order, their stop reports read back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use testkit::results::{rate, report_field};
use testkit::{Stack, StageProcess};
use tokio::time::{Instant, sleep, sleep_until};

use crate::Config;
use bench::model::Stops;

/// How often readiness is asked while a stage starts: the resolution of start to ready.
const READY_POLL: Duration = Duration::from_millis(1);
/// How long one `/readyz` request may take before it counts as "not yet".
const READY_REQUEST: Duration = Duration::from_millis(200);
/// How long a stage may take to be ready.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How often a running pipeline logs its progress.
const PROGRESS: Duration = Duration::from_secs(2);
/// How long a stage may take to stop on SIGTERM (a demo hasher finishes its queue first).
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// The rng, hasher and worker binaries.
pub struct Bins {
    pub rng: PathBuf,
    pub hasher: PathBuf,
    pub worker: PathBuf,
}

/// A nats-server of the bench's own, with an influxd and the recorder beside `bins` if
/// `--with-influx` (the stages then write their stats through it, as in production; without it
/// they run without).
pub async fn start_stack(config: &Config, bins: &Bins) -> Stack {
    if config.with_influx {
        tracing::info!("starting nats-server, influxd and the recorder");
        Stack::start_with_recorder(&bins.rng.with_file_name("recorder")).await
    } else {
        tracing::info!("starting nats-server");
        Stack::nats_only().await
    }
}

/// A running stage process.
pub struct Stage {
    pub stage: &'static str,
    pub instance: String,
    pub process: StageProcess,
    /// Spawn to `/readyz` answering 200.
    pub ready: Duration,
}

/// Spawns `bin` as `instance` of `stage` on `stack` with `extra` arguments and a health
/// address of its own, and waits until it is ready.
pub async fn spawn_ready(
    stack: &Stack,
    stage: &'static str,
    bin: &Path,
    instance: &str,
    extra: &[&str],
) -> anyhow::Result<Stage> {
    let address = format!("127.0.0.1:{}", testkit::free_port());
    let mut args = extra.to_vec();
    args.extend(["--health-listen", address.as_str()]);
    let readyz = format!("http://{address}/readyz");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(READY_REQUEST)
        .build()
        .context("build the HTTP client for /readyz")?;
    let start = Instant::now();
    let mut process = stack.spawn_process(bin, instance, &args);
    let deadline = start + READY_WITHIN;
    let max_rounds = READY_WITHIN.as_millis() / READY_POLL.as_millis() + 1;
    for _ in 0..max_rounds {
        let answer = client.get(&readyz).send().await;
        if answer.is_ok_and(|a| a.status() == reqwest::StatusCode::OK) {
            let ready = start.elapsed();
            tracing::info!(
                instance,
                ready_ms = format!("{:.1}", ready.as_secs_f64() * 1e3),
                "ready"
            );
            return Ok(Stage {
                stage,
                instance: instance.to_owned(),
                process,
                ready,
            });
        }
        if process.has_exited() {
            bail!(
                "{stage} {instance} exited before it was ready; log tail:\n{}",
                process.log_tail()
            );
        }
        if Instant::now() >= deadline {
            break;
        }
        sleep(READY_POLL).await;
    }
    bail!(
        "{stage} {instance} not ready within {READY_WITHIN:?}; log tail:\n{}",
        process.log_tail()
    )
}

/// The `hashes` of the `replicas` replicas of `stage` together (their `$SRV.STATS` figures).
pub async fn hashes(stack: &Stack, stage: &str, replicas: usize) -> anyhow::Result<u64> {
    let answers = stack.service_stats(stage, replicas).await;
    if answers.len() < replicas {
        bail!(
            "{} of {replicas} {stage} replicas answered $SRV.STATS",
            answers.len()
        );
    }
    answers
        .iter()
        .map(|stats| stats["endpoints"][0]["data"]["hashes"].as_u64())
        .sum::<Option<u64>>()
        .with_context(|| format!("{stage} $SRV.STATS without data.hashes: {answers:?}"))
}

/// Lets the pipeline run for `length`, logging the worker's rate every few seconds as
/// `what`; an error if a stage exits meanwhile.
pub async fn watch(
    stack: &Stack,
    stages: &mut [Stage],
    what: &str,
    length: Duration,
) -> anyhow::Result<()> {
    let end = Instant::now() + length;
    let mut last = (hashes(stack, "worker", 1).await?, Instant::now());
    let max_rounds = length.as_millis() / PROGRESS.as_millis() + 2;
    for _ in 0..max_rounds {
        let next = (Instant::now() + PROGRESS).min(end);
        sleep_until(next).await;
        for stage in stages.iter_mut() {
            if stage.process.has_exited() {
                bail!(
                    "{} {} exited during {what}; log tail:\n{}",
                    stage.stage,
                    stage.instance,
                    stage.process.log_tail()
                );
            }
        }
        let now = hashes(stack, "worker", 1).await?;
        let per_second = now.saturating_sub(last.0) as f64 / last.1.elapsed().as_secs_f64();
        let left = end.saturating_duration_since(Instant::now());
        tracing::info!(
            "{what}: {} ({:.0} s left)",
            rate(per_second),
            left.as_secs_f64()
        );
        last = (now, Instant::now());
        if next >= end {
            break;
        }
    }
    Ok(())
}

/// Stops `stages` with SIGTERM one after the other, in the order given (rng first, so the
/// others finish what it sent, then the hashers, then the worker), and reads their reports.
pub async fn stop(stages: &mut [Stage]) -> Stops {
    let mut clean = true;
    for stage in stages.iter_mut() {
        let status = stage.process.terminate(STOP_WITHIN).await;
        tracing::debug!(instance = stage.instance, ?status, "stopped on SIGTERM");
        clean &= status.success();
    }
    // `key` of the stop report of each instance of `stage`, added up.
    let total = |stage: &str, key: &str| {
        stages
            .iter()
            .filter(|s| s.stage == stage)
            .map(|s| report_field(&s.process.log(), key))
            .sum::<Option<u64>>()
    };
    Stops {
        generated: total("rng", "generated"),
        rng_lost: total("rng", "lost"),
        rng_lost_batches: total("rng", "lost_batches"),
        hasher_lost: total("hasher", "lost"),
        judged: total("worker", "judged"),
        clean,
    }
}

/// Whether no stage is connected to the stack's nats-server any more, waiting up to a few
/// seconds for the server to notice connections closed by stages that exited.
pub async fn no_stage_connected(stack: &Stack) -> bool {
    const WITHIN: Duration = Duration::from_secs(5);
    const EVERY: Duration = Duration::from_millis(50);
    for _ in 0..WITHIN.as_millis() / EVERY.as_millis() {
        let connections = stack.nats.connections().await;
        let stages = connections.iter().filter(|c| {
            c["name"].as_str().is_some_and(|name| {
                testkit::results::STAGES
                    .iter()
                    .any(|stage| name.starts_with(stage))
            })
        });
        if stages.count() == 0 {
            return true;
        }
        sleep(EVERY).await;
    }
    false
}
