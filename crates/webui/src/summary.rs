//! What the page shows, computed from InfluxDB in two requests of a few InfluxQL statements.
//!
//! The stages' figures (rate over the last complete seconds, instances alive, busy, window
//! fill, rate limit) and the bottleneck are `chocominer_status`'s, the same
//! definition and rule as `chocominer status`: the page and the command agree. Only what the
//! page alone shows is read here:
//! - the charts ([`SERIES_SECS`] seconds, one value a second, ending [`LAG_SECS`] seconds ago,
//!   when every instance has written its point). A second without any worker point is `null`,
//!   not 0: before the stack started there is no data, and the page draws none. The seconds
//!   where the difficulty changed are listed, so the page can mark them;
//! - the difficulty in force: the `difficulty` of each alive worker's newest point;
//! - the latest nuggets;
//! - the totals: all runs since the first worker point, and, for the difficulty in force, the
//!   nuggets and hashes at that difficulty (nuggets of different difficulties do not add up to
//!   anything meaningful). Which difficulty that is comes from the first request, so those
//!   totals are a second request ([`difficulty_statements`]);
//! - what the stages wait for: their `waiting` gauge (batches held while no instance of the
//!   next stage listens), from each alive instance's newest point, missing counted as 0.
//!
//! Measurements and fields are named from `chocominer_influx::schema`; the column aliases
//! (`AS hashes`) are this module's own. The lesson (the step, the last change and what to try
//! next) is filled in by the server, which remembers the rate between summaries: see
//! [`crate::lesson`].

use std::collections::BTreeSet;

use chocominer_influx::Row;
use chocominer_influx::schema::{
    HASHER, INSTANCE, NUGGET, RNG, WORKER, hasher, nugget, rng, worker,
};
use chocominer_pipeline::Stage;
use chocominer_status::lesson::Counts;
use chocominer_status::{self, LOOKBACK, Snapshot, StageFigures, StatsPoint, WINDOW_SECONDS};
use serde::Serialize;
use serde_json::Value;

use crate::lesson::Lesson;

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
const STAGES_AT: usize = 7;

