//! The webui over plain HTTP against a real influxd: the page and its assets, `/healthz`, and
//! `/api/summary` on points written by the test (so every figure is known exactly), on an
//! empty or missing database, with InfluxDB stopped, and after it is back. Also its health
//! endpoints on `HEALTH_LISTEN` and its `--health-check` probe, the `Host` it answers to (DNS
//! rebinding) and the InfluxDB credentials it never shows. The lesson: a classroom's stack
//! scaled step by step in real time (`common::lesson`), the step, the rate before and after
//! each scale and the next command at every step; discovery mode, which names no bottleneck
//! in the JSON and keeps every stage's figures, and its one setting in the environment. What
//! InfluxDB's writer role can write that no stage did (forged, copied or future nugget
//! records, negative counts, a share above 1, an instance stamped in the future) is neither
//! listed nor counted.

mod common;

use std::time::Duration;

use chocominer_model::nugget::record_of;
use chocominer_status::lesson::Counts;
use common::lesson::{
    Classroom, counts, lesson_path, rate, settled, spread_over_a_window, summary_when,
};
use common::{POLL, WebUi, get, get_json};
use serde_json::{Value, json};
use testkit::{DB, Influx, Role, Service, eventually, http_client, parse};

const SECOND_NS: i64 = 1_000_000_000;
/// How long the webui may take to see a change in InfluxDB (it serves a summary for 0.5 s).
const SOON: Duration = Duration::from_secs(20);

#[tokio::test]
async fn serves_the_page_its_assets_and_health() {
    testkit::init_tracing();
    let influx = Influx::start().await;
    let webui = WebUi::start(&influx).await;

    let (status, _, body) = get(&format!("{}/healthz", webui.url)).await;
    assert_eq!((status, body.as_str()), (200, "ok"));

    let response = http_client()
        .get(format!("{}/", webui.url))
        .send()
        .await
        .expect("GET /");
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let page = response.text().await.unwrap();
    for id in [
        "hashes-rate",
        "nuggets-rate",
        "nuggets-total",
        "worker-instances",
        "error",
    ] {
        assert!(
            page.contains(&format!("id=\"{id}\"")),
            "no #{id} in the page"
        );
    }

    let mut assets = vec![page];
    for (path, content_type) in [("/app.js", "text/javascript"), ("/app.css", "text/css")] {
        let (status, got_type, body) = get(&format!("{}{path}", webui.url)).await;
        assert_eq!(status, 200, "{path}");
        assert!(got_type.starts_with(content_type), "{path}: {got_type}");
        assert!(body.len() > 1000, "{path} is {} bytes", body.len());
        assets.push(body);
    }
    // Offline: nothing refers to another server (the SVG namespace is a name, not a fetch).
    for asset in &assets {
        let mut rest = asset.as_str();
        while let Some(at) = rest.find("http") {
            let url = &rest[at..];
            assert!(
                url.starts_with("http://www.w3.org/2000/svg"),
                "an asset refers to {}",
                &url[..url.len().min(60)]
            );
            rest = &rest[at + 4..];
        }
    }

    let (status, _, _) = get(&format!("{}/no/such/page", webui.url)).await;
    assert_eq!(status, 404);
    webui.stop().await;
}

#[tokio::test]
async fn serves_health_on_health_listen_and_answers_the_probe() {
    testkit::init_tracing();
    let bin = testkit::cargo_bin_async("webui").await;
    let page = format!("127.0.0.1:{}", testkit::free_port());
    let listen = format!("127.0.0.1:{}", testkit::free_port());
    // No InfluxDB at all: the dashboard is ready once it serves (its page says InfluxDB is
    // out of reach; restarting the dashboard would not bring it back).
    let nowhere = format!("http://127.0.0.1:{}", testkit::free_port());
    let config: webui::Config = parse(
        &[
            "webui",
            "--listen",
            &page,
            "--influx-url",
            &nowhere,
            "--health-listen",
            &listen,
        ]
        .map(String::from),
    );
    let shutdown = chocominer_process::Shutdown::new();
    let webui = Service::spawn("webui", &shutdown, |shutdown| webui::run(config, shutdown));

    let readyz = format!("http://{listen}/readyz");
    eventually("the webui's /readyz answers", SOON, POLL, || async {
        let response = http_client().get(&readyz).send().await.ok()?;
        Some((response.status().as_u16(), response.text().await.ok()?))
    })
    .await;
    let (status, _, body) = get(&readyz).await;
    assert_eq!((status, body.as_str()), (200, "ready"));
    let (status, _, body) = get(&format!("http://{listen}/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, _, _) = get(&format!("http://{listen}/")).await;
    assert_eq!(status, 404, "the health address serves no page");
    let (status, _, body) = get(&format!("http://{page}/readyz")).await;
    assert_eq!((status, body.as_str()), (200, "ready"));

    let probe = tokio::process::Command::new(&bin)
        .args(["--health-check", "--health-listen", &listen])
        .env_remove("HEALTH_LISTEN")
        .output()
        .await
        .expect("run webui --health-check");
    assert_eq!(probe.status.code(), Some(0), "{probe:?}");
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout),
        format!("ready ({readyz})\n")
    );

    shutdown.trigger();
    webui.report().await;
    assert!(
        http_client().get(&readyz).send().await.is_err(),
        "the health server outlived the webui"
    );
}

