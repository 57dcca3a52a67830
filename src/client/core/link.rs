//! The link to the relay as one state machine: online, re-forming the rooms of a session
//! the relay forgot, offline and trying again, quitting, closed. Every transition is a
//! method here, with the time passed in; the driver only reports what the socket did.
//!
//! A lost link does not end the session (`reconnect` decides what does): the core asks for
//! a new link after a jittered backoff, keeps lines typed meanwhile, and resumes the session
//! (`resume`: both sides send again what the other missed), or, when the relay forgot it,
//! registers anew and takes its rooms back (`Reclaim`), rejoining through admission where
//! it must.

use std::time::{Duration, Instant, SystemTime};

use rand::Rng;

use super::requests::{Reply, RequestId};
use super::{Core, Now};
use crate::client::reconnect::{self, Backoff};
use crate::client::resume::SessionNumbers;
use crate::client::{
    ClientError, ConnectionEvent, Event, LinkLoss, NotSentReason, Notice, SessionEnd, SharedError,
};
use crate::proto::{ClientFrame, DisconnectReason, ResumeToken};

/// How often the client proves it is alive to the relay, and checks that the relay is.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// Silence from the relay after which the link counts as dead (three keepalives unanswered):
/// a laptop waking from sleep, or a NAT that forgot the connection, is noticed in seconds.
const DEAD_LINK_AFTER: Duration = Duration::from_secs(15);

/// After a relay restart, how long lines typed offline wait for the room's other members
/// to come back too, so that they are there to read them.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(10);

/// Where the session's link stands.
#[derive(Debug)]
pub enum Link {
    /// Connected, in the session as it was.
    Online(Connection),
    /// Connected as a new session after the relay forgot the old one: the rooms are being
    /// taken back, and lines typed offline wait (from `since`, up to [`WAIT_FOR_OTHERS`])
    /// for the rooms' other members to come back too.
    Reforming { connection: Connection, since: Instant },
    /// No link since `since` (when the relay was last heard from); reconnection attempt `attempt` is `next`. `blocked`: the last
    /// attempt was told our address is blocked (and the user was told so).
    Offline { since: SystemTime, attempt: u32, backoff: Backoff, next: Attempt, blocked: bool },
    /// We said `Quit` and wait for the relay to close the link; `quits` are the requests to
    /// answer then.
    Quitting { connection: Connection, quits: Vec<RequestId> },
    /// The session is over.
    Closed,
}

/// One live link.
#[derive(Debug)]
pub struct Connection {
    last_heard: Instant,
    /// The same moment on the wall clock: what "since" means to the user when the link is
    /// lost. The loss itself may be noticed much later (a laptop that slept does not count
    /// its sleep on the monotonic clock, so the silence is noticed only after it wakes).
    last_heard_wall: SystemTime,
    next_keepalive: Instant,
    /// Frames still to come that the relay kept while we were away: messages in them are
    /// late, and lines typed offline wait until they are in.
    backlog: u64,
    /// The relay said it is restarting: when the link drops, come back on the short
    /// schedule (`reconnect::Backoff::after_restart`).
    restarting: bool,
}

/// The next reconnection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Waiting for the backoff to pass.
    At(Instant),
    /// Due: the driver has not taken it yet.
    Due,
    /// The driver is connecting.
    Running,
}

impl Link {
    pub(super) fn online(now: Now, backlog: u64) -> Link {
        Link::Online(Connection::new(now, backlog))
    }

    pub(super) fn connection(&self) -> Option<&Connection> {
        match self {
            Link::Online(connection)
            | Link::Reforming { connection, .. }
            | Link::Quitting { connection, .. } => Some(connection),
            Link::Offline { .. } | Link::Closed => None,
        }
    }

    fn connection_mut(&mut self) -> Option<&mut Connection> {
        match self {
            Link::Online(connection)
            | Link::Reforming { connection, .. }
            | Link::Quitting { connection, .. } => Some(connection),
            Link::Offline { .. } | Link::Closed => None,
        }
    }

    /// A frame arrived: `Some(late)` (whether it is one the relay kept while we were away),
    /// or `None` when there is no link for it to have come on.
    pub(super) fn heard(&mut self, now: Now) -> Option<bool> {
        let connection = self.connection_mut()?;
        connection.last_heard = now.instant;
        connection.last_heard_wall = now.wall;
        let late = connection.backlog > 0;
        connection.backlog = connection.backlog.saturating_sub(1);
        Some(late)
    }

