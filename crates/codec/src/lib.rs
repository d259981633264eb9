//! The wire format of batches, every byte that crosses NATS: one format-version byte, then a
//! bincode (2.x, standard config) struct whose numbers and digest prefixes are flat runs of
//! fixed-size items, borrowed from the payload when decoded. Numbers travel raw or seeded
//! ([`Numbers`]); a digest batch carries the first [`PREFIX_LEN`] bytes of each digest, all
//! that judging needs, and the worker computes the whole digest of the rare candidate
//! (docs/architecture.md says why). NATS headers carry readable metadata for people watching
//! with `nats sub`; the body alone is authoritative. Every decoder takes untrusted bytes: it
//! answers with a value or a [`DecodeError`], never a panic, and nothing it accepts costs more
//! memory than the payload limit it is decoded under (`fuzz/` checks both).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bincode::{BorrowDecode, Encode};
use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// Bumped whenever the body layout changes; a receiver rejects versions it does not know.
pub const FORMAT_VERSION: u8 = 2;
/// Length of a random number, in bytes.
pub const NUMBER_LEN: usize = 32;
/// Length of a SHA-256 digest, in bytes.
pub const DIGEST_LEN: usize = 32;
/// Bytes of each digest a digest batch carries: its first 32 bits, which judge every
/// difficulty up to 32 bits by themselves (the full profile's is 23). Version 1 carried whole
/// digests, 8 times the bytes on the bus for the same hashes.
pub const PREFIX_LEN: usize = 4;
/// Room kept in a message for headers and framing when sizing batches to the server's limit.
const HEADROOM: usize = 1024;
/// The max payload ChocoMiner's nats-server is configured with (`nats/nats-server.conf`, the
/// default too): what tests and fuzz targets decode under; the stages use what the server says.
pub const CONFIGURED_MAX_PAYLOAD: usize = 1024 * 1024;

/// Header: `<instance>/<seq>` of the batch, unique in a pipeline.
pub const HEADER_BATCH: &str = "Chocominer-Batch";
/// Header: how many numbers the batch carries.
pub const HEADER_COUNT: &str = "Chocominer-Count";
/// Header: the instance that sent this message.
pub const HEADER_INSTANCE: &str = "Chocominer-Instance";
/// Header: on digest batches, the rng batch the numbers came from.
pub const HEADER_ORIGIN: &str = "Chocominer-Origin";
/// Header: milliseconds the sender waits for the acknowledgement before counting the batch
/// as lost; a receiver drops a batch it could not finish in that time.
pub const HEADER_TTL_MS: &str = "Chocominer-Ttl-Ms";
/// Header: when the sender put the batch on its way, in milliseconds since the Unix epoch by
/// its wall clock: a receiver reads from it how long the batch waited to reach it.
pub const HEADER_SENT_MS: &str = "Chocominer-Sent-Ms";

fn config() -> impl bincode::config::Config {
    // Bodies never exceed the server's max payload; the limit only guards the decoder.
    bincode::config::standard().with_limit::<{ 64 * 1024 * 1024 }>()
}

/// The numbers of a batch: the bytes themselves, or a seed whose keystream is the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, BorrowDecode)]
pub enum Numbers<'a> {
    /// `count × 32` bytes.
    Raw(&'a [u8]),
    /// The first `count × 32` bytes of ChaCha8's keystream for `seed`.
    Seeded { seed: [u8; 32], count: u32 },
}

/// Numbers expanded from a seeded batch per step: small enough to stay in cache.
pub const EXPAND_CHUNK: usize = 64;

impl<'a> Numbers<'a> {
    pub fn count(&self) -> usize {
        match self {
            Numbers::Raw(bytes) => bytes.len() / NUMBER_LEN,
            Numbers::Seeded { count, .. } => *count as usize,
        }
    }

    pub fn encoding(&self) -> NumberEncoding {
        match self {
            Numbers::Raw(_) => NumberEncoding::Raw,
            Numbers::Seeded { .. } => NumberEncoding::Seeded,
        }
    }

