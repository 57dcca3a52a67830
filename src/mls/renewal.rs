//! Key renewal: a member's proposal to renew its own leaf, and the leader's commit of those.
//!
//! Only a room's leader commits, so a member that only reads would keep the leaf key it
//! joined with for as long as it stays; RFC 9420 (section 3.2) asks for updates hours or days
//! apart, and RFC 9750 for updates from members that send nothing. A member therefore
//! proposes an update of its own leaf (an MLS Update proposal: new HPKE keys, the same
//! credential and signature key), the room passes it on, and the leader commits every
//! pending one, with an update path that renews its own leaf too.
//!
//! openmls refuses to send application messages while its proposal store is not empty, and
//! every vote is one. So proposals are kept here, beside the store, and put into it only for
//! the moment a commit that covers them is made or checked.

use openmls::prelude::{
    ContentType, LeafNodeIndex, LeafNodeParameters, ProcessedMessageContent, Proposal,
    QueuedProposal, Sender, tls_codec::Serialize as _,
};

use openmls_traits::OpenMlsProvider as _;

use super::error::describe;
use super::identity::nick_of;
use super::room::RoomGroup;
use super::{MlsError, OutgoingCommit};

/// The update proposals of the current epoch that a commit may cover.
#[derive(Default)]
pub(super) struct Renewals {
    /// Other members' proposals, checked, at most one per leaf (the latest).
    pub(super) theirs: Vec<QueuedProposal>,
    /// Ours, whose new private keys openmls keeps until a commit covers it or the epoch ends.
    pub(super) ours: Option<QueuedProposal>,
}

impl Renewals {
    fn all(&self) -> impl Iterator<Item = &QueuedProposal> {
        self.theirs.iter().chain(&self.ours)
    }
}

impl RoomGroup {
    /// Proposes an update of our own leaf (fresh HPKE keys, the same credential and signature
    /// key) and returns the message for the room. One per epoch: a second call before a
    /// commit covers the first returns the first again.
    pub fn propose_renewal(&mut self) -> Result<Vec<u8>, MlsError> {
        if !self.group.is_active() {
            return Err(MlsError::NotAMember);
        }
        if self.has_pending_commit() || self.has_staged_commit() {
            return Err(MlsError::CommitPending);
        }
        let session = &*self.session;
        let (message, reference) = self
            .group
            .propose_self_update(&session.provider, &session.signer, LeafNodeParameters::default())
            .map_err(|error| MlsError::Internal(describe(&error)))?;
        let queued = self
            .group
            .pending_proposals()
            .find(|queued| queued.proposal_reference_ref() == &reference)
            .cloned()
            .ok_or_else(|| MlsError::Internal("our update proposal was not queued".into()))?;
        // Out of the store, or we could not vote (nor chat) until a commit covers it.
        let _ = self.group.remove_pending_proposal(session.provider.storage(), &reference);
        self.renewals.ours = Some(queued);
        message.tls_serialize_detached().map_err(|error| MlsError::Internal(describe(&error)))
    }

    /// Proposes an update of our leaf that carries `other`'s credential: what a hostile
    /// member would send, for the tests of what the others refuse.
    pub fn propose_renewal_claiming(&mut self, other: &str) -> Result<Vec<u8>, MlsError> {
        use openmls::prelude::CredentialWithKey;
        let leaf = *self.leaves_of(other).first().ok_or(MlsError::NoSuchMember(other.into()))?;
        let credential = self.group.member(leaf).cloned().ok_or(MlsError::Unexpected)?;
        let own = self.group.own_leaf_node().ok_or(MlsError::NotAMember)?;
        let signature_key = own.signature_key().clone();
        let parameters = LeafNodeParameters::builder()
            .with_credential_with_key(CredentialWithKey { credential, signature_key })
            .build();
        let session = &*self.session;
        let (message, _) = self
            .group
            .propose_self_update(&session.provider, &session.signer, parameters)
            .map_err(|error| MlsError::Internal(describe(&error)))?;
        message.tls_serialize_detached().map_err(|error| MlsError::Internal(describe(&error)))
    }

