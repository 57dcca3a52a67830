//! One client as `client::engine` runs it, without its IO: the engine's decisions on every
//! frame, request and tick, over the real `Room`, the real MLS group and the real session
//! numbering (`client::resume`).
//!
//! This is the one place the simulation drives a client. It mirrors `engine.rs` handler for
//! handler (the names match), minus what cannot change the room: pins, `/who`, room lists,
//! keepalive pings. When the engine becomes a sans-IO core, this file is replaced by that
//! core: the simulation only calls the `user_*`, link and `on_frame` methods below and
//! reads `events`, `room` and the frames in `outgoing`.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::super::ballot::commit_hash;
use super::super::resume::SessionNumbers;
use super::super::room::{Outbox, Room, Welcomed};
use super::super::{ConnectionEvent, Event};
use crate::mls::MlsMember;
use crate::proto::{
    self, AdmissionRefusal, ChatPayload, ClientFrame, ErrorReason, GroupMessage, ResumeToken,
    ServerFrame, VoteStatement,
};
use crate::secret::Secret;

/// `engine::MAX_JOIN_RESTARTS`.
const MAX_JOIN_RESTARTS: u32 = 5;
/// `engine::MAX_QUEUED_LINES`.
const MAX_QUEUED_LINES: usize = 100;
/// `engine::WAIT_FOR_OTHERS`.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(10);
/// `client::JOIN_TIMEOUT`: a `/join` nobody answered in time is abandoned.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// What a client puts on its link: a numbered frame of the session, or an acknowledgement
/// (which belongs to one connection and is not numbered).
#[derive(Debug, Clone)]
pub enum Up {
    Frame(Vec<u8>),
    Ack(u64),
}

/// A chat line encrypted for the room: what the ledger needs to follow it.
#[derive(Debug, Clone)]
pub struct Encrypted {
    pub text: String,
    /// The sender's running number (`ChatEnvelope::number`) in this `Room`.
    pub number: u64,
    pub group_id: Vec<u8>,
    /// The MLS message, as the relay will see it.
    pub message: Vec<u8>,
}

/// Rewrites a frame just before it is numbered and sent: how a hostile insider lies while
/// running the honest code for everything else.
pub type Rewrite = Box<dyn FnMut(&mut ClientFrame)>;

pub struct SimClient {
    pub nick: String,
    pub mls: MlsMember,
    pub room: Option<Room>,
    numbers: Option<SessionNumbers>,
    /// Whether a connection is up (the engine's `writer.is_some()`).
    online: bool,
    /// `Leave`s sent whose `Left` has not come back (one room only here).
    leaving: u32,
    queued_lines: VecDeque<ChatPayload>,
    join_restarts: u32,
    backlog: u64,
    reforming_since: Option<Instant>,
    /// When the user's `/join` gives up waiting (the `Client` handle's timeout).
    join_deadline: Option<Instant>,
    /// The running number of our chat messages in the current `Room` (`Room::encrypt`'s).
    sent_messages: u64,
    /// Everything the user was shown, in order.
    pub events: Vec<Event>,
    /// Frames for the link, in order.
    pub outgoing: Vec<Up>,
    /// Every frame sent (after any rewrite), decoded, for the ledger and the log.
    pub sent: Vec<ClientFrame>,
    /// Lines encrypted since the ledger last looked.
    pub encrypted: Vec<Encrypted>,
    pub rewrite: Option<Rewrite>,
    /// A hostile insider that signs (and says) no to every commit, its own included.
    pub votes_no: bool,
    /// The hash of the last commit the relay put to us, which a vote is about.
    last_commit: Option<[u8; 32]>,
    /// The virtual clock's origin, to give events a reproducible time.
    origin: Instant,
}

impl SimClient {
    pub fn new(nick: &str, origin: Instant) -> Self {
        SimClient {
            nick: nick.to_owned(),
            mls: MlsMember::new(nick).unwrap(),
            room: None,
            numbers: None,
            online: false,
            leaving: 0,
            queued_lines: VecDeque::new(),
            join_restarts: 0,
            backlog: 0,
            reforming_since: None,
            join_deadline: None,
            sent_messages: 0,
            events: Vec::new(),
            outgoing: Vec::new(),
            sent: Vec::new(),
            encrypted: Vec::new(),
            rewrite: None,
            votes_no: false,
            last_commit: None,
            origin,
        }
    }

