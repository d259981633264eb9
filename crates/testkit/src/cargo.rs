//! Building the workspace's own binaries, for tests that run a stage as a real process (to kill
//! it with a signal, say).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

use crate::process::workspace_root;

/// Variables cargo sets for a crate (and its tests), not for cargo itself.
const CRATE_ENV: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];
const CRATE_ENV_PREFIXES: &[&str] = &["CARGO_PKG_", "CARGO_BIN_EXE_"];

/// Binaries built so far by this process, by name.
static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);

/// Builds the workspace binary `name` (`$CARGO build --bin <name>`, dev profile) once per
/// process and returns the path of the executable (normally `<workspace>/target/debug/<name>`;
/// the path cargo reports, so `CARGO_TARGET_DIR` is honoured).
///
/// Blocks while cargo runs: async tests call [`cargo_bin_async`]. Callers asking at the same
/// time wait for the one build. Panics with cargo's output if the build
/// fails.
pub fn cargo_bin(name: &str) -> PathBuf {
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let path = build(name);
    built.insert(name.to_owned(), path.clone());
    path
}

/// [`cargo_bin`] on a blocking thread, for async tests.
pub async fn cargo_bin_async(name: &str) -> PathBuf {
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || cargo_bin(&name))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn build(name: &str) -> PathBuf {
    // Cargo sets CARGO for the tests it runs; outside cargo, use the one on PATH.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--bin",
            name,
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null());
    // Cargo sets these for the test process, as it does for a crate being compiled. Passed on,
    // they would look like a change to build scripts that watch them (ring's does), and the
    // dependencies would be rebuilt here and again by the next `cargo test`.
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        if CRATE_ENV.contains(&key_str.as_ref())
            || CRATE_ENV_PREFIXES.iter().any(|p| key_str.starts_with(p))
        {
            cmd.env_remove(&key);
        }
    }
    tracing::info!(bin = name, "building with cargo");
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cargo_bin({name:?}): cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "cargo_bin({name:?}): `{cmd:?}` in {} failed with {}:\n{stderr}",
        root.display(),
        output.status
    );
    // Cargo reports every artifact as a JSON line; the binary's has its `executable`.
    let path = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name)
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| {
            panic!(
                "cargo_bin({name:?}): `{cmd:?}` succeeded but reported no executable named \
                 {name:?}; stderr:\n{stderr}"
            )
        });
    assert!(
        path.is_file(),
        "cargo_bin({name:?}): cargo reported {} but it is not a file",
        path.display()
    );
    path
}
