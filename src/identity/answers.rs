//! What the identity commands (`/whoami`, `/verify`, `/trust`, the marks in `/who`) get back
//! from the client engine: plain values, rendered by the commands.

use std::path::PathBuf;

/// How far we trust a member's key, as `/who` marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustMark {
    /// The pinned key, and the user ran `/trust` after comparing codes.
    Verified,
    /// The pinned key, first seen in an earlier session.
    SeenBefore,
    /// First seen in this session (and pinned now).
    New,
    /// Not the key pinned for this nickname on this relay: maybe not the person of that name.
    Changed,
}

impl TrustMark {
    /// The words `/who` and `--json` use.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustMark::Verified => "verified",
            TrustMark::SeenBefore => "seen before",
            TrustMark::New => "new",
            TrustMark::Changed => "changed",
        }
    }
}

impl std::fmt::Display for TrustMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `/whoami`: who this client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoAmI {
    pub nick: String,
    /// The short fingerprint of our identity key, as others' `/who` shows it.
    pub fingerprint: String,
    /// Where the identity is kept; `None` for one that lives only in memory.
    pub identity_file: Option<PathBuf>,
    /// Where pins are kept; `None` when they live only in memory.
    pub known_peers_file: Option<PathBuf>,
}

/// `/verify`: a code to compare out of band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The room's code for its current epoch: equal for every member of this epoch.
    Room { room: String, epoch: u64, members: usize, code: String },
    /// The code shared by us and one member, stable across sessions.
    Peer { nick: String, fingerprint: String, mark: TrustMark, code: String },
}

/// `/trust`: the member whose current key is now pinned as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    pub nick: String,
    pub fingerprint: String,
    /// What the mark was before.
    pub previous: TrustMark,
}