/// Line protocol for every second from `from` to `to` (seconds since the epoch): two workers
/// (30 + 20 hashes/s, 2 + 1 nuggets/s), two rngs at 100 + 90 numbers/s with a limit of 100/s
/// each, two hashers half and 70 % busy with their windows nearly full.
fn stage_points(from: i64, to: i64) -> String {
    let mut lines = String::new();
    for s in from..=to {
        let t = s * SECOND_NS;
        lines += &format!(
            "worker,instance=worker-1 hashes=30i,nuggets=2i,rejected=0i,forged=1i {t}\n\
             worker,instance=worker-2 hashes=20i,nuggets=1i,rejected=0i,forged=0i {t}\n\
             rng,instance=rng-1 numbers=100i,lost=0i,in_flight=3i,window=32i,rate_limit=100 {t}\n\
             rng,instance=rng-2 numbers=90i,lost=1i,in_flight=2i,window=32i,rate_limit=100 {t}\n\
             hasher,instance=hasher-1 hashes=25i,busy=0.5,lost=0i,rejected=0i,in_flight=8i,window=8i {t}\n\
             hasher,instance=hasher-10 hashes=25i,busy=0.7,lost=2i,rejected=0i,in_flight=7i,window=8i {t}\n"
        );
    }
    lines
}

/// A nugget record that passes every check: `seed` 32 times as the number, its SHA-256 and
/// the digest's leading zero bits, as a worker writes it; `(number, digest, line)`.
fn real_nugget(seed: u8, instance: &str, time_ns: i64) -> (String, String, String) {
    let number = format!("{seed:02x}").repeat(32);
    let (digest, zero_bits) = record_of(&[seed; 32]);
    let line = nugget_line(instance, &number, &digest, zero_bits, time_ns);
    (number, digest, line)
}

fn nugget_line(instance: &str, number: &str, digest: &str, zero_bits: u32, time_ns: i64) -> String {
    format!(
        "nugget,instance={instance} number=\"{number}\",digest=\"{digest}\",zero_bits={zero_bits}i {time_ns}\n"
    )
}

