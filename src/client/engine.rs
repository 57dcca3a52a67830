//! The engine task: owns the connection and the room, turns frames into events and
//! requests into frames.
//!
//! One task per connection, entered through [`spawn`]. It waits on three things: frames from
//! the relay, requests from [`Client`](super::Client) handles, and a keepalive tick. All MLS
//! work is synchronous inside it (through `room::Room`), so no lock is held across an await
//! and the order of frames is the order of processing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::identity::{self, IdentityRequest};
use super::room::{Outbox, Room, Welcomed};
use super::{ClientError, Event, MemberView, Presence, RoomMembers, View};
use crate::identity::PeerTrust;
use crate::mls::MlsMember;
use crate::proto::{
    AdmissionRefusal, ChatPayload, ClientFrame, DisconnectReason, ErrorReason, MAX_CHAT_TEXT_BYTES,
    RoomSummary, ServerFrame,
};
use crate::secret::Secret;
use crate::transport::{SealedReader, SealedWriter};

/// How often the engine proves it is alive to the relay (which drops silent connections).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How many times a join restarts because the room's leader changed mid-admission.
const MAX_JOIN_RESTARTS: u32 = 5;

pub(super) type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// What a [`Client`](super::Client) handle asks of the engine.
pub(super) enum Request {
    Join {
        room: String,
        password: Secret,
        reply: Reply<()>,
    },
    AbandonJoin,
    Leave {
        reply: Reply<()>,
    },
    Send {
        payload: ChatPayload,
        reply: Reply<()>,
    },
    Rooms {
        reply: Reply<Vec<RoomSummary>>,
    },
    Members {
        reply: Reply<RoomMembers>,
    },
    Quit {
        reply: Reply<()>,
    },
    /// `/whoami`, `/verify`, `/trust`.
    Identity(IdentityRequest),
}

struct Engine {
    nick: String,
    mls: MlsMember,
    /// Pins of the keys we have seen, and the marks `/who` shows.
    trust: PeerTrust,
    writer: SealedWriter<OwnedWriteHalf>,
    events: mpsc::UnboundedSender<Event>,
    view: Arc<Mutex<View>>,
    room: Option<Room>,
    join_reply: Option<Reply<()>>,
    join_restarts: u32,
    room_list_waiters: VecDeque<Reply<Vec<RoomSummary>>>,
    /// `None` marks a list the engine asked for itself, to learn the room's order.
    member_list_waiters: VecDeque<Option<Reply<RoomMembers>>>,
    quit_reply: Option<Reply<()>>,
    /// `Leave`s sent per room whose `Left` has not come back yet.
    leaving: HashMap<String, u32>,
}

/// Starts the engine for an authenticated, registered connection.
// `trust` made this the eighth argument; every one is a distinct part.
#[allow(clippy::too_many_arguments)]
pub(super) fn spawn(
    nick: String,
    mls: MlsMember,
    trust: PeerTrust,
    reader: SealedReader<OwnedReadHalf>,
    writer: SealedWriter<OwnedWriteHalf>,
    requests: mpsc::UnboundedReceiver<Request>,
    events: mpsc::UnboundedSender<Event>,
    view: Arc<Mutex<View>>,
) {
    let engine = Engine {
        nick,
        mls,
        trust,
        writer,
        events,
        view,
        room: None,
        join_reply: None,
        join_restarts: 0,
        room_list_waiters: VecDeque::new(),
        member_list_waiters: VecDeque::new(),
        quit_reply: None,
        leaving: HashMap::new(),
    };
    tokio::spawn(engine.run(reader, requests));
}

impl Engine {
    async fn run(
        mut self,
        mut reader: SealedReader<OwnedReadHalf>,
        mut requests: mpsc::UnboundedReceiver<Request>,
    ) {
        let mut keepalive = tokio::time::interval(KEEPALIVE_INTERVAL);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keepalive.tick().await;
        let reason = loop {
            tokio::select! {
                frame = reader.read_frame::<ServerFrame>() => match frame {
                    Ok(Some(ServerFrame::Goodbye { reason })) => break goodbye_text(reason),
                    Ok(Some(frame)) => {
                        if let Err(error) = self.on_frame(frame).await {
                            break format!("lost the connection: {error}");
                        }
                    }
                    Ok(None) => break "the server closed the connection".to_owned(),
                    Err(error) => break format!("lost the connection: {error}"),
                },
                request = requests.recv() => match request {
                    Some(request) => {
                        if let Err(error) = self.on_request(request).await {
                            break format!("lost the connection: {error}");
                        }
                    }
                    // Every handle is gone: leave cleanly, so the relay forgets us now.
                    None => {
                        let _ = self.writer.write_frame(&ClientFrame::Quit).await;
                        break "quit".to_owned();
                    }
                },
                _ = keepalive.tick() => {
                    if self.writer.write_frame(&ClientFrame::Ping).await.is_err() {
                        break "lost the connection".to_owned();
                    }
                }
            }
        };
        self.finish(reason);
    }

