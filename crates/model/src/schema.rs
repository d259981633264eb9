//! The stats contract: every measurement ChocoMiner writes to InfluxDB, its fields and what kind
//! of figure each is ([`Kind`]). Stages write and readers read through these names; tests hold
//! the Chronograf dashboard, docs/schema.md, every query (`unknown_names`, for tests only) and
//! what a real run writes against them: a renamed field breaks the build or a test, not a chart.

use std::collections::BTreeSet;

#[cfg(any(test, feature = "query-check"))]
mod names;
#[cfg(any(test, feature = "query-check"))]
pub use names::unknown_names;

/// The tag of every point: the instance that wrote it.
pub const INSTANCE: &str = "instance";

/// What a field's value is, and so how a reader may combine values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// How many things happened in the point's period (one second; the last, partial second
    /// before a stop is shorter): summed over points, and over seconds into rates.
    Count,
    /// The value at the point's time: averaged over time, never summed over seconds.
    Gauge,
    /// Part of the record of one event (a nugget): read as it is.
    Event,
}

/// A field's type in InfluxDB. A series keeps the type it was first written with and refuses
/// points of another, so a field never changes type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Integer,
    Float,
    String,
}

impl Type {
    /// The name `SHOW FIELD KEYS` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Type::Integer => "integer",
            Type::Float => "float",
            Type::String => "string",
        }
    }
}

/// One field of a measurement, whatever its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    name: &'static str,
    kind: Kind,
    ty: Type,
    /// What it holds, in a few words (docs/schema.md's table).
    meaning: &'static str,
}

impl Field {
    const fn new(name: &'static str, kind: Kind, ty: Type, meaning: &'static str) -> Field {
        Field {
            name,
            kind,
            ty,
            meaning,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn ty(&self) -> Type {
        self.ty
    }

    /// The largest value a stage writes in it: a share (`busy`) at most 1, the difficulty at
    /// most a digest's 256 bits, anything else unbounded.
    pub fn most(&self) -> f64 {
        if [hasher::BUSY.field(), worker::BUSY.field()].contains(self) {
            1.0
        } else if *self == worker::DIFFICULTY.field() {
            f64::from(crate::nugget::MAX_ZERO_BITS)
        } else {
            f64::INFINITY
        }
    }

    fn value(self, value: Value) -> FieldValue {
        FieldValue { field: self, value }
    }
}

/// A count per period: always an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(Field);

impl Count {
    const fn new(name: &'static str, meaning: &'static str) -> Count {
        Count(Field::new(name, Kind::Count, Type::Integer, meaning))
    }

    pub fn of(&self, n: u64) -> FieldValue {
        self.0.value(Number::from(n).as_type(Type::Integer))
    }
}

/// A gauge: an integer or a float, as the schema declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauge(Field);

impl Gauge {
    const fn integer(name: &'static str, meaning: &'static str) -> Gauge {
        Gauge(Field::new(name, Kind::Gauge, Type::Integer, meaning))
    }

    const fn float(name: &'static str, meaning: &'static str) -> Gauge {
        Gauge(Field::new(name, Kind::Gauge, Type::Float, meaning))
    }

    pub fn at(&self, value: impl Into<Number>) -> FieldValue {
        self.0.value(value.into().as_type(self.0.ty))
    }
}

/// A number that describes one event, written as the type the schema declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event(Field);

impl Event {
    const fn integer(name: &'static str, meaning: &'static str) -> Event {
        Event(Field::new(name, Kind::Event, Type::Integer, meaning))
    }

    pub fn of(&self, value: impl Into<Number>) -> FieldValue {
        self.0.value(value.into().as_type(self.0.ty))
    }
}

/// A string that describes one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text(Field);

impl Text {
    const fn new(name: &'static str, meaning: &'static str) -> Text {
        Text(Field::new(name, Kind::Event, Type::String, meaning))
    }

    pub fn of(&self, text: impl Into<String>) -> FieldValue {
        self.0.value(Value::String(text.into()))
    }
}

// Readers take any field by its description (`StatsPoint::get(hasher::BUSY)`), writers only
// through the typed constructors above.
macro_rules! describes_a_field {
    ($($typed:ty),*) => {$(
        impl $typed {
            pub const fn field(&self) -> Field {
                self.0
            }

            pub fn name(&self) -> &'static str {
                self.0.name
            }
        }

        impl AsRef<Field> for $typed {
            fn as_ref(&self) -> &Field {
                &self.0
            }
        }
    )*};
}
describes_a_field!(Count, Gauge, Event, Text);

/// A number handed to a [`Gauge`] or an [`Event`], before it takes the field's type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Integer(i64),
    Float(f64),
}

