//! Health endpoints for Docker, Compose and Kubernetes: `GET /healthz` answers `200 ok` while
//! the process runs, `GET /readyz` `200 ready` or `503` with why not (`not ready: stopping`),
//! served on `HEALTH_LISTEN` ([`HealthServer`]); `--health-check` asks `/readyz` ([`check`]):
//! the images have no curl. A stopping process is not ready; `/healthz` stays `200`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::Context;
use async_nats::Client;
use async_nats::connection::State as NatsState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::HealthArgs;
use crate::http;
use crate::shutdown::Shutdown;

pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a stopping health server lets requests in progress finish.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The readiness of this process.
#[derive(Debug, Clone)]
pub struct Health(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    shutdown: Shutdown,
    not_ready: Mutex<Option<&'static str>>,
    nats: OnceLock<Client>,
}

impl Health {
    /// Not ready ("starting") until [`Health::set_ready`], and never again once `shutdown` is
    /// triggered.
    pub fn new(shutdown: &Shutdown) -> Health {
        Health(Arc::new(Inner {
            shutdown: shutdown.clone(),
            not_ready: Mutex::new(Some("starting")),
            nats: OnceLock::new(),
        }))
    }

    /// Not ready, for the reason `/readyz` gives.
    pub fn set_not_ready(&self, why: &'static str) {
        *self.lock() = Some(why);
    }

    /// Ready (unless stopping, or the NATS connection followed is down).
    pub fn set_ready(&self) {
        *self.lock() = None;
    }

    /// From now on, ready only while `client` is connected (it reconnects by itself).
    pub fn follow_nats(&self, client: &Client) {
        let _ = self.0.nats.set(client.clone());
    }

    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.0.shutdown.is_triggered() {
            return Err("stopping");
        }
        if let Some(why) = *self.lock() {
            return Err(why);
        }
        match self.0.nats.get().map(Client::connection_state) {
            Some(NatsState::Connected) | None => Ok(()),
            Some(_) => Err("NATS connection lost, reconnecting"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<&'static str>> {
        self.0
            .not_ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// `GET /healthz` and `GET /readyz`, to serve alone or beside the dashboard's routes (no
/// fallback, so it merges with a router that has one).
pub fn routes(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(health)
}

async fn ready(State(health): State<Health>) -> (StatusCode, String) {
    match health.readiness() {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")),
    }
}

/// The health endpoints on an address of their own ([`crate::http`]'s server), until stopped
/// or dropped.
pub struct HealthServer {
    address: SocketAddr,
    task: JoinHandle<()>,
    _stop: DropGuard,
}

impl HealthServer {
    pub async fn start(args: &HealthArgs, health: &Health) -> anyhow::Result<Option<HealthServer>> {
        match args.listen() {
            Some(address) => Ok(Some(HealthServer::serve(address, health.clone()).await?)),
            None => Ok(None),
        }
    }

    pub async fn serve(address: SocketAddr, health: Health) -> anyhow::Result<HealthServer> {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} (HEALTH_LISTEN)"))?;
        let address = listener.local_addr()?;
        let app = routes(health).fallback(|| async { (StatusCode::NOT_FOUND, "not found") });
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            http::serve(listener, app, async move { stopped.cancelled().await }).await;
        });
        tracing::info!("health on http://{address}/healthz and /readyz");
        Ok(HealthServer {
            address,
            task,
            _stop: stop.drop_guard(),
        })
    }

