//! Memory under pressure, with the stages as real processes and their resident memory read
//! from `/proc` every second: full-profile rng and hasher in front of a worker much slower than
//! them (`WORKER_DELAY_MS`), then a flood of 1 MB junk at that worker. The windows of
//! unacknowledged batches, the hasher's queue and the worker's subscription capacity are what
//! bound the memory; the slow worker slows rng instead of letting batches pile up.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{DIGESTS, junk};
use testkit::{Memory, POLL, SOON, Stack, StageProcess, as_i64, eventually};
use tokio::time::{Instant, MissedTickBehavior, interval};

const MB: u64 = 1 << 20;
/// Numbers per batch. The full profile's 32,000 take a debug build's hasher (these tests run
/// the dev binaries) over a second each, which would make the hasher the slow stage.
const BATCH: &str = "1000";
/// What judging one hash costs the slow worker (`WORKER_DELAY_MS` is per hash): 100 ms a batch
/// of 1000, 10 batches/s, 10,000 hashes/s, a fraction of what even a debug hasher does. Short
/// enough that rng's window of 16 batches waits 1.6 s for its acknowledgements, well within the
/// full profile's ack timeout (5 s): a slower worker would have rng's batches time out and
/// count as lost rather than wait.
const WORKER_DELAY_MS: &str = "0.1";
/// Messages the worker's NATS client holds for its input: above the hasher's window of 8.
const WORKER_CAPACITY: u64 = 32;
/// Seconds of the slow worker alone, then of the flood and what follows it.
const STEADY_SECONDS: usize = 10;
const FLOOD_SECONDS: usize = 10;
/// Junk messages of 1 MB flooded at the worker: ten times its subscription capacity.
const FLOOD: usize = 320;
/// The most a stage may be resident while the worker is slow.
const STEADY_BOUND: u64 = 64 * MB;
/// How much a stage may grow over the slow-worker run past its early plateau (seconds 2–5).
const PLATEAU_MARGIN: u64 = 8 * MB;
/// The most the worker may be resident under the flood: the steady bound, and its
/// subscription's capacity in 1 MB messages.
const FLOOD_BOUND: u64 = STEADY_BOUND + WORKER_CAPACITY * MB;

/// Resident memory of each stage, one row per second.
#[derive(Default)]
struct Samples {
    rows: Vec<[Memory; 3]>,
}

impl Samples {
    /// Samples the three processes once a second for `seconds` seconds.
    async fn take(&mut self, stages: &mut [&mut StageProcess; 3], seconds: usize) {
        let mut every = interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        for _ in 0..seconds {
            every.tick().await;
            let row = [0, 1, 2].map(|i| {
                stages[i]
                    .memory()
                    .unwrap_or_else(|| panic!("stage {i} exited: {}", stages[i].log_tail()))
            });
            self.rows.push(row);
        }
    }

    /// Resident memory of stage `i`, in MB, per second from `from`.
    fn rss_mb(&self, i: usize, from: usize) -> Vec<u64> {
        self.rows[from..]
            .iter()
            .map(|row| row[i].rss / MB)
            .collect()
    }

    fn peak(&self, i: usize) -> u64 {
        self.rows
            .iter()
            .map(|row| row[i].peak_rss)
            .max()
            .unwrap_or(0)
    }
}

/// The last `n` points of `measurement` from `instance`: (in_flight, window) of each.
async fn windows(stack: &Stack, measurement: &str, instance: &str, n: usize) -> Vec<(i64, i64)> {
    let points = stack.points(measurement, instance).await;
    points[points.len().saturating_sub(n)..]
        .iter()
        .map(|p| (as_i64(&p["in_flight"]), as_i64(&p["window"])))
        .collect()
}

