//! The wire protocol spoken between `chatter` and `chatter-server`.
//!
//! Everything on the wire is a 4-byte big-endian length followed by that many bytes
//! (`tokio_util`'s `LengthDelimitedCodec` does the framing). The first two frames of a
//! connection are the plaintext handshake ([`ClientHello`], [`ServerHello`]); after them the
//! transport sends sealed records, each holding one or more length-prefixed frames (see
//! `transport`), the first of them [`ClientFinish`]. Every frame is a postcard-encoded value
//! from this module: [`ClientFrame`] upstream, [`ServerFrame`] downstream. This is the only
//! module whose types are serialized.
//!
//! MLS objects (KeyPackages, Commits, Welcomes, application messages) travel as opaque bytes:
//! the relay cannot read them. They are marked `serde_bytes` so postcard copies them whole
//! instead of visiting them a byte at a time (the encoding is the same: a varint length, then
//! the bytes). Decoding is pure and never panics: malformed input is an [`DecodeError`].

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks. A peer with another version is refused with
/// [`HelloRejection::UnsupportedVersion`], naming this one.
/// Version 2 sealed several frames per transport record (version 1 sealed each frame alone);
/// version 3 confirms every commit by the members' votes and has no repair path; version 4
/// numbers frames so that a session survives its connection (`Resume`, `Ack`, `Reclaim`);
/// version 5 carries members' signed votes with every confirmation, re-forms rooms after a
/// restart by the claims of the members that return, rotates the resume token, and has
/// `Error` name the frame it refuses (`request`); version 6 sends a joiner's Welcome only
/// after its leader merged the confirmed commit and certifies each device's key by the
/// person's identity; version 7 has `Reclaimed` carry the room's epoch and `Reclaim` bring
/// the member's last commits, so members back behind a restart catch up; version 8 opens
/// direct messages inside a
/// shared room (`GroupMessage::Dm`), keeps room names starting with `@` for them, and adds
/// [`ServerFrame::Restarting`], so that clients told of a restart come back on a short
/// schedule instead of a grown backoff; version 9 passes on members' proposals to renew
/// their own leaf keys (MLS Update proposals, in `Application`), has the leader's
/// `AdmissionReply` name the room's MLS ciphersuite, so that a joiner makes its KeyPackage
/// for it (or says it cannot), and adds [`AdmissionRefusal::RoomFull`]; version 10 has a
/// `Join` carry the joiner's half of the password exchange (no `AdmissionStart`) and
/// `MemberJoined` name the room's epoch, and lets a leader carry to the vote the commit of
/// another member it said yes to (members accept it), while the relay keeps the yes that
/// members bring back through a restart (`relay::state::pledges`).
pub const PROTOCOL_VERSION: u16 = 10;

/// The largest frame, in bytes, either side accepts once the handshake is done. An MLS
/// Welcome for a 1000-member room of the classic suite is about 330 KB, and a commit that
/// removes someone from it about 83 KB; a post-quantum room's are about 1.5 KB and 1.2 KB a
/// member (465 KB and 361 KB at its cap of 300, `mls::MAX_PQ_ROOM_MEMBERS`;
/// `docs/benchmarks.md`). 2 MiB leaves room for all of them with a wide margin.
pub const MAX_FRAME_LEN: usize = 2 * 1024 * 1024;

/// The largest handshake frame. Handshake messages are a few dozen bytes; an unauthenticated
/// peer gets no more room than that.
pub const MAX_HANDSHAKE_FRAME_LEN: usize = 256;

/// The longest nickname or room name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// The largest MLS application message (an encrypted chat line) the relay forwards. Chat is
/// for lines and short pastes; the 2 MiB frame limit exists for Welcomes of large rooms, and
/// a relay that queued 2 MiB chat messages for a stalled member would pin memory for nothing.
pub const MAX_APPLICATION_LEN: usize = 64 * 1024;

/// The longest chat text a client sends, in bytes of UTF-8. With padding, signature and MLS
/// framing it stays well under [`MAX_APPLICATION_LEN`].
pub const MAX_CHAT_TEXT_BYTES: usize = 48 * 1024;

/// The most members a room may have: the relay refuses joiners past it, and every member
/// refuses a commit that would grow the group past it.
pub const MAX_ROOM_MEMBERS: usize = 1000;

/// The first frame of a connection, in the clear: the client's protocol version and its
/// SPAKE2 message on the access code. Nothing in it identifies the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    pub version: u16,
    #[serde(with = "serde_bytes")]
    pub pake_message: Vec<u8>,
}

/// The server's answer to [`ClientHello`], in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerHello {
    /// The server's SPAKE2 message and its key confirmation. A client whose access code
    /// differs fails to verify the confirmation and knows the code was wrong.
    Accept {
        #[serde(with = "serde_bytes")]
        pake_message: Vec<u8>,
        #[serde(with = "serde_bytes")]
        confirmation: Vec<u8>,
    },
    /// The server will not run the handshake.
    Reject(HelloRejection),
}

/// Why a server refused a handshake before it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum HelloRejection {
    #[error("the server speaks protocol version {supported}; this client speaks another")]
    UnsupportedVersion { supported: u16 },
    #[error("too many connections from your address")]
    TooManyConnections,
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The address (or IPv6 network) went past the relay's limits on failed attempts. Sent
    /// before any authentication, so anyone in the path could forge it: a client only pauses.
    #[error(
        "this server has blocked your address after too many failed attempts; its operator can lift the block"
    )]
    Blocked,
}

/// The client's key confirmation, the first sealed frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFinish {
    #[serde(with = "serde_bytes")]
    pub confirmation: Vec<u8>,
}

