//! `/switch ROOM|N`: make one of our rooms current.

use super::{Command, Context, Engine, Outcome, describe, matching};
use crate::repl::sanitize::sanitize_inline;

/// `/switch ROOM|N`
pub struct Switch;

impl Command for Switch {
    fn name(&self) -> &'static str {
        "switch"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["go"]
    }
    fn usage(&self) -> &'static str {
        "/switch ROOM|N"
    }
    fn about(&self) -> &'static str {
        "make one of your rooms current (also Alt-1…9, Alt-Left/Right)"
    }
    fn long_help(&self) -> &'static str {
        "Makes ROOM, or the N-th of your rooms in the order you joined them (the prompt's \
         order), the current room: plain lines, /who, /verify and /trust are about it, and its \
         unread count goes back to zero. At the terminal Alt-1 to Alt-9 switch to rooms 1 to 9 \
         and Alt-Left and Alt-Right to the previous and the next room. Lines from the other \
         rooms still print as they come, marked with their room."
    }
    fn complete(&self, engine: &dyn Engine, arg_prefix: &str) -> Vec<String> {
        matching(engine.my_rooms().into_iter().map(|tab| tab.name), arg_prefix)
    }
    fn run(&self, ctx: &mut Context<'_>, args: &str) -> Outcome {
        let mut words = args.split_whitespace();
        let target = match (words.next(), words.next()) {
            (Some(target), None) => target,
            _ => {
                ctx.out.error("usage: /switch ROOM|N");
                return Outcome::Continue;
            }
        };
        match ctx.engine.switch(target) {
            Ok(room) => {
                let fields = serde_json::json!({ "room": room });
                let text = format!("now in {}", sanitize_inline(&room));
                ctx.out.record("switched", &text, &fields);
            }
            Err(error) => ctx.out.error(&describe(&error)),
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};
    use super::super::{Command, Engine};
    use crate::secret::Secret;

    fn two_rooms() -> FakeEngine {
        let engine = FakeEngine::in_room("lobby");
        engine.join("ops", Secret::default()).unwrap();
        engine
    }

    #[test]
    fn switches_by_name_and_by_place() {
        let engine = two_rooms();
        let mut out = Recorder::default();
        out.run(&engine, "/switch lobby");
        assert_eq!(engine.current_room().as_deref(), Some("lobby"));
        out.run(&engine, "/switch 2");
        assert_eq!(engine.current_room().as_deref(), Some("ops"));
        assert_eq!(out.notices, ["now in lobby", "now in ops"]);
        assert_eq!(out.records[1].1["room"], "ops");
    }

    #[test]
    fn a_room_we_are_not_in_is_an_error_and_changes_nothing() {
        let engine = two_rooms();
        let mut out = Recorder::default();
        out.run(&engine, "/switch 7");
        out.run(&engine, "/switch");
        assert_eq!(engine.current_room().as_deref(), Some("ops"));
        assert_eq!(out.errors.len(), 2, "{:?}", out.errors);
        assert_eq!(out.errors[1], "usage: /switch ROOM|N");
    }

    #[test]
    fn completes_our_rooms() {
        assert_eq!(super::Switch.complete(&two_rooms(), ""), ["lobby", "ops"]);
    }
}
