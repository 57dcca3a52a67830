//! Everything the relay knows, in memory: sessions, nicknames and rooms, composed here from
//! one file per job — `sessions` (who is connected, away, or coming back), `rooms` (members
//! in order and who may enter), `admission` (joiners, the password exchange, bans, slow
//! leaders), `commits` (the commit in flight and its vote) and `pledges` (the yes votes
//! members bring back through a restart, which excuse their no). This file holds them together,
//! sends each frame to its handler, enforces the deadlines and queues frames for sessions.
//!
//! All of it sits behind one `std::sync::Mutex` in `Shared`. That is deliberate: no `.await`
//! happens while the lock is held (sending to a session is a non-blocking `try_send`, and
//! nothing here is `async`), and one lock gives one global order, so every member of a room
//! sees its commits and messages in the same order. Time is passed in: deadlines are checked
//! by [`State::expire`], which the relay calls a few times a second. Nothing here is ever
//! written anywhere; a session's traces go when it ends and a room goes with its last member.

mod admission;
mod chat_batch;
mod commits;
mod pledges;
mod reclaim;
mod rooms;
mod sessions;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::proto::{self, ClientFrame, DisconnectReason, ErrorReason, ServerFrame};
pub use admission::{LEADER_DEADLINE, WRONG_PASSWORDS_BEFORE_BAN};
pub use commits::VOTE_DEADLINE;
use rooms::Room;
use sessions::Sessions;
pub use sessions::{AwayLimits, GRACE_PERIOD, Parked, Resumption, SessionChannel, SessionId};

/// The deadlines of room traffic; [`RoomDeadlines::default`] gives the documented ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomDeadlines {
    /// How long members have to vote on a commit.
    pub vote: Duration,
    /// How long a leader may owe a joiner an answer before the next member leads.
    pub leader: Duration,
    /// How long an away session is kept for its client to resume it.
    pub grace: Duration,
}

impl Default for RoomDeadlines {
    fn default() -> Self {
        RoomDeadlines { vote: VOTE_DEADLINE, leader: LEADER_DEADLINE, grace: GRACE_PERIOD }
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

/// The frame being handled: who sent it, and its number among the frames of that session
/// (`replay`), which every `ServerFrame::Error` it causes carries back.
#[derive(Debug, Clone, Copy)]
struct Request {
    session: SessionId,
    number: u64,
}

/// The relay's whole state.
#[derive(Default)]
pub struct State {
    sessions: Sessions,
    /// Ordered, as every map here that is walked: relays sharing rooms (`cluster`) must
    /// make the same choices in the same order from the same inputs.
    rooms: BTreeMap<String, Room>,
    /// The last admission attempt's number (`admission`).
    next_attempt: u64,
    max_rooms_per_session: usize,
    deadlines: RoomDeadlines,
    /// Random, per run of the relay: clients tell a restart from a forgotten session by it.
    relay_boot: u64,
    /// When this run of the relay handled its first frame: for one grace period after, the
    /// members of rooms it lost may still be on their way back (`reclaim`).
    first_frame_at: Option<Instant>,
    /// Rooms whose re-forming window was still open when their last member left, and until
    /// when: a `Join` that finds one empty re-forms it rather than founding it for good.
    reforming_names: BTreeMap<String, Instant>,
    /// Chat relayed and not queued yet, while `batching_chat` lets it wait (`chat_batch`).
    pending_chat: Option<chat_batch::PendingChat>,
    batching_chat: bool,
    /// Where resume tokens come from (see [`TokenSource`]).
    tokens: TokenSource,
}

/// Where a relay's resume tokens come from. A relay of its own draws them at random. Relays
/// that share rooms (`cluster`) must all issue the same token to the same session, since the
/// client may present it to any of them: they derive it from the cluster's secret key and the
/// count of tokens issued, which is the same on every relay because every relay applies the
/// same inputs in the same order.
#[derive(Default)]
pub enum TokenSource {
    #[default]
    Random,
    /// `incarnation` is the cluster's `relay_boot`: a cluster that starts again from nothing
    /// counts its tokens from one again, and must not issue a token of its last life to
    /// someone else (their old holders present them when they come back).
    Derived { key: zeroize::Zeroizing<[u8; 32]>, incarnation: u64, issued: u64 },
}

impl TokenSource {
    fn next(&mut self) -> proto::ResumeToken {
        match self {
            TokenSource::Random => proto::ResumeToken(rand::random()),
            TokenSource::Derived { key, incarnation, issued } => {
                use hmac::{Hmac, Mac};
                *issued += 1;
                // HMAC-SHA256 under a 32-byte key is a pseudo-random function: a token says
                // nothing of the key or of other tokens.
                let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key.as_slice()) else {
                    return proto::ResumeToken(rand::random());
                };
                mac.update(b"chatter resume token");
                mac.update(&incarnation.to_be_bytes());
                mac.update(&issued.to_be_bytes());
                proto::ResumeToken(mac.finalize().into_bytes().into())
            }
        }
    }
}

impl State {
    pub fn new(max_rooms_per_session: usize, deadlines: RoomDeadlines) -> Self {
        let relay_boot = rand::random();
        State { max_rooms_per_session, deadlines, relay_boot, ..State::default() }
    }