fn now_s() -> i64 {
    chocominer_process::now_ns() / SECOND_NS
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test]
async fn summary_has_the_figures_of_the_points_in_influxdb() {
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    // 60 s of history and 10 s ahead, so the window and "alive" are covered whenever the
    // request lands in the next few seconds.
    let now = now_s();
    let (from, to) = (now - 60, now + 10);
    influx.write(DB, &stage_points(from, to)).await;
    let mut nuggets = String::new();
    let mut written = Vec::new();
    for i in 0..12i64 {
        let time = (now - 30 + i) * SECOND_NS + 123_000_000;
        let (number, digest, line) = real_nugget(i as u8, &format!("worker-{}", i % 2 + 1), time);
        nuggets += &line;
        written.push((number, digest));
    }
    influx.write(DB, &nuggets).await;
    let webui = WebUi::start(&influx).await;

    // Many pages at once share summaries.
    let url = format!("{}/api/summary", webui.url);
    let replies = futures_join_all((0..20).map(|_| {
        let url = url.clone();
        async move { get_json(&url).await }
    }))
    .await;
    let (status, s) = replies.into_iter().next().unwrap();
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["ok"], true);

    let spans = &s["spans"];
    let (start, end) = (
        spans["window_start_ms"].as_i64().unwrap(),
        spans["window_end_ms"].as_i64().unwrap(),
    );
    assert_eq!(end - start, 4000, "five whole seconds: {spans}");
    assert!(start >= from * 1000 && end <= to * 1000, "{spans}");
    assert_eq!(f(&s["hashes_per_s"]), 50.0);
    assert_eq!(f(&s["nuggets_per_s"]), 3.0);

    let stages = &s["stages"];
    assert_eq!(f(&stages["rng"]["rate"]), 190.0);
    assert_eq!(f(&stages["rng"]["rate_limit"]), 200.0);
    assert_eq!(f(&stages["hasher"]["rate"]), 50.0);
    assert!(
        (f(&stages["hasher"]["busy"]) - 0.6).abs() < 1e-9,
        "{stages}"
    );
    assert!((f(&stages["hasher"]["window_fill"]) - 15.0 / 16.0).abs() < 1e-9);
    assert!((f(&stages["rng"]["window_fill"]) - 5.0 / 64.0).abs() < 1e-9);
    assert_eq!(f(&stages["worker"]["rate"]), 50.0);
    let names = |stage: &str| stages[stage]["instances"].clone();
    assert_eq!(names("rng"), serde_json::json!(["rng-1", "rng-2"]));
    assert_eq!(
        names("hasher"),
        serde_json::json!(["hasher-1", "hasher-10"])
    );
    assert_eq!(names("worker"), serde_json::json!(["worker-1", "worker-2"]));
    // 190 numbers/s of 200 allowed: rng holds the pipeline back (hashers are not busy enough
    // to come first).
    assert_eq!(s["bottleneck"]["stage"], "rng", "{}", s["bottleneck"]);

    assert!((f(&stages["hasher"]["in_flight"]) - 15.0).abs() < 1e-9);
    assert_eq!(f(&stages["hasher"]["window"]), 16.0);
    // These points have no `waiting` field (written before it existed): nothing held.
    assert_eq!(f(&stages["rng"]["waiting"]), 0.0);
    assert_eq!(f(&stages["hasher"]["waiting"]), 0.0);
    // Nor a `difficulty`: none is claimed to be in force, no totals at one.
    assert_eq!(s["difficulty"]["in_force"], serde_json::json!([]));
    assert_eq!(s["difficulty"]["totals"], serde_json::json!([]));

    let hashes = s["series"]["hashes"].as_array().unwrap();
    assert_eq!(hashes.len(), 300);
    assert_eq!(
        hashes[0],
        Value::Null,
        "no points that long ago: no data, not 0"
    );
    assert!(hashes[250..].iter().all(|v| f(v) == 50.0), "{hashes:?}");
    let series_nuggets = s["series"]["nuggets"].as_array().unwrap();
    assert_eq!(f(&series_nuggets[299]), 3.0);

    let listed = s["nuggets"].as_array().unwrap();
    assert_eq!(listed.len(), 10, "the latest ten");
    for (row, i) in listed.iter().zip((2..12i64).rev()) {
        let (number, digest) = &written[i as usize];
        assert_eq!(&row["digest"], digest, "newest first: {row}");
        assert_eq!(&row["number"], number);
        assert_eq!(row["zero_bits"], record_of(&[i as u8; 32]).1);
        assert_eq!(row["instance"], format!("worker-{}", i % 2 + 1));
        assert_eq!(row["time_ms"], (now - 30 + i) * 1000 + 123);
    }

    let seconds = (to - from + 1) as f64;
    let totals = &s["totals"];
    assert_eq!(totals["since_ms"], from * 1000, "what the totals cover");
    assert_eq!(f(&totals["hashes"]), 50.0 * seconds);
    assert_eq!(f(&totals["nuggets"]), 3.0 * seconds);
    assert_eq!(f(&totals["numbers"]), 190.0 * seconds);
    assert_eq!(f(&totals["lost"]), 3.0 * seconds);
    assert_eq!(f(&totals["forged"]), seconds, "forged nuggets refused");
    assert_eq!(s["nuggets_refused"]["count"], 0, "{}", s["nuggets_refused"]);

    let report = webui.stop().await;
    assert!(
        report.summaries <= 3,
        "20 requests at once made {} summaries",
        report.summaries
    );
    assert_eq!(report.influx_failures, 0);
}