/// What a client sends once the handshake is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// Claims a nickname for this connection. Must come first; answered by `Registered`.
    Register { nick: String },
    /// Asks for [`ServerFrame::RoomList`].
    ListRooms,
    /// Asks for [`ServerFrame::MemberList`] of a room this client is in.
    ListMembers { room: String },
    /// Joins a room: creates it if nobody is in it (`pake_message` then goes nowhere), else
    /// starts admission by its leader, passing it `pake_message`, the joiner's PAKE message on
    /// the room password, at once.
    Join {
        room: String,
        #[serde(with = "serde_bytes")]
        pake_message: Vec<u8>,
    },
    /// Leader to joiner: the leader's PAKE message, for the joiner's admission `attempt`,
    /// and the number of the room's MLS ciphersuite, for which the joiner makes its
    /// KeyPackage. The relay could change the number, but only to make the admission fail:
    /// the leader adds only a KeyPackage of its group's suite, and the joiner keeps only a
    /// group of a suite it supports.
    AdmissionReply {
        room: String,
        joiner: String,
        attempt: u64,
        #[serde(with = "serde_bytes")]
        pake_message: Vec<u8>,
        suite: u16,
    },
    /// Joiner to leader: the joiner's key confirmation and its KeyPackage sealed under the
    /// PAKE key.
    AdmissionFinish {
        room: String,
        #[serde(with = "serde_bytes")]
        confirmation: Vec<u8>,
        #[serde(with = "serde_bytes")]
        sealed_key_package: Vec<u8>,
    },
    /// Leader to relay: the joiner's admission `attempt` is refused. The relay counts wrong
    /// passwords.
    AdmissionRefused { room: String, joiner: String, attempt: u64, reason: AdmissionRefusal },
    /// The leader's MLS Commit (a PrivateMessage), naming the joiner it adds, if any. The
    /// relay reads the epoch from the message header, takes one commit at a time, and
    /// settles it on the members' votes. The joiner's Welcome follows only once the leader
    /// merged the confirmed commit ([`ClientFrame::Welcome`]): no Welcome of a commit the
    /// room did not confirm ever exists, so a relay cannot hand a joiner one (a fork).
    Commit {
        room: String,
        #[serde(with = "serde_bytes")]
        commit: Vec<u8>,
        adds: Option<Addition>,
        /// How many of the group's members the commit keeps, the committer included: the
        /// members whose votes decide it (every member counts the same itself). The relay
        /// tallies on it; a leader that lies about it only stalls its own commit, since
        /// members merge on their own count of signed votes.
        electorate: u32,
    },
    /// An MLS application message (a PrivateMessage) for every other member.
    Application {
        room: String,
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
    },
    /// A member's verdict on the commit the relay is confirming: `accept` once it verified
    /// the commit and found it within the room's commit policy. `vote` is the same verdict
    /// signed inside the group ([`GroupMessage::Vote`] in an MLS message), which the relay
    /// cannot read or forge and carries with the confirmation, so that every member can
    /// check that more than half of the room accepted (see ARCHITECTURE.md, "Trust model").
    CommitVote {
        room: String,
        epoch: u64,
        accept: bool,
        #[serde(with = "serde_bytes")]
        vote: Vec<u8>,
    },
    /// Leaves a room (or gives up joining it). Always answered by `Left`; the leader then
    /// commits the removal.
    Leave { room: String },
    /// Keepalive; answered by `Pong`.
    Ping,
    /// Leaves every room, erases this client's state on the relay and closes.
    Quit,
    /// Instead of `Register`, as the first frame of a new connection: takes back the session
    /// `token` names (kept "away" by the relay since its connection dropped), telling how
    /// many of the session's frames the client has `received`. Answered by `Resumed` and the
    /// frames the client missed, or by `ResumeRefused`.
    Resume { token: ResumeToken, received: u64 },
    /// Keepalive and acknowledgement: the client has `received` this many of the session's
    /// frames, so the relay may forget them. Answered by `ServerFrame::Ack`.
    Ack { received: u64 },
    /// Asks back into a room as a member of its MLS group `group_id` at `epoch`, kept across
    /// a relay restart or a session the relay forgot: where the room is empty, or holds that
    /// group at that epoch, the client is a member again at once (`Reclaimed`), with no key
    /// change; otherwise it waits beside the room or is refused (`ReclaimPending`,
    /// `ReclaimRefused`), never admitted by a password exchange. `pledged` names the commit
    /// of `epoch` the client said yes to and still holds, if any: a restart between the
    /// confirmations can leave some members one epoch behind the rest, and those may still
    /// merge it. `proof` is the signed yes votes that confirmed the commit that brought the
    /// client to `epoch` (empty if it has none): what the relay hands such members so they
    /// can check and merge that commit themselves (`CommitConfirmed`).
    Reclaim {
        room: String,
        #[serde(with = "serde_bytes")]
        group_id: Vec<u8>,
        epoch: u64,
        pledged: Option<[u8; 32]>,
        proof: Vec<SignedVote>,
        /// The commit `proof` confirms, as the room got it: the relay hands it, with the
        /// proof, to members back one epoch behind that never saw it (they missed it while
        /// away, and the relay's own log died with a restart). They check both themselves.
        last_commit: Option<MergedCommit>,
        /// The commits before `last_commit` that this member merged, newest first, each
        /// with its proof (a few at most, and fewer in large rooms): for members back further
        /// behind.
        earlier: Vec<ConfirmedCommit>,
    },
    /// Leader to joiner, once the leader merged the confirmed commit that added it: the
    /// joiner's Welcome. The relay takes it only from that commit's committer, for the
    /// joiner and attempt the commit named.
    Welcome { room: String, welcome: Welcome },
}

/// A commit a member merged, as `ServerFrame::Commit` carried it (see `ClientFrame::Reclaim`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedCommit {
    pub from: String,
    #[serde(with = "serde_bytes")]
    pub commit: Vec<u8>,
    pub joiner: Option<String>,
}

/// A commit a member merged with the signed yes votes that confirmed it: the one that
/// brought the room to epoch `reached` (see `ClientFrame::Reclaim`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmedCommit {
    pub reached: u64,
    pub commit: MergedCommit,
    pub votes: Vec<SignedVote>,
}

/// The secret that lets a client take back its session after its connection dropped: 32
/// random bytes from the relay, held in memory on both sides and never printed.
#[derive(
    Clone, PartialEq, Eq, Hash, Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop,
)]
pub struct ResumeToken(pub [u8; 32]);

