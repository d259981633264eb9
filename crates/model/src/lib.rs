//! ChocoMiner's model, the facts the stages and the read side agree on, each in one place and
//! with no runtime attached: the [`Stage`]s, their [`Subjects`] and reply inboxes, the stats
//! [`schema`], the [`nugget`] rule and record, and the wire format ([`codec`]).

pub use chocominer_codec as codec;
pub mod nugget;
pub mod schema;
mod subjects;

pub use subjects::{DEFAULT_PREFIX, Stage, Subjects, inbox_prefix, is_people_inbox};