    /// Whether we proposed an update of our leaf that no commit covered yet.
    pub fn renewal_proposed(&self) -> bool {
        self.renewals.ours.is_some()
    }

    /// Checks another member's proposal and keeps it for the next commit: only an update of
    /// its sender's own leaf that keeps the leaf's credential and signature key. Returns the
    /// sender's nickname.
    pub fn receive_renewal(&mut self, message: &[u8]) -> Result<String, MlsError> {
        let processed = self.process(message, ContentType::Proposal)?;
        let Sender::Member(leaf) = *processed.sender() else {
            return Err(MlsError::Unexpected);
        };
        let nick = nick_of(processed.credential());
        let ProcessedMessageContent::ProposalMessage(queued) = processed.into_content() else {
            return Err(MlsError::Unexpected);
        };
        let Proposal::Update(update) = queued.proposal() else {
            return Err(MlsError::Unexpected);
        };
        let new_leaf = update.leaf_node();
        if !self.leaf_keeps_identity(
            leaf,
            new_leaf.credential(),
            new_leaf.signature_key().as_slice(),
        ) {
            return Err(MlsError::RenewalChangesIdentity(nick));
        }
        self.renewals.theirs.retain(|kept| *kept.sender() != Sender::Member(leaf));
        self.renewals.theirs.push(*queued);
        Ok(nick)
    }

    /// Forgets the proposal of `nick`, so that no commit of ours covers it (the leader's
    /// bound on how often one member may renew).
    pub fn drop_renewal_of(&mut self, nick: &str) {
        let leaves = self.leaves_of(nick);
        self.renewals
            .theirs
            .retain(|kept| !matches!(kept.sender(), Sender::Member(leaf) if leaves.contains(leaf)));
    }

    /// The members whose update proposals a commit of ours would cover now.
    pub fn renewals_waiting(&self) -> Vec<String> {
        self.renewals
            .theirs
            .iter()
            .filter_map(|kept| match kept.sender() {
                Sender::Member(leaf) => self.group.member(*leaf).map(nick_of),
                _ => None,
            })
            .collect()
    }

    /// As leader: commits every update proposal we keep, with an update path that renews our
    /// own leaf (with no proposal at all, that alone: our own renewal).
    pub fn commit_renewal(&mut self) -> Result<OutgoingCommit, MlsError> {
        self.with_renewals_queued(|room| room.commit(Vec::new(), None, true))
    }

    /// Runs `f` with the proposals we keep in openmls's store, and empties it again after,
    /// whatever `f` did (a commit made or staged keeps what it covers).
    pub(super) fn with_renewals_queued<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, MlsError>,
    ) -> Result<T, MlsError> {
        let storage = self.session.provider.storage();
        let queued: Vec<QueuedProposal> = self.renewals.all().cloned().collect();
        for proposal in &queued {
            self.group
                .store_pending_proposal(storage, proposal.clone())
                .map_err(|error| MlsError::Internal(describe(&error)))?;
        }
        let result = f(self);
        let storage = self.session.provider.storage();
        for proposal in &queued {
            let _ = self.group.remove_pending_proposal(storage, proposal.proposal_reference_ref());
        }
        result
    }

    /// A new epoch: the proposals of the last one can no longer be committed.
    pub(super) fn forget_renewals(&mut self) {
        self.renewals = Renewals::default();
    }

    fn leaf_keeps_identity(
        &self,
        leaf: LeafNodeIndex,
        credential: &openmls::prelude::Credential,
        signature_key: &[u8],
    ) -> bool {
        self.group.members().any(|member| {
            member.index == leaf
                && member.credential == *credential
                && member.signature_key.as_slice() == signature_key
        })
    }

    fn leaves_of(&self, nick: &str) -> Vec<LeafNodeIndex> {
        self.group
            .members()
            .filter(|member| nick_of(&member.credential) == nick)
            .map(|member| member.index)
            .collect()
    }
}
