//! Room-password admission: a joiner proves to the room leader that it knows the room
//! password, and hands over its MLS KeyPackage sealed under the agreed key. Sans IO.
//!
//! Both sides run SPAKE2 ([`crate::pake`]) through the relay, which sees only the exchange:
//!
//! ```text
//! joiner                                   leader
//!   JoinerAdmission::start ── pake msg (with the Join) ──▶  LeaderAdmission::respond
//!                          ◀── pake msg ──
//!   JoinerAdmission::finish ─ confirmation + sealed KeyPackage ─▶ LeaderAdmission::verify
//! ```
//!
//! The joiner confirms first, and the leader never sends a confirmation at all. So every wrong
//! guess is seen by the leader (who can report it to the relay for rate limiting), and a joiner
//! that does not know the password learns nothing it could test guesses against offline: the
//! leader's SPAKE2 message alone commits to no checkable value. The joiner learns of success
//! when the Welcome arrives.
//!
//! The room name and both nicknames are bound into the exchange, so an exchange cannot be
//! replayed into another room or presented as coming from someone else. The joiner's first
//! message names only the room and the joiner (it goes with the `Join`, before the joiner
//! knows who leads); the leader's nickname, which the relay gives with the reply, is bound
//! into the keys both sides derive, so a confirmation made with another leader in mind fails.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};

use crate::pake::{self, PakeError, PendingExchange, Role, SessionKeys};

/// The pake context label: names the purpose and version of this exchange.
const CONTEXT_LABEL: &str = "chatter room admission v2";

/// Associated data of the sealed KeyPackage, so the ciphertext cannot pass for anything else.
const SEAL_AAD: &[u8] = b"chatter room admission v1 sealed key package";

/// Why an admission failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// The peer's key-exchange message is not a valid SPAKE2 message.
    #[error("malformed admission message")]
    Malformed,
    /// The joiner's confirmation did not match: wrong password, or wrong room or nicknames.
    #[error("wrong room password")]
    WrongPassword,
    /// The confirmation matched but the sealed KeyPackage did not open: it was altered.
    #[error("sealed key package does not open")]
    SealBroken,
}

/// What the joiner sends after the leader's exchange message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinerFinish {
    /// Proof that the joiner derived the same keys, i.e. knows the password.
    pub confirmation: [u8; 32],
    /// The joiner's KeyPackage, sealed with ChaCha20-Poly1305 under the joiner's sending key.
    pub sealed_key_package: Vec<u8>,
}

/// The joiner's side, between sending its exchange message and receiving the leader's.
pub struct JoinerAdmission {
    exchange: PendingExchange,
}

impl std::fmt::Debug for JoinerAdmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinerAdmission(<redacted>)")
    }
}

impl JoinerAdmission {
    /// Starts an admission to `room`; returns the state and the message to send with the
    /// `Join`, to whoever leads.
    pub fn start(room: &str, joiner: &str, password: &[u8]) -> (Self, Vec<u8>) {
        let (initiator_id, responder_id) = identities(room, joiner);
        let context = pake::Context {
            label: CONTEXT_LABEL,
            initiator_id: &initiator_id,
            responder_id: &responder_id,
        };
        let (exchange, message) = pake::start(Role::Initiator, password, &context);
        (JoinerAdmission { exchange }, message)
    }

    /// Completes the exchange with the message of `leader` (as the relay named it) and seals
    /// `key_package` for it.
    pub fn finish(
        self,
        leader: &str,
        leader_message: &[u8],
        key_package: &[u8],
    ) -> Result<JoinerFinish, AdmissionError> {
        let keys = self
            .exchange
            .finish_binding(leader_message, Some(leader.as_bytes()))
            .map_err(from_pake)?;
        let sealed_key_package = cipher(&keys, Direction::Sending)
            .encrypt(&single_use_nonce(), Payload { msg: key_package, aad: SEAL_AAD })
            // ChaCha20-Poly1305 fails only beyond 256 GiB of plaintext.
            .map_err(|_| AdmissionError::SealBroken)?;
        Ok(JoinerFinish { confirmation: keys.own_confirmation(), sealed_key_package })
    }
}

/// The leader's side, holding the derived keys until the joiner's confirmation arrives.
pub struct LeaderAdmission {
    keys: SessionKeys,
}

impl std::fmt::Debug for LeaderAdmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaderAdmission(<redacted>)")
    }
}