    /// Kept frames still to come; `Some(0)` when lines typed offline may go (online, in the
    /// session as it was, or the rooms re-formed), `None` when they must wait.
    pub(super) fn backlog(&self) -> Option<u64> {
        match self {
            Link::Online(connection) => Some(connection.backlog),
            _ => None,
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        match self {
            Link::Online(connection) | Link::Quitting { connection, .. } => {
                Some(connection.next_keepalive)
            }
            Link::Reforming { connection, since } => {
                Some(connection.next_keepalive.min(*since + WAIT_FOR_OTHERS))
            }
            Link::Offline { next: Attempt::At(at), .. } => Some(*at),
            Link::Offline { .. } | Link::Closed => None,
        }
    }

    /// Hands the due attempt to the driver; `true` once per attempt.
    pub(super) fn start_attempt(&mut self) -> bool {
        match self {
            Link::Offline { next: next @ Attempt::Due, .. } => {
                *next = Attempt::Running;
                true
            }
            _ => false,
        }
    }
}

impl Connection {
    fn new(now: Now, backlog: u64) -> Connection {
        Connection {
            last_heard: now.instant,
            last_heard_wall: now.wall,
            next_keepalive: now.instant + KEEPALIVE_INTERVAL,
            backlog,
            restarting: false,
        }
    }
}

impl Core {
    /// The link dropped (a read or write failed, or the relay closed it).
    pub fn link_lost(&mut self, loss: LinkLoss, now: Now) {
        self.lose_link(loss, now);
        self.after_input(now);
    }

    fn lose_link(&mut self, loss: LinkLoss, now: Now) {
        // Frames not written yet are numbered and kept: a resume sends them again.
        self.transmits.clear();
        match std::mem::replace(&mut self.link, Link::Closed) {
            Link::Quitting { quits, .. } => self.close(SessionEnd::Quit, quits),
            Link::Online(connection) | Link::Reforming { connection, .. } => {
                self.emit(Event::Connection(ConnectionEvent::Lost { reason: loss }));
                // Offline since the relay was last heard from, not since we noticed: what
                // was said after that may not have reached us.
                let since = connection.last_heard_wall;
                let backoff = if connection.restarting {
                    Backoff::after_restart(now.instant)
                } else {
                    Backoff::default()
                };
                self.next_attempt(since, backoff, None, false, now);
            }
            other @ (Link::Offline { .. } | Link::Closed) => self.link = other,
        }
    }

    /// The reconnection attempt failed; the session goes on unless waiting cannot help.
    pub fn dial_failed(&mut self, error: ClientError, now: Now) {
        let Link::Offline { since, backoff, next: Attempt::Running, blocked, .. } = &self.link
        else {
            return;
        };
        let (since, backoff, was_blocked) = (*since, backoff.clone(), *blocked);
        let error = SharedError::from(error);
        if reconnect::is_final(error.get()) {
            self.close(SessionEnd::CannotReconnect(error), Vec::new());
        } else {
            self.next_attempt(since, backoff, Some(error), was_blocked, now);
        }
        self.after_input(now);
    }

    /// The relay took the session back: it had handled `handled` of our frames, sends
    /// `backlog` frames we missed, and gave the session its next `token`. What it lacks is
    /// sent again.
    pub fn link_resumed(&mut self, handled: u64, backlog: u64, token: ResumeToken, now: Now) {
        if !matches!(self.link, Link::Offline { .. }) {
            return;
        }
        self.link = Link::online(now, backlog);
        // The token just used is void: the next resume needs this one.
        let resend = self.numbers.resumed(handled, token);
        self.transmits.extend(resend.frames);
        if resend.lost > 0 {
            let room = self.rooms.current_name();
            self.emit(Event::Status(Notice::FramesLostWithConnection { room, count: resend.lost }));
        }
        self.emit(Event::Connection(ConnectionEvent::Resumed { missed: backlog }));
        self.after_input(now);
    }

    /// The relay had forgotten the session (it restarted, or we were away too long): we
    /// are a new one, `numbers`, and take our rooms back.
    pub fn link_registered(&mut self, numbers: SessionNumbers, now: Now) {
        let Link::Offline { since, .. } = self.link else { return };
        self.link = Link::Reforming { connection: Connection::new(now, 0), since: now.instant };
        let relay_restarted = numbers.relay_boot() != self.numbers.relay_boot();
        // What the old session sent that the relay never acknowledged may or may not have
        // reached the room: say so rather than risk sending it twice.
        let in_doubt = self.numbers.chat_in_doubt();
        self.numbers = numbers;
        self.session_lost();
        self.emit(Event::Connection(ConnectionEvent::Reconnected {
            relay_restarted,
            offline_since: since,
        }));
        if !in_doubt.is_empty() {
            let texts = in_doubt.iter().map(super::queue::payload_text).collect();
            let reason = NotSentReason::InDoubt;
            self.emit(Event::Connection(ConnectionEvent::NotSent { texts, reason }));
        }
        for frame in self.rooms.reclaim_all() {
            self.send(frame);
        }
        self.after_input(now);
    }

    /// Every handle to the client is gone: leave cleanly (our farewells first, so that
    /// those who stay can count them), so the relay forgets us now.
    pub fn abandon(&mut self) {
        if self.is_connected() && !matches!(self.link, Link::Quitting { .. }) {
            self.send_farewells();
            self.send(ClientFrame::Quit);
        }
        self.close(SessionEnd::Quit, Vec::new());
    }

