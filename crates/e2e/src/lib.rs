//! End-to-end tests of ChocoMiner: the whole pipeline (`rng` → `hasher` → `worker`) against a
//! real `nats-server` and a real `influxd`, started per test by `testkit`.
//!
//! This library is empty on purpose; the tests live in `tests/` (`pipeline.rs`: the happy path,
//! conservation of numbers, queue groups and scaling; `faults.rs`: a hasher killed with SIGKILL
//! and garbage on every subject; `influx_outage.rs`: stats and nugget records across a 30 s
//! InfluxDB outage and at shutdown; `memory.rs`: resident memory behind a slow worker and under a
//! flood of junk; `scale_to_zero.rs`: a stage scaled to zero and back; `health.rs`: the health
//! endpoints and probe; `chronograf.rs`: the Chronograf dashboard's files and queries). They
//! start the pipeline with `testkit::Stack`; what only they need (a digest counter, checks of
//! the worker's points) is in `tests/common/mod.rs`. Run them with `cargo test -p e2e`.
