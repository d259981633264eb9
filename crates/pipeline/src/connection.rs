//! Connecting to NATS, the same way for every stage.
//!
//! At start a stage waits for NATS (saying so once, not in a loop); after that the client
//! reconnects by itself and connection events are logged. Credentials are always passed as
//! options: the client ignores credentials written inside the URL, so they are taken out of
//! it here (`chocominer_influx::credentials`), and every URL shown is redacted with
//! [`shown_urls`]. Each subscription holds at most `NATS_SUBSCRIPTION_CAPACITY` messages not
//! yet taken (the client drops more, a "slow consumer"): what bounds the memory a flood takes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::{Client, ConnectOptions, Event};
use chocominer_influx::credentials;
use futures::future::BoxFuture;

use crate::config::NatsArgs;
use crate::shutdown::Shutdown;
use crate::throttle::Throttle;

/// How often to retry the first connection, and how often to repeat the waiting notice.
const RETRY_EVERY: Duration = Duration::from_millis(500);
const REMIND_EVERY: Duration = Duration::from_secs(30);

/// Credentials found inside a URL (`nats://user:pass@host`, `nats://token@host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UrlAuth {
    UserPassword(String, String),
    Token(String),
}

/// Splits credentials out of each comma-separated URL; returns the clean URL list and the
/// credentials of the first URL that had some.
pub(crate) fn split_url_auth(urls: &str) -> (String, Option<UrlAuth>) {
    let mut auth = None;
    let clean: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|url| {
            let (clean, userinfo) = credentials::split_userinfo(url);
            if let Some(userinfo) = userinfo {
                auth.get_or_insert(match userinfo.split_once(':') {
                    Some((user, pass)) => UrlAuth::UserPassword(user.to_owned(), pass.to_owned()),
                    None => UrlAuth::Token(userinfo.to_owned()),
                });
            }
            clean
        })
        .collect();
    (clean.join(","), auth)
}

/// The NATS URLs as they may be shown in logs and messages: credentials written in them hidden.
pub fn shown_urls(args: &NatsArgs) -> String {
    credentials::redact(&args.nats_url)
}