impl Number {
    fn as_type(self, ty: Type) -> Value {
        match (self, ty) {
            (Number::Integer(v), Type::Float) => Value::Float(v as f64),
            (Number::Float(v), Type::Integer) => Value::Integer(v.round() as i64),
            (Number::Integer(v), _) => Value::Integer(v),
            (Number::Float(v), _) => Value::Float(v),
        }
    }
}

impl From<f64> for Number {
    fn from(v: f64) -> Number {
        Number::Float(v)
    }
}

// Integers past i64 (none a stage writes) are written as the largest.
macro_rules! integer_numbers {
    ($($integer:ty),*) => {$(
        impl From<$integer> for Number {
            fn from(v: $integer) -> Number {
                Number::Integer(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
    )*};
}
integer_numbers!(i64, u32, u64, usize);

/// A value as InfluxDB stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Integer(i64),
    Float(f64),
    String(String),
}

impl Value {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Integer(v) => Some(*v as f64),
            Value::Float(v) => Some(*v),
            Value::String(_) => None,
        }
    }
}

/// One field of a point with its value; made only by the typed fields of this module.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldValue {
    field: Field,
    value: Value,
}

impl FieldValue {
    pub fn field(&self) -> &Field {
        &self.field
    }

    pub fn name(&self) -> &'static str {
        self.field.name
    }

    pub fn value(&self) -> &Value {
        &self.value
    }
}

/// A measurement: its name, who writes its points, and its fields.
#[derive(Debug, PartialEq, Eq)]
pub struct Measurement {
    name: &'static str,
    /// Which process writes its points, and how often (docs/schema.md's table).
    written_by: &'static str,
    fields: &'static [Field],
}

impl Measurement {
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn fields(&self) -> &'static [Field] {
        self.fields
    }

    /// Its field called `name`.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether `values` make a point of this measurement: each of its fields once, nothing else.
    pub fn check(&self, values: &[FieldValue]) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for value in values {
            let name = value.name();
            if self.field(name) != Some(&value.field) {
                return Err(format!("{}: {name} is not its field", self.name));
            }
            if !seen.insert(name) {
                return Err(format!("{}: {name} twice", self.name));
            }
        }
        match self.fields.iter().find(|f| !seen.contains(f.name)) {
            Some(missing) => Err(format!("{}: {} missing", self.name, missing.name)),
            None => Ok(()),
        }
    }
}

/// Fields more than one stage writes: a `Sender`'s (rng, hasher), and `expired`, an `Intake`'s
/// (hasher, worker; `rejected` is each one's own: it says what it refuses).
mod shared {
    use super::*;

    pub const LOST: Count = Count::new(
        "lost",
        "numbers in batches the next stage took and did not acknowledge (timeout, refusal)",
    );
    pub const IN_FLIGHT: Gauge = Gauge::integer("in_flight", "batches sent, not yet acknowledged");
    pub const WINDOW: Gauge = Gauge::integer("window", "the most batches it may have in flight");
    pub const WAITING: Gauge = Gauge::integer(
        "waiting",
        "batches waiting because no instance of the next stage takes them",
    );
    pub const STRAY: Count = Count::new(
        "stray",
        "messages on its reply inbox that named no batch it sent: settled nothing, ignored",
    );
    pub const EXPIRED: Count = Count::new(
        "expired",
        "batches dropped unfinished: their sender's acknowledgement timeout had passed, or would \
         pass before they were done",
    );
}

