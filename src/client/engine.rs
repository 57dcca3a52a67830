//! The engine task: owns the session and the room, turns frames into events and requests
//! into frames.
//!
//! One task per session, entered through [`spawn`]. While connected it waits on three
//! things: frames from the relay, requests from [`Client`](super::Client) handles, and a
//! keepalive tick that also notices a dead link. All MLS work is synchronous inside it
//! (through `room::Room`), so no lock is held across an await and the order of frames is the
//! order of processing.
//!
//! A lost link does not end the session (`reconnect` decides what does): the engine
//! reconnects with backoff, keeps lines typed meanwhile, and resumes the session (`resume`:
//! both sides send again what the other missed), or, when the relay forgot it, registers
//! anew and takes its room back (`Reclaim`), rejoining through admission where it must.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::identity::{self, IdentityRequest};
use super::reconnect::{self, Backoff};
use super::resume::SessionNumbers;
use super::room::{Outbox, Room, Welcomed};
use super::{
    ClientError, ConnectionEvent, Event, LinkState, MemberView, Presence, RawClient, RoomMembers,
    View,
};
use crate::identity::PeerTrust;
use crate::mls::MlsMember;
use crate::proto::{
    AdmissionRefusal, ChatPayload, ClientFrame, DisconnectReason, ErrorReason, MAX_CHAT_TEXT_BYTES,
    RoomSummary, ServerFrame,
};
use crate::secret::Secret;
use crate::transport::{SealedReader, SealedWriter};

/// How often the engine proves it is alive to the relay, and checks that the relay is.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// Silence from the relay after which the link counts as dead (three keepalives unanswered):
/// a laptop waking from sleep, or a NAT that forgot the connection, is noticed in seconds.
const DEAD_LINK_AFTER: Duration = Duration::from_secs(15);

/// How long one reconnection attempt (connect, handshake, resume or register) may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines typed while offline that are kept to send once back.
pub const MAX_QUEUED_LINES: usize = 100;

/// After a relay restart, how long lines typed offline wait for the room's other members
/// to come back too, so that they are there to read them.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(10);

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

/// Where the session's links go, and the session's numbering.
pub(super) struct Link {
    pub server: String,
    /// Kept for reconnecting, in memory only.
    pub access_code: Secret,
    pub numbers: SessionNumbers,
}

/// What the engine starts with.
pub(super) struct Parts {
    pub nick: String,
    pub mls: MlsMember,
    pub trust: PeerTrust,
    pub link: Link,
    pub events: mpsc::UnboundedSender<Event>,
    pub view: Arc<Mutex<View>>,
}

/// How serving one connection ended.
enum Ended {
    /// The session is over (quit, or a relay that will not have us back).
    Session(String),
    /// Only the link: reconnect.
    Link(String),
}

/// What a reconnection attempt brought.
enum Reconnected {
    /// The same session; the relay had handled this many of our frames and will send
    /// `backlog` frames we missed.
    Resumed { handled: u64, backlog: u64 },
    /// A new session.
    Registered { numbers: SessionNumbers },
}

struct Engine {
    nick: String,
    mls: MlsMember,
    /// Pins of the keys we have seen, and the marks `/who` shows.
    trust: PeerTrust,
    link: Link,
    /// `None` while reconnecting.
    writer: Option<SealedWriter<OwnedWriteHalf>>,
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
    /// Lines typed while the room could not take them (offline, or rejoining), in order.
    queued_lines: VecDeque<ChatPayload>,
    /// Frames still to come that the relay kept while we were away: messages in them are late.
    backlog: u64,
    /// Since when the link has been down, while it is.
    offline_since: Option<SystemTime>,
    /// Since when the room is being re-formed on a relay that forgot it (queued lines wait
    /// for the others, up to [`WAIT_FOR_OTHERS`]).
    reforming_since: Option<Instant>,
}

