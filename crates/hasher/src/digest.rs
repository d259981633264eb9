//! The hashing itself, the hasher's whole CPU cost at full speed. A 32-byte number always
//! makes one 64-byte SHA-256 block, so the block is laid out here and given straight to sha2's
//! compression function (SHA-NI where the CPU has it), the digest written straight into the
//! batch's output: about a fifth of the time per number less than `Sha256::digest`
//! (`just bench-micro`).

use chocominer_codec::{DIGEST_LEN, NUMBER_LEN, Numbers};
use sha2::block_api::compress256;

/// SHA-256's initial hash value (FIPS 180-4, section 5.3.3).
const INITIAL_STATE: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The padding of a 32-byte message, which fills the rest of its one block: the `1` bit
/// after the message, then zeros, then the length in bits (256) as a big-endian u64.
const PADDING: [u8; 32] = {
    let mut padding = [0u8; 32];
    padding[0] = 0x80;
    padding[30] = 0x01; // 256 = 0x0100, in the block's last two bytes
    padding
};

/// Writes SHA-256 of the 32-byte `number` into `digest` (32 bytes).
pub(crate) fn digest_into(number: &[u8], digest: &mut [u8]) {
    let mut block = [0u8; 64];
    block[..NUMBER_LEN].copy_from_slice(number);
    block[NUMBER_LEN..].copy_from_slice(&PADDING);
    let mut state = INITIAL_STATE;
    compress256(&mut state, &[block]);
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
}

/// Writes SHA-256 of each number, in order, into `digests` (those of the batch's `DigestBody`).
pub(crate) fn digest_each(numbers: &Numbers, digests: &mut [u8]) {
    let mut slots = digests.chunks_exact_mut(DIGEST_LEN);
    numbers.for_each_run(|run| {
        for (number, digest) in run.chunks_exact(NUMBER_LEN).zip(&mut slots) {
            digest_into(number, digest);
        }
    });
}

/// SHA-256 of each number, concatenated: public, so the benchmarks measure the hasher's code.
pub fn digest_all(numbers: &Numbers) -> Vec<u8> {
    let mut digests = vec![0u8; numbers.count() * DIGEST_LEN];
    digest_each(numbers, &mut digests);
    digests
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn every_digest_is_the_sha256_of_its_number() {
        let raw: Vec<u8> = (0..100 * NUMBER_LEN)
            .map(|i| (i * 7 + i / 3) as u8)
            .collect();
        for numbers in [
            Numbers::Raw(&raw),
            Numbers::Seeded {
                seed: [9; 32],
                count: 100,
            },
        ] {
            let digests = digest_all(&numbers);
            assert_eq!(digests.len(), 100 * DIGEST_LEN);
            for (i, digest) in digests.chunks_exact(DIGEST_LEN).enumerate() {
                assert_eq!(
                    digest,
                    Sha256::digest(numbers.number(i)).as_slice(),
                    "number {i}"
                );
            }
        }
    }
}