    /// Checks the batch; a batch larger than its digest batch could carry is refused.
    fn validate(&self, max_payload: usize) -> Result<usize, DecodeError> {
        let max = max_batch_for_payload(max_payload, self.encoding());
        match self {
            Numbers::Raw(bytes) => item_count(bytes, NUMBER_LEN, max),
            Numbers::Seeded { count, .. } => within(*count as usize, max),
        }
    }

    /// Calls `f` with consecutive runs of whole numbers (32 bytes each), in order: the raw
    /// bytes as they are, or a seeded batch expanded [`EXPAND_CHUNK`] numbers at a time.
    pub fn for_each_run(&self, mut f: impl FnMut(&[u8])) {
        match self {
            Numbers::Raw(bytes) => f(bytes),
            Numbers::Seeded { seed, count } => {
                let mut stream = ChaCha8Rng::from_seed(*seed);
                let mut buf = [0u8; EXPAND_CHUNK * NUMBER_LEN];
                let count = *count as usize;
                for done in (0..count).step_by(EXPAND_CHUNK) {
                    let run = &mut buf[..(count - done).min(EXPAND_CHUNK) * NUMBER_LEN];
                    stream.fill_bytes(run);
                    f(run);
                }
            }
        }
    }

    /// Number `index` of the batch (`index < count`).
    pub fn number(&self, index: usize) -> [u8; NUMBER_LEN] {
        let mut number = [0u8; NUMBER_LEN];
        self.copy_run(index, &mut number);
        number
    }

    /// Writes the numbers from `first` on into `out` (whole numbers; `first + out.len() / 32`
    /// at most the count): a seeded run is expanded from its place in the keystream.
    pub fn copy_run(&self, first: usize, out: &mut [u8]) {
        match self {
            Numbers::Raw(bytes) => {
                out.copy_from_slice(&bytes[first * NUMBER_LEN..][..out.len()]);
            }
            Numbers::Seeded { seed, .. } => {
                let mut stream = ChaCha8Rng::from_seed(*seed);
                // The keystream is addressed in 32-bit words: 8 per number.
                stream.set_word_pos(first as u128 * (NUMBER_LEN as u128 / 4));
                stream.fill_bytes(out);
            }
        }
    }

    /// All the numbers as bytes (copies; for tools and tests, not the hot path).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.count() * NUMBER_LEN);
        self.for_each_run(|run| all.extend_from_slice(run));
        all
    }
}

/// A batch of random numbers, as rng sends it to the hashers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, BorrowDecode)]
pub struct NumberBatch<'a> {
    /// Per-sender sequence number: gaps show lost batches.
    pub seq: u64,
    pub numbers: Numbers<'a>,
}

/// A batch of numbers with the prefixes of their SHA-256 digests, as a hasher sends it to the
/// workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, BorrowDecode)]
pub struct DigestBatch<'a> {
    /// Per-sender sequence number of the hasher that sent it.
    pub seq: u64,
    /// The numbers, in the encoding they came in: the worker computes a candidate's digest.
    pub numbers: Numbers<'a>,
    /// `count × PREFIX_LEN` bytes: prefix `i` is the start of SHA-256 of number `i`.
    pub prefixes: &'a [u8],
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    Empty,
    UnknownVersion(u8),
    Malformed(String),
    Trailing(usize),
    Ragged { len: usize, item: usize },
    Mismatch { numbers: usize, prefixes: usize },
    TooLarge { count: usize, max: usize },
    NoItems,
}

