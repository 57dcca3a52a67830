//! `known_peers`: the keys this user has seen, one line per relay and nickname, like SSH's
//! `known_hosts`, and trust on first use as a pure function ([`check_pin`]).
//!
//! ```text
//! # relay nickname ed25519-public-key first-seen status
//! chat.example.org:9001 bob 3b6a27bc…  2026-12-01 verified
//! ```
//!
//! Nicknames are per relay: "bob" on one relay and "bob" on another are different people as
//! far as pins go. The file is rewritten whole, atomically, each time a pin is added or
//! changed, after reading it again so that two `chatter`s of the same user lose no pin.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{IdentityError, private_file};

const HEADER: &str = "\
# chatter known_peers: the keys you have seen, one line per relay and nickname.
# relay nickname ed25519-public-key first-seen status (seen, or verified after /trust)
";

/// One pinned key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The Ed25519 public key in the member's credential.
    pub key: Vec<u8>,
    /// The local date it was first seen, `YYYY-MM-DD`.
    pub first_seen: String,
    /// Whether the user compared the pairwise code and ran `/trust`.
    pub verified: bool,
}

/// What trust on first use makes of a member's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinCheck {
    /// Never seen under this nickname on this relay: pin it, say nothing.
    New,
    /// The pinned key.
    Same { first_seen: String, verified: bool },
    /// Not the pinned key: warn, and keep the old pin until the user accepts the new key.
    Changed { first_seen: String, verified: bool },
}

/// Trust on first use: compares `key` with the pin for `nick` on `relay`.
pub fn check_pin(known: &KnownPeers, relay: &str, nick: &str, key: &[u8]) -> PinCheck {
    match known.get(relay, nick) {
        None => PinCheck::New,
        Some(pin) if pin.key == key => {
            PinCheck::Same { first_seen: pin.first_seen.clone(), verified: pin.verified }
        }
        Some(pin) => {
            PinCheck::Changed { first_seen: pin.first_seen.clone(), verified: pin.verified }
        }
    }
}

/// The pins, and the file they live in (none for a session that keeps them in memory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownPeers {
    pins: BTreeMap<(String, String), Pin>,
    path: Option<PathBuf>,
}

impl KnownPeers {
    /// Pins kept for this session only.
    pub fn in_memory() -> Self {
        KnownPeers::default()
    }

    /// `known_peers` beside the identity file.
    pub fn path_beside(identity_file: &Path) -> PathBuf {
        identity_file.with_file_name("known_peers")
    }

    /// Reads the file at `path` (none yet means no pins); later pins are written there.
    pub fn open(path: &Path) -> Result<Self, IdentityError> {
        let pins = match private_file::read(path)? {
            Some(text) => parse(&text).map_err(|(line, reason)| {
                IdentityError::CorruptKnownPeers { path: path.to_owned(), line, reason }
            })?,
            None => BTreeMap::new(),
        };
        Ok(KnownPeers { pins, path: Some(path.to_owned()) })
    }

    /// The file, if the pins are kept in one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The pin for `nick` on `relay`.
    pub fn get(&self, relay: &str, nick: &str) -> Option<&Pin> {
        self.pins.get(&(relay.to_owned(), nick.to_owned()))
    }

    /// Whether `key` is pinned as verified under any nickname on `relay`: `/trust` is about
    /// an identity, and its other clients (other nicknames) are the same person.
    pub fn is_verified(&self, relay: &str, key: &[u8]) -> bool {
        self.pins
            .iter()
            .any(|((pinned_relay, _), pin)| pinned_relay == relay && pin.verified && pin.key == key)
    }

    /// A pin on `relay` under another nickname that looks like `nick` (the same confusable
    /// skeleton, `proto::nicks_look_alike`), for another key than `key`: someone new under a
    /// name that passes for one already known. The pinned nickname and its pin.
    pub fn look_alike(&self, relay: &str, nick: &str, key: &[u8]) -> Option<(&str, &Pin)> {
        self.pins
            .iter()
            .filter(|((pinned_relay, pinned_nick), pin)| {
                pinned_relay == relay
                    && pinned_nick != nick
                    && pin.key != key
                    && crate::proto::nicks_look_alike(pinned_nick, nick)
            })
            .map(|((_, pinned_nick), pin)| (pinned_nick.as_str(), pin))
            .next()
    }

    /// Pins (or re-pins) `nick` on `relay` and saves the file. The file is read again first,
    /// so pins another `chatter` of this user added meanwhile are kept. On error the pin is
    /// still held in memory for this session.
    pub fn record(&mut self, relay: &str, nick: &str, pin: Pin) -> Result<(), IdentityError> {
        self.record_all(relay, vec![(nick.to_owned(), pin)])
    }

    /// Whether `nick` on `relay` can be written to the file at all.
    pub fn can_pin(relay: &str, nick: &str) -> bool {
        is_pinnable(relay) && is_pinnable(nick)
    }

