//! What the three ChocoMiner stages share: the pipeline's runtime (docs/architecture.md).
//!
//! Each stage (`rng` → `hasher` → `worker` over NATS) is a small binary whose `main` is
//! `chocominer_process::main`, with [`CommonArgs`] flattened into its own `Config`. It takes
//! batches in with an [`Intake`] and hands them on with a [`Sender`], counts what it does in a
//! [`stats::Meter`], and [`runtime::StageRuntime`] starts and closes all of it in order.
//!
//! Modules, in the order a batch meets them: `config`, `profile` (the defaults per
//! [`Profile`]); [`codec`], the wire format; `sender`, `rate` (rng's pacing); `intake`,
//! `transit` (stale batches), `service` (`$SRV`); [`stats`]; [`runtime`].

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
