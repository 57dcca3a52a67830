//! Reads the three public fields of an MLS PrivateMessage header without openmls.
//!
//! The relay orders each room's commits by epoch and checks that application messages are
//! ciphertext, so it needs the group id, the epoch and the content type, which RFC 9420
//! leaves in the clear. This module reads those and nothing else, by hand over the TLS
//! presentation encoding, so that relay code never links openmls.

/// `wire_format` of a PrivateMessage (RFC 9420 §6).
pub const WIRE_FORMAT_PRIVATE_MESSAGE: u16 = 2;
/// `content_type` of an application message.
pub const CONTENT_TYPE_APPLICATION: u8 = 1;
/// `content_type` of a commit.
pub const CONTENT_TYPE_COMMIT: u8 = 3;

/// The readable part of an MLS message header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    pub wire_format: u16,
    pub group_id: Vec<u8>,
    pub epoch: u64,
    pub content_type: u8,
}

/// Reads the header of a serialized `MLSMessage` holding a PrivateMessage. `None` for
/// anything else, truncated or malformed.
pub fn peek_header(bytes: &[u8]) -> Option<MessageHeader> {
    let mut reader = Reader { bytes };
    let version = reader.u16()?;
    if version != 1 {
        return None;
    }
    let wire_format = reader.u16()?;
    if wire_format != WIRE_FORMAT_PRIVATE_MESSAGE {
        return None;
    }
    let group_id_len = reader.varint()?;
    let group_id = reader.take(group_id_len)?.to_vec();
    let epoch = u64::from_be_bytes(reader.take(8)?.try_into().ok()?);
    let content_type = reader.take(1)?[0];
    Some(MessageHeader { wire_format, group_id, epoch, content_type })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    /// RFC 9420 §2.1.2 variable-length integer: the top two bits give the length.
    fn varint(&mut self) -> Option<usize> {
        let first = *self.bytes.first()?;
        let length = 1usize << (first >> 6);
        if length > 4 {
            return None;
        }
        let raw = self.take(length)?;
        let mut value = u64::from(raw[0] & 0x3f);
        for byte in &raw[1..] {
            value = (value << 8) | u64::from(*byte);
        }
        usize::try_from(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PrivateMessage header as RFC 9420 lays it out, followed by opaque bytes.
    pub fn fake_private_message(group_id: &[u8], epoch: u64, content_type: u8) -> Vec<u8> {
        let mut bytes = vec![0, 1, 0, 2, group_id.len() as u8];
        bytes.extend_from_slice(group_id);
        bytes.extend_from_slice(&epoch.to_be_bytes());
        bytes.push(content_type);
        bytes.extend_from_slice(&[0xAA; 40]);
        bytes
    }

    #[test]
    fn reads_the_fields() {
        let header = peek_header(&fake_private_message(b"group", 7, 3)).unwrap();
        assert_eq!(header.group_id, b"group");
        assert_eq!(header.epoch, 7);
        assert_eq!(header.content_type, CONTENT_TYPE_COMMIT);
    }

    #[test]
    fn truncations_and_garbage_are_none() {
        let bytes = fake_private_message(b"group", 7, 1);
        for cut in 0..19 {
            assert!(peek_header(&bytes[..cut]).is_none());
        }
        assert!(peek_header(&[0xff; 64]).is_none());
        assert!(peek_header(&[0, 1, 0, 1, 0, 0]).is_none());
    }
}