impl std::fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeToken(<redacted>)")
    }
}

/// A member's signed vote on a commit, as the relay carries it: the voter's nickname (for
/// the relay's bookkeeping; members trust only the signature) and the MLS message holding a
/// [`GroupMessage::Vote`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedVote {
    pub from: String,
    #[serde(with = "serde_bytes")]
    pub vote: Vec<u8>,
}

/// Why the relay will not take a member back into a room as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReclaimRefusal {
    /// The room holds another MLS group (it was started afresh by others).
    #[error("the room now holds another group")]
    AnotherGroup,
    /// The room holds our group at another epoch: we missed key changes.
    #[error("the room's keys moved on without you")]
    StaleEpoch,
    /// More of the room's returning members claimed another group, which now holds it.
    #[error("more of the room's members came back to another group")]
    Outnumbered,
    /// The room's leader owes our removal (the room took us out), or a key change is in
    /// flight.
    #[error("the room took you out")]
    TakenOut,
    /// The room cannot take members now (full, or we are banned or in too many rooms).
    #[error("the room cannot take you back: {0}")]
    Unavailable(ErrorReason),
}

/// The SHA-256 of a commit's bytes: how votes and the relay's answers name a commit.
pub fn commit_hash(commit: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(commit).into()
}

/// The joiner a commit adds: its nickname and the admission attempt it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addition {
    pub to: String,
    pub attempt: u64,
}

/// A Welcome, the nickname it is for, and the admission attempt it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub to: String,
    pub attempt: u64,
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
}

/// Why a leader refused a joiner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AdmissionRefusal {
    #[error("wrong room password")]
    WrongPassword,
    #[error("the admission messages were malformed")]
    Malformed,
    #[error("the room leader changed; try again")]
    LeaderChanged,
    #[error("the room leader could not add you")]
    LeaderFailed,
    #[error("too many wrong passwords: you may not join this room")]
    Banned,
    #[error("the room's leader did not answer in time")]
    LeaderUnresponsive,
    /// The leader could not use the joiner's key package (not the nickname it joined as, a
    /// damaged package, ...); the leader's client says which.
    #[error("the room leader refused your key package")]
    InvalidKeyPackage,
    /// The joiner's credential does not carry a valid certification by its identity key.
    #[error("the room leader could not verify that your identity certified this client")]
    Uncertified,
    /// The joiner's identity already has the most clients a room allows.
    #[error("your identity already has the most clients this room allows")]
    TooManyDevices,
    /// A member of the room already goes by this nickname, or by one that looks like it.
    #[error("a member of the room has this nickname or one that looks like it")]
    NickInRoom,
    /// The room has the most members its MLS ciphersuite allows (a post-quantum room's
    /// Welcome must fit in a frame, so it holds fewer than a classic one).
    #[error("the room is full: it has the most members its ciphersuite allows")]
    RoomFull,
}

/// What a client's MLS credential carries: its identity's certification of the signature key
/// this one client (process) signs with. Members check it on every leaf they trust
/// (`mls::device`); it travels inside MLS objects only, so the relay never sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCertificate {
    pub claims: DeviceClaims,
    /// The identity key's Ed25519 signature over [`DEVICE_CERTIFICATE_LABEL`] followed by the
    /// postcard encoding of `claims`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// What an identity certifies about one of its clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceClaims {
    /// The nickname the client goes by.
    pub nick: String,
    /// The client's own Ed25519 signature key: its MLS leaf must carry exactly this key.
    #[serde(with = "serde_bytes")]
    pub device_key: Vec<u8>,
    /// The persistent identity's Ed25519 public key, which signed this and which pins name.
    #[serde(with = "serde_bytes")]
    pub identity_key: Vec<u8>,
    /// When the client started, in seconds since the Unix epoch (shown, never enforced).
    pub created_at: u64,
}

/// The label every device certification signs first, so that no other signature the
/// identity key ever makes (MLS signs with its own labels) can pass for a certification.
pub const DEVICE_CERTIFICATE_LABEL: &[u8] = b"chatter device certificate v1\0";

/// A room and how many members it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub name: String,
    pub members: u32,
}

