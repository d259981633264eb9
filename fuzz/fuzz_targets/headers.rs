//! Forged header values (batch id, count, instance, origin, time to live, send time), as
//! anyone who may publish can send: read as metadata or as `None`, never a panic, and what is
//! read writes back to the same.
#![no_main]

use chocominer_codec::{
    BatchHeaders, HEADER_BATCH, HEADER_COUNT, HEADER_INSTANCE, HEADER_ORIGIN, format_sent_at,
    format_ttl, parse_sent_at, parse_ttl,
};
use chocominer_fuzz::Bounded;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Bounded = Bounded;

const NAMES: [&str; 4] = [HEADER_BATCH, HEADER_COUNT, HEADER_INSTANCE, HEADER_ORIGIN];

fn values<'a>(u: &mut Unstructured<'a>) -> Result<([Option<&'a str>; 4], &'a str)> {
    let mut values = [None; 4];
    for value in &mut values {
        *value = u.arbitrary()?;
    }
    Ok((values, u.arbitrary()?))
}

fuzz_target!(|data: &[u8]| {
    let Ok((values, ttl)) = values(&mut Unstructured::new(data)) else {
        return;
    };
    let get = |name: &str| {
        NAMES
            .iter()
            .position(|n| *n == name)
            .and_then(|i| values[i])
    };
    match BatchHeaders::from_lookup(get) {
        Some(headers) => {
            assert_eq!(Some(headers.batch.as_str()), values[0]);
            assert_eq!(values[1].map(str::parse), Some(Ok(headers.count)));
            // Written back and read again: the same metadata.
            let fields = headers.fields();
            let again = BatchHeaders::from_lookup(|name| {
                fields
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_str())
            });
            assert_eq!(again.as_ref(), Some(&headers));
        }
        None => assert!(
            values[0].is_none()
                || values[2].is_none()
                || values[1].is_none_or(|c| c.parse::<usize>().is_err())
        ),
    }
    match parse_ttl(ttl) {
        Some(parsed) => {
            assert!(ttl.bytes().all(|b| b.is_ascii_digit()));
            // The value written for it is the same number, without leading zeros.
            let canonical = ttl.trim_start_matches('0');
            let canonical = if canonical.is_empty() { "0" } else { canonical };
            assert_eq!(format_ttl(parsed), canonical);
        }
        None => assert!(
            ttl.is_empty()
                || !ttl.bytes().all(|b| b.is_ascii_digit())
                || ttl.parse::<u64>().is_err()
        ),
    }
    // A send time is whole milliseconds too, since the epoch: the same number written back,
    // or `None` for one past what the clock holds.
    if let Some(at) = parse_sent_at(ttl) {
        assert_eq!(Some(format_sent_at(at)), parse_ttl(ttl).map(format_ttl));
    }
});