    /// Tells everyone waiting that the connection is over.
    fn finish(mut self, reason: String) {
        self.set_view(|view| {
            view.connected = false;
            view.room = None;
        });
        if let Some(reply) = self.quit_reply.take() {
            let _ = reply.send(Ok(()));
        } else {
            self.emit(Event::Disconnected { reason: reason.clone() });
        }
        let error = || ClientError::Disconnected(reason.clone());
        if let Some(reply) = self.join_reply.take() {
            let _ = reply.send(Err(error()));
        }
        for reply in self.room_list_waiters.drain(..) {
            let _ = reply.send(Err(error()));
        }
        for reply in self.member_list_waiters.drain(..).flatten() {
            let _ = reply.send(Err(error()));
        }
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn set_view(&self, change: impl FnOnce(&mut View)) {
        let mut view = self.view.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut view);
    }

    async fn send(&mut self, frame: &ClientFrame) -> std::io::Result<()> {
        self.note_leave(frame);
        self.writer.write_frame(frame).await
    }

    async fn flush_outbox(&mut self, outbox: Outbox) -> std::io::Result<()> {
        for event in outbox.events {
            self.emit(event);
        }
        for frame in &outbox.frames {
            self.note_leave(frame);
            self.writer.queue(&crate::proto::encode(frame))?;
        }
        self.writer.flush().await
    }

    /// Counts a `Leave` on its way: until the relay's `Left` for it arrives, frames about
    /// that room belong to the membership we ended, not to a new one.
    fn note_leave(&mut self, frame: &ClientFrame) {
        if let ClientFrame::Leave { room } = frame {
            *self.leaving.entry(room.clone()).or_default() += 1;
        }
    }

    /// Whether a frame belongs to a membership we already ended; consumes the `Left` that
    /// closes one.
    fn is_stale(&mut self, frame: &ServerFrame) -> bool {
        let Some(room) = frame_room(frame) else { return false };
        let Some(pending) = self.leaving.get_mut(room) else { return false };
        if let ServerFrame::Left { .. } = frame {
            *pending -= 1;
            if *pending == 0 {
                self.leaving.remove(room);
            }
        }
        true
    }

    async fn on_request(&mut self, request: Request) -> std::io::Result<()> {
        match request {
            Request::Join { room, password, reply } => {
                if let Some(current) = self.room.take() {
                    self.left_room(&current.name);
                    self.send(&ClientFrame::Leave { room: current.name }).await?;
                }
                if let Some(previous) = self.join_reply.replace(reply) {
                    let _ = previous
                        .send(Err(ClientError::Other("superseded by a newer /join".into())));
                }
                self.join_restarts = 0;
                self.room = Some(Room::new(room.clone(), password));
                self.send(&ClientFrame::Join { room }).await?;
            }
            Request::AbandonJoin => {
                if let Some(room) = self.room.take_if(|room| !room.is_member()) {
                    self.join_reply = None;
                    self.send(&ClientFrame::Leave { room: room.name }).await?;
                }
            }
            Request::Leave { reply } => match self.room.take() {
                Some(room) => {
                    self.left_room(&room.name);
                    let _ = reply.send(Ok(()));
                    self.send(&ClientFrame::Leave { room: room.name }).await?;
                }
                None => {
                    let _ = reply.send(Err(ClientError::NotInRoom));
                }
            },
            Request::Send { payload, reply } => {
                let frame = match self.room.as_mut() {
                    _ if payload_len(&payload) > MAX_CHAT_TEXT_BYTES => {
                        Err(ClientError::MessageTooLong {
                            len: payload_len(&payload),
                            max: MAX_CHAT_TEXT_BYTES,
                        })
                    }
                    Some(room) if room.is_member() => room
                        .encrypt(&payload)
                        .map_err(|error| ClientError::Other(format!("message not sent: {error}"))),
                    _ => Err(ClientError::NotInRoom),
                };
                match frame {
                    Ok(frame) => {
                        self.send(&frame).await?;
                        let _ = reply.send(Ok(()));
                    }
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                }
            }
            Request::Rooms { reply } => {
                self.room_list_waiters.push_back(reply);
                self.send(&ClientFrame::ListRooms).await?;
            }
            Request::Members { reply } => {
                match self.room.as_ref().filter(|room| room.is_member()) {
                    Some(room) => {
                        let frame = ClientFrame::ListMembers { room: room.name.clone() };
                        self.member_list_waiters.push_back(Some(reply));
                        self.send(&frame).await?;
                    }
                    None => {
                        let _ = reply.send(Err(ClientError::NotInRoom));
                    }
                }
            }
            Request::Quit { reply } => {
                self.quit_reply = Some(reply);
                self.send(&ClientFrame::Quit).await?;
            }
            Request::Identity(request) => {
                identity::answer(request, &mut self.trust, &self.nick, self.room.as_ref())
            }
        }
        Ok(())
    }

