//! Secrets typed by people: the server's access code and room passwords.
//!
//! A [`Secret`] is wiped from memory when dropped and prints as `<redacted>` in `Debug` and
//! `Display`, so it cannot reach a log line or an error message by accident. It never derives
//! `Serialize`: the only way to use it is [`Secret::expose`], which is greppable.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A password-like string that redacts itself and is zeroized on drop.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret, trimming the line ending a prompt or a file may have left on it.
    pub fn new(mut value: String) -> Self {
        let trimmed_len = value.trim_end_matches(['\r', '\n']).len();
        value.truncate(trimmed_len);
        Secret(value)
    }

    /// The secret itself, for handing to a key exchange.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty (an open room, or a refused access code).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Reads a secret from the first line of the file at `path`. The buffer that held the whole
/// file is wiped before it is freed, so no copy of the secret outlives the returned [`Secret`].
pub fn read_first_line(path: &std::path::Path) -> std::io::Result<Secret> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path)?);
    Ok(Secret::from(text.lines().next().unwrap_or_default()))
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value.to_owned())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::from("correct horse");
        assert!(!format!("{secret:?} {secret}").contains("horse"));
    }

    #[test]
    fn the_first_line_of_a_file_is_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("code");
        std::fs::write(&path, "first line\r\nsecond\n").unwrap();
        assert_eq!(read_first_line(&path).unwrap().expose(), "first line");
        assert!(read_first_line(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn trailing_newline_from_a_file_is_trimmed() {
        assert_eq!(Secret::new("code\r\n".into()).expose(), "code");
        assert_eq!(Secret::new("with space \n".into()).expose(), "with space ");
    }
}