impl LeaderAdmission {
    /// Answers a joiner's exchange message; returns the state and the message to send back.
    /// Nothing in the reply lets the joiner check a password guess.
    pub fn respond(
        room: &str,
        joiner: &str,
        leader: &str,
        password: &[u8],
        joiner_message: &[u8],
    ) -> Result<(Self, Vec<u8>), AdmissionError> {
        let (initiator_id, responder_id) = identities(room, joiner);
        let context = pake::Context {
            label: CONTEXT_LABEL,
            initiator_id: &initiator_id,
            responder_id: &responder_id,
        };
        let (exchange, message) = pake::start(Role::Responder, password, &context);
        let keys =
            exchange.finish_binding(joiner_message, Some(leader.as_bytes())).map_err(from_pake)?;
        Ok((LeaderAdmission { keys }, message))
    }

    /// Checks the joiner's confirmation and, only if it matches, opens the KeyPackage.
    ///
    /// [`AdmissionError::WrongPassword`] is the event to report to the relay as a failed guess.
    pub fn verify(
        self,
        confirmation: &[u8],
        sealed_key_package: &[u8],
    ) -> Result<Vec<u8>, AdmissionError> {
        self.keys.verify_peer_confirmation(confirmation).map_err(from_pake)?;
        cipher(&self.keys, Direction::Receiving)
            .decrypt(&single_use_nonce(), Payload { msg: sealed_key_package, aad: SEAL_AAD })
            .map_err(|_| AdmissionError::SealBroken)
    }
}

/// `room NUL joiner` for the joiner, `room NUL` for whoever leads (named at the finish).
/// Room names and nicknames never contain NUL (both are validated as printable text before
/// they get here), so the pair is unambiguous.
fn identities(room: &str, joiner: &str) -> (Vec<u8>, Vec<u8>) {
    let identity = |nick: &str| [room.as_bytes(), &[0], nick.as_bytes()].concat();
    (identity(joiner), identity(""))
}

enum Direction {
    Sending,
    Receiving,
}

fn cipher(keys: &SessionKeys, direction: Direction) -> ChaCha20Poly1305 {
    let key = match direction {
        Direction::Sending => keys.sending_key(),
        Direction::Receiving => keys.receiving_key(),
    };
    ChaCha20Poly1305::new(key.expose().into())
}

/// An all-zero nonce. Safe because each key seals exactly one message: the traffic keys are
/// fresh for every exchange (SPAKE2 is randomized on both sides), only the joiner's sending
/// key is used, and `JoinerAdmission::finish` consumes the state, so it cannot seal twice.
fn single_use_nonce() -> Nonce {
    Nonce::default()
}

