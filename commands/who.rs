//! `/who`: the members of the current room, the leader marked, with key fingerprints.

use super::{Command, Context, Outcome, count, describe};
use crate::repl::sanitize::sanitize_inline;

/// `/who`
pub struct Who;

impl Command for Who {
    fn name(&self) -> &'static str {
        "who"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["members"]
    }
    fn usage(&self) -> &'static str {
        "/who"
    }
    fn about(&self) -> &'static str {
        "list the members of the room with their key fingerprints"
    }
    fn long_help(&self) -> &'static str {
        "Lists the members of the current room. The leader (who admits newcomers) is marked \
         with *, you with (you). The fingerprint is a short form of each member's signature \
         key: compare it with them over another channel to be sure nobody is impersonating them."
    }
    fn run(&self, ctx: &mut Context<'_>, _args: &str) -> Outcome {
        if ctx.engine.current_room().is_none() {
            ctx.out.error("not in a room");
            return Outcome::Continue;
        }
        match ctx.engine.members() {
            Ok(view) => {
                let members = count(view.members.len(), "member", "members");
                ctx.out.notice(&format!("{} — {members}:", sanitize_inline(&view.room)));
                let width = view.members.iter().map(|m| m.nick.chars().count()).max();
                for member in &view.members {
                    let nick = sanitize_inline(&member.nick);
                    let marker = if member.is_leader { '*' } else { ' ' };
                    let fingerprint = member
                        .fingerprint
                        .as_deref()
                        .map_or_else(|| "(no key yet)".to_owned(), sanitize_inline);
                    let you = if member.is_self { "  (you)" } else { "" };
                    let width = width.unwrap_or(0);
                    ctx.out.notice(&format!("  {marker} {nick:<width$}  {fingerprint}{you}"));
                }
            }
            Err(error) => ctx.out.error(&format!("could not list members: {}", describe(&error))),
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};

    #[test]
    fn marks_the_leader_and_self() {
        let engine = FakeEngine {
            members: vec![("alice".into(), false, true), ("bob".into(), true, false)],
            ..FakeEngine::in_room("lobby")
        };
        let mut out = Recorder::default();
        out.run(&engine, "/who");
        assert_eq!(
            out.notices,
            [
                "lobby — 2 members:",
                "    alice  ab12:cd34:ef56:7890  (you)",
                "  * bob    ab12:cd34:ef56:7890",
            ]
        );
    }

    #[test]
    fn outside_a_room_it_says_so() {
        let mut out = Recorder::default();
        out.run(&FakeEngine::default(), "/who");
        assert_eq!(out.errors, ["not in a room"]);
    }
}
