//! Who this client is across sessions, and whom it has met before.
//!
//! - [`Identity`] (`key.rs`): the persistent Ed25519 signature key pair that every MLS
//!   credential of this user carries, kept in a file of mode 0600 in the per-user data
//!   directory (or wherever `--identity` points).
//! - [`KnownPeers`] (`known_peers.rs`): the `known_peers` file beside it, like SSH's
//!   `known_hosts`: one pinned key per relay and nickname, with the day it was first seen and
//!   whether the user verified it; [`check_pin`] is trust on first use as a pure function.
//! - [`safety_code`]: the room code (from the MLS epoch authenticator) and the pairwise code
//!   (from two identity keys) that people compare out of band.
//! - [`PeerTrust`] (`trust.rs`): what the client engine holds: our identity, the pins, and the
//!   check it runs on a room's members after every membership change.
//! - `private_file.rs`: reading files only their owner may read, and replacing them atomically.
//!
//! The relay never sees any of this: key packages travel sealed to the room's leader and
//! every handshake message is an MLS PrivateMessage, so public keys stay between members.

mod answers;
mod error;
mod key;
mod known_peers;
mod private_file;
pub mod safety_code;
mod trust;

pub use answers::{TrustMark, Trusted, Verification, WhoAmI};
pub use error::IdentityError;
pub use key::Identity;
pub use known_peers::{KnownPeers, Pin, PinCheck, check_pin};
pub use trust::PeerTrust;
