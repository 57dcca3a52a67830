//! Taking a room back as it was: members whose session the relay lost (it restarted, or
//! forgot them after the grace period) come back with their MLS group and epoch.
//!
//! After a restart the relay knows nothing, so it believes no single claim. A room re-formed
//! by `Reclaim` stays *re-forming* for one grace period; meanwhile every claim of another
//! group or epoch waits beside it as a *rival*, keeping its group (`ReclaimPending`), and
//! the room goes to whichever claim more of its members return to. Claimants of the losing
//! side are told (`ReclaimRefused { Outnumbered }`) and keep their keys. So a lie costs only
//! the liar: an insider back first with a stale epoch, or an outsider with a made-up group,
//! holds the name only until two of the real members are back, and never makes anyone
//! drop a group or run a password exchange. A room founded by a `Join` while its members may
//! still be coming back (the relay is young, or the room emptied while it re-formed)
//! re-forms too, and a claim as large as its founders wins it, since they bring no history;
//! its founders then join the claim's group as any joiner. A newcomer's `Join` reaches the group that holds
//! the room, the one most members returned to. Once the window closes, a claim that does not
//! match the room is refused at once (`AnotherGroup`, `StaleEpoch`); a member the room took
//! out is refused (`TakenOut`). Nothing here ever starts an admission: joining again is the
//! user's own `/join`.

use tokio::time::Instant;

use super::rooms::{Entrant, Room, RoomMember};
use super::{Request, SessionId, State};
use crate::proto::{ReclaimRefusal, ServerFrame};

/// A claim on a re-forming room by members of another group, or of another epoch.
pub(super) struct Rival {
    group_id: Vec<u8>,
    epoch: u64,
    members: Vec<RoomMember>,
}

impl State {
    pub(super) fn reclaim(
        &mut self,
        request: Request,
        room_name: String,
        group_id: Vec<u8>,
        epoch: u64,
        now: Instant,
    ) {
        let id = request.session;
        let present = self.rooms.get(&room_name).filter(|room| {
            room.member(id).is_some()
                && room.group_id.as_deref() == Some(group_id.as_slice())
                && room.epoch == epoch
        });
        if let Some(room) = present {
            // Still a member, as it was (a relay in the middle told it otherwise): nothing
            // changes, and it hears so.
            let members = room.member_nicks();
            return self.send(id, &ServerFrame::Reclaimed { room: room_name, members });
        }
        let entrant = match self.check_entry(id, &room_name) {
            Ok(entrant) => entrant,
            Err(reason) => {
                return self.refuse_reclaim(id, &room_name, ReclaimRefusal::Unavailable(reason));
            }
        };
        let reforming_for = self.deadlines.grace;
        let Some(room) = self.rooms.get_mut(&room_name) else {
            let room = Room {
                group_id: Some(group_id),
                epoch,
                reforming_until: Some(now + reforming_for),
                ..Room::default()
            };
            self.rooms.insert(room_name.clone(), room);
            return self.take_back(id, &room_name, entrant, epoch);
        };
        let same_group = room.group_id.as_deref() == Some(group_id.as_slice());
        if same_group && room.epoch == epoch {
            if room.left_this_epoch.contains(&entrant.nick) || room.in_flight.is_some() {
                // The room took it out (its removal is owed or being voted on).
                return self.refuse_reclaim(id, &room_name, ReclaimRefusal::TakenOut);
            }
            return self.take_back(id, &room_name, entrant, epoch);
        }
        if room.reforming_until.is_none_or(|until| now >= until) {
            let reason =
                if same_group { ReclaimRefusal::StaleEpoch } else { ReclaimRefusal::AnotherGroup };
            return self.refuse_reclaim(id, &room_name, reason);
        }
        // Re-forming: the claim waits beside the room, and may win it.
        let Entrant { nick, outbound } = entrant;
        let member = RoomMember { session: id, nick, outbound, join_epoch: epoch };
        let position = room
            .rivals
            .iter()
            .position(|rival| rival.group_id == group_id && rival.epoch == epoch)
            .unwrap_or_else(|| {
                room.rivals.push(Rival { group_id, epoch, members: Vec::new() });
                room.rivals.len() - 1
            });
        room.rivals[position].members.push(member);
        if let Some(session) = self.sessions.get_mut(id) {
            session.rooms.push(room_name.clone());
        }
        self.settle_claims(&room_name);
    }

