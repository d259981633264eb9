//! InfluxDB checking credentials, as every deployment runs it (testkit's influxd has an
//! administrator, a writer and a reader): each user has exactly its rights, a refusal says in
//! one line who may not do what and what to change, exactly one set of credentials is sent,
//! and the stats writer holds its points while it is refused and writes them once an
//! administrator has acted.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chocominer_influx::schema::{self, nugget};
use chocominer_influx::{Client, InfluxArgs, QueryError, Secret, WriteError};
use chocominer_pipeline::stats::{Point, StatsWriter};
use testkit::{DB, Influx, POLL, SOON, eventually, eventually_eq};

fn point_line(v: u32) -> String {
    format!("m,instance=t v={v}i {}", 1_000_000_000 + i64::from(v))
}

fn select_m() -> Vec<String> {
    vec!["SELECT * FROM m".to_owned()]
}

#[tokio::test]
async fn each_user_has_exactly_its_rights() {
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let url = influx.url();
    let anonymous = Client::new(&InfluxArgs::new(&url, DB)).unwrap();
    let writer = Client::new(&influx.writer(DB)).unwrap();
    let reader = Client::new(&influx.reader(DB)).unwrap();
    let needs_credentials = format!(
        "InfluxDB at {url} requires credentials (HTTP 401: unable to parse authentication \
         credentials): set INFLUX_USER and INFLUX_PASSWORD_FILE (or INFLUX_PASSWORD)"
    );

    // Nobody: neither writes nor reads.
    assert_eq!(
        anonymous.write(&[point_line(1)]).await,
        Err(WriteError::Denied(needs_credentials.clone()))
    );
    assert_eq!(
        anonymous.query(&select_m()).await,
        Err(QueryError::Denied(needs_credentials))
    );

    // The writer writes and cannot read.
    writer.write(&[point_line(2)]).await.unwrap();
    assert_eq!(
        writer.query(&select_m()).await,
        Err(QueryError::Denied(format!(
            "InfluxDB at {url} does not let user \"writer\" read \"chocominer\" (HTTP 403: \
             requires READ on chocominer): an administrator must grant it that right, or use a \
             user that has it"
        )))
    );

    // The reader reads what the writer wrote, and cannot write.
    let rows = reader.query(&select_m()).await.unwrap();
    assert_eq!(rows[0].len(), 1, "{rows:?}");
    assert_eq!(rows[0][0]["v"], 2, "{rows:?}");
    match reader.write(&[point_line(3)]).await {
        Err(WriteError::Denied(e)) => assert!(
            e.starts_with(&format!(
                "InfluxDB at {url} does not let user \"reader\" write to \"chocominer\" (HTTP 403"
            )),
            "{e}"
        ),
        other => panic!("the reader wrote: {other:?}"),
    }
    // Only the writer's point got in.
    assert_eq!(influx.rows(DB, "SELECT * FROM m").await.len(), 1);
}

#[tokio::test]
async fn a_wrong_password_is_named_as_such() {
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let url = influx.url();
    let wrong = InfluxArgs {
        influx_password_file: Some(Secret::new("not-the-password")),
        ..influx.writer(DB)
    };
    let client = Client::new(&wrong).unwrap();
    let refused = format!(
        "InfluxDB at {url} refused the credentials of user \"writer\" (HTTP 401: authorization \
         failed): check INFLUX_USER and INFLUX_PASSWORD_FILE (or INFLUX_PASSWORD)"
    );
    assert_eq!(
        client.write(&[point_line(1)]).await,
        Err(WriteError::Denied(refused.clone()))
    );
    let wrong_reader = InfluxArgs {
        influx_password_file: Some(Secret::new("not-the-password")),
        ..influx.reader(DB)
    };
    assert_eq!(
        Client::new(&wrong_reader).unwrap().query(&select_m()).await,
        Err(QueryError::Denied(
            refused.replace("\"writer\"", "\"reader\"")
        ))
    );
}

/// INFLUX_USER and credentials in INFLUX_URL: INFLUX_USER's are the ones sent, alone (reqwest
/// sent the URL's as a first Authorization header and InfluxDB took those).
#[tokio::test]
async fn influx_user_wins_over_credentials_in_the_url() {
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let with = |userinfo: &str| {
        influx
            .url()
            .replacen("http://", &format!("http://{userinfo}@"), 1)
    };

    let both = InfluxArgs {
        influx_url: with("intruder:nope"),
        ..influx.writer(DB)
    };
    Client::new(&both)
        .unwrap()
        .write(&[point_line(1)])
        .await
        .unwrap();

    // The URL's alone are used as they are.
    let password = influx.password(testkit::Role::Writer);
    let in_url = InfluxArgs::new(&with(&format!("writer:{password}")), DB);
    Client::new(&in_url)
        .unwrap()
        .write(&[point_line(2)])
        .await
        .unwrap();
    let wrong_in_url = InfluxArgs::new(&with("writer:nope"), DB);
    assert!(matches!(
        Client::new(&wrong_in_url).unwrap().write(&[point_line(3)]).await,
        Err(WriteError::Denied(e)) if e.contains("refused the credentials of user \"writer\"")
    ));
    assert_eq!(influx.rows(DB, "SELECT * FROM m").await.len(), 2);
}

/// Log lines, captured for the test's own thread (the stats writer's task runs there too: a
/// current-thread runtime).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer that may not create its database is told so once, says why its writes are refused,
/// holds the points (nothing dropped) and writes them all once an administrator has created
/// the database and granted it WRITE.
#[tokio::test]
async fn stats_refused_for_want_of_a_database_are_held_until_an_administrator_acts() {
    let logs = Logs::default();
    let capture = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let influx = Influx::start().await;
    let db = "later";
    let writer = StatsWriter::start(&influx.writer(db), "w1").unwrap();
    let sink = writer.sink();
    let now = chocominer_process::now_ns();
    for i in 0..3u32 {
        sink.push(Point {
            measurement: &schema::NUGGET,
            fields: vec![
                nugget::NUMBER.of("ab"),
                nugget::DIGEST.of("0f"),
                nugget::ZERO_BITS.of(i),
            ],
            time_ns: now + i64::from(i),
        });
    }
    let refused = format!(
        "stats not written: database \"{db}\" does not exist and this user may not create it: \
         an administrator must create it and grant the user WRITE on it"
    );
    eventually("the writer says why it cannot write", SOON, POLL, || {
        let said = logs.text().contains(&refused);
        async move { said.then_some(()) }
    })
    .await;
    let text = logs.text();
    assert!(
        text.contains("the database is left to the InfluxDB administrator")
            && text.contains(
                "does not let user \"writer\" create databases (HTTP 403: requires admin privilege)"
            ),
        "{text}"
    );
    assert_eq!((sink.held(), sink.dropped()), (3, 0));

    influx.create_database(db).await;
    eventually_eq("the held points written", SOON, POLL, 3, || async {
        influx.rows(db, "SELECT * FROM nugget").await.len()
    })
    .await;
    let report = writer.close(Duration::from_secs(10)).await;
    assert_eq!(
        (report.written, report.dropped, report.unwritten),
        (3, 0, 0),
        "{report:?}"
    );
    let text = logs.text();
    assert!(
        text.contains("InfluxDB takes the stats points again"),
        "{text}"
    );
    // Said once per minute at most, not every second.
    assert_eq!(text.matches("stats not written").count(), 1, "{text}");
}