    /// Our own departure from a room, as the user sees it.
    fn left_room(&mut self, room: &str) {
        self.set_view(|view| view.room = None);
        self.emit(Event::Left { room: room.to_owned(), nick: self.nick.clone() });
    }

    fn joined_room(&mut self, room: &str) {
        let name = room.to_owned();
        self.set_view(|view| view.room = Some(name));
        self.emit(Event::Joined { room: room.to_owned(), nick: self.nick.clone() });
        if let Some(reply) = self.join_reply.take() {
            let _ = reply.send(Ok(()));
        }
    }

    fn fail_join(&mut self, error: ClientError) {
        self.room = None;
        match self.join_reply.take() {
            Some(reply) => {
                let _ = reply.send(Err(error));
            }
            None => self.emit(Event::Error { text: error.to_string() }),
        }
    }

    /// One frame from the relay. Room frames go to the room they name (frames about any
    /// other room are stale and dropped); everything a room produces goes out in one flush.
    async fn on_frame(&mut self, frame: ServerFrame) -> std::io::Result<()> {
        let mut outbox = Outbox::default();
        if self.is_stale(&frame) {
            return Ok(());
        }
        // The frames after which the group's members may have changed: check their keys
        // against the pins then.
        let check_pins =
            matches!(frame, ServerFrame::Welcome { .. } | ServerFrame::CommitConfirmed { .. });
        match frame {
            ServerFrame::RoomList { rooms } => {
                if let Some(reply) = self.room_list_waiters.pop_front() {
                    let _ = reply.send(Ok(rooms));
                }
            }
            ServerFrame::MemberList { room, members } => self.on_member_list(&room, members),
            ServerFrame::Error { reason } => self.on_error(reason),
            ServerFrame::Registered { .. } | ServerFrame::Left { .. } | ServerFrame::Pong => {}
            ServerFrame::Goodbye { .. } => {} // handled by the read loop
            room_frame => self.on_room_frame(room_frame, &mut outbox),
        }
        if check_pins {
            identity::check_pins(&mut self.trust, self.room.as_ref(), &mut outbox.events);
        }
        self.flush_outbox(outbox).await
    }

