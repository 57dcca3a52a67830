//! Rooms: who is in each, in order, who may come in, and what happens when someone goes.
//!
//! A room exists while it has a member. Its members are kept in the order they joined; the
//! first is its leader, who admits joiners and commits every change of the group
//! (`admission`, `commits`). Whoever asks to enter — by `Join`, or by `Reclaim` after the
//! relay lost its session — passes one check, [`State::check_entry`], so the two doors cannot
//! drift apart. Leaving is one path too, [`State::leave_room`], whether the member asked, was
//! taken out, or its session ended: the vote in flight goes on without it, a new leader's
//! joiners start over, and an empty room is forgotten.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use tokio::time::Instant;

use super::admission::{OwedWelcome, PendingJoiner, WrongPasswords};
use super::commits::{CommitInFlight, LateVoters};
use super::pledges::KeptPledges;
use super::reclaim::{Claim, LoggedCommit, Rival};
use super::{Request, SessionId, State};
use crate::mls_header::{self, CONTENT_TYPE_APPLICATION, CONTENT_TYPE_PROPOSAL};
use crate::proto::{
    self, ErrorReason, MAX_APPLICATION_LEN, MAX_ROOM_MEMBERS, RemovalReason, RoomSummary,
    ServerFrame, SignedVote,
};
use crate::relay::outbound::Outbound;

pub(super) struct RoomMember {
    pub(super) session: SessionId,
    pub(super) nick: String,
    /// The session's outgoing queue, held here too so that relaying to a room looks nothing
    /// up per recipient.
    pub(super) outbound: Outbound,
    /// The first epoch this member can decrypt. Application messages of older epochs are not
    /// forwarded to it: they were never meant for it and would only show as undecryptable.
    pub(super) join_epoch: u64,
}

#[derive(Default)]
pub(super) struct Room {
    /// In the order they joined; the first is the leader.
    pub(super) members: Vec<RoomMember>,
    /// Joiners waiting for the leader, in the order they asked.
    pub(super) pending: Vec<PendingJoiner>,
    /// Admission attempts whose password exchange finished and whose joiner no confirmed
    /// commit added yet, by nickname: what a commit may add (`admission`).
    pub(super) finished_attempts: Vec<(String, u64)>,
    /// Joiners the room confirmed whose Welcome their committer still owes.
    pub(super) owed_welcomes: Vec<OwedWelcome>,
    pub(super) wrong_passwords: WrongPasswords,
    /// The room's epoch: the one the next commit must have been created in.
    pub(super) epoch: u64,
    /// Learned from the first handshake or application message; messages of another group
    /// are refused, so a confused client cannot fork the room.
    pub(super) group_id: Option<Vec<u8>>,
    pub(super) in_flight: Option<CommitInFlight>,
    /// Members that left since the epoch last moved: the leader owes (or is voting on) their
    /// removal, so none of them is taken back "as it was" by a `Reclaim`.
    pub(super) left_this_epoch: HashSet<String>,
    /// Until when the room, re-formed by `Reclaim` after the relay lost it, may still go
    /// to a larger claim (`reclaim`).
    pub(super) reforming_until: Option<Instant>,
    /// Claims of another group or epoch waiting while the room re-forms.
    pub(super) rivals: Vec<Rival>,
    /// While it re-forms: what each returning member claimed, and the proofs (signed yes
    /// votes) they brought, by group and epoch (`reclaim`).
    pub(super) claims: HashMap<SessionId, Claim>,
    /// The commits returning members still keep their yes for (`pledges`).
    pub(super) kept_pledges: KeptPledges,
    /// The last commits it confirmed (bounded in count and bytes), by the epoch each ended,
    /// with their confirmations, for members who come back behind them (`reclaim`): a
    /// member forgotten while away, or back after a restart later than the others, catches
    /// up on them rather than losing the room. Each member checks every commit and its
    /// signed majority itself, so the relay can replay them but not forge them.
    pub(super) commit_log: Vec<LoggedCommit>,
    pub(super) proofs: HashMap<(Vec<u8>, u64), Vec<SignedVote>>,
    /// While it re-forms: the commit each proof confirms, as a member brought it, ready to
    /// log for members behind it once its group holds the room (`reclaim`).
    pub(super) brought_commits: HashMap<(Vec<u8>, u64), (Bytes, Bytes)>,
    /// Whether the room was founded afresh by a `Join` while it re-formed, and its epochs
    /// since were all confirmed here: until its epoch first moves its holders bring no
    /// history, so a claim of as many members as they are wins it; and a claim of its group
    /// behind its epoch is stale for certain.
    pub(super) founded_while_reforming: bool,
    /// Grace periods the re-forming window of a room held by one claim was extended.
    pub(super) lone_extensions: u8,
    /// The epoch of the last commit a majority confirmed before every voter was heard, and
    /// the voters not heard yet: one of them refusing it is taken out.
    pub(super) late_voters: Option<LateVoters>,
}

