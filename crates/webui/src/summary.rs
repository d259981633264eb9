//! What the page shows, from InfluxDB in two requests of a few InfluxQL statements. The stages'
//! figures and the bottleneck are `chocominer_status`'s, as `chocominer status` shows them; read
//! here is what only the page shows: the charts, the difficulty in force, the latest nuggets and
//! the totals, of every run and at the difficulty in force (nuggets of different difficulties
//! do not add up). Only the first request tells that difficulty, hence the second one.

use std::collections::BTreeSet;
use std::sync::LazyLock;
use std::time::Duration;

use chocominer_influx::Row;
use chocominer_model::Stage;
use chocominer_model::nugget::MAX_ZERO_BITS;
use chocominer_model::schema::{Count, HASHER, Measurement, RNG, WORKER, hasher, rng, worker};
use chocominer_process::Throttle;
use chocominer_status::lesson::{Counts, RateChange};
use chocominer_status::nuggets::{self, Refused};
use chocominer_status::{
    self, CLOCK_SKEW_ALLOWED, LOOKBACK, Snapshot, StageFigures, WINDOW_SECONDS,
};
use serde::Serialize;
use serde_json::Value;

use crate::lesson::Lesson;

/// How far behind the clock the charts end: points arrive up to ~1 s late.
pub const LAG_SECS: i64 = 2;
/// Seconds of history in the charts, one value per second.
pub const SERIES_SECS: i64 = 300;
/// How many of the latest nuggets are listed.
pub const NUGGETS_LISTED: usize = 10;
/// Nugget records read to list [`NUGGETS_LISTED`] though some are refused; bounded, so a flood
/// of forged records costs a summary at most this many rows and SHA-256s.
pub const NUGGETS_READ: usize = 10 * NUGGETS_LISTED;
/// How often the log may say again that nugget records were refused.
const REFUSED_LOG_EVERY: Duration = Duration::from_secs(60);

const SECOND_MS: i64 = 1000;
const MS_NS: i64 = 1_000_000;

/// The time spans of one summary, from the clock at `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Spans {
    pub now_ms: i64,
    /// First and last second (inclusive) of the [`WINDOW_SECONDS`] of the stages' figures
    /// (before they are read, and when nothing runs, the ones ending with the charts).
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
            self.window_start_ms = self.window_end_ms - (WINDOW_SECONDS - 1) * SECOND_MS;
        }
        self
    }
}

/// The statements of the first request, by what each reads; [`Summary::from_results`] finds
/// each result at its place here, and the stages' after them ([`STAGES_AT`]). A count is summed
/// only where it is not negative (InfluxDB's writer can write any), one statement per count: a
/// `WHERE` on several fields would leave out the points that lack one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Per second of the charts: the hashes, and so which seconds have data...
    ChartHashes,
    /// ...the nuggets found...
    ChartNuggets,
    /// ...and the difficulties of the worker points.
    ChartDifficulty,
    /// The latest nugget records, then how many are stamped later ([`nuggets::statements`]).
    Nuggets,
    NuggetsAhead,
    /// The totals since the database began...
    Hashes,
    NuggetsFound,
    Forged,
    Numbers,
    RngLost,
    HasherLost,
    /// ...which is when the first worker point was written.
    Since,
    /// The newest difficulty written, for when no worker runs.
    LastDifficulty,
}

impl Read {
    const ALL: [Read; 13] = [
        Read::ChartHashes,
        Read::ChartNuggets,
        Read::ChartDifficulty,
        Read::Nuggets,
        Read::NuggetsAhead,
        Read::Hashes,
        Read::NuggetsFound,
        Read::Forged,
        Read::Numbers,
        Read::RngLost,
        Read::HasherLost,
        Read::Since,
        Read::LastDifficulty,
    ];
}

/// Where the stages' statements start in [`statements`].
const STAGES_AT: usize = Read::ALL.len();

