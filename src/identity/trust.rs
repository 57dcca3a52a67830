//! What the client engine holds about identities: ours, the pins, and the check it runs on a
//! room's members after every change of membership.
//!
//! [`PeerTrust::observe`] is the hook: called with the whole member list after a Welcome
//! (members already in the room when we join), after every merged commit (joiners) and after
//! a rejoin, it pins new keys quietly, says nothing about known ones, and returns a warning
//! for a key that is not the one pinned, once per session for each such key.

use std::collections::HashSet;

use super::{Identity, IdentityError, KnownPeers, Pin, PinCheck, TrustMark, check_pin};
use crate::client::Event;
use crate::mls::MemberInfo;

/// Our identity and the keys we have seen, for one connection to one relay.
#[derive(Debug)]
pub struct PeerTrust {
    identity: Identity,
    known: KnownPeers,
    relay: String,
    /// Nicknames first pinned in this session, which `/who` calls new.
    new_this_session: HashSet<String>,
    /// Keys already warned about (changed ones, and unpinnable nicknames), so that a warning
    /// comes once and not after every later commit.
    warned: HashSet<(String, Vec<u8>)>,
    /// Whether saving `known_peers` failed once already (said once, not at every pin).
    save_failed: bool,
}

impl PeerTrust {
    /// Trust state for a connection to `relay` (as the user named it, `host:port`).
    pub fn new(identity: Identity, known: KnownPeers, relay: &str) -> Self {
        PeerTrust {
            identity,
            known,
            relay: relay.to_owned(),
            new_this_session: HashSet::new(),
            warned: HashSet::new(),
            save_failed: false,
        }
    }

    /// Our identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The pins.
    pub fn known_peers(&self) -> &KnownPeers {
        &self.known
    }

    /// The pin check, run with every member of `room` after its membership changed; `today`
    /// is the local date (`YYYY-MM-DD`) a new pin records. Returns what the user must see.
    pub fn observe(&mut self, room: &str, members: &[MemberInfo], today: &str) -> Vec<Event> {
        let mut events = Vec::new();
        let mut new_pins = Vec::new();
        for member in members.iter().filter(|member| !member.is_self) {
            let nick = &member.nick;
            let key = &member.identity_key;
            match check_pin(&self.known, &self.relay, nick, key) {
                PinCheck::Same { .. } => {}
                PinCheck::New if !KnownPeers::can_pin(&self.relay, nick) => {
                    let error = IdentityError::UnpinnableNick(nick.clone());
                    self.failed_to_pin(room, nick, key, &error, &mut events);
                }
                PinCheck::New => {
                    if let Some((pinned, pin)) = self.known.look_alike(&self.relay, nick, key) {
                        // Not pinned: a look-alike of a known name stays suspect, and is
                        // warned about once in every session, until the user runs `/trust`.
                        if self.warned.insert((nick.clone(), key.clone())) {
                            events.push(Event::LookAlike {
                                room: room.to_owned(),
                                nick: nick.clone(),
                                looks_like: pinned.to_owned(),
                                pinned_fingerprint: crate::mls::fingerprint_of(&pin.key),
                                fingerprint: member.fingerprint.clone(),
                            });
                        }
                        continue;
                    }
                    let pin =
                        Pin { key: key.clone(), first_seen: today.to_owned(), verified: false };
                    new_pins.push((nick.clone(), pin));
                }
                PinCheck::Changed { first_seen, .. } => {
                    if self.warned.insert((nick.clone(), key.clone())) {
                        events.push(Event::KeyChanged {
                            room: room.to_owned(),
                            nick: nick.clone(),
                            first_seen,
                            fingerprint: member.fingerprint.clone(),
                        });
                    }
                }
            }
        }
        if !new_pins.is_empty() {
            let nicks: Vec<String> = new_pins.iter().map(|(nick, _)| nick.clone()).collect();
            // One write for all of them; on failure they are still pinned for this session.
            if let Err(error) = self.known.record_all(&self.relay, new_pins) {
                self.failed_to_pin(room, "", &[], &error, &mut events);
            }
            self.new_this_session.extend(nicks);
        }
        events
    }

    fn failed_to_pin(
        &mut self,
        room: &str,
        nick: &str,
        key: &[u8],
        error: &IdentityError,
        events: &mut Vec<Event>,
    ) {
        let text = match error {
            IdentityError::UnpinnableNick(_) => {
                if !self.warned.insert((nick.to_owned(), key.to_vec())) {
                    return;
                }
                format!("a member's nickname ({nick:?}) cannot be pinned; its key is not checked")
            }
            _ if self.save_failed => return,
            error => {
                self.save_failed = true;
                format!(
                    "could not save known_peers (keys are pinned for this session only): {error}"
                )
            }
        };
        events.push(Event::Warning { room: Some(room.to_owned()), text });
    }

