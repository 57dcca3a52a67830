//! Everything the relay knows, in memory: sessions, nicknames and rooms.
//!
//! All of it sits behind one `std::sync::Mutex` in `Shared`. That is deliberate: no `.await`
//! happens while the lock is held (sending to a session is a non-blocking `try_send`), and
//! one lock gives one global order, so every member of a room sees its commits and messages
//! in the same order. Nothing here is ever written anywhere; a session's traces (nickname,
//! memberships, pending admissions) go when it disconnects and a room goes when its last
//! member leaves.
//!
//! The relay coordinates a room's key changes without reading them (see ARCHITECTURE.md,
//! "Trust model"): only the leader commits, one commit at a time; every other member
//! verifies the commit and votes; the relay applies it (`CommitConfirmed`) only when every
//! remaining member accepted it, and otherwise aborts it and takes the offender out of the
//! room (`vote`). Deadlines — for votes, and for a leader that owes a joiner an answer — are
//! checked by [`State::expire`], which the relay calls a few times a second.
//!
//! A session outlives its connection (see `replay`): when a registered client's link drops,
//! its session is *parked* — "away", keeping its nickname, rooms and a bounded queue of what
//! it misses — for the grace period, and a new connection presenting its resume token takes
//! it back. Away members do not vote (a join need not wait two minutes for them); they check
//! the commits they missed when they return, and leave and rejoin if one breaks the rules.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::outbound::{Inbound, Outbound};
use super::replay::ReplayBuffer;
use super::vote::{Tally, Verdict};
use crate::mls_header::{self, CONTENT_TYPE_APPLICATION, CONTENT_TYPE_COMMIT};
use crate::proto::{
    self, AdmissionRefusal, ClientFrame, CommitRejection, DisconnectReason, ErrorReason,
    MAX_APPLICATION_LEN, MAX_ROOM_MEMBERS, RemovalReason, ResumeToken, RoomSummary, ServerFrame,
    Welcome,
};

/// Failed admissions for one nickname before it may not ask to join that room again, as in
/// the Python original. Counted per nickname only: an address may be a whole household or
/// campus behind one NAT, and the relay has only the leader's word for a wrong password.
pub const WRONG_PASSWORDS_BEFORE_BAN: u32 = 3;

/// How long members have to vote on a commit, by default. A member that has not voted by then
/// is taken out of the room (it can join again), so a silent member cannot hold the room's
/// keys still.
pub const VOTE_DEADLINE: Duration = Duration::from_secs(5);

/// How long a leader may owe a joiner an answer (its half of the password exchange, or the
/// commit that adds it) before the next member leads instead, by default.
pub const LEADER_DEADLINE: Duration = Duration::from_secs(8);

/// How long a session whose connection dropped keeps its nickname, rooms and missed frames,
/// by default, waiting for its client to resume it.
pub const GRACE_PERIOD: Duration = Duration::from_secs(120);

/// How many away sessions the relay keeps, per address (an IPv6 network counted as one, as
/// the gate counts it) and in all. Past either, the one away longest is forgotten: a client
/// that connects, registers and vanishes over and over cannot fill the relay with sessions
/// kept for nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwayLimits {
    pub per_address: usize,
    pub total: usize,
    pub ipv6_prefix_len: u8,
}

impl Default for AwayLimits {
    fn default() -> Self {
        AwayLimits { per_address: 10, total: 10_000, ipv6_prefix_len: 64 }
    }
}

/// The deadlines of room traffic; [`RoomDeadlines::default`] gives the documented ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomDeadlines {
    pub vote: Duration,
    pub leader: Duration,
    /// How long an away session is kept for its client to resume it.
    pub grace: Duration,
}

impl Default for RoomDeadlines {
    fn default() -> Self {
        RoomDeadlines { vote: VOTE_DEADLINE, leader: LEADER_DEADLINE, grace: GRACE_PERIOD }
    }
}

/// Identifies one connection for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// What a connection task hears from the state: frames to send, or an order to close.
pub struct SessionChannel {
    pub outbound: Outbound,
    pub kick: oneshot::Sender<DisconnectReason>,
}

struct Session {
    nick: Option<String>,
    outbound: Outbound,
    kick: Option<oneshot::Sender<DisconnectReason>>,
    /// Rooms this session is a member of or waiting to join.
    rooms: Vec<String>,
    ip: IpAddr,
    /// Takes the session back over a new connection; issued at registration.
    token: Option<ResumeToken>,
    /// Set while no connection serves the session.
    away: Option<Away>,
    /// A new connection waiting for the old one to hand the session over, and the kick
    /// channel of the new one.
    handover: Option<(oneshot::Sender<Parked>, oneshot::Sender<DisconnectReason>)>,
}

/// A session without a connection, waiting for its client.
struct Away {
    since: Instant,
    parked: Option<Parked>,
    /// Frames were lost while away (its queue was full): it cannot be resumed.
    overflowed: bool,
}

/// What a connection task hands back when its link drops, for the next one to carry on
/// with: the queue of frames for the client, and the frames it has not acknowledged.
pub struct Parked {
    pub inbound: Inbound,
    pub replay: ReplayBuffer,
}

/// What became of a `Resume`.
pub enum Resumption {
    /// The session is this connection's now: carry on with its queue and replay buffer.
    Ready { id: SessionId, parked: Parked },
    /// Another connection still serves the session; it was told to hand it over through
    /// this channel.
    HandingOver { id: SessionId, parked: oneshot::Receiver<Parked> },
    /// No such session (the relay restarted, or it was removed).
    Unknown,
}

