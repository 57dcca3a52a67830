//! The cleartext header of an MLS message, read without an MLS library.
//!
//! The relay routes and orders room traffic by the few fields an MLS `PrivateMessage` leaves in
//! the clear: which group it belongs to, which epoch it was sent in, and whether it is an
//! application message or a commit. Reading them needs only the RFC 9420 TLS encoding, so this
//! module is written by hand and imports nothing from openmls: the relay stays free of the MLS
//! dependency and never holds anything it could decrypt with. Nothing here allocates beyond the
//! group id, and no input makes it panic.

/// `ProtocolVersion::mls10`, the only version RFC 9420 defines.
pub const PROTOCOL_VERSION_MLS10: u16 = 1;

/// `WireFormat` values from RFC 9420 §6.
pub const WIRE_FORMAT_PUBLIC_MESSAGE: u16 = 1;
/// An encrypted handshake or application message.
pub const WIRE_FORMAT_PRIVATE_MESSAGE: u16 = 2;
/// A Welcome for new members.
pub const WIRE_FORMAT_WELCOME: u16 = 3;
/// A signed GroupInfo.
pub const WIRE_FORMAT_GROUP_INFO: u16 = 4;
/// A KeyPackage.
pub const WIRE_FORMAT_KEY_PACKAGE: u16 = 5;

/// `ContentType` values from RFC 9420 §6.
pub const CONTENT_TYPE_APPLICATION: u8 = 1;
/// A standalone proposal.
pub const CONTENT_TYPE_PROPOSAL: u8 = 2;
/// A commit: it moves the group to the next epoch.
pub const CONTENT_TYPE_COMMIT: u8 = 3;

/// The cleartext fields at the front of an MLS `PrivateMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    /// Always [`WIRE_FORMAT_PRIVATE_MESSAGE`] today; kept so callers can match on it.
    pub wire_format: u16,
    /// The MLS group id, which is random and names nothing.
    pub group_id: Vec<u8>,
    /// The epoch the sender was in when it encrypted the message.
    pub epoch: u64,
    /// One of the `CONTENT_TYPE_*` values (unknown values are passed through).
    pub content_type: u8,
}

impl MessageHeader {
    /// Whether this is a commit, i.e. a message that ends its epoch.
    pub fn is_commit(&self) -> bool {
        self.content_type == CONTENT_TYPE_COMMIT
    }

    /// Whether this is an application (chat) message.
    pub fn is_application(&self) -> bool {
        self.content_type == CONTENT_TYPE_APPLICATION
    }
}

/// Reads the header of a serialized `MLSMessage` carrying a `PrivateMessage`.
///
/// Returns `None` for any other wire format, an unknown protocol version, or input too short
/// or malformed to hold the header; the bytes after the header are not looked at.
pub fn peek_header(bytes: &[u8]) -> Option<MessageHeader> {
    let mut reader = Reader { rest: bytes };
    if reader.u16()? != PROTOCOL_VERSION_MLS10 {
        return None;
    }
    let wire_format = reader.u16()?;
    if wire_format != WIRE_FORMAT_PRIVATE_MESSAGE {
        return None;
    }
    let group_id = reader.opaque_vector()?.to_vec();
    let epoch = reader.u64()?;
    let content_type = reader.u8()?;
    Some(MessageHeader { wire_format, group_id, epoch, content_type })
}

/// Reads only the version and wire format of any `MLSMessage`, e.g. to tell a KeyPackage
/// ([`WIRE_FORMAT_KEY_PACKAGE`]) from a Welcome ([`WIRE_FORMAT_WELCOME`]).
pub fn peek_wire_format(bytes: &[u8]) -> Option<u16> {
    let mut reader = Reader { rest: bytes };
    if reader.u16()? != PROTOCOL_VERSION_MLS10 {
        return None;
    }
    reader.u16()
}

/// Writes an MLS `PrivateMessage` with the given header and `rest` as its opaque remainder:
/// exactly what [`peek_header`] reads. Real messages come from openmls; this is for the relay's
/// tests and the load generator, which need messages the relay accepts without MLS groups.
///
/// Panics if `group_id` is 2^30 bytes or longer (MLS's variable-length limit).
pub fn build_private_message(
    group_id: &[u8],
    epoch: u64,
    content_type: u8,
    rest: &[u8],
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16 + group_id.len() + rest.len());
    bytes.extend_from_slice(&PROTOCOL_VERSION_MLS10.to_be_bytes());
    bytes.extend_from_slice(&WIRE_FORMAT_PRIVATE_MESSAGE.to_be_bytes());
    // RFC 9420's variable-length prefix: the top two bits say 1, 2 or 4 bytes.
    let length = group_id.len();
    match u32::try_from(length) {
        Ok(length) if length < 1 << 6 => bytes.push(length as u8),
        Ok(length) if length < 1 << 14 => {
            bytes.extend_from_slice(&(0x4000 | length as u16).to_be_bytes());
        }
        Ok(length) if length < 1 << 30 => {
            bytes.extend_from_slice(&(0x8000_0000 | length).to_be_bytes())
        }
        _ => panic!("a group id of {length} bytes has no MLS length prefix"),
    }
    bytes.extend_from_slice(group_id);
    bytes.extend_from_slice(&epoch.to_be_bytes());
    bytes.push(content_type);
    bytes.extend_from_slice(rest);
    bytes
}

