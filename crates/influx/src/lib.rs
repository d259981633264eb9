//! InfluxDB 1.x as ChocoMiner uses it: the stages write one stats point per second, the front
//! ends (`chocominer status`, the dashboard) and the tests read them back.
//!
//! - [`InfluxArgs`]: where InfluxDB is and who we are to it (`INFLUX_URL`, `INFLUX_DB`, ...),
//!   flattened into every binary's configuration.
//! - [`Client`]: the one HTTP client of one database: [`Client::write`] line protocol,
//!   [`Client::query`] InfluxQL, [`Client::create_database`]. Its errors say in one line whether
//!   InfluxDB could not be reached, refused, or is not InfluxDB 1.x.
//! - [`schema`]: every measurement and field the stages write, each field with its kind
//!   (count per second, gauge, event): the one spelling of the stats contract for the writers,
//!   the readers and the tests of every query.
//! - [`credentials`]: credentials written in a URL, split out of it to connect and hidden
//!   wherever it is shown ([`redact_url`]); the NATS URLs go through it too.

mod args;
mod client;
pub mod credentials;
/// The stats schema, from `chocominer-model` (the read side names it there).
pub use chocominer_model::schema;

pub use args::{DEFAULT_INFLUX_DB, DEFAULT_INFLUX_URL, InfluxArgs, Secret, read_password_file};
pub use client::{Client, QueryError, REQUEST_TIMEOUT, Row, WriteError};
pub use credentials::redact as redact_url;
