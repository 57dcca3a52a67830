//! One relay's copy of the shared state, and how an input changes it. Sans-IO: the stream
//! (`stream`) hands inputs in, in the cluster's one order, with the stream's clock; the
//! connection tasks (`connection`) attach to the sessions they serve.
//!
//! Every relay of a cluster applies the same inputs in the same order to the same state, so
//! every relay makes the same decisions (who leads, which commit of an epoch wins, who is
//! taken out) and queues the same frames for every session, numbered alike in each
//! session's log (`log`). A relay writes to the sockets of its own connections only. Nothing
//! here reads a local clock or draws at random: time is the stream's, resume tokens come
//! from the cluster key (`state::TokenSource`), and every map that is walked is ordered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::input::{ClientInput, Envelope, Input, RelayId};
use super::log::{Delivery, SessionLog};
use crate::proto::{self, ClientFrame, DisconnectReason, ErrorReason, ResumeToken, ServerFrame};
use crate::relay::outbound::{self, Outbound};
use crate::relay::replay::{ReplayBuffer, ReplayLimits};
use crate::relay::state::{
    AbuseSignal, AwayLimits, Control, Parked, RoomDeadlines, SessionChannel, SessionId, State,
};

/// A relay none of whose ticks reached the stream for this long is gone: its sessions are
/// away (their clients resume elsewhere), as if each had lost its link. Relays tick five
/// times a second, so this is fifteen missed ticks.
pub const RELAY_SILENT_LIMIT: Duration = Duration::from_secs(3);

/// What every relay of a cluster builds its state from: the same on all of them.
#[derive(Clone)]
pub struct StateTemplate {
    pub max_rooms_per_session: usize,
    pub deadlines: RoomDeadlines,
    pub away_limits: AwayLimits,
    pub replay_limits: ReplayLimits,
    /// The key resume tokens are derived from (`ClusterKey::derived`).
    pub token_key: [u8; 32],
}

impl std::fmt::Debug for StateTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateTemplate").finish_non_exhaustive()
    }
}

impl StateTemplate {
    fn build(&self, relay_boot: u64) -> State {
        State::new(self.max_rooms_per_session, self.deadlines)
            .with_away_limits(self.away_limits)
            .shared_by_a_cluster(relay_boot, self.token_key)
    }
}

/// What applying an input asks of this relay's own machinery.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Addresses of this relay's clients that gave a wrong room password (for the gate).
    pub wrong_room_passwords: Vec<IpAddr>,
}

/// This relay's copy of the shared state.
pub struct Replica {
    me: RelayId,
    template: StateTemplate,
    state: State,
    logs: HashMap<SessionId, Arc<Mutex<SessionLog>>>,
    /// Which relay serves each session (its last `Opened` or `Resume`).
    owners: HashMap<SessionId, RelayId>,
    /// When each relay last ticked, by the stream's clock; ordered, to be walked alike.
    heard: BTreeMap<RelayId, Instant>,
    gone: BTreeSet<RelayId>,
    /// The cluster's gate (`Input::Tick`): the first relay's, heard in this incarnation.
    gate: Option<[u8; 32]>,
    /// Relays whose gate is the cluster's: inputs from any other change nothing.
    admitted: BTreeSet<RelayId>,
    /// The connections of this relay, by the session they serve (or will, once their
    /// `Opened` is applied).
    links: HashMap<SessionId, mpsc::Sender<Delivery>>,
    signals: Vec<AbuseSignal>,
}