/// The fields of [`RNG`].
pub mod rng {
    use super::*;

    pub const NUMBERS: Count = Count::new("numbers", "numbers made and sent");
    pub use super::shared::{IN_FLIGHT, LOST, STRAY, WAITING, WINDOW};
    pub const RATE_LIMIT: Gauge = Gauge::float(
        "rate_limit",
        "numbers/s it may make (`RNG_RATE`), 0 = no limit",
    );
}

/// The fields of [`HASHER`].
pub mod hasher {
    use super::*;

    pub const HASHES: Count = Count::new("hashes", "numbers hashed");
    pub const BUSY: Gauge = Gauge::float("busy", "share of the second spent hashing, 0..1");
    pub const REJECTED: Count = Count::new(
        "rejected",
        "messages refused: malformed, or batches that would take longer to hash than \
         their time to live or the hasher's ack timeout",
    );
    pub use super::shared::{EXPIRED, IN_FLIGHT, LOST, STRAY, WAITING, WINDOW};
}

/// The fields of [`WORKER`].
pub mod worker {
    use super::*;

    pub const HASHES: Count = Count::new("hashes", "digests judged");
    pub const NUGGETS: Count = Count::new("nuggets", "nuggets found");
    pub const FORGED: Count = Count::new(
        "forged",
        "nugget candidates whose digest is not SHA-256 of their number: their batch refused",
    );
    pub const REJECTED: Count = Count::new(
        "rejected",
        "messages refused: malformed, or batches with a digest that is not SHA-256 of its number \
         (checked: every nugget candidate and a sample) or a copy of a nugget recorded lately",
    );
    pub use super::shared::EXPIRED;
    pub const DIFFICULTY: Gauge = Gauge::integer(
        "difficulty",
        "leading zero bits that make a nugget here (`DIFFICULTY`)",
    );
    pub const BUSY: Gauge = Gauge::float("busy", "share of the second spent judging, 0..1");
}

/// The fields of [`NUGGET`].
pub mod nugget {
    use super::*;

    pub const NUMBER: Text = Text::new("number", "the number, lowercase hex");
    pub const DIGEST: Text = Text::new("digest", "its SHA-256, lowercase hex");
    pub const ZERO_BITS: Event = Event::integer("zero_bits", "leading zero bits of the digest");
}

/// Field order is the order a point lists them in, as the stages have always written them.
pub static RNG: Measurement = Measurement {
    name: "rng",
    written_by: "each rng, every second",
    fields: &[
        rng::NUMBERS.field(),
        rng::LOST.field(),
        rng::IN_FLIGHT.field(),
        rng::WINDOW.field(),
        rng::RATE_LIMIT.field(),
        rng::WAITING.field(),
        rng::STRAY.field(),
    ],
};

pub static HASHER: Measurement = Measurement {
    name: "hasher",
    written_by: "each hasher, every second",
    fields: &[
        hasher::HASHES.field(),
        hasher::BUSY.field(),
        hasher::LOST.field(),
        hasher::REJECTED.field(),
        hasher::EXPIRED.field(),
        hasher::IN_FLIGHT.field(),
        hasher::WINDOW.field(),
        hasher::WAITING.field(),
        hasher::STRAY.field(),
    ],
};

pub static WORKER: Measurement = Measurement {
    name: "worker",
    written_by: "each worker, every second",
    fields: &[
        worker::HASHES.field(),
        worker::NUGGETS.field(),
        worker::FORGED.field(),
        worker::REJECTED.field(),
        worker::EXPIRED.field(),
        worker::DIFFICULTY.field(),
        worker::BUSY.field(),
    ],
};

pub static NUGGET: Measurement = Measurement {
    name: "nugget",
    written_by: "a worker, one point per nugget",
    fields: &[
        nugget::NUMBER.field(),
        nugget::DIGEST.field(),
        nugget::ZERO_BITS.field(),
    ],
};

/// Every measurement, in docs/schema.md's order.
pub static MEASUREMENTS: [&Measurement; 4] = [&RNG, &HASHER, &WORKER, &NUGGET];

