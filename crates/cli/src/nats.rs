//! Connecting to NATS for a command: the services' own connection (credentials, TLS), but
//! with a deadline, because a command should say "unreachable" rather than wait for ever as a
//! service does.

use std::time::Duration;

use async_nats::Client;
use chocominer_process::NatsArgs;
use chocominer_process::Shutdown;

/// How long a command waits for NATS before giving up.
pub const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// Connects, or fails with one clear line; `Ok(None)` when Ctrl-C came first.
pub async fn connect(
    args: &NatsArgs,
    name: &str,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<Client>> {
    let urls = chocominer_process::shown_urls(args);
    let connecting = chocominer_process::connect(args, name, shutdown);
    match tokio::time::timeout(CONNECT_WITHIN, connecting).await {
        Ok(connected) => connected,
        Err(_) => anyhow::bail!(
            "cannot reach NATS at {urls} (no connection within {} s): {}",
            CONNECT_WITHIN.as_secs(),
            crate::stack_down_hint("nats-server", "--nats-url", "NATS_URL")
        ),
    }
}
