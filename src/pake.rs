//! Password-authenticated key exchange with explicit key confirmation.
//!
//! Two places in CLI Chatter prove knowledge of a shared password without sending it: the
//! transport handshake (the server's access code) and room admission (the room password, run
//! between a joiner and the room leader through the relay). Both use this module, so both get
//! the same properties from SPAKE2 (RustCrypto `spake2`, Ed25519 group):
//!
//! - the password never crosses the wire;
//! - a recorded exchange gives an observer nothing to test password guesses against offline;
//! - an active attacker gets exactly one online guess per exchange, and the side that verifies
//!   the first confirmation tag learns of the failed guess (so it can count it).
//!
//! The SPAKE2 output is expanded with HKDF-SHA256 over the whole transcript (context label,
//! both identities, both messages) into two confirmation keys and two traffic keys, one per
//! direction. Nothing here performs IO.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a confirmation tag (HMAC-SHA256).
pub const CONFIRMATION_LEN: usize = 32;

/// A confirmation tag proving that its sender derived the same key.
pub type Confirmation = [u8; CONFIRMATION_LEN];

/// Why an exchange failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PakeError {
    /// The peer's SPAKE2 message was not a valid group element of the right length.
    #[error("malformed key exchange message")]
    MalformedMessage,
    /// The peer's confirmation did not match: it used a different password (or is an impostor).
    #[error("the peer does not know the password")]
    WrongPassword,
}

/// Which side of the exchange this is. The initiator speaks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

/// What both sides bind into the exchange: a label naming its purpose and version, and the
/// two identities. A different value on either side makes the exchange fail as a wrong
/// password would, so e.g. a room-admission exchange can never be replayed as a transport one.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub label: &'a str,
    pub initiator_id: &'a [u8],
    pub responder_id: &'a [u8],
}

/// A 32-byte symmetric key that is wiped from memory when dropped and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretKey(pub(crate) [u8; 32]);

impl SecretKey {
    /// Wraps raw key bytes. Keys come from [`PendingExchange::finish`]; this is for fixed
    /// keys in tests and fuzzing, which need sealed records without a key exchange.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    /// The raw key bytes, for handing to an AEAD.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// An exchange that has sent its message and waits for the peer's.
pub struct PendingExchange {
    spake: Spake2<Ed25519Group>,
    role: Role,
    transcript_prefix: Vec<u8>,
    own_message: Vec<u8>,
}

impl std::fmt::Debug for PendingExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingExchange").field("role", &self.role).finish_non_exhaustive()
    }
}

/// Starts an exchange; returns the state to finish it with and the message to send the peer.
pub fn start(role: Role, password: &[u8], context: &Context<'_>) -> (PendingExchange, Vec<u8>) {
    let password = Password::new(password);
    let initiator = Identity::new(context.initiator_id);
    let responder = Identity::new(context.responder_id);
    let (spake, own_message) = match role {
        Role::Initiator => Spake2::<Ed25519Group>::start_a(&password, &initiator, &responder),
        Role::Responder => Spake2::<Ed25519Group>::start_b(&password, &initiator, &responder),
    };
    let mut transcript_prefix = Vec::new();
    for part in [context.label.as_bytes(), context.initiator_id, context.responder_id] {
        append_length_prefixed(&mut transcript_prefix, part);
    }
    let pending =
        PendingExchange { spake, role, transcript_prefix, own_message: own_message.clone() };
    (pending, own_message)
}

impl PendingExchange {
    /// Completes the exchange with the peer's message. This cannot tell whether the passwords
    /// matched; that is what the confirmation tags of the returned [`SessionKeys`] are for.
    pub fn finish(self, peer_message: &[u8]) -> Result<SessionKeys, PakeError> {
        self.finish_binding(peer_message, None)
    }

    /// As [`PendingExchange::finish`], binding into the keys a value the first message could
    /// not name yet (room admission: the leader, whom a joiner learns only from the reply).
    /// Both sides must bind the same value, or the confirmation fails as a wrong password does.
    pub fn finish_binding(
        self,
        peer_message: &[u8],
        bound: Option<&[u8]>,
    ) -> Result<SessionKeys, PakeError> {
        let PendingExchange { spake, role, mut transcript_prefix, own_message } = self;
        if let Some(bound) = bound {
            append_length_prefixed(&mut transcript_prefix, bound);
        }
        let mut shared = spake.finish(peer_message).map_err(|_| PakeError::MalformedMessage)?;
        let (initiator_message, responder_message) = match role {
            Role::Initiator => (own_message.as_slice(), peer_message),
            Role::Responder => (peer_message, own_message.as_slice()),
        };
        append_length_prefixed(&mut transcript_prefix, initiator_message);
        append_length_prefixed(&mut transcript_prefix, responder_message);
        let transcript = transcript_prefix;

        let hkdf = Hkdf::<Sha256>::new(Some(&transcript), &shared);
        shared.zeroize();
        let expand = |info: &[u8]| {
            let mut key = [0u8; 32];
            // A 32-byte output is far below HKDF-SHA256's 8160-byte limit, so this cannot fail.
            #[allow(clippy::expect_used, reason = "proven above")]
            hkdf.expand(info, &mut key).expect("32 bytes is a valid HKDF-SHA256 output length");
            SecretKey(key)
        };
        Ok(SessionKeys {
            role,
            transcript,
            initiator_confirmation_key: expand(b"chatter confirm initiator"),
            responder_confirmation_key: expand(b"chatter confirm responder"),
            initiator_to_responder: expand(b"chatter traffic initiator to responder"),
            responder_to_initiator: expand(b"chatter traffic responder to initiator"),
        })
    }
}

