//! What the relay sends a client: any bytes decode to a `ServerFrame` or an error, never a
//! panic, and a frame that decodes encodes back to the same bytes.
#![no_main]

use chatter::proto::{self, ServerFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = proto::decode::<ServerFrame>(data) {
        let encoded = proto::encode(&frame);
        assert_eq!(proto::decode::<ServerFrame>(&encoded).as_ref(), Ok(&frame));
        assert_eq!(encoded, data, "a frame has one encoding");
    }
});
