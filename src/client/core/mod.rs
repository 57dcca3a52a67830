//! The client core, sans-IO, in the shape of quinn-proto's `Connection`: everything the
//! client decides, with nothing of how bytes, time or requests reach it.
//!
//! Inputs: a frame from the relay ([`Core::handle_frame`]), a request from a `Client`
//! handle ([`Core::handle_request`]), what became of the link ([`Core::link_lost`],
//! [`Core::dial_failed`], [`Core::link_resumed`], [`Core::link_registered`]) and the
//! passing of time ([`Core::handle_timeout`]); the time always comes in as [`Now`].
//! Outputs, drained after each input: encoded frames to write ([`Core::poll_transmit`]),
//! events for the user ([`Core::poll_event`]), answers to requests ([`Core::poll_answer`]),
//! a link to open ([`Core::poll_dial`]) and when to call again ([`Core::poll_timeout`]).
//!
//! What it owns: the link as one state machine ([`Link`], in `link.rs`), the rooms by name
//! (`rooms.rs`), the lines typed while they could not be sent (`queue.rs`), and the requests
//! waiting on the relay, by the session number of the frame that asked (`requests.rs`).
//! It performs no IO, reads no clock, spawns nothing and holds no channel; the tokio driver
//! (`client::engine`) does all of that.

mod dm;
mod link;
mod members;
mod queue;
mod requests;
mod rooms;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Instant, SystemTime};

use rand::SeedableRng;
use rand::rngs::StdRng;

pub use dm::{DmPolicy, MAX_DMS_PER_MINUTE};
pub use link::Link;
pub use requests::{Answer, Reply, Request, RequestId};
pub use rooms::{MAX_ROOMS, RoomTab};

use super::resume::SessionNumbers;
use super::{Event, LinkState};
use crate::identity::PeerTrust;
use crate::mls::{MlsMember, RoomSuite};
use crate::proto::{self, ChatPayload, ClientFrame, ResumeToken, ServerFrame};

/// Lines typed while offline that are kept to send once back.
pub const MAX_QUEUED_LINES: usize = 100;

/// The time, passed in: the monotonic clock for deadlines, the wall clock for what the
/// user sees (message times, when the link dropped, the date a pin records).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub instant: Instant,
    pub wall: SystemTime,
}

/// What the driver needs to open a link for the session: the resume token and the count of
/// frames received, for `Resume` (or, refused, registering anew). No `Debug`: the token is
/// a secret.
pub struct Dial {
    pub token: ResumeToken,
    pub received: u64,
}

/// The client's whole state, short of its sockets.
pub struct Core {
    nick: String,
    mls: MlsMember,
    /// Pins of the keys we have seen, and the marks `/who` shows.
    trust: PeerTrust,
    numbers: SessionNumbers,
    link: Link,
    rooms: rooms::Rooms,
    /// Direct messages being opened, and the relay's names of the open ones.
    dms: dm::Dms,
    /// The ciphersuite of the rooms this client creates (`--pq`, `pq = true`); a room we
    /// join has its creator's.
    room_suite: RoomSuite,
    queue: queue::LineQueue,
    requests: requests::Waiting,
    /// Jitter for the reconnection backoff, seeded by the driver.
    rng: StdRng,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    answers: VecDeque<(RequestId, Answer)>,
}

impl Core {
    /// The core of a session just registered (`numbers`), connected since `now`; `seed`
    /// seeds the backoff's jitter.
    pub fn new(
        nick: String,
        mls: MlsMember,
        trust: PeerTrust,
        numbers: SessionNumbers,
        now: Now,
        seed: u64,
    ) -> Self {
        Core {
            nick,
            mls,
            trust,
            numbers,
            link: Link::online(now, 0),
            rooms: rooms::Rooms::default(),
            dms: dm::Dms::default(),
            room_suite: RoomSuite::default(),
            queue: queue::LineQueue::default(),
            requests: requests::Waiting::default(),
            rng: StdRng::seed_from_u64(seed),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            answers: VecDeque::new(),
        }
    }

    /// One frame from the relay, read from the current link.
    pub fn handle_frame(&mut self, mut frame: ServerFrame, now: Now) {
        // A DM's room has another name on the relay than ours (`dm`).
        self.dms.rename_incoming(&mut frame);
        if let ServerFrame::Goodbye { reason } = frame {
            return self.goodbye(reason, now);
        }
        if let ServerFrame::Restarting = frame {
            // Not numbered: it belongs to this link, like the goodbye after it.
            return self.relay_restarting();
        }
        if matches!(frame, ServerFrame::Resumed { .. } | ServerFrame::ResumeRefused { .. }) {
            // Only ever the answer to our `Resume`, which the driver reads; out of place here.
            return;
        }
        let Some(late) = self.link.heard(now) else { return };
        if self.numbers.on_received() {
            self.acknowledge();
        }
        let first_new_event = self.events.len();
        self.on_session_frame(frame, now);
        let mut unread = Vec::new();
        for event in self.events.range_mut(first_new_event..) {
            if let Event::Message { late: is_late, room, from, .. } = event {
                *is_late |= late;
                if *from != self.nick {
                    unread.push(room.clone());
                }
            }
        }
        for room in unread {
            self.rooms.count_unread(&room);
        }
        self.after_input(now);
    }

