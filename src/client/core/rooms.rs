//! The rooms, by name, and the frames about them: our own joins and leaves, the relay's and
//! the leader's answers to them, and everything else a room hears (handled by `room::Room`).
//!
//! The user may be in several rooms at once (at most [`MAX_ROOMS`]): `/join` of another
//! room keeps the ones we are in, and one of them is *current*, the room plain lines and
//! `/who`, `/verify` and `/trust` are about. The others go on by themselves: their frames
//! are handled as they come, and their messages count as unread until the user switches
//! to them.

use std::collections::{BTreeMap, HashMap};

use super::requests::{Reply, RequestId};
use super::{Core, Now};
use crate::client::identity;
use crate::client::room::{Outbox, Room, Welcomed};
use crate::client::{ClientError, Event, NotSentReason, Notice, RoomNotice};
use crate::proto::{AdmissionRefusal, ClientFrame, ErrorReason, ReclaimRefusal, ServerFrame};
use crate::secret::Secret;

/// How many times a join restarts because the room's leader changed mid-admission before
/// giving up. (A member taken out of the room never joins again by itself: it asks for its
/// place back with `Reclaim`, and `room::Room` decides when that is over.)
const MAX_JOIN_RESTARTS: u32 = 5;

/// The rooms one client may be in at once. Each costs the relay a membership and us a
/// group's keys and a share of every keepalive's tick; a user needs a few, and a script
/// that joins rooms in a loop should hear "no" long before anyone's memory does.
pub const MAX_ROOMS: usize = 32;

/// One room and what the core tracks about it beside the room's own state.
pub(super) struct RoomEntry {
    pub room: Room,
    /// Messages that arrived while another room was current.
    pub unread: usize,
    /// The user's `/join` waiting for this room, if any.
    join: Option<RequestId>,
    /// The session number of the `Join` frame of the attempt in progress: the relay's
    /// errors about older ones are stale.
    pub join_frame: u64,
    /// Joins restarted (the leader changed mid-admission) since the user's `/join`.
    restarts: u32,
    /// Whether we have been in the room (the prompt shows it from then on).
    pub entered: bool,
    /// The room's frames that came between the relay counting us in (the commit that adds
    /// us was confirmed) and the Welcome, which the leader sends only once it merged that
    /// commit: they are handled in order once the Welcome opened the group.
    before_welcome: Vec<ServerFrame>,
    /// Whether frames were dropped for want of room before the Welcome (said once).
    dropped_before_welcome: bool,
}

impl RoomEntry {
    /// A direct message's room (`dm`): entered, with no join of the user's waiting.
    pub fn direct(room: Room) -> Self {
        RoomEntry {
            room,
            unread: 0,
            join: None,
            join_frame: 0,
            restarts: 0,
            entered: true,
            before_welcome: Vec::new(),
            dropped_before_welcome: false,
        }
    }
}

/// At most this many frames are kept for the Welcome that follows them; a relay that sends
/// more is not believed, and we say that some were dropped.
const MAX_FRAMES_BEFORE_WELCOME: usize = 1024;

/// One of our rooms as the prompt and `/rooms` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomTab {
    pub name: String,
    /// Messages that arrived while another room was current.
    pub unread: usize,
    /// Whether this is the current room.
    pub current: bool,
    /// Whether we are in the room yet (not still joining it).
    pub entered: bool,
}

/// The rooms, and the `Leave`s on their way.
#[derive(Default)]
pub(super) struct Rooms {
    map: BTreeMap<String, RoomEntry>,
    /// The rooms' names in the order they were joined: `/switch N` and the prompt count in it.
    order: Vec<String>,
    /// The room requests are about.
    current: Option<String>,
    /// `Leave`s sent per room whose `Left` has not come back yet: until it does, frames
    /// about that room belong to the membership we ended, not to a new one.
    leaving: HashMap<String, u32>,
    /// How long leaf keys are kept before renewal, if the user set it (`Room::set_renew_after`).
    renew_after: Option<std::time::Duration>,
}

impl Rooms {
    /// Sets how long leaf keys are kept before renewal, in every room now and later.
    pub fn set_renew_after(&mut self, after: std::time::Duration) {
        self.renew_after = Some(after);
        for entry in self.map.values_mut() {
            entry.room.set_renew_after(after);
        }
    }

