//! What a room's commit may change, checked by every honest member before it votes.
//!
//! MLS checks that a commit is well formed and signed by a member; it does not know what a
//! room allows. Here is what ours allows (ARCHITECTURE.md, "Trust model"): only the leader
//! the relay names commits (or carries, unchanged, a commit that adds nobody of another
//! member the relay lists, made while that member led); a commit adds at most one member, the joiner whose admission the
//! relay saw, under a valid nickname; it removes only members the relay says are gone; it
//! renews only the leaves of members who proposed it themselves, each keeping its credential
//! and key (`mls::renewal` checks each proposal as it arrives); it makes no proposal of any
//! other kind; the committer keeps its own credential and key; the
//! group never holds two look-alike nicknames, more than [`MAX_ROOM_MEMBERS`] members (fewer
//! in a post-quantum room: `RoomSuite::max_members`, carried in the summary), nor
//! more than [`MAX_CLIENTS_PER_IDENTITY`] clients of one identity. (That every added leaf is
//! certified by the identity it names, `RoomGroup::stage_commit` checks before this runs.)
//! A member refuses anything else, and the relay's vote takes the committer out.
//!
//! Pure: the caller passes the commit's summary and its own view of the room.

use crate::mls::{CommitSummary, MAX_CLIENTS_PER_IDENTITY, MemberInfo};
use crate::proto::{self, MAX_ROOM_MEMBERS};

/// The most proposals one commit may carry. A leader removes departed members and adds one
/// joiner; a commit with more is someone trying to make every member do a lot of work.
pub const MAX_PROPOSALS_PER_COMMIT: usize = 64;

/// What the receiving member knows when it judges a commit.
#[derive(Debug, Clone, Copy)]
pub struct RoomView<'a> {
    /// The room's members as the relay lists them, the leader first; `None` for a commit
    /// the room decided while we were away (a member catching up after `Reclaimed`): who
    /// led and who was present then are not the relay's list now, and the room's signed
    /// majority already judged them. What the commit itself may change is checked as ever.
    pub relay_members: Option<&'a [String]>,
    /// The member the relay says this commit admits, if any.
    pub joiner: Option<&'a str>,
    /// Who the relay says sent the commit to the vote: the leader, for a commit it carries
    /// for another member.
    pub sender: &'a str,
    /// The group's members before the commit.
    pub group_members: &'a [MemberInfo],
}

/// Why a commit is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error("{committer} is not the room's leader ({leader})")]
    NotFromLeader { committer: String, leader: String },
    #[error("it carries proposals this room never makes")]
    ForeignProposals,
    #[error("it has {0} changes, more than one key change may make")]
    TooManyProposals(usize),
    #[error("{0} changed their own credential or signature key")]
    IdentityChanged(String),
    #[error("it adds more than one member")]
    SeveralAdds,
    #[error("it adds {added}, whom the relay did not see being admitted")]
    AddWithoutAdmission { added: String },
    #[error("it adds someone under the invalid nickname {0:?}")]
    InvalidNick(String),
    #[error("it removes {0}, who is still in the room")]
    RemovesPresentMember(String),
    #[error("it removes you")]
    RemovesUs,
    #[error("it would leave two members who look alike: {0} and {1}")]
    LookAlikes(String, String),
    #[error(
        "it would grow the room past the most members its ciphersuite allows ({MAX_ROOM_MEMBERS}, \
         or {} post-quantum)",
        crate::mls::MAX_PQ_ROOM_MEMBERS
    )]
    TooLarge,
    #[error(
        "it would give {0}'s identity more than {MAX_CLIENTS_PER_IDENTITY} clients in the room"
    )]
    TooManyClients(String),
}

