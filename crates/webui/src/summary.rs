//! What the page shows, computed from InfluxDB in one request of a few InfluxQL statements.
//!
//! Each stage instance writes one point per second, stamped on the whole second, and its
//! writer sends them about a second later. So "now" is read a little in the past: rates are
//! averaged over the last [`WINDOW_SECS`] *complete* seconds, the newest [`LAG_SECS`] seconds
//! ago, when every instance has written its point; the charts end there too. An instance is
//! *alive* when it has a point in the last [`ALIVE_SECS`] seconds.
//!
//! The bottleneck, from the same window (first rule that holds; the same rule as
//! `chocominer status`):
//! 0. a stage has no instance alive while another stage has → that stage (none alive at all:
//!    nothing runs, no bottleneck);
//! 1. hashers busy ≥ 90 % of the time → `hasher` (more hashers would help);
//! 2. rng making ≥ 90 % of its summed `rate_limit` (when every rng has one) → `rng`;
//! 3. hashers' digest batches in flight ≥ 90 % of their window → `worker` (hashers wait for
//!    the workers' acknowledgements);
//! 4. rng's batches in flight ≥ 90 % of its window → `hasher` (rng waits for the hashers);
//!
//! otherwise there is none to name.

use serde::Serialize;
use serde_json::Value;

use crate::influx::Row;

/// Seconds the rates are averaged over.
pub const WINDOW_SECS: i64 = 5;
/// How far behind the clock the newest second read is: points arrive up to ~1 s late.
pub const LAG_SECS: i64 = 2;
/// Seconds of history in the charts, one value per second.
pub const SERIES_SECS: i64 = 300;
/// An instance with a point this recent is alive.
pub const ALIVE_SECS: i64 = 3;
/// How many of the latest nuggets are listed.
pub const NUGGETS_LISTED: usize = 10;
/// The share (of busy time, rate limit or window) from which a stage holds the others back.
pub const SATURATED: f64 = 0.9;

const SECOND_MS: i64 = 1000;

/// The time spans of one summary, from the clock at `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Spans {
    pub now_ms: i64,
    /// First and last second (inclusive, whole-second timestamps) of the rate window.
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// First second of the charts; they end with the window.
    pub series_start_ms: i64,
    /// Points after this are recent enough to count an instance as alive.
    pub alive_after_ms: i64,
}

impl Spans {
    pub fn at(now_ms: i64) -> Spans {
        let second = now_ms.div_euclid(SECOND_MS) * SECOND_MS;
        let window_end_ms = second - LAG_SECS * SECOND_MS;
        Spans {
            now_ms,
            window_start_ms: window_end_ms - (WINDOW_SECS - 1) * SECOND_MS,
            window_end_ms,
            series_start_ms: window_end_ms - (SERIES_SECS - 1) * SECOND_MS,
            alive_after_ms: now_ms - ALIVE_SECS * SECOND_MS,
        }
    }

    fn window(&self) -> String {
        format!(
            "time >= {}ms AND time <= {}ms",
            self.window_start_ms, self.window_end_ms
        )
    }
}

/// The statements of one summary, in the order [`Summary::from_results`] reads them.
pub fn statements(spans: &Spans) -> Vec<String> {
    let window = spans.window();
    let alive = |measurement: &str, field: &str| {
        format!(
            r#"SELECT count("{field}") FROM "{measurement}" WHERE time > {}ms GROUP BY "instance""#,
            spans.alive_after_ms
        )
    };
    vec![
        // 0: the charts.
        format!(
            r#"SELECT sum("hashes") AS hashes, sum("nuggets") AS nuggets FROM "worker" WHERE time >= {}ms AND time <= {}ms GROUP BY time(1s) fill(0)"#,
            spans.series_start_ms, spans.window_end_ms
        ),
        // 1-3: the stages over the window.
        format!(
            r#"SELECT sum("hashes") AS hashes, sum("nuggets") AS nuggets FROM "worker" WHERE {window}"#
        ),
        format!(
            r#"SELECT sum("numbers") AS numbers, sum("in_flight") AS in_flight, sum("window") AS window, sum("rate_limit") AS rate_limit, min("rate_limit") AS min_rate_limit FROM "rng" WHERE {window}"#
        ),
        format!(
            r#"SELECT sum("hashes") AS hashes, mean("busy") AS busy, sum("in_flight") AS in_flight, sum("window") AS window FROM "hasher" WHERE {window}"#
        ),
        // 4-6: who is alive.
        alive("rng", "numbers"),
        alive("hasher", "hashes"),
        alive("worker", "hashes"),
        // 7: the latest nuggets.
        format!(
            r#"SELECT "number", "digest", "zero_bits", "instance" FROM "nugget" ORDER BY time DESC LIMIT {NUGGETS_LISTED}"#
        ),
        // 8-10: totals since the database began.
        r#"SELECT sum("hashes") AS hashes, sum("nuggets") AS nuggets FROM "worker""#.to_owned(),
        r#"SELECT sum("numbers") AS numbers, sum("lost") AS lost FROM "rng""#.to_owned(),
        r#"SELECT sum("lost") AS lost FROM "hasher""#.to_owned(),
    ]
}