    /// The same state, keeping away sessions within `limits`.
    pub fn with_away_limits(mut self, limits: AwayLimits) -> Self {
        self.sessions.away_limits = limits;
        self
    }

    /// The same state as one of several relays sharing rooms: every relay of the cluster
    /// must build it with the same `relay_boot` and `key`.
    pub fn shared_by_a_cluster(mut self, relay_boot: u64, key: [u8; 32]) -> Self {
        self.relay_boot = relay_boot;
        let key = zeroize::Zeroizing::new(key);
        self.tokens = TokenSource::Derived { key, incarnation: relay_boot, issued: 0 };
        self
    }

    /// This run of the relay's number.
    pub fn relay_boot(&self) -> u64 {
        self.relay_boot
    }

    pub fn stats(&self) -> RelayStats {
        let (sessions, nicknames, away_sessions) = self.sessions.counts();
        RelayStats {
            sessions,
            nicknames,
            rooms: self.rooms.len(),
            room_memberships: self.rooms.values().map(|room| room.members.len()).sum(),
            pending_joins: self.rooms.values().map(|room| room.pending.len()).sum(),
            away_sessions,
        }
    }

    /// Handles one decoded frame from a session: `number` is the frame's number in the
    /// session (`ReplayBuffer::handled` once it is counted), which any error names.
    pub fn handle(
        &mut self,
        id: SessionId,
        number: u64,
        frame: ClientFrame,
        now: Instant,
        signals: &mut Vec<AbuseSignal>,
    ) -> Control {
        if !self.heard_from(id) {
            return Control::Close(DisconnectReason::ProtocolViolation);
        }
        self.first_frame_at.get_or_insert(now);
        let request = Request { session: id, number };
        let registered = self.sessions.get(id).is_some_and(|session| session.nick().is_some());
        if !matches!(frame, ClientFrame::Application { .. }) {
            // Whatever this frame changes, the chat relayed before it goes out first.
            self.flush_chat();
        }
        match frame {
            ClientFrame::Ping => self.send(id, &ServerFrame::Pong),
            ClientFrame::Quit => return Control::Close(DisconnectReason::Quit),
            ClientFrame::Register { nick } => self.register(request, nick),
            // Only a connection's first frame may be `Resume` (`State::resume` takes it).
            ClientFrame::Resume { .. } => self.error(request, ErrorReason::ResumeNotFirst),
            // The connection task handles these.
            ClientFrame::Ack { .. } => {}
            _ if !registered => self.error(request, ErrorReason::NotRegistered),
            ClientFrame::Reclaim {
                room,
                group_id,
                epoch,
                pledged,
                proof,
                last_commit,
                earlier,
            } => {
                let claimed =
                    reclaim::Claimed { group_id, epoch, pledged, proof, last_commit, earlier };
                self.reclaim(request, room, claimed, now)
            }
            ClientFrame::ListRooms => self.list_rooms(id),
            ClientFrame::ListMembers { room } => self.list_members(request, &room),
            ClientFrame::Join { room, pake_message } => self.join(request, room, pake_message, now),
            ClientFrame::AdmissionReply { room, joiner, attempt, pake_message, suite } => {
                self.admission_reply(request, &room, &joiner, attempt, pake_message, suite)
            }
            ClientFrame::AdmissionFinish { room, confirmation, sealed_key_package } => {
                self.admission_finish(request, &room, confirmation, sealed_key_package, now)
            }
            ClientFrame::AdmissionRefused { room, joiner, attempt, reason } => {
                self.admission_refused(request, &room, &joiner, attempt, reason, signals)
            }
            ClientFrame::Commit { room, commit, adds, electorate } => {
                self.commit(request, &room, commit, adds, electorate, now)
            }
            ClientFrame::Welcome { room, welcome } => self.welcome(request, &room, welcome),
            ClientFrame::CommitVote { room, epoch, accept, vote } => {
                self.vote(id, &room, epoch, accept, vote, now)
            }
            ClientFrame::Application { room, message } => self.application(request, &room, message),
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

    /// Enforces the deadlines: away sessions past the grace period are forgotten; members
    /// that did not vote in time are taken out of the room (and the commit settled without
    /// them); a leader that owes a joiner an answer for too long hands the lead on; a joiner
    /// whose Welcome did not come in time starts over.
    pub fn expire(&mut self, now: Instant) {
        self.forget_lapsed_sessions(now);
        self.take_out_silent_voters(now);
        self.replace_slow_leaders(now);
        self.drop_unwelcomed_joiners(now);
        self.close_reforming(now);
    }

    /// Queues a frame for every member of a room, but `except`.
    fn send_to_room(&mut self, room_name: &str, except: Option<SessionId>, frame: &ServerFrame) {
        self.send_bytes_to_room(room_name, except, Bytes::from(proto::encode(frame)));
    }

    /// Queues an encoded frame for every member of a room, but `except`.
    fn send_bytes_to_room(&mut self, room_name: &str, except: Option<SessionId>, bytes: Bytes) {
        let Some(room) = self.rooms.get(room_name) else { return };
        let recipients: Vec<SessionId> = room
            .members
            .iter()
            .map(|member| member.session)
            .filter(|session| Some(*session) != except)
            .collect();
        for recipient in recipients {
            self.send_bytes(recipient, bytes.clone());
        }
    }

    /// Tells a session that its frame `number` was refused (by a relay of a cluster, which
    /// answers its rate limit's refusals through the shared state: `cluster`).
    pub fn refuse(&mut self, session: SessionId, number: u64, reason: ErrorReason) {
        self.error(Request { session, number }, reason);
    }

    /// Tells a session that its request failed, naming the request.
    fn error(&mut self, request: Request, reason: ErrorReason) {
        let frame = ServerFrame::Error { request: request.number, reason };
        self.send(request.session, &frame);
    }

    fn send(&mut self, id: SessionId, frame: &ServerFrame) {
        self.send_bytes(id, Bytes::from(proto::encode(frame)));
    }

    /// Queues a frame for a session without waiting. A session whose queue is full (in
    /// frames or bytes) has stopped reading: it is told to close rather than slowing everyone
    /// else down or growing the relay's memory; an away one will not be resumed.
    fn send_bytes(&mut self, id: SessionId, bytes: Bytes) {
        self.flush_chat();
        let Some(session) = self.sessions.get(id) else { return };
        if session.outbound.try_send(bytes).is_err() {
            self.sessions.missed_a_frame(id);
        }
    }
}

#[cfg(test)]
mod tests;
