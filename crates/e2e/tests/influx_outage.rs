//! Per-second stats in InfluxDB: complete across an InfluxDB outage and up to the last point.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chocominer_pipeline::Shutdown;
use common::{DigestFlow, assert_one_per_second};
use testkit::{POLL, SOON, Stack, as_i64, eventually};
use tokio::time::sleep;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

fn times(points: &[serde_json::Map<String, serde_json::Value>]) -> Vec<i64> {
    points.iter().map(|p| as_i64(&p["time"])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influx_outage_loses_no_stats() {
    const OUTAGE: Duration = Duration::from_secs(4);
    let mut stack = Stack::start().await;
    let flow = DigestFlow::watch(&stack.client).await;
    let pipeline = stack
        .pipeline()
        .hasher("h1", &["--delay-ms", "0"])
        .rng("r1", &["--rate", "200", "--batch", "10"])
        .start()
        .await;

    let s = &stack;
    eventually(
        "a few worker points with hashes",
        SOON,
        POLL,
        || async move {
            let points = s.points("worker", "w1").await;
            (points.len() >= 2 && s.sum("worker", "hashes").await > 0).then_some(())
        },
    )
    .await;

    stack.influx_mut().stop().await;
    let outage_start = now_ns();
    let before_outage = flow.total();
    // The outage itself.
    sleep(OUTAGE).await;
    let during_outage = flow.total() - before_outage;
    stack.influx_mut().restart().await;
    let outage_end = now_ns();
    assert!(during_outage > 0, "mining stopped while InfluxDB was down");

    // The held points are written once InfluxDB is back, and new ones keep coming.
    let s = &stack;
    eventually(
        "worker points from after the outage",
        SOON,
        POLL,
        || async move {
            let points = s.points("worker", "w1").await;
            let newest = points.last().map_or(0, |p| as_i64(&p["time"]));
            (newest > outage_end + 1_000_000_000).then_some(())
        },
    )
    .await;

    flow.stop(&stack.client).await;
    let (rng, hasher, worker) = pipeline.stop().await;
    assert!(worker.judged > 0, "{worker:?}");

    // Nothing missing: the sums match the reports...
    stack
        .eventually_sum("worker", "hashes", worker.judged)
        .await;
    stack.eventually_sum("rng", "numbers", rng.generated).await;
    stack
        .eventually_sum("hasher", "hashes", hasher.hashed)
        .await;
    // ...and there is one point per second, through the outage and up to the last one.
    let worker_times = times(&stack.points("worker", "w1").await);
    assert!(
        worker_times[0] < outage_start && *worker_times.last().unwrap() > outage_end,
        "points do not span the outage ({outage_start}..{outage_end}): {worker_times:?}"
    );
    assert_one_per_second("worker points of w1", &worker_times);
}

/// The last point, written on shutdown, comes one second after the one before, whatever the
/// moment within the second the shutdown comes, and covers the partial second up to the moment
/// the stats stop. Those stop a moment after the trigger (the intake first waits a quiet spell
/// for batches still on their way, longer on a busy machine), so when the trigger comes late
/// in a second (here at .65–.85 s) the regular point of the next whole second may still be
/// due before the last one: the last point lies after the trigger and no later than the whole
/// second after the service returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_stats_point_follows_without_gap() {
    let stack = Stack::start().await;
    let shutdown = Shutdown::new();
    let worker = stack.spawn_worker("w1", &[], &shutdown);
    let s = &stack;
    eventually("two worker points", SOON, POLL, || async move {
        (s.points("worker", "w1").await.len() >= 2).then_some(())
    })
    .await;
    // Waiting for a moment of the wall clock, not for an event: poll it finely.
    eventually(
        "the wall clock at .65–.85 s",
        Duration::from_secs(3),
        Duration::from_millis(5),
        || async {
            let phase = now_ns().rem_euclid(1_000_000_000);
            (650_000_000..850_000_000).contains(&phase).then_some(())
        },
    )
    .await;
    shutdown.trigger();
    let stopped_at = now_ns();
    worker.report().await;
    let returned_at = now_ns();
    let next_second_after_return = (returned_at / 1_000_000_000 + 1) * 1_000_000_000;

    let worker_times = times(&stack.points("worker", "w1").await);
    let last = *worker_times.last().unwrap();
    assert_one_per_second(
        &format!("worker points of w1, stopped at {stopped_at}"),
        &worker_times,
    );
    assert!(
        last > stopped_at && last <= next_second_after_return,
        "the last point ({last}) is not the whole second after the stats stopped, which was \
         between the trigger ({stopped_at}) and the service's return ({returned_at})"
    );
}