#[cfg(test)]
mod tests {
    use super::names::measurement;
    use super::*;
    use std::path::{Path, PathBuf};

    fn repository() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// The schema as docs/schema.md shows it: one table, a row per field.
    fn markdown() -> String {
        let mut text = String::from(
            "| measurement: written by | field | type | kind | what it holds |\n\
             | --- | --- | --- | --- | --- |\n",
        );
        for m in MEASUREMENTS {
            for (i, f) in m.fields.iter().enumerate() {
                let measurement = match i {
                    0 => format!("`{}`: {}", m.name, m.written_by),
                    _ => String::new(),
                };
                text.push_str(&format!(
                    "| {measurement} | `{}` | {} | {} | {} |\n",
                    f.name,
                    f.ty.name(),
                    format!("{:?}", f.kind).to_lowercase(),
                    f.meaning
                ));
            }
        }
        text
    }

    #[test]
    fn every_field_once_counts_as_integers() {
        for m in MEASUREMENTS {
            let names: BTreeSet<&str> = m.fields.iter().map(|f| f.name).collect();
            assert_eq!(names.len(), m.fields.len(), "{}: a field twice", m.name);
            // InfluxDB's own column and the tag cannot be fields too.
            assert!(
                !names.contains("time") && !names.contains(INSTANCE),
                "{m:?}"
            );
            for f in m.fields {
                assert!(f.kind != Kind::Count || f.ty == Type::Integer, "{f:?}");
                assert_eq!(f.kind == Kind::Event, m.name == NUGGET.name, "{f:?}");
            }
        }
        assert_eq!(measurement("hasher"), Some(&HASHER));
        assert_eq!(measurement("hashes"), None);
    }

    #[test]
    fn typed_fields_write_the_type_influxdb_holds() {
        assert_eq!(rng::NUMBERS.of(7).value(), &Value::Integer(7));
        assert_eq!(rng::NUMBERS.of(u64::MAX).value(), &Value::Integer(i64::MAX));
        assert_eq!(rng::IN_FLIGHT.at(3usize).value(), &Value::Integer(3));
        assert_eq!(rng::RATE_LIMIT.at(100u64).value(), &Value::Float(100.0));
        assert_eq!(hasher::BUSY.at(0.25).value(), &Value::Float(0.25));
        assert_eq!(worker::DIFFICULTY.at(23u32).value(), &Value::Integer(23));
        assert_eq!(nugget::ZERO_BITS.of(5u32).value(), &Value::Integer(5));
        assert_eq!(nugget::NUMBER.of("ab").value(), &Value::String("ab".into()));
        assert_eq!(nugget::DIGEST.of("0f").field().kind(), Kind::Event);
    }

    #[test]
    fn a_point_has_each_field_of_its_measurement_once() {
        let point = [
            nugget::NUMBER.of("ab"),
            nugget::ZERO_BITS.of(5u32),
            nugget::DIGEST.of("0f"),
        ];
        assert_eq!(NUGGET.check(&point), Ok(()));
        assert_eq!(
            NUGGET.check(&point[..2]),
            Err("nugget: digest missing".into())
        );
        let twice = [point.as_slice(), &point[..1]].concat();
        assert_eq!(NUGGET.check(&twice), Err("nugget: number twice".into()));
        let foreign = [point.as_slice(), &[worker::NUGGETS.of(1)]].concat();
        assert_eq!(
            NUGGET.check(&foreign),
            Err("nugget: nuggets is not its field".into())
        );
        // Same name, another measurement's field: rng's `lost` is hasher's too, not worker's.
        assert_eq!(HASHER.field("lost"), Some(&rng::LOST.field()));
        assert_eq!(WORKER.field("lost"), None);
    }