/// What InfluxDB's writer role (held by every stage) can write that no stage did, written as
/// that role beside a real run: nugget records with an all-zero digest stamped in 2100, a
/// digest not SHA-256 of its number, the wrong zero bits, a copy of a real one; a worker point
/// with negative counts; a hasher busy 7 times over; a worker stamped in an hour. The summary
/// lists only the real nuggets (all ten: the refused ones do not leave the list short), says
/// how many records it refused and why, and none of the rest moves a figure.
#[tokio::test]
async fn summary_lists_only_real_nuggets_and_counts_no_nonsense_point() {
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let writer = chocominer_influx::Client::new(&influx.writer(DB)).unwrap();
    let write = |lines: String| {
        let writer = writer.clone();
        async move { writer.write(&[lines]).await.expect("the writer writes") }
    };
    let now = now_s();
    let (from, to) = (now - 60, now + 10);
    write(stage_points(from, to)).await;
    // Ten real nuggets, one a second up to 20 s ago.
    let mut real = Vec::new();
    let mut lines = String::new();
    for seed in 1..=10u8 {
        let time = (now - 30 + i64::from(seed)) * SECOND_NS;
        let (number, digest, line) = real_nugget(seed, "worker-1", time);
        lines += &line;
        real.push((number, digest));
    }
    write(lines).await;

    let (number, digest) = &real[9];
    let (_, other_digest) = &real[0];
    let (spare_number, spare_digest, _) = real_nugget(42, "worker-1", 0);
    let all_zero = "0".repeat(64);
    let recent = |ago_ms: i64| now * SECOND_NS - ago_ms * 1_000_000;
    let forged = [
        // What the finding names: an all-zero digest stamped in 2100.
        nugget_line(
            "worker-1",
            number,
            &all_zero,
            256,
            4_102_444_800 * SECOND_NS,
        ),
        // Newer than every real one: a digest that is not SHA-256 of its number...
        nugget_line(
            "worker-1",
            number,
            other_digest,
            record_of(&[1; 32]).1,
            recent(300),
        ),
        nugget_line("worker-1", number, &all_zero, 256, recent(400)),
        // ...the right digest with the wrong zero bits...
        nugget_line("worker-2", &spare_number, &spare_digest, 200, recent(500)),
        // ...and a real one again, later, from another worker.
        nugget_line(
            "worker-2",
            number,
            digest,
            record_of(&[10; 32]).1,
            recent(600),
        ),
    ]
    .concat();
    write(forged).await;
    let mut nonsense = String::new();
    for t in from..=to {
        // hasher-1 busy 7 times over, every second.
        nonsense += &format!("hasher,instance=hasher-1 busy=7 {}\n", t * SECOND_NS);
    }
    // Counts no worker writes, in the totals and the charts; a worker that does not run,
    // stamped an hour ahead.
    nonsense += &format!(
        "worker,instance=worker-9 hashes=-1000000i,nuggets=-500i,forged=-1000000i {}\n\
         worker,instance=ghost hashes=0i,nuggets=0i,forged=0i {}\n",
        (now - 30) * SECOND_NS,
        (now + 3600) * SECOND_NS
    );
    write(nonsense).await;

    let webui = WebUi::start(&influx).await;
    let (status, s) = get_json(&format!("{}/api/summary", webui.url)).await;
    assert_eq!(status, 200, "{s}");

    let listed: Vec<&Value> = s["nuggets"].as_array().unwrap().iter().collect();
    let digests: Vec<&str> = listed
        .iter()
        .map(|n| n["digest"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = real.iter().rev().map(|(_, d)| d.as_str()).collect();
    assert_eq!(
        digests, expected,
        "the ten real ones, newest first: {listed:?}"
    );
    assert_eq!(
        listed[0]["instance"], "worker-1",
        "the first time it was seen"
    );
    let refused = &s["nuggets_refused"];
    assert_eq!(refused["count"], 5, "{refused}");
    let reasons: Vec<(&str, i64)> = refused["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["reason"].as_str().unwrap(), r["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("future", 1),
            ("not_its_digest", 2),
            ("wrong_zero_bits", 1),
            ("copy", 1)
        ]
    );
    assert_eq!(
        refused["reasons"][1]["what"],
        "digest not SHA-256 of the number"
    );

    // No count below what the real points hold, no share above 1, no ghost.
    let seconds = (to - from + 1) as f64;
    let totals = &s["totals"];
    assert_eq!(f(&totals["hashes"]), 50.0 * seconds, "{totals}");
    assert_eq!(f(&totals["nuggets"]), 3.0 * seconds, "{totals}");
    assert_eq!(f(&totals["forged"]), seconds, "{totals}");
    let start = s["series"]["start_ms"].as_i64().unwrap() / 1000;
    let at = (now - 30 - start) as usize;
    assert_eq!(f(&s["series"]["hashes"][at]), 50.0);
    assert_eq!(f(&s["series"]["nuggets"][at]), 3.0);
    let stages = &s["stages"];
    assert_eq!(
        stages["worker"]["instances"],
        json!(["worker-1", "worker-2"])
    );
    let busy = f(&stages["hasher"]["busy"]);
    assert!(
        (busy - 0.85).abs() < 1e-9,
        "hasher-1 at most 1, hasher-10 0.7: {busy}"
    );
    webui.stop().await;
}

/// A run at difficulty 4 that stopped, then one at 23 still running, after older points
/// written before workers had a difficulty: the difficulty in force, where it changed, the
/// totals at it, and no data (null) for the seconds without points.
#[tokio::test]
async fn summary_shows_the_difficulty_its_change_and_no_data_as_null() {
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let now = now_s();
    let old = (now - 280, now - 261);
    let demo = (now - 200, now - 151);
    let full = (now - 100, now + 10);
    let lines = common::three_runs(old, demo, full, 1);
    influx.write(DB, &lines).await;
    let webui = WebUi::start(&influx).await;
    let (status, s) = get_json(&format!("{}/api/summary", webui.url)).await;
    assert_eq!(status, 200, "{s}");

    let difficulty = &s["difficulty"];
    assert_eq!(
        difficulty["in_force"],
        serde_json::json!([23]),
        "{difficulty}"
    );
    assert_eq!(difficulty["last"], 23);
    let at_full: i64 = (full.0..=full.1).map(|t| i64::from(t % 10 == 0)).sum();
    assert_eq!(
        difficulty["totals"],
        serde_json::json!([{"difficulty": 23, "since_ms": full.0 * 1000,
            "hashes": 1000.0 * (full.1 - full.0 + 1) as f64, "nuggets": at_full as f64}]),
        "the totals at 23 leave the nuggets at 4 out"
    );
    let totals = &s["totals"];
    assert_eq!(totals["since_ms"], old.0 * 1000);
    assert_eq!(
        f(&totals["nuggets"]),
        (old.1 - old.0 + 1 + demo.1 - demo.0 + 1 + at_full) as f64
    );

    // One change, where the run at 23 begins; none from the points without a difficulty.
    let series = &s["series"];
    assert_eq!(
        series["difficulty_changes"],
        serde_json::json!([{"time_ms": full.0 * 1000,
            "from": {"min": 4, "max": 4}, "to": {"min": 23, "max": 23}}])
    );
    // Every second without points is null, every second with points a number.
    let start = series["start_ms"].as_i64().unwrap() / 1000;
    let in_a_run = |t: i64| [old, demo, full].iter().any(|&(a, b)| a <= t && t <= b);
    for column in ["hashes", "nuggets"] {
        let values = series[column].as_array().unwrap();
        assert_eq!(values.len(), 300);
        for (i, value) in values.iter().enumerate() {
            let t = start + i as i64;
            if in_a_run(t) {
                assert!(value.is_number(), "{column} at {t}: {value}");
            } else {
                assert_eq!(value, &Value::Null, "{column} at {t}, no points");
            }
        }
    }
    let nulls = series["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v.is_null())
        .count();
    assert!(nulls >= 80, "{nulls} seconds without data");

    let stages = &s["stages"];
    assert_eq!(f(&stages["rng"]["waiting"]), 2.0, "{stages}");
    assert_eq!(f(&stages["hasher"]["waiting"]), 0.0);
    assert_eq!(
        (
            f(&stages["hasher"]["in_flight"]),
            f(&stages["hasher"]["window"])
        ),
        (3.0, 8.0)
    );
    webui.stop().await;
}

/// Runs the futures at once and returns their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.expect("request task"));
    }
    outputs
}

