//! Subject names and queue groups: the one place that says where batches flow.
//!
//! With the default prefix `chocominer`:
//! - `chocominer.numbers`: rng → hasher (queue group `hasher`);
//! - `chocominer.digests`: hasher → worker (queue group `worker`);
//! - `chocominer.nuggets`: one JSON object per nugget, for people and tools watching.

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

    /// The subject a stage consumes, if it consumes one (rng only produces).
    pub fn input_of(&self, stage: Stage) -> Option<&str> {
        match stage {
            Stage::Rng => None,
            Stage::Hasher => Some(&self.numbers),
            Stage::Worker => Some(&self.digests),
        }
    }
}

impl Subjects {
    /// The subject a stage hands its batches on to, and the stage that takes them there, if
    /// it hands any on (the worker only publishes nuggets, for people and tools).
    pub fn output_of(&self, stage: Stage) -> Option<(&str, Stage)> {
        match stage {
            Stage::Rng => Some((&self.numbers, Stage::Hasher)),
            Stage::Hasher => Some((&self.digests, Stage::Worker)),
            Stage::Worker => None,
        }
    }
}

impl Default for Subjects {
    fn default() -> Self {
        Subjects::new(DEFAULT_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_prefix() {
        let s = Subjects::new("demo");
        assert_eq!(s.numbers, "demo.numbers");
        assert_eq!(s.input_of(Stage::Worker), Some("demo.digests"));
        assert_eq!(s.input_of(Stage::Rng), None);
        assert_eq!(
            s.output_of(Stage::Rng),
            Some(("demo.numbers", Stage::Hasher))
        );
        assert_eq!(s.output_of(Stage::Worker), None);
        assert_eq!(Stage::Hasher.queue_group(), "hasher");
    }
}
