//! The bench binary end to end with tiny settings (debug stage binaries, seconds instead of
//! minutes): it runs every part, exits 0, and writes a Markdown report and a JSON result with
//! every section, a positive full-profile rate for both encodings and nothing lost.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest the tiny run may take; it takes about half of it on an idle 2-core machine.
const WITHIN: Duration = Duration::from_secs(120);

#[test]
fn a_tiny_bench_runs_every_part_and_writes_its_result() {
    let rng = testkit::cargo_bin("rng");
    testkit::cargo_bin("hasher");
    testkit::cargo_bin("worker");
    let bin_dir = rng.parent().expect("the stage binaries' directory");
    let out = tempfile::tempdir().expect("temp dir for the result");
    // Beside the result, not in it: the log and stdout, shown if the run fails.
    let logs = tempfile::tempdir().expect("temp dir for the log");
    let log = logs.path().join("bench.log");
    let log_file = std::fs::File::create(&log).expect("create the log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--limit-time", "1s", "--warm-up", "1s", "--duration", "2s"])
        .args(["--demo-hashers", "1,2", "--demo-warm-up", "1s"])
        .args(["--demo-duration", "2s"])
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out-dir")
        .arg(out.path())
        .env_remove("RUST_LOG")
        // The stages inherit it: debug builds hash a full-profile window of 16 batches of
        // 32,000 numbers in more than the 5 s ack timeout, and would count them lost.
        .env("ACK_TIMEOUT_MS", "60000")
        .stdout(log_file.try_clone().expect("the log file twice"))
        .stderr(log_file)
        .spawn()
        .expect("run the bench binary");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the bench") {
            break status;
        }
        if started.elapsed() > WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("the bench did not finish within {WITHIN:?}:\n{output}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "bench exited with {status}:\n{output}");

    let files: Vec<_> = std::fs::read_dir(out.path())
        .expect("the out dir")
        .map(|entry| entry.expect("a file").path())
        .collect();
    let with = |ext: &str| {
        files
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .unwrap_or_else(|| panic!("no .{ext} in {files:?}"))
    };
    let markdown = std::fs::read_to_string(with("md")).expect("read the report");
    assert!(markdown.starts_with("## Bench "), "{markdown}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(with("json")).expect("read the JSON"))
            .expect("the result is JSON");

    for section in ["machine", "settings", "limit", "full", "demo", "targets"] {
        assert!(!json[section].is_null(), "{section} missing: {json:#}");
    }
    assert_eq!(json["limit"].as_array().map(Vec::len), Some(2), "{json:#}");
    let full = json["full"].as_array().expect("full is a list");
    let encodings: Vec<&str> = full.iter().filter_map(|r| r["encoding"].as_str()).collect();
    assert_eq!(encodings, ["seeded", "raw"]);
    for run in full {
        assert!(run["rate"].as_f64().unwrap_or(0.0) > 0.0, "{run:#}");
        assert_eq!(run["lost"], 0, "{run:#}");
        assert_eq!(run["conserved"], true, "{run:#}");
        assert_eq!(
            run["processes"].as_array().map(Vec::len),
            Some(5),
            "{run:#}"
        );
    }
    let demo = json["demo"]["runs"].as_array().expect("demo runs");
    let hashers: Vec<u64> = demo.iter().filter_map(|r| r["hashers"].as_u64()).collect();
    assert_eq!(hashers, [1, 2]);
    assert!(
        demo.iter().all(|r| r["rate"].as_f64().unwrap_or(0.0) > 0.0),
        "{demo:#?}"
    );
    assert!(!json["targets"].as_array().expect("targets").is_empty());
}
