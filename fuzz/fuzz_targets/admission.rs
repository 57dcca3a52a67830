//! Room admission, every message of which passes through the relay: a joiner's and a
//! leader's SPAKE2 message, the joiner's confirmation and sealed KeyPackage. Garbage is
//! refused without a panic; a real exchange altered anywhere never yields a KeyPackage.
#![no_main]

use arbitrary::Arbitrary;
use chatter::admission::{AdmissionError, JoinerAdmission, LeaderAdmission};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    peer_message: &'a [u8],
    confirmation: &'a [u8],
    sealed_key_package: &'a [u8],
    /// XORed into the real confirmation and sealed KeyPackage of an honest exchange.
    confirmation_mask: Vec<u8>,
    sealed_mask: Vec<u8>,
    joiner_knows_the_password: bool,
}

const KEY_PACKAGE: &[u8] = b"a key package";

fn xor(bytes: &[u8], mask: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for (byte, mask) in out.iter_mut().zip(mask) {
        *byte ^= mask;
    }
    out
}

fuzz_target!(|input: Input<'_>| {
    // A leader hearing garbage: it may pass as a curve point, but the confirmation that
    // follows cannot verify without the password.
    if let Ok((leader, _reply)) =
        LeaderAdmission::respond("room", "joiner", "leader", b"pw", input.peer_message)
    {
        assert!(leader.verify(input.confirmation, input.sealed_key_package).is_err());
    }
    // A joiner hearing garbage from a "leader".
    let (joiner, _) = JoinerAdmission::start("room", "joiner", b"pw");
    let _ = joiner.finish("leader", input.peer_message, KEY_PACKAGE);

    // An honest exchange, then the relay alters what the joiner sent.
    let joiner_password: &[u8] = if input.joiner_knows_the_password { b"pw" } else { b"guess" };
    let (joiner, start) = JoinerAdmission::start("room", "joiner", joiner_password);
    let (leader, reply) = LeaderAdmission::respond("room", "joiner", "leader", b"pw", &start)
        .expect("a real SPAKE2 message");
    let finish = joiner.finish("leader", &reply, KEY_PACKAGE).expect("a real SPAKE2 message");
    let confirmation = xor(&finish.confirmation, &input.confirmation_mask);
    let sealed = xor(&finish.sealed_key_package, &input.sealed_mask);
    let untouched = confirmation == finish.confirmation && sealed == finish.sealed_key_package;
    match leader.verify(&confirmation, &sealed) {
        Ok(key_package) => {
            assert!(input.joiner_knows_the_password && untouched, "admitted wrongly");
            assert_eq!(key_package, KEY_PACKAGE);
        }
        Err(AdmissionError::WrongPassword) => {
            assert!(!input.joiner_knows_the_password || confirmation != finish.confirmation)
        }
        Err(error) => assert!(!untouched || !input.joiner_knows_the_password, "{error}"),
    }
});
