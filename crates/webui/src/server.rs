//! The HTTP side: the page and its assets (embedded in the binary), `/api/summary` (or
//! `{"ok": false, ...}`: 503 when InfluxDB is unreachable, 502 for its errors). Every open page
//! polls it once a second, so a summary made less than [`SUMMARY_MAX_AGE`] ago is served again
//! and requests arriving while one is made wait for it: a classroom of pages costs InfluxDB
//! about two query requests a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chocominer_influx::{self as influx, QueryError};
use chocominer_status::lesson::RateChange;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::Report;
use crate::summary::{self, Spans, Summary};

/// How long a summary is served again before a new one is made.
pub const SUMMARY_MAX_AGE: Duration = Duration::from_millis(500);

/// The page and its assets: content type, text.
type Asset = (&'static str, &'static str);
const INDEX_HTML: Asset = (
    "text/html; charset=utf-8",
    include_str!("../assets/index.html"),
);
const APP_JS: Asset = (
    "text/javascript; charset=utf-8",
    include_str!("../assets/app.js"),
);
const APP_CSS: Asset = ("text/css; charset=utf-8", include_str!("../assets/app.css"));

/// Nothing but this server: the page must work offline, and this says so to the browser too.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the handlers share.
pub struct AppState {
    influx: influx::Client,
    /// Discovery mode: no bottleneck named (see [`crate::lesson`]).
    discovery: bool,
    cache: Mutex<Cache>,
    /// Whether the last query failed, to log a failure and a recovery once each.
    failing: AtomicBool,
    summaries: AtomicU64,
    failures: AtomicU64,
}

/// A summary or an error, ready to send.
#[derive(Clone)]
struct Reply {
    status: StatusCode,
    /// The JSON, serialized once for every page that asks.
    body: Bytes,
}

/// The last summary, and what the summaries remember from one to the next.
#[derive(Default)]
struct Cache {
    last: Option<(Instant, Reply)>,
    /// The rate around the last change of instances.
    rate_change: RateChange,
}

impl Reply {
    fn new(status: StatusCode, body: &Value) -> Reply {
        Reply {
            status,
            body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
        }
    }
}

impl AppState {
    pub fn new(influx: influx::Client, discovery: bool) -> AppState {
        AppState {
            influx,
            discovery,
            cache: Mutex::new(Cache::default()),
            failing: AtomicBool::new(false),
            summaries: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// What was served so far.
    pub fn report(&self) -> Report {
        Report {
            summaries: self.summaries.load(Ordering::Relaxed),
            influx_failures: self.failures.load(Ordering::Relaxed),
        }
    }

    async fn summary(&self) -> Reply {
        let mut cache = self.cache.lock().await;
        if let Some((made, reply)) = cache.last.as_ref()
            && made.elapsed() < SUMMARY_MAX_AGE
        {
            return reply.clone();
        }
        let reply = self.make_summary(&mut cache.rate_change).await;
        cache.last = Some((Instant::now(), reply.clone()));
        reply
    }

    /// The two requests of a summary: the figures, then the totals at the difficulty in force.
    async fn read_summary(&self, spans: Spans, now_ns: i64) -> Result<Summary, QueryError> {
        let results = self.influx.query(&summary::statements(&spans)).await?;
        let mut summary = Summary::from_results(spans, now_ns, &results);
        let difficulties = summary.difficulty_totals_wanted();
        if !difficulties.is_empty() {
            let results = self
                .influx
                .query(&summary::difficulty_statements(&difficulties))
                .await?;
            summary.difficulty.read_totals(&difficulties, &results);
        }
        Ok(summary)
    }

    async fn make_summary(&self, rate_change: &mut RateChange) -> Reply {
        self.summaries.fetch_add(1, Ordering::Relaxed);
        let now_ns = chocominer_process::now_ns();
        let spans = Spans::at(now_ns / 1_000_000);
        match self.read_summary(spans, now_ns).await {
            Ok(summary) => {
                let summary = summary.for_class(rate_change, now_ns, self.discovery);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(url = self.influx.url(), "InfluxDB answers again");
                }
                let mut body = serde_json::to_value(&summary).unwrap_or_else(
                    |e| json!({ "error": format!("cannot serialize the summary: {e}") }),
                );
                if let Some(object) = body.as_object_mut() {
                    object.insert("ok".into(), true.into());
                    object.insert("influx_url".into(), self.influx.url().into());
                    object.insert("db".into(), self.influx.db().into());
                }
                Reply::new(StatusCode::OK, &body)
            }
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!("{error}; the page says so and retries every second");
                }
                let (status, kind) = match &error {
                    QueryError::Unreachable { .. } => {
                        (StatusCode::SERVICE_UNAVAILABLE, "unreachable")
                    }
                    QueryError::Failed { .. } => (StatusCode::BAD_GATEWAY, "failed"),
                    QueryError::NotInflux { .. } => (StatusCode::BAD_GATEWAY, "not_influxdb"),
                    QueryError::Denied(_) => (StatusCode::BAD_GATEWAY, "denied"),
                };
                let body = json!({
                    "ok": false,
                    "error": error.to_string(),
                    "kind": kind,
                    "influx_url": self.influx.url(),
                    "db": self.influx.db(),
                    "now_ms": spans.now_ms,
                    "discovery": self.discovery,
                });
                Reply::new(status, &body)
            }
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(async || asset(INDEX_HTML)))
        .route("/index.html", get(async || asset(INDEX_HTML)))
        .route("/app.js", get(async || asset(APP_JS)))
        .route("/app.css", get(async || asset(APP_CSS)))
        .route("/api/summary", get(api_summary))
        .fallback(async || (StatusCode::NOT_FOUND, "not found\n"))
        .with_state(state)
}

fn asset((content_type, body): Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Always the current build's page after a restart.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn api_summary(State(state): State<Arc<AppState>>) -> Response {
    let reply = state.summary().await;
    (
        reply.status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        reply.body,
    )
        .into_response()
}