    /// The passing of time: keepalives, a silent link, the next reconnection attempt, the
    /// end of waiting for the room's others.
    pub fn handle_timeout(&mut self, now: Now) {
        self.on_timeout(now);
        self.after_input(now);
    }

    /// The next time [`Core::handle_timeout`] is due, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.link.deadline()
    }

    /// The next encoded frame to write on the link, in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event for the user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next answer to a request.
    pub fn poll_answer(&mut self) -> Option<(RequestId, Answer)> {
        self.answers.pop_front()
    }

    /// A link to open now, when a reconnection attempt is due; its outcome comes back as
    /// [`Core::link_resumed`], [`Core::link_registered`] or [`Core::dial_failed`].
    pub fn poll_dial(&mut self) -> Option<Dial> {
        self.link.start_attempt().then(|| Dial {
            token: self.numbers.token().clone(),
            received: self.numbers.received(),
        })
    }

    /// Whether the core wants a link to the relay now (if not, the driver drops its own).
    pub fn is_connected(&self) -> bool {
        self.link.connection().is_some()
    }

    /// Whether the session is over: nothing more will come out but what is queued.
    pub fn is_closed(&self) -> bool {
        matches!(self.link, Link::Closed)
    }

    /// The link as the prompt shows it.
    pub fn link_state(&self) -> LinkState {
        match &self.link {
            Link::Offline { attempt, .. } => {
                LinkState::Reconnecting { attempt: *attempt, waiting: self.queue.len() }
            }
            Link::Closed => LinkState::Closed,
            _ => LinkState::Connected,
        }
    }

    /// The room the prompt shows: the current one, once entered.
    pub fn shown_room(&self) -> Option<String> {
        self.rooms.current().filter(|entry| entry.entered).map(|entry| entry.room.name.clone())
    }

    /// The rooms whose group we are in now: a member, or one asking a relay that forgot us
    /// to take it back as it was. Joining one of them again only makes it current.
    pub fn member_rooms(&self) -> Vec<String> {
        self.rooms
            .tabs()
            .into_iter()
            .map(|tab| tab.name)
            .filter(|name| {
                self.rooms
                    .get(name)
                    .is_some_and(|entry| entry.room.is_member() || entry.room.reclaiming())
            })
            .collect()
    }

    /// Our rooms in the order joined, with their unread counts, as the prompt shows them.
    pub fn room_tabs(&self) -> Vec<RoomTab> {
        self.rooms.tabs()
    }

    /// After any input: rooms lost to us go, and what waited for the room may go now, or
    /// never.
    fn after_input(&mut self, now: Now) {
        self.drop_gone_rooms();
        self.settle_reforming(now);
        // Out of a room for good (it is gone: a reclaim refused, a room re-created by
        // others, taken out while joining): what waited for that room will not be sent.
        self.drop_lines_of_lost_rooms();
        self.note_dm_peers();
        if self.link.backlog() == Some(0) && !self.queue.is_empty() {
            self.send_queued_lines();
        }
    }

    fn emit(&mut self, event: Event) {
        self.events.push_back(event);
    }

    fn answer(&mut self, id: RequestId, answer: Answer) {
        self.answers.push_back((id, answer));
    }

    fn send(&mut self, frame: ClientFrame) -> u64 {
        self.transmit(frame, None)
    }

    /// Numbers a frame of the session and keeps it until the relay acknowledges it; writes
    /// it if there is a link (otherwise a resume sends it). Returns its number.
    fn transmit(&mut self, frame: ClientFrame, chat: Option<ChatPayload>) -> u64 {
        let bytes = match self.dms.rename_outgoing(&frame) {
            Some(renamed) => proto::encode(&renamed),
            None => proto::encode(&frame),
        };
        if self.is_connected() {
            self.transmits.push_back(bytes.clone());
        }
        let text = chat.as_ref().map(queue::payload_text);
        let number = self.numbers.on_sent(bytes, chat);
        self.on_sent(number, frame, text);
        number
    }

    /// Sends a chat line, and asks the relay to confirm it has it (its `Ack` answers only
    /// news), so that a link lost a moment later leaves no line in doubt that was delivered.
    fn send_chat(&mut self, frame: ClientFrame, payload: ChatPayload) {
        self.transmit(frame, Some(payload));
        self.acknowledge();
    }

    /// Acknowledges what we received. `Ack` is not numbered: it belongs to this link alone.
    fn acknowledge(&mut self) {
        let received = self.numbers.ack();
        if self.is_connected() {
            self.transmits.push_back(proto::encode(&ClientFrame::Ack { received }));
        }
    }
}

/// What the simulation (`client::room_simulation`) needs beyond the core's inputs and
/// outputs: to judge the room, and to play a dishonest client.
#[cfg(test)]
impl Core {
    /// The current room.
    pub(crate) fn room_for_tests(&self) -> Option<&super::room::Room> {
        self.rooms.current().map(|entry| &entry.room)
    }

    /// The current room, for a dishonest client that commits or signs on its own.
    pub(crate) fn room_mut_for_tests(&mut self) -> Option<&mut super::room::Room> {
        self.rooms.current_mut().map(|entry| &mut entry.room)
    }

    /// Numbers and sends a frame of the caller's choosing.
    pub(crate) fn send_for_tests(&mut self, frame: ClientFrame) {
        self.send(frame);
    }
}
