//! Admission: joiners waiting for a room's leader, the password exchange the relay passes
//! between them, what a wrong password costs, and the leader that keeps a joiner waiting.
//!
//! The relay cannot test a room password: the joiner and the leader run SPAKE2 through it
//! (the `Join` carries the joiner's half, then `AdmissionReply`, `AdmissionFinish`), and only the leader can say the
//! password was wrong (`AdmissionRefused`). Each attempt has the relay's own number, so the
//! leader's answer to an earlier attempt reaches nobody. A nickname refused for a wrong
//! password [`WRONG_PASSWORDS_BEFORE_BAN`] times is banned from the room for the room's
//! life; its address is only reported to the abuse controls, since it may be a whole
//! household. A leader that owes a joiner an answer (its half of the exchange, or the commit
//! that adds it) for longer than the leader deadline loses the lead to the next member, and
//! the joiners start over with it. The joiner becomes a member when the commit that adds it
//! is confirmed (`commits`); its committer, having merged it, then sends the Welcome, which
//! the relay passes on only from that committer (a Welcome of a commit the room did not
//! confirm never exists). A Welcome not sent within the leader deadline sends the joiner
//! back to the start.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use super::rooms::{Entrant, Room, RoomMember};
use super::{AbuseSignal, Request, SessionId, State};
use crate::proto::{Addition, AdmissionRefusal, ErrorReason, ServerFrame, Welcome};
use crate::relay::outbound::Outbound;

/// Failed admissions for one nickname before it may not ask to join that room again, as in
/// the Python original. Counted per nickname only: an address may be a whole household or
/// campus behind one NAT, and the relay has only the leader's word for a wrong password.
pub const WRONG_PASSWORDS_BEFORE_BAN: u32 = 3;

/// How long a leader may owe a joiner an answer (its half of the password exchange, or the
/// commit that adds it) before the next member leads instead, by default.
pub const LEADER_DEADLINE: Duration = Duration::from_secs(8);

/// How many finished admission attempts whose joiner no commit added yet a room remembers.
const MAX_FINISHED_ATTEMPTS: usize = 64;

pub(super) struct PendingJoiner {
    pub(super) session: SessionId,
    pub(super) nick: String,
    /// The relay's number for this admission attempt: answers to any other are stale.
    pub(super) attempt: u64,
    outbound: Outbound,
    /// Since when the leader owes this joiner an answer, if it does.
    leader_owes_since: Option<Instant>,
}

/// A joiner the room confirmed, waiting for the Welcome its committer owes it.
pub(super) struct OwedWelcome {
    joiner: SessionId,
    nick: String,
    attempt: u64,
    committer: SessionId,
    /// Since when it is owed: past the leader deadline the joiner starts over.
    since: Instant,
}

/// The wrong passwords a room's leader reported, by nickname, and the nicknames banned.
#[derive(Default)]
pub(super) struct WrongPasswords {
    by_nick: HashMap<String, u32>,
    banned: HashSet<String>,
}

impl WrongPasswords {
    pub(super) fn bans(&self, nick: &str) -> bool {
        self.banned.contains(nick)
    }

    /// Counts one against `nick`, and says what to tell it: the last allowed one bans it.
    fn count(&mut self, nick: &str) -> AdmissionRefusal {
        let wrong = self.by_nick.entry(nick.to_owned()).or_default();
        *wrong += 1;
        if *wrong < WRONG_PASSWORDS_BEFORE_BAN {
            return AdmissionRefusal::WrongPassword;
        }
        self.banned.insert(nick.to_owned());
        AdmissionRefusal::Banned
    }
}

impl Room {
    /// Puts an entrant in line for the leader, as admission attempt `attempt`; the answer
    /// tells it who leads.
    pub(super) fn queue_joiner(
        &mut self,
        room_name: &str,
        id: SessionId,
        entrant: Entrant,
        attempt: u64,
    ) -> ServerFrame {
        let leader = self.leader().map(|leader| leader.nick.clone()).unwrap_or_default();
        let Entrant { nick, outbound } = entrant;
        let joiner =
            PendingJoiner { session: id, nick, attempt, outbound, leader_owes_since: None };
        self.pending.push(joiner);
        ServerFrame::JoinPending { room: room_name.to_owned(), leader }
    }

