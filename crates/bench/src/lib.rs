//! `just bench` (the `bench` binary): how fast ChocoMiner goes on this machine, against the
//! targets of issue 11. The parts that need no running pipeline live here, so they can be
//! tested without one:
//!
//! - `limit`: the in-process limit, the stages' own making and hashing on every core;
//! - `machine`: what the figures were measured on;
//! - `model`: the figures of a run ([`model::Bench`], serialized as the JSON result) and the
//!   arithmetic on them (nats-server traffic over a window, demo scaling efficiency);
//! - `targets`: the targets and the judgement of a run against them;
//! - `render`: the Markdown report.
//!
//! The binary (`main.rs`) runs the pipeline: the full profile per encoding (`full.rs`) and the
//! demo profile per number of hashers (`demo.rs`), both with the stage plumbing of `stages.rs`.

pub mod limit;
pub mod machine;
pub mod model;
pub mod render;
pub mod targets;
