//! The MLS ciphersuites a room may use: the classic one, and a post-quantum hybrid one that
//! a client creates its rooms with on request (`chatter --pq`, `pq = true`).
//!
//! A room's suite is fixed when its leader creates the group; every joiner makes its
//! KeyPackage for that suite, which it learns from the leader's answer in the password
//! exchange (`proto::ClientFrame::AdmissionReply::suite`). The wire carries the suite's
//! number, so a peer with a suite this build does not know is refused by name
//! ([`UnsupportedSuite`]), not by a failed decryption.
//!
//! The post-quantum suite is `MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519`: the X-Wing
//! KEM (ML-KEM-768 combined with X25519, so the room stays as safe as the classic suite if
//! ML-KEM falls) with the classic suite's AEAD, hash and Ed25519 signatures. Keeping Ed25519
//! means device keys, their certification by the identity key (`super::device`) and the
//! provider's verifying-key cache work unchanged, and only key exchange, the part a recording
//! adversary could break later, changes. Its number (0x004F) is provisional:
//! `draft-ietf-mls-pq-ciphersuites` has not been assigned code points, which is why the
//! openmls crates are pinned exactly (`Cargo.toml`).

use openmls::prelude::Ciphersuite;

/// A ciphersuite this build can run a room with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RoomSuite {
    /// X25519, AES-128-GCM, SHA-256 and Ed25519: RFC 9420's mandatory-to-implement suite.
    #[default]
    Classic,
    /// X-Wing (ML-KEM-768 + X25519), AES-128-GCM, SHA-256 and Ed25519 (a draft's suite).
    PostQuantum,
}

/// The most members a post-quantum room may have.
///
/// Every leaf's X-Wing encryption key is 1216 bytes (an X25519 one is 32), and the ratchet
/// tree in a Welcome carries them all: about 1.5 KB a member (`docs/benchmarks.md`), so the
/// Welcome alone would fit `proto::MAX_FRAME_LEN` up to some 1300 members, past the relay's
/// `proto::MAX_ROOM_MEMBERS`. What binds first is a removal's commit, which carries an X-Wing
/// ciphertext (1120 bytes) for nearly every other member, about 1.2 KB a member, and which
/// the relay queues for every member at once: n members cost about 1.2 KB × n² of the relay's
/// shared queue budget (256 MiB by default, `relay::outbound::QueueLimits`), so past some 470
/// members one removal would cut members off as slow readers. At 300 a removal's fan-out
/// takes about 40% of that budget and the Welcome under a quarter of a frame; `mls::tests`
/// builds a room at the cap and checks both.
pub const MAX_PQ_ROOM_MEMBERS: usize = 300;

impl RoomSuite {
    /// Every suite this build supports, the default first.
    pub const ALL: [RoomSuite; 2] = [RoomSuite::Classic, RoomSuite::PostQuantum];

    /// The openmls suite.
    pub(crate) fn ciphersuite(self) -> Ciphersuite {
        match self {
            RoomSuite::Classic => Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
            RoomSuite::PostQuantum => Ciphersuite::MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519,
        }
    }

    /// The suite's number on the wire (RFC 9420's registry; the post-quantum one is
    /// provisional).
    pub fn id(self) -> u16 {
        u16::from(self.ciphersuite())
    }

    /// The suite's name, as `/details` shows it.
    pub fn name(self) -> &'static str {
        match self {
            RoomSuite::Classic => "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
            RoomSuite::PostQuantum => "MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519",
        }
    }

    /// Whether the suite's key exchange is post-quantum.
    pub fn is_post_quantum(self) -> bool {
        self == RoomSuite::PostQuantum
    }

    /// The most members a room of this suite may have: the room limit for the classic
    /// suite, a lower one for the post-quantum suite's larger keys.
    pub fn max_members(self) -> usize {
        match self {
            RoomSuite::Classic => crate::proto::MAX_ROOM_MEMBERS,
            RoomSuite::PostQuantum => MAX_PQ_ROOM_MEMBERS,
        }
    }

    /// The suite numbered `id`, if this build can run a room with it.
    pub fn from_id(id: u16) -> Result<RoomSuite, UnsupportedSuite> {
        RoomSuite::ALL.into_iter().find(|suite| suite.id() == id).ok_or(UnsupportedSuite { id })
    }

    /// The suite of an openmls group or key package, if it is one of ours.
    pub(crate) fn of(ciphersuite: Ciphersuite) -> Result<RoomSuite, UnsupportedSuite> {
        RoomSuite::from_id(u16::from(ciphersuite))
    }
}

impl std::fmt::Display for RoomSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A room's suite that this client cannot use: unknown to this build (a newer peer's), or a
/// draft suite openmls names but RustCrypto does not implement. Shown with the suite's name
/// where openmls knows its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct UnsupportedSuite {
    /// The suite's number on the wire.
    pub id: u16,
}

impl UnsupportedSuite {
    /// The suite's registered name, where openmls knows the number.
    pub fn name(&self) -> Option<String> {
        Ciphersuite::try_from(self.id).ok().map(|known| format!("{known:?}"))
    }
}

impl std::fmt::Display for UnsupportedSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self.id;
        match self.name() {
            Some(name) => {
                write!(f, "the room uses {name} ({id:#06x}), a ciphersuite this client cannot use")
            }
            None => {
                write!(f, "the room uses ciphersuite {id:#06x}, which this client does not know")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suite_round_trips_by_number_and_is_implemented() {
        let crypto = openmls_rust_crypto::RustCrypto::default();
        for suite in RoomSuite::ALL {
            assert_eq!(RoomSuite::from_id(suite.id()), Ok(suite));
            assert_eq!(format!("{:?}", suite.ciphersuite()), suite.name());
            openmls_traits::crypto::OpenMlsCrypto::supports(&crypto, suite.ciphersuite()).unwrap();
        }
        assert_eq!(RoomSuite::Classic.id(), 0x0001);
        assert_eq!(RoomSuite::PostQuantum.id(), 0x004f);
    }

    #[test]
    fn a_suite_this_build_cannot_use_is_refused_by_name() {
        // X-Wing draft-01 with ChaCha20: openmls knows the number, RustCrypto has no code.
        let error = RoomSuite::from_id(0x004d).unwrap_err();
        assert_eq!(error, UnsupportedSuite { id: 0x004d });
        assert_eq!(
            error.to_string(),
            "the room uses MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519 (0x004d), a \
             ciphersuite this client cannot use"
        );
        let error = RoomSuite::from_id(0x7777).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the room uses ciphersuite 0x7777, which this client does not know"
        );
    }
}
