//! What the micro-benchmarks of every crate share (the hasher's include this file by path):
//! criterion set for short runs.

use std::time::Duration;

use criterion::Criterion;

/// Short runs, so that `just bench-micro` takes about a minute on two cores: enough to compare
/// before and after a change, not to publish.
pub fn short_runs() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}
