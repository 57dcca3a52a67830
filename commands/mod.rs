//! The slash commands: one file per command, one ordered registry.
//!
//! [`REGISTRY`] is the single list that feeds dispatch, `/help` and tab completion, so adding a
//! command costs one new file here plus one line in the registry (a unit test fails when a file
//! is left out). Commands are thin adapters: they parse their arguments, ask the [`Engine`] for
//! one thing, and print through [`Output`]. None of them touches sockets, MLS or tokio; the
//! REPL core names no particular command.

mod clear;
mod details;
mod help;
mod join;
mod leave;
mod me;
mod msg;
mod nick;
mod quit;
mod rekey;
mod rooms;
mod switch;
mod trust;
mod verify;
mod who;
mod whoami;

use crate::client::{ClientError, RoomMembers, RoomSummary, RoomTab};
use crate::identity::{Trusted, Verification, WhoAmI};
use crate::secret::Secret;

/// Every command, in the order `/help` lists them.
pub static REGISTRY: &[&dyn Command] = &[
    &join::Join,
    &switch::Switch,
    &leave::Leave,
    &msg::Msg,
    &nick::Nick,
    &who::Who,
    &whoami::WhoAmI,
    &verify::Verify,
    &trust::Trust,
    &rooms::Rooms,
    &details::Details,
    &rekey::Rekey,
    &me::Me,
    &clear::Clear,
    &help::Help,
    &quit::Quit,
];

/// A slash command.
pub trait Command: Sync {
    /// The name typed after the slash, e.g. `join`.
    fn name(&self) -> &'static str;
    /// Other names that run the same command, e.g. `exit` for `quit`.
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    /// One line of syntax, e.g. `/join ROOM`.
    fn usage(&self) -> &'static str;
    /// One sentence for the `/help` overview.
    fn about(&self) -> &'static str;
    /// A paragraph for `/help NAME`.
    fn long_help(&self) -> &'static str;
    /// Whether the command's arguments are chat (as `/me waves` is): such a line is sent to
    /// the room, so, like a chat line, it is never written to the history file.
    fn carries_chat_text(&self) -> bool {
        false
    }
    /// Completions for the argument being typed, given its prefix.
    fn complete(&self, _engine: &dyn Engine, _arg_prefix: &str) -> Vec<String> {
        Vec::new()
    }
    /// Runs the command with everything after its name (trimmed).
    fn run(&self, ctx: &mut Context<'_>, args: &str) -> Outcome;
}

/// What the REPL does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Read the next line.
    Continue,
    /// Clear the screen, then read the next line.
    ClearScreen,
    /// The session is over: the engine has already been told to quit.
    Quit,
}

