//! `/details`: how many members the current room has (as the original Python client had).

use super::{Command, Context, Outcome, count, describe};
use crate::repl::sanitize::sanitize_inline;

/// `/details`
pub struct Details;

impl Command for Details {
    fn name(&self) -> &'static str {
        "details"
    }
    fn usage(&self) -> &'static str {
        "/details"
    }
    fn about(&self) -> &'static str {
        "show the current room and its member count"
    }
    fn long_help(&self) -> &'static str {
        "Shows the name of the current room and how many members it has. /who lists them."
    }
    fn run(&self, ctx: &mut Context<'_>, _args: &str) -> Outcome {
        if ctx.engine.current_room().is_none() {
            ctx.out.error("not in a room");
            return Outcome::Continue;
        }
        match ctx.engine.members() {
            Ok(view) => {
                let members = count(view.members.len(), "member", "members");
                ctx.out.notice(&format!("room {}: {members}", sanitize_inline(&view.room)));
            }
            Err(error) => ctx.out.error(&format!("could not get details: {}", describe(&error))),
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};

    #[test]
    fn counts_members() {
        let engine = FakeEngine {
            members: vec![("alice".into(), true, true), ("bob".into(), false, false)],
            ..FakeEngine::in_room("lobby")
        };
        let mut out = Recorder::default();
        out.run(&engine, "/details");
        assert_eq!(out.notices, ["room lobby: 2 members"]);
    }
}