    /// The address it listens on (the port chosen for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops listening and lets the requests in progress finish, for a moment at most.
    pub async fn stop(self) {
        drop(self._stop);
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// `--health-check`: asks `/readyz` on `args`' address, prints one line and returns the exit
/// code: 0 ready, 1 not ready or no answer, 2 no address.
pub async fn check(args: &HealthArgs) -> ExitCode {
    let Some(listen) = args.listen() else {
        eprintln!(
            "error: --health-check needs HEALTH_LISTEN (--health-listen), the address the \
             service's health server listens on"
        );
        return ExitCode::from(2);
    };
    let url = format!("http://{}/readyz", probe_address(listen));
    match ask(&url).await {
        Ok((200, _)) => {
            println!("ready ({url})");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            let why = body.lines().next().unwrap_or_default().trim();
            let why = why.strip_prefix("not ready: ").unwrap_or(why);
            let why: String = why.chars().take(200).collect();
            println!("not ready: {why} ({url} answered {status})");
            ExitCode::FAILURE
        }
        Err(why) => {
            println!("not ready: no answer from {url}: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Where to reach a server listening on `listen` from the same host (`0.0.0.0`: loopback).
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

async fn ask(url: &str) -> Result<(u16, String), String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(CHECK_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let response = http.get(url).send().await.map_err(|e| why(&e))?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| why(&e))?;
    Ok((status, body))
}

/// What went wrong, told by the innermost cause ("Connection refused (os error 111)").
fn why(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {CHECK_TIMEOUT:?}");
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_state_and_stops_at_once_on_shutdown() {
        let shutdown = Shutdown::new();
        let health = Health::new(&shutdown);
        assert_eq!(health.readiness(), Err("starting"));
        health.set_not_ready("connecting to NATS");
        assert_eq!(health.readiness(), Err("connecting to NATS"));
        health.set_ready();
        assert_eq!(health.readiness(), Ok(()));
        shutdown.trigger();
        assert_eq!(health.readiness(), Err("stopping"));
        health.set_ready();
        assert_eq!(health.readiness(), Err("stopping"));
    }

    #[test]
    fn the_probe_asks_loopback_for_an_unspecified_address() {
        let cases = [
            ("0.0.0.0:8081", "127.0.0.1:8081"),
            ("[::]:8081", "[::1]:8081"),
            ("10.1.2.3:9000", "10.1.2.3:9000"),
            ("127.0.0.1:8081", "127.0.0.1:8081"),
        ];
        for (listen, asked) in cases {
            assert_eq!(
                probe_address(listen.parse().unwrap()),
                asked.parse().unwrap(),
                "{listen}"
            );
        }
    }

    async fn get(address: SocketAddr, path: &str) -> (u16, String) {
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{address}{path}"))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn the_server_answers_healthz_readyz_and_404() {
        let shutdown = Shutdown::new();
        let health = Health::new(&shutdown);
        let server = HealthServer::serve("127.0.0.1:0".parse().unwrap(), health.clone())
            .await
            .unwrap();
        let address = server.address();
        assert_eq!(get(address, "/healthz").await, (200, "ok".into()));
        assert_eq!(
            get(address, "/readyz").await,
            (503, "not ready: starting".into())
        );
        health.set_ready();
        assert_eq!(get(address, "/readyz").await, (200, "ready".into()));
        assert_eq!(get(address, "/").await.0, 404);
        assert_eq!(get(address, "/readyz/x").await.0, 404);
        assert_eq!(get(address, "/healthz?verbose=1").await.0, 200);
        shutdown.trigger();
        assert_eq!(
            get(address, "/readyz").await,
            (503, "not ready: stopping".into())
        );
        assert_eq!(get(address, "/healthz").await, (200, "ok".into()));
        server.stop().await;
        assert!(
            tokio::net::TcpStream::connect(address).await.is_err(),
            "still listening after stop"
        );
    }

    #[tokio::test]
    async fn an_oversized_or_malformed_request_is_refused_and_the_server_goes_on() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let health = Health::new(&Shutdown::new());
        let server = HealthServer::serve("127.0.0.1:0".parse().unwrap(), health)
            .await
            .unwrap();
        let address = server.address();
        let huge = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(1 << 20)
        );
        let requests: [(&[u8], &str); 3] = [
            (huge.as_bytes(), "HTTP/1.1 431 "),
            (b"\x00\x01 garbage\r\n\r\n", "HTTP/1.1 400 "),
            (b"GET /healthz\r\n\r\n", "HTTP/1.1 400 "),
        ];
        for (request, expected) in requests {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            // The server may answer and close before it has read everything sent.
            let _ = stream.write_all(request).await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
                .await
                .expect("the server closes a connection it refuses");
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with(expected), "{expected}: {answer}");
        }
        assert_eq!(get(address, "/healthz").await, (200, "ok".into()));
        server.stop().await;
    }
}
