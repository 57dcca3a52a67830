//! Sessions: who is connected, under which nickname, and what becomes of a session when its
//! connection drops and another one presents its resume token.
//!
//! A session outlives its connection (see `replay`): when a registered client's link drops,
//! its session is *parked* — away, keeping its nickname, rooms and a bounded queue of what it
//! misses — for the grace period, and a new connection presenting its resume token takes it
//! back. Where a session is in that life is one [`SessionPhase`], whose variants hold what
//! only they may use (the close channel of the connection serving it, or the queue kept while
//! nobody does), so each step of a resume is one match arm. Away sessions are capped
//! ([`AwayLimits`]): a client that connects, registers and vanishes over and over cannot fill
//! the relay with sessions kept for nobody.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Request, State};
use crate::proto::{self, DisconnectReason, ErrorReason, ResumeToken, ServerFrame};
use crate::relay::gate;
use crate::relay::outbound::{Inbound, Outbound};
use crate::relay::replay::ReplayBuffer;

/// How long a session whose connection dropped keeps its nickname, rooms and missed frames,
/// by default, waiting for its client to resume it.
pub const GRACE_PERIOD: Duration = Duration::from_secs(120);

/// How many away sessions the relay keeps, per address (an IPv6 network counted as one, as
/// the gate counts it) and in all. Past either, the one away longest is forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwayLimits {
    pub per_address: usize,
    pub total: usize,
    pub ipv6_prefix_len: u8,
}

impl Default for AwayLimits {
    fn default() -> Self {
        AwayLimits { per_address: 10, total: 10_000, ipv6_prefix_len: 64 }
    }
}

/// Identifies one session for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// What a connection task hears from the state: frames to send, or an order to close.
pub struct SessionChannel {
    pub outbound: Outbound,
    pub kick: oneshot::Sender<DisconnectReason>,
}

/// What a connection task hands back when its link drops, for the next one to carry on
/// with: the queue of frames for the client, and the frames it has not acknowledged.
pub struct Parked {
    pub inbound: Inbound,
    pub replay: ReplayBuffer,
}

/// What became of a `Resume`.
pub enum Resumption {
    /// The session is this connection's now: carry on with its queue and replay buffer.
    Ready { id: SessionId, parked: Parked },
    /// Another connection still serves the session; it was told to hand it over through
    /// this channel.
    HandingOver { id: SessionId, parked: oneshot::Receiver<Parked> },
    /// No such session (the relay restarted, or it was removed).
    Unknown,
    /// The connection was heard from before: a `Resume` now is an ordinary request, and
    /// out of place.
    NotFirst,
}

/// Closes the connection that serves a session, once.
type Kick = oneshot::Sender<DisconnectReason>;

/// What a registered session answers to.
struct Registration {
    nick: String,
    token: ResumeToken,
}

/// Where a session is in its life. A `kick` is `None` once its connection was told to go, as
/// a stalled reader that lost a frame: that connection then ends the session, and nothing
/// resumes it.
enum SessionPhase {
    /// Authenticated, nothing heard yet: its first frame may be `Resume`, which gives the
    /// connection back a session it had (this one is then dropped).
    Opening { kick: Option<Kick> },
    /// Heard from, not registered: nothing is kept when its link drops.
    Unregistered { kick: Option<Kick> },
    /// Registered and served by a connection.
    Connected { registration: Registration, kick: Option<Kick> },
    /// A newer connection presented the token while an older one still served the session
    /// (its link may be dead without either end knowing yet): the older one was told to go
    /// and hands the queue over through `handover`; `kick` is the newer connection's. A queue
    /// that `lost_a_frame` meanwhile is not handed over.
    HandingOver {
        registration: Registration,
        handover: oneshot::Sender<Parked>,
        kick: Kick,
        lost_a_frame: bool,
    },
    /// No connection serves it: its queue waits for its client until the grace period ends.
    /// An `overflowed` queue lost frames, so the session can no longer be resumed honestly.
    Away { registration: Registration, since: Instant, parked: Parked, overflowed: bool },
}

/// What became of a session whose link dropped.
enum LinkDropped {
    /// A newer connection took it over.
    HandedOver,
    /// It waits for its client.
    Away,
    /// There is nothing to keep.
    Forgotten,
    /// Nothing changes.
    Unchanged,
}

