//! Connecting to NATS, the same way for every process: waiting for it at start (saying so once,
//! not in a loop), then reconnecting by itself and logging the events. Credentials never come
//! from a URL, and every URL shown is redacted ([`shown_urls`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::{Client, ConnectOptions, Event};
use chocominer_influx::credentials;
use futures::StreamExt;

use crate::config::NatsArgs;
use crate::shutdown::Shutdown;
use crate::throttle::Throttle;
use chocominer_model::inbox_prefix;

/// How often to retry the first connection, and to repeat the waiting notice.
const RETRY_EVERY: Duration = Duration::from_millis(500);
const REMIND_EVERY: Duration = Duration::from_secs(30);

/// The NATS URLs as they may be shown: credentials hidden.
pub fn shown_urls(args: &NatsArgs) -> String {
    credentials::redact(&args.nats_url)
}

async fn options(args: &NatsArgs, name: &str) -> anyhow::Result<ConnectOptions> {
    // Two TLS crypto back ends are in the build (async-nats: ring, reqwest: aws-lc-rs): rustls
    // would panic on the first TLS connection rather than pick one.
    let _ = async_nats::rustls::crypto::ring::default_provider().install_default();
    let mut opts = match &args.nats_creds {
        Some(path) => ConnectOptions::with_credentials_file(path)
            .await
            .with_context(|| format!("cannot read NATS credentials file {}", path.display()))?,
        None => ConnectOptions::new(),
    };
    if let Some(user) = &args.nats_user {
        let password = args.password()?.unwrap_or_default();
        opts = opts
            .user_and_password(user.clone(), password)
            .custom_inbox_prefix(inbox_prefix(user));
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
    // A server that offers no TLS is refused, never used in plain.
    if args.tls_wanted() {
        opts = opts.require_tls(true);
    }
    let capacity = usize::try_from(args.nats_subscription_capacity).unwrap_or(usize::MAX);
    // One event per message dropped or refused: a flood must not flood the log.
    let slow_log = Arc::new(Throttle::default());
    let refused_log = Arc::new(Throttle::default());
    let user = args.nats_user.clone().unwrap_or_else(|| "(none)".into());
    // A stage has two connections (batches, service protocol): say which one an event is on.
    let connection: Arc<str> = name.into();
    Ok(opts
        .name(name)
        .max_reconnects(None)
        // The first server first, at every reconnection too (the client would shuffle): people
        // list their nearest first. The price: a dead first server is tried again each time.
        .retain_servers_order()
        .connection_timeout(Duration::from_secs(5))
        .subscription_capacity(capacity)
        .event_callback(move |event| {
            let (slow_log, connection) = (slow_log.clone(), connection.clone());
            let (refused_log, user) = (refused_log.clone(), user.clone());
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
                    // A permission violation: the server's permissions and the code disagree,
                    // and nothing retries what was refused, so it must be seen.
                    Event::ServerError(error) => {
                        if let Some(left_out) = refused_log.admit() {
                            tracing::error!(
                                %connection,
                                nats_user = %user,
                                similar_left_out = left_out,
                                "NATS refused: {error}"
                            )
                        }
                    }
                    other => tracing::info!(%connection, "NATS: {other}"),
                }
            }
        }))
}

/// Connects to NATS, waiting for it as long as it takes; `Ok(None)` if shutdown came first.
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
                if matches!(
                    err.kind(),
                    async_nats::ConnectErrorKind::AuthorizationViolation
                ) {
                    let who = match &args.nats_user {
                        Some(user) => format!("as user {user:?}"),
                        None => "without NATS_USER".to_owned(),
                    };
                    anyhow::bail!(
                        "NATS at {shown} refused to let us in {who}: check NATS_USER and \
                         NATS_PASSWORD or NATS_PASSWORD_FILE ({err})"
                    );
                }
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

const ROUND_TRIP_WITHIN: Duration = Duration::from_secs(10);

/// Returns once the server has read everything sent before on `client`, subscriptions
/// included (`Client::flush` only writes the buffer out): a message to its own inbox, echoed.
pub async fn round_trip(client: &Client) -> anyhow::Result<()> {
    let probe = client.new_inbox();
    let mut echo = client.subscribe(probe.clone()).await?;
    client.publish(probe, bytes::Bytes::new()).await?;
    let echoed = tokio::time::timeout(ROUND_TRIP_WITHIN, echo.next()).await;
    let _ = echo.unsubscribe().await;
    match echoed {
        Ok(Some(_)) => Ok(()),
        Ok(None) => anyhow::bail!("the NATS connection closed during a round trip"),
        Err(_) => anyhow::bail!(
            "no round trip to NATS within {ROUND_TRIP_WITHIN:?} (may this user publish to its \
             own inbox?)"
        ),
    }
}

/// Whether waiting will not mend a failed attempt: credentials refused, or a TLS set-up that
/// does not match the server's.
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

/// How to open a NATS connection, for a part that may need to open its own again (the
/// pipeline's service protocol).
#[derive(Clone)]
pub struct Connector {
    name: String,
    args: NatsArgs,
    shutdown: Shutdown,
}

impl Connector {
    /// Connects as [`connect`] does, under this connection name.
    pub fn new(args: &NatsArgs, name: impl Into<String>, shutdown: &Shutdown) -> Connector {
        Connector {
            name: name.into(),
            args: args.clone(),
            shutdown: shutdown.clone(),
        }
    }

    pub async fn open(&self) -> anyhow::Result<Option<Client>> {
        connect(&self.args, &self.name, &self.shutdown).await
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
