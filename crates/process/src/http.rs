//! The HTTP/1 server of the dashboard and of the health endpoints: an axum [`Router`] served
//! with bounds no client can lift ([`Limits`]), so idle or slow connections cannot pile up
//! until `/healthz` stops answering. Over the cap a new connection closes the one idle the
//! longest, or is closed itself when all are busy. A request head has [`HEADER_READ_TIMEOUT`]
//! to begin, as long again to end, and as long for each next one (hyper's keep-alive timeout).
//! What the limits close is logged in one line per [`REPORT_EVERY`] at most. The shutdown is
//! axum's: stop accepting, let requests in progress finish, wait for every connection.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::response::Response;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::throttle::Throttle;

/// Open connections per server at most: a classroom of pages and probes needs a few dozen.
pub const MAX_CONNECTIONS: usize = 1024;
/// A real client sends its request at once; a silent or idle socket is closed after this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Nothing moving on a connection with no request in progress: catches a client that stopped
/// reading its answer, which no other timeout does.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A longer request head is answered 431. About what common servers accept (nginx: 4 x 8 KB);
/// hyper's own ~400 KB, times the connection cap, would be 400 MB held by slow clients.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
pub const REPORT_EVERY: Duration = Duration::from_secs(5);
/// How long a new connection waits for the one it evicted to be gone (it goes at once).
const EVICTED_GONE_WITHIN: Duration = Duration::from_secs(1);
/// Pause after a failed accept (e.g. out of open files), so a lasting error does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
const MIN_CONNECTIONS: usize = 16;

/// The bounds of one server: the constants above; tests shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub stall_timeout: Duration,
    pub max_head_bytes: usize,
}

impl Default for Limits {
    /// The cap lowered to a quarter of the open-file limit when that is low (1024 is common):
    /// the rest is for the process's own connections and a second server.
    fn default() -> Limits {
        let by_files = open_file_limit().map_or(usize::MAX, |files| files / 4);
        Limits {
            max_connections: MAX_CONNECTIONS.min(by_files).max(MIN_CONNECTIONS),
            header_read_timeout: HEADER_READ_TIMEOUT,
            stall_timeout: STALL_TIMEOUT,
            max_head_bytes: MAX_HEAD_BYTES,
        }
    }
}

/// The soft limit on open files (`ulimit -n`), when there is one.
fn open_file_limit() -> Option<usize> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        usize::try_from(limit.rlim_cur).ok()
    }
    #[cfg(not(unix))]
    None
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the requests in progress
/// finish and returns once every connection is closed.
pub async fn serve<F>(listener: TcpListener, app: Router, shutdown: F)
where
    F: Future<Output = ()>,
{
    serve_with(listener, app, Limits::default(), shutdown).await
}

pub async fn serve_with<F>(listener: TcpListener, app: Router, limits: Limits, shutdown: F)
where
    F: Future<Output = ()>,
{
    let address = listener
        .local_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    let shared = Arc::new(Shared {
        limits,
        slots: Arc::new(Semaphore::new(limits.max_connections)),
        idle: Mutex::default(),
        counts: Counts::default(),
        epoch: Instant::now(),
    });
    let stopping = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut report = tokio::time::interval_at(Instant::now() + REPORT_EVERY, REPORT_EVERY);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let accept_log = Throttle::new(REPORT_EVERY);
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = report.tick() => {
                shared.report(&address);
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of open files: the connection waits in the backlog; closing the
                    // oldest idle one frees a file for it.
                    if is_out_of_files(&e) && shared.evict_oldest_idle() {
                        shared.counts.out_of_files.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(left_out) = accept_log.admit() {
                        tracing::warn!(
                            %address,
                            similar_left_out = left_out,
                            "HTTP server cannot accept a connection: {e}"
                        );
                    }
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_RETRY) => continue,
                    }
                }
            },
        };
        let Some(slot) = shared.slot().await else {
            shared.counts.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let served = connection(stream, app.clone(), shared.clone(), slot, stopping.clone());
        connections.spawn(served);
    }
    drop(listener);
    stopping.cancel();
    connections.close();
    connections.wait().await;
    shared.report(&address);
}

/// Errors of one connection that never reached us (as axum counts them): accept the next.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

