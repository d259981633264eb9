//! `chocominer status` against a real pipeline: it names the stage that holds the others back,
//! and a new one once that stage is scaled; and it says so, in one line, when a server is out
//! of reach. What InfluxDB's writer role can write that no stage did (negative counts, a share
//! above 1, an instance stamped in the future) moves none of its figures.

mod common;

use std::time::Duration;

use chocominer_process::Shutdown;
use common::{SOON, run, status};
use serde_json::Value;
use testkit::{Stack, eventually};

/// How often `status` is polled while waiting for the pipeline to settle.
const POLL: Duration = Duration::from_millis(500);

/// A stage's figure from `status --json`; `None` while the stage has no instance alive.
fn figure(status: &Value, stage: &str, name: &str) -> Option<f64> {
    status["stages"][stage][name].as_f64()
}

/// A demo-paced pipeline: one hasher at 20 hashes/s (50 ms each, one at a time) behind an rng
/// making 200 numbers/s is the bottleneck, busy all the time. Four hashers (80/s) behind an
/// rng capped at 50/s hash more, and rng becomes the bottleneck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_bottleneck_and_it_moves_when_hashers_scale() {
    let stack = Stack::start().await;
    let idle = status(&stack).await;
    assert_eq!(
        (&idle["running"], &idle["bottleneck"]),
        (&Value::Bool(false), &Value::Null),
        "{idle}"
    );
    let text = run(&stack, &["status"]).await;
    assert!(text.starts_with("nothing runs"), "{text}");

    let hasher_args = ["--delay-ms", "50", "--concurrency", "1"];
    // Each stage stops on its own: only r1 is stopped, the rest run to the test's end.
    // A quick worker, whatever the profile's pace: the hasher is the slow one here.
    let _worker = stack.spawn_worker("w1", &["--delay-ms", "0"], &Shutdown::new());
    let _h1 = stack.spawn_hasher("h1", &hasher_args, &Shutdown::new());
    let r1 = stack.spawn_rng("r1", &["--rate", "200"], &Shutdown::new());

    let stack_ref = &stack;
    let before = eventually(
        "status names hasher as the bottleneck, busy ≥ 90 %",
        SOON,
        POLL,
        || async move {
            let status = status(stack_ref).await;
            let stages = &status["stages"];
            let steady = status["bottleneck"] == "hasher"
                && figure(&status, "hasher", "busy").is_some_and(|busy| busy >= 0.9)
                && stages["hasher"]["nats_replicas"] == 1
                && [&stages["rng"], &stages["hasher"], &stages["worker"]]
                    .iter()
                    .all(|s| s["alive"] == 1);
            steady.then_some(status)
        },
    )
    .await;
    let rate_before = figure(&before, "worker", "rate").expect("a rate");
    assert!(rate_before > 5.0, "a hasher hashes: {before}");
    let text = run(&stack, &["status"]).await;
    println!("one hasher:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("hasher") && l.ends_with("← bottleneck")),
        "{text}"
    );

    // Three more hashers, and an rng capped at 50/s instead.
    let _more: Vec<_> = ["h2", "h3", "h4"]
        .iter()
        .map(|name| stack.spawn_hasher(name, &hasher_args, &Shutdown::new()))
        .collect();
    let _r2 = stack.spawn_rng("r2", &["--rate", "50"], &Shutdown::new());
    r1.stop().await;

    let after = eventually(
        "status names rng as the bottleneck with four hashers",
        SOON,
        POLL,
        || async move {
            let status = status(stack_ref).await;
            let stages = &status["stages"];
            let steady = status["bottleneck"] == "rng"
                && stages["rng"]["instances"] == serde_json::json!(["r2"])
                && stages["hasher"]["alive"] == 4
                && stages["hasher"]["nats_replicas"] == 4
                && figure(&status, "worker", "rate").is_some_and(|r| r > 1.5 * rate_before);
            steady.then_some(status)
        },
    )
    .await;
    assert!(
        figure(&after, "hasher", "busy").is_some_and(|b| b < 0.9),
        "{after}"
    );
    assert_eq!(figure(&after, "rng", "rate_limit"), Some(50.0), "{after}");
    let text = run(&stack, &["status"]).await;
    println!("four hashers:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("rng") && l.ends_with("← bottleneck")),
        "{text}"
    );
}

