//! `/me ACTION`: send an action ("* alice waves").

use super::{Command, Context, Engine, Outcome, describe, matching};

/// `/me ACTION`
pub struct Me;

impl Command for Me {
    fn name(&self) -> &'static str {
        "me"
    }
    fn usage(&self) -> &'static str {
        "/me ACTION"
    }
    fn about(&self) -> &'static str {
        "send an action, shown as \"* nick ACTION\""
    }
    fn carries_chat_text(&self) -> bool {
        true
    }
    fn long_help(&self) -> &'static str {
        "Sends ACTION to the room as an action: everyone sees \"* yournick ACTION\". Tab \
         completes the nicknames of the members."
    }
    fn complete(&self, engine: &dyn Engine, arg_prefix: &str) -> Vec<String> {
        // Complete the last word only: `/me waves at b<Tab>`.
        let (head, word) = match arg_prefix.rfind(char::is_whitespace) {
            Some(at) => arg_prefix.split_at(at + 1),
            None => ("", arg_prefix),
        };
        let members = engine.members().map(|view| view.members).unwrap_or_default();
        matching(members.into_iter().map(|member| member.nick), word)
            .into_iter()
            .map(|nick| format!("{head}{nick}"))
            .collect()
    }
    fn run(&self, ctx: &mut Context<'_>, args: &str) -> Outcome {
        if args.is_empty() {
            ctx.out.error("usage: /me ACTION");
        } else if ctx.engine.current_room().is_none() {
            ctx.out.error("not in a room — /join ROOM first");
        } else {
            match ctx.engine.send_action(args) {
                Ok(()) => ctx.out.own_message(args, true),
                Err(error) => ctx.out.error(&format!("not sent: {}", describe(&error))),
            }
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};
    use super::*;

    #[test]
    fn sends_and_shows_the_action() {
        let engine = FakeEngine::in_room("lobby");
        let mut out = Recorder::default();
        out.run(&engine, "/me waves");
        assert_eq!(engine.calls(), ["action waves"]);
        assert_eq!(out.own, [("waves".to_owned(), true)]);
    }

    #[test]
    fn needs_an_action_and_a_room() {
        let mut out = Recorder::default();
        out.run(&FakeEngine::in_room("lobby"), "/me");
        out.run(&FakeEngine::default(), "/me waves");
        assert_eq!(out.errors, ["usage: /me ACTION", "not in a room — /join ROOM first"]);
    }

    #[test]
    fn completes_the_last_word_with_nicks() {
        let engine = FakeEngine {
            members: vec![("bob".into(), false, false), ("barbara".into(), false, false)],
            ..FakeEngine::in_room("lobby")
        };
        assert_eq!(Me.complete(&engine, "waves at b"), ["waves at barbara", "waves at bob"]);
    }
}