impl Room {
    pub(super) fn leader(&self) -> Option<&RoomMember> {
        self.members.first()
    }

    pub(super) fn is_leader(&self, session: SessionId) -> bool {
        self.leader().is_some_and(|leader| leader.session == session)
    }

    pub(super) fn member(&self, session: SessionId) -> Option<&RoomMember> {
        self.members.iter().find(|member| member.session == session)
    }

    pub(super) fn member_nicks(&self) -> Vec<String> {
        self.members.iter().map(|member| member.nick.clone()).collect()
    }

    /// Members and joiners together fill a room: a joiner admitted becomes a member.
    fn is_full(&self) -> bool {
        self.members.len() + self.pending.len() >= MAX_ROOM_MEMBERS
    }
}

/// Someone the entry check let through, as the room will know them.
pub(super) struct Entrant {
    pub(super) nick: String,
    pub(super) outbound: Outbound,
}

impl State {
    /// Whether a session may enter a room, by `Join` or by `Reclaim` (which then also
    /// checks the group it comes back to, in `reclaim`).
    pub(super) fn check_entry(
        &self,
        id: SessionId,
        room_name: &str,
    ) -> Result<Entrant, ErrorReason> {
        if !proto::is_valid_name(room_name) {
            return Err(ErrorReason::RoomNameInvalid);
        }
        let Some(session) = self.sessions.get(id) else { return Err(ErrorReason::NotRegistered) };
        if session.is_in(room_name) {
            return Err(ErrorReason::AlreadyInRoom);
        }
        if session.rooms.len() >= self.max_rooms_per_session {
            return Err(ErrorReason::TooManyRooms);
        }
        let nick = session.nick().unwrap_or_default().to_owned();
        if let Some(room) = self.rooms.get(room_name) {
            if room.wrong_passwords.bans(&nick) {
                return Err(ErrorReason::BannedFromRoom);
            }
            if room.is_full() {
                return Err(ErrorReason::RoomFull);
            }
        }
        Ok(Entrant { nick, outbound: session.outbound.clone() })
    }

    /// A `Join`: the room is founded by the session, or its leader gets the joiner's first
    /// password-exchange message at once (one round trip less than asking for it).
    pub(super) fn join(
        &mut self,
        request: Request,
        room_name: String,
        pake_message: Vec<u8>,
        now: Instant,
    ) {
        if proto::is_dm_room_name(&room_name) {
            // A direct message's room is entered only by `Reclaim` with its group id (which
            // its name is the hash of): no `Join`, so no founding it under a guessed name and
            // no admission into it.
            return self.error(request, ErrorReason::RoomNameInvalid);
        }
        match self.check_entry(request.session, &room_name) {
            Ok(entrant) => {
                if self.enter(request.session, room_name.clone(), entrant, now) {
                    self.admission_start(request, &room_name, pake_message, now);
                }
            }
            Err(reason) => self.error(request, reason),
        }
    }

    /// Creates the room with the session as its leader, or queues it for the leader's
    /// admission (then `true`). A room founded while its old members may still be coming back
    /// to it (`reclaim_window`) is re-forming: their claim may still win it.
    fn enter(&mut self, id: SessionId, room_name: String, entrant: Entrant, now: Instant) -> bool {
        let reply = match self.rooms.get_mut(&room_name) {
            Some(room) if !room.members.is_empty() => {
                self.next_attempt += 1;
                room.queue_joiner(&room_name, id, entrant, self.next_attempt)
            }
            _ => {
                let reforming_until = self.reclaim_window(&room_name, now);
                let Entrant { nick, outbound } = entrant;
                let member = RoomMember { session: id, nick, outbound, join_epoch: 0 };
                let room = self.rooms.entry(room_name.clone()).or_default();
                room.members.push(member);
                room.reforming_until = room.reforming_until.or(reforming_until);
                room.founded_while_reforming = room.reforming_until.is_some();
                ServerFrame::RoomCreated { room: room_name.clone() }
            }
        };
        let queued = matches!(reply, ServerFrame::JoinPending { .. });
        if let Some(session) = self.sessions.get_mut(id) {
            session.rooms.push(room_name);
        }
        self.send(id, &reply);
        queued
    }