/// What the relay sends a client once the handshake is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The nickname is this session's until it quits, or until its connection has been
    /// gone longer than the relay's grace period. `token` takes the session back over a new
    /// connection (`ClientFrame::Resume`); `relay_boot` names this run of the relay, so a
    /// client can tell a restarted relay from one that merely forgot its session.
    Registered {
        nick: String,
        token: ResumeToken,
        relay_boot: u64,
    },
    /// The session is back on this connection. The relay had handled `received` of the
    /// client's frames (the client sends the rest again); the next `backlog` frames were
    /// queued for the client while it was away, and follow in order.
    Resumed {
        received: u64,
        backlog: u64,
        /// The session's next token: the one just used is void from now on, so a token
        /// that leaked (a log, a core file) takes back a session at most until its owner
        /// next resumes.
        token: ResumeToken,
    },
    /// The relay has no such session (it restarted — see `relay_boot` — or the grace period
    /// ran out, or it could not keep everything the client missed). Register anew.
    ResumeRefused {
        relay_boot: u64,
    },
    /// The answer to `ClientFrame::Ack`: the relay has handled `received` of the client's
    /// frames.
    Ack {
        received: u64,
    },
    /// The answer to `Reclaim` when the client is a member again with its group as it was.
    /// `members` in the relay's order, the leader first. `epoch` is the room's: a member
    /// back behind it gets the commits it missed from the relay's log right after, and
    /// judges them as the room did then (protocol 7).
    Reclaimed {
        room: String,
        members: Vec<String>,
        epoch: u64,
    },
    /// The answer to `Reclaim` after a relay restart when another group's claimants hold the
    /// room for now: the client keeps its group and waits. The room goes to whichever group
    /// more of its returning members claim (`Reclaimed` then follows), or the wait ends with
    /// `ReclaimRefused`.
    ReclaimPending {
        room: String,
        /// How many members claim our group, and how many the one holding the room.
        ours: u32,
        holders: u32,
    },
    /// The relay will not take the client back into the room as it was; the client keeps
    /// its group, says why, and waits for its user to `/join` again.
    ReclaimRefused {
        room: String,
        reason: ReclaimRefusal,
    },
    /// A member's connection dropped (`away`) or came back; the relay keeps its place for
    /// the grace period.
    MemberAway {
        room: String,
        nick: String,
        away: bool,
    },
    RoomList {
        rooms: Vec<RoomSummary>,
    },
    /// Members in the order they joined; the first is the leader.
    MemberList {
        room: String,
        members: Vec<String>,
    },
    /// The room was empty: this client is its first member and leader and creates its group.
    RoomCreated {
        room: String,
    },
    /// The room exists: run admission with its leader.
    JoinPending {
        room: String,
        leader: String,
    },
    /// To the leader: a joiner's PAKE message. `attempt` names this admission: a joiner
    /// that gives up and tries again starts another, and the relay passes on only what
    /// answers the current one, so a slow leader's answer to an old attempt cannot be taken
    /// for an answer to the new one.
    AdmissionRequest {
        room: String,
        joiner: String,
        attempt: u64,
        #[serde(with = "serde_bytes")]
        pake_message: Vec<u8>,
    },
    /// To the joiner: the leader's PAKE message and the room's MLS ciphersuite (its number,
    /// as the leader sent it).
    AdmissionReply {
        room: String,
        leader: String,
        #[serde(with = "serde_bytes")]
        pake_message: Vec<u8>,
        suite: u16,
    },
    /// To the leader: the joiner's confirmation and sealed KeyPackage.
    AdmissionFinish {
        room: String,
        joiner: String,
        attempt: u64,
        #[serde(with = "serde_bytes")]
        confirmation: Vec<u8>,
        #[serde(with = "serde_bytes")]
        sealed_key_package: Vec<u8>,
    },
    /// To the joiner: admission failed.
    AdmissionRefused {
        room: String,
        reason: AdmissionRefusal,
    },
    /// To a joiner: the Welcome of the confirmed commit that added it, and the room's
    /// members in the relay's order (the leader first). The joiner is a member from here on.
    Welcome {
        room: String,
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
        members: Vec<String>,
    },
    /// To every connected member, its sender included: the leader's commit, to verify and
    /// vote on ([`ClientFrame::CommitVote`]); the committer signs its own yes only now, once
    /// the relay took the commit, so that a commit the relay refused binds nobody. `joiner` names the member it adds, if any: the one whose
    /// admission the relay saw.
    Commit {
        room: String,
        from: String,
        #[serde(with = "serde_bytes")]
        commit: Vec<u8>,
        joiner: Option<String>,
    },
    /// To every member, the committer included: more than half of the members the commit
    /// keeps accepted the commit that ends `epoch - 1`; `votes` are their signed yes votes
    /// (the committer's first), which every member checks before it merges. The room is now
    /// at `epoch`.
    CommitConfirmed {
        room: String,
        epoch: u64,
        votes: Vec<SignedVote>,
    },
    /// To every member, the committer included: the commit that would have ended `epoch`
    /// did not win a majority (refused, tied, its committer left, or too many members away);
    /// discard it. `votes` are the signed no votes: when they are half of the members or
    /// more, the commit can never be confirmed, and members who accepted it may accept
    /// another for this epoch. The room stays at `epoch`.
    CommitAborted {
        room: String,
        epoch: u64,
        votes: Vec<SignedVote>,
    },
    /// To a commit's sender: the relay did not take the commit named by `commit` (the
    /// SHA-256 of its bytes, so that an answer can never be applied to another commit).
    CommitRejected {
        room: String,
        commit: [u8; 32],
        reason: CommitRejection,
    },
    /// An application message from another member.
    Application {
        room: String,
        from: String,
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
    },
    /// A member was admitted (its Welcome was accepted), or taken back, with the room at
    /// `epoch`: a member whose group is past it is hearing an old notice again (a replay).
    MemberJoined {
        room: String,
        nick: String,
        epoch: u64,
    },
    /// A member left or was disconnected. `leader` is the leader now, who commits the
    /// removal. `epoch` is the room's epoch when it left: members at another epoch take it
    /// for a replay (a leader that removed a member on a replayed notice would be refused).
    MemberLeft {
        room: String,
        nick: String,
        leader: String,
        epoch: u64,
    },
    /// The leader did not answer a joiner in time and was moved to the end of the room's
    /// order; `leader` leads now.
    LeaderChanged {
        room: String,
        leader: String,
    },
    /// The relay took this client out of a room, and why. The client may join again.
    Removed {
        room: String,
        reason: RemovalReason,
    },
    /// The answer to [`ClientFrame::Leave`], whether or not the client was still in the room:
    /// no frame about its earlier membership follows it.
    Left {
        room: String,
    },
    Pong,
    /// A request failed; the connection carries on. `request` is the number of the client
    /// frame that caused it, counted as for acknowledgements: the session's frames are
    /// numbered 1, 2, 3…, all but `Resume` and `Ack` (see `client::resume`,
    /// `relay::replay`), so a client can tie every error to the request it answers.
    Error {
        request: u64,
        reason: ErrorReason,
    },
    /// The relay is closing this connection, and why.
    Goodbye {
        reason: DisconnectReason,
    },
    /// The relay is stopping (SIGTERM or SIGINT) and expects to be started again: sent to
    /// every session just before its `Goodbye { ServerShutdown }`. A client told so retries
    /// on a short jittered schedule (`client::reconnect`) rather than its growing backoff, so
    /// that it is back within moments of the relay listening again. Like `Goodbye`, it
    /// belongs to the connection and is not numbered.
    Restarting,
}

