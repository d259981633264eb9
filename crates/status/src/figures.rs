//! What each stage did over the last few seconds, from its instances' per-second stats points:
//! the one definition of the figures `chocominer status` and the dashboard show. A point reaches
//! InfluxDB a second or two after the second it is stamped on, so the figures cover the
//! [`WINDOW_SECONDS`] ending at the newest second every alive instance has written: a point on
//! its way does not make its instance look slow. A [`Count`] becomes a rate over the seconds in
//! which the stage wrote; a [`Gauge`] is averaged per instance over the window.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::{CLOCK_SKEW_ALLOWED, StatsPoint};
use chocominer_model::Stage;
use chocominer_model::schema::{Count, Gauge, hasher, rng, worker};

/// Seconds the figures cover.
pub const WINDOW_SECONDS: i64 = 5;
/// Seconds within which an instance must have written a point to count as alive.
pub const ALIVE_WITHIN_SECONDS: i64 = 3;
/// How far back points are read: the window, plus how old its end may be, plus margin.
pub const LOOKBACK: Duration = Duration::from_secs(15);
const SECOND_NS: i64 = 1_000_000_000;

/// One stage's figures. Fields that do not apply to the stage are left out of the JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StageFigures {
    /// How many instances wrote a point in the last [`ALIVE_WITHIN_SECONDS`].
    pub alive: usize,
    /// Their names (`instance` tags), in natural order (hasher-2 before hasher-10).
    pub instances: Vec<String>,
    /// hasher and worker: how many replicas answered `$SRV.PING` (rng is not a NATS service);
    /// filled in by `chocominer status`, which asks NATS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_replicas: Option<usize>,
    /// rng: numbers made per second; hasher and worker: hashes per second.
    pub rate: f64,
    /// rng: the sum of its instances' limits in numbers/s, 0 when one of them is unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    /// hasher and worker: share of the time spent hashing or judging, 0..1, averaged over the
    /// instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub busy: Option<f64>,
    /// rng and hasher: batches sent and not yet acknowledged, summed over instances...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<f64>,
    /// ...and the most they may have out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<f64>,
    /// rng and hasher: batches waiting because no instance of the next stage takes them, in
    /// each instance's newest point, summed. More than 0: the stage waits, and loses nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<f64>,
    /// rng and hasher: numbers lost per second (batches not acknowledged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<f64>,
    /// hasher and worker: malformed messages refused per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<f64>,
    /// worker: nuggets found per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nuggets: Option<f64>,
    /// worker: nugget candidates refused per second because their digest is not their
    /// number's hash (someone publishes forged digests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forged: Option<f64>,
}

impl StageFigures {
    /// `in_flight / window`, when the stage has a window.
    pub fn window_use(&self) -> Option<f64> {
        match (self.in_flight, self.window) {
            (Some(in_flight), Some(window)) if window > 0.0 => Some(in_flight / window),
            _ => None,
        }
    }
}

/// The three stages' figures over the same seconds (in JSON: the three stages by name).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// End of the window (ns since the epoch); `None` when no instance is alive.
    #[serde(skip)]
    pub up_to_ns: Option<i64>,
    pub rng: StageFigures,
    pub hasher: StageFigures,
    pub worker: StageFigures,
}

impl Snapshot {
    /// Computes the figures from the points of the last [`LOOKBACK`], as of `now_ns`. Points
    /// stamped more than [`CLOCK_SKEW_ALLOWED`] ahead of it are left out.
    pub fn from_points(points: &[StatsPoint], now_ns: i64) -> Snapshot {
        let latest = now_ns.saturating_add(CLOCK_SKEW_ALLOWED.as_nanos() as i64);
        let points: Vec<&StatsPoint> = points.iter().filter(|p| p.time_ns <= latest).collect();
        let mut newest: BTreeMap<(&str, &str), &StatsPoint> = BTreeMap::new();
        for point in &points {
            let key = (point.stage.name(), point.instance.as_str());
            if newest.get(&key).is_none_or(|p| p.time_ns < point.time_ns) {
                newest.insert(key, point);
            }
        }
        newest.retain(|_, p| p.time_ns >= now_ns - ALIVE_WITHIN_SECONDS * SECOND_NS);
        let Some(end) = newest.values().map(|p| p.time_ns).min() else {
            return Snapshot::default();
        };
        // The window: the seconds `(start, end]`.
        let start = end - WINDOW_SECONDS * SECOND_NS;
        let figures = |stage: Stage| {
            let in_window: Vec<&StatsPoint> = points
                .iter()
                .filter(|p| p.stage == stage && p.time_ns > start && p.time_ns <= end)
                .copied()
                .collect();
            let alive: Vec<&StatsPoint> = newest
                .iter()
                .filter(|((name, _), _)| *name == stage.name())
                .map(|(_, point)| *point)
                .collect();
            stage_figures(stage, &in_window, &alive)
        };
        Snapshot {
            up_to_ns: Some(end),
            rng: figures(Stage::Rng),
            hasher: figures(Stage::Hasher),
            worker: figures(Stage::Worker),
        }
    }

