//! What the three ChocoMiner stages share.
//!
//! The pipeline is `rng` → `hasher` → `worker` over NATS. Each stage is a small binary that
//! parses one [`config`], connects once ([`connection`]), moves [`codec`]-encoded batches
//! between [`subjects`] with a bounded window of unacknowledged requests ([`sender`], [`intake`]),
//! writes one [`stats`] point per second to InfluxDB and stops through one [`shutdown`] token.
//! Everything that is a fact of the pipeline (subject names, message layout, defaults per
//! [`profile`], the nugget rule) lives here once, so the services only hold their own logic.
//! The stats go to InfluxDB through `chocominer-influx`; the front ends read them back with
//! `chocominer-status`.
//! Every long-running binary tells orchestrators whether it is alive and ready through
//! [`health`].

pub mod codec;
pub mod config;
pub mod connection;
pub mod health;
pub mod intake;
pub mod nugget;
pub mod profile;
pub mod rate;
pub mod runtime;
pub mod sender;
pub mod shutdown;
pub mod stats;
pub mod subjects;
pub mod telemetry;
pub mod throttle;

pub use config::CommonArgs;
pub use profile::Profile;
pub use shutdown::Shutdown;
pub use subjects::{Stage, Subjects};
