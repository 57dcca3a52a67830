//! The engine task: owns the connection and the room, turns frames into events and
//! requests into frames.
//!
//! One task per connection, entered through [`spawn`]. It waits on three things: frames from
//! the relay, requests from [`Client`](super::Client) handles, and a keepalive tick. All MLS
//! work is synchronous inside it (through `room::Room`), so no lock is held across an await
//! and the order of frames is the order of processing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::identity::{self, IdentityRequest}; // identity hook
use super::room::{Outbox, Phase, Room};
use super::{ClientError, Event, MemberView, RoomMembers, View};
use crate::identity::PeerTrust; // identity hook
use crate::mls::MlsMember;
use crate::proto::{
    AdmissionRefusal, ChatPayload, ClientFrame, DisconnectReason, ErrorReason, RoomSummary,
    ServerFrame,
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
    Join { room: String, password: Secret, reply: Reply<()> },
    AbandonJoin,
    Leave { reply: Reply<()> },
    Send { payload: ChatPayload, reply: Reply<()> },
    Rooms { reply: Reply<Vec<RoomSummary>> },
    Members { reply: Reply<RoomMembers> },
    Quit { reply: Reply<()> },
    Identity(IdentityRequest), // identity hook
}

struct Engine {
    nick: String,
    mls: MlsMember,
    trust: PeerTrust, // identity hook
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
}

