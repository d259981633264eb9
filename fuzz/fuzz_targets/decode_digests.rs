//! Arbitrary bytes as a digest batch (what a worker receives): refused with a `DecodeError`,
//! or accepted with one digest per number, within the payload limit, and re-encodable.
#![no_main]

use chocominer_codec::{DecodeError, DigestBatch, FORMAT_VERSION};
use chocominer_fuzz::{Bounded, PAYLOAD_LIMITS, check_digest_batch};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Bounded = Bounded;

fuzz_target!(|body: &[u8]| {
    for limit in PAYLOAD_LIMITS {
        match DigestBatch::decode(body, limit) {
            Ok(batch) => {
                assert_eq!(body.first(), Some(&FORMAT_VERSION));
                check_digest_batch(&batch, body, limit);
            }
            Err(DecodeError::UnknownVersion(v)) => assert_ne!(v, FORMAT_VERSION),
            Err(DecodeError::Empty) => assert!(body.is_empty()),
            Err(DecodeError::Mismatch { numbers, digests }) => assert_ne!(numbers, digests),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
