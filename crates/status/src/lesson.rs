//! Where the running stack stands in the scaling lesson (docs/dashboard.md), and what to try
//! next. The step is read from the instances alive per stage, never from a clock, so the
//! dashboard and `chocominer status` agree with whatever the class typed. In discovery mode
//! ([`DISCOVERY_ENV`]) a step whose command would name the bottleneck asks for the probes.

use serde::Serialize;

use crate::Snapshot;
use chocominer_model::Stage;

/// The one setting that hides the named bottleneck and the hints (webui and `chocominer status`).
pub const DISCOVERY_ENV: &str = "CHOCOMINER_DISCOVERY";

/// Instances alive per stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub rng: usize,
    pub hasher: usize,
    pub worker: usize,
}

impl Counts {
    pub fn of(snapshot: &Snapshot) -> Counts {
        Counts {
            rng: snapshot.rng.alive,
            hasher: snapshot.hasher.alive,
            worker: snapshot.worker.alive,
        }
    }

    pub fn get(&self, stage: Stage) -> usize {
        match stage {
            Stage::Rng => self.rng,
            Stage::Hasher => self.hasher,
            Stage::Worker => self.worker,
        }
    }
}

/// One scaling command in the three places the lesson runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    /// The native stack (`just up`).
    pub just: String,
    /// Docker Compose. `up --scale` sets every service it is not told about back to one
    /// replica, so the command repeats every stage already scaled.
    pub compose: String,
    /// Kubernetes (`kubectl apply -k k8s`, namespace chocominer).
    pub kubectl: String,
}

/// Order in which compose's `--scale` flags are written: the seed's (workers first).
const COMPOSE_ORDER: [Stage; 3] = [Stage::Worker, Stage::Rng, Stage::Hasher];

impl Command {
    /// Scale `stage` to `n` replicas, the others staying as in `now`.
    pub fn scale(now: Counts, stage: Stage, n: usize) -> Command {
        let mut compose = "docker compose up -d".to_owned();
        for s in COMPOSE_ORDER {
            let count = if s == stage { n } else { now.get(s) };
            if s == stage || count != 1 {
                compose.push_str(&format!(" --scale {s}={count}"));
            }
        }
        Command {
            just: format!("just scale {stage} {n}"),
            compose,
            kubectl: format!("kubectl -n chocominer scale deployment/{stage} --replicas={n}"),
        }
    }
}

/// The lesson's steps, in order; [`step`] says which counts make each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepId {
    Starting,
    OneOfEach,
    MoreWorkers,
    Plateau,
    MoreRngs,
    MoreHashers,
    OffPath,
}

/// Where the stack stands, and what to do next.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub id: StepId,
    /// 1-based position in the lesson (0 for `Starting` and `OffPath`).
    pub number: u8,
    /// How many numbered steps the lesson has.
    pub of: u8,
    pub title: &'static str,
    /// What the class should see at this step (true whatever the mode: no stage named where
    /// finding it is the exercise).
    pub expect: &'static str,
    /// Why the next command, or what the step teaches; in discovery mode, never a stage's name
    /// where finding it is the exercise.
    pub why_next: String,
    /// The next command; `None` at the end of the compose part of the lesson.
    pub next: Option<Command>,
    /// Per-stage probes to run instead of being told (discovery, and the plateau).
    pub probes: Vec<String>,
}

/// How many workers make the plateau (the seed's `--scale worker=10`).
pub const PLATEAU_WORKERS: usize = 10;

fn probes() -> Vec<String> {
    Stage::ALL
        .iter()
        .map(|s| format!("chocominer ping {s}"))
        .collect()
}