    pub fn current(&self) -> Option<&RoomEntry> {
        self.map.get(self.current.as_ref()?)
    }

    pub fn current_mut(&mut self) -> Option<&mut RoomEntry> {
        self.map.get_mut(self.current.as_ref()?)
    }

    pub fn current_name(&self) -> Option<String> {
        self.current.clone()
    }

    pub fn get_mut(&mut self, room: &str) -> Option<&mut RoomEntry> {
        self.map.get_mut(room)
    }

    pub fn get(&self, room: &str) -> Option<&RoomEntry> {
        self.map.get(room)
    }

    pub fn contains(&self, room: &str) -> bool {
        self.map.contains_key(room)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Adds a room after the others and makes it current.
    fn insert(&mut self, name: String, entry: RoomEntry) {
        if self.map.insert(name.clone(), entry).is_none() {
            self.order.push(name.clone());
        }
        self.make_current(&name);
    }

    /// Adds a room after the others without changing the current one (unless there is
    /// none): a DM opened by the other side must not take the user's lines elsewhere.
    pub fn insert_behind(&mut self, name: String, entry: RoomEntry) {
        if self.map.insert(name.clone(), entry).is_none() {
            self.order.push(name.clone());
        }
        if self.current.is_none() {
            self.make_current(&name);
        }
    }

    /// Makes `room` current; its messages are read from now on.
    fn make_current(&mut self, room: &str) {
        if let Some(entry) = self.map.get_mut(room) {
            entry.unread = 0;
            self.current = Some(room.to_owned());
        }
    }

    /// Takes a room out. If it was current, the room joined just before it becomes current
    /// (or the one after it, when it was the first), so that leaving one of several rooms
    /// never leaves the user in none.
    fn remove(&mut self, room: &str) -> Option<RoomEntry> {
        let entry = self.map.remove(room)?;
        let place = self.order.iter().position(|name| name == room);
        if let Some(place) = place {
            self.order.remove(place);
        }
        if self.current.as_deref() == Some(room) {
            self.current = None;
            let next = place.and_then(|place| self.order.get(place.saturating_sub(1))).cloned();
            if let Some(next) = next {
                self.make_current(&next);
            }
        }
        Some(entry)
    }

    /// The room `target` names: a room's name, or its place (from 1) in the order joined.
    pub fn find(&self, target: &str) -> Option<String> {
        if self.map.contains_key(target) {
            return Some(target.to_owned());
        }
        let place: usize = target.parse().ok()?;
        self.order.get(place.checked_sub(1)?).cloned()
    }

    /// Makes the room `target` names current.
    pub fn switch(&mut self, target: &str) -> Result<String, ClientError> {
        let name = self.find(target).ok_or_else(|| ClientError::NoSuchRoom(target.to_owned()))?;
        self.make_current(&name);
        Ok(name)
    }

    /// Our rooms in the order joined, as the prompt shows them.
    pub fn tabs(&self) -> Vec<RoomTab> {
        self.order
            .iter()
            .filter_map(|name| self.map.get(name).map(|entry| (name, entry)))
            .map(|(name, entry)| RoomTab {
                name: name.clone(),
                unread: entry.unread,
                current: self.current.as_deref() == Some(name),
                entered: entry.entered,
            })
            .collect()
    }

    /// Counts a message of `room` as unread, unless it is the current room.
    pub fn count_unread(&mut self, room: &str) {
        if self.current.as_deref() == Some(room) {
            return;
        }
        if let Some(entry) = self.map.get_mut(room) {
            entry.unread = entry.unread.saturating_add(1);
        }
    }

    /// Whether `number` is the `Join` of the attempt in progress for `room`.
    pub fn join_in_progress(&self, room: &str, number: u64) -> bool {
        self.map
            .get(room)
            .is_some_and(|entry| !entry.room.is_member() && entry.join_frame == number)
    }

    pub fn reclaiming(&self, room: &str) -> bool {
        self.map.get(room).is_some_and(|entry| entry.room.reclaiming())
    }

    /// Whether every member of every room's group is back with the relay.
    pub fn everyone_back(&self) -> bool {
        self.map.values().all(|entry| {
            let room = &entry.room;
            room.group().is_some_and(|group| {
                group
                    .members()
                    .iter()
                    .all(|member| member.is_self || room.relay_members.contains(&member.nick))
            })
        })
    }

    /// A new session: ask for every room back as it was (a join under way starts over at
    /// the next tick).
    pub fn reclaim_all(&mut self) -> Vec<ClientFrame> {
        self.map.values_mut().filter_map(|entry| entry.room.reclaim_or_defer()).collect()
    }

    /// A `Leave` on its way.
    pub fn leaving(&mut self, room: String) {
        *self.leaving.entry(room).or_default() += 1;
    }

    /// A new session: no `Left` is coming.
    pub fn forget_leaving(&mut self) {
        self.leaving.clear();
    }

    /// Whether a frame belongs to a membership we already ended; consumes the `Left` that
    /// closes one.
    fn is_stale(&mut self, frame: &ServerFrame) -> bool {
        let Some(room) = frame.room().map(String::as_str) else { return false };
        let Some(pending) = self.leaving.get_mut(room) else { return false };
        if let ServerFrame::Left { .. } = frame {
            *pending -= 1;
            if *pending == 0 {
                self.leaving.remove(room);
            }
        }
        true
    }

    /// The session is over: every room goes; returns the joins still waiting.
    pub fn clear(&mut self) -> Vec<RequestId> {
        self.current = None;
        self.order.clear();
        std::mem::take(&mut self.map).into_values().filter_map(|entry| entry.join).collect()
    }
}

impl Core {
    /// `/join`: asks to enter `room`, keeping the rooms we are in, and makes it current. A
    /// room we are in (or on our way into) only becomes current.
    pub(super) fn join(&mut self, id: RequestId, room: String, password: Secret) {
        if let Some(entry) = self.rooms.get(&room) {
            // Leaving and coming back would show everyone a leave and a join, change the
            // keys, and, with a mistyped password, leave us out of the room we were in.
            let error = if entry.room.is_member() || entry.room.reclaiming() {
                ClientError::AlreadyInRoom(room.clone())
            } else {
                ClientError::JoinInProgress(room.clone())
            };
            self.rooms.make_current(&room);
            return self.answer(id, Err(error));
        }
        if self.rooms.len() >= MAX_ROOMS {
            return self.answer(id, Err(ClientError::TooManyRooms { max: MAX_ROOMS }));
        }
        let mut new_room = Room::new(room.clone(), password).joining_as(&self.nick);
        if let Some(after) = self.rooms.renew_after {
            new_room.set_renew_after(after);
        }
        let entry = RoomEntry {
            room: new_room,
            unread: 0,
            join: Some(id),
            join_frame: 0,
            restarts: 0,
            before_welcome: Vec::new(),
            dropped_before_welcome: false,
            entered: false,
        };
        self.rooms.insert(room.clone(), entry);
        if let Some(entry) = self.rooms.get_mut(&room) {
            let join = entry.room.join_frame();
            self.send(join);
        }
    }

