//! One room's MLS group: encrypting, committing membership changes and processing input.

use std::sync::Arc;

use openmls::prelude::{
    ContentType, CreateMessageError, Credential, KeyPackage, LeafNodeIndex, MlsGroup,
    MlsGroupStateError, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut, ProcessMessageError,
    ProcessedMessage, ProcessedMessageContent, Proposal, ProtocolMessage, ProtocolVersion, Sender,
    StagedCommit, ValidationError, tls_codec::Deserialize as _, tls_codec::Serialize as _,
};
use openmls_traits::OpenMlsProvider as _;

use super::config::MAX_PAST_EPOCHS;
use super::device::{self, MAX_CLIENTS_PER_IDENTITY};
use super::error::describe;
use super::identity::{Session, fingerprint_of, identity_key_of, nick_of};
use super::padding::{pad, unpad};
use super::renewal::Renewals;
use super::{CommitSummary, MemberInfo, MlsError, Opened, OutgoingCommit, RoomEvent, RoomSuite};

/// One MLS group, as seen by one member.
pub struct RoomGroup {
    pub(super) group: MlsGroup,
    pub(super) session: Arc<Session>,
    /// Another member's commit, verified and waiting for the room's verdict. Nothing of it
    /// is applied until [`RoomGroup::merge_staged_commit`].
    staged: Option<Box<StagedCommit>>,
    /// Update proposals of this epoch, kept beside openmls's store (`renewal`).
    pub(super) renewals: Renewals,
}

impl std::fmt::Debug for RoomGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomGroup")
            .field("nick", &self.session.nick)
            .field("epoch", &self.epoch())
            .field("members", &self.group.members().count())
            .field("pending_commit", &self.has_pending_commit())
            .finish_non_exhaustive()
    }
}

impl RoomGroup {
    pub(crate) fn new(group: MlsGroup, session: Arc<Session>) -> Self {
        RoomGroup { group, session, staged: None, renewals: Renewals::default() }
    }

    /// Whether the member's store holds a copy of this group that OpenMLS could load back.
    #[cfg(test)]
    pub(crate) fn stored_copy_exists(&self) -> bool {
        MlsGroup::load(self.session.provider.storage(), self.group.group_id())
            .expect("the in-memory store cannot fail a read")
            .is_some()
    }

    /// Our own leaf's HPKE encryption key (its `Debug` form: openmls exports no other view of
    /// it), which only a commit with an update path renews.
    #[cfg(test)]
    pub(crate) fn own_encryption_key(&self) -> String {
        format!("{:?}", self.group.own_leaf_node().map(|leaf| leaf.encryption_key()))
    }

    /// The current epoch; every merged commit increments it.
    pub fn epoch(&self) -> u64 {
        self.group.epoch().as_u64()
    }

    /// The random MLS group id, which the relay sees in every message header.
    pub fn group_id(&self) -> Vec<u8> {
        self.group.group_id().as_slice().to_vec()
    }

    /// The current epoch's authenticator (RFC 9420, 8.7): the same for every member of this
    /// group and epoch, unknown to anyone else; `/verify` shows it as the room's safety code.
    pub fn epoch_authenticator(&self) -> Vec<u8> {
        self.group.epoch_authenticator().as_slice().to_vec()
    }

    /// The room's ciphersuite, fixed when its creator made the group.
    pub fn suite(&self) -> RoomSuite {
        // A group is only ever created or joined with one of our suites (`create_room_of`,
        // `join_room`), so the fallback is never taken.
        RoomSuite::of(self.group.ciphersuite()).unwrap_or_default()
    }

    /// The most members this room may have, by its suite.
    pub fn max_members(&self) -> usize {
        self.suite().max_members()
    }

    /// Whether we are still a member (false once a commit removed us).
    pub fn is_active(&self) -> bool {
        self.group.is_active()
    }

    /// The members, in leaf order.
    pub fn members(&self) -> Vec<MemberInfo> {
        let own_index = self.group.own_leaf_index();
        self.group
            .members()
            .map(|member| {
                member_info(&member.credential, &member.signature_key, member.index == own_index)
            })
            .collect()
    }

