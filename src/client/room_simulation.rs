//! Property tests of the room protocol: real relay state (`relay::state`), real rooms
//! (`client::room`) with real MLS, and a network played by hand, under random interleavings
//! of joins, leaves, messages, stalls, dropped links (resumed, or forgotten by the relay and
//! reclaimed), garbage commits and the passing of time.
//!
//! What must hold once the network is quiet: every honest member of the room is in the same
//! group at the same epoch, with the same members, which are exactly the members the relay
//! lists; and no honest member ever merged a commit that another honest member refused.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::room::{Outbox, Room, Welcomed};
use crate::mls::MlsMember;
use crate::mls_header::{CONTENT_TYPE_COMMIT, build_private_message};
use crate::proto::{self, AdmissionRefusal, ChatPayload, ClientFrame, ResumeToken, ServerFrame};
use crate::relay::outbound::{self, GlobalQueue, Inbound, QueueLimits};
use crate::relay::replay::{ReplayBuffer, ReplayLimits};
use crate::relay::state::{
    Control, Parked, Resumption, RoomDeadlines, SessionChannel, SessionId, State,
};
use crate::secret::Secret;

const ROOM: &str = "lobby";
const CLIENTS: usize = 5;

#[derive(Debug, Clone)]
enum Step {
    Join(usize),
    Leave(usize),
    Say(usize),
    /// The client stops reading for a while (a stalled link): it misses its votes.
    Stall(usize),
    Resume(usize),
    /// The client's link drops: the relay keeps its session away.
    Drop(usize),
    /// The client reconnects: resumes its session, or reclaims its room as a new one.
    Back(usize),
    /// The room's leader sends a garbage commit instead of an honest one.
    Garbage,
    /// The room's leader commits, validly, the removal of a member who is still there.
    Evict,
    /// Deliver everything that is in flight.
    Settle,
    /// Time passes beyond the relay's deadlines.
    Wait,
}

fn step() -> impl Strategy<Value = Step> {
    let client = 0..CLIENTS;
    prop_oneof![
        4 => client.clone().prop_map(Step::Join),
        1 => client.clone().prop_map(Step::Leave),
        2 => client.clone().prop_map(Step::Say),
        1 => client.clone().prop_map(Step::Stall),
        1 => client.clone().prop_map(Step::Resume),
        1 => client.clone().prop_map(Step::Drop),
        1 => client.prop_map(Step::Back),
        1 => Just(Step::Garbage),
        1 => Just(Step::Evict),
        2 => Just(Step::Settle),
        1 => Just(Step::Wait),
    ]
}

struct Client {
    nick: String,
    mls: MlsMember,
    session: SessionId,
    token: ResumeToken,
    /// `None` while the link is down (the relay holds the queue).
    inbox: Option<Inbound>,
    room: Option<Room>,
    stalled: bool,
    /// Commits this client voted for and is waiting to hear about.
    voted_for: Option<Vec<u8>>,
    merged: Vec<Vec<u8>>,
    /// `Leave`s whose `Left` has not come back (the engine's stale-frame rule).
    leaving: u32,
    /// Frames sent in this session, so the last one's number.
    sent: u64,
}

struct World {
    relay: State,
    now: Instant,
    clients: Vec<Client>,
    /// Every commit some client refused.
    refused: HashSet<Vec<u8>>,
    /// The garbage commits dishonest leaders sent.
    garbage: HashSet<Vec<u8>>,
    global: Arc<GlobalQueue>,
}

/// A new connection's session, and its queue.
fn connect(relay: &mut State, global: &Arc<GlobalQueue>) -> (SessionId, Inbound) {
    let (outbound, inbox) = outbound::queue(QueueLimits::default(), global);
    let (kick, _) = oneshot::channel();
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    (relay.add_session(ip, SessionChannel { outbound, kick }), inbox)
}

/// Registers `nick` on a new connection's session (its frame number 1); its resume token.
fn register(
    relay: &mut State,
    session: SessionId,
    inbox: &mut Inbound,
    nick: &str,
    now: Instant,
) -> ResumeToken {
    let mut signals = Vec::new();
    relay.handle(session, 1, ClientFrame::Register { nick: nick.into() }, now, &mut signals);
    let registered = inbox.try_recv().map(|bytes| proto::decode::<ServerFrame>(&bytes));
    let Some(Ok(ServerFrame::Registered { token, .. })) = registered else {
        panic!("{nick} was not registered: {registered:?}");
    };
    token
}