    /// The user stopped waiting for the join of `room`: leave it if we are not in it yet.
    /// Offline, the join goes on: the relay may still hold it, and only a `Leave` ends it.
    pub(super) fn abandon_join(&mut self, room: &str) {
        let joining = self.rooms.get(room).is_some_and(|entry| !entry.room.is_member());
        if joining && self.is_connected() {
            self.rooms.remove(room);
            self.send(ClientFrame::Leave { room: room.to_owned() });
        }
    }

    /// `/switch`: makes the room `target` names (its name, or its place in the order joined)
    /// current.
    pub(super) fn switch(&mut self, target: &str) -> Result<String, ClientError> {
        self.rooms.switch(target)
    }

    /// `/leave`, of the current room or of the one `room` names; the others stay.
    pub(super) fn leave(&mut self, room: Option<&str>) -> Result<(), ClientError> {
        let name = match room {
            Some(target) => {
                self.rooms.find(target).ok_or_else(|| ClientError::NoSuchRoom(target.to_owned()))?
            }
            None => self.rooms.current_name().ok_or(ClientError::NotInRoom)?,
        };
        self.leave_room(&name);
        Ok(())
    }

    /// `/rekey`: renew our leaf keys in the current room now.
    pub(super) fn rekey(&mut self) -> Result<(), ClientError> {
        let me = self.nick.clone();
        let mut out = Outbox::default();
        let entry = self.rooms.current_mut().ok_or(ClientError::NotInRoom)?;
        entry.room.request_renewal(&me, &mut out).map_err(|_| ClientError::NotInRoom)?;
        self.flush_room_outbox(out);
        Ok(())
    }