/// The room a server frame is about, by reference or mutably (one list of the frames that
/// name a room, kept exhaustive so that a new frame must say whether it does).
macro_rules! server_frame_room {
    ($frame:expr) => {
        match $frame {
            ServerFrame::RoomCreated { room }
            | ServerFrame::JoinPending { room, .. }
            | ServerFrame::AdmissionRequest { room, .. }
            | ServerFrame::AdmissionReply { room, .. }
            | ServerFrame::AdmissionFinish { room, .. }
            | ServerFrame::AdmissionRefused { room, .. }
            | ServerFrame::Welcome { room, .. }
            | ServerFrame::Commit { room, .. }
            | ServerFrame::CommitConfirmed { room, .. }
            | ServerFrame::CommitAborted { room, .. }
            | ServerFrame::CommitRejected { room, .. }
            | ServerFrame::Application { room, .. }
            | ServerFrame::MemberJoined { room, .. }
            | ServerFrame::MemberLeft { room, .. }
            | ServerFrame::LeaderChanged { room, .. }
            | ServerFrame::Removed { room, .. }
            | ServerFrame::MemberList { room, .. }
            | ServerFrame::Reclaimed { room, .. }
            | ServerFrame::ReclaimPending { room, .. }
            | ServerFrame::ReclaimRefused { room, .. }
            | ServerFrame::MemberAway { room, .. }
            | ServerFrame::Left { room } => Some(room),
            ServerFrame::Registered { .. }
            | ServerFrame::RoomList { .. }
            | ServerFrame::Pong
            | ServerFrame::Error { .. }
            | ServerFrame::Resumed { .. }
            | ServerFrame::ResumeRefused { .. }
            | ServerFrame::Ack { .. }
            | ServerFrame::Restarting
            | ServerFrame::Goodbye { .. } => None,
        }
    };
}

impl ServerFrame {
    /// The room this frame is about, if it is about one.
    pub fn room(&self) -> Option<&String> {
        server_frame_room!(self)
    }

    /// The same, to rename it (a direct message's relay room is `@NICK` locally).
    pub fn room_mut(&mut self) -> Option<&mut String> {
        server_frame_room!(self)
    }
}

/// Why a commit lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommitRejection {
    /// Another commit already moved the room past the commit's epoch.
    #[error("the room moved on to epoch {current}; commit {attempted} came too late")]
    EpochMovedOn { attempted: u64, current: u64 },
    /// The commit names an epoch the room has not reached.
    #[error("commit for epoch {attempted} is ahead of the room's epoch {current}")]
    EpochAhead { attempted: u64, current: u64 },
    /// The message is not an MLS commit of this room's group.
    #[error("not a commit of this room's group")]
    NotACommit,
    /// The joiner it adds never finished a password exchange in that attempt during this
    /// epoch.
    #[error("the joiner it adds was never admitted")]
    UnknownRecipient,
    /// Only the room's leader commits.
    #[error("only the room's leader changes its keys")]
    NotLeader,
    /// Another commit is still being confirmed.
    #[error("another key change is being confirmed")]
    Busy,
    /// So many members are away that no majority could accept the commit now; nothing was
    /// forwarded. The leader sends it again later.
    #[error("too many members are away to decide a key change")]
    TooManyAway,
}

/// Why the relay took a member out of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemovalReason {
    /// The member did not vote on a key change in time.
    #[error("you did not confirm a key change in time")]
    NoVote,
    /// Most members refused the member's key change.
    #[error("the room refused your key change")]
    KeyChangeRefused,
    /// The member refused a key change that most members accepted.
    #[error("you refused a key change the rest of the room accepted")]
    OutVoted,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ErrorReason {
    #[error("nickname is taken")]
    NickTaken,
    #[error("nickname must be 1 to 32 printable characters without spaces")]
    NickInvalid,
    #[error("room name must be 1 to 32 printable characters without spaces")]
    RoomNameInvalid,
    #[error("register a nickname first")]
    NotRegistered,
    #[error("a nickname is already registered on this connection")]
    AlreadyRegistered,
    #[error("you are not in that room")]
    NotInRoom,
    #[error("you are already in that room or joining it")]
    AlreadyInRoom,
    #[error("only the room leader may do that")]
    NotLeader,
    #[error("no such member is waiting to join")]
    UnknownJoiner,
    #[error("too many wrong passwords: you may not join this room")]
    BannedFromRoom,
    #[error("slow down: too many messages")]
    RateLimited,
    #[error("not an MLS message of the expected kind")]
    NotMls,
    #[error("you are in too many rooms")]
    TooManyRooms,
    #[error("message too large")]
    MessageTooLarge,
    #[error("the room is full")]
    RoomFull,
    #[error("the room now holds another group")]
    RoomIsAnotherGroup,
    #[error("send Resume as the first frame only")]
    ResumeNotFirst,
    /// The nickname breaks a rule, named (invisible characters, mixed scripts, ...).
    #[error("nickname not allowed: {0}")]
    NickNotAllowed(NickProblem),
}

/// Why the relay closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DisconnectReason {
    #[error("the server is shutting down")]
    ServerShutdown,
    #[error("you stopped reading and fell too far behind")]
    SlowReader,
    #[error("a frame could not be decrypted or decoded")]
    BadFrame,
    #[error("a frame was too large")]
    FrameTooLarge,
    #[error("the protocol was not followed")]
    ProtocolViolation,
    #[error("the connection was idle too long")]
    IdleTimeout,
    #[error("goodbye")]
    Quit,
    #[error("too many messages, far past the rate limit")]
    RateLimited,
    #[error("the session was resumed on another connection")]
    ResumedElsewhere,
}

/// What a room member's MLS application message carries, inside the encryption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatPayload {
    Text(String),
    /// `/me waves`: shown as "* alice waves".
    Action(String),
}

/// What a member's MLS application message holds: the payload, and the sender's running
/// number of chat messages in this room, so receivers can tell when some never arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatEnvelope {
    pub number: u64,
    pub payload: ChatPayload,
}

