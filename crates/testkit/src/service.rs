//! A service (`rng::run`, `webui::run`, …) running in-process on the test's runtime with the
//! [`Shutdown`] it watches, and its report once it has stopped.

use std::future::Future;
use std::time::Duration;

use chocominer_process::Shutdown;
use tokio::task::JoinHandle;

/// How long a service may take to stop and hand over its report after shutdown: an ack
/// timeout of a few seconds plus the final stats write, on a loaded machine.
pub const STOP_WITHIN: Duration = Duration::from_secs(30);

/// A service's `run` on a task of its own. Dropping it leaves the task running until the test's
/// runtime ends.
pub struct Service<R> {
    name: String,
    shutdown: Shutdown,
    handle: JoinHandle<anyhow::Result<R>>,
}

impl<R: Send + 'static> Service<R> {
    /// Spawns `run(shutdown)`: the service stops when `shutdown` is triggered, by
    /// [`Service::stop`] or by the test (one `Shutdown` may be shared by several services).
    pub fn spawn<F, Fut>(name: &str, shutdown: &Shutdown, run: F) -> Service<R>
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
    {
        Service {
            name: name.to_owned(),
            shutdown: shutdown.clone(),
            handle: tokio::spawn(run(shutdown.clone())),
        }
    }

    /// Whether `run` has not returned yet.
    pub fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }

    /// Waits for `run` to return (after shutdown was triggered) and returns its report; panics
    /// if it failed, panicked or took longer than [`STOP_WITHIN`].
    pub async fn report(self) -> R {
        let name = self.name;
        match tokio::time::timeout(STOP_WITHIN, self.handle).await {
            Err(_) => panic!("{name} did not stop within {STOP_WITHIN:?} of shutdown"),
            Ok(Err(e)) => panic!("{name} panicked: {e}"),
            Ok(Ok(Err(e))) => panic!("{name} failed: {e:#}"),
            Ok(Ok(Ok(report))) => report,
        }
    }

    /// Triggers the service's shutdown (and so stops every service sharing it), then waits for
    /// its report as [`Service::report`] does.
    pub async fn stop(self) -> R {
        self.shutdown.trigger();
        self.report().await
    }
}
