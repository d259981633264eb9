//! Micro-benchmarks of the wire format (`just bench-micro`): encoding and decoding each batch
//! kind at the full profile's largest batches and at the demo's one number, and the expansion
//! of a seeded batch into its numbers. Throughput is in numbers per second.

mod common;

use std::hint::black_box;

use bytes::Bytes;
use chocominer_codec::{
    CONFIGURED_MAX_PAYLOAD as MAX_PAYLOAD, DecodeError, DigestBatch, NumberBatch, NumberEncoding,
    Numbers, PREFIX_LEN, max_batch_for_payload,
};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};

const SEED: [u8; 32] = [7; 32];

/// One batch as a stage sends it: its numbers, and digest prefixes to go with them.
struct Case {
    label: String,
    numbers: Numbers<'static>,
    prefixes: &'static [u8],
}

impl Case {
    fn new(encoding: NumberEncoding, count: usize) -> Case {
        let seeded = Numbers::Seeded {
            seed: SEED,
            count: count as u32,
        };
        let numbers = match encoding {
            // Leaked so that the batches, which borrow their bytes, can live in the cases;
            // a few MiB, once per bench process.
            NumberEncoding::Raw => Numbers::Raw(seeded.to_vec().leak()),
            NumberEncoding::Seeded => seeded,
        };
        // The codec does not look into the prefixes: any bytes of the right length do.
        let prefixes = vec![0x5a; count * PREFIX_LEN].leak();
        let label = format!("{}-{count}", encoding.name());
        Case {
            label,
            numbers,
            prefixes,
        }
    }

    /// The full profile's largest batch of each encoding (what rng sizes them to under the
    /// configured max payload), and the demo's one-number batch of each.
    fn all() -> Vec<Case> {
        [NumberEncoding::Raw, NumberEncoding::Seeded]
            .into_iter()
            .flat_map(|encoding| {
                let full = max_batch_for_payload(MAX_PAYLOAD, encoding);
                [Case::new(encoding, full), Case::new(encoding, 1)]
            })
            .collect()
    }

    fn throughput(&self) -> Throughput {
        Throughput::Elements(self.numbers.count() as u64)
    }
}

/// Benchmarks `encode` and the `decode` of what it made, for one case.
fn encode_decode(
    group: &mut BenchmarkGroup<WallTime>,
    case: &Case,
    encode: impl Fn() -> Bytes,
    decode: impl Fn(&[u8]) -> Result<usize, DecodeError>,
) {
    group.throughput(case.throughput());
    group.bench_function(BenchmarkId::new("encode", &case.label), |b| b.iter(&encode));
    let body = encode();
    assert_eq!(decode(&body), Ok(case.numbers.count()));
    group.bench_function(BenchmarkId::new("decode", &case.label), |b| {
        b.iter(|| decode(black_box(&body)))
    });
}

fn number_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("NumberBatch");
    for case in Case::all() {
        let batch = NumberBatch {
            seq: 1,
            numbers: case.numbers,
        };
        encode_decode(
            &mut group,
            &case,
            || black_box(&batch).encode(),
            |body| NumberBatch::decode(body, MAX_PAYLOAD).map(|b| b.count()),
        );
    }
    group.finish();
}

fn digest_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("DigestBatch");
    for case in Case::all() {
        let batch = DigestBatch {
            seq: 1,
            numbers: case.numbers,
            prefixes: case.prefixes,
        };
        encode_decode(
            &mut group,
            &case,
            || black_box(&batch).encode(),
            |body| DigestBatch::decode(body, MAX_PAYLOAD).map(|b| b.count()),
        );
    }
    group.finish();
}

/// What a seeded batch costs its receivers before any hashing: the ChaCha8 keystream.
fn expand(c: &mut Criterion) {
    let mut group = c.benchmark_group("Numbers");
    let case = Case::new(
        NumberEncoding::Seeded,
        max_batch_for_payload(MAX_PAYLOAD, NumberEncoding::Seeded),
    );
    group.throughput(case.throughput());
    group.bench_function(BenchmarkId::new("for_each_run", &case.label), |b| {
        b.iter(|| {
            black_box(&case.numbers).for_each_run(|run| {
                black_box(run);
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::short_runs();
    targets = number_batch, digest_batch, expand
}
criterion_main!(benches);
