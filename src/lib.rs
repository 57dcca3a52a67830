//! CLI Chatter: an end-to-end encrypted terminal chat for small groups, and its relay.
//!
//! See `ARCHITECTURE.md` at the repository root for the bird's-eye view and the code map.

pub mod admission;
pub mod client;
pub mod mls;
pub mod mls_header;
pub mod pake;
pub mod proto;
pub mod relay;
pub mod secret;
pub mod transport;
