//! Safety codes: 30 digits that two people read to each other to check what no server can be
//! trusted to tell them.
//!
//! - The **room code** comes from the MLS epoch authenticator (RFC 9420, section 8.7), a
//!   value every member of the same group and epoch derives alike and nobody outside it can
//!   compute. Equal codes mean the members share one group; a relay that split a room into
//!   two groups cannot make their codes agree. It changes with every commit.
//! - The **pairwise code** comes from two identity keys, sorted, so both sides compute the same
//!   digits; it stays the same for as long as both keep their identities (like Signal's
//!   safety number), so it is compared once, face to face or by phone.
//!
//! Both are rendered as Discord's DAVE protocol renders its epoch authenticator: six groups of
//! five digits, each group five bytes read big-endian, modulo 100000.

use sha2::{Digest, Sha512};

/// Groups of digits in a code.
pub const GROUPS: usize = 6;
/// Bytes behind each group of five digits.
const BYTES_PER_GROUP: usize = 5;

/// Separates the pairwise code's hash from every other use of SHA-512 on these keys.
const PAIRWISE_LABEL: &[u8] = b"chatter pairwise safety code v1";

/// Six groups of five digits from the first 30 bytes of `bytes`; `None` if it is shorter.
pub fn digits(bytes: &[u8]) -> Option<String> {
    let bytes = bytes.get(..GROUPS * BYTES_PER_GROUP)?;
    let groups: Vec<String> = bytes
        .chunks_exact(BYTES_PER_GROUP)
        .map(|chunk| {
            let value = chunk.iter().fold(0u64, |value, byte| (value << 8) | u64::from(*byte));
            format!("{:05}", value % 100_000)
        })
        .collect();
    Some(groups.join(" "))
}

/// The room code for an epoch authenticator (32 bytes in our ciphersuite).
pub fn room_code(epoch_authenticator: &[u8]) -> Option<String> {
    digits(epoch_authenticator)
}

/// The pairwise code of two identity keys; the same whichever order they come in.
pub fn pairwise_code(key: &[u8], other_key: &[u8]) -> String {
    let (first, second) = if key <= other_key { (key, other_key) } else { (other_key, key) };
    let mut hash = Sha512::new();
    hash.update(PAIRWISE_LABEL);
    for key in [first, second] {
        // Length-prefixed, so no two different pairs hash the same bytes.
        hash.update((key.len() as u64).to_be_bytes());
        hash.update(key);
    }
    // SHA-512 gives 64 bytes, more than the 30 the digits use.
    digits(&hash.finalize()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_follow_daves_rendering() {
        let mut bytes = [0u8; 32];
        // 0x00000186a0 is 100000, which is 00000 modulo 100000; 0x00000186a1 gives 00001.
        bytes[..5].copy_from_slice(&[0x00, 0x00, 0x01, 0x86, 0xa0]);
        bytes[5..10].copy_from_slice(&[0x00, 0x00, 0x01, 0x86, 0xa1]);
        bytes[10..15].copy_from_slice(&[0xff; 5]); // 1099511627775 → 27775
        bytes[15..20].copy_from_slice(&[0x00, 0x00, 0x00, 0x30, 0x39]); // 12345
        let code = digits(&bytes).unwrap();
        assert_eq!(code, "00000 00001 27775 12345 00000 00000");
        assert_eq!(code.len(), 6 * 5 + 5);
        assert!(digits(&bytes[..29]).is_none());
        // The last two bytes of a 32-byte authenticator do not count.
        let mut other = bytes;
        other[31] ^= 1;
        assert_eq!(digits(&other).unwrap(), code);
    }

    #[test]
    fn pairwise_codes_are_symmetric_and_specific() {
        let (alice, bob, carol) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        assert_eq!(pairwise_code(&alice, &bob), pairwise_code(&bob, &alice));
        assert_ne!(pairwise_code(&alice, &bob), pairwise_code(&alice, &carol));
        assert_ne!(pairwise_code(&alice, &bob), pairwise_code(&bob, &carol));
        assert!(pairwise_code(&alice, &bob).chars().all(|c| c.is_ascii_digit() || c == ' '));
    }
}