    /// Encrypts a chat message for the current epoch (allowed while a commit is pending:
    /// receivers keep the keys of past epochs for a while).
    pub fn encrypt_message(&mut self, payload: &[u8]) -> Result<Vec<u8>, MlsError> {
        let session = &*self.session;
        let message = self
            .group
            .create_message(&session.provider, &session.signer, &pad(payload))
            .map_err(|error| match error {
                CreateMessageError::GroupStateError(MlsGroupStateError::UseAfterEviction) => {
                    MlsError::NotAMember
                }
                other => MlsError::Internal(describe(&other)),
            })?;
        serialize(&message)
    }

    /// Commits adding the owner of `key_package`, who must be `expected_nick`: the joiner the
    /// relay named and the password exchange bound. The returned Welcome is for them.
    pub fn commit_add(
        &mut self,
        key_package: &[u8],
        expected_nick: &str,
    ) -> Result<OutgoingCommit, MlsError> {
        let key_package = self.validate_key_package(key_package, expected_nick)?;
        if self.group.members().any(|member| {
            crate::proto::nicks_look_alike(&nick_of(&member.credential), expected_nick)
        }) {
            // Nicknames name leaves in `commit_remove`, so they must stay unique (and every
            // member refuses look-alikes); a member that comes back with a new key package is
            // re-added with `commit_replace`.
            return Err(MlsError::NickInRoom(expected_nick.to_owned()));
        }
        self.check_clients_per_identity(&key_package, &[])?;
        let max = self.max_members();
        if self.group.members().count() >= max {
            return Err(MlsError::RoomFull { max });
        }
        self.commit(Vec::new(), Some(key_package), false)
    }

    /// Commits removing every leaf whose credential carries one of `nicks`.
    pub fn commit_remove(&mut self, nicks: &[&str]) -> Result<OutgoingCommit, MlsError> {
        if nicks.contains(&self.session.nick.as_str()) {
            return Err(MlsError::CannotRemoveSelf);
        }
        let leaves = self.leaves_named(|nick| nicks.contains(&nick));
        if leaves.is_empty() {
            return Err(MlsError::NoSuchMember(nicks.join(", ")));
        }
        self.commit(leaves, None, false)
    }

    /// Re-admits a member that was taken out of the room and comes back: one commit removes
    /// its old leaf (or leaves) and adds its new key package. The returned Welcome is for it.
    pub fn commit_replace(
        &mut self,
        nick: &str,
        key_package: &[u8],
    ) -> Result<OutgoingCommit, MlsError> {
        if nick == self.session.nick {
            return Err(MlsError::CannotRemoveSelf);
        }
        let key_package = self.validate_key_package(key_package, nick)?;
        let leaves = self.leaves_named(|candidate| candidate == nick);
        if leaves.is_empty() {
            return Err(MlsError::NoSuchMember(nick.to_owned()));
        }
        self.check_clients_per_identity(&key_package, &leaves)?;
        self.commit(leaves, Some(key_package), false)
    }

    /// Whether a commit of ours waits for the relay's decision.
    pub fn has_pending_commit(&self) -> bool {
        self.group.pending_commit().is_some()
    }

    /// Applies our pending commit, once the relay accepted it, and reports what it changed.
    pub fn merge_pending_commit(&mut self) -> Result<Vec<RoomEvent>, MlsError> {
        let Some(staged) = self.group.pending_commit() else {
            return Err(MlsError::NoPendingCommit);
        };
        let events = self.commit_events(staged);
        self.group
            .merge_pending_commit(&self.session.provider)
            .map_err(|error| MlsError::Internal(describe(&error)))?;
        self.forget_renewals();
        Ok(events)
    }

    /// Drops our pending commit, after the relay rejected it (another commit won the epoch).
    pub fn discard_pending_commit(&mut self) {
        // The in-memory store cannot fail a write; were it ever to, the in-memory group state
        // (which is what every later operation uses) is already reset by this call.
        let _ = self.group.clear_pending_commit(self.session.provider.storage());
    }

