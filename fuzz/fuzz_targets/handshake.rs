//! The handshake messages, read before anyone is authenticated: `ClientHello` (by the relay),
//! `ServerHello` (by a client, possibly from an impostor), `ClientFinish`, and the SPAKE2
//! message inside a hello, fed to each side of the key exchange.
#![no_main]

use chatter::pake::{self, Context, Role};
use chatter::proto::{self, ClientFinish, ClientHello, ServerHello};
use libfuzzer_sys::fuzz_target;

const CONTEXT: Context<'static> =
    Context { label: "fuzz", initiator_id: b"client", responder_id: b"server" };

fuzz_target!(|data: &[u8]| {
    // What decodes encodes back to itself (postcard also reads over-long varints, so not
    // necessarily to the same bytes).
    if let Ok(hello) = proto::decode_client_hello(data) {
        assert_eq!(proto::decode::<ClientHello>(&proto::encode(&hello)), Ok(hello));
    }
    if let Ok(hello) = proto::decode::<ServerHello>(data) {
        assert_eq!(proto::decode::<ServerHello>(&proto::encode(&hello)), Ok(hello));
    }
    if let Ok(finish) = proto::decode::<ClientFinish>(data) {
        assert_eq!(proto::decode::<ClientFinish>(&proto::encode(&finish)), Ok(finish));
    }
    // A peer's SPAKE2 message: a wrong or malformed one fails, and nothing panics.
    for role in [Role::Initiator, Role::Responder] {
        let (pending, _own_message) = pake::start(role, b"access code", &CONTEXT);
        if let Ok(keys) = pending.finish(data) {
            // Without the password the peer cannot produce a confirmation that verifies.
            assert!(keys.verify_peer_confirmation(data).is_err());
        }
    }
});