async fn options(args: &NatsArgs, name: &str) -> anyhow::Result<ConnectOptions> {
    // Two TLS crypto back ends end up in the build (async-nats: ring, reqwest: aws-lc-rs), so
    // rustls cannot pick one by itself and would panic on the first TLS connection: choose.
    let _ = async_nats::rustls::crypto::ring::default_provider().install_default();
    let (_, url_auth) = split_url_auth(&args.nats_url);
    let mut opts = match &args.nats_creds {
        Some(path) => ConnectOptions::with_credentials_file(path)
            .await
            .with_context(|| format!("cannot read NATS credentials file {}", path.display()))?,
        None => ConnectOptions::new(),
    };
    match (&args.nats_user, &args.nats_password, url_auth) {
        (Some(user), password, _) => {
            opts = opts.user_and_password(user.clone(), password.clone().unwrap_or_default())
        }
        (None, _, Some(UrlAuth::UserPassword(user, pass))) => {
            opts = opts.user_and_password(user, pass)
        }
        (None, _, Some(UrlAuth::Token(token))) if args.nats_token.is_none() => {
            opts = opts.token(token)
        }
        _ => {}
    }
    if let Some(token) = &args.nats_token {
        opts = opts.token(token.clone());
    }
    if let Some(ca) = &args.nats_ca {
        opts = opts.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&args.nats_cert, &args.nats_key) {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    // Asked for, TLS is required: a server that offers none is refused, never used in plain.
    if args.tls_wanted() {
        opts = opts.require_tls(true);
    }
    let capacity = usize::try_from(args.nats_subscription_capacity).unwrap_or(usize::MAX);
    // One event per message dropped: a flood must not become a flood of log lines.
    let slow_log = Arc::new(Throttle::default());
    // A stage has two connections (batches, service protocol): say which one an event is on.
    let connection: Arc<str> = name.into();
    Ok(opts
        .name(name)
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .subscription_capacity(capacity)
        .event_callback(move |event| {
            let (slow_log, connection) = (slow_log.clone(), connection.clone());
            async move {
                match event {
                    Event::Connected => tracing::info!(%connection, "connected to NATS"),
                    Event::Disconnected => {
                        tracing::warn!(%connection, "disconnected from NATS; reconnecting")
                    }
                    Event::SlowConsumer(sid) => {
                        if let Some(left_out) = slow_log.admit() {
                            tracing::warn!(
                                %connection,
                                sid,
                                capacity,
                                similar_left_out = left_out,
                                "NATS dropped messages for a subscription holding \
                                 NATS_SUBSCRIPTION_CAPACITY messages not yet taken; their \
                                 senders will count them as lost"
                            )
                        }
                    }
                    other => tracing::info!(%connection, "NATS: {other}"),
                }
            }
        }))
}

/// Connects to NATS, waiting for it as long as it takes (or until shutdown).
/// Returns `Ok(None)` when shutdown came first.
pub async fn connect(
    args: &NatsArgs,
    name: &str,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<Client>> {
    let servers = args.server_urls();
    let shown = shown_urls(args);
    let mut last_notice: Option<tokio::time::Instant> = None;
    loop {
        match options(args, name).await?.connect(&servers).await {
            Ok(client) => {
                if last_notice.is_some() {
                    tracing::info!(url = %shown, "NATS is up");
                }
                return Ok(Some(client));
            }
            Err(err) => {
                // Wrong credentials or TLS set-up will not fix themselves: say so and stop.
                if will_not_mend(&err) {
                    anyhow::bail!("cannot connect to NATS at {shown}: {}", chain(&err));
                }
                if last_notice.is_none_or(|t| t.elapsed() >= REMIND_EVERY) {
                    tracing::warn!(url = %shown, "waiting for NATS: {err}");
                    last_notice = Some(tokio::time::Instant::now());
                }
            }
        }
        tokio::select! {
            _ = shutdown.triggered() => return Ok(None),
            _ = tokio::time::sleep(RETRY_EVERY) => {}
        }
    }
}

/// Whether a failed attempt is one that waiting will not mend: credentials refused, or a TLS
/// set-up that does not match the server's (a certificate from an unknown CA, no client
/// certificate where the server asks for one, TLS asked of a server without it).
fn will_not_mend(err: &async_nats::ConnectError) -> bool {
    use async_nats::ConnectErrorKind as K;
    if matches!(
        err.kind(),
        K::AuthorizationViolation | K::Tls | K::Authentication
    ) {
        return true;
    }
    // A failed TLS handshake comes as an I/O error carrying rustls's error.
    let mut source = std::error::Error::source(err);
    while let Some(error) = source {
        let tls = error.is::<async_nats::rustls::Error>()
            || error
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<async_nats::rustls::Error>());
        if tls {
            return true;
        }
        source = error.source();
    }
    false
}

/// An error and its causes on one line (async-nats's own message leaves out the TLS cause).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// How to open a NATS connection, for a part that may need to open its own again: the
/// service protocol's connection (module `service`) replaces one that died.
#[derive(Clone)]
pub struct Connector {
    name: String,
    open: Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<Option<Client>>> + Send + Sync>,
}

impl Connector {
    /// Connects as [`connect`] does (waiting for NATS until `shutdown`), with these settings,
    /// under this connection name.
    pub fn new(args: &NatsArgs, name: impl Into<String>, shutdown: &Shutdown) -> Connector {
        let name = name.into();
        let (args, shutdown) = (args.clone(), shutdown.clone());
        let open_name = name.clone();
        Connector::from_fn(name, move || {
            let (args, name, shutdown) = (args.clone(), open_name.clone(), shutdown.clone());
            Box::pin(async move { connect(&args, &name, &shutdown).await })
        })
    }

    /// Connects by calling `open` (for tests: a plain `async_nats::connect`); `Ok(None)` means
    /// shutdown came first.
    pub fn from_fn(
        name: impl Into<String>,
        open: impl Fn() -> BoxFuture<'static, anyhow::Result<Option<Client>>> + Send + Sync + 'static,
    ) -> Connector {
        Connector {
            name: name.into(),
            open: Arc::new(open),
        }
    }

    /// Opens a connection; `Ok(None)` if shutdown came first.
    pub async fn open(&self) -> anyhow::Result<Option<Client>> {
        (self.open)().await
    }

    /// The connection's name, as nats-server shows it (`/connz`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

// Settings hold credentials: shown by name only.
impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("name", &self.name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_taken_out_of_urls() {
        assert_eq!(
            split_url_auth("nats://127.0.0.1:4222"),
            ("nats://127.0.0.1:4222".into(), None)
        );
        assert_eq!(
            split_url_auth("nats://alice:s3cret@nats:4222, nats://other:4222"),
            (
                "nats://nats:4222,nats://other:4222".into(),
                Some(UrlAuth::UserPassword("alice".into(), "s3cret".into()))
            )
        );
        assert_eq!(
            split_url_auth("tls://tok@host:4443"),
            ("tls://host:4443".into(), Some(UrlAuth::Token("tok".into())))
        );
        // A password may hold '@': the credentials end at the last one.
        assert_eq!(
            split_url_auth("nats://alice:p@ss@nats:4222"),
            (
                "nats://nats:4222".into(),
                Some(UrlAuth::UserPassword("alice".into(), "p@ss".into()))
            )
        );
    }
}
