//! `/help [COMMAND]`: the command overview, or one command in detail.

use super::{Command, Context, Engine, Outcome, REGISTRY, find, matching, suggest};
use crate::repl::sanitize::sanitize_inline;

/// `/help [COMMAND]`
pub struct Help;

impl Command for Help {
    fn name(&self) -> &'static str {
        "help"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["?"]
    }
    fn usage(&self) -> &'static str {
        "/help [COMMAND]"
    }
    fn about(&self) -> &'static str {
        "list the commands, or explain one"
    }
    fn long_help(&self) -> &'static str {
        "Without an argument, lists every command. With one, explains that command. Lines that \
         do not start with / are sent to the current room. You may be in several rooms at \
         once: /join adds one and makes it current, /switch (or Alt-1 to Alt-9, Alt-Left and \
         Alt-Right) picks the current one, /part leaves one and keeps the rest. Lines from \
         the other rooms print at once, marked [room], and the prompt counts them as unread \
         until you switch there: alice@dev ops(3). Tab completes, Ctrl-C clears the line, \
         Ctrl-D on an empty line quits."
    }
    fn complete(&self, _engine: &dyn Engine, arg_prefix: &str) -> Vec<String> {
        let prefix = arg_prefix.trim_start_matches('/');
        matching(REGISTRY.iter().map(|command| command.name().to_owned()), prefix)
    }
    fn run(&self, ctx: &mut Context<'_>, args: &str) -> Outcome {
        let name = args.trim_start_matches('/');
        if name.is_empty() {
            let width = REGISTRY.iter().map(|c| c.usage().chars().count()).max().unwrap_or(0);
            ctx.out.notice("commands (/help COMMAND for more):");
            for command in REGISTRY {
                ctx.out.notice(&format!("  {:<width$}  {}", command.usage(), command.about()));
            }
            ctx.out.notice("anything else you type is sent to the current room");
            ctx.out.notice(
                "several rooms: /join adds one, /switch ROOM|N or Alt-1…9 and Alt-Left/Right \
                 pick the current one, /part [ROOM] leaves one; the others' lines print \
                 marked [room] and count as unread in the prompt",
            );
            return Outcome::Continue;
        }
        match find(name) {
            Some(command) => {
                ctx.out.notice(&format!("{} — {}", command.usage(), command.about()));
                if !command.aliases().is_empty() {
                    let aliases: Vec<String> =
                        command.aliases().iter().map(|alias| format!("/{alias}")).collect();
                    ctx.out.notice(&format!("also: {}", aliases.join(", ")));
                }
                ctx.out.notice(command.long_help());
            }
            None => {
                let shown = sanitize_inline(name);
                match suggest(name) {
                    Some(near) => {
                        ctx.out.error(&format!("no command /{shown} — did you mean /{near}?"))
                    }
                    None => ctx.out.error(&format!("no command /{shown}")),
                }
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
    fn overview_lists_every_command_in_registry_order() {
        let mut out = Recorder::default();
        out.run(&FakeEngine::default(), "/help");
        for (line, command) in out.notices[1..].iter().zip(REGISTRY) {
            assert!(line.trim_start().starts_with(command.usage()), "{line}");
        }
        assert_eq!(out.notices.len(), REGISTRY.len() + 3);
        assert!(out.notices.last().is_some_and(|line| line.contains("/switch")), "rooms explained");
    }

    #[test]
    fn explains_one_command_and_its_aliases() {
        let mut out = Recorder::default();
        out.run(&FakeEngine::default(), "/help exit");
        assert!(out.notices[0].starts_with("/quit"));
        assert_eq!(out.notices[1], "also: /exit");
    }

    #[test]
    fn completes_command_names() {
        assert_eq!(Help.complete(&FakeEngine::default(), "l"), ["leave"]);
    }
}