    pub fn is_member(&self) -> bool {
        self.room.as_ref().is_some_and(Room::is_member)
    }

    /// A member, or a member asking a relay that forgot it to take it back.
    pub fn holds_group(&self) -> bool {
        self.room.as_ref().and_then(Room::group).is_some()
    }

    fn wall(&self, now: Instant) -> SystemTime {
        SystemTime::UNIX_EPOCH + (now - self.origin)
    }

    // ---- The user (`engine::on_request` and `on_request_offline`) ----

    /// `/join room`.
    pub fn user_join(&mut self, room: &str, password: &str, now: Instant) {
        if !self.online {
            return self.error("reconnecting to the server; try again once back");
        }
        self.drop_queued_lines("you joined another room");
        if let Some(mut current) = self.room.take() {
            self.left_room(&current.name);
            if let Some(farewell) = current.farewell() {
                self.send(farewell);
            }
            self.send(ClientFrame::Leave { room: current.name });
        }
        self.join_restarts = 0;
        self.sent_messages = 0;
        self.join_deadline = Some(now + JOIN_TIMEOUT);
        self.room = Some(Room::new(room.to_owned(), Secret::from(password)));
        self.send(ClientFrame::Join { room: room.to_owned() });
    }

    /// `/leave`.
    pub fn user_leave(&mut self) {
        if !self.online {
            return self.error("reconnecting to the server; try again once back");
        }
        match self.room.take() {
            Some(mut room) => {
                self.join_deadline = None;
                self.left_room(&room.name);
                if let Some(farewell) = room.farewell() {
                    self.send(farewell);
                }
                self.send(ClientFrame::Leave { room: room.name });
            }
            None => self.error("not in a room"),
        }
    }

    /// A chat line. Returns whether the client took it (sent or queued); a refusal is shown
    /// to the user at once, as the engine's reply.
    pub fn user_say(&mut self, text: &str) -> bool {
        let payload = ChatPayload::Text(text.to_owned());
        if !self.online {
            return self.queue_line(payload);
        }
        let Some(room) = self.room.as_mut() else {
            self.error("not in a room");
            return false;
        };
        if room.rejoining() || !self.queued_lines.is_empty() {
            return self.queue_line(payload);
        }
        if !room.is_member() {
            self.error("not in a room");
            return false;
        }
        match self.encrypt(&payload) {
            Some(frame) => {
                self.transmit(frame, Some(payload));
                true
            }
            None => {
                self.error("message not sent");
                false
            }
        }
    }

    /// Sends a frame of the caller's choosing through the session: a hostile client only.
    pub fn send_raw(&mut self, frame: ClientFrame) {
        self.send(frame);
    }

    // ---- The link (`engine::reconnect`, `back_online`) ----

    /// The first registration of the session.
    pub fn registered_first(&mut self, token: ResumeToken, relay_boot: u64) {
        self.numbers = Some(SessionNumbers::registered(token, relay_boot));
        self.online = true;
    }

    /// The link dropped (or the client gave up on it).
    pub fn link_lost(&mut self, reason: &str) {
        if !self.online {
            return;
        }
        self.online = false;
        self.events.push(Event::Connection(ConnectionEvent::Lost { reason: reason.into() }));
    }

    /// What a `Resume` carries: the token and the count of frames received.
    pub fn resume_request(&self) -> (ResumeToken, u64) {
        let numbers = self.numbers.as_ref().unwrap();
        (numbers.token().clone(), numbers.received())
    }

    /// `back_online` after `Resumed`: send again what the relay missed.
    pub fn resumed(&mut self, handled: u64, backlog: u64, token: ResumeToken, now: Instant) {
        self.online = true;
        let resend = self.numbers.as_mut().unwrap().resumed(handled, token);
        if resend.lost > 0 {
            let room = self.current_room_name();
            self.events.push(Event::Warning {
                room,
                text: format!("{} of your frames were lost with the connection", resend.lost),
            });
        }
        self.backlog = backlog;
        self.events.push(Event::Connection(ConnectionEvent::Resumed { missed: backlog }));
        for frame in resend.frames {
            self.outgoing.push(Up::Frame(frame));
        }
        if backlog == 0 {
            self.send_queued_lines(now);
        }
    }