/// A cursor over the input that only ever moves forward and fails instead of overrunning.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    /// An `opaque<V>`: a variable-length integer length (RFC 9420 §2.1.2), then that many bytes.
    fn opaque_vector(&mut self) -> Option<&'a [u8]> {
        let length = self.varint()?;
        self.take(usize::try_from(length).ok()?)
    }

    /// The two top bits of the first byte give the encoding's length (1, 2 or 4 bytes; `11` is
    /// invalid), the rest is the value. RFC 9420 requires the shortest encoding, and so do we,
    /// so that the relay never accepts a header openmls would refuse.
    fn varint(&mut self) -> Option<u32> {
        let first = self.u8()?;
        let (value, minimum) = match first >> 6 {
            0 => return Some(u32::from(first)),
            1 => {
                let second = self.u8()?;
                (u32::from(first & 0x3f) << 8 | u32::from(second), 1 << 6)
            }
            2 => {
                let tail = self.take(3)?;
                let value = u32::from(first & 0x3f) << 24
                    | u32::from(tail[0]) << 16
                    | u32::from(tail[1]) << 8
                    | u32::from(tail[2]);
                (value, 1 << 14)
            }
            _ => return None,
        };
        (value >= minimum).then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private_message(group_id: &[u8], epoch: u64, content_type: u8) -> Vec<u8> {
        build_private_message(group_id, epoch, content_type, b"rest of the message")
    }

    #[test]
    fn this_module_does_not_use_openmls() {
        // Split so that this test does not find itself.
        let source = include_str!("mls_header.rs");
        assert!(!source.contains(concat!("openmls", "::")));
        assert!(!source.contains(concat!("use ", "openmls")));
    }

    #[test]
    fn reads_a_handmade_header() {
        let header = peek_header(&private_message(b"group", 7, CONTENT_TYPE_COMMIT)).unwrap();
        assert_eq!(header.wire_format, WIRE_FORMAT_PRIVATE_MESSAGE);
        assert_eq!(header.group_id, b"group");
        assert_eq!(header.epoch, 7);
        assert!(header.is_commit());
        assert!(!header.is_application());
    }

    #[test]
    fn two_byte_length_prefix() {
        let group_id = [0xabu8; 100];
        let mut bytes = vec![0, 1, 0, 2, 0x40, 100];
        bytes.extend_from_slice(&group_id);
        bytes.extend_from_slice(&1u64.to_be_bytes());
        bytes.push(CONTENT_TYPE_APPLICATION);
        let header = peek_header(&bytes).unwrap();
        assert_eq!(header.group_id, group_id);
        assert!(header.is_application());
    }

    #[test]
    fn built_messages_read_back_with_every_prefix_length() {
        for length in [0, 63, 64, 16383, 16384] {
            let group_id = vec![0x5a; length];
            let bytes = build_private_message(&group_id, 9, CONTENT_TYPE_APPLICATION, b"x");
            let header = peek_header(&bytes).unwrap();
            assert_eq!((header.group_id, header.epoch), (group_id, 9));
        }
    }

    #[test]
    fn non_minimal_and_invalid_length_prefixes_are_refused() {
        // 5 encoded in two bytes, and the reserved `11` prefix.
        for prefix in [&[0x40u8, 5][..], &[0xc0, 0, 0, 0, 0, 0, 0, 5]] {
            let mut bytes = vec![0, 1, 0, 2];
            bytes.extend_from_slice(prefix);
            bytes.extend_from_slice(&[0u8; 64]);
            assert_eq!(peek_header(&bytes), None);
        }
    }

    #[test]
    fn other_wire_formats_and_versions_are_none() {
        let mut bytes = private_message(b"g", 1, 1);
        bytes[3] = WIRE_FORMAT_WELCOME as u8;
        assert_eq!(peek_header(&bytes), None);
        assert_eq!(peek_wire_format(&bytes), Some(WIRE_FORMAT_WELCOME));
        bytes[1] = 2;
        assert_eq!(peek_wire_format(&bytes), None);
    }

    #[test]
    fn every_truncation_is_none_and_garbage_never_panics() {
        let bytes = private_message(b"group id", u64::MAX, CONTENT_TYPE_APPLICATION);
        let header_len = 4 + 1 + 8 + 8 + 1;
        for len in 0..header_len {
            assert_eq!(peek_header(&bytes[..len]), None, "length {len}");
        }
        assert!(peek_header(&bytes[..header_len]).is_some());
        // A cheap deterministic generator is enough to shake out index arithmetic.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            let mut garbage: Vec<u8> = (0..len).map(|i| (state >> (i % 8 * 8)) as u8).collect();
            if garbage.len() >= 4 && state & 1 == 0 {
                garbage[..4].copy_from_slice(&[0, 1, 0, 2]);
            }
            let _ = peek_header(&garbage);
            let _ = peek_wire_format(&garbage);
        }
    }
}