impl SessionPhase {
    fn registration_mut(&mut self) -> Option<&mut Registration> {
        match self {
            SessionPhase::Opening { .. } | SessionPhase::Unregistered { .. } => None,
            SessionPhase::Connected { registration, .. }
            | SessionPhase::HandingOver { registration, .. }
            | SessionPhase::Away { registration, .. } => Some(registration),
        }
    }

    fn registration(&self) -> Option<&Registration> {
        match self {
            SessionPhase::Opening { .. } | SessionPhase::Unregistered { .. } => None,
            SessionPhase::Connected { registration, .. }
            | SessionPhase::HandingOver { registration, .. }
            | SessionPhase::Away { registration, .. } => Some(registration),
        }
    }

    /// A frame arrived on the session's connection: from now on a `Resume` is out of place.
    /// Returns whether this was the first.
    fn heard_from(&mut self) -> bool {
        let SessionPhase::Opening { kick } = self else { return false };
        *self = SessionPhase::Unregistered { kick: kick.take() };
        true
    }

    /// The phase after a new connection (closed by `kick`) presented this session's token,
    /// and what that connection gets.
    fn resumed(self, id: SessionId, kick: Kick) -> (SessionPhase, Resumption) {
        match self {
            SessionPhase::Away { registration, parked, overflowed: false, .. } => (
                SessionPhase::Connected { registration, kick: Some(kick) },
                Resumption::Ready { id, parked },
            ),
            SessionPhase::Connected { registration, kick: old } => {
                // An old connection already told to go as a stalled reader lost a frame.
                let lost_a_frame = old.is_none();
                if let Some(old) = old {
                    let _ = old.send(DisconnectReason::ResumedElsewhere);
                }
                SessionPhase::hand_over(id, registration, kick, lost_a_frame)
            }
            // A third connection: the second one's wait ends unanswered, and it is refused.
            SessionPhase::HandingOver { registration, lost_a_frame, .. } => {
                SessionPhase::hand_over(id, registration, kick, lost_a_frame)
            }
            // An overflowed session missed frames nobody kept: only a fresh start is honest.
            // (An unregistered one has no token to present.)
            phase @ (SessionPhase::Away { overflowed: true, .. }
            | SessionPhase::Opening { .. }
            | SessionPhase::Unregistered { .. }) => (phase, Resumption::Unknown),
        }
    }

    fn hand_over(
        id: SessionId,
        registration: Registration,
        kick: Kick,
        lost_a_frame: bool,
    ) -> (SessionPhase, Resumption) {
        let (handover, parked) = oneshot::channel();
        (
            SessionPhase::HandingOver { registration, handover, kick, lost_a_frame },
            Resumption::HandingOver { id, parked },
        )
    }

    /// The phase after the connection serving the session lost its link.
    fn link_dropped(self, parked: Parked, now: Instant) -> (SessionPhase, LinkDropped) {
        let away = |registration, parked| SessionPhase::Away {
            registration,
            since: now,
            parked,
            overflowed: false,
        };
        match self {
            SessionPhase::HandingOver { registration, handover, kick, lost_a_frame: false } => {
                match handover.send(parked) {
                    Ok(()) => (
                        SessionPhase::Connected { registration, kick: Some(kick) },
                        LinkDropped::HandedOver,
                    ),
                    // The new connection gave up waiting: the session waits for the next one.
                    Err(parked) => (away(registration, parked), LinkDropped::Away),
                }
            }
            SessionPhase::Connected { registration, kick: Some(_) } => {
                (away(registration, parked), LinkDropped::Away)
            }
            // A queue that lost a frame cannot be resumed honestly: the session ends, as it
            // would have had its connection seen the order to go before losing its link (and
            // a newer connection waiting for it is refused).
            phase @ (SessionPhase::Connected { kick: None, .. }
            | SessionPhase::HandingOver { lost_a_frame: true, .. }) => {
                (phase, LinkDropped::Forgotten)
            }
            // No connection serves an away session, so none can drop it: nothing changes.
            phase @ SessionPhase::Away { .. } => (phase, LinkDropped::Unchanged),
            phase @ (SessionPhase::Opening { .. } | SessionPhase::Unregistered { .. }) => {
                (phase, LinkDropped::Forgotten)
            }
        }
    }