/// Exit code 1 and one line on stderr when InfluxDB or NATS cannot be reached, pointing at
/// `just up`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_servers_are_one_line_errors() {
    let stack = Stack::start().await;
    let nowhere = format!("http://127.0.0.1:{}", testkit::free_port());
    let nats_url = stack.nats.url();
    let mut args = vec!["status", "--influx-url", &nowhere, "--nats-url", &nats_url];
    let cli = stack.nats.user_args("cli");
    args.extend(cli.iter().map(String::as_str));
    let all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = common::finish(common::chocominer(&all), &args).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("chocominer: cannot reach InfluxDB at {nowhere}")),
        "{stderr}"
    );
    // The stack may simply not be up: say how to start it.
    assert!(stderr.contains("Start it with `just up`"), "{stderr}");

    // Both wait out the connection deadline: at once.
    let nowhere = format!("nats://127.0.0.1:{}", testkit::free_port());
    let mut status = vec!["status".to_owned(), "--nats-url".into(), nowhere.clone()];
    status.extend(stack.influx().reader_args());
    let status_args: Vec<&str> = status.iter().map(String::as_str).collect();
    let sub = ["sub", "--nats-url", &nowhere];
    let (status_output, sub_output) = tokio::join!(
        common::finish(common::chocominer(&status), &status_args),
        common::finish(common::chocominer(&sub.map(str::to_owned)), &sub),
    );
    for (command, output) in [("status", status_output), ("sub", sub_output)] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.starts_with(&format!("chocominer: cannot reach NATS at {nowhere}")),
            "{command}: {stderr}"
        );
        assert!(
            stderr.contains("Start it with `just up`"),
            "{command}: {stderr}"
        );
    }
}

/// A reader with the wrong password: one line saying InfluxDB refused that user's credentials
/// and what to check, exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_influxdb_password_is_one_clear_line() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("reader.password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let influx = stack.influx().url();
    let mut args: Vec<String> = [
        "status",
        "--nats-url",
        &stack.nats.url(),
        "--influx-url",
        &influx,
        "--influx-user",
        "reader",
        "--influx-password-file",
        wrong.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(stack.nats.user_args("cli"));
    let shown: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = common::finish(common::chocominer(&args), &shown).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "chocominer: InfluxDB at {influx} refused the credentials of user \"reader\" (HTTP \
             401: authorization failed): check INFLUX_USER and INFLUX_PASSWORD_FILE (or \
             INFLUX_PASSWORD)"
        )
    );
}

/// What `status` reads from InfluxDB is anyone's text: an instance name holding a C1 control
/// and a bidirectional override reaches `--json` only escaped (`\u009b`), parsing back to the
/// very name; and the worker's forged nuggets are shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_escapes_what_it_reads_and_shows_forged_nuggets() {
    let stack = Stack::start().await;
    let name = "w\u{9b}2J\u{202e}x";
    let stack_ref = &stack;
    let (json, raw) = eventually(
        "status sees the written worker alive, with forged nuggets",
        SOON,
        POLL,
        || async move {
            // Fresh points each round, so the instance is alive whenever status looks.
            let now = chocominer_process::now_ns() / 1_000_000_000;
            let lines: String = (now - 8..=now)
                .map(|t| {
                    format!(
                        "worker,instance=w\u{9b}2J\u{202e}x hashes=10i,nuggets=0i,forged=3i,rejected=0i,expired=0i,difficulty=4i {}\n",
                        t * 1_000_000_000
                    )
                })
                .collect();
            stack_ref.influx().write(testkit::DB, &lines).await;
            let raw = run(stack_ref, &["status", "--json"]).await;
            let json: Value = serde_json::from_str(&raw).ok()?;
            (json["stages"]["worker"]["alive"] == 1
                && figure(&json, "worker", "forged").is_some_and(|f| f > 0.0))
            .then_some((json, raw))
        },
    )
    .await;
    assert!(
        !raw.contains('\u{9b}') && !raw.contains('\u{202e}') && raw.contains("\\u009b"),
        "{raw}"
    );
    assert_eq!(json["stages"]["worker"]["instances"][0], name, "{json}");
    let text = run(&stack, &["status"]).await;
    assert!(
        text.contains("worker refused ") && text.contains("forged nuggets"),
        "{text}"
    );
}

