//! The hand-played network: the real relay state (`relay::state::State`) behind one link per
//! client, each link the relay's connection task (`relay::connection`) without its socket.
//!
//! A link carries frames both ways in order (TCP), so nothing is lost, repeated or reordered
//! while it is up; what a hostile relay does to frames happens above, in `relay_shim`, before
//! they are numbered and written. A cut loses whatever was in flight, both ways, and the
//! relay parks the session (`State::park`, with its queue and replay buffer). A client coming
//! back resumes (`State::resume`, then `ReplayBuffer::missing`, then `State::adopt`, as the
//! connection task does), is handed the session from a connection the relay still thought
//! alive, or — when the relay forgot it — registers anew on the same connection. A restart
//! replaces the whole state.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::client::Up;
use crate::proto::{self, ClientFrame, DisconnectReason, ResumeToken, ServerFrame};
use crate::relay::outbound::{self, GlobalQueue, Inbound, Outbound, QueueLimits};
use crate::relay::replay::{ReplayBuffer, ReplayLimits};
use crate::relay::state::{
    Control, Parked, Resumption, RoomDeadlines, SessionChannel, SessionId, State,
};

/// Where a frame a client receives came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Written by the relay's state, once.
    Genuine,
    /// A second copy of a frame the state wrote.
    Duplicated,
    /// An old frame sent again.
    Replayed,
    /// Made up by the relay.
    Forged,
}

/// A frame on its way to a client.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub bytes: Bytes,
    pub provenance: Provenance,
}

/// The relay's side of one live connection (`connection::Session`).
struct Connection {
    session: SessionId,
    inbound: Inbound,
    own_queue: Outbound,
    replay: ReplayBuffer,
    /// Kept so that the state's kicks land somewhere.
    _kicked: oneshot::Receiver<DisconnectReason>,
}

#[derive(Default)]
pub struct Link {
    connection: Option<Connection>,
    pub down: VecDeque<Delivery>,
    pub up: VecDeque<Up>,
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.connection.is_some()
    }
}

/// How a reconnection went, as `engine::try_link` sees it.
pub enum Reconnection {
    Resumed { handled: u64, backlog: u64, token: ResumeToken },
    Registered { token: ResumeToken, relay_boot: u64 },
}

pub struct Network {
    pub relay: State,
    deadlines: RoomDeadlines,
    global: Arc<GlobalQueue>,
    pub links: Vec<Link>,
    /// Each link's session, kept while the relay parks it.
    sessions: Vec<Option<SessionId>>,
    /// Where each frame the relay wrote to a session came from, by the frame's number, so
    /// that a frame replayed after a resume keeps its provenance.
    provenance: HashMap<SessionId, Vec<Provenance>>,
    pub restarts: u32,
}

impl Network {
    pub fn new(links: usize, deadlines: RoomDeadlines) -> Self {
        Network {
            relay: State::new(4, deadlines),
            deadlines,
            global: Arc::new(GlobalQueue::default()),
            links: (0..links).map(|_| Link::default()).collect(),
            sessions: vec![None; links],
            provenance: HashMap::new(),
            restarts: 0,
        }
    }

    /// A new connection on link `index` (its session not registered yet).
    fn open(&mut self, index: usize) {
        let (outbound, inbound) = outbound::queue(QueueLimits::default(), &self.global);
        let (kick, kicked) = oneshot::channel();
        let own_queue = outbound.clone();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let session = self.relay.add_session(ip, SessionChannel { outbound, kick });
        self.sessions[index] = Some(session);
        self.links[index].connection = Some(Connection {
            session,
            inbound,
            own_queue,
            replay: ReplayBuffer::new(ReplayLimits::default()),
            _kicked: kicked,
        });
    }

    /// `Register` on link `index`'s connection; the `Registered` is read at once, as
    /// `RawClient::register` does.
    fn register(&mut self, index: usize, nick: &str, now: Instant) -> (ResumeToken, u64) {
        let frame = ClientFrame::Register { nick: nick.into() };
        let connection = self.links[index].connection.as_mut().unwrap();
        connection.replay.handled_one();
        let number = connection.replay.handled();
        let session = connection.session;
        let mut signals = Vec::new();
        self.relay.handle(session, number, frame, now, &mut signals);
        let connection = self.links[index].connection.as_mut().unwrap();
        let bytes = connection.inbound.try_recv().unwrap();
        connection.replay.sent_one(bytes.clone());
        self.provenance.entry(session).or_default().push(Provenance::Genuine);
        match proto::decode::<ServerFrame>(&bytes) {
            Ok(ServerFrame::Registered { token, relay_boot, .. }) => (token, relay_boot),
            other => panic!("{nick} could not register: {other:?}"),
        }
    }

    /// A first connection and registration.
    pub fn connect(&mut self, index: usize, nick: &str, now: Instant) -> (ResumeToken, u64) {
        self.open(index);
        self.register(index, nick, now)
    }

    /// The link is cut and both ends notice: frames in flight are lost, the relay parks the
    /// session.
    pub fn cut(&mut self, index: usize, now: Instant) {
        let link = &mut self.links[index];
        link.down.clear();
        link.up.clear();
        if let Some(connection) = link.connection.take() {
            let parked = Parked { inbound: connection.inbound, replay: connection.replay };
            self.relay.park(connection.session, parked, now);
        }
    }

