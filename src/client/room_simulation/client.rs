//! One client: the real sans-IO client core (`client::core::Core`), which the engine drives
//! in `chatter`, fed by the simulation instead of sockets and timers.
//!
//! Everything the client decides is the core's: what it sends for each frame, request and
//! tick, when it gives up on a link, when it dials again, what it shows. This file only
//! moves inputs in and outputs out, as `client::engine` does, and keeps what the ledger
//! needs to follow the client: the frames it sent (decoded, resends after a resume aside),
//! and each chat line it encrypted, with its number and group. The `Client` handle's own
//! part — giving up a `/join` after its timeout — is played here too.
//!
//! A hostile insider runs this same core and lies on the way out: its frames are rewritten
//! before they reach the link (and the same rewrite is applied when the core sends them
//! again after a resume).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::super::ballot::commit_hash;
use super::super::core::{Core, Dial, Now, Request, RequestId};
use super::super::resume::SessionNumbers;
use super::super::room::Room;
use super::super::{ClientError, ConnectionEvent, Event, LinkLoss};
use crate::identity::{Identity, KnownPeers, PeerTrust};
use crate::mls::MlsMember;
use crate::mls_header;
use crate::proto::{
    self, ChatPayload, ClientFrame, GroupMessage, ResumeToken, ServerFrame, VoteStatement,
};
use crate::secret::Secret;

/// `client::JOIN_TIMEOUT`: the handle gives up a `/join` nobody answered in time.
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

/// Rewrites a frame just before it goes on the link: how a hostile insider lies while
/// running the honest code for everything else.
pub type Rewrite = Box<dyn FnMut(&mut ClientFrame)>;

