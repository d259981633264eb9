//! What every ChocoMiner process does around its own work, the stages and the read side
//! (dashboard, `chocominer`) alike: one configuration parsed once, the connection to NATS, one
//! stop signal, logging, HTTP listeners and health endpoints. Nothing here moves a batch: that
//! is `chocominer-pipeline`, which only the stages use.
//!
//! Modules:
//! - `config`: [`NatsArgs`], [`InfluxArgs`], [`HealthArgs`], instance names, and [`parse`],
//!   which names the environment variable a refused value came from;
//! - `connection`: [`connect`] to NATS (credentials, TLS, waiting for the server), the URLs
//!   [`shown_urls`] with their credentials hidden, a [`Connector`] for further connections;
//! - [`http`]: one HTTP/1 server with a connection cap and timeouts, for every listener;
//!   [`health`]: `/healthz` and `/readyz` for orchestrators, and `--health-check`;
//! - `shutdown`: [`Shutdown`], the one stop signal; `telemetry`: logging set up once
//!   ([`init_telemetry`]); `throttle`: log lines that would repeat, counted instead
//!   ([`Throttle`]); [`main`]: all of this around a binary's own `run`.

use std::fmt::Debug;
use std::future::Future;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

mod config;
mod connection;
pub mod health;
pub mod http;
mod shutdown;
mod telemetry;
mod throttle;

pub use config::{
    DEFAULT_NATS_URL, DEFAULT_SUBSCRIPTION_CAPACITY, ENV_HELP, HealthArgs, InfluxArgs,
    MAX_INSTANCE_LEN, NATS_PAYLOAD_LIMIT, NatsArgs, SettingError, default_instance, host_name,
    parse, parse_instance, parse_with,
};
pub use connection::{Connector, connect, round_trip, shown_urls};
pub use shutdown::Shutdown;
pub use telemetry::init as init_telemetry;
pub use throttle::Throttle;

/// Runs a binary: `fn main() -> ExitCode { chocominer_process::main(stage::run) }`. Logging, one
/// `Config` parsed once, signals turned into a [`Shutdown`], then `run(config, shutdown)`; or,
/// with `--health-check`, only the probe ([`health::check`]).
pub fn main<C, R, F, Fut>(run: F) -> ExitCode
where
    C: clap::Parser,
    R: Debug,
    F: FnOnce(C, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<R>>,
{
    one_malloc_arena();
    telemetry::init();
    // Every binary's Config flattens HealthArgs somewhere: read it from the same command line.
    let (config, health): (C, HealthArgs) = config::parse_with();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if health.health_check {
        return runtime.block_on(health::check(&health));
    }
    runtime.block_on(async move {
        match run(config, Shutdown::on_signals()).await {
            Ok(report) => {
                tracing::info!(?report, "stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e:#}");
                // An unworkable setting is a usage error, as clap's are.
                if e.is::<SettingError>() {
                    ExitCode::from(2)
                } else {
                    ExitCode::FAILURE
                }
            }
        }
    })
}

/// Asks glibc for one malloc arena instead of one per thread that allocates (up to eight per
/// core). A stage allocates its 1 MB batches on one thread and frees them on another, and
/// every arena kept such memory mapped: with one arena the full profile's hasher peaked at
/// 16 MB instead of 52, at the same rate (`just bench`). A `MALLOC_ARENA_MAX` set by the
/// operator wins. Other C libraries (musl, in the container images) have no such arenas.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: runs first thing in `main`, before any other thread exists; mallopt only
        // sets one of malloc's tunables.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
