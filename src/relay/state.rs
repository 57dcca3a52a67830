//! Everything the relay knows, in memory: sessions, nicknames and rooms.
//!
//! All of it sits behind one `std::sync::Mutex` in [`Shared`]. That is deliberate: no
//! `.await` happens while the lock is held (sending to a session is a non-blocking
//! `try_send`), and one lock gives one global order, so every member of a room sees its
//! commits and messages in the same order. Nothing here is ever written anywhere; a session's
//! traces (nickname, memberships, pending admissions) go when it disconnects and a room goes
//! when its last member leaves.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::mls_header::{self, CONTENT_TYPE_APPLICATION, CONTENT_TYPE_COMMIT};
use crate::proto::{
    self, AdmissionRefusal, ClientFrame, CommitRejection, DisconnectReason, ErrorReason,
    RoomSummary, ServerFrame, Welcome,
};

/// Failed admissions for one nickname (or one address) before it may not ask to join that
/// room again, as in the Python original.
pub const WRONG_PASSWORDS_BEFORE_BAN: u32 = 3;

/// Identifies one connection for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// What a connection task hears from the state: frames to send, or an order to close.
pub struct SessionChannel {
    pub outbound: mpsc::Sender<Bytes>,
    pub kick: oneshot::Sender<DisconnectReason>,
}

struct Session {
    ip: IpAddr,
    nick: Option<String>,
    outbound: mpsc::Sender<Bytes>,
    kick: Option<oneshot::Sender<DisconnectReason>>,
    /// Rooms this session is a member of or waiting to join.
    rooms: Vec<String>,
}

struct RoomMember {
    session: SessionId,
    nick: String,
    /// The session's outgoing queue, held here too so that relaying to a room looks nothing
    /// up per recipient.
    outbound: mpsc::Sender<Bytes>,
    /// The first epoch this member can decrypt. Application messages of older epochs are not
    /// forwarded to it: they were never meant for it and would only show as undecryptable.
    join_epoch: u64,
    /// Asked to be swapped back in after missing a commit; may receive a Welcome.
    awaiting_repair: bool,
}

struct PendingJoiner {
    session: SessionId,
    nick: String,
    outbound: mpsc::Sender<Bytes>,
}

#[derive(Default)]
struct Room {
    /// In the order they joined; the first is the leader, who admits joiners and commits
    /// removals.
    members: Vec<RoomMember>,
    pending: Vec<PendingJoiner>,
    /// The epoch the next accepted commit must have been created in.
    epoch: u64,
    /// Learned from the first handshake or application message; messages of another group
    /// are refused, so a confused client cannot fork the room.
    group_id: Option<Vec<u8>>,
    wrong_passwords_by_nick: HashMap<String, u32>,
    wrong_passwords_by_ip: HashMap<IpAddr, u32>,
    banned_nicks: HashSet<String>,
    banned_ips: HashSet<IpAddr>,
}

impl Room {
    fn leader(&self) -> Option<&RoomMember> {
        self.members.first()
    }

    fn member(&self, session: SessionId) -> Option<&RoomMember> {
        self.members.iter().find(|member| member.session == session)
    }

    fn pending_by_nick(&self, nick: &str) -> Option<&PendingJoiner> {
        self.pending.iter().find(|joiner| joiner.nick == nick)
    }

    fn is_pending(&self, session: SessionId) -> bool {
        self.pending.iter().any(|joiner| joiner.session == session)
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
    sessions: HashMap<SessionId, Session>,
    nicks: HashMap<String, SessionId>,
    rooms: HashMap<String, Room>,
    max_rooms_per_session: usize,
}

impl State {
    pub fn new(max_rooms_per_session: usize) -> Self {
        State { max_rooms_per_session, ..State::default() }
    }

    pub fn stats(&self) -> RelayStats {
        RelayStats {
            sessions: self.sessions.len(),
            nicknames: self.nicks.len(),
            rooms: self.rooms.len(),
            room_memberships: self.rooms.values().map(|room| room.members.len()).sum(),
            pending_joins: self.rooms.values().map(|room| room.pending.len()).sum(),
        }
    }

