//! `/verify [NICK]`: a safety code to compare out of band: the room's (from the MLS epoch
//! authenticator) or the one we share with NICK (from both identity keys).

use super::{Command, Context, Engine, Outcome, describe, matching};
use crate::identity::{TrustMark, Verification};
use crate::repl::sanitize::sanitize_inline;

/// `/verify [NICK]`
pub struct Verify;

impl Command for Verify {
    fn name(&self) -> &'static str {
        "verify"
    }
    fn usage(&self) -> &'static str {
        "/verify [NICK]"
    }
    fn about(&self) -> &'static str {
        "show the room's safety code, or the one you share with NICK"
    }
    fn long_help(&self) -> &'static str {
        "Without NICK: the room's safety code for its current epoch, 30 digits that every \
         member of the room sees alike at the same moment and that nobody else, the relay \
         included, can compute. Read it out to the others over a call or in person: a \
         different code means you are not in the same group (a relay split the room). It \
         changes whenever someone joins or leaves. With NICK: the code you and NICK share, \
         made from both your identity keys; it stays the same across sessions, so compare it \
         once, face to face or by phone, then /trust NICK."
    }
    fn complete(&self, engine: &dyn Engine, arg_prefix: &str) -> Vec<String> {
        other_members(engine, arg_prefix)
    }
    fn run(&self, ctx: &mut Context<'_>, args: &str) -> Outcome {
        let nick = match args.split_whitespace().collect::<Vec<_>>()[..] {
            [] => None,
            [nick] => Some(nick),
            _ => {
                ctx.out.error("usage: /verify [NICK]");
                return Outcome::Continue;
            }
        };
        match ctx.engine.verify(nick) {
            Ok(Verification::Room { room, epoch, members, code }) => {
                let text = format!(
                    "safety code of {} at epoch {epoch} ({members} members): {code}\n\
                     every member sees this same code now; compare it with them by voice or \
                     in person. It changes whenever someone joins or leaves.",
                    sanitize_inline(&room)
                );
                let fields = serde_json::json!({
                    "room": room, "epoch": epoch, "members": members, "code": code,
                });
                ctx.out.record("room_code", &text, &fields);
            }
            Ok(Verification::Peer { nick, fingerprint, mark, code }) => {
                let shown = sanitize_inline(&nick);
                let mut text = format!(
                    "safety code with {shown} ({fingerprint}, {mark}): {code}\n\
                     compare it with {shown} once, face to face or by phone; it stays the same \
                     while you both keep your identities. If it matches: /trust {shown}"
                );
                if mark == TrustMark::Changed {
                    text.push_str(&format!(
                        "\n{shown}'s key is not the one you saw before: do compare before \
                         trusting it"
                    ));
                }
                let fields = serde_json::json!({
                    "nick": nick, "fingerprint": fingerprint, "trust": mark.as_str(), "code": code,
                });
                ctx.out.record("safety_code", &text, &fields);
            }
            Err(error) => ctx.out.error(&format!("cannot verify: {}", describe(&error))),
        }
        Outcome::Continue
    }
}

/// The other members' nicknames starting with `prefix`, for completing NICK.
pub(super) fn other_members(engine: &dyn Engine, prefix: &str) -> Vec<String> {
    let members = engine.members().map(|view| view.members).unwrap_or_default();
    let others = members.into_iter().filter(|member| !member.is_self);
    matching(others.map(|member| member.nick), prefix)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};
    use crate::identity::TrustMark;

    #[test]
    fn the_room_code_comes_with_its_epoch() {
        let mut out = Recorder::default();
        out.run(&FakeEngine::in_room("lobby"), "/verify");
        assert_eq!(
            out.notices[0],
            "safety code of lobby at epoch 4 (3 members): 12345 67890 12345 67890 12345 67890"
        );
        assert!(out.notices[1].contains("changes whenever someone joins or leaves"));
        assert_eq!(out.records[0].0, "room_code");
        assert_eq!(out.records[0].1["epoch"], 4);
    }

    #[test]
    fn a_peer_code_says_what_to_do_and_warns_of_a_changed_key() {
        let engine = FakeEngine { mark: Some(TrustMark::Changed), ..FakeEngine::in_room("lobby") };
        let mut out = Recorder::default();
        out.run(&engine, "/verify bob");
        assert_eq!(engine.calls(), ["verify Some(\"bob\")"]);
        assert!(out.notices[0].starts_with("safety code with bob (ab12:cd34:ef56:7890, changed)"));
        assert!(out.notices[1].ends_with("/trust bob"));
        assert!(out.notices[2].contains("not the one you saw before"));
        assert_eq!(out.records[0].1["trust"], "changed");
    }

    #[test]
    fn outside_a_room_and_with_two_names_it_says_so() {
        let mut out = Recorder::default();
        out.run(&FakeEngine::default(), "/verify");
        out.run(&FakeEngine::in_room("lobby"), "/verify bob carol");
        assert_eq!(out.errors.len(), 2, "{:?}", out.errors);
        assert!(out.errors[0].contains("not in a room"));
        assert_eq!(out.errors[1], "usage: /verify [NICK]");
    }
}
