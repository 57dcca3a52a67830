//! `/rooms`: the rooms on the relay with their member counts.

use super::{Command, Context, Outcome, count, describe};
use crate::repl::sanitize::sanitize_inline;

/// `/rooms`
pub struct Rooms;

impl Command for Rooms {
    fn name(&self) -> &'static str {
        "rooms"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["list"]
    }
    fn usage(&self) -> &'static str {
        "/rooms"
    }
    fn about(&self) -> &'static str {
        "list the rooms on the relay with their member counts"
    }
    fn long_help(&self) -> &'static str {
        "Lists every room the relay currently holds and how many members each has. The relay \
         knows room names and member counts, never what is said in them."
    }
    fn run(&self, ctx: &mut Context<'_>, _args: &str) -> Outcome {
        match ctx.engine.rooms() {
            Ok(rooms) if rooms.is_empty() => {
                ctx.out.notice("no rooms yet — /join NAME creates one")
            }
            Ok(mut rooms) => {
                rooms.sort_by(|a, b| a.name.cmp(&b.name));
                let current = ctx.engine.current_room();
                ctx.out.notice(&format!("{}:", count(rooms.len(), "room", "rooms")));
                for room in rooms {
                    let members = count(room.members as usize, "member", "members");
                    let here = if current.as_deref() == Some(&room.name) { "  (here)" } else { "" };
                    let name = sanitize_inline(&room.name);
                    ctx.out.notice(&format!("  {name}  {members}{here}"));
                }
            }
            Err(error) => ctx.out.error(&format!("could not list rooms: {}", describe(&error))),
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};

    #[test]
    fn lists_rooms_with_counts() {
        let engine = FakeEngine {
            rooms: vec![("rust".into(), 1), ("lobby".into(), 3)],
            ..FakeEngine::in_room("lobby")
        };
        let mut out = Recorder::default();
        out.run(&engine, "/rooms");
        assert_eq!(out.notices, ["2 rooms:", "  lobby  3 members  (here)", "  rust  1 member"]);
    }

    #[test]
    fn says_when_there_are_none() {
        let mut out = Recorder::default();
        out.run(&FakeEngine::default(), "/rooms");
        assert_eq!(out.notices, ["no rooms yet — /join NAME creates one"]);
    }
}
