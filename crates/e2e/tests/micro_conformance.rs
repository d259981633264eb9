//! The stages' NATS service-protocol answers (`$SRV.PING|INFO|STATS`), checked against the
//! rules of the service API's JSON schemas (ADR-32) and read by an official NATS client's own
//! service types: nats-py's `nats.micro` (micro_conformance.py beside this file) must parse each
//! and give every field back unchanged. Needs a Python with nats-py
//! (`scripts/install-deps.sh` puts one in .tools/venv): the test fails without it.

use std::path::PathBuf;
use std::process::Command;

use chocominer_process::Shutdown;
use testkit::Stack;

/// The venv's Python (where install-deps puts nats-py), else `python3` on PATH.
fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

#[tokio::test]
async fn hasher_and_worker_answer_as_nats_micro_expects() {
    let stack = Stack::nats_only().await;
    let shutdown = Shutdown::new();
    let hasher = stack.spawn_hasher("h1", &[], &shutdown);
    let worker = stack.spawn_worker("w1", &[], &shutdown);
    stack.wait_for_service("hasher", &["h1"]).await;
    stack.wait_for_service("worker", &["w1"]).await;

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/micro_conformance.py");
    let nats_url = stack.nats.url();
    // As people ask: the debug user.
    let password = stack.nats.password("debug").to_owned();
    let python = python();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(&script)
            .args([nats_url.as_str(), "hasher", "worker"])
            .env("NATS_USER", "debug")
            .env("NATS_PASSWORD", password)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e} (scripts/install-deps.sh)", python.display()))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "nats.micro disagrees with our service answers:\n{stdout}{stderr}"
    );
    assert!(
        stdout.contains(
            "6 responses checked against the ADR-32 schemas' rules and parsed by nats.micro, 0 \
             problems"
        ),
        "{stdout}"
    );

    hasher.stop().await;
    worker.stop().await;
}