// Written out rather than derived with thiserror: a proc-macro (and syn) less to build in the
// fuzz targets' sanitizer build.
impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => write!(f, "empty body"),
            DecodeError::UnknownVersion(v) => write!(
                f,
                "unknown format version {v} (this build reads {FORMAT_VERSION})"
            ),
            DecodeError::Malformed(why) => write!(f, "malformed body: {why}"),
            DecodeError::Trailing(n) => write!(f, "{n} trailing bytes after the batch"),
            DecodeError::Ragged { len, item } => write!(
                f,
                "a run of {len} bytes is not a whole number of {item}-byte items"
            ),
            DecodeError::Mismatch { numbers, prefixes } => {
                write!(f, "{numbers} numbers but {prefixes} digest prefixes")
            }
            DecodeError::TooLarge { count, max } => write!(
                f,
                "batch of {count} items is larger than the limit of {max}"
            ),
            DecodeError::NoItems => write!(f, "empty batch"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// How rng encodes the numbers of a batch on the wire (see [`Numbers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum NumberEncoding {
    /// The 32 bytes of every number: what `nats sub` shows as is.
    Raw,
    /// A 32-byte ChaCha8 seed whose keystream is the batch: 32 bytes per batch on the wire.
    Seeded,
}

impl NumberEncoding {
    /// How settings and reports spell it (`RNG_NUMBERS`, `--numbers`): `raw` or `seeded`.
    pub fn name(self) -> &'static str {
        match self {
            NumberEncoding::Raw => "raw",
            NumberEncoding::Seeded => "seeded",
        }
    }
}

/// The largest batch (in numbers) that fits a message of `max_payload` bytes on both legs: raw,
/// its digest batch (36 bytes a number); seeded, its numbers written out (32 bytes a number),
/// so that a batch expanded, or hashed, costs no more than a raw one of the same payload.
pub fn max_batch_for_payload(max_payload: usize, encoding: NumberEncoding) -> usize {
    let per_number = match encoding {
        NumberEncoding::Raw => NUMBER_LEN + PREFIX_LEN,
        NumberEncoding::Seeded => NUMBER_LEN,
    };
    (max_payload.saturating_sub(HEADROOM) / per_number).max(1)
}

fn encode<T: Encode>(value: &T, payload_len: usize) -> Bytes {
    let mut body = Vec::with_capacity(1 + 20 + payload_len);
    body.push(FORMAT_VERSION);
    bincode::encode_into_std_write(value, &mut body, config())
        .expect("encoding into a Vec cannot fail");
    Bytes::from(body)
}

