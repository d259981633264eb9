//! The nugget rule and the nugget record.
//!
//! A digest is a nugget when it starts with at least `difficulty` zero bits. Difficulty 4 is the
//! classic demo's rule (the hex digest starts with `0`); every extra bit halves the nugget rate.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The most leading zero bits a SHA-256 digest has: the highest difficulty.
pub const MAX_ZERO_BITS: u32 = 8 * crate::codec::DIGEST_LEN as u32;

/// Number of leading zero bits of a digest.
pub fn leading_zero_bits(digest: &[u8]) -> u32 {
    match digest.iter().position(|&byte| byte != 0) {
        Some(at) => 8 * at as u32 + digest[at].leading_zeros(),
        None => 8 * digest.len() as u32,
    }
}

/// Whether a digest meets the difficulty rule: most are decided by their first byte.
pub fn is_nugget(digest: &[u8], difficulty: u32) -> bool {
    leading_zero_bits(digest) >= difficulty
}

/// SHA-256 of `number`.
pub fn digest_of(number: &[u8]) -> [u8; crate::codec::DIGEST_LEN] {
    Sha256::digest(number).into()
}

/// Whether `digest` is SHA-256 of `number`: whoever sent it, a digest is not taken on trust.
pub fn is_digest_of(number: &[u8], digest: &[u8]) -> bool {
    digest_of(number) == digest
}

/// What a nugget record of `number` holds beside it, as [`check_record`] wants it: its SHA-256
/// in lowercase hex, and the digest's leading zero bits.
pub fn record_of(number: &[u8]) -> (String, u32) {
    let digest = Sha256::digest(number);
    (hex::encode(digest), leading_zero_bits(&digest))
}

/// What is wrong with a stored nugget record: whoever may write where nuggets are stored
/// (InfluxDB's `writer` role) can write one that no hash made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsound {
    /// The number or the digest is not 64 lowercase hex digits, as a worker writes them.
    Malformed,
    /// The digest is not SHA-256 of the number.
    NotItsDigest,
    /// The zero bits are not the digest's leading zero bits.
    WrongZeroBits,
}

/// Checks a stored record as a worker writes it ([`record_of`]): both hex strings 64 lowercase
/// digits, the digest SHA-256 of the number and `zero_bits` its leading zero bits.
pub fn check_record(number_hex: &str, digest_hex: &str, zero_bits: i64) -> Result<(), Unsound> {
    let bytes = |hex: &str| {
        let lowercase = hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let digits = 2 * chocominer_codec::NUMBER_LEN;
        (lowercase && hex.len() == digits).then(|| hex::decode(hex).ok())?
    };
    let (Some(number), Some(digest)) = (bytes(number_hex), bytes(digest_hex)) else {
        return Err(Unsound::Malformed);
    };
    if !is_digest_of(&number, &digest) {
        return Err(Unsound::NotItsDigest);
    }
    if zero_bits != i64::from(leading_zero_bits(&digest)) {
        return Err(Unsound::WrongZeroBits);
    }
    Ok(())
}

/// The digests of the nuggets a worker recorded lately, the oldest forgotten first: an honest
/// pipeline never makes a random 32-byte number twice, so a digest seen again is a copy.
#[derive(Debug)]
pub struct Recent {
    order: std::collections::VecDeque<[u8; 32]>,
    digests: std::collections::HashSet<[u8; 32]>,
    capacity: usize,
}

impl Recent {
    /// Remembers up to `capacity` digests (at least one).
    pub fn new(capacity: usize) -> Recent {
        let capacity = capacity.max(1);
        Recent {
            order: std::collections::VecDeque::with_capacity(capacity),
            digests: std::collections::HashSet::with_capacity(capacity),
            capacity,
        }
    }

    pub fn contains(&self, digest: &[u8]) -> bool {
        <[u8; 32]>::try_from(digest).is_ok_and(|digest| self.digests.contains(&digest))
    }

    /// Remembers `digest`; false if it was remembered already (or is not 32 bytes).
    pub fn insert(&mut self, digest: &[u8]) -> bool {
        let Ok(digest) = <[u8; 32]>::try_from(digest) else {
            return false;
        };
        if !self.digests.insert(digest) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.digests.remove(&oldest);
        }
        self.order.push_back(digest);
        true
    }
}

/// One nugget, as published on `<prefix>.nuggets` (JSON) and stored in InfluxDB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nugget {
    /// The random number, lowercase hex.
    pub number: String,
    /// Its SHA-256 digest, lowercase hex.
    pub digest: String,
    /// Leading zero bits of the digest (at least the difficulty).
    pub zero_bits: u32,
    /// The difficulty the worker judged with.
    pub difficulty: u32,
    /// The worker instance that found it.
    pub instance: String,
    /// The rng batch the number came from, if known.
    pub batch: Option<String>,
    /// When it was found, nanoseconds since the Unix epoch (also its InfluxDB timestamp).
    pub found_at_ns: i64,
}

