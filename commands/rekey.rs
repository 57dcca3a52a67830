//! `/rekey`: renew your keys in the current room now, rather than at the next daily renewal.

use super::{Command, Context, Outcome, describe};

/// `/rekey`
pub struct Rekey;

impl Command for Rekey {
    fn name(&self) -> &'static str {
        "rekey"
    }
    fn usage(&self) -> &'static str {
        "/rekey"
    }
    fn about(&self) -> &'static str {
        "renew your keys in the current room now"
    }
    fn long_help(&self) -> &'static str {
        "Asks for fresh keys for your place in the current room's group, as happens by itself \
         once a day (rekey_hours in the config): if your device or its memory was exposed, \
         what the room says from then on is safe again. As the room's leader you renew them \
         at once with a key change; otherwise the leader commits your renewal. The room \
         moves to a new epoch, so its /verify code changes for everyone alike; \"has new \
         keys\" appears when it is done. /details shows how old your keys are."
    }
    fn run(&self, ctx: &mut Context<'_>, args: &str) -> Outcome {
        if !args.trim().is_empty() {
            ctx.out.error("usage: /rekey");
            return Outcome::Continue;
        }
        let Some(room) = ctx.engine.current_room() else {
            ctx.out.error("not in a room");
            return Outcome::Continue;
        };
        match ctx.engine.rekey() {
            Ok(()) => ctx.out.notice(&format!(
                "asked for new keys in {}",
                crate::repl::sanitize::sanitize_inline(&room)
            )),
            Err(error) => ctx.out.error(&format!("could not renew keys: {}", describe(&error))),
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};

    #[test]
    fn asks_the_engine_in_a_room_only() {
        let engine = FakeEngine::in_room("lobby");
        let mut out = Recorder::default();
        out.run(&engine, "/rekey");
        assert_eq!(out.notices, ["asked for new keys in lobby"]);
        assert_eq!(engine.calls(), ["rekey"]);

        let engine = FakeEngine::default();
        let mut out = Recorder::default();
        out.run(&engine, "/rekey");
        assert_eq!(out.errors, ["not in a room"]);
        assert!(engine.calls().is_empty());
    }
}