/// Written as InfluxDB's writer role (held by every stage), beside a worker w1 and a hasher h1:
/// a worker w9 with negative counts in every second, h1 busy 7 times over, a worker stamped an
/// hour ahead. `status` shows no rate below what w1 and h1 did, no share above 100 % and no
/// instance stamped in the future (w9 is alive: it wrote points now, as any writer may).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_no_value_no_stage_writes() {
    let stack = Stack::start().await;
    let writer = chocominer_influx::Client::new(&stack.influx().writer(testkit::DB)).unwrap();
    let (stack_ref, writer) = (&stack, &writer);
    let (json, text) = eventually(
        "status sees w1, w9 and h1 alive",
        SOON,
        POLL,
        || async move {
            // Fresh points each round, so the instances are alive whenever status looks.
            let now = chocominer_process::now_ns() / 1_000_000_000;
            let mut lines = String::new();
            for t in now - 8..=now {
                let at = t * 1_000_000_000;
                lines += &format!(
                    "worker,instance=w1 hashes=10i,nuggets=1i,forged=0i,rejected=0i,expired=0i,difficulty=4i {at}\n\
                     worker,instance=w9 hashes=-1000i,nuggets=-100i,forged=-1000i,rejected=-5i {at}\n\
                     hasher,instance=h1 hashes=10i,busy=7,lost=0i,rejected=0i,in_flight=1i,window=8i {at}\n"
                );
            }
            lines += &format!(
                "worker,instance=ghost hashes=1i,nuggets=0i {}\n",
                (now + 3600) * 1_000_000_000
            );
            writer.write(&[lines]).await.expect("the writer writes");
            let (json, text) = tokio::join!(
                run(stack_ref, &["status", "--json"]),
                run(stack_ref, &["status"])
            );
            let json: Value = serde_json::from_str(&json).ok()?;
            (json["stages"]["worker"]["instances"].as_array()?.len() >= 2
                && json["stages"]["hasher"]["alive"] == 1)
                .then_some((json, text))
        },
    )
    .await;
    let worker = &json["stages"]["worker"];
    assert_eq!(
        worker["instances"],
        serde_json::json!(["w1", "w9"]),
        "{json}"
    );
    assert_eq!(
        ["rate", "nuggets", "forged", "rejected"].map(|f| figure(&json, "worker", f)),
        [Some(10.0), Some(1.0), Some(0.0), Some(0.0)],
        "{json}"
    );
    assert_eq!(figure(&json, "hasher", "busy"), Some(1.0), "{json}");
    println!("status:\n{text}");
    let row = |stage: &str| {
        let line = text.lines().find(|l| l.starts_with(stage));
        line.unwrap_or_else(|| panic!("no {stage} row: {text}"))
            .to_owned()
    };
    assert!(row("hasher").contains(" 100 % "), "{text}");
    assert!(row("worker").contains(" 10.0/s "), "{text}");
}

/// Stats points of the seed's plateau, written for the last seconds: one rng at its 10/s
/// limit, one hasher busy half the time, ten workers. The rule names rng.
fn plateau_points() -> String {
    let now = chocominer_process::now_ns() / 1_000_000_000;
    let mut lines = String::new();
    for t in now - 8..=now {
        let at = t * 1_000_000_000;
        lines += &format!(
            "rng,instance=r1 numbers=10i,lost=0i,in_flight=1i,window=16i,waiting=0i,rate_limit=10 {at}\n"
        );
        lines += &format!(
            "hasher,instance=h1 hashes=10i,busy=0.5,lost=0i,rejected=0i,expired=0i,in_flight=1i,window=16i,waiting=0i {at}\n"
        );
        for w in 1..=10 {
            lines += &format!(
                "worker,instance=w{w} hashes=1i,nuggets=0i,forged=0i,rejected=0i,expired=0i,difficulty=4i {at}\n"
            );
        }
    }
    lines
}