    /// Our own departure from a room: the user sees it, and a join waiting for it ends. Our
    /// farewell goes just before the `Leave`, so that those who stay can count it.
    fn leave_room(&mut self, name: &str) {
        let Some(mut entry) = self.rooms.remove(name) else { return };
        if let Some(id) = entry.join {
            self.answer(id, Err(ClientError::JoinSuperseded));
        }
        self.drop_queued_lines_of(name, NotSentReason::LeftRoom);
        self.emit(Event::Left { room: name.to_owned(), nick: self.nick.clone() });
        if let Some(farewell) = entry.room.farewell() {
            self.send(farewell);
        }
        self.send(ClientFrame::Leave { room: name.to_owned() });
    }

    /// The session ends (`Quit`): our last word in every room, before the `Quit`.
    pub(super) fn send_farewells(&mut self) {
        let farewells: Vec<ClientFrame> =
            self.rooms.map.values_mut().filter_map(|entry| entry.room.farewell()).collect();
        for farewell in farewells {
            self.send(farewell);
        }
    }

    /// The keepalive's tick, for every room: a commit of ours that the relay could not take
    /// to a vote yet goes again, and what the leader owes goes out.
    pub(super) fn tick_rooms(&mut self) {
        let mut out = Outbox::default();
        for entry in self.rooms.map.values_mut() {
            entry.room.tick(&self.nick, &mut out);
        }
        self.flush_room_outbox(out);
    }

    /// Rooms that are lost to us until the user joins again (`Room::is_gone`; the room said
    /// why) are dropped; a join still waiting for one ends. Lines queued for such a room are
    /// then dropped as for any room we are no longer in (`Core::after_input`).
    pub(super) fn drop_gone_rooms(&mut self) {
        let gone: Vec<String> = self
            .rooms
            .map
            .iter()
            .filter(|(_, entry)| entry.room.is_gone())
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(id) = self.rooms.remove(&name).and_then(|entry| entry.join) {
                self.answer(id, Err(ClientError::RoomGone));
            }
        }
    }

    fn joined_room(&mut self, name: &str) {
        let Some(entry) = self.rooms.get_mut(name) else { return };
        entry.entered = true;
        let join = entry.join.take();
        self.emit(Event::Joined { room: name.to_owned(), nick: self.nick.clone() });
        if let Some(id) = join {
            self.answer(id, Ok(Reply::Done));
        }
    }

    /// A join failed: the user's `/join` gets the error, or, if nobody waits on it, it is
    /// said.
    pub(super) fn fail_join(&mut self, name: &str, error: ClientError) {
        let Some(entry) = self.rooms.remove(name) else { return };
        match entry.join {
            Some(id) => self.answer(id, Err(error)),
            None => {
                let (room, error) = (name.to_owned(), error.into());
                self.emit(Event::Status(Notice::JoinFailed { room, error }));
            }
        }
    }

    /// The relay refused our `Reclaim` with an `Error` (since protocol 5 it answers with
    /// `ReclaimRefused`, which the room handles; an `Error` still comes for a frame it refuses
    /// outright, such as one over the rate limit): we are out of the room, and say why as the
    /// room would.
    pub(super) fn give_up_room(&mut self, name: &str, reason: ErrorReason) {
        self.rooms.remove(name);
        let (refusal, reason) = match reason {
            ErrorReason::RoomIsAnotherGroup => {
                (ReclaimRefusal::AnotherGroup, NotSentReason::RoomIsAnotherGroup)
            }
            reason => (ReclaimRefusal::Unavailable(reason), NotSentReason::CouldNotGetBack),
        };
        self.drop_queued_lines_of(name, reason);
        let notice = RoomNotice::ReclaimRefused { reason: refusal };
        self.emit(Event::Room { room: name.to_owned(), notice });
    }

