//! The Chronograf resources in `chronograf/` at the repository root: the files are what
//! Chronograf 1.10/1.11 loads (it skips a file it cannot decode, saying so only in its log),
//! the source takes InfluxDB's reader from Chronograf's environment, the dashboard's cells tile
//! a 12-column grid, and every query of every cell runs, as that reader, on a real InfluxDB
//! holding the stats of a real pipeline run, the main cells showing its work.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chocominer_influx::Client;
use serde_json::{Map, Value};
use testkit::{POLL, SOON, Stack, eventually_ok};

/// Cell types Chronograf's dashboards draw.
const CELL_TYPES: &[&str] = &[
    "line",
    "line-stacked",
    "line-stepplot",
    "line-plus-single-stat",
    "single-stat",
    "bar",
    "gauge",
    "table",
    "note",
];
/// Chronograf's dashboard grid is 12 columns wide.
const GRID_COLUMNS: i64 = 12;
/// Cells whose every query must show the pipeline's work: positive values.
const BUSY_CELLS: &[&str] = &[
    "hashes-total",
    "nuggets-rate",
    "nuggets-total",
    "stage-throughput",
    "hasher-instances",
    "rng-worker-instances",
    "difficulty",
];
/// What Chronograf puts in place of its time-range variables for "Past 15 minutes", and an
/// interval of one second.
const TEMPLATE_VALUES: &[(&str, &str)] = &[
    (":upperDashboardTime:", "now()"),
    (":dashboardTime:", "now() - 15m"),
    (":interval:", "1s"),
];

fn resources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../chronograf")
}

/// The environment variables the source's credentials come from, as Chronograf fills them in
/// (`{{ .NAME }}`), with the values these tests give them.
const SOURCE_VARIABLES: &[(&str, &str)] = &[
    ("CHOCOMINER_INFLUX_READ_USER", "reader"),
    ("CHOCOMINER_INFLUX_READ_PASSWORD", "reader-password"),
];

/// Reads and parses one resource file, as Chronograf would: it runs the file through Go's
/// template engine first, with its environment as data and a missing key an error (the file is
/// then skipped). So the only double braces are the source's variables, filled in here.
fn load(name: &str) -> Value {
    let path = resources().join(name);
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    for (var, value) in SOURCE_VARIABLES {
        text = text.replace(&format!("{{{{ .{var} }}}}"), value);
    }
    assert!(
        !text.contains("{{"),
        "{name}: Chronograf reads resources as Go templates; no double braces but {:?}",
        SOURCE_VARIABLES
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"))
}

fn dashboard() -> Value {
    load("chocominer.dashboard")
}

fn cells(dashboard: &Value) -> &Vec<Value> {
    dashboard["cells"]
        .as_array()
        .expect("dashboard cells array")
}

fn cell<'a>(dashboard: &'a Value, id: &str) -> &'a Value {
    cells(dashboard)
        .iter()
        .find(|c| c["i"] == id)
        .unwrap_or_else(|| panic!("no cell {id:?} in the dashboard"))
}

fn queries(cell: &Value) -> Vec<&str> {
    cell["queries"]
        .as_array()
        .unwrap_or_else(|| panic!("cell {}: queries array", cell["i"]))
        .iter()
        .map(|q| {
            q["query"]
                .as_str()
                .unwrap_or_else(|| panic!("cell {}: query string", cell["i"]))
        })
        .collect()
}

fn int(cell: &Value, key: &str) -> i64 {
    cell[key]
        .as_i64()
        .unwrap_or_else(|| panic!("cell {}: {key} is not an integer", cell["i"]))
}

/// `query` as Chronograf sends it: its template variables replaced. Panics on a variable
/// that is not one of Chronograf's own (the dashboard defines none).
fn render(query: &str) -> String {
    let mut q = query.to_owned();
    for (var, value) in TEMPLATE_VALUES {
        q = q.replace(var, value);
    }
    let bytes = q.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b != b':' {
            continue;
        }
        let name_len = bytes[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        let closes = bytes.get(i + 1 + name_len) == Some(&b':');
        assert!(
            name_len == 0 || !closes,
            "unknown template variable in {query:?}"
        );
    }
    q
}

