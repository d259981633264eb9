//! What the page shows, computed from InfluxDB in one request of a few InfluxQL statements.
//!
//! The stages' figures (rate over the last complete seconds, instances alive, busy, window
//! fill, rate limit) and the bottleneck are `chocominer_common::pipeline_status`'s, the same
//! definition and rule as `chocominer status`: the page and the command agree. Only what the
//! page alone shows is read here: the charts ([`SERIES_SECS`] seconds, one value a second,
//! ending [`LAG_SECS`] seconds ago, when every instance has written its point), the latest
//! nuggets and the totals since the database began.

use chocominer_common::Stage;
use chocominer_common::influx_query::Row;
use chocominer_common::pipeline_status::{self, LOOKBACK, Snapshot, StageFigures, WINDOW_SECONDS};
use serde::Serialize;
use serde_json::Value;

/// How far behind the clock the charts end: points arrive up to ~1 s late.
pub const LAG_SECS: i64 = 2;
/// Seconds of history in the charts, one value per second.
pub const SERIES_SECS: i64 = 300;
/// How many of the latest nuggets are listed.
pub const NUGGETS_LISTED: usize = 10;

const SECOND_MS: i64 = 1000;
const MS_NS: i64 = 1_000_000;

/// The time spans of one summary, from the clock at `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Spans {
    pub now_ms: i64,
    /// First and last second (inclusive, whole-second timestamps) of the rate window: the
    /// [`WINDOW_SECONDS`] seconds of the stages' figures (before the figures are read, and
    /// when nothing runs, the ones ending with the charts).
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// First and last second of the charts.
    pub series_start_ms: i64,
    pub series_end_ms: i64,
}

impl Spans {
    pub fn at(now_ms: i64) -> Spans {
        let second = now_ms.div_euclid(SECOND_MS) * SECOND_MS;
        let series_end_ms = second - LAG_SECS * SECOND_MS;
        Spans {
            now_ms,
            window_start_ms: series_end_ms - (WINDOW_SECONDS - 1) * SECOND_MS,
            window_end_ms: series_end_ms,
            series_start_ms: series_end_ms - (SERIES_SECS - 1) * SECOND_MS,
            series_end_ms,
        }
    }

    /// The spans with the rate window of `snapshot`, when something runs.
    fn with_window_of(mut self, snapshot: &Snapshot) -> Spans {
        if let Some(end_ns) = snapshot.up_to_ns {
            self.window_end_ms = end_ns.div_euclid(MS_NS);
            self.window_start_ms = self.window_end_ms - (snapshot.window_seconds - 1) * SECOND_MS;
        }
        self
    }
}

/// Where the stages' statements start in [`statements`].
const STAGES_AT: usize = 5;

/// The statements of one summary, in the order [`Summary::from_results`] reads them.
pub fn statements(spans: &Spans) -> Vec<String> {
    let mut statements = vec![
        // 0: the charts.
        format!(
            r#"SELECT sum("hashes") AS hashes, sum("nuggets") AS nuggets FROM "worker" WHERE time >= {}ms AND time <= {}ms GROUP BY time(1s) fill(0)"#,
            spans.series_start_ms, spans.series_end_ms
        ),
        // 1: the latest nuggets.
        format!(
            r#"SELECT "number", "digest", "zero_bits", "instance" FROM "nugget" ORDER BY time DESC LIMIT {NUGGETS_LISTED}"#
        ),
        // 2-4: totals since the database began.
        r#"SELECT sum("hashes") AS hashes, sum("nuggets") AS nuggets FROM "worker""#.to_owned(),
        r#"SELECT sum("numbers") AS numbers, sum("lost") AS lost FROM "rng""#.to_owned(),
        r#"SELECT sum("lost") AS lost FROM "hasher""#.to_owned(),
    ];
    // 5-7: the stages' recent points, for their figures.
    debug_assert_eq!(statements.len(), STAGES_AT);
    statements.extend(pipeline_status::statements(LOOKBACK));
    statements
}

