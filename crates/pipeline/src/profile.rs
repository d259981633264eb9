//! The two ways to run ChocoMiner, and the default of every knob in each (a knob given wins).
//!
//! In `demo`, one of each stage is held back by the worker (3.3 hashes/s), two workers double
//! it, ten reach rng's cap (10/s), three rngs the hasher's (20/s), and a second hasher lifts it
//! again (30/s). `full` removes the simulated costs, sends large batches and hashes on every
//! core.

use std::time::Duration;

use chocominer_codec::{NumberEncoding, max_batch_for_payload};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Profile {
    /// Paced for the scaling lesson: a worker 3.3 hashes/s, rng 10 numbers/s, a hasher 20/s.
    #[default]
    Demo,
    /// Flat out: no simulated cost, large batches, all cores.
    Full,
}

/// Default knob values of a profile, each of the stage option it names (`rng_rate`: `--rate`).
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub rng_rate: f64,
    pub rng_batch: usize,
    pub rng_numbers: NumberEncoding,
    pub rng_in_flight: usize,
    /// With raw numbers, whose batches are large on the wire and wait in a hasher's memory.
    pub rng_in_flight_raw: usize,
    pub hasher_delay: Duration,
    pub hasher_concurrency: usize,
    pub hasher_in_flight: usize,
    pub hasher_queue: usize,
    pub difficulty: u32,
    pub worker_delay: Duration,
    pub ack_timeout: Duration,
}

impl Defaults {
    /// The profile's rng batch, lowered so that its digest batch fits `max_payload`.
    pub fn rng_batch_for(&self, encoding: NumberEncoding, max_payload: usize) -> usize {
        self.rng_batch
            .min(max_batch_for_payload(max_payload, encoding))
    }

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
                // Near the most a 1 MB message allows (32,736 seeded, 29,098 raw): fewer, larger
                // messages let NATS keep up (measured when chosen: 8192 → ~6.5 M/s, 32000 →
                // ~11 M/s).
                rng_batch: 32_000,
                rng_numbers: NumberEncoding::Seeded,
                rng_in_flight: 16,
                // Nearly a megabyte a batch. Measured (just bench, raw): 8 → hasher peak RSS
                // 36-39 MB, 4 → 27 MB at the same rate (0.24 and 0.23 of the limit).
                rng_in_flight_raw: 4,
                hasher_delay: Duration::ZERO,
                // Two batches a core: one hashing, one ready, so no core waits on a batch's
                // bookkeeping. Measured (just bench, seeded, 2 cores): 2 → 0.55-0.58 of the
                // limit with a tenth of the CPU idle, 3 → 0.64, 4 → 0.62-0.66.
                hasher_concurrency: 2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
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
