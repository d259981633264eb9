//! `soak`: runs the full profile for a long while and checks that nothing leaks or is lost.
//!
//! The release binaries of rng, hasher and worker run as separate processes on a nats-server
//! and an influxd of their own, on free ports (the test harness's `Stack`, so the servers run
//! the project's own configuration, authorization and InfluxDB credentials included). Every
//! `--every` it logs progress (elapsed, hashes/s, lost, resident memory of every process) and
//! samples the memory and CPU time of all five processes. At the end it stops the stages with
//! SIGTERM and judges: lost numbers (must be 0), conservation (rng's numbers = the worker's
//! judged + lost, from both the stages' own stop reports and InfluxDB's sums), reconnections
//! (the stages' "disconnected" log lines and their connection ids in nats-server's `/connz`),
//! and memory flat after warm-up (no trend beyond ±`--tolerance-pct`, see
//! [`soak::Flatness`]). The result goes to stdout and, as
//! Markdown and JSON, to `--out-dir`; the exit code is 1 when a check fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use soak::{flatness, warm_up};
use testkit::results::{
    STAGES, mb, minute_stamp, parse_duration, rate, report_field, stage_bins, table, write_result,
};
use testkit::{POLL, ProcSample, SOON, Stack, StageProcess, eventually, procstat};
use tokio::time::{Instant, MissedTickBehavior, interval};

#[derive(Debug, Parser)]
#[command(
    name = "soak",
    about = "Run the full profile (release rng, hasher and worker as processes, on a nats-server \
             and an influxd of their own) for a long while; fail on lost batches, broken \
             conservation or growing memory",
    after_help = "Every option can also be set by the environment variable shown with it. \
                  `just soak` builds the release binaries first."
)]
struct Config {
    /// How long the pipeline runs, e.g. 90s, 10m, 1h.
    #[arg(long, env = "SOAK_DURATION", default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// How often progress is logged and every process's memory and CPU time sampled.
    #[arg(long, env = "SOAK_EVERY", default_value = "10s", value_parser = parse_duration)]
    every: Duration,
    /// How far the resident memory of a process may move after warm-up, in percent: the
    /// median of the last third of its samples against that of the first third.
    #[arg(long, env = "SOAK_TOLERANCE_PCT", default_value_t = 10.0)]
    tolerance_pct: f64,
    /// Where the rng, hasher and worker binaries are [default: beside this one].
    #[arg(long, env = "SOAK_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// Where the result is written (soak-<time>.md and .json); empty (`--out-dir ''`): only
    /// printed.
    #[arg(long, env = "SOAK_OUT_DIR", default_value = "soak/results")]
    // A String, not a PathBuf: clap refuses an empty path, and empty is meaningful here.
    out_dir: String,
}

/// The processes of a run, in the order of every table.
const NAMES: [&str; 5] = ["rng", "hasher", "worker", "nats-server", "influxd"];
/// How long a stage may take to stop on SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// One round of samples: seconds since the start, and each process's reading (`None` if it
/// was gone).
struct Round {
    at: Duration,
    procs: [Option<ProcSample>; 5],
}