/// Everything `/api/summary` returns when InfluxDB answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub spans: Spans,
    /// Summed over instances, per second over the window.
    pub hashes_per_s: f64,
    pub nuggets_per_s: f64,
    /// One value per second from `spans.series_start_ms` to `spans.series_end_ms`.
    pub series: Series,
    pub stages: Stages,
    pub bottleneck: Option<Bottleneck>,
    pub nuggets: Vec<NuggetRow>,
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub start_ms: i64,
    pub step_ms: i64,
    pub hashes: Vec<f64>,
    pub nuggets: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stages {
    pub rng: StageNow,
    pub hasher: StageNow,
    pub worker: StageNow,
}

/// One stage over the window, as the page reads it (from the shared [`StageFigures`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageNow {
    /// Numbers/s (rng) or hashes/s (hasher, worker), summed over instances.
    pub rate: f64,
    /// Instances alive, by name.
    pub instances: Vec<String>,
    /// hasher: share of the time spent hashing, averaged over instances (0..1).
    pub busy: Option<f64>,
    /// rng, hasher: batches in flight over the window they may have (0..1).
    pub window_fill: Option<f64>,
    /// rng: summed rate limit in numbers/s; `None` when some rng is unlimited.
    pub rate_limit: Option<f64>,
}

impl From<&StageFigures> for StageNow {
    fn from(figures: &StageFigures) -> StageNow {
        StageNow {
            rate: figures.rate,
            instances: figures.instances.clone(),
            busy: figures.busy,
            window_fill: figures.window_use(),
            rate_limit: figures.rate_limit.filter(|&limit| limit > 0.0),
        }
    }
}

