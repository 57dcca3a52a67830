//! `/leave`: leave the current room and stay connected.

use super::{Command, Context, Outcome, describe};

/// `/leave`
pub struct Leave;

impl Command for Leave {
    fn name(&self) -> &'static str {
        "leave"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["part"]
    }
    fn usage(&self) -> &'static str {
        "/leave"
    }
    fn about(&self) -> &'static str {
        "leave the current room"
    }
    fn long_help(&self) -> &'static str {
        "Leaves the current room but stays connected to the relay, so you can /join another. \
         The other members see that you left."
    }
    fn run(&self, ctx: &mut Context<'_>, _args: &str) -> Outcome {
        let Some(room) = ctx.engine.current_room() else {
            ctx.out.error("not in a room");
            return Outcome::Continue;
        };
        // Success is announced by the engine's own `Left` event, which also covers leaving
        // by joining another room.
        if let Err(error) = ctx.engine.leave() {
            ctx.out.error(&format!("could not leave {room}: {}", describe(&error)));
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};

    #[test]
    fn leaves_the_room() {
        let engine = FakeEngine::in_room("lobby");
        let mut out = Recorder::default();
        out.run(&engine, "/leave");
        assert_eq!(engine.calls(), ["leave"]);
        assert!(out.notices.is_empty() && out.errors.is_empty());
    }

    #[test]
    fn outside_a_room_it_says_so() {
        let engine = FakeEngine::default();
        let mut out = Recorder::default();
        out.run(&engine, "/leave");
        assert!(engine.calls().is_empty());
        assert_eq!(out.errors, ["not in a room"]);
    }
}
