//! Which stage holds the pipeline back, by one rule ([`RULE`], which `chocominer status --help`
//! shows and the dashboard applies too). A stage that cannot keep up acknowledges slowly, so the
//! stage before it fills its window of unacknowledged batches and waits: the rule looks for a
//! stage saturated itself, else reads the windows (a full one points at the stage *after* it).

use crate::{ALIVE_WITHIN_SECONDS, Snapshot};
use chocominer_model::Stage;

/// The share from which a stage counts as saturated.
pub const SATURATED: f64 = 0.9;

/// The rule, for `status --help`.
pub const RULE: &str = "\
The bottleneck is named by the first of these rules that holds (90 % = saturated):
  0. a stage has no instance alive while another has → that stage
  1. the hashers hold batches no worker takes → worker (waiting, not losing)
  2. rng holds batches no hasher takes → hasher (waiting, not losing)
  3. hasher busy ≥ 90 % of the time → hasher
  4. rng makes ≥ 90 % of its rate limit (summed over its instances; none
     unlimited) → rng
  5. worker busy ≥ 90 % of the time → worker
  6. hasher in flight ≥ 90 % of its window → worker (slow to acknowledge)
  7. rng in flight ≥ 90 % of its window → hasher (slow to acknowledge)
Otherwise no stage is saturated and none is named.";

/// The rule's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// No instance of any stage is alive.
    NothingRuns,
    /// `stage` holds the others back, for `reason`.
    Bottleneck { stage: Stage, reason: String },
    /// Things run, and no stage is saturated.
    NoneSaturated,
}

