//! A classroom's stack as InfluxDB sees it, for the lesson tests: the points a demo-profile
//! stack of so many rngs, hashers and workers writes, second by second, as the stages do, so
//! the webui reads the lesson's steps, and what each scale did, in real time.
//!
//! The figures follow the demo profile's capacities (rng 10 numbers/s, a hasher 20 hashes/s, a
//! worker one hash in 300 ms): the pipeline runs at its smallest stage's capacity, the stage
//! before a slow one has its window full, a hasher is as busy as its share of the rate. Counts
//! are spread over the seconds so that every 5 seconds (the figures' window) hold the same
//! total: the rates the webui computes are exact, whatever second its window ends on.

use std::collections::HashMap;
use std::time::Duration;

use chocominer_influx::Client;
use chocominer_status::lesson::Counts;
use serde_json::Value;
use testkit::{DB, Influx, eventually};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{POLL, get_json};

/// Seconds over which the counts are spread: the figures' window.
const SPREAD: i64 = chocominer_status::WINDOW_SECONDS;
/// Per instance, numbers or hashes per [`SPREAD`] seconds: rng 10/s, a hasher 20/s.
const RNG_CAP: i64 = 10 * SPREAD;
const HASHER_CAP: i64 = 20 * SPREAD;
/// Batches one rng or one hasher may have unacknowledged (demo profile).
const WINDOW: i64 = 16;
/// The demo's difficulty: a nugget every 16 hashes on average.
const DIFFICULTY: i64 = 4;
const SECOND_NS: i64 = 1_000_000_000;
/// How long a scale may take to be seen and settle: the webui's settling time, plus a first
/// point and a loaded machine.
pub const SETTLED_WITHIN: Duration = Duration::from_secs(40);

pub fn counts(rng: usize, hasher: usize, worker: usize) -> Counts {
    Counts {
        rng,
        hasher,
        worker,
    }
}

/// What the pipeline does per [`SPREAD`] seconds with `counts`: the rate of every stage (hashes
/// or numbers), and whether rng's and the hashers' windows are full.
struct Flow {
    total: i64,
    rng_full: bool,
    hasher_full: bool,
    /// The hashers' share of the time spent hashing.
    busy: f64,
    /// The workers' share of the time spent judging.
    worker_busy: f64,
}

/// The hashes/s of a stack of `counts`.
pub fn rate(c: Counts) -> f64 {
    flow(c).total as f64 / SPREAD as f64
}

/// What instance `i` of `n` sharing `total` writes in the [`SPREAD`] seconds from second `t`:
/// its share, whatever `t`.
pub fn spread_over_a_window(total: i64, n: i64, i: i64, t: i64) -> i64 {
    (t..t + SPREAD).map(|t| part(total, n, i, t)).sum()
}

fn flow(c: Counts) -> Flow {
    let (r, h, w) = (c.rng as i64, c.hasher as i64, c.worker as i64);
    let rng_cap = RNG_CAP * r;
    let hasher_cap = HASHER_CAP * h;
    // 300 ms a hash: 50/3 hashes a worker every 5 s, rounded.
    let worker_cap = (SPREAD * 10 * w + 1) / 3;
    let total = rng_cap.min(hasher_cap).min(worker_cap);
    Flow {
        total,
        // A stage waits when the one after it is slower: its batches stay unacknowledged.
        rng_full: total < rng_cap,
        hasher_full: total == worker_cap && total < hasher_cap,
        busy: if h == 0 {
            0.0
        } else {
            total as f64 / hasher_cap as f64
        },
        // 0.3 s a hash.
        worker_busy: if w == 0 {
            0.0
        } else {
            (total as f64 * 0.3 / (SPREAD * w) as f64).min(1.0)
        },
    }
}

/// Instance `i`'s (0-based) part of `total` shared over `n` instances, in second `t`: the
/// shares differ by at most one, and each instance's seconds of any [`SPREAD`] in a row add up
/// to its share.
fn part(total: i64, n: i64, i: i64, t: i64) -> i64 {
    let share = total / n + i64::from(i < total % n);
    let k = t.rem_euclid(SPREAD);
    share * (k + 1) / SPREAD - share * k / SPREAD
}

/// The lines of second `t` (seconds since the epoch) with `counts`; `found` counts each
/// worker's hashes, for its nuggets.
fn lines(c: Counts, t: i64, found: &mut HashMap<usize, i64>) -> String {
    let flow = flow(c);
    let ns = t * SECOND_NS;
    let mut lines = String::new();
    for i in 0..c.rng {
        let numbers = part(flow.total, c.rng as i64, i as i64, t);
        let in_flight = if flow.rng_full { WINDOW } else { 1 };
        // No hasher: rng holds the batches and waits.
        let waiting = if c.hasher == 0 { 2 } else { 0 };
        lines += &format!(
            "rng,instance=rng-{n} numbers={numbers}i,lost=0i,in_flight={in_flight}i,\
             window={WINDOW}i,rate_limit=10,waiting={waiting}i {ns}\n",
            n = i + 1
        );
    }
    for i in 0..c.hasher {
        let hashes = part(flow.total, c.hasher as i64, i as i64, t);
        let in_flight = if flow.hasher_full { WINDOW } else { 1 };
        let waiting = if c.worker == 0 { 2 } else { 0 };
        lines += &format!(
            "hasher,instance=hasher-{n} hashes={hashes}i,busy={busy},lost=0i,rejected=0i,\
             in_flight={in_flight}i,window={WINDOW}i,waiting={waiting}i {ns}\n",
            n = i + 1,
            busy = flow.busy
        );
    }
    for i in 0..c.worker {
        let hashes = part(flow.total, c.worker as i64, i as i64, t);
        // Workers started together would all find their nuggets in the same seconds: each
        // starts at a different point of its 16 hashes.
        let before = found.entry(i).or_insert(i as i64 * 7 % 16);
        let nuggets = (*before + hashes) / 16 - *before / 16;
        *before += hashes;
        lines += &format!(
            "worker,instance=worker-{n} hashes={hashes}i,nuggets={nuggets}i,rejected=0i,\
             forged=0i,difficulty={DIFFICULTY}i,busy={busy} {ns}\n",
            n = i + 1,
            busy = flow.worker_busy
        );
    }
    lines
}

