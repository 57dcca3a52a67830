//! One client session's MLS identity: a nickname, a device signature key made for this
//! session, and the certification of that key by the user's identity key (`super::device`).
//!
//! `chatter` certifies with the user's persistent identity key (`crate::identity`), so the
//! others see the same identity, and the same fingerprint, in every session and from every
//! client of the user; tests and the load generator use a fresh identity per session.
//! Nothing here reads or writes the key's file.

use std::sync::Arc;

use openmls::prelude::{
    BasicCredential, Credential, CredentialWithKey, KeyPackage, KeyPackageRef, MlsGroup,
    MlsMessageBodyIn, MlsMessageIn, MlsMessageOut, StagedWelcome, tls_codec::Deserialize as _,
    tls_codec::Serialize as _,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::OpenMlsProvider as _;
use openmls_traits::storage::StorageProvider as _;
use sha2::{Digest, Sha256};

use super::config::{SIGNATURE_SCHEME, create_config, join_config};
use super::device;
use super::error::describe;
use super::provider::MemberProvider;
use super::{MlsError, RoomGroup, RoomSuite};
use crate::proto::DeviceCertificate;

/// What a member and all its rooms share: the crypto provider with its in-memory key store
/// (key packages' private keys must be found there when a Welcome arrives), the signer and the
/// credential. Shared through an `Arc` so that creating a room clones no key material.
pub(crate) struct Session {
    pub(crate) nick: String,
    /// The identity key that certified our device key.
    pub(crate) identity_key: Vec<u8>,
    pub(crate) provider: MemberProvider,
    pub(crate) signer: SignatureKeyPair,
    pub(crate) credential: CredentialWithKey,
}

/// A KeyPackage of ours made for one admission attempt.
///
/// Dropping it deletes its private keys from the member's store (once a Welcome used them,
/// openmls has deleted them already): a joiner keeps only its current attempt's, so a Welcome
/// made for an earlier attempt (one a relay kept back) can no longer be taken.
pub struct OwnKeyPackage {
    /// The KeyPackage, serialized as an MLS message, to seal for the leader.
    pub bytes: Vec<u8>,
    reference: KeyPackageRef,
    session: Arc<Session>,
}

impl Drop for OwnKeyPackage {
    fn drop(&mut self) {
        // The in-memory store cannot fail a delete.
        let _ = self.session.provider.storage().delete_key_package(&self.reference);
    }
}

impl std::fmt::Debug for OwnKeyPackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnKeyPackage").field("len", &self.bytes.len()).finish_non_exhaustive()
    }
}

/// The MLS identity of one client session.
pub struct MlsMember {
    session: Arc<Session>,
}

