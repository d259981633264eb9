//! Seeded batches with any seed and any count, huge ones included (a 38-byte body may claim
//! 4 billion numbers): refused unless 1 ≤ count ≤ the limit, and, when accepted, expanded to
//! exactly that many numbers, which random access agrees with, within the memory bound.
#![no_main]

use chocominer_codec::{DecodeError, NumberBatch, NumberEncoding, Numbers, max_batch_for_payload};
use chocominer_fuzz::{Bounded, PAYLOAD_LIMITS, check_number_batch};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Bounded = Bounded;

fn batch(u: &mut Unstructured) -> Result<(NumberBatch<'static>, usize)> {
    let numbers = Numbers::Seeded {
        seed: u.arbitrary()?,
        count: u.arbitrary()?,
    };
    let batch = NumberBatch {
        seq: u.arbitrary()?,
        numbers,
    };
    Ok((batch, u.arbitrary::<usize>()?))
}

fuzz_target!(|data: &[u8]| {
    let Ok((batch, index)) = batch(&mut Unstructured::new(data)) else {
        return;
    };
    let Numbers::Seeded { seed, count } = batch.numbers else {
        unreachable!()
    };
    let body = batch.encode();
    for limit in PAYLOAD_LIMITS {
        let max = max_batch_for_payload(limit, NumberEncoding::Seeded);
        match NumberBatch::decode(&body, limit) {
            Ok(decoded) => {
                assert_eq!(decoded, batch);
                check_number_batch(&decoded, &body, limit);
                // Any number by index is the same piece of the keystream as in the expansion.
                let i = index % count as usize;
                let mut expected = [0u8; 32];
                let mut seen = 0;
                decoded.numbers.for_each_run(|run| {
                    for number in run.chunks_exact(32) {
                        if seen == i {
                            expected.copy_from_slice(number);
                        }
                        seen += 1;
                    }
                });
                assert_eq!(decoded.numbers.number(i), expected, "seed {seed:?}");
            }
            Err(DecodeError::NoItems) => assert_eq!(count, 0),
            Err(DecodeError::TooLarge { count: c, max: m }) => {
                assert_eq!((c, m), (count as usize, max));
                assert!(c > m);
            }
            Err(other) => panic!("a well-formed seeded batch refused: {other}"),
        }
    }
});
