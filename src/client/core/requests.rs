//! Requests from the user, and the relay's answers matched to them.
//!
//! Every frame of the session has a number (`client::resume`), and the relay's `Error`
//! names the number of the frame it refuses. So each frame sent for a request is recorded
//! here by its number, with what it asked for, until the relay acknowledges it; an error is
//! then the answer to exactly that request. Lists (`RoomList`, `MemberList`) answer in the
//! order they were asked, since the relay handles a session's frames in order.

use std::collections::BTreeMap;

use super::{Core, Now};
use crate::client::identity;
use crate::client::{ClientError, Event, Notice, RoomMembers, RoomSummary};
use crate::identity::{Trusted, Verification, WhoAmI};
use crate::proto::{ChatPayload, ClientFrame, ErrorReason, MAX_CHAT_TEXT_BYTES};
use crate::secret::Secret;

/// A request from a `Client` handle.
#[derive(Debug)]
pub enum Request {
    /// Enter a room (keeping the others) and make it current.
    Join {
        room: String,
        password: Secret,
    },
    /// The user stopped waiting for the join of `room`: give it up, if it is still going on.
    AbandonJoin {
        room: String,
    },
    /// Make a room current, named or by its place (from 1) in the order joined.
    Switch {
        target: String,
    },
    /// Leave the current room, or the one `room` names.
    Leave {
        room: Option<String>,
    },
    Send(ChatPayload),
    /// A direct message to `nick` (`/msg`), opening the DM if needed.
    Msg {
        nick: String,
        payload: ChatPayload,
    },
    /// Whose DM requests are answered.
    SetDmPolicy(super::DmPolicy),
    /// Renew our leaf keys in the current room now (`/rekey`).
    Rekey,
    /// How long leaf keys are kept before they are renewed by themselves.
    SetRenewAfter(std::time::Duration),
    /// The ciphersuite of the rooms we create from now on.
    SetRoomSuite(crate::mls::RoomSuite),
    Rooms,
    Members,
    Quit,
    WhoAmI,
    /// The room's code, or with `nick` the pairwise code with that member.
    Verify {
        nick: Option<String>,
    },
    Trust {
        nick: String,
    },
}

/// A request's name, chosen by the driver; its answer carries it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// What a request got. Each kind of request has its own kind of reply.
#[derive(Debug)]
pub enum Reply {
    /// `Join`, `Leave`, `Send`, `Quit`.
    Done,
    /// `Switch`: the room now current.
    Switched(String),
    Rooms(Vec<RoomSummary>),
    Members(RoomMembers),
    WhoAmI(WhoAmI),
    Verification(Verification),
    Trusted(Trusted),
}

/// The answer to a request.
pub type Answer = Result<Reply, ClientError>;

/// What a numbered frame asked for, while the relay may still refuse it.
#[derive(Debug)]
enum Sent {
    /// To enter `room` (the user's join, or a rejoin of our own).
    Join {
        room: String,
    },
    /// To be taken back into `room` as we were.
    Reclaim {
        room: String,
    },
    /// A chat line for `room`, and its text, to name it if the relay refuses it.
    Line {
        room: String,
        text: String,
    },
    Rooms(RequestId),
    Members(RequestId),
}

/// The frames the relay may still answer or refuse, by session number.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    sent: BTreeMap<u64, Sent>,
}

impl Waiting {
    /// The relay handled every frame up to `received`: each has had its answer or error,
    /// unless the answer was about a room we left (and dropped as stale). Returns the
    /// requests whose answer was so dropped.
    fn acknowledged(&mut self, received: u64) -> Vec<RequestId> {
        let later = self.sent.split_off(&received.saturating_add(1));
        waiters(std::mem::replace(&mut self.sent, later))
    }

    /// The oldest request waiting for the list `matches` picks.
    fn oldest(&mut self, matches: impl Fn(&Sent) -> Option<RequestId>) -> Option<RequestId> {
        let (number, id) = self.sent.iter().find_map(|(n, sent)| Some((*n, matches(sent)?)))?;
        self.sent.remove(&number);
        Some(id)
    }