/// Everything `/api/summary` returns when InfluxDB answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub spans: Spans,
    /// Summed over instances, per second over the window.
    pub hashes_per_s: f64,
    pub nuggets_per_s: f64,
    /// One value per second from `spans.series_start_ms` to `spans.window_end_ms`.
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

/// One stage over the window.
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

fn instances(rows: &[Row]) -> Vec<String> {
    let mut names: Vec<String> = rows
        .iter()
        .filter_map(|row| row.get("instance")?.as_str().map(str::to_owned))
        .collect();
    // hasher-2 before hasher-10.
    names.sort_by_key(|n| natural_key(n));
    names.dedup();
    names
}

fn natural_key(name: &str) -> (String, u64, String) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, number) = name.split_at(name.len() - digits);
    (
        stem.to_owned(),
        number.parse().unwrap_or(0),
        name.to_owned(),
    )
}

impl Summary {
    /// Reads the results of [`statements`].
    pub fn from_results(spans: Spans, results: &[Vec<Row>]) -> Summary {
        let empty = Vec::new();
        let result = |i: usize| results.get(i).unwrap_or(&empty);
        let first = |i: usize| result(i).first();
        let secs = WINDOW_SECS as f64;

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

        let worker = first(1);
        let rng = first(2);
        let hasher = first(3);
        let fill = |row: Option<&Row>| {
            let window = num(row, "window")?;
            (window > 0.0).then(|| num(row, "in_flight").unwrap_or(0.0) / window)
        };
        let rate_limit = match num(rng, "min_rate_limit") {
            Some(min) if min > 0.0 => num(rng, "rate_limit").map(|sum| sum / secs),
            _ => None,
        };
        let stages = Stages {
            rng: StageNow {
                rate: num(rng, "numbers").unwrap_or(0.0) / secs,
                instances: instances(result(4)),
                busy: None,
                window_fill: fill(rng),
                rate_limit,
            },
            hasher: StageNow {
                rate: num(hasher, "hashes").unwrap_or(0.0) / secs,
                instances: instances(result(5)),
                busy: num(hasher, "busy"),
                window_fill: fill(hasher),
                rate_limit: None,
            },
            worker: StageNow {
                rate: num(worker, "hashes").unwrap_or(0.0) / secs,
                instances: instances(result(6)),
                busy: None,
                window_fill: None,
                rate_limit: None,
            },
        };

        let nuggets_rows = result(7)
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
            hashes: num(first(8), "hashes").unwrap_or(0.0),
            nuggets: num(first(8), "nuggets").unwrap_or(0.0),
            numbers: num(first(9), "numbers").unwrap_or(0.0),
            lost: num(first(9), "lost").unwrap_or(0.0) + num(first(10), "lost").unwrap_or(0.0),
        };