/// The client engine as the commands see it: one blocking call per question.
///
/// The real implementation wraps `chatter::client::Client` and a tokio runtime handle; unit
/// tests use a fake, so commands are tested without a network.
pub trait Engine: Send + Sync {
    /// The current room, if any.
    fn current_room(&self) -> Option<String>;
    /// Joins `room`, keeping the others, and makes it current; an empty password means an
    /// open room.
    fn join(&self, room: &str, password: Secret) -> Result<(), ClientError>;
    /// Whether we are in `room` and its group now: joining it would only leave and return.
    fn is_member_of(&self, room: &str) -> bool;
    /// Leaves the current room, or the one `room` names (by name or place).
    fn leave(&self, room: Option<&str>) -> Result<(), ClientError>;
    /// Makes the room `target` names (by name, or place from 1 in the order joined) current;
    /// returns its name.
    fn switch(&self, target: &str) -> Result<String, ClientError>;
    /// Our rooms in the order joined, with their unread counts.
    fn my_rooms(&self) -> Vec<RoomTab> {
        Vec::new()
    }
    /// Sends a direct message to `nick`, opening the DM with them if needed (`/msg`).
    fn msg(&self, _nick: &str, _text: &str) -> Result<(), ClientError> {
        Err(ClientError::NotConnected)
    }
    /// Sends a `/me` action to the current room.
    fn send_action(&self, text: &str) -> Result<(), ClientError>;
    /// The rooms on the relay with their member counts.
    fn rooms(&self) -> Result<Vec<RoomSummary>, ClientError>;
    /// The members of the current room.
    fn members(&self) -> Result<RoomMembers, ClientError>;
    /// Leaves, asks the relay to forget us, and closes the connection.
    fn quit(&self) -> Result<(), ClientError>;
    /// Our nickname and identity (`/whoami`).
    fn whoami(&self) -> Result<WhoAmI, ClientError> {
        Err(ClientError::NoIdentity)
    }
    /// The room's safety code, or with `nick` the pairwise code with that member (`/verify`).
    fn verify(&self, _nick: Option<&str>) -> Result<Verification, ClientError> {
        Err(ClientError::NoIdentity)
    }
    /// Pins `nick`'s current key as verified (`/trust`).
    fn trust(&self, _nick: &str) -> Result<Trusted, ClientError> {
        Err(ClientError::NoIdentity)
    }
    /// Renews our leaf keys in the current room now (`/rekey`).
    fn rekey(&self) -> Result<(), ClientError> {
        Err(ClientError::NotConnected)
    }
    /// Connects under another nickname, outside rooms (`/nick`); the outcome arrives as
    /// events, as at start.
    fn change_nick(&self, _nick: &str) -> Result<(), ClientError> {
        Err(ClientError::NotConnected)
    }
    /// Our nickname now, where it can change (`/nick`).
    fn nick(&self) -> Option<String> {
        None
    }
}

/// Where command results go: the terminal (coloured or not) or JSON lines.
pub trait Output {
    /// Local information, e.g. a table row of `/who`.
    fn notice(&mut self, text: &str);
    /// Something went wrong with a command.
    fn error(&mut self, text: &str);
    /// A line we just sent, shown as the others will see it.
    fn own_message(&mut self, text: &str, action: bool);
    /// A result with named fields: `--json` prints `kind` and the fields (strings, numbers or
    /// null) beside `text`, so a bot needs no parsing; other outputs show `text` as notices.
    fn record(&mut self, _kind: &str, text: &str, _fields: &serde_json::Value) {
        for line in text.lines() {
            self.notice(line);
        }
    }
}

/// Where secrets typed by the user come from: a hidden prompt, or the environment and files.
pub trait SecretSource {
    /// The password for `room`; an empty secret means an open room.
    fn room_password(&mut self, room: &str) -> std::io::Result<Secret>;
}

/// What a command may use.
pub struct Context<'a> {
    /// The client engine.
    pub engine: &'a dyn Engine,
    /// Where results are printed.
    pub out: &'a mut dyn Output,
    /// Where room passwords come from.
    pub secrets: &'a mut dyn SecretSource,
}

/// What one line of input is: the single rule for the REPL and line mode alike.
///
/// After any leading blanks, `/` starts a command, except that `//` escapes the slash: the
/// rest of the line from the second slash is sent as chat (`//shrug` sends `/shrug`). Every
/// other line is chat, sent exactly as typed. Leading blanks are skipped before the slash
/// so that a stray space in front of `/join secret-room` cannot send the command to the
/// room as a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// Nothing but blanks: ignored.
    Blank,
    /// A command line, trimmed, for [`dispatch`].
    Command(&'a str),
    /// Text to send to the current room.
    Chat(&'a str),
}

/// Classifies one line of input; see [`Input`] for the rule.
pub fn classify(line: &str) -> Input<'_> {
    let command = line.trim();
    if command.is_empty() {
        return Input::Blank;
    }
    let start = line.trim_start();
    match start.strip_prefix('/') {
        Some(escaped) if escaped.starts_with('/') => Input::Chat(escaped),
        Some(_) => Input::Command(command),
        None => Input::Chat(line),
    }
}

/// Splits `/name args` into the name and the trimmed arguments; `None` for a chat line.
pub fn parse_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix('/')?;
    let (name, args) = match rest.find(char::is_whitespace) {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    Some((name, args.trim()))
}

