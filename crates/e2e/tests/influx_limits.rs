//! InfluxDB's reader, the dashboards' user (and anyone Chronograf hands it to), can make the
//! server neither write nor exhaust its memory: every influxd of ours runs with
//! influxdb/server.env (no continuous queries, query limits), this one too.

use std::time::Duration;

use chocominer_influx::Client;
use testkit::{DB, Influx, POLL, eventually};
use tokio::time::Instant;

/// A query of 600 000 buckets (one a millisecond over 10 minutes), which took influxd from 29 MB
/// to 269 MB, is refused before it runs; one a second over the same range is answered.
#[tokio::test]
async fn the_reader_cannot_ask_for_millions_of_buckets() {
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let reader = Client::new(&influx.reader(DB)).expect("a reader's client");
    let heavy =
        r#"SELECT count("hashes") FROM "worker" WHERE time > now() - 10m GROUP BY time(1ms)"#;
    let refused = reader
        .query(&[heavy.to_owned()])
        .await
        .expect_err("600 000 buckets were answered");
    assert!(
        refused.to_string().contains("max-select-buckets"),
        "refused for another reason: {refused}"
    );
    let fair = r#"SELECT count("hashes") FROM "worker" WHERE time > now() - 10m GROUP BY time(1s)"#;
    reader
        .query(&[fair.to_owned()])
        .await
        .unwrap_or_else(|e| panic!("the dashboards' kind of query was refused: {e}"));
}

/// A continuous query the reader creates never writes: the server runs none. Continuous
/// queries resample every second here, so a server that ran them would have written the
/// inflated point within a second or two; the window watched is five times that.
#[tokio::test]
async fn a_readers_continuous_query_never_writes() {
    const WATCHED: Duration = Duration::from_secs(10);
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let reader = Client::new(&influx.reader(DB)).expect("a reader's client");
    // InfluxDB 1.x asks only READ for a continuous query whose INTO names no database.
    let cq = r#"CREATE CONTINUOUS QUERY "inflate" ON "chocominer" RESAMPLE EVERY 1s FOR 10s BEGIN SELECT max("hashes") * 100000000000000000 AS "hashes" INTO "worker" FROM "worker" GROUP BY time(1s), * END"#;
    if let Err(e) = reader.query(&[cq.to_owned()]).await {
        // Refused for want of rights would do as well: then there is nothing to run. Any
        // other refusal means the statement is wrong and the test proves nothing.
        assert!(
            e.to_string().contains("authoriz"),
            "the continuous query was refused for another reason: {e}"
        );
        return;
    }
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    influx
        .write(DB, &format!("worker,instance=w1 hashes=10i {now_ns}"))
        .await;
    let max = || async {
        let rows = influx
            .rows(DB, r#"SELECT max("hashes") FROM "worker""#)
            .await;
        rows.first()
            .and_then(|row| row.get("max").and_then(|v| v.as_f64()))
    };
    eventually(
        "the writer's point readable",
        Duration::from_secs(5),
        POLL,
        || async { max().await.filter(|&m| m > 0.0) },
    )
    .await;
    let until = Instant::now() + WATCHED;
    while Instant::now() < until {
        let seen = max().await.unwrap_or_default();
        assert!(
            seen <= 10.0,
            "the continuous query wrote: max(hashes) is {seen}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// No profile of the server for anyone: pprof is off (on InfluxDB 1.8, Compose's and
/// Kubernetes', it is on and asks admin credentials for every /debug endpoint; the rule
/// `monitoring` of `just check-k8s` holds that).
#[tokio::test]
async fn no_profile_answers_without_credentials() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let influx = Influx::start().await;
    let address = influx.url().trim_start_matches("http://").to_owned();
    for path in ["/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"] {
        let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), socket.read_to_string(&mut answer))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        let status = answer.lines().next().unwrap_or_default();
        assert!(status.contains(" 404 "), "{path}: {status}");
    }
}