    pub fn stage(&self, stage: Stage) -> &StageFigures {
        match stage {
            Stage::Rng => &self.rng,
            Stage::Hasher => &self.hasher,
            Stage::Worker => &self.worker,
        }
    }

    /// Whether any instance of any stage is alive.
    pub fn anything_runs(&self) -> bool {
        Stage::ALL.iter().any(|&s| self.stage(s).alive > 0)
    }
}

/// `stage`'s figures from its points `in_window`; `alive` holds the newest point of each of its
/// alive instances.
fn stage_figures(stage: Stage, in_window: &[&StatsPoint], alive: &[&StatsPoint]) -> StageFigures {
    let seconds: BTreeSet<i64> = in_window.iter().map(|p| p.time_ns).collect();
    let seconds = seconds.len().max(1) as f64;
    let per_second = |field: Count| {
        let sum: f64 = in_window.iter().map(|p| p.get(field)).sum();
        Some(round(sum / seconds))
    };
    // Each alive instance's mean of a gauge over its points in the window (its newest point
    // when it started after the window's end).
    let instance_means = |field: Gauge| -> Vec<f64> {
        alive
            .iter()
            .map(|newest| {
                let own: Vec<f64> = in_window
                    .iter()
                    .filter(|p| p.instance == newest.instance)
                    .map(|p| p.get(field))
                    .collect();
                if own.is_empty() {
                    newest.get(field)
                } else {
                    own.iter().sum::<f64>() / own.len() as f64
                }
            })
            .collect()
    };
    // A gauge of a stage with no instance alive is unknown, not 0.
    let known = |value: f64| (!alive.is_empty()).then(|| round(value));
    let summed = |field: Gauge| known(instance_means(field).iter().sum());
    // A gauge as it is now: each alive instance's newest point, summed.
    let newest_summed = |field: Gauge| known(alive.iter().map(|p| p.get(field)).sum());
    // A share (busy), averaged over the instances.
    let averaged =
        |field: Gauge| known(instance_means(field).iter().sum::<f64>() / alive.len() as f64);
    let mut instances: Vec<String> = alive.iter().map(|p| p.instance.clone()).collect();
    instances.sort_by_key(|name| natural_key(name));
    let mut figures = StageFigures {
        alive: instances.len(),
        instances,
        ..StageFigures::default()
    };
    match stage {
        Stage::Rng => {
            figures.rate = per_second(rng::NUMBERS).unwrap_or_default();
            let limits = instance_means(rng::RATE_LIMIT);
            figures.rate_limit = if limits.iter().any(|&l| l <= 0.0) {
                Some(0.0)
            } else {
                summed(rng::RATE_LIMIT)
            };
            figures.in_flight = summed(rng::IN_FLIGHT);
            figures.window = summed(rng::WINDOW);
            figures.waiting = newest_summed(rng::WAITING);
            figures.lost = per_second(rng::LOST);
        }
        Stage::Hasher => {
            figures.rate = per_second(hasher::HASHES).unwrap_or_default();
            figures.busy = averaged(hasher::BUSY);
            figures.in_flight = summed(hasher::IN_FLIGHT);
            figures.window = summed(hasher::WINDOW);
            figures.waiting = newest_summed(hasher::WAITING);
            figures.lost = per_second(hasher::LOST);
            figures.rejected = per_second(hasher::REJECTED);
        }
        Stage::Worker => {
            figures.rate = per_second(worker::HASHES).unwrap_or_default();
            figures.busy = averaged(worker::BUSY);
            figures.nuggets = per_second(worker::NUGGETS);
            figures.rejected = per_second(worker::REJECTED);
            figures.forged = per_second(worker::FORGED);
        }
    }
    figures
}

/// Sorts `hasher-2` before `hasher-10`: the stem, then the trailing number.
pub fn natural_key(name: &str) -> (String, u64, String) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, number) = name.split_at(name.len() - digits);
    (
        stem.to_owned(),
        number.parse().unwrap_or(0),
        name.to_owned(),
    )
}

