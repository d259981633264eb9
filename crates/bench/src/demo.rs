//! The demo profile's scaling over hashers: one rng, one worker and H demo-paced hashers for
//! each H asked, on one nats-server reused while no stage is left connected to it; per H the
//! worker's rate over a window, against what the hashers' pacing allows. What is measured is
//! how evenly the hashers' queue group shares the work, so rng and the worker are taken out of
//! the way: rng's limit is ten hashers' worth (`RNG_HASHERS`) and the worker judges with no
//! simulated cost (the lesson's own pacing, where they are the bottlenecks, is played by the
//! lesson tests).

use bench::model::Demo;
use chocominer_pipeline::Profile;

use crate::Config;
use crate::stages::{self, Bins, Stage};

/// rng's limit, in hashers' worth: the most hashers the demo scaling is meant to reach.
const RNG_HASHERS: f64 = 10.0;

/// Runs the demo with each of `config.demo_hashers` hashers (in increasing order); the runs,
/// and the nats-server version.
pub async fn run(config: &Config, bins: &Bins) -> anyhow::Result<(Demo, Option<String>)> {
    let defaults = Profile::Demo.defaults();
    let per_hasher = 1.0 / defaults.hasher_delay.as_secs_f64();
    let mut demo = Demo {
        rngs: 1,
        per_hasher,
        per_rng: per_hasher * RNG_HASHERS,
        runs: Vec::new(),
    };
    let args = ["--profile", "demo"];
    let rng_rate = demo.per_rng.to_string();
    // A window for ten hashers' worth of numbers through the pipeline's latency.
    let rng_args = [&args[..], &["--rate", &rng_rate, "--in-flight", "64"]].concat();
    let worker_args = [&args[..], &["--delay-ms", "0"]].concat();
    let mut stack = stages::start_stack(config, bins).await;
    let version = stack.nats.varz().await["version"]
        .as_str()
        .map(str::to_owned);
    for &hashers in &config.demo_hashers {
        if !stages::no_stage_connected(&stack).await {
            tracing::warn!("stages of the last run still connected: a new nats-server");
            stack = stages::start_stack(config, bins).await;
        }
        let worker =
            stages::spawn_ready(&stack, "worker", &bins.worker, "w1", &worker_args).await?;
        let mut running: Vec<Stage> = Vec::new();
        for i in 1..=hashers {
            let name = format!("h{i}");
            running.push(stages::spawn_ready(&stack, "hasher", &bins.hasher, &name, &args).await?);
        }
        let names: Vec<&str> = running.iter().map(|s| s.instance.as_str()).collect();
        stack.wait_for_service("hasher", &names).await;
        stack.wait_for_service("worker", &["w1"]).await;
        let rng = stages::spawn_ready(&stack, "rng", &bins.rng, "r1", &rng_args).await?;
        // In the order they stop: rng, the hashers, the worker.
        running.insert(0, rng);
        running.push(worker);

        let what = format!("demo H={hashers}");
        let warm_up = format!("{what} warm-up");
        stages::watch(&stack, &mut running, &warm_up, config.demo_warm_up).await?;
        let first = stages::hashes(&stack, "worker", 1).await?;
        let start = tokio::time::Instant::now();
        let measuring = format!("{what} measuring");
        stages::watch(&stack, &mut running, &measuring, config.demo_duration).await?;
        let last = stages::hashes(&stack, "worker", 1).await?;
        let seconds = start.elapsed().as_secs_f64();
        let stops = stages::stop(&mut running).await;
        demo.add(hashers, last.saturating_sub(first), seconds, stops.lost());
        if let Some(run) = demo.runs.last() {
            tracing::info!(
                "{what}: {:.2}/s of a theoretical {:.0}/s ({:.1} %), efficiency {:.1} %",
                run.rate,
                run.theoretical,
                run.of_theoretical * 100.0,
                run.efficiency * 100.0
            );
        }
    }
    Ok((demo, version))
}
