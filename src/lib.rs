//! CLI Chatter: an end-to-end encrypted terminal chat for small groups, and its relay.
//!
//! See `ARCHITECTURE.md` at the repository root for the bird's-eye view and the code map.

pub mod admission;
pub mod cli;
pub mod client;
#[path = "../commands/mod.rs"]
pub mod commands;
pub mod hardening;
pub mod identity;
pub mod mls;
pub mod mls_header;
pub mod pake;
pub mod proto;
pub mod relay;
pub mod repl;
pub mod secret;
pub mod transport;
