//! The relay's only look into MLS: the header reader. Any bytes give a header or `None`,
//! never a panic or an overrun; and a header written by `build_private_message` from fields
//! taken out of the same bytes reads back.
#![no_main]

use chatter::mls_header::{build_private_message, peek_header, peek_wire_format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(header) = peek_header(data) {
        assert_eq!(peek_wire_format(data), Some(header.wire_format));
        assert!(header.group_id.len() <= data.len());
    }
    let Some((fields, rest)) = data.split_first_chunk::<10>() else { return };
    let epoch = u64::from_be_bytes(fields[..8].try_into().expect("8 bytes"));
    let content_type = fields[8];
    let (group_id, rest) = rest.split_at(usize::from(fields[9]).min(rest.len()));
    let built = build_private_message(group_id, epoch, content_type, rest);
    let read = peek_header(&built).expect("a header we wrote reads back");
    assert_eq!(read.group_id, group_id);
    assert_eq!(read.epoch, epoch);
    assert_eq!(read.content_type, content_type);
});
