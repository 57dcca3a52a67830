//! The OpenMLS provider of one member: RustCrypto for cryptography and randomness, and an
//! in-memory store.
//!
//! The store is `openmls_memory_storage` with one change: it keeps no copy of a group's
//! ratchet tree or message secrets. OpenMLS keeps a group's whole state in its `MlsGroup` and
//! writes it through to the store as it changes, to be read back only by `MlsGroup::load`,
//! which no member calls: a member's session lives in memory and ends with its process.
//! (OpenMLS itself loads only to refuse a new group, or a Welcome, whose group id a stored
//! group has; ours are random, and `join_room` replaces an old group anyway.) The
//! two big parts of that copy cost every member on every message and commit: the message
//! secrets (the secret tree and every sender's ratchet, for this epoch and the retained past
//! ones) after every message encrypted or decrypted, and the whole ratchet tree, in
//! `MemoryStorage`'s JSON (a decimal number per byte), after every commit. Profiled in a room
//! of 100 (`loadgen join`), that copy was about 80% of merging a commit, 20% of verifying one
//! and half of signing or opening a vote. Keeping no second copy of the message secrets also
//! means one copy less of what forward secrecy says must be gone once used. Everything else
//! (key packages and the private keys OpenMLS does read back, and the small parts of a
//! group's state) goes to `MemoryStorage` as before.
//!
//! The crypto is RustCrypto with one change too: Ed25519 verifying keys are kept decompressed.
//! `RustCrypto` decompresses the sender's public key (a square root in the field) for every
//! signature it checks, and each message is checked by every member; a member's key is
//! the same for the whole session, so each is decompressed once.
//!
//! Nothing here reaches a disk: the store lives as long as the member.

use std::collections::HashMap;
use std::sync::Mutex;

use openmls::prelude::tls_codec::SecretVLBytes;
use openmls_rust_crypto::{MemoryStorage, MemoryStorageError, RustCrypto};
use openmls_traits::OpenMlsProvider;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::storage::{CURRENT_VERSION, StorageProvider, traits as storage_traits};
use openmls_traits::types::{
    AeadType, Ciphersuite, CryptoError, ExporterSecret, HashType, HpkeCiphertext, HpkeConfig,
    HpkeKeyPair, KemOutput, SignatureScheme,
};

/// [`MemberCrypto`], RustCrypto's randomness and [`MemberStorage`].
#[derive(Default)]
pub(crate) struct MemberProvider {
    crypto: MemberCrypto,
    storage: MemberStorage,
}

impl OpenMlsProvider for MemberProvider {
    type CryptoProvider = MemberCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = MemberStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto.inner
    }
}

/// A room of a few thousand members at most; past this many keys (members come and go over
/// a long session) the cache starts again rather than grow.
const MAX_CACHED_VERIFYING_KEYS: usize = 4096;

/// RustCrypto, with decompressed Ed25519 verifying keys kept by their encoding.
#[derive(Default)]
pub(crate) struct MemberCrypto {
    inner: RustCrypto,
    verifying_keys: Mutex<HashMap<[u8; 32], ed25519_dalek::VerifyingKey>>,
}