    /// A frame for the session could not be queued: its reader stalled. A connected session
    /// is told to go; an away one, or one being handed over, cannot be told, and will not be
    /// resumed.
    fn missed_a_frame(&mut self) {
        match self {
            SessionPhase::Opening { kick }
            | SessionPhase::Unregistered { kick }
            | SessionPhase::Connected { kick, .. } => {
                if let Some(kick) = kick.take() {
                    let _ = kick.send(DisconnectReason::SlowReader);
                }
            }
            SessionPhase::Away { overflowed, .. } => *overflowed = true,
            // Nobody to tell: the older connection is already going, and the newer one does
            // not serve the session yet. The queue is not handed over.
            SessionPhase::HandingOver { lost_a_frame, .. } => *lost_a_frame = true,
        }
    }
}

pub(super) struct Session {
    phase: SessionPhase,
    pub(super) outbound: Outbound,
    /// Rooms this session is a member of or waiting to join.
    pub(super) rooms: Vec<String>,
    pub(super) ip: IpAddr,
}

impl Session {
    pub(super) fn nick(&self) -> Option<&str> {
        self.phase.registration().map(|registration| registration.nick.as_str())
    }

    pub(super) fn is_away(&self) -> bool {
        matches!(self.phase, SessionPhase::Away { .. })
    }

    pub(super) fn is_in(&self, room_name: &str) -> bool {
        self.rooms.iter().any(|room| room == room_name)
    }

    /// Moves the session to the phase `step` makes of its current one.
    fn step<T>(&mut self, step: impl FnOnce(SessionPhase) -> (SessionPhase, T)) -> T {
        // The placeholder never outlives this call: `step` hands back the phase to keep.
        let current = std::mem::replace(&mut self.phase, SessionPhase::Unregistered { kick: None });
        let (next, outcome) = step(current);
        self.phase = next;
        outcome
    }
}

/// Every session, and the indexes that find one by nickname and by resume token.
#[derive(Default)]
pub(super) struct Sessions {
    next_id: u64,
    /// Ordered: walking it (the grace period, the away limits) must go the same way on
    /// every relay that shares rooms.
    by_id: BTreeMap<SessionId, Session>,
    /// Registered nicknames by their confusable skeletons (`proto::nick_skeletons`: one or
    /// two per nickname), so that a look-alike of a connected nickname, or the same name in
    /// other case, is "taken".
    by_skeleton: HashMap<String, SessionId>,
    by_token: HashMap<ResumeToken, SessionId>,
    pub(super) away_limits: AwayLimits,
}

impl Sessions {
    pub(super) fn get(&self, id: SessionId) -> Option<&Session> {
        self.by_id.get(&id)
    }

    pub(super) fn get_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.by_id.get_mut(&id)
    }

    /// The session's nickname; empty for one that is gone or not registered.
    pub(super) fn nick_of(&self, id: SessionId) -> String {
        self.get(id).and_then(Session::nick).unwrap_or_default().to_owned()
    }

    pub(super) fn is_away(&self, id: SessionId) -> bool {
        self.get(id).is_some_and(Session::is_away)
    }

    /// A frame for the session could not be queued (see [`SessionPhase::missed_a_frame`]).
    pub(super) fn missed_a_frame(&mut self, id: SessionId) {
        if let Some(session) = self.get_mut(id) {
            session.phase.missed_a_frame();
        }
    }

    /// Sessions, registered nicknames, and away sessions.
    pub(super) fn counts(&self) -> (usize, usize, usize) {
        let away = self.by_id.values().filter(|session| session.is_away()).count();
        (self.by_id.len(), self.by_token.len(), away)
    }
}

impl State {
    /// Registers an authenticated connection.
    pub fn add_session(&mut self, ip: IpAddr, channel: SessionChannel) -> SessionId {
        self.sessions.next_id += 1;
        let id = SessionId(self.sessions.next_id);
        self.add_session_as(id, ip, channel);
        id
    }

    /// Registers an authenticated connection under a number its relay chose: relays of a
    /// cluster number their own sessions so that no two relays pick the same (`cluster`).
    pub fn add_session_as(&mut self, id: SessionId, ip: IpAddr, channel: SessionChannel) {
        let phase = SessionPhase::Opening { kick: Some(channel.kick) };
        let session = Session { phase, outbound: channel.outbound, rooms: Vec::new(), ip };
        self.sessions.by_id.insert(id, session);
    }

    /// Erases every trace of a session: nickname, memberships, pending joins. The remaining
    /// members of its rooms are told, with the leader that must commit the removal.
    pub fn remove_session(&mut self, id: SessionId, now: Instant) {
        let Some(session) = self.sessions.get(id) else { return };
        for room in session.rooms.clone() {
            self.leave_room(id, &room, now);
        }
        let Some(session) = self.sessions.by_id.remove(&id) else { return };
        if let Some(Registration { nick, token }) = session.phase.registration() {
            for skeleton in proto::nick_skeletons(nick) {
                self.sessions.by_skeleton.remove(&skeleton);
            }
            self.sessions.by_token.remove(token);
        }
    }