impl Verdict {
    pub fn stage(&self) -> Option<Stage> {
        match self {
            Verdict::Bottleneck { stage, .. } => Some(*stage),
            _ => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Bottleneck { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// One sentence for the screen.
    pub fn sentence(&self) -> String {
        match self {
            Verdict::NothingRuns => format!(
                "nothing runs: no instance wrote stats in the last {ALIVE_WITHIN_SECONDS} s"
            ),
            Verdict::Bottleneck { stage, reason } => format!("bottleneck: {stage}, {reason}"),
            Verdict::NoneSaturated => "no bottleneck: no stage is saturated".into(),
        }
    }
}

fn batches(n: f64) -> String {
    format!("{n} batch{}", if n == 1.0 { "" } else { "es" })
}

/// A share as people read it: `95 %`.
pub fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// Applies the rule (see the module docs) to a snapshot.
pub fn find(snapshot: &Snapshot) -> Verdict {
    if !snapshot.anything_runs() {
        return Verdict::NothingRuns;
    }
    let bottleneck = |stage: Stage, reason: String| Verdict::Bottleneck { stage, reason };
    if let Some(&missing) = Stage::ALL.iter().find(|&&s| snapshot.stage(s).alive == 0) {
        let reason = match missing {
            Stage::Rng => "none runs: nothing makes numbers".to_owned(),
            other => format!("none runs: nothing takes the batches on {other}'s subject"),
        };
        return bottleneck(missing, reason);
    }
    let (rng, hasher) = (&snapshot.rng, &snapshot.hasher);
    // A stage scaled to zero a moment ago still has fresh points; the stage before it says
    // at once that it waits for it.
    if let Some(held) = hasher.waiting.filter(|&w| w > 0.0) {
        return bottleneck(
            Stage::Worker,
            format!(
                "no worker takes the digests: the hashers hold {} and wait (nothing is lost)",
                batches(held)
            ),
        );
    }
    if let Some(held) = rng.waiting.filter(|&w| w > 0.0) {
        return bottleneck(
            Stage::Hasher,
            format!(
                "no hasher takes the numbers: rng holds {} and waits (nothing is lost)",
                batches(held)
            ),
        );
    }
    if let Some(busy) = hasher.busy.filter(|&b| b >= SATURATED) {
        return bottleneck(
            Stage::Hasher,
            format!("busy {}: more hashers would hash more", percent(busy)),
        );
    }
    if let Some(limit) = rng.rate_limit.filter(|&l| l > 0.0)
        && rng.rate >= SATURATED * limit
    {
        return bottleneck(
            Stage::Rng,
            format!(
                "makes {:.1}/s of its {limit}/s limit: more rng instances or a higher RNG_RATE",
                rng.rate
            ),
        );
    }
    if let Some(busy) = snapshot.worker.busy.filter(|&b| b >= SATURATED) {
        return bottleneck(
            Stage::Worker,
            format!("busy {}: more workers would judge more", percent(busy)),
        );
    }
    if let Some(used) = hasher.window_use().filter(|&u| u >= SATURATED) {
        return bottleneck(
            Stage::Worker,
            format!(
                "the hashers' window is {} full: the workers acknowledge slowly",
                percent(used)
            ),
        );
    }
    if let Some(used) = rng.window_use().filter(|&u| u >= SATURATED) {
        return bottleneck(
            Stage::Hasher,
            format!(
                "rng's window is {} full: the hashers acknowledge slowly",
                percent(used)
            ),
        );
    }
    Verdict::NoneSaturated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::tests::{NOW, point};

    /// One rng, hasher and worker, each with the given fields for the last 6 seconds.
    fn pipeline(rng: &[(&str, f64)], hasher: &[(&str, f64)]) -> Snapshot {
        let mut points = Vec::new();
        for ago in 1..=6 {
            points.push(point(Stage::Rng, "r1", ago, rng));
            points.push(point(Stage::Hasher, "h1", ago, hasher));
            points.push(point(Stage::Worker, "w1", ago, &[("hashes", 10.0)]));
        }
        Snapshot::from_points(&points, NOW)
    }

    /// The same, with the worker busy `busy` of the time.
    fn pipeline_with_worker(rng: &[(&str, f64)], hasher: &[(&str, f64)], busy: f64) -> Snapshot {
        let mut points = Vec::new();
        for ago in 1..=6 {
            points.push(point(Stage::Rng, "r1", ago, rng));
            points.push(point(Stage::Hasher, "h1", ago, hasher));
            points.push(point(
                Stage::Worker,
                "w1",
                ago,
                &[("hashes", 3.0), ("busy", busy)],
            ));
        }
        Snapshot::from_points(&points, NOW)
    }

    fn stage_of(rng: &[(&str, f64)], hasher: &[(&str, f64)]) -> Option<Stage> {
        find(&pipeline(rng, hasher)).stage()
    }

    const RNG_CAPPED: [(&str, f64); 4] = [
        ("numbers", 100.0),
        ("rate_limit", 100.0),
        ("in_flight", 1.0),
        ("window", 32.0),
    ];
    const RNG_WAITING: [(&str, f64); 4] = [
        ("numbers", 10.0),
        ("rate_limit", 100.0),
        ("in_flight", 32.0),
        ("window", 32.0),
    ];
    const HASHER_IDLE: [(&str, f64); 3] = [("busy", 0.2), ("in_flight", 0.0), ("window", 8.0)];

    #[test]
    fn rules_in_order() {
        let busy = [("busy", 0.95), ("in_flight", 8.0), ("window", 8.0)];
        assert_eq!(stage_of(&RNG_CAPPED, &busy), Some(Stage::Hasher));
        assert_eq!(stage_of(&RNG_CAPPED, &HASHER_IDLE), Some(Stage::Rng));
        let waiting = [("busy", 0.5), ("in_flight", 8.0), ("window", 8.0)];
        assert_eq!(stage_of(&RNG_WAITING, &waiting), Some(Stage::Worker));
        assert_eq!(stage_of(&RNG_WAITING, &HASHER_IDLE), Some(Stage::Hasher));
        let slow_workers = pipeline_with_worker(&RNG_WAITING, &HASHER_IDLE, 0.97);
        assert_eq!(find(&slow_workers).stage(), Some(Stage::Worker));
        // rng at its limit comes first: ten workers 90 % busy behind three capped rngs.
        let capped = pipeline_with_worker(&RNG_CAPPED, &HASHER_IDLE, 0.95);
        assert_eq!(find(&capped).stage(), Some(Stage::Rng));
        let unlimited = [("numbers", 1e6), ("rate_limit", 0.0), ("window", 16.0)];
        assert_eq!(
            find(&pipeline(&unlimited, &HASHER_IDLE)),
            Verdict::NoneSaturated
        );
    }

    #[test]
    fn a_waiting_stage_names_the_stage_it_waits_for() {
        let held = [("waiting", 3.0), ("busy", 0.0), ("window", 8.0)];
        let verdict = find(&pipeline(&RNG_CAPPED, &held));
        assert_eq!(verdict.stage(), Some(Stage::Worker), "{verdict:?}");
        assert!(
            verdict.sentence().contains("hold 3 batches and wait"),
            "{verdict:?}"
        );
        let rng_held = [("numbers", 0.0), ("window", 32.0), ("waiting", 1.0)];
        let verdict = find(&pipeline(&rng_held, &HASHER_IDLE));
        assert_eq!(verdict.stage(), Some(Stage::Hasher), "{verdict:?}");
        assert!(
            verdict.sentence().contains("rng holds 1 batch and waits"),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_missing_stage_or_nothing_at_all() {
        assert_eq!(find(&Snapshot::default()), Verdict::NothingRuns);
        let points = [point(Stage::Rng, "r1", 1, &RNG_WAITING)];
        let verdict = find(&Snapshot::from_points(&points, NOW));
        assert_eq!(verdict.stage(), Some(Stage::Hasher), "{verdict:?}");
    }
}