impl MemberCrypto {
    /// The decompressed key for `encoded`, from the cache or decompressed now. `None` for an
    /// encoding that is not a point (as RustCrypto, an error for the caller).
    fn verifying_key(&self, encoded: &[u8; 32]) -> Option<ed25519_dalek::VerifyingKey> {
        let mut keys = self.verifying_keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(key) = keys.get(encoded) {
            return Some(*key);
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(encoded).ok()?;
        if keys.len() >= MAX_CACHED_VERIFYING_KEYS {
            keys.clear();
        }
        keys.insert(*encoded, key);
        Some(key)
    }
}

/// Writes the `OpenMlsCrypto` methods that [`MemberCrypto`] hands to RustCrypto unchanged:
/// each is the trait's signature without `&self`.
macro_rules! delegate_crypto {
    ($(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;)*) => {
        $(
            fn $name(&self, $($arg: $ty),*) -> $ret {
                self.inner.$name($($arg),*)
            }
        )*
    };
}

impl OpenMlsCrypto for MemberCrypto {
    fn verify_signature(
        &self,
        alg: SignatureScheme,
        data: &[u8],
        pk: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        let (SignatureScheme::ED25519, Ok(encoded)) = (alg, <&[u8; 32]>::try_from(pk)) else {
            return self.inner.verify_signature(alg, data, pk, signature);
        };
        // The same checks and errors as RustCrypto's, with the key from the cache.
        let key = self.verifying_key(encoded).ok_or(CryptoError::CryptoLibraryError)?;
        let signature = ed25519_dalek::Signature::from_slice(signature)
            .map_err(|_| CryptoError::CryptoLibraryError)?;
        key.verify_strict(data, &signature).map_err(|_| CryptoError::InvalidSignature)
    }

    // Everything else is RustCrypto's.
    delegate_crypto! {
        fn supports(ciphersuite: Ciphersuite) -> Result<(), CryptoError>;
        fn supported_ciphersuites() -> Vec<Ciphersuite>;
        fn hkdf_extract(hash_type: HashType, salt: &[u8], ikm: &[u8])
            -> Result<SecretVLBytes, CryptoError>;
        fn hmac(hash_type: HashType, key: &[u8], message: &[u8])
            -> Result<SecretVLBytes, CryptoError>;
        fn hkdf_expand(hash_type: HashType, prk: &[u8], info: &[u8], okm_len: usize)
            -> Result<SecretVLBytes, CryptoError>;
        fn hash(hash_type: HashType, data: &[u8]) -> Result<Vec<u8>, CryptoError>;
        fn aead_encrypt(alg: AeadType, key: &[u8], data: &[u8], nonce: &[u8], aad: &[u8])
            -> Result<Vec<u8>, CryptoError>;
        fn aead_decrypt(alg: AeadType, key: &[u8], ct_tag: &[u8], nonce: &[u8], aad: &[u8])
            -> Result<Vec<u8>, CryptoError>;
        fn signature_key_gen(alg: SignatureScheme) -> Result<(Vec<u8>, Vec<u8>), CryptoError>;
        fn sign(alg: SignatureScheme, data: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError>;
        fn hpke_seal(config: HpkeConfig, pk_r: &[u8], info: &[u8], aad: &[u8], ptxt: &[u8])
            -> Result<HpkeCiphertext, CryptoError>;
        fn hpke_open(
            config: HpkeConfig,
            input: &HpkeCiphertext,
            sk_r: &[u8],
            info: &[u8],
            aad: &[u8],
        ) -> Result<Vec<u8>, CryptoError>;
        fn hpke_setup_sender_and_export(
            config: HpkeConfig,
            pk_r: &[u8],
            info: &[u8],
            exporter_context: &[u8],
            exporter_length: usize,
        ) -> Result<(KemOutput, ExporterSecret), CryptoError>;
        fn hpke_setup_receiver_and_export(
            config: HpkeConfig,
            enc: &[u8],
            sk_r: &[u8],
            info: &[u8],
            exporter_context: &[u8],
            exporter_length: usize,
        ) -> Result<ExporterSecret, CryptoError>;
        fn derive_hpke_keypair(config: HpkeConfig, ikm: &[u8]) -> Result<HpkeKeyPair, CryptoError>;
    }
}

/// `MemoryStorage`, without a copy of any group's ratchet tree or message secrets.
#[derive(Default)]
pub(crate) struct MemberStorage {
    inner: MemoryStorage,
}

/// Writes the `StorageProvider` methods that [`MemberStorage`] hands to `MemoryStorage`
/// unchanged. Each is the trait's signature with `&self`, the bounds'
/// `storage_traits::…<CURRENT_VERSION>` and the `Result<…, Self::Error>` left implicit.
macro_rules! delegate_to_inner {
    ($(
        fn $name:ident<$($param:ident: $bound:ident),* $(,)?>($($arg:ident: $ty:ty),* $(,)?)
            -> $ret:ty;
    )*) => {
        $(
            fn $name<$($param: storage_traits::$bound<CURRENT_VERSION>),*>(
                &self,
                $($arg: $ty),*
            ) -> Result<$ret, Self::Error> {
                self.inner.$name::<$($param),*>($($arg),*)
            }
        )*
    };
}

impl StorageProvider<CURRENT_VERSION> for MemberStorage {
    type Error = MemoryStorageError;

