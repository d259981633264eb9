//! Per-second stats and nugget records in InfluxDB: complete across a 30 s InfluxDB outage
//! (every point and every nugget found meanwhile held and written once it is back) and up to
//! the last point.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chocominer_process::Shutdown;
use common::{DigestFlow, assert_one_per_second, check_nugget_point};
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

/// How long InfluxDB is down: long enough for the stages to hold dozens of points each and
/// the worker hundreds of nugget records.
const OUTAGE: Duration = Duration::from_secs(30);
/// The worker's difficulty: one digest in 64 is a nugget, a few nuggets a second at the rate
/// below, so many are found while InfluxDB is away.
const DIFFICULTY: u32 = 6;

/// How many of `times` (ns) fall within `from..=to`.
fn within(times: &[i64], from: i64, to: i64) -> usize {
    times.iter().filter(|t| (from..=to).contains(*t)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influx_outage_loses_no_stats_and_no_nugget() {
    let mut stack = Stack::start().await;
    let flow = DigestFlow::watch(&stack.client).await;
    let difficulty = DIFFICULTY.to_string();
    let pipeline = stack
        .pipeline()
        .worker("w1", &["--difficulty", &difficulty])
        .hasher("h1", &["--delay-ms", "0"])
        .rng("r1", &["--rate", "200", "--batch", "10"])
        .start()
        .await;

    let s = &stack;
    eventually(
        "a few worker points with hashes, and a nugget",
        SOON,
        POLL,
        || async move {
            let points = s.points("worker", "w1").await;
            (points.len() >= 2 && s.sum("worker", "nuggets").await > 0).then_some(())
        },
    )
    .await;

    stack.influx_mut().stop().await;
    let outage_start = now_ns();
    let before_outage = flow.total();
    // The outage itself: nothing to wait for but the time.
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
    assert_eq!(rng.lost + hasher.lost, 0, "{rng:?} {hasher:?}");

    // Nothing missing: the sums match the reports...
    stack
        .eventually_sum("worker", "hashes", worker.judged)
        .await;
    stack
        .eventually_sum("worker", "nuggets", worker.nuggets)
        .await;
    stack.eventually_sum("rng", "numbers", rng.generated).await;
    stack.eventually_sum("rng", "lost", rng.lost).await;
    stack
        .eventually_sum("hasher", "hashes", hasher.hashed)
        .await;
    // ...every nugget the worker found has its record, each one verifies...
    let nuggets = stack
        .rows(r#"SELECT * FROM "nugget" ORDER BY time ASC"#)
        .await;
    assert_eq!(nuggets.len() as u64, worker.nuggets, "{worker:?}");
    for row in &nuggets {
        check_nugget_point(row, DIFFICULTY);
    }
    let nugget_times = times(&nuggets);
    let nuggets_in_outage = within(&nugget_times, outage_start, outage_end);
    assert!(
        nuggets_in_outage > 0,
        "no nugget found while InfluxDB was down: {nugget_times:?}"
    );
    // ...and each stage has one point per second, through the outage and up to the last one.
    let mut points_in_outage = 0;
    for (measurement, instance) in [("rng", "r1"), ("hasher", "h1"), ("worker", "w1")] {
        let stage_times = times(&stack.points(measurement, instance).await);
        assert!(
            stage_times[0] < outage_start && *stage_times.last().unwrap() > outage_end,
            "{measurement} points do not span the outage ({outage_start}..{outage_end}): \
             {stage_times:?}"
        );
        assert_one_per_second(&format!("{measurement} points of {instance}"), &stage_times);
        points_in_outage += within(&stage_times, outage_start, outage_end);
    }
    tracing::info!(
        outage = ?OUTAGE,
        points_in_outage,
        nuggets_in_outage,
        nuggets = worker.nuggets,
        judged = worker.judged,
        "held while InfluxDB was down, all written once it was back"
    );
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
