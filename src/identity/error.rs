//! What can be wrong with the identity and `known_peers` files, in words a user can act on.

use std::path::PathBuf;

/// Why an identity file or a `known_peers` file cannot be used.
///
/// None of these is ever answered by making a new identity: a key that silently changes is
/// exactly what the others' `known_peers` would (rightly) shout about.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}", path = path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} can be read by other users (mode {mode:03o}); it holds your private key: \
         if it is yours and nobody else could have read it, run `chmod 600 {path}`; \
         otherwise move it away to make a new identity",
        path = path.display()
    )]
    ReadableByOthers { path: PathBuf, mode: u32 },
    #[error(
        "{path} is not a valid chatter identity ({reason}); refusing to replace it: restore it \
         from a backup, or move it away to make a new identity",
        path = path.display()
    )]
    CorruptIdentity { path: PathBuf, reason: String },
    #[error(
        "{path}, line {line}: {reason}; fix or delete that line (deleting forgets that key)",
        path = path.display()
    )]
    CorruptKnownPeers { path: PathBuf, line: usize, reason: String },
    #[error("no per-user data directory to keep the identity in; pass --identity PATH")]
    NoDataDirectory,
    #[error("nickname {0:?} cannot be pinned: it has spaces or control characters")]
    UnpinnableNick(String),
}

impl IdentityError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        IdentityError::Io { path: path.to_owned(), source }
    }
}
