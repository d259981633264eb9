//! What the webui tests share beyond `testkit`'s pipeline on real servers: the webui
//! in-process on a port of its own, HTTP requests, the points of three runs written by the
//! tests, a classroom's stack scaled step by step ([`lesson`]), headless Chromium, and a little
//! reading of the DOM Chromium dumps.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

pub mod lesson;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chocominer_process::Shutdown;
use serde_json::{Map, Value};
use testkit::{DB, Influx, Service, parse};
use tokio::net::TcpListener;
use tokio::time::timeout;

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(200);
/// How long one Chromium run may take (a loaded 2-core machine, other builds running).
const CHROMIUM_WITHIN: Duration = Duration::from_secs(90);
/// Virtual time the page gets before Chromium dumps or shoots it: a few polls of the page.
const VIRTUAL_TIME_MS: u32 = 5000;

/// One Chromium at a time: each takes most of a core while it starts.
static CHROMIUM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The webui in-process, listening on a port of its own on 127.0.0.1.
pub struct WebUi {
    pub url: String,
    service: Service<webui::Report>,
}

impl WebUi {
    pub async fn start(influx: &Influx) -> WebUi {
        WebUi::start_with(influx, &[]).await
    }

    /// With `args` too (e.g. `--discovery`).
    pub async fn start_with(influx: &Influx, extra: &[&str]) -> WebUi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the webui");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        // The reader's credentials, as the dashboard is deployed.
        let mut args = vec!["webui".to_owned()];
        args.extend(influx.reader_args());
        args.extend(extra.iter().map(|a| a.to_string()));
        let config: webui::Config = parse(&args);
        let service = Service::spawn("webui", &Shutdown::new(), |shutdown| {
            webui::serve(listener, config, shutdown)
        });
        WebUi { url, service }
    }

    /// Stops the server gracefully and returns its report.
    pub async fn stop(self) -> webui::Report {
        self.service.stop().await
    }
}

/// `GET url`: status, content type and body.
pub async fn get(url: &str) -> (u16, String, String) {
    let response = testkit::http_client()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (status, content_type, body)
}

/// `GET url` as JSON, with the status.
pub async fn get_json(url: &str) -> (u16, Value) {
    let (status, _, body) = get(url).await;
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {url}: {e} in HTTP {status} body {body}"));
    (status, json)
}

/// Rows of an InfluxQL query against the test's database.
pub async fn rows(influx: &Influx, q: &str) -> Vec<Map<String, Value>> {
    influx.rows(DB, q).await
}

/// A number from a row (0 for null or missing).
pub fn number(row: Option<&Map<String, Value>>, column: &str) -> f64 {
    row.and_then(|r| r.get(column))
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// Where test artifacts go: `<target>/test-artifacts`, created if missing.
pub fn artifacts_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target>/tmp")
        .to_path_buf();
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Chromium for the browser tests: `$CHROMIUM`, else `chromium` on `PATH`, else
/// `/usr/bin/chromium`. Panics when there is none: a browser test that passed without a browser
/// would claim what nobody checked (CI installs it with `scripts/install-deps.sh
/// --with-browser`; `cargo test -p webui --test api` runs the tests that need no browser).
pub fn chromium() -> PathBuf {
    chromium_in(
        std::env::var_os("CHROMIUM"),
        std::env::var_os("PATH"),
        Path::new("/usr/bin/chromium"),
    )
}

/// [`chromium`] with `$CHROMIUM`, `$PATH` and the last resort given.
pub fn chromium_in(var: Option<OsString>, path: Option<OsString>, last_resort: &Path) -> PathBuf {
    if let Some(path) = var {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "CHROMIUM={} is not a file", path.display());
        return path;
    }
    let on_path = path
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("chromium"));
    on_path
        .chain([last_resort.to_path_buf()])
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium not found: these tests need it (install it with `bash \
                 scripts/install-deps.sh --with-browser`, or set CHROMIUM to its path; \
                 `cargo test -p webui --test api` runs the tests that need no browser)"
            )
        })
}