    /// Hands the room to the largest claim if it outnumbers the holders; tells every waiting
    /// claimant where things stand.
    pub(super) fn settle_claims(&mut self, room_name: &str) {
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        let Some(largest) = (0..room.rivals.len()).max_by_key(|&i| room.rivals[i].members.len())
        else {
            return;
        };
        let claim = room.rivals[largest].members.len();
        // Founders bring no history only until their room's epoch first moves.
        let fresh = room.founded_while_reforming && room.epoch == 0;
        let wins = claim > room.members.len() || (fresh && claim >= room.members.len());
        if wins && room.in_flight.is_none() {
            let winner = room.rivals.remove(largest);
            let displaced = std::mem::take(&mut room.members);
            let joiners: Vec<SessionId> = room.pending.drain(..).map(|j| j.session).collect();
            room.group_id = Some(winner.group_id);
            room.epoch = winner.epoch;
            room.founded_while_reforming = false;
            room.left_this_epoch.clear();
            room.members = winner.members;
            let members = room.member_nicks();
            let back: Vec<SessionId> = room.members.iter().map(|member| member.session).collect();
            for session in displaced.iter().map(|member| member.session).chain(joiners) {
                self.forget_room_of(session, room_name);
                self.refuse_reclaim(session, room_name, ReclaimRefusal::Outnumbered);
            }
            for session in back {
                let frame =
                    ServerFrame::Reclaimed { room: room_name.into(), members: members.clone() };
                self.send(session, &frame);
            }
        }
        let Some(room) = self.rooms.get(room_name) else { return };
        let holders = u32::try_from(room.members.len()).unwrap_or(u32::MAX);
        let waiting: Vec<(SessionId, u32)> = room
            .rivals
            .iter()
            .flat_map(|rival| {
                let ours = u32::try_from(rival.members.len()).unwrap_or(u32::MAX);
                rival.members.iter().map(move |member| (member.session, ours))
            })
            .collect();
        for (session, ours) in waiting {
            let frame = ServerFrame::ReclaimPending { room: room_name.into(), ours, holders };
            self.send(session, &frame);
        }
    }

    /// Drops a waiting claimant (it left, or its session ended). Returns whether it waited.
    pub(super) fn drop_claim(&mut self, id: SessionId, room_name: &str) -> bool {
        let Some(room) = self.rooms.get_mut(room_name) else { return false };
        let before: usize = room.rivals.iter().map(|rival| rival.members.len()).sum();
        for rival in &mut room.rivals {
            rival.members.retain(|member| member.session != id);
        }
        room.rivals.retain(|rival| !rival.members.is_empty());
        let after: usize = room.rivals.iter().map(|rival| rival.members.len()).sum();
        if before != after {
            self.forget_room_of(id, room_name);
        }
        before != after
    }

    /// The room lost its last holder while claims wait: the largest takes it.
    pub(super) fn hand_to_claimants(&mut self, room_name: &str) -> bool {
        let has_rivals = self.rooms.get(room_name).is_some_and(|room| !room.rivals.is_empty());
        if has_rivals {
            self.settle_claims(room_name);
        }
        has_rivals
    }

    /// Until when a room founded now by a `Join` stays re-forming, if it does: while the
    /// relay is young (its rooms' members may still come back to reclaim them), or when the
    /// room emptied while it re-formed. Otherwise a joiner whose admission a restart cut
    /// short would found the room anew and refuse its returning members (`AnotherGroup`).
    pub(super) fn reclaim_window(&self, room_name: &str, now: Instant) -> Option<Instant> {
        let grace = self.deadlines.grace;
        let young = self.first_frame_at.map(|first| first + grace).filter(|until| now < *until);
        let emptied = self.reforming_names.get(room_name).copied().filter(|until| now < *until);
        young.max(emptied)
    }

    /// Ends the re-forming windows that closed: claims still waiting lost.
    pub(super) fn close_reforming(&mut self, now: Instant) {
        self.reforming_names.retain(|_, until| now < *until);
        let closed: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, room)| room.reforming_until.is_some_and(|until| now >= until))
            .map(|(name, _)| name.clone())
            .collect();
        for room_name in closed {
            let Some(room) = self.rooms.get_mut(&room_name) else { continue };
            room.reforming_until = None;
            let losers: Vec<SessionId> = room
                .rivals
                .drain(..)
                .flat_map(|rival| rival.members.into_iter().map(|member| member.session))
                .collect();
            for session in losers {
                self.forget_room_of(session, &room_name);
                self.refuse_reclaim(session, &room_name, ReclaimRefusal::Outnumbered);
            }
        }
    }

    fn take_back(&mut self, id: SessionId, room_name: &str, entrant: Entrant, epoch: u64) {
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        let Entrant { nick, outbound } = entrant;
        room.members.push(RoomMember {
            session: id,
            nick: nick.clone(),
            outbound,
            join_epoch: epoch,
        });
        let members = room.member_nicks();
        if let Some(session) = self.sessions.get_mut(id) {
            session.rooms.push(room_name.to_owned());
        }
        self.send(id, &ServerFrame::Reclaimed { room: room_name.to_owned(), members });
        let notice = ServerFrame::MemberJoined { room: room_name.to_owned(), nick };
        self.send_to_room(room_name, Some(id), &notice);
        // A member back may outnumber nobody, but claimants waiting should know the count.
        self.settle_claims(room_name);
    }

    fn refuse_reclaim(&mut self, id: SessionId, room_name: &str, reason: ReclaimRefusal) {
        self.send(id, &ServerFrame::ReclaimRefused { room: room_name.to_owned(), reason });
    }
}
