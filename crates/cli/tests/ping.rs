//! `chocominer ping STAGE` against a real pipeline: one line per probe and a summary, with the
//! figures each stage's pacing should give (rng at its limit uses ~100 % of it, a number every
//! 100 ms; a hasher paced at 50 ms a hash shows ~50 ms a hash; a worker at 30 ms a batch of
//! one, ~30 ms a hash), and one-line errors when there is nothing to probe or no server.

mod common;

use std::process::Output;
use std::time::Duration;

use chocominer_process::Shutdown;
use common::{SOON, chocominer_on, finish, run};
use serde_json::Value;
use testkit::{Stack, eventually};

/// How often `ping` is run while waiting for the pipeline to settle.
const POLL: Duration = Duration::from_millis(500);

/// `chocominer ping <args> --json` on `stack`, one JSON object per line.
async fn ping_json(stack: &Stack, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["ping"];
    all.extend(args);
    all.push("--json");
    let out = run(stack, &all).await;
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The number just before `unit` in `line`: `50` in `…, 50 ms a hash`.
fn number_before(line: &str, unit: &str) -> f64 {
    let at = line
        .find(unit)
        .unwrap_or_else(|| panic!("no {unit:?} in {line}"));
    let before = line[..at].trim_end();
    let start = before
        .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(0, |i| i + 1);
    before[start..]
        .parse()
        .unwrap_or_else(|e| panic!("{e}: no number before {unit:?} in {line}"))
}

/// rng capped at 10 numbers/s, a hasher at 50 ms a hash (20/s: busy about half the time), a
/// worker at 30 ms a batch of one number (33/s: busy about a third): rng works at its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_shows_each_stages_time_per_item_and_busy_share() {
    let stack = Stack::start().await;
    let _worker = stack.spawn_worker("w1", &["--delay-ms", "30"], &Shutdown::new());
    let hasher_args = ["--delay-ms", "50", "--concurrency", "1"];
    let _hasher = stack.spawn_hasher("h1", &hasher_args, &Shutdown::new());
    let _rng = stack.spawn_rng("r1", &["--rate", "10", "--batch", "1"], &Shutdown::new());

    // rng's figures cover its last complete seconds: wait until they are all at its pace.
    let stack_ref = &stack;
    eventually(
        "ping rng sees rng at ≥ 90 % of its limit",
        SOON,
        POLL,
        || async move {
            // Until rng's first point is in, the probe finds no instance and fails.
            let args = ["ping", "rng", "-c", "1", "--json"];
            let output = finish(chocominer_on(stack_ref, &args), &args).await;
            let probe: Value = serde_json::from_slice(&output.stdout).ok()?;
            probe["busy"].as_f64().filter(|&b| b >= 0.9)
        },
    )
    .await;

    // httping -c 3 localhost:8001
    let text = run(&stack, &["ping", "rng"]).await;
    println!("$ chocominer ping rng\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "3 probes and a summary: {text}");
    for line in &lines[..3] {
        assert!(
            line.starts_with("rng: 1 instance, ")
                && line.contains(" numbers/s of its 10/s limit ("),
            "{line}"
        );
        let share = number_before(line, " %)");
        assert!((90.0..=110.0).contains(&share), "{line}");
        assert!(line.contains(", one number every 100 ms, "), "{line}");
        assert!(line.ends_with(" batches in flight"), "{line}");
    }
    assert!(
        lines[3].starts_with("--- rng: 3 probes, 3 answered: "),
        "{}",
        lines[3]
    );

    // httping -c 3 localhost:8002
    let probes = ping_json(&stack, &["hasher", "-c", "3"]).await;
    println!("$ chocominer ping hasher -c 3 --json");
    probes.iter().for_each(|p| println!("{p}"));
    assert_eq!(probes.len(), 3, "{probes:?}");
    let mut per_hash = Vec::new();
    for (n, probe) in probes.iter().enumerate() {
        assert_eq!(probe["probe"], n as u64 + 1, "{probe}");
        assert_eq!(
            (&probe["stage"], &probe["instances"]),
            (&Value::from("hasher"), &Value::from(1)),
            "{probe}"
        );
        assert_eq!(probe["each"][0]["instance"], "h1", "{probe}");
        let rate = probe["rate"].as_f64().expect("a rate");
        assert!((6.0..=14.0).contains(&rate), "{probe}");
        let busy = probe["busy"].as_f64().expect("a busy share");
        assert!((0.2..=0.85).contains(&busy), "{probe}");
        let ms = probe["ms_per_item"].as_f64().expect("a time per hash");
        assert!((25.0..=100.0).contains(&ms), "{probe}");
        per_hash.push(ms);
    }
    let mean = per_hash.iter().sum::<f64>() / per_hash.len() as f64;
    assert!((40.0..=65.0).contains(&mean), "~50 ms a hash: {per_hash:?}");
    let text = run(&stack, &["ping", "hasher"]).await;
    println!("$ chocominer ping hasher\n{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.lines()
            .take(3)
            .all(|l| l.starts_with("hasher: 1 replica, ") && l.ends_with(" a hash")),
        "{text}"
    );

    // The count from the environment, as every option.
    let mut worker = chocominer_on(&stack, &["ping", "worker"]);
    worker.env("CHOCOMINER_PING_COUNT", "2");
    let output = finish(worker, &["ping", "worker"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    println!("$ CHOCOMINER_PING_COUNT=2 chocominer ping worker\n{text}");
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "2 probes and a summary: {text}");
    for line in &lines[..2] {
        assert!(line.starts_with("worker: 1 replica, "), "{line}");
        let ms = number_before(line, " ms a hash");
        assert!((25.0..=80.0).contains(&ms), "~30 ms a hash: {line}");
        let busy = number_before(line, " %");
        assert!(busy > 0.0, "{line}");
    }
    assert!(
        lines[2].starts_with("--- worker: 2 probes, 2 answered: "),
        "{}",
        lines[2]
    );
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A stage with nothing running: a line per probe saying so, the summary, then one line on
/// stderr and exit 1. A server out of reach: one line on stderr, exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_errors_are_one_line() {
    let stack = Stack::start().await;
    for (stage, silent) in [
        (
            "worker",
            "worker: no replica answered $SRV.STATS.worker within 300 ms",
        ),
        ("rng", "rng: no instance wrote stats in the last 3 s"),
    ] {
        let args = ["ping", stage, "-c", "1"];
        let output = finish(chocominer_on(&stack, &args), &args).await;
        let (out, err) = (String::from_utf8_lossy(&output.stdout), stderr(&output));
        assert_eq!(output.status.code(), Some(1), "{stage}: {out}{err}");
        assert_eq!(
            out,
            format!("{silent}\n--- {stage}: 1 probe, 0 answered\n"),
            "{stage}"
        );
        assert_eq!(err.lines().count(), 1, "{stage}: {err}");
        assert!(
            err.starts_with(&format!("chocominer: no {stage} ")) && err.contains("is one running?"),
            "{stage}: {err}"
        );
    }

    // Servers out of reach: hasher and worker need only NATS, rng only InfluxDB.
    let nats_nowhere = format!("nats://127.0.0.1:{}", testkit::free_port());
    let influx_nowhere = format!("http://127.0.0.1:{}", testkit::free_port());
    let cases = [
        ("hasher", "--nats-url", &nats_nowhere, "NATS"),
        ("rng", "--influx-url", &influx_nowhere, "InfluxDB"),
    ];
    for (stage, flag, nowhere, server) in cases {
        let mut args: Vec<String> = ["ping", stage, flag, nowhere].map(str::to_owned).to_vec();
        if flag == "--nats-url" {
            args.extend(stack.nats.user_args("cli"));
        } else {
            args.extend(stack.influx().reader_args().into_iter().skip(2));
        }
        let shown: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = finish(common::chocominer(&args), &shown).await;
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{stage}: {err}");
        assert_eq!(err.lines().count(), 1, "{stage}: {err}");
        assert!(
            err.starts_with(&format!("chocominer: cannot reach {server} at {nowhere}")),
            "{stage}: {err}"
        );
        assert!(err.contains("Start it with `just up`"), "{stage}: {err}");
        assert!(output.stdout.is_empty(), "{stage}");
    }
}
