//! Waiting for a condition by polling it with a deadline, instead of sleeping: the value that
//! ends the wait is returned, and a timeout panics saying what was awaited (and, where there is
//! one, what was seen last).

use std::fmt::{Debug, Display};
use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, sleep, timeout_at};

/// Polls `f` every `every` until it returns `Some(T)` or `within` elapses; panics with `what` on
/// timeout. A call of `f` that is still pending at the deadline is abandoned.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, every: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let answer = poll(within, every, || {
        let call = f();
        async move { call.await.ok_or(()) }
    })
    .await;
    answer.unwrap_or_else(|_| panic!("timed out after {within:?} waiting for: {what}"))
}

/// Polls `f` every `every` until it returns `Ok(T)` or `within` elapses; panics with `what`
/// and the last `Err` on timeout.
pub async fn eventually_ok<T, E, F, Fut>(what: &str, within: Duration, every: Duration, f: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match poll(within, every, f).await {
        Ok(value) => value,
        Err(Some(last)) => panic!("timed out after {within:?} waiting for: {what}; last: {last}"),
        Err(None) => panic!("timed out after {within:?} waiting for: {what}; no call returned"),
    }
}

/// Polls `f` every `every` until it returns `expected`; panics with `what` and the last value
/// seen after `within`.
pub async fn eventually_eq<T, F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    expected: T,
    mut f: F,
) -> T
where
    T: PartialEq + Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let wanted = &expected;
    eventually_ok(&format!("{what} = {expected:?}"), within, every, || {
        let call = f();
        async move {
            let value = call.await;
            if value == *wanted {
                Ok(value)
            } else {
                Err(format!("{value:?}"))
            }
        }
    })
    .await
}

/// Calls `f` every `every` until it returns `Ok` or `within` elapses; the last `Err`, if any
/// call returned within the deadline, on timeout.
async fn poll<T, E, F, Fut>(within: Duration, every: Duration, mut f: F) -> Result<T, Option<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + within;
    // Each round waits `every`, so this count is never reached before the deadline; it only
    // guards against a zero `every` spinning.
    let max_rounds = within.as_millis() / every.as_millis().max(1) + 2;
    let mut last = None;
    for _ in 0..max_rounds {
        match timeout_at(deadline, f()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => last = Some(error),
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            break;
        }
        sleep(every).await;
    }
    Err(last)
}