impl Replica {
    pub fn new(me: RelayId, template: StateTemplate, relay_boot: u64) -> Self {
        let state = template.build(relay_boot);
        Replica {
            me,
            template,
            state,
            logs: HashMap::new(),
            owners: HashMap::new(),
            heard: BTreeMap::new(),
            gone: BTreeSet::new(),
            gate: None,
            admitted: BTreeSet::new(),
            links: HashMap::new(),
            signals: Vec::new(),
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// A connection of this relay will serve `session` (its own, or one it resumes).
    pub fn attach(&mut self, session: SessionId, link: mpsc::Sender<Delivery>) {
        self.links.insert(session, link);
    }

    /// A connection of this relay ended.
    /// A connection of this relay ended: `link` is the one it was attached with. A newer
    /// connection of this relay may serve the session by now (its client came back here
    /// while the old link still looked alive); that one stays.
    pub fn detach(&mut self, session: SessionId, link: &mpsc::Sender<Delivery>) {
        if self.links.get(&session).is_some_and(|attached| attached.same_channel(link)) {
            self.links.remove(&session);
        }
        if let Some(log) = self.logs.get(&session) {
            lock(log).stop_serving_through(link);
        }
    }

    /// The cluster's state was lost (NATS restarted, or the stream was replaced): start
    /// again from nothing, as a relay restart does, and tell every client so; they come back
    /// within moments and reclaim their rooms (`state::reclaim`).
    pub fn reset(&mut self, relay_boot: u64) {
        for (_, link) in self.links.drain() {
            let _ = link.try_send(Delivery::Close(Some(DisconnectReason::ServerShutdown)));
        }
        *self = Replica::new(self.me, self.template.clone(), relay_boot);
    }

    /// Applies one input, at the stream's time `now`.
    pub fn apply(&mut self, envelope: Envelope, now: Instant) -> Applied {
        let Envelope { from, incarnation, input } = envelope;
        let mut applied = Applied::default();
        if incarnation != self.state.relay_boot() {
            return applied;
        }
        if let Input::Tick { gate } = input {
            self.admit(from, gate);
        }
        if !self.admitted.contains(&from) {
            return applied;
        }
        self.state.batch_chat(true);
        match input {
            Input::Opened { session, ip } => {
                let ip = IpAddr::from(ip).to_canonical();
                self.opened(from, SessionId(session), ip)
            }
            Input::Frames { session, frames } => {
                for ClientInput { frame, refused } in frames {
                    self.frame(from, SessionId(session), &frame, refused, now, &mut applied);
                }
            }
            Input::Ack { session, received } => self.ack(from, SessionId(session), received),
            Input::Resume { fresh, token, received } => {
                self.resume(from, SessionId(fresh), &ResumeToken(token), received, now)
            }
            Input::Closed { session, link_lost } => {
                self.closed(from, SessionId(session), link_lost, now)
            }
            Input::Tick { .. } => self.tick(from, now),
        }
        self.state.batch_chat(false);
        applied
    }

    /// Whether this relay is part of the cluster: its ticks carry the cluster's gate.
    pub fn admitted(&self) -> bool {
        self.admitted.contains(&self.me)
    }

    /// A relay's tick names its gate: the first one heard becomes the cluster's, and a relay
    /// whose gate differs (another access code) is not admitted, by every replica alike.
    fn admit(&mut self, relay: RelayId, gate: [u8; 32]) {
        if *self.gate.get_or_insert(gate) == gate {
            self.admitted.insert(relay);
        } else {
            self.admitted.remove(&relay);
        }
    }

    fn opened(&mut self, from: RelayId, session: SessionId, ip: IpAddr) {
        if self.state.has_session(session) {
            return;
        }
        let log = Arc::new(Mutex::new(SessionLog::new(self.template.replay_limits)));
        if from == self.me {
            lock(&log).serve_through(self.links.get(&session).cloned());
        }
        let (kick, _) = oneshot::channel();
        let channel = SessionChannel { outbound: Outbound::logged(Arc::clone(&log)), kick };
        self.state.add_session_as(session, ip, channel);
        self.logs.insert(session, log);
        self.owners.insert(session, from);
    }

    /// Whether `from` serves `session`: inputs about a session from a relay that no longer
    /// serves it (sent before its client resumed elsewhere) change nothing.
    fn serves(&self, from: RelayId, session: SessionId) -> bool {
        self.owners.get(&session) == Some(&from) && self.state.has_session(session)
    }

    fn frame(
        &mut self,
        from: RelayId,
        session: SessionId,
        frame: &[u8],
        refused: bool,
        now: Instant,
        applied: &mut Applied,
    ) {
        if !self.serves(from, session) {
            return;
        }
        let Some(log) = self.logs.get(&session) else { return };
        let number = {
            let mut log = lock(log);
            log.replay().handled_one();
            log.replay().handled()
        };
        if refused {
            return self.state.refuse(session, number, ErrorReason::RateLimited);
        }
        // The serving relay decoded it before publishing; what does not decode here was
        // not published by a relay of this version, and is dropped alike everywhere.
        let Ok(frame) = proto::decode::<ClientFrame>(frame) else { return };
        let control = self.state.handle(session, number, frame, now, &mut self.signals);
        for signal in self.signals.drain(..) {
            let AbuseSignal::WrongRoomPassword { ip } = signal;
            if from == self.me {
                applied.wrong_room_passwords.push(ip);
            }
        }
        if let Control::Close(reason) = control {
            self.state.flush_chat();
            self.state.remove_session(session, now);
            self.logs.remove(&session);
            self.owners.remove(&session);
            if let Some(link) = self.links.remove(&session) {
                let _ = link.try_send(Delivery::Close(Some(reason)));
            }
        }
    }

    fn ack(&mut self, from: RelayId, session: SessionId, received: u64) {
        if !self.serves(from, session) {
            return;
        }
        // The answer goes straight into the log: chat still waiting in a batch goes first,
        // as it would on every relay.
        self.state.flush_chat();
        let Some(log) = self.logs.get(&session) else { return };
        let mut log = lock(log);
        log.replay().acknowledge(received);
        if let Some(handled) = log.replay().ack_to_send() {
            let ack = ServerFrame::Ack { received: handled };
            log.push(outbound::Chunk::One(Bytes::from(proto::encode(&ack))));
        }
    }

    fn resume(
        &mut self,
        from: RelayId,
        fresh: SessionId,
        token: &ResumeToken,
        received: u64,
        now: Instant,
    ) {
        if !self.serves(from, fresh) {
            return;
        }
        // What the client missed is read from the log: everything queued goes in first.
        self.state.flush_chat();
        let answer = self.take_over(from, fresh, token, received, now);
        if answer.is_some() {
            // The connection serves the session it took back; its own is gone.
            self.logs.remove(&fresh);
            self.owners.remove(&fresh);
        }
        if from != self.me {
            return;
        }
        let Some(link) = self.links.remove(&fresh) else { return };
        match answer {
            Some((session, resumed, missing)) => {
                if let Some(old) = self.links.insert(session, link.clone())
                    && !old.same_channel(&link)
                {
                    let _ = old.try_send(Delivery::Close(Some(DisconnectReason::ResumedElsewhere)));
                }
                let _ = link.try_send(Delivery::Resumed { session, resumed, missing });
                if let Some(log) = self.logs.get(&session) {
                    lock(log).serve_through(Some(link));
                }
            }
            None => {
                let refused = ServerFrame::ResumeRefused { relay_boot: self.state.relay_boot() };
                let _ =
                    link.try_send(Delivery::ResumeRefused(Bytes::from(proto::encode(&refused))));
                // The connection goes on, to register anew.
                self.links.insert(fresh, link);
            }
        }
    }

    /// Moves the session `token` names to the connection of `fresh`, on relay `from`:
    /// the `Resumed` frame and what the client missed, or `None` when it cannot be given
    /// back whole.
    fn take_over(
        &mut self,
        from: RelayId,
        fresh: SessionId,
        token: &ResumeToken,
        received: u64,
        now: Instant,
    ) -> Option<(SessionId, Bytes, Vec<Bytes>)> {
        let (session, token) = self.state.take_over(fresh, token, now)?;
        let previous = self.owners.insert(session, from);
        let log = Arc::clone(self.logs.get(&session)?);
        let mut log = lock(&log);
        let missing = match log.replay().missing(received) {
            Ok(missing) => missing,
            Err(_) => {
                // Frames the client needs were forgotten: only a fresh start is honest.
                drop(log);
                self.state.remove_session(session, now);
                self.logs.remove(&session);
                self.owners.remove(&session);
                return None;
            }
        };
        // The relay that served it until now lets its connection go.
        if previous == Some(self.me) && from != self.me {
            log.serve_through(None);
            if let Some(old) = self.links.remove(&session) {
                let _ = old.try_send(Delivery::Close(Some(DisconnectReason::ResumedElsewhere)));
            }
        }
        let handled = log.replay().handled();
        let backlog = missing.len() as u64;
        let resumed = ServerFrame::Resumed { received: handled, backlog, token };
        Some((session, Bytes::from(proto::encode(&resumed)), missing))
    }

    fn closed(&mut self, from: RelayId, session: SessionId, link_lost: bool, now: Instant) {
        if !self.serves(from, session) {
            return;
        }
        if let Some(log) = self.logs.get(&session) {
            lock(log).serve_through(None);
        }
        if link_lost {
            self.state.park(session, nobody_reads(), now);
        } else {
            self.state.remove_session(session, now);
        }
        if !self.state.has_session(session) {
            self.logs.remove(&session);
            self.owners.remove(&session);
        }
    }

    fn tick(&mut self, from: RelayId, now: Instant) {
        self.heard.insert(from, now);
        self.gone.remove(&from);
        let silent: Vec<RelayId> = self
            .heard
            .iter()
            .filter(|(relay, last)| {
                !self.gone.contains(relay) && now >= **last + RELAY_SILENT_LIMIT
            })
            .map(|(relay, _)| *relay)
            .collect();
        for relay in silent {
            self.relay_gone(relay, now);
        }
        self.state.expire(now);
        // Sessions the state let go of (their grace period ended) take their logs along.
        let state = &self.state;
        self.logs.retain(|session, _| state.has_session(*session));
        self.owners.retain(|session, _| state.has_session(*session));
    }

    /// Nothing was heard from `relay` for too long: every session it served lost its link.
    /// When that relay is this one, its connections are let go too: their clients resume,
    /// here or on another relay, once this relay is heard again.
    fn relay_gone(&mut self, relay: RelayId, now: Instant) {
        self.gone.insert(relay);
        let sessions: Vec<SessionId> = {
            let mut served: Vec<SessionId> = self
                .owners
                .iter()
                .filter(|(_, owner)| **owner == relay)
                .map(|(session, _)| *session)
                .collect();
            served.sort();
            served
        };
        for session in sessions {
            self.closed(relay, session, true, now);
            if relay == self.me
                && let Some(link) = self.links.remove(&session)
            {
                let _ = link.try_send(Delivery::Close(None));
            }
        }
    }
}

/// The parked queue of a session on a relay of a cluster: empty, since its frames are in
/// its log, which outlives the connection.
fn nobody_reads() -> Parked {
    let limits = outbound::QueueLimits::default();
    let (_, inbound) = outbound::queue(limits, &Arc::new(outbound::GlobalQueue::default()));
    Parked { inbound, replay: ReplayBuffer::new(ReplayLimits::default()) }
}

fn lock(log: &Mutex<SessionLog>) -> MutexGuard<'_, SessionLog> {
    // A log is only ever changed whole under its lock; carrying on is better than dying.
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