    /// `back_online` after `ResumeRefused` and a new registration: say what may be lost, and
    /// take the room back.
    pub fn registered_anew(&mut self, token: ResumeToken, relay_boot: u64, now: Instant) {
        self.online = true;
        let old = self.numbers.take().unwrap();
        let relay_restarted = old.relay_boot() != relay_boot;
        let in_doubt = old.chat_in_doubt();
        self.numbers = Some(SessionNumbers::registered(token, relay_boot));
        self.leaving = 0;
        self.backlog = 0;
        let offline_since = self.wall(now);
        self.events.push(Event::Connection(ConnectionEvent::Reconnected {
            relay_restarted,
            offline_since,
        }));
        if !in_doubt.is_empty() {
            self.events.push(Event::Connection(ConnectionEvent::NotSent {
                texts: in_doubt.iter().map(payload_text).collect(),
                reason:
                    "sent just before the connection dropped; they may not have reached the room"
                        .into(),
            }));
        }
        let frame = self.room.as_mut().map(Room::reclaim);
        self.reforming_since = Some(now);
        if let Some(frame) = frame {
            self.send(frame);
        }
    }

    /// The keepalive tick (`engine::keepalive`), and the `/join` timeout.
    pub fn tick(&mut self, now: Instant) {
        if let Some(deadline) = self.join_deadline
            && now >= deadline
        {
            self.join_deadline = None;
            // `Client::join` timed out and sent `AbandonJoin`.
            self.error("the room's leader did not answer in time");
            if self.online
                && let Some(room) = self.room.take_if(|room| !room.is_member())
            {
                self.send(ClientFrame::Leave { room: room.name });
            }
        }
        if !self.online {
            return;
        }
        self.acknowledge();
        if self.backlog == 0 && !self.queued_lines.is_empty() {
            self.send_queued_lines(now);
        }
        // A commit of ours the relay could not take to a vote yet goes again.
        let mut outbox = Outbox::default();
        let me = self.nick.clone();
        if let Some(room) = self.room.as_mut() {
            room.tick(&me, &mut outbox);
        }
        self.flush_outbox(outbox);
    }

    // ---- Frames (`engine::on_frame` and what it calls) ----

    pub fn on_frame(&mut self, frame: ServerFrame, now: Instant) {
        if matches!(frame, ServerFrame::Resumed { .. } | ServerFrame::ResumeRefused { .. }) {
            return;
        }
        if self.numbers.as_mut().unwrap().on_received() {
            self.acknowledge();
        }
        let late = self.backlog > 0;
        self.backlog = self.backlog.saturating_sub(1);
        if let ServerFrame::Commit { commit, .. } = &frame {
            self.last_commit = Some(commit_hash(commit));
        }
        let mut outbox = Outbox::default();
        self.on_session_frame(frame, &mut outbox, now);
        if self.room.as_ref().is_some_and(Room::is_gone) {
            // The room said why; it waits for the user's `/join`.
            self.room = None;
        }
        if late {
            for event in &mut outbox.events {
                if let Event::Message { late, .. } = event {
                    *late = true;
                }
            }
        }
        self.flush_outbox(outbox);
        if self.room.is_none() {
            self.drop_queued_lines("no longer in the room");
        } else if self.backlog == 0 && !self.queued_lines.is_empty() {
            self.send_queued_lines(now);
        }
    }

    fn on_session_frame(&mut self, frame: ServerFrame, outbox: &mut Outbox, now: Instant) {
        if let ServerFrame::Ack { received } = frame {
            return self.numbers.as_mut().unwrap().relay_acknowledged(received);
        }
        if self.is_stale(&frame) {
            return;
        }
        match frame {
            ServerFrame::Error { reason, .. } => self.on_error(reason),
            ServerFrame::RoomList { .. }
            | ServerFrame::MemberList { .. }
            | ServerFrame::Registered { .. }
            | ServerFrame::Left { .. }
            | ServerFrame::Pong
            | ServerFrame::Goodbye { .. }
            | ServerFrame::Resumed { .. }
            | ServerFrame::ResumeRefused { .. }
            | ServerFrame::Ack { .. } => {}
            room_frame => self.on_room_frame(room_frame, outbox, now),
        }
    }

