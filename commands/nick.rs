//! `/nick NEW`: take another nickname, outside rooms.

use super::{Command, Context, Outcome, describe};
use crate::repl::sanitize::sanitize_inline;

/// `/nick`
pub struct Nick;

impl Command for Nick {
    fn name(&self) -> &'static str {
        "nick"
    }
    fn usage(&self) -> &'static str {
        "/nick NEW"
    }
    fn about(&self) -> &'static str {
        "take another nickname (outside rooms)"
    }
    fn long_help(&self) -> &'static str {
        "Takes another nickname: when the one you started with is taken on this relay (say, \
         by another of your own clients), or later while you are in no room. The relay keeps \
         nicknames unique regardless of case and of look-alike letters. Your identity stays \
         the same: the others see the new name with your usual fingerprint."
    }
    fn run(&self, ctx: &mut Context<'_>, args: &str) -> Outcome {
        let nick = args.trim();
        if nick.is_empty() {
            ctx.out.error("usage: /nick NEW");
            return Outcome::Continue;
        }
        match ctx.engine.change_nick(nick) {
            Ok(()) => ctx.out.notice(&format!("connecting as {}", sanitize_inline(nick))),
            Err(error) => {
                ctx.out.error(&format!("could not change nickname: {}", describe(&error)))
            }
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};

    #[test]
    fn asks_the_engine_for_the_new_nickname() {
        let engine = FakeEngine::default();
        let mut out = Recorder::default();
        out.run(&engine, "/nick alice-2");
        assert_eq!(engine.calls(), ["nick alice-2"]);
        assert_eq!(out.notices, ["connecting as alice-2"]);
        out.run(&engine, "/nick");
        assert_eq!(out.errors, ["usage: /nick NEW"]);
    }

    #[test]
    fn in_a_room_it_says_to_leave_first() {
        let engine = FakeEngine::in_room("lobby");
        let mut out = Recorder::default();
        out.run(&engine, "/nick alice-2");
        assert_eq!(
            out.errors,
            ["could not change nickname: leave the room first: a nickname changes outside rooms"]
        );
    }
}
