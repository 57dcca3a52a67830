//! `/who`: the members of the current room's MLS group — who actually holds its keys — the
//! leader marked, with key fingerprints, and anyone the relay lists differently marked.

use super::{Command, Context, Outcome, count, describe};
use crate::client::Presence;
use crate::identity::TrustMark;
use crate::repl::sanitize::sanitize_inline;

/// `/who`
pub struct Who;

impl Command for Who {
    fn name(&self) -> &'static str {
        "who"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["members"]
    }
    fn usage(&self) -> &'static str {
        "/who"
    }
    fn about(&self) -> &'static str {
        "list the members of the room with their key fingerprints"
    }
    fn long_help(&self) -> &'static str {
        "Lists who holds the current room's keys (the members of its MLS group). The leader \
         (who admits newcomers) is marked with *, you with (you). The fingerprint is a short \
         form of each member's signature key: compare it with them over another channel to be \
         sure nobody is impersonating them. After it: verified (you ran /trust), seen before (the key \
         you pinned for that nickname on this relay), new (first seen now), or CHANGED KEY — \
         not the key you saw before: maybe not the person you know. Someone in the group whom the relay no longer \
         lists is marked \"in the group, not connected\" (its removal is on its way); someone \
         the relay lists who holds no key is marked \"connected, not in the group\": they \
         cannot read the room. STALE KEYS marks a member whose keys have not been renewed for \
         several renewal periods (a day each by default): their renewals are not being \
         committed."
    }
    fn run(&self, ctx: &mut Context<'_>, _args: &str) -> Outcome {
        if ctx.engine.current_room().is_none() {
            ctx.out.error("not in a room");
            return Outcome::Continue;
        }
        match ctx.engine.members() {
            Ok(view) => {
                let members = count(view.members.len(), "member", "members");
                ctx.out.notice(&format!("{} — {members}:", sanitize_inline(&view.room)));
                let width = view.members.iter().map(|m| m.nick.chars().count()).max();
                for member in &view.members {
                    let nick = sanitize_inline(&member.nick);
                    let marker = if member.is_leader { '*' } else { ' ' };
                    let fingerprint = member
                        .fingerprint
                        .as_deref()
                        .map_or_else(|| "(no key yet)".to_owned(), sanitize_inline);
                    let you = if member.is_self { "  (you)" } else { "" };
                    let presence = match member.presence {
                        Presence::InGroupAndConnected => "",
                        Presence::InGroupNotConnected => "  (in the group, not connected)",
                        Presence::ConnectedNotInGroup => "  (connected, not in the group)",
                        Presence::Away => "  (away: reconnecting)",
                    };
                    let trust = match member.trust {
                        Some(TrustMark::Changed) => {
                            format!("  CHANGED KEY — compare /verify {nick}")
                        }
                        Some(mark) => format!("  {}", mark.as_str()),
                        None => String::new(),
                    };
                    let looks_like =
                        member.looks_like.as_deref().map_or_else(String::new, |pinned| {
                            let pinned = sanitize_inline(pinned);
                            format!("  LOOKS LIKE {pinned}, another key — compare /verify {nick}")
                        });
                    let same_identity =
                        member.same_identity_as.as_deref().map_or_else(String::new, |first| {
                            format!("  — same identity as {}", sanitize_inline(first))
                        });
                    let stale = if member.stale_keys {
                        "  STALE KEYS — not renewed for days"
                    } else {
                        ""
                    };
                    let width = width.unwrap_or(0);
                    ctx.out.notice(&format!(
                        "  {marker} {nick:<width$}  {fingerprint}{you}{trust}{looks_like}\
                         {same_identity}{presence}{stale}"
                    ));
                }
            }
            Err(error) => ctx.out.error(&format!("could not list members: {}", describe(&error))),
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeEngine, Recorder};
    use crate::client::Presence;

    #[test]
    fn marks_stale_keys() {
        let engine = FakeEngine {
            members: vec![("alice".into(), true, true), ("bob".into(), false, false)],
            stale: vec!["bob".into()],
            ..FakeEngine::in_room("lobby")
        };
        let mut out = Recorder::default();
        out.run(&engine, "/who");
        assert_eq!(
            out.notices,
            [
                "lobby — 2 members:",
                "  * alice  ab12:cd34:ef56:7890  (you)",
                "    bob    ab12:cd34:ef56:7890  STALE KEYS — not renewed for days",
            ]
        );
    }

    #[test]
    fn marks_the_leader_and_self() {
        let engine = FakeEngine {
            members: vec![("alice".into(), false, true), ("bob".into(), true, false)],
            ..FakeEngine::in_room("lobby")
        };
        let mut out = Recorder::default();
        out.run(&engine, "/who");
        assert_eq!(
            out.notices,
            [
                "lobby — 2 members:",
                "    alice  ab12:cd34:ef56:7890  (you)",
                "  * bob    ab12:cd34:ef56:7890",
            ]
        );
    }

    #[test]
    fn marks_whoever_the_relay_and_the_group_disagree_on() {
        let engine = FakeEngine {
            members: vec![
                ("alice".into(), true, true),
                ("ghost".into(), false, false),
                ("lurker".into(), false, false),
                ("roamer".into(), false, false),
            ],
            presence: vec![
                ("ghost".into(), Presence::InGroupNotConnected),
                ("lurker".into(), Presence::ConnectedNotInGroup),
                ("roamer".into(), Presence::Away),
            ],
            ..FakeEngine::in_room("lobby")
        };
        let mut out = Recorder::default();
        out.run(&engine, "/who");
        assert_eq!(
            out.notices[2],
            "    ghost   ab12:cd34:ef56:7890  (in the group, not connected)"
        );
        assert_eq!(
            out.notices[3],
            "    lurker  ab12:cd34:ef56:7890  (connected, not in the group)"
        );
        assert_eq!(out.notices[4], "    roamer  ab12:cd34:ef56:7890  (away: reconnecting)");
    }

    #[test]
    fn shows_how_far_each_key_is_trusted_and_shouts_a_changed_one() {
        let engine = FakeEngine {
            members: vec![
                ("alice".into(), true, true),
                ("bob".into(), false, false),
                ("carol".into(), false, false),
            ],
            member_trust: vec![
                ("bob".into(), crate::identity::TrustMark::Verified),
                ("carol".into(), crate::identity::TrustMark::Changed),
            ],
            ..FakeEngine::in_room("lobby")
        };
        let mut out = Recorder::default();
        out.run(&engine, "/who");
        assert_eq!(out.notices[2], "    bob    ab12:cd34:ef56:7890  verified");
        assert_eq!(
            out.notices[3],
            "    carol  ab12:cd34:ef56:7890  CHANGED KEY — compare /verify carol"
        );
    }

    #[test]
    fn says_which_clients_share_an_identity_and_which_names_look_like_a_pinned_one() {
        let engine = FakeEngine {
            members: vec![
                ("alice".into(), true, true),
                ("alice-2".into(), false, false),
                ("SOPHIE".into(), false, false),
            ],
            same_identity: vec![("alice-2".into(), "alice".into())],
            looks_like: vec![("SOPHIE".into(), "sophie".into())],
            ..FakeEngine::in_room("lobby")
        };
        let mut out = Recorder::default();
        out.run(&engine, "/who");
        assert_eq!(out.notices[2], "    alice-2  ab12:cd34:ef56:7890  — same identity as alice");
        assert_eq!(
            out.notices[3],
            "    SOPHIE   ab12:cd34:ef56:7890  LOOKS LIKE sophie, another key — compare /verify SOPHIE"
        );
    }

    #[test]
    fn outside_a_room_it_says_so() {
        let mut out = Recorder::default();
        out.run(&FakeEngine::default(), "/who");
        assert_eq!(out.errors, ["not in a room"]);
    }
}