    /// [`KnownPeers::record`] for several members at once, with one write: joining a room of
    /// a thousand strangers rewrites the file once, not a thousand times. A nickname that
    /// fails [`KnownPeers::can_pin`] makes it pin nothing.
    pub fn record_all(
        &mut self,
        relay: &str,
        pins: Vec<(String, Pin)>,
    ) -> Result<(), IdentityError> {
        if let Some((nick, _)) = pins.iter().find(|(nick, _)| !KnownPeers::can_pin(relay, nick)) {
            return Err(IdentityError::UnpinnableNick(nick.clone()));
        }
        let keyed: Vec<((String, String), Pin)> =
            pins.into_iter().map(|(nick, pin)| ((relay.to_owned(), nick), pin)).collect();
        let Some(path) = self.path.clone() else {
            self.pins.extend(keyed);
            return Ok(());
        };
        let on_disk = KnownPeers::open(&path);
        let saved = on_disk.and_then(|mut fresh| {
            fresh.pins.extend(keyed.iter().cloned());
            private_file::write(&path, fresh.to_text().as_bytes(), true)?;
            Ok(fresh.pins)
        });
        match saved {
            Ok(pins) => {
                self.pins = pins;
                Ok(())
            }
            Err(error) => {
                self.pins.extend(keyed);
                Err(error)
            }
        }
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut text = HEADER.to_owned();
        for ((relay, nick), pin) in &self.pins {
            let key = base16ct::lower::encode_string(&pin.key);
            let status = if pin.verified { "verified" } else { "seen" };
            text.push_str(&format!("{relay} {nick} {key} {} {status}\n", pin.first_seen));
        }
        text
    }
}

/// Whether a name can be a field of a line: no spaces or control characters (a peer chooses
/// its credential's nickname, and must not be able to write lines of its own into the file).
fn is_pinnable(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('#')
        && name.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

type Pins = BTreeMap<(String, String), Pin>;

/// Parses the file; an error names the 1-based line and what is wrong with it.
fn parse(text: &str) -> Result<Pins, (usize, String)> {
    let mut pins = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |reason: &str| (index + 1, reason.to_owned());
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [relay, nick, key_hex, first_seen, status] = fields[..] else {
            return Err(fail("expected: relay nickname key first-seen status"));
        };
        let key = base16ct::lower::decode_vec(key_hex)
            .ok()
            .filter(|key| key.len() == 32)
            .ok_or_else(|| fail("the key is not 64 hex digits"))?;
        if chrono::NaiveDate::parse_from_str(first_seen, "%Y-%m-%d").is_err() {
            return Err(fail("the first-seen date is not YYYY-MM-DD"));
        }
        let verified = match status {
            "verified" => true,
            "seen" => false,
            _ => return Err(fail("the status is neither seen nor verified")),
        };
        let pin = Pin { key, first_seen: first_seen.to_owned(), verified };
        if pins.insert((relay.to_owned(), nick.to_owned()), pin).is_some() {
            return Err(fail("a second line for the same relay and nickname"));
        }
    }
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(byte: u8, verified: bool) -> Pin {
        Pin { key: vec![byte; 32], first_seen: "2026-12-01".into(), verified }
    }

    #[test]
    fn first_use_then_same_then_changed() {
        let mut known = KnownPeers::in_memory();
        assert_eq!(check_pin(&known, "relay:1", "bob", &[1; 32]), PinCheck::New);
        known.record("relay:1", "bob", pin(1, false)).unwrap();
        let same = PinCheck::Same { first_seen: "2026-12-01".into(), verified: false };
        assert_eq!(check_pin(&known, "relay:1", "bob", &[1; 32]), same);
        let changed = PinCheck::Changed { first_seen: "2026-12-01".into(), verified: false };
        assert_eq!(check_pin(&known, "relay:1", "bob", &[2; 32]), changed);
        // Pins are per relay and per nickname.
        assert_eq!(check_pin(&known, "relay:2", "bob", &[2; 32]), PinCheck::New);
        assert_eq!(check_pin(&known, "relay:1", "carol", &[1; 32]), PinCheck::New);
    }

    #[test]
    fn the_file_round_trips_and_keeps_other_writers_pins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_peers");
        let mut first = KnownPeers::open(&path).unwrap();
        let mut second = KnownPeers::open(&path).unwrap();
        first.record("[::1]:9001", "bob", pin(1, false)).unwrap();
        second.record("[::1]:9001", "carol", pin(2, true)).unwrap();
        let reread = KnownPeers::open(&path).unwrap();
        assert_eq!(reread.get("[::1]:9001", "bob"), Some(&pin(1, false)));
        assert_eq!(reread.get("[::1]:9001", "carol"), Some(&pin(2, true)));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(&format!("[::1]:9001 carol {} 2026-12-01 verified", "02".repeat(32)))
        );
    }

    #[test]
    fn damaged_lines_are_named() {
        let good = format!("relay bob {} 2026-12-01 seen", "ab".repeat(32));
        let cases = [
            ("relay bob", 1),
            (&*format!("# c\n\n{good}\nrelay bob {} 2026-12-01 seen", "00".repeat(32)), 4),
            (&*good.replace("seen", "trusted"), 1),
            (&*good.replace("2026-12-01", "yesterday"), 1),
            (&*good.replace(&"ab".repeat(32), "abc"), 1),
        ];
        for (text, line) in cases {
            assert_eq!(parse(text).unwrap_err().0, line, "{text}");
        }
        assert_eq!(parse(&good).unwrap().len(), 1);
    }

    #[test]
    fn names_that_would_forge_lines_are_not_pinned() {
        let mut known = KnownPeers::in_memory();
        for nick in ["bo b", "bob\nrelay eve", "", "#bob"] {
            assert!(known.record("relay", nick, pin(1, false)).is_err(), "{nick:?}");
        }
    }
}