/// The statements of the first request, in the order [`Summary::from_results`] reads them.
pub fn statements(spans: &Spans) -> Vec<String> {
    let (w, hashes, nuggets, difficulty) = (
        WORKER.name(),
        worker::HASHES.name(),
        worker::NUGGETS.name(),
        worker::DIFFICULTY.name(),
    );
    let (n, number, digest, zero_bits) = (
        NUGGET.name(),
        nugget::NUMBER.name(),
        nugget::DIGEST.name(),
        nugget::ZERO_BITS.name(),
    );
    let forged = worker::FORGED.name();
    let (r, numbers, rng_lost) = (RNG.name(), rng::NUMBERS.name(), rng::LOST.name());
    let (h, hasher_lost) = (HASHER.name(), hasher::LOST.name());
    let mut statements = vec![
        // 0: the charts; fill(none): a second without points is no data, not zero.
        format!(
            r#"SELECT sum("{hashes}") AS hashes, sum("{nuggets}") AS nuggets, min("{difficulty}") AS difficulty_min, max("{difficulty}") AS difficulty_max FROM "{w}" WHERE time >= {}ms AND time <= {}ms GROUP BY time(1s) fill(none)"#,
            spans.series_start_ms, spans.series_end_ms
        ),
        // 1: the latest nuggets.
        format!(
            r#"SELECT "{number}", "{digest}", "{zero_bits}", "{INSTANCE}" FROM "{n}" ORDER BY time DESC LIMIT {NUGGETS_LISTED}"#
        ),
        // 2-4: totals since the database began...
        format!(
            r#"SELECT sum("{hashes}") AS hashes, sum("{nuggets}") AS nuggets, sum("{forged}") AS forged FROM "{w}""#
        ),
        format!(r#"SELECT sum("{numbers}") AS numbers, sum("{rng_lost}") AS lost FROM "{r}""#),
        format!(r#"SELECT sum("{hasher_lost}") AS lost FROM "{h}""#),
        // 5: ...which is when the first worker point was written;
        format!(r#"SELECT first("{hashes}") AS hashes FROM "{w}""#),
        // 6: the newest difficulty written, for when no worker runs.
        format!(r#"SELECT last("{difficulty}") AS difficulty FROM "{w}""#),
    ];
    // 7-9: the stages' recent points, for their figures.
    debug_assert_eq!(statements.len(), STAGES_AT);
    statements.extend(chocominer_status::statements(LOOKBACK));
    statements
}

/// The statements of the second request: for each of `difficulties`, the hashes and nuggets
/// at that difficulty and when the first point at it was written, as
/// [`DifficultyNow::read_totals`] reads them.
pub fn difficulty_statements(difficulties: &[i64]) -> Vec<String> {
    let (w, hashes, nuggets, difficulty) = (
        WORKER.name(),
        worker::HASHES.name(),
        worker::NUGGETS.name(),
        worker::DIFFICULTY.name(),
    );
    difficulties
        .iter()
        .flat_map(|d| {
            [
                format!(
                    r#"SELECT sum("{hashes}") AS hashes, sum("{nuggets}") AS nuggets FROM "{w}" WHERE "{difficulty}" = {d}"#
                ),
                format!(
                    r#"SELECT first("{hashes}") AS hashes FROM "{w}" WHERE "{difficulty}" = {d}"#
                ),
            ]
        })
        .collect()
}

/// Everything `/api/summary` returns when InfluxDB answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub spans: Spans,
    /// Summed over instances, per second over the window.
    pub hashes_per_s: f64,
    pub nuggets_per_s: f64,
    pub difficulty: DifficultyNow,
    /// One value per second from `spans.series_start_ms` to `spans.series_end_ms`.
    pub series: Series,
    pub stages: Stages,
    /// `None` when nothing runs or nothing is saturated, and always in discovery mode.
    pub bottleneck: Option<Bottleneck>,
    /// Discovery mode: no bottleneck named, here or in the lesson (see [`crate::lesson`]).
    pub discovery: bool,
    pub lesson: Lesson,
    pub nuggets: Vec<NuggetRow>,
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub start_ms: i64,
    pub step_ms: i64,
    /// Summed over the workers; `None` (null) for a second without any worker point.
    pub hashes: Vec<Option<f64>>,
    pub nuggets: Vec<Option<f64>>,
    /// The seconds of the charts whose difficulty differs from that of the second before
    /// with a known difficulty (seconds without data in between are skipped: a stack stopped
    /// in demo and started in full is one change).
    pub difficulty_changes: Vec<DifficultyChange>,
}

/// The difficulties of the worker points of one second: one value, or several while workers
/// of different difficulties run side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DifficultyRange {
    pub min: i64,
    pub max: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DifficultyChange {
    /// The first second at the new difficulty.
    pub time_ms: i64,
    pub from: DifficultyRange,
    pub to: DifficultyRange,
}

/// The difficulty in force, and the totals at it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DifficultyNow {
    /// The difficulties of the alive workers' newest points, each once, smallest first: one
    /// value, several while a change rolls through the workers, none when no worker runs (or
    /// the workers running do not write a difficulty).
    pub in_force: Vec<i64>,
    /// The newest difficulty any worker wrote; when no worker runs, the last run's.
    pub last: Option<i64>,
    /// Hashes and nuggets at each difficulty of [`DifficultyNow::totals_wanted`].
    pub totals: Vec<DifficultyTotals>,
}

/// What the workers did at one difficulty, in every run at it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DifficultyTotals {
    pub difficulty: i64,
    /// When the first worker point at this difficulty was written.
    pub since_ms: Option<i64>,
    pub hashes: f64,
    pub nuggets: f64,
}

impl DifficultyNow {
    /// The difficulties whose totals the page shows: those in force, or, when no worker runs,
    /// the last run's.
    pub fn totals_wanted(&self, workers_alive: bool) -> Vec<i64> {
        match (self.in_force.is_empty(), workers_alive, self.last) {
            (false, _, _) => self.in_force.clone(),
            (true, false, Some(last)) => vec![last],
            _ => Vec::new(),
        }
    }

    /// Reads the results of [`difficulty_statements`]`(difficulties)`.
    pub fn read_totals(&mut self, difficulties: &[i64], results: &[Vec<Row>]) {
        self.totals = difficulties
            .iter()
            .enumerate()
            .map(|(i, &difficulty)| {
                let sums = results.get(2 * i).and_then(|rows| rows.first());
                let first = results.get(2 * i + 1).and_then(|rows| rows.first());
                DifficultyTotals {
                    difficulty,
                    since_ms: first.and_then(|row| row.get("time")?.as_i64()),
                    hashes: num(sums, "hashes").unwrap_or(0.0),
                    nuggets: num(sums, "nuggets").unwrap_or(0.0),
                }
            })
            .collect();
    }
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
    /// rng, hasher: batches sent and not yet acknowledged by the next stage, summed over the
    /// instances (each averaged over the window)...
    pub in_flight: Option<f64>,
    /// ...the most they may have out...
    pub window: Option<f64>,
    /// ...and the one over the other (0..1).
    pub window_fill: Option<f64>,
    /// rng, hasher: batches held because no instance of the next stage listens, summed over
    /// the alive instances' newest points; `None` when no instance is alive.
    pub waiting: Option<f64>,
    /// rng: summed rate limit in numbers/s; `None` when some rng is unlimited.
    pub rate_limit: Option<f64>,
}

impl StageNow {
    fn new(figures: &StageFigures, waiting: Option<f64>) -> StageNow {
        StageNow {
            rate: figures.rate,
            instances: figures.instances.clone(),
            busy: figures.busy,
            in_flight: figures.in_flight,
            window: figures.window,
            window_fill: figures.window_use(),
            waiting,
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

/// Totals of every run the database holds, whatever their difficulty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Totals {
    /// When the first worker point was written: what the totals cover starts there.
    pub since_ms: Option<i64>,
    pub hashes: f64,
    pub nuggets: f64,
    pub numbers: f64,
    /// Numbers lost by rng and hashers (unacknowledged batches).
    pub lost: f64,
    /// Nugget candidates the workers refused as forged (their digest not their number's hash).
    pub forged: f64,
}

/// A number from a row (InfluxDB gives null for an empty aggregate).
fn num(row: Option<&Row>, column: &str) -> Option<f64> {
    row?.get(column)?.as_f64()
}

/// The newest point of each of `stage`'s instances named in `alive`.
fn newest_points<'a>(
    points: &'a [StatsPoint],
    stage: Stage,
    alive: &[String],
) -> Vec<&'a StatsPoint> {
    alive
        .iter()
        .filter_map(|name| {
            points
                .iter()
                .filter(|p| p.stage == stage && &p.instance == name)
                .max_by_key(|p| p.time_ns)
        })
        .collect()
}

/// The charts' series from the rows of statement 0.
fn series(spans: &Spans, rows: &[Row]) -> Series {
    let len = SERIES_SECS as usize;
    let mut hashes = vec![None; len];
    let mut nuggets = vec![None; len];
    let mut difficulty = vec![None; len];
    for row in rows {
        let Some(time) = row.get("time").and_then(Value::as_i64) else {
            continue;
        };
        let i = (time - spans.series_start_ms).div_euclid(SECOND_MS);
        if let Ok(i) = usize::try_from(i)
            && i < len
        {
            // A second with points has counts, 0 when a sum is empty.
            hashes[i] = Some(num(Some(row), "hashes").unwrap_or(0.0));
            nuggets[i] = Some(num(Some(row), "nuggets").unwrap_or(0.0));
            let int = |column| row.get(column).and_then(Value::as_i64);
            difficulty[i] = match (int("difficulty_min"), int("difficulty_max")) {
                (Some(min), Some(max)) => Some(DifficultyRange { min, max }),
                _ => None,
            };
        }
    }
    let mut difficulty_changes = Vec::new();
    let mut before: Option<DifficultyRange> = None;
    for (i, range) in difficulty.iter().enumerate() {
        let Some(range) = *range else { continue };
        if let Some(from) = before
            && from != range
        {
            difficulty_changes.push(DifficultyChange {
                time_ms: spans.series_start_ms + i as i64 * SECOND_MS,
                from,
                to: range,
            });
        }
        before = Some(range);
    }
    Series {
        start_ms: spans.series_start_ms,
        step_ms: SECOND_MS,
        hashes,
        nuggets,
        difficulty_changes,
    }
}

impl Summary {
    /// Reads the results of [`statements`]; the stages' figures are as of `now_ns`. The
    /// difficulty totals are left empty: see [`DifficultyNow::read_totals`]; the lesson knows
    /// no change yet, and the mode is not discovery: see [`Summary::for_class`].
    pub fn from_results(spans: Spans, now_ns: i64, results: &[Vec<Row>]) -> Summary {
        let empty = Vec::new();
        let result = |i: usize| results.get(i).unwrap_or(&empty);
        let first = |i: usize| result(i).first();

        let points =
            chocominer_status::points_from_results(results.get(STAGES_AT..).unwrap_or_default());
        let snapshot = Snapshot::from_points(&points, now_ns);
        let verdict = chocominer_status::bottleneck::find(&snapshot);
        let newest = |stage: Stage| newest_points(&points, stage, &snapshot.stage(stage).instances);
        // Missing in points of stages that do not write it yet: nothing held.
        let waiting = |stage: Stage| {
            let newest = newest(stage);
            (!newest.is_empty()).then(|| newest.iter().map(|p| p.get(rng::WAITING)).sum())
        };
        let stages = Stages {
            rng: StageNow::new(&snapshot.rng, waiting(Stage::Rng)),
            hasher: StageNow::new(&snapshot.hasher, waiting(Stage::Hasher)),
            worker: StageNow::new(&snapshot.worker, None),
        };
        let in_force: BTreeSet<i64> = newest(Stage::Worker)
            .iter()
            .filter_map(|p| p.value(worker::DIFFICULTY))
            .map(|d| d as i64)
            .collect();
        let difficulty = DifficultyNow {
            in_force: in_force.into_iter().collect(),
            last: first(6).and_then(|row| row.get("difficulty")?.as_i64()),
            totals: Vec::new(),
        };

        let nuggets_rows = result(1)
            .iter()
            .map(|row| NuggetRow {
                time_ms: row.get("time").and_then(Value::as_i64).unwrap_or(0),
                number: text(row, nugget::NUMBER.name()),
                digest: text(row, nugget::DIGEST.name()),
                zero_bits: row
                    .get(nugget::ZERO_BITS.name())
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
                instance: text(row, INSTANCE),
            })
            .collect();

        let totals = Totals {
            since_ms: first(5).and_then(|row| row.get("time")?.as_i64()),
            hashes: num(first(2), "hashes").unwrap_or(0.0),
            nuggets: num(first(2), "nuggets").unwrap_or(0.0),
            numbers: num(first(3), "numbers").unwrap_or(0.0),
            lost: num(first(3), "lost").unwrap_or(0.0) + num(first(4), "lost").unwrap_or(0.0),
            forged: num(first(2), "forged").unwrap_or(0.0),
        };

        Summary {
            spans: spans.with_window_of(&snapshot),
            hashes_per_s: snapshot.worker.rate,
            nuggets_per_s: snapshot.worker.nuggets.unwrap_or(0.0),
            difficulty,
            series: series(&spans, result(0)),
            // Nothing running (the page says so) or nothing saturated: no stage to name.
            bottleneck: verdict.stage().map(|stage| Bottleneck {
                stage: Stage::name(stage),
                reason: verdict.reason().unwrap_or_default().to_owned(),
            }),
            stages,
            discovery: false,
            lesson: Lesson::new(Counts::of(&snapshot), None, false),
            nuggets: nuggets_rows,
            totals,
        }
    }

    /// The difficulties whose totals the second request reads.
    pub fn difficulty_totals_wanted(&self) -> Vec<i64> {
        self.difficulty
            .totals_wanted(!self.stages.worker.instances.is_empty())
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
    fn statements_name_only_the_schema() {
        let spans = Spans::at(1_000_000_000);
        let all = [statements(&spans), difficulty_statements(&[4, 23])].concat();
        for statement in all {
            assert_eq!(
                chocominer_influx::schema::unknown_names(&statement),
                Vec::<String>::new(),
                "{statement}"
            );
        }
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
        results[5] = vec![row(json!({"time": 123_000, "hashes": 10}))];
        results[6] = vec![row(json!({"time": 456_000, "difficulty": 23}))];
        // The last 6 s of an rng at its limit, a hasher-2 and a hasher-10; no worker.
        for ago in 1..=6 {
            let time = now_ms - ago * SECOND_MS;
            results[STAGES_AT].push(row(json!({"time": time, "instance": "rng-1",
                "numbers": 100, "rate_limit": 100.0, "in_flight": 3, "window": 32})));
            for name in ["hasher-10", "hasher-2"] {
                results[STAGES_AT + 1].push(row(json!({"time": time, "instance": name,
                    "hashes": 25, "busy": 0.5, "in_flight": 1, "window": 8,
                    "waiting": if ago == 1 && name == "hasher-2" { 3 } else { 0 }})));
            }
        }
        let s = Summary::from_results(spans, now_ms * MS_NS, &results);
        assert_eq!(
            (s.series.hashes[0], s.series.nuggets[0]),
            (Some(3.0), Some(1.0))
        );
        assert_eq!(s.series.hashes.len(), SERIES_SECS as usize);
        assert_eq!(s.series.hashes[1], None, "no points: no data, not 0");
        assert_eq!(s.series.hashes[SERIES_SECS as usize - 1], Some(50.0));
        assert_eq!(s.series.nuggets[SERIES_SECS as usize - 1], Some(0.0));
        assert_eq!(s.spans.window_end_ms, now_ms - 1000);
        assert_eq!(s.spans.window_start_ms, now_ms - 5000);
        assert_eq!(s.stages.rng.rate_limit, Some(100.0));
        assert_eq!(s.stages.rng.rate, 100.0);
        assert_eq!(s.stages.hasher.rate, 50.0);
        assert_eq!(s.stages.hasher.window_fill, Some(0.125));
        assert_eq!(
            (s.stages.hasher.in_flight, s.stages.hasher.window),
            (Some(2.0), Some(16.0))
        );
        assert_eq!(s.stages.hasher.waiting, Some(3.0), "the newest points");
        assert_eq!(s.stages.rng.waiting, Some(0.0), "no field: nothing held");
        assert_eq!(s.stages.worker.waiting, None);
        assert_eq!(s.stages.hasher.instances, ["hasher-2", "hasher-10"]);
        assert!(s.stages.worker.instances.is_empty());
        assert_eq!(
            s.bottleneck.as_ref().map(|b| b.stage),
            Some("worker"),
            "none runs"
        );
        assert_eq!(s.nuggets[0].instance, "worker-1");
        assert_eq!(s.totals.lost, 7.0);
        assert_eq!(s.totals.since_ms, Some(123_000));
        // No worker runs: the totals shown are the last run's difficulty's.
        assert!(s.difficulty.in_force.is_empty());
        assert_eq!(s.difficulty.last, Some(23));
        assert_eq!(s.difficulty_totals_wanted(), [23]);
        let empty = Summary::from_results(spans, now_ms * MS_NS, &[]);
        assert_eq!((empty.hashes_per_s, &empty.bottleneck), (0.0, &None));
        assert_eq!(empty.spans, spans);
        assert!(empty.series.hashes.iter().all(Option::is_none));
        assert!(empty.difficulty_totals_wanted().is_empty());
    }

    #[test]
    fn the_difficulty_in_force_its_changes_and_its_totals() {
        let now_ms = 1_000_000_000;
        let spans = Spans::at(now_ms);
        let mut results: Vec<Vec<Row>> = vec![Vec::new(); statements(&spans).len()];
        let at = |i: i64| spans.series_start_ms + i * SECOND_MS;
        let second = |i: i64, min: i64, max: i64| {
            row(json!({"time": at(i), "hashes": 10, "nuggets": 1,
                "difficulty_min": min, "difficulty_max": max}))
        };
        results[0] = vec![
            // Older points without a difficulty: no change from or to them.
            row(json!({"time": at(0), "hashes": 10, "nuggets": 1,
                "difficulty_min": null, "difficulty_max": null})),
            second(1, 4, 4),
            second(2, 4, 4),
            // Stopped, then started again at 23: one change, where the new one starts.
            second(10, 23, 23),
            // A worker at 4 joins.
            second(11, 4, 23),
            second(12, 4, 23),
        ];
        for ago in 1..=6 {
            let time = now_ms - ago * SECOND_MS;
            results[STAGES_AT + 2].push(row(json!({"time": time, "instance": "worker-1",
                "hashes": 10, "nuggets": 0, "difficulty": 23})));
            // worker-2's newest point counts, not its older ones.
            let difficulty = if ago == 1 { 4 } else { 20 };
            results[STAGES_AT + 2].push(row(json!({"time": time, "instance": "worker-2",
                "hashes": 10, "nuggets": 0, "difficulty": difficulty})));
        }
        // worker-3 is gone: its difficulty is not in force.
        results[STAGES_AT + 2].push(row(json!({"time": now_ms - 10 * SECOND_MS,
            "instance": "worker-3", "hashes": 10, "difficulty": 30})));
        let mut s = Summary::from_results(spans, now_ms * MS_NS, &results);
        let range = |min, max| DifficultyRange { min, max };
        assert_eq!(
            s.series.difficulty_changes,
            [
                DifficultyChange {
                    time_ms: at(10),
                    from: range(4, 4),
                    to: range(23, 23)
                },
                DifficultyChange {
                    time_ms: at(11),
                    from: range(23, 23),
                    to: range(4, 23)
                },
            ]
        );
        assert_eq!(s.difficulty.in_force, [4, 23]);
        let wanted = s.difficulty_totals_wanted();
        assert_eq!(wanted, [4, 23]);
        let statements = difficulty_statements(&wanted);
        assert_eq!(statements.len(), 4);
        assert!(statements[2].ends_with(r#"WHERE "difficulty" = 23"#));
        let totals = vec![
            vec![row(json!({"time": 0, "hashes": 1000, "nuggets": 60}))],
            vec![row(json!({"time": 5000, "hashes": 10}))],
            // Nothing at 23 yet.
            Vec::new(),
            Vec::new(),
        ];
        s.difficulty.read_totals(&wanted, &totals);
        assert_eq!(
            s.difficulty.totals,
            [
                DifficultyTotals {
                    difficulty: 4,
                    since_ms: Some(5000),
                    hashes: 1000.0,
                    nuggets: 60.0
                },
                DifficultyTotals {
                    difficulty: 23,
                    since_ms: None,
                    hashes: 0.0,
                    nuggets: 0.0
                },
            ]
        );
    }
}
