//! The dashboard in a real headless Chromium: against a live pipeline (rng, hasher and worker
//! in-process, with a nats-server and an influxd of the test's own) the figures the page shows
//! are those InfluxDB holds; with InfluxDB stopped the page says so, and it recovers when
//! InfluxDB is back. A screenshot of each is kept in `target/test-artifacts/`.
//!
//! Skipped, saying so, when there is no Chromium (`scripts/install-deps.sh --with-browser`
//! installs it; CI does).

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::{
    DB, Element, Pipeline, Shot, WebUi, by_id, chromium, elements, number, rows, run_chromium,
};
use testkit::{Influx, eventually};

/// How long the pipeline may take to fill InfluxDB with what the page needs.
const FILL_WITHIN: Duration = Duration::from_secs(60);

fn skip_without_chromium() -> Option<std::path::PathBuf> {
    let found = chromium();
    if found.is_none() {
        // Straight to stderr, past the test harness's capture, so it shows in every log.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: chromium not found (install it with `bash scripts/install-deps.sh \
             --with-browser`, or set CHROMIUM)"
        );
    }
    found
}

fn check_png(path: &Path) {
    let png = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} is not a real screenshot ({} bytes)",
        path.display(),
        png.len()
    );
    println!("screenshot: {}", path.display());
}

#[tokio::test]
async fn page_shows_what_influxdb_holds_about_the_live_pipeline() {
    let Some(chromium) = skip_without_chromium() else {
        return;
    };
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let pipeline = Pipeline::start(&influx).await;
    let webui = WebUi::start(&influx).await;

    // Enough for every part of the page: ten seconds of worker points (the window ends two
    // seconds back and spans five) and a few nuggets.
    eventually(
        "ten seconds of worker points and three nuggets in InfluxDB",
        FILL_WITHIN,
        common::POLL,
        || async {
            assert!(pipeline.is_running(), "a service of the pipeline stopped");
            let seconds = rows(&influx, r#"SELECT count("hashes") FROM "worker""#).await;
            let nuggets = rows(&influx, r#"SELECT count("digest") FROM "nugget""#).await;
            (number(seconds.first(), "count") >= 10.0 && number(nuggets.first(), "count") >= 3.0)
                .then_some(())
        },
    )
    .await;

    let png = common::artifacts_dir().join("webui.png");
    let _ = std::fs::remove_file(&png);
    run_chromium(&chromium, &webui.url, Shot::Png(&png)).await;
    check_png(&png);

    let dom = run_chromium(&chromium, &webui.url, Shot::Dom).await;
    let error = by_id(&dom, "error");
    assert!(
        error.attrs.contains_key("hidden"),
        "error shown: {}",
        error.text()
    );

    // hashes/s: what InfluxDB has for the very window the page used.
    let rate = by_id(&dom, "hashes-rate");
    let (start, end) = (
        rate.attr("data-window-start-ms"),
        rate.attr("data-window-end-ms"),
    );
    let window = format!("time >= {start}ms AND time <= {end}ms");
    let stored = rows(
        &influx,
        &format!(r#"SELECT sum("hashes") AS hashes FROM "worker" WHERE {window}"#),
    )
    .await;
    let truth = number(stored.first(), "hashes") / 5.0;
    let shown = rate.value();
    println!("hashes/s shown {shown}, in InfluxDB {truth} over {window}");
    assert!(truth > 5.0, "the pipeline hashes: {truth}/s");
    // Equal unless a point of the window reached InfluxDB after the page read it.
    assert!(
        (shown - truth).abs() <= (0.2 * truth).max(2.0),
        "page shows {shown} hashes/s, InfluxDB has {truth} for {window}"
    );
    assert_eq!(rate.text(), format!("{shown:.1}"), "shown as it is");
    assert_eq!(by_id(&dom, "worker-rate").value(), shown);

    // Instances: one worker, the one InfluxDB has points from in that window.
    let workers = rows(
        &influx,
        &format!(r#"SELECT count("hashes") FROM "worker" WHERE {window} GROUP BY "instance""#),
    )
    .await;
    let instances = by_id(&dom, "worker-instances");
    assert_eq!(instances.value(), workers.len() as f64, "{workers:?}");
    assert_eq!(instances.text(), "1 instance");
    assert_eq!(by_id(&dom, "worker-names").text(), "worker-1");
    assert_eq!(by_id(&dom, "hasher-instances").value(), 1.0);
    assert_eq!(by_id(&dom, "rng-instances").value(), 1.0);

    // The hasher (20 ms a hash, one at a time, fed 400 numbers/s) holds the pipeline back:
    // busy nearly all the time, with rng's whole window waiting for it. Which of the two rules
    // names it depends on how busy this machine lets it be; either is read from InfluxDB.
    let hasher = rows(
        &influx,
        &format!(r#"SELECT mean("busy") AS busy FROM "hasher" WHERE {window}"#),
    )
    .await;
    let rng = rows(
        &influx,
        &format!(
            r#"SELECT sum("in_flight") AS in_flight, sum("window") AS window FROM "rng" WHERE {window}"#
        ),
    )
    .await;
    let busy = number(hasher.first(), "busy");
    let rng_fill = number(rng.first(), "in_flight") / number(rng.first(), "window").max(1.0);
    println!("hasher busy {busy}, rng window fill {rng_fill} over {window}");
    assert!(
        busy >= 0.9 || rng_fill >= 0.9,
        "the test pipeline should hold back at the hasher: busy {busy}, rng fill {rng_fill}"
    );
    assert_eq!(by_id(&dom, "bottleneck").attr("data-stage"), "hasher");
    assert_eq!(by_id(&dom, "stage-hasher").attr("data-bottleneck"), "true");
    assert_eq!(by_id(&dom, "stage-rng").attr("data-bottleneck"), "false");
    assert_eq!(by_id(&dom, "stage-worker").attr("data-bottleneck"), "false");
    let shown_busy = by_id(&dom, "hasher-busy").value();
    assert!(
        (shown_busy - busy).abs() <= 0.1,
        "page shows hasher busy {shown_busy}, InfluxDB has {busy}"
    );

    // Nuggets: each one listed is in InfluxDB, found by that worker, and the total is between
    // what InfluxDB had at the end of the window and what it has now.
    let digests: Vec<String> = elements(&dom, "data-testid", "nugget-digest")
        .iter()
        .map(Element::text)
        .collect();
    assert!(
        (1..=10).contains(&digests.len()),
        "{} nuggets listed",
        digests.len()
    );
    for digest in &digests {
        assert_eq!(digest.len(), 64, "{digest:?}");
        let found = rows(
            &influx,
            &format!(r#"SELECT "digest", "instance" FROM "nugget" WHERE "digest" = '{digest}'"#),
        )
        .await;
        assert_eq!(found.len(), 1, "nugget {digest} in InfluxDB: {found:?}");
        assert_eq!(found[0]["instance"], "worker-1");
    }
    let total = by_id(&dom, "nuggets-total").value();
    let until_window = rows(
        &influx,
        &format!(r#"SELECT sum("nuggets") AS n FROM "worker" WHERE time <= {end}ms"#),
    )
    .await;
    let until_now = rows(&influx, r#"SELECT sum("nuggets") AS n FROM "worker""#).await;
    let (low, high) = (
        number(until_window.first(), "n"),
        number(until_now.first(), "n"),
    );
    assert!(
        low <= total && total <= high && total >= digests.len() as f64,
        "nuggets total shown {total}, InfluxDB had {low} at the window's end and {high} now"
    );

    webui.stop().await;
    pipeline.stop().await;
}

#[tokio::test]
async fn page_says_when_influxdb_is_unreachable_and_recovers() {
    let Some(chromium) = skip_without_chromium() else {
        return;
    };
    testkit::init_tracing();
    let mut influx = Influx::start().await;
    influx.create_database(DB).await;
    let webui = WebUi::start(&influx).await;
    influx.stop().await;

    let png = common::artifacts_dir().join("webui-influx-down.png");
    let _ = std::fs::remove_file(&png);
    run_chromium(&chromium, &webui.url, Shot::Png(&png)).await;
    check_png(&png);

    let dom = run_chromium(&chromium, &webui.url, Shot::Dom).await;
    let error = by_id(&dom, "error");
    let message = error.text();
    let expected = format!("InfluxDB unreachable at {}: ", influx.url());
    assert!(
        !error.attrs.contains_key("hidden") && message.starts_with(&expected),
        "expected a visible {expected:?}…, got hidden={} {message:?}",
        error.attrs.contains_key("hidden")
    );
    assert!(
        message.len() > expected.len() + 5,
        "with a reason: {message}"
    );
    assert!(
        dom.contains(r#"<body class="stale">"#),
        "figures greyed out"
    );

    // Back: the page needs no reload, but a fresh one shows no error either.
    influx.restart().await;
    let dom = run_chromium(&chromium, &webui.url, Shot::Dom).await;
    let error = by_id(&dom, "error");
    assert!(
        error.attrs.contains_key("hidden"),
        "error still shown: {}",
        error.text()
    );
    assert_eq!(by_id(&dom, "hashes-rate").value(), 0.0);
    webui.stop().await;
}
#[test]
fn reads_chromium_dom() {
    let dom = r#"<html><body><span id="a" data-value="1.5" title="x &amp; y">1.5 <b>k</b></span>
<tr data-testid="row"><td data-testid="d" class="hex"><span class="zeros">00</span>ab</td></tr>
<tr data-testid="row"><td data-testid="d" class="hex">cd</td></tr></body></html>"#;
    let a = by_id(dom, "a");
    assert_eq!((a.value(), a.text().as_str()), (1.5, "1.5 k"));
    assert_eq!(a.attr("title"), "x & y");
    let digests: Vec<String> = elements(dom, "data-testid", "d")
        .iter()
        .map(Element::text)
        .collect();
    assert_eq!(digests, ["00ab", "cd"]);
}