    /// Forgets every frame; returns the requests still waiting for an answer.
    pub(super) fn clear(&mut self) -> Vec<RequestId> {
        waiters(std::mem::take(&mut self.sent))
    }
}

/// The requests among `sent` that wait for an answer of their own.
fn waiters(sent: BTreeMap<u64, Sent>) -> Vec<RequestId> {
    sent.into_values()
        .filter_map(|sent| match sent {
            Sent::Rooms(id) | Sent::Members(id) => Some(id),
            Sent::Join { .. } | Sent::Reclaim { .. } | Sent::Line { .. } => None,
        })
        .collect()
}

impl Core {
    /// One request from the user.
    pub fn handle_request(&mut self, id: RequestId, request: Request, now: Now) {
        if let Some(answer) = self.on_request(id, request, now) {
            self.answer(id, answer);
        }
        self.after_input(now);
    }

    /// A request's answer now, or `None` when it comes later (or never: an abandoned join).
    fn on_request(&mut self, id: RequestId, request: Request, now: Now) -> Option<Answer> {
        let current = self.rooms.current().map(|entry| &entry.room);
        let answer = match request {
            Request::WhoAmI => Ok(Reply::WhoAmI(identity::whoami(&self.trust, &self.nick))),
            Request::Verify { nick } => {
                identity::verify(&self.trust, &self.nick, current, nick.as_deref())
                    .map(Reply::Verification)
            }
            Request::Trust { nick } => {
                identity::trust(&mut self.trust, &self.nick, current, &nick, now.wall)
                    .map(Reply::Trusted)
            }
            Request::Quit => {
                self.quit(id);
                return None;
            }
            Request::AbandonJoin { room } => {
                self.abandon_join(&room);
                return None;
            }
            // Offline too: the rooms are ours while the link is away.
            Request::Switch { target } => self.switch(&target).map(Reply::Switched),
            _ if self.is_closed() => Err(ClientError::NotConnected),
            Request::Send(payload) => self.say(payload).map(|()| Reply::Done),
            Request::SetDmPolicy(policy) => {
                self.set_dm_policy(policy);
                Ok(Reply::Done)
            }
            Request::SetRenewAfter(after) => {
                self.rooms.set_renew_after(after);
                Ok(Reply::Done)
            }
            Request::SetRoomSuite(suite) => {
                self.room_suite = suite;
                Ok(Reply::Done)
            }
            // Offline too, to an open DM (the line waits, as a plain line does).
            Request::Msg { nick, payload } => {
                self.msg(&nick, payload, now.instant).map(|()| Reply::Done)
            }
            _ if !self.is_connected() => Err(ClientError::Offline),
            Request::Join { room, password } => {
                self.join(id, room, password);
                return None;
            }
            Request::Leave { room } => self.leave(room.as_deref()).map(|()| Reply::Done),
            Request::Rekey => self.rekey().map(|()| Reply::Done),
            Request::Rooms => {
                let number = self.send(ClientFrame::ListRooms);
                self.requests.sent.insert(number, Sent::Rooms(id));
                return None;
            }
            Request::Members => {
                let entry = self.rooms.current().filter(|entry| entry.room.is_member());
                let Some(room) = entry.map(|entry| entry.room.name.clone()) else {
                    return Some(Err(ClientError::NotInRoom));
                };
                let number = self.send(ClientFrame::ListMembers { room });
                self.requests.sent.insert(number, Sent::Members(id));
                return None;
            }
        };
        Some(answer)
    }

    /// A chat line: sent now, or kept while the room cannot take it.
    fn say(&mut self, payload: ChatPayload) -> Result<(), ClientError> {
        let len = match &payload {
            ChatPayload::Text(text) | ChatPayload::Action(text) => text.len(),
        };
        if len > MAX_CHAT_TEXT_BYTES {
            return Err(ClientError::MessageTooLong { len, max: MAX_CHAT_TEXT_BYTES });
        }
        let online = self.is_connected();
        let Some(room) = self.rooms.current_name() else { return Err(ClientError::NotInRoom) };
        let queued = self.queue.holds(&room);
        let Some(entry) = self.rooms.current_mut() else { return Err(ClientError::NotInRoom) };
        // Offline, taking the room back, or rejoining it by ourselves: the line waits, and
        // goes to this room whatever is current when it can be sent.
        // A DM whose other member is not in the relay's room yet would not pass it on.
        if !online
            || queued
            || entry.room.rejoining()
            || entry.room.behind()
            || self.dms.awaits_peer(&room)
        {
            return self.queue_line(room, payload);
        }
        if !entry.room.is_member() {
            return Err(ClientError::NotInRoom);
        }
        let frame = entry.room.encrypt(&payload).map_err(ClientError::CannotEncrypt)?;
        self.send_chat(frame, payload);
        Ok(())
    }