    fn on_join_frame(&mut self, frame: ServerFrame, out: &mut Outbox) {
        let me = self.nick.clone();
        let mls = &self.mls;
        let Some(name) = frame_room(&frame).map(str::to_owned) else { return };
        let Some(room) = self.room.as_mut().filter(|room| room.name == name) else { return };
        let result = match frame {
            ServerFrame::RoomCreated { .. } => room
                .created(mls, out)
                .map(|()| None)
                .map_err(|error| format!("cannot create the room: {error}")),
            ServerFrame::JoinPending { leader, .. } => {
                room.admission_pending(&me, leader).map(Some).map_err(|error| error.to_string())
            }
            ServerFrame::AdmissionReply { pake_message, .. } => room
                .admission_reply(mls, &pake_message)
                .map(Some)
                .map_err(|error| error.to_string()),
            ServerFrame::Welcome { message, members, .. } => {
                match room.welcomed(mls, &message, members) {
                    Ok(Welcomed::Joined) => Ok(None),
                    Ok(Welcomed::Rejoined { newcomers }) => {
                        let mut text =
                            "back in the room, in the same group with the same members".to_owned();
                        if !newcomers.is_empty() {
                            text.push_str(&format!(
                                "; joined while you were out: {}",
                                newcomers.join(", ")
                            ));
                        }
                        out.events.push(Event::Notice { room: Some(name.clone()), text });
                        self.join_restarts = 0;
                        return;
                    }
                    Err(error) => Err(format!("could not enter the room: {error}")),
                }
            }
            _ => return,
        };
        match result {
            Ok(Some(frame)) => out.frames.push(frame),
            Ok(None) => self.joined_room(&name, out),
            Err(text) => {
                let was_rejoin = self.room.as_ref().is_some_and(|room| room.rejoining());
                if was_rejoin {
                    out.events.push(Event::Warning { room: Some(name.clone()), text });
                    self.room = None;
                } else {
                    self.fail_join(text, out);
                }
                out.frames.push(ClientFrame::Leave { room: name });
            }
        }
    }

    fn on_room_frame(&mut self, frame: ServerFrame, out: &mut Outbox, now: Instant) {
        let me = self.nick.clone();
        let Some(name) = frame_room(&frame).map(str::to_owned) else { return };
        if self.room.as_ref().is_none_or(|room| room.name != name) {
            return;
        }
        match frame {
            ServerFrame::RoomCreated { .. }
            | ServerFrame::JoinPending { .. }
            | ServerFrame::AdmissionReply { .. } => self.on_join_frame(frame, out),
            ServerFrame::Welcome { .. } => {
                let awaiting = self.room.as_ref().is_some_and(|room| room.awaiting_welcome());
                if awaiting {
                    self.on_join_frame(frame, out);
                } else {
                    out.events.push(Event::Warning {
                        room: Some(name),
                        text: "refused a welcome nobody asked for (a relay or impostor trying to move you into another group)".into(),
                    });
                }
            }
            ServerFrame::AdmissionRefused { reason, .. } => self.on_admission_refused(reason, out),
            ServerFrame::Removed { reason, .. } => {
                if let Some(room) = self.room.as_mut()
                    && let Some(frame) = room.removed(reason, out)
                {
                    out.frames.push(frame);
                }
            }
            frame => {
                let time = self.wall(now);
                let Some(room) = self.room.as_mut() else { return };
                room.on_member_frame(&me, frame, time, out);
            }
        }
    }

    fn on_admission_refused(&mut self, reason: AdmissionRefusal, out: &mut Outbox) {
        match reason {
            AdmissionRefusal::LeaderChanged if self.join_restarts < MAX_JOIN_RESTARTS => {
                self.join_restarts += 1;
                if let Some(room) = self.room.as_mut() {
                    out.frames.push(room.restart_join());
                }
            }
            AdmissionRefusal::WrongPassword => self.fail_join("wrong room password".into(), out),
            reason => self.fail_join(format!("admission refused: {reason}"), out),
        }
    }

    fn give_up_room(&mut self, why: &str, text: String) {
        let room = self.current_room_name();
        self.room = None;
        self.drop_queued_lines(why);
        self.events.push(Event::Warning { room, text });
    }

