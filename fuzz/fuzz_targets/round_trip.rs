//! Batches made by the encoders from arbitrary parts (raw or seeded numbers, any number of
//! bytes, any digest prefixes): each decodes to itself exactly when it is valid, and is refused
//! with the error that names what is wrong otherwise.
#![no_main]

use chocominer_codec::{
    DecodeError, DigestBatch, NUMBER_LEN, NumberBatch, Numbers, PREFIX_LEN, max_batch_for_payload,
};
use chocominer_fuzz::{Bounded, PAYLOAD_LIMITS};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Bounded = Bounded;

struct Parts<'a> {
    seq: u64,
    numbers: Numbers<'a>,
    prefixes: &'a [u8],
}

fn parts<'a>(u: &mut Unstructured<'a>) -> Result<Parts<'a>> {
    let seq = u.arbitrary()?;
    let numbers = if u.arbitrary()? {
        // Seeded counts small enough that valid ones are common; huge ones are expand_seeded's.
        Numbers::Seeded {
            seed: u.arbitrary()?,
            count: u.int_in_range(0..=40)?,
        }
    } else {
        let len = u.arbitrary_len::<u8>()?;
        Numbers::Raw(u.bytes(len)?)
    };
    let len = u.arbitrary_len::<u8>()?;
    let prefixes = u.bytes(len)?;
    Ok(Parts {
        seq,
        numbers,
        prefixes,
    })
}

/// What decoding the numbers must answer: their count, or why they are refused.
fn expected(numbers: &Numbers, limit: usize) -> std::result::Result<usize, DecodeError> {
    let max = max_batch_for_payload(limit, numbers.encoding());
    let count = match numbers {
        Numbers::Raw(bytes) if bytes.len() % NUMBER_LEN != 0 => {
            return Err(DecodeError::Ragged {
                len: bytes.len(),
                item: NUMBER_LEN,
            });
        }
        other => other.count(),
    };
    match count {
        0 => Err(DecodeError::NoItems),
        c if c > max => Err(DecodeError::TooLarge { count: c, max }),
        c => Ok(c),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(Parts {
        seq,
        numbers,
        prefixes,
    }) = parts(&mut Unstructured::new(data))
    else {
        return;
    };
    let number_batch = NumberBatch { seq, numbers };
    let digest_batch = DigestBatch {
        seq,
        numbers,
        prefixes,
    };
    let number_body = number_batch.encode();
    let digest_body = digest_batch.encode();
    for limit in PAYLOAD_LIMITS {
        let count = expected(&numbers, limit);
        assert_eq!(
            NumberBatch::decode(&number_body, limit),
            count.clone().map(|_| number_batch)
        );
        let want = count.and_then(|count| {
            if prefixes.len() % PREFIX_LEN != 0 {
                Err(DecodeError::Ragged {
                    len: prefixes.len(),
                    item: PREFIX_LEN,
                })
            } else if prefixes.is_empty() {
                Err(DecodeError::NoItems)
            } else if prefixes.len() / PREFIX_LEN != count {
                Err(DecodeError::Mismatch {
                    numbers: count,
                    prefixes: prefixes.len() / PREFIX_LEN,
                })
            } else {
                Ok(digest_batch)
            }
        });
        assert_eq!(DigestBatch::decode(&digest_body, limit), want);
    }
});