impl std::fmt::Debug for MlsMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlsMember")
            .field("nick", &self.session.nick)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl MlsMember {
    /// Creates a member with an identity of its own that lives only as long as it (tests, the
    /// load generator); `chatter` itself uses [`MlsMember::certified`] with its persistent key.
    pub fn new(nick: &str) -> Result<Self, MlsError> {
        MlsMember::certified(nick, &new_key_pair()?, 0)
    }

    /// Creates the member for `nick` with a new device key, certified by `identity` (the
    /// user's persistent key, `crate::identity::Identity::key_pair`) as of `created_at`
    /// (seconds since the Unix epoch), so that other members see the same identity in every
    /// session and from every client. The device key lives in this value only.
    pub fn certified(
        nick: &str,
        identity: &SignatureKeyPair,
        created_at: u64,
    ) -> Result<Self, MlsError> {
        if !crate::proto::is_valid_nick(nick) {
            return Err(MlsError::InvalidNick);
        }
        let device = new_key_pair()?;
        let certificate = device::certify(identity, device.public(), nick, created_at)?;
        MlsMember::with_certificate(device, certificate)
    }

    /// Creates a member that signs with `device` and shows `certificate` as it is, unchecked:
    /// what [`MlsMember::certified`] does after certifying, and what a test does to show that
    /// members refuse a forged or borrowed certification.
    pub fn with_certificate(
        device: SignatureKeyPair,
        certificate: DeviceCertificate,
    ) -> Result<Self, MlsError> {
        if !crate::proto::is_valid_nick(&certificate.claims.nick) {
            return Err(MlsError::InvalidNick);
        }
        if device.signature_scheme() != SIGNATURE_SCHEME {
            return Err(MlsError::Internal("the key is not an Ed25519 key".into()));
        }
        let credential = CredentialWithKey {
            credential: BasicCredential::new(crate::proto::encode(&certificate)).into(),
            signature_key: device.public().into(),
        };
        let session = Session {
            nick: certificate.claims.nick,
            identity_key: certificate.claims.identity_key,
            provider: MemberProvider::default(),
            signer: device,
            credential,
        };
        Ok(MlsMember { session: Arc::new(session) })
    }

    /// This member's nickname, as its credential carries it.
    pub fn nick(&self) -> &str {
        &self.session.nick
    }

    /// The short fingerprint of the identity key that certified this member, e.g.
    /// `ab12:cd34:ef56:7890`: the same for every client of one identity.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.session.identity_key)
    }

    /// The public device key this member signs with in MLS.
    pub fn device_key(&self) -> &[u8] {
        self.session.signer.public()
    }

    /// A fresh KeyPackage of the classic suite, serialized as an MLS message, for someone to
    /// add us with.
    ///
    /// Its private keys stay in this member's in-memory store until a Welcome uses them.
    pub fn key_package(&self) -> Result<Vec<u8>, MlsError> {
        self.key_package_of(RoomSuite::Classic)
    }

    /// A fresh KeyPackage for a room of `suite`, serialized as an MLS message.
    pub fn key_package_of(&self, suite: RoomSuite) -> Result<Vec<u8>, MlsError> {
        let session = &*self.session;
        let bundle = KeyPackage::builder()
            .build(
                suite.ciphersuite(),
                &session.provider,
                &session.signer,
                session.credential.clone(),
            )
            .map_err(|error| MlsError::Internal(describe(&error)))?;
        MlsMessageOut::from(bundle)
            .tls_serialize_detached()
            .map_err(|error| MlsError::Internal(describe(&error)))
    }

    /// A fresh KeyPackage for one admission attempt into a room of `suite`, whose private
    /// keys live as long as the returned value (see [`OwnKeyPackage`]). A KeyPackage is
    /// made for one suite only, so the joiner must know the room's before it makes one.
    pub fn key_package_for_attempt(&self, suite: RoomSuite) -> Result<OwnKeyPackage, MlsError> {
        let session = &*self.session;
        let bundle = KeyPackage::builder()
            .build(
                suite.ciphersuite(),
                &session.provider,
                &session.signer,
                session.credential.clone(),
            )
            .map_err(|error| MlsError::Internal(describe(&error)))?;
        let reference = bundle
            .key_package()
            .hash_ref(session.provider.crypto())
            .map_err(|error| MlsError::Internal(describe(&error)))?;
        let bytes = MlsMessageOut::from(bundle)
            .tls_serialize_detached()
            .map_err(|error| MlsError::Internal(describe(&error)))?;
        Ok(OwnKeyPackage { bytes, reference, session: Arc::clone(&self.session) })
    }

    /// Creates a new room of the classic suite with a random group id and us as its only
    /// member.
    pub fn create_room(&self) -> Result<RoomGroup, MlsError> {
        self.create_room_of(RoomSuite::Classic)
    }

    /// Creates a new room of `suite` with a random group id and us as its only member.
    pub fn create_room_of(&self, suite: RoomSuite) -> Result<RoomGroup, MlsError> {
        let session = &*self.session;
        let group = MlsGroup::new(
            &session.provider,
            &session.signer,
            &create_config(suite),
            session.credential.clone(),
        )
        .map_err(|error| MlsError::Internal(describe(&error)))?;
        Ok(RoomGroup::new(group, Arc::clone(&self.session)))
    }

    /// Joins a room from a serialized Welcome made for one of our key packages.
    ///
    /// Any earlier state of the same group is replaced: after a rejoin the Welcome is the
    /// truth, and the stale [`RoomGroup`] must be dropped by the caller, which checks that
    /// the group is the one it left (`client::rejoin`).
    pub fn join_room(&self, welcome: &[u8]) -> Result<RoomGroup, MlsError> {
        let session = &*self.session;
        let message =
            MlsMessageIn::tls_deserialize_exact(welcome).map_err(|_| MlsError::Malformed)?;
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            return Err(MlsError::Malformed);
        };
        let invalid = |error: &dyn std::fmt::Display| MlsError::InvalidWelcome(describe(error));
        let staged = StagedWelcome::build_from_welcome(&session.provider, &join_config(), welcome)
            .map_err(|error| invalid(&error))?
            .replace_old_group()
            .build()
            .map_err(|error| invalid(&error))?;
        // Every leaf must be certified by the identity it names before we trust any of them
        // (and before the group replaces one we had).
        for member in staged.members() {
            device::verify(&member.credential, &member.signature_key, session.provider.crypto())
                .map_err(|reason| MlsError::Uncertified {
                    nick: nick_of(&member.credential),
                    reason,
                })?;
        }
        let group = staged.into_group(&session.provider).map_err(|error| invalid(&error))?;
        // Only our own KeyPackage's suite can open a Welcome, and we make those only for
        // suites we support; checked again so that no group of another suite is ever kept.
        RoomSuite::of(group.ciphersuite())?;
        Ok(RoomGroup::new(group, Arc::clone(&self.session)))
    }
}

