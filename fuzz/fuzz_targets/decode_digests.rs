//! Arbitrary bytes as a digest batch (what a worker receives): refused with a `DecodeError`,
//! or accepted with one digest prefix per number, within the payload limit, and re-encodable.
#![no_main]

use chocominer_codec::{DecodeError, DigestBatch, FORMAT_VERSION};
use chocominer_fuzz::{Bounded, PAYLOAD_LIMITS, check_digest_batch};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Bounded = Bounded;

fuzz_target!(|body: &[u8]| {
    let decoded = PAYLOAD_LIMITS.map(|limit| DigestBatch::decode(body, limit));
    for (result, limit) in decoded.iter().zip(PAYLOAD_LIMITS) {
        match result {
            Ok(batch) => {
                assert_eq!(body.first(), Some(&FORMAT_VERSION));
                check_digest_batch(batch, body, limit);
            }
            Err(DecodeError::UnknownVersion(v)) => assert_ne!(*v, FORMAT_VERSION),
            Err(DecodeError::Empty) => assert!(body.is_empty()),
            Err(DecodeError::Mismatch { numbers, prefixes }) => assert_ne!(numbers, prefixes),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    // A limit only refuses: what the small one accepts, the large one accepts as the same batch.
    let [large, small] = &decoded;
    if let Ok(batch) = small {
        assert_eq!(large.as_ref(), Ok(batch));
    }
});
