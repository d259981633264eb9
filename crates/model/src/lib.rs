//! ChocoMiner's model: the facts the stages that write and the read side that checks agree on,
//! each in one place, with no runtime attached.
//!
//! - `subjects`: the three [`Stage`]s, their [`Subjects`] and queue groups, the reply inboxes
//!   ([`inbox_prefix`]);
//! - [`schema`]: every measurement and field the stages write to InfluxDB, each with its kind;
//! - [`nugget`]: the difficulty rule, the nugget record and the checks a reader makes of one.
//!
//! The wire format's types are in `chocominer-codec` (re-exported as [`codec`]); the stages'
//! runtime (sending, taking in, acknowledging batches) is `chocominer-pipeline`, which builds on
//! this crate and re-exports it, so a stage names these through either.

/// The wire format (batch bodies, headers and their limits).
pub use chocominer_codec as codec;
pub mod nugget;
pub mod schema;
mod subjects;

pub use subjects::{DEFAULT_PREFIX, Stage, Subjects, inbox_prefix, is_people_inbox};
