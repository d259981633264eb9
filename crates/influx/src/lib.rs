//! InfluxDB 1.x as ChocoMiner uses it: the stages write one stats point per second, the front
//! ends (`chocominer status`, the dashboard) and the tests read them back. [`InfluxArgs`] says
//! where InfluxDB is and who we are to it, [`Client`] talks to one database of it, and
//! [`credentials`] keeps what is written in a URL (InfluxDB's or NATS's) out of sight.

mod args;
mod client;
pub mod credentials;
/// The stats schema, from `chocominer-model` (the read side names it there).
pub use chocominer_model::schema;

pub use args::{InfluxArgs, Secret, password_file, read_password_file};
pub use client::{Client, QueryError, Row, WriteError};
pub use credentials::redact as redact_url;
