//! Real stage processes on a test's [`Stack`], and the books they keep: what the tests of
//! faults and attacks share. The books are read from the stages' own stats in InfluxDB once
//! every process has exited (each writes its last point on the way out): every number rng
//! made was judged by a worker or counted lost by exactly one stage, `rng.numbers =
//! worker.hashes + rng.lost + hasher.lost`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use testkit::{POLL, SOON, Stack, StageProcess, as_i64, eventually};

/// Short acknowledgement timeouts, so that batches sent to a frozen stage time out, and are
/// counted lost, well within the freeze.
pub const ACK_TIMEOUT_MS: &str = "2000";
/// rng's pace, numbers per second (one number per batch): more than two hashers take.
pub const RATE: i64 = 200;
/// How long a stage may take to drain and exit on SIGTERM.
pub const DRAIN_WITHIN: Duration = Duration::from_secs(30);

pub struct Bins {
    rng: PathBuf,
    hasher: PathBuf,
    worker: PathBuf,
}

pub async fn bins() -> Bins {
    Bins {
        rng: testkit::cargo_bin_async("rng").await,
        hasher: testkit::cargo_bin_async("hasher").await,
        worker: testkit::cargo_bin_async("worker").await,
    }
}

impl Bins {
    /// Starts a test's stages as processes of `stack`: `W` workers (`w1`, `w2`, …) with
    /// `worker_args` and `H` hashers (`h1`, …) with `hasher_args`, then, once all of those
    /// serve, `R` rngs (`r1`, …) with [`RNG_ARGS`], so that no batch finds nobody to take it.
    /// The counts are those of the arrays the caller takes apart.
    pub async fn spawn<const R: usize, const H: usize, const W: usize>(
        &self,
        stack: &Stack,
        hasher_args: &[&str],
        worker_args: &[&str],
    ) -> ([StageProcess; R], [StageProcess; H], [StageProcess; W]) {
        let workers = replicas(stack, &self.worker, "worker", worker_args);
        let hashers = replicas(stack, &self.hasher, "hasher", hasher_args);
        serving(stack, "worker", W).await;
        serving(stack, "hasher", H).await;
        let rngs = replicas(stack, &self.rng, "rng", RNG_ARGS);
        (rngs, hashers, workers)
    }
}

/// The instance names of `n` replicas of `stage`: its first letter and 1, 2, … (`w1`, `w2`).
pub fn instances(stage: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{}{i}", &stage[..1])).collect()
}

/// `N` replicas of `stage`, run from `bin` with `args`.
pub fn replicas<const N: usize>(
    stack: &Stack,
    bin: &Path,
    stage: &str,
    args: &[&str],
) -> [StageProcess; N] {
    let names = instances(stage, N);
    std::array::from_fn(|i| stack.spawn_process(bin, &names[i], args))
}

/// Waits until the `n` replicas of `stage` serve.
pub async fn serving(stack: &Stack, stage: &str, n: usize) {
    let names = instances(stage, n);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    stack.wait_for_service(stage, &names).await;
}

pub const RNG_ARGS: &[&str] = &[
    "--rate",
    "200",
    "--batch",
    "1",
    "--in-flight",
    "32",
    "--ack-timeout-ms",
    ACK_TIMEOUT_MS,
];
/// 50 numbers per second each.
pub const HASHER_ARGS: &[&str] = &[
    "--delay-ms",
    "20",
    "--concurrency",
    "1",
    "--ack-timeout-ms",
    ACK_TIMEOUT_MS,
];
pub const FAST_HASHER_ARGS: &[&str] = &["--delay-ms", "0", "--ack-timeout-ms", ACK_TIMEOUT_MS];
pub const WORKER_ARGS: &[&str] = &["--ack-timeout-ms", ACK_TIMEOUT_MS];
/// 20 ms a batch (50 batches a second each): a worker always has batches in hand, so one
/// killed takes some with it.
pub const SLOW_WORKER_ARGS: &[&str] = &["--delay-ms", "20", "--ack-timeout-ms", ACK_TIMEOUT_MS];

