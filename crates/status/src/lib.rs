//! What the pipeline does right now, read back from the stages' per-second stats points in
//! InfluxDB: each stage's figures over its last complete seconds ([`figures`]) and the stage
//! that holds the others back ([`bottleneck`]). One definition for every front end: the
//! `chocominer status` command and the dashboard show the same figures and name the same
//! bottleneck.
//!
//! The points are read with [`statements`] (one InfluxQL statement per stage, all its points
//! of the last [`LOOKBACK`]) and turned into [`StatsPoint`]s by [`points_from_results`];
//! [`read_recent`] does both in one request. Measurements and fields are named from
//! `chocominer_influx::schema`, the stages' own spelling.

pub mod bottleneck;
pub mod figures;
pub mod lesson;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

pub use bottleneck::{RULE, SATURATED, Verdict};
pub use figures::{
    ALIVE_WITHIN_NS, ALIVE_WITHIN_SECONDS, LOOKBACK, Snapshot, StageFigures, WINDOW_SECONDS,
};

use chocominer_influx::schema::{self, Field, INSTANCE, Measurement};
use chocominer_influx::{Client, QueryError, Row};
use chocominer_pipeline::Stage;

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

/// The statements reading every point of the last `lookback`, one per stage in
/// [`Stage::ALL`] order, as [`points_from_results`] expects their results.
pub fn statements(lookback: Duration) -> Vec<String> {
    Stage::ALL
        .iter()
        .map(|&stage| {
            format!(
                r#"SELECT * FROM "{}" WHERE time > now() - {}s GROUP BY "{INSTANCE}""#,
                measurement(stage).name(),
                lookback.as_secs().max(1)
            )
        })
        .collect()
}

/// The points in the results of [`statements`] (times in milliseconds, as
/// [`Client::query`] gives them).
pub fn points_from_results(results: &[Vec<Row>]) -> Vec<StatsPoint> {
    let mut points = Vec::new();
    for (stage, rows) in Stage::ALL.into_iter().zip(results) {
        for row in rows {
            let mut point = StatsPoint {
                stage,
                instance: row
                    .get(INSTANCE)
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
                time_ns: 0,
                fields: BTreeMap::new(),
            };
            for (column, value) in row {
                match (column.as_str(), value.as_f64()) {
                    ("time", _) => {
                        point.time_ns = value.as_i64().unwrap_or_default() * 1_000_000;
                    }
                    (field, Some(v)) => {
                        point.fields.insert(field.to_owned(), v);
                    }
                    _ => {}
                }
            }
            points.push(point);
        }
    }
    points
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
    use chocominer_influx::schema::{hasher, worker};
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