/// Whether any row has a positive value (beside its time).
fn has_positive(rows: &[Map<String, Value>]) -> bool {
    rows.iter()
        .flat_map(|row| row.iter().filter(|(column, _)| *column != "time"))
        .any(|(_, v)| v.as_f64().is_some_and(|v| v > 0.0))
}

#[test]
fn source_is_the_default_influxdb_source_1() {
    let src = load("chocominer.src");
    // Chronograf decodes the id with `json:"id,string"`: a bare number fails and the whole
    // file is skipped.
    assert_eq!(src["id"], Value::String("1".into()), "{src}");
    assert_eq!(src["type"], "influx", "{src}");
    assert_eq!(src["default"], true, "{src}");
    assert_eq!(src["url"], "http://influxdb:8086", "{src}");
    // InfluxDB's reader, from Chronograf's environment.
    assert_eq!(src["username"], "reader", "{src}");
    assert_eq!(src["password"], "reader-password", "{src}");
    assert!(src["name"].as_str().is_some_and(|n| !n.is_empty()), "{src}");
    for key in [
        "username",
        "password",
        "metaUrl",
        "telegraf",
        "defaultRP",
        "organization",
    ] {
        assert!(src[key].is_string(), "{key} must be a string: {src}");
    }
    assert_eq!(src["insecureSkipVerify"], false, "{src}");
}

