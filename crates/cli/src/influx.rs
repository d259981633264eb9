//! Reading the stages' recent per-second stats points back from InfluxDB 1.x (`/query`,
//! InfluxQL), the points the stages wrote with `chocominer_common::stats`.

use std::collections::BTreeMap;
use std::time::Duration;

use chocominer_common::Stage;
use chocominer_common::config::InfluxArgs;
use serde_json::Value;

/// One stats point of one instance: numeric fields by name.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsPoint {
    pub stage: Stage,
    pub instance: String,
    pub time_ns: i64,
    pub fields: BTreeMap<String, f64>,
}

impl StatsPoint {
    /// The field's value, 0 when the point lacks it.
    pub fn get(&self, field: &str) -> f64 {
        self.fields.get(field).copied().unwrap_or(0.0)
    }
}

/// A read-only InfluxDB client for the stats database.
pub struct StatsReader {
    http: reqwest::Client,
    url: String,
    db: String,
    credentials: Option<(String, Option<String>)>,
}

impl StatsReader {
    pub fn new(args: &InfluxArgs) -> anyhow::Result<StatsReader> {
        let url = args.influx_url.trim().trim_end_matches('/').to_owned();
        if url.is_empty() {
            anyhow::bail!(
                "status reads the stages' stats from InfluxDB: set --influx-url or INFLUX_URL"
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(StatsReader {
            http,
            url,
            db: args.influx_db.clone(),
            credentials: args
                .influx_user
                .clone()
                .map(|user| (user, args.influx_password.clone())),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn db(&self) -> &str {
        &self.db
    }

    /// Every `rng`, `hasher` and `worker` point of the last `lookback`. A database that does
    /// not exist yet holds no points.
    pub async fn recent(&self, lookback: Duration) -> anyhow::Result<Vec<StatsPoint>> {
        let stages: Vec<String> = Stage::ALL.iter().map(|s| format!("\"{s}\"")).collect();
        let q = format!(
            "SELECT * FROM {} WHERE time > now() - {}s GROUP BY \"instance\"",
            stages.join(","),
            lookback.as_secs().max(1)
        );
        let mut request = self.http.get(format!("{}/query", self.url)).query(&[
            ("db", self.db.as_str()),
            ("q", &q),
            ("epoch", "ns"),
        ]);
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, password.as_ref());
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| self.unreachable(&e))?;
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            anyhow::bail!(
                "InfluxDB at {} refused the credentials (HTTP {status}): check --influx-user and \
                 --influx-password",
                self.url
            );
        }
        let json: Value = serde_json::from_str(&body).map_err(|_| {
            anyhow::anyhow!(
                "{} did not answer like InfluxDB 1.x (HTTP {status}): {}",
                self.url,
                first_line(&body)
            )
        })?;
        let error = json
            .get("error")
            .or_else(|| json.pointer("/results/0/error"))
            .and_then(Value::as_str);
        match error {
            Some(e) if e.starts_with("database not found") => Ok(Vec::new()),
            Some(e) => anyhow::bail!("InfluxDB at {} refused the query: {e}", self.url),
            None if !status.is_success() => {
                anyhow::bail!("InfluxDB at {} answered HTTP {status}", self.url)
            }
            None => Ok(points(&json)),
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        let why = if e.is_timeout() {
            "no answer within 5 s".to_owned()
        } else {
            // reqwest's own message is the URL again: the innermost cause says what happened.
            let mut cause: &dyn std::error::Error = e;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            cause.to_string()
        };
        anyhow::anyhow!(
            "cannot reach InfluxDB at {} ({why}): is influxd running? (set --influx-url or \
             INFLUX_URL)",
            self.url
        )
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    line.chars().take(200).collect()
}

/// Flattens `results[0].series[*]` (one series per measurement and instance) into points.
fn points(json: &Value) -> Vec<StatsPoint> {
    let empty = Vec::new();
    let series = json
        .pointer("/results/0/series")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut points = Vec::new();
    for series in series {
        let stage = match series["name"].as_str() {
            Some(name) => Stage::ALL.into_iter().find(|s| s.name() == name),
            None => None,
        };
        let Some(stage) = stage else { continue };
        let instance = series["tags"]["instance"].as_str().unwrap_or("?");
        let columns: Vec<&str> = series["columns"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|c| c.as_str().unwrap_or_default())
            .collect();
        for row in series["values"].as_array().unwrap_or(&empty) {
            let row = row.as_array().unwrap_or(&empty);
            let mut point = StatsPoint {
                stage,
                instance: instance.to_owned(),
                time_ns: 0,
                fields: BTreeMap::new(),
            };
            for (column, value) in columns.iter().zip(row) {
                match (*column, value.as_f64()) {
                    ("time", _) => point.time_ns = value.as_i64().unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_series_into_points() {
        let json = serde_json::json!({"results": [{"statement_id": 0, "series": [
            {"name": "hasher", "tags": {"instance": "h1"}, "columns": ["time", "busy", "hashes"],
             "values": [[1000, 0.5, 10], [2000, null, 12]]},
            {"name": "other", "tags": {"instance": "x"}, "columns": ["time", "a"],
             "values": [[1, 1]]}
        ]}]});
        let points = points(&json);
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].stage, Stage::Hasher);
        assert_eq!(points[0].instance, "h1");
        assert_eq!((points[0].time_ns, points[0].get("busy")), (1000, 0.5));
        assert_eq!(
            (points[1].get("busy"), points[1].get("hashes")),
            (0.0, 12.0)
        );
    }
}