    /// Registers an authenticated connection.
    pub fn add_session(&mut self, ip: IpAddr, channel: SessionChannel) -> SessionId {
        self.next_session += 1;
        let id = SessionId(self.next_session);
        let session = Session {
            ip,
            nick: None,
            outbound: channel.outbound,
            kick: Some(channel.kick),
            rooms: Vec::new(),
        };
        self.sessions.insert(id, session);
        id
    }

    /// Erases every trace of a session: nickname, memberships, pending joins. The remaining
    /// members of its rooms are told, with the leader that must commit the removal.
    pub fn remove_session(&mut self, id: SessionId) {
        let Some(session) = self.sessions.get(&id) else { return };
        for room in session.rooms.clone() {
            self.leave_room(id, &room);
        }
        if let Some(session) = self.sessions.remove(&id)
            && let Some(nick) = session.nick
        {
            self.nicks.remove(&nick);
        }
    }

    /// Handles one decoded frame from a session.
    pub fn handle(
        &mut self,
        id: SessionId,
        frame: ClientFrame,
        signals: &mut Vec<AbuseSignal>,
    ) -> Control {
        let Some(session) = self.sessions.get(&id) else {
            return Control::Close(DisconnectReason::ProtocolViolation);
        };
        let registered = session.nick.is_some();
        match frame {
            ClientFrame::Ping => self.send(id, &ServerFrame::Pong),
            ClientFrame::Quit => return Control::Close(DisconnectReason::Quit),
            ClientFrame::Register { nick } => self.register(id, nick),
            _ if !registered => self.error(id, ErrorReason::NotRegistered),
            ClientFrame::ListRooms => self.list_rooms(id),
            ClientFrame::ListMembers { room } => self.list_members(id, &room),
            ClientFrame::Join { room } => self.join(id, room),
            ClientFrame::AdmissionStart { room, pake_message } => {
                self.admission_start(id, &room, pake_message)
            }
            ClientFrame::AdmissionReply { room, joiner, pake_message } => {
                self.admission_reply(id, &room, &joiner, pake_message)
            }
            ClientFrame::AdmissionFinish { room, confirmation, sealed_key_package } => {
                self.admission_finish(id, &room, confirmation, sealed_key_package)
            }
            ClientFrame::AdmissionRefused { room, joiner, reason } => {
                self.admission_refused(id, &room, &joiner, reason, signals)
            }
            ClientFrame::Commit { room, commit, welcome } => {
                self.commit(id, &room, commit, welcome)
            }
            ClientFrame::Application { room, message } => self.application(id, &room, message),
            ClientFrame::RepairRequest { room, key_package } => {
                self.repair_request(id, &room, key_package)
            }
            ClientFrame::Leave { room } => {
                if self.leave_room(id, &room) {
                    self.send(id, &ServerFrame::Left { room });
                } else {
                    self.error(id, ErrorReason::NotInRoom);
                }
            }
        }
        Control::Continue
    }

    fn nick_of(&self, id: SessionId) -> String {
        self.sessions.get(&id).and_then(|session| session.nick.clone()).unwrap_or_default()
    }

    fn register(&mut self, id: SessionId, nick: String) {
        if !proto::is_valid_name(&nick) {
            return self.error(id, ErrorReason::NickInvalid);
        }
        if self.sessions.get(&id).is_some_and(|session| session.nick.is_some()) {
            return self.error(id, ErrorReason::AlreadyRegistered);
        }
        if self.nicks.contains_key(&nick) {
            return self.error(id, ErrorReason::NickTaken);
        }
        self.nicks.insert(nick.clone(), id);
        if let Some(session) = self.sessions.get_mut(&id) {
            session.nick = Some(nick.clone());
        }
        self.send(id, &ServerFrame::Registered { nick });
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
        let members = room.members.iter().map(|member| member.nick.clone()).collect();
        self.send(id, &ServerFrame::MemberList { room: room_name.to_owned(), members });
    }

