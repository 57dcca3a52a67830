//! `/rooms`: our rooms with their unread counts, then the rooms on the relay with their
//! member counts.

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
        "list your rooms with unread counts, then the relay's with member counts"
    }
    fn long_help(&self) -> &'static str {
        "Lists your rooms first, numbered as /switch N counts them, with how many of their \
         lines you have not seen yet; then every room the relay currently holds and how many \
         members each has. The relay knows room names and member counts, never what is said \
         in them."
    }
    fn run(&self, ctx: &mut Context<'_>, _args: &str) -> Outcome {
        let mine = ctx.engine.my_rooms();
        if !mine.is_empty() {
            ctx.out.notice("your rooms:");
        }
        for (place, tab) in mine.iter().enumerate() {
            let mark = if tab.current { "  (current)" } else { "" };
            let unread = match tab.unread {
                0 => String::new(),
                n => format!("  {}", count(n, "unread line", "unread lines")),
            };
            let joining = if tab.entered { "" } else { "  (joining)" };
            let name = sanitize_inline(&tab.name);
            let text = format!("  {}. {name}{unread}{joining}{mark}", place + 1);
            let fields = serde_json::json!({
                "room": tab.name, "place": place + 1, "unread": tab.unread,
                "current": tab.current, "entered": tab.entered,
            });
            ctx.out.record("my_room", &text, &fields);
        }
        match ctx.engine.rooms() {
            Ok(rooms) if rooms.is_empty() => {
                ctx.out.notice("no rooms yet — /join NAME creates one")
            }
            Ok(mut rooms) => {
                rooms.sort_by(|a, b| a.name.cmp(&b.name));
                let current = ctx.engine.current_room();
                let on = count(rooms.len(), "room", "rooms");
                ctx.out.notice(&format!("{on} on the relay:"));
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
        assert_eq!(
            out.notices,
            [
                "your rooms:",
                "  1. lobby  (current)",
                "2 rooms on the relay:",
                "  lobby  3 members  (here)",
                "  rust  1 member"
            ]
        );
    }

    #[test]
    fn our_rooms_come_first_with_their_unread_counts() {
        let engine = FakeEngine::in_room("lobby");
        engine.joined.lock().unwrap().push(("ops".into(), 3));
        let mut out = Recorder::default();
        out.run(&engine, "/rooms");
        assert_eq!(
            out.notices[..3],
            ["your rooms:", "  1. lobby  (current)", "  2. ops  3 unread lines"]
        );
        assert_eq!(out.records[1].1["unread"], 3);
    }

    #[test]
    fn says_when_there_are_none() {
        let mut out = Recorder::default();
        out.run(&FakeEngine::default(), "/rooms");
        assert_eq!(out.notices, ["no rooms yet — /join NAME creates one"]);
    }
}