/// The stack's points, written every second for the instances it has now.
pub struct Classroom {
    counts: watch::Sender<Counts>,
    writer: JoinHandle<()>,
}

impl Classroom {
    /// Starts writing, from this second on, the points of `counts` (the database must exist).
    pub fn start(influx: &Influx, counts: Counts) -> Classroom {
        let client: Client = influx.client(DB);
        let (tx, rx) = watch::channel(counts);
        let writer = tokio::spawn(write_every_second(client, rx));
        Classroom { counts: tx, writer }
    }

    /// From the next second, the points of `counts`: what `just scale` does.
    pub fn scale(&self, counts: Counts) {
        self.counts.send_replace(counts);
    }

    pub fn stop(self) {
        self.writer.abort();
    }
}

impl Drop for Classroom {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

async fn write_every_second(client: Client, counts: watch::Receiver<Counts>) {
    let mut found = HashMap::new();
    let mut next = now_ns().div_euclid(SECOND_NS);
    loop {
        // Each second once, late ones too (a loaded machine): a missing second would change
        // the rates.
        let now = now_ns();
        let mut batch = String::new();
        while next <= now.div_euclid(SECOND_NS) {
            batch += &lines(*counts.borrow(), next, &mut found);
            next += 1;
        }
        if !batch.is_empty() {
            client
                .write(&[batch])
                .await
                .unwrap_or_else(|e| panic!("the classroom's points: {e}"));
        }
        // Just after the next second begins.
        let wait = next * SECOND_NS + 50_000_000 - now_ns();
        tokio::time::sleep(Duration::from_nanos(wait.max(0) as u64)).await;
    }
}

fn now_ns() -> i64 {
    chocominer_process::now_ns()
}

/// One step of the lesson as the class plays it.
pub struct Step {
    pub counts: Counts,
    pub id: &'static str,
    pub number: u64,
    /// The stage the bottleneck rule names there.
    pub bottleneck: &'static str,
    /// The next command: just, docker compose, kubectl.
    pub next: Option<[&'static str; 3]>,
}

/// The lesson's path, from one of each to every stage scaled.
pub fn lesson_path() -> [Step; 5] {
    [
        Step {
            counts: counts(1, 1, 1),
            id: "one_of_each",
            number: 1,
            bottleneck: "worker",
            next: Some([
                "just scale worker 2",
                "docker compose up -d --scale worker=2",
                "kubectl -n chocominer scale deployment/worker --replicas=2",
            ]),
        },
        Step {
            counts: counts(1, 1, 2),
            id: "more_workers",
            number: 2,
            bottleneck: "worker",
            next: Some([
                "just scale worker 10",
                "docker compose up -d --scale worker=10",
                "kubectl -n chocominer scale deployment/worker --replicas=10",
            ]),
        },
        Step {
            counts: counts(1, 1, 10),
            id: "plateau",
            number: 3,
            bottleneck: "rng",
            next: Some([
                "just scale rng 3",
                "docker compose up -d --scale worker=10 --scale rng=3",
                "kubectl -n chocominer scale deployment/rng --replicas=3",
            ]),
        },
        Step {
            counts: counts(3, 1, 10),
            id: "more_rngs",
            number: 4,
            bottleneck: "hasher",
            next: Some([
                "just scale hasher 2",
                "docker compose up -d --scale worker=10 --scale rng=3 --scale hasher=2",
                "kubectl -n chocominer scale deployment/hasher --replicas=2",
            ]),
        },
        Step {
            counts: counts(3, 2, 10),
            id: "more_hashers",
            number: 5,
            bottleneck: "rng",
            next: None,
        },
    ]
}

/// Polls the summary at `url` until its lesson reads `counts` and `ready` holds for it.
pub async fn summary_when(url: &str, counts: Counts, ready: impl Fn(&Value) -> bool) -> Value {
    let want = serde_json::to_value(counts).unwrap();
    eventually(
        &format!("the webui's lesson at {want}"),
        SETTLED_WITHIN,
        POLL,
        || async {
            let (status, s) = get_json(url).await;
            (status == 200 && s["lesson"]["counts"] == want && ready(&s)).then_some(s)
        },
    )
    .await
}

/// The summary once the webui has seen the change to `counts` and knows the rate after it.
pub async fn settled(url: &str, counts: Counts) -> Value {
    let want = serde_json::to_value(counts).unwrap();
    summary_when(url, counts, |s| {
        let change = &s["lesson"]["change"];
        change["to"] == want && change["rate_after"].is_number()
    })
    .await
}