/// The command called `name` or one of its aliases (case-insensitive).
pub fn find(name: &str) -> Option<&'static dyn Command> {
    REGISTRY.iter().copied().find(|command| {
        command.name().eq_ignore_ascii_case(name)
            || command.aliases().iter().any(|alias| alias.eq_ignore_ascii_case(name))
    })
}

/// The closest command name to a mistyped one, if it is close enough to be a typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    let name = name.to_lowercase();
    REGISTRY
        .iter()
        .flat_map(|command| {
            std::iter::once(command.name()).chain(command.aliases().iter().copied())
        })
        .map(|candidate| (edit_distance(&name, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.min(candidate.len() / 2).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| find(candidate).map_or(candidate, |command| command.name()))
}

/// Runs one `/command` line.
pub fn dispatch(ctx: &mut Context<'_>, line: &str) -> Outcome {
    let Some((name, args)) = parse_line(line) else {
        return Outcome::Continue;
    };
    match find(name) {
        Some(command) => command.run(ctx, args),
        None => {
            let shown = crate::repl::sanitize::sanitize_inline(name);
            match suggest(name) {
                Some(near) => {
                    ctx.out.error(&format!("unknown command /{shown} — did you mean /{near}?"))
                }
                None => ctx.out.error(&format!("unknown command /{shown} — try /help")),
            }
            Outcome::Continue
        }
    }
}

/// Completions for a whole input line whose cursor is at its end: command names after a lone
/// `/`, or the command's own argument completions after `/name `.
pub fn complete_line(engine: &dyn Engine, line: &str) -> Vec<String> {
    let Some(rest) = line.strip_prefix('/') else {
        return Vec::new();
    };
    match rest.find(char::is_whitespace) {
        None => {
            // Names first; aliases only when no name fits (`/e` → `/exit`).
            let prefix = rest.to_lowercase();
            let names = REGISTRY.iter().map(|c| c.name()).filter(|n| n.starts_with(&prefix));
            let mut found: Vec<String> = names.map(|name| format!("/{name}")).collect();
            if found.is_empty() {
                let aliases = REGISTRY.iter().flat_map(|c| c.aliases().iter().copied());
                found =
                    aliases.filter(|a| a.starts_with(&prefix)).map(|a| format!("/{a}")).collect();
            }
            found
        }
        Some(at) => match find(&rest[..at]) {
            Some(command) => command.complete(engine, rest[at..].trim_start()),
            None => Vec::new(),
        },
    }
}

/// Keeps the candidates starting with `prefix`, sorted and without repeats.
pub(crate) fn matching(candidates: impl IntoIterator<Item = String>, prefix: &str) -> Vec<String> {
    let mut found: Vec<String> =
        candidates.into_iter().filter(|candidate| candidate.starts_with(prefix)).collect();
    found.sort();
    found.dedup();
    found
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// "1 member", "3 members": a count with its noun, as the listing commands print it.
pub(crate) fn count(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// Formats an engine error for the user.
pub(crate) fn describe(error: &ClientError) -> String {
    error.to_string()
}

/// A fake engine and a recording output for the commands' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::client::{MemberView, Presence};
    use std::sync::Mutex;

    /// An engine that answers from memory and records what it was asked.
    #[derive(Default)]
    pub struct FakeEngine {
        pub room: Mutex<Option<String>>,
        /// Our rooms in the order joined, with their unread counts.
        pub joined: Mutex<Vec<(String, usize)>>,
        pub rooms: Vec<(String, u32)>,
        pub members: Vec<(String, bool, bool)>,
        /// Members whose presence is not "in the group and connected".
        pub presence: Vec<(String, Presence)>,
        /// Members' trust marks, as `/who` shows them.
        pub member_trust: Vec<(String, crate::identity::TrustMark)>,
        /// Members that are another client of an earlier member's identity, and that member.
        pub same_identity: Vec<(String, String)>,
        /// Members whose nickname looks like a pinned one under another key, and that one.
        pub looks_like: Vec<(String, String)>,
        pub calls: Mutex<Vec<String>>,
        pub wrong_password: bool,
        /// The trust mark `/verify NICK` and `/trust` report (seen before if unset).
        pub mark: Option<crate::identity::TrustMark>,
        /// How long members' leaf keys have been unchanged, as `/who` and `/details` show.
        pub keys_ages: Vec<(String, std::time::Duration)>,
        /// Members whose leaf keys are stale.
        pub stale: Vec<String>,
        /// The room's ciphersuite, as `/details` shows it.
        pub suite: Option<crate::mls::RoomSuite>,
    }

    impl FakeEngine {
        pub fn in_room(room: &str) -> Self {
            FakeEngine {
                room: Mutex::new(Some(room.to_owned())),
                joined: Mutex::new(vec![(room.to_owned(), 0)]),
                ..Default::default()
            }
        }
        fn record(&self, call: String) {
            self.calls.lock().expect("not poisoned").push(call);
        }
        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().expect("not poisoned").clone()
        }
    }

    impl Engine for FakeEngine {
        fn current_room(&self) -> Option<String> {
            self.room.lock().expect("not poisoned").clone()
        }
        fn is_member_of(&self, room: &str) -> bool {
            self.joined.lock().expect("not poisoned").iter().any(|(name, _)| name == room)
        }
        fn join(&self, room: &str, password: Secret) -> Result<(), ClientError> {
            self.record(format!("join {room} {}", password.expose()));
            if self.wrong_password {
                return Err(ClientError::WrongRoomPassword);
            }
            *self.room.lock().expect("not poisoned") = Some(room.to_owned());
            self.joined.lock().expect("not poisoned").push((room.to_owned(), 0));
            Ok(())
        }
        fn leave(&self, room: Option<&str>) -> Result<(), ClientError> {
            let name = match room {
                Some(room) => room.to_owned(),
                None => self.current_room().ok_or(ClientError::NotInRoom)?,
            };
            self.record(format!("leave {name}"));
            let mut joined = self.joined.lock().expect("not poisoned");
            let before = joined.len();
            joined.retain(|(joined, _)| *joined != name);
            if joined.len() == before {
                return Err(ClientError::NoSuchRoom(name));
            }
            let mut current = self.room.lock().expect("not poisoned");
            if current.as_deref() == Some(name.as_str()) {
                *current = joined.last().map(|(name, _)| name.clone());
            }
            Ok(())
        }
        fn switch(&self, target: &str) -> Result<String, ClientError> {
            self.record(format!("switch {target}"));
            let joined = self.joined.lock().expect("not poisoned");
            let by_place = target.parse::<usize>().ok().and_then(|n| n.checked_sub(1));
            let found = joined
                .iter()
                .position(|(name, _)| name == target)
                .or(by_place.filter(|place| *place < joined.len()));
            let name =
                joined[found.ok_or_else(|| ClientError::NoSuchRoom(target.into()))?].0.clone();
            *self.room.lock().expect("not poisoned") = Some(name.clone());
            Ok(name)
        }
        fn my_rooms(&self) -> Vec<RoomTab> {
            let current = self.current_room();
            let joined = self.joined.lock().expect("not poisoned");
            joined
                .iter()
                .map(|(name, unread)| RoomTab {
                    name: name.clone(),
                    unread: *unread,
                    current: current.as_deref() == Some(name.as_str()),
                    entered: true,
                })
                .collect()
        }
        fn send_action(&self, text: &str) -> Result<(), ClientError> {
            self.record(format!("action {text}"));
            Ok(())
        }
        fn msg(&self, nick: &str, text: &str) -> Result<(), ClientError> {
            self.record(format!("msg {nick} {text}"));
            Ok(())
        }
        fn rooms(&self) -> Result<Vec<RoomSummary>, ClientError> {
            Ok(self
                .rooms
                .iter()
                .map(|(name, members)| RoomSummary { name: name.clone(), members: *members })
                .collect())
        }
        fn members(&self) -> Result<RoomMembers, ClientError> {
            let room = self.current_room().ok_or(ClientError::NotInRoom)?;
            let members = self
                .members
                .iter()
                .map(|(nick, is_leader, is_self)| MemberView {
                    nick: nick.clone(),
                    fingerprint: Some("ab12:cd34:ef56:7890".into()),
                    is_leader: *is_leader,
                    is_self: *is_self,
                    presence: self
                        .presence
                        .iter()
                        .find(|(named, _)| named == nick)
                        .map_or(Presence::InGroupAndConnected, |(_, presence)| *presence),
                    same_identity_as: self
                        .same_identity
                        .iter()
                        .find(|(named, _)| named == nick)
                        .map(|(_, first)| first.clone()),
                    looks_like: self
                        .looks_like
                        .iter()
                        .find(|(named, _)| named == nick)
                        .map(|(_, pinned)| pinned.clone()),
                    trust: self
                        .member_trust
                        .iter()
                        .find(|(named, _)| named == nick)
                        .map(|(_, mark)| *mark),
                    keys_age: self
                        .keys_ages
                        .iter()
                        .find(|(named, _)| named == nick)
                        .map(|(_, age)| *age),
                    stale_keys: self.stale.iter().any(|named| named == nick),
                })
                .collect();
            Ok(RoomMembers { room, members, suite: self.suite })
        }
        fn change_nick(&self, nick: &str) -> Result<(), ClientError> {
            if self.current_room().is_some() {
                return Err(ClientError::NickChangeInRoom);
            }
            self.record(format!("nick {nick}"));
            Ok(())
        }
        fn quit(&self) -> Result<(), ClientError> {
            self.record("quit".into());
            Ok(())
        }
        fn whoami(&self) -> Result<WhoAmI, ClientError> {
            Ok(WhoAmI {
                nick: "alice".into(),
                fingerprint: "ab12:cd34:ef56:7890".into(),
                identity_file: Some("/home/alice/.local/share/chatter/identity".into()),
                known_peers_file: Some("/home/alice/.local/share/chatter/known_peers".into()),
            })
        }
        fn verify(&self, nick: Option<&str>) -> Result<Verification, ClientError> {
            let room = self.current_room().ok_or(ClientError::NotInRoom)?;
            self.record(format!("verify {nick:?}"));
            Ok(match nick {
                None => Verification::Room {
                    room,
                    epoch: 4,
                    members: 3,
                    code: "12345 67890 12345 67890 12345 67890".into(),
                },
                Some(nick) => Verification::Peer {
                    nick: nick.into(),
                    fingerprint: "ab12:cd34:ef56:7890".into(),
                    mark: self.mark.unwrap_or(crate::identity::TrustMark::SeenBefore),
                    code: "11111 22222 33333 44444 55555 66666".into(),
                },
            })
        }
        fn rekey(&self) -> Result<(), ClientError> {
            self.current_room().ok_or(ClientError::NotInRoom)?;
            self.record("rekey".into());
            Ok(())
        }
        fn trust(&self, nick: &str) -> Result<Trusted, ClientError> {
            self.record(format!("trust {nick}"));
            Ok(Trusted {
                nick: nick.into(),
                fingerprint: "ab12:cd34:ef56:7890".into(),
                previous: self.mark.unwrap_or(crate::identity::TrustMark::SeenBefore),
            })
        }
    }

    /// Records everything printed, and answers password prompts with `password`.
    #[derive(Default)]
    pub struct Recorder {
        /// `record` calls: the kind and the fields.
        pub records: Vec<(String, serde_json::Value)>,
        pub notices: Vec<String>,
        pub errors: Vec<String>,
        pub own: Vec<(String, bool)>,
        pub password: String,
    }

    impl Output for Recorder {
        fn notice(&mut self, text: &str) {
            self.notices.push(text.to_owned());
        }
        fn error(&mut self, text: &str) {
            self.errors.push(text.to_owned());
        }
        fn own_message(&mut self, text: &str, action: bool) {
            self.own.push((text.to_owned(), action));
        }
        fn record(&mut self, kind: &str, text: &str, fields: &serde_json::Value) {
            self.records.push((kind.to_owned(), fields.clone()));
            self.notices.extend(text.lines().map(ToOwned::to_owned));
        }
    }

    impl Recorder {
        /// Dispatches `line` with this recorder as output and password source.
        pub fn run(&mut self, engine: &dyn Engine, line: &str) -> Outcome {
            let mut secrets = FixedSecret(self.password.clone());
            let mut ctx = Context { engine, out: self, secrets: &mut secrets };
            dispatch(&mut ctx, line)
        }
    }

    struct FixedSecret(String);

    impl SecretSource for FixedSecret {
        fn room_password(&mut self, _room: &str) -> std::io::Result<Secret> {
            Ok(Secret::new(self.0.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{FakeEngine, Recorder};
    use super::*;

    #[test]
    fn every_file_in_commands_is_registered() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("commands");
        let mut unregistered = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("commands/ is readable") {
            let path = entry.expect("directory entry").path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            if path.extension().is_none_or(|ext| ext != "rs") || stem == "mod" {
                continue;
            }
            if find(stem).is_none() {
                unregistered.push(stem.to_owned());
            }
        }
        assert!(unregistered.is_empty(), "not in REGISTRY: {unregistered:?}");
    }

    #[test]
    fn names_and_aliases_are_unique_and_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for command in REGISTRY {
            for name in std::iter::once(command.name()).chain(command.aliases().iter().copied()) {
                assert_eq!(name, name.to_lowercase());
                assert!(seen.insert(name), "/{name} registered twice");
            }
            assert!(command.usage().starts_with(&format!("/{}", command.name())));
            assert!(!command.about().is_empty() && !command.long_help().is_empty());
        }
    }

    #[test]
    fn a_line_is_a_command_after_leading_blanks_and_double_slash_escapes() {
        assert_eq!(classify("/join lobby "), Input::Command("/join lobby"));
        assert_eq!(classify("  /join secret"), Input::Command("/join secret"), "blanks first");
        assert_eq!(classify("\t/quit"), Input::Command("/quit"));
        assert_eq!(classify("//shrug"), Input::Chat("/shrug"));
        assert_eq!(classify("  //shrug "), Input::Chat("/shrug "));
        assert_eq!(classify("  indented text"), Input::Chat("  indented text"), "as typed");
        assert_eq!(classify("a / b"), Input::Chat("a / b"));
        assert_eq!(classify("line\n/not a command"), Input::Chat("line\n/not a command"));
        assert_eq!(classify(" \t "), Input::Blank);
        assert_eq!(classify(""), Input::Blank);
    }

    #[test]
    fn parse_line_splits_name_and_arguments() {
        assert_eq!(parse_line("/join  lobby "), Some(("join", "lobby")));
        assert_eq!(parse_line("/who"), Some(("who", "")));
        assert_eq!(parse_line("hello /join"), None);
    }

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(suggest("jion"), Some("join"));
        assert_eq!(suggest("quti"), Some("quit"));
        assert_eq!(suggest("exti"), Some("quit"));
        assert_eq!(suggest("xyzzy"), None);
    }

    #[test]
    fn unknown_command_says_did_you_mean() {
        let engine = FakeEngine::default();
        let mut recorder = Recorder::default();
        let outcome = recorder.run(&engine, "/jion lobby");
        assert_eq!(outcome, Outcome::Continue);
        assert_eq!(recorder.errors, ["unknown command /jion — did you mean /join?"]);
    }

    #[test]
    fn aliases_dispatch_to_their_command() {
        assert_eq!(find("exit").map(|c| c.name()), Some("quit"));
        assert_eq!(find("JOIN").map(|c| c.name()), Some("join"));
    }

    #[test]
    fn command_names_complete_from_the_registry() {
        let engine = FakeEngine::default();
        assert_eq!(complete_line(&engine, "/j"), ["/join"]);
        assert_eq!(complete_line(&engine, "/e"), ["/exit"]);
        assert_eq!(complete_line(&engine, "/").len(), REGISTRY.len());
        assert!(complete_line(&engine, "hello").is_empty());
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("jion", "join"), 2);
        assert_eq!(edit_distance("who", "who"), 0);
        assert_eq!(edit_distance("lev", "leave"), 2);
    }
}
