//! The hashing itself, the hasher's whole CPU cost at full speed. A 32-byte number always
//! makes one 64-byte SHA-256 block, so the block is laid out here and given straight to sha2's
//! compression function (SHA-NI where the CPU has it), the digest's prefix written straight into
//! the batch's output: about a fifth of the time per number less than `Sha256::digest`
//! (`just bench-micro`).

use chocominer_codec::{NUMBER_LEN, Numbers, PREFIX_LEN};
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

// The prefix is the digest's first big-endian word, as SHA-256's state holds it.
const _: () = assert!(PREFIX_LEN == 4);

/// Writes the prefix of SHA-256 of the 32-byte `number` into `prefix` (`PREFIX_LEN` bytes).
pub(crate) fn prefix_into(number: &[u8], prefix: &mut [u8]) {
    let mut block = [0u8; 64];
    block[..NUMBER_LEN].copy_from_slice(number);
    block[NUMBER_LEN..].copy_from_slice(&PADDING);
    let mut state = INITIAL_STATE;
    compress256(&mut state, &[block]);
    prefix.copy_from_slice(&state[0].to_be_bytes());
}

/// Writes the digest prefix of each number, in order, into `prefixes` (those of the batch's
/// `DigestBody`).
pub(crate) fn prefix_each(numbers: &Numbers, prefixes: &mut [u8]) {
    let mut slots = prefixes.chunks_exact_mut(PREFIX_LEN);
    numbers.for_each_run(|run| {
        for (number, prefix) in run.chunks_exact(NUMBER_LEN).zip(&mut slots) {
            prefix_into(number, prefix);
        }
    });
}

/// The digest prefix of each number, concatenated: public, so the benchmarks measure the
/// hasher's code.
pub fn digest_prefixes(numbers: &Numbers) -> Vec<u8> {
    let mut prefixes = vec![0u8; numbers.count() * PREFIX_LEN];
    prefix_each(numbers, &mut prefixes);
    prefixes
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn every_prefix_is_the_start_of_the_sha256_of_its_number() {
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
            let prefixes = digest_prefixes(&numbers);
            assert_eq!(prefixes.len(), 100 * PREFIX_LEN);
            for (i, prefix) in prefixes.chunks_exact(PREFIX_LEN).enumerate() {
                assert_eq!(
                    prefix,
                    &Sha256::digest(numbers.number(i))[..PREFIX_LEN],
                    "number {i}"
                );
            }
        }
    }
}