    /// The relay restarts: every connection and session is gone.
    pub fn restart(&mut self) {
        for link in &mut self.links {
            link.down.clear();
            link.up.clear();
            link.connection = None;
        }
        self.sessions.iter_mut().for_each(|session| *session = None);
        self.provenance.clear();
        self.relay = State::new(4, self.deadlines);
        self.restarts += 1;
    }

    /// The client connects again and presents its token (`connection::Session::resume`). A
    /// connection the relay still holds on this link is abandoned by the client: the relay
    /// hands its session over. A session the relay does not have (or cannot replay) is
    /// refused, and the client registers anew on the new connection.
    pub fn reconnect(
        &mut self,
        index: usize,
        nick: &str,
        (token, received): (ResumeToken, u64),
        now: Instant,
    ) -> Reconnection {
        let old = self.links[index].connection.take();
        self.links[index].down.clear();
        self.links[index].up.clear();
        self.open(index);
        let fresh = self.links[index].connection.as_ref().unwrap().session;
        let (kick, kicked) = oneshot::channel();
        let parked = match self.relay.resume(fresh, &token, kick, now) {
            Resumption::Ready { id, parked } => Some((id, parked)),
            Resumption::HandingOver { id, parked: mut handed } => {
                // The old connection is told `ResumedElsewhere` and closes: it parks the
                // session, which goes to the new one.
                if let Some(old) = old {
                    let parked = Parked { inbound: old.inbound, replay: old.replay };
                    self.relay.park(old.session, parked, now);
                }
                handed.try_recv().ok().map(|parked| (id, parked))
            }
            Resumption::Unknown | Resumption::NotFirst => None,
        };
        let Some((id, parked)) = parked else { return self.refused(index, nick, None, now) };
        let Parked { inbound, mut replay } = parked;
        let Ok(missing) = replay.missing(received) else {
            return self.refused(index, nick, Some(id), now);
        };
        let Some((own_queue, token)) = self.relay.adopt(fresh, id, now) else {
            return self.refused(index, nick, None, now);
        };
        let backlog = (missing.len() + inbound.len()) as u64;
        let handled = replay.handled();
        let sent = replay.sent();
        self.provenance.remove(&fresh);
        let marks = self.provenance.entry(id).or_default();
        // Frames are numbered from 1; `marks[n - 1]` is frame `n`'s.
        let first = sent as usize - missing.len();
        let link = &mut self.links[index];
        for (offset, bytes) in missing.into_iter().enumerate() {
            let provenance = marks.get(first + offset).copied().unwrap_or(Provenance::Genuine);
            link.down.push_back(Delivery { bytes, provenance });
        }
        link.connection =
            Some(Connection { session: id, inbound, own_queue, replay, _kicked: kicked });
        self.sessions[index] = Some(id);
        Reconnection::Resumed { handled, backlog, token }
    }

    fn refused(
        &mut self,
        index: usize,
        nick: &str,
        session: Option<SessionId>,
        now: Instant,
    ) -> Reconnection {
        if let Some(session) = session {
            self.relay.remove_session(session, now);
        }
        let (token, relay_boot) = self.register(index, nick, now);
        Reconnection::Registered { token, relay_boot }
    }

    /// Frames the relay's state queued for link `index`, not yet written.
    pub fn drain(&mut self, index: usize) -> Vec<Bytes> {
        let mut frames = Vec::new();
        if let Some(connection) = self.links[index].connection.as_mut() {
            while let Some(bytes) = connection.inbound.try_recv() {
                frames.push(bytes);
            }
        }
        frames
    }

    /// Writes a frame to the client: numbered in the replay buffer, then in flight.
    pub fn write(&mut self, index: usize, delivery: Delivery) {
        let Some(connection) = self.links[index].connection.as_mut() else { return };
        connection.replay.sent_one(delivery.bytes.clone());
        self.provenance.entry(connection.session).or_default().push(delivery.provenance);
        self.links[index].down.push_back(delivery);
    }

    /// The relay reads one frame the client sent: an acknowledgement is answered here (as
    /// the connection task does); a numbered frame is counted and returned for the state.
    pub fn read_up(&mut self, index: usize) -> Option<(u64, ClientFrame)> {
        let up = self.links[index].up.pop_front()?;
        let connection = self.links[index].connection.as_mut()?;
        match up {
            Up::Ack(received) => {
                connection.replay.acknowledge(received);
                if let Some(handled) = connection.replay.ack_to_send() {
                    let ack = ServerFrame::Ack { received: handled };
                    let _ = connection.own_queue.try_send(Bytes::from(proto::encode(&ack)));
                }
                None
            }
            Up::Frame(bytes) => {
                connection.replay.handled_one();
                Some((connection.replay.handled(), proto::decode(&bytes).unwrap()))
            }
        }
    }

    /// The state handles a frame as from link `index`'s session, numbered `number` (sent by
    /// the client, or made up by the relay, which may do so while the session is parked; a
    /// made-up frame carries number 0, which nothing the client sees depends on).
    pub fn handle(&mut self, index: usize, number: u64, frame: ClientFrame, now: Instant) {
        let Some(session) = self.sessions[index] else { return };
        let mut signals = Vec::new();
        let control = self.relay.handle(session, number, frame, now, &mut signals);
        assert_eq!(control, Control::Continue, "the relay closed link {index}");
    }
}
