//! Arbitrary bytes as a number batch (what a hasher receives): refused with a `DecodeError`,
//! or accepted consistent, within the payload limit, and re-encodable.
#![no_main]

use chocominer_codec::{DecodeError, FORMAT_VERSION, NumberBatch};
use chocominer_fuzz::{Bounded, PAYLOAD_LIMITS, check_number_batch};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Bounded = Bounded;

fuzz_target!(|body: &[u8]| {
    let mut accepted = Vec::new();
    for limit in PAYLOAD_LIMITS {
        match NumberBatch::decode(body, limit) {
            Ok(batch) => {
                assert_eq!(body.first(), Some(&FORMAT_VERSION));
                check_number_batch(&batch, body, limit);
                accepted.push(batch.count());
            }
            Err(DecodeError::UnknownVersion(v)) => {
                assert_ne!(v, FORMAT_VERSION);
                assert_eq!(body.first(), Some(&v));
            }
            Err(DecodeError::Empty) => assert!(body.is_empty()),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    // What fits the small limit fits the large one, with the same count.
    if accepted.len() == 1 {
        assert!(NumberBatch::decode(body, PAYLOAD_LIMITS[0]).is_ok());
    }
});
