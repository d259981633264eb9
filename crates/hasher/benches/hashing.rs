//! Micro-benchmarks of the hasher's work (`just bench-micro`): [`hasher::digest_prefixes`] over the
//! full profile's largest seeded and raw batches, in hashes per second, and one plain SHA-256
//! of a 32-byte number for reference (what the rest of a hash costs on top of it).

// One short-run setting for all the micro-benchmarks, kept with the codec's.
#[path = "../../codec/benches/common/mod.rs"]
mod common;

use std::hint::black_box;

use chocominer_codec::{
    CONFIGURED_MAX_PAYLOAD, NUMBER_LEN, NumberEncoding, Numbers, max_batch_for_payload,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

const SEED: [u8; 32] = [7; 32];

fn seeded(count: usize) -> Numbers<'static> {
    Numbers::Seeded {
        seed: SEED,
        count: count as u32,
    }
}

fn digest_prefixes(c: &mut Criterion) {
    let mut group = c.benchmark_group("digest_prefixes");
    let seeded_full = seeded(max_batch_for_payload(
        CONFIGURED_MAX_PAYLOAD,
        NumberEncoding::Seeded,
    ));
    let raw_bytes = seeded(max_batch_for_payload(
        CONFIGURED_MAX_PAYLOAD,
        NumberEncoding::Raw,
    ))
    .to_vec();
    for numbers in [seeded_full, Numbers::Raw(&raw_bytes)] {
        let label = format!("{}-{}", numbers.encoding().name(), numbers.count());
        group.throughput(Throughput::Elements(numbers.count() as u64));
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| hasher::digest_prefixes(black_box(&numbers)))
        });
    }
    group.finish();
}

fn sha256_one(c: &mut Criterion) {
    let number = seeded(1).number(0);
    let mut group = c.benchmark_group("sha256");
    group.throughput(Throughput::Elements(1));
    group.bench_function(
        BenchmarkId::from_parameter(format!("{NUMBER_LEN}-bytes")),
        |b| b.iter(|| Sha256::digest(black_box(&number))),
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::short_runs();
    targets = digest_prefixes, sha256_one
}
criterion_main!(benches);