/// Starts the engine for an authenticated, registered connection.
pub(super) fn spawn(
    parts: Parts,
    reader: SealedReader<OwnedReadHalf>,
    writer: SealedWriter<OwnedWriteHalf>,
    requests: mpsc::UnboundedReceiver<Request>,
) {
    let Parts { nick, mls, trust, link, events, view } = parts;
    let engine = Engine {
        nick,
        mls,
        trust,
        link,
        writer: Some(writer),
        events,
        view,
        room: None,
        join_reply: None,
        join_restarts: 0,
        room_list_waiters: VecDeque::new(),
        member_list_waiters: VecDeque::new(),
        quit_reply: None,
        leaving: HashMap::new(),
        queued_lines: VecDeque::new(),
        backlog: 0,
        offline_since: None,
        reforming_since: None,
    };
    tokio::spawn(engine.run(reader, requests));
}

impl Engine {
    async fn run(
        mut self,
        mut reader: SealedReader<OwnedReadHalf>,
        mut requests: mpsc::UnboundedReceiver<Request>,
    ) {
        loop {
            let lost = match self.serve(&mut reader, &mut requests).await {
                Ended::Session(reason) => return self.finish(reason),
                Ended::Link(reason) => reason,
            };
            self.writer = None;
            match self.reconnect(&mut requests, lost).await {
                Ok(new_reader) => reader = new_reader,
                Err(reason) => return self.finish(reason),
            }
        }
    }

    /// Serves one connection until it ends.
    async fn serve(
        &mut self,
        reader: &mut SealedReader<OwnedReadHalf>,
        requests: &mut mpsc::UnboundedReceiver<Request>,
    ) -> Ended {
        let mut keepalive = tokio::time::interval(KEEPALIVE_INTERVAL);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keepalive.tick().await;
        let mut last_heard = Instant::now();
        loop {
            let outcome = tokio::select! {
                frame = reader.read_frame::<ServerFrame>() => match frame {
                    Ok(Some(ServerFrame::Goodbye { reason })) => {
                        return self.ended_by_goodbye(reason);
                    }
                    Ok(Some(frame)) => {
                        last_heard = Instant::now();
                        self.on_frame(frame).await
                    }
                    Ok(None) => return self.link_lost("the server closed the connection".into()),
                    Err(error) => return self.link_lost(format!("lost the connection: {error}")),
                },
                request = requests.recv() => match request {
                    Some(request) => self.on_request(request).await,
                    // Every handle is gone: leave cleanly, so the relay forgets us now.
                    None => {
                        let _ = self.send(&ClientFrame::Quit).await;
                        return Ended::Session("quit".into());
                    }
                },
                _ = keepalive.tick() => {
                    if last_heard.elapsed() >= DEAD_LINK_AFTER {
                        let silence = DEAD_LINK_AFTER.as_secs();
                        return self.link_lost(format!("no answer from the server for {silence} s"));
                    }
                    self.keepalive().await
                }
            };
            if let Err(error) = outcome {
                return self.link_lost(format!("lost the connection: {error}"));
            }
        }
    }

    /// The link ended without a goodbye: the session goes on, unless we were quitting.
    fn link_lost(&self, reason: String) -> Ended {
        if self.quit_reply.is_some() { Ended::Session(reason) } else { Ended::Link(reason) }
    }

    fn ended_by_goodbye(&self, reason: DisconnectReason) -> Ended {
        let text = goodbye_text(reason);
        if reconnect::goodbye_is_final(reason) || self.quit_reply.is_some() {
            Ended::Session(text)
        } else {
            Ended::Link(text)
        }
    }

    /// Proves we are alive and acknowledges what we received.
    async fn keepalive(&mut self) -> std::io::Result<()> {
        self.send(&ClientFrame::Ping).await?;
        self.acknowledge().await?;
        // Lines waiting for the others to come back stop waiting at some point.
        if self.backlog == 0 && !self.queued_lines.is_empty() {
            self.send_queued_lines().await?;
        }
        Ok(())
    }

