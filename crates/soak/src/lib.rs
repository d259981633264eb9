//! The judgement of a soak run (`just soak`, the `soak` binary): how long it warms up and
//! whether a process's memory stayed flat. Kept apart from the run itself so it can be tested
//! without one; what it shares with `just bench` (durations, figures, tables, stop reports,
//! result files) is in `testkit::results`.

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
