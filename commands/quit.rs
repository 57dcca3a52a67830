//! `/quit` (alias `/exit`): leave, have the relay forget us, and exit.

use super::{Command, Context, Outcome, describe};

/// `/quit`
pub struct Quit;

impl Command for Quit {
    fn name(&self) -> &'static str {
        "quit"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["exit"]
    }
    fn usage(&self) -> &'static str {
        "/quit"
    }
    fn about(&self) -> &'static str {
        "leave the room, erase your state on the relay, and exit"
    }
    fn long_help(&self) -> &'static str {
        "Leaves the current room, asks the relay to erase everything it holds about you, closes \
         the connection and restores the terminal. Ctrl-D on an empty line, SIGTERM and closing \
         the terminal do the same."
    }
    fn run(&self, ctx: &mut Context<'_>, _args: &str) -> Outcome {
        if let Err(error) = ctx.engine.quit() {
            ctx.out.error(&format!("quitting: {}", describe(&error)));
        }
        Outcome::Quit
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};
    use super::*;

    #[test]
    fn quit_and_exit_both_quit() {
        for line in ["/quit", "/exit"] {
            let engine = FakeEngine::in_room("lobby");
            assert_eq!(Recorder::default().run(&engine, line), Outcome::Quit);
            assert_eq!(engine.calls(), ["quit"]);
        }
    }
}
