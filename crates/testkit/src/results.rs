//! What `just soak` and `just bench` share to tell what a run measured: durations as people
//! write them, figures in the dashboard's units, Markdown tables, the totals a stage logs when
//! it stops, the release stage binaries to run, and the result files (`<name>-<time>.md` and
//! `.json`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

/// The stage binaries, in pipeline order.
pub const STAGES: [&str; 3] = ["rng", "hasher", "worker"];

/// A duration as written on the command line: `90s`, `10m`, `1h`, `1m30s`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => {
                return Err(format!(
                    "unexpected {c:?}: write e.g. 90s, 10m, 1h or 1m30s"
                ));
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("a number must come before {c:?}: e.g. 90s, 10m, 1m30s"))?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or("too long")?;
        number.clear();
    }
    if !number.is_empty() {
        // Plain seconds, or a number left without a unit after others.
        if total > 0 {
            return Err(format!(
                "{number:?} has no unit: write e.g. 90s, 10m, 1h or 1m30s"
            ));
        }
        total = number.parse().map_err(|_| "too long")?;
    }
    if total == 0 {
        return Err("the duration must be above 0".into());
    }
    Ok(Duration::from_secs(total))
}

/// A number a stage wrote in its last log line (`stopped report=Report { generated: 42, ...
/// }`): the value of `key` in the last line that holds `stopped` and `report=`.
pub fn report_field(log: &str, key: &str) -> Option<u64> {
    let line = log
        .lines()
        .rev()
        .find(|line| line.contains("stopped") && line.contains("report="))?;
    let pattern = format!("{key}: ");
    let at = line.find(&pattern)? + pattern.len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `bytes` in MB with one decimal.
pub fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1 << 20))
}

/// A rate in the dashboard's units: `9.8/s`, `32.0 k/s`, `10.4 M/s`.
pub fn rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2} M/s", per_second / 1e6)
    } else if per_second >= 1e3 {
        format!("{:.1} k/s", per_second / 1e3)
    } else {
        format!("{per_second:.1}/s")
    }
}

/// A Markdown table: a header row, then the rows.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out += &format!("|{}\n", " --- |".repeat(header.len()));
    for row in rows {
        out += &format!("| {} |\n", row.join(" | "));
    }
    out
}

/// The rng, hasher and worker binaries in `dir`, or beside the running executable (where
/// `cargo build --release --bins` puts them all); an error naming `env_var` (the setting of
/// the directory) and `recipe` (what builds them) if one is missing.
pub fn stage_bins(dir: Option<&Path>, env_var: &str, recipe: &str) -> anyhow::Result<[PathBuf; 3]> {
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_exe()
            .context("where is this executable")?
            .parent()
            .context("this executable's directory")?
            .to_path_buf(),
    };
    let bins = STAGES.map(|stage| dir.join(stage));
    for bin in &bins {
        if !bin.is_file() {
            bail!(
                "{} not found: build the release binaries (`cargo build --release --bins`, as \
                 `{recipe}` does) or set {env_var}",
                bin.display()
            );
        }
    }
    Ok(bins)
}

/// `time` as a file-name stamp: `20261126T153000Z`.
pub fn file_stamp(time: &time::OffsetDateTime) -> String {
    time.format(&time::macros::format_description!(
        "[year][month][day]T[hour][minute][second]Z"
    ))
    .unwrap_or_default()
}

/// `time` for people: `2026-11-26 15:30 UTC`.
pub fn minute_stamp(time: &time::OffsetDateTime) -> String {
    time.format(&time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_default()
}

/// Writes `<name>-<stamp>.md` and `.json` (pretty) into `dir`, creating it; their paths.
pub fn write_result(
    dir: &Path,
    name: &str,
    started_at: &time::OffsetDateTime,
    markdown: &str,
    json: &serde_json::Value,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let stamp = file_stamp(started_at);
    let md = dir.join(format!("{name}-{stamp}.md"));
    let json_path = dir.join(format!("{name}-{stamp}.json"));
    std::fs::write(&md, markdown).with_context(|| format!("write {}", md.display()))?;
    std::fs::write(&json_path, serde_json::to_string_pretty(json)? + "\n")
        .with_context(|| format!("write {}", json_path.display()))?;
    tracing::info!(markdown = %md.display(), json = %json_path.display(), "result written");
    Ok((md, json_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 45 "), Ok(Duration::from_secs(45)));
        for bad in ["", "0", "0s", "m", "10x", "1.5m", "-5s", "10m5"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_stop_report_is_read_from_the_last_lines() {
        let log = "2026-11-26T12:00:00Z  INFO rng: making numbers\n\
                   2026-11-26T12:10:00Z  INFO chocominer_pipeline::runtime: stopped \
                   report=Report { generated: 6400000, acked: 6400000, lost: 0, \
                   lost_batches: 0, waits: 1 }\n";
        assert_eq!(report_field(log, "generated"), Some(6_400_000));
        assert_eq!(report_field(log, "lost"), Some(0));
        assert_eq!(report_field(log, "lost_batches"), Some(0));
        assert_eq!(report_field(log, "judged"), None);
        assert_eq!(report_field("no report here", "lost"), None);
    }

    #[test]
    fn figures_are_written_for_people() {
        assert_eq!(mb(3 << 19), "1.5");
        assert_eq!(rate(9.84), "9.8/s");
        assert_eq!(rate(32_000.0), "32.0 k/s");
        assert_eq!(rate(10_400_000.0), "10.40 M/s");
        assert_eq!(
            table(&["a", "b"], &[vec!["1".into(), "2".into()]]),
            "| a | b |\n| --- | --- |\n| 1 | 2 |\n"
        );
        let at = time::macros::datetime!(2026-11-26 15:30:05 UTC);
        assert_eq!(file_stamp(&at), "20261126T153005Z");
        assert_eq!(minute_stamp(&at), "2026-11-26 15:30 UTC");
    }

    #[test]
    fn missing_stage_binaries_are_named_with_the_way_to_build_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = stage_bins(Some(dir.path()), "BENCH_BIN_DIR", "just bench").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("rng not found"), "{message}");
        assert!(message.contains("BENCH_BIN_DIR"), "{message}");
    }
}