    /// `/quit`: online, say so and wait for the relay to close; offline, it is over now.
    pub(super) fn quit(&mut self, id: RequestId) {
        match std::mem::replace(&mut self.link, Link::Closed) {
            Link::Online(connection) | Link::Reforming { connection, .. } => {
                self.link = Link::Quitting { connection, quits: vec![id] };
                // Our last word first, so that those who stay can count it.
                self.send_farewells();
                self.send(ClientFrame::Quit);
            }
            Link::Quitting { connection, mut quits } => {
                quits.push(id);
                self.link = Link::Quitting { connection, quits };
            }
            Link::Offline { .. } => self.close(SessionEnd::Quit, vec![id]),
            Link::Closed => self.answer(id, Ok(Reply::Done)),
        }
    }

    /// The relay said it is restarting; its goodbye (or the link closing) follows.
    pub(super) fn relay_restarting(&mut self) {
        if let Some(connection) = self.link.connection_mut() {
            connection.restarting = true;
        }
    }

    /// The relay closes the link: the session goes on unless it said why it will not.
    pub(super) fn goodbye(&mut self, reason: DisconnectReason, now: Now) {
        match std::mem::replace(&mut self.link, Link::Closed) {
            Link::Quitting { quits, .. } => self.close(SessionEnd::Quit, quits),
            _ if reconnect::goodbye_is_final(reason) => {
                self.close(SessionEnd::Goodbye(reason), Vec::new())
            }
            other => {
                self.link = other;
                self.lose_link(LinkLoss::Goodbye(reason), now);
            }
        }
    }

    /// Keepalives, a silent link, a due attempt.
    pub(super) fn on_timeout(&mut self, now: Now) {
        if let Link::Offline { next, .. } = &mut self.link {
            if matches!(*next, Attempt::At(at) if now.instant >= at) {
                *next = Attempt::Due;
            }
            return;
        }
        let Some(connection) = self.link.connection_mut() else { return };
        if now.instant < connection.next_keepalive {
            return;
        }
        if now.instant.duration_since(connection.last_heard) >= DEAD_LINK_AFTER {
            return self.lose_link(LinkLoss::Silent { after: DEAD_LINK_AFTER }, now);
        }
        connection.next_keepalive = now.instant + KEEPALIVE_INTERVAL;
        self.send(ClientFrame::Ping);
        self.acknowledge();
        // Not after our `Quit`: nothing of the rooms goes out then.
        if !matches!(self.link, Link::Quitting { .. }) {
            self.tick_rooms();
            self.expire_dm_openings(now.instant);
        }
    }

    /// Re-forming ends when every room's members are back, or after [`WAIT_FOR_OTHERS`].
    pub(super) fn settle_reforming(&mut self, now: Now) {
        let Link::Reforming { since, .. } = self.link else { return };
        if !self.rooms.everyone_back() && now.instant < since + WAIT_FOR_OTHERS {
            return;
        }
        if let Link::Reforming { connection, .. } = std::mem::replace(&mut self.link, Link::Closed)
        {
            self.link = Link::Online(connection);
        }
    }

    /// Schedules the next reconnection attempt and says when it comes. A relay that says
    /// our address is blocked pauses the attempts for [`reconnect::BLOCKED_PAUSE`], and is
    /// reported once (`was_blocked`: already reported), not at every attempt.
    fn next_attempt(
        &mut self,
        since: SystemTime,
        mut backoff: Backoff,
        last_error: Option<SharedError>,
        was_blocked: bool,
        now: Now,
    ) {
        let attempt = backoff.attempt();
        let jitter = self.rng.gen_range(0.0..1.0);
        let retry_in = reconnect::wait_after(
            &mut backoff,
            last_error.as_ref().map(SharedError::get),
            jitter,
            now.instant,
        );
        let blocked = last_error.as_ref().is_some_and(|error| reconnect::is_blocked(error.get()));
        if blocked && !was_blocked {
            self.emit(Event::Status(Notice::AddressBlocked { retry_in }));
        }
        let next = Attempt::At(now.instant + retry_in);
        self.link = Link::Offline { since, attempt, backoff, next, blocked };
        self.emit(Event::Connection(ConnectionEvent::Reconnecting {
            attempt,
            retry_in,
            last_error,
        }));
    }

    /// The session is over: everyone waiting is told, and lines still waiting are listed.
    pub(super) fn close(&mut self, end: SessionEnd, quits: Vec<RequestId>) {
        self.link = Link::Closed;
        self.drop_queued_lines(NotSentReason::SessionEnded);
        if quits.is_empty() {
            self.emit(Event::Disconnected(end.clone()));
        }
        for id in quits {
            self.answer(id, Ok(Reply::Done));
        }
        let waiting = self.rooms.clear().into_iter().chain(self.requests.clear());
        for id in waiting.collect::<Vec<_>>() {
            self.answer(id, Err(ClientError::SessionEnded(end.clone())));
        }
    }
}