fn decode<'a, T: BorrowDecode<'a, ()>>(body: &'a [u8]) -> Result<T, DecodeError> {
    let (&version, rest) = body.split_first().ok_or(DecodeError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let (value, used) = bincode::borrow_decode_from_slice(rest, config())
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != rest.len() {
        return Err(DecodeError::Trailing(rest.len() - used));
    }
    Ok(value)
}

fn item_count(run: &[u8], item: usize, max: usize) -> Result<usize, DecodeError> {
    if !run.len().is_multiple_of(item) {
        return Err(DecodeError::Ragged {
            len: run.len(),
            item,
        });
    }
    within(run.len() / item, max)
}

/// `count` items, refused unless there are some and at most `max`.
fn within(count: usize, max: usize) -> Result<usize, DecodeError> {
    match count {
        0 => Err(DecodeError::NoItems),
        count if count > max => Err(DecodeError::TooLarge { count, max }),
        count => Ok(count),
    }
}

fn raw_len(numbers: &Numbers) -> usize {
    match numbers {
        Numbers::Raw(bytes) => bytes.len(),
        Numbers::Seeded { .. } => NUMBER_LEN,
    }
}

impl<'a> NumberBatch<'a> {
    pub fn encode(&self) -> Bytes {
        encode(self, raw_len(&self.numbers))
    }

    /// Decodes and validates a body, refusing a batch too large to hand on within `max_payload`.
    pub fn decode(body: &'a [u8], max_payload: usize) -> Result<Self, DecodeError> {
        let batch: NumberBatch = decode(body)?;
        batch.numbers.validate(max_payload)?;
        Ok(batch)
    }

    pub fn count(&self) -> usize {
        self.numbers.count()
    }
}

impl<'a> DigestBatch<'a> {
    pub fn encode(&self) -> Bytes {
        encode(self, raw_len(&self.numbers) + self.prefixes.len())
    }

    /// Decodes and validates a body (see [`NumberBatch::decode`]).
    pub fn decode(body: &'a [u8], max_payload: usize) -> Result<Self, DecodeError> {
        let batch: DigestBatch = decode(body)?;
        let numbers = batch.numbers.validate(max_payload)?;
        let prefixes = item_count(batch.prefixes, PREFIX_LEN, usize::MAX)?;
        if numbers != prefixes {
            return Err(DecodeError::Mismatch { numbers, prefixes });
        }
        Ok(batch)
    }

    pub fn count(&self) -> usize {
        self.numbers.count()
    }

    /// The digest prefixes, in order, each as the big-endian word it is (so its
    /// `leading_zeros` are the digest's, up to 32): prefix `i` belongs to
    /// `self.numbers.number(i)`.
    pub fn prefixes(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.prefixes.chunks_exact(PREFIX_LEN).map(prefix_of)
    }

    /// Prefix `index` (`index < count`), as [`prefixes`](Self::prefixes) yields it.
    pub fn prefix(&self, index: usize) -> u32 {
        prefix_of(&self.prefixes[index * PREFIX_LEN..])
    }
}

/// The prefix a digest batch carries for `digest` (at least [`PREFIX_LEN`] bytes), as
/// [`DigestBatch::prefixes`] reads it.
pub fn prefix_of(digest: &[u8]) -> u32 {
    u32::from_be_bytes(digest[..PREFIX_LEN].try_into().expect("PREFIX_LEN bytes"))
}

/// Room before the numbers of a [`DigestBody`] for what is known last: the version byte and
/// the sequence number (a u64 takes at most 9 bytes as bincode's varint).
const SEQ_ROOM: usize = 1 + 10;

/// A digest batch's body built in place, the same bytes as [`DigestBatch::encode`]: each prefix
/// written straight into the message, the sequence number, known last, put in front at the end.
/// Copying a digest vector in was about a sixth of the hasher's CPU time at full speed (version
/// 1, whole digests).
pub struct DigestBody {
    buf: Vec<u8>,
    /// Where the prefixes begin in `buf`.
    prefixes_at: usize,
}

impl DigestBody {
    /// A body for the digest prefixes of `numbers` (carried as they came), zero until written.
    pub fn new(numbers: &Numbers) -> DigestBody {
        let prefixes_len = numbers.count() * PREFIX_LEN;
        let mut buf = Vec::with_capacity(SEQ_ROOM + raw_len(numbers) + 16 + prefixes_len);
        buf.resize(SEQ_ROOM, 0);
        // As bincode lays out a `DigestBatch` after its `seq`: the numbers, then the prefixes as
        // a slice (its length as a u64, then its bytes).
        bincode::encode_into_std_write((numbers, prefixes_len as u64), &mut buf, config())
            .expect("encoding into a Vec cannot fail");
        let prefixes_at = buf.len();
        buf.resize(prefixes_at + prefixes_len, 0);
        DigestBody { buf, prefixes_at }
    }

    /// The prefixes, `count × PREFIX_LEN` bytes: prefix `i` is for number `i`.
    pub fn prefixes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.prefixes_at..]
    }

    /// The encoded batch, with its sequence number (no copy of the prefixes).
    pub fn finish(mut self, seq: u64) -> Bytes {
        let mut head = [0u8; SEQ_ROOM];
        head[0] = FORMAT_VERSION;
        let seq_len = bincode::encode_into_slice(seq, &mut head[1..], config())
            .expect("a u64 fits in 10 bytes");
        let start = SEQ_ROOM - (1 + seq_len);
        self.buf[start..SEQ_ROOM].copy_from_slice(&head[..1 + seq_len]);
        Bytes::from(self.buf).slice(start..)
    }
}