    /// Processes a chat message from the room. Our own messages echoed back produce no
    /// events. A commit is refused here: key changes arrive only as commits, through
    /// [`RoomGroup::stage_commit`], so a relay cannot slip one in as a chat message.
    pub fn process_incoming(&mut self, message: &[u8]) -> Result<Vec<RoomEvent>, MlsError> {
        let processed = self.process(message, ContentType::Application)?;
        let from = nick_of(processed.credential());
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(message) => {
                let payload = unpad(message.into_bytes()).ok_or(MlsError::Malformed)?;
                Ok(vec![RoomEvent::Message { from, payload }])
            }
            // The relay fanned our own message back to us; there is nothing to learn from it.
            ProcessedMessageContent::OwnPrivateMessage => Ok(Vec::new()),
            _ => Err(MlsError::Unexpected),
        }
    }

    /// Opens an application message of this group and says who sent it: its leaf, the
    /// nickname in its credential, and the payload (`None` for our own message echoed back,
    /// which we cannot decrypt and need not). Votes are read through this, so that they are
    /// counted per leaf, never per name the relay gives.
    pub fn open_application(&mut self, message: &[u8]) -> Result<Opened, MlsError> {
        let processed = self.process(message, ContentType::Application)?;
        let Sender::Member(leaf) = *processed.sender() else {
            return Err(MlsError::Unexpected);
        };
        let from = nick_of(processed.credential());
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(message) => {
                let payload = unpad(message.into_bytes()).ok_or(MlsError::Malformed)?;
                Ok(Opened { leaf: leaf.u32(), from, payload: Some(payload) })
            }
            ProcessedMessageContent::OwnPrivateMessage => {
                Ok(Opened { leaf: leaf.u32(), from, payload: None })
            }
            _ => Err(MlsError::Unexpected),
        }
    }

    /// Our own leaf's index in the tree.
    pub fn own_leaf(&self) -> u32 {
        self.group.own_leaf_index().u32()
    }

    /// The nicknames in the credentials of these leaves of the current tree (leaves that
    /// are empty or not in the tree are skipped).
    pub fn nicks_at(&self, leaves: &[u32]) -> Vec<String> {
        self.group
            .members()
            .filter(|member| leaves.contains(&member.index.u32()))
            .map(|member| nick_of(&member.credential))
            .collect()
    }

    /// Verifies another member's commit (signature, membership tag, every proposal and the
    /// update path, as openmls does) and stages it without applying anything. Returns what it
    /// would change, for the caller's commit policy; the caller then merges it once the room
    /// confirms, or discards it.
    ///
    /// One staged commit at a time: the relay sends one commit per epoch and waits for the
    /// verdicts, so a second one while the first is staged is refused.
    pub fn stage_commit(&mut self, message: &[u8]) -> Result<CommitSummary, MlsError> {
        if self.staged.is_some() {
            return Err(MlsError::CommitPending);
        }
        // A commit covers update proposals by reference: they must be in the store to check it.
        let processed =
            self.with_renewals_queued(|room| room.process(message, ContentType::Commit))?;
        let committer_index = match processed.sender() {
            Sender::Member(index) => *index,
            // Rooms accept no external committers or senders.
            _ => return Err(MlsError::Unexpected),
        };
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            return Err(MlsError::Unexpected);
        };
        let summary = self.summarize(committer_index, &staged)?;
        self.staged = Some(staged);
        Ok(summary)
    }

    /// Whether another member's commit is staged, waiting for the room's verdict.
    pub fn has_staged_commit(&self) -> bool {
        self.staged.is_some()
    }

    /// Applies the staged commit once the room confirmed it, and reports what it changed.
    pub fn merge_staged_commit(&mut self) -> Result<Vec<RoomEvent>, MlsError> {
        let staged = self.staged.take().ok_or(MlsError::NoPendingCommit)?;
        let events = self.commit_events(&staged);
        let session = &*self.session;
        let self_removed = staged.self_removed();
        self.group
            .merge_staged_commit(&session.provider, *staged)
            .map_err(|error| MlsError::Internal(describe(&error)))?;
        if self_removed {
            // Nothing of a group we were removed from is needed again, so its state leaves
            // the member's store now rather than when the session ends. The in-memory store
            // cannot fail this.
            let _ = self.group.delete(session.provider.storage());
        }
        self.forget_renewals();
        Ok(events)
    }

    /// Drops the staged commit: the room aborted it, or we refused it.
    pub fn discard_staged_commit(&mut self) {
        self.staged = None;
    }

    /// Parses, routes and verifies a private message of this group whose content is of the
    /// `expected` type; anything else is refused before any cryptography.
    pub(super) fn process(
        &mut self,
        message: &[u8],
        expected: ContentType,
    ) -> Result<ProcessedMessage, MlsError> {
        let protocol_message = self.open(message)?;
        if protocol_message.content_type() != expected {
            return Err(MlsError::Unexpected);
        }
        self.group.process_message(&self.session.provider, protocol_message).map_err(process_error)
    }

    /// Parses a private message of this group and sorts out its epoch.
    fn open(&self, message: &[u8]) -> Result<ProtocolMessage, MlsError> {
        if !self.group.is_active() {
            return Err(MlsError::NotAMember);
        }
        let message =
            MlsMessageIn::tls_deserialize_exact(message).map_err(|_| MlsError::Malformed)?;
        let protocol_message: ProtocolMessage = match message.extract() {
            MlsMessageBodyIn::PrivateMessage(message) => message.into(),
            // Our rooms encrypt everything, so a plaintext handshake message is never valid.
            _ => return Err(MlsError::Unexpected),
        };
        self.check_routing(&protocol_message)?;
        Ok(protocol_message)
    }

    /// What a verified, staged commit would change, described against the current tree.
    fn summarize(
        &self,
        committer_index: LeafNodeIndex,
        staged: &StagedCommit,
    ) -> Result<CommitSummary, MlsError> {
        let info = |index: LeafNodeIndex| {
            self.group.member(index).map(|credential| {
                let key = self
                    .group
                    .members()
                    .find(|member| member.index == index)
                    .map(|member| member.signature_key)
                    .unwrap_or_default();
                member_info(credential, &key, index == self.group.own_leaf_index())
            })
        };
        let committer = info(committer_index).ok_or(MlsError::Unexpected)?;
        let removed: Vec<MemberInfo> = staged
            .remove_proposals()
            .filter_map(|removal| info(removal.remove_proposal().removed()))
            .collect();
        // A leaf enters the group only certified by the identity it names.
        let added = staged
            .add_proposals()
            .map(|addition| {
                let leaf = addition.add_proposal().key_package().leaf_node();
                let key = leaf.signature_key().as_slice();
                device::verify(leaf.credential(), key, self.session.provider.crypto()).map_err(
                    |reason| MlsError::Uncertified { nick: nick_of(leaf.credential()), reason },
                )?;
                Ok(member_info(leaf.credential(), key, false))
            })
            .collect::<Result<Vec<MemberInfo>, MlsError>>()?;
        let other_proposals = staged
            .queued_proposals()
            .filter(|queued| {
                !matches!(
                    queued.proposal(),
                    Proposal::Add(_) | Proposal::Remove(_) | Proposal::Update(_)
                )
            })
            .count();
        // Each was checked when it arrived (`receive_renewal`): a commit cannot cover a
        // proposal that is not in our store, and only checked ones go there.
        let renewed: Vec<MemberInfo> = staged
            .update_proposals()
            .filter_map(|update| match update.sender() {
                Sender::Member(leaf) => info(*leaf),
                _ => None,
            })
            .collect();
        // The whole credential, not only the nickname it claims: a certification by another
        // identity under the same nickname is another member.
        let committer_credential = self.group.member(committer_index);
        let committer_identity_changed = staged.update_path_leaf_node().is_some_and(|leaf| {
            Some(leaf.credential()) != committer_credential
                || leaf.signature_key().as_slice() != committer.device_key.as_slice()
        });
        let members_before = self.group.members().count();
        let removed_leaves: Vec<LeafNodeIndex> =
            staged.remove_proposals().map(|removal| removal.remove_proposal().removed()).collect();
        Ok(CommitSummary {
            electorate: self.electorate_without(&removed_leaves),
            epoch: self.epoch(),
            removes_us: staged.self_removed(),
            members_after: (members_before + added.len()).saturating_sub(removed.len()),
            max_members: self.max_members(),
            committer,
            removed,
            added,
            renewed,
            renews_committer: staged.update_path_leaf_node().is_some(),
            other_proposals,
            committer_identity_changed,
        })
    }

    /// Rejects messages for other groups and sorts out epochs before any cryptography, so that
    /// the caller can tell the user why a message was not shown (too new, too old).
    fn check_routing(&self, message: &ProtocolMessage) -> Result<(), MlsError> {
        if message.group_id() != self.group.group_id() {
            return Err(MlsError::WrongGroup);
        }
        let message_epoch = message.epoch().as_u64();
        let group_epoch = self.epoch();
        if message_epoch > group_epoch {
            return Err(MlsError::EpochTooNew { message_epoch, group_epoch });
        }
        let too_old = match message.content_type() {
            // A commit for an epoch that already ended lost to the one that ended it.
            ContentType::Commit | ContentType::Proposal => message_epoch < group_epoch,
            ContentType::Application => group_epoch - message_epoch > MAX_PAST_EPOCHS as u64,
        };
        if too_old {
            return Err(MlsError::EpochTooOld { message_epoch, group_epoch });
        }
        Ok(())
    }

    /// Parses and checks a serialized key package: signature, protocol version, ciphersuite,
    /// and a basic credential carrying exactly `expected_nick`, which must be a valid
    /// nickname (`proto::is_valid_nick`, the one rule for nicknames).
    fn validate_key_package(
        &self,
        bytes: &[u8],
        expected_nick: &str,
    ) -> Result<KeyPackage, MlsError> {
        let invalid = |reason: &str| MlsError::InvalidKeyPackage(reason.to_owned());
        let message = MlsMessageIn::tls_deserialize_exact(bytes)
            .map_err(|_| invalid("not an mls message"))?;
        let MlsMessageBodyIn::KeyPackage(key_package) = message.extract() else {
            return Err(invalid("not a key package"));
        };
        let key_package = key_package
            .validate(self.session.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|error| MlsError::InvalidKeyPackage(describe(&error)))?;
        if key_package.ciphersuite() != self.group.ciphersuite() {
            return Err(invalid("the key package is not for the room's ciphersuite"));
        }
        let leaf = key_package.leaf_node();
        let certified = device::verify(
            leaf.credential(),
            leaf.signature_key().as_slice(),
            self.session.provider.crypto(),
        )
        .map_err(|reason| MlsError::Uncertified { nick: expected_nick.to_owned(), reason })?;
        let nick = certified.nick;
        if nick != expected_nick {
            return Err(MlsError::InvalidKeyPackage(format!(
                "the key package is for {nick:?}, not {expected_nick:?}"
            )));
        }
        Ok(key_package)
    }

    /// Commits adding a key package whose credential is not checked at all: what a hostile
    /// leader would send, for tests of what the other members refuse.
    #[cfg(test)]
    pub(crate) fn commit_add_unchecked(
        &mut self,
        bytes: &[u8],
    ) -> Result<OutgoingCommit, MlsError> {
        let message =
            MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| MlsError::Malformed)?;
        let MlsMessageBodyIn::KeyPackage(key_package) = message.extract() else {
            return Err(MlsError::Malformed);
        };
        let key_package = key_package
            .validate(self.session.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|error| MlsError::InvalidKeyPackage(describe(&error)))?;
        self.commit(Vec::new(), Some(key_package), false)
    }

    /// Commits adding every one of `key_packages` at once, unchecked: how a test builds a
    /// room of hundreds quickly (one commit instead of one per member).
    #[cfg(test)]
    pub(crate) fn commit_add_many(
        &mut self,
        key_packages: &[Vec<u8>],
    ) -> Result<OutgoingCommit, MlsError> {
        let session = &*self.session;
        let provider = &session.provider;
        let mut adds = Vec::new();
        for bytes in key_packages {
            let message =
                MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| MlsError::Malformed)?;
            let MlsMessageBodyIn::KeyPackage(key_package) = message.extract() else {
                return Err(MlsError::Malformed);
            };
            adds.push(
                key_package
                    .validate(provider.crypto(), ProtocolVersion::Mls10)
                    .map_err(|error| MlsError::InvalidKeyPackage(describe(&error)))?,
            );
        }
        let internal = |error: &dyn std::fmt::Display| MlsError::Internal(describe(error));
        let epoch = self.epoch();
        let bundle = self
            .group
            .commit_builder()
            .propose_adds(adds)
            .force_self_update(false)
            .load_psks(provider.storage())
            .map_err(|error| internal(&error))?
            .build(provider.rand(), provider.crypto(), &session.signer, |_| true)
            .map_err(|error| internal(&error))?
            .stage_commit(provider)
            .map_err(|error| internal(&error))?;
        let electorate = self.electorate_without(&[]);
        let (commit, welcome, _group_info) = bundle.into_messages();
        let welcome = welcome.map(|welcome| serialize(&welcome)).transpose()?;
        Ok(OutgoingCommit { epoch, commit: serialize(&commit)?, welcome, electorate })
    }

    /// Refuses a key package whose identity already has [`MAX_CLIENTS_PER_IDENTITY`] clients
    /// in the group, not counting the leaves the commit removes.
    fn check_clients_per_identity(
        &self,
        key_package: &KeyPackage,
        removed: &[LeafNodeIndex],
    ) -> Result<(), MlsError> {
        let credential = key_package.leaf_node().credential();
        let identity = identity_key_of(credential);
        let clients = self
            .group
            .members()
            .filter(|member| !removed.contains(&member.index))
            .filter(|member| identity_key_of(&member.credential) == identity)
            .count();
        if clients >= MAX_CLIENTS_PER_IDENTITY {
            return Err(MlsError::TooManyClients(nick_of(credential)));
        }
        Ok(())
    }

    /// Other members' leaves whose nickname satisfies `wanted`.
    fn leaves_named(&self, wanted: impl Fn(&str) -> bool) -> Vec<LeafNodeIndex> {
        let own_index = self.group.own_leaf_index();
        self.group
            .members()
            .filter(|member| member.index != own_index && wanted(&nick_of(&member.credential)))
            .map(|member| member.index)
            .collect()
    }

    /// Builds, signs and stages one commit. A commit that removes anyone carries an update
    /// path, which renews our own leaf key and the room's secrets so that the removed cannot
    /// follow (RFC 9420 requires it). A commit that only adds does not: the path is optional
    /// there (RFC 9420, section 12.4), and it costs one HPKE encryption per node in the
    /// resolution of our copath — only the leader commits, so the other parent nodes stay
    /// blank and that is about one encryption per other member — and every other member a
    /// decryption and a derivation while it checks the commit, with a majority of them on
    /// the joiner's path. In a room of 100 on two cores that was a third of a join (55 ms
    /// against 38 ms, `loadgen join`). The joiner learns only the new epoch's secrets from
    /// its Welcome either way; what an add forgoes is healing after a compromise of our leaf,
    /// which removals and self-updates still bring.
    pub(super) fn commit(
        &mut self,
        removals: Vec<LeafNodeIndex>,
        add: Option<KeyPackage>,
        renew: bool,
    ) -> Result<OutgoingCommit, MlsError> {
        if !self.group.is_active() {
            return Err(MlsError::NotAMember);
        }
        if self.has_pending_commit() {
            return Err(MlsError::CommitPending);
        }
        let epoch = self.epoch();
        let adding = add.is_some();
        let removals_copy = removals.clone();
        let session = &*self.session;
        let provider = &session.provider;
        let internal = |error: &dyn std::fmt::Display| MlsError::Internal(describe(error));
        let bundle = self
            .group
            .commit_builder()
            .propose_removals(removals)
            .propose_adds(add)
            .force_self_update(renew || !adding)
            .load_psks(provider.storage())
            .map_err(|error| internal(&error))?
            .build(provider.rand(), provider.crypto(), &session.signer, |_| true)
            .map_err(|error| {
                // The key package is the only input a peer chose, so a failure to build a
                // commit that adds one is most likely its fault.
                if adding {
                    MlsError::InvalidKeyPackage(describe(&error))
                } else {
                    internal(&error)
                }
            })?
            .stage_commit(provider)
            .map_err(|error| internal(&error))?;
        let electorate = self.electorate_without(&removals_copy);
        let (commit, welcome, _group_info) = bundle.into_messages();
        let welcome = match welcome {
            Some(welcome) => Some(serialize(&welcome)?),
            None if adding => return Err(MlsError::Internal("commit made no welcome".into())),
            None => None,
        };
        Ok(OutgoingCommit { epoch, commit: serialize(&commit)?, welcome, electorate })
    }

    /// The leaves of the current tree that a commit removing `removed` keeps: the members
    /// whose votes decide it.
    fn electorate_without(&self, removed: &[LeafNodeIndex]) -> Vec<u32> {
        self.group
            .members()
            .filter(|member| !removed.contains(&member.index))
            .map(|member| member.index.u32())
            .collect()
    }

    /// What a commit changes, described against the tree before it is merged (removed members'
    /// nicknames are gone afterwards). Removals come first, as the commit applies them first.
    fn commit_events(&self, staged: &StagedCommit) -> Vec<RoomEvent> {
        let own_index = self.group.own_leaf_index();
        let mut events = Vec::new();
        for removal in staged.remove_proposals() {
            let removed = removal.remove_proposal().removed();
            if removed == own_index {
                continue;
            }
            let nick = self.group.member(removed).map(nick_of).unwrap_or_default();
            events.push(RoomEvent::MemberRemoved { nick });
        }
        for addition in staged.add_proposals() {
            let nick = nick_of(addition.add_proposal().key_package().leaf_node().credential());
            events.push(RoomEvent::MemberAdded { nick });
        }
        for update in staged.update_proposals() {
            if let Sender::Member(leaf) = update.sender() {
                let nick = self.group.member(*leaf).map(nick_of).unwrap_or_default();
                events.push(RoomEvent::Renewed { nick });
            }
        }
        if staged.self_removed() {
            events.push(RoomEvent::SelfRemoved);
        }
        events
    }
}

