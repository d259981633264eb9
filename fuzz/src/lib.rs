//! What every fuzz target shares: the payload limits it decodes under, the memory bound that
//! follows from them, enforced by a counting global allocator, and the checks of a decoded
//! batch.
//!
//! "No allocation beyond the configured limit" is checked by the fuzzer itself: every target
//! installs [`Bounded`], which aborts the run (libFuzzer saves the input as a crash) when one
//! allocation is larger than [`MAX_ALLOCATION`] or the bytes live at once exceed [`MAX_LIVE`].
//! libFuzzer's own memory (C++ `malloc`) is not counted; only what Rust code allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use chocominer_codec::{
    CONFIGURED_MAX_PAYLOAD, DigestBatch, NUMBER_LEN, NumberBatch, Numbers, PREFIX_LEN,
    max_batch_for_payload, prefix_of,
};

/// The limits bodies are decoded under, large first: the configured max payload, what the
/// stages get, and a small one, under which inputs of a few KB (all libFuzzer makes) can be
/// too large.
pub const PAYLOAD_LIMITS: [usize; 2] = [CONFIGURED_MAX_PAYLOAD, 2048];

/// The largest single allocation allowed: one max payload. The largest a target makes is an
/// accepted seeded batch expanded (`to_vec`, in [`check_numbers`]): `max_batch_for_payload × 32`
/// bytes, `(payload - 1024) / 32 × 32`, less than the payload it must fit.
pub const MAX_ALLOCATION: usize = CONFIGURED_MAX_PAYLOAD;
/// The most bytes allocated at once: one expanded batch, plus the same again for the
/// input's copies (bodies re-encoded, header values), which are a few KB.
pub const MAX_LIVE: usize = 2 * CONFIGURED_MAX_PAYLOAD;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting; see the module docs.
pub struct Bounded;

impl Bounded {
    fn admit(size: usize) {
        if size > MAX_ALLOCATION {
            fail("one allocation", size, MAX_ALLOCATION);
        }
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        if live > MAX_LIVE {
            fail("live allocations", live, MAX_LIVE);
        }
    }
}

/// Stops the run: an abort, which libFuzzer reports as a crash and saves the input of. Not a
/// panic: unwinding from inside the allocator is not allowed.
fn fail(what: &str, size: usize, bound: usize) -> ! {
    // Formatting integers into stderr does not allocate.
    eprintln!("memory bound exceeded: {what} of {size} bytes, bound {bound}");
    std::process::abort();
}

// SAFETY: every call is passed on to `System` unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::admit(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::admit(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the new block in addition to the old one, as both exist for a moment.
        Self::admit(new_size);
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        let freed = if new.is_null() {
            new_size
        } else {
            layout.size()
        };
        LIVE.fetch_sub(freed, Ordering::Relaxed);
        new
    }
}

/// A decoded batch's numbers hold what was promised: at least one, no more than the limit
/// allows, each reachable by index and all of them by expansion.
pub fn check_numbers(numbers: &Numbers, max_payload: usize) {
    let count = numbers.count();
    let max = max_batch_for_payload(max_payload, numbers.encoding());
    assert!(
        (1..=max).contains(&count),
        "{count} numbers, limit {max}: {numbers:?}"
    );
    let mut expanded = 0;
    numbers.for_each_run(|run| {
        assert_eq!(run.len() % NUMBER_LEN, 0, "a run of {} bytes", run.len());
        expanded += run.len() / NUMBER_LEN;
    });
    assert_eq!(expanded, count);
    // Random access agrees with the expansion (first and last: the boundaries).
    let all = numbers.to_vec();
    assert_eq!(all.len(), count * NUMBER_LEN);
    for i in [0, count - 1] {
        assert_eq!(numbers.number(i), all[i * NUMBER_LEN..(i + 1) * NUMBER_LEN]);
    }
}

/// An accepted number batch is consistent and encodes to a body that decodes to it again.
pub fn check_number_batch(batch: &NumberBatch, body: &[u8], max_payload: usize) {
    check_numbers(&batch.numbers, max_payload);
    let again = batch.encode();
    // Decoding may accept longer encodings of the same integers, never shorter ones.
    assert!(again.len() <= body.len());
    assert_eq!(NumberBatch::decode(&again, max_payload).as_ref(), Ok(batch));
}

/// An accepted digest batch is consistent (one digest prefix per number, read as the bytes
/// say) and round-trips.
pub fn check_digest_batch(batch: &DigestBatch, body: &[u8], max_payload: usize) {
    check_numbers(&batch.numbers, max_payload);
    assert_eq!(batch.prefixes.len(), batch.count() * PREFIX_LEN);
    assert_eq!(batch.prefixes().len(), batch.count());
    let bytes = batch.prefixes.chunks_exact(PREFIX_LEN);
    assert!(batch.prefixes().zip(bytes).all(|(p, b)| p == prefix_of(b)));
    let again = batch.encode();
    assert!(again.len() <= body.len());
    assert_eq!(DigestBatch::decode(&again, max_payload).as_ref(), Ok(batch));
}
