//! The headless client: everything `chatter` does short of drawing on a terminal.
//!
//! `raw` speaks frames; `core` is the client's sans-IO state machine (the link, the rooms
//! and their MLS groups, the requests waiting), `engine` the tokio task that drives it
//! (sockets, timers, requests), `dial` one reconnection attempt, and `room` the sans-IO
//! state of one room. [`connect`] returns a [`Client`] handle with async methods and an
//! [`Events`] stream; the REPL, line mode, the load generator and the tests all drive this
//! same engine.

pub mod ballot;
pub mod commit_policy;
mod core;
mod dial;
mod engine;
mod error;
/// Who sent messages that never reached us.
pub mod gaps;
/// `/whoami`, `/verify`, `/trust` and the pin check.
mod identity;
mod notice;
pub mod raw;
pub mod reconnect;
pub mod rejoin;
pub mod relays;
pub mod resume;
mod room;
mod room_notice;
#[cfg(test)]
mod room_simulation;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

pub use self::core::{DmPolicy, MAX_DMS_PER_MINUTE, MAX_ROOMS, RoomTab};
use self::core::{Reply, Request};
use crate::identity::{Identity, KnownPeers, PeerTrust};
use crate::mls::{MlsMember, RoomSuite};
use crate::proto::ChatPayload;
pub use crate::proto::RoomSummary;
use crate::secret::Secret;
pub use error::{Asked, Awaited, ClientError, SharedError};
pub use notice::{LinkLoss, NotSentReason, Notice, SessionEnd};
pub use raw::RawClient;
pub use room::RoomError;
pub use room_notice::RoomNotice;

/// How long a connection and handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a join may wait for the room's leader.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long any other request may wait for the relay.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to connect and as whom.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `host:port` of the relay.
    pub server: String,
    pub nick: String,
    /// Kept in memory for reconnecting; never printed (`Secret`).
    pub access_code: Secret,
}

/// Something the user should see.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A chat line; `from` is the sender MLS authenticated.
    Message {
        room: String,
        from: String,
        text: String,
        action: bool,
        time: SystemTime,
        /// Sent while we were away, and delivered when we came back.
        late: bool,
    },
    /// Messages from `from` never reached us: `missed` of them, sent after `since` (when
    /// the last one before them arrived).
    Gap { room: String, from: String, missed: u64, since: SystemTime },
    /// The link to the relay changed; the session goes on.
    Connection(ConnectionEvent),
    /// Someone (possibly us) entered the room.
    Joined { room: String, nick: String },
    /// Someone (possibly us) left the room.
    Left { room: String, nick: String },
    /// A direct message with `nick` is open, as `room` (`@nick`).
    DmOpened { room: String, nick: String },
    /// `nick` refused our direct message (their `dm` setting).
    DmRefused { nick: String },
    /// News of a room's keys or membership, typed (see [`RoomNotice`]; the REPL words it).
    Room { room: String, notice: RoomNotice },
    /// Something informative that is not chat, worded by the room (e.g. a failed admission
    /// attempt).
    Notice { room: Option<String>, text: String },
    /// Something went wrong with a message or the room's keys, worded by the room or the
    /// pin check; nothing is dropped silently.
    Warning { room: Option<String>, text: String },
    /// Something the client core noticed, as a type (the REPL words it).
    Status(Notice),
    /// The session is over.
    Disconnected(SessionEnd),
    /// A member's key is not the one pinned for its nickname on this relay
    /// (first seen on `first_seen`): maybe not the person we know by that name.
    KeyChanged {
        room: String,
        nick: String,
        first_seen: String,
        /// The new key's short fingerprint.
        fingerprint: String,
    },
    /// A member's nickname, not pinned itself, looks like `looks_like`, which is pinned to
    /// another key: maybe someone passing for the person we know by that name.
    LookAlike {
        room: String,
        nick: String,
        looks_like: String,
        /// The short fingerprint of the key pinned for `looks_like`.
        pinned_fingerprint: String,
        /// The member's own key's short fingerprint.
        fingerprint: String,
    },
}