    pub(super) fn list_rooms(&mut self, id: SessionId) {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .iter()
            // Direct messages are nobody else's business: never listed.
            .filter(|(name, _)| !proto::is_dm_room_name(name))
            .map(|(name, room)| RoomSummary {
                name: name.clone(),
                members: u32::try_from(room.members.len()).unwrap_or(u32::MAX),
            })
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        self.send(id, &ServerFrame::RoomList { rooms });
    }

    pub(super) fn list_members(&mut self, request: Request, room_name: &str) {
        let room = self.rooms.get(room_name).filter(|room| room.member(request.session).is_some());
        let Some(room) = room else { return self.error(request, ErrorReason::NotInRoom) };
        let members = room.member_nicks();
        let frame = ServerFrame::MemberList { room: room_name.to_owned(), members };
        self.send(request.session, &frame);
    }

    /// Relays a member's chat message to the rest of the room.
    pub(super) fn application(&mut self, request: Request, room_name: &str, message: Vec<u8>) {
        let id = request.session;
        if message.len() > MAX_APPLICATION_LEN {
            return self.error(request, ErrorReason::MessageTooLarge);
        }
        let Some(room) = self.rooms.get_mut(room_name) else {
            return self.error(request, ErrorReason::NotInRoom);
        };
        let Some(sender) = room.member(id) else {
            return self.error(request, ErrorReason::NotInRoom);
        };
        // Chat, votes and the like, and members' proposals to renew their own keys: never a
        // commit, which goes through the vote.
        let Some(header) = mls_header::peek_header(&message)
            .filter(|header| {
                header.content_type == CONTENT_TYPE_APPLICATION
                    || header.content_type == CONTENT_TYPE_PROPOSAL
            })
            .filter(|header| room.group_id.as_ref().is_none_or(|id| *id == header.group_id))
        else {
            return self.error(request, ErrorReason::NotMls);
        };
        let frame = Bytes::from(proto::encode(&ServerFrame::Application {
            room: room_name.to_owned(),
            from: sender.nick.clone(),
            message,
        }));
        // The hot path of the relay: nothing looked up per recipient, and one queue push per
        // recipient per burst of the sender's (`chat_batch`).
        room.group_id.get_or_insert(header.group_id);
        self.relay_chat(room_name, id, header.epoch, frame);
    }

    /// Takes a member out of a room on the relay's own decision, telling it why.
    pub(super) fn remove_from_room(
        &mut self,
        id: SessionId,
        room_name: &str,
        reason: RemovalReason,
        now: Instant,
    ) {
        if self.leave_room(id, room_name, now) {
            self.send(id, &ServerFrame::Removed { room: room_name.to_owned(), reason });
        }
    }

    /// Removes a session from a room (as member or pending joiner). Returns whether it was in.
    pub(super) fn leave_room(&mut self, id: SessionId, room_name: &str, now: Instant) -> bool {
        if self.drop_claim(id, room_name) {
            return true;
        }
        let Some(room) = self.rooms.get_mut(room_name) else { return false };
        let was_pending = room.pending.iter().any(|joiner| joiner.session == id);
        room.pending.retain(|joiner| joiner.session != id);
        let position = room.members.iter().position(|member| member.session == id);
        let was_leader = position == Some(0);
        let left = position.map(|position| room.members.remove(position));
        self.forget_room_of(id, room_name);
        self.leave_vote(room_name, id);
        let Some(room) = self.rooms.get_mut(room_name) else { return was_pending };
        room.kept_pledges.forget(id);
        if room.members.is_empty() {
            if self.hand_to_claimants(room_name, now) {
                return was_pending || left.is_some();
            }
            // The room is forgotten; anyone still waiting to join will find it empty and
            // create it afresh (re-forming still, if it was: its members may be on their way).
            self.restart_admissions(room_name);
            if let Some(until) = self.rooms.remove(room_name).and_then(|room| room.reforming_until)
            {
                self.reforming_names.insert(room_name.to_owned(), until);
            }
            return was_pending || left.is_some();
        }
        let Some(left) = left else {
            self.settle(room_name, now);
            return was_pending;
        };
        room.left_this_epoch.insert(left.nick.clone());
        let leader = room.members[0].nick.clone();
        let epoch = room.epoch;
        if was_leader {
            // Admissions in flight were with the old leader; the joiners start over.
            self.restart_admissions(room_name);
        }
        let notice =
            ServerFrame::MemberLeft { room: room_name.to_owned(), nick: left.nick, leader, epoch };
        self.send_to_room(room_name, None, &notice);
        self.settle(room_name, now);
        true
    }

    /// Takes a room off a session's list (it left, or was refused).
    pub(super) fn forget_room_of(&mut self, id: SessionId, room_name: &str) {
        if let Some(session) = self.sessions.get_mut(id) {
            session.rooms.retain(|room| room != room_name);
        }
    }
}
