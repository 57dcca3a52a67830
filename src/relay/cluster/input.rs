//! What relays of a cluster tell each other: every change to the shared state, as one
//! input, sealed under the cluster's key.
//!
//! The inputs are the only way into the shared state: a relay publishes what happened on its
//! connections (a session opened, a frame arrived, a link dropped) and applies nothing until
//! the stream hands it back, in the one order every relay sees. Each input is sealed with
//! XChaCha20-Poly1305 under the cluster key (random nonces, so no counter must be shared):
//! whoever reads or writes the NATS subject without the key learns nothing of the frames or
//! resume tokens inside, and cannot forge an input. The key is random and 32 bytes long, not
//! derived from the access code, so a capture of the stream cannot be used to guess the code
//! offline.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

pub use crate::proto::{ClientInput, Envelope, Input, RelayId};

/// The cluster's key: seals and opens inputs.
pub struct ClusterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}

/// Why a message on the stream is not an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("not sealed under this cluster's key")]
    NotSealed,
    #[error("sealed, but not an input of this version")]
    NotAnInput,
}

/// How long a nonce is, before the sealed bytes.
const NONCE_LEN: usize = 24;

impl ClusterKey {
    pub fn new(key: [u8; 32]) -> Self {
        ClusterKey(Zeroizing::new(key))
    }

    /// Reads a key written as 64 hexadecimal digits (what `chatter-server --new-cluster-key`
    /// prints).
    pub fn from_hex(text: &str) -> Result<Self, &'static str> {
        let mut key = Zeroizing::new([0u8; 32]);
        match base16ct::mixed::decode(text.trim(), key.as_mut_slice()) {
            Ok(decoded) if decoded.len() == 32 => Ok(ClusterKey(key)),
            _ => Err("a cluster key is 64 hexadecimal digits"),
        }
    }

    /// A fresh random key, as 64 hexadecimal digits.
    pub fn new_hex() -> Zeroizing<String> {
        let key: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
        Zeroizing::new(base16ct::lower::encode_string(key.as_slice()))
    }

    /// The key's bytes, for deriving the cluster's resume tokens (`State::shared_by_a_cluster`).
    pub fn derived(&self, purpose: &[u8]) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.0.as_slice()) else {
            return [0; 32];
        };
        mac.update(purpose);
        mac.finalize().into_bytes().into()
    }

    /// What a relay with `access_code` announces in its ticks (`Input::Tick`): relays of one
    /// cluster must have one access code. A keyed hash, inside sealed inputs: nobody without
    /// the cluster key can test a guess of the code against it.
    pub fn gate(&self, access_code: &crate::secret::Secret) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.0.as_slice()) else {
            return [0; 32];
        };
        mac.update(b"chatter cluster gate");
        mac.update(access_code.expose().as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.derived(b"chatter cluster inputs").as_slice().into())
    }

    pub fn seal(&self, envelope: &Envelope) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let plaintext = Zeroizing::new(crate::proto::encode(envelope));
        let mut sealed = nonce.to_vec();
        // Sealing a buffer in memory cannot fail short of exhausting memory.
        if let Ok(ciphertext) = self.cipher().encrypt(XNonce::from_slice(&nonce), &plaintext[..]) {
            sealed.extend_from_slice(&ciphertext);
        }
        sealed
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Envelope, Unreadable> {
        if sealed.len() < NONCE_LEN {
            return Err(Unreadable::NotSealed);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let plaintext = self
            .cipher()
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| Unreadable::NotSealed)?;
        crate::proto::decode(&plaintext).map_err(|_| Unreadable::NotAnInput)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_opens_only_under_the_key_it_was_sealed_with_and_unchanged() {
        let key = ClusterKey::new([7; 32]);
        let envelope = Envelope {
            from: RelayId(9),
            incarnation: 4,
            input: Input::Resume { fresh: 3, token: [5; 32], received: 12 },
        };
        let sealed = key.seal(&envelope);
        assert_eq!(key.open(&sealed), Ok(envelope.clone()));
        assert!(!sealed.windows(32).any(|window| window == [5; 32]), "the token is not in clear");
        assert_eq!(ClusterKey::new([8; 32]).open(&sealed), Err(Unreadable::NotSealed));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(key.open(&tampered), Err(Unreadable::NotSealed));
        assert_eq!(key.open(&sealed[..10]), Err(Unreadable::NotSealed));
        assert!(format!("{:?}", envelope.input).find("5, 5").is_none());
    }

    #[test]
    fn a_key_is_read_from_64_hex_digits_only() {
        let hex = ClusterKey::new_hex();
        assert!(ClusterKey::from_hex(&hex).is_ok());
        assert!(ClusterKey::from_hex("abcd").is_err());
        assert!(ClusterKey::from_hex(&"z".repeat(64)).is_err());
        assert_eq!(format!("{:?}", ClusterKey::from_hex(&hex)), "Ok(ClusterKey(<redacted>))");
    }
}