/// What happened to the link to the relay. The session survives all of these; only
/// [`Event::Disconnected`] ends it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionEvent {
    /// The link dropped (or went silent); the client reconnects by itself.
    Lost { reason: LinkLoss },
    /// Attempt `attempt` to reconnect comes in `retry_in`; the one before failed so.
    Reconnecting { attempt: u32, retry_in: Duration, last_error: Option<SharedError> },
    /// At start-up, before any session: attempt `attempt` to connect comes in `retry_in`;
    /// the one before failed with `last_error` (the relay is not up yet, say).
    Connecting { attempt: u32, retry_in: Duration, last_error: SharedError },
    /// The same session is back: the room as it was, and the `missed` frames the relay kept
    /// follow.
    Resumed { missed: u64 },
    /// Connected again, but as a new session: the relay restarted (`relay_restarted`) or
    /// forgot us after the grace period. Rooms are taken back or rejoined automatically;
    /// what was said in between did not reach us.
    Reconnected { relay_restarted: bool, offline_since: SystemTime },
    /// A line typed while offline is kept, `waiting` in all, to be sent once back.
    Queued { waiting: usize },
    /// The lines typed while offline were sent.
    QueueSent { count: usize },
    /// Lines that were not sent, and why.
    NotSent { texts: Vec<String>, reason: NotSentReason },
}

/// The link as the prompt shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Connected,
    /// Reconnecting: attempt number, and lines waiting.
    Reconnecting {
        attempt: u32,
        waiting: usize,
    },
    /// The session is over.
    Closed,
}

/// One member as `/who` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub nick: String,
    /// Short fingerprint of the member's identity key, from the MLS group; `None` for
    /// someone the relay lists who holds no key in the group.
    pub fingerprint: Option<String>,
    pub is_leader: bool,
    pub is_self: bool,
    pub presence: Presence,
    /// How far the member's key is trusted (`None` for us, or no key yet).
    pub trust: Option<crate::identity::TrustMark>,
    /// The first other member (in the relay's order) whose client is certified by the same
    /// identity: "alice-2 — same identity as alice".
    pub same_identity_as: Option<String>,
    /// A pinned nickname this one looks like, under another key: a likely impostor.
    pub looks_like: Option<String>,
    /// How long the member's leaf keys have been unchanged, as far as this client saw (since
    /// it joined, for those already there); `None` for someone who holds no key.
    pub keys_age: Option<std::time::Duration>,
    /// Whether those keys are older than several renewal periods: the member's renewals are
    /// not being committed (`client::room::renewal`).
    pub stale_keys: bool,
}

/// Whether a member is in the MLS group, connected to the relay's room, or both. Only the
/// group can read the room; a difference means someone is joining or leaving — or that the
/// relay shows a list that is not the truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    InGroupAndConnected,
    /// Holds the room's keys but the relay does not list it (it left, and its removal is
    /// pending).
    InGroupNotConnected,
    /// Listed by the relay but holds no key: cannot read the room.
    ConnectedNotInGroup,
    /// In the group, and its connection dropped: the relay keeps its place while it
    /// reconnects.
    Away,
}

/// A room's members: the group's leaves in the relay's order (the leader first), then any
/// only in the group, then anyone only the relay lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMembers {
    pub room: String,
    pub members: Vec<MemberView>,
    /// The room's MLS ciphersuite; `None` until we are in its group.
    pub suite: Option<RoomSuite>,
}

/// What the handle can read without asking the engine.
#[derive(Debug)]
pub(crate) struct View {
    nick: String,
    room: Option<String>,
    /// The rooms whose group we are in now (not on our way back in, not taken out).
    member_of: Vec<String>,
    /// Our rooms in the order joined, with their unread counts.
    tabs: Vec<RoomTab>,
    link: LinkState,
}

/// A cheap, cloneable handle to a running engine.
#[derive(Clone)]
pub struct Client {
    requests: mpsc::UnboundedSender<engine::Ask>,
    view: Arc<Mutex<View>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("view", &self.view).finish()
    }
}

/// The engine's events, in order.
#[derive(Debug)]
pub struct Events {
    receiver: mpsc::UnboundedReceiver<Event>,
}

impl Events {
    pub async fn recv(&mut self) -> Option<Event> {
        self.receiver.recv().await
    }

    /// For threads outside the runtime (the REPL's printer).
    pub fn blocking_recv(&mut self) -> Option<Event> {
        self.receiver.blocking_recv()
    }

    /// An event if one is waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.receiver.try_recv().ok()
    }
}

/// Connects, completes the encrypted handshake, registers the nickname and starts the
/// engine, with an identity and pins that live only as long as the session.
pub async fn connect(options: ClientOptions) -> Result<(Client, Events), ClientError> {
    connect_as(options, Identity::generate(), KnownPeers::in_memory()).await
}

/// [`connect`] signing with `identity` and checking members' keys against `known_peers`.
pub async fn connect_as(
    options: ClientOptions,
    identity: Identity,
    known_peers: KnownPeers,
) -> Result<(Client, Events), ClientError> {
    try_connect_as(options, identity, known_peers).await.map_err(|failed| failed.error)
}

/// A connection attempt that failed, with what it was given back, for another try.
#[derive(Debug)]
pub struct FailedConnect {
    pub error: ClientError,
    pub identity: Identity,
    pub known_peers: KnownPeers,
}