/// The step `counts` is at. `discovery` leaves out whatever would name the bottleneck.
pub fn step(counts: Counts, discovery: bool) -> Step {
    let Counts {
        rng,
        hasher,
        worker,
    } = counts;
    let numbered = |id, number, title, expect, why_next: &str, next| Step {
        id,
        number,
        of: 5,
        title,
        expect,
        why_next: why_next.to_owned(),
        next,
        probes: Vec::new(),
    };
    if rng == 0 || hasher == 0 || worker == 0 {
        return numbered(
            StepId::Starting,
            0,
            "Start the pipeline",
            "every stage needs at least one instance for hashes to flow",
            "start one of each (just up / docker compose up -d)",
            None,
        );
    }
    match (rng, hasher, worker) {
        (1, 1, 1) => numbered(
            StepId::OneOfEach,
            1,
            "One of each",
            "a few hashes per second: one worker judges one hash at a time",
            "add a worker: does the rate go up?",
            Some(Command::scale(counts, Stage::Worker, 2)),
        ),
        (1, 1, w) if w < PLATEAU_WORKERS => numbered(
            StepId::MoreWorkers,
            2,
            "More workers",
            "the rate rose with the workers",
            "ten workers: does it keep rising?",
            Some(Command::scale(counts, Stage::Worker, PLATEAU_WORKERS)),
        ),
        (1, 1, _) => {
            let why_next = match discovery {
                true => "find the stage that holds the others back: probe each one",
                false => {
                    "rng makes at most its rate limit: run more of them; queue groups share the \
                     work, no load balancer needed"
                }
            };
            Step {
                probes: probes(),
                ..numbered(
                    StepId::Plateau,
                    3,
                    "A plateau",
                    "ten workers are not five times two: the rate stopped rising",
                    why_next,
                    (!discovery).then(|| Command::scale(counts, Stage::Rng, 3)),
                )
            }
        }
        (_, 1, w) if w >= PLATEAU_WORKERS => {
            let mut step = numbered(
                StepId::MoreRngs,
                4,
                "More rngs",
                "more rngs lifted the plateau, until another stage held it",
                "the hasher is busy all the time now: run more of them (on Kubernetes, the design \
                 card's `kubectl scale deployment/hasher`)",
                Some(Command::scale(counts, Stage::Hasher, 2)),
            );
            if discovery {
                step.why_next = "find the new bottleneck, then scale it".to_owned();
                step.next = None;
                step.probes = probes();
            }
            step
        }
        (_, _, w) if w >= PLATEAU_WORKERS => numbered(
            StepId::MoreHashers,
            5,
            "Every stage scaled",
            "the rate rose again: scaling any stage is only more replicas",
            "on one machine, more replicas end at its cores: with CHOCOMINER_PROFILE=full \
             (no simulated cost) a 2-core laptop hashed 17.9 M/s with one hasher and 17.7 M/s \
             with two; a cluster spreads them over nodes, restarts the dead ones and rolls out \
             updates: the Kubernetes part of the lesson",
            None,
        ),
        _ => Step {
            probes: probes(),
            ..numbered(
                StepId::OffPath,
                0,
                "Your own experiment",
                "compare the rate with the last one; each stage's probe tells how busy it is",
                "back to the lesson: one of each (just scale STAGE 1)",
                None,
            )
        },
    }
}

/// The pipeline's rate before and after the last change in the instances that run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Change {
    pub from: Counts,
    pub to: Counts,
    /// Hashes/s just before the change.
    pub rate_before: f64,
    /// Hashes/s now, once the figures cover only seconds after the change (`None` until then).
    pub rate_after: Option<f64>,
    /// When the new counts were first seen (ns since the epoch).
    pub at_ns: i64,
}

/// Remembers the last change of instances and the rate around it, from successive snapshots.
#[derive(Debug, Clone, Default)]
pub struct RateChange {
    last: Option<(Counts, f64)>,
    change: Option<Change>,
    /// The change before `change` while `change` has not settled, given back if `change`
    /// undoes itself.
    previous: Option<Change>,
}

impl RateChange {
    /// Takes a snapshot made at `now_ns` (with `counts`, and hashes/s `rate`); returns the last
    /// change. The rate after is given once the figures' window lies after the change, so it
    /// holds none of the seconds before it.
    pub fn observe(&mut self, now_ns: i64, counts: Counts, rate: f64) -> Option<Change> {
        if counts.rng + counts.hasher + counts.worker == 0 {
            return self.change;
        }
        match (self.last, self.change) {
            (Some((before, _)), _) if before == counts => {}
            // A change seen before the last one settled extends it (the instances of a scale
            // come up over seconds; a class may type two in a row); one back to where it started
            // (an instance missing for a moment, a scale taken back) undoes it.
            (Some(_), Some(open)) if open.rate_after.is_none() => {
                self.change = if open.from == counts {
                    self.previous.take()
                } else {
                    Some(Change {
                        to: counts,
                        at_ns: now_ns,
                        ..open
                    })
                };
            }
            (Some((before, rate_before)), _) => {
                self.previous = self.change;
                self.change = Some(Change {
                    from: before,
                    to: counts,
                    rate_before,
                    rate_after: None,
                    at_ns: now_ns,
                });
            }
            (None, _) => {}
        }
        if let Some(change) = &mut self.change
            && change.to == counts
            && now_ns - change.at_ns >= SETTLE_NS
        {
            change.rate_after = Some(rate);
        }
        self.last = Some((counts, rate));
        self.change
    }
}