/// Everything a member says inside the group: chat, or a vote on a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupMessage {
    Chat(ChatEnvelope),
    Vote(VoteStatement),
    Farewell(Farewell),
    /// Opening a direct message (ARCHITECTURE.md, "Direct messages"), said in a room the two
    /// share so that the relay never sees the key exchange. Every member of that room can
    /// read these, and ignores those not addressed to its own nickname.
    Dm(DmSignal),
}

/// One step of opening a direct message with the member named `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DmSignal {
    /// From the member with the lower identity key, who creates the DM's group: send me a
    /// KeyPackage.
    Invite { to: String },
    /// A KeyPackage to be added to the DM's group with (from the higher identity key, asked
    /// or not).
    KeyPackage {
        to: String,
        #[serde(with = "serde_bytes")]
        key_package: Vec<u8>,
    },
    /// The DM group's Welcome, for the KeyPackage `to` sent.
    Welcome {
        to: String,
        #[serde(with = "serde_bytes")]
        welcome: Vec<u8>,
    },
    /// `to`'s request was refused by the receiver's DM setting.
    Refused { to: String },
}

impl DmSignal {
    /// The nickname the signal is addressed to.
    pub fn to(&self) -> &str {
        match self {
            DmSignal::Invite { to }
            | DmSignal::KeyPackage { to, .. }
            | DmSignal::Welcome { to, .. }
            | DmSignal::Refused { to } => to,
        }
    }
}

/// The relay's name of a direct message's room: `@` and 31 hex digits of the SHA-256 of its
/// MLS group id. Only the two members (and the relay, which sees group ids in every MLS
/// header) know the group id, so nobody else can name the room; the relay admits a `Reclaim`
/// of a name starting with `@` only when it is this function of the group id claimed.
pub fn dm_room_name(group_id: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest([b"chatter dm room\0".as_slice(), group_id].concat());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("@{}", &hex[..31])
}

/// Whether a room name is a direct message's (room names users pick cannot start with `@`).
pub fn is_dm_room_name(name: &str) -> bool {
    name.starts_with('@')
}

/// A member's last word before it leaves a room: the epoch it leaves in and the commit of
/// that epoch it said yes to, if any. It counts as its vote on every commit of that epoch it
/// did not accept, so that the members who stay can prove such a commit dead and move on
/// (see `client::ballot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Farewell {
    pub epoch: u64,
    pub pledged: Option<[u8; 32]>,
}

/// A member's verdict on one commit: the epoch it ends and the SHA-256 of its bytes. Signed
/// and encrypted by MLS, so only that member can have said it, only to this group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteStatement {
    pub epoch: u64,
    pub commit: [u8; 32],
    pub accept: bool,
}

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u16),
    #[error("malformed frame")]
    Malformed,
    #[error("trailing bytes after frame")]
    TrailingBytes,
}

/// Encodes any wire type. Encoding into a `Vec` cannot fail for these types (no maps with
/// non-string keys, no unsized sequences), so the error is mapped away with a proof comment.
#[allow(clippy::expect_used, reason = "proven above")]
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // One exact allocation, rather than a Vec grown from nothing (several reallocations for
    // a chat message) or a guess that wastes memory on the many small frames. Measuring is
    // a cheap pass that only counts.
    let size = postcard::experimental::serialized_size(value).unwrap_or(0);
    postcard::to_extend(value, Vec::with_capacity(size))
        .expect("wire types always encode into a Vec")
}

/// Decodes a wire type, rejecting trailing bytes so that a frame has exactly one meaning.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|_| DecodeError::Malformed)?;
    if rest.is_empty() { Ok(value) } else { Err(DecodeError::TrailingBytes) }
}

/// Decodes a [`ClientHello`], checking the version first so that a future client whose hello
/// has another shape still gets a clear "unsupported version" instead of "malformed".
pub fn decode_client_hello(bytes: &[u8]) -> Result<ClientHello, DecodeError> {
    let (version, _) =
        postcard::take_from_bytes::<u16>(bytes).map_err(|_| DecodeError::Malformed)?;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    decode(bytes)
}

/// Whether a nickname or room name is acceptable: 1 to [`MAX_NAME_CHARS`] characters, none of
/// them whitespace, control or invisible characters (so names cannot fake layout on anyone's
/// screen, nor look exactly like another name).
pub fn is_valid_name(name: &str) -> bool {
    check_name(name).is_ok()
}

/// Why a name is refused, the first problem found ([`is_valid_name`] as a reason).
pub fn check_name(name: &str) -> Result<(), NickProblem> {
    let count = name.chars().count();
    if !(1..=MAX_NAME_CHARS).contains(&count) {
        return Err(NickProblem::Length);
    }
    for c in name.chars() {
        if c.is_whitespace() {
            return Err(NickProblem::Whitespace);
        }
        if c.is_control() {
            return Err(NickProblem::Control);
        }
        if invisible_kind(c).is_some() {
            return Err(NickProblem::Invisible(c));
        }
    }
    Ok(())
}

/// Whether a nickname is acceptable: a valid name ([`is_valid_name`]) whose letters all come
/// from one script (digits and punctuation go with any), so that "аlice" with a Cyrillic "а"
/// cannot pass for "alice". The one rule for nicknames: the relay, the client's flags and
/// every member checking a credential call this.
pub fn is_valid_nick(nick: &str) -> bool {
    check_nick(nick).is_ok()
}

/// Why a nickname is refused ([`is_valid_nick`] as a reason, for the user to act on).
pub fn check_nick(nick: &str) -> Result<(), NickProblem> {
    use unicode_security::MixedScript as _;
    check_name(nick)?;
    if !nick.is_single_script() {
        return Err(NickProblem::MixedScript);
    }
    Ok(())
}

/// Why a nickname (or room name) is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NickProblem {
    #[error("use 1 to 32 characters")]
    Length,
    #[error("spaces are not allowed")]
    Whitespace,
    #[error("control characters are not allowed")]
    Control,
    #[error(
        "U+{:04X} is an invisible character ({}): it would make the name look like another",
        u32::from(*.0),
        invisible_kind(*.0).unwrap_or("invisible")
    )]
    Invisible(char),
    #[error("it mixes letters of different scripts (such as Latin and Cyrillic)")]
    MixedScript,
}

