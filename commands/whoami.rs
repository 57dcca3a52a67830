//! `/whoami`: our nickname, our identity's fingerprint, and where the identity lives.

use super::{Command, Context, Outcome, describe};
use crate::repl::sanitize::sanitize_inline;

/// `/whoami`
pub struct WhoAmI;

impl Command for WhoAmI {
    fn name(&self) -> &'static str {
        "whoami"
    }
    fn usage(&self) -> &'static str {
        "/whoami"
    }
    fn about(&self) -> &'static str {
        "show your nickname and your identity's fingerprint"
    }
    fn long_help(&self) -> &'static str {
        "Shows your nickname, the fingerprint of your identity key (the one the others' /who \
         shows next to your name, the same in every session) and the files your identity and \
         the keys you have seen (known_peers) are kept in. Back the identity file up: without \
         it you get a new key, and everyone who knew you sees a warning."
    }
    fn run(&self, ctx: &mut Context<'_>, _args: &str) -> Outcome {
        match ctx.engine.whoami() {
            Ok(me) => {
                let path = |path: &Option<std::path::PathBuf>| {
                    path.as_ref().map(|path| path.display().to_string())
                };
                let (identity_file, known_peers_file) =
                    (path(&me.identity_file), path(&me.known_peers_file));
                let kept = match (&identity_file, &known_peers_file) {
                    (Some(identity), Some(known)) => {
                        format!("identity kept in {identity}; keys you have seen in {known}")
                    }
                    (Some(identity), None) => format!("identity kept in {identity}"),
                    _ => "identity kept in memory only: a new key next session".to_owned(),
                };
                let text = format!(
                    "you are {}, identity {}\n{kept}",
                    sanitize_inline(&me.nick),
                    me.fingerprint
                );
                let fields = serde_json::json!({
                    "nick": me.nick,
                    "fingerprint": me.fingerprint,
                    "identity_file": identity_file,
                    "known_peers_file": known_peers_file,
                });
                ctx.out.record("whoami", &text, &fields);
            }
            Err(error) => ctx.out.error(&format!("cannot tell: {}", describe(&error))),
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};

    #[test]
    fn shows_the_fingerprint_and_the_files() {
        let mut out = Recorder::default();
        out.run(&FakeEngine::default(), "/whoami");
        assert_eq!(out.notices[0], "you are alice, identity ab12:cd34:ef56:7890");
        assert!(out.notices[1].contains("/home/alice/.local/share/chatter/identity"));
        assert_eq!(out.records[0].0, "whoami");
        assert_eq!(out.records[0].1["fingerprint"], "ab12:cd34:ef56:7890");
    }
}