    async fn acknowledge(&mut self) -> std::io::Result<()> {
        let received = self.link.numbers.ack();
        match self.writer.as_mut() {
            // `Ack` is not numbered: it belongs to this connection alone.
            Some(writer) => writer.write_frame(&ClientFrame::Ack { received }).await,
            None => Ok(()),
        }
    }

    /// Reconnects until it works or cannot: the new connection's reader, or why the
    /// session is over. Requests keep being answered meanwhile.
    async fn reconnect(
        &mut self,
        requests: &mut mpsc::UnboundedReceiver<Request>,
        reason: String,
    ) -> Result<SealedReader<OwnedReadHalf>, String> {
        let offline_since = *self.offline_since.get_or_insert_with(SystemTime::now);
        self.emit(Event::Connection(ConnectionEvent::Lost { reason }));
        let mut backoff = Backoff::default();
        let mut last_error = None;
        loop {
            let attempt = backoff.attempt();
            let retry_in = backoff.next_delay(rand::random());
            self.show_link(LinkState::Reconnecting { attempt, waiting: self.queued_lines.len() });
            self.emit(Event::Connection(ConnectionEvent::Reconnecting {
                attempt,
                retry_in,
                last_error: last_error.take(),
            }));
            self.answering_offline(requests, tokio::time::sleep(retry_in)).await?;
            let resume = (self.link.numbers.token().clone(), self.link.numbers.received());
            let attempt = try_link(
                self.link.server.clone(),
                self.link.access_code.clone(),
                self.nick.clone(),
                resume,
            );
            let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, attempt);
            let outcome = self.answering_offline(requests, attempt).await?;
            match outcome {
                Ok(Ok((raw, reconnected))) => {
                    let RawClient { reader, writer } = raw;
                    self.writer = Some(writer);
                    self.show_link(LinkState::Connected);
                    if let Err(error) = self.back_online(reconnected, offline_since).await {
                        last_error = Some(error.to_string());
                        self.writer = None;
                        continue;
                    }
                    self.offline_since = None;
                    return Ok(reader);
                }
                Ok(Err(error)) if reconnect::is_final(&error) => {
                    return Err(format!("cannot reconnect: {error}"));
                }
                Ok(Err(error)) => last_error = Some(error.to_string()),
                Err(_) => last_error = Some("no answer from the server in time".into()),
            }
        }
    }

    /// Awaits `work` (which must not need the engine) while answering requests as offline;
    /// `Err` when the user quits meanwhile.
    async fn answering_offline<T>(
        &mut self,
        requests: &mut mpsc::UnboundedReceiver<Request>,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, String> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Ok(done),
                request = requests.recv() => match request {
                    Some(request) => {
                        if let Some(reason) = self.on_request_offline(request) {
                            return Err(reason);
                        }
                    }
                    None => return Err("quit".into()),
                },
            }
        }
    }

    /// Carries on after a reconnection: sends again what the relay missed (a resumed
    /// session), or takes the room back (a new one).
    async fn back_online(
        &mut self,
        reconnected: Reconnected,
        offline_since: SystemTime,
    ) -> std::io::Result<()> {
        match reconnected {
            Reconnected::Resumed { handled, backlog } => {
                let resend = self.link.numbers.resumed(handled);
                if resend.lost > 0 {
                    self.emit(Event::Warning {
                        room: self.current_room_name(),
                        text: format!(
                            "{} of your frames were lost with the connection",
                            resend.lost
                        ),
                    });
                }
                self.backlog = backlog;
                self.emit(Event::Connection(ConnectionEvent::Resumed { missed: backlog }));
                if let Some(writer) = self.writer.as_mut() {
                    for frame in &resend.frames {
                        writer.queue(frame)?;
                    }
                    writer.flush().await?;
                }
                if backlog == 0 {
                    self.send_queued_lines().await?;
                }
                Ok(())
            }
            Reconnected::Registered { numbers } => {
                let relay_restarted = numbers.relay_boot() != self.link.numbers.relay_boot();
                // What the old session sent that the relay never acknowledged may or may not
                // have reached the room: say so rather than risk sending it twice.
                let in_doubt = self.link.numbers.chat_in_doubt();
                self.link.numbers = numbers;
                self.leaving.clear();
                self.backlog = 0;
                self.fail_waiters("the session was lost with the connection");
                self.emit(Event::Connection(ConnectionEvent::Reconnected {
                    relay_restarted,
                    offline_since,
                }));
                if !in_doubt.is_empty() {
                    self.emit(Event::Connection(ConnectionEvent::NotSent {
                        texts: in_doubt.iter().map(payload_text).collect(),
                        reason: "sent just before the connection dropped; they may not have reached the room".into(),
                    }));
                }
                let frame = self.room.as_mut().map(|room| room.reclaim());
                self.reforming_since = Some(Instant::now());
                if let Some(frame) = frame {
                    self.send(&frame).await?;
                }
                Ok(())
            }
        }
    }

    /// A request while there is no connection: answered from what the engine knows, lines
    /// kept for later. `Some` ends the session (the user quit).
    fn on_request_offline(&mut self, request: Request) -> Option<String> {
        let offline =
            || ClientError::Offline("reconnecting to the server; try again once back".into());
        match request {
            Request::Send { payload, reply } => {
                let _ = reply.send(self.queue_line(payload));
            }
            Request::Quit { reply } => {
                self.quit_reply = Some(reply);
                return Some("quit".into());
            }
            Request::Identity(request) => {
                identity::answer(request, &mut self.trust, &self.nick, self.room.as_ref())
            }
            Request::AbandonJoin => {}
            Request::Join { reply, .. } => {
                let _ = reply.send(Err(offline()));
            }
            Request::Leave { reply } => {
                let _ = reply.send(Err(offline()));
            }
            Request::Rooms { reply } => {
                let _ = reply.send(Err(offline()));
            }
            Request::Members { reply } => {
                let _ = reply.send(Err(offline()));
            }
        }
        None
    }

    /// Keeps a line to send once the room can take it.
    fn queue_line(&mut self, payload: ChatPayload) -> Result<(), ClientError> {
        if self.room.is_none() {
            return Err(ClientError::NotInRoom);
        }
        if self.queued_lines.len() >= MAX_QUEUED_LINES {
            return Err(ClientError::Offline(format!(
                "{MAX_QUEUED_LINES} lines are already waiting to be sent; not kept"
            )));
        }
        self.queued_lines.push_back(payload);
        let waiting = self.queued_lines.len();
        self.emit(Event::Connection(ConnectionEvent::Queued { waiting }));
        self.set_view(|view| {
            if let LinkState::Reconnecting { waiting: shown, .. } = &mut view.link {
                *shown = waiting;
            }
        });
        Ok(())
    }

    /// Sends the lines typed while the room could not take them, once it can.
    async fn send_queued_lines(&mut self) -> std::io::Result<()> {
        let Some(room) = self.room.as_ref().filter(|room| room.is_member()) else {
            return Ok(());
        };
        if self.writer.is_none() {
            return Ok(());
        }
        if let Some(since) = self.reforming_since {
            let everyone_back = room.group().is_some_and(|group| {
                group
                    .members()
                    .iter()
                    .all(|member| member.is_self || room.relay_members.contains(&member.nick))
            });
            if !everyone_back && since.elapsed() < WAIT_FOR_OTHERS {
                return Ok(());
            }
            self.reforming_since = None;
        }
        let mut sent = 0;
        while let Some(payload) = self.queued_lines.pop_front() {
            let encrypted = self.room.as_mut().map(|room| room.encrypt(&payload));
            match encrypted {
                Some(Ok(frame)) => {
                    self.transmit(&frame, Some(payload)).await?;
                    sent += 1;
                }
                Some(Err(error)) => self.emit(Event::Connection(ConnectionEvent::NotSent {
                    texts: vec![payload_text(&payload)],
                    reason: error.to_string(),
                })),
                None => self.queued_lines.push_front(payload),
            }
            if self.room.is_none() {
                break;
            }
        }
        if sent > 0 {
            self.emit(Event::Connection(ConnectionEvent::QueueSent { count: sent }));
        }
        Ok(())
    }

    /// Lines that will never be sent: the room is gone, or the session.
    fn drop_queued_lines(&mut self, reason: &str) {
        if self.queued_lines.is_empty() {
            return;
        }
        let texts = self.queued_lines.drain(..).map(|payload| payload_text(&payload)).collect();
        self.emit(Event::Connection(ConnectionEvent::NotSent { texts, reason: reason.into() }));
    }

    fn current_room_name(&self) -> Option<String> {
        self.room.as_ref().map(|room| room.name.clone())
    }

    fn show_link(&self, link: LinkState) {
        self.set_view(|view| view.link = link);
    }

    /// Answers everything waiting on the relay with `reason`: its answer died with the
    /// session.
    fn fail_waiters(&mut self, reason: &str) {
        let error = || ClientError::Disconnected(reason.to_owned());
        for reply in self.room_list_waiters.drain(..) {
            let _ = reply.send(Err(error()));
        }
        for reply in self.member_list_waiters.drain(..).flatten() {
            let _ = reply.send(Err(error()));
        }
    }

    /// Tells everyone waiting that the connection is over.
    fn finish(mut self, reason: String) {
        self.set_view(|view| {
            view.link = LinkState::Closed;
            view.room = None;
        });
        self.drop_queued_lines("the session ended");
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
        self.transmit(frame, None).await
    }

    /// Numbers a frame, keeps it until the relay acknowledges it, and writes it if there is
    /// a connection (otherwise a resume sends it).
    async fn transmit(
        &mut self,
        frame: &ClientFrame,
        chat: Option<ChatPayload>,
    ) -> std::io::Result<()> {
        let carries_chat = chat.is_some();
        self.queue_frame(frame, chat)?;
        self.flush().await?;
        if carries_chat {
            // Asks the relay to confirm it has the line (its `Ack` answers only news), so
            // that a link lost a moment later leaves no line in doubt that was delivered.
            self.acknowledge().await?;
        }
        Ok(())
    }

    /// Numbers a frame and keeps it until acknowledged; queues it for writing if connected.
    fn queue_frame(
        &mut self,
        frame: &ClientFrame,
        chat: Option<ChatPayload>,
    ) -> std::io::Result<()> {
        self.note_leave(frame);
        let bytes = crate::proto::encode(frame);
        let queued = match self.writer.as_mut() {
            Some(writer) => writer.queue(&bytes),
            None => Ok(()),
        };
        self.link.numbers.on_sent(bytes, chat);
        queued
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self.writer.as_mut() {
            Some(writer) => writer.flush().await,
            None => Ok(()),
        }
    }

    async fn flush_outbox(&mut self, outbox: Outbox) -> std::io::Result<()> {
        for event in outbox.events {
            self.emit(event);
        }
        for frame in &outbox.frames {
            self.queue_frame(frame, None)?;
        }
        self.flush().await
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
                // A join of our own choosing: nothing typed for the old room waits for it.
                self.drop_queued_lines("you joined another room");
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
                    // Taking the room back, or rejoining it by ourselves: the line waits.
                    Some(room) if room.rejoining() || !self.queued_lines.is_empty() => {
                        let _ = reply.send(self.queue_line(payload));
                        return Ok(());
                    }
                    Some(room) if room.is_member() => room
                        .encrypt(&payload)
                        .map_err(|error| ClientError::Other(format!("message not sent: {error}"))),
                    _ => Err(ClientError::NotInRoom),
                };
                match frame {
                    Ok(frame) => {
                        self.transmit(&frame, Some(payload)).await?;
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
        if matches!(frame, ServerFrame::Resumed { .. } | ServerFrame::ResumeRefused { .. }) {
            // Only ever the answer to our `Resume`, which `try_link` reads; out of place here.
            return Ok(());
        }
        if self.link.numbers.on_received() {
            self.acknowledge().await?;
        }
        let late = self.backlog > 0;
        self.backlog = self.backlog.saturating_sub(1);
        let mut outbox = Outbox::default();
        self.on_session_frame(frame, &mut outbox);
        if late {
            for event in &mut outbox.events {
                if let Event::Message { late, .. } = event {
                    *late = true;
                }
            }
        }
        self.flush_outbox(outbox).await?;
        if self.room.is_none() {
            // Taken out for good (a rejoin refused, a room re-created by others): what
            // waited for the room will not be sent.
            self.drop_queued_lines("no longer in the room");
        } else if self.backlog == 0 && !self.queued_lines.is_empty() {
            self.send_queued_lines().await?;
        }
        Ok(())
    }

    /// One numbered frame of the session.
    fn on_session_frame(&mut self, frame: ServerFrame, outbox: &mut Outbox) {
        if let ServerFrame::Ack { received } = frame {
            return self.link.numbers.relay_acknowledged(received);
        }
        if self.is_stale(&frame) {
            return;
        }
        // The frames after which the group's members may have changed: check their keys
        // against the pins then.
        let check_pins = matches!(
            frame,
            ServerFrame::Welcome { .. }
                | ServerFrame::CommitConfirmed { .. }
                | ServerFrame::Reclaimed { .. }
        );
        match frame {
            ServerFrame::RoomList { rooms } => {
                if let Some(reply) = self.room_list_waiters.pop_front() {
                    let _ = reply.send(Ok(rooms));
                }
            }
            ServerFrame::MemberList { room, members } => self.on_member_list(&room, members),
            ServerFrame::Error { reason, .. } => self.on_error(reason),
            ServerFrame::Registered { .. } | ServerFrame::Left { .. } | ServerFrame::Pong => {}
            // Handled by the read loop, by `try_link`, or above.
            ServerFrame::Goodbye { .. }
            | ServerFrame::Resumed { .. }
            | ServerFrame::ResumeRefused { .. }
            | ServerFrame::Ack { .. } => {}
            room_frame => self.on_room_frame(room_frame, outbox),
        }
        if check_pins {
            identity::check_pins(&mut self.trust, self.room.as_ref(), &mut outbox.events);
        }
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

    /// The room could not be taken back: we are out of it, and say why.
    fn give_up_room(&mut self, why: &str, text: String) {
        let room = self.current_room_name();
        self.room = None;
        self.set_view(|view| view.room = None);
        self.drop_queued_lines(why);
        self.emit(Event::Warning { room, text });
    }

    /// Relay errors answer the request that caused them; match them to what is waiting.
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
        | ServerFrame::Reclaimed { room, .. }
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

fn goodbye_text(reason: DisconnectReason) -> String {
    format!("the server closed the connection: {reason}")
}

/// The text of a chat payload, for telling the user which line was not sent.
fn payload_text(payload: &ChatPayload) -> String {
    match payload {
        ChatPayload::Text(text) => text.clone(),
        ChatPayload::Action(text) => format!("/me {text}"),
    }
}

/// One reconnection attempt: connect, handshake, and resume the session (or, when the relay
/// does not have it, register anew under the same nickname).
async fn try_link(
    server: String,
    access_code: Secret,
    nick: String,
    (token, received): (crate::proto::ResumeToken, u64),
) -> Result<(RawClient, Reconnected), ClientError> {
    let mut raw = RawClient::connect(&server, &access_code).await?;
    raw.send(&ClientFrame::Resume { token, received }).await?;
    match raw.recv().await? {
        ServerFrame::Resumed { received: handled, backlog } => {
            Ok((raw, Reconnected::Resumed { handled, backlog }))
        }
        ServerFrame::ResumeRefused { .. } => {
            let numbers = raw.register(&nick).await?;
            Ok((raw, Reconnected::Registered { numbers }))
        }
        ServerFrame::Goodbye { reason } => Err(reason.into()),
        _ => Err(ClientError::Handshake("the server did not answer the resume".into())),
    }
}