    /// How far `key`, under `nick`, is trusted.
    pub fn mark(&self, nick: &str, key: &[u8]) -> TrustMark {
        match check_pin(&self.known, &self.relay, nick, key) {
            PinCheck::Changed { .. } => TrustMark::Changed,
            PinCheck::Same { verified: true, .. } => TrustMark::Verified,
            // Verified under another nickname: another client of the same identity.
            _ if self.known.is_verified(&self.relay, key) => TrustMark::Verified,
            PinCheck::New => TrustMark::New,
            PinCheck::Same { .. } if self.new_this_session.contains(nick) => TrustMark::New,
            PinCheck::Same { .. } => TrustMark::SeenBefore,
        }
    }

    /// The pinned nickname that `nick`, not pinned itself, looks like under another key (see
    /// `KnownPeers::look_alike`): what `/who` marks.
    pub fn looks_like(&self, nick: &str, key: &[u8]) -> Option<String> {
        if self.known.get(&self.relay, nick).is_some() {
            return None;
        }
        self.known.look_alike(&self.relay, nick, key).map(|(pinned, _)| pinned.to_owned())
    }

    /// `/trust`: pins `key` for `nick` as verified, replacing a different pinned key. Returns
    /// the mark it had before.
    pub fn trust(
        &mut self,
        nick: &str,
        key: &[u8],
        today: &str,
    ) -> Result<TrustMark, IdentityError> {
        let previous = self.mark(nick, key);
        let first_seen = match check_pin(&self.known, &self.relay, nick, key) {
            PinCheck::Same { first_seen, .. } => first_seen,
            PinCheck::New | PinCheck::Changed { .. } => today.to_owned(),
        };
        self.known.record(
            &self.relay,
            nick,
            Pin { key: key.to_vec(), first_seen, verified: true },
        )?;
        Ok(previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(nick: &str, key: u8) -> MemberInfo {
        MemberInfo {
            nick: nick.into(),
            fingerprint: format!("fp{key}"),
            identity_key: vec![key; 32],
            device_key: vec![key; 32],
            is_self: false,
        }
    }

    #[test]
    fn new_keys_are_pinned_quietly_and_changed_ones_warned_once() {
        let mut trust = PeerTrust::new(Identity::generate(), KnownPeers::in_memory(), "r:1");
        let me = MemberInfo { is_self: true, ..member("me", 9) };
        assert!(trust.observe("lobby", &[me.clone(), member("bob", 1)], "2026-12-01").is_empty());
        assert_eq!(trust.mark("bob", &[1; 32]), TrustMark::New);
        assert!(trust.observe("lobby", &[member("bob", 1)], "2026-12-02").is_empty());
        let events = trust.observe("lobby", &[member("bob", 2)], "2026-12-03");
        assert_eq!(
            events,
            [Event::KeyChanged {
                room: "lobby".into(),
                nick: "bob".into(),
                first_seen: "2026-12-01".into(),
                fingerprint: "fp2".into(),
            }]
        );
        assert!(trust.observe("lobby", &[member("bob", 2)], "2026-12-03").is_empty());
        assert_eq!(trust.mark("bob", &[2; 32]), TrustMark::Changed);
        // Our own key is never pinned.
        assert_eq!(trust.mark("me", &[9; 32]), TrustMark::New);
        assert!(trust.known_peers().get("r:1", "me").is_none());
    }

    #[test]
    fn a_new_key_under_a_name_that_looks_like_a_pinned_one_is_warned_and_not_pinned() {
        let mut trust = PeerTrust::new(Identity::generate(), KnownPeers::in_memory(), "r:1");
        trust.observe("lobby", &[member("sophie", 1)], "2026-12-01");
        // All-Cyrillic "ѕорһіе", and "SOPHIE", each with a key of its own.
        let cyrillic = "\u{0455}\u{043E}\u{0440}\u{04BB}\u{0456}\u{0435}";
        for (nick, key) in [(cyrillic, 2), ("SOPHIE", 3)] {
            let events = trust.observe("lobby", &[member(nick, key)], "2026-12-02");
            let pinned_fingerprint = crate::mls::fingerprint_of(&[1; 32]);
            let look_alike = Event::LookAlike {
                room: "lobby".into(),
                nick: nick.into(),
                looks_like: "sophie".into(),
                pinned_fingerprint,
                fingerprint: format!("fp{key}"),
            };
            assert_eq!(events, [look_alike], "{nick}");
            assert_eq!(trust.looks_like(nick, &[key; 32]).as_deref(), Some("sophie"));
            assert!(trust.known_peers().get("r:1", nick).is_none(), "{nick} is not pinned");
            // Once per session.
            assert!(trust.observe("lobby", &[member(nick, key)], "2026-12-02").is_empty());
        }
        // The same identity under a name in other case is no impostor; after /trust, the
        // look-alike is a known key of its own.
        assert!(trust.observe("lobby", &[member("Sophie", 1)], "2026-12-02").is_empty());
        trust.trust("SOPHIE", &[3; 32], "2026-12-03").unwrap();
        assert_eq!(trust.looks_like("SOPHIE", &[3; 32]), None);
    }

    #[test]
    fn a_verified_identity_is_verified_under_each_of_its_nicknames() {
        let mut trust = PeerTrust::new(Identity::generate(), KnownPeers::in_memory(), "r:1");
        trust.observe("lobby", &[member("alice", 1), member("alice-2", 1)], "2026-12-01");
        trust.trust("alice", &[1; 32], "2026-12-01").unwrap();
        assert_eq!(trust.mark("alice-2", &[1; 32]), TrustMark::Verified);
        assert_eq!(trust.mark("alice-3", &[1; 32]), TrustMark::Verified);
        // Not another identity under one of those names.
        assert_eq!(trust.mark("alice-2", &[2; 32]), TrustMark::Changed);
        assert_eq!(trust.mark("bob", &[2; 32]), TrustMark::New);
    }

    #[test]
    fn trust_accepts_a_key_and_marks_it_verified() {
        let mut trust = PeerTrust::new(Identity::generate(), KnownPeers::in_memory(), "r:1");
        trust.observe("lobby", &[member("bob", 1)], "2026-12-01");
        assert_eq!(trust.trust("bob", &[1; 32], "2026-12-05").unwrap(), TrustMark::New);
        assert_eq!(trust.mark("bob", &[1; 32]), TrustMark::Verified);
        assert_eq!(trust.known_peers().get("r:1", "bob").unwrap().first_seen, "2026-12-01");
        trust.observe("lobby", &[member("bob", 2)], "2026-12-06");
        assert_eq!(trust.trust("bob", &[2; 32], "2026-12-06").unwrap(), TrustMark::Changed);
        assert_eq!(trust.mark("bob", &[2; 32]), TrustMark::Verified);
        assert!(trust.observe("lobby", &[member("bob", 2)], "2026-12-07").is_empty());
    }

    #[test]
    fn a_member_seen_in_an_earlier_session_is_seen_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_peers");
        let open = || KnownPeers::open(&path).unwrap();
        let mut earlier = PeerTrust::new(Identity::generate(), open(), "r:1");
        earlier.observe("lobby", &[member("bob", 1)], "2026-12-01");
        let mut later = PeerTrust::new(Identity::generate(), open(), "r:1");
        assert!(later.observe("lobby", &[member("bob", 1)], "2026-12-02").is_empty());
        assert_eq!(later.mark("bob", &[1; 32]), TrustMark::SeenBefore);
        assert_eq!(later.observe("lobby", &[member("bob", 3)], "2026-12-02").len(), 1);
    }

    #[test]
    fn a_file_that_cannot_be_saved_is_said_once_and_pins_hold_for_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        let known = KnownPeers::open(&sub.join("known_peers")).unwrap();
        // Where the directory was, a file now stands: nothing can be written below it.
        std::fs::write(&sub, b"in the way").unwrap();
        let mut trust = PeerTrust::new(Identity::generate(), known, "r:1");
        let events = trust.observe("lobby", &[member("bob", 1), member("carol", 2)], "2026-12-01");
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(matches!(&events[0], Event::Warning { text, .. } if text.contains("known_peers")));
        assert!(trust.observe("lobby", &[member("dave", 3)], "2026-12-01").is_empty());
        assert_eq!(trust.mark("carol", &[2; 32]), TrustMark::New);
        assert_eq!(trust.observe("lobby", &[member("carol", 4)], "2026-12-01").len(), 1);
    }

    #[test]
    fn everyone_met_at_once_is_written_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_peers");
        let mut trust =
            PeerTrust::new(Identity::generate(), KnownPeers::open(&path).unwrap(), "r:1");
        let members: Vec<MemberInfo> = (1..=3).map(|n| member(&format!("m{n}"), n)).collect();
        assert!(trust.observe("lobby", &members, "2026-12-01").is_empty());
        let reread = KnownPeers::open(&path).unwrap();
        for n in 1..=3 {
            assert_eq!(reread.get("r:1", &format!("m{n}")).unwrap().key, vec![n; 32]);
        }
    }
}
