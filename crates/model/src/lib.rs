//! ChocoMiner's model: the facts the stages that write and the read side that checks agree on,
//! each in one place, with no runtime attached: the [`Stage`]s, their [`Subjects`] and reply
//! inboxes, the stats [`schema`], the [`nugget`] rule and record. The wire format is
//! `chocominer-codec` ([`codec`]); the stages' runtime, `chocominer-pipeline`, re-exports this.

pub use chocominer_codec as codec;
pub mod nugget;
pub mod schema;
mod subjects;

pub use subjects::{DEFAULT_PREFIX, Stage, Subjects, inbox_prefix, is_people_inbox};
