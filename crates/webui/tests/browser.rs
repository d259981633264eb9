//! The dashboard in a real headless Chromium: against a live pipeline (rng, hasher and worker
//! in-process, with a nats-server and an influxd of the test's own) the figures the page shows
//! are those InfluxDB holds; with InfluxDB stopped the page says so, and it recovers when
//! InfluxDB is back; on points written by the test, a change of difficulty, seconds without
//! data, the zero bits of a nugget and what the stages wait for are shown as they are; a
//! classroom scaling step by step (`common::lesson`) sees the step, the rate before and after
//! each scale and the next command, and in discovery mode no bottleneck. A screenshot of each
//! page is kept in `target/test-artifacts/`; the lesson's steps', 1000 pixels wide, also in
//! `docs/` (`docs/lesson-step-N.png`) when `WEBUI_DOCS_SCREENSHOTS=1`, so that a test run
//! leaves the repository's files alone unless asked to retake them.
//!
//! They fail when there is no Chromium (`common::chromium`): a browser test that passes without
//! a browser would claim what nobody checked (`scripts/install-deps.sh --with-browser` installs
//! it, CI does; `cargo test -p webui --test api` runs the rest without one).

mod common;

use std::path::Path;
use std::time::Duration;

use common::lesson::{Classroom, counts, lesson_path, rate, settled, summary_when};
use common::{
    Element, Shot, WebUi, by_id, chromium, chromium_in, elements, number, rows, run_chromium,
};
use testkit::{DB, Influx, Stack, eventually};

/// How long the pipeline may take to fill InfluxDB with what the page needs.
const FILL_WITHIN: Duration = Duration::from_secs(60);

const SECOND_NS: i64 = 1_000_000_000;

