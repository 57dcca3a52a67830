//! Device keys certified by the identity: one person, several clients.
//!
//! The persistent identity key (`crate::identity`) never signs MLS messages itself. Each
//! running client makes its own Ed25519 *device key* when it starts and keeps it in memory
//! only; the identity key signs a certification of it ([`proto::DeviceCertificate`]: the
//! device key, the nickname, the start time and the identity key), and that certification is
//! the whole content of the client's MLS basic credential. So two clients of one person have
//! two leaves with two signature keys (MLS refuses one key in two leaves), and every member
//! can still tell that both speak for the same identity.
//!
//! A leaf is trusted only when [`verify`] accepts its credential against its signature key:
//! the certification parses, names a valid nickname, is signed by the identity key it names
//! (over [`proto::DEVICE_CERTIFICATE_LABEL`] and the claims, so no other signature of the
//! identity key can pass for one), and certifies exactly the key the leaf signs with. Members
//! check every leaf of a Welcome and every leaf a commit adds; the committer's own leaf may
//! not change its credential at all.
//!
//! Certifications do not expire: the device key they certify lives only as long as its
//! process, so a certification is worth nothing once that process ends, and whoever could
//! take the key from a running process could take the identity key beside it.

use openmls::prelude::{Credential, CredentialType};
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::signatures::Signer as _;
use openmls_traits::types::SignatureScheme;

use super::MlsError;
use crate::proto::{self, DEVICE_CERTIFICATE_LABEL, DeviceCertificate, DeviceClaims};

/// The most clients of one identity a room holds at once: enough for a laptop, a desktop,
/// a phone and a few bots; few enough that one password holder cannot fill a room with
/// leaves of one person. Every member refuses a commit past it, and a leader does not make one.
pub const MAX_CLIENTS_PER_IDENTITY: usize = 8;

/// What a verified certification says about a leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certified {
    pub nick: String,
    pub identity_key: Vec<u8>,
    pub created_at: u64,
}

/// Why a leaf's credential is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificationError {
    #[error("its credential is not a certification by an identity")]
    NotACertificate,
    #[error("its certification names an invalid nickname")]
    InvalidNick,
    #[error("its certification is not signed by the identity key it names")]
    BadSignature,
    #[error("its certification is for another key than the one it signs with")]
    OtherDeviceKey,
}

/// The bytes an identity signs to certify `claims`: the label, then the claims in postcard.
fn signed_bytes(claims: &DeviceClaims) -> Vec<u8> {
    let mut bytes = DEVICE_CERTIFICATE_LABEL.to_vec();
    bytes.extend_from_slice(&proto::encode(claims));
    bytes
}

/// Certifies `device_key` for `nick` with the identity key pair `identity`.
pub fn certify(
    identity: &SignatureKeyPair,
    device_key: &[u8],
    nick: &str,
    created_at: u64,
) -> Result<DeviceCertificate, MlsError> {
    if identity.signature_scheme() != SignatureScheme::ED25519 {
        return Err(MlsError::Internal("the identity key is not an Ed25519 key".into()));
    }
    let claims = DeviceClaims {
        nick: nick.to_owned(),
        device_key: device_key.to_vec(),
        identity_key: identity.public().to_vec(),
        created_at,
    };
    let signature = identity
        .sign(&signed_bytes(&claims))
        .map_err(|error| MlsError::Internal(format!("certifying the device key: {error:?}")))?;
    Ok(DeviceCertificate { claims, signature })
}

/// The certification a credential carries, parsed but not verified: for showing names only.
pub(crate) fn certificate_of(credential: &Credential) -> Option<DeviceCertificate> {
    if credential.credential_type() != CredentialType::Basic {
        return None;
    }
    proto::decode(credential.serialized_content()).ok()
}

/// Verifies the credential of a leaf whose signature key is `leaf_key`.
pub(crate) fn verify(
    credential: &Credential,
    leaf_key: &[u8],
    crypto: &impl OpenMlsCrypto,
) -> Result<Certified, CertificationError> {
    let certificate = certificate_of(credential).ok_or(CertificationError::NotACertificate)?;
    verify_certificate(certificate, leaf_key, crypto)
}