/// The readable metadata of a batch, carried in NATS headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeaders {
    pub batch: String,
    pub count: usize,
    pub instance: String,
    pub origin: Option<String>,
}

impl BatchHeaders {
    pub fn new(instance: &str, seq: u64, count: usize) -> Self {
        BatchHeaders {
            batch: batch_id(instance, seq),
            count,
            instance: instance.to_owned(),
            origin: None,
        }
    }

    /// The headers to write, name and value, in order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            (HEADER_BATCH, self.batch.clone()),
            (HEADER_COUNT, self.count.to_string()),
            (HEADER_INSTANCE, self.instance.clone()),
        ];
        if let Some(origin) = &self.origin {
            fields.push((HEADER_ORIGIN, origin.clone()));
        }
        fields
    }

    /// Reads the headers `get` finds by name: `None` if one is missing or unreadable. Values are
    /// copied as they are, whatever they hold: a reader shows them escaped.
    pub fn from_lookup<'v>(get: impl Fn(&str) -> Option<&'v str>) -> Option<Self> {
        Some(BatchHeaders {
            batch: get(HEADER_BATCH)?.to_owned(),
            count: get(HEADER_COUNT)?.parse().ok()?,
            instance: get(HEADER_INSTANCE)?.to_owned(),
            origin: get(HEADER_ORIGIN).map(str::to_owned),
        })
    }
}

#[cfg(feature = "nats")]
impl BatchHeaders {
    pub fn to_header_map(&self) -> async_nats::HeaderMap {
        let mut headers = async_nats::HeaderMap::new();
        for (name, value) in self.fields() {
            headers.insert(name, value.as_str());
        }
        headers
    }

    /// Reads what is there (see [`from_lookup`](Self::from_lookup)).
    pub fn from_header_map(headers: &async_nats::HeaderMap) -> Option<Self> {
        Self::from_lookup(|name| headers.get(name).map(|v| v.as_str()))
    }
}

/// The value of `Chocominer-Ttl-Ms` for a time to live, in whole milliseconds.
pub fn format_ttl(ttl: Duration) -> String {
    ttl.as_millis().to_string()
}

/// A `Chocominer-Ttl-Ms` value: whole milliseconds, decimal digits only. `None` for anything
/// else, a value past `u64::MAX` included (as without the header: no time to live).
pub fn parse_ttl(value: &str) -> Option<Duration> {
    // `u64::from_str` also takes a leading `+`, which no sender writes.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u64>().ok().map(Duration::from_millis)
}

/// `Chocominer-Sent-Ms` for a moment: whole milliseconds since the Unix epoch (0 before it).
pub fn format_sent_at(at: SystemTime) -> String {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis())
        .to_string()
}

/// A `Chocominer-Sent-Ms` value as [`format_sent_at`] writes it, if the clock can hold it.
pub fn parse_sent_at(value: &str) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(parse_ttl(value)?)
}