fn is_out_of_files(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

struct Shared {
    limits: Limits,
    /// One permit per open connection.
    slots: Arc<Semaphore>,
    idle: Mutex<Idle>,
    counts: Counts,
    /// Connections keep their last activity as time since this.
    epoch: Instant,
}

/// The connections with no request in progress, by the order they became idle, to evict.
#[derive(Default)]
struct Idle {
    by_age: std::collections::BTreeMap<u64, CancellationToken>,
    next: u64,
}

/// Connections closed by the limits since the last report, as it words them.
#[derive(Default)]
struct Counts {
    /// Keep-alive connections left idle are not counted.
    no_request: AtomicU64,
    stalled: AtomicU64,
    evicted: AtomicU64,
    refused: AtomicU64,
    out_of_files: AtomicU64,
}

impl Shared {
    fn idle(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new connection: a free one, or the one of the connection idle the longest,
    /// closed for it; `None` when every connection is busy with a request.
    async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Some(slot);
        }
        if !self.evict_oldest_idle() {
            return None;
        }
        self.counts.evicted.fetch_add(1, Ordering::Relaxed);
        tokio::time::timeout(EVICTED_GONE_WITHIN, self.slots.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Closes the connection idle the longest; false when none is idle.
    fn evict_oldest_idle(&self) -> bool {
        let oldest = self.idle().by_age.pop_first();
        oldest.map(|(_, close)| close.cancel()).is_some()
    }

    /// Logs what the limits closed since the last report, if anything, in one line.
    fn report(&self, address: &str) {
        let c = &self.counts;
        let take = |count: &AtomicU64| count.swap(0, Ordering::Relaxed);
        let (no_request, stalled) = (take(&c.no_request), take(&c.stalled));
        let (evicted, refused, out_of_files) =
            (take(&c.evicted), take(&c.refused), take(&c.out_of_files));
        let l = &self.limits;
        let (head, stall, cap) = (l.header_read_timeout, l.stall_timeout, l.max_connections);
        let said: Vec<String> = [
            (
                no_request,
                format!("sent no whole request head within {head:?}"),
            ),
            (stalled, format!("stalled, nothing moving for {stall:?}")),
            (
                evicted,
                format!("idle the longest, to make room at the cap of {cap} open connections"),
            ),
            (
                refused,
                "new ones at the cap, every connection busy with a request".into(),
            ),
            (
                out_of_files,
                "idle the longest, the process out of open files".into(),
            ),
        ]
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, what)| format!("{count} {what}"))
        .collect();
        if said.is_empty() {
            return;
        }
        let message = format!(
            "HTTP server on {address} closed connections in the last {REPORT_EVERY:?}: {}",
            said.join("; ")
        );
        if evicted + refused + out_of_files > 0 {
            tracing::warn!("{message}");
        } else {
            tracing::info!("{message}");
        }
    }
}

/// One connection: whether it is idle (its place among the idle ones) or busy with a request.
struct Conn {
    shared: Arc<Shared>,
    /// Cancelled to close the connection at once (evicted).
    close: CancellationToken,
    /// Its key in [`Idle::by_age`] while idle; `u64::MAX` while busy. Changed under that lock.
    idle_key: AtomicU64,
    /// Whether it has had a whole request head.
    served: AtomicBool,
    /// When something was last read or written, as time since the server's epoch.
    last_moved: AtomicU64,
}

const BUSY: u64 = u64::MAX;

impl Conn {
    /// A new connection, idle until its first request.
    fn new(shared: Arc<Shared>) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            shared,
            close: CancellationToken::new(),
            idle_key: AtomicU64::new(BUSY),
            served: AtomicBool::new(false),
            last_moved: AtomicU64::new(0),
        });
        conn.moved();
        conn.set_idle();
        conn
    }

    fn set_idle(&self) {
        let mut idle = self.shared.idle();
        let key = idle.next;
        idle.next += 1;
        idle.by_age.insert(key, self.close.clone());
        self.idle_key.store(key, Ordering::Relaxed);
    }

    fn set_busy(&self) {
        let mut idle = self.shared.idle();
        let key = self.idle_key.swap(BUSY, Ordering::Relaxed);
        if key != BUSY {
            idle.by_age.remove(&key);
        }
    }

    fn is_busy(&self) -> bool {
        self.idle_key.load(Ordering::Relaxed) == BUSY
    }

    fn moved(&self) {
        let since = self.shared.epoch.elapsed().as_millis() as u64;
        self.last_moved.store(since, Ordering::Relaxed);
    }

    /// Returns once nothing has moved for the stall timeout while no request is in progress.
    async fn stalled(&self) {
        let timeout = self.shared.limits.stall_timeout;
        loop {
            let last = Duration::from_millis(self.last_moved.load(Ordering::Relaxed));
            let deadline = self.shared.epoch + last + timeout;
            if Instant::now() < deadline {
                tokio::time::sleep_until(deadline).await;
            } else if self.is_busy() {
                // A handler taking its time is no stalled client: look again later.
                tokio::time::sleep(timeout).await;
            } else {
                return;
            }
        }
    }
}