/// How long after a change the rate counts as the new one: the figures' window, plus the
/// second or two a point takes to reach InfluxDB.
pub const SETTLE_NS: i64 = (crate::WINDOW_SECONDS + 3) * 1_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(rng: usize, hasher: usize, worker: usize) -> Counts {
        Counts {
            rng,
            hasher,
            worker,
        }
    }

    #[test]
    fn the_seeds_steps_in_order() {
        let path = [
            (counts(1, 1, 1), StepId::OneOfEach, "just scale worker 2"),
            (counts(1, 1, 2), StepId::MoreWorkers, "just scale worker 10"),
            (counts(1, 1, 10), StepId::Plateau, "just scale rng 3"),
            (counts(3, 1, 10), StepId::MoreRngs, "just scale hasher 2"),
        ];
        for (at, id, next) in path {
            let step = step(at, false);
            assert_eq!(step.id, id, "{at:?}");
            assert_eq!(step.next.as_ref().map(|c| c.just.as_str()), Some(next));
        }
        let last = step(counts(3, 2, 10), false);
        assert_eq!(
            (last.id, last.number, last.next),
            (StepId::MoreHashers, 5, None)
        );
        assert!(last.why_next.contains("cluster"));
        assert_eq!(step(counts(0, 1, 1), false).id, StepId::Starting);
        assert_eq!(step(counts(2, 1, 1), false).id, StepId::OffPath);
    }

    #[test]
    fn compose_repeats_every_scaled_stage() {
        let command = Command::scale(counts(1, 1, 10), Stage::Rng, 3);
        assert_eq!(
            command.compose,
            "docker compose up -d --scale worker=10 --scale rng=3"
        );
        assert_eq!(
            command.kubectl,
            "kubectl -n chocominer scale deployment/rng --replicas=3"
        );
        let first = Command::scale(counts(1, 1, 1), Stage::Worker, 2);
        assert_eq!(first.compose, "docker compose up -d --scale worker=2");
    }

    #[test]
    fn discovery_does_not_name_the_bottleneck() {
        for at in [counts(1, 1, 10), counts(3, 1, 10)] {
            let open = step(at, false);
            let hidden = step(at, true);
            assert!(hidden.next.is_none(), "{hidden:?}");
            assert!(!hidden.why_next.contains("rng") && !hidden.why_next.contains("hasher"));
            assert!(hidden.probes.contains(&"chocominer ping rng".to_owned()));
            assert!(open.next.is_some());
        }
    }

    #[test]
    fn the_rate_before_and_after_a_scale() {
        let second = 1_000_000_000;
        let mut change = RateChange::default();
        assert_eq!(change.observe(0, counts(1, 1, 1), 3.3), None);
        assert_eq!(change.observe(second, counts(1, 1, 1), 3.4), None);
        let seen = change.observe(2 * second, counts(1, 1, 2), 3.5).unwrap();
        assert_eq!((seen.rate_before, seen.rate_after), (3.4, None));
        let settled = change
            .observe(2 * second + SETTLE_NS, counts(1, 1, 2), 6.6)
            .unwrap();
        assert_eq!(settled.rate_after, Some(6.6));
        assert_eq!(
            (settled.from, settled.to),
            (counts(1, 1, 1), counts(1, 1, 2))
        );
    }

    #[test]
    fn a_scale_seen_in_steps_is_one_change_and_a_blip_none() {
        let second = 1_000_000_000;
        let mut change = RateChange::default();
        change.observe(0, counts(1, 1, 2), 6.6);
        // `scale worker 10`: the new workers' first points arrive over two refreshes.
        change.observe(second, counts(1, 1, 6), 6.7);
        let seen = change.observe(2 * second, counts(1, 1, 10), 6.8).unwrap();
        assert_eq!((seen.from, seen.to), (counts(1, 1, 2), counts(1, 1, 10)));
        assert_eq!((seen.rate_before, seen.at_ns), (6.6, 2 * second));
        let settled = change.observe(2 * second + SETTLE_NS, counts(1, 1, 10), 10.0);
        assert_eq!(settled.unwrap().rate_after, Some(10.0));
        // A worker's point late for a moment: gone, then back before settling.
        let at = 3 * second + SETTLE_NS;
        assert_eq!(
            change.observe(at, counts(1, 1, 9), 10.0).unwrap().to,
            counts(1, 1, 9)
        );
        assert_eq!(change.observe(at + second, counts(1, 1, 10), 10.0), settled);
    }
}