    /// The connection of a session dropped (not by the client's choice): a registered
    /// session is kept, away, for the grace period; one a new connection is waiting for is
    /// handed over at once; an unregistered one is simply removed.
    pub fn park(&mut self, id: SessionId, parked: Parked, now: Instant) {
        let Some(session) = self.sessions.get_mut(id) else { return };
        let address = session.ip;
        match session.step(|phase| phase.link_dropped(parked, now)) {
            LinkDropped::HandedOver | LinkDropped::Unchanged => {}
            LinkDropped::Away => {
                self.announce_presence(id, true, now);
                self.enforce_away_limits(address, now);
            }
            LinkDropped::Forgotten => self.remove_session(id, now),
        }
    }

    /// A connection whose own session is `fresh` presents a resume token. Only its first
    /// frame may do so; `kick` is its close channel.
    pub fn resume(
        &mut self,
        fresh: SessionId,
        token: &ResumeToken,
        kick: oneshot::Sender<DisconnectReason>,
        now: Instant,
    ) -> Resumption {
        if !self.sessions.get_mut(fresh).is_some_and(|session| session.phase.heard_from()) {
            return Resumption::NotFirst;
        }
        let Some(&id) = self.sessions.by_token.get(token) else { return Resumption::Unknown };
        let Some(session) = self.sessions.get_mut(id) else { return Resumption::Unknown };
        let resumption = session.step(|phase| phase.resumed(id, kick));
        match resumption {
            Resumption::Ready { .. } => self.announce_presence(id, false, now),
            Resumption::Unknown => self.remove_session(id, now),
            Resumption::HandingOver { .. } | Resumption::NotFirst => {}
        }
        resumption
    }

    /// A resuming connection adopts session `id`: its own session `fresh` goes, and it gets
    /// the queue sender of the session it took back.
    ///
    /// The session's token changes here: the one just presented is void, so a token that
    /// leaked (a log, a core file) takes a session back at most until its owner next resumes.
    pub fn adopt(
        &mut self,
        fresh: SessionId,
        id: SessionId,
        now: Instant,
    ) -> Option<(Outbound, ResumeToken)> {
        self.remove_session(fresh, now);
        let outbound = self.sessions.get(id)?.outbound.clone();
        let token = self.renew_token(id)?;
        Some((outbound, token))
    }

    /// Gives a session a new resume token, voiding the old one.
    fn renew_token(&mut self, id: SessionId) -> Option<ResumeToken> {
        let token = self.tokens.next();
        let registration = self.sessions.by_id.get_mut(&id)?.phase.registration_mut()?;
        let old = std::mem::replace(&mut registration.token, token.clone());
        self.sessions.by_token.remove(&old);
        self.sessions.by_token.insert(token.clone(), id);
        Some(token)
    }

    /// On a relay of a cluster (`cluster`): the connection whose own session is `fresh`
    /// presents a resume token as its first frame, and the session it names is served by that
    /// connection from now on, wherever it was served before. There is no handover: every
    /// relay of the cluster logs every session's frames, so the relay taking it over already
    /// has them. `fresh` goes; `None` when there is no such session to take over.
    pub fn take_over(
        &mut self,
        fresh: SessionId,
        token: &ResumeToken,
        now: Instant,
    ) -> Option<(SessionId, ResumeToken)> {
        self.sessions.get_mut(fresh)?.phase.heard_from();
        let id = *self.sessions.by_token.get(token)?;
        let session = self.sessions.get_mut(id)?;
        // Nobody holds the receiving end: on a relay of a cluster the connection is told to
        // go through its delivery channel (`cluster::log::Delivery::Close`), not this.
        let (kick, _) = oneshot::channel();
        let was_away = session.step(|phase| match phase {
            SessionPhase::Away { registration, .. } => {
                (SessionPhase::Connected { registration, kick: Some(kick) }, Some(true))
            }
            SessionPhase::Connected { registration, .. }
            | SessionPhase::HandingOver { registration, .. } => {
                (SessionPhase::Connected { registration, kick: Some(kick) }, Some(false))
            }
            phase @ (SessionPhase::Opening { .. } | SessionPhase::Unregistered { .. }) => {
                (phase, None)
            }
        })?;
        if was_away {
            self.announce_presence(id, false, now);
        }
        self.remove_session(fresh, now);
        let token = self.renew_token(id)?;
        Some((id, token))
    }

