//! What the pipeline does right now, from the stages' per-second stats points in InfluxDB:
//! each stage's [`figures`] and the [`bottleneck`], one definition for `chocominer status` and
//! the dashboard alike. Whoever holds InfluxDB's `writer` role can write any point, so what is
//! read is held to what a stage could have written: no point stamped over [`CLOCK_SKEW_ALLOWED`]
//! ahead, no value out of range ([`within_range`]), no nugget record that does not check out
//! ([`nuggets`]). An inflated count still reads as the truth (docs/security.md).

pub mod bottleneck;
pub mod figures;
pub mod lesson;
pub mod nuggets;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

pub use bottleneck::{RULE, SATURATED, Verdict};
pub use figures::{ALIVE_WITHIN_SECONDS, LOOKBACK, Snapshot, StageFigures, WINDOW_SECONDS};

use chocominer_influx::{Client, QueryError, Row};
use chocominer_model::Stage;
use chocominer_model::schema::{self, Field, INSTANCE, Kind, Measurement};

/// How far ahead of the reader's clock a point may be stamped and still be read (hosts kept by
/// NTP agree within a second). Read, a nugget stamped in 2100 would stay the latest for ever.
pub const CLOCK_SKEW_ALLOWED: Duration = Duration::from_secs(10);

/// One stats point of one instance: numeric fields by name.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsPoint {
    pub stage: Stage,
    pub instance: String,
    /// Nanoseconds since the Unix epoch (points are stamped on whole seconds).
    pub time_ns: i64,
    pub fields: BTreeMap<String, f64>,
}

impl StatsPoint {
    /// The field's value, 0 when the point lacks it.
    pub fn get(&self, field: impl AsRef<Field>) -> f64 {
        self.value(field).unwrap_or(0.0)
    }

    /// The field's value, if the point has it.
    pub fn value(&self, field: impl AsRef<Field>) -> Option<f64> {
        self.fields.get(field.as_ref().name()).copied()
    }
}

/// The measurement `stage` writes its per-second points to.
pub fn measurement(stage: Stage) -> &'static Measurement {
    match stage {
        Stage::Rng => &schema::RNG,
        Stage::Hasher => &schema::HASHER,
        Stage::Worker => &schema::WORKER,
    }
}

/// The statements reading every point of the last `lookback` (up to [`CLOCK_SKEW_ALLOWED`]
/// ahead), one per stage in [`Stage::ALL`] order, as [`points_from_results`] expects their
/// results.
pub fn statements(lookback: Duration) -> Vec<String> {
    Stage::ALL
        .iter()
        .map(|&stage| {
            format!(
                r#"SELECT * FROM "{}" WHERE time > now() - {}s AND time <= now() + {}s GROUP BY "{INSTANCE}""#,
                measurement(stage).name(),
                lookback.as_secs().max(1),
                CLOCK_SKEW_ALLOWED.as_secs()
            )
        })
        .collect()
}

/// `value` of `stage`'s field `name` clamped to what a stage writes: a count or a gauge from 0
/// to [`Field::most`]. Fields the schema does not know are left as they are: no figure reads them.
pub fn within_range(stage: Stage, name: &str, value: f64) -> f64 {
    let Some(field) = measurement(stage).field(name) else {
        return value;
    };
    match field.kind() {
        Kind::Count | Kind::Gauge => value.clamp(0.0, field.most()),
        Kind::Event => value,
    }
}

/// The points in the results of [`statements`] (times in milliseconds, as
/// [`Client::query`] gives them).
pub fn points_from_results(results: &[Vec<Row>]) -> Vec<StatsPoint> {
    let point = |stage, row: &Row| StatsPoint {
        stage,
        instance: row
            .get(INSTANCE)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
        time_ns: row.get("time").and_then(Value::as_i64).unwrap_or_default() * 1_000_000,
        fields: row
            .iter()
            .filter(|(column, _)| *column != "time")
            .filter_map(|(field, v)| Some((field.clone(), within_range(stage, field, v.as_f64()?))))
            .collect(),
    };
    Stage::ALL
        .into_iter()
        .zip(results)
        .flat_map(|(stage, rows)| rows.iter().map(move |row| point(stage, row)))
        .collect()
}

/// Every stage's points of the last `lookback`, in one request. A database that does not
/// exist yet holds no points.
pub async fn read_recent(
    influx: &Client,
    lookback: Duration,
) -> Result<Vec<StatsPoint>, QueryError> {
    match influx.query(&statements(lookback)).await {
        Ok(results) => Ok(points_from_results(&results)),
        Err(e) if e.is_database_not_found() => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chocominer_model::schema::{hasher, worker};
    use serde_json::json;

    fn row(value: Value) -> Row {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn reads_rows_into_points_by_stage() {
        let results = vec![
            Vec::new(),
            vec![
                row(json!({"time": 1000, "instance": "h1", "busy": 0.5, "hashes": 10})),
                row(json!({"time": 2000, "instance": "h1", "busy": null, "hashes": 12})),
            ],
            vec![row(json!({"time": 3000, "instance": "w1", "hashes": 7}))],
        ];
        let points = points_from_results(&results);
        assert_eq!(points.len(), 3);
        assert_eq!(points[0].stage, Stage::Hasher);
        assert_eq!(points[0].instance, "h1");
        assert_eq!(
            (points[0].time_ns, points[0].get(hasher::BUSY)),
            (1_000_000_000, 0.5)
        );
        assert_eq!(
            (points[1].get(hasher::BUSY), points[1].get(hasher::HASHES)),
            (0.0, 12.0)
        );
        assert_eq!(
            (points[2].stage, points[2].get(worker::HASHES)),
            (Stage::Worker, 7.0)
        );
        assert_eq!(statements(LOOKBACK).len(), Stage::ALL.len());
        assert!(statements(LOOKBACK)[0].starts_with(r#"SELECT * FROM "rng" WHERE"#));
    }

    #[test]
    fn values_no_stage_writes_are_read_within_range() {
        let results = vec![
            vec![row(
                json!({"time": 1000, "instance": "r1", "numbers": -5, "lost": -1,
                "in_flight": -3, "rate_limit": -10.0, "unknown": -7}),
            )],
            vec![row(
                json!({"time": 1000, "instance": "h1", "busy": 5.0, "hashes": 10}),
            )],
            vec![row(
                json!({"time": 1000, "instance": "w1", "busy": -0.5, "forged": -100,
                "nuggets": -1, "difficulty": 1000}),
            )],
        ];
        let points = points_from_results(&results);
        let (r, h, w) = (&points[0], &points[1], &points[2]);
        assert_eq!(
            ["numbers", "lost", "in_flight", "rate_limit"].map(|f| r.fields[f]),
            [0.0; 4]
        );
        assert_eq!(r.fields["unknown"], -7.0, "not read by any figure");
        assert_eq!((h.get(hasher::BUSY), h.get(hasher::HASHES)), (1.0, 10.0));
        assert_eq!(
            (
                w.get(worker::BUSY),
                w.get(worker::FORGED),
                w.get(worker::NUGGETS)
            ),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(w.get(worker::DIFFICULTY), 256.0);
        assert!(statements(LOOKBACK)[2].contains("AND time <= now() + 10s"));
    }

    #[test]
    fn statements_name_only_the_schema() {
        for statement in statements(LOOKBACK) {
            assert_eq!(
                schema::unknown_names(&statement),
                Vec::<String>::new(),
                "{statement}"
            );
        }
    }
}
