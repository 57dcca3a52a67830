//! `/leave [ROOM]` (or `/part`): leave the current room, or the one named, keeping the others.

use super::{Command, Context, Engine, Outcome, describe, matching};

/// `/leave [ROOM]`
pub struct Leave;

impl Command for Leave {
    fn name(&self) -> &'static str {
        "leave"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["part"]
    }
    fn usage(&self) -> &'static str {
        "/leave [ROOM]"
    }
    fn about(&self) -> &'static str {
        "leave the current room, or ROOM, and stay in the others"
    }
    fn long_help(&self) -> &'static str {
        "Leaves the current room, or the room named (by name, or by its number in the prompt's \
         list), and stays in your other rooms and connected to the relay. Leaving the current \
         room makes the room joined before it current. The other members see that you left; \
         lines still waiting to be sent to that room are listed as not sent."
    }
    fn complete(&self, engine: &dyn Engine, arg_prefix: &str) -> Vec<String> {
        matching(engine.my_rooms().into_iter().map(|tab| tab.name), arg_prefix)
    }
    fn run(&self, ctx: &mut Context<'_>, args: &str) -> Outcome {
        let mut words = args.split_whitespace();
        let (room, extra) = (words.next(), words.next());
        if extra.is_some() {
            ctx.out.error("one room at a time — usage: /leave [ROOM]");
            return Outcome::Continue;
        }
        if room.is_none() && ctx.engine.current_room().is_none() {
            ctx.out.error("not in a room");
            return Outcome::Continue;
        }
        // Success is announced by the engine's own `Left` event.
        if let Err(error) = ctx.engine.leave(room) {
            let shown = room.map(crate::repl::sanitize::sanitize_inline);
            let name = shown.or_else(|| ctx.engine.current_room()).unwrap_or_default();
            ctx.out.error(&format!("could not leave {name}: {}", describe(&error)));
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};
    use super::super::{Command, Engine};
    use crate::secret::Secret;

    #[test]
    fn leaves_the_current_room() {
        let engine = FakeEngine::in_room("lobby");
        let mut out = Recorder::default();
        out.run(&engine, "/leave");
        assert_eq!(engine.calls(), ["leave lobby"]);
        assert!(out.notices.is_empty() && out.errors.is_empty());
    }

    #[test]
    fn part_leaves_the_named_room_and_keeps_the_current_one() {
        let engine = FakeEngine::in_room("lobby");
        engine.join("ops", Secret::default()).unwrap();
        engine.switch("lobby").unwrap();
        let mut out = Recorder::default();
        out.run(&engine, "/part ops");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(engine.current_room().as_deref(), Some("lobby"));
        let rooms: Vec<String> = engine.my_rooms().into_iter().map(|tab| tab.name).collect();
        assert_eq!(rooms, ["lobby"]);
    }

    #[test]
    fn a_room_we_are_not_in_is_an_error() {
        let engine = FakeEngine::in_room("lobby");
        let mut out = Recorder::default();
        out.run(&engine, "/part nowhere");
        assert_eq!(out.errors.len(), 1);
        assert!(out.errors[0].starts_with("could not leave nowhere: "), "{:?}", out.errors);
    }

    #[test]
    fn outside_a_room_it_says_so() {
        let engine = FakeEngine::default();
        let mut out = Recorder::default();
        out.run(&engine, "/leave");
        assert!(engine.calls().is_empty());
        assert_eq!(out.errors, ["not in a room"]);
    }

    #[test]
    fn completes_our_rooms() {
        let engine = FakeEngine::in_room("lobby");
        engine.join("ops", Secret::default()).unwrap();
        assert_eq!(super::Leave.complete(&engine, "o"), ["ops"]);
    }
}