    /// One frame of the session, past the link's bookkeeping.
    pub(super) fn on_session_frame(&mut self, frame: ServerFrame, now: Now) {
        if let ServerFrame::Ack { received } = frame {
            return self.relay_acknowledged(received);
        }
        if self.rooms.is_stale(&frame) {
            return;
        }
        // The frames after which the group's members may have changed: check their keys
        // against the pins then.
        let check_pins = matches!(
            frame,
            ServerFrame::Welcome { .. }
                | ServerFrame::CommitConfirmed { .. }
                | ServerFrame::Reclaimed { .. }
        )
        .then(|| frame.room().map(String::as_str).map(str::to_owned))
        .flatten();
        match frame {
            ServerFrame::RoomList { rooms } => self.on_room_list(rooms),
            ServerFrame::MemberList { room, members } => self.on_member_list(&room, members),
            ServerFrame::Error { request, reason } => self.on_error(request, reason),
            ServerFrame::Registered { .. } | ServerFrame::Left { .. } | ServerFrame::Pong => {}
            // Handled before, by the link or the driver.
            ServerFrame::Goodbye { .. }
            | ServerFrame::Restarting
            | ServerFrame::Resumed { .. }
            | ServerFrame::ResumeRefused { .. }
            | ServerFrame::Ack { .. } => {}
            room_frame => self.on_room_frame(room_frame, now),
        }
        if let Some(name) = check_pins {
            let room = self.rooms.map.get(&name).map(|entry| &entry.room);
            let mut events = Vec::new();
            identity::check_pins(&mut self.trust, room, now.wall, &mut events);
            self.events.extend(events);
        }
    }

    /// A frame about one room: to the room it names (frames about rooms we are not in are
    /// stale and dropped); what the room produces goes out together.
    fn on_room_frame(&mut self, frame: ServerFrame, now: Now) {
        let Some(name) = frame.room().map(String::as_str).map(str::to_owned) else { return };
        let Some(entry) = self.rooms.map.get_mut(&name) else { return };
        let mut out = Outbox::default();
        match frame {
            ServerFrame::RoomCreated { .. } | ServerFrame::JoinPending { .. }
                if entry.room.join_requested() =>
            {
                self.on_join_frame(&name, frame, &mut out)
            }
            ServerFrame::AdmissionReply { .. } if entry.room.admitting() => {
                self.on_join_frame(&name, frame, &mut out)
            }
            // An answer to a join we are not making (a replay, or made up): a member stays.
            ServerFrame::RoomCreated { .. }
            | ServerFrame::JoinPending { .. }
            | ServerFrame::AdmissionReply { .. } => {
                let text =
                    format!("ignored {}: no join of yours was waiting for it", describe(&frame));
                out.events.push(Event::Warning { room: Some(name), text });
            }
            ServerFrame::Welcome { .. } if entry.room.awaiting_welcome() => {
                self.on_join_frame(&name, frame, &mut out);
                let held = self
                    .rooms
                    .map
                    .get_mut(&name)
                    .filter(|entry| entry.room.is_member())
                    .map(|entry| std::mem::take(&mut entry.before_welcome))
                    .unwrap_or_default();
                self.flush_room_outbox(out);
                for frame in held {
                    self.on_session_frame(frame, now);
                }
                return;
            }
            ServerFrame::Welcome { .. } => {
                // Only our own admission may bring a Welcome; anything else is forged.
                out.events.push(Event::Status(Notice::UnaskedWelcome { room: name }));
            }
            // We founded the room just now, while its members were still coming back after a
            // restart, and they claimed it: our join goes on, to their group.
            ServerFrame::ReclaimRefused { reason: ReclaimRefusal::Outnumbered, .. }
                if entry.room.freshly_founded() && entry.restarts < MAX_JOIN_RESTARTS =>
            {
                entry.restarts += 1;
                let notice = RoomNotice::FoundingOutnumbered;
                out.events.push(Event::Room { room: name.clone(), notice });
                out.frames.push(entry.room.restart_join());
            }
            ServerFrame::AdmissionRefused { .. } if !entry.room.joining() => {
                let text = "ignored an admission refusal: no join of yours was waiting for it";
                out.events.push(Event::Warning { room: Some(name), text: text.into() });
            }
            ServerFrame::AdmissionRefused { reason, .. } => match reason {
                AdmissionRefusal::LeaderChanged if entry.restarts < MAX_JOIN_RESTARTS => {
                    entry.restarts += 1;
                    out.frames.push(entry.room.restart_join());
                }
                AdmissionRefusal::WrongPassword => {
                    self.fail_join(&name, ClientError::WrongRoomPassword)
                }
                reason => self.fail_join(&name, ClientError::AdmissionRefused(reason)),
            },
            // Taken out: the room asks for its place back as it was (`Reclaim`), or, not a
            // member, is gone. Never a join by itself: no password exchange a relay could
            // start to test the password.
            ServerFrame::Removed { reason, .. } => {
                if let Some(frame) = entry.room.removed(reason, &mut out) {
                    out.frames.push(frame);
                }
            }
            frame if entry.room.awaiting_welcome() => {
                if entry.before_welcome.len() < MAX_FRAMES_BEFORE_WELCOME {
                    entry.before_welcome.push(frame);
                } else if !entry.dropped_before_welcome {
                    entry.dropped_before_welcome = true;
                    let text = format!(
                        "more than {MAX_FRAMES_BEFORE_WELCOME} of the room's messages came before \
                         your Welcome; the rest of them were dropped"
                    );
                    out.events.push(Event::Warning { room: Some(name), text });
                }
            }
            frame => entry.room.on_member_frame(&self.nick, frame, now.wall, &mut out),
        }
        self.flush_room_outbox(out);
    }