impl Nugget {
    /// Checks a nugget read back (tools, tests): its digest is its number's and meets `difficulty`.
    pub fn verify(number_hex: &str, digest_hex: &str, difficulty: u32) -> Result<(), String> {
        let number = hex::decode(number_hex).map_err(|e| format!("number is not hex: {e}"))?;
        let digest = hex::decode(digest_hex).map_err(|e| format!("digest is not hex: {e}"))?;
        if number.len() != chocominer_codec::NUMBER_LEN {
            return Err(format!("number has {} bytes, not 32", number.len()));
        }
        if !is_digest_of(&number, &digest) {
            return Err("digest is not SHA-256 of number".into());
        }
        if !is_nugget(&digest, difficulty) {
            return Err(format!(
                "digest has {} leading zero bits, fewer than {difficulty}",
                leading_zero_bits(&digest)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn recent_refuses_a_digest_seen_again_and_forgets_the_oldest() {
        let mut recent = Recent::new(2);
        let [a, b, c] = [[1u8; 32], [2u8; 32], [3u8; 32]];
        assert!(recent.insert(&a) && recent.insert(&b));
        assert!(!recent.insert(&a), "a copy taken");
        assert!(recent.insert(&c), "c is new");
        assert!(recent.insert(&a), "a, the oldest, was forgotten for c");
        assert!(!recent.insert(&c));
        assert!(!recent.insert(&[0u8; 31]), "not a digest");
        assert!(recent.contains(&a) && recent.contains(&c) && !recent.contains(&b));
        assert!(recent.order.len() <= 2 && recent.digests.len() <= 2);
    }

    #[test]
    fn counts_leading_zero_bits() {
        assert_eq!(leading_zero_bits(&[0xff; 32]), 0);
        assert_eq!(leading_zero_bits(&[0x0f, 0xff]), 4);
        assert_eq!(leading_zero_bits(&[0x00, 0x01]), 15);
        assert_eq!(leading_zero_bits(&[0x00, 0x00, 0x80]), 16);
        assert_eq!(leading_zero_bits(&[0; 32]), 256);
    }

    #[test]
    fn nugget_rule_on_known_vectors() {
        // SHA-256("abc") = ba7816bf…: no leading zero.
        let abc = Sha256::digest(b"abc");
        assert_eq!(
            hex::encode(abc),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!is_nugget(&abc, 1));
        assert!(is_nugget(&abc, 0));
        // SHA-256 of 32 zero bytes = 66687aad…: 1 leading zero bit (0x66 = 0110_0110).
        let zeros = Sha256::digest([0u8; 32]);
        assert_eq!(&hex::encode(zeros)[..8], "66687aad");
        assert!(is_nugget(&zeros, 1));
        assert!(!is_nugget(&zeros, 2));
        // Boundaries around the first byte.
        let d = [0x00, 0x00, 0x3f, 0xff];
        assert!(is_nugget(&d, 8));
        assert!(is_nugget(&d, 18));
        assert!(!is_nugget(&d, 19));
        assert!(is_nugget(&[0x0a], 4));
        assert!(!is_nugget(&[0x1a], 4));
    }

    #[test]
    fn verify_checks_hash_and_difficulty() {
        // Find a real nugget of difficulty 4 by brute force over a tiny space.
        let number = (0u8..=255)
            .map(|i| [i; 32])
            .find(|n| is_nugget(&Sha256::digest(n), 4))
            .expect("1 in 16 digests qualifies");
        let digest = hex::encode(Sha256::digest(number));
        let number = hex::encode(number);
        assert_eq!(Nugget::verify(&number, &digest, 4), Ok(()));
        assert!(Nugget::verify(&number, &digest, 200).is_err());
        let mut wrong = digest.clone().into_bytes();
        wrong[63] = if wrong[63] == b'0' { b'1' } else { b'0' };
        assert!(Nugget::verify(&number, std::str::from_utf8(&wrong).unwrap(), 4).is_err());
        assert!(Nugget::verify("zz", &digest, 4).is_err());
    }

    #[test]
    fn a_record_holds_the_digest_in_hex_and_its_zero_bits() {
        let digest = Sha256::digest([7u8; 32]);
        let expected = (hex::encode(digest), leading_zero_bits(&digest));
        assert_eq!(record_of(&[7u8; 32]), expected);
        assert_eq!(
            record_of(b"abc").0,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(record_of(&[0u8; 32]).1, 1, "66687aad…");
    }

    #[test]
    fn a_stored_record_is_checked_as_a_worker_writes_it() {
        let number = [9u8; 32];
        let (digest, bits) = record_of(&number);
        let (number, bits) = (hex::encode(number), i64::from(bits));
        assert_eq!(check_record(&number, &digest, bits), Ok(()));
        assert_eq!(
            check_record(&number, &digest, bits + 1),
            Err(Unsound::WrongZeroBits)
        );
        assert_eq!(
            check_record(&number, &"0".repeat(64), 256),
            Err(Unsound::NotItsDigest)
        );
        assert_ne!(digest, digest.to_uppercase());
        let (upper, long) = (digest.to_uppercase(), format!("{digest}00"));
        for (n, d) in [
            (number.as_str(), upper.as_str()),
            (&number[..62], &digest),
            ("", &digest),
            (&number, &long),
        ] {
            assert_eq!(check_record(n, d, bits), Err(Unsound::Malformed), "{n} {d}");
        }
    }

    #[test]
    fn a_digest_is_checked_against_its_number() {
        let number = [7u8; 32];
        let digest = Sha256::digest(number);
        assert!(is_digest_of(&number, &digest));
        // What a forger sends: a digest with every bit a nugget could want.
        assert!(!is_digest_of(&number, &[0; 32]));
        assert!(!is_digest_of(&[8u8; 32], &digest));
        assert!(!is_digest_of(&number, &digest[..31]));
    }
}