struct RoomMember {
    session: SessionId,
    nick: String,
    /// The session's outgoing queue, held here too so that relaying to a room looks nothing
    /// up per recipient.
    outbound: Outbound,
    /// The first epoch this member can decrypt. Application messages of older epochs are not
    /// forwarded to it: they were never meant for it and would only show as undecryptable.
    join_epoch: u64,
}

struct PendingJoiner {
    session: SessionId,
    nick: String,
    /// The relay's number for this admission attempt: answers to any other are stale.
    attempt: u64,
    outbound: Outbound,
    /// Since when the leader owes this joiner an answer, if it does.
    leader_owes_since: Option<Instant>,
}

/// The leader's commit while the members vote on it.
struct CommitInFlight {
    /// The epoch the commit ends.
    epoch: u64,
    committer: SessionId,
    welcome: Option<Welcome>,
    tally: Tally,
    deadline: Instant,
}

#[derive(Default)]
struct Room {
    /// In the order they joined; the first is the leader, who admits joiners and commits
    /// every change of the group.
    members: Vec<RoomMember>,
    pending: Vec<PendingJoiner>,
    /// The room's epoch: the one the next commit must have been created in.
    epoch: u64,
    /// Learned from the first handshake or application message; messages of another group
    /// are refused, so a confused client cannot fork the room.
    group_id: Option<Vec<u8>>,
    in_flight: Option<CommitInFlight>,
    wrong_passwords_by_nick: HashMap<String, u32>,
    banned_nicks: HashSet<String>,
    /// Members that left since the epoch last moved: the leader owes (or is voting on) their
    /// removal, so none of them is taken back "as it was" by a `Reclaim`.
    left_this_epoch: HashSet<String>,
}

impl Room {
    fn leader(&self) -> Option<&RoomMember> {
        self.members.first()
    }

    fn is_leader(&self, session: SessionId) -> bool {
        self.leader().is_some_and(|leader| leader.session == session)
    }

    fn member(&self, session: SessionId) -> Option<&RoomMember> {
        self.members.iter().find(|member| member.session == session)
    }

    fn pending_by_nick_mut(&mut self, nick: &str) -> Option<&mut PendingJoiner> {
        self.pending.iter_mut().find(|joiner| joiner.nick == nick)
    }

    /// The waiting joiner of this name, if this is its current attempt.
    fn pending_attempt(&mut self, nick: &str, attempt: u64) -> Option<&mut PendingJoiner> {
        self.pending.iter_mut().find(|joiner| joiner.nick == nick && joiner.attempt == attempt)
    }

    fn is_pending(&self, session: SessionId) -> bool {
        self.pending.iter().any(|joiner| joiner.session == session)
    }

    fn member_nicks(&self) -> Vec<String> {
        self.members.iter().map(|member| member.nick.clone()).collect()
    }
}

/// Counts of what the relay holds, for tests and operators. Never names anyone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub sessions: usize,
    pub nicknames: usize,
    pub rooms: usize,
    pub room_memberships: usize,
    pub pending_joins: usize,
    /// Sessions whose connection dropped, kept for their clients to resume.
    pub away_sessions: usize,
}

/// What the connection task should do after a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Close(DisconnectReason),
}

/// Something the abuse controls want to hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbuseSignal {
    WrongRoomPassword { ip: IpAddr },
}

/// The relay's whole state.
#[derive(Default)]
pub struct State {
    next_session: u64,
    next_attempt: u64,
    sessions: HashMap<SessionId, Session>,
    /// Registered nicknames by their confusable skeleton (`proto::nick_skeleton`), so that a
    /// look-alike of a connected nickname is "taken".
    nicks: HashMap<String, SessionId>,
    rooms: HashMap<String, Room>,
    max_rooms_per_session: usize,
    deadlines: RoomDeadlines,
    /// Sessions by resume token.
    tokens: HashMap<ResumeToken, SessionId>,
    /// Random, per run of the relay: clients tell a restart from a forgotten session by it.
    relay_boot: u64,
    away_limits: AwayLimits,
    /// The session number of the client frame being handled, which its errors name.
    request: u64,
}

impl State {
    pub fn new(max_rooms_per_session: usize, deadlines: RoomDeadlines) -> Self {
        let relay_boot = rand::random();
        State { max_rooms_per_session, deadlines, relay_boot, ..State::default() }
    }

    /// The same state, keeping away sessions within `limits`.
    pub fn with_away_limits(mut self, limits: AwayLimits) -> Self {
        self.away_limits = limits;
        self
    }

    /// This run of the relay's number.
    pub fn relay_boot(&self) -> u64 {
        self.relay_boot
    }

    pub fn stats(&self) -> RelayStats {
        RelayStats {
            sessions: self.sessions.len(),
            nicknames: self.nicks.len(),
            rooms: self.rooms.len(),
            room_memberships: self.rooms.values().map(|room| room.members.len()).sum(),
            pending_joins: self.rooms.values().map(|room| room.pending.len()).sum(),
            away_sessions: self.sessions.values().filter(|session| session.away.is_some()).count(),
        }
    }

    /// Registers an authenticated connection.
    pub fn add_session(&mut self, ip: IpAddr, channel: SessionChannel) -> SessionId {
        self.next_session += 1;
        let id = SessionId(self.next_session);
        let session = Session {
            nick: None,
            outbound: channel.outbound,
            kick: Some(channel.kick),
            rooms: Vec::new(),
            ip,
            token: None,
            away: None,
            handover: None,
        };
        self.sessions.insert(id, session);
        id
    }