#[tokio::test]
async fn summary_of_an_empty_database_is_zeros_and_no_data() {
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let webui = WebUi::start(&influx).await;
    let (status, s) = get_json(&format!("{}/api/summary", webui.url)).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(f(&s["hashes_per_s"]), 0.0);
    assert_eq!(s["bottleneck"], Value::Null);
    assert_eq!(s["nuggets"], serde_json::json!([]));
    assert_eq!(s["stages"]["worker"]["instances"], serde_json::json!([]));
    assert_eq!(f(&s["totals"]["hashes"]), 0.0);
    assert_eq!(s["totals"]["since_ms"], Value::Null, "no run yet");
    assert_eq!(s["difficulty"]["last"], Value::Null);
    let hashes = s["series"]["hashes"].as_array().unwrap();
    assert!(hashes.iter().all(Value::is_null), "no data, not zeros");
    webui.stop().await;
}

#[tokio::test]
async fn summary_says_what_is_wrong_with_influxdb_and_recovers() {
    testkit::init_tracing();
    let mut influx = Influx::start().await;
    let webui = WebUi::start(&influx).await;
    let url = format!("{}/api/summary", webui.url);

    // No database yet, so the reader has no right to read it (an administrator grants it with
    // the database): InfluxDB answers 403, and the page says who may not do what.
    let (status, s) = get_json(&url).await;
    assert_eq!(status, 502, "{s}");
    assert_eq!(
        (&s["ok"], &s["kind"]),
        (&json!(false), &json!("denied")),
        "{s}"
    );
    let error = s["error"].as_str().unwrap();
    assert_eq!(
        error,
        format!(
            "InfluxDB at {} does not let user \"reader\" read \"chocominer\" (HTTP 403: \
             requires READ on chocominer): an administrator must grant it that right, or use a \
             user that has it",
            influx.url()
        )
    );

    influx.create_database(DB).await;
    let now = now_s();
    influx.write(DB, &stage_points(now - 10, now + 60)).await;
    let wait_for = |want: u16| {
        let url = url.clone();
        async move {
            eventually(&format!("/api/summary answers {want}"), SOON, POLL, || {
                let url = url.clone();
                async move {
                    let (status, s) = get_json(&url).await;
                    (status == want).then_some(s)
                }
            })
            .await
        }
    };
    let s = wait_for(200).await;
    assert_eq!(f(&s["hashes_per_s"]), 50.0, "{s}");

    influx.stop().await;
    let s = wait_for(503).await;
    let error = s["error"].as_str().unwrap();
    let expected = format!("InfluxDB unreachable at {}: ", influx.url());
    assert!(error.starts_with(&expected), "{error}");
    assert!(
        error.len() > expected.len() + 5,
        "the reason is given: {error}"
    );
    assert_eq!(s["influx_url"], influx.url());

    influx.restart().await;
    let s = wait_for(200).await;
    assert_eq!(f(&s["hashes_per_s"]), 50.0, "{s}");
    let report = webui.stop().await;
    assert!(report.influx_failures >= 2, "{report:?}");
}

