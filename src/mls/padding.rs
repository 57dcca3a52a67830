//! Length hiding for application payloads.
//!
//! A payload is padded to a multiple of [`BLOCK`] bytes before encryption, so the relay learns
//! only how many blocks a chat line takes, not its length. The scheme is ISO/IEC 7816-4: one
//! `0x80` byte, then zeros. It is unambiguous for every payload, including empty ones and ones
//! that end in `0x80` or zeros, and it needs no length field.

/// Payloads are padded to a multiple of this many bytes.
pub(crate) const BLOCK: usize = 64;

const MARKER: u8 = 0x80;

/// Returns the payload followed by its padding.
pub(crate) fn pad(payload: &[u8]) -> Vec<u8> {
    let padded_len = (payload.len() / BLOCK + 1) * BLOCK;
    let mut padded = Vec::with_capacity(padded_len);
    padded.extend_from_slice(payload);
    padded.push(MARKER);
    padded.resize(padded_len, 0);
    padded
}

/// Strips the padding; `None` if it is not well formed (only a buggy or hostile member that
/// already authenticated can cause that, so the caller reports the message as malformed).
pub(crate) fn unpad(mut padded: Vec<u8>) -> Option<Vec<u8>> {
    if padded.is_empty() || !padded.len().is_multiple_of(BLOCK) {
        return None;
    }
    let marker_at = padded.iter().rposition(|&byte| byte != 0)?;
    if padded[marker_at] != MARKER || padded.len() - marker_at > BLOCK {
        return None;
    }
    padded.truncate(marker_at);
    Some(padded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_lengths_are_whole_blocks() {
        for len in [0, 1, 2, 62, 63, 64, 65, 127, 128, 1000] {
            let payload: Vec<u8> = (0..len).map(|i| if i % 3 == 0 { 0 } else { 0x80 }).collect();
            let padded = pad(&payload);
            assert!(padded.len().is_multiple_of(BLOCK));
            assert!(padded.len() > payload.len());
            assert_eq!(unpad(padded).unwrap(), payload);
        }
        assert_eq!(pad(&[7]).len(), pad(&[7; 60]).len());
    }

    #[test]
    fn bad_padding_is_refused() {
        assert_eq!(unpad(vec![]), None);
        assert_eq!(unpad(vec![0; 64]), None);
        assert_eq!(unpad(vec![1; 64]), None);
        assert_eq!(unpad(vec![0x80; 63]), None);
        let mut too_long = vec![0x80];
        too_long.resize(128, 0);
        assert_eq!(unpad(too_long), None);
    }
}
