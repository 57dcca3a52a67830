//! `/who`: the room's members as the group and the relay each see them.

use crate::client::identity;
use crate::client::room::Room;
use crate::client::{MemberView, Presence, RoomMembers};
use crate::identity::PeerTrust;

/// `/who`: every leaf of the MLS group (who actually holds the room's keys), with the
/// relay's leader marked, and whoever is only on one side of the relay's list and the group
/// marked as such, so a relay that adds or hides a member shows.
pub(super) fn views(room: &Room, me: &str, trust: &PeerTrust) -> RoomMembers {
    let group = room.group().map(|group| group.members()).unwrap_or_default();
    let leader = room.leader();
    let mut members: Vec<MemberView> = group
        .iter()
        .map(|member| MemberView {
            nick: member.nick.clone(),
            fingerprint: Some(member.fingerprint.clone()),
            is_leader: leader == Some(member.nick.as_str()),
            is_self: member.is_self,
            trust: identity::mark(trust, &group, &member.nick),
            same_identity_as: None,
            looks_like: if member.is_self {
                None
            } else {
                trust.looks_like(&member.nick, &member.identity_key)
            },
            keys_age: room.leaf_age(me, &member.nick),
            stale_keys: room.leaf_is_stale(me, &member.nick),
            presence: if room.away.contains(&member.nick) {
                Presence::Away
            } else if member.is_self || room.relay_members.contains(&member.nick) {
                Presence::InGroupAndConnected
            } else {
                Presence::InGroupNotConnected
            },
        })
        .collect();
    for (index, nick) in room.relay_members.iter().enumerate() {
        if !group.iter().any(|member| member.nick == *nick) {
            members.push(MemberView {
                nick: nick.clone(),
                fingerprint: None,
                is_leader: index == 0,
                is_self: nick == me,
                presence: Presence::ConnectedNotInGroup,
                trust: None,
                same_identity_as: None,
                looks_like: None,
                keys_age: None,
                stale_keys: false,
            });
        }
    }
    // The relay's order (the leader first, then by seniority) reads best; leaves only in the
    // group come last.
    let rank = |nick: &str| room.relay_members.iter().position(|member| member == nick);
    members.sort_by_key(|member| rank(&member.nick).unwrap_or(usize::MAX));
    // Clients of one identity: each names the first of them in that order.
    let identity_of =
        |nick: &str| group.iter().find(|member| member.nick == nick).map(|m| &m.identity_key);
    for index in 0..members.len() {
        let Some(identity) = identity_of(&members[index].nick) else { continue };
        members[index].same_identity_as = members[..index]
            .iter()
            .find(|earlier| identity_of(&earlier.nick) == Some(identity))
            .map(|earlier| earlier.nick.clone());
    }
    let suite = room.group().map(|group| group.suite());
    RoomMembers { room: room.name.clone(), members, suite }
}