    fn join(&mut self, id: SessionId, room_name: String) {
        if !proto::is_valid_name(&room_name) {
            return self.error(id, ErrorReason::RoomNameInvalid);
        }
        let Some(session) = self.sessions.get(&id) else { return };
        let (ip, nick) = (session.ip, session.nick.clone().unwrap_or_default());
        let outbound = session.outbound.clone();
        if session.rooms.contains(&room_name) {
            return self.error(id, ErrorReason::AlreadyInRoom);
        }
        if session.rooms.len() >= self.max_rooms_per_session {
            return self.error(id, ErrorReason::TooManyRooms);
        }
        let room = self.rooms.entry(room_name.clone()).or_default();
        if room.banned_nicks.contains(&nick) || room.banned_ips.contains(&ip) {
            return self.error(id, ErrorReason::BannedFromRoom);
        }
        let reply = if room.members.is_empty() {
            room.members.push(RoomMember {
                session: id,
                nick,
                outbound,
                join_epoch: 0,
                awaiting_repair: false,
            });
            ServerFrame::RoomCreated { room: room_name.clone() }
        } else {
            let leader = room.members[0].nick.clone();
            room.pending.push(PendingJoiner { session: id, nick, outbound });
            ServerFrame::JoinPending { room: room_name.clone(), leader }
        };
        if let Some(session) = self.sessions.get_mut(&id) {
            session.rooms.push(room_name);
        }
        self.send(id, &reply);
    }

    /// The leader a waiting joiner's admission messages go to; a session that is not waiting
    /// to join the room is told so.
    fn leader_for_joiner(&mut self, id: SessionId, room_name: &str) -> Option<SessionId> {
        let leader = self
            .rooms
            .get(room_name)
            .filter(|room| room.is_pending(id))
            .and_then(|room| room.leader().map(|leader| leader.session));
        if leader.is_none() {
            self.error(id, ErrorReason::NotInRoom);
        }
        leader
    }

    fn admission_start(&mut self, id: SessionId, room_name: &str, pake_message: Vec<u8>) {
        let Some(leader) = self.leader_for_joiner(id, room_name) else { return };
        let frame = ServerFrame::AdmissionRequest {
            room: room_name.to_owned(),
            joiner: self.nick_of(id),
            pake_message,
        };
        self.send(leader, &frame);
    }

    fn admission_reply(&mut self, id: SessionId, room_name: &str, joiner: &str, pake: Vec<u8>) {
        let Some(room) = self.rooms.get(room_name) else {
            return self.error(id, ErrorReason::NotInRoom);
        };
        if room.leader().map(|leader| leader.session) != Some(id) {
            return self.error(id, ErrorReason::NotLeader);
        }
        let Some(joiner) = room.pending_by_nick(joiner).map(|joiner| joiner.session) else {
            return self.error(id, ErrorReason::UnknownJoiner);
        };
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
    ) {
        let Some(leader) = self.leader_for_joiner(id, room_name) else { return };
        let frame = ServerFrame::AdmissionFinish {
            room: room_name.to_owned(),
            joiner: self.nick_of(id),
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
        reason: AdmissionRefusal,
        signals: &mut Vec<AbuseSignal>,
    ) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return self.error(id, ErrorReason::NotInRoom);
        };
        if room.leader().map(|leader| leader.session) != Some(id) {
            return self.error(id, ErrorReason::NotLeader);
        }
        let Some(position) = room.pending.iter().position(|joiner| joiner.nick == joiner_nick)
        else {
            return self.error(id, ErrorReason::UnknownJoiner);
        };
        let joiner = room.pending.remove(position);
        let mut reason = reason;
        if reason == AdmissionRefusal::WrongPassword {
            let ip = self.sessions.get(&joiner.session).map(|session| session.ip);
            let by_nick = room.wrong_passwords_by_nick.entry(joiner.nick.clone()).or_default();
            *by_nick += 1;
            let mut banned = *by_nick >= WRONG_PASSWORDS_BEFORE_BAN;
            if let Some(ip) = ip {
                signals.push(AbuseSignal::WrongRoomPassword { ip });
                let by_ip = room.wrong_passwords_by_ip.entry(ip).or_default();
                *by_ip += 1;
                if *by_ip >= WRONG_PASSWORDS_BEFORE_BAN {
                    room.banned_ips.insert(ip);
                    banned = true;
                }
            }
            if banned {
                room.banned_nicks.insert(joiner.nick.clone());
                reason = AdmissionRefusal::Banned;
            }
        }
        self.forget_room_of(joiner.session, room_name);
        self.send(
            joiner.session,
            &ServerFrame::AdmissionRefused { room: room_name.into(), reason },
        );
    }