    fn on_error(&mut self, reason: ErrorReason) {
        let joining = self.room.as_ref().is_some_and(|room| !room.is_member());
        let reclaiming = self.room.as_ref().is_some_and(Room::reclaiming);
        match reason {
            ErrorReason::RoomIsAnotherGroup if reclaiming => self.give_up_room(
                "the room now holds another group",
                "while you were away the room was started afresh by others, as a new group; you are not in it and nothing of it was accepted — /join it to enter the new group".into(),
            ),
            ErrorReason::AlreadyInRoom
            | ErrorReason::BannedFromRoom
            | ErrorReason::RoomNameInvalid
            | ErrorReason::TooManyRooms
            | ErrorReason::RoomFull
                if reclaiming =>
            {
                let text = format!("could not get back into the room: {reason}");
                self.give_up_room("could not get back into the room", text)
            }
            ErrorReason::AlreadyInRoom
            | ErrorReason::BannedFromRoom
            | ErrorReason::RoomNameInvalid
            | ErrorReason::TooManyRooms
            | ErrorReason::RoomFull
                if joining =>
            {
                let mut out = Outbox::default();
                self.fail_join(format!("the server said: {reason}"), &mut out);
                self.events.append(&mut out.events);
            }
            reason => self.error(&format!("the server said: {reason}")),
        }
    }

    // ---- Helpers (`engine`'s of the same names) ----

    fn error(&mut self, text: &str) {
        self.events.push(Event::Error { text: text.to_owned() });
    }

    fn left_room(&mut self, room: &str) {
        self.events.push(Event::Left { room: room.to_owned(), nick: self.nick.clone() });
    }

    fn joined_room(&mut self, room: &str, out: &mut Outbox) {
        self.join_deadline = None;
        out.events.push(Event::Joined { room: room.to_owned(), nick: self.nick.clone() });
    }

    fn fail_join(&mut self, text: String, out: &mut Outbox) {
        self.room = None;
        self.join_deadline = None;
        out.events.push(Event::Error { text });
    }

    fn current_room_name(&self) -> Option<String> {
        self.room.as_ref().map(|room| room.name.clone())
    }

    fn queue_line(&mut self, payload: ChatPayload) -> bool {
        if self.room.is_none() {
            self.error("not in a room");
            return false;
        }
        if self.queued_lines.len() >= MAX_QUEUED_LINES {
            self.error("too many lines are already waiting to be sent; not kept");
            return false;
        }
        self.queued_lines.push_back(payload);
        let waiting = self.queued_lines.len();
        self.events.push(Event::Connection(ConnectionEvent::Queued { waiting }));
        true
    }

    fn send_queued_lines(&mut self, now: Instant) {
        let Some(room) = self.room.as_ref().filter(|room| room.is_member()) else { return };
        if !self.online {
            return;
        }
        if let Some(since) = self.reforming_since {
            let everyone_back = room.group().is_some_and(|group| {
                group
                    .members()
                    .iter()
                    .all(|member| member.is_self || room.relay_members.contains(&member.nick))
            });
            if !everyone_back && now - since < WAIT_FOR_OTHERS {
                return;
            }
            self.reforming_since = None;
        }
        let mut sent = 0;
        while let Some(payload) = self.queued_lines.pop_front() {
            if self.room.is_none() {
                self.queued_lines.push_front(payload);
                break;
            }
            match self.encrypt(&payload) {
                Some(frame) => {
                    self.transmit(frame, Some(payload));
                    sent += 1;
                }
                None => self.events.push(Event::Connection(ConnectionEvent::NotSent {
                    texts: vec![payload_text(&payload)],
                    reason: "could not encrypt it".into(),
                })),
            }
        }
        if sent > 0 {
            self.events.push(Event::Connection(ConnectionEvent::QueueSent { count: sent }));
        }
    }

    fn drop_queued_lines(&mut self, reason: &str) {
        if self.queued_lines.is_empty() {
            return;
        }
        let texts = self.queued_lines.drain(..).map(|payload| payload_text(&payload)).collect();
        self.events
            .push(Event::Connection(ConnectionEvent::NotSent { texts, reason: reason.into() }));
    }

    /// `Room::encrypt`, noting the line for the ledger.
    fn encrypt(&mut self, payload: &ChatPayload) -> Option<ClientFrame> {
        let room = self.room.as_mut()?;
        let group_id = room.group()?.group_id();
        let frame = room.encrypt(payload).ok()?;
        self.sent_messages += 1;
        if let ClientFrame::Application { message, .. } = &frame {
            self.encrypted.push(Encrypted {
                text: payload_text(payload),
                number: self.sent_messages,
                group_id,
                message: message.clone(),
            });
        }
        Some(frame)
    }