    /// Erases every trace of a session: nickname, memberships, pending joins. The remaining
    /// members of its rooms are told, with the leader that must commit the removal.
    pub fn remove_session(&mut self, id: SessionId, now: Instant) {
        let Some(session) = self.sessions.get(&id) else { return };
        for room in session.rooms.clone() {
            self.leave_room(id, &room, now);
        }
        if let Some(session) = self.sessions.remove(&id) {
            if let Some(nick) = session.nick {
                self.nicks.remove(&proto::nick_skeleton(&nick));
            }
            if let Some(token) = session.token {
                self.tokens.remove(&token);
            }
        }
    }

    /// The connection of a session dropped (not by the client's choice): a registered
    /// session is kept, away, for the grace period; one a new connection is waiting for is
    /// handed over at once; an unregistered one is simply removed.
    pub fn park(&mut self, id: SessionId, parked: Parked, now: Instant) {
        let Some(session) = self.sessions.get_mut(&id) else { return };
        if let Some((handover, kick)) = session.handover.take() {
            session.kick = Some(kick);
            if let Err(parked) = handover.send(parked) {
                // The new connection gave up waiting: the session waits for the next one.
                self.set_away(id, parked, now);
            }
            return;
        }
        if session.nick.is_none() {
            return self.remove_session(id, now);
        }
        self.set_away(id, parked, now);
    }

    fn set_away(&mut self, id: SessionId, parked: Parked, now: Instant) {
        let Some(session) = self.sessions.get_mut(&id) else { return };
        session.kick = None;
        session.away = Some(Away { since: now, parked: Some(parked), overflowed: false });
        let address = session.ip;
        self.announce_presence(id, true, now);
        self.enforce_away_limits(address, now);
    }

    /// Forgets the sessions away longest past the limits, from `address` and in all.
    fn enforce_away_limits(&mut self, address: IpAddr, now: Instant) {
        let limits = self.away_limits;
        let key = |ip: IpAddr| super::gate::address_key(ip, limits.ipv6_prefix_len);
        let mut away: Vec<(Instant, SessionId, IpAddr)> = self
            .sessions
            .iter()
            .filter_map(|(id, session)| Some((session.away.as_ref()?.since, *id, key(session.ip))))
            .collect();
        away.sort();
        let from_address = away.iter().filter(|(_, _, ip)| *ip == key(address)).count();
        let mut excess_here = from_address.saturating_sub(limits.per_address);
        let mut excess_total = away.len().saturating_sub(limits.total);
        for (_, id, ip) in away {
            let here = ip == key(address) && excess_here > 0;
            if !here && excess_total == 0 {
                continue;
            }
            if here {
                excess_here -= 1;
            }
            excess_total = excess_total.saturating_sub(1);
            self.remove_session(id, now);
            if excess_here == 0 && excess_total == 0 {
                break;
            }
        }
    }

    /// Tells the rooms a session is a member of that it is away or back. An away member's
    /// vote on the commit in flight is not waited for.
    fn announce_presence(&mut self, id: SessionId, away: bool, now: Instant) {
        let nick = self.nick_of(id);
        let rooms = self.sessions.get(&id).map(|session| session.rooms.clone()).unwrap_or_default();
        for room_name in rooms {
            let Some(room) = self.rooms.get_mut(&room_name) else { continue };
            if room.member(id).is_none() {
                continue;
            }
            if away && let Some(in_flight) = room.in_flight.as_mut() {
                in_flight.tally.forget(id);
            }
            let notice =
                ServerFrame::MemberAway { room: room_name.clone(), nick: nick.clone(), away };
            self.send_to_room(&room_name, Some(id), &notice);
            self.settle(&room_name, now);
        }
    }

    /// A new connection presents a resume token. `kick` is the new connection's close
    /// channel.
    pub fn resume(
        &mut self,
        token: &ResumeToken,
        kick: oneshot::Sender<DisconnectReason>,
        now: Instant,
    ) -> Resumption {
        let Some(&id) = self.tokens.get(token) else { return Resumption::Unknown };
        let Some(session) = self.sessions.get_mut(&id) else { return Resumption::Unknown };
        if session.away.as_ref().is_some_and(|away| away.overflowed) {
            // It missed frames nobody kept: only a fresh start is honest.
            self.remove_session(id, now);
            return Resumption::Unknown;
        }
        match session.away.take() {
            Some(Away { parked: Some(parked), .. }) => {
                session.kick = Some(kick);
                self.announce_presence(id, false, now);
                Resumption::Ready { id, parked }
            }
            _ => {
                // Still served by an older connection (its link may be dead without either
                // end knowing yet): that one hands over, and goes.
                let (handover, parked) = oneshot::channel();
                session.handover = Some((handover, kick));
                if let Some(old) = session.kick.take() {
                    let _ = old.send(DisconnectReason::ResumedElsewhere);
                }
                Resumption::HandingOver { id, parked }
            }
        }
    }

    /// A resuming connection adopts session `id`: its placeholder session `fresh` goes, and
    /// it gets the queue sender of the session it took back.
    pub fn adopt(&mut self, fresh: SessionId, id: SessionId, now: Instant) -> Option<Outbound> {
        self.remove_session(fresh, now);
        self.sessions.get(&id).map(|session| session.outbound.clone())
    }