/// Keys derived from a finished exchange, not yet confirmed.
pub struct SessionKeys {
    role: Role,
    transcript: Vec<u8>,
    initiator_confirmation_key: SecretKey,
    responder_confirmation_key: SecretKey,
    initiator_to_responder: SecretKey,
    responder_to_initiator: SecretKey,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys").field("role", &self.role).finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// The tag this side sends to prove it derived the same keys.
    pub fn own_confirmation(&self) -> Confirmation {
        let key = match self.role {
            Role::Initiator => &self.initiator_confirmation_key,
            Role::Responder => &self.responder_confirmation_key,
        };
        confirmation_tag(key, &self.transcript)
    }

    /// Checks the peer's tag in constant time.
    pub fn verify_peer_confirmation(&self, tag: &[u8]) -> Result<(), PakeError> {
        let key = match self.role {
            Role::Initiator => &self.responder_confirmation_key,
            Role::Responder => &self.initiator_confirmation_key,
        };
        // HMAC takes keys of any length (longer ones are hashed), so this cannot fail.
        #[allow(clippy::expect_used, reason = "proven above")]
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose())
            .expect("HMAC accepts keys of any length");
        mac.update(&self.transcript);
        mac.verify_slice(tag).map_err(|_| PakeError::WrongPassword)
    }

    /// The key this side encrypts with.
    pub fn sending_key(&self) -> &SecretKey {
        match self.role {
            Role::Initiator => &self.initiator_to_responder,
            Role::Responder => &self.responder_to_initiator,
        }
    }

    /// The key this side decrypts with.
    pub fn receiving_key(&self) -> &SecretKey {
        match self.role {
            Role::Initiator => &self.responder_to_initiator,
            Role::Responder => &self.initiator_to_responder,
        }
    }
}

fn confirmation_tag(key: &SecretKey, transcript: &[u8]) -> Confirmation {
    // HMAC takes keys of any length (longer ones are hashed), so this cannot fail.
    #[allow(clippy::expect_used, reason = "proven above")]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose())
        .expect("HMAC accepts keys of any length");
    mac.update(transcript);
    mac.finalize().into_bytes().into()
}

/// Length-prefixing every part keeps the transcript unambiguous ("ab"+"c" differs from "a"+"bc").
fn append_length_prefixed(buffer: &mut Vec<u8>, part: &[u8]) {
    buffer.extend_from_slice(&(part.len() as u64).to_be_bytes());
    buffer.extend_from_slice(part);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: Context<'static> =
        Context { label: "test v1", initiator_id: b"alice", responder_id: b"bob" };

    fn run(initiator_password: &[u8], responder_password: &[u8]) -> (SessionKeys, SessionKeys) {
        let (initiator, initiator_message) = start(Role::Initiator, initiator_password, &CONTEXT);
        let (responder, responder_message) = start(Role::Responder, responder_password, &CONTEXT);
        let initiator_keys = initiator.finish(&responder_message).unwrap();
        let responder_keys = responder.finish(&initiator_message).unwrap();
        (initiator_keys, responder_keys)
    }

    #[test]
    fn same_password_confirms_and_keys_match_crosswise() {
        let (initiator, responder) = run(b"hunter2", b"hunter2");
        responder.verify_peer_confirmation(&initiator.own_confirmation()).unwrap();
        initiator.verify_peer_confirmation(&responder.own_confirmation()).unwrap();
        assert_eq!(initiator.sending_key(), responder.receiving_key());
        assert_eq!(initiator.receiving_key(), responder.sending_key());
        assert_ne!(initiator.sending_key(), initiator.receiving_key());
    }

    #[test]
    fn different_password_fails_confirmation_on_both_sides() {
        let (initiator, responder) = run(b"hunter2", b"hunter3");
        assert_eq!(
            responder.verify_peer_confirmation(&initiator.own_confirmation()),
            Err(PakeError::WrongPassword)
        );
        assert_eq!(
            initiator.verify_peer_confirmation(&responder.own_confirmation()),
            Err(PakeError::WrongPassword)
        );
    }

    #[test]
    fn different_context_fails_like_a_wrong_password() {
        let other = Context { label: "other v1", ..CONTEXT };
        let (initiator, initiator_message) = start(Role::Initiator, b"pw", &CONTEXT);
        let (responder, responder_message) = start(Role::Responder, b"pw", &other);
        let responder_keys = responder.finish(&initiator_message);
        let initiator_keys = initiator.finish(&responder_message).unwrap();
        if let Ok(responder_keys) = responder_keys {
            assert!(
                responder_keys
                    .verify_peer_confirmation(&initiator_keys.own_confirmation())
                    .is_err()
            );
        }
    }

    #[test]
    fn garbage_peer_message_is_an_error_not_a_panic() {
        for garbage in [&b""[..], b"\x00", &[0xffu8; 33], &[0x41u8; 500]] {
            let (pending, _) = start(Role::Initiator, b"pw", &CONTEXT);
            assert!(pending.finish(garbage).is_err());
        }
    }

    #[test]
    fn confirmation_of_wrong_length_is_rejected() {
        let (initiator, responder) = run(b"pw", b"pw");
        let tag = initiator.own_confirmation();
        assert!(responder.verify_peer_confirmation(&tag[..16]).is_err());
        assert!(responder.verify_peer_confirmation(&[]).is_err());
    }

    #[test]
    fn debug_output_redacts_keys() {
        let (initiator, _) = run(b"pw", b"pw");
        let shown = format!("{:?} {:?}", initiator, initiator.sending_key());
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&format!("{:?}", initiator.sending_key().expose())));
    }
}