fn from_pake(error: PakeError) -> AdmissionError {
    match error {
        PakeError::MalformedMessage => AdmissionError::Malformed,
        PakeError::WrongPassword => AdmissionError::WrongPassword,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_PACKAGE: &[u8] = b"an mls key package, opaque to admission";

    struct Side<'a> {
        room: &'a str,
        joiner: &'a str,
        leader: &'a str,
        password: &'a [u8],
    }

    const JOINER: Side<'static> =
        Side { room: "#rust", joiner: "bob", leader: "alice", password: b"correct horse" };

    /// Runs a whole admission; the leader's view may differ from the joiner's.
    fn admit(joiner: &Side<'_>, leader: &Side<'_>) -> Result<Vec<u8>, AdmissionError> {
        let (state, joiner_message) =
            JoinerAdmission::start(joiner.room, joiner.joiner, joiner.password);
        let (leader_state, leader_message) = LeaderAdmission::respond(
            leader.room,
            leader.joiner,
            leader.leader,
            leader.password,
            &joiner_message,
        )?;
        let finish = state.finish(joiner.leader, &leader_message, KEY_PACKAGE)?;
        leader_state.verify(&finish.confirmation, &finish.sealed_key_package)
    }

    #[test]
    fn right_password_yields_the_key_package() {
        assert_eq!(admit(&JOINER, &JOINER).unwrap(), KEY_PACKAGE);
    }

    #[test]
    fn the_leader_sends_only_its_exchange_message() {
        // A confirmation from the leader would let a joiner test password guesses offline, so
        // its reply must be a bare SPAKE2 message, exactly as long as the joiner's.
        let (_, joiner_message) =
            JoinerAdmission::start(JOINER.room, JOINER.joiner, JOINER.password);
        let (_, leader_message) = LeaderAdmission::respond(
            JOINER.room,
            JOINER.joiner,
            JOINER.leader,
            JOINER.password,
            &joiner_message,
        )
        .unwrap();
        assert_eq!(leader_message.len(), joiner_message.len());
    }

    #[test]
    fn wrong_password_is_reported_to_the_leader() {
        let leader = Side { password: b"correct horsf", ..JOINER };
        assert_eq!(admit(&JOINER, &leader), Err(AdmissionError::WrongPassword));
        assert_eq!(
            admit(&Side { password: b"", ..JOINER }, &JOINER),
            Err(AdmissionError::WrongPassword)
        );
    }

    #[test]
    fn room_and_both_nicknames_are_bound() {
        for leader in [
            Side { room: "#rust2", ..JOINER },
            Side { joiner: "mallory", ..JOINER },
            Side { leader: "carol", ..JOINER },
            Side { joiner: "alice", leader: "bob", ..JOINER },
            // The separator keeps "#rus" + "tbob" apart from "#rust" + "bob".
            Side { room: "#rus", joiner: "tbob", leader: "talice", ..JOINER },
        ] {
            assert_eq!(admit(&JOINER, &leader), Err(AdmissionError::WrongPassword));
        }
    }

    /// One honest exchange, stopped just before the leader verifies.
    fn exchange() -> (LeaderAdmission, JoinerFinish) {
        let (state, joiner_message) =
            JoinerAdmission::start(JOINER.room, JOINER.joiner, JOINER.password);
        let (leader, leader_message) = LeaderAdmission::respond(
            JOINER.room,
            JOINER.joiner,
            JOINER.leader,
            JOINER.password,
            &joiner_message,
        )
        .unwrap();
        (leader, state.finish(JOINER.leader, &leader_message, KEY_PACKAGE).unwrap())
    }

    #[test]
    fn tampering_is_detected() {
        let (leader, finish) = exchange();
        assert_ne!(finish.sealed_key_package, KEY_PACKAGE);
        let mut sealed = finish.sealed_key_package.clone();
        sealed[3] ^= 1;
        assert_eq!(leader.verify(&finish.confirmation, &sealed), Err(AdmissionError::SealBroken));

        let (leader, finish) = exchange();
        let truncated = &finish.sealed_key_package[..10];
        assert_eq!(leader.verify(&finish.confirmation, truncated), Err(AdmissionError::SealBroken));

        let (leader, finish) = exchange();
        let mut confirmation = finish.confirmation;
        confirmation[0] ^= 1;
        assert_eq!(
            leader.verify(&confirmation, &finish.sealed_key_package),
            Err(AdmissionError::WrongPassword)
        );

        // A finish from another exchange (same password, same names) does not carry over.
        let (leader, _) = exchange();
        let (_, other_finish) = exchange();
        assert_eq!(
            leader.verify(&other_finish.confirmation, &other_finish.sealed_key_package),
            Err(AdmissionError::WrongPassword)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let garbage: [&[u8]; 5] = [b"", b"\x00", &[0xff; 33], &[0x41; 500], &[0; 32]];
        for junk in garbage {
            let (state, _) = JoinerAdmission::start(JOINER.room, JOINER.joiner, JOINER.password);
            assert!(state.finish(JOINER.leader, junk, KEY_PACKAGE).is_err());
            let result = LeaderAdmission::respond(
                JOINER.room,
                JOINER.joiner,
                JOINER.leader,
                JOINER.password,
                junk,
            );
            if let Ok((leader, _)) = result {
                assert!(leader.verify(junk, junk).is_err());
            }
        }
        let (_, joiner_message) =
            JoinerAdmission::start(JOINER.room, JOINER.joiner, JOINER.password);
        for junk in garbage {
            let (leader, _) = LeaderAdmission::respond(
                JOINER.room,
                JOINER.joiner,
                JOINER.leader,
                JOINER.password,
                &joiner_message,
            )
            .unwrap();
            assert_eq!(leader.verify(junk, junk), Err(AdmissionError::WrongPassword));
        }
    }

    #[test]
    fn debug_output_redacts_state() {
        let (state, joiner_message) =
            JoinerAdmission::start(JOINER.room, JOINER.joiner, b"hunter2");
        let (leader, _) = LeaderAdmission::respond(
            JOINER.room,
            JOINER.joiner,
            JOINER.leader,
            b"hunter2",
            &joiner_message,
        )
        .unwrap();
        let shown = format!("{state:?} {leader:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains("hunter2"));
    }
}
