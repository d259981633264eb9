//! The two ways to run ChocoMiner, and the default of every knob in each.
//!
//! `demo` (the default) is paced to play the seed's lesson, each stage with a capacity of its
//! own: a worker judges one hash in 300 ms (the original's worker loop, about 3.3 hashes/s),
//! rng makes at most 10 numbers/s per instance, one per batch, and a hasher takes 50 ms per
//! hash, one at a time (20/s). So one of each is held back by the worker (3.3/s), two workers
//! double it, ten reach rng's cap (10/s), three rngs lift it to the hasher's cap (20/s), and
//! a second hasher lifts it again (30/s). `full` removes the simulated costs, sends large
//! batches and hashes on every core, to show how fast the pipeline really goes.
//! Every knob can still be set on its own; a knob left unset takes its profile's default.

use std::time::Duration;

pub use crate::codec::NumberEncoding;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Profile {
    /// Paced for the scaling lesson: a worker 3.3 hashes/s, rng 10 numbers/s, a hasher 20/s.
    #[default]
    Demo,
    /// Flat out: no simulated cost, large batches, all cores.
    Full,
}

/// Default knob values of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// Numbers per second per rng instance; 0 means unlimited.
    pub rng_rate: f64,
    /// Numbers per batch.
    pub rng_batch: usize,
    /// Wire encoding of the numbers.
    pub rng_numbers: NumberEncoding,
    /// Unacknowledged batches an rng instance may have out.
    pub rng_in_flight: usize,
    /// The same with raw numbers, whose batches are large on the wire (32 bytes a number, a
    /// seeded batch is 40 bytes whatever its size): each one out is kept by rng and waits in a
    /// hasher's memory.
    pub rng_in_flight_raw: usize,
    /// Simulated cost of one hash.
    pub hasher_delay: Duration,
    /// Batches a hasher works on at once.
    pub hasher_concurrency: usize,
    /// Unacknowledged digest batches a hasher may have out.
    pub hasher_in_flight: usize,
    /// Batches a hasher takes in to wait for a hashing slot.
    pub hasher_queue: usize,
    /// Leading zero bits that make a nugget.
    pub difficulty: u32,
    /// Simulated cost of judging one hash (the worker judges one batch at a time).
    pub worker_delay: Duration,
    /// How long a sender waits for an acknowledgement before counting the batch as lost.
    pub ack_timeout: Duration,
}

impl Defaults {
    /// Numbers per rng batch for numbers sent as `encoding` on a server whose max payload is
    /// `max_payload`: the profile's batch, lowered to what fits (a digest batch must fit the
    /// payload), so a server with a small max payload still works.
    pub fn rng_batch_for(&self, encoding: NumberEncoding, max_payload: usize) -> usize {
        self.rng_batch
            .min(crate::codec::max_batch_for_payload(max_payload, encoding))
    }

    /// The most batches an rng instance may have out, for numbers sent as `encoding`.
    pub fn rng_in_flight_for(&self, encoding: NumberEncoding) -> usize {
        match encoding {
            NumberEncoding::Raw => self.rng_in_flight_raw,
            NumberEncoding::Seeded => self.rng_in_flight,
        }
    }
}

impl Profile {
    pub fn defaults(self) -> Defaults {
        match self {
            Profile::Demo => Defaults {
                rng_rate: 10.0,
                rng_batch: 1,
                rng_numbers: NumberEncoding::Raw,
                // Enough to keep rng at its rate through the pipeline's latency (a few hundred
                // ms), and small enough that a batch queued behind one 3.3/s worker waits
                // ~5 s, well within the ack timeout.
                rng_in_flight: 16,
                // One number a batch: 16 raw ones are half a kilobyte.
                rng_in_flight_raw: 16,
                hasher_delay: Duration::from_millis(50),
                hasher_concurrency: 1,
                // Ten workers at 300 ms a hash behind one 20/s hasher hold ~6 batches; the
                // rest is room for NATS's random choice among them.
                hasher_in_flight: 16,
                // Eight demo rngs' windows (16 each) on one hasher.
                hasher_queue: 128,
                difficulty: 4,
                worker_delay: Duration::from_millis(300),
                // 16 batches queued at a lone 3.3/s worker wait 4.8 s: stay well above that.
                ack_timeout: Duration::from_secs(10),
            },
            Profile::Full => Defaults {
                rng_rate: 0.0,
                // Seeded batches of 32000 fill a ~1 MB digest batch: fewer, larger messages
                // are what lets NATS keep up (measured when chosen: 8192 → ~6.5 M/s, 32000 →
                // ~11 M/s; with later changes the bench now gets ~20 M/s, docs/performance.md).
                rng_batch: 32_000,
                rng_numbers: NumberEncoding::Seeded,
                rng_in_flight: 16,
                // Half a megabyte a batch. Measured (just bench, raw): 16 → hasher peak RSS
                // 33.6 MB, 8 → 25.8 MB at the same rate (10.2 and 9.7 M/s, within the noise).
                rng_in_flight_raw: 8,
                hasher_delay: Duration::ZERO,
                hasher_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
                hasher_in_flight: 8,
                // Eight full rngs' windows (16 each) on one hasher.
                hasher_queue: 128,
                // About one nugget per second at ~8 M hashes/s.
                difficulty: 23,
                worker_delay: Duration::ZERO,
                ack_timeout: Duration::from_secs(5),
            },
        }
    }
}
