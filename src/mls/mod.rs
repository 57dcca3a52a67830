//! End-to-end encryption of rooms with MLS (RFC 9420), sans IO.
//!
//! Everything here takes bytes and returns bytes and [`RoomEvent`]s: no sockets, clocks,
//! printing or tasks. The client engine moves the bytes through the relay; the tests move them
//! between in-memory members. Each client session is one [`MlsMember`] (a nickname and an
//! Ed25519 signature key: the user's persistent identity, which `crate::identity` keeps on
//! disk, or a fresh one in tests); each room it takes part in is one [`RoomGroup`].
//!
//! The relay orders commits: a member creates a commit, sends it, and merges it only when the
//! relay says it won the epoch ([`RoomGroup::merge_pending_commit`]), or drops it when it lost
//! ([`RoomGroup::discard_pending_commit`]) and then processes the winner like any other message.

mod config;
pub mod device;
mod error;
mod events;
mod identity;
mod padding;
mod provider;
mod renewal;
mod room;
mod suite;

pub use device::{CertificationError, MAX_CLIENTS_PER_IDENTITY};
pub use error::MlsError;
pub use events::{CommitSummary, MemberInfo, Opened, OutgoingCommit, RoomEvent};
pub(crate) use identity::fingerprint_of;
pub use identity::{MlsMember, OwnKeyPackage};
pub use room::RoomGroup;
pub use suite::{MAX_PQ_ROOM_MEMBERS, RoomSuite, UnsupportedSuite};

#[cfg(test)]
mod tests;
