//! What the end-to-end tests share beyond `testkit`'s pipeline on real servers: the subjects,
//! a plain subscription counting the digests that flow ([`DigestFlow`]), and checks of the
//! points the worker writes.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

pub mod stages;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::Client;
use chocominer_codec::{DigestBatch, HEADER_INSTANCE};
use chocominer_model::nugget::{Nugget, leading_zero_bits};
use futures::StreamExt;
use serde_json::{Map, Value};
use testkit::{as_i64, eventually};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

pub const NUMBERS: &str = "chocominer.numbers";
pub const DIGESTS: &str = "chocominer.digests";
pub const NUGGETS: &str = "chocominer.nuggets";

/// Upper bound on anything counted in a test, for decoding digest batches.
const MAX_BATCH: usize = 1 << 20;

#[derive(Debug, Default)]
struct Counts {
    total: u64,
    by_instance: HashMap<String, u64>,
}

/// A plain (non-queue) subscription on `chocominer.digests` that counts the numbers in every
/// well-formed digest batch, in total and per sending hasher (`Chocominer-Instance`).
///
/// While it is subscribed, a hasher sending to a stopped worker gets no "no responders" (this
/// observer is a subscriber too) and waits for its ack timeout instead: [`DigestFlow::stop`]
/// it before stopping the pipeline when the test counts what was lost at shutdown.
pub struct DigestFlow {
    counts: Arc<Mutex<Counts>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl DigestFlow {
    pub async fn watch(client: &Client) -> DigestFlow {
        let mut digests = client
            .subscribe(DIGESTS)
            .await
            .expect("subscribe to digests");
        // The subscription is in place at the server once the flush returns.
        client.flush().await.expect("flush the subscription");
        let counts = Arc::new(Mutex::new(Counts::default()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let counts = counts.clone();
            async move {
                loop {
                    let message = tokio::select! {
                        message = digests.next() => message,
                        _ = &mut stopped => {
                            let _ = digests.unsubscribe().await;
                            return;
                        }
                    };
                    let Some(message) = message else { return };
                    let Ok(batch) = DigestBatch::decode(&message.payload, MAX_BATCH) else {
                        continue;
                    };
                    let instance = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(HEADER_INSTANCE))
                        .map_or_else(String::new, |v| v.as_str().to_owned());
                    let n = batch.count() as u64;
                    let mut counts = counts.lock().unwrap();
                    counts.total += n;
                    *counts.by_instance.entry(instance).or_default() += n;
                }
            }
        });
        DigestFlow {
            counts,
            stop: Some(stop),
            task,
        }
    }

    /// Unsubscribes, and makes sure the server has taken the unsubscription.
    pub async fn stop(mut self, client: &Client) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the digest observer stops")
            .expect("the digest observer did not panic");
        client.flush().await.expect("flush the unsubscription");
    }

    /// Numbers seen in digest batches so far.
    pub fn total(&self) -> u64 {
        self.counts.lock().unwrap().total
    }

    /// Numbers seen in digest batches sent by hasher `instance`.
    pub fn of(&self, instance: &str) -> u64 {
        let counts = self.counts.lock().unwrap();
        counts.by_instance.get(instance).copied().unwrap_or(0)
    }

    /// Digests per second over a measuring window of `window`.
    pub async fn rate_over(&self, window: Duration) -> f64 {
        let (before, started) = (self.total(), Instant::now());
        sleep(window).await;
        let after = self.total();
        (after - before) as f64 / started.elapsed().as_secs_f64()
    }

    /// Waits until `done(self)` holds.
    pub async fn wait_until(&self, what: &str, within: Duration, done: impl Fn(&Self) -> bool) {
        eventually(what, within, Duration::from_millis(20), || {
            let ok = done(self);
            async move { ok.then_some(()) }
        })
        .await;
    }
}

impl Drop for DigestFlow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `len` bytes that are no batch of any kind, different for each `salt`: their first byte is a
/// format version no reader knows, the rest deterministic noise (xorshift).
pub fn junk(len: usize, salt: u64) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ salt;
    let mut bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    if let Some(version) = bytes.first_mut() {
        *version = chocominer_codec::FORMAT_VERSION.wrapping_add(0x55);
    }
    bytes
}

/// Checks one `nugget` point read from InfluxDB: its digest is SHA-256 of its number, meets
/// `difficulty`, and its `zero_bits` field is right.
pub fn check_nugget_point(row: &Map<String, Value>, difficulty: u32) {
    let number = row["number"].as_str().unwrap_or_else(|| panic!("{row:?}"));
    let digest = row["digest"].as_str().unwrap_or_else(|| panic!("{row:?}"));
    if let Err(e) = Nugget::verify(number, digest, difficulty) {
        panic!("nugget point {row:?} does not verify: {e}");
    }
    let bits = leading_zero_bits(&hex::decode(digest).expect("hex digest"));
    assert_eq!(as_i64(&row["zero_bits"]), i64::from(bits), "{row:?}");
    assert!(bits >= difficulty, "{row:?}");
}

/// Asserts that `times` (ns, ascending) are exactly one second apart: one point per second,
/// none missing, none doubled.
pub fn assert_one_per_second(what: &str, times: &[i64]) {
    const SECOND: i64 = 1_000_000_000;
    assert!(times.len() >= 2, "{what}: only {} points", times.len());
    let gaps: Vec<(i64, i64)> = times
        .windows(2)
        .filter(|w| w[1] - w[0] != SECOND)
        .map(|w| (w[0], w[1] - w[0]))
        .collect();
    assert!(
        gaps.is_empty(),
        "{what}: {} points over {} s; not 1 s apart at (time, step ns): {gaps:?}; all: {times:?}",
        times.len(),
        (times[times.len() - 1] - times[0]) / SECOND,
    );
    assert_eq!(
        times.len() as i64,
        (times[times.len() - 1] - times[0]) / SECOND + 1,
        "{what}"
    );
}