    /// Joining: the relay's and the leader's answers to our `Join`.
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
            Ok(None) => self.joined_room(&name),
            Err(text) => {
                let was_rejoin = self.room.as_ref().is_some_and(|room| room.rejoining());
                if was_rejoin {
                    out.events.push(Event::Warning { room: Some(name.clone()), text });
                    self.room = None;
                    self.set_view(|view| view.room = None);
                } else {
                    self.fail_join(ClientError::Other(text));
                }
                out.frames.push(ClientFrame::Leave { room: name });
            }
        }
    }

    /// Everything else about a room: admissions we run as leader, key changes, members.
    fn on_room_frame(&mut self, frame: ServerFrame, out: &mut Outbox) {
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
                    // Only our own admission may bring a Welcome; anything else is forged.
                    out.events.push(Event::Warning {
                        room: Some(name),
                        text: "refused a welcome nobody asked for (a relay or impostor trying to move you into another group)".into(),
                    });
                }
            }
            ServerFrame::AdmissionRefused { reason, .. } => self.on_admission_refused(reason, out),
            ServerFrame::Removed { reason, .. } => {
                if self.join_restarts >= MAX_JOIN_RESTARTS {
                    self.room = None;
                    self.set_view(|view| view.room = None);
                    out.events.push(Event::Warning {
                        room: Some(name),
                        text: format!("taken out of the room again ({reason}); not rejoining — /join it to try again"),
                    });
                    return;
                }
                self.join_restarts += 1;
                if let Some(room) = self.room.as_mut() {
                    let frame = room.removed(reason, out);
                    out.frames.push(frame);
                }
            }
            frame => {
                let Some(room) = self.room.as_mut() else { return };
                room.on_member_frame(&me, frame, SystemTime::now(), out);
            }
        }
    }

    /// The leader (or the relay) refused our admission.
    fn on_admission_refused(&mut self, reason: AdmissionRefusal, out: &mut Outbox) {
        match reason {
            AdmissionRefusal::LeaderChanged if self.join_restarts < MAX_JOIN_RESTARTS => {
                self.join_restarts += 1;
                if let Some(room) = self.room.as_mut() {
                    out.frames.push(room.restart_join());
                }
            }
            AdmissionRefusal::WrongPassword => self.fail_join(ClientError::WrongRoomPassword),
            reason => self.fail_join(ClientError::AdmissionRefused(reason)),
        }
    }

    fn on_member_list(&mut self, room: &str, members: Vec<String>) {
        let me = self.nick.clone();
        let waiter = self.member_list_waiters.pop_front().flatten();
        if let Some(current) = self.room.as_mut().filter(|current| current.name == room) {
            current.relay_members = members;
            if let Some(reply) = waiter {
                let _ = reply.send(Ok(member_views(current, &me, &self.trust)));
            }
        } else if let Some(reply) = waiter {
            let _ = reply.send(Err(ClientError::NotInRoom));
        }
    }

    /// Relay errors answer the request that caused them; match them to what is waiting.
    fn on_error(&mut self, reason: ErrorReason) {
        let joining = self.room.as_ref().is_some_and(|room| !room.is_member());
        match reason {
            ErrorReason::AlreadyInRoom
            | ErrorReason::BannedFromRoom
            | ErrorReason::RoomNameInvalid
            | ErrorReason::TooManyRooms
            | ErrorReason::RoomFull
                if joining =>
            {
                self.fail_join(ClientError::Relay(reason));
            }
            ErrorReason::NotInRoom if !self.member_list_waiters.is_empty() => {
                if let Some(Some(reply)) = self.member_list_waiters.pop_front() {
                    let _ = reply.send(Err(ClientError::NotInRoom));
                }
            }
            ErrorReason::RateLimited => self.emit(Event::Warning {
                room: self.room.as_ref().map(|room| room.name.clone()),
                text: "message not delivered: slow down".into(),
            }),
            ErrorReason::MessageTooLarge => self.emit(Event::Warning {
                room: self.room.as_ref().map(|room| room.name.clone()),
                text: "message not delivered: the relay found it too large".into(),
            }),
            reason => self.emit(Event::Error { text: format!("the server said: {reason}") }),
        }
    }
}

/// `/who`: every leaf of the MLS group (who actually holds the room's keys), with the
/// relay's leader marked, and whoever is only on one side of the relay's list and the group
/// marked as such, so a relay that adds or hides a member shows.
fn member_views(room: &Room, me: &str, trust: &PeerTrust) -> RoomMembers {
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
            presence: if member.is_self || room.relay_members.contains(&member.nick) {
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
            });
        }
    }
    // The relay's order (the leader first, then by seniority) reads best; leaves only in the
    // group come last.
    let rank = |nick: &str| room.relay_members.iter().position(|member| member == nick);
    members.sort_by_key(|member| rank(&member.nick).unwrap_or(usize::MAX));
    RoomMembers { room: room.name.clone(), members }
}

/// The bytes of chat text in a payload.
fn payload_len(payload: &ChatPayload) -> usize {
    match payload {
        ChatPayload::Text(text) | ChatPayload::Action(text) => text.len(),
    }
}

/// The room a room frame is about.
fn frame_room(frame: &ServerFrame) -> Option<&str> {
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
        | ServerFrame::Left { room } => Some(room),
        ServerFrame::Registered { .. }
        | ServerFrame::RoomList { .. }
        | ServerFrame::Pong
        | ServerFrame::Error { .. }
        | ServerFrame::Goodbye { .. } => None,
    }
}

fn goodbye_text(reason: DisconnectReason) -> String {
    format!("the server closed the connection: {reason}")
}