    fn commit(
        &mut self,
        id: SessionId,
        room_name: &str,
        commit: Vec<u8>,
        welcome: Option<Welcome>,
    ) {
        let Some(room) = self.rooms.get_mut(room_name).filter(|room| room.member(id).is_some())
        else {
            return self.error(id, ErrorReason::NotInRoom);
        };
        let header = mls_header::peek_header(&commit);
        let rejection = match &header {
            None => Some(CommitRejection::NotACommit),
            Some(header) if header.content_type != CONTENT_TYPE_COMMIT => {
                Some(CommitRejection::NotACommit)
            }
            Some(header) if room.group_id.as_ref().is_some_and(|id| *id != header.group_id) => {
                Some(CommitRejection::NotACommit)
            }
            Some(header) if header.epoch < room.epoch => {
                Some(CommitRejection::EpochMovedOn { attempted: header.epoch, current: room.epoch })
            }
            Some(header) if header.epoch > room.epoch => {
                Some(CommitRejection::EpochAhead { attempted: header.epoch, current: room.epoch })
            }
            Some(_) => match &welcome {
                Some(welcome)
                    if room.pending_by_nick(&welcome.to).is_none()
                        && !room
                            .members
                            .iter()
                            .any(|member| member.nick == welcome.to && member.awaiting_repair) =>
                {
                    Some(CommitRejection::UnknownRecipient)
                }
                _ => None,
            },
        };
        if let Some(reason) = rejection {
            let frame = ServerFrame::CommitRejected { room: room_name.to_owned(), reason };
            return self.send(id, &frame);
        }
        #[allow(clippy::expect_used, reason = "a commit without a header was rejected above")]
        let header = header.expect("a commit without a header was rejected above");
        room.group_id.get_or_insert(header.group_id);
        room.epoch += 1;
        let new_epoch = room.epoch;

        // Existing members other than the sender get the commit, in the order accepted.
        let sender = self.nick_of(id);
        let commit_frame = Bytes::from(proto::encode(&ServerFrame::Commit {
            room: room_name.to_owned(),
            from: sender,
            commit,
        }));
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        let recipients: Vec<SessionId> = room
            .members
            .iter()
            .filter(|member| member.session != id)
            .filter(|member| {
                !(member.awaiting_repair && welcome.as_ref().is_some_and(|w| w.to == member.nick))
            })
            .map(|member| member.session)
            .collect();

        // The welcomed member joins (or is repaired) at the new epoch.
        let mut welcomed = None;
        if let Some(welcome) = welcome {
            if let Some(position) = room.pending.iter().position(|joiner| joiner.nick == welcome.to)
            {
                let joiner = room.pending.remove(position);
                room.members.push(RoomMember {
                    session: joiner.session,
                    nick: joiner.nick.clone(),
                    outbound: joiner.outbound,
                    join_epoch: new_epoch,
                    awaiting_repair: false,
                });
                welcomed = Some((joiner.session, welcome.message, Some(joiner.nick)));
            } else if let Some(member) =
                room.members.iter_mut().find(|member| member.nick == welcome.to)
            {
                member.awaiting_repair = false;
                member.join_epoch = new_epoch;
                welcomed = Some((member.session, welcome.message, None));
            }
        }

        for recipient in recipients {
            self.send_bytes(recipient, commit_frame.clone());
        }
        self.send(
            id,
            &ServerFrame::CommitAccepted { room: room_name.to_owned(), epoch: new_epoch },
        );
        if let Some((session, message, joined_nick)) = welcomed {
            self.send(session, &ServerFrame::Welcome { room: room_name.to_owned(), message });
            if let Some(nick) = joined_nick {
                let notice = ServerFrame::MemberJoined { room: room_name.to_owned(), nick };
                self.send_to_room(room_name, Some(session), &notice);
            }
        }
    }

