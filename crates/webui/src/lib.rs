//! webui: the ChocoMiner dashboard, a web page for the projector while students scale stages.
//!
//! It shows what InfluxDB holds about the pipeline, refreshed every second: hashes/s and
//! nuggets/s now and over the last five minutes (no line where there is no data, a marker
//! where the difficulty changed), the difficulty in force, each stage side by side (rate,
//! instances alive, how busy, how full its window of unacknowledged batches is, whether it
//! waits for the next stage to come back), the stage that holds the others back (figures and
//! rule shared with `chocominer status` through `chocominer_status`), the
//! latest nuggets with their leading zero bits, and the totals: of every run, since the
//! first, and at the difficulty in force. It also plays the scaling lesson along ([`lesson`]):
//! the step the running stack is at, the rate before and after the last scale, and the next
//! command in its three spellings (just, Docker Compose, kubectl). In discovery mode
//! (`--discovery`, `CHOCOMINER_DISCOVERY`) it names no bottleneck, in the page or in its JSON,
//! and leaves the class the stages' figures and the probes (`chocominer ping STAGE`).
//! The page (HTML, CSS and a little JavaScript that draws its own SVG charts) is embedded in
//! the binary and loads nothing from anywhere else, so it works offline.
//!
//! - `GET /`: the page;
//! - `GET /api/summary`: what the page shows, as JSON ([`summary::Summary`]); when InfluxDB is
//!   unreachable or answers with an error, `{"ok": false, "error": "InfluxDB unreachable at
//!   …: …"}` with status 503 (502 for an error or an answer not from InfluxDB 1.x), which the
//!   page shows until InfluxDB is back;
//! - `GET /healthz`: `ok`; `GET /readyz`: `ready`, or 503 `not ready: stopping` once it stops
//!   (see `chocominer_process::health`), also on `HEALTH_LISTEN` when that is set.
//!
//! Each request must name in its `Host` an IP address, localhost or a name allowed by
//! `WEBUI_ALLOWED_HOSTS`, or gets 421 ([`hosts`]: DNS rebinding). The InfluxDB URL is shown
//! with its credentials hidden.
//!
//! Modules: [`server`] (the routes and the page's assets), [`summary`] (the InfluxQL and what
//! the page gets back), [`lesson`] (the lesson panel and discovery mode), [`hosts`] (the `Host`
//! check); the figures, the bottleneck rule and the lesson's steps come from
//! `chocominer-status`.
//!
//! The dashboard only reads InfluxDB: it needs no NATS and changes nothing. It is ready as soon
//! as it serves, whether InfluxDB answers or not: the page itself says when InfluxDB is
//! unreachable, and restarting the dashboard would not bring InfluxDB back.

pub mod hosts;
pub mod lesson;
pub mod server;
pub mod summary;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::middleware;
use chocominer_influx as influx;
use chocominer_process::Shutdown;
use chocominer_process::health::{self, Health, HealthServer};
use chocominer_process::http;
use chocominer_process::{HealthArgs, InfluxArgs};
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
    // A flag; its environment variable goes through the parser too, so a typo is an error
    // rather than quietly on or off.
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
/// requests in progress and returns. The health endpoints are served on the dashboard's
/// address, and on `HEALTH_LISTEN` too when it is set, until then.
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
    let (summaries, influx_failures) = state.counts();
    Ok(Report {
        summaries,
        influx_failures,
    })
}
