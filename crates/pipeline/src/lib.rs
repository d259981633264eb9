//! What the three ChocoMiner stages share: the pipeline's runtime.
//!
//! The pipeline is `rng` → `hasher` → `worker` over NATS. Each stage is a small binary whose
//! `main` is `chocominer_process::main` (what every process does: one configuration parsed
//! once, one NATS connection, one [`Shutdown`], logging, health endpoints), with
//! [`CommonArgs`] flattened into the stage's own `Config`. A stage moves batches
//! between the [`Subjects`] of its [`Stage`]: it takes them in with an [`Intake`] and hands them on
//! with a [`Sender`], which keeps a bounded window of unacknowledged requests; it counts what it
//! does in a [`stats::Meter`], written once a second to InfluxDB (through `chocominer-influx`;
//! the front ends read it back with `chocominer-status`).
//!
//! Modules, in the order a batch meets them:
//! - `config`: [`CommonArgs`], built of `chocominer-process`'s [`NatsArgs`], [`HealthArgs`],
//!   [`InfluxArgs`]; `profile`: the defaults of every knob per [`Profile`];
//! - [`Stage`], [`Subjects`]: the subject and queue group of each stage, from
//!   `chocominer-model` (shared with the read side, as are [`nugget`] and [`stats::schema`]);
//! - [`codec`]: the wire format, every byte that crosses NATS (the `chocominer-codec` crate);
//! - `sender`: [`Sender`], the window of batches handed on and their acknowledgements;
//!   `rate`: [`RateLimiter`], rng's pacing;
//! - `intake`: [`Intake`], the batches taken in from a queue group, each [`Incoming`] answering
//!   itself, judged stale by its time to live and its wait on the way (`transit`); `service`:
//!   the NATS service protocol (`$SRV.PING|INFO|STATS`), on a connection of its own
//!   ([`Connector`]);
//! - [`nugget`]: the difficulty rule and the nugget record (`chocominer-model`);
//! - [`stats`]: counters, one point per second, the writer to InfluxDB;
//! - [`runtime`]: [`StageRuntime`](runtime::StageRuntime), what a stage's `run` needs from the
//!   outside world, started and closed in order.

/// The wire format; a crate of its own so that it can be fuzzed without building the rest.
pub use chocominer_codec as codec;
/// The nugget rule and record, from the model crate the read side uses too.
pub use chocominer_model::nugget;
mod config;
mod intake;
mod profile;
mod rate;
pub mod runtime;
mod sender;
mod service;
pub mod stats;
mod transit;

pub use chocominer_model::{Stage, Subjects, inbox_prefix};
/// What every process shares, stages or not, re-exported for the stages' convenience.
pub use chocominer_process::{
    Connector, ENV_HELP, HealthArgs, InfluxArgs, NATS_PAYLOAD_LIMIT, NatsArgs, SettingError,
    Shutdown, Throttle, connect, health, http, init_telemetry, parse, round_trip, shown_urls,
};
pub use config::CommonArgs;
pub use intake::{
    EXTRA_SUBSCRIPTIONS, Incoming, Intake, IntakeConfig, IntakeStats, NATS_SERVICE_ERROR,
    NATS_SERVICE_ERROR_CODE, STOP_FENCE,
};
pub use profile::{NumberEncoding, Profile};
pub use rate::RateLimiter;
pub use sender::{Credit, LATE_GRACE, NoConsumer, Sender, SenderConfig, SenderStats, Stopped};
