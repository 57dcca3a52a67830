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
        "Shows the name of the current room, how many members it has (/who lists them), the \
         MLS ciphersuite its keys are agreed with (a post-quantum room, created with --pq, \
         says so), how long your keys in it have been unchanged, and whose keys are the \
         oldest (as far as this client saw: since you joined, for those already there). Keys \
         renew by themselves once a day, or now with /rekey."
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
                let ours = view.members.iter().find(|member| member.is_self);
                if let Some(age) = ours.and_then(|member| member.keys_age) {
                    ctx.out.notice(&format!("your keys: unchanged for {}", how_long(age)));
                }
                let oldest = view
                    .members
                    .iter()
                    .filter_map(|member| Some((member, member.keys_age?)))
                    .max_by_key(|(_, age)| *age);
                if let Some((member, age)) = oldest {
                    let stale = if member.stale_keys { " (stale)" } else { "" };
                    ctx.out.notice(&format!(
                        "oldest keys in the room: {}'s, unchanged for {}{stale}",
                        sanitize_inline(&member.nick),
                        how_long(age)
                    ));
                }
            }
            Err(error) => ctx.out.error(&format!("could not get details: {}", describe(&error))),
        }
        Outcome::Continue
    }
}

/// A duration as a person reads it: the largest unit that fits, rounded down.
fn how_long(age: std::time::Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        0..60 => count(seconds as usize, "second", "seconds"),
        60..3600 => count((seconds / 60) as usize, "minute", "minutes"),
        3600..86400 => count((seconds / 3600) as usize, "hour", "hours"),
        _ => count((seconds / 86400) as usize, "day", "days"),
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
    fn shows_our_keys_age_and_the_oldest() {
        use std::time::Duration;
        let engine = FakeEngine {
            members: vec![("alice".into(), true, true), ("bob".into(), false, false)],
            keys_ages: vec![
                ("alice".into(), Duration::from_secs(90)),
                ("bob".into(), Duration::from_secs(3 * 86400 + 5)),
            ],
            stale: vec!["bob".into()],
            ..FakeEngine::in_room("lobby")
        };
        let mut out = Recorder::default();
        out.run(&engine, "/details");
        assert_eq!(
            out.notices,
            [
                "room lobby: 2 members",
                "your keys: unchanged for 1 minute",
                "oldest keys in the room: bob's, unchanged for 3 days (stale)",
            ]
        );
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