/// [`connect_as`], handing the identity and the pins back when it fails, so that the caller
/// may try again (start-up retries as a lost link does).
pub async fn try_connect_as(
    options: ClientOptions,
    identity: Identity,
    known_peers: KnownPeers,
) -> Result<(Client, Events), Box<FailedConnect>> {
    let ClientOptions { server, nick, access_code } = options;
    let failed =
        |error, identity, known_peers| Box::new(FailedConnect { error, identity, known_peers });
    if let Err(problem) = crate::proto::check_nick(&nick) {
        return Err(failed(ClientError::NickInvalid(nick, problem), identity, known_peers));
    }
    let setup = async {
        let (mut raw, relay) = RawClient::connect_to_one_of(&server, &access_code).await?;
        let registration = raw.register(&nick).await?;
        Ok::<_, ClientError>((raw, registration, relay))
    };
    let (raw, registration, relay) = match tokio::time::timeout(CONNECT_TIMEOUT, setup).await {
        Ok(Ok(done)) => done,
        Ok(Err(error)) => return Err(failed(error, identity, known_peers)),
        Err(_) => {
            return Err(failed(ClientError::Timeout(Awaited::Server), identity, known_peers));
        }
    };
    // A device key for this process, certified by the given identity as of now (the time is
    // for showing; certifications do not expire, see `mls::device`); pins are per relay,
    // named as the user did.
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let mls = match MlsMember::certified(&nick, &identity.key_pair(), started) {
        Ok(mls) => mls,
        Err(error) => return Err(failed(ClientError::Mls(error), identity, known_peers)),
    };
    let trust = PeerTrust::new(identity, known_peers, &server);
    let (requests, request_receiver) = mpsc::unbounded_channel();
    let (event_sender, receiver) = mpsc::unbounded_channel();
    let view = Arc::new(Mutex::new(View {
        nick: nick.clone(),
        room: None,
        member_of: Vec::new(),
        tabs: Vec::new(),
        link: LinkState::Connected,
    }));
    let mut relays = relays::Relays::parse(&server);
    relays.connected_to(relay);
    let parts = engine::Parts {
        nick,
        mls,
        trust,
        relays,
        access_code,
        numbers: registration,
        events: event_sender,
        view: view.clone(),
    };
    engine::spawn(parts, raw, request_receiver);
    Ok((Client { requests, view }, Events { receiver }))
}

impl Client {
    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn nick(&self) -> String {
        self.view().nick.clone()
    }

    pub fn current_room(&self) -> Option<String> {
        self.view().room.clone()
    }

    /// Whether we are in `room` and its group now, so that joining it would only leave it
    /// and come back (a room we were taken out of, or are still joining, is not).
    pub fn is_member_of(&self, room: &str) -> bool {
        self.view().member_of.iter().any(|member_of| member_of == room)
    }

    /// Our rooms in the order joined (the current one marked), with their unread counts.
    pub fn room_tabs(&self) -> Vec<RoomTab> {
        self.view().tabs.clone()
    }

    /// Whether the session goes on (connected, or reconnecting by itself).
    pub fn is_connected(&self) -> bool {
        self.view().link != LinkState::Closed
    }

    /// The link as the prompt shows it.
    pub fn link_state(&self) -> LinkState {
        self.view().link
    }

