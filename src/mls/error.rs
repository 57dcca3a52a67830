//! The one error type of the MLS layer.
//!
//! openmls's own errors are generic over the storage error and very detailed; callers need to
//! know only what to do next (drop the message, rejoin, report a bug), so they are
//! folded into these variants. Messages never contain key material or plaintext.

/// Why an MLS operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MlsError {
    /// The bytes are not a well-formed MLS message of the expected kind.
    #[error("malformed mls message")]
    Malformed,
    /// The message belongs to another group.
    #[error("message is for another group")]
    WrongGroup,
    /// The message claims an epoch we have not reached (we missed a commit, or it is forged).
    /// It is reported, never acted on: a claimed epoch must not start anything.
    #[error("message from epoch {message_epoch} but the group is at epoch {group_epoch}")]
    EpochTooNew { message_epoch: u64, group_epoch: u64 },
    /// The message was sent in an epoch whose keys are gone, or is a commit for an epoch that
    /// another commit already ended. It can only be dropped.
    #[error("message from epoch {message_epoch} is too old for epoch {group_epoch}")]
    EpochTooOld { message_epoch: u64, group_epoch: u64 },
    /// Decryption or authentication failed: tampered, replayed or not meant for us.
    #[error("cannot decrypt message: {0}")]
    Undecryptable(String),
    /// A key package failed validation (signature, ciphersuite, version).
    #[error("invalid key package: {0}")]
    InvalidKeyPackage(String),
    /// A Welcome could not be used to join (not for us, or invalid).
    #[error("invalid welcome: {0}")]
    InvalidWelcome(String),
    /// No member of the group has this nickname.
    #[error("no member named {0:?}")]
    NoSuchMember(String),
    /// A nickname that cannot be used in a credential.
    #[error("invalid nickname")]
    InvalidNick,
    /// A commit is already waiting for the relay's decision; merge or discard it first.
    #[error("a commit is already pending")]
    CommitPending,
    /// There is no pending commit to merge.
    #[error("no commit is pending")]
    NoPendingCommit,
    /// A member of the group already goes by this nickname or one that looks like it.
    #[error("{0:?} is already a member, or looks like one")]
    NickInRoom(String),
    /// A member cannot commit its own removal; it asks another member to.
    #[error("cannot remove ourselves with a commit")]
    CannotRemoveSelf,
    /// We were removed from the group; it can no longer be used.
    #[error("we are no longer a member of this group")]
    NotAMember,
    /// A message kind this client never sends (e.g. a standalone proposal).
    #[error("unexpected mls message kind")]
    Unexpected,
    /// A leaf's credential is not a valid certification of its key by an identity
    /// (`mls::device`): the Welcome, commit or key package carrying it is refused.
    #[error("{nick}'s credential is refused: {reason}")]
    Uncertified { nick: String, reason: super::device::CertificationError },
    /// Adding the key package would put more than `device::MAX_CLIENTS_PER_IDENTITY` clients
    /// of one identity into the room.
    #[error("{0}'s identity already has the most clients a room allows")]
    TooManyClients(String),
    /// A member's proposal to renew its leaf would change the leaf's credential or
    /// signature key: an update may renew keys, never the identity.
    #[error("{0}'s key renewal would change their identity")]
    RenewalChangesIdentity(String),
    /// The room's ciphersuite is not one this client can use: refused before any KeyPackage
    /// is made for it, with the suite named.
    #[error(transparent)]
    UnsupportedSuite(#[from] super::UnsupportedSuite),
    /// Adding one more member would take the room past the most its ciphersuite allows
    /// (`RoomSuite::max_members`).
    #[error("the room has {max} members, the most its ciphersuite allows")]
    RoomFull { max: usize },
    /// A bug or an unexpected library failure; the text is openmls's description.
    #[error("internal mls error: {0}")]
    Internal(String),
}

impl MlsError {
    /// What a leader tells a joiner whose key package it could not add for this reason.
    pub fn admission_refusal(&self) -> crate::proto::AdmissionRefusal {
        use crate::proto::AdmissionRefusal;
        match self {
            MlsError::Uncertified { .. } => AdmissionRefusal::Uncertified,
            MlsError::TooManyClients(_) => AdmissionRefusal::TooManyDevices,
            MlsError::NickInRoom(_) => AdmissionRefusal::NickInRoom,
            MlsError::RoomFull { .. } => AdmissionRefusal::RoomFull,
            MlsError::InvalidKeyPackage(_) | MlsError::InvalidNick => {
                AdmissionRefusal::InvalidKeyPackage
            }
            _ => AdmissionRefusal::LeaderFailed,
        }
    }
}

/// openmls's error text in our style: lowercase first letter, no closing period. Its errors
/// describe what failed and never include key material or plaintext.
pub(crate) fn describe(error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_follows_the_message_style() {
        assert_eq!(describe(&"Verifying the signature failed."), "verifying the signature failed");
        assert_eq!(describe(&""), "");
    }
}
