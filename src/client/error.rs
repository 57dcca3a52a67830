//! What can go wrong for a client, in words a user can act on.

use crate::proto::{AdmissionRefusal, DisconnectReason, ErrorReason, HelloRejection};
use crate::transport::HandshakeError;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("wrong access code")]
    WrongAccessCode,
    #[error("wrong room password")]
    WrongRoomPassword,
    #[error("nickname {0:?} is taken")]
    NickTaken(String),
    #[error("nickname {0:?} is not allowed: use 1 to 32 printable characters without spaces")]
    NickInvalid(String),
    #[error("room name {0:?} is not allowed: use 1 to 32 printable characters without spaces")]
    RoomNameInvalid(String),
    #[error("cannot reach {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("the server refused the connection: {0}")]
    Refused(HelloRejection),
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("admission refused: {0}")]
    AdmissionRefused(AdmissionRefusal),
    #[error("the server said: {0}")]
    Relay(ErrorReason),
    #[error("you are not in a room; /join one first")]
    NotInRoom,
    #[error("message not sent: it is {len} bytes, and a message may have at most {max}")]
    MessageTooLong { len: usize, max: usize },
    #[error("disconnected: {0}")]
    Disconnected(String),
    #[error("offline: {0}")]
    Offline(String),
    #[error("no answer from {0} in time")]
    Timeout(&'static str),
    #[error("{0}")]
    Other(String),
}

impl From<HandshakeError> for ClientError {
    fn from(error: HandshakeError) -> Self {
        match error {
            HandshakeError::WrongAccessCode => ClientError::WrongAccessCode,
            HandshakeError::Rejected(reason) => ClientError::Refused(reason),
            other => ClientError::Handshake(other.to_string()),
        }
    }
}

impl From<DisconnectReason> for ClientError {
    fn from(reason: DisconnectReason) -> Self {
        ClientError::Disconnected(reason.to_string())
    }
}