/// Whether (in flight, window) pairs show a window of `window` kept full: at least 90 % of it
/// on average, never less than half.
fn saturated(points: &[(i64, i64)], window: i64) -> bool {
    let sum: i64 = points.iter().map(|(n, _)| n).sum();
    !points.is_empty()
        && points.iter().all(|(n, w)| *w == window && n * 2 >= window)
        && sum * 10 >= window * 9 * points.len() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_worker_and_a_junk_flood_leave_memory_bounded() {
    let stack = Stack::start().await;
    let (rng_bin, hasher_bin, worker_bin) = tokio::join!(
        testkit::cargo_bin_async("rng"),
        testkit::cargo_bin_async("hasher"),
        testkit::cargo_bin_async("worker"),
    );
    let capacity = WORKER_CAPACITY.to_string();
    let mut worker = stack.spawn_process(
        &worker_bin,
        "w1",
        &[
            "--profile",
            "full",
            "--delay-ms",
            WORKER_DELAY_MS,
            "--nats-subscription-capacity",
            &capacity,
        ],
    );
    let mut hasher = stack.spawn_process(&hasher_bin, "h1", &["--profile", "full"]);
    stack.wait_for_service("worker", &["w1"]).await;
    stack.wait_for_service("hasher", &["h1"]).await;
    let mut rng = stack.spawn_process(&rng_bin, "r1", &["--profile", "full", "--batch", BATCH]);
    // rng's window full: the slow worker holds the pipeline back.
    eventually("rng's window full", SOON, POLL, || async {
        let last = windows(&stack, "rng", "r1", 1).await;
        last.first()
            .is_some_and(|(n, w)| *w > 0 && n == w)
            .then_some(())
    })
    .await;

    let mut samples = Samples::default();
    let started = Instant::now();
    let judged_at_start = stack.sum("worker", "hashes").await;
    samples
        .take(&mut [&mut rng, &mut hasher, &mut worker], STEADY_SECONDS)
        .await;
    // Slowed, not piling up: rng and the hasher each keep their window out, second after
    // second (on average 90 % of it or more, the bottleneck rule's "saturated", never less
    // than half: a gauge read between acknowledgements and the next batches shows a few
    // less), and nothing was lost.
    let rng_windows = windows(&stack, "rng", "r1", STEADY_SECONDS - 2).await;
    let hasher_windows = windows(&stack, "hasher", "h1", STEADY_SECONDS - 2).await;
    let lost_steady = stack.sum("rng", "lost").await + stack.sum("hasher", "lost").await;
    let judged_steady = stack.sum("worker", "hashes").await - judged_at_start;
    let steady_secs = started.elapsed().as_secs_f64();
    tracing::info!(
        ?rng_windows,
        ?hasher_windows,
        lost_steady,
        judged_steady,
        rate = judged_steady as f64 / steady_secs,
        "slow worker: (in flight, window) per second"
    );
    assert!(
        saturated(&rng_windows, 16),
        "rng's window not kept full: {rng_windows:?}"
    );
    assert!(
        saturated(&hasher_windows, 8),
        "the hasher's window not kept full: {hasher_windows:?}"
    );
    assert_eq!(lost_steady, 0, "batches lost behind a slow worker");
    for (i, name) in ["rng", "hasher", "worker"].iter().enumerate() {
        let rss = samples.rss_mb(i, 0);
        let plateau = rss[1..5].iter().max().copied().unwrap_or(0) * MB;
        let late = rss[rss.len() - 3..].iter().max().copied().unwrap_or(0) * MB;
        tracing::info!(
            name,
            ?rss,
            peak_mb = samples.peak(i) / MB,
            "slow worker: resident MB per second"
        );
        assert!(
            samples.peak(i) <= STEADY_BOUND,
            "{name} peaked at {} MB behind a slow worker (bound {} MB): {rss:?}",
            samples.peak(i) / MB,
            STEADY_BOUND / MB
        );
        assert!(
            late <= plateau + PLATEAU_MARGIN,
            "{name} grew past its early plateau: {rss:?} MB"
        );
    }

    // The flood: 1 MB messages of junk on the worker's subject, from a hasher's credentials
    // (the only ones that may publish digests), as fast as they go.
    let flooder = stack.connect_as("hasher").await;
    let junk: Vec<Bytes> = (0..4).map(|i| junk(1 << 20, i).into()).collect();
    let read_before = stack.nats.messages_in_from("hasher").await;
    let flooding = Instant::now();
    let mut sent = 0u64;
    for i in 0..FLOOD {
        if flooding.elapsed() > Duration::from_secs(30) {
            break;
        }
        flooder
            .publish(DIGESTS, junk[i % junk.len()].clone())
            .await
            .expect("publish junk");
        sent += 1;
        // Now and then a round trip, so the test's own client does not buffer the flood.
        if i % 16 == 15 {
            flooder.flush().await.expect("flush");
        }
    }
    flooder.flush().await.expect("flush");
    let flooded_in = flooding.elapsed();
    let flood_rows = samples.rows.len();
    samples
        .take(&mut [&mut rng, &mut hasher, &mut worker], FLOOD_SECONDS)
        .await;
    let rejected = stack.sum("worker", "rejected").await;
    tracing::info!(
        sent,
        ?flooded_in,
        rejected,
        worker_rss_mb = ?samples.rss_mb(2, flood_rows),
        worker_peak_mb = samples.peak(2) / MB,
        hasher_peak_mb = samples.peak(1) / MB,
        rng_peak_mb = samples.peak(0) / MB,
        "flood of 1 MB junk at the slow worker"
    );
    assert!(
        stack.nats.messages_in_from("hasher").await >= read_before + sent,
        "the server did not read the whole flood"
    );
    assert!(rejected > 0, "no junk reached the worker");
    assert!(
        samples.peak(2) <= FLOOD_BOUND,
        "the worker peaked at {} MB under {sent} MB of junk (bound {} MB)",
        samples.peak(2) / MB,
        FLOOD_BOUND / MB
    );
    for i in 0..2 {
        assert!(
            samples.peak(i) <= STEADY_BOUND,
            "stage {i} grew with the flood"
        );
    }

    // Still mining, and stopped gracefully: every number is accounted for.
    let judged_before = stack.sum("worker", "hashes").await;
    eventually("the worker judging after the flood", SOON, POLL, || async {
        (stack.sum("worker", "hashes").await > judged_before).then_some(())
    })
    .await;
    for (name, stage) in [
        ("rng", &mut rng),
        ("hasher", &mut hasher),
        ("worker", &mut worker),
    ] {
        let status = stage.terminate(SOON).await;
        assert!(status.success(), "{name}: {status:?}\n{}", stage.log_tail());
    }
    let generated = stack.sum("rng", "numbers").await;
    let judged = stack.sum("worker", "hashes").await;
    let lost = stack.sum("rng", "lost").await + stack.sum("hasher", "lost").await;
    tracing::info!(generated, judged, lost, "the whole run");
    assert_eq!(generated, judged + lost, "numbers unaccounted for");
}
