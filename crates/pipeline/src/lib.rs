//! What the three ChocoMiner stages share: the pipeline's runtime.
//!
//! The pipeline is `rng` → `hasher` → `worker` over NATS. Each stage is a small binary whose
//! `main` is [`runtime::main`]: one configuration ([`CommonArgs`] flattened into the stage's own
//! `Config`) parsed once, one NATS connection, one [`Shutdown`]. A stage moves batches
//! between the [`Subjects`] of its [`Stage`]: it takes them in with an [`Intake`] and hands them on
//! with a [`Sender`], which keeps a bounded window of unacknowledged requests; it counts what it
//! does in a [`stats::Meter`], written once a second to InfluxDB (through `chocominer-influx`;
//! the front ends read it back with `chocominer-status`).
//!
//! Modules, in the order a batch meets them:
//! - `config`: [`CommonArgs`], [`NatsArgs`], [`HealthArgs`], [`InfluxArgs`], [`parse`];
//!   `profile`: the defaults of every knob per [`Profile`];
//! - `connection`: [`connect`] to NATS (credentials, TLS, waiting for the server), the URLs
//!   [`shown_urls`] with their credentials hidden;
//! - `subjects`: the subject and queue group of each [`Stage`];
//! - [`codec`]: the wire format, every byte that crosses NATS (the `chocominer-codec` crate);
//! - `sender`: [`Sender`], the window of batches handed on and their acknowledgements;
//!   `rate`: [`RateLimiter`], rng's pacing;
//! - `intake`: [`Intake`], the batches taken in from a queue group, each [`Incoming`] answering
//!   itself, judged stale by its time to live and its wait on the way (`transit`); `service`:
//!   the NATS service protocol (`$SRV.PING|INFO|STATS`), on a connection of its own
//!   ([`Connector`]);
//! - [`nugget`]: the difficulty rule and the nugget record;
//! - [`stats`]: counters, one point per second, the writer to InfluxDB;
//! - [`health`]: `/healthz` and `/readyz` for orchestrators, and `--health-check`;
//! - [`runtime`]: everything around a stage's own `run`; `shutdown`: [`Shutdown`], the one stop
//!   signal; `telemetry`: logging set up once ([`init_telemetry`]); `throttle`: log lines that
//!   would repeat, counted instead ([`Throttle`]).

/// The wire format; a crate of its own so that it can be fuzzed without building the rest.
pub use chocominer_codec as codec;
mod config;
mod connection;
pub mod health;
pub mod http;
mod intake;
pub mod nugget;
mod profile;
mod rate;
pub mod runtime;
mod sender;
mod service;
mod shutdown;
pub mod stats;
mod subjects;
mod telemetry;
mod throttle;
mod transit;

pub use config::{
    CommonArgs, ENV_HELP, HealthArgs, InfluxArgs, NATS_PAYLOAD_LIMIT, NatsArgs, SettingError,
    parse, parse_with,
};
pub use connection::{Connector, connect, round_trip, shown_urls};
pub use intake::{
    EXTRA_PLACES, Incoming, Intake, IntakeConfig, IntakeStats, NATS_SERVICE_ERROR,
    NATS_SERVICE_ERROR_CODE, STOP_FENCE,
};
pub use profile::{NumberEncoding, Profile};
pub use rate::RateLimiter;
pub use sender::{LATE_GRACE, NoConsumer, Sender, SenderConfig, SenderStats, Slot, Stopped};
pub use shutdown::Shutdown;
pub use subjects::{Stage, Subjects, inbox_prefix};
pub use telemetry::init as init_telemetry;
pub use throttle::Throttle;