/// The stages' totals in InfluxDB, in numbers; `expired` in batches, per instance.
#[derive(Debug)]
pub struct Books {
    pub made: i64,
    pub judged: i64,
    pub rng_lost: i64,
    pub hasher_lost: i64,
    pub hasher_expired: BTreeMap<String, i64>,
    pub worker_expired: BTreeMap<String, i64>,
}

impl Books {
    pub async fn read(stack: &Stack) -> Books {
        Books {
            made: stack.sum("rng", "numbers").await,
            judged: stack.sum("worker", "hashes").await,
            rng_lost: stack.sum("rng", "lost").await,
            hasher_lost: stack.sum("hasher", "lost").await,
            hasher_expired: stack.sums_by_instance("hasher", "expired").await,
            worker_expired: stack.sums_by_instance("worker", "expired").await,
        }
    }

    /// Numbers made that were neither judged nor counted lost (negative: counted twice).
    pub fn unaccounted(&self) -> i64 {
        self.made - self.judged - self.rng_lost - self.hasher_lost
    }

    pub fn assert_balanced(&self) {
        self.assert_balanced_within(0);
    }

    /// The books after receiver `instance` of `stage` (a hasher or a worker) was frozen and
    /// thawed: its sender counted what it had sent to it lost, it dropped the batches gone
    /// stale on the way, and it counted twice at most the few batches it had in hand (without
    /// the send time, 74 were counted twice with a hasher frozen, 48 with a worker). A worker
    /// holds at most the hasher's window of 8 batches of one number.
    pub fn assert_frozen_receiver(&self, stage: &str, instance: &str) {
        let (senders_lost, expired) = match stage {
            "hasher" => (self.rng_lost, &self.hasher_expired),
            "worker" => (self.hasher_lost, &self.worker_expired),
            _ => unreachable!("{stage} receives no batches"),
        };
        assert!(
            senders_lost > 0,
            "nothing sent to the frozen {stage}: {self:?}"
        );
        let dropped = expired.get(instance).copied().unwrap_or(0);
        assert!(
            dropped > 0,
            "the thawed {stage} dropped no stale batch: {self:?}"
        );
        self.assert_balanced_within(8);
    }

    /// Balanced, but for at most `twice` numbers counted both judged and lost.
    pub fn assert_balanced_within(&self, twice: i64) {
        assert!(self.made > 0, "{self:?}");
        assert!(
            (-twice..=0).contains(&self.unaccounted()),
            "rng.numbers != worker.hashes + rng.lost + hasher.lost (with {twice} counted twice \
             at most): {self:?}"
        );
    }
}

/// Nanoseconds since the Unix epoch: InfluxDB's time.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

/// Waits until `instance`'s `measurement.field` has grown by `at_least` since `since_ns`.
pub async fn grows(stack: &Stack, measurement: &str, field: &str, instance: &str, since_ns: i64) {
    let query = format!(
        r#"SELECT sum("{field}") FROM "{measurement}" WHERE "instance" = '{instance}' AND time > {since_ns}"#
    );
    let query = &query;
    eventually(
        &format!("{measurement}.{field} of {instance} growing"),
        SOON,
        POLL,
        || async move {
            let rows = stack.rows(query).await;
            let sum = rows.first().map_or(0, |row| as_i64(&row["sum"]));
            (sum >= 10).then_some(sum)
        },
    )
    .await;
}

/// SIGTERMs each process in turn (rngs first, so the later stages drain what is on its way)
/// and checks each exits 0 in time.
pub async fn stop_in_order(processes: &mut [(&str, &mut StageProcess)]) {
    for (name, process) in processes.iter_mut() {
        let status = process.terminate(DRAIN_WITHIN).await;
        assert!(
            status.success(),
            "{name} on SIGTERM: {status:?}\n{}",
            process.log_tail()
        );
    }
}

/// Stops the processes with [`stop_in_order`], then reads the books: each wrote its last point
/// on its way out.
pub async fn stop_and_read(stack: &Stack, processes: &mut [(&str, &mut StageProcess)]) -> Books {
    stop_in_order(processes).await;
    Books::read(stack).await
}
