//! What can go wrong for a client, in words a user can act on: one variant per case, with
//! the data it needs, and no catch-all.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use super::notice::SessionEnd;
use super::room::RoomError;
use crate::identity::IdentityError;
use crate::mls::MlsError;
use crate::proto::{AdmissionRefusal, DisconnectReason, ErrorReason, HelloRejection};
use crate::transport::{HandshakeError, TransportError};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("wrong access code")]
    WrongAccessCode,
    #[error("wrong room password")]
    WrongRoomPassword,
    #[error("nickname {0:?} is taken")]
    NickTaken(String),
    #[error("nickname {0:?} is not allowed: {1}")]
    NickInvalid(String, crate::proto::NickProblem),
    #[error("room name {0:?} is not allowed: use 1 to 32 printable characters without spaces")]
    RoomNameInvalid(String),
    #[error("cannot reach {server}: {error}")]
    Unreachable { server: String, error: io::Error },
    #[error("cannot connect from {local}: {error}")]
    LocalAddress { local: IpAddr, error: io::Error },
    #[error("the server refused the connection: {0}")]
    Refused(HelloRejection),
    #[error("handshake failed: {0}")]
    Handshake(HandshakeError),
    #[error("the server did not answer {0} as the protocol says")]
    UnexpectedAnswer(Asked),
    #[error("admission refused: {0}")]
    AdmissionRefused(AdmissionRefusal),
    #[error("the server said: {0}")]
    Relay(ErrorReason),
    #[error("cannot create the room: {0}")]
    CannotCreateRoom(RoomError),
    #[error("{0}")]
    Admission(RoomError),
    #[error("could not enter the room: {0}")]
    WelcomeRefused(RoomError),
    #[error("the join was cancelled by /leave")]
    JoinSuperseded,
    /// The room is lost to us until the user joins again; an [`Event::Room`](super::Event)
    /// said why.
    #[error("out of the room; /join it to try again")]
    RoomGone,
    #[error("you are not in a room; /join one first")]
    NotInRoom,
    #[error("you are already in {0}")]
    AlreadyInRoom(String),
    #[error("already joining {0}; it is current now")]
    JoinInProgress(String),
    #[error("you are in no room called {0:?}; /rooms lists yours")]
    NoSuchRoom(String),
    #[error("you are in {max} rooms, the most one client may be in; /part one first")]
    TooManyRooms { max: usize },
    #[error("a room name cannot start with @: that is how direct messages are shown")]
    RoomNameReserved,
    #[error(
        "you share no room with {0:?}: a direct message is opened through a room you are both in"
    )]
    NoSharedRoom(String),
    #[error("{0} has your own identity: a direct message is between two people")]
    DmToOwnIdentity(String),
    #[error("you opened {max} direct messages in the last minute, the most allowed; wait a little")]
    TooManyDms { max: usize },
    #[error("message not sent: it is {len} bytes, and a message may have at most {max}")]
    MessageTooLong { len: usize, max: usize },
    #[error("message not sent: {0}")]
    CannotEncrypt(RoomError),
    #[error("offline: reconnecting to the server; try again once back")]
    Offline,
    #[error("offline: {max} lines are already waiting to be sent; not kept")]
    QueueFull { max: usize },
    #[error("no answer from {0} in time")]
    Timeout(Awaited),
    #[error("not connected")]
    NotConnected,
    #[error("still connecting, try again in a moment")]
    StillConnecting,
    #[error("leave the room first: a nickname changes outside rooms")]
    NickChangeInRoom,
    #[error("the session was lost with the connection")]
    SessionLost,
    #[error("disconnected: {0}")]
    SessionEnded(SessionEnd),
    #[error("disconnected: the server closed the connection")]
    ConnectionClosed,
    #[error("disconnected: {0}")]
    Transport(TransportError),
    #[error("disconnected: {0}")]
    Io(io::Error),
    #[error("disconnected: {0}")]
    Goodbye(DisconnectReason),
    #[error("that is you; /verify NICK compares with someone else")]
    ThatIsYou,
    #[error("{0} is not in this room")]
    NoSuchMember(String),
    #[error("the room has no code yet (its epoch authenticator is too short)")]
    NoRoomCode,
    #[error(transparent)]
    Identity(IdentityError),
    #[error("cannot use this identity: {0}")]
    Mls(MlsError),
    #[error("this client has no identity")]
    NoIdentity,
    /// The engine answered with the reply of another kind of request: a bug, not a peer.
    #[error("the client engine answered another request")]
    WrongReply,
}

/// Whose answer did not come in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaited {
    /// The relay.
    Server,
    /// The leader of the room being joined.
    RoomLeader,
    /// The client's own engine task.
    Engine,
}

impl fmt::Display for Awaited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Awaited::Server => "the server",
            Awaited::RoomLeader => "the room's leader",
            Awaited::Engine => "the client engine",
        })
    }
}

/// A question to the relay whose answer did not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    Register,
    Resume,
}

impl fmt::Display for Asked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Asked::Register => "the registration",
            Asked::Resume => "the resume",
        })
    }
}

impl From<HandshakeError> for ClientError {
    fn from(error: HandshakeError) -> Self {
        match error {
            HandshakeError::WrongAccessCode => ClientError::WrongAccessCode,
            HandshakeError::Rejected(reason) => ClientError::Refused(reason),
            other => ClientError::Handshake(other),
        }
    }
}

impl From<DisconnectReason> for ClientError {
    fn from(reason: DisconnectReason) -> Self {
        ClientError::Goodbye(reason)
    }
}

/// A [`ClientError`] that events can carry: cheap to clone, and equal to another when it is
/// the same error or says the same thing.
#[derive(Debug, Clone)]
pub struct SharedError(Arc<ClientError>);

impl SharedError {
    /// The error itself, to match on.
    pub fn get(&self) -> &ClientError {
        &self.0
    }
}

impl From<ClientError> for SharedError {
    fn from(error: ClientError) -> Self {
        SharedError(Arc::new(error))
    }
}

impl PartialEq for SharedError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
