//! Subject names and queue groups: the one place that says where batches flow.
//!
//! With the default prefix `chocominer`:
//! - `chocominer.numbers`: rng → hasher (queue group `hasher`);
//! - `chocominer.digests`: hasher → worker (queue group `worker`);
//! - `chocominer.nuggets`: one JSON object per nugget, for people and tools watching;
//! - `_INBOX.<user>.…`: the replies to the requests of NATS user `<user>` ([`inbox_prefix`]).

use std::fmt;

/// A stage of the pipeline. Its name is also its NATS service name and queue group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Rng,
    Hasher,
    Worker,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Rng, Stage::Hasher, Stage::Worker];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Rng => "rng",
            Stage::Hasher => "hasher",
            Stage::Worker => "worker",
        }
    }

    /// The queue group in which replicas of this stage share their input subject.
    pub fn queue_group(self) -> &'static str {
        self.name()
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The subjects of one pipeline, derived from a prefix so several pipelines can share a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    pub numbers: String,
    pub digests: String,
    pub nuggets: String,
}

pub const DEFAULT_PREFIX: &str = "chocominer";

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        Subjects {
            numbers: format!("{prefix}.numbers"),
            digests: format!("{prefix}.digests"),
            nuggets: format!("{prefix}.nuggets"),
        }
    }

    /// The subject a stage hands its batches on to and the stage taking them (none for the worker).
    pub fn output_of(&self, stage: Stage) -> Option<(&str, Stage)> {
        match stage {
            Stage::Rng => Some((&self.numbers, Stage::Hasher)),
            Stage::Hasher => Some((&self.digests, Stage::Worker)),
            Stage::Worker => None,
        }
    }
}

/// The first token of every reply inbox.
const INBOX: &str = "_INBOX";

/// The prefix of the reply inboxes of NATS user `user`: `_INBOX.<user>`. The server lets each
/// user read only its own (nats/nats-server.conf), so no other role sees a stage's replies.
pub fn inbox_prefix(user: &str) -> String {
    format!("{INBOX}.{user}")
}

/// Whether `subject` is a reply inbox of someone watching or asking, not of a stage: the stages
/// run as NATS users named after them, their inboxes `_INBOX.<stage>.…`.
pub fn is_people_inbox(subject: &str) -> bool {
    let Some(rest) = subject
        .strip_prefix(INBOX)
        .and_then(|rest| rest.strip_prefix('.'))
    else {
        return false;
    };
    let user = rest.split('.').next().unwrap_or_default();
    !Stage::ALL.iter().any(|stage| stage.name() == user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_prefix() {
        let s = Subjects::new("demo");
        assert_eq!(s.numbers, "demo.numbers");
        assert_eq!(
            s.output_of(Stage::Rng),
            Some(("demo.numbers", Stage::Hasher))
        );
        assert_eq!(s.output_of(Stage::Worker), None);
        assert_eq!(Stage::Hasher.queue_group(), "hasher");
        assert_eq!(inbox_prefix("rng"), "_INBOX.rng");
    }

    #[test]
    fn people_inboxes_are_inboxes_of_anyone_but_a_stage() {
        for answered in [
            "_INBOX.cli.x.1",
            "_INBOX.debug.a",
            "_INBOX.abcdef.1",
            "_INBOX.rngs.1",
        ] {
            assert!(is_people_inbox(answered), "{answered}");
        }
        for refused in [
            "_INBOX.rng.abc.17",
            "_INBOX.hasher.x",
            "_INBOX.worker.x.y",
            "chocominer.nuggets",
            "chocominer.numbers",
            "_INBOXrng",
            "_INBOX",
            "",
        ] {
            assert!(!is_people_inbox(refused), "{refused}");
        }
    }
}