/// A leaf as the member list shows it: the nickname and identity its certification claims
/// (verified when the leaf entered the group), and the key it signs with.
fn member_info(credential: &Credential, device_key: &[u8], is_self: bool) -> MemberInfo {
    let identity_key = identity_key_of(credential);
    MemberInfo {
        nick: nick_of(credential),
        fingerprint: fingerprint_of(&identity_key),
        identity_key,
        device_key: device_key.to_vec(),
        is_self,
    }
}

fn serialize(message: &MlsMessageOut) -> Result<Vec<u8>, MlsError> {
    message.tls_serialize_detached().map_err(|error| MlsError::Internal(describe(&error)))
}

/// Folds openmls's processing errors into what the caller can act on.
fn process_error<E: std::fmt::Debug + std::fmt::Display>(
    error: ProcessMessageError<E>,
) -> MlsError {
    match error {
        ProcessMessageError::ValidationError(
            ValidationError::WrongEpoch | ValidationError::NoPastEpochData,
        ) => MlsError::Undecryptable("no keys for the message's epoch".into()),
        ProcessMessageError::ValidationError(ValidationError::LibraryError(error)) => {
            MlsError::Internal(describe(&error))
        }
        ProcessMessageError::ValidationError(ValidationError::WrongGroupId) => MlsError::WrongGroup,
        ProcessMessageError::ValidationError(error) => MlsError::Undecryptable(describe(&error)),
        ProcessMessageError::InvalidCommit(error) => {
            MlsError::Undecryptable(format!("invalid commit: {}", describe(&error)))
        }
        ProcessMessageError::GroupStateError(MlsGroupStateError::UseAfterEviction) => {
            MlsError::NotAMember
        }
        ProcessMessageError::IncompatibleWireFormat => MlsError::Unexpected,
        other => MlsError::Internal(describe(&other)),
    }
}
