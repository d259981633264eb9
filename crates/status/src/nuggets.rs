//! The nugget records read back from InfluxDB, checked before anything lists them: whoever
//! holds its `writer` role can write a record no hash made. A record is listed only when it is
//! as a worker writes it ([`check_record`]), stamped at most [`CLOCK_SKEW_ALLOWED`] ahead and
//! the first with its digest; the others are counted by why ([`Refused`]). A writer that hashes
//! numbers itself still writes records that pass.

use std::collections::BTreeSet;

use chocominer_influx::Row;
use chocominer_model::nugget::{Unsound, check_record};
use chocominer_model::schema::{INSTANCE, NUGGET, nugget};
use serde::Serialize;
use serde_json::Value;

use crate::CLOCK_SKEW_ALLOWED;

/// One nugget record that passed every check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub time_ms: i64,
    /// Lowercase hex, 64 digits each.
    pub number: String,
    pub digest: String,
    pub zero_bits: i64,
    /// The worker it names (anyone's text: shown escaped).
    pub instance: String,
}

/// Why a record was not listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    Future,
    Malformed,
    NotItsDigest,
    WrongZeroBits,
    Copy,
}

impl From<Unsound> for Refusal {
    fn from(unsound: Unsound) -> Refusal {
        match unsound {
            Unsound::Malformed => Refusal::Malformed,
            Unsound::NotItsDigest => Refusal::NotItsDigest,
            Unsound::WrongZeroBits => Refusal::WrongZeroBits,
        }
    }
}

impl Refusal {
    /// In a few words, after a count ("3 nugget records refused: 2 stamped in the future").
    pub fn what(self) -> &'static str {
        match self {
            Refusal::Future => "stamped in the future",
            Refusal::Malformed => "number or digest not 64 lowercase hex digits",
            Refusal::NotItsDigest => "digest not SHA-256 of the number",
            Refusal::WrongZeroBits => "zero bits not the digest's",
            Refusal::Copy => "a copy of an earlier record",
        }
    }
}

/// How many records were refused, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Refused {
    pub count: u64,
    /// The reasons met, each once, in [`Refusal`] order.
    pub reasons: Vec<RefusedFor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedFor {
    pub reason: Refusal,
    /// [`Refusal::what`].
    pub what: &'static str,
    pub count: u64,
}

impl Refused {
    fn add(&mut self, reason: Refusal, count: u64) {
        if count == 0 {
            return;
        }
        self.count += count;
        match self.reasons.iter_mut().find(|r| r.reason == reason) {
            Some(r) => r.count += count,
            None => {
                self.reasons.push(RefusedFor {
                    reason,
                    what: reason.what(),
                    count,
                });
                self.reasons.sort_by_key(|r| r.reason);
            }
        }
    }

    /// `3 nugget records refused: 2 stamped in the future, 1 a copy of an earlier record`;
    /// `None` when none was.
    pub fn sentence(&self) -> Option<String> {
        let reason = |r: &RefusedFor| format!("{} {}", r.count, r.what);
        let reasons: Vec<String> = self.reasons.iter().map(reason).collect();
        let records = if self.count == 1 { "record" } else { "records" };
        let (count, reasons) = (self.count, reasons.join(", "));
        (count > 0).then(|| format!("{count} nugget {records} refused: {reasons}"))
    }
}

/// The records to list, newest first, and what was refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub listed: Vec<Record>,
    pub refused: Refused,
}