impl World {
    fn new() -> Self {
        // A short grace, so that some dropped links outlive it within a run.
        let deadlines =
            RoomDeadlines { grace: Duration::from_secs(10), ..RoomDeadlines::default() };
        let mut relay = State::new(4, deadlines);
        let global = Arc::new(GlobalQueue::default());
        let clients = (0..CLIENTS)
            .map(|index| {
                let nick = format!("m{index}");
                let (session, mut inbox) = connect(&mut relay, &global);
                let token = register(&mut relay, session, &mut inbox, &nick, Instant::now());
                Client {
                    mls: MlsMember::new(&nick).unwrap(),
                    nick,
                    session,
                    token,
                    inbox: Some(inbox),
                    room: None,
                    stalled: false,
                    voted_for: None,
                    merged: Vec::new(),
                    leaving: 0,
                    sent: 1,
                }
            })
            .collect();
        World {
            relay,
            now: Instant::now(),
            clients,
            refused: HashSet::new(),
            garbage: HashSet::new(),
            global,
        }
    }

    fn is_away(&self, index: usize) -> bool {
        self.clients[index].inbox.is_none()
    }

    /// The link drops; the relay parks the session with its queue.
    fn drop_link(&mut self, index: usize) {
        let Some(inbound) = self.clients[index].inbox.take() else { return };
        let replay = ReplayBuffer::new(ReplayLimits::default());
        self.relay.park(self.clients[index].session, Parked { inbound, replay }, self.now);
    }

    /// The client reconnects: its session back, or, if the relay forgot it, a new session
    /// that reclaims the room, as the engine does.
    fn reconnect(&mut self, index: usize) {
        if !self.is_away(index) {
            return;
        }
        let (fresh, mut inbox) = connect(&mut self.relay, &self.global);
        let (kick, _) = oneshot::channel();
        let token = self.clients[index].token.clone();
        match self.relay.resume(fresh, &token, kick, self.now) {
            Resumption::Ready { id, parked } => {
                assert_eq!(id, self.clients[index].session);
                let (_, token) = self.relay.adopt(fresh, id, self.now).unwrap();
                self.clients[index].token = token;
                self.clients[index].inbox = Some(parked.inbound);
            }
            Resumption::HandingOver { .. } => panic!("an away session has no connection"),
            Resumption::NotFirst => panic!("the resume was the connection's first frame"),
            Resumption::Unknown => {
                let nick = self.clients[index].nick.clone();
                let token = register(&mut self.relay, fresh, &mut inbox, &nick, self.now);
                let client = &mut self.clients[index];
                client.session = fresh;
                client.token = token;
                client.inbox = Some(inbox);
                client.leaving = 0;
                client.voted_for = None;
                client.sent = 1;
                if let Some(frame) = client.room.as_mut().map(Room::reclaim) {
                    self.send(index, frame);
                }
            }
        }
    }