fn main() -> ExitCode {
    chocominer_process::init_telemetry();
    let config = Config::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(soak(config)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the soak; whether every check passed.
async fn soak(config: Config) -> anyhow::Result<bool> {
    let [rng_bin, hasher_bin, worker_bin] =
        stage_bins(config.bin_dir.as_deref(), "SOAK_BIN_DIR", "just soak")?;
    let started_at = time::OffsetDateTime::now_utc();
    tracing::info!(duration = ?config.duration, every = ?config.every, "starting nats-server, influxd and the recorder");
    // The stats go through the recorder, as deployed: a point of the full profile it refused
    // would show here as unbalanced books.
    let recorder_bin = rng_bin.with_file_name("recorder");
    anyhow::ensure!(
        recorder_bin.is_file(),
        "{} not found: build the release binaries (`cargo build --release --bins`)",
        recorder_bin.display()
    );
    let mut stack = Stack::start_with_recorder(&recorder_bin).await;
    let full = ["--profile", "full"];
    // The consumers first, so rng's first batches find them.
    let worker = stack.spawn_process(&worker_bin, "w1", &full);
    let hasher = stack.spawn_process(&hasher_bin, "h1", &full);
    stack.wait_for_service("worker", &["w1"]).await;
    stack.wait_for_service("hasher", &["h1"]).await;
    let rng = stack.spawn_process(&rng_bin, "r1", &full);
    // In the order of NAMES.
    let mut stages = [rng, hasher, worker];
    // rng connects a moment after it starts: its connection is in the ids compared at the end.
    let connections_at_start = eventually("rng connected to NATS", SOON, POLL, || async {
        let ids = stage_connections(&stack).await;
        ids.iter()
            .any(|(name, _)| name.starts_with("rng"))
            .then_some(ids)
    })
    .await;
    tracing::info!(?connections_at_start, "the pipeline runs (full profile)");

    let start = Instant::now();
    let mut rounds: Vec<Round> = Vec::new();
    let mut every = interval(config.every);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_hashes = (0i64, start);
    let max_rounds = config.duration.as_millis() / config.every.as_millis().max(1) + 2;
    for _ in 0..max_rounds {
        every.tick().await;
        let at = start.elapsed();
        let procs = sample_all(&mut stack, &mut stages);
        let hashes = stack.sum("worker", "hashes").await;
        let lost = stack.sum("rng", "lost").await + stack.sum("hasher", "lost").await;
        let secs = last_hashes.1.elapsed().as_secs_f64().max(1e-9);
        let per_second = (hashes - last_hashes.0) as f64 / secs;
        last_hashes = (hashes, Instant::now());
        let rss: Vec<String> = NAMES
            .iter()
            .zip(&procs)
            .map(|(name, p)| match p {
                Some(p) => format!("{name} {} MB", mb(p.memory.rss)),
                None => format!("{name} gone"),
            })
            .collect();
        tracing::info!(
            "soak {:>4}s/{}s: {} hashes, {}, lost {lost}; RSS {}",
            at.as_secs(),
            config.duration.as_secs(),
            hashes,
            rate(per_second),
            rss.join(", ")
        );
        let gone = procs.iter().any(Option::is_none);
        rounds.push(Round { at, procs });
        if gone {
            tracing::error!("a process exited during the soak: stopping early");
            break;
        }
        if at >= config.duration {
            break;
        }
    }
    let ran = start.elapsed();
    let connections_at_end = stage_connections(&stack).await;
    let varz = stack.nats.varz().await;

    // The stop: rng first, so the others finish what it sent, then the hasher, then the worker.
    let mut stopped = Vec::new();
    for (name, stage) in STAGES.iter().zip(stages.iter_mut()) {
        let status = stage.terminate(STOP_WITHIN).await;
        tracing::info!(name, ?status, "stopped on SIGTERM");
        stopped.push((*name, status.success()));
    }
    let logs: Vec<String> = stages.iter().map(StageProcess::log).collect();
    let sums = [
        ("rng numbers", stack.sum("rng", "numbers").await),
        ("rng lost", stack.sum("rng", "lost").await),
        ("hasher hashes", stack.sum("hasher", "hashes").await),
        ("hasher lost", stack.sum("hasher", "lost").await),
        ("worker hashes", stack.sum("worker", "hashes").await),
        ("worker nuggets", stack.sum("worker", "nuggets").await),
    ];
    let nugget_records = stack
        .rows(r#"SELECT count("digest") FROM "nugget""#)
        .await
        .first()
        .map_or(0, |row| testkit::as_i64(&row["count"]));

    let result = judge(&Judged {
        config: &config,
        started_at,
        ran,
        rounds: &rounds,
        logs: &logs,
        stopped: &stopped,
        sums: &sums,
        nugget_records,
        connections: (&connections_at_start, &connections_at_end),
        varz: &varz,
    });
    println!("{}", result.markdown);
    if !config.out_dir.is_empty() {
        write_result(
            Path::new(&config.out_dir),
            "soak",
            &started_at,
            &result.markdown,
            &result.json,
        )?;
    }
    Ok(result.passed)
}

/// Memory and CPU time of the stages, nats-server and influxd, in the order of [`NAMES`].
fn sample_all(stack: &mut Stack, stages: &mut [StageProcess; 3]) -> [Option<ProcSample>; 5] {
    let pids = [
        stages[0].pid(),
        stages[1].pid(),
        stages[2].pid(),
        stack.nats.pid(),
        stack.influx_mut().pid(),
    ];
    pids.map(|pid| pid.and_then(procstat::sample))
}

/// The stages' NATS connections now: (name, connection id), sorted. A client that lost its
/// connection and opened it again has a new id.
async fn stage_connections(stack: &Stack) -> Vec<(String, u64)> {
    let mut ids: Vec<(String, u64)> = stack
        .nats
        .connections()
        .await
        .iter()
        .filter_map(|c| Some((c["name"].as_str()?.to_owned(), c["cid"].as_u64()?)))
        .filter(|(name, _)| STAGES.iter().any(|stage| name.starts_with(stage)))
        .collect();
    ids.sort();
    ids
}

/// The stages' NATS connections: (name, connection id), sorted.
type ConnectionIds = [(String, u64)];

/// What a run left to judge.
struct Judged<'a> {
    config: &'a Config,
    started_at: time::OffsetDateTime,
    ran: Duration,
    rounds: &'a [Round],
    /// The stages' logs, in the order of [`STAGES`].
    logs: &'a [String],
    stopped: &'a [(&'static str, bool)],
    sums: &'a [(&'static str, i64)],
    nugget_records: i64,
    /// The stages' connection ids at the start and at the end.
    connections: (&'a ConnectionIds, &'a ConnectionIds),
    varz: &'a Value,
}

