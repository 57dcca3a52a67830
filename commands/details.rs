//! `/details`: how many members the current room has (as the original Python client had),
//! and the MLS ciphersuite its keys are agreed with.

use super::{Command, Context, Outcome, count, describe};
use crate::repl::sanitize::sanitize_inline;

/// `/details`
pub struct Details;

impl Command for Details {
    fn name(&self) -> &'static str {
        "details"
    }
    fn usage(&self) -> &'static str {
        "/details"
    }
    fn about(&self) -> &'static str {
        "show the current room, its member count and its ciphersuite"
    }
    fn long_help(&self) -> &'static str {
        "Shows the name of the current room, how many members it has (/who lists them) and \
         the MLS ciphersuite its keys are agreed with: a post-quantum room (created with \
         --pq) says so."
    }
    fn run(&self, ctx: &mut Context<'_>, _args: &str) -> Outcome {
        if ctx.engine.current_room().is_none() {
            ctx.out.error("not in a room");
            return Outcome::Continue;
        }
        match ctx.engine.members() {
            Ok(view) => {
                let members = count(view.members.len(), "member", "members");
                let room = sanitize_inline(&view.room);
                // The suite is ours to name (never a peer's text), so it needs no sanitizing.
                let suite = match view.suite {
                    Some(suite) if suite.is_post_quantum() => {
                        format!(", ciphersuite {} (post-quantum)", suite.name())
                    }
                    Some(suite) => format!(", ciphersuite {}", suite.name()),
                    None => String::new(),
                };
                ctx.out.notice(&format!("room {room}: {members}{suite}"));
            }
            Err(error) => ctx.out.error(&format!("could not get details: {}", describe(&error))),
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};

    #[test]
    fn counts_members() {
        let engine = FakeEngine {
            members: vec![("alice".into(), true, true), ("bob".into(), false, false)],
            ..FakeEngine::in_room("lobby")
        };
        let mut out = Recorder::default();
        out.run(&engine, "/details");
        assert_eq!(out.notices, ["room lobby: 2 members"]);
    }

    #[test]
    fn names_the_ciphersuite() {
        use crate::mls::RoomSuite;
        for (suite, shown) in [
            (RoomSuite::Classic, "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"),
            (
                RoomSuite::PostQuantum,
                "MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519 (post-quantum)",
            ),
        ] {
            let engine = FakeEngine {
                members: vec![("alice".into(), true, true)],
                suite: Some(suite),
                ..FakeEngine::in_room("lobby")
            };
            let mut out = Recorder::default();
            out.run(&engine, "/details");
            assert_eq!(out.notices, [format!("room lobby: 1 member, ciphersuite {shown}")]);
        }
    }
}