    /// Handles one decoded frame from a session; `request` is its session number (the count
    /// of the session's frames handled, this one included), for any error it causes.
    pub fn handle(
        &mut self,
        id: SessionId,
        frame: ClientFrame,
        request: u64,
        now: Instant,
        signals: &mut Vec<AbuseSignal>,
    ) -> Control {
        self.request = request;
        let Some(session) = self.sessions.get(&id) else {
            return Control::Close(DisconnectReason::ProtocolViolation);
        };
        let registered = session.nick.is_some();
        match frame {
            ClientFrame::Ping => self.send(id, &ServerFrame::Pong),
            ClientFrame::Quit => return Control::Close(DisconnectReason::Quit),
            ClientFrame::Register { nick } => self.register(id, nick),
            // The connection task handles these; here they are out of place.
            ClientFrame::Resume { .. } => self.error(id, ErrorReason::ResumeNotFirst),
            ClientFrame::Ack { .. } => {}
            _ if !registered => self.error(id, ErrorReason::NotRegistered),
            ClientFrame::Reclaim { room, group_id, epoch } => {
                self.reclaim(id, room, group_id, epoch)
            }
            ClientFrame::ListRooms => self.list_rooms(id),
            ClientFrame::ListMembers { room } => self.list_members(id, &room),
            ClientFrame::Join { room } => self.join(id, room),
            ClientFrame::AdmissionStart { room, pake_message } => {
                self.admission_start(id, &room, pake_message, now)
            }
            ClientFrame::AdmissionReply { room, joiner, attempt, pake_message } => {
                self.admission_reply(id, &room, &joiner, attempt, pake_message)
            }
            ClientFrame::AdmissionFinish { room, confirmation, sealed_key_package } => {
                self.admission_finish(id, &room, confirmation, sealed_key_package, now)
            }
            ClientFrame::AdmissionRefused { room, joiner, attempt, reason } => {
                self.admission_refused(id, &room, &joiner, attempt, reason, signals)
            }
            ClientFrame::Commit { room, commit, welcome } => {
                self.commit(id, &room, commit, welcome, now)
            }
            ClientFrame::CommitVote { room, epoch, accept } => {
                self.vote(id, &room, epoch, accept, now)
            }
            ClientFrame::Application { room, message } => self.application(id, &room, message),
            ClientFrame::Leave { room } => {
                // Answered even when the session was not in the room (the relay may have
                // taken it out first): `Left` marks, in the session's stream of frames, the
                // end of everything about its earlier membership.
                self.leave_room(id, &room, now);
                self.send(id, &ServerFrame::Left { room });
            }
        }
        Control::Continue
    }