/// The stage holding the pipeline back, and why, in words for the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bottleneck {
    pub stage: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NuggetRow {
    pub time_ms: i64,
    pub number: String,
    pub digest: String,
    pub zero_bits: i64,
    pub instance: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Totals {
    pub hashes: f64,
    pub nuggets: f64,
    pub numbers: f64,
    /// Numbers lost by rng and hashers (unacknowledged batches).
    pub lost: f64,
}

/// A number from a row (InfluxDB gives null for an empty aggregate).
fn num(row: Option<&Row>, column: &str) -> Option<f64> {
    row?.get(column)?.as_f64()
}

impl Summary {
    /// Reads the results of [`statements`]; the stages' figures are as of `now_ns`.
    pub fn from_results(spans: Spans, now_ns: i64, results: &[Vec<Row>]) -> Summary {
        let empty = Vec::new();
        let result = |i: usize| results.get(i).unwrap_or(&empty);
        let first = |i: usize| result(i).first();

        let len = SERIES_SECS as usize;
        let mut hashes = vec![0.0; len];
        let mut nuggets = vec![0.0; len];
        for row in result(0) {
            let Some(time) = row.get("time").and_then(Value::as_i64) else {
                continue;
            };
            let i = (time - spans.series_start_ms).div_euclid(SECOND_MS);
            if let Ok(i) = usize::try_from(i)
                && i < len
            {
                hashes[i] = num(Some(row), "hashes").unwrap_or(0.0);
                nuggets[i] = num(Some(row), "nuggets").unwrap_or(0.0);
            }
        }

        let points =
            pipeline_status::points_from_results(results.get(STAGES_AT..).unwrap_or_default());
        let snapshot = Snapshot::from_points(&points, now_ns);
        let verdict = pipeline_status::bottleneck::find(&snapshot);
        let stages = Stages {
            rng: StageNow::from(&snapshot.rng),
            hasher: StageNow::from(&snapshot.hasher),
            worker: StageNow::from(&snapshot.worker),
        };

        let nuggets_rows = result(1)
            .iter()
            .map(|row| NuggetRow {
                time_ms: row.get("time").and_then(Value::as_i64).unwrap_or(0),
                number: text(row, "number"),
                digest: text(row, "digest"),
                zero_bits: row.get("zero_bits").and_then(Value::as_i64).unwrap_or(0),
                instance: text(row, "instance"),
            })
            .collect();

        let totals = Totals {
            hashes: num(first(2), "hashes").unwrap_or(0.0),
            nuggets: num(first(2), "nuggets").unwrap_or(0.0),
            numbers: num(first(3), "numbers").unwrap_or(0.0),
            lost: num(first(3), "lost").unwrap_or(0.0) + num(first(4), "lost").unwrap_or(0.0),
        };

        Summary {
            spans: spans.with_window_of(&snapshot),
            hashes_per_s: snapshot.worker.rate,
            nuggets_per_s: snapshot.worker.nuggets.unwrap_or(0.0),
            series: Series {
                start_ms: spans.series_start_ms,
                step_ms: SECOND_MS,
                hashes,
                nuggets,
            },
            // Nothing running (the page says so) or nothing saturated: no stage to name.
            bottleneck: verdict.stage().map(|stage| Bottleneck {
                stage: Stage::name(stage),
                reason: verdict.reason().unwrap_or_default().to_owned(),
            }),
            stages,
            nuggets: nuggets_rows,
            totals,
        }
    }
}

fn text(row: &Row, column: &str) -> String {
    row.get(column)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spans_end_in_the_past_on_whole_seconds() {
        let spans = Spans::at(1_000_000_700);
        assert_eq!(spans.series_end_ms, 999_998_000);
        assert_eq!(spans.window_end_ms, 999_998_000);
        assert_eq!(spans.window_start_ms, 999_994_000);
        assert_eq!(
            (spans.series_end_ms - spans.series_start_ms) / 1000 + 1,
            SERIES_SECS
        );
    }

    fn row(value: Value) -> Row {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn reads_the_results() {
        let now_ms = 1_000_000_000;
        let spans = Spans::at(now_ms);
        let mut results: Vec<Vec<Row>> = vec![Vec::new(); statements(&spans).len()];
        results[0] = vec![
            row(json!({"time": spans.series_start_ms, "hashes": 3, "nuggets": 1})),
            row(json!({"time": spans.series_end_ms, "hashes": 50, "nuggets": null})),
        ];
        results[1] = vec![row(json!({"time": 5, "number": "ab", "digest": "0f",
            "zero_bits": 4, "instance": "worker-1"}))];
        results[2] = vec![row(json!({"time": 0, "hashes": 1000, "nuggets": 60}))];
        results[3] = vec![row(json!({"time": 0, "numbers": 1100, "lost": 7}))];
        // The last 6 s of an rng at its limit, a hasher-2 and a hasher-10; no worker.
        for ago in 1..=6 {
            let time = now_ms - ago * SECOND_MS;
            results[STAGES_AT].push(row(json!({"time": time, "instance": "rng-1",
                "numbers": 100, "rate_limit": 100.0, "in_flight": 3, "window": 32})));
            for name in ["hasher-10", "hasher-2"] {
                results[STAGES_AT + 1].push(row(json!({"time": time, "instance": name,
                    "hashes": 25, "busy": 0.5, "in_flight": 1, "window": 8})));
            }
        }
        let s = Summary::from_results(spans, now_ms * MS_NS, &results);
        assert_eq!((s.series.hashes[0], s.series.nuggets[0]), (3.0, 1.0));
        assert_eq!(s.series.hashes.len(), SERIES_SECS as usize);
        assert_eq!(s.series.hashes[SERIES_SECS as usize - 1], 50.0);
        assert_eq!(s.spans.window_end_ms, now_ms - 1000);
        assert_eq!(s.spans.window_start_ms, now_ms - 5000);
        assert_eq!(s.stages.rng.rate_limit, Some(100.0));
        assert_eq!(s.stages.rng.rate, 100.0);
        assert_eq!(s.stages.hasher.rate, 50.0);
        assert_eq!(s.stages.hasher.window_fill, Some(0.125));
        assert_eq!(s.stages.hasher.instances, ["hasher-2", "hasher-10"]);
        assert!(s.stages.worker.instances.is_empty());
        assert_eq!(s.bottleneck.map(|b| b.stage), Some("worker"), "none runs");
        assert_eq!(s.nuggets[0].instance, "worker-1");
        assert_eq!(s.totals.lost, 7.0);
        let empty = Summary::from_results(spans, now_ms * MS_NS, &[]);
        assert_eq!((empty.hashes_per_s, empty.bottleneck), (0.0, None));
        assert_eq!(empty.spans, spans);
    }
}
