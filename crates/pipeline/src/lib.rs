//! What the three ChocoMiner stages share: the pipeline's runtime (docs/architecture.md).
//!
//! Each stage (`rng` → `hasher` → `worker` over NATS) is a small binary whose `main` is
//! `chocominer_process::main`, with [`CommonArgs`] flattened into its own `Config`. It takes
//! batches in with an [`Intake`] and hands them on with a [`Sender`], counts what it does in a
//! [`stats::Meter`], and [`runtime::StageRuntime`] starts and closes all of it in order.
//!
//! Modules, in the order a batch meets them: `config`, `profile` (the defaults per
//! [`Profile`]); `sender`, `rate` (rng's pacing); `intake`, `transit` (stale batches), `service`
//! (`$SRV`); [`stats`]; [`runtime`]. The wire format is `chocominer_codec`.

mod config;
mod intake;
mod profile;
mod rate;
pub mod runtime;
mod sender;
mod service;
pub mod stats;
mod transit;

pub use config::CommonArgs;
pub use intake::{EXTRA_SUBSCRIPTIONS, Incoming, Intake, IntakeConfig, IntakeStats, STOP_FENCE};
pub use profile::Profile;
pub use rate::RateLimiter;
pub use sender::{Credit, LATE_GRACE, NoConsumer, Sender, SenderConfig, SenderStats, Stopped};
