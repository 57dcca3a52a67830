//! What a client sends the relay: any bytes decode to a `ClientFrame` or an error, never a
//! panic, and a frame that decodes encodes back to itself (one meaning per frame).
#![no_main]

use chatter::proto::{self, ClientFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = proto::decode::<ClientFrame>(data) {
        let encoded = proto::encode(&frame);
        assert_eq!(proto::decode::<ClientFrame>(&encoded).as_ref(), Ok(&frame));
        // Postcard also reads over-long varints (`[3, 128, 0]` is `[3, 0]`), so bytes and
        // frames are not one to one; the meaning is, and ours is the shortest encoding.
        assert!(encoded.len() <= data.len());
    }
});