impl Drop for Conn {
    /// Gone, so no longer among the idle ones.
    fn drop(&mut self) {
        self.set_busy();
    }
}

enum End {
    /// The client closed it, or an error hyper answered (400, 431), or the shutdown.
    Done,
    HeaderTimeout,
    Stalled,
    Evicted,
}

/// Serves one connection until it ends and its socket is closed, holding its slot until then.
async fn connection(
    stream: TcpStream,
    app: Router,
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
    stopping: CancellationToken,
) {
    let conn = Conn::new(shared.clone());
    let limits = shared.limits;
    // A silent socket costs its task (about 1 KB), not hyper's 8 KB read buffer too. Peeked:
    // tokio reports a new socket readable at once, data or not.
    let mut first = [0u8; 1];
    let silent = tokio::select! {
        peeked = stream.peek(&mut first) => match peeked {
            Ok(0) | Err(_) => Some(End::Done),
            Ok(_) => None,
        },
        () = tokio::time::sleep(limits.header_read_timeout) => Some(End::HeaderTimeout),
        () = conn.close.cancelled() => Some(End::Evicted),
        () = stopping.cancelled() => Some(End::Done),
    };
    let end = match silent {
        Some(end) => end,
        // Boxed: a silent connection's task stays small.
        None => Box::pin(serve_http(stream, app, &conn, &limits, &stopping)).await,
    };
    let count = match end {
        End::HeaderTimeout if !conn.served.load(Ordering::Relaxed) => &shared.counts.no_request,
        End::Stalled => &shared.counts.stalled,
        // Counted where it was chosen; a keep-alive connection left idle is no news.
        End::Evicted | End::HeaderTimeout | End::Done => return,
    };
    count.fetch_add(1, Ordering::Relaxed);
}

