//! webui: the ChocoMiner dashboard, a web page for the projector while students scale stages.
//! It only reads InfluxDB (no NATS) and shows what [`summary`] computes, refreshed every
//! second, with the scaling lesson played along ([`lesson`]; docs/dashboard.md). The page is
//! embedded in the binary and loads nothing from elsewhere, so it works offline. It is ready as
//! soon as it serves: the page says when InfluxDB is unreachable, and a restart would not help.

pub mod hosts;
pub mod lesson;
pub mod server;
pub mod summary;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::middleware;
use chocominer_influx::{self as influx, InfluxArgs};
use chocominer_process::HealthArgs;
use chocominer_process::Shutdown;
use chocominer_process::health::{self, Health, HealthServer};
use chocominer_process::http;
use chocominer_status::lesson::DISCOVERY_ENV;
use clap::builder::BoolishValueParser;
use tokio::net::TcpListener;

use crate::hosts::AllowedHosts;
use crate::server::AppState;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "webui", version, about = "ChocoMiner dashboard: the pipeline's rates, stages and nuggets in a web page", after_help = chocominer_process::ENV_HELP)]
pub struct Config {
    /// Address and port the dashboard listens on.
    #[arg(long, env = "WEBUI_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Host names the dashboard answers to besides IP addresses and localhost, comma-separated
    /// (e.g. the name of an Ingress in front of it; .example.org allows every name under
    /// example.org). A request naming another host in its Host header is refused (421): a
    /// page of another site could otherwise read the dashboard by DNS rebinding.
    #[arg(
        long,
        env = "WEBUI_ALLOWED_HOSTS",
        value_name = "NAMES",
        value_delimiter = ',',
        value_parser = hosts::parse_allowed_host
    )]
    pub allowed_hosts: Vec<String>,
    /// Discovery mode, for a class that should find the bottleneck itself: the dashboard names
    /// no bottleneck and gives no hint of one, in the page or in /api/summary, and the lesson
    /// asks for the per-stage probes (chocominer ping STAGE) instead; every stage's own figures
    /// (rate, busy, window, rate limit) stay. In the environment: true/false, 1/0, yes/no,
    /// on/off.
    // Its variable goes through the parser too: a typo is an error, not quietly on or off.
    #[arg(long, env = DISCOVERY_ENV, value_parser = BoolishValueParser::new())]
    pub discovery: bool,
    #[command(flatten)]
    pub influx: InfluxArgs,
    #[command(flatten)]
    pub health: HealthArgs,
}

/// What a run served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    /// Summaries made from InfluxDB (pages polling at once share one).
    pub summaries: u64,
    /// Of those, how many found InfluxDB unreachable or erroring.
    pub influx_failures: u64,
}

/// Listens on `config.listen` and serves until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<Report> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    serve(listener, config, shutdown).await
}

/// Serves on `listener` (tests bind port 0 themselves) until `shutdown`, then finishes the
/// requests in progress and returns.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: Shutdown,
) -> anyhow::Result<Report> {
    let influx = influx::Client::new(&config.influx)?;
    let address = listener.local_addr()?;
    tracing::info!(
        influx = influx.url(),
        db = influx.db(),
        discovery = config.discovery,
        "dashboard on http://{address}"
    );
    let state = Arc::new(AppState::new(influx, config.discovery));
    let health = Health::new(&shutdown);
    let health_server = HealthServer::start(&config.health, &health).await?;
    let allowed = Arc::new(AllowedHosts::new(&config.allowed_hosts));
    // Every route, the health endpoints too: an orchestrator's probe names the pod's address.
    let app = server::router(state.clone())
        .merge(health::routes(health.clone()))
        .layer(middleware::from_fn_with_state(allowed, hosts::check));
    health.set_ready();
    // Connections capped and timed out (chocominer_process::http), as on HEALTH_LISTEN.
    http::serve(listener, app, async move { shutdown.triggered().await }).await;
    if let Some(server) = health_server {
        server.stop().await;
    }
    Ok(state.report())
}