/// Checks a staged commit against the room's rules.
pub fn check(summary: &CommitSummary, view: RoomView<'_>) -> Result<(), PolicyViolation> {
    let leader = view.relay_members.map(|members| members.first().map(String::as_str));
    let committer = summary.committer.nick.as_str();
    // A commit of another member the relay lists, which the leader carries: its committer
    // made it while it led in this epoch, and its vote died with the relay's memory or was
    // cut short (`Room::carry_pledged`). The signed majority still decides it; it may add
    // nobody, since only its committer could send the joiner's Welcome.
    let carried = summary.added.is_empty()
        && leader == Some(Some(view.sender))
        && view.relay_members.is_some_and(|members| members.iter().any(|m| m == committer));
    if let Some(leader) = leader
        && Some(committer) != leader
        && !carried
    {
        return Err(PolicyViolation::NotFromLeader {
            committer: summary.committer.nick.clone(),
            leader: leader.unwrap_or_default().to_owned(),
        });
    }
    if summary.other_proposals > 0 {
        return Err(PolicyViolation::ForeignProposals);
    }
    let proposals = summary.added.len() + summary.removed.len() + summary.renewed.len();
    if proposals > MAX_PROPOSALS_PER_COMMIT {
        return Err(PolicyViolation::TooManyProposals(proposals));
    }
    if summary.committer_identity_changed {
        return Err(PolicyViolation::IdentityChanged(summary.committer.nick.clone()));
    }
    if summary.removes_us {
        return Err(PolicyViolation::RemovesUs);
    }
    match summary.added.as_slice() {
        [] => {}
        [added] => {
            if !proto::is_valid_nick(&added.nick) {
                return Err(PolicyViolation::InvalidNick(added.nick.clone()));
            }
            if view.joiner != Some(added.nick.as_str()) {
                return Err(PolicyViolation::AddWithoutAdmission { added: added.nick.clone() });
            }
        }
        _ => return Err(PolicyViolation::SeveralAdds),
    }
    let listed = |nick: &String| view.relay_members.is_some_and(|members| members.contains(nick));
    if let Some(present) = summary.removed.iter().find(|removed| listed(&removed.nick)) {
        return Err(PolicyViolation::RemovesPresentMember(present.nick.clone()));
    }
    // A post-quantum room's cap is lower than the relay's: its Welcomes must fit a frame.
    if summary.members_after > summary.max_members.min(MAX_ROOM_MEMBERS) {
        return Err(PolicyViolation::TooLarge);
    }
    let remaining = view.group_members.iter().filter(|member| !summary.removed.contains(member));
    let after: Vec<&MemberInfo> = remaining.chain(&summary.added).collect();
    for added in &summary.added {
        let clients =
            after.iter().filter(|member| member.identity_key == added.identity_key).count();
        if clients > MAX_CLIENTS_PER_IDENTITY {
            return Err(PolicyViolation::TooManyClients(added.nick.clone()));
        }
    }
    look_alikes(after)
}