/// First 8 bytes of SHA-256 of a signature public key, as four colon-separated hex pairs.
pub(crate) fn fingerprint_of(signature_public_key: &[u8]) -> String {
    let digest = Sha256::digest(signature_public_key);
    digest[..8]
        .chunks(2)
        .map(|pair| format!("{:02x}{:02x}", pair[0], pair[1]))
        .collect::<Vec<_>>()
        .join(":")
}

/// A new Ed25519 key pair, the scheme of every suite a room may use.
fn new_key_pair() -> Result<SignatureKeyPair, MlsError> {
    SignatureKeyPair::new(SIGNATURE_SCHEME)
        .map_err(|error| MlsError::Internal(format!("key generation failed: {error:?}")))
}

/// The nickname a credential's certification claims, for showing. Peers choose their
/// credentials, so anything but a certification is shown as a placeholder; whether the claim
/// holds is `device::verify`'s to say, before the leaf is trusted.
pub(crate) fn nick_of(credential: &Credential) -> String {
    device::certificate_of(credential)
        .map_or_else(|| "<uncertified>".to_owned(), |certificate| certificate.claims.nick)
}

/// The identity key a credential's certification claims (verified when the leaf entered).
pub(crate) fn identity_key_of(credential: &Credential) -> Vec<u8> {
    device::certificate_of(credential)
        .map(|certificate| certificate.claims.identity_key)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_four_hex_groups_and_fresh_per_session() {
        let first = MlsMember::new("alice").unwrap();
        let second = MlsMember::new("alice").unwrap();
        let fingerprint = first.fingerprint();
        assert_eq!(fingerprint.len(), 19);
        assert_eq!(fingerprint.split(':').count(), 4);
        assert!(fingerprint.chars().all(|c| c == ':' || c.is_ascii_hexdigit()));
        assert_ne!(fingerprint, second.fingerprint());
        assert_eq!(first.nick(), "alice");
    }

    #[test]
    fn bad_nicks_are_refused() {
        assert_eq!(MlsMember::new("").unwrap_err(), MlsError::InvalidNick);
        assert_eq!(MlsMember::new(&"x".repeat(33)).unwrap_err(), MlsError::InvalidNick);
        assert_eq!(MlsMember::new("\u{0430}lice").unwrap_err(), MlsError::InvalidNick);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let member = MlsMember::new("alice").unwrap();
        let shown = format!("{member:?}");
        assert!(shown.contains("alice"));
        assert!(shown.contains(&member.fingerprint()));
        assert!(!shown.contains("private"));
    }

    #[test]
    fn garbage_welcome_is_an_error() {
        let member = MlsMember::new("alice").unwrap();
        for garbage in [&b""[..], b"\x00\x01\x00\x03", &[0xff; 100]] {
            assert!(member.join_room(garbage).is_err());
        }
        let key_package = member.key_package().unwrap();
        assert_eq!(member.join_room(&key_package).unwrap_err(), MlsError::Malformed);
    }
}