    // The live `MlsGroup` holds these; only `MlsGroup::load` would read them back.
    fn write_message_secrets<
        GroupId: storage_traits::GroupId<CURRENT_VERSION>,
        MessageSecrets: storage_traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _message_secrets: &MessageSecrets,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    fn message_secrets<
        GroupId: storage_traits::GroupId<CURRENT_VERSION>,
        MessageSecrets: storage_traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Option<MessageSecrets>, Self::Error> {
        Ok(None)
    }

    fn delete_message_secrets<GroupId: storage_traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    fn write_tree<
        GroupId: storage_traits::GroupId<CURRENT_VERSION>,
        TreeSync: storage_traits::TreeSync<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
        _tree: &TreeSync,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    fn tree<
        GroupId: storage_traits::GroupId<CURRENT_VERSION>,
        TreeSync: storage_traits::TreeSync<CURRENT_VERSION>,
    >(
        &self,
        _group_id: &GroupId,
    ) -> Result<Option<TreeSync>, Self::Error> {
        Ok(None)
    }

    fn delete_tree<GroupId: storage_traits::GroupId<CURRENT_VERSION>>(
        &self,
        _group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    // Everything else is MemoryStorage's.
    delegate_to_inner! {
        fn write_mls_join_config<GroupId: GroupId, MlsGroupJoinConfig: MlsGroupJoinConfig>(
            group_id: &GroupId,
            config: &MlsGroupJoinConfig,
        ) -> ();
        fn append_own_leaf_node<GroupId: GroupId, LeafNode: LeafNode>(
            group_id: &GroupId,
            leaf_node: &LeafNode,
        ) -> ();
        fn queue_proposal<
            GroupId: GroupId,
            ProposalRef: ProposalRef,
            QueuedProposal: QueuedProposal,
        >(
            group_id: &GroupId,
            proposal_ref: &ProposalRef,
            proposal: &QueuedProposal,
        ) -> ();
        fn write_interim_transcript_hash<
            GroupId: GroupId,
            InterimTranscriptHash: InterimTranscriptHash,
        >(
            group_id: &GroupId,
            interim_transcript_hash: &InterimTranscriptHash,
        ) -> ();
        fn write_context<GroupId: GroupId, GroupContext: GroupContext>(
            group_id: &GroupId,
            group_context: &GroupContext,
        ) -> ();
        fn write_confirmation_tag<GroupId: GroupId, ConfirmationTag: ConfirmationTag>(
            group_id: &GroupId,
            confirmation_tag: &ConfirmationTag,
        ) -> ();
        fn write_group_state<GroupState: GroupState, GroupId: GroupId>(
            group_id: &GroupId,
            group_state: &GroupState,
        ) -> ();
        fn write_resumption_psk_store<GroupId: GroupId, ResumptionPskStore: ResumptionPskStore>(
            group_id: &GroupId,
            resumption_psk_store: &ResumptionPskStore,
        ) -> ();
        fn write_own_leaf_index<GroupId: GroupId, LeafNodeIndex: LeafNodeIndex>(
            group_id: &GroupId,
            own_leaf_index: &LeafNodeIndex,
        ) -> ();
        fn write_group_epoch_secrets<GroupId: GroupId, GroupEpochSecrets: GroupEpochSecrets>(
            group_id: &GroupId,
            group_epoch_secrets: &GroupEpochSecrets,
        ) -> ();
        fn write_signature_key_pair<
            SignaturePublicKey: SignaturePublicKey,
            SignatureKeyPair: SignatureKeyPair,
        >(
            public_key: &SignaturePublicKey,
            signature_key_pair: &SignatureKeyPair,
        ) -> ();
        fn write_encryption_key_pair<EncryptionKey: EncryptionKey, HpkeKeyPair: HpkeKeyPair>(
            public_key: &EncryptionKey,
            key_pair: &HpkeKeyPair,
        ) -> ();
        fn write_encryption_epoch_key_pairs<
            GroupId: GroupId,
            EpochKey: EpochKey,
            HpkeKeyPair: HpkeKeyPair,
        >(
            group_id: &GroupId,
            epoch: &EpochKey,
            leaf_index: u32,
            key_pairs: &[HpkeKeyPair],
        ) -> ();
        fn write_key_package<HashReference: HashReference, KeyPackage: KeyPackage>(
            hash_ref: &HashReference,
            key_package: &KeyPackage,
        ) -> ();
        fn write_psk<PskId: PskId, PskBundle: PskBundle>(psk_id: &PskId, psk: &PskBundle) -> ();
        fn mls_group_join_config<GroupId: GroupId, MlsGroupJoinConfig: MlsGroupJoinConfig>(
            group_id: &GroupId,
        ) -> Option<MlsGroupJoinConfig>;
        fn own_leaf_nodes<GroupId: GroupId, LeafNode: LeafNode>(
            group_id: &GroupId,
        ) -> Vec<LeafNode>;
        fn queued_proposal_refs<GroupId: GroupId, ProposalRef: ProposalRef>(
            group_id: &GroupId,
        ) -> Vec<ProposalRef>;
        fn queued_proposals<
            GroupId: GroupId,
            ProposalRef: ProposalRef,
            QueuedProposal: QueuedProposal,
        >(
            group_id: &GroupId,
        ) -> Vec<(ProposalRef, QueuedProposal)>;
        fn group_context<GroupId: GroupId, GroupContext: GroupContext>(
            group_id: &GroupId,
        ) -> Option<GroupContext>;
        fn interim_transcript_hash<GroupId: GroupId, InterimTranscriptHash: InterimTranscriptHash>(
            group_id: &GroupId,
        ) -> Option<InterimTranscriptHash>;
        fn confirmation_tag<GroupId: GroupId, ConfirmationTag: ConfirmationTag>(
            group_id: &GroupId,
        ) -> Option<ConfirmationTag>;
        fn group_state<GroupState: GroupState, GroupId: GroupId>(
            group_id: &GroupId,
        ) -> Option<GroupState>;
        fn resumption_psk_store<GroupId: GroupId, ResumptionPskStore: ResumptionPskStore>(
            group_id: &GroupId,
        ) -> Option<ResumptionPskStore>;
        fn own_leaf_index<GroupId: GroupId, LeafNodeIndex: LeafNodeIndex>(
            group_id: &GroupId,
        ) -> Option<LeafNodeIndex>;
        fn group_epoch_secrets<GroupId: GroupId, GroupEpochSecrets: GroupEpochSecrets>(
            group_id: &GroupId,
        ) -> Option<GroupEpochSecrets>;
        fn signature_key_pair<
            SignaturePublicKey: SignaturePublicKey,
            SignatureKeyPair: SignatureKeyPair,
        >(
            public_key: &SignaturePublicKey,
        ) -> Option<SignatureKeyPair>;
        fn encryption_key_pair<HpkeKeyPair: HpkeKeyPair, EncryptionKey: EncryptionKey>(
            public_key: &EncryptionKey,
        ) -> Option<HpkeKeyPair>;
        fn encryption_epoch_key_pairs<
            GroupId: GroupId,
            EpochKey: EpochKey,
            HpkeKeyPair: HpkeKeyPair,
        >(
            group_id: &GroupId,
            epoch: &EpochKey,
            leaf_index: u32,
        ) -> Vec<HpkeKeyPair>;
        fn key_package<KeyPackageRef: HashReference, KeyPackage: KeyPackage>(
            hash_ref: &KeyPackageRef,
        ) -> Option<KeyPackage>;
        fn psk<PskBundle: PskBundle, PskId: PskId>(psk_id: &PskId) -> Option<PskBundle>;
        fn remove_proposal<GroupId: GroupId, ProposalRef: ProposalRef>(
            group_id: &GroupId,
            proposal_ref: &ProposalRef,
        ) -> ();
        fn delete_own_leaf_nodes<GroupId: GroupId>(group_id: &GroupId) -> ();
        fn delete_group_config<GroupId: GroupId>(group_id: &GroupId) -> ();
        fn delete_confirmation_tag<GroupId: GroupId>(group_id: &GroupId) -> ();
        fn delete_group_state<GroupId: GroupId>(group_id: &GroupId) -> ();
        fn delete_context<GroupId: GroupId>(group_id: &GroupId) -> ();
        fn delete_interim_transcript_hash<GroupId: GroupId>(group_id: &GroupId) -> ();
        fn delete_all_resumption_psk_secrets<GroupId: GroupId>(group_id: &GroupId) -> ();
        fn delete_own_leaf_index<GroupId: GroupId>(group_id: &GroupId) -> ();
        fn delete_group_epoch_secrets<GroupId: GroupId>(group_id: &GroupId) -> ();
        fn clear_proposal_queue<GroupId: GroupId, ProposalRef: ProposalRef>(
            group_id: &GroupId,
        ) -> ();
        fn delete_signature_key_pair<SignaturePublicKey: SignaturePublicKey>(
            public_key: &SignaturePublicKey,
        ) -> ();
        fn delete_encryption_key_pair<EncryptionKey: EncryptionKey>(
            public_key: &EncryptionKey,
        ) -> ();
        fn delete_encryption_epoch_key_pairs<GroupId: GroupId, EpochKey: EpochKey>(
            group_id: &GroupId,
            epoch: &EpochKey,
            leaf_index: u32,
        ) -> ();
        fn delete_key_package<KeyPackageRef: HashReference>(hash_ref: &KeyPackageRef) -> ();
        fn delete_psk<PskKey: PskId>(psk_id: &PskKey) -> ();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_verifying_keys_verify_like_rustcrypto() {
        let crypto = MemberCrypto::default();
        let (private, public) = crypto.signature_key_gen(SignatureScheme::ED25519).unwrap();
        let signature = crypto.sign(SignatureScheme::ED25519, b"hello", &private).unwrap();
        for _ in 0..2 {
            // The second time the key comes from the cache.
            crypto
                .verify_signature(SignatureScheme::ED25519, b"hello", &public, &signature)
                .unwrap();
        }
        assert_eq!(crypto.verifying_keys.lock().unwrap().len(), 1);

        let mut forged = signature.clone();
        forged[10] ^= 1;
        for (data, key, signature) in [
            (&b"hello"[..], &public[..], &forged[..]),
            (b"hellO", &public, &signature),
            (b"hello", &public, &signature[..63]),
            (b"hello", &public[..31], &signature),
        ] {
            let ours = crypto.verify_signature(SignatureScheme::ED25519, data, key, signature);
            let theirs =
                crypto.inner.verify_signature(SignatureScheme::ED25519, data, key, signature);
            assert!(ours.is_err());
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn the_key_cache_is_bounded() {
        let crypto = MemberCrypto::default();
        for _ in 0..MAX_CACHED_VERIFYING_KEYS + 1 {
            let (private, public) = crypto.signature_key_gen(SignatureScheme::ED25519).unwrap();
            let signature = crypto.sign(SignatureScheme::ED25519, b"m", &private).unwrap();
            crypto.verify_signature(SignatureScheme::ED25519, b"m", &public, &signature).unwrap();
        }
        assert!(crypto.verifying_keys.lock().unwrap().len() <= MAX_CACHED_VERIFYING_KEYS);
    }
}