    /// What rooms produced: their events, then their frames, in order.
    fn flush_room_outbox(&mut self, out: Outbox) {
        self.events.extend(out.events);
        for frame in out.frames {
            self.send(frame);
        }
        self.on_signals(out.signals);
    }

    /// Joining: the relay's and the leader's answers to our `Join`.
    fn on_join_frame(&mut self, name: &str, frame: ServerFrame, out: &mut Outbox) {
        let Some(entry) = self.rooms.map.get_mut(name) else { return };
        let (mls, room) = (&self.mls, &mut entry.room);
        let result = match frame {
            ServerFrame::RoomCreated { .. } => room
                .created(mls, self.room_suite, out)
                .map(|()| None)
                .map_err(ClientError::CannotCreateRoom),
            ServerFrame::JoinPending { leader, .. } => match room.admission_pending(leader) {
                // The leader has our half of the exchange already: nothing to send yet.
                Ok(()) => return,
                Err(error) => Err(ClientError::Admission(error)),
            },
            ServerFrame::AdmissionReply { pake_message, suite, .. } => room
                .admission_reply(mls, &pake_message, suite)
                .map(Some)
                .map_err(ClientError::Admission),
            ServerFrame::Welcome { message, members, .. } => {
                match room.welcomed(mls, &message, members) {
                    Ok(Welcomed::Joined) => Ok(None),
                    Ok(Welcomed::Rejoined { newcomers }) => {
                        entry.restarts = 0;
                        let room = name.to_owned();
                        out.events.push(Event::Status(Notice::Rejoined { room, newcomers }));
                        return;
                    }
                    Err(error) => Err(ClientError::WelcomeRefused(error)),
                }
            }
            _ => return,
        };
        match result {
            Ok(Some(frame)) => out.frames.push(frame),
            Ok(None) => self.joined_room(name),
            Err(error) => {
                if entry.room.rejoining() {
                    self.rooms.remove(name);
                    let (room, error) = (name.to_owned(), error.into());
                    out.events.push(Event::Status(Notice::RejoinFailed { room, error }));
                } else {
                    self.fail_join(name, error);
                }
                out.frames.push(ClientFrame::Leave { room: name.to_owned() });
            }
        }
    }
}

/// A join answer, named for a warning.
fn describe(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::RoomCreated { .. } => "a new room",
        ServerFrame::JoinPending { .. } => "a join answer",
        _ => "an admission reply",
    }
}