    /// Whether `nick` waits to join in attempt `attempt`.
    pub(super) fn is_waiting(&self, nick: &str, attempt: u64) -> bool {
        self.pending.iter().any(|joiner| joiner.nick == nick && joiner.attempt == attempt)
    }

    /// Whether a commit may add `nick` for admission attempt `attempt`: the joiner waits in
    /// that attempt, or finished its password exchange in it during this epoch and has gone
    /// since (members may already have accepted that commit; confirmed, it counts the joiner
    /// in and out at once, and the leader removes its leaf next).
    pub(super) fn may_add(&self, nick: &str, attempt: u64) -> bool {
        self.is_waiting(nick, attempt)
            || self.finished_attempts.iter().any(|(to, number)| to == nick && *number == attempt)
    }

    /// The leader got `nick`'s KeyPackage in attempt `attempt`: a commit may add it.
    fn attempt_finished(&mut self, nick: String, attempt: u64) {
        if self.finished_attempts.len() >= MAX_FINISHED_ATTEMPTS {
            self.finished_attempts.remove(0);
        }
        self.finished_attempts.push((nick, attempt));
    }

    /// Takes the waiting joiner of this name out of line, if this is its current attempt.
    fn take_pending(&mut self, nick: &str, attempt: u64) -> Option<PendingJoiner> {
        let position = self
            .pending
            .iter()
            .position(|joiner| joiner.nick == nick && joiner.attempt == attempt)?;
        Some(self.pending.remove(position))
    }

    /// The leader answered `nick` with a commit: from here the vote's deadline governs.
    pub(super) fn leader_answered(&mut self, nick: &str) {
        if let Some(joiner) = self.pending.iter_mut().find(|joiner| joiner.nick == nick) {
            joiner.leader_owes_since = None;
        }
    }

    /// Whether the leader kept some joiner waiting past `deadline`.
    fn leader_overdue(&self, now: Instant, deadline: Duration) -> bool {
        self.pending.iter().any(|joiner| joiner.leader_is_late(now, deadline))
    }
}

impl PendingJoiner {
    fn leader_is_late(&self, now: Instant, deadline: Duration) -> bool {
        self.leader_owes_since.is_some_and(|since| now >= since + deadline)
    }
}

impl State {
    /// The leader a waiting joiner's admission messages go to, now owing it an answer, and
    /// the joiner's attempt; a session that is not waiting to join the room is told so.
    fn leader_for_joiner(
        &mut self,
        request: Request,
        room_name: &str,
        now: Instant,
    ) -> Option<(SessionId, u64)> {
        let leader = self.rooms.get_mut(room_name).and_then(|room| {
            let leader = room.leader()?.session;
            let joiner =
                room.pending.iter_mut().find(|joiner| joiner.session == request.session)?;
            joiner.leader_owes_since = Some(now);
            Some((leader, joiner.attempt))
        });
        if leader.is_none() {
            self.error(request, ErrorReason::NotInRoom);
        }
        leader
    }

    /// Passes a joiner's first password-exchange message (from its `Join`) to the leader,
    /// who owes it an answer from now.
    pub(super) fn admission_start(
        &mut self,
        request: Request,
        room_name: &str,
        pake_message: Vec<u8>,
        now: Instant,
    ) {
        let Some((leader, attempt)) = self.leader_for_joiner(request, room_name, now) else {
            return;
        };
        let frame = ServerFrame::AdmissionRequest {
            room: room_name.to_owned(),
            joiner: self.sessions.nick_of(request.session),
            attempt,
            pake_message,
        };
        self.send(leader, &frame);
    }