    fn send(&mut self, frame: ClientFrame) {
        self.transmit(frame, None);
    }

    /// `engine::flush_outbox`: the events are shown, the frames sent, in order.
    fn flush_outbox(&mut self, mut outbox: Outbox) {
        self.events.append(&mut outbox.events);
        for frame in outbox.frames {
            self.send(frame);
        }
    }

    /// Numbers a frame, keeps it until acknowledged, and puts it on the link if there is one.
    fn transmit(&mut self, mut frame: ClientFrame, chat: Option<ChatPayload>) {
        if let Some(rewrite) = self.rewrite.as_mut() {
            rewrite(&mut frame);
        }
        if self.votes_no {
            self.sign_no(&mut frame);
        }
        if let ClientFrame::Leave { .. } = frame {
            self.leaving += 1;
        }
        let bytes = proto::encode(&frame);
        if self.online {
            self.outgoing.push(Up::Frame(bytes.clone()));
        }
        let carries_chat = chat.is_some();
        self.numbers.as_mut().unwrap().on_sent(bytes, chat);
        self.sent.push(frame);
        if carries_chat {
            self.acknowledge();
        }
    }

    /// Turns a vote into a signed no on the commit it is about: the insider lies
    /// consistently, on the wire and under its signature.
    fn sign_no(&mut self, frame: &mut ClientFrame) {
        let ClientFrame::CommitVote { epoch, accept, vote, .. } = frame else { return };
        let Some(commit) = self.last_commit else { return };
        let Some(group) = self.room.as_mut().and_then(Room::group_mut_for_tests) else { return };
        let statement = VoteStatement { epoch: *epoch, commit, accept: false };
        if let Ok(signed) = group.encrypt_message(&proto::encode(&GroupMessage::Vote(statement))) {
            *accept = false;
            *vote = signed;
        }
    }

    fn acknowledge(&mut self) {
        let received = self.numbers.as_mut().unwrap().ack();
        if self.online {
            self.outgoing.push(Up::Ack(received));
        }
    }

    fn is_stale(&mut self, frame: &ServerFrame) -> bool {
        if frame_room(frame).is_none() || self.leaving == 0 {
            return false;
        }
        if let ServerFrame::Left { .. } = frame {
            self.leaving -= 1;
        }
        true
    }
}

fn payload_text(payload: &ChatPayload) -> String {
    match payload {
        ChatPayload::Text(text) => text.clone(),
        ChatPayload::Action(text) => format!("/me {text}"),
    }
}

/// The room a room frame is about (`engine::frame_room`).
pub fn frame_room(frame: &ServerFrame) -> Option<&str> {
    match frame {
        ServerFrame::RoomCreated { room }
        | ServerFrame::JoinPending { room, .. }
        | ServerFrame::AdmissionRequest { room, .. }
        | ServerFrame::AdmissionReply { room, .. }
        | ServerFrame::AdmissionFinish { room, .. }
        | ServerFrame::AdmissionRefused { room, .. }
        | ServerFrame::Welcome { room, .. }
        | ServerFrame::Commit { room, .. }
        | ServerFrame::CommitConfirmed { room, .. }
        | ServerFrame::CommitAborted { room, .. }
        | ServerFrame::CommitRejected { room, .. }
        | ServerFrame::Application { room, .. }
        | ServerFrame::MemberJoined { room, .. }
        | ServerFrame::MemberLeft { room, .. }
        | ServerFrame::LeaderChanged { room, .. }
        | ServerFrame::Removed { room, .. }
        | ServerFrame::MemberList { room, .. }
        | ServerFrame::Reclaimed { room, .. }
        | ServerFrame::ReclaimPending { room, .. }
        | ServerFrame::ReclaimRefused { room, .. }
        | ServerFrame::MemberAway { room, .. }
        | ServerFrame::Left { room } => Some(room),
        ServerFrame::Registered { .. }
        | ServerFrame::RoomList { .. }
        | ServerFrame::Pong
        | ServerFrame::Error { .. }
        | ServerFrame::Resumed { .. }
        | ServerFrame::ResumeRefused { .. }
        | ServerFrame::Ack { .. }
        | ServerFrame::Goodbye { .. } => None,
    }
}
