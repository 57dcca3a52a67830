//! The persistent identity: one Ed25519 signature key pair per user, the key every MLS
//! credential of theirs carries, so that "bob" today is provably the "bob" of last week.
//!
//! The file is text, so a user can see what it is:
//!
//! ```text
//! # chatter identity ...
//! chatter-identity-v1
//! ed25519-seed <64 hex digits>
//! ed25519-public <64 hex digits>
//! ```
//!
//! The public key is stored as well as derived, so a damaged file is noticed (the two no longer
//! match) instead of quietly becoming somebody else.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use openmls::prelude::SignatureScheme;
use openmls_basic_credential::SignatureKeyPair;
use rand::RngCore as _;
use zeroize::Zeroizing;

use super::{IdentityError, private_file};

const HEADER: &str = "chatter-identity-v1";
const SEED_LABEL: &str = "ed25519-seed";
const PUBLIC_LABEL: &str = "ed25519-public";
const COMMENT: &str = "\
# chatter identity: your Ed25519 signing key, the same in every room and on every relay.
# Anyone who has this file can speak as you: keep it private (mode 0600) and back it up.
# Losing it means the others see a new key for you, and a warning, next time you join.
";

/// This user's signature key pair, and where it lives.
pub struct Identity {
    seed: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("path", &self.path)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A new identity that lives only in memory (tests, the load generator, `connect`).
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(seed.as_mut_slice());
        Identity::from_seed(seed, None)
    }

    fn from_seed(seed: Zeroizing<[u8; 32]>, path: Option<PathBuf>) -> Self {
        let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        Identity { seed, public, path }
    }

    /// `identity` in the per-user data directory (e.g. `~/.local/share/chatter/identity`).
    pub fn default_path() -> Result<PathBuf, IdentityError> {
        directories::ProjectDirs::from("", "", "chatter")
            .map(|dirs| dirs.data_dir().join("identity"))
            .ok_or(IdentityError::NoDataDirectory)
    }

    /// Reads the identity at `path`, creating it if there is no file yet. The second value
    /// says whether it was created now. A file that exists but cannot be used is an error,
    /// never a reason to make a new identity.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), IdentityError> {
        if let Some(identity) = Identity::load(path)? {
            return Ok((identity, false));
        }
        let identity = Identity { path: Some(path.to_owned()), ..Identity::generate() };
        match private_file::write(path, identity.to_text().as_bytes(), false) {
            Ok(()) => Ok((identity, true)),
            // Another chatter created it between our read and our write: theirs is the one.
            Err(IdentityError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                let existing = Identity::load(path)?;
                existing
                    .map(|identity| (identity, false))
                    .ok_or_else(|| IdentityError::Io { path: path.to_owned(), source })
            }
            Err(error) => Err(error),
        }
    }

    /// Reads the identity at `path`; `None` if there is no file.
    pub fn load(path: &Path) -> Result<Option<Self>, IdentityError> {
        let Some(text) = private_file::read(path)? else { return Ok(None) };
        let corrupt = |reason: &str| IdentityError::CorruptIdentity {
            path: path.to_owned(),
            reason: reason.into(),
        };
        let mut lines =
            text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#'));
        if lines.next() != Some(HEADER) {
            return Err(corrupt("the first line is not chatter-identity-v1"));
        }
        let seed_hex = labelled(lines.next(), SEED_LABEL).ok_or_else(|| corrupt("no seed"))?;
        let public_hex = labelled(lines.next(), PUBLIC_LABEL).ok_or_else(|| corrupt("no key"))?;
        if lines.next().is_some() {
            return Err(corrupt("unexpected lines after the key"));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        match base16ct::lower::decode(seed_hex, seed.as_mut_slice()) {
            Ok(decoded) if decoded.len() == 32 => {}
            _ => return Err(corrupt("the seed is not 64 hex digits")),
        }
        let identity = Identity::from_seed(seed, Some(path.to_owned()));
        let mut public = [0u8; 32];
        match base16ct::lower::decode(public_hex, &mut public) {
            Ok(decoded) if decoded.len() == 32 => {}
            _ => return Err(corrupt("the public key is not 64 hex digits")),
        }
        if public != identity.public {
            return Err(corrupt("the public key does not match the private key"));
        }
        Ok(Some(identity))
    }

    fn to_text(&self) -> Zeroizing<String> {
        let seed = Zeroizing::new(base16ct::lower::encode_string(self.seed.as_slice()));
        let public = base16ct::lower::encode_string(&self.public);
        Zeroizing::new(format!(
            "{COMMENT}{HEADER}\n{SEED_LABEL} {}\n{PUBLIC_LABEL} {public}\n",
            seed.as_str()
        ))
    }

    /// The file this identity lives in; `None` for one made in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The Ed25519 public key, as MLS credentials carry it.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// The short fingerprint `/who` shows for this key, e.g. `ab12:cd34:ef56:7890`.
    pub fn fingerprint(&self) -> String {
        crate::mls::fingerprint_of(&self.public)
    }

    /// The key pair in the form openmls signs with (a copy; it zeroizes itself when dropped).
    pub fn key_pair(&self) -> SignatureKeyPair {
        SignatureKeyPair::from_raw(
            SignatureScheme::ED25519,
            self.seed.to_vec(),
            self.public.to_vec(),
        )
    }
}

/// The value of a `label value` line.
fn labelled<'a>(line: Option<&'a str>, label: &str) -> Option<&'a str> {
    let (found, value) = line?.split_once(' ')?;
    (found == label).then_some(value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        let (first, created) = Identity::load_or_create(&path).unwrap();
        assert!(created);
        let (second, created) = Identity::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.public_key(), second.public_key());
        assert_eq!(first.fingerprint(), second.fingerprint());
        assert_eq!(second.path(), Some(path.as_path()));
        assert_eq!(first.key_pair().public(), first.public_key());
    }

    #[test]
    fn damaged_files_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        Identity::load_or_create(&path).unwrap();
        let good = std::fs::read_to_string(&path).unwrap();
        let seed_at = good.find(SEED_LABEL).unwrap() + SEED_LABEL.len() + 1;
        let flip = |text: &str, at: usize| {
            let mut bytes = text.as_bytes().to_vec();
            bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
            String::from_utf8(bytes).unwrap()
        };
        let cases = [
            String::new(),
            "garbage\n".to_owned(),
            good.replace(HEADER, "chatter-identity-v9"),
            flip(&good, seed_at),
            good.replace(PUBLIC_LABEL, "other-label"),
            format!("{good}extra line\n"),
        ];
        for damaged in cases {
            private_file::write(&path, damaged.as_bytes(), true).unwrap();
            let error = Identity::load_or_create(&path).unwrap_err();
            assert!(matches!(error, IdentityError::CorruptIdentity { .. }), "{error}");
            assert!(error.to_string().contains("refusing to replace it"), "{error}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), damaged, "file left alone");
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let identity = Identity::generate();
        let shown = format!("{identity:?}");
        let seed_hex = base16ct::lower::encode_string(identity.seed.as_slice());
        assert!(!shown.contains(&seed_hex) && !shown.contains("seed"), "{shown}");
        assert!(shown.contains(&identity.fingerprint()));
    }
}
