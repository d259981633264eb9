//! A pipeline service (`rng::run`, `webui::run`, …) running in-process on the test's runtime,
//! and its report once shutdown has been triggered.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;

/// How long a service may take to stop and hand over its report after shutdown: an ack
/// timeout of a few seconds plus the final stats write, on a loaded machine.
pub const STOP_WITHIN: Duration = Duration::from_secs(30);

pub struct Service<R> {
    name: String,
    handle: JoinHandle<anyhow::Result<R>>,
}

impl<R: Send + 'static> Service<R> {
    pub fn spawn(
        name: &str,
        run: impl Future<Output = anyhow::Result<R>> + Send + 'static,
    ) -> Service<R> {
        Service {
            name: name.to_owned(),
            handle: tokio::spawn(run),
        }
    }

    /// Whether `run` has not returned yet.
    pub fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }

    /// Waits for `run` to return (after shutdown was triggered) and returns its report.
    pub async fn report(self) -> R {
        let name = self.name;
        match tokio::time::timeout(STOP_WITHIN, self.handle).await {
            Err(_) => panic!("{name} did not stop within {STOP_WITHIN:?} of shutdown"),
            Ok(Err(e)) => panic!("{name} panicked: {e}"),
            Ok(Ok(Err(e))) => panic!("{name} failed: {e:#}"),
            Ok(Ok(Ok(report))) => report,
        }
    }
}
