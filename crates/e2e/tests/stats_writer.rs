//! The stats writer against a real influxd: a point whose tag or string value holds a control
//! character is never written. The line protocol library leaves a line break in a tag raw, so
//! such a point would be two lines, the second one a point of the sender's choosing (an
//! `INSTANCE` of `w1\nnugget` planted `nugget` points); the stages refuse such a name at start,
//! and the writer withholds what gets past that anyway.

use std::time::Duration;

use chocominer_influx::schema::{self, nugget};
use chocominer_pipeline::stats::{Point, StatsWriter};
use testkit::{DB, Influx};

fn nugget_point(number: &str, time_ns: i64) -> Point {
    Point {
        measurement: &schema::NUGGET,
        fields: vec![
            nugget::NUMBER.of(number),
            nugget::DIGEST.of("0f"),
            nugget::ZERO_BITS.of(5u32),
        ],
        time_ns,
    }
}

#[tokio::test]
async fn a_point_that_would_write_lines_of_its_own_is_never_written() {
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    // As a stage writes: the writer's credentials.
    let args = influx.writer(DB);
    let now = chocominer_process::now_ns();

    // The attack: a line break in the instance tag, then in a string field.
    let forged = StatsWriter::start(&args, "w1\nnugget").unwrap();
    forged.sink().push(nugget_point("aa", now));
    let honest = StatsWriter::start(&args, "w1").unwrap();
    let sink = honest.sink();
    sink.push(nugget_point(
        "bb\nnugget,instance=w9 number=\"ff\"",
        now + 1,
    ));
    sink.push(nugget_point("cc\r", now + 2));
    // And one point that is fine, so that what InfluxDB holds shows the writer writes.
    sink.push(nugget_point("dd", now + 3));

    let forged = forged.close(Duration::from_secs(10)).await;
    assert_eq!((forged.withheld, forged.written), (1, 0), "{forged:?}");
    let honest = honest.close(Duration::from_secs(10)).await;
    assert_eq!((honest.withheld, honest.written), (2, 1), "{honest:?}");

    let rows = influx.rows(DB, "SELECT number, instance FROM nugget").await;
    let seen: Vec<(String, String)> = rows
        .iter()
        .map(|row| {
            let text = |column: &str| {
                row.get(column)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            (text("number"), text("instance"))
        })
        .collect();
    assert_eq!(seen, [("dd".to_owned(), "w1".to_owned())], "{rows:?}");
}
