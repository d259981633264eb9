//! What the recorder lets through: each line checked against the stats schema (measurement, the
//! one `instance` tag, field types and ranges, nugget records a hash made, a time given and not
//! more than [`AHEAD_ALLOWED`] ahead). A request passes whole or not at all.

use std::time::Duration;

use chocominer_influx::schema::{self, INSTANCE, Kind, Type};
use chocominer_model::nugget;
use influxdb_line_protocol::{FieldValue, parse_lines};

/// How far ahead of the recorder's clock a point may be stamped: the stages stamp points with
/// their own clocks, which the figures already need within a couple of seconds.
pub const AHEAD_ALLOWED: Duration = Duration::from_secs(10);

/// Why a request was refused: its first line that failed, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct Refused {
    pub line: usize,
    pub why: String,
}

/// Checks every line of `body` (nanosecond timestamps) against the schema at `now_ns`;
/// returns how many points it holds.
pub fn check(body: &str, now_ns: i64) -> Result<usize, Refused> {
    let ahead = i64::try_from(AHEAD_ALLOWED.as_nanos()).unwrap_or(i64::MAX);
    let mut points = 0;
    for (index, parsed) in parse_lines(body).enumerate() {
        let refuse = |why: String| Refused {
            line: index + 1,
            why,
        };
        let line = parsed.map_err(|e| refuse(format!("not line protocol: {e}")))?;
        let name = line.series.measurement.as_str();
        let measurement = schema::MEASUREMENTS
            .iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| refuse(format!("measurement {name:?} is none of ours")))?;
        let tags = line.series.tag_set.as_deref().unwrap_or_default();
        if tags.len() != 1 || tags[0].0.as_str() != INSTANCE {
            return Err(refuse(format!("tags other than one {INSTANCE:?}")));
        }
        let time = line
            .timestamp
            .ok_or_else(|| refuse("no time: a stage stamps every point".into()))?;
        if time > now_ns.saturating_add(ahead) {
            return Err(refuse(format!("stamped more than {AHEAD_ALLOWED:?} ahead")));
        }
        for (field, value) in &line.field_set {
            let field_name = field.as_str();
            let known = measurement
                .field(field_name)
                .ok_or_else(|| refuse(format!("{name} has no field {field_name:?}")))?;
            let number = match (known.ty(), value) {
                (Type::Integer, FieldValue::I64(v)) => Some(*v as f64),
                (Type::Float, FieldValue::F64(v)) => Some(*v),
                (Type::String, FieldValue::String(_)) => None,
                _ => {
                    return Err(refuse(format!(
                        "{name}.{field_name} is not a {}",
                        known.ty().name()
                    )));
                }
            };
            if let Some(value) = number
                && known.kind() != Kind::Event
                && !(value >= 0.0 && value <= known.most())
            {
                return Err(refuse(format!(
                    "{name}.{field_name} = {value}: out of range"
                )));
            }
        }
        if std::ptr::eq(*measurement, &schema::NUGGET) {
            let field = |name: &str| line.field_set.iter().find(|(f, _)| f.as_str() == name);
            let (
                Some((_, FieldValue::String(number))),
                Some((_, FieldValue::String(digest))),
                Some((_, FieldValue::I64(zero_bits))),
            ) = (
                field(schema::nugget::NUMBER.name()),
                field(schema::nugget::DIGEST.name()),
                field(schema::nugget::ZERO_BITS.name()),
            )
            else {
                return Err(refuse(
                    "a nugget record without its number, digest or zero bits".into(),
                ));
            };
            nugget::check_record(number, digest, *zero_bits)
                .map_err(|unsound| refuse(format!("a nugget no hash made: {unsound:?}")))?;
        }
        points += 1;
    }
    Ok(points)
}
