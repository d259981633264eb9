//! What every ChocoMiner process does around its own work, the stages and the read side alike:
//! one configuration parsed once (`config`), the connection to NATS (`connection`), one stop
//! signal ([`Shutdown`]), logging, HTTP listeners ([`http`]) and health endpoints ([`health`]),
//! all around a binary's own `run` ([`main`]). Nothing here moves a batch: that is
//! `chocominer-pipeline`.

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
    ENV_HELP, HealthArgs, NATS_PAYLOAD_LIMIT, NatsArgs, SettingError, default_instance, host_name,
    parse, parse_instance,
};
pub use connection::{Connector, connect, round_trip, shown_urls};
pub use shutdown::Shutdown;
pub use telemetry::init as init_telemetry;
pub use throttle::Throttle;

/// Runs a binary: `fn main() -> ExitCode { chocominer_process::main(stage::run) }`. Logging,
/// the `Config` parsed, signals turned into a [`Shutdown`], then `run(config, shutdown)`; or,
/// with `--health-check`, only the probe.
pub fn main<C, R, F, Fut>(run: F) -> ExitCode
where
    C: clap::Parser,
    R: Debug,
    F: FnOnce(C, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<R>>,
{
    one_malloc_arena();
    telemetry::init();
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
                ExitCode::from(if e.is::<SettingError>() { 2 } else { 1 })
            }
        }
    })
}

/// Asks glibc for one malloc arena instead of one per allocating thread: a stage allocates its
/// 1 MB batches on one thread and frees them on another, and each arena kept such memory
/// mapped (full hasher peak: 16 MB instead of 52, `just bench`). `MALLOC_ARENA_MAX` wins.
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
