//! Properties of the wire format's decoders, over generated inputs: whatever bytes arrive, a
//! decoder answers with a batch or a `DecodeError`, never a panic; a batch it accepts holds what
//! its sender meant, and no more numbers than the payload limit allows; every batch an encoder
//! makes decodes to itself.

use chocominer_codec::{
    CONFIGURED_MAX_PAYLOAD as MAX_PAYLOAD, DecodeError, DigestBatch, NUMBER_LEN, NumberBatch,
    NumberEncoding, Numbers, PREFIX_LEN, max_batch_for_payload,
};
use proptest::prelude::*;

fn raw_numbers() -> impl Strategy<Value = Vec<u8>> {
    (1usize..64).prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n * NUMBER_LEN))
}

/// A decoded batch's numbers are consistent: their count is within the limit (the callers check
/// that a digest batch has one prefix per number).
fn check_numbers(numbers: &Numbers) {
    let max = max_batch_for_payload(MAX_PAYLOAD, numbers.encoding());
    assert!(
        numbers.count() >= 1 && numbers.count() <= max,
        "{numbers:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(batch) = NumberBatch::decode(&body, MAX_PAYLOAD) {
            check_numbers(&batch.numbers);
        }
        if let Ok(batch) = DigestBatch::decode(&body, MAX_PAYLOAD) {
            check_numbers(&batch.numbers);
            prop_assert_eq!(batch.prefixes.len(), batch.count() * PREFIX_LEN);
            prop_assert_eq!(batch.prefixes().len(), batch.count());
        }
    }

    #[test]
    fn raw_batches_round_trip(seq in any::<u64>(), numbers in raw_numbers()) {
        let batch = NumberBatch { seq, numbers: Numbers::Raw(&numbers) };
        let body = batch.encode();
        prop_assert_eq!(NumberBatch::decode(&body, MAX_PAYLOAD), Ok(batch));
        // Prefixes taken from the numbers: each different, so that order shows.
        let prefixes: Vec<u8> = numbers
            .chunks_exact(NUMBER_LEN)
            .flat_map(|n| n[..PREFIX_LEN].iter().copied())
            .collect();
        let batch = DigestBatch { seq, numbers: Numbers::Raw(&numbers), prefixes: &prefixes };
        let body = batch.encode();
        let decoded = DigestBatch::decode(&body, MAX_PAYLOAD);
        prop_assert_eq!(&decoded, &Ok(batch));
        let words: Vec<u32> = decoded.unwrap().prefixes().collect();
        let expected: Vec<u32> = numbers
            .chunks_exact(NUMBER_LEN)
            .map(|n| u32::from_be_bytes(n[..PREFIX_LEN].try_into().unwrap()))
            .collect();
        prop_assert_eq!(words, expected);
    }

    #[test]
    fn seeded_counts_are_held_to_the_limit(seed in any::<[u8; 32]>(), count in any::<u32>()) {
        let batch = NumberBatch { seq: 1, numbers: Numbers::Seeded { seed, count } };
        let body = batch.encode();
        let max = max_batch_for_payload(MAX_PAYLOAD, NumberEncoding::Seeded);
        match NumberBatch::decode(&body, MAX_PAYLOAD) {
            Ok(decoded) => {
                prop_assert_eq!(decoded, batch);
                prop_assert!(count >= 1 && count as usize <= max);
            }
            Err(DecodeError::NoItems) => prop_assert_eq!(count, 0),
            Err(DecodeError::TooLarge { count: c, max: m }) => {
                prop_assert_eq!((c, m), (count as usize, max));
                prop_assert!(c > m);
            }
            Err(other) => prop_assert!(false, "{other}"),
        }
    }

    #[test]
    fn damaged_batches_never_panic(
        numbers in raw_numbers(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bits in 1u8..=255,
    ) {
        let count = numbers.len() / NUMBER_LEN;
        let prefixes = vec![0u8; count * PREFIX_LEN];
        let body = DigestBatch { seq: 9, numbers: Numbers::Raw(&numbers), prefixes: &prefixes }
            .encode()
            .to_vec();
        // Truncated anywhere: refused (every byte of a valid body counts).
        let truncated = &body[..cut.index(body.len())];
        prop_assert!(DigestBatch::decode(truncated, MAX_PAYLOAD).is_err());
        // A byte changed anywhere: refused, or a batch that is still consistent.
        let mut flipped = body.clone();
        let at = flip.index(flipped.len());
        flipped[at] ^= bits;
        if let Ok(batch) = DigestBatch::decode(&flipped, MAX_PAYLOAD) {
            check_numbers(&batch.numbers);
            prop_assert_eq!(batch.prefixes.len(), batch.count() * PREFIX_LEN);
            prop_assert_eq!(batch.prefixes().len(), batch.count());
        }
        // A prefix too few or too many: a mismatch.
        let mut longer = prefixes.clone();
        longer.extend_from_slice(&[0; PREFIX_LEN]);
        for (wrong, have) in [(&prefixes[PREFIX_LEN..], count - 1), (&longer[..], count + 1)] {
            let body =
                DigestBatch { seq: 9, numbers: Numbers::Raw(&numbers), prefixes: wrong }.encode();
            let want = if have == 0 {
                DecodeError::NoItems
            } else {
                DecodeError::Mismatch { numbers: count, prefixes: have }
            };
            prop_assert_eq!(DigestBatch::decode(&body, MAX_PAYLOAD), Err(want));
        }
        // Part of a prefix: ragged.
        let body = DigestBatch {
            seq: 9,
            numbers: Numbers::Raw(&numbers),
            prefixes: &longer[..longer.len() - 1],
        }
        .encode();
        prop_assert_eq!(
            DigestBatch::decode(&body, MAX_PAYLOAD),
            Err(DecodeError::Ragged { len: longer.len() - 1, item: PREFIX_LEN })
        );
    }
}