    /// Enforces the deadlines: members that did not vote in time are taken out of the room
    /// (and the commit settled without them); a leader that owes a joiner an answer for too
    /// long hands the lead to the next member.
    pub fn expire(&mut self, now: Instant) {
        let gone: Vec<SessionId> =
            self.sessions
                .iter()
                .filter(|(_, session)| {
                    session.away.as_ref().is_some_and(|away| {
                        away.overflowed || now >= away.since + self.deadlines.grace
                    })
                })
                .map(|(id, _)| *id)
                .collect();
        for id in gone {
            self.remove_session(id, now);
        }
        let late_votes: Vec<(String, Vec<SessionId>)> = self
            .rooms
            .iter()
            .filter_map(|(name, room)| {
                let in_flight = room.in_flight.as_ref()?;
                (now >= in_flight.deadline).then(|| (name.clone(), in_flight.tally.waiting()))
            })
            .collect();
        for (room_name, silent) in late_votes {
            for session in silent {
                self.remove_from_room(session, &room_name, RemovalReason::NoVote, now);
            }
            self.settle(&room_name, now);
        }
        let slow_leaders: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, room)| {
                room.pending.iter().any(|joiner| {
                    joiner
                        .leader_owes_since
                        .is_some_and(|since| now >= since + self.deadlines.leader)
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        for room_name in slow_leaders {
            self.replace_slow_leader(&room_name, now);
        }
    }

    fn nick_of(&self, id: SessionId) -> String {
        self.sessions.get(&id).and_then(|session| session.nick.clone()).unwrap_or_default()
    }

    fn register(&mut self, id: SessionId, nick: String) {
        if !proto::is_valid_nick(&nick) {
            return self.error(id, ErrorReason::NickInvalid);
        }
        if self.sessions.get(&id).is_some_and(|session| session.nick.is_some()) {
            return self.error(id, ErrorReason::AlreadyRegistered);
        }
        let skeleton = proto::nick_skeleton(&nick);
        if self.nicks.contains_key(&skeleton) {
            return self.error(id, ErrorReason::NickTaken);
        }
        self.nicks.insert(skeleton, id);
        let token = ResumeToken(rand::random());
        self.tokens.insert(token.clone(), id);
        if let Some(session) = self.sessions.get_mut(&id) {
            session.nick = Some(nick.clone());
            session.token = Some(token.clone());
        }
        self.send(id, &ServerFrame::Registered { nick, token, relay_boot: self.relay_boot });
    }

    fn list_rooms(&mut self, id: SessionId) {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .iter()
            .map(|(name, room)| RoomSummary {
                name: name.clone(),
                members: u32::try_from(room.members.len()).unwrap_or(u32::MAX),
            })
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        self.send(id, &ServerFrame::RoomList { rooms });
    }

    fn list_members(&mut self, id: SessionId, room_name: &str) {
        let Some(room) = self.rooms.get(room_name).filter(|room| room.member(id).is_some()) else {
            return self.error(id, ErrorReason::NotInRoom);
        };
        let members = room.member_nicks();
        self.send(id, &ServerFrame::MemberList { room: room_name.to_owned(), members });
    }

    fn join(&mut self, id: SessionId, room_name: String) {
        if !proto::is_valid_name(&room_name) {
            return self.error(id, ErrorReason::RoomNameInvalid);
        }
        let Some(session) = self.sessions.get(&id) else { return };
        let nick = session.nick.clone().unwrap_or_default();
        let outbound = session.outbound.clone();
        if session.rooms.contains(&room_name) {
            return self.error(id, ErrorReason::AlreadyInRoom);
        }
        if session.rooms.len() >= self.max_rooms_per_session {
            return self.error(id, ErrorReason::TooManyRooms);
        }
        if let Some(room) = self.rooms.get(&room_name) {
            if room.banned_nicks.contains(&nick) {
                return self.error(id, ErrorReason::BannedFromRoom);
            }
            if room.members.len() + room.pending.len() >= MAX_ROOM_MEMBERS {
                return self.error(id, ErrorReason::RoomFull);
            }
        }
        let room = self.rooms.entry(room_name.clone()).or_default();
        let reply = if room.members.is_empty() {
            room.members.push(RoomMember { session: id, nick, outbound, join_epoch: 0 });
            ServerFrame::RoomCreated { room: room_name.clone() }
        } else {
            let leader = room.members[0].nick.clone();
            self.next_attempt += 1;
            let attempt = self.next_attempt;
            let Some(room) = self.rooms.get_mut(&room_name) else { return };
            room.pending.push(PendingJoiner {
                session: id,
                nick,
                attempt,
                outbound,
                leader_owes_since: None,
            });
            ServerFrame::JoinPending { room: room_name.clone(), leader }
        };
        if let Some(session) = self.sessions.get_mut(&id) {
            session.rooms.push(room_name);
        }
        self.send(id, &reply);
    }

    /// A member of a room's group comes back to it (after a relay restart, or after the
    /// relay forgot its session): where the room is empty or holds that group at that epoch,
    /// it is a member again at once; where the room holds another group, it is told so;
    /// otherwise it is admitted like any joiner, and its group repaired by a commit.
    fn reclaim(&mut self, id: SessionId, room_name: String, group_id: Vec<u8>, epoch: u64) {
        if !proto::is_valid_name(&room_name) {
            return self.error(id, ErrorReason::RoomNameInvalid);
        }
        let Some(session) = self.sessions.get(&id) else { return };
        if session.rooms.contains(&room_name) {
            return self.error(id, ErrorReason::AlreadyInRoom);
        }
        if session.rooms.len() >= self.max_rooms_per_session {
            return self.error(id, ErrorReason::TooManyRooms);
        }
        let nick = session.nick.clone().unwrap_or_default();
        let outbound = session.outbound.clone();
        let room = self.rooms.get(&room_name);
        // A room whose group the relay has not learnt yet was created afresh since the relay
        // started (a member coming back reclaims, it does not create): another group too.
        if room.is_some_and(|room| room.group_id.as_ref() != Some(&group_id)) {
            return self.error(id, ErrorReason::RoomIsAnotherGroup);
        }
        let as_it_was = room.is_none_or(|room| {
            room.group_id.as_ref() == Some(&group_id)
                && room.epoch == epoch
                && room.in_flight.is_none()
                && !room.left_this_epoch.contains(&nick)
                && !room.banned_nicks.contains(&nick)
                && room.members.len() + room.pending.len() < MAX_ROOM_MEMBERS
        });
        if !as_it_was {
            return self.join(id, room_name);
        }
        let room = self.rooms.entry(room_name.clone()).or_insert_with(|| Room {
            group_id: Some(group_id),
            epoch,
            ..Room::default()
        });
        room.members.push(RoomMember {
            session: id,
            nick: nick.clone(),
            outbound,
            join_epoch: epoch,
        });
        let members = room.member_nicks();
        if let Some(session) = self.sessions.get_mut(&id) {
            session.rooms.push(room_name.clone());
        }
        self.send(id, &ServerFrame::Reclaimed { room: room_name.clone(), members });
        let notice = ServerFrame::MemberJoined { room: room_name.clone(), nick };
        self.send_to_room(&room_name, Some(id), &notice);
    }

    /// The leader a waiting joiner's admission messages go to, now owing it an answer, and
    /// the joiner's attempt; a session that is not waiting to join the room is told so.
    fn leader_for_joiner(
        &mut self,
        id: SessionId,
        room_name: &str,
        now: Instant,
    ) -> Option<(SessionId, u64)> {
        let leader = self.rooms.get_mut(room_name).and_then(|room| {
            let leader = room.leader()?.session;
            let joiner = room.pending.iter_mut().find(|joiner| joiner.session == id)?;
            joiner.leader_owes_since = Some(now);
            Some((leader, joiner.attempt))
        });
        if leader.is_none() {
            self.error(id, ErrorReason::NotInRoom);
        }
        leader
    }

    fn admission_start(
        &mut self,
        id: SessionId,
        room_name: &str,
        pake_message: Vec<u8>,
        now: Instant,
    ) {
        let Some((leader, attempt)) = self.leader_for_joiner(id, room_name, now) else { return };
        let frame = ServerFrame::AdmissionRequest {
            room: room_name.to_owned(),
            joiner: self.nick_of(id),
            attempt,
            pake_message,
        };
        self.send(leader, &frame);
    }

    fn admission_reply(
        &mut self,
        id: SessionId,
        room_name: &str,
        joiner: &str,
        attempt: u64,
        pake: Vec<u8>,
    ) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return self.error(id, ErrorReason::NotInRoom);
        };
        if !room.is_leader(id) {
            return self.error(id, ErrorReason::NotLeader);
        }
        let Some(joiner) = room.pending_attempt(joiner, attempt) else {
            return self.error(id, ErrorReason::UnknownJoiner);
        };
        // The leader answered; the joiner owes the next step.
        joiner.leader_owes_since = None;
        let joiner = joiner.session;
        let frame = ServerFrame::AdmissionReply {
            room: room_name.to_owned(),
            leader: self.nick_of(id),
            pake_message: pake,
        };
        self.send(joiner, &frame);
    }

