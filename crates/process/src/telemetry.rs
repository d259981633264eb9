//! Logging set-up, in one place for every binary: `tracing` to stderr, filtered by RUST_LOG.
//! Panics are logged there too, as one line each.

use tracing_subscriber::EnvFilter;

/// The filter when RUST_LOG is unset. The NATS client logs every connection event at INFO,
/// unthrottled; `connection` logs them, throttled, so the client's own are kept to warnings.
pub const DEFAULT_FILTER: &str = "info,async_nats=warn";

/// Installs the global subscriber; later calls (as in tests) are no-ops. Colours only when
/// stderr is a terminal, so log files stay plain text.
pub fn init() {
    use std::io::IsTerminal;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    if installed.is_ok() {
        log_panics();
    }
}

/// A panic in a spawned task does not stop the process (the NATS client's can panic on a
/// message it cannot read): logged as one error line, where the log collector sees it.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            %location,
            "panicked: {message}"
        );
    }));
}
