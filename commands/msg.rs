//! `/msg NICK TEXT`: a direct message to someone you share a room with.

use super::{Command, Context, Engine, Outcome, describe, matching};
use crate::repl::sanitize::sanitize_inline;

/// `/msg NICK TEXT`
pub struct Msg;

impl Command for Msg {
    fn name(&self) -> &'static str {
        "msg"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["query", "dm"]
    }
    fn usage(&self) -> &'static str {
        "/msg NICK TEXT"
    }
    fn about(&self) -> &'static str {
        "send a direct message to someone you share a room with (shown as @NICK)"
    }
    fn carries_chat_text(&self) -> bool {
        true
    }
    fn long_help(&self) -> &'static str {
        "Sends TEXT to NICK alone, in a direct message: an encrypted group of the two of you, \
         shown as @NICK in the prompt and /rooms (/switch @NICK makes it current, /part @NICK \
         closes it). The first /msg opens it through a room you both are in, so that only you \
         two hold its keys; the relay learns only that two of its sessions share a direct \
         message. It stays open when you leave that room. Who may open one with you is your \
         setting: dm = \"anyone\" (the default: anyone sharing a room with you), \"pinned\", \
         \"verified\" or \"nobody\" in the config, or --dm. At most 5 direct messages may be \
         opened a minute."
    }
    fn complete(&self, engine: &dyn Engine, arg_prefix: &str) -> Vec<String> {
        if arg_prefix.contains(char::is_whitespace) {
            return Vec::new();
        }
        let members = engine.members().map(|view| view.members).unwrap_or_default();
        matching(members.into_iter().map(|member| member.nick), arg_prefix)
    }
    fn run(&self, ctx: &mut Context<'_>, args: &str) -> Outcome {
        let Some((nick, text)) = args.split_once(char::is_whitespace) else {
            ctx.out.error("usage: /msg NICK TEXT");
            return Outcome::Continue;
        };
        let (nick, text) = (nick.strip_prefix('@').unwrap_or(nick), text.trim_start());
        if nick.is_empty() || text.is_empty() {
            ctx.out.error("usage: /msg NICK TEXT");
            return Outcome::Continue;
        }
        match ctx.engine.msg(nick, text) {
            Ok(()) => {
                let room = format!("@{nick}");
                let fields = serde_json::json!({ "room": room, "to": nick, "text": text });
                let shown = format!("-> {}: {}", sanitize_inline(nick), sanitize_inline(text));
                ctx.out.record("dm_sent", &shown, &fields);
            }
            Err(error) => ctx.out.error(&format!("not sent: {}", describe(&error))),
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};

    #[test]
    fn sends_to_the_nick_and_says_so() {
        let engine = FakeEngine::in_room("lobby");
        let mut out = Recorder::default();
        out.run(&engine, "/msg @bob hello there");
        assert_eq!(out.records[0].1["to"], "bob");
        assert_eq!(out.records[0].1["text"], "hello there");
        assert_eq!(out.records[0].1["room"], "@bob");
    }

    #[test]
    fn needs_a_nick_and_a_text() {
        let engine = FakeEngine::in_room("lobby");
        let mut out = Recorder::default();
        out.run(&engine, "/msg bob");
        out.run(&engine, "/msg");
        assert_eq!(out.errors, ["usage: /msg NICK TEXT", "usage: /msg NICK TEXT"]);
    }
}