/// The forms under which two nicknames count as the same: the Unicode confusable skeleton
/// (UTS #39) of the name as written and of the name in lower case. So "alice" and "аlice",
/// "ALICE" and "alice", or "Ian" and "lan" (a capital I looks like a small l, which the
/// lower-case form alone would miss) collide. The relay keeps nicknames unique by these,
/// members refuse a group in which two members share one, and pins are looked up by them.
pub fn nick_skeletons(nick: &str) -> Vec<String> {
    let exact: String = unicode_security::skeleton(nick).collect();
    let folded: String = unicode_security::skeleton(&nick.to_lowercase()).collect();
    if exact == folded { vec![exact] } else { vec![folded, exact] }
}

/// Whether two nicknames look alike (share one of their [`nick_skeletons`]).
pub fn nicks_look_alike(first: &str, second: &str) -> bool {
    let first = nick_skeletons(first);
    nick_skeletons(second).iter().any(|skeleton| first.contains(skeleton))
}

/// What kind of invisible character `c` is, if it is one: the default-ignorable code points
/// of Unicode (UTS #39 marks them `Default_Ignorable`), bidirectional controls and the other
/// zero-width format characters. Each prints as nothing, so a name holding one looks exactly
/// like the name without it.
pub fn invisible_kind(c: char) -> Option<&'static str> {
    use unicode_security::GeneralSecurityProfile as _;
    use unicode_security::general_security_profile::IdentifierType;
    let kind = match c {
        '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}' | '\u{180B}'..='\u{180F}' => {
            "a variation selector"
        }
        '\u{200C}' => "a zero-width non-joiner",
        '\u{200D}' => "a zero-width joiner",
        '\u{200B}' | '\u{2060}' | '\u{FEFF}' => "a zero-width space",
        '\u{00AD}' => "a soft hyphen",
        '\u{034F}' => "a combining grapheme joiner",
        '\u{E0000}'..='\u{E007F}' => "a tag character",
        '\u{200E}'
        | '\u{200F}'
        | '\u{061C}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => "a bidirectional control",
        '\u{2061}'..='\u{2064}'
        | '\u{206A}'..='\u{206F}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{3164}'
        | '\u{FFA0}'
        | '\u{17B4}'
        | '\u{17B5}'
        | '\u{FFF0}'..='\u{FFF8}' => "a character that prints as nothing",
        _ if c.identifier_type() == Some(IdentifierType::Default_Ignorable) => {
            "a default-ignorable character"
        }
        _ => return None,
    };
    Some(kind)
}

// --- Between the relays of a cluster (`relay::cluster`), sealed under the cluster key ---

/// Which relay of the cluster an input came from: drawn at random when the relay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RelayId(pub u32);

/// One change to the shared state, from the relay that saw it happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: RelayId,
    /// The cluster's incarnation (its `relay_boot`) the input was published for: an input a
    /// relay published before it noticed the stream was replaced counts in no other.
    pub incarnation: u64,
    pub input: Input,
}