    fn application(&mut self, id: SessionId, room_name: &str, message: Vec<u8>) {
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

    fn repair_request(&mut self, id: SessionId, room_name: &str, key_package: Vec<u8>) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return self.error(id, ErrorReason::NotInRoom);
        };
        let Some(member) = room.members.iter_mut().find(|member| member.session == id) else {
            return self.error(id, ErrorReason::NotInRoom);
        };
        member.awaiting_repair = true;
        // The leader repairs; a leader that lost track asks the next member.
        let Some(repairer) = room.members.iter().find(|member| member.session != id) else {
            return self.error(id, ErrorReason::NotLeader);
        };
        let repairer = repairer.session;
        let frame = ServerFrame::RepairRequest {
            room: room_name.to_owned(),
            from: self.nick_of(id),
            key_package,
        };
        self.send(repairer, &frame);
    }

    /// Removes a session from a room (as member or pending joiner). Returns whether it was in.
    fn leave_room(&mut self, id: SessionId, room_name: &str) -> bool {
        let Some(room) = self.rooms.get_mut(room_name) else { return false };
        let was_pending = room.is_pending(id);
        room.pending.retain(|joiner| joiner.session != id);
        let position = room.members.iter().position(|member| member.session == id);
        let was_leader = position == Some(0);
        let left = position.map(|position| room.members.remove(position));
        self.forget_room_of(id, room_name);
        let Some(room) = self.rooms.get_mut(room_name) else { return was_pending };
        if room.members.is_empty() {
            // The room is forgotten; anyone still waiting to join will find it empty and
            // create it afresh.
            let orphans: Vec<SessionId> =
                room.pending.iter().map(|joiner| joiner.session).collect();
            self.rooms.remove(room_name);
            for orphan in orphans {
                self.forget_room_of(orphan, room_name);
                let refusal = AdmissionRefusal::LeaderChanged;
                self.send(
                    orphan,
                    &ServerFrame::AdmissionRefused { room: room_name.into(), reason: refusal },
                );
            }
            return was_pending || left.is_some();
        }
        let Some(left) = left else { return was_pending };
        let leader = room.members[0].nick.clone();
        if was_leader {
            // Admissions in flight were with the old leader; the joiners start over.
            let orphans: Vec<SessionId> =
                room.pending.drain(..).map(|joiner| joiner.session).collect();
            for orphan in orphans {
                self.forget_room_of(orphan, room_name);
                let refusal = AdmissionRefusal::LeaderChanged;
                self.send(
                    orphan,
                    &ServerFrame::AdmissionRefused { room: room_name.into(), reason: refusal },
                );
            }
        }
        let notice =
            ServerFrame::MemberLeft { room: room_name.to_owned(), nick: left.nick, leader };
        self.send_to_room(room_name, None, &notice);
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
        self.send(id, &ServerFrame::Error { reason });
    }

    fn send(&mut self, id: SessionId, frame: &ServerFrame) {
        self.send_bytes(id, Bytes::from(proto::encode(frame)));
    }

    /// Queues a frame for a session without waiting. A session whose queue is full has
    /// stopped reading: it is told to close rather than slowing everyone else down or
    /// growing the relay's memory.
    fn send_bytes(&mut self, id: SessionId, bytes: Bytes) {
        let Some(session) = self.sessions.get_mut(&id) else { return };
        if session.outbound.try_send(bytes).is_err() {
            self.kick_slow_reader(id);
        }
    }

    /// Tells a session whose queue is full (or already closed) to go.
    fn kick_slow_reader(&mut self, id: SessionId) {
        if let Some(session) = self.sessions.get_mut(&id)
            && let Some(kick) = session.kick.take()
        {
            let _ = kick.send(DisconnectReason::SlowReader);
        }
    }
}