/// `status --discovery` (or CHOCOMINER_DISCOVERY) keeps every figure but leaves out the
/// bottleneck and its reason, in the text and in the JSON, and says to probe each stage
/// instead; the lesson's step is shown in both modes, naming rng's scale only without
/// discovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_hides_the_bottleneck_and_keeps_the_figures() {
    let stack = Stack::start().await;
    let stack_ref = &stack;
    let (open, hidden) = eventually(
        "status sees the plateau: 1 rng at its limit, 1 hasher, 10 workers",
        SOON,
        POLL,
        || async move {
            // Fresh points each round, so the instances are alive whenever status looks.
            stack_ref
                .influx()
                .write(testkit::DB, &plateau_points())
                .await;
            let (open, hidden) = tokio::join!(
                run(stack_ref, &["status", "--json"]),
                run(stack_ref, &["status", "--json", "--discovery"]),
            );
            let open: Value = serde_json::from_str(&open).ok()?;
            let hidden_json: Value = serde_json::from_str(&hidden).ok()?;
            let plateau = |s: &Value| {
                s["stages"]["worker"]["alive"] == 10
                    && s["stages"]["rng"]["alive"] == 1
                    && s["stages"]["hasher"]["alive"] == 1
            };
            (plateau(&open) && plateau(&hidden_json)).then_some((open, hidden))
        },
    )
    .await;
    // Without discovery: the bottleneck as before, and the lesson's next command.
    assert_eq!(open["bottleneck"], "rng", "{open}");
    assert!(open["reason"].as_str().is_some(), "{open}");
    assert_eq!(open["discovery"], false, "{open}");
    assert_eq!(
        (&open["lesson"]["id"], &open["lesson"]["number"]),
        (&Value::from("plateau"), &Value::from(3)),
        "{open}"
    );
    assert_eq!(open["lesson"]["next"]["just"], "just scale rng 3", "{open}");

    // With it: the same figures, no verdict, nothing that names rng as the one.
    let json: Value = serde_json::from_str(&hidden).unwrap();
    assert_eq!(
        (&json["bottleneck"], &json["reason"]),
        (&Value::Null, &Value::Null),
        "{json}"
    );
    assert_eq!(json["discovery"], true, "{json}");
    assert_eq!(json["stages"]["rng"]["rate_limit"], 10.0, "{json}");
    assert_eq!(json["stages"]["hasher"]["busy"], 0.5, "{json}");
    assert!(
        figure(&json, "rng", "rate").is_some_and(|r| r > 0.0),
        "{json}"
    );
    assert!(
        json["summary"]
            .as_str()
            .is_some_and(|s| s.contains("chocominer ping rng|hasher|worker")),
        "{json}"
    );
    assert_eq!(json["lesson"]["id"], "plateau", "{json}");
    assert_eq!(json["lesson"]["next"], Value::Null, "{json}");
    assert!(
        json["lesson"]["probes"]
            .as_array()
            .is_some_and(|p| p.contains(&Value::from("chocominer ping hasher"))),
        "{json}"
    );
    for giveaway in ["RNG_RATE", "more rng", "scale rng", "bottleneck: "] {
        assert!(!hidden.contains(giveaway), "{giveaway:?} in {hidden}");
    }

    // The text, discovery from the environment.
    stack.influx().write(testkit::DB, &plateau_points()).await;
    let mut cmd = common::chocominer_on(&stack, &["status"]);
    cmd.env("CHOCOMINER_DISCOVERY", "1");
    let output = common::finish(cmd, &["status"]).await;
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    println!("status, discovery:\n{text}");
    for giveaway in ["← bottleneck", "bottleneck: ", "RNG_RATE", "scale rng"] {
        assert!(!text.contains(giveaway), "{giveaway:?} in {text}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("Probe each one: chocominer ping rng|hasher|worker")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("lesson step 3/5: A plateau — next: find ")),
        "{text}"
    );
    let text = run(&stack, &["status"]).await;
    println!("status:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("rng") && l.ends_with("← bottleneck")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "lesson step 3/5: A plateau — next: just scale rng 3"),
        "{text}"
    );
}