    fn send(&mut self, index: usize, frame: ClientFrame) {
        if let ClientFrame::Leave { .. } = frame {
            self.clients[index].leaving += 1;
        }
        let mut signals = Vec::new();
        let client = &mut self.clients[index];
        client.sent += 1;
        let control = self.relay.handle(client.session, client.sent, frame, self.now, &mut signals);
        assert_eq!(control, Control::Continue);
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            // An away client sends nothing (the engine keeps it for later).
            Step::Join(index) | Step::Leave(index) | Step::Say(index) if self.is_away(index) => {}
            Step::Drop(index) => self.drop_link(index),
            Step::Back(index) => self.reconnect(index),
            Step::Join(index) if self.clients[index].room.is_none() => {
                self.clients[index].room = Some(Room::new(ROOM.into(), Secret::from("pw")));
                self.send(index, ClientFrame::Join { room: ROOM.into() });
            }
            Step::Leave(index) if self.clients[index].room.is_some() => {
                let farewell = self.clients[index].room.as_mut().and_then(Room::farewell);
                self.clients[index].room = None;
                self.clients[index].voted_for = None;
                if let Some(farewell) = farewell {
                    self.send(index, farewell);
                }
                self.send(index, ClientFrame::Leave { room: ROOM.into() });
            }
            Step::Say(index) => {
                let frame = self.clients[index]
                    .room
                    .as_mut()
                    .filter(|room| room.is_member())
                    .and_then(|room| room.encrypt(&ChatPayload::Text("hi".into())).ok());
                if let Some(frame) = frame {
                    self.send(index, frame);
                }
            }
            Step::Stall(index) => self.clients[index].stalled = true,
            Step::Resume(index) => self.clients[index].stalled = false,
            Step::Garbage => {
                let Some(index) = self.leader() else { return };
                let Some(group) = self.clients[index].room.as_ref().and_then(Room::group) else {
                    return;
                };
                let commit = build_private_message(
                    &group.group_id(),
                    group.epoch(),
                    CONTENT_TYPE_COMMIT,
                    &[0x55; 64],
                );
                self.garbage.insert(commit.clone());
                self.send(index, ClientFrame::Commit { room: ROOM.into(), commit, welcome: None });
            }
            Step::Evict => {
                let Some(index) = self.leader() else { return };
                let me = self.clients[index].nick.clone();
                // Only someone who is still in the room: removing a member that already left
                // is the leader's honest duty, not an eviction.
                let present: Vec<String> = self
                    .clients
                    .iter()
                    .filter(|client| client.room.is_some() && client.nick != me)
                    .map(|client| client.nick.clone())
                    .collect();
                let Some(room) = self.clients[index].room.as_mut() else { return };
                let victim = room.relay_members.iter().find(|nick| present.contains(nick)).cloned();
                let Some(victim) = victim else { return };
                let Some(group) = room.group_mut_for_tests() else { return };
                let Ok(commit) = group.commit_remove(&[victim.as_str()]) else { return };
                // Not recorded as garbage: if the victim leaves before the commit reaches the
                // others, removing it is right. A wrongly merged eviction shows instead as a
                // group that no longer holds everyone in the room.
                let frame =
                    ClientFrame::Commit { room: ROOM.into(), commit: commit.commit, welcome: None };
                self.send(index, frame);
            }
            Step::Settle => self.settle(),
            Step::Wait => {
                self.now += Duration::from_secs(10);
                self.relay.expire(self.now);
            }
            _ => {}
        }
    }

    /// The client that leads the room, by its own account, if its link is up.
    fn leader(&self) -> Option<usize> {
        self.clients.iter().position(|client| {
            client.inbox.is_some()
                && client.room.as_ref().is_some_and(|room| {
                    room.is_member() && room.leader() == Some(client.nick.as_str())
                })
        })
    }

    /// Delivers frames until nothing moves (bounded: a protocol that chatters forever fails).
    fn settle(&mut self) {
        for _ in 0..200 {
            let mut moved = false;
            for index in 0..self.clients.len() {
                if self.clients[index].stalled {
                    continue;
                }
                while let Some(bytes) =
                    self.clients[index].inbox.as_mut().and_then(Inbound::try_recv)
                {
                    moved = true;
                    let frame: ServerFrame = proto::decode(&bytes).unwrap();
                    if std::env::var("SIM_TRACE").is_ok() {
                        eprintln!(
                            "-> m{index}: {}",
                            format!("{frame:?}").chars().take(160).collect::<String>()
                        );
                    }
                    let outbox = self.deliver(index, frame);
                    if std::env::var("SIM_TRACE").is_ok() {
                        for event in &outbox.events {
                            eprintln!("   m{index} event {event:?}");
                        }
                        for frame in &outbox.frames {
                            eprintln!(
                                "   m{index} sends {}",
                                format!("{frame:?}").chars().take(120).collect::<String>()
                            );
                        }
                    }
                    for frame in outbox.frames {
                        self.send(index, frame);
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the room never went quiet");
    }

    /// What the engine does with one frame, without its IO.
    fn deliver(&mut self, index: usize, frame: ServerFrame) -> Outbox {
        let mut out = Outbox::default();
        let client = &mut self.clients[index];
        if client.leaving > 0 {
            if let ServerFrame::Left { .. } = frame {
                client.leaving -= 1;
            }
            return out;
        }
        let me = client.nick.clone();
        let Some(room) = client.room.as_mut() else { return out };
        let now = SystemTime::now();
        match frame {
            ServerFrame::RoomCreated { .. } => room.created(&client.mls, &mut out).unwrap(),
            ServerFrame::JoinPending { leader, .. } => {
                if let Ok(frame) = room.admission_pending(&me, leader) {
                    out.frames.push(frame);
                }
            }
            ServerFrame::AdmissionReply { pake_message, .. } => {
                out.frames.push(room.admission_reply(&client.mls, &pake_message).unwrap())
            }
            ServerFrame::Welcome { message, members, .. } => {
                match room.welcomed(&client.mls, &message, members) {
                    Ok(Welcomed::Joined | Welcomed::Rejoined { .. }) => {}
                    // A rejoin into a group that moved on without anyone it knew: stay out.
                    Err(_) => {
                        client.room = None;
                        out.frames.push(ClientFrame::Leave { room: ROOM.into() });
                    }
                }
            }
            ServerFrame::AdmissionRefused { reason: AdmissionRefusal::LeaderChanged, .. } => {
                out.frames.push(room.restart_join())
            }
            ServerFrame::AdmissionRefused { .. } => client.room = None,
            ServerFrame::Commit { ref commit, .. } => {
                let commit = commit.clone();
                room.on_member_frame(&me, frame, now, &mut out);
                match out.frames.last() {
                    Some(ClientFrame::CommitVote { accept: true, .. }) => {
                        client.voted_for = Some(commit)
                    }
                    Some(ClientFrame::CommitVote { accept: false, .. }) => {
                        self.refused.insert(commit);
                    }
                    _ => {}
                }
            }
            ServerFrame::CommitConfirmed { .. } => {
                if let Some(commit) = client.voted_for.take() {
                    client.merged.push(commit);
                }
                room.on_member_frame(&me, frame, now, &mut out)
            }
            ServerFrame::CommitAborted { .. } => {
                client.voted_for = None;
                room.on_member_frame(&me, frame, now, &mut out)
            }
            ServerFrame::Removed { reason, .. } => {
                client.voted_for = None;
                if let Some(frame) = room.removed(reason, &mut out) {
                    out.frames.push(frame);
                }
            }
            frame => room.on_member_frame(&me, frame, now, &mut out),
        }
        if client.room.as_ref().is_some_and(Room::is_gone) {
            // Out until the user joins again, as the engine drops it.
            client.room = None;
        }
        out
    }

    fn check(&self) {
        for client in &self.clients {
            for merged in &client.merged {
                assert!(
                    !self.refused.contains(merged),
                    "{} merged a commit another member refused",
                    client.nick
                );
                assert!(!self.garbage.contains(merged), "{} merged garbage", client.nick);
            }
        }
        let members: Vec<&Client> = self
            .clients
            .iter()
            .filter(|client| client.room.as_ref().is_some_and(Room::is_member))
            .collect();
        let Some(first) = members.first() else { return };
        let Some(group) = first.room.as_ref().and_then(Room::group) else { return };
        let mut nicks: Vec<String> =
            group.members().into_iter().map(|member| member.nick).collect();
        nicks.sort();
        let mut in_room: Vec<String> = members.iter().map(|client| client.nick.clone()).collect();
        in_room.sort();
        assert_eq!(nicks, in_room, "the group holds exactly the members in the room");
        for client in &members[1..] {
            let other = client.room.as_ref().and_then(Room::group).unwrap();
            assert_eq!(other.group_id(), group.group_id(), "{} is in another group", client.nick);
            assert_eq!(other.epoch(), group.epoch(), "{} is at another epoch", client.nick);
        }
        let relay_lists: HashMap<&str, Vec<String>> = members
            .iter()
            .map(|client| {
                (client.nick.as_str(), client.room.as_ref().unwrap().relay_members.clone())
            })
            .collect();
        for (nick, listed) in relay_lists {
            let mut listed = listed;
            listed.sort();
            assert_eq!(listed, in_room, "{nick}'s view of the relay's list");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn honest_members_end_in_one_group_and_never_merge_a_refused_commit(
        steps in proptest::collection::vec(step(), 1..30)
    ) {
        let mut world = World::new();
        for step in &steps {
            world.apply(step);
        }
        // Quiet network: everyone is back and reads again, deadlines pass, everything is
        // delivered.
        for index in 0..CLIENTS {
            world.reconnect(index);
            world.clients[index].stalled = false;
        }
        for _ in 0..3 {
            world.settle();
            world.apply(&Step::Wait);
        }
        world.settle();
        world.check();
    }
}

/// Replays the steps in `SIM_STEPS` (e.g. `J0,J2,S,D2,L0,J1,W`), with `SIM_TRACE` set to
/// print every frame: the way to look into a failure the property test found.
#[test]
#[ignore = "a tool: run with SIM_STEPS=..."]
fn replay_steps() {
    let steps: Vec<Step> = std::env::var("SIM_STEPS")
        .unwrap_or_default()
        .split(',')
        .filter(|step| !step.is_empty())
        .map(|step| {
            let (kind, arg) = step.split_at(1);
            let index = || arg.parse::<usize>().unwrap();
            match kind {
                "J" => Step::Join(index()),
                "L" => Step::Leave(index()),
                "Y" => Step::Say(index()),
                "T" => Step::Stall(index()),
                "R" => Step::Resume(index()),
                "D" => Step::Drop(index()),
                "B" => Step::Back(index()),
                "G" => Step::Garbage,
                "E" => Step::Evict,
                "S" => Step::Settle,
                "W" => Step::Wait,
                other => panic!("unknown step {other}"),
            }
        })
        .collect();
    let mut world = World::new();
    for step in &steps {
        world.apply(step);
    }
    for index in 0..CLIENTS {
        world.reconnect(index);
        world.clients[index].stalled = false;
    }
    for _ in 0..3 {
        world.settle();
        world.apply(&Step::Wait);
    }
    world.settle();
    world.check();
}
