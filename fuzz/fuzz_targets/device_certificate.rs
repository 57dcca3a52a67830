//! A client's certification as a peer writes it into its credential: any bytes verify or are
//! refused, never a panic; and a genuine certification with any claim changed, or shown for
//! another key, never verifies.
#![no_main]

use chatter::mls::device;
use chatter::proto::{self, DeviceCertificate};
use libfuzzer_sys::fuzz_target;

/// One genuine certification per process: identity and device keys made once.
fn genuine() -> &'static DeviceCertificate {
    static GENUINE: std::sync::OnceLock<DeviceCertificate> = std::sync::OnceLock::new();
    GENUINE.get_or_init(|| {
        let identity = chatter::identity::Identity::generate().key_pair();
        let device = chatter::identity::Identity::generate();
        device::certify(&identity, device.public_key(), "alice", 1_800_000_000)
            .expect("a certification")
    })
}

fuzz_target!(|data: &[u8]| {
    let genuine = genuine();
    match device::verify_content(data, &genuine.claims.device_key) {
        // Only the genuine claims, signed by their identity, verify for this key.
        Ok(certified) => {
            assert_eq!(certified.identity_key, genuine.claims.identity_key);
            assert_eq!(certified.nick, genuine.claims.nick);
        }
        Err(_) => {}
    }
    if let Ok(certificate) = proto::decode::<DeviceCertificate>(data) {
        assert_eq!(
            proto::decode::<DeviceCertificate>(&proto::encode(&certificate)),
            Ok(certificate.clone())
        );
        // The genuine signature over claims the fuzzer chose.
        let moved =
            DeviceCertificate { claims: certificate.claims, signature: genuine.signature.clone() };
        let verified = device::verify_content(&proto::encode(&moved), &moved.claims.device_key);
        assert_eq!(verified.is_ok(), moved.claims == genuine.claims);
    }
});
