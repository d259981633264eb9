//! The judgement of a soak run (`just soak`, the `soak` binary): durations as people write
//! them, whether a process's memory stayed flat, the figures a stage logs when it stops, and
//! the result as Markdown. Kept apart from the run itself so it can be tested without one.

use std::time::Duration;

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
        return Err("a soak needs a duration above 0".into());
    }
    Ok(Duration::from_secs(total))
}

/// How long a run warms up before its memory must stay flat: the first 10 % of it, at least
/// 30 s, never more than half of it (10 minutes: the first 60 s).
pub fn warm_up(duration: Duration) -> Duration {
    (duration / 10)
        .max(Duration::from_secs(30))
        .min(duration / 2)
}

/// Below this a change of resident memory counts as flat whatever the percentage: a few pages
/// of a small process are not a trend.
pub const FLAT_SLACK: u64 = 2 << 20;

/// The resident memory of one process after warm-up, and whether it stayed flat.
///
/// Flat means no trend: the median of the last third of the samples within ±`tolerance` of
/// the median of the first third. Not every sample within a band: a stage or nats-server
/// holding a few 1 MB batches more or less at the moment of a sample moves a 20–40 MB process
/// by ±20 % from one sample to the next (measured: 10 minutes of the full profile, no trend
/// at all), which says nothing about a leak. The band is reported beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Flatness {
    /// Median of all the samples after warm-up.
    pub median: u64,
    pub min: u64,
    pub max: u64,
    /// The largest distance of a sample from the median, as a share of it: the band.
    pub deviation: f64,
    /// Medians of the first and of the last third of the samples.
    pub early: u64,
    pub late: u64,
    /// `late` against `early`, as a share of `early` (0.05: grew by 5 %).
    pub trend: f64,
    /// `late` within ±`tolerance` of `early`, or within [`FLAT_SLACK`] of it.
    pub flat: bool,
}

/// The median of `samples` (the upper one of an even count); `None` without samples.
fn median(samples: &[u64]) -> Option<u64> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}

/// Whether `samples` (bytes, after warm-up, in time order) show no trend beyond ±`tolerance`
/// (0.1 = 10 %); `None` with fewer than 3 samples, too few to tell.
pub fn flatness(samples: &[u64], tolerance: f64) -> Option<Flatness> {
    if samples.len() < 3 {
        return None;
    }
    let third = samples.len() / 3;
    let median_all = median(samples)?;
    let (min, max) = (*samples.iter().min()?, *samples.iter().max()?);
    let early = median(&samples[..third])?;
    let late = median(&samples[samples.len() - third..])?;
    let distance = (median_all - min).max(max - median_all);
    let trend = (late as f64 - early as f64) / early.max(1) as f64;
    Some(Flatness {
        median: median_all,
        min,
        max,
        deviation: distance as f64 / median_all.max(1) as f64,
        early,
        late,
        trend,
        flat: trend.abs() <= tolerance || late.abs_diff(early) <= FLAT_SLACK,
    })
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
    fn warm_up_is_a_tenth_at_least_30_s_at_most_half() {
        assert_eq!(warm_up(Duration::from_secs(600)), Duration::from_secs(60));
        assert_eq!(warm_up(Duration::from_secs(90)), Duration::from_secs(30));
        assert_eq!(warm_up(Duration::from_secs(40)), Duration::from_secs(20));
        assert_eq!(warm_up(Duration::from_secs(3600)), Duration::from_secs(360));
    }

    #[test]
    fn memory_is_flat_when_it_does_not_trend() {
        const MB: u64 = 1 << 20;
        // Noisy but level, as nats-server was over 10 minutes: flat, with a wide band.
        let noisy = [32, 38, 26, 41, 30, 36, 27, 40, 33, 35, 29, 38].map(|m| m * MB);
        let flat = flatness(&noisy, 0.1).unwrap();
        assert!(flat.flat, "{flat:?}");
        assert!(flat.deviation > 0.2, "{flat:?}");
        // Growing by a fifth, every sample within 10 % of the median: not flat.
        let growing = [100, 102, 104, 106, 108, 110, 112, 114, 116, 118, 120].map(|m| m * MB);
        let growth = flatness(&growing, 0.1).unwrap();
        assert!(!growth.flat, "{growth:?}");
        assert!(growth.trend > 0.1, "{growth:?}");
        // 30 % of a 6 MB process is 1.8 MB: within the slack.
        let small = flatness(
            &[6 * MB, 6 * MB, 6 * MB, 7_800_000, 7_800_000, 7_800_000],
            0.1,
        );
        assert!(small.unwrap().flat);
        assert_eq!(flatness(&[MB, MB], 0.1), None);
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
    }
}
