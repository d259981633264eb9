//! Wall-clock times: local `HH:MM:SS.mmm` on screen, RFC 3339 in UTC in JSON. The local offset
//! can only be read while the process has one thread, so `main` calls [`init`] first.

use std::sync::OnceLock;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

static LOCAL_OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Reads the local UTC offset; call before any other thread starts.
pub fn init() {
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(offset);
}

fn at(ns: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn local(ns: i64) -> OffsetDateTime {
    at(ns).to_offset(LOCAL_OFFSET.get().copied().unwrap_or(UtcOffset::UTC))
}

/// `HH:MM:SS.mmm` in local time, for the screen.
pub fn time_of_day(ns: i64) -> String {
    let format = format_description!("[hour]:[minute]:[second].[subsecond digits:3]");
    local(ns).format(format).unwrap_or_else(|_| ns.to_string())
}

/// `HH:MM:SS` in local time, for whole seconds on the screen.
pub fn second_of_day(ns: i64) -> String {
    let format = format_description!("[hour]:[minute]:[second]");
    local(ns).format(format).unwrap_or_else(|_| ns.to_string())
}

/// RFC 3339 in UTC, for JSON.
pub fn rfc3339(ns: i64) -> String {
    at(ns).format(&Rfc3339).unwrap_or_else(|_| ns.to_string())
}

/// Serializes nanoseconds since the epoch as [`rfc3339`] (for `#[serde(serialize_with)]`).
pub fn as_rfc3339<S: serde::Serializer>(ns: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        let ns = 1_700_000_000_123_456_789;
        assert_eq!(rfc3339(ns), "2023-11-14T22:13:20.123456789Z");
        assert!(time_of_day(ns).ends_with(":20.123"), "{}", time_of_day(ns));
        assert!(second_of_day(ns).ends_with(":20"), "{}", second_of_day(ns));
    }
}