/// A webui of the test's own on 127.0.0.1, started with `args` after its program name.
async fn webui_with(args: &[&str]) -> (String, Service<webui::Report>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut all = vec!["webui".to_owned()];
    all.extend(args.iter().map(|a| a.to_string()));
    let config: webui::Config = parse(&all);
    let service = Service::spawn("webui", &chocominer_process::Shutdown::new(), |shutdown| {
        webui::serve(listener, config, shutdown)
    });
    (format!("http://{address}"), service)
}

/// `GET url` naming `host` in the `Host` header: status and body.
async fn get_naming(url: &str, host: &str) -> (u16, String) {
    let response = http_client()
        .get(url)
        .header("host", host)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url} as {host}: {e}"));
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A page of another site whose name resolves to the dashboard (DNS rebinding) names that site
/// in `Host`: refused, on every route, with one line. Addresses, localhost and the names allowed
/// are answered, whatever the port.
#[tokio::test]
async fn answers_only_requests_naming_an_address_localhost_or_an_allowed_name() {
    testkit::init_tracing();
    let nowhere = format!("http://127.0.0.1:{}", testkit::free_port());
    let (url, webui) = webui_with(&[
        "--influx-url",
        &nowhere,
        "--allowed-hosts",
        "dashboard.example.org,.class.test",
    ])
    .await;
    let port = url.rsplit(':').next().unwrap().to_owned();
    for path in ["/", "/api/summary", "/app.js", "/healthz"] {
        let target = format!("{url}{path}");
        for host in [
            format!("rebind.attacker.example:{port}"),
            "rebind.attacker.example".to_owned(),
            format!("localhost.attacker.example:{port}"),
            format!("example.org:{port}"),
        ] {
            let (status, body) = get_naming(&target, &host).await;
            assert_eq!(status, 421, "{path} as {host}: {body}");
            assert!(
                body.starts_with("this dashboard does not answer to host ")
                    && body.contains("WEBUI_ALLOWED_HOSTS")
                    && body.ends_with('\n')
                    && body.lines().count() == 1,
                "{body:?}"
            );
        }
        for host in [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            "localhost:9999".to_owned(),
            format!("[::1]:{port}"),
            format!("192.0.2.7:{port}"),
            "dashboard.example.org".to_owned(),
            format!("webui.class.test:{port}"),
        ] {
            let (status, body) = get_naming(&target, &host).await;
            // The summary says InfluxDB is out of reach (503): answered all the same.
            let expected = if path == "/api/summary" { 503 } else { 200 };
            assert_eq!(status, expected, "{path} as {host}: {body}");
        }
    }
    webui.stop().await;
}

/// Credentials written in INFLUX_URL are used and never shown: not in `/api/summary` (which
/// any client of the dashboard reads), whether InfluxDB answers or not.
#[tokio::test]
async fn summary_never_shows_the_credentials_in_the_influxdb_url() {
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let secret = influx.password(Role::Reader).to_owned();
    let with_secret = |url: &str| url.replacen("http://", &format!("http://reader:{secret}@"), 1);
    let shown = |url: &str| url.replacen("http://", "http://***@", 1);

    let (url, webui) = webui_with(&["--influx-url", &with_secret(&influx.url())]).await;
    let (status, _, body) = get(&format!("{url}/api/summary")).await;
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["influx_url"], shown(&influx.url()), "{s}");
    assert!(
        !body.contains(&secret) && !body.contains("reader"),
        "{body}"
    );
    webui.stop().await;

    let nowhere = format!("http://127.0.0.1:{}", testkit::free_port());
    let (url, webui) = webui_with(&["--influx-url", &with_secret(&nowhere)]).await;
    let (_, _, body) = get(&format!("{url}/api/summary")).await;
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["influx_url"], shown(&nowhere), "{s}");
    let error = s["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("InfluxDB unreachable at {}: ", shown(&nowhere))),
        "{error}"
    );
    assert!(
        !body.contains(&secret) && !body.contains("reader"),
        "{body}"
    );
    webui.stop().await;
}

/// The classroom's stack is paced as the demo profile: one of each 3.4 hashes/s (the worker's
/// 300 ms a hash, rounded to what five seconds of whole hashes make), two workers 6.6, ten
/// workers rng's 10, three rngs the hasher's 20, two hashers rng's 30; and every five seconds
/// in a row hold the same counts, so the rates are exact.
#[test]
fn the_classroom_is_paced_as_the_demo() {
    let rates: Vec<f64> = [
        counts(1, 1, 1),
        counts(1, 1, 2),
        counts(1, 1, 10),
        counts(3, 1, 10),
        counts(3, 2, 10),
    ]
    .into_iter()
    .map(rate)
    .collect();
    assert_eq!(rates, [3.4, 6.6, 10.0, 20.0, 30.0]);
    for t in 0..20 {
        assert_eq!(spread_over_a_window(34, 3, 2, t), 11, "second {t}");
    }
}

fn json_of(counts: Counts) -> Value {
    serde_json::to_value(counts).unwrap()
}