/// Verifies a basic credential's content, as a peer wrote it, for a leaf whose signature key
/// is `leaf_key`, with RustCrypto: [`verify`] without the MLS credential around it (for the
/// fuzz target, and tools).
pub fn verify_content(content: &[u8], leaf_key: &[u8]) -> Result<Certified, CertificationError> {
    let certificate: DeviceCertificate =
        proto::decode(content).map_err(|_| CertificationError::NotACertificate)?;
    verify_certificate(certificate, leaf_key, &openmls_rust_crypto::RustCrypto::default())
}

fn verify_certificate(
    certificate: DeviceCertificate,
    leaf_key: &[u8],
    crypto: &impl OpenMlsCrypto,
) -> Result<Certified, CertificationError> {
    let DeviceCertificate { claims, signature } = certificate;
    if !proto::is_valid_nick(&claims.nick) {
        return Err(CertificationError::InvalidNick);
    }
    crypto
        .verify_signature(
            SignatureScheme::ED25519,
            &signed_bytes(&claims),
            &claims.identity_key,
            &signature,
        )
        .map_err(|_| CertificationError::BadSignature)?;
    if claims.device_key != leaf_key {
        return Err(CertificationError::OtherDeviceKey);
    }
    Ok(Certified {
        nick: claims.nick,
        identity_key: claims.identity_key,
        created_at: claims.created_at,
    })
}

#[cfg(test)]
mod tests {
    use openmls::prelude::BasicCredential;
    use openmls_rust_crypto::RustCrypto;

    use super::*;

    fn key_pair() -> SignatureKeyPair {
        SignatureKeyPair::new(SignatureScheme::ED25519).unwrap()
    }

    fn credential(certificate: &DeviceCertificate) -> Credential {
        BasicCredential::new(proto::encode(certificate)).into()
    }

    #[test]
    fn a_certification_verifies_for_its_own_device_key_only() {
        let crypto = RustCrypto::default();
        let (identity, device, other_device) = (key_pair(), key_pair(), key_pair());
        let certificate = certify(&identity, device.public(), "alice", 1_800_000_000).unwrap();
        let certified = verify(&credential(&certificate), device.public(), &crypto).unwrap();
        assert_eq!(certified.nick, "alice");
        assert_eq!(certified.identity_key, identity.public());
        assert_eq!(certified.created_at, 1_800_000_000);
        // Another client showing this certification with its own key.
        assert_eq!(
            verify(&credential(&certificate), other_device.public(), &crypto),
            Err(CertificationError::OtherDeviceKey)
        );
    }

    #[test]
    fn forged_and_altered_certifications_are_refused() {
        let crypto = RustCrypto::default();
        let (identity, device, forger) = (key_pair(), key_pair(), key_pair());
        let genuine = certify(&identity, device.public(), "alice", 7).unwrap();
        // Signed by someone else, claiming alice's identity key.
        let mut forged = certify(&forger, device.public(), "alice", 7).unwrap();
        forged.claims.identity_key = identity.public().to_vec();
        // The genuine one, moved to another nickname or another time.
        let mut renamed = genuine.clone();
        renamed.claims.nick = "alice-2".into();
        let mut redated = genuine.clone();
        redated.claims.created_at = 8;
        for altered in [forged, renamed, redated] {
            assert_eq!(
                verify(&credential(&altered), device.public(), &crypto),
                Err(CertificationError::BadSignature),
                "{altered:?}"
            );
        }
        // A signature over the claims without the label is not a certification either.
        let mut unlabelled = genuine.clone();
        unlabelled.signature = identity.sign(&proto::encode(&genuine.claims)).unwrap();
        assert_eq!(
            verify(&credential(&unlabelled), device.public(), &crypto),
            Err(CertificationError::BadSignature)
        );
        let plain_nick: Credential = BasicCredential::new(b"alice".to_vec()).into();
        assert_eq!(
            verify(&plain_nick, device.public(), &crypto),
            Err(CertificationError::NotACertificate)
        );
        let bad_nick = certify(&identity, device.public(), "s\u{043E}phie", 7).unwrap();
        assert_eq!(
            verify(&credential(&bad_nick), device.public(), &crypto),
            Err(CertificationError::InvalidNick)
        );
    }
}
