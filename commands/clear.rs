//! `/clear`: clear the screen.

use super::{Command, Context, Outcome};

/// `/clear`
pub struct Clear;

impl Command for Clear {
    fn name(&self) -> &'static str {
        "clear"
    }
    fn usage(&self) -> &'static str {
        "/clear"
    }
    fn about(&self) -> &'static str {
        "clear the screen"
    }
    fn long_help(&self) -> &'static str {
        "Clears the screen. Nothing is deleted anywhere else: chat lines were never stored."
    }
    fn run(&self, _ctx: &mut Context<'_>, _args: &str) -> Outcome {
        Outcome::ClearScreen
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};
    use super::*;

    #[test]
    fn asks_the_repl_to_clear() {
        assert_eq!(Recorder::default().run(&FakeEngine::default(), "/clear"), Outcome::ClearScreen);
    }
}
