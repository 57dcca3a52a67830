//! What the client core tells the user, as types: the REPL's renderer (`repl::render`)
//! words them, and line mode's JSON names each after its variant, in snake_case, with its
//! fields. Nothing here is English but the `Display` of the reasons, for error messages.

use std::fmt;
use std::time::Duration;

use super::SharedError;
use crate::proto::{DisconnectReason, ErrorReason};

/// Something the client core noticed that is not chat, not a change of the link
/// ([`ConnectionEvent`](super::ConnectionEvent)) and not news of a room's keys or membership
/// ([`RoomNotice`](super::RoomNotice), which the room itself reports).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// After a resume: `count` of our frames never reached the relay and were forgotten
    /// here (too many unacknowledged), so they are lost.
    FramesLostWithConnection { room: Option<String>, count: u64 },
    /// Back in the group we were taken out of, with the members we knew; `newcomers`
    /// joined meanwhile.
    Rejoined { room: String, newcomers: Vec<String> },
    /// Going back into a room by ourselves failed: we are out of it.
    RejoinFailed { room: String, error: SharedError },
    /// A join nobody is waiting on any more failed.
    JoinFailed { room: String, error: SharedError },
    /// A Welcome that our own admission did not ask for (a relay or impostor trying to move
    /// us into another group): refused.
    UnaskedWelcome { room: String },
    /// The relay refused one of our chat lines, `text`.
    MessageNotDelivered { room: String, text: String, reason: ErrorReason },
    /// The relay refused a frame no request of the user's waits on.
    RelayError { reason: ErrorReason },
    /// The relay said our address is blocked (too many failed attempts from it, maybe by
    /// someone else behind the same address); the next try comes in `retry_in`.
    AddressBlocked { retry_in: Duration },
}

/// Why the link to the relay dropped (the session goes on).
#[derive(Debug, Clone, PartialEq)]
pub enum LinkLoss {
    /// The relay closed the connection.
    Closed,
    /// Reading or writing failed.
    Broken(SharedError),
    /// Nothing came from the relay for this long.
    Silent { after: Duration },
    /// The relay said goodbye, for a reason that lets us come back.
    Goodbye(DisconnectReason),
}

/// Why the session is over.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEnd {
    /// The user quit (or every handle to the client was dropped).
    Quit,
    /// The relay closed the session for a reason that coming back would only repeat.
    Goodbye(DisconnectReason),
    /// Reconnecting failed in a way waiting cannot fix (a wrong access code, say).
    CannotReconnect(SharedError),
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEnd::Quit => f.write_str("quit"),
            SessionEnd::Goodbye(reason) => write!(f, "the server closed the connection: {reason}"),
            SessionEnd::CannotReconnect(error) => write!(f, "cannot reconnect: {error}"),
        }
    }
}

/// Why lines typed by the user were not sent.
#[derive(Debug, Clone, PartialEq)]
pub enum NotSentReason {
    /// Sent just before the session was lost: they may or may not have reached the room.
    InDoubt,
    /// The room now holds another group.
    RoomIsAnotherGroup,
    /// The relay would not take us back into the room.
    CouldNotGetBack,
    /// We are no longer in the room (a rejoin failed, or we were taken out for good).
    NoLongerInRoom,
    /// The user left the room it was typed for.
    LeftRoom,
    /// The session ended.
    SessionEnded,
    /// Encrypting the line failed.
    CannotEncrypt(SharedError),
    /// Line mode read it while `max` lines were already waiting for their turn to be sent.
    TooManyWaiting { max: usize },
    /// The one it was for refuses direct messages from us (their `dm` setting).
    DmRefused,
    /// The direct message it was for could not be opened: no answer came in time.
    DmNotOpened,
}