        Summary {
            spans,
            hashes_per_s: stages.worker.rate,
            nuggets_per_s: num(worker, "nuggets").unwrap_or(0.0) / secs,
            series: Series {
                start_ms: spans.series_start_ms,
                step_ms: SECOND_MS,
                hashes,
                nuggets,
            },
            bottleneck: bottleneck(&stages),
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

fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// The rule in the module documentation.
pub fn bottleneck(stages: &Stages) -> Option<Bottleneck> {
    let Stages {
        rng,
        hasher,
        worker,
    } = stages;
    let named = [("rng", rng), ("hasher", hasher), ("worker", worker)];
    if named.iter().all(|(_, s)| s.instances.is_empty()) {
        // Nothing runs (the page says so): what the window still shows is history.
        return None;
    }
    if let Some((name, _)) = named.iter().find(|(_, s)| s.instances.is_empty()) {
        return Some(Bottleneck {
            stage: name,
            reason: format!("no {name} is running: start one (just scale {name} 1)"),
        });
    }
    if let Some(busy) = hasher.busy.filter(|b| *b >= SATURATED) {
        return Some(Bottleneck {
            stage: "hasher",
            reason: format!(
                "the hashers are busy {} of the time: more hashers would help",
                percent(busy)
            ),
        });
    }
    if let Some(limit) = rng.rate_limit.filter(|l| *l > 0.0)
        && rng.rate >= SATURATED * limit
    {
        return Some(Bottleneck {
            stage: "rng",
            reason: format!(
                "rng makes {:.0} numbers/s, {} of its limit of {limit:.0}/s: more rng would help",
                rng.rate,
                percent(rng.rate / limit)
            ),
        });
    }
    if let Some(fill) = hasher.window_fill.filter(|f| *f >= SATURATED) {
        return Some(Bottleneck {
            stage: "worker",
            reason: format!(
                "the hashers wait for the workers ({} of their window in flight): more workers \
                 would help",
                percent(fill)
            ),
        });
    }
    if let Some(fill) = rng.window_fill.filter(|f| *f >= SATURATED) {
        return Some(Bottleneck {
            stage: "hasher",
            reason: format!(
                "rng waits for the hashers ({} of its window in flight): more hashers would help",
                percent(fill)
            ),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stage(rate: f64) -> StageNow {
        StageNow {
            rate,
            instances: vec!["x-1".into()],
            busy: None,
            window_fill: None,
            rate_limit: None,
        }
    }

    fn stages() -> Stages {
        Stages {
            rng: StageNow {
                rate_limit: Some(100.0),
                window_fill: Some(0.1),
                ..stage(10.0)
            },
            hasher: StageNow {
                busy: Some(0.5),
                window_fill: Some(0.1),
                ..stage(10.0)
            },
            worker: stage(10.0),
        }
    }

    fn named(stages: &Stages) -> Option<&'static str> {
        bottleneck(stages).map(|b| b.stage)
    }

    #[test]
    fn bottleneck_rules_apply_in_order() {
        let mut s = stages();
        assert_eq!(named(&s), None);
        s.rng.window_fill = Some(0.95);
        assert_eq!(named(&s), Some("hasher"), "rng waits for the hashers");
        s.hasher.window_fill = Some(1.0);
        assert_eq!(named(&s), Some("worker"), "hashers wait for the workers");
        s.rng.rate = 95.0;
        assert_eq!(named(&s), Some("rng"), "rng at its limit");
        s.rng.rate_limit = None;
        assert_eq!(named(&s), Some("worker"), "an unlimited rng is no limit");
        s.hasher.busy = Some(0.9);
        assert_eq!(named(&s), Some("hasher"), "busy hashers come first");
        assert!(bottleneck(&s).unwrap().reason.contains("90 %"));
        s.worker.instances.clear();
        assert_eq!(
            named(&s),
            Some("worker"),
            "a stage with nobody running comes first"
        );
        s.rng.instances.clear();
        assert_eq!(
            named(&s),
            Some("rng"),
            "the first such stage in the pipeline"
        );
        s.hasher.instances.clear();
        assert_eq!(named(&s), None, "nothing runs at all");
    }

    #[test]
    fn spans_end_in_the_past_on_whole_seconds() {
        let spans = Spans::at(1_000_000_700);
        assert_eq!(spans.window_end_ms, 999_998_000);
        assert_eq!(spans.window_start_ms, 999_994_000);
        assert_eq!(
            (spans.window_end_ms - spans.series_start_ms) / 1000 + 1,
            SERIES_SECS
        );
        assert_eq!(spans.alive_after_ms, 999_997_700);
    }

    fn row(value: Value) -> Row {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn reads_the_results() {
        let spans = Spans::at(1_000_000_000);
        let mut results: Vec<Vec<Row>> = vec![Vec::new(); statements(&spans).len()];
        results[0] = vec![
            row(json!({"time": spans.series_start_ms, "hashes": 3, "nuggets": 1})),
            row(json!({"time": spans.window_end_ms, "hashes": 50, "nuggets": null})),
        ];
        results[1] = vec![row(json!({"time": 0, "hashes": 250, "nuggets": 10}))];
        results[2] = vec![row(json!({"time": 0, "numbers": 500, "in_flight": 160,
            "window": 160, "rate_limit": 500.0, "min_rate_limit": 100.0}))];
        results[3] = vec![row(json!({"time": 0, "hashes": 250, "busy": 0.5,
            "in_flight": 0, "window": 40}))];
        results[5] = vec![
            row(json!({"instance": "hasher-10", "count": 3})),
            row(json!({"instance": "hasher-2", "count": 3})),
        ];
        results[7] = vec![row(json!({"time": 5, "number": "ab", "digest": "0f",
            "zero_bits": 4, "instance": "worker-1"}))];
        results[8] = vec![row(json!({"time": 0, "hashes": 1000, "nuggets": 60}))];
        results[9] = vec![row(json!({"time": 0, "numbers": 1100, "lost": 7}))];
        let s = Summary::from_results(spans, &results);
        assert_eq!((s.hashes_per_s, s.nuggets_per_s), (50.0, 2.0));
        assert_eq!(s.series.hashes.len(), SERIES_SECS as usize);
        assert_eq!((s.series.hashes[0], s.series.nuggets[0]), (3.0, 1.0));
        assert_eq!(s.series.hashes[SERIES_SECS as usize - 1], 50.0);
        assert_eq!(s.stages.rng.rate_limit, Some(100.0));
        assert_eq!(s.stages.rng.rate, 100.0);
        assert_eq!(s.stages.hasher.instances, ["hasher-2", "hasher-10"]);
        assert!(s.stages.worker.instances.is_empty());
        assert_eq!(s.bottleneck.map(|b| b.stage), Some("rng"));
        assert_eq!(s.nuggets[0].instance, "worker-1");
        assert_eq!(s.totals.lost, 7.0);
        let empty = Summary::from_results(spans, &[]);
        assert_eq!((empty.hashes_per_s, empty.bottleneck), (0.0, None));
    }
}
