//! Scaling a stage to zero and back, and starting the stages in any order, loses nothing:
//! the stage before it holds its batches, says once that it waits, and resumes when a
//! replica is back; its stats show it waiting (`waiting` > 0), not losing.

use chocominer_process::Shutdown;
use testkit::{POLL, SOON, Stack, as_i64, eventually};

/// Whether the newest point of `measurement` shows batches waiting for a missing consumer.
async fn shows_waiting(stack: &Stack, measurement: &str) -> bool {
    let rows = stack
        .rows(&format!(
            r#"SELECT last("waiting") FROM "{measurement}" WHERE time > now() - 3s"#
        ))
        .await;
    rows.first().is_some_and(|row| as_i64(&row["last"]) > 0)
}

/// Waits until the workers have judged `more` numbers than they had.
async fn flowing(stack: &Stack, what: &str, more: i64) {
    let before = stack.sum("worker", "hashes").await;
    eventually(what, SOON, POLL, || async move {
        (stack.sum("worker", "hashes").await >= before + more).then_some(())
    })
    .await;
}

async fn waiting(stack: &Stack, what: &str, measurement: &str) {
    eventually(what, SOON, POLL, || async move {
        shows_waiting(stack, measurement).await.then_some(())
    })
    .await;
}

/// rng first, then the rest; then hasher 1 → 0 → 1 and worker 1 → 0 → 1.
async fn scale_to_zero_and_back(args: &[&str], progress: i64) {
    let stack = Stack::start().await;
    let (stop_rng, stop_hashers, stop_workers) =
        (Shutdown::new(), Shutdown::new(), Shutdown::new());

    // Started before any hasher: it waits instead of losing its first batches.
    let rng = stack.spawn_rng("r1", args, &stop_rng);
    waiting(&stack, "rng waiting for a hasher at start-up", "rng").await;
    let w1 = stack.spawn_worker("w1", args, &stop_workers);
    let h1_stop = Shutdown::new();
    let h1 = stack.spawn_hasher("h1", args, &h1_stop);
    flowing(&stack, "numbers flowing once a hasher is up", progress).await;

    // `scale hasher 0`: h1 finishes what it took and goes; rng holds what it cannot send.
    h1_stop.trigger();
    let h1 = h1.report().await;
    waiting(&stack, "rng waiting while no hasher runs", "rng").await;
    let h2 = stack.spawn_hasher("h2", args, &stop_hashers);
    flowing(&stack, "numbers flowing again with a new hasher", progress).await;

    // `scale worker 0`: the hasher holds its digests and gives rng's batches back.
    stop_workers.trigger();
    let w1 = w1.report().await;
    waiting(&stack, "the hasher waiting while no worker runs", "hasher").await;
    waiting(&stack, "rng waiting while the hasher cannot hand on", "rng").await;
    let w2_stop = Shutdown::new();
    let w2 = stack.spawn_worker("w2", args, &w2_stop);
    flowing(&stack, "numbers flowing again with a new worker", progress).await;

    // A graceful stop in pipeline order.
    stop_rng.trigger();
    let rng = rng.report().await;
    stop_hashers.trigger();
    let h2 = h2.report().await;
    w2_stop.trigger();
    let w2 = w2.report().await;

    let all = format!("{rng:?}\n{h1:?}\n{h2:?}\n{w1:?}\n{w2:?}");
    assert_eq!((rng.lost, h1.lost, h2.lost), (0, 0, 0), "lost:\n{all}");
    assert_eq!(rng.generated, rng.acked, "{all}");
    assert_eq!(rng.generated, w1.judged + w2.judged, "{all}");
    assert_eq!(h1.hashed + h2.hashed, rng.generated, "{all}");
    // One wait (one log line) per gap: start-up, no hasher, no worker; the hasher one.
    assert_eq!((rng.waits, h1.waits, h2.waits), (3, 0, 1), "waits:\n{all}");
    // Nothing expired at a receiver either, and InfluxDB agrees.
    stack.eventually_sum("rng", "numbers", rng.generated).await;
    stack
        .eventually_sum("worker", "hashes", rng.generated)
        .await;
    for (measurement, field) in [
        ("rng", "lost"),
        ("hasher", "lost"),
        ("hasher", "expired"),
        ("worker", "expired"),
    ] {
        assert_eq!(
            stack.sum(measurement, field).await,
            0,
            "{measurement}.{field}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_pacing_scaled_to_zero_and_back_loses_nothing() {
    scale_to_zero_and_back(&["--profile", "demo"], 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pacing_scaled_to_zero_and_back_loses_nothing() {
    // The tests' debug build hashes some 30 times slower than a release build: a full window
    // of 32000-number batches can take longer than the profile's 5 s acknowledgement timeout
    // to get through, which has nothing to do with scaling. Give it time.
    scale_to_zero_and_back(
        &["--profile", "full", "--ack-timeout-ms", "30000"],
        1_000_000,
    )
    .await;
}