#[test]
fn dashboard_is_number_1_with_valid_cells_on_the_grid() {
    let dashboard = dashboard();
    // Chronograf's dashboard id is a number (a string is tolerated, but it is /dashboards/1).
    assert_eq!(dashboard["id"], Value::from(1), "dashboard id");
    assert_eq!(dashboard["name"], "ChocoMiner");
    assert_eq!(dashboard["templates"], Value::Array(vec![]), "templates");
    let cells = cells(&dashboard);
    assert!(!cells.is_empty(), "no cells");

    let mut ids = HashSet::new();
    let mut rects: Vec<(&str, i64, i64, i64, i64)> = Vec::new();
    for cell in cells {
        let id = cell["i"].as_str().expect("cell id `i` is a string");
        assert!(
            !id.is_empty() && ids.insert(id),
            "cell id {id:?} not unique"
        );
        let ty = cell["type"].as_str().unwrap_or_default();
        assert!(CELL_TYPES.contains(&ty), "cell {id}: type {ty:?}");
        assert!(
            cell["name"].as_str().is_some_and(|n| !n.is_empty()),
            "cell {id}: name"
        );

        let (x, y, w, h) = (
            int(cell, "x"),
            int(cell, "y"),
            int(cell, "w"),
            int(cell, "h"),
        );
        assert!(
            x >= 0 && y >= 0 && w >= 1 && h >= 1 && x + w <= GRID_COLUMNS,
            "cell {id}: x {x} y {y} w {w} h {h} is off the {GRID_COLUMNS}-column grid"
        );
        for &(other, ox, oy, ow, oh) in &rects {
            let apart = x + w <= ox || ox + ow <= x || y + h <= oy || oy + oh <= y;
            assert!(apart, "cells {id} and {other} overlap");
        }
        rects.push((id, x, y, w, h));

        check_cell_options(id, cell);

        let queries = queries(cell);
        if ty == "note" {
            assert!(queries.is_empty(), "note cell {id} has queries");
            assert!(
                cell["note"].as_str().is_some_and(|n| !n.trim().is_empty()),
                "note cell {id} has no note"
            );
            continue;
        }
        assert!(!queries.is_empty(), "cell {id} has no query");
        for (q, raw) in queries.iter().zip(cell["queries"].as_array().unwrap()) {
            assert!(
                q.contains(r#""chocominer"."autogen"."#),
                "cell {id}: not fully qualified: {q}"
            );
            assert!(
                q.contains(":dashboardTime:"),
                "cell {id}: no time range: {q}"
            );
            render(q);
            check_query_config(id, q, raw);
        }
    }
}

/// The parts of a cell Chronograf decodes into typed fields or validates: a wrong type there
/// makes it skip the whole dashboard file.
fn check_cell_options(id: &str, cell: &Value) {
    let axes = cell["axes"].as_object().expect("axes object");
    for (name, axis) in axes {
        assert!(
            ["x", "y", "y2"].contains(&name.as_str()),
            "cell {id}: axis {name}"
        );
        let bounds = axis["bounds"].as_array().expect("axis bounds");
        assert!(
            bounds.len() == 2 && bounds.iter().all(Value::is_string),
            "cell {id}: {axis}"
        );
        for key in ["label", "prefix", "suffix"] {
            assert!(axis[key].is_string(), "cell {id}: axis {name} {key}");
        }
        assert!(
            ["", "10", "2", "raw"].contains(&axis["base"].as_str().unwrap_or("?")),
            "cell {id}: axis {name} base"
        );
        assert!(
            ["", "linear", "log"].contains(&axis["scale"].as_str().unwrap_or("?")),
            "cell {id}: axis {name} scale"
        );
    }
    for color in cell["colors"].as_array().expect("colors array") {
        let ty = color["type"].as_str().unwrap_or_default();
        assert!(
            ["min", "max", "threshold", "text", "background", "scale"].contains(&ty),
            "cell {id}: color type {color}"
        );
        let hex = color["hex"].as_str().unwrap_or_default();
        assert!(
            hex.len() == 7 && hex.starts_with('#'),
            "cell {id}: color {color}"
        );
        for key in ["id", "name", "value"] {
            assert!(color[key].is_string(), "cell {id}: color {key} is a string");
        }
    }
    let legend = cell["legend"].as_object().expect("legend object");
    if !legend.is_empty() {
        assert_eq!(
            legend.get("type"),
            Some(&Value::from("static")),
            "cell {id}"
        );
        let orientation = legend.get("orientation").and_then(Value::as_str);
        assert!(
            ["top", "bottom", "left", "right"].contains(&orientation.unwrap_or("?")),
            "cell {id}: legend {legend:?}"
        );
    }
    let places = &cell["decimalPlaces"];
    assert!(
        places["isEnforced"].is_boolean() && places["digits"].is_i64(),
        "cell {id}: decimalPlaces"
    );
    assert!(cell["fieldOptions"].is_array(), "cell {id}: fieldOptions");
    assert!(cell["tableOptions"].is_object(), "cell {id}: tableOptions");
    assert!(cell["timeFormat"].is_string(), "cell {id}: timeFormat");
    assert!(cell["note"].is_string(), "cell {id}: note");
    assert!(
        ["default", "showWhenNoData"].contains(&cell["noteVisibility"].as_str().unwrap_or("?")),
        "cell {id}: noteVisibility"
    );
}

/// A hand-written query's config: its raw text is the query (so the editor shows it as is),
/// and the typed fields have their types.
fn check_query_config(id: &str, query: &str, raw: &Value) {
    assert_eq!(raw["source"], "", "cell {id}: query source");
    assert_eq!(raw["type"], "influxql", "cell {id}: query type");
    let config: &Map<String, Value> = raw["queryConfig"].as_object().expect("queryConfig");
    assert_eq!(
        config.get("rawText").and_then(Value::as_str),
        Some(query),
        "cell {id}: queryConfig.rawText must be the query"
    );
    for key in ["database", "measurement", "retentionPolicy"] {
        assert!(
            config.get(key).is_some_and(Value::is_string),
            "cell {id}: {key}"
        );
    }
    assert!(
        config.get("fields").is_some_and(Value::is_array),
        "cell {id}"
    );
    assert!(
        config.get("tags").is_some_and(Value::is_object),
        "cell {id}"
    );
    assert!(
        config.get("shifts").is_some_and(Value::is_array),
        "cell {id}"
    );
    assert!(
        config.get("areTagsAccepted").is_some_and(Value::is_boolean),
        "cell {id}"
    );
    let group_by = config.get("groupBy").expect("groupBy");
    assert!(
        group_by["time"].is_string() && group_by["tags"].is_array(),
        "cell {id}: groupBy"
    );
}

/// The rows of `q` (fully qualified: no database given), as InfluxDB's reader, the user the
/// source gives Chronograf; panics on an HTTP error or an error in the response.
async fn as_reader(reader: &Client, q: &str) -> Vec<Map<String, Value>> {
    try_as_reader(reader, q)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// [`as_reader`], the error returned.
async fn try_as_reader(reader: &Client, q: &str) -> Result<Vec<Map<String, Value>>, String> {
    let mut results = reader
        .query(&[q.to_owned()])
        .await
        .map_err(|e| e.to_string())?;
    Ok(results.pop().unwrap_or_default())
}

/// The first query of a busy cell that shows no positive value yet (or "nugget points" while
/// there are none), rendered; or one that failed, with why (a query timing out on a loaded
/// machine is asked again next round).
async fn busy_query_without_data(stack: &Stack, dashboard: &Value) -> Option<String> {
    if stack.rows("SELECT * FROM nugget LIMIT 1").await.is_empty() {
        return Some("nugget points".into());
    }
    let reader = Client::new(&stack.influx().reader("")).unwrap();
    for id in BUSY_CELLS {
        for q in queries(cell(dashboard, id)) {
            let rendered = render(q);
            match try_as_reader(&reader, &rendered).await {
                Ok(rows) if has_positive(&rows) => {}
                Ok(_) => return Some(format!("cell {id}: {rendered}")),
                Err(e) => return Some(format!("cell {id}: {rendered}: {e}")),
            }
        }
    }
    None
}

/// rng -> hasher -> worker run for a few seconds with nuggets aplenty, then every query of
/// the dashboard, rendered as Chronograf does, runs on that InfluxDB without a database
/// given (they are fully qualified) and without error; the main cells show the work done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_runs_on_a_real_pipelines_stats() {
    let dashboard = dashboard();
    let stack = Stack::start().await;
    let pipeline = stack
        .pipeline()
        .worker("w1", &["--difficulty", "4"])
        .hasher("h1", &["--delay-ms", "0"])
        .rng("r1", &["--rate", "2000", "--batch", "10"])
        .start()
        .await;

    // The totals leave out the last 2 s: wait until the busy cells show the run.
    let (stack_ref, dashboard_ref) = (&stack, &dashboard);
    eventually_ok(
        "a positive value from every busy cell's query",
        SOON,
        POLL,
        || async move {
            match busy_query_without_data(stack_ref, dashboard_ref).await {
                Some(missing) => Err(format!("no positive value from {missing}")),
                None => Ok(()),
            }
        },
    )
    .await;

    let (rng, hasher, worker) = pipeline.stop().await;
    assert!(rng.generated > 0 && hasher.hashed > 0, "{rng:?} {hasher:?}");
    assert!(worker.nuggets > 0, "{worker:?}");

    let reader = Client::new(&stack.influx().reader("")).unwrap();
    let mut ran = 0;
    for cell in cells(&dashboard) {
        let id = cell["i"].as_str().unwrap();
        for q in queries(cell) {
            let rendered = render(q);
            let response = as_reader(&reader, &rendered).await;
            ran += 1;
            if BUSY_CELLS.contains(&id) {
                assert!(
                    has_positive(&response),
                    "cell {id}: no positive value from {rendered}: {response:?}"
                );
            }
        }
    }
    assert!(ran >= BUSY_CELLS.len(), "only {ran} queries");
}