/// Starts the engine for an authenticated, registered connection.
// identity hook: `trust` made this the eighth argument; every one is a distinct part.
#[allow(clippy::too_many_arguments)]
pub(super) fn spawn(
    nick: String,
    mls: MlsMember,
    trust: PeerTrust, // identity hook
    reader: SealedReader<OwnedReadHalf>,
    writer: SealedWriter<OwnedWriteHalf>,
    requests: mpsc::UnboundedReceiver<Request>,
    events: mpsc::UnboundedSender<Event>,
    view: Arc<Mutex<View>>,
) {
    let engine = Engine {
        nick,
        mls,
        trust, // identity hook
        writer,
        events,
        view,
        room: None,
        join_reply: None,
        join_restarts: 0,
        room_list_waiters: VecDeque::new(),
        member_list_waiters: VecDeque::new(),
        quit_reply: None,
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
        self.writer.write_frame(frame).await
    }

    async fn flush_outbox(&mut self, outbox: Outbox) -> std::io::Result<()> {
        for event in outbox.events {
            self.emit(event);
        }
        for frame in &outbox.frames {
            self.writer.queue(&crate::proto::encode(frame))?;
        }
        self.writer.flush().await
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
                    Some(room) if room.is_member() => room.encrypt(&payload),
                    _ => Err(ClientError::NotInRoom.to_string()),
                };
                match frame {
                    Ok(frame) => {
                        self.send(&frame).await?;
                        let _ = reply.send(Ok(()));
                    }
                    Err(text) if self.room.as_ref().is_some_and(Room::is_member) => {
                        let _ = reply
                            .send(Err(ClientError::Other(format!("message not sent: {text}"))));
                    }
                    Err(_) => {
                        let _ = reply.send(Err(ClientError::NotInRoom));
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
            // identity hook
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

    /// The current room, if a frame about `name` concerns it.
    fn room_named(&mut self, name: &str) -> Option<&mut Room> {
        self.room.as_mut().filter(|room| room.name == name)
    }

    async fn on_frame(&mut self, frame: ServerFrame) -> std::io::Result<()> {
        let me = self.nick.clone();
        let mut outbox = Outbox::default();
        // identity hook: the frames after which the group's members may have changed.
        let check_pins = matches!(
            frame,
            ServerFrame::Welcome { .. }
                | ServerFrame::Commit { .. }
                | ServerFrame::CommitAccepted { .. }
        );
        match frame {
            ServerFrame::RoomCreated { room } => {
                let mls = &self.mls;
                let Some(current) = self.room.as_mut().filter(|current| current.name == room)
                else {
                    return Ok(());
                };
                match current.created(mls) {
                    Ok(()) => self.joined_room(&room),
                    Err(error) => {
                        self.fail_join(ClientError::Other(format!(
                            "cannot create the room: {error}"
                        )));
                        self.send(&ClientFrame::Leave { room }).await?;
                    }
                }
            }
            ServerFrame::JoinPending { room, leader } => {
                let Some(current) = self.room_named(&room) else { return Ok(()) };
                let frame = current.admission_pending(&me, leader);
                self.send(&frame).await?;
            }
            ServerFrame::AdmissionReply { room, pake_message, .. } => {
                let mls = &self.mls;
                let Some(current) = self.room.as_mut().filter(|current| current.name == room)
                else {
                    return Ok(());
                };
                match current.admission_reply(mls, &pake_message) {
                    Ok(frame) => self.send(&frame).await?,
                    Err(error) => {
                        self.fail_join(ClientError::Other(format!("admission failed: {error}")));
                        self.send(&ClientFrame::Leave { room }).await?;
                    }
                }
            }
            ServerFrame::AdmissionRefused { room, reason } => {
                if self.room_named(&room).is_none() {
                    return Ok(());
                }
                match reason {
                    AdmissionRefusal::LeaderChanged if self.join_restarts < MAX_JOIN_RESTARTS => {
                        self.join_restarts += 1;
                        if let Some(current) = self.room_named(&room) {
                            current.phase = Phase::Requested;
                        }
                        self.send(&ClientFrame::Join { room }).await?;
                    }
                    AdmissionRefusal::WrongPassword => {
                        self.fail_join(ClientError::WrongRoomPassword)
                    }
                    reason => self.fail_join(ClientError::AdmissionRefused(reason)),
                }
            }
            ServerFrame::Welcome { room, message } => {
                let mls = &self.mls;
                let Some(current) = self.room.as_mut().filter(|current| current.name == room)
                else {
                    return Ok(());
                };
                let was_member = current.is_member();
                match current.welcomed(mls, &message) {
                    Ok(()) if was_member => outbox.events.push(Event::Notice {
                        room: Some(room.clone()),
                        text: "the room's keys were repaired".into(),
                    }),
                    Ok(()) => {
                        self.joined_room(&room);
                        // Learn the room's order (who leads next) from the relay.
                        self.member_list_waiters.push_back(None);
                        outbox.frames.push(ClientFrame::ListMembers { room: room.clone() });
                    }
                    Err(error) => {
                        self.fail_join(ClientError::Other(format!(
                            "could not enter the room: {error}"
                        )));
                        outbox.frames.push(ClientFrame::Leave { room: room.clone() });
                    }
                }
            }
            ServerFrame::AdmissionRequest { room, joiner, pake_message } => {
                if let Some(current) = self.room_named(&room) {
                    current.admission_request(&me, joiner, &pake_message, &mut outbox);
                }
            }
            ServerFrame::AdmissionFinish { room, joiner, confirmation, sealed_key_package } => {
                if let Some(current) = self.room_named(&room) {
                    current.admission_finish(
                        joiner,
                        &confirmation,
                        &sealed_key_package,
                        &mut outbox,
                    );
                    current.drive_commits(&mut outbox);
                }
            }
            ServerFrame::Commit { room, from, commit } => {
                let mls = &self.mls;
                if let Some(current) = self.room.as_mut().filter(|current| current.name == room) {
                    current.incoming_commit(mls, &from, &commit, SystemTime::now(), &mut outbox);
                }
            }
            ServerFrame::CommitAccepted { room, .. } => {
                if let Some(current) = self.room_named(&room) {
                    current.commit_accepted(SystemTime::now(), &mut outbox);
                }
            }
            ServerFrame::CommitRejected { room, reason } => {
                let mls = &self.mls;
                if let Some(current) = self.room.as_mut().filter(|current| current.name == room) {
                    current.commit_rejected(mls, reason, &mut outbox);
                }
            }
            ServerFrame::Application { room, from, message } => {
                let mls = &self.mls;
                if let Some(current) = self.room.as_mut().filter(|current| current.name == room) {
                    current.incoming_message(mls, &from, &message, SystemTime::now(), &mut outbox);
                }
            }
            ServerFrame::MemberJoined { room, nick } => {
                if let Some(current) = self.room_named(&room) {
                    current.member_joined(nick);
                }
            }
            ServerFrame::MemberLeft { room, nick, leader } => {
                if let Some(current) = self.room_named(&room) {
                    current.member_left(&me, &nick, leader);
                    current.drive_commits(&mut outbox);
                }
            }
            ServerFrame::RepairRequest { room, from, key_package } => {
                if let Some(current) = self.room_named(&room) {
                    current.repair_request(from, key_package);
                    current.drive_commits(&mut outbox);
                }
            }
            ServerFrame::RoomList { rooms } => {
                if let Some(reply) = self.room_list_waiters.pop_front() {
                    let _ = reply.send(Ok(rooms));
                }
            }
            ServerFrame::MemberList { room, members } => {
                let waiter = self.member_list_waiters.pop_front().flatten();
                // identity hook: `self.room` rather than `room_named`, so `self.trust` can be read.
                if let Some(current) = self.room.as_mut().filter(|current| current.name == room) {
                    current.relay_members = members;
                    if let Some(reply) = waiter {
                        let _ = reply.send(Ok(member_views(current, &me, &self.trust)));
                    }
                } else if let Some(reply) = waiter {
                    let _ = reply.send(Err(ClientError::NotInRoom));
                }
            }
            ServerFrame::Error { reason } => self.on_error(reason),
            ServerFrame::Registered { .. } | ServerFrame::Left { .. } | ServerFrame::Pong => {}
            ServerFrame::Goodbye { .. } => {} // handled by the read loop
        }
        // identity hook: the pin check, with the members as they are now.
        if check_pins {
            identity::check_pins(&mut self.trust, self.room.as_ref(), &mut outbox.events);
        }
        self.flush_outbox(outbox).await
    }

    /// Relay errors answer the request that caused them; match them to what is waiting.
    fn on_error(&mut self, reason: ErrorReason) {
        let joining = self.room.as_ref().is_some_and(|room| !room.is_member());
        match reason {
            ErrorReason::AlreadyInRoom
            | ErrorReason::BannedFromRoom
            | ErrorReason::RoomNameInvalid
            | ErrorReason::TooManyRooms
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
            reason => self.emit(Event::Error { text: format!("the server said: {reason}") }),
        }
    }
}

fn member_views(room: &Room, me: &str, trust: &PeerTrust) -> RoomMembers {
    let fingerprints = room.group().map(|group| group.members()).unwrap_or_default();
    let members = room
        .relay_members
        .iter()
        .enumerate()
        .map(|(index, nick)| MemberView {
            nick: nick.clone(),
            fingerprint: fingerprints
                .iter()
                .find(|member| member.nick == *nick)
                .map(|member| member.fingerprint.clone()),
            is_leader: index == 0,
            is_self: nick == me,
            trust: identity::mark(trust, &fingerprints, nick), // identity hook
        })
        .collect();
    RoomMembers { room: room.name.clone(), members }
}

fn goodbye_text(reason: DisconnectReason) -> String {
    format!("the server closed the connection: {reason}")
}
