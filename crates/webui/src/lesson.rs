//! The `lesson` object of `/api/summary`: the step of `chocominer_status::lesson` the running
//! stack is at, and what the last scale did to the rate (the server's one `RateChange`).

use chocominer_status::lesson::{self, Change, Counts, SETTLE_NS, Step};
use serde::Serialize;

/// The `lesson` object of `/api/summary`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lesson {
    /// Instances alive per stage, which the step is read from.
    pub counts: Counts,
    /// Where the stack stands and what to try next.
    pub step: Step,
    /// The last change of instances the dashboard saw, with the rate (hashes/s) before and,
    /// once the figures hold only seconds after it, after. `None` until it sees one: the
    /// dashboard remembers nothing across restarts.
    pub change: Option<Change>,
    /// While the rate after is not known yet, when it will be (ms since the epoch): the page
    /// counts down to it rather than show a rate that still mixes before and after.
    pub settles_at_ms: Option<i64>,
}

impl Lesson {
    pub fn new(counts: Counts, change: Option<Change>, discovery: bool) -> Lesson {
        let settles_at_ms = change
            .filter(|c| c.rate_after.is_none())
            .map(|c| (c.at_ns + SETTLE_NS).div_euclid(1_000_000));
        Lesson {
            counts,
            step: lesson::step(counts, discovery),
            change,
            settles_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chocominer_status::lesson::StepId;

    fn counts(rng: usize, hasher: usize, worker: usize) -> Counts {
        Counts {
            rng,
            hasher,
            worker,
        }
    }

    #[test]
    fn settling_until_the_rate_after_is_known() {
        let change = Change {
            from: counts(1, 1, 1),
            to: counts(1, 1, 2),
            rate_before: 3.4,
            rate_after: None,
            at_ns: 5_000_000_000,
        };
        let open = Lesson::new(counts(1, 1, 2), Some(change), false);
        assert_eq!(open.step.id, StepId::MoreWorkers);
        assert_eq!(open.settles_at_ms, Some(5000 + SETTLE_NS / 1_000_000));
        let settled = Change {
            rate_after: Some(6.6),
            ..change
        };
        let done = Lesson::new(counts(1, 1, 2), Some(settled), false);
        assert_eq!(done.settles_at_ms, None);
        assert_eq!(
            Lesson::new(counts(1, 1, 1), None, false).settles_at_ms,
            None
        );
    }

    #[test]
    fn discovery_names_no_stage_to_scale_at_the_plateau() {
        let open = Lesson::new(counts(1, 1, 10), None, false);
        let hidden = Lesson::new(counts(1, 1, 10), None, true);
        assert_eq!(open.step.id, StepId::Plateau);
        assert!(open.step.next.is_some() && hidden.step.next.is_none());
        let json = serde_json::to_string(&hidden).unwrap();
        assert!(!json.contains("just scale"), "{json}");
        assert!(json.contains("chocominer ping rng"), "{json}");
    }
}