fn close(v: &Value, expected: f64) -> bool {
    v.as_f64().is_some_and(|v| (v - expected).abs() < 1e-9)
}

/// A class starting the stack (the worker last), then scaling as the lesson says, each scale
/// once the last one settled: at every step the lesson object names the step, the change
/// (settling first, then the rate before and after it) and the next command.
#[tokio::test]
async fn summary_follows_the_lesson_step_by_step() {
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let start = counts(1, 1, 0);
    let class = Classroom::start(&influx, start);
    let webui = WebUi::start(&influx).await;
    let url = format!("{}/api/summary", webui.url);

    // Not every stage runs: start the pipeline. No change seen yet.
    let s = summary_when(&url, start, |_| true).await;
    let lesson = &s["lesson"];
    assert_eq!(lesson["step"]["id"], "starting", "{lesson}");
    assert_eq!(lesson["step"]["number"], 0);
    assert_eq!(lesson["step"]["next"], Value::Null);
    assert_eq!(lesson["change"], Value::Null);
    assert_eq!(lesson["settles_at_ms"], Value::Null);
    assert_eq!(s["discovery"], false);

    let mut before = start;
    for step in lesson_path() {
        class.scale(step.counts);
        // Seen, not settled: the rate before is known, the rate after is not yet.
        let s = summary_when(&url, step.counts, |s| {
            s["lesson"]["change"]["rate_after"].is_null()
        })
        .await;
        let lesson = &s["lesson"];
        let change = &lesson["change"];
        assert_eq!(
            (&change["from"], &change["to"]),
            (&json_of(before), &json_of(step.counts)),
            "{lesson}"
        );
        assert!(close(&change["rate_before"], rate(before)), "{change}");
        let at_ms = change["at_ns"].as_i64().unwrap() / 1_000_000;
        let settles = lesson["settles_at_ms"].as_i64().unwrap();
        assert_eq!(
            settles - at_ms,
            chocominer_status::lesson::SETTLE_NS / 1_000_000
        );
        assert!(settles > s["spans"]["now_ms"].as_i64().unwrap());

        let s = settled(&url, step.counts).await;
        let lesson = &s["lesson"];
        let (got, change) = (&lesson["step"], &lesson["change"]);
        println!(
            "step {}: {} → {} hashes/s",
            step.number, change["rate_before"], change["rate_after"]
        );
        assert_eq!(got["id"], step.id, "{lesson}");
        assert_eq!(
            (&got["number"], &got["of"]),
            (&json!(step.number), &json!(5))
        );
        assert!(close(&change["rate_before"], rate(before)), "{change}");
        assert!(close(&change["rate_after"], rate(step.counts)), "{change}");
        assert_eq!(change["from"], json_of(before));
        assert_eq!(lesson["settles_at_ms"], Value::Null);
        assert!(close(&s["hashes_per_s"], rate(step.counts)), "{s}");
        assert_eq!(
            s["bottleneck"]["stage"], step.bottleneck,
            "{}",
            s["bottleneck"]
        );
        for text in ["title", "expect", "why_next"] {
            assert!(
                got[text].as_str().is_some_and(|t| !t.is_empty()),
                "{text}: {got}"
            );
        }
        match step.next {
            Some([just, compose, kubectl]) => assert_eq!(
                got["next"],
                json!({"just": just, "compose": compose, "kubectl": kubectl})
            ),
            None => {
                // The end of the compose part: the bridge to Kubernetes.
                assert_eq!(got["next"], Value::Null);
                let why = got["why_next"].as_str().unwrap();
                assert!(
                    why.contains("cluster") && why.contains("Kubernetes"),
                    "{why}"
                );
            }
        }
        if step.id == "plateau" {
            assert_eq!(
                got["probes"],
                json!([
                    "chocominer ping rng",
                    "chocominer ping hasher",
                    "chocominer ping worker"
                ])
            );
        }
        before = step.counts;
    }
    class.stop();
    webui.stop().await;
}