/// Refuses a set of members in which two nicknames share a confusable skeleton (identical
/// nicknames included).
pub fn look_alikes<'a>(
    members: impl IntoIterator<Item = &'a MemberInfo>,
) -> Result<(), PolicyViolation> {
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for member in members {
        for skeleton in proto::nick_skeletons(&member.nick) {
            // One nickname's skeletons differ from each other, so a hit is another member.
            if let Some(earlier) = seen.insert(skeleton, &member.nick) {
                return Err(PolicyViolation::LookAlikes(earlier.to_owned(), member.nick.clone()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(nick: &str, key: u8) -> MemberInfo {
        MemberInfo {
            nick: nick.into(),
            fingerprint: format!("{key:02x}"),
            identity_key: vec![key; 32],
            device_key: vec![key; 32],
            is_self: false,
        }
    }

    fn summary() -> CommitSummary {
        CommitSummary {
            epoch: 3,
            committer: member("alice", 1),
            removed: Vec::new(),
            added: Vec::new(),
            renewed: Vec::new(),
            renews_committer: true,
            other_proposals: 0,
            committer_identity_changed: false,
            removes_us: false,
            members_after: 3,
            max_members: MAX_ROOM_MEMBERS,
            electorate: vec![0, 1, 2],
        }
    }

    struct Fixture {
        relay: Vec<String>,
        group: Vec<MemberInfo>,
    }

    fn fixture() -> Fixture {
        Fixture {
            relay: vec!["alice".into(), "bob".into(), "me".into()],
            group: vec![member("alice", 1), member("bob", 2), member("me", 3)],
        }
    }

    fn view<'a>(fixture: &'a Fixture, joiner: Option<&'a str>) -> RoomView<'a> {
        RoomView {
            relay_members: Some(&fixture.relay),
            joiner,
            group_members: &fixture.group,
            sender: "alice",
        }
    }

    #[test]
    fn the_leaders_plain_update_passes() {
        let fixture = fixture();
        assert_eq!(check(&summary(), view(&fixture, None)), Ok(()));
    }

    #[test]
    fn only_the_leader_commits() {
        let fixture = fixture();
        let commit = CommitSummary { committer: member("carol", 4), ..summary() };
        assert!(matches!(
            check(&commit, view(&fixture, None)),
            Err(PolicyViolation::NotFromLeader { .. })
        ));
    }

    #[test]
    fn the_leader_carries_a_present_members_commit_only_if_it_adds_nobody() {
        let fixture = fixture();
        let carried = CommitSummary { committer: member("bob", 2), ..summary() };
        assert_eq!(check(&carried, view(&fixture, None)), Ok(()));
        let sent_by_bob = RoomView { sender: "bob", ..view(&fixture, None) };
        assert!(matches!(check(&carried, sent_by_bob), Err(PolicyViolation::NotFromLeader { .. })));
        let adding = CommitSummary { added: vec![member("dave", 5)], ..carried };
        assert!(matches!(
            check(&adding, view(&fixture, Some("dave"))),
            Err(PolicyViolation::NotFromLeader { .. })
        ));
    }

    #[test]
    fn one_identity_has_at_most_eight_clients() {
        let mut fixture = fixture();
        for number in 1..MAX_CLIENTS_PER_IDENTITY {
            let mut client = member(&format!("alice-{number}"), 1);
            client.device_key = vec![100 + number as u8; 32];
            fixture.relay.push(client.nick.clone());
            fixture.group.push(client);
        }
        let mut ninth = member("alice-9", 1);
        ninth.device_key = vec![99; 32];
        let commit = CommitSummary { added: vec![ninth], ..summary() };
        assert_eq!(
            check(&commit, view(&fixture, Some("alice-9"))),
            Err(PolicyViolation::TooManyClients("alice-9".into()))
        );
        // Another identity's client still gets in.
        let carol = CommitSummary { added: vec![member("carol", 4)], ..summary() };
        assert_eq!(check(&carol, view(&fixture, Some("carol"))), Ok(()));
    }

    #[test]
    fn the_admitted_joiner_and_nobody_else_is_added() {
        let fixture = fixture();
        let commit = CommitSummary { added: vec![member("carol", 4)], ..summary() };
        assert_eq!(check(&commit, view(&fixture, Some("carol"))), Ok(()));
        assert_eq!(
            check(&commit, view(&fixture, None)),
            Err(PolicyViolation::AddWithoutAdmission { added: "carol".into() })
        );
        assert_eq!(
            check(&commit, view(&fixture, Some("dave"))),
            Err(PolicyViolation::AddWithoutAdmission { added: "carol".into() })
        );
        let ghosts =
            CommitSummary { added: vec![member("carol", 4), member("dave", 5)], ..summary() };
        assert_eq!(
            check(&ghosts, view(&fixture, Some("carol"))),
            Err(PolicyViolation::SeveralAdds)
        );
    }

    #[test]
    fn a_second_bob_or_a_look_alike_alice_is_refused() {
        let fixture = fixture();
        let second_bob = CommitSummary { added: vec![member("bob", 9)], ..summary() };
        assert!(matches!(
            check(&second_bob, view(&fixture, Some("bob"))),
            Err(PolicyViolation::LookAlikes(..))
        ));
        let cyrillic = "\u{0430}lice";
        let look_alike = CommitSummary { added: vec![member(cyrillic, 9)], ..summary() };
        // Mixed script: invalid before it is even a look-alike.
        assert!(check(&look_alike, view(&fixture, Some(cyrillic))).is_err());
        let whole_script = "\u{0430}\u{0435}"; // Cyrillic "ае", which reads as Latin "ae"
        let fixture = Fixture { group: vec![member("ae", 7), member("alice", 1)], ..fixture };
        let commit = CommitSummary { added: vec![member(whole_script, 9)], ..summary() };
        assert!(matches!(
            check(&commit, view(&fixture, Some(whole_script))),
            Err(PolicyViolation::LookAlikes(..))
        ));
    }

    #[test]
    fn only_departed_members_are_removed() {
        let mut fixture = fixture();
        let remove_bob = CommitSummary { removed: vec![member("bob", 2)], ..summary() };
        assert_eq!(
            check(&remove_bob, view(&fixture, None)),
            Err(PolicyViolation::RemovesPresentMember("bob".into()))
        );
        fixture.relay.retain(|nick| nick != "bob");
        assert_eq!(check(&remove_bob, view(&fixture, None)), Ok(()));
        let remove_us = CommitSummary { removes_us: true, ..summary() };
        assert_eq!(check(&remove_us, view(&fixture, None)), Err(PolicyViolation::RemovesUs));
    }

    #[test]
    fn a_rejoining_member_replaces_its_old_leaf() {
        let mut fixture = fixture();
        fixture.relay.retain(|nick| nick != "bob");
        let rejoin = CommitSummary {
            removed: vec![member("bob", 2)],
            added: vec![member("bob", 8)],
            ..summary()
        };
        assert_eq!(check(&rejoin, view(&fixture, Some("bob"))), Ok(()));
    }

    #[test]
    fn foreign_proposals_identity_changes_and_floods_are_refused() {
        let fixture = fixture();
        let foreign = CommitSummary { other_proposals: 1, ..summary() };
        assert_eq!(check(&foreign, view(&fixture, None)), Err(PolicyViolation::ForeignProposals));
        let changed = CommitSummary { committer_identity_changed: true, ..summary() };
        assert_eq!(
            check(&changed, view(&fixture, None)),
            Err(PolicyViolation::IdentityChanged("alice".into()))
        );
        let flood = CommitSummary {
            removed: (0..MAX_PROPOSALS_PER_COMMIT as u8 + 1)
                .map(|n| member(&format!("g{n}"), n))
                .collect(),
            ..summary()
        };
        assert!(matches!(
            check(&flood, view(&fixture, None)),
            Err(PolicyViolation::TooManyProposals(_))
        ));
        let huge = CommitSummary { members_after: MAX_ROOM_MEMBERS + 1, ..summary() };
        assert_eq!(check(&huge, view(&fixture, None)), Err(PolicyViolation::TooLarge));
        // A post-quantum room holds fewer.
        let cap = crate::mls::MAX_PQ_ROOM_MEMBERS;
        let at_cap = CommitSummary { members_after: cap, max_members: cap, ..summary() };
        assert_eq!(check(&at_cap, view(&fixture, None)), Ok(()));
        let past_cap = CommitSummary { members_after: cap + 1, max_members: cap, ..summary() };
        assert_eq!(check(&past_cap, view(&fixture, None)), Err(PolicyViolation::TooLarge));
    }
}