/// What a headless Chromium run should produce.
pub enum Shot<'a> {
    /// The DOM after the page's scripts ran, on stdout.
    Dom,
    /// A PNG of a 1280×900 window.
    Png(&'a Path),
    /// A PNG of a window this wide and high (the docs' screenshots are kept small).
    PngSized(&'a Path, u32, u32),
}

/// Runs headless Chromium on `url` (on 127.0.0.1: nothing else is ever loaded) with a fresh
/// profile, giving the page [`VIRTUAL_TIME_MS`] of virtual time (a few of its one-second
/// polls) first. Returns stdout: the serialized DOM for [`Shot::Dom`].
pub async fn run_chromium(chromium: &Path, url: &str, shot: Shot<'_>) -> String {
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "Chromium only visits the test's own servers, not {url}"
    );
    let _one_at_a_time = CHROMIUM.lock().await;
    let profile = tempfile::Builder::new()
        .prefix("webui-chromium-")
        .tempdir()
        .expect("temp dir for Chromium's profile");
    let mut cmd = tokio::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-proxy-server",
        "--hide-scrollbars",
        "--mute-audio",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"));
    match shot {
        Shot::Dom => {
            cmd.arg("--dump-dom");
        }
        Shot::Png(path) => {
            cmd.arg(format!("--screenshot={}", path.display()))
                .arg("--window-size=1280,900");
        }
        Shot::PngSized(path, width, height) => {
            cmd.arg(format!("--screenshot={}", path.display()))
                .arg(format!("--window-size={width},{height}"));
        }
    }
    cmd.arg(url)
        .env("HOME", profile.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", chromium.display()));
    let output = match timeout(CHROMIUM_WITHIN, child.wait_with_output()).await {
        Ok(output) => output.expect("wait for Chromium"),
        Err(_) => panic!("Chromium did not finish within {CHROMIUM_WITHIN:?} on {url}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Chromium on {url} exited with {}; stderr:\n{stderr}",
        output.status
    );
    stdout
}

/// An element of a DOM dumped by Chromium, found by its `id` or `data-testid`.
#[derive(Debug, Clone)]
pub struct Element {
    pub attrs: HashMap<String, String>,
    /// The inner HTML.
    pub inner: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> &str {
        self.attrs
            .get(name)
            .unwrap_or_else(|| panic!("no attribute {name} on {self:?}"))
    }

    /// The text inside, tags removed.
    pub fn text(&self) -> String {
        unescape(&strip_tags(&self.inner))
    }

    /// `data-value` as a number.
    pub fn value(&self) -> f64 {
        let v = self.attr("data-value");
        v.parse()
            .unwrap_or_else(|e| panic!("data-value {v:?} of {self:?}: {e}"))
    }
}

/// Every element whose attribute `attr` is `value`, in document order. Chromium serializes
/// attributes as `name="value"` with `&`, `"`, `<`, `>` escaped, which is all this reads.
pub fn elements(dom: &str, attr: &str, value: &str) -> Vec<Element> {
    let needle = format!(" {attr}=\"{value}\"");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = dom[from..].find(&needle).map(|i| i + from) {
        from = at + needle.len();
        let open = dom[..at].rfind('<').expect("an attribute is inside a tag");
        let close = at + dom[at..].find('>').expect("a tag ends");
        let tag = &dom[open + 1..close];
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let attrs = parse_attrs(&tag[name.len()..]);
        // Elements of this page never nest their own kind, so the next end tag is ours.
        let end = format!("</{name}>");
        let inner_end = dom[close..].find(&end).map_or(close + 1, |i| close + i);
        found.push(Element {
            attrs,
            inner: dom[close + 1..inner_end].to_owned(),
        });
    }
    found
}

/// The element with `id`; panics with the DOM if there is none.
pub fn by_id(dom: &str, id: &str) -> Element {
    elements(dom, "id", id)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no element with id {id:?} in the DOM:\n{dom}"))
}

fn parse_attrs(mut rest: &str) -> HashMap<String, String> {
    let mut attrs = HashMap::new();
    loop {
        rest = rest.trim_start();
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq].trim();
        let after = &rest[eq + 1..];
        let Some(after) = after.strip_prefix('"') else {
            break;
        };
        let Some(end) = after.find('"') else { break };
        attrs.insert(name.to_owned(), unescape(&after[..end]));
        rest = &after[end + 1..];
    }
    attrs
}

fn strip_tags(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Seconds `(first, last)` of one run, in seconds since the epoch.
pub type Run = (i64, i64);

/// Line protocol for three runs of one worker: `old`, written before workers reported a
/// difficulty (10 hashes/s, a nugget a second); `demo` at difficulty 4 (10 hashes/s,
/// `demo_nuggets` a second); `full` at difficulty 23 (1000 hashes/s, a nugget every ten
/// seconds) beside an rng holding two batches (no hasher listens) and a hasher with 3 of its 8
/// digest batches out. Nothing between the runs: those seconds have no data.
pub fn three_runs(old: Run, demo: Run, full: Run, demo_nuggets: i64) -> String {
    const SECOND_NS: i64 = 1_000_000_000;
    let mut lines = String::new();
    for t in old.0..=old.1 {
        lines += &format!(
            "worker,instance=worker-1 hashes=10i,nuggets=1i {}\n",
            t * SECOND_NS
        );
    }
    for t in demo.0..=demo.1 {
        lines += &format!(
            "worker,instance=worker-1 hashes=10i,nuggets={demo_nuggets}i,difficulty=4i {}\n",
            t * SECOND_NS
        );
    }
    for t in full.0..=full.1 {
        lines += &format!(
            "worker,instance=worker-1 hashes=1000i,nuggets={}i,difficulty=23i {t}\n\
             rng,instance=rng-1 numbers=1000i,lost=0i,in_flight=16i,window=16i,rate_limit=0,waiting=2i {t}\n\
             hasher,instance=hasher-1 hashes=1000i,busy=0.5,in_flight=3i,window=8i,waiting=0i {t}\n",
            i64::from(t % 10 == 0),
            t = t * SECOND_NS
        );
    }
    lines
}