/// The id of a batch: the sending instance and its sequence number.
pub fn batch_id(instance: &str, seq: u64) -> String {
    format!("{instance}/{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A max payload under which raw batches of up to `n` numbers (seeded: a few more) are
    /// accepted.
    fn room(n: usize) -> usize {
        HEADROOM + n * (NUMBER_LEN + PREFIX_LEN)
    }

    fn items(n: usize, fill: u8) -> Vec<u8> {
        (0..n * NUMBER_LEN).map(|i| fill ^ i as u8).collect()
    }

    #[test]
    fn number_batch_round_trips() {
        let numbers = items(3, 7);
        let batch = NumberBatch {
            seq: 42,
            numbers: Numbers::Raw(&numbers),
        };
        let body = batch.encode();
        assert_eq!(body[0], FORMAT_VERSION);
        let back = NumberBatch::decode(&body, room(10)).unwrap();
        assert_eq!(back, batch);
        assert_eq!(back.count(), 3);
        assert_eq!(back.numbers.number(2), numbers[64..96]);
        assert_eq!(back.numbers.to_vec(), numbers);
    }

    #[test]
    fn digest_batch_round_trips() {
        let numbers = items(2, 1);
        let prefixes = [0, 0, 0x01, 0xff, 0x80, 0, 0, 2];
        let batch = DigestBatch {
            seq: u64::MAX,
            numbers: Numbers::Raw(&numbers),
            prefixes: &prefixes,
        };
        let body = batch.encode();
        let back = DigestBatch::decode(&body, room(2)).unwrap();
        assert_eq!(back, batch);
        assert_eq!(back.prefixes().collect::<Vec<_>>(), [0x1ff, 0x8000_0002]);
        assert_eq!(back.prefixes().next().unwrap().leading_zeros(), 23);
        assert_eq!(back.prefix(1), 0x8000_0002);
        assert_eq!(prefix_of(&prefixes[4..]), 0x8000_0002);
        assert_eq!(back.numbers.number(1), numbers[32..]);
    }

    #[test]
    fn a_digest_body_is_the_digest_batch_encoded() {
        let raw = items(3, 5);
        let prefixes = &items(1, 11)[..3 * PREFIX_LEN];
        for numbers in [
            Numbers::Raw(&raw),
            Numbers::Seeded {
                seed: [4; 32],
                count: 3,
            },
        ] {
            for seq in [
                0,
                1,
                250,
                251,
                65_535,
                65_536,
                u32::MAX as u64 + 1,
                u64::MAX,
            ] {
                let mut body = DigestBody::new(&numbers);
                assert_eq!(body.prefixes_mut().len(), prefixes.len());
                body.prefixes_mut().copy_from_slice(prefixes);
                let expected = DigestBatch {
                    seq,
                    numbers,
                    prefixes,
                }
                .encode();
                assert_eq!(body.finish(seq), expected, "seq {seq}, {numbers:?}");
            }
        }
    }

    #[test]
    fn bad_bytes_are_refused() {
        let numbers = items(2, 3);
        let good = NumberBatch {
            seq: 1,
            numbers: Numbers::Raw(&numbers),
        }
        .encode();
        assert_eq!(NumberBatch::decode(&[], room(10)), Err(DecodeError::Empty));
        assert_eq!(
            NumberBatch::decode(&[9, 1, 2], room(10)),
            Err(DecodeError::UnknownVersion(9))
        );
        assert!(matches!(
            NumberBatch::decode(&good[..good.len() - 1], room(10)),
            Err(DecodeError::Malformed(_))
        ));
        let mut trailing = good.to_vec();
        trailing.push(0);
        assert_eq!(
            NumberBatch::decode(&trailing, room(10)),
            Err(DecodeError::Trailing(1))
        );
        assert_eq!(
            NumberBatch::decode(&good, room(1)),
            Err(DecodeError::TooLarge { count: 2, max: 1 })
        );
        let ragged = NumberBatch {
            seq: 1,
            numbers: Numbers::Raw(&numbers[..40]),
        }
        .encode();
        assert_eq!(
            NumberBatch::decode(&ragged, room(10)),
            Err(DecodeError::Ragged { len: 40, item: 32 })
        );
        let empty = NumberBatch {
            seq: 1,
            numbers: Numbers::Raw(&[]),
        }
        .encode();
        assert_eq!(
            NumberBatch::decode(&empty, room(10)),
            Err(DecodeError::NoItems)
        );
        let no_seeded = NumberBatch {
            seq: 1,
            numbers: Numbers::Seeded {
                seed: [1; 32],
                count: 0,
            },
        };
        assert_eq!(
            NumberBatch::decode(&no_seeded.encode(), room(10)),
            Err(DecodeError::NoItems)
        );
        let big_seeded = NumberBatch {
            seq: 1,
            numbers: Numbers::Seeded {
                seed: [1; 32],
                count: 11,
            },
        };
        assert_eq!(
            NumberBatch::decode(&big_seeded.encode(), room(9)),
            Err(DecodeError::TooLarge { count: 11, max: 10 })
        );
        // A digest body is not a number body, and the other way round.
        let one_prefix = DigestBatch {
            seq: 1,
            numbers: Numbers::Raw(&numbers),
            prefixes: &numbers[..PREFIX_LEN],
        }
        .encode();
        assert_eq!(
            DigestBatch::decode(&one_prefix, room(10)),
            Err(DecodeError::Mismatch {
                numbers: 2,
                prefixes: 1
            })
        );
        let ragged_prefixes = DigestBatch {
            seq: 1,
            numbers: Numbers::Raw(&numbers),
            prefixes: &numbers[..7],
        }
        .encode();
        assert_eq!(
            DigestBatch::decode(&ragged_prefixes, room(10)),
            Err(DecodeError::Ragged { len: 7, item: 4 })
        );
        assert!(DigestBatch::decode(&good, room(10)).is_err());
        // A length prefix claiming far more than the body holds must fail, not allocate.
        let huge = [
            FORMAT_VERSION,
            1,
            0xFD,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0x7F,
        ];
        assert!(matches!(
            NumberBatch::decode(&huge, room(10)),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn garbage_never_panics() {
        // Deterministic pseudo-random garbage of many lengths.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..2000 {
            let body: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = NumberBatch::decode(&body, room(100));
            let _ = DigestBatch::decode(&body, room(100));
        }
    }

    #[test]
    fn seeded_numbers_expand_like_the_keystream() {
        let seed = [7u8; 32];
        let count = EXPAND_CHUNK * 2 + 5;
        let numbers = Numbers::Seeded {
            seed,
            count: count as u32,
        };
        let mut expected = vec![0u8; count * NUMBER_LEN];
        ChaCha8Rng::from_seed(seed).fill_bytes(&mut expected);
        let all = numbers.to_vec();
        assert_eq!(all, expected);
        // Random access agrees with the stream, across chunk boundaries too.
        for i in [0, 1, EXPAND_CHUNK - 1, EXPAND_CHUNK, count - 1] {
            assert_eq!(
                numbers.number(i),
                expected[i * 32..(i + 1) * 32],
                "number {i}"
            );
        }
        let mut run = [0u8; 3 * NUMBER_LEN];
        numbers.copy_run(EXPAND_CHUNK - 1, &mut run);
        assert_eq!(
            run,
            expected[(EXPAND_CHUNK - 1) * 32..(EXPAND_CHUNK + 2) * 32]
        );
        let raw = Numbers::Raw(&expected);
        raw.copy_run(EXPAND_CHUNK - 1, &mut run);
        assert_eq!(
            run,
            expected[(EXPAND_CHUNK - 1) * 32..(EXPAND_CHUNK + 2) * 32]
        );
        let body = NumberBatch { seq: 3, numbers }.encode();
        assert!(body.len() < 50, "a seeded batch is {} bytes", body.len());
        assert_eq!(
            NumberBatch::decode(&body, room(count)).unwrap().numbers,
            numbers
        );
    }

    #[test]
    fn headers_round_trip() {
        let mut h = BatchHeaders::new("rng-1", 5, 8192);
        h.origin = Some("rng-0/4".into());
        assert_eq!(h.batch, "rng-1/5");
        let fields = h.fields();
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(BatchHeaders::from_lookup(get), Some(h.clone()));
        assert_eq!(BatchHeaders::from_lookup(|_| None), None);
        // A count that is not a count: the metadata is unreadable, not a panic.
        let forged = |name: &str| Some(if name == HEADER_COUNT { "-1" } else { "x" });
        assert_eq!(BatchHeaders::from_lookup(forged), None);
        #[cfg(feature = "nats")]
        {
            assert_eq!(BatchHeaders::from_header_map(&h.to_header_map()), Some(h));
            let empty = async_nats::HeaderMap::new();
            assert_eq!(BatchHeaders::from_header_map(&empty), None);
        }
    }

    #[test]
    fn sent_at_values_are_whole_milliseconds_since_the_epoch() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(format_sent_at(at), "1795000000123");
        assert_eq!(parse_sent_at(&format_sent_at(at)), Some(at));
        let now = SystemTime::now();
        let parsed = parse_sent_at(&format_sent_at(now)).unwrap();
        assert!(now.duration_since(parsed).unwrap() < Duration::from_millis(1));
        assert_eq!(format_sent_at(UNIX_EPOCH - Duration::from_secs(1)), "0");
        for forged in [
            "",
            "-1",
            "+5",
            "1.5",
            "1e3",
            " 1",
            &u64::MAX.to_string(),
            "99999999999999999999",
        ] {
            assert!(
                parse_sent_at(forged).is_none_or(|at| at >= UNIX_EPOCH),
                "{forged:?}"
            );
        }
        assert_eq!(parse_sent_at("-1"), None);
        assert_eq!(parse_sent_at("99999999999999999999"), None);
    }

    #[test]
    fn ttl_values_are_whole_milliseconds() {
        let ttl = Duration::from_millis(5_000);
        assert_eq!(parse_ttl(&format_ttl(ttl)), Some(ttl));
        assert_eq!(parse_ttl("0"), Some(Duration::ZERO));
        let max = u64::MAX.to_string();
        assert_eq!(parse_ttl(&max), Some(Duration::from_millis(u64::MAX)));
        for forged in [
            "",
            "+5",
            "-5",
            " 5",
            "5 ",
            "5.0",
            "1e3",
            "18446744073709551616",
            "٣",
        ] {
            assert_eq!(parse_ttl(forged), None, "{forged:?}");
        }
    }

    #[test]
    fn the_configured_max_payload_is_the_servers() {
        let conf = include_str!("../../../nats/nats-server.conf");
        let line = conf
            .lines()
            .find(|l| l.trim_start().starts_with("max_payload:"))
            .expect("nats-server.conf sets max_payload");
        assert_eq!(line.trim(), "max_payload: 1MB");
        // nats-server reads `MB` as 2^20 bytes.
        assert_eq!(CONFIGURED_MAX_PAYLOAD, 1 << 20);
    }

    #[test]
    fn batches_are_sized_to_the_payload_limit() {
        let mib = 1024 * 1024;
        let max = max_batch_for_payload(mib, NumberEncoding::Raw);
        assert_eq!(max, (mib - 1024) / 36);
        let numbers = vec![0u8; max * 32];
        let raw = Numbers::Raw(&numbers);
        let body = DigestBatch {
            seq: u64::MAX,
            numbers: raw,
            prefixes: &numbers[..max * PREFIX_LEN],
        }
        .encode();
        assert!(
            body.len() + 200 <= mib,
            "digest batch of {} bytes",
            body.len()
        );
        // Seeded: as many as a message could hold written out, so a seeded batch expands (and
        // costs to hash) no more than a raw one; its digest batch is an eighth of a message.
        let max = max_batch_for_payload(mib, NumberEncoding::Seeded);
        assert_eq!(max, (mib - 1024) / 32);
        let prefixes = vec![0u8; max * PREFIX_LEN];
        let seeded = Numbers::Seeded {
            seed: [0; 32],
            count: max as u32,
        };
        let body = DigestBatch {
            seq: u64::MAX,
            numbers: seeded,
            prefixes: &prefixes,
        }
        .encode();
        assert!(
            body.len() <= mib / 8,
            "digest batch of {} bytes",
            body.len()
        );
        assert_eq!(
            NumberBatch::decode(
                &NumberBatch {
                    seq: 1,
                    numbers: seeded
                }
                .encode(),
                mib
            )
            .unwrap()
            .count(),
            max
        );
        assert_eq!(max_batch_for_payload(10, NumberEncoding::Raw), 1);
    }
}