/// HTTP/1 on `stream` until the connection ends; returns how.
async fn serve_http(
    stream: TcpStream,
    app: Router,
    conn: &Arc<Conn>,
    limits: &Limits,
    stopping: &CancellationToken,
) -> End {
    let io = TokioIo::new(Watched {
        inner: stream,
        conn: conn.clone(),
    });
    let service = Tracked {
        inner: TowerToHyperService::new(app),
        conn: conn.clone(),
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_head_bytes)
        .keep_alive(true);
    let mut served = pin!(builder.serve_connection(io, service));
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = served.as_mut() => return match result {
                Err(e) if e.is_timeout() => End::HeaderTimeout,
                _ => End::Done,
            },
            () = conn.close.cancelled() => return End::Evicted,
            () = conn.stalled() => return End::Stalled,
            () = stopping.cancelled(), if !shutting_down => {
                shutting_down = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The router as a hyper service that marks its connection busy while a request is answered.
#[derive(Clone)]
struct Tracked {
    inner: TowerToHyperService<Router>,
    conn: Arc<Conn>,
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.conn.set_busy();
        self.conn.served.store(true, Ordering::Relaxed);
        let answer = self.inner.call(request);
        let conn = self.conn.clone();
        Box::pin(async move {
            let response = answer.await;
            // Idle from now on, and the stall timeout counts from here, not from the request.
            conn.moved();
            conn.set_idle();
            response
        })
    }
}

/// A connection's socket that notes when something was last read or written.
struct Watched {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.moved();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.moved();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::task::JoinHandle;
    use tokio::time::timeout;

    /// Bounds of the waits below: far above what each takes, far below a hung test.
    const SOON: Duration = Duration::from_secs(5);
    /// How long a connection that should stay open is watched.
    const A_WHILE: Duration = Duration::from_millis(300);
    /// The body of `/big`: more than the socket buffers of both ends hold.
    const BIG: usize = 16 << 20;

    struct Server {
        address: SocketAddr,
        stop: CancellationToken,
        task: JoinHandle<()>,
        /// `/wait` answers once a permit is added here.
        gate: Arc<Semaphore>,
        /// One message per request `/wait` has begun.
        waiting: tokio::sync::mpsc::UnboundedReceiver<()>,
    }

    async fn start(limits: Limits) -> Server {
        let gate = Arc::new(Semaphore::new(0));
        let (entered, waiting) = tokio::sync::mpsc::unbounded_channel();
        let held = gate.clone();
        let app = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/big", get(|| async { vec![b'x'; BIG] }))
            .route(
                "/wait",
                get(move || async move {
                    let _ = entered.send(());
                    held.acquire().await.unwrap().forget();
                    "done"
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            serve_with(
                listener,
                app,
                limits,
                async move { stopped.cancelled().await },
            )
            .await
        });
        Server {
            address,
            stop,
            task,
            gate,
            waiting,
        }
    }

    fn limits(max_connections: usize, header: Duration, stall: Duration) -> Limits {
        Limits {
            max_connections,
            header_read_timeout: header,
            stall_timeout: stall,
            max_head_bytes: MAX_HEAD_BYTES,
        }
    }

    /// Sends a GET of `path` on `stream` and returns the answer's status line and body.
    async fn ask(stream: &mut TcpStream, path: &str) -> (String, String) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        timeout(SOON, async {
            loop {
                let text = String::from_utf8_lossy(&got).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_owned)
                        })
                        .and_then(|l| l.trim().parse::<usize>().ok())
                        .expect("a content-length");
                    if body.len() >= length {
                        let status = head.lines().next().unwrap_or_default().to_owned();
                        return (status, body.to_owned());
                    }
                }
                let n = stream.read(&mut chunk).await.expect("read the answer");
                assert!(n > 0, "closed before the whole answer: {text:?}");
                got.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("an answer")
    }

    /// Waits up to `within` for the server to close `stream`: true if it did.
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        let mut byte = [0u8; 1];
        match timeout(within, stream.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => true,
            Ok(Ok(_)) => panic!("unexpected bytes from the server"),
            Err(_) => false,
        }
    }

    async fn connect(address: SocketAddr) -> TcpStream {
        TcpStream::connect(address).await.unwrap()
    }

    #[tokio::test]
    async fn silent_trickling_and_idle_keep_alive_connections_are_closed_after_the_header_timeout()
    {
        let header = Duration::from_millis(400);
        let server = start(limits(64, header, Duration::from_secs(60))).await;
        let started = Instant::now();
        let mut silent: Vec<TcpStream> = Vec::new();
        for _ in 0..5 {
            silent.push(connect(server.address).await);
        }
        // Half a head, then a byte every 50 ms: it never ends.
        let trickler = connect(server.address).await;
        let (mut trickle_read, mut trickle_write) = trickler.into_split();
        let writer = tokio::spawn(async move {
            trickle_write
                .write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
                .await?;
            for _ in 0..200 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                trickle_write.write_all(b"a").await?;
            }
            std::io::Result::Ok(())
        });
        let mut kept = connect(server.address).await;
        assert_eq!(
            ask(&mut kept, "/healthz").await,
            ("HTTP/1.1 200 OK".into(), "ok".into())
        );
        let answered = Instant::now();

        for stream in &mut silent {
            assert!(
                closed_within(stream, SOON).await,
                "a silent connection left open"
            );
        }
        let mut byte = [0u8; 1];
        let trickle_end = timeout(SOON, trickle_read.read(&mut byte)).await;
        assert!(
            matches!(trickle_end, Ok(Ok(0) | Err(_))),
            "a trickling connection left open: {trickle_end:?}"
        );
        let trickle_closed = started.elapsed();
        assert!(
            closed_within(&mut kept, SOON).await,
            "an idle keep-alive left open"
        );
        let kept_idle = answered.elapsed();
        // Closed by the timeout, not before it.
        assert!(trickle_closed >= header, "{trickle_closed:?}");
        assert!(kept_idle >= header, "{kept_idle:?}");
        assert!(
            writer.await.unwrap().is_err(),
            "the trickle outlived its connection"
        );

        let mut fresh = connect(server.address).await;
        assert_eq!(ask(&mut fresh, "/healthz").await.1, "ok");
        server.stop.cancel();
        timeout(SOON, server.task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn at_the_cap_a_new_connection_closes_the_one_idle_the_longest() {
        let server = start(limits(4, Duration::from_secs(60), Duration::from_secs(60))).await;
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(connect(server.address).await);
        }
        // The fourth has had an answer: idle since then, the youngest.
        let mut kept = connect(server.address).await;
        assert_eq!(ask(&mut kept, "/healthz").await.1, "ok");

        // Each new one answered, each time at the expense of the oldest idle.
        for evicted in 0..3 {
            let mut new = connect(server.address).await;
            assert_eq!(ask(&mut new, "/healthz").await.1, "ok", "new {evicted}");
            assert!(
                closed_within(&mut idle[evicted], SOON).await,
                "idle {evicted} kept"
            );
            for still in &mut idle[evicted + 1..] {
                assert!(!closed_within(still, A_WHILE).await, "a younger one closed");
            }
            idle.push(new);
        }
        // The kept-alive one is the oldest idle now; it goes next.
        assert!(!closed_within(&mut kept, A_WHILE).await);
        let mut last = connect(server.address).await;
        assert_eq!(ask(&mut last, "/healthz").await.1, "ok");
        assert!(closed_within(&mut kept, SOON).await, "the oldest idle kept");
        server.stop.cancel();
        timeout(SOON, server.task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn at_the_cap_with_every_connection_busy_a_new_one_is_closed_at_once() {
        let mut server = start(limits(2, Duration::from_secs(60), Duration::from_secs(60))).await;
        let address = server.address;
        let busy: Vec<_> = (0..2)
            .map(|_| tokio::spawn(async move { ask(&mut connect(address).await, "/wait").await }))
            .collect();
        for _ in 0..2 {
            timeout(SOON, server.waiting.recv()).await.unwrap().unwrap();
        }
        let mut refused = connect(address).await;
        assert!(
            closed_within(&mut refused, SOON).await,
            "a third connection kept"
        );

        server.gate.add_permits(2);
        for answer in busy {
            assert_eq!(timeout(SOON, answer).await.unwrap().unwrap().1, "done");
        }
        let mut fresh = connect(address).await;
        assert_eq!(ask(&mut fresh, "/healthz").await.1, "ok");
        server.stop.cancel();
        timeout(SOON, server.task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_off_after_the_stall_timeout() {
        let stall = Duration::from_millis(300);
        let server = start(limits(8, Duration::from_secs(60), stall)).await;
        // A small receive buffer, so that the answer cannot all be taken in unread.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(64 * 1024).unwrap();
        let mut stream = socket.connect(server.address).await.unwrap();
        stream
            .write_all(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        // The client under test reads nothing for a while: this wait is what it does.
        tokio::time::sleep(stall * 4).await;
        let mut got = Vec::new();
        let read = timeout(SOON, stream.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the connection was not closed");
        assert!(
            got.len() < BIG,
            "the whole answer came through ({} bytes): the stall was not cut off",
            got.len()
        );
        let mut fresh = connect(server.address).await;
        assert_eq!(ask(&mut fresh, "/healthz").await.1, "ok");
        server.stop.cancel();
        timeout(SOON, server.task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn shutdown_stops_accepting_closes_idle_ones_and_finishes_requests_in_progress() {
        let mut server = start(limits(8, Duration::from_secs(60), Duration::from_secs(60))).await;
        let address = server.address;
        let mut idle = connect(address).await;
        let mut kept = connect(address).await;
        assert_eq!(ask(&mut kept, "/healthz").await.1, "ok");
        let in_progress =
            tokio::spawn(async move { ask(&mut connect(address).await, "/wait").await });
        timeout(SOON, server.waiting.recv()).await.unwrap().unwrap();

        server.stop.cancel();
        assert!(
            closed_within(&mut kept, SOON).await,
            "an idle keep-alive kept"
        );
        assert!(
            closed_within(&mut idle, SOON).await,
            "a silent connection kept"
        );
        assert!(
            !server.task.is_finished(),
            "returned with a request in progress"
        );
        server.gate.add_permits(1);
        assert_eq!(timeout(SOON, in_progress).await.unwrap().unwrap().1, "done");
        timeout(SOON, server.task).await.unwrap().unwrap();
        assert!(
            TcpStream::connect(address).await.is_err(),
            "still listening"
        );
    }

    #[test]
    fn the_default_cap_leaves_most_open_files_to_the_rest_of_the_process() {
        let limits = Limits::default();
        assert!((MIN_CONNECTIONS..=MAX_CONNECTIONS).contains(&limits.max_connections));
        if let Some(files) = open_file_limit() {
            assert!(limits.max_connections <= (files / 4).max(MIN_CONNECTIONS));
        }
    }
}
