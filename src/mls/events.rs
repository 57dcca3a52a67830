//! What the MLS layer hands back to the client engine besides bytes.

/// Something that happened in a room, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A chat message. `from` is the nickname in the sender's credential, which MLS
    /// authenticated; `payload` is exactly what the sender passed to `encrypt_message`.
    Message { from: String, payload: Vec<u8> },
    /// A commit added this member.
    MemberAdded { nick: String },
    /// A commit removed this member (a rejoin removes and re-adds the same nickname).
    MemberRemoved { nick: String },
    /// A commit removed us: the group is dead for us and should be dropped.
    SelfRemoved,
    /// A commit covered this member's update of its own leaf (fresh keys, same identity).
    Renewed { nick: String },
}

/// One member of a room, as the member list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The nickname in the member's credential.
    pub nick: String,
    /// The fingerprint of the member's identity key (see `MlsMember::fingerprint`): the same
    /// for every client of one identity.
    pub fingerprint: String,
    /// The Ed25519 identity key that certified the member's device key (what `known_peers`
    /// pins, `/verify` compares and `/who` groups clients by).
    pub identity_key: Vec<u8>,
    /// The member's device key: the Ed25519 key its leaf signs with, one per client.
    pub device_key: Vec<u8>,
    /// Whether this is our own leaf.
    pub is_self: bool,
}

/// A commit waiting for the relay's decision, and the Welcome for members it adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingCommit {
    /// The epoch the commit was created in (the one it ends).
    pub epoch: u64,
    /// The serialized commit, for every current member.
    pub commit: Vec<u8>,
    /// The serialized Welcome, for the added members only; `None` if the commit adds nobody.
    pub welcome: Option<Vec<u8>>,
    /// The leaves (of the tree before the commit) that the commit keeps: the members whose
    /// votes decide it, the committer included.
    pub electorate: Vec<u32>,
}

/// An application message, opened: who sent it (leaf and credential) and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub leaf: u32,
    pub from: String,
    /// `None` for our own message, echoed back.
    pub payload: Option<Vec<u8>>,
}

/// Someone else's commit, verified by MLS and staged but not applied: what it would change,
/// for the receiver's commit policy to judge before it votes and merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSummary {
    /// The epoch the commit ends.
    pub epoch: u64,
    /// The member that signed the commit, as the tree knows it before the commit.
    pub committer: MemberInfo,
    /// Members the commit removes, as the tree knows them before the commit.
    pub removed: Vec<MemberInfo>,
    /// Members the commit adds, from their key packages.
    pub added: Vec<MemberInfo>,
    /// Members whose own update proposals the commit covers (`mls::renewal`).
    pub renewed: Vec<MemberInfo>,
    /// Whether the commit carries an update path, which renews the committer's leaf.
    pub renews_committer: bool,
    /// Proposals of any other kind (pre-shared keys, re-init, group context extensions,
    /// self-removes, custom): this client never makes them.
    pub other_proposals: usize,
    /// Whether the committer's new leaf (the update path) carries another credential or
    /// signature key than its current one.
    pub committer_identity_changed: bool,
    /// Whether the commit removes us.
    pub removes_us: bool,
    /// The number of members after the commit.
    pub members_after: usize,
    /// The most members the room's ciphersuite allows (`RoomSuite::max_members`).
    pub max_members: usize,
    /// The leaves (of the tree before the commit) that the commit keeps: the members whose
    /// votes decide it, the committer included.
    pub electorate: Vec<u32>,
}