    pub(super) fn admission_reply(
        &mut self,
        request: Request,
        room_name: &str,
        joiner: &str,
        attempt: u64,
        pake: Vec<u8>,
        suite: u16,
    ) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return self.error(request, ErrorReason::NotInRoom);
        };
        if !room.is_leader(request.session) {
            return self.error(request, ErrorReason::NotLeader);
        }
        let joiner = room
            .pending
            .iter_mut()
            .find(|pending| pending.nick == joiner && pending.attempt == attempt);
        let Some(joiner) = joiner else { return self.error(request, ErrorReason::UnknownJoiner) };
        // The leader answered; the joiner owes the next step.
        joiner.leader_owes_since = None;
        let joiner = joiner.session;
        let frame = ServerFrame::AdmissionReply {
            room: room_name.to_owned(),
            leader: self.sessions.nick_of(request.session),
            pake_message: pake,
            // Passed on unread: the relay knows no ciphersuites, and a number it changed
            // could only make this admission fail.
            suite,
        };
        self.send(joiner, &frame);
    }

    pub(super) fn admission_finish(
        &mut self,
        request: Request,
        room_name: &str,
        confirmation: Vec<u8>,
        sealed_key_package: Vec<u8>,
        now: Instant,
    ) {
        let Some((leader, attempt)) = self.leader_for_joiner(request, room_name, now) else {
            return;
        };
        let joiner = self.sessions.nick_of(request.session);
        if let Some(room) = self.rooms.get_mut(room_name) {
            room.attempt_finished(joiner.clone(), attempt);
        }
        let frame = ServerFrame::AdmissionFinish {
            room: room_name.to_owned(),
            joiner,
            attempt,
            confirmation,
            sealed_key_package,
        };
        self.send(leader, &frame);
    }

    pub(super) fn admission_refused(
        &mut self,
        request: Request,
        room_name: &str,
        joiner_nick: &str,
        attempt: u64,
        reason: AdmissionRefusal,
        signals: &mut Vec<AbuseSignal>,
    ) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return self.error(request, ErrorReason::NotInRoom);
        };
        if !room.is_leader(request.session) {
            return self.error(request, ErrorReason::NotLeader);
        }
        let Some(joiner) = room.take_pending(joiner_nick, attempt) else {
            return self.error(request, ErrorReason::UnknownJoiner);
        };
        let mut reason = reason;
        if reason == AdmissionRefusal::WrongPassword {
            reason = room.wrong_passwords.count(&joiner.nick);
            if let Some(session) = self.sessions.get(joiner.session) {
                signals.push(AbuseSignal::WrongRoomPassword { ip: session.ip });
            }
        }
        self.forget_room_of(joiner.session, room_name);
        let frame = ServerFrame::AdmissionRefused { room: room_name.into(), reason };
        self.send(joiner.session, &frame);
    }

    /// The commit that adds a joiner was confirmed at `epoch`: the joiner, if still waiting,
    /// is a member from here on (it hears the room's traffic, which its client keeps until
    /// the Welcome opens it), and `committer` owes it the Welcome.
    pub(super) fn admit_joiner(
        &mut self,
        room_name: &str,
        adds: Addition,
        committer: SessionId,
        epoch: u64,
        now: Instant,
    ) {
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        let Some(joiner) = room.take_pending(&adds.to, adds.attempt) else {
            // The joiner left while the room voted. Members count it in with the confirmation,
            // so they hear that it left, and the leader removes its leaf next.
            let leader = room.leader().map(|leader| leader.nick.clone()).unwrap_or_default();
            let notice = ServerFrame::MemberLeft {
                room: room_name.to_owned(),
                nick: adds.to,
                leader,
                epoch: room.epoch,
            };
            return self.send_to_room(room_name, None, &notice);
        };
        // A member by admission now, at the room's epoch: whatever it claimed before (a
        // reclaim of an older epoch, refused) is not its standing any more, or the next
        // catch-up would take it out as stale.
        room.claims.remove(&joiner.session);
        room.members.push(RoomMember {
            session: joiner.session,
            nick: joiner.nick.clone(),
            outbound: joiner.outbound,
            join_epoch: epoch,
        });
        room.owed_welcomes.push(OwedWelcome {
            joiner: joiner.session,
            nick: joiner.nick.clone(),
            attempt: adds.attempt,
            committer,
            since: now,
        });
        let notice =
            ServerFrame::MemberJoined { room: room_name.to_owned(), nick: joiner.nick, epoch };
        self.send_to_room(room_name, Some(joiner.session), &notice);
    }

    /// The committer's Welcome for the joiner its confirmed commit added: passed on with
    /// the room's members. Only the committer that owes it may send it, and only for the
    /// joiner and attempt its commit named; anything else is dropped (the joiner, if any,
    /// left, or the Welcome is not the room's to pass on).
    pub(super) fn welcome(&mut self, request: Request, room_name: &str, welcome: Welcome) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return self.error(request, ErrorReason::NotInRoom);
        };
        let owed = room.owed_welcomes.iter().position(|owed| {
            owed.committer == request.session
                && owed.nick == welcome.to
                && owed.attempt == welcome.attempt
        });
        let Some(position) = owed else {
            return self.error(request, ErrorReason::UnknownJoiner);
        };
        let owed = room.owed_welcomes.remove(position);
        if room.member(owed.joiner).is_none() {
            return;
        }
        let members = room.member_nicks();
        let frame =
            ServerFrame::Welcome { room: room_name.to_owned(), message: welcome.message, members };
        self.send(owed.joiner, &frame);
    }

    /// Joiners whose Welcome did not come within the leader deadline leave the room they were
    /// counted into (the leader removes their leaf, as for anyone who left) and start over.
    pub(super) fn drop_unwelcomed_joiners(&mut self, now: Instant) {
        let deadline = self.deadlines.leader;
        let overdue: Vec<(String, SessionId)> = self
            .rooms
            .iter_mut()
            .flat_map(|(name, room)| {
                let late: Vec<OwedWelcome> = room
                    .owed_welcomes
                    .extract_if(.., |owed| now >= owed.since + deadline)
                    .collect();
                late.into_iter().map(move |owed| (name.clone(), owed.joiner))
            })
            .collect();
        for (room_name, joiner) in overdue {
            if self.leave_room(joiner, &room_name, now) {
                let reason = AdmissionRefusal::LeaderChanged;
                let frame = ServerFrame::AdmissionRefused { room: room_name, reason };
                self.send(joiner, &frame);
            }
        }
    }

    /// Tells a waiting joiner to start over (with whoever leads now).
    pub(super) fn restart_admission(&mut self, room_name: &str, joiner_nick: &str) {
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        let Some(position) = room.pending.iter().position(|joiner| joiner.nick == joiner_nick)
        else {
            return;
        };
        let joiner = room.pending.remove(position);
        self.forget_room_of(joiner.session, room_name);
        let refusal = AdmissionRefusal::LeaderChanged;
        self.send(
            joiner.session,
            &ServerFrame::AdmissionRefused { room: room_name.into(), reason: refusal },
        );
    }

    /// Tells every waiting joiner to start over: their admissions were with a leader that is
    /// gone.
    pub(super) fn restart_admissions(&mut self, room_name: &str) {
        let Some(room) = self.rooms.get(room_name) else { return };
        let joiners: Vec<String> = room.pending.iter().map(|joiner| joiner.nick.clone()).collect();
        for joiner in joiners {
            self.restart_admission(room_name, &joiner);
        }
    }

    /// Hands the lead on in every room whose leader kept a joiner waiting too long.
    pub(super) fn replace_slow_leaders(&mut self, now: Instant) {
        let deadline = self.deadlines.leader;
        let slow: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, room)| room.leader_overdue(now, deadline))
            .map(|(name, _)| name.clone())
            .collect();
        for room_name in slow {
            self.replace_slow_leader(&room_name, now);
        }
    }

    /// The leader kept a joiner waiting too long: the next member leads. The old leader stays
    /// a member, last in line; joiners start over with the new one.
    fn replace_slow_leader(&mut self, room_name: &str, now: Instant) {
        let deadline = self.deadlines.leader;
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        if room.members.len() < 2 {
            // Nobody to hand over to: the joiners are told why they cannot get in.
            let waiting: Vec<SessionId> = room
                .pending
                .iter()
                .filter(|joiner| joiner.leader_is_late(now, deadline))
                .map(|joiner| joiner.session)
                .collect();
            room.pending.retain(|joiner| !waiting.contains(&joiner.session));
            for session in waiting {
                self.forget_room_of(session, room_name);
                let reason = AdmissionRefusal::LeaderUnresponsive;
                let frame = ServerFrame::AdmissionRefused { room: room_name.into(), reason };
                self.send(session, &frame);
            }
            return;
        }
        self.abort_in_flight(room_name);
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        room.members.rotate_left(1);
        let leader = room.members[0].nick.clone();
        self.restart_admissions(room_name);
        let notice = ServerFrame::LeaderChanged { room: room_name.to_owned(), leader };
        self.send_to_room(room_name, None, &notice);
    }
}
