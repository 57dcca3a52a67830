//! `/join ROOM`: enter a room, creating it if it does not exist, keeping the others.

use super::{Command, Context, Engine, Outcome, describe, matching};
use crate::client::ClientError;

/// `/join ROOM`
pub struct Join;

impl Command for Join {
    fn name(&self) -> &'static str {
        "join"
    }
    fn usage(&self) -> &'static str {
        "/join ROOM"
    }
    fn about(&self) -> &'static str {
        "enter a room (created if new) and make it current; your other rooms stay"
    }
    fn long_help(&self) -> &'static str {
        "Enters ROOM. A room that does not exist yet is created and you become its leader. \
         You are asked for the room password with hidden input; an empty password means an \
         open room. Your other rooms stay (at most 32 in all) and the new one becomes current; \
         joining a room you are in only makes it current. Room names cannot start with @, \
         which marks direct messages. \
         Without a terminal the password comes from CHATTER_ROOM_PASSWORD or \
         --room-password-file."
    }
    fn complete(&self, engine: &dyn Engine, arg_prefix: &str) -> Vec<String> {
        let rooms = engine.rooms().unwrap_or_default();
        matching(rooms.into_iter().map(|room| room.name), arg_prefix)
    }
    fn run(&self, ctx: &mut Context<'_>, args: &str) -> Outcome {
        let room = match parse(args) {
            Ok(room) => room,
            Err(message) => {
                ctx.out.error(&message);
                return Outcome::Continue;
            }
        };
        // Before the password is asked for: there is nothing to type it for.
        if ctx.engine.is_member_of(room) {
            match ctx.engine.switch(room) {
                Ok(_) => ctx.out.notice(&format!("you are already in {room}; now current")),
                Err(error) => ctx.out.error(&describe(&error)),
            }
            return Outcome::Continue;
        }
        let password = match ctx.secrets.room_password(room) {
            Ok(password) => password,
            Err(error) => {
                ctx.out.error(&format!("no room password: {error}"));
                return Outcome::Continue;
            }
        };
        // Success is announced by the engine's `Joined` event, so it is printed exactly once.
        match ctx.engine.join(room, password) {
            Ok(()) => {}
            Err(ClientError::WrongRoomPassword) => {
                ctx.out.error(&format!("wrong password for room {room}"))
            }
            Err(error @ (ClientError::AlreadyInRoom(_) | ClientError::JoinInProgress(_))) => {
                ctx.out.notice(&error.to_string())
            }
            Err(error) => ctx.out.error(&format!("could not join {room}: {}", describe(&error))),
        }
        Outcome::Continue
    }
}

/// The room name: one word, no control characters.
fn parse(args: &str) -> Result<&str, String> {
    let mut words = args.split_whitespace();
    match (words.next(), words.next()) {
        (Some(room), None) if room.starts_with('@') => {
            Err("a room name cannot start with @, which marks direct messages".into())
        }
        (Some(room), None) if !room.chars().any(char::is_control) => Ok(room),
        (Some(_), Some(_)) => Err("a room name is one word — usage: /join ROOM".into()),
        _ => Err("usage: /join ROOM".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};
    use super::*;

    #[test]
    fn parses_one_word() {
        assert_eq!(parse(" lobby "), Ok("lobby"));
        assert!(parse("").is_err());
        assert!(parse("two words").is_err());
        assert!(parse("@bob").is_err(), "@ marks direct messages");
    }

    #[test]
    fn joins_with_the_password_asked_for() {
        let engine = FakeEngine::default();
        let mut out = Recorder { password: "pw".into(), ..Default::default() };
        assert_eq!(out.run(&engine, "/join lobby"), Outcome::Continue);
        assert_eq!(engine.calls(), ["join lobby pw"]);
        assert!(out.errors.is_empty());
    }

    #[test]
    fn the_room_we_are_in_is_not_left_and_no_password_is_asked_for() {
        let engine = FakeEngine::in_room("lobby");
        let mut out = Recorder { password: "pw".into(), ..Default::default() };
        out.run(&engine, "/join lobby");
        assert_eq!(engine.calls(), ["switch lobby"], "made current, not joined again");
        assert_eq!(out.notices, ["you are already in lobby; now current"]);
        assert!(out.errors.is_empty());
        out.run(&engine, "/join other");
        assert_eq!(engine.calls(), ["switch lobby", "join other pw"]);
    }

    #[test]
    fn wrong_password_is_reported() {
        let engine = FakeEngine { wrong_password: true, ..Default::default() };
        let mut out = Recorder::default();
        out.run(&engine, "/join vault");
        assert_eq!(out.errors, ["wrong password for room vault"]);
    }

    #[test]
    fn completes_room_names() {
        let engine = FakeEngine {
            rooms: vec![("lobby".into(), 2), ("linux".into(), 1), ("rust".into(), 5)],
            ..Default::default()
        };
        assert_eq!(Join.complete(&engine, "l"), ["linux", "lobby"]);
        assert_eq!(Join.complete(&engine, ""), ["linux", "lobby", "rust"]);
    }
}