/// Three decimals: enough for rates, shares and milliseconds, and JSON without float noise.
pub fn round(value: f64) -> f64 {
    // `+ 0.0` turns the -0.0 that summing nothing gives into 0.0, which prints without a sign.
    (value * 1000.0).round() / 1000.0 + 0.0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const NOW: i64 = 1_700_000_000 * SECOND_NS;

    /// A point of `stage` from `instance`, `ago` seconds before [`NOW`].
    pub fn point(stage: Stage, instance: &str, ago: i64, fields: &[(&str, f64)]) -> StatsPoint {
        StatsPoint {
            stage,
            instance: instance.to_owned(),
            time_ns: NOW - ago * SECOND_NS,
            fields: fields.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn nothing_alive_gives_an_empty_snapshot() {
        let old = [point(Stage::Rng, "r1", 4, &[("numbers", 100.0)])];
        let snapshot = Snapshot::from_points(&old, NOW);
        assert!(!snapshot.anything_runs());
        assert_eq!(snapshot.up_to_ns, None);
    }

    #[test]
    fn rates_over_complete_seconds_and_gauges_per_instance() {
        let mut points = Vec::new();
        // h1 is up to date, h2's newest point is a second behind: the window ends there.
        for ago in 1..=10 {
            let busy = [
                ("hashes", 10.0),
                ("busy", 1.0),
                ("in_flight", 8.0),
                ("window", 8.0),
            ];
            points.push(point(Stage::Hasher, "h1", ago, &busy));
            if ago >= 2 {
                let idle = [
                    ("hashes", 5.0),
                    ("busy", 0.5),
                    ("in_flight", 0.0),
                    ("window", 8.0),
                ];
                points.push(point(Stage::Hasher, "h2", ago, &idle));
            }
        }
        // A hasher gone 5 s ago still counts in the rate while its points are in the window.
        points.push(point(
            Stage::Hasher,
            "gone",
            5,
            &[("hashes", 15.0), ("busy", 1.0)],
        ));
        let snapshot = Snapshot::from_points(&points, NOW);
        assert_eq!(snapshot.up_to_ns, Some(NOW - 2 * SECOND_NS));
        let h = &snapshot.hasher;
        assert_eq!(h.instances, ["h1", "h2"]);
        let names = [
            point(Stage::Worker, "worker-10", 1, &[]),
            point(Stage::Worker, "worker-2", 1, &[]),
        ];
        let workers = Snapshot::from_points(&names, NOW).worker;
        assert_eq!(workers.instances, ["worker-2", "worker-10"]);
        // Seconds 2..=6 ago: (10 + 5) × 5 + 15, over 5 s.
        assert_eq!(h.rate, 18.0);
        assert_eq!(h.busy, Some(0.75));
        assert_eq!((h.in_flight, h.window), (Some(8.0), Some(16.0)));
        assert_eq!(h.window_use(), Some(0.5));
        let rng = &snapshot.rng;
        assert_eq!((rng.alive, rng.rate, rng.lost), (0, 0.0, Some(0.0)));
        assert_eq!((rng.rate_limit, rng.in_flight), (None, None));
        assert_eq!(format!("{}", rng.rate), "0");
    }

    #[test]
    fn a_stage_that_just_started_has_its_rate_over_its_seconds() {
        let mut points = Vec::new();
        for ago in 1..=10 {
            points.push(point(Stage::Worker, "w1", ago, &[("hashes", 10.0)]));
        }
        for ago in 1..=2 {
            points.push(point(Stage::Rng, "r1", ago, &[("numbers", 100.0)]));
        }
        let snapshot = Snapshot::from_points(&points, NOW);
        assert_eq!((snapshot.rng.rate, snapshot.worker.rate), (100.0, 10.0));
    }

    #[test]
    fn a_point_stamped_ahead_of_the_allowance_is_left_out() {
        let ahead = CLOCK_SKEW_ALLOWED.as_secs() as i64;
        let mut points = vec![point(Stage::Worker, "w1", 1, &[("hashes", 10.0)])];
        // An instance nobody runs, stamped in the future: never alive, never counted.
        points.push(point(
            Stage::Worker,
            "ghost",
            -(ahead + 1),
            &[("hashes", 1e9)],
        ));
        let snapshot = Snapshot::from_points(&points, NOW);
        assert_eq!(snapshot.worker.instances, ["w1"]);
        assert_eq!(snapshot.worker.rate, 10.0);
        // Within the allowance: a clock a little ahead.
        points.push(point(Stage::Worker, "w2", -ahead, &[]));
        let workers = Snapshot::from_points(&points, NOW).worker.instances;
        assert_eq!(workers, ["w1", "w2"]);
    }

    #[test]
    fn one_unlimited_rng_makes_the_stage_unlimited() {
        let points = [
            point(Stage::Rng, "r1", 1, &[("rate_limit", 100.0)]),
            point(Stage::Rng, "r2", 1, &[("rate_limit", 50.0)]),
        ];
        assert_eq!(
            Snapshot::from_points(&points, NOW).rng.rate_limit,
            Some(150.0)
        );
        let points = [
            point(Stage::Rng, "r1", 1, &[("rate_limit", 100.0)]),
            point(Stage::Rng, "r2", 1, &[("rate_limit", 0.0)]),
        ];
        assert_eq!(
            Snapshot::from_points(&points, NOW).rng.rate_limit,
            Some(0.0)
        );
    }
}