/// The statements [`check`] reads, for a reader whose clock says `now_ms`: the newest `read`
/// records stamped up to [`CLOCK_SKEW_ALLOWED`] ahead of it, newest first (a record stamped in
/// 2100 would otherwise stay first and push real ones out), and how many are stamped later.
pub fn statements(read: usize, now_ms: i64) -> [String; 2] {
    let bound_ms = latest_ms(now_ms);
    let (n, number, digest, zero_bits) = (
        NUGGET.name(),
        nugget::NUMBER.name(),
        nugget::DIGEST.name(),
        nugget::ZERO_BITS.name(),
    );
    [
        format!(
            r#"SELECT "{number}", "{digest}", "{zero_bits}", "{INSTANCE}" FROM "{n}" WHERE time <= {bound_ms}ms ORDER BY time DESC LIMIT {read}"#
        ),
        format!(r#"SELECT count("{digest}") AS records FROM "{n}" WHERE time > {bound_ms}ms"#),
    ]
}

/// The latest time a record may bear, for a reader whose clock says `now_ms`.
fn latest_ms(now_ms: i64) -> i64 {
    now_ms + CLOCK_SKEW_ALLOWED.as_millis() as i64
}

/// Checks the rows of [`statements`] (times in milliseconds): `rows` the newest records,
/// `ahead` the count of later ones. Lists at most `listed` records, newest first.
pub fn check(rows: &[Row], ahead: &[Row], now_ms: i64, listed: usize) -> Checked {
    let mut refused = Refused::default();
    let later = ahead
        .first()
        .and_then(|row| row.get("records")?.as_u64())
        .unwrap_or(0);
    refused.add(Refusal::Future, later);
    let mut sound = Vec::new();
    for row in rows {
        match record(row, now_ms) {
            Ok(record) => sound.push(record),
            Err(reason) => refused.add(reason, 1),
        }
    }
    // The first time a digest was seen is its record; later ones are copies.
    sound.sort_by_key(|r| r.time_ms);
    let mut seen = BTreeSet::new();
    let mut copies = 0;
    sound.retain(|r| {
        let first = seen.insert(r.digest.clone());
        copies += u64::from(!first);
        first
    });
    refused.add(Refusal::Copy, copies);
    sound.reverse();
    sound.truncate(listed);
    Checked {
        listed: sound,
        refused,
    }
}

/// The record of `row`, or why it is refused.
fn record(row: &Row, now_ms: i64) -> Result<Record, Refusal> {
    let time_ms = row
        .get("time")
        .and_then(Value::as_i64)
        .ok_or(Refusal::Malformed)?;
    if time_ms > latest_ms(now_ms) {
        return Err(Refusal::Future);
    }
    let text = |column: &str| row.get(column).and_then(Value::as_str).unwrap_or_default();
    let (number, digest) = (text(nugget::NUMBER.name()), text(nugget::DIGEST.name()));
    let zero_bits = row
        .get(nugget::ZERO_BITS.name())
        .and_then(Value::as_i64)
        .ok_or(Refusal::WrongZeroBits)?;
    check_record(number, digest, zero_bits)?;
    Ok(Record {
        time_ms,
        number: number.to_owned(),
        digest: digest.to_owned(),
        zero_bits,
        instance: text(INSTANCE).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chocominer_model::nugget::record_of;
    use serde_json::json;

    const NOW_MS: i64 = 1_700_000_000_000;

    /// A record that passes: `seed` repeated 32 times as the number, at `time_ms`.
    fn real(seed: u8, time_ms: i64) -> Row {
        let (digest, zero_bits) = record_of(&[seed; 32]);
        let number = format!("{seed:02x}").repeat(32);
        row(&number, &digest, i64::from(zero_bits), time_ms)
    }

    fn row(number: &str, digest: &str, zero_bits: i64, time_ms: i64) -> Row {
        json!({"time": time_ms, "number": number, "digest": digest,
            "zero_bits": zero_bits, "instance": "worker-1"})
        .as_object()
        .unwrap()
        .clone()
    }

    fn field(row: &Row, column: &str) -> String {
        row[column].as_str().unwrap().to_owned()
    }

    #[test]
    fn lists_real_records_newest_first() {
        let rows = [real(1, NOW_MS - 1000), real(2, NOW_MS - 2000)];
        let checked = check(&rows, &[], NOW_MS, 10);
        assert_eq!(checked.refused, Refused::default());
        assert_eq!(checked.refused.sentence(), None);
        let digests: Vec<&str> = checked.listed.iter().map(|r| r.digest.as_str()).collect();
        assert_eq!(
            digests,
            [field(&rows[0], "digest"), field(&rows[1], "digest")]
        );
        assert_eq!(checked.listed[0].instance, "worker-1");
        assert_eq!(check(&rows, &[], NOW_MS, 1).listed.len(), 1);
    }

    #[test]
    fn refuses_what_no_worker_wrote_and_says_why() {
        let genuine = real(3, NOW_MS - 5000);
        let (number, digest) = (field(&genuine, "number"), field(&genuine, "digest"));
        let zero_bits = genuine["zero_bits"].as_i64().unwrap();
        assert_ne!(digest, digest.to_uppercase());
        let all_zero = "0".repeat(64);
        let rows = [
            // All-zero digest stamped in 2100, and one just past the allowance.
            row(&number, &all_zero, 256, 4_102_444_800_000),
            real(4, latest_ms(NOW_MS) + 1),
            // Not SHA-256 of its number, though shaped like a nugget.
            row(&number, &all_zero, 256, NOW_MS - 1000),
            // The right digest, the wrong zero bits, or none.
            row(&number, &digest, zero_bits + 1, NOW_MS - 2000),
            row(&number, &digest, 0, NOW_MS - 2000)
                .into_iter()
                .filter(|(k, _)| k != "zero_bits")
                .collect(),
            // Uppercase, short, missing.
            row(&number, &digest.to_uppercase(), zero_bits, NOW_MS - 3000),
            row(&number[..62], &digest, zero_bits, NOW_MS - 3000),
            row("", &digest, zero_bits, NOW_MS - 3000),
            // A copy, later than the real one: the real one is listed.
            row(&number, &digest, zero_bits, NOW_MS - 100),
            genuine.clone(),
            // Within the allowance: a clock a little ahead.
            real(5, latest_ms(NOW_MS)),
        ];
        let ahead = [json!({"time": 0, "records": 2})
            .as_object()
            .unwrap()
            .clone()];
        let checked = check(&rows, &ahead, NOW_MS, 10);
        let listed: Vec<(&str, i64)> = checked
            .listed
            .iter()
            .map(|r| (r.digest.as_str(), r.time_ms))
            .collect();
        let fifth = field(&real(5, 0), "digest");
        assert_eq!(
            listed,
            [
                (fifth.as_str(), latest_ms(NOW_MS)),
                (digest.as_str(), NOW_MS - 5000)
            ]
        );
        let counts: Vec<(Refusal, u64)> = checked
            .refused
            .reasons
            .iter()
            .map(|r| (r.reason, r.count))
            .collect();
        assert_eq!(
            counts,
            [
                (Refusal::Future, 4),
                (Refusal::Malformed, 3),
                (Refusal::NotItsDigest, 1),
                (Refusal::WrongZeroBits, 2),
                (Refusal::Copy, 1),
            ]
        );
        assert_eq!(checked.refused.count, 11);
        assert_eq!(
            checked.refused.sentence().unwrap(),
            "11 nugget records refused: 4 stamped in the future, 3 number or digest not 64 \
             lowercase hex digits, 1 digest not SHA-256 of the number, 2 zero bits not the \
             digest's, 1 a copy of an earlier record"
        );
        let json = serde_json::to_value(&checked.refused).unwrap();
        assert_eq!(json["reasons"][4]["reason"], "copy");
    }

    #[test]
    fn statements_bound_the_time_and_name_only_the_schema() {
        let [latest, later] = statements(100, NOW_MS);
        let bound = NOW_MS + CLOCK_SKEW_ALLOWED.as_millis() as i64;
        assert!(
            latest.contains(&format!(
                "WHERE time <= {bound}ms ORDER BY time DESC LIMIT 100"
            )),
            "{latest}"
        );
        assert!(
            later.ends_with(&format!("WHERE time > {bound}ms")),
            "{later}"
        );
        for statement in [latest, later] {
            assert_eq!(
                chocominer_model::schema::unknown_names(&statement),
                Vec::<String>::new(),
                "{statement}"
            );
        }
    }
}