    /// Asks the engine, and waits up to `limit` for the answer.
    async fn ask(
        &self,
        request: Request,
        limit: Duration,
        waiting_for: Awaited,
    ) -> Result<Reply, ClientError> {
        let (reply, answer) = oneshot::channel();
        let ask = engine::Ask { request, reply: Some(reply) };
        self.requests.send(ask).map_err(|_| ClientError::NotConnected)?;
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::NotConnected),
            Err(_) => Err(ClientError::Timeout(waiting_for)),
        }
    }

    /// Asks for something that is done or not.
    async fn ask_done(&self, request: Request, limit: Duration) -> Result<(), ClientError> {
        match self.ask(request, limit, Awaited::Engine).await? {
            Reply::Done => Ok(()),
            _ => Err(ClientError::WrongReply),
        }
    }

    /// Enters a room, creating it (with this password) if it is empty, otherwise proving the
    /// password to its leader, and makes it current; the rooms we are in stay. A room we are
    /// in only becomes current (`AlreadyInRoom`).
    pub async fn join(&self, room: &str, password: Secret) -> Result<(), ClientError> {
        if room.starts_with('@') {
            return Err(ClientError::RoomNameReserved);
        }
        if !crate::proto::is_valid_name(room) {
            return Err(ClientError::RoomNameInvalid(room.to_owned()));
        }
        let request = Request::Join { room: room.to_owned(), password };
        let result = self.ask(request, JOIN_TIMEOUT, Awaited::RoomLeader).await;
        if let Err(ClientError::Timeout(_)) = result {
            let request = Request::AbandonJoin { room: room.to_owned() };
            let _ = self.requests.send(engine::Ask { request, reply: None });
        }
        match result? {
            Reply::Done => Ok(()),
            _ => Err(ClientError::WrongReply),
        }
    }

    /// Leaves the current room, or the one `room` names (by name or place); the others stay.
    pub async fn leave(&self, room: Option<&str>) -> Result<(), ClientError> {
        let request = Request::Leave { room: room.map(ToOwned::to_owned) };
        self.ask_done(request, REQUEST_TIMEOUT).await
    }

    /// Makes the room `target` names (its name, or its place from 1 in the order joined)
    /// current; returns its name.
    pub async fn switch(&self, target: &str) -> Result<String, ClientError> {
        let request = Request::Switch { target: target.to_owned() };
        match self.ask(request, REQUEST_TIMEOUT, Awaited::Engine).await? {
            Reply::Switched(room) => Ok(room),
            _ => Err(ClientError::WrongReply),
        }
    }

    /// Sends one chat message; multi-line text stays one message.
    pub async fn send_text(&self, text: &str) -> Result<(), ClientError> {
        let payload = ChatPayload::Text(text.to_owned());
        self.ask_done(Request::Send(payload), REQUEST_TIMEOUT).await
    }

    /// Sends a direct message to `nick` (`/msg`), opening the DM first if none is open: the
    /// line then waits until it is (`Event::DmOpened`), or is listed as not sent
    /// (`Event::DmRefused`).
    pub async fn msg(&self, nick: &str, text: &str) -> Result<(), ClientError> {
        let request =
            Request::Msg { nick: nick.to_owned(), payload: ChatPayload::Text(text.to_owned()) };
        self.ask_done(request, REQUEST_TIMEOUT).await
    }

    /// Sets whose DM requests are answered (`dm` in the config, `--dm`). Requests are
    /// handled in order, so set before any `/join` it holds for every DM request: nobody can
    /// ask for a DM before sharing a room with us.
    pub fn set_dm_policy(&self, policy: DmPolicy) {
        let request = Request::SetDmPolicy(policy);
        let _ = self.requests.send(engine::Ask { request, reply: None });
    }

    /// Renews our leaf keys in the current room now (`/rekey`): as leader by a commit, as a
    /// member by proposing it to the leader. Done once it is asked; the renewal itself shows
    /// as `RoomNotice::KeysRenewed` when the room commits it.
    pub async fn rekey(&self) -> Result<(), ClientError> {
        self.ask_done(Request::Rekey, REQUEST_TIMEOUT).await
    }

    /// How long our leaf keys are kept in each room before they are renewed by themselves
    /// (`rekey_hours` in the config; a day by default).
    pub fn set_renew_after(&self, after: std::time::Duration) {
        let request = Request::SetRenewAfter(after);
        let _ = self.requests.send(engine::Ask { request, reply: None });
    }

    /// Sets the ciphersuite of the rooms this client creates from now on (`--pq`, `pq` in
    /// the config): a room's suite is its creator's, and joiners follow it. Requests are
    /// handled in order, so set before any `/join` it holds for every room we create.
    pub fn set_room_suite(&self, suite: RoomSuite) {
        let request = Request::SetRoomSuite(suite);
        let _ = self.requests.send(engine::Ask { request, reply: None });
    }

    /// Sends an action ("/me waves").
    pub async fn send_action(&self, text: &str) -> Result<(), ClientError> {
        let payload = ChatPayload::Action(text.to_owned());
        self.ask_done(Request::Send(payload), REQUEST_TIMEOUT).await
    }

    pub async fn rooms(&self) -> Result<Vec<RoomSummary>, ClientError> {
        match self.ask(Request::Rooms, REQUEST_TIMEOUT, Awaited::Server).await? {
            Reply::Rooms(rooms) => Ok(rooms),
            _ => Err(ClientError::WrongReply),
        }
    }

    pub async fn members(&self) -> Result<RoomMembers, ClientError> {
        match self.ask(Request::Members, REQUEST_TIMEOUT, Awaited::Server).await? {
            Reply::Members(members) => Ok(members),
            _ => Err(ClientError::WrongReply),
        }
    }

    /// Leaves, has the relay erase everything about this client, and closes.
    pub async fn quit(&self) -> Result<(), ClientError> {
        if !self.is_connected() {
            return Ok(());
        }
        match self.ask(Request::Quit, REQUEST_TIMEOUT, Awaited::Server).await {
            Ok(_) | Err(ClientError::NotConnected | ClientError::SessionEnded(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }
}