/// Leading zero bits of a lowercase hex digest.
fn leading_zero_bits(hex: &str) -> u32 {
    let mut bits = 0;
    for c in hex.chars() {
        let digit = c.to_digit(16).expect("a hex digit");
        if digit != 0 {
            return bits + digit.leading_zeros() - 28;
        }
        bits += 4;
    }
    bits
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
    let chromium = chromium();
    // rng `--rate 400 --batch 1`, hasher `--delay-ms 20 --concurrency 1` (about 50 hashes/s,
    // the bottleneck), worker `--difficulty 4` (a nugget every 16 hashes on average) with no
    // simulated cost. Each knob the test counts on is set here, not left to the demo
    // profile, whose pacing follows the lesson.
    let stack = Stack::start().await;
    let pipeline = stack
        .pipeline()
        .worker("worker-1", &["--difficulty", "4", "--delay-ms", "0"])
        .hasher(
            "hasher-1",
            &["--delay-ms", "20", "--concurrency", "1", "--in-flight", "8"],
        )
        .rng("rng-1", &["--rate", "400", "--batch", "1"])
        .start()
        .await;
    let influx = stack.influx();
    let webui = WebUi::start(influx).await;

    // Enough for every part of the page: ten seconds of worker points (the window ends two
    // seconds back and spans five) and a few nuggets.
    eventually(
        "ten seconds of worker points and three nuggets in InfluxDB",
        FILL_WITHIN,
        common::POLL,
        || async {
            assert!(pipeline.is_running(), "a service of the pipeline stopped");
            let seconds = rows(influx, r#"SELECT count("hashes") FROM "worker""#).await;
            let nuggets = rows(influx, r#"SELECT count("digest") FROM "nugget""#).await;
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
        influx,
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
        influx,
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
        influx,
        &format!(r#"SELECT mean("busy") AS busy FROM "hasher" WHERE {window}"#),
    )
    .await;
    let rng = rows(
        influx,
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

    // The hasher's bar is its window of digest batches, and says so: "in flight/window".
    let stage =
        &dom[dom.find(r#"id="stage-hasher""#).unwrap()..dom.find(r#"id="stage-worker""#).unwrap()];
    assert!(
        stage.contains("digest batches awaiting workers") && !stage.contains("waiting for workers"),
        "{stage}"
    );
    let fill = by_id(&dom, "hasher-fill");
    assert_eq!(fill.attr("data-window"), "8", "the hasher's --in-flight");
    assert_eq!(
        fill.text(),
        format!("{}/8", fmt_batches(fill.attr("data-in-flight")))
    );
    assert!(by_id(&dom, "rng-waiting").attrs.contains_key("hidden"));

    // The difficulty shown is the one the worker wrote.
    let written = rows(
        influx,
        r#"SELECT last("difficulty") AS difficulty FROM "worker""#,
    )
    .await;
    assert_eq!(number(written.first(), "difficulty"), 4.0, "{written:?}");
    let difficulty = by_id(&dom, "difficulty");
    assert_eq!(
        (difficulty.attr("data-value"), difficulty.text().as_str()),
        ("4", "4")
    );
    assert_eq!(difficulty.attr("data-in-force"), "true");
    assert_eq!(by_id(&dom, "nuggets-rate-note").text(), "at difficulty 4");
    assert_eq!(
        by_id(&dom, "difficulty-note").text(),
        "1 nugget per 16 hashes on average"
    );

    // Nuggets: each one listed is in InfluxDB, found by that worker, and the total is between
    // what InfluxDB had at the end of the window and what it has now.
    let digests: Vec<String> = elements(&dom, "data-testid", "nugget-digest")
        .iter()
        .map(Element::text)
        .collect();
    // Each one's leading zero bits, exactly, highlighted.
    let bits = elements(&dom, "data-testid", "nugget-bits");
    assert_eq!(bits.len(), digests.len());
    for (cell, digest) in bits.iter().zip(&digests) {
        let zeros = leading_zero_bits(digest);
        assert!(zeros >= 4, "{digest} is a nugget at difficulty 4");
        let highlighted = highlighted_bits(cell);
        assert_eq!(
            highlighted,
            "0".repeat(zeros as usize),
            "{digest}: {cell:?}"
        );
    }
    assert!(
        (1..=10).contains(&digests.len()),
        "{} nuggets listed",
        digests.len()
    );
    for digest in &digests {
        assert_eq!(digest.len(), 64, "{digest:?}");
        let found = rows(
            influx,
            &format!(r#"SELECT "digest", "instance" FROM "nugget" WHERE "digest" = '{digest}'"#),
        )
        .await;
        assert_eq!(found.len(), 1, "nugget {digest} in InfluxDB: {found:?}");
        assert_eq!(found[0]["instance"], "worker-1");
    }
    // The total is that at the difficulty in force.
    let total = by_id(&dom, "nuggets-total");
    assert_eq!(total.attr("data-difficulty"), "4");
    let total = total.value();
    let until_window = rows(
        influx,
        &format!(
            r#"SELECT sum("nuggets") AS n FROM "worker" WHERE "difficulty" = 4 AND time <= {end}ms"#
        ),
    )
    .await;
    let until_now = rows(
        influx,
        r#"SELECT sum("nuggets") AS n FROM "worker" WHERE "difficulty" = 4"#,
    )
    .await;
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

/// The zero bits a nugget's bits cell highlights, spaces between groups left out.
fn highlighted_bits(cell: &Element) -> String {
    let zeros = elements(&cell.inner, "class", "zero-bits");
    assert_eq!(zeros.len(), 1, "{cell:?}");
    let text: String = zeros[0].text().chars().filter(|c| *c != ' ').collect();
    assert_eq!(zeros[0].attr("data-count"), text.len().to_string());
    text
}

/// How the page writes a number of batches: rounded to a whole one.
fn fmt_batches(value: &str) -> String {
    let v: f64 = value.parse().unwrap_or_else(|e| panic!("{value:?}: {e}"));
    format!("{}", v.round())
}

/// On points written by the test: a run at difficulty 4 that stopped, then one at 23 still
/// running, after older points without a difficulty; rng holding batches because no hasher
/// listens; a 10-bit and a 23-bit nugget.
#[tokio::test]
async fn page_shows_a_change_of_difficulty_no_data_and_the_zero_bits() {
    let chromium = chromium();
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let now = chocominer_process::now_ns() / SECOND_NS;
    // Far enough ahead that the runs are still going when Chromium reads the page.
    let (old, demo, full) = (
        (now - 250, now - 231),
        (now - 200, now - 151),
        (now - 100, now + 90),
    );
    let mut lines = common::three_runs(old, demo, full, 2);
    // Real nuggets (the page lists only records that pass the checks): numbers 0x2cac3f and
    // 0x510, as 32 big-endian bytes, whose digests start with 23 and 10 zero bits.
    let numbers: [u64; 2] = [0x2c_ac3f, 0x510];
    let mut digests = Vec::new();
    for (value, ago) in numbers.into_iter().zip([3, 2]) {
        let mut number = [0u8; 32];
        number[24..].copy_from_slice(&value.to_be_bytes());
        let (digest, zero_bits) = chocominer_model::nugget::record_of(&number);
        lines += &format!(
            "nugget,instance=worker-1 number=\"{}\",digest=\"{digest}\",zero_bits={zero_bits}i {}\n",
            number
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            (now - ago) * SECOND_NS
        );
        digests.push(digest);
    }
    let [twenty_three_bits, ten_bits] = [&digests[0], &digests[1]];
    assert_eq!(
        (
            leading_zero_bits(twenty_three_bits),
            leading_zero_bits(ten_bits)
        ),
        (23, 10)
    );
    influx.write(DB, &lines).await;
    let webui = WebUi::start(&influx).await;

    let png = common::artifacts_dir().join("webui-difficulty-change.png");
    let _ = std::fs::remove_file(&png);
    run_chromium(&chromium, &webui.url, Shot::Png(&png)).await;
    check_png(&png);
    let dom = run_chromium(&chromium, &webui.url, Shot::Dom).await;
    assert!(by_id(&dom, "error").attrs.contains_key("hidden"));

    // The difficulty in force, and the nuggets at it since it began.
    let difficulty = by_id(&dom, "difficulty");
    assert_eq!(
        (difficulty.attr("data-value"), difficulty.text().as_str()),
        ("23", "23")
    );
    assert_eq!(by_id(&dom, "nuggets-rate-note").text(), "at difficulty 23");
    let total = by_id(&dom, "nuggets-total");
    let at_23 = (full.0..=full.1).filter(|t| t % 10 == 0).count();
    assert_eq!(
        (total.attr("data-difficulty"), total.value()),
        ("23", at_23 as f64)
    );
    let note = by_id(&dom, "nuggets-total-note").text();
    assert!(
        note.starts_with("at difficulty 23 since ") && note.len() > "at difficulty 23 since ".len(),
        "{note}"
    );
    let covered = by_id(&dom, "totals-note");
    assert_eq!(
        covered.value(),
        (old.0 * 1000) as f64,
        "since the first point"
    );
    assert!(
        covered.text().starts_with("in all runs since "),
        "{}",
        covered.text()
    );

    // Both charts mark the change, where the run at 23 begins.
    for chart in ["chart-hashes", "chart-nuggets"] {
        let svg = by_id(&dom, chart);
        let changes = elements(&svg.inner, "data-testid", "difficulty-change");
        assert_eq!(changes.len(), 1, "{chart}: {changes:?}");
        assert_eq!(changes[0].text(), "difficulty 4 → 23");
        assert_eq!(changes[0].attr("data-time-ms"), (full.0 * 1000).to_string());
        // No data before, between and after the runs: labelled so, not drawn as zeros.
        assert!(
            elements(&svg.inner, "data-testid", "no-data").len() >= 2,
            "{chart}: {}",
            svg.inner
        );
    }
    let hashes = by_id(&dom, "chart-hashes");
    assert_eq!(hashes.attr("data-runs"), "3", "three runs, three lines");
    let seconds: f64 = hashes.attr("data-seconds").parse().unwrap();
    assert!(seconds < 250.0, "{seconds} seconds with data of 300");

    // The 10-bit nugget: ten bits highlighted, "00" and the 3 (0011) whose first two count.
    let rows = elements(&dom, "data-testid", "nugget-row");
    assert_eq!(rows.len(), 2);
    let bits = elements(&dom, "data-testid", "nugget-bits");
    assert_eq!(highlighted_bits(&bits[0]), "0".repeat(10));
    assert_eq!(bits[0].text(), "0000 0000 0011…");
    assert_eq!(highlighted_bits(&bits[1]), "0".repeat(23));
    assert_eq!(bits[1].text(), "0000 0000 0000 0000 0000 0001…");
    let digest = &elements(&dom, "data-testid", "nugget-digest")[0];
    assert_eq!(&digest.text(), ten_bits);
    let part = |class: &str| {
        let found = elements(&digest.inner, "class", class);
        assert_eq!(found.len(), 1, "{class} in {digest:?}");
        found[0].text()
    };
    assert_eq!((part("zeros"), part("partial")), ("00".into(), "3".into()));

    // The hasher's window as it is, and rng waiting for a hasher to come back.
    let fill = by_id(&dom, "hasher-fill");
    assert_eq!((fill.text().as_str(), fill.value()), ("3/8", 3.0 / 8.0));
    let waiting = by_id(&dom, "rng-waiting");
    assert!(!waiting.attrs.contains_key("hidden"), "{waiting:?}");
    assert!(
        waiting
            .text()
            .starts_with("waiting for a hasher to come back: 2 batches waiting"),
        "{}",
        waiting.text()
    );
    assert!(by_id(&dom, "hasher-waiting").attrs.contains_key("hidden"));
    webui.stop().await;
}

#[tokio::test]
async fn page_says_when_influxdb_is_unreachable_and_recovers() {
    let chromium = chromium();
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
/// The size of the lesson's screenshots: small for the docs, tall enough for the lesson panel,
/// the charts and the stages.
const LESSON_SHOT: (u32, u32) = (1000, 1120);

/// `docs/`, when the lesson's screenshots are to be retaken there (`WEBUI_DOCS_SCREENSHOTS=1`).
fn docs_screenshots() -> Option<std::path::PathBuf> {
    let wanted = std::env::var("WEBUI_DOCS_SCREENSHOTS").is_ok_and(|v| !v.is_empty() && v != "0");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
    wanted.then(|| root.expect("the workspace holds crates/webui").join("docs"))
}

fn is_hidden(element: &Element) -> bool {
    element.attrs.contains_key("hidden")
}

/// A class playing the lesson: the stack started (the worker last), then scaled as the lesson
/// says. At each step the page shows which one it is, what the scale did to the rate, what to
/// see and the next command in its three spellings, then, at the last one, the way to
/// Kubernetes; a dashboard in discovery mode shows the plateau without naming rng.
#[tokio::test]
async fn page_plays_the_lesson_step_by_step() {
    let chromium = chromium();
    testkit::init_tracing();
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let start = counts(1, 1, 0);
    let class = Classroom::start(&influx, start);
    let webui = WebUi::start(&influx).await;
    let hidden = WebUi::start_with(&influx, &["--discovery"]).await;
    let url = format!("{}/api/summary", webui.url);
    summary_when(&url, start, |_| true).await;
    let docs = docs_screenshots();
    let (width, height) = LESSON_SHOT;

    let mut before = start;
    for step in lesson_path() {
        class.scale(step.counts);
        let s = settled(&url, step.counts).await;
        let lesson = &s["lesson"]["step"];
        let name = format!("lesson-step-{}.png", step.number);
        let png = common::artifacts_dir().join(&name);
        let _ = std::fs::remove_file(&png);
        run_chromium(&chromium, &webui.url, Shot::PngSized(&png, width, height)).await;
        check_png(&png);
        if let Some(docs) = &docs {
            let kept = docs.join(&name);
            std::fs::copy(&png, &kept)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", png.display(), kept.display()));
            println!("kept: {}", kept.display());
        }

        let dom = run_chromium(&chromium, &webui.url, Shot::Dom).await;
        assert!(is_hidden(&by_id(&dom, "error")));
        let panel = by_id(&dom, "lesson");
        assert_eq!(panel.attr("data-step"), step.id);
        let where_ = by_id(&dom, "lesson-number");
        assert_eq!(where_.value(), step.number as f64);
        assert_eq!(where_.text(), format!("step {} of 5", step.number));
        assert_eq!(
            by_id(&dom, "lesson-title").text(),
            lesson["title"].as_str().unwrap()
        );
        // What to see, as a sentence.
        let expect = lesson["expect"].as_str().unwrap();
        let shown = by_id(&dom, "lesson-expect").text();
        assert!(shown.ends_with(&format!("{}.", &expect[1..])), "{shown:?}");

        // What the scale did: the stage scaled, the rate before and after.
        let change = by_id(&dom, "lesson-change");
        assert_eq!(change.attr("data-state"), "settled");
        let scaled: Vec<String> = ["rng", "hasher", "worker"]
            .iter()
            .zip([
                (before.rng, step.counts.rng),
                (before.hasher, step.counts.hasher),
                (before.worker, step.counts.worker),
            ])
            .filter(|(_, (from, to))| from != to)
            .map(|(name, (from, to))| format!("{name} {from} → {to}"))
            .collect();
        let said = by_id(&dom, "lesson-scaled").text();
        assert!(
            said.starts_with(&format!("{} at ", scaled.join(", "))),
            "{said}"
        );
        let (rate_before, rate_after) = (
            by_id(&dom, "lesson-rate-before"),
            by_id(&dom, "lesson-rate-after"),
        );
        assert_eq!(rate_before.value(), rate(before));
        assert_eq!(rate_after.value(), rate(step.counts));
        assert_eq!(rate_after.text(), format!("{:.1}", rate(step.counts)));
        println!(
            "step {}: {} → {} hashes/s ({})",
            step.number,
            rate_before.text(),
            rate_after.text(),
            by_id(&dom, "lesson-factor").text()
        );

        // Next: the command in three spellings, or the way to Kubernetes.
        let commands = by_id(&dom, "lesson-commands");
        let bridge = by_id(&dom, "lesson-bridge");
        match step.next {
            Some(spellings) => {
                assert!(!is_hidden(&commands) && is_hidden(&bridge));
                for (id, spelling) in ["lesson-just", "lesson-compose", "lesson-kubectl"]
                    .iter()
                    .zip(spellings)
                {
                    assert_eq!(by_id(&dom, id).text(), spelling);
                }
                assert!(!by_id(&dom, "lesson-why").text().is_empty());
            }
            None => {
                assert!(is_hidden(&commands) && !is_hidden(&bridge));
                assert!(is_hidden(&by_id(&dom, "lesson-why")));
                let items: Vec<String> = elements(&bridge.inner, "class", "bridge-item")
                    .iter()
                    .map(Element::text)
                    .collect();
                assert_eq!(items.len(), 2, "{items:?}");
                assert!(items[1].contains("cluster") && items[1].contains("Kubernetes"));
                assert_eq!(
                    by_id(&dom, "lesson-next-title").text(),
                    "Next: from one machine to a cluster"
                );
            }
        }
        assert_eq!(
            by_id(&dom, "bottleneck").attr("data-stage"),
            step.bottleneck
        );
        assert!(is_hidden(&by_id(&dom, "lesson-discovery")));

        if step.id == "plateau" {
            assert!(!is_hidden(&by_id(&dom, "lesson-probes")));
            page_in_discovery_mode_names_no_bottleneck(&chromium, &hidden.url).await;
        }
        before = step.counts;
    }
    class.stop();
    webui.stop().await;
    hidden.stop().await;
}

/// The plateau in discovery mode: no stage marked, no command to scale rng, the probes, and
/// the stages' figures as they are.
async fn page_in_discovery_mode_names_no_bottleneck(chromium: &Path, url: &str) {
    let png = common::artifacts_dir().join("lesson-discovery.png");
    let _ = std::fs::remove_file(&png);
    let (width, height) = LESSON_SHOT;
    run_chromium(chromium, url, Shot::PngSized(&png, width, height)).await;
    check_png(&png);
    let dom = run_chromium(chromium, url, Shot::Dom).await;
    assert_eq!(by_id(&dom, "lesson").attr("data-step"), "plateau");
    assert!(!is_hidden(&by_id(&dom, "lesson-discovery")));
    let verdict = by_id(&dom, "bottleneck");
    assert_eq!(
        (verdict.attr("data-discovery"), verdict.attr("data-stage")),
        ("true", "")
    );
    assert!(
        verdict.text().starts_with("Discovery mode:"),
        "{}",
        verdict.text()
    );
    for stage in ["rng", "hasher", "worker"] {
        assert_eq!(
            by_id(&dom, &format!("stage-{stage}")).attr("data-bottleneck"),
            "false"
        );
    }
    assert!(is_hidden(&by_id(&dom, "lesson-commands")));
    assert!(
        !dom.contains("just scale"),
        "a command to scale in discovery mode"
    );
    let why = by_id(&dom, "lesson-why").text();
    assert!(
        !why.contains("rng") && why.starts_with("Find the stage"),
        "{why}"
    );
    let probes = by_id(&dom, "lesson-probe-list").text();
    assert!(probes.contains("chocominer ping rng"), "{probes}");
    // The raw signals stay: rng's rate against its limit, the hasher's busy.
    assert_eq!(by_id(&dom, "rng-limit").value(), 10.0);
    assert_eq!(by_id(&dom, "rng-rate").value(), 10.0);
    assert_eq!(by_id(&dom, "hasher-busy").value(), 0.5);
}

/// What the browser tests do on a machine without Chromium: fail, saying how to install it.
#[test]
#[should_panic(expected = "chromium not found: these tests need it")]
fn a_missing_chromium_fails_the_browser_tests() {
    let empty = tempfile::tempdir().expect("an empty directory");
    chromium_in(
        None,
        Some(empty.path().as_os_str().to_owned()),
        &empty.path().join("chromium"),
    );
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
