//! The in-process limit: on every core at once, make batches with rng's `NumberMaker` and hash
//! them with the hasher's `digest_prefixes`, the very code the stages run, with no NATS in between.
//! What the pipeline's rate is compared with.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chocominer_codec::NumberEncoding;
use rng::NumberMaker;

use crate::model::Limit;

/// Hashes `encoding` batches of `batch` numbers on `threads` threads for `time`; the numbers
/// hashed and the rate of all threads together.
pub fn measure(encoding: NumberEncoding, batch: usize, threads: usize, time: Duration) -> Limit {
    let counts: Vec<(u64, Duration)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| scope.spawn(move || hash_for(encoding, batch, time)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or((0, Duration::ZERO)))
            .collect()
    });
    let hashes: u64 = counts.iter().map(|(n, _)| n).sum();
    // Each thread finishes the batch it is on after `time`: its own count over its own time.
    let rate = counts
        .iter()
        .map(|(n, took)| *n as f64 / took.as_secs_f64().max(1e-9))
        .sum();
    let seconds = counts
        .iter()
        .map(|(_, took)| took.as_secs_f64())
        .fold(0.0, f64::max);
    Limit {
        encoding: encoding.name().into(),
        batch,
        threads: counts.len(),
        seconds,
        hashes,
        rate,
    }
}

/// One thread's loop: numbers hashed until `time` has passed, and how long that took.
fn hash_for(encoding: NumberEncoding, batch: usize, time: Duration) -> (u64, Duration) {
    let mut maker = NumberMaker::new(None, encoding, batch);
    let start = Instant::now();
    let mut hashed = 0u64;
    while start.elapsed() < time {
        let numbers = maker.make();
        // Kept, so the hashing cannot be optimised away.
        black_box(hasher::digest_prefixes(black_box(&numbers)));
        hashed += numbers.count() as u64;
    }
    (hashed, start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_hashes_whole_batches() {
        let limit = measure(NumberEncoding::Raw, 100, 2, Duration::from_millis(50));
        assert_eq!((limit.threads, limit.encoding.as_str()), (2, "raw"));
        assert!(
            limit.hashes > 0 && limit.hashes.is_multiple_of(100),
            "{limit:?}"
        );
        assert!(limit.rate > 0.0 && limit.seconds >= 0.05, "{limit:?}");
    }
}
