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
    fn trailing_newline_from_a_file_is_trimmed() {
        assert_eq!(Secret::new("code\r\n".into()).expose(), "code");
        assert_eq!(Secret::new("with space \n".into()).expose(), "with space ");
    }
}
