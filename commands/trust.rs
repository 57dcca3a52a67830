//! `/trust NICK`: record NICK's current key as verified, after comparing `/verify NICK`.

use super::{Command, Context, Engine, Outcome, describe};
use crate::identity::TrustMark;
use crate::repl::sanitize::sanitize_inline;

/// `/trust NICK`
pub struct Trust;

impl Command for Trust {
    fn name(&self) -> &'static str {
        "trust"
    }
    fn usage(&self) -> &'static str {
        "/trust NICK"
    }
    fn about(&self) -> &'static str {
        "mark NICK's key as verified (accepting it if it changed)"
    }
    fn long_help(&self) -> &'static str {
        "Records NICK's current key as verified in known_peers, for this relay: /who then \
         marks NICK as verified. Do this after comparing /verify NICK with them over another \
         channel. If NICK's key had changed (a warning said so), this accepts the new key, \
         and the warning stops."
    }
    fn complete(&self, engine: &dyn Engine, arg_prefix: &str) -> Vec<String> {
        super::verify::other_members(engine, arg_prefix)
    }
    fn run(&self, ctx: &mut Context<'_>, args: &str) -> Outcome {
        let [nick] = args.split_whitespace().collect::<Vec<_>>()[..] else {
            ctx.out.error("usage: /trust NICK");
            return Outcome::Continue;
        };
        match ctx.engine.trust(nick) {
            Ok(trusted) => {
                let shown = sanitize_inline(&trusted.nick);
                let fingerprint = &trusted.fingerprint;
                let text = match trusted.previous {
                    TrustMark::Verified => format!("{shown} ({fingerprint}) was already verified"),
                    TrustMark::Changed => {
                        format!("{shown}'s new key ({fingerprint}) is accepted and verified")
                    }
                    _ => format!("{shown} ({fingerprint}) is now verified"),
                };
                let fields = serde_json::json!({
                    "nick": trusted.nick,
                    "fingerprint": trusted.fingerprint,
                    "previous": trusted.previous.as_str(),
                });
                ctx.out.record("trusted", &text, &fields);
            }
            Err(error) => ctx.out.error(&format!("cannot trust {nick}: {}", describe(&error))),
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};
    use crate::identity::TrustMark;

    #[test]
    fn trusting_says_what_changed() {
        let mut out = Recorder::default();
        out.run(&FakeEngine::in_room("lobby"), "/trust bob");
        let changed = FakeEngine { mark: Some(TrustMark::Changed), ..FakeEngine::in_room("x") };
        out.run(&changed, "/trust bob");
        assert_eq!(
            out.notices,
            [
                "bob (ab12:cd34:ef56:7890) is now verified",
                "bob's new key (ab12:cd34:ef56:7890) is accepted and verified"
            ]
        );
        assert_eq!(changed.calls(), ["trust bob"]);
        assert_eq!(out.records[1].1["previous"], "changed");
    }

    #[test]
    fn a_nick_is_required() {
        let mut out = Recorder::default();
        out.run(&FakeEngine::in_room("lobby"), "/trust");
        assert_eq!(out.errors, ["usage: /trust NICK"]);
    }
}