/// One frame from a client, as its plaintext encoding; `refused`: the relay's rate limit
/// refused it (and the frame is left out), and every relay answers it so.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInput {
    #[serde(with = "serde_bytes")]
    pub frame: Vec<u8>,
    pub refused: bool,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// A client passed the relay's gate and handshake; its session is numbered `session`.
    /// `ip` is its address as IPv6 (an IPv4 address mapped), for the away limits.
    Opened { session: u64, ip: [u8; 16] },
    /// Frames from the session's client, in order: those of one record as the client sent
    /// it, so that a burst is one input (and one batch for each member, as on a relay of
    /// its own).
    Frames { session: u64, frames: Vec<ClientInput> },
    /// The client acknowledged the first `received` frames of its session.
    Ack { session: u64, received: u64 },
    /// A new connection's first frame asks for session `token`'s back.
    Resume { fresh: u64, token: [u8; 32], received: u64 },
    /// The connection serving the session ended: its link dropped (`link_lost`, the session
    /// waits for its client), or it ended for good.
    Closed { session: u64, link_lost: bool },
    /// The relay is alive; the clock moved (the stream's time of this input). `gate` is
    /// HMAC-SHA256 of the relay's access code under the cluster key: the first relay heard
    /// sets the cluster's, and a relay whose differs is not part of the cluster (each relay
    /// lets clients in on its own access code, so one with another code would open a side
    /// door into every room).
    Tick { gate: [u8; 32] },
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither frames nor tokens: the kind of input and its session only.
        match self {
            Input::Opened { session, .. } => write!(f, "Opened({session})"),
            Input::Frames { session, frames } => write!(f, "Frames({session}, {})", frames.len()),
            Input::Ack { session, received } => write!(f, "Ack({session}, {received})"),
            Input::Resume { fresh, .. } => write!(f, "Resume({fresh})"),
            Input::Closed { session, link_lost } => write!(f, "Closed({session}, {link_lost})"),
            Input::Tick { .. } => f.write_str("Tick"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_client_frames() -> Vec<ClientFrame> {
        vec![
            ClientFrame::Register { nick: "alice".into() },
            ClientFrame::Join { room: "lobby".into(), pake_message: vec![9; 32] },
            ClientFrame::Commit {
                room: "lobby".into(),
                commit: vec![1, 2, 3],
                adds: Some(Addition { to: "bob".into(), attempt: 1 }),
                electorate: 2,
            },
            ClientFrame::Welcome {
                room: "lobby".into(),
                welcome: Welcome { to: "bob".into(), attempt: 1, message: vec![4; 100] },
            },
            ClientFrame::Application { room: "lobby".into(), message: vec![0; 64] },
            ClientFrame::Quit,
        ]
    }

    #[test]
    fn opaque_bytes_are_encoded_as_a_length_and_the_bytes() {
        // `serde_bytes` must not change the encoding: a varint length, then the bytes.
        let message: Vec<u8> = (0..200u8).collect();
        let frame = ClientFrame::Application { room: "r".into(), message: message.clone() };
        let variant = 8; // Application's index in ClientFrame.
        let mut expected = vec![variant, 1, b'r', 0xc8, 0x01];
        expected.extend_from_slice(&message);
        assert_eq!(encode(&frame), expected);
    }

    #[test]
    fn frames_round_trip() {
        for frame in sample_client_frames() {
            assert_eq!(decode::<ClientFrame>(&encode(&frame)).unwrap(), frame);
        }
        let server = ServerFrame::Error { request: 1, reason: ErrorReason::NickTaken };
        assert_eq!(decode::<ServerFrame>(&encode(&server)).unwrap(), server);
    }

    #[test]
    fn truncated_frames_are_errors_not_panics() {
        for frame in sample_client_frames() {
            let bytes = encode(&frame);
            for cut in 0..bytes.len() {
                assert!(decode::<ClientFrame>(&bytes[..cut]).is_err(), "{frame:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&ClientFrame::Ping);
        bytes.push(0);
        assert_eq!(decode::<ClientFrame>(&bytes), Err(DecodeError::TrailingBytes));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic sweep of byte patterns; postcard must reject or accept, not panic.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for length in 0..200 {
            let bytes: Vec<u8> = (0..length)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = decode::<ClientFrame>(&bytes);
            let _ = decode::<ServerFrame>(&bytes);
            let _ = decode_client_hello(&bytes);
        }
        // A huge claimed length must not allocate or panic.
        let _ = decode::<ClientFrame>(&[6, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    }

    #[test]
    fn unknown_version_is_named() {
        let hello = ClientHello { version: PROTOCOL_VERSION + 1, pake_message: vec![1; 33] };
        assert_eq!(
            decode_client_hello(&encode(&hello)),
            Err(DecodeError::UnsupportedVersion(PROTOCOL_VERSION + 1))
        );
        let hello = ClientHello { version: PROTOCOL_VERSION, pake_message: vec![1; 33] };
        assert_eq!(decode_client_hello(&encode(&hello)).unwrap(), hello);
    }

    #[test]
    fn a_client_of_the_previous_version_is_refused_in_words_it_reads() {
        // A protocol 9 client (whose `Join` carries no half of the password exchange, and
        // whose members would refuse a commit their leader carries) is refused before
        // anything else...
        let old = ClientHello { version: 9, pake_message: vec![1; 33] };
        assert_eq!(decode_client_hello(&encode(&old)), Err(DecodeError::UnsupportedVersion(9)));
        // ...by a `ServerHello` whose encoding has not changed since, so it decodes the
        // refusal as "unsupported version, the server speaks 10" and stops retrying.
        let refusal =
            ServerHello::Reject(HelloRejection::UnsupportedVersion { supported: PROTOCOL_VERSION });
        assert_eq!(encode(&refusal), [1, 0, 10]);
    }

    #[test]
    fn restarting_is_a_frame_of_its_own_after_goodbye() {
        // Appended last, so every other frame keeps its encoding.
        let goodbye = ServerFrame::Goodbye { reason: DisconnectReason::ServerShutdown };
        let tag = encode(&goodbye)[0];
        assert_eq!(encode(&ServerFrame::Restarting), [tag + 1]);
        assert_eq!(decode::<ServerFrame>(&[tag + 1]), Ok(ServerFrame::Restarting));
    }

    #[test]
    fn nicks_must_be_of_one_script_and_look_alikes_share_a_skeleton() {
        for good in ["alice", "Bob_2", "příliš", "Ελένη", "дмитрий", "山田", "a-1"]
        {
            assert!(is_valid_nick(good), "{good}");
        }
        // "аlice" with a Cyrillic "а", and a name mixing Greek and Latin.
        for bad in ["\u{0430}lice", "\u{03BF}scar", "a b", ""] {
            assert!(!is_valid_nick(bad), "{bad:?}");
        }
        assert!(nicks_look_alike("alice", "\u{0430}lice"));
        assert!(nicks_look_alike("\u{0440}\u{0430}\u{0443}", "pay"));
        assert!(!nicks_look_alike("alice", "bob"));
    }

    #[test]
    fn invisible_characters_and_mixed_scripts_are_refused_with_their_reason() {
        let cases = [
            ("sophie\u{FE0F}", "a variation selector"),
            ("so\u{200D}phie", "a zero-width joiner"),
            ("so\u{200C}phie", "a zero-width non-joiner"),
            ("so\u{00AD}phie", "a soft hyphen"),
            ("so\u{034F}phie", "a combining grapheme joiner"),
            ("sophie\u{E0041}", "a tag character"),
            ("sophie\u{202E}", "a bidirectional control"),
            ("sophie\u{2066}", "a bidirectional control"),
            ("sophie\u{3164}", "a character that prints as nothing"),
        ];
        for (nick, kind) in cases {
            let problem = check_nick(nick).unwrap_err();
            assert!(matches!(problem, NickProblem::Invisible(_)), "{nick:?}: {problem:?}");
            assert!(problem.to_string().contains(kind), "{nick:?}: {problem}");
            assert!(!is_valid_name(nick), "{nick:?} is no room name either");
        }
        let mixed = check_nick("s\u{043E}phie").unwrap_err();
        assert_eq!(mixed, NickProblem::MixedScript);
        assert!(mixed.to_string().contains("scripts"), "{mixed}");
        assert_eq!(check_nick("\u{0455}\u{043E}\u{0440}\u{04BB}\u{0456}\u{0435}"), Ok(()));
        assert!(nicks_look_alike("sophie", "\u{0455}\u{043E}\u{0440}\u{04BB}\u{0456}\u{0435}"));
        assert!(nicks_look_alike("ALICE", "alice"));
        assert!(nicks_look_alike("Ian", "lan"));
    }

    #[test]
    fn names_are_checked() {
        for good in ["alice", "Bob_2", "příliš", "a", &"x".repeat(32), "#lobby"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "a b", "tab\t", "new\nline", "esc\x1b[2J", &"x".repeat(33), "rtl\u{202E}"] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }
}