/// The verdict, as Markdown and JSON.
struct Verdict {
    passed: bool,
    markdown: String,
    json: Value,
}

fn judge(run: &Judged) -> Verdict {
    let sum = |name: &str| {
        run.sums
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    };
    let log_of = |stage: &str| &run.logs[STAGES.iter().position(|s| *s == stage).unwrap_or(0)];
    let from_log = |stage: &str, key: &str| report_field(log_of(stage), key);

    // Lost, and conservation, from the stages' own reports and from InfluxDB.
    let generated = from_log("rng", "generated");
    let judged = from_log("worker", "judged");
    let rng_lost = from_log("rng", "lost");
    let rng_lost_batches = from_log("rng", "lost_batches");
    let hasher_lost = from_log("hasher", "lost");
    let reports_complete = [generated, judged, rng_lost, rng_lost_batches, hasher_lost]
        .iter()
        .all(Option::is_some);
    let (generated, judged) = (generated.unwrap_or(0), judged.unwrap_or(0));
    let lost = rng_lost.unwrap_or(0) + hasher_lost.unwrap_or(0);
    let lost_influx = sum("rng lost") + sum("hasher lost");
    let conserved_reports = reports_complete && generated == judged + lost;
    let conserved_influx = sum("rng numbers") == sum("worker hashes") + lost_influx
        && sum("rng numbers") == generated as i64
        && sum("worker hashes") == judged as i64;
    let nuggets_recorded = sum("worker nuggets") == run.nugget_records;
    let no_loss = reports_complete && lost == 0 && rng_lost_batches == Some(0) && lost_influx == 0;

    // Reconnections: the stages' log lines, and their connection ids at the start and the end.
    let disconnects: usize = run
        .logs
        .iter()
        .map(|log| log.matches("disconnected from NATS").count())
        .sum();
    let same_connections = run.connections.0 == run.connections.1;
    let slow_consumers = run.varz["slow_consumers"].as_u64();

    // Memory: flat after warm-up?
    let warm_up = warm_up(run.config.duration);
    let tolerance = run.config.tolerance_pct / 100.0;
    let mut memory_rows = Vec::new();
    let mut memory_json = Vec::new();
    let mut all_flat = true;
    for (i, name) in NAMES.iter().enumerate() {
        let series: Vec<(u64, u64)> = run
            .rounds
            .iter()
            .filter_map(|r| Some((r.at.as_secs(), r.procs[i]?.memory.rss)))
            .collect();
        let after: Vec<u64> = run
            .rounds
            .iter()
            .filter(|r| r.at >= warm_up)
            .filter_map(|r| Some(r.procs[i]?.memory.rss))
            .collect();
        let last = run.rounds.iter().rev().find_map(|r| r.procs[i]);
        let first = run.rounds.iter().find_map(|r| r.procs[i]);
        let cpu = match (first, last) {
            (Some(first), Some(last)) => last.cpu.saturating_sub(first.cpu),
            _ => Duration::ZERO,
        };
        let span = match (
            run.rounds.iter().find(|r| r.procs[i].is_some()),
            run.rounds.iter().rev().find(|r| r.procs[i].is_some()),
        ) {
            (Some(a), Some(b)) => b.at.saturating_sub(a.at),
            _ => Duration::ZERO,
        };
        let cpu_share = cpu.as_secs_f64() / span.as_secs_f64().max(1e-9);
        let flat = flatness(&after, tolerance);
        // Too few samples after warm-up to judge: not flat.
        let is_flat = flat.as_ref().is_some_and(|f| f.flat);
        all_flat &= is_flat;
        let peak = last.map_or(0, |s| s.memory.peak_rss);
        memory_rows.push(vec![
            (*name).to_owned(),
            series.first().map_or("-".into(), |s| mb(s.1)),
            flat.as_ref().map_or("-".into(), |f| mb(f.min)),
            flat.as_ref().map_or("-".into(), |f| mb(f.median)),
            flat.as_ref().map_or("-".into(), |f| mb(f.max)),
            mb(peak),
            flat.as_ref()
                .map_or("-".into(), |f| format!("±{:.1} %", f.deviation * 100.0)),
            flat.as_ref().map_or("-".into(), |f| {
                format!(
                    "{} → {} ({:+.1} %)",
                    mb(f.early),
                    mb(f.late),
                    f.trend * 100.0
                )
            }),
            format!("{:.1}", cpu.as_secs_f64()),
            format!("{:.0} %", cpu_share * 100.0),
            if is_flat { "flat" } else { "NOT FLAT" }.to_owned(),
        ]);
        memory_json.push(json!({
            "process": name,
            "rss_bytes": series.iter().map(|(at, rss)| json!([at, rss])).collect::<Vec<_>>(),
            "after_warm_up": flat.as_ref().map(|f| json!({
                "min": f.min, "median": f.median, "max": f.max, "deviation": f.deviation,
                "early_median": f.early, "late_median": f.late, "trend": f.trend,
            })),
            "peak_rss_bytes": peak,
            "cpu_seconds": cpu.as_secs_f64(),
            "cpu_share": cpu_share,
            "flat": is_flat,
        }));
    }
    let stops_clean = run.stopped.iter().all(|(_, ok)| *ok);
    let passed = no_loss
        && conserved_reports
        && conserved_influx
        && nuggets_recorded
        && all_flat
        && stops_clean
        && run.ran >= run.config.duration;

    let hashes = sum("worker hashes");
    let secs = run.ran.as_secs_f64().max(1e-9);
    let yes = |ok: bool| if ok { "yes" } else { "NO" }.to_owned();
    let summary = table(
        &["check", "result"],
        &[
            vec![
                "ran".into(),
                format!(
                    "{} s of {} s",
                    run.ran.as_secs(),
                    run.config.duration.as_secs()
                ),
            ],
            vec!["total hashes (worker)".into(), hashes.to_string()],
            vec!["mean rate".into(), rate(hashes as f64 / secs)],
            vec![
                "nuggets (difficulty 23), records in InfluxDB".into(),
                format!("{}, {}", sum("worker nuggets"), run.nugget_records),
            ],
            vec![
                "lost numbers (reports / InfluxDB), lost batches (rng)".into(),
                format!(
                    "{lost} / {lost_influx}, {}",
                    rng_lost_batches.map_or("?".into(), |n| n.to_string())
                ),
            ],
            vec![
                "conservation: rng numbers = worker judged + lost (reports)".into(),
                format!(
                    "{generated} = {judged} + {lost}: {}",
                    yes(conserved_reports)
                ),
            ],
            vec![
                "conservation in InfluxDB, and equal to the reports".into(),
                yes(conserved_influx),
            ],
            vec![
                "reconnections (reported, not judged): 'disconnected' log lines; the stages' \
                 /connz ids the same at the end"
                    .into(),
                format!("{disconnects}; {}", yes(same_connections)),
            ],
            vec![
                "nats-server slow consumers (/varz)".into(),
                slow_consumers.map_or("?".into(), |n| n.to_string()),
            ],
            vec!["stages stopped cleanly on SIGTERM".into(), yes(stops_clean)],
            vec![
                format!(
                    "memory flat after {} s warm-up: last third within ±{} % of the first",
                    warm_up.as_secs(),
                    run.config.tolerance_pct
                ),
                yes(all_flat),
            ],
            vec![
                "verdict".into(),
                if passed { "PASS" } else { "FAIL" }.into(),
            ],
        ],
    );
    let memory = table(
        &[
            "process",
            "RSS first MB",
            "min MB",
            "median MB",
            "max MB",
            "peak (VmHWM) MB",
            "band",
            "trend MB",
            "CPU s",
            "CPU",
            "verdict",
        ],
        &memory_rows,
    );
    let markdown = format!(
        "## Soak {} (full profile, 1 rng, 1 hasher, 1 worker, release)\n\n{summary}\n\
         Resident memory sampled every {} s; min, median, max and band (the largest distance \
         of a sample from the median) over the samples after warm-up; trend: the median of the \
         first third of those samples, then of the last third. Flat: the trend within the \
         tolerance, or a change under {} MB. CPU: user + system time over the run, and its \
         share of one core.\n\n{memory}",
        minute_stamp(&run.started_at),
        run.config.every.as_secs(),
        mb(soak::FLAT_SLACK),
    );
    let json = json!({
        "started_at": run.started_at.unix_timestamp(),
        "duration_s": run.config.duration.as_secs(),
        "ran_s": run.ran.as_secs_f64(),
        "every_s": run.config.every.as_secs(),
        "warm_up_s": warm_up.as_secs(),
        "tolerance_pct": run.config.tolerance_pct,
        "hashes": hashes,
        "nuggets": sum("worker nuggets"),
        "nugget_records": run.nugget_records,
        "reports": {
            "generated": generated, "judged": judged, "rng_lost": rng_lost,
            "rng_lost_batches": rng_lost_batches, "hasher_lost": hasher_lost,
        },
        "influx_sums": run.sums.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "conserved_reports": conserved_reports,
        "conserved_influx": conserved_influx,
        "disconnects": disconnects,
        "same_connections": same_connections,
        "connections_at_start": run.connections.0,
        "connections_at_end": run.connections.1,
        "slow_consumers": slow_consumers,
        "stopped_cleanly": stops_clean,
        "memory": memory_json,
        "passed": passed,
    });
    Verdict {
        passed,
        markdown,
        json,
    }
}