    fn admission_finish(
        &mut self,
        id: SessionId,
        room_name: &str,
        confirmation: Vec<u8>,
        sealed_key_package: Vec<u8>,
        now: Instant,
    ) {
        let Some((leader, attempt)) = self.leader_for_joiner(id, room_name, now) else { return };
        let frame = ServerFrame::AdmissionFinish {
            room: room_name.to_owned(),
            joiner: self.nick_of(id),
            attempt,
            confirmation,
            sealed_key_package,
        };
        self.send(leader, &frame);
    }

    fn admission_refused(
        &mut self,
        id: SessionId,
        room_name: &str,
        joiner_nick: &str,
        attempt: u64,
        reason: AdmissionRefusal,
        signals: &mut Vec<AbuseSignal>,
    ) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return self.error(id, ErrorReason::NotInRoom);
        };
        if !room.is_leader(id) {
            return self.error(id, ErrorReason::NotLeader);
        }
        let Some(position) = room
            .pending
            .iter()
            .position(|joiner| joiner.nick == joiner_nick && joiner.attempt == attempt)
        else {
            return self.error(id, ErrorReason::UnknownJoiner);
        };
        let joiner = room.pending.remove(position);
        let mut reason = reason;
        if reason == AdmissionRefusal::WrongPassword {
            let by_nick = room.wrong_passwords_by_nick.entry(joiner.nick.clone()).or_default();
            *by_nick += 1;
            if *by_nick >= WRONG_PASSWORDS_BEFORE_BAN {
                room.banned_nicks.insert(joiner.nick.clone());
                reason = AdmissionRefusal::Banned;
            }
            if let Some(session) = self.sessions.get(&joiner.session) {
                signals.push(AbuseSignal::WrongRoomPassword { ip: session.ip });
            }
        }
        self.forget_room_of(joiner.session, room_name);
        self.send(
            joiner.session,
            &ServerFrame::AdmissionRefused { room: room_name.into(), reason },
        );
    }

    /// The leader's commit: checked as far as a relay can (leader, one at a time, epoch,
    /// group, a Welcome only for a waiting joiner), then put to the vote of the other members.
    fn commit(
        &mut self,
        id: SessionId,
        room_name: &str,
        commit: Vec<u8>,
        welcome: Option<Welcome>,
        now: Instant,
    ) {
        let Some(room) = self.rooms.get_mut(room_name).filter(|room| room.member(id).is_some())
        else {
            return self.error(id, ErrorReason::NotInRoom);
        };
        let header = mls_header::peek_header(&commit)
            .filter(|header| header.content_type == CONTENT_TYPE_COMMIT)
            .filter(|header| room.group_id.as_ref().is_none_or(|id| *id == header.group_id));
        let rejection = match &header {
            _ if !room.is_leader(id) => Some(CommitRejection::NotLeader),
            _ if room.in_flight.is_some() => Some(CommitRejection::Busy),
            None => Some(CommitRejection::NotACommit),
            Some(header) if header.epoch < room.epoch => {
                Some(CommitRejection::EpochMovedOn { attempted: header.epoch, current: room.epoch })
            }
            Some(header) if header.epoch > room.epoch => {
                Some(CommitRejection::EpochAhead { attempted: header.epoch, current: room.epoch })
            }
            Some(_) => match &welcome {
                Some(welcome)
                    if !room.pending.iter().any(|joiner| {
                        joiner.nick == welcome.to && joiner.attempt == welcome.attempt
                    }) =>
                {
                    Some(CommitRejection::UnknownRecipient)
                }
                _ => None,
            },
        };
        let Some(header) = header.filter(|_| rejection.is_none()) else {
            let reason = rejection.unwrap_or(CommitRejection::NotACommit);
            let frame = ServerFrame::CommitRejected { room: room_name.to_owned(), reason };
            return self.send(id, &frame);
        };
        room.group_id.get_or_insert(header.group_id);
        let joiner = welcome.as_ref().map(|welcome| welcome.to.clone());
        if let Some(joiner) = joiner.as_deref().and_then(|nick| room.pending_by_nick_mut(nick)) {
            // The leader answered with the commit; from here the vote's deadline governs.
            joiner.leader_owes_since = None;
        }
        // Away members check the commit when they are back; the room does not wait for them.
        let voters: Vec<SessionId> = room
            .members
            .iter()
            .map(|member| member.session)
            .filter(|session| *session != id)
            .filter(|session| self.sessions.get(session).is_some_and(|s| s.away.is_none()))
            .collect();
        room.in_flight = Some(CommitInFlight {
            epoch: room.epoch,
            committer: id,
            welcome,
            tally: Tally::new(voters.clone()),
            deadline: now + self.deadlines.vote,
        });
        let frame = Bytes::from(proto::encode(&ServerFrame::Commit {
            room: room_name.to_owned(),
            from: self.nick_of(id),
            commit,
            joiner,
        }));
        for voter in voters {
            self.send_bytes(voter, frame.clone());
        }
        self.settle(room_name, now);
    }

    /// A member's verdict on the commit in flight. Votes for any other epoch (late, or about
    /// a commit a man in the middle made up) change nothing.
    fn vote(&mut self, id: SessionId, room_name: &str, epoch: u64, accept: bool, now: Instant) {
        let Some(in_flight) = self
            .rooms
            .get_mut(room_name)
            .and_then(|room| room.in_flight.as_mut())
            .filter(|in_flight| in_flight.epoch == epoch)
        else {
            return;
        };
        in_flight.tally.record(id, accept);
        self.settle(room_name, now);
    }

    /// Applies or aborts the commit in flight once every vote is in.
    fn settle(&mut self, room_name: &str, now: Instant) {
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        let Some(verdict) = room.in_flight.as_ref().and_then(|in_flight| in_flight.tally.verdict())
        else {
            return;
        };
        let Some(in_flight) = room.in_flight.take() else { return };
        match verdict {
            Verdict::Confirmed => self.confirm(room_name, in_flight),
            Verdict::ConfirmedOverObjections(objectors) => {
                // A minority refused what the rest verified: they are out of step with the
                // room (or lying about it), and leave it; they may join again.
                for objector in objectors {
                    self.remove_from_room(objector, room_name, RemovalReason::OutVoted, now);
                }
                self.confirm(room_name, in_flight);
            }
            Verdict::Refused => {
                self.abort(room_name, &in_flight);
                let committer = in_flight.committer;
                self.remove_from_room(committer, room_name, RemovalReason::KeyChangeRefused, now);
            }
        }
    }

    /// Every member merges the commit; its joiner, if still waiting, gets the Welcome.
    fn confirm(&mut self, room_name: &str, in_flight: CommitInFlight) {
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        room.epoch = in_flight.epoch + 1;
        room.left_this_epoch.clear();
        let epoch = room.epoch;
        self.send_to_room(
            room_name,
            None,
            &ServerFrame::CommitConfirmed { room: room_name.to_owned(), epoch },
        );
        let Some(welcome) = in_flight.welcome else { return };
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        let Some(position) = room
            .pending
            .iter()
            .position(|joiner| joiner.nick == welcome.to && joiner.attempt == welcome.attempt)
        else {
            // The joiner left while the room voted. Members count it in with the confirmation,
            // so they hear that it left, and the leader removes its leaf next.
            let leader = room.leader().map(|leader| leader.nick.clone()).unwrap_or_default();
            let notice =
                ServerFrame::MemberLeft { room: room_name.to_owned(), nick: welcome.to, leader };
            return self.send_to_room(room_name, None, &notice);
        };
        let joiner = room.pending.remove(position);
        room.members.push(RoomMember {
            session: joiner.session,
            nick: joiner.nick.clone(),
            outbound: joiner.outbound,
            join_epoch: epoch,
        });
        let members = room.member_nicks();
        let welcome_frame =
            ServerFrame::Welcome { room: room_name.to_owned(), message: welcome.message, members };
        self.send(joiner.session, &welcome_frame);
        let notice = ServerFrame::MemberJoined { room: room_name.to_owned(), nick: joiner.nick };
        self.send_to_room(room_name, Some(joiner.session), &notice);
    }

    /// Every member discards the commit; its joiner starts its admission again.
    fn abort(&mut self, room_name: &str, in_flight: &CommitInFlight) {
        self.send_to_room(
            room_name,
            None,
            &ServerFrame::CommitAborted { room: room_name.to_owned(), epoch: in_flight.epoch },
        );
        if let Some(welcome) = &in_flight.welcome {
            self.restart_admission(room_name, &welcome.to);
        }
    }

    /// Tells a waiting joiner to start over (with whoever leads now).
    fn restart_admission(&mut self, room_name: &str, joiner_nick: &str) {
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

    /// The leader kept a joiner waiting too long: the next member leads. The old leader stays
    /// a member, last in line; joiners start over with the new one.
    fn replace_slow_leader(&mut self, room_name: &str, now: Instant) {
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        if room.members.len() < 2 {
            // Nobody to hand over to: the joiners are told why they cannot get in.
            let waiting: Vec<SessionId> = room
                .pending
                .iter()
                .filter(|joiner| {
                    joiner
                        .leader_owes_since
                        .is_some_and(|since| now >= since + self.deadlines.leader)
                })
                .map(|joiner| joiner.session)
                .collect();
            room.pending.retain(|joiner| !waiting.contains(&joiner.session));
            for session in waiting {
                self.forget_room_of(session, room_name);
                let reason = AdmissionRefusal::LeaderUnresponsive;
                self.send(
                    session,
                    &ServerFrame::AdmissionRefused { room: room_name.into(), reason },
                );
            }
            return;
        }
        if let Some(in_flight) = room.in_flight.take() {
            self.abort(room_name, &in_flight);
        }
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        room.members.rotate_left(1);
        let leader = room.members[0].nick.clone();
        let joiners: Vec<String> = room.pending.iter().map(|joiner| joiner.nick.clone()).collect();
        for joiner in joiners {
            self.restart_admission(room_name, &joiner);
        }
        let notice = ServerFrame::LeaderChanged { room: room_name.to_owned(), leader };
        self.send_to_room(room_name, None, &notice);
    }

    fn application(&mut self, id: SessionId, room_name: &str, message: Vec<u8>) {
        if message.len() > MAX_APPLICATION_LEN {
            return self.error(id, ErrorReason::MessageTooLarge);
        }
        let Some(room) = self.rooms.get_mut(room_name) else {
            return self.error(id, ErrorReason::NotInRoom);
        };
        let Some(sender) = room.member(id) else {
            return self.error(id, ErrorReason::NotInRoom);
        };
        let Some(header) = mls_header::peek_header(&message)
            .filter(|header| header.content_type == CONTENT_TYPE_APPLICATION)
            .filter(|header| room.group_id.as_ref().is_none_or(|id| *id == header.group_id))
        else {
            return self.error(id, ErrorReason::NotMls);
        };
        let frame = Bytes::from(proto::encode(&ServerFrame::Application {
            room: room_name.to_owned(),
            from: sender.nick.clone(),
            message,
        }));
        // The hot path of the relay: one queue push per recipient, nothing looked up.
        let mut stalled = Vec::new();
        for member in &room.members {
            if member.session != id
                && member.join_epoch <= header.epoch
                && member.outbound.try_send(frame.clone()).is_err()
            {
                stalled.push(member.session);
            }
        }
        room.group_id.get_or_insert(header.group_id);
        for session in stalled {
            self.kick_slow_reader(session);
        }
    }

    /// Takes a member out of a room on the relay's own decision, telling it why.
    fn remove_from_room(
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
    fn leave_room(&mut self, id: SessionId, room_name: &str, now: Instant) -> bool {
        let Some(room) = self.rooms.get_mut(room_name) else { return false };
        let was_pending = room.is_pending(id);
        room.pending.retain(|joiner| joiner.session != id);
        let position = room.members.iter().position(|member| member.session == id);
        let was_leader = position == Some(0);
        let left = position.map(|position| room.members.remove(position));
        // A vote in flight goes on without a member that left; a commit whose committer left
        // is aborted, since nobody will merge it on the committer's side.
        let committer_left = room.in_flight.as_ref().is_some_and(|f| f.committer == id);
        if let Some(in_flight) = room.in_flight.as_mut() {
            in_flight.tally.forget(id);
        }
        self.forget_room_of(id, room_name);
        if committer_left
            && let Some(in_flight) = self.rooms.get_mut(room_name).and_then(|r| r.in_flight.take())
        {
            self.abort(room_name, &in_flight);
        }
        let Some(room) = self.rooms.get_mut(room_name) else { return was_pending };
        if room.members.is_empty() {
            // The room is forgotten; anyone still waiting to join will find it empty and
            // create it afresh.
            let orphans: Vec<String> =
                room.pending.iter().map(|joiner| joiner.nick.clone()).collect();
            for orphan in orphans {
                self.restart_admission(room_name, &orphan);
            }
            self.rooms.remove(room_name);
            return was_pending || left.is_some();
        }
        let Some(left) = left else {
            self.settle(room_name, now);
            return was_pending;
        };
        room.left_this_epoch.insert(left.nick.clone());
        let leader = room.members[0].nick.clone();
        if was_leader {
            // Admissions in flight were with the old leader; the joiners start over.
            let orphans: Vec<String> =
                room.pending.iter().map(|joiner| joiner.nick.clone()).collect();
            for orphan in orphans {
                self.restart_admission(room_name, &orphan);
            }
        }
        let notice =
            ServerFrame::MemberLeft { room: room_name.to_owned(), nick: left.nick, leader };
        self.send_to_room(room_name, None, &notice);
        self.settle(room_name, now);
        true
    }

    fn forget_room_of(&mut self, id: SessionId, room_name: &str) {
        if let Some(session) = self.sessions.get_mut(&id) {
            session.rooms.retain(|room| room != room_name);
        }
    }

    fn send_to_room(&mut self, room_name: &str, except: Option<SessionId>, frame: &ServerFrame) {
        let Some(room) = self.rooms.get(room_name) else { return };
        let recipients: Vec<SessionId> = room
            .members
            .iter()
            .map(|member| member.session)
            .filter(|session| Some(*session) != except)
            .collect();
        let bytes = Bytes::from(proto::encode(frame));
        for recipient in recipients {
            self.send_bytes(recipient, bytes.clone());
        }
    }

    fn error(&mut self, id: SessionId, reason: ErrorReason) {
        self.send(id, &ServerFrame::Error { request: self.request, reason });
    }

    fn send(&mut self, id: SessionId, frame: &ServerFrame) {
        self.send_bytes(id, Bytes::from(proto::encode(frame)));
    }

    /// Queues a frame for a session without waiting. A session whose queue is full (in
    /// frames or bytes) has stopped reading: it is told to close rather than slowing everyone
    /// else down or growing the relay's memory.
    fn send_bytes(&mut self, id: SessionId, bytes: Bytes) {
        let Some(session) = self.sessions.get_mut(&id) else { return };
        if session.outbound.try_send(bytes).is_err() {
            self.kick_slow_reader(id);
        }
    }

    /// Tells a session whose queue is full (or already closed) to go. An away session
    /// cannot be told: it has missed frames and will not be resumed (`expire` removes it).
    fn kick_slow_reader(&mut self, id: SessionId) {
        let Some(session) = self.sessions.get_mut(&id) else { return };
        if let Some(away) = session.away.as_mut() {
            away.overflowed = true;
        } else if let Some(kick) = session.kick.take() {
            let _ = kick.send(DisconnectReason::SlowReader);
        }
    }
}

#[cfg(test)]
mod tests;
