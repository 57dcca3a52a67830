//! What a room tells its user about its keys and its membership, as typed values: the
//! wording lives in the REPL's renderer, and tests assert on these, not on English.

use crate::proto::{ReclaimRefusal, RemovalReason};

/// Something about one room that the user should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomNotice {
    /// A key change (by `committer`) was abandoned: refused by half of the room or more
    /// (`refuted`), or aborted by the relay without such proof (a tie with members away, a
    /// committer that left, or a relay that interferes).
    CommitAborted { committer: String, refuted: bool },
    /// We stopped waiting on `committer`'s key change, which we had accepted: its vote was
    /// aborted and too few of the members it needed are still in the room for it to win.
    CommitAbandoned { committer: String },
    /// We refused `committer`'s key change because we had accepted another one for the same
    /// epoch (an honest member accepts at most one): a leader that changed, or a relay that
    /// tries to fork the room.
    AcceptedAnother { committer: String },
    /// The relay confirmed a key change without the signed yes votes of more than half of
    /// the room (`yes` of `of`); it was not applied.
    UnprovenConfirmation { yes: usize, of: usize },
    /// The relay confirmed a key change this client never accepted or saw; nothing changed.
    UnexpectedConfirmation,
    /// A message for this room's group at its current epoch could not be decrypted: the
    /// room may have been split into two groups. Shown once per epoch.
    MaySplit { from: String },
    /// The relay took us out of the room; the client tries to take its place back as it was.
    TakenOut { reason: RemovalReason },
    /// After a relay restart, another group's members hold the room for now (`holders` of
    /// them, `ours` of ours are back); we keep our group and wait.
    ReclaimWaiting { ours: u32, holders: u32 },
    /// We could not take our place back; we are out of the room until the user joins again.
    ReclaimRefused { reason: ReclaimRefusal },
    /// We had just founded the room while, after a relay restart, its members were still
    /// coming back; they claimed it, and our join goes on to their group.
    FoundingOutnumbered,
    /// A key change by `committer` that removes us, which we refused, was accepted with the
    /// signed yes votes of more than half of the members it keeps: we are out of the room
    /// until the user joins again.
    RemovedByRoom { committer: String },
    /// A commit renewed `nick`'s leaf keys at their request (ours too, when it is our nick).
    KeysRenewed { nick: String },
    /// Our leaf keys in this room are `hours` old, several renewal periods: our renewals are
    /// not being committed (no leader answers, or it will not).
    StaleKeys { hours: u64 },
    /// Our keys and the room's disagree on the epoch; we are out of the room until the user
    /// joins again.
    OutOfStep,
}