    /// Whether the session exists (connected, away, or not registered yet).
    pub fn has_session(&self, id: SessionId) -> bool {
        self.sessions.by_id.contains_key(&id)
    }

    /// A frame arrived from the session (see [`SessionPhase::heard_from`]); `false` when
    /// there is no such session.
    pub(super) fn heard_from(&mut self, id: SessionId) -> bool {
        let Some(session) = self.sessions.get_mut(id) else { return false };
        session.phase.heard_from();
        true
    }

    pub(super) fn register(&mut self, request: Request, nick: String) {
        if let Err(problem) = proto::check_nick(&nick) {
            return self.error(request, ErrorReason::NickNotAllowed(problem));
        }
        let id = request.session;
        if self.sessions.get(id).is_some_and(|session| session.nick().is_some()) {
            return self.error(request, ErrorReason::AlreadyRegistered);
        }
        let skeletons = proto::nick_skeletons(&nick);
        if skeletons.iter().any(|skeleton| self.sessions.by_skeleton.contains_key(skeleton)) {
            return self.error(request, ErrorReason::NickTaken);
        }
        let Some(session) = self.sessions.by_id.get_mut(&id) else { return };
        let SessionPhase::Unregistered { kick } = &mut session.phase else { return };
        let token = self.tokens.next();
        let registration = Registration { nick: nick.clone(), token: token.clone() };
        session.phase = SessionPhase::Connected { registration, kick: kick.take() };
        for skeleton in skeletons {
            self.sessions.by_skeleton.insert(skeleton, id);
        }
        self.sessions.by_token.insert(token.clone(), id);
        let relay_boot = self.relay_boot;
        self.send(id, &ServerFrame::Registered { nick, token, relay_boot });
    }

    /// Tells the rooms a session is a member of that it is away or back. An away member's
    /// vote on the commit in flight is not waited for.
    fn announce_presence(&mut self, id: SessionId, away: bool, now: Instant) {
        let nick = self.sessions.nick_of(id);
        let rooms = self.sessions.get(id).map(|session| session.rooms.clone()).unwrap_or_default();
        for room_name in rooms {
            let Some(room) = self.rooms.get_mut(&room_name) else { continue };
            if room.member(id).is_none() {
                continue;
            }
            if away {
                room.excuse_voter(id);
            }
            let notice =
                ServerFrame::MemberAway { room: room_name.clone(), nick: nick.clone(), away };
            self.send_to_room(&room_name, Some(id), &notice);
            self.settle(&room_name, now);
        }
    }

    /// Forgets the sessions away longest past the limits, from `address` and in all.
    fn enforce_away_limits(&mut self, address: IpAddr, now: Instant) {
        let limits = self.sessions.away_limits;
        let key = |ip: IpAddr| gate::address_key(ip, limits.ipv6_prefix_len);
        let mut away: Vec<(Instant, SessionId, IpAddr)> = self
            .sessions
            .by_id
            .iter()
            .filter_map(|(id, session)| match session.phase {
                SessionPhase::Away { since, .. } => Some((since, *id, key(session.ip))),
                _ => None,
            })
            .collect();
        away.sort();
        let from_address = away.iter().filter(|(_, _, ip)| *ip == key(address)).count();
        let mut excess_here = from_address.saturating_sub(limits.per_address);
        let mut excess_total = away.len().saturating_sub(limits.total);
        for (_, id, ip) in away {
            let here = ip == key(address) && excess_here > 0;
            if !here && excess_total == 0 {
                continue;
            }
            if here {
                excess_here -= 1;
            }
            excess_total = excess_total.saturating_sub(1);
            self.remove_session(id, now);
            if excess_here == 0 && excess_total == 0 {
                break;
            }
        }
    }

    /// Removes the away sessions whose grace period ended, or that lost frames.
    pub(super) fn forget_lapsed_sessions(&mut self, now: Instant) {
        let grace = self.deadlines.grace;
        let lapsed: Vec<SessionId> = self
            .sessions
            .by_id
            .iter()
            .filter(|(_, session)| match session.phase {
                SessionPhase::Away { since, overflowed, .. } => overflowed || now >= since + grace,
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in lapsed {
            self.remove_session(id, now);
        }
    }
}
