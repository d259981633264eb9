//! recorder: the stages' write-only path to InfluxDB. InfluxDB 1.x lets whoever may write to a
//! database also delete from it, so the stages hold the recorder's password, not InfluxDB's
//! (docs/security.md). Beside its health checks it answers only InfluxDB's `POST /write` and
//! `GET /ping`: it checks every line ([`check`]) and writes the request to InfluxDB whole, or
//! refuses it whole (503 when InfluxDB cannot take it now, which a stage retries later).

pub mod check;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chocominer_influx::{self as influx, InfluxArgs, Secret, WriteError};
use chocominer_process::health::{self, Health, HealthServer};
use chocominer_process::{HealthArgs, Shutdown, Throttle, http};
use tokio::net::TcpListener;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8087";
pub const DEFAULT_USER: &str = "stages";

/// The largest request taken: a stage writes at most 5,000 points (about 1 MB) at once.
const MAX_BODY: usize = 4 << 20;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "recorder", version, about = "ChocoMiner recorder: the stages' write-only path to InfluxDB", after_help = chocominer_process::ENV_HELP)]
pub struct Config {
    /// Address and port the stages send their points to (their INFLUX_URL).
    #[arg(long, env = "RECORDER_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// The user the stages write as (their INFLUX_USER).
    #[arg(long, env = "RECORDER_USER", default_value = DEFAULT_USER)]
    pub user: String,
    /// File holding the stages' password (a trailing line break is dropped), read once at
    /// start: the password the stages give as INFLUX_PASSWORD(_FILE). Not InfluxDB's.
    #[arg(
        long,
        env = "RECORDER_PASSWORD_FILE",
        value_name = "PATH",
        value_parser = influx::password_file
    )]
    pub password_file: Secret,
    /// Where the points go: InfluxDB, as its writer (INFLUX_USER, INFLUX_PASSWORD_FILE).
    #[command(flatten)]
    pub influx: InfluxArgs,
    #[command(flatten)]
    pub health: HealthArgs,
}

/// What a run recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    /// Points written to InfluxDB.
    pub recorded: u64,
    /// Requests refused: a line that is not a stage's, or no credentials.
    pub refused: u64,
}

struct Recorder {
    influx: influx::Client,
    user: String,
    password: Secret,
    recorded: AtomicU64,
    refused: AtomicU64,
    refusal_log: Throttle,
}

/// Listens on `config.listen` and serves until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<Report> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    serve(listener, config, shutdown).await
}

/// Serves on `listener` (tests bind port 0 themselves) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: Shutdown,
) -> anyhow::Result<Report> {
    let influx = influx::Client::new(&config.influx)?;
    tracing::info!(
        influx = influx.url(),
        db = influx.db(),
        user = config.user,
        "recording the stages' points on http://{}",
        listener.local_addr()?
    );
    let recorder = Arc::new(Recorder {
        influx,
        user: config.user,
        password: config.password_file,
        recorded: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        refusal_log: Throttle::default(),
    });
    let health = Health::new(&shutdown);
    let health_server = HealthServer::start(&config.health, &health).await?;
    let app = Router::new()
        .route("/write", post(write))
        .route("/ping", get(|| async { StatusCode::NO_CONTENT }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(recorder.clone())
        .merge(health::routes(health.clone()));
    health.set_ready();
    http::serve(listener, app, async move { shutdown.triggered().await }).await;
    if let Some(server) = health_server {
        server.stop().await;
    }
    Ok(Report {
        recorded: recorder.recorded.load(Ordering::Relaxed),
        refused: recorder.refused.load(Ordering::Relaxed),
    })
}

/// The value of `name` in a query string, as written (the stages' client writes plain ones).
fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// `POST /write`: checked whole, written whole.
async fn write(
    State(recorder): State<Arc<Recorder>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !recorder.authorized(&headers) {
        recorder.refused.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::UNAUTHORIZED, "authorization failed");
    }
    let query = query.unwrap_or_default();
    if param(&query, "db") != Some(recorder.influx.db()) {
        return error(StatusCode::NOT_FOUND, "database not found");
    }
    if param(&query, "precision").is_some_and(|p| p != "ns") {
        return error(
            StatusCode::BAD_REQUEST,
            "only nanosecond times (precision=ns)",
        );
    }
    let points = match check::check(&body, chocominer_process::now_ns()) {
        Ok(points) => points,
        Err(refused) => {
            recorder.refused.fetch_add(1, Ordering::Relaxed);
            if let Some(left_out) = recorder.refusal_log.admit() {
                tracing::warn!(similar_left_out = left_out, "refused points: {refused}");
            }
            return error(StatusCode::BAD_REQUEST, &refused.to_string());
        }
    };
    match recorder.influx.write_body(body).await {
        Ok(()) => {
            recorder
                .recorded
                .fetch_add(points as u64, Ordering::Relaxed);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(WriteError::Retry(why) | WriteError::Denied(why) | WriteError::Refused(why)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("InfluxDB did not take them: {why}"),
        ),
    }
}

impl Recorder {
    /// Whether `headers` carry the stages' user and password (basic auth), compared in time
    /// that does not depend on where they differ.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        else {
            return false;
        };
        let expected = STANDARD.encode(format!("{}:{}", self.user, self.password.expose()));
        given.len() == expected.len()
            && given
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

/// An answer as InfluxDB gives one: `{"error": "..."}`.
fn error(status: StatusCode, why: &str) -> Response {
    let body = serde_json::json!({ "error": why }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a recorder for `user` and `password` takes `authorization`.
    fn authorizes(user: &str, password: &str, authorization: &str) -> bool {
        let recorder = Recorder {
            influx: influx::Client::new(&InfluxArgs::new("http://127.0.0.1:1", "db")).unwrap(),
            user: user.to_owned(),
            password: Secret::new(password),
            recorded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            refusal_log: Throttle::default(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, authorization.parse().unwrap());
        recorder.authorized(&headers)
    }

    #[test]
    fn basic_auth_is_base64_of_user_colon_password() {
        // RFC 7617's example.
        assert!(authorizes(
            "Aladdin",
            "open sesame",
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        ));
        assert!(authorizes("a", "", "Basic YTo="));
        assert!(authorizes("ab", "c", "Basic YWI6Yw=="));
        assert!(!authorizes("ab", "c", "Basic YWI6Yx=="));
        assert!(!authorizes("ab", "c", "Basic YWI6Yw"));
        assert!(!authorizes("ab", "c", "Bearer YWI6Yw=="));
    }
}