pub struct SimClient {
    pub nick: String,
    /// Until the first registration, the MLS member the core will own.
    mls: Option<MlsMember>,
    core: Option<Core>,
    /// Seeds the core's backoff jitter.
    seed: u64,
    next_request: u64,
    /// The user's `/join` still waiting for its answer, and when the handle gives up.
    join_request: Option<(RequestId, Instant)>,
    /// Set when the user's `/join` failed or timed out: the user was told, and will try
    /// again (the world takes it).
    pub join_failed: bool,
    /// Chat lines the core took and has not encrypted yet, oldest first, with the
    /// requests that gave them.
    pending_lines: VecDeque<String>,
    say_requests: HashMap<RequestId, String>,
    /// Chat messages encrypted in the current `Room` (the user's current `/join`).
    sent_messages: u64,
    /// Hashes of every frame put on a link, to tell what a resume sends again.
    transmitted: HashSet<u64>,
    /// While the core resumes: frames it wrote before are sent again, not new.
    resuming: bool,
    /// What a hostile client's rewrite made of each frame, to send its resends the same.
    rewritten: HashMap<u64, Vec<u8>>,
    /// While the core sends our farewell: its Application is not a chat line.
    leaving: bool,
    /// Everything the user was shown, in order; a request's error is shown as a warning.
    pub events: Vec<Event>,
    /// Frames for the link, in order.
    pub outgoing: Vec<Up>,
    /// Every new frame sent (after any rewrite), decoded, for the ledger and the log.
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

fn hash_of(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

impl SimClient {
    pub fn new(nick: &str, origin: Instant, seed: u64) -> Self {
        SimClient {
            nick: nick.to_owned(),
            mls: Some(MlsMember::new(nick).unwrap()),
            core: None,
            seed,
            next_request: 0,
            join_request: None,
            join_failed: false,
            pending_lines: VecDeque::new(),
            say_requests: HashMap::new(),
            sent_messages: 0,
            transmitted: HashSet::new(),
            resuming: false,
            rewritten: HashMap::new(),
            leaving: false,
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

    fn now(&self, now: Instant) -> Now {
        Now { instant: now.into_std(), wall: SystemTime::UNIX_EPOCH + (now - self.origin) }
    }

    fn core(&mut self) -> &mut Core {
        self.core.as_mut().expect("registered first")
    }

    /// The current room (joining, a member, or taking its place back).
    pub fn room(&self) -> Option<&Room> {
        self.core.as_ref()?.room_for_tests()
    }

    pub fn room_mut(&mut self) -> Option<&mut Room> {
        self.core.as_mut()?.room_mut_for_tests()
    }

    pub fn is_member(&self) -> bool {
        self.room().is_some_and(Room::is_member)
    }

    /// A member, or a member asking a relay that forgot it to take it back.
    pub fn holds_group(&self) -> bool {
        self.room().and_then(Room::group).is_some()
    }

    /// Whether the core has a link (it drops one it finds silent by itself).
    pub fn is_connected(&self) -> bool {
        self.core.as_ref().is_some_and(Core::is_connected)
    }

    /// When the core wants to be called again.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.core.as_ref()?.poll_timeout()
    }

    // ---- The user (what a `Client` handle asks) ----

    fn request(&mut self, request: Request, now: Instant) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        let now = self.now(now);
        self.core().handle_request(id, request, now);
        self.drain();
        id
    }

    /// `/join room`.
    pub fn user_join(&mut self, room: &str, password: &str, now: Instant) {
        self.leaving = true;
        self.next_request += 1;
        let id = RequestId(self.next_request);
        // The answer may come at once (offline), so the request is known before.
        self.join_request = Some((id, now + JOIN_TIMEOUT));
        self.sent_messages = 0;
        let request = Request::Join { room: room.to_owned(), password: Secret::from(password) };
        let at = self.now(now);
        self.core().handle_request(id, request, at);
        self.drain();
        self.leaving = false;
    }

    /// `/leave`.
    pub fn user_leave(&mut self, now: Instant) {
        self.leaving = true;
        self.request(Request::Leave { room: None }, now);
        self.leaving = false;
    }

    /// `/rekey`: new keys for our leaf in the room.
    pub fn user_rekey(&mut self, now: Instant) {
        self.request(Request::Rekey, now);
    }

    /// A chat line.
    pub fn user_say(&mut self, text: &str, now: Instant) {
        self.pending_lines.push_back(text.to_owned());
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.say_requests.insert(id, text.to_owned());
        let at = self.now(now);
        self.core().handle_request(id, Request::Send(ChatPayload::Text(text.to_owned())), at);
        self.drain();
    }

    /// Sends a frame of the caller's choosing through the session: a hostile client only.
    pub fn send_raw(&mut self, frame: ClientFrame) {
        self.core().send_for_tests(frame);
        self.drain();
    }

    // ---- The link (what `client::engine` and `client::dial` report) ----

    /// The first registration of the session.
    pub fn registered_first(&mut self, token: ResumeToken, relay_boot: u64, now: Instant) {
        let mls = self.mls.take().expect("registers once");
        let trust = PeerTrust::new(Identity::generate(), KnownPeers::in_memory(), "relay");
        let numbers = SessionNumbers::registered(token, relay_boot);
        let now = self.now(now);
        self.core = Some(Core::new(self.nick.clone(), mls, trust, numbers, now, self.seed));
        self.drain();
    }

    /// The link dropped, and the client noticed.
    pub fn link_lost(&mut self, now: Instant) {
        let now = self.now(now);
        self.core().link_lost(LinkLoss::Closed, now);
        self.drain();
    }

    /// A reconnection the core asks for now, if any.
    pub fn poll_dial(&mut self) -> Option<Dial> {
        self.core().poll_dial()
    }

    /// The reconnection attempt did not get through.
    pub fn dial_failed(&mut self, now: Instant) {
        let now = self.now(now);
        self.core().dial_failed(ClientError::ConnectionClosed, now);
        self.drain();
    }

    /// The relay took the session back.
    pub fn resumed(&mut self, handled: u64, backlog: u64, token: ResumeToken, now: Instant) {
        let now = self.now(now);
        self.core().link_resumed(handled, backlog, token, now);
        self.resuming = true;
        self.drain();
        self.resuming = false;
    }

    /// The relay had forgotten the session: registered anew.
    pub fn registered_anew(&mut self, token: ResumeToken, relay_boot: u64, now: Instant) {
        let now = self.now(now);
        self.core().link_registered(SessionNumbers::registered(token, relay_boot), now);
        self.drain();
    }

    /// Whether [`SimClient::tick`] has something to do at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.join_request.is_some_and(|(_, deadline)| now >= deadline)
            || self.deadline().is_some_and(|deadline| now.into_std() >= deadline)
    }

    /// Time passes: the core's timers when due, and the handle's `/join` timeout.
    pub fn tick(&mut self, now: Instant) {
        if let Some((id, deadline)) = self.join_request
            && now >= deadline
        {
            // `Client::join` timed out and asked the engine to give the join up.
            self.join_request = None;
            self.join_failed = true;
            self.events
                .push(Event::Warning { room: None, text: format!("{:?}: the join timed out", id) });
            let room = self.core().room_for_tests().map(|room| room.name.clone());
            if let Some(room) = room {
                self.request(Request::AbandonJoin { room }, now);
            }
        }
        if self.deadline().is_some_and(|deadline| now.into_std() >= deadline) {
            let at = self.now(now);
            self.core().handle_timeout(at);
            self.drain();
        }
    }

    /// A frame from the relay, read from the link.
    pub fn on_frame(&mut self, frame: ServerFrame, now: Instant) {
        if let ServerFrame::Commit { commit, .. } = &frame {
            self.last_commit = Some(commit_hash(commit));
        }
        let now = self.now(now);
        self.core().handle_frame(frame, now);
        self.drain();
    }

    // ---- The core's outputs ----

    /// Takes everything the core produced: answers, events, frames.
    fn drain(&mut self) {
        let Some(core) = self.core.as_mut() else { return };
        let answers: Vec<_> = std::iter::from_fn(|| core.poll_answer()).collect();
        let events: Vec<_> = std::iter::from_fn(|| core.poll_event()).collect();
        let transmits: Vec<_> = std::iter::from_fn(|| core.poll_transmit()).collect();
        for (id, answer) in answers {
            if self.join_request.is_some_and(|(waiting, _)| waiting == id) {
                self.join_request = None;
                self.join_failed |= answer.is_err();
            }
            let said = self.say_requests.remove(&id);
            if let Err(error) = answer {
                if let Some(text) = said
                    && let Some(position) = self.pending_lines.iter().position(|t| *t == text)
                {
                    self.pending_lines.remove(position);
                }
                self.events.push(Event::Warning { room: None, text: error.to_string() });
            }
        }
        for event in events {
            if let Event::Connection(ConnectionEvent::NotSent { texts, .. }) = &event {
                self.pending_lines.retain(|line| !texts.contains(line));
            }
            self.events.push(event);
        }
        for bytes in transmits {
            self.transmit(bytes);
        }
    }

    /// One frame the core wrote: rewritten if the client lies, noted unless a resume sends
    /// it again (a frame made again, such as a `Join` or a commit sent again unchanged, is
    /// noted each time).
    fn transmit(&mut self, bytes: Vec<u8>) {
        let mut frame: ClientFrame = proto::decode(&bytes).unwrap();
        if let ClientFrame::Ack { received } = frame {
            return self.outgoing.push(Up::Ack(received));
        }
        let key = hash_of(&bytes);
        let seen = !self.transmitted.insert(key);
        if seen && self.resuming {
            // Sent again after a resume: as it went the first time.
            let bytes = self.rewritten.get(&key).cloned().unwrap_or(bytes);
            return self.outgoing.push(Up::Frame(bytes));
        }
        if let Some(rewrite) = self.rewrite.as_mut() {
            rewrite(&mut frame);
        }
        if self.votes_no {
            self.sign_no(&mut frame);
        }
        let out = proto::encode(&frame);
        if out != bytes {
            self.rewritten.insert(key, out.clone());
        }
        if let ClientFrame::Application { message, .. } = &frame
            && !self.leaving
        {
            self.encrypted_line(message);
        }
        self.outgoing.push(Up::Frame(out));
        self.sent.push(frame);
    }

    /// A chat line went out: the oldest the core took and had not sent.
    fn encrypted_line(&mut self, message: &[u8]) {
        let Some(text) = self.pending_lines.pop_front() else { return };
        let Some(header) = mls_header::peek_header(message) else { return };
        self.sent_messages += 1;
        self.encrypted.push(Encrypted {
            text,
            number: self.sent_messages,
            group_id: header.group_id,
            message: message.to_vec(),
        });
    }

    /// Turns a vote into a signed no on the commit it is about: the insider lies
    /// consistently, on the wire and under its signature.
    fn sign_no(&mut self, frame: &mut ClientFrame) {
        let ClientFrame::CommitVote { epoch, accept, vote, .. } = frame else { return };
        let Some(commit) = self.last_commit else { return };
        let Some(group) = self.room_mut().and_then(Room::group_mut_for_tests) else { return };
        let statement = VoteStatement { epoch: *epoch, commit, accept: false };
        if let Ok(signed) = group.encrypt_message(&proto::encode(&GroupMessage::Vote(statement))) {
            *accept = false;
            *vote = signed;
        }
    }
}