/// Discovery mode on the plateau (rng named) and after three rngs (the hasher named, "busy
/// 100 %: more hashers would hash more"): beside a dashboard that names them, one in discovery
/// mode names neither anywhere in its JSON, nor the stage to scale next, and gives the same
/// figures of every stage and the probes to run.
#[tokio::test]
async fn discovery_hides_the_bottleneck_in_the_json_and_keeps_the_figures() {
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let class = Classroom::start(&influx, counts(1, 1, 10));
    let open = WebUi::start(&influx).await;
    let hidden = WebUi::start_with(&influx, &["--discovery"]).await;

    for (at, stage, hint) in [
        (counts(1, 1, 10), "rng", "more rng instances"),
        (counts(3, 1, 10), "hasher", "more hashers would hash more"),
    ] {
        class.scale(at);
        // Once the window holds only seconds at these counts.
        let steady = |s: &Value| close(&s["hashes_per_s"], rate(at));
        let named = summary_when(&format!("{}/api/summary", open.url), at, |s| {
            steady(s) && s["bottleneck"]["stage"] == stage
        })
        .await;
        let reason = named["bottleneck"]["reason"].as_str().unwrap().to_owned();
        assert!(reason.contains(hint), "{reason}");
        assert!(named["lesson"]["step"]["next"]["just"].is_string());

        let url = format!("{}/api/summary", hidden.url);
        summary_when(&url, at, steady).await;
        let (status, _, body) = get(&url).await;
        assert_eq!(status, 200, "{body}");
        let s: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(s["discovery"], true);
        assert_eq!(s["bottleneck"], Value::Null, "{}", s["bottleneck"]);
        for giveaway in [reason.as_str(), hint, "just scale", "--scale", "--replicas"] {
            assert!(!body.contains(giveaway), "{giveaway:?} in {body}");
        }
        let step = &s["lesson"]["step"];
        assert_eq!(step["id"], named["lesson"]["step"]["id"]);
        assert_eq!(step["next"], Value::Null);
        for name in ["rng", "hasher", "worker"] {
            assert!(!step["why_next"].as_str().unwrap().contains(name), "{step}");
        }
        assert_eq!(
            step["probes"],
            json!([
                "chocominer ping rng",
                "chocominer ping hasher",
                "chocominer ping worker"
            ])
        );
        // Every stage's own figures, as the other dashboard shows them.
        assert_eq!(
            s["stages"], named["stages"],
            "the same figures in both modes"
        );
        let rng = &s["stages"]["rng"];
        assert!(close(&rng["rate_limit"], 10.0 * at.rng as f64), "{rng}");
        for (stage, figure) in [
            ("rng", "rate"),
            ("rng", "in_flight"),
            ("rng", "window"),
            ("hasher", "busy"),
            ("hasher", "in_flight"),
            ("hasher", "window_fill"),
        ] {
            assert!(s["stages"][stage][figure].is_number(), "{stage} {figure}");
        }
    }
    class.stop();
    open.stop().await;
    hidden.stop().await;
}

/// The webui binary with `CHOCOMINER_DISCOVERY` set to `value` (unset for `None`): whether
/// its summary says discovery, or how it refused to start.
async fn discovery_of_the_binary(value: Option<&str>) -> Result<bool, String> {
    let bin = testkit::cargo_bin_async("webui").await;
    let listen = format!("127.0.0.1:{}", testkit::free_port());
    // No InfluxDB: the error reply says the mode too.
    let nowhere = format!("http://127.0.0.1:{}", testkit::free_port());
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args(["--listen", &listen, "--influx-url", &nowhere])
        .env_remove("HEALTH_LISTEN")
        .env_remove("WEBUI_LISTEN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    match value {
        Some(value) => cmd.env("CHOCOMINER_DISCOVERY", value),
        None => cmd.env_remove("CHOCOMINER_DISCOVERY"),
    };
    let mut child = cmd.spawn().expect("spawn webui");
    let url = format!("http://{listen}/api/summary");
    let answer = eventually("the webui answers or exits", SOON, POLL, || {
        let url = url.clone();
        let exited = child.try_wait().expect("webui's status");
        async move {
            if let Some(status) = exited {
                return Some(Err(status));
            }
            let response = http_client().get(&url).send().await.ok()?;
            let s: Value = serde_json::from_str(&response.text().await.ok()?).ok()?;
            Some(Ok(s["discovery"]
                .as_bool()
                .expect("discovery in the reply")))
        }
    })
    .await;
    match answer {
        Ok(discovery) => {
            child.kill().await.expect("stop webui");
            Ok(discovery)
        }
        Err(status) => {
            let output = child.wait_with_output().await.expect("webui's stderr");
            Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

/// Discovery is one setting: `CHOCOMINER_DISCOVERY` (true/false, 1/0, …) or `--discovery`,
/// off unless set, and a value that is neither stops the dashboard rather than guess.
#[tokio::test]
async fn discovery_is_one_setting_in_the_environment() {
    testkit::init_tracing();
    for (value, expected) in [
        (None, false),
        (Some("1"), true),
        (Some("true"), true),
        (Some("0"), false),
        (Some("false"), false),
    ] {
        assert_eq!(
            discovery_of_the_binary(value).await,
            Ok(expected),
            "CHOCOMINER_DISCOVERY={value:?}"
        );
    }
    let refused = discovery_of_the_binary(Some("perhaps")).await.unwrap_err();
    assert!(
        refused.contains("perhaps") && refused.contains("CHOCOMINER_DISCOVERY"),
        "{refused}"
    );

    let config: webui::Config = parse(&["webui", "--discovery"].map(String::from));
    assert!(config.discovery);
    let bin = testkit::cargo_bin_async("webui").await;
    let help = tokio::process::Command::new(&bin)
        .arg("--help")
        .output()
        .await
        .expect("webui --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--discovery") && help.contains("[env: CHOCOMINER_DISCOVERY="),
        "{help}"
    );
}