    /// Records what a numbered frame asked for, and what sending it means for its room;
    /// `text` is the chat line a frame carries.
    pub(super) fn on_sent(&mut self, number: u64, frame: ClientFrame, text: Option<String>) {
        let sent = match frame {
            ClientFrame::Join { room, .. } => {
                if let Some(entry) = self.rooms.get_mut(&room) {
                    entry.join_frame = number;
                }
                Sent::Join { room }
            }
            ClientFrame::Reclaim { room, .. } => Sent::Reclaim { room },
            ClientFrame::Application { room, .. } => {
                Sent::Line { room, text: text.unwrap_or_default() }
            }
            ClientFrame::Leave { room } => return self.rooms.leaving(room),
            _ => return,
        };
        self.requests.sent.insert(number, sent);
    }

    /// The relay handled our frames up to `received`.
    pub(super) fn relay_acknowledged(&mut self, received: u64) {
        self.numbers.relay_acknowledged(received);
        for id in self.requests.acknowledged(received) {
            self.answer(id, Err(ClientError::NotInRoom));
        }
    }

    /// The session was lost (we registered anew): no answer comes for what it asked.
    pub(super) fn session_lost(&mut self) {
        self.rooms.forget_leaving();
        for id in self.requests.clear() {
            self.answer(id, Err(ClientError::SessionLost));
        }
    }

    /// The relay's list of rooms: the answer to the oldest `/rooms`.
    pub(super) fn on_room_list(&mut self, rooms: Vec<RoomSummary>) {
        let oldest = self.requests.oldest(|sent| match sent {
            Sent::Rooms(id) => Some(*id),
            _ => None,
        });
        if let Some(id) = oldest {
            self.answer(id, Ok(Reply::Rooms(rooms)));
        }
    }

    /// A room's members as the relay lists them: the answer to the oldest `/who`.
    pub(super) fn on_member_list(&mut self, room: &str, members: Vec<String>) {
        let oldest = self.requests.oldest(|sent| match sent {
            Sent::Members(id) => Some(*id),
            _ => None,
        });
        let answer = match self.rooms.get_mut(room) {
            Some(entry) => {
                entry.room.relay_members = members;
                Ok(Reply::Members(super::members::views(&entry.room, &self.nick, &self.trust)))
            }
            None => Err(ClientError::NotInRoom),
        };
        if let Some(id) = oldest {
            self.answer(id, answer);
        }
    }

    /// The relay refused frame number `request`: the answer to what asked for it.
    pub(super) fn on_error(&mut self, request: u64, reason: ErrorReason) {
        match self.requests.sent.remove(&request) {
            Some(Sent::Rooms(id)) => self.answer(id, Err(ClientError::Relay(reason))),
            Some(Sent::Members(id)) => {
                let error = match reason {
                    ErrorReason::NotInRoom => ClientError::NotInRoom,
                    reason => ClientError::Relay(reason),
                };
                self.answer(id, Err(error));
            }
            Some(Sent::Join { room }) if self.rooms.join_in_progress(&room, request) => {
                self.fail_join(&room, ClientError::Relay(reason));
            }
            Some(Sent::Reclaim { room }) if self.rooms.reclaiming(&room) => {
                self.give_up_room(&room, reason);
            }
            Some(Sent::Line { room, text }) => {
                self.emit(Event::Status(Notice::MessageNotDelivered { room, text, reason }));
            }
            // About a frame no request waits on (a vote, a ping), or a membership since ended.
            _ => self.emit(Event::Status(Notice::RelayError { reason })),
        }
    }
}