/// `sum("count") AS alias` over the points of `measurement` where the count is not negative.
fn sum(measurement: &Measurement, count: Count, alias: &str) -> String {
    let (m, c) = (measurement.name(), count.name());
    format!(r#"SELECT sum("{c}") AS {alias} FROM "{m}" WHERE "{c}" >= 0"#)
}

/// `"difficulty"` within the bits a digest has: a condition of a `WHERE`.
fn difficulty_in_range() -> String {
    let difficulty = worker::DIFFICULTY.name();
    format!(r#""{difficulty}" >= 0 AND "{difficulty}" <= {MAX_ZERO_BITS}"#)
}

/// The statements of the first request, in the order [`Summary::from_results`] reads them.
pub fn statements(spans: &Spans) -> Vec<String> {
    let (w, hashes, nuggets, difficulty) = (
        WORKER.name(),
        worker::HASHES.name(),
        worker::NUGGETS.name(),
        worker::DIFFICULTY.name(),
    );
    let [latest_nuggets, nuggets_ahead] = nuggets::statements(NUGGETS_READ, spans.now_ms);
    // fill(none): a second without points is no data, not zero.
    let chart = |what: &str, condition: &str| {
        format!(
            r#"SELECT {what} FROM "{w}" WHERE time >= {}ms AND time <= {}ms AND {condition} GROUP BY time(1s) fill(none)"#,
            spans.series_start_ms, spans.series_end_ms
        )
    };
    let mut statements: Vec<String> = Read::ALL
        .iter()
        .map(|read| match read {
            Read::ChartHashes => chart(&format!(r#"sum("{hashes}") AS hashes"#), &format!(r#""{hashes}" >= 0"#)),
            Read::ChartNuggets => chart(&format!(r#"sum("{nuggets}") AS nuggets"#), &format!(r#""{nuggets}" >= 0"#)),
            Read::ChartDifficulty => chart(
                &format!(r#"min("{difficulty}") AS difficulty_min, max("{difficulty}") AS difficulty_max"#),
                &difficulty_in_range(),
            ),
            Read::Nuggets => latest_nuggets.clone(),
            Read::NuggetsAhead => nuggets_ahead.clone(),
            Read::Hashes => sum(&WORKER, worker::HASHES, "hashes"),
            Read::NuggetsFound => sum(&WORKER, worker::NUGGETS, "nuggets"),
            Read::Forged => sum(&WORKER, worker::FORGED, "forged"),
            Read::Numbers => sum(&RNG, rng::NUMBERS, "numbers"),
            Read::RngLost => sum(&RNG, rng::LOST, "lost"),
            Read::HasherLost => sum(&HASHER, hasher::LOST, "lost"),
            Read::Since => since(""),
            // Not one stamped ahead, which would stay the newest.
            Read::LastDifficulty => format!(
                r#"SELECT last("{difficulty}") AS difficulty FROM "{w}" WHERE time <= {}ms AND {}"#,
                spans.now_ms + CLOCK_SKEW_ALLOWED.as_millis() as i64,
                difficulty_in_range()
            ),
        })
        .collect();
    statements.extend(chocominer_status::statements(LOOKBACK));
    statements
}

/// When the first worker point was written, of those that also meet `and` (`AND ...`, or "").
fn since(and: &str) -> String {
    let (w, hashes) = (WORKER.name(), worker::HASHES.name());
    format!(r#"SELECT first("{hashes}") AS hashes FROM "{w}" WHERE "{hashes}" >= 0{and}"#)
}

/// The statements of the second request: for each of `difficulties`, the hashes and nuggets
/// at that difficulty (negative counts left out, as in [`statements`]) and when the first
/// point at it was written, as [`DifficultyNow::read_totals`] reads them.
pub fn difficulty_statements(difficulties: &[i64]) -> Vec<String> {
    let difficulty = worker::DIFFICULTY.name();
    difficulties
        .iter()
        .flat_map(|d| {
            let at = format!(r#" AND "{difficulty}" = {d}"#);
            [
                sum(&WORKER, worker::HASHES, "hashes") + &at,
                sum(&WORKER, worker::NUGGETS, "nuggets") + &at,
                since(&at),
            ]
        })
        .collect()
}

/// The statements of [`difficulty_statements`] per difficulty.
const PER_DIFFICULTY: usize = 3;

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
    /// The latest nugget records that passed every check ([`nuggets`]), newest first.
    pub nuggets: Vec<nuggets::Record>,
    /// Of the records read, how many were refused, and why.
    pub nuggets_refused: Refused,
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
    /// Hashes and nuggets at each difficulty of [`Summary::difficulty_totals_wanted`].
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
    /// Reads the results of [`difficulty_statements`]`(difficulties)`.
    pub fn read_totals(&mut self, difficulties: &[i64], results: &[Vec<Row>]) {
        self.totals = difficulties
            .iter()
            .enumerate()
            .map(|(i, &difficulty)| {
                let row = |j: usize| results.get(PER_DIFFICULTY * i + j)?.first();
                DifficultyTotals {
                    difficulty,
                    since_ms: row(2).and_then(|row| row.get("time")?.as_i64()),
                    hashes: num(row(0), "hashes").unwrap_or(0.0),
                    nuggets: num(row(1), "nuggets").unwrap_or(0.0),
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

/// One stage over the window, as the page reads it: the fields of the shared [`StageFigures`]
/// it shows (`null` where unknown or not the stage's), and `window_fill`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageNow {
    pub rate: f64,
    pub instances: Vec<String>,
    pub busy: Option<f64>,
    pub in_flight: Option<f64>,
    pub window: Option<f64>,
    /// `in_flight / window` (0..1).
    pub window_fill: Option<f64>,
    pub waiting: Option<f64>,
    /// `None` when some rng is unlimited.
    pub rate_limit: Option<f64>,
}

impl StageNow {
    fn new(figures: &StageFigures) -> StageNow {
        StageNow {
            rate: figures.rate,
            instances: figures.instances.clone(),
            busy: figures.busy,
            in_flight: figures.in_flight,
            window: figures.window,
            window_fill: figures.window_use(),
            waiting: figures.waiting,
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

/// The charts' series from the rows of [`Read::ChartHashes`], [`Read::ChartNuggets`] and
/// [`Read::ChartDifficulty`].
fn series(
    spans: &Spans,
    hash_rows: &[Row],
    nugget_rows: &[Row],
    difficulty_rows: &[Row],
) -> Series {
    let len = SERIES_SECS as usize;
    // Each row with the second of the charts it falls in.
    let seconds = |rows: &'_ [Row]| -> Vec<(usize, Row)> {
        rows.iter()
            .filter_map(|row| {
                let time = row.get("time").and_then(Value::as_i64)?;
                let i = usize::try_from((time - spans.series_start_ms).div_euclid(SECOND_MS));
                i.ok().filter(|&i| i < len).map(|i| (i, row.clone()))
            })
            .collect()
    };
    let mut hashes = vec![None; len];
    let mut nuggets = vec![None; len];
    let mut difficulty = vec![None; len];
    for (i, row) in seconds(hash_rows) {
        // A second with points has counts, 0 when a sum is empty.
        hashes[i] = Some(num(Some(&row), "hashes").unwrap_or(0.0));
        nuggets[i] = Some(0.0);
    }
    for (i, row) in seconds(nugget_rows) {
        if hashes[i].is_some() {
            nuggets[i] = Some(num(Some(&row), "nuggets").unwrap_or(0.0));
        }
    }
    for (i, row) in seconds(difficulty_rows) {
        let int = |column| row.get(column).and_then(Value::as_i64);
        if let (Some(min), Some(max)) = (int("difficulty_min"), int("difficulty_max")) {
            difficulty[i] = Some(DifficultyRange { min, max });
        }
    }
    let known: Vec<(usize, DifficultyRange)> =
        (0..len).filter_map(|i| Some((i, difficulty[i]?))).collect();
    let difficulty_changes = known
        .windows(2)
        .filter(|w| w[0].1 != w[1].1)
        .map(|w| DifficultyChange {
            time_ms: spans.series_start_ms + w[1].0 as i64 * SECOND_MS,
            from: w[0].1,
            to: w[1].1,
        })
        .collect();
    Series {
        start_ms: spans.series_start_ms,
        step_ms: SECOND_MS,
        hashes,
        nuggets,
        difficulty_changes,
    }
}

impl Summary {
    /// Makes the summary the class sees: feeds `rate_change`, fills in the lesson with the
    /// change, and in discovery mode takes out the bottleneck.
    pub fn for_class(mut self, rate_change: &mut RateChange, now_ns: i64, discovery: bool) -> Self {
        let counts = self.lesson.counts;
        let change = rate_change.observe(now_ns, counts, self.hashes_per_s);
        self.lesson = Lesson::new(counts, change, discovery);
        self.discovery = discovery;
        if discovery {
            // The stage and its reason ("busy 95 %: more hashers would hash more") are the
            // answer to the exercise; the per-stage figures they come from stay.
            self.bottleneck = None;
        }
        self
    }

    /// Reads the results of [`statements`], the stages' figures as of `now_ns`. Filled in later:
    /// the difficulty totals ([`DifficultyNow::read_totals`]), the lesson ([`Summary::for_class`]).
    pub fn from_results(spans: Spans, now_ns: i64, results: &[Vec<Row>]) -> Summary {
        let empty = Vec::new();
        let result = |read: Read| results.get(read as usize).unwrap_or(&empty);
        let first = |read: Read| result(read).first();

        let points =
            chocominer_status::points_from_results(results.get(STAGES_AT..).unwrap_or_default());
        let snapshot = Snapshot::from_points(&points, now_ns);
        let verdict = chocominer_status::bottleneck::find(&snapshot);
        let stages = Stages {
            rng: StageNow::new(&snapshot.rng),
            hasher: StageNow::new(&snapshot.hasher),
            worker: StageNow::new(&snapshot.worker),
        };
        // The difficulty of each alive worker's newest point.
        let workers = points.iter().filter(|p| p.stage == Stage::Worker);
        let alive = &snapshot.worker.instances;
        let in_force: BTreeSet<i64> = alive
            .iter()
            .filter_map(|name| {
                let own = workers.clone().filter(|p| &p.instance == name);
                own.max_by_key(|p| p.time_ns)?.value(worker::DIFFICULTY)
            })
            .map(|d| d as i64)
            .collect();
        let difficulty = DifficultyNow {
            in_force: in_force.into_iter().collect(),
            last: first(Read::LastDifficulty).and_then(|row| row.get("difficulty")?.as_i64()),
            totals: Vec::new(),
        };

        let checked = nuggets::check(
            result(Read::Nuggets),
            result(Read::NuggetsAhead),
            spans.now_ms,
            NUGGETS_LISTED,
        );
        log_refused(&checked.refused);

        let sum = |read: Read, alias: &str| num(first(read), alias).unwrap_or(0.0);
        let totals = Totals {
            since_ms: first(Read::Since).and_then(|row| row.get("time")?.as_i64()),
            hashes: sum(Read::Hashes, "hashes"),
            nuggets: sum(Read::NuggetsFound, "nuggets"),
            numbers: sum(Read::Numbers, "numbers"),
            lost: sum(Read::RngLost, "lost") + sum(Read::HasherLost, "lost"),
            forged: sum(Read::Forged, "forged"),
        };

        Summary {
            spans: spans.with_window_of(&snapshot),
            hashes_per_s: snapshot.worker.rate,
            nuggets_per_s: snapshot.worker.nuggets.unwrap_or(0.0),
            difficulty,
            series: series(
                &spans,
                result(Read::ChartHashes),
                result(Read::ChartNuggets),
                result(Read::ChartDifficulty),
            ),
            // Nothing running (the page says so) or nothing saturated: no stage to name.
            bottleneck: verdict.stage().map(|stage| Bottleneck {
                stage: Stage::name(stage),
                reason: verdict.reason().unwrap_or_default().to_owned(),
            }),
            stages,
            discovery: false,
            lesson: Lesson::new(Counts::of(&snapshot), None, false),
            nuggets: checked.listed,
            nuggets_refused: checked.refused,
            totals,
        }
    }

    /// The difficulties whose totals the second request reads: those in force, or, when no
    /// worker runs, the last run's.
    pub fn difficulty_totals_wanted(&self) -> Vec<i64> {
        let d = &self.difficulty;
        if !d.in_force.is_empty() {
            d.in_force.clone()
        } else if self.stages.worker.instances.is_empty() {
            d.last.into_iter().collect()
        } else {
            Vec::new()
        }
    }
}

/// Says in the log, at most once every [`REFUSED_LOG_EVERY`], that nugget records were
/// refused: they stay refused, and a summary is made up to twice a second.
fn log_refused(refused: &Refused) {
    static LOG: LazyLock<Throttle> = LazyLock::new(|| Throttle::new(REFUSED_LOG_EVERY));
    if let Some(sentence) = refused.sentence()
        && LOG.admit().is_some()
    {
        tracing::warn!(
            "{sentence}: written to InfluxDB by a holder of its writer role, not as a worker \
             writes them; not listed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chocominer_model::nugget::record_of;
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
                chocominer_model::schema::unknown_names(&statement),
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
        results[Read::ChartHashes as usize] = vec![
            row(json!({"time": spans.series_start_ms, "hashes": 3})),
            row(json!({"time": spans.series_end_ms, "hashes": 50})),
        ];
        results[Read::ChartNuggets as usize] = vec![
            row(json!({"time": spans.series_start_ms, "nuggets": 1})),
            // A second whose hashes were all negative has no data.
            row(json!({"time": spans.series_start_ms + SECOND_MS, "nuggets": 1})),
        ];
        let (digest, zero_bits) = record_of(&[1; 32]);
        let number = "01".repeat(32);
        results[Read::Nuggets as usize] = vec![
            row(json!({"time": 5, "number": number, "digest": digest,
                "zero_bits": zero_bits, "instance": "worker-1"})),
            row(json!({"time": 4, "number": number, "digest": "0f",
                "zero_bits": 4, "instance": "worker-2"})),
        ];
        results[Read::NuggetsAhead as usize] = vec![row(json!({"time": 0, "records": 1}))];
        results[Read::Hashes as usize] = vec![row(json!({"time": 0, "hashes": 1000}))];
        results[Read::NuggetsFound as usize] = vec![row(json!({"time": 0, "nuggets": 60}))];
        results[Read::Numbers as usize] = vec![row(json!({"time": 0, "numbers": 1100}))];
        results[Read::RngLost as usize] = vec![row(json!({"time": 0, "lost": 5}))];
        results[Read::HasherLost as usize] = vec![row(json!({"time": 0, "lost": 2}))];
        results[Read::Since as usize] = vec![row(json!({"time": 123_000, "hashes": 10}))];
        results[Read::LastDifficulty as usize] =
            vec![row(json!({"time": 456_000, "difficulty": 23}))];
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
        assert_eq!(s.series.nuggets[1], None);
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
        assert_eq!(s.stages.rng.waiting, Some(0.0), "no field: nothing waits");
        assert_eq!(s.stages.worker.waiting, None);
        assert_eq!(s.stages.hasher.instances, ["hasher-2", "hasher-10"]);
        assert!(s.stages.worker.instances.is_empty());
        assert_eq!(
            s.bottleneck.as_ref().map(|b| b.stage),
            Some("worker"),
            "none runs"
        );
        assert_eq!(s.nuggets.len(), 1, "the one whose digest is its number's");
        assert_eq!(s.nuggets[0].instance, "worker-1");
        assert_eq!(
            s.nuggets_refused.sentence().unwrap(),
            "2 nugget records refused: 1 stamped in the future, \
             1 number or digest not 64 lowercase hex digits"
        );
        assert_eq!((s.totals.hashes, s.totals.nuggets), (1000.0, 60.0));
        assert_eq!(s.totals.numbers, 1100.0);
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
            row(json!({"time": at(i), "difficulty_min": min, "difficulty_max": max}))
        };
        results[Read::ChartHashes as usize] = [0, 1, 2, 10, 11, 12]
            .map(|i| row(json!({"time": at(i), "hashes": 10})))
            .to_vec();
        // Older points without a difficulty (at 0): no change from or to them.
        results[Read::ChartDifficulty as usize] = vec![
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
        assert_eq!(statements.len(), 2 * PER_DIFFICULTY);
        assert!(statements[3].ends_with(r#"WHERE "hashes" >= 0 AND "difficulty" = 23"#));
        let totals = vec![
            vec![row(json!({"time": 0, "hashes": 1000}))],
            vec![row(json!({"time": 0, "nuggets": 60}))],
            vec![row(json!({"time": 5000, "hashes": 10}))],
            // Nothing at 23 yet.
            Vec::new(),
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