    #[test]
    fn finds_what_a_statement_names_outside_the_schema() {
        let fine = [
            r#"SELECT sum("hashes") AS hashes, max("difficulty") AS d FROM "worker" WHERE time >= 5ms GROUP BY time(1s) fill(none)"#,
            r#"SELECT "number", "digest", "zero_bits", "instance" FROM "nugget" ORDER BY time DESC LIMIT 10"#,
            r#"SELECT * FROM rng WHERE "instance" = 'r 1' GROUP BY "instance""#,
            r#"SELECT mean("hashes") AS "hashes/s" FROM (SELECT sum("hashes") AS "hashes" FROM "chocominer"."autogen"."hasher" WHERE time > :dashboardTime: GROUP BY time(1s) FILL(0)) GROUP BY time(:interval:)"#,
            r#"SELECT sum("in_flight") * 100 / sum("window") AS "window used %" FROM "rng", "hasher""#,
            r#"SELECT "busy"::float FROM "hasher" WHERE "busy" > 0.5"#,
        ];
        for statement in fine {
            assert_eq!(
                unknown_names(statement),
                Vec::<String>::new(),
                "{statement}"
            );
        }
        assert_eq!(
            unknown_names(r#"SELECT sum("hashes") FROM "workers""#),
            [
                "measurement \"workers\"",
                "field \"hashes\" (not in any measurement)"
            ]
        );
        assert_eq!(
            unknown_names(r#"SELECT mean(waiting) FROM "chocominer"."autogen"."worker""#),
            ["field \"waiting\" (not in worker)"]
        );
        assert_eq!(
            unknown_names(r#"SELECT last("zero_bits") FROM "worker" WHERE "instance" = 'x'"#),
            ["field \"zero_bits\" (not in worker)"]
        );
        // An alias names a column for the query around it, not a field for its own.
        assert_eq!(
            unknown_names(r#"SELECT sum("nugget") AS "nugget" FROM "worker""#),
            ["field \"nugget\" (not in worker)"]
        );
        assert_eq!(
            unknown_names(
                r#"SELECT mean("n") FROM (SELECT sum("nugget") AS "n" FROM "worker") WHERE "n" > 0"#
            ),
            ["field \"nugget\" (not in worker)"]
        );
        assert_eq!(
            unknown_names(r#"SELECT mean("m") FROM (SELECT sum("nuggets") AS "n" FROM "worker")"#),
            ["field \"m\" (not in any measurement)"]
        );
    }

    /// Every query of every Chronograf file (the dashboard's cells and their raw text).
    fn chronograf_queries() -> Vec<(String, String)> {
        fn collect(value: &serde_json::Value, file: &str, out: &mut Vec<(String, String)>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, value) in map {
                        match (key.as_str(), value.as_str()) {
                            ("query" | "rawText", Some(query)) => {
                                out.push((file.to_owned(), query.to_owned()));
                            }
                            _ => collect(value, file, out),
                        }
                    }
                }
                serde_json::Value::Array(items) => {
                    items.iter().for_each(|item| collect(item, file, out));
                }
                _ => {}
            }
        }
        let dir = repository().join("chronograf");
        let mut queries = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("the chronograf folder") {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            // The resources are JSON whatever their extension; the README and kustomization not.
            if let Ok(json) = serde_json::from_str(&text) {
                let file = path.file_name().unwrap().to_string_lossy();
                collect(&json, &file, &mut queries);
            }
        }
        queries
    }

    #[test]
    fn chronograf_queries_name_only_the_schema() {
        let queries = chronograf_queries();
        assert!(queries.len() >= 20, "too few queries found: {queries:?}");
        for (file, query) in queries {
            assert_eq!(
                unknown_names(&query),
                Vec::<String>::new(),
                "{file}: {query}"
            );
        }
    }

    #[test]
    fn readme_shows_this_schema() {
        const BEGIN: &str = "<!-- schema: begin";
        const END: &str = "<!-- schema: end -->";
        let readme = std::fs::read_to_string(repository().join("docs/schema.md")).unwrap();
        let start = readme
            .find(BEGIN)
            .expect("docs/schema.md has the schema's begin marker");
        let start = start + readme[start..].find('\n').unwrap() + 1;
        let end = readme
            .find(END)
            .expect("docs/schema.md has the schema's end marker");
        assert!(
            readme[start..end] == markdown(),
            "docs/schema.md's table differs from crates/model/src/schema.rs; it should be:\n{}",
            markdown()
        );
    }
}
