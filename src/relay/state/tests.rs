//! Unit tests of the relay state, driven without sockets: sessions are queues read back
//! here, and time is passed in, so deadlines are tested exactly.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::*;
use crate::mls_header::build_private_message;
use crate::relay::outbound::{self, GlobalQueue, Inbound, QueueLimits};

const GROUP: &[u8] = b"group-1";
const NAT: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

struct Harness {
    state: State,
    now: Instant,
    inboxes: HashMap<SessionId, Inbound>,
    global: Arc<GlobalQueue>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            state: State::new(16, RoomDeadlines::default()),
            now: Instant::now(),
            inboxes: HashMap::new(),
            global: Arc::new(GlobalQueue::default()),
        }
    }

    fn connect_unregistered(&mut self) -> SessionId {
        let (outbound, inbound) = outbound::queue(QueueLimits::default(), &self.global);
        let (kick, _) = oneshot::channel();
        let id = self.state.add_session(NAT, SessionChannel { outbound, kick });
        self.inboxes.insert(id, inbound);
        id
    }

    fn connect(&mut self, nick: &str) -> SessionId {
        let id = self.connect_unregistered();
        self.send(id, ClientFrame::Register { nick: nick.into() });
        let frames = self.frames(id);
        assert!(
            matches!(&frames[..], [ServerFrame::Registered { nick: registered, relay_boot, .. }]
                if registered == nick && *relay_boot == self.state.relay_boot()),
            "{frames:?}"
        );
        id
    }

    fn send(&mut self, id: SessionId, frame: ClientFrame) {
        let mut signals = Vec::new();
        assert_eq!(self.state.handle(id, frame, 0, self.now, &mut signals), Control::Continue);
    }

    /// Everything queued for a session, in order.
    fn frames(&mut self, id: SessionId) -> Vec<ServerFrame> {
        let inbox = self.inboxes.get_mut(&id).expect("a connected session");
        std::iter::from_fn(|| inbox.try_recv())
            .map(|bytes| proto::decode(&bytes).expect("the relay sends valid frames"))
            .collect()
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.state.expire(self.now);
    }

    /// A room whose members joined in order, the first its leader, at epoch `len - 1`.
    fn room(&mut self, nicks: &[&str]) -> Vec<SessionId> {
        let mut ids: Vec<SessionId> = Vec::new();
        for (index, nick) in nicks.iter().enumerate() {
            let id = self.connect(nick);
            self.send(id, ClientFrame::Join { room: "lobby".into() });
            if index > 0 {
                self.admit(&ids, id, nick, index as u64 - 1);
            }
            ids.push(id);
        }
        for id in &ids {
            self.frames(*id);
        }
        ids
    }

    /// The relay's number for the current admission attempt of `nick`.
    fn attempt(&self, nick: &str) -> u64 {
        self.state.rooms["lobby"]
            .pending
            .iter()
            .find(|joiner| joiner.nick == nick)
            .map(|joiner| joiner.attempt)
            .expect("a waiting joiner")
    }

    fn admit(&mut self, members: &[SessionId], joiner: SessionId, nick: &str, epoch: u64) {
        self.send(
            joiner,
            ClientFrame::AdmissionStart { room: "lobby".into(), pake_message: vec![1] },
        );
        let attempt = self.attempt(nick);
        self.send(
            members[0],
            ClientFrame::AdmissionReply {
                room: "lobby".into(),
                joiner: nick.into(),
                attempt,
                pake_message: vec![2],
            },
        );
        self.send(
            joiner,
            ClientFrame::AdmissionFinish {
                room: "lobby".into(),
                confirmation: vec![3],
                sealed_key_package: vec![4],
            },
        );
        self.commit(members[0], epoch, Some(nick));
        for voter in &members[1..] {
            self.vote(*voter, epoch, true);
        }
    }

    fn commit(&mut self, committer: SessionId, epoch: u64, welcome_to: Option<&str>) {
        let commit = build_private_message(GROUP, epoch, CONTENT_TYPE_COMMIT, b"commit");
        let welcome = welcome_to.map(|to| Welcome {
            to: to.into(),
            attempt: self.state.rooms["lobby"]
                .pending
                .iter()
                .find(|joiner| joiner.nick == to)
                .map_or(0, |joiner| joiner.attempt),
            message: b"welcome".to_vec(),
        });
        self.send(committer, ClientFrame::Commit { room: "lobby".into(), commit, welcome });
    }

    fn vote(&mut self, voter: SessionId, epoch: u64, accept: bool) {
        self.send(voter, ClientFrame::CommitVote { room: "lobby".into(), epoch, accept });
    }
}

#[test]
fn a_silent_voter_is_taken_out_at_the_deadline_and_the_commit_goes_through() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob", "silent"]);
    relay.commit(ids[0], 2, None);
    relay.vote(ids[1], 2, true);
    relay.frames(ids[1]);
    relay.advance(VOTE_DEADLINE - Duration::from_millis(1));
    assert!(relay.frames(ids[0]).is_empty(), "nothing happens before the deadline");
    relay.advance(Duration::from_millis(1));
    let to_silent = relay.frames(ids[2]);
    assert_eq!(
        to_silent.last(),
        Some(&ServerFrame::Removed { room: "lobby".into(), reason: RemovalReason::NoVote })
    );
    for id in &ids[..2] {
        assert_eq!(
            relay.frames(*id),
            [
                ServerFrame::MemberLeft {
                    room: "lobby".into(),
                    nick: "silent".into(),
                    leader: "alice".into()
                },
                ServerFrame::CommitConfirmed { room: "lobby".into(), epoch: 3 },
            ]
        );
    }
}

#[test]
fn a_leader_that_keeps_a_joiner_waiting_hands_over_the_lead() {
    let mut relay = Harness::new();
    let ids = relay.room(&["sleepy", "bob"]);
    let carol = relay.connect("carol");
    relay.send(carol, ClientFrame::Join { room: "lobby".into() });
    relay.send(carol, ClientFrame::AdmissionStart { room: "lobby".into(), pake_message: vec![1] });
    relay.frames(carol);
    relay.advance(LEADER_DEADLINE - Duration::from_millis(1));
    assert!(relay.frames(ids[1]).is_empty());
    relay.advance(Duration::from_millis(1));
    assert_eq!(
        relay.frames(carol),
        [ServerFrame::AdmissionRefused {
            room: "lobby".into(),
            reason: AdmissionRefusal::LeaderChanged
        }]
    );
    let change = ServerFrame::LeaderChanged { room: "lobby".into(), leader: "bob".into() };
    assert_eq!(relay.frames(ids[1]).last(), Some(&change));
    // Carol starts over and is now admitted by bob.
    relay.send(carol, ClientFrame::Join { room: "lobby".into() });
    assert_eq!(
        relay.frames(carol),
        [ServerFrame::JoinPending { room: "lobby".into(), leader: "bob".into() }]
    );
}

#[test]
fn a_joiner_that_stalls_does_not_cost_the_leader_its_lead() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let carol = relay.connect("carol");
    relay.send(carol, ClientFrame::Join { room: "lobby".into() });
    relay.send(carol, ClientFrame::AdmissionStart { room: "lobby".into(), pake_message: vec![1] });
    let attempt = relay.attempt("carol");
    relay.send(
        ids[0],
        ClientFrame::AdmissionReply {
            room: "lobby".into(),
            joiner: "carol".into(),
            attempt,
            pake_message: vec![2],
        },
    );
    relay.advance(LEADER_DEADLINE * 3);
    assert!(relay.frames(ids[1]).is_empty(), "the leader answered; carol owes the next step");
}

#[test]
fn a_lone_leader_that_never_answers_tells_the_joiner_why() {
    let mut relay = Harness::new();
    relay.room(&["sleepy"]);
    let carol = relay.connect("carol");
    relay.send(carol, ClientFrame::Join { room: "lobby".into() });
    relay.send(carol, ClientFrame::AdmissionStart { room: "lobby".into(), pake_message: vec![1] });
    relay.frames(carol);
    relay.advance(LEADER_DEADLINE);
    assert_eq!(
        relay.frames(carol),
        [ServerFrame::AdmissionRefused {
            room: "lobby".into(),
            reason: AdmissionRefusal::LeaderUnresponsive
        }]
    );
}

#[test]
fn wrong_passwords_ban_the_nickname_but_not_its_address() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice"]);
    let guesser = relay.connect("guesser");
    for attempt in 1..=WRONG_PASSWORDS_BEFORE_BAN {
        relay.send(guesser, ClientFrame::Join { room: "lobby".into() });
        let joiner_attempt = relay.attempt("guesser");
        relay.send(
            ids[0],
            ClientFrame::AdmissionRefused {
                room: "lobby".into(),
                joiner: "guesser".into(),
                attempt: joiner_attempt,
                reason: AdmissionRefusal::WrongPassword,
            },
        );
        let expected = if attempt == WRONG_PASSWORDS_BEFORE_BAN {
            AdmissionRefusal::Banned
        } else {
            AdmissionRefusal::WrongPassword
        };
        let frames = relay.frames(guesser);
        assert_eq!(
            frames.last(),
            Some(&ServerFrame::AdmissionRefused { room: "lobby".into(), reason: expected })
        );
    }
    relay.send(guesser, ClientFrame::Join { room: "lobby".into() });
    assert_eq!(
        relay.frames(guesser),
        [ServerFrame::Error { request: 0, reason: ErrorReason::BannedFromRoom }]
    );
    // A housemate behind the same address still gets in line.
    let housemate = relay.connect("housemate");
    relay.send(housemate, ClientFrame::Join { room: "lobby".into() });
    assert!(matches!(relay.frames(housemate).as_slice(), [ServerFrame::JoinPending { .. }]));
}

#[test]
fn look_alike_and_mixed_script_nicknames_are_refused() {
    let mut relay = Harness::new();
    relay.connect("alice");
    for (nick, reason) in
        [("\u{0430}lice", ErrorReason::NickInvalid), ("\u{0430}\u{0435}", ErrorReason::NickTaken)]
    {
        if reason == ErrorReason::NickTaken {
            relay.connect("ae");
        }
        let (outbound, inbound) = outbound::queue(QueueLimits::default(), &relay.global);
        let (kick, _) = oneshot::channel();
        let id = relay.state.add_session(NAT, SessionChannel { outbound, kick });
        relay.inboxes.insert(id, inbound);
        relay.send(id, ClientFrame::Register { nick: nick.into() });
        assert_eq!(relay.frames(id), [ServerFrame::Error { request: 0, reason }], "{nick:?}");
    }
}

#[test]
fn a_committer_that_leaves_mid_vote_aborts_its_commit() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob", "carol"]);
    relay.commit(ids[0], 2, None);
    relay.vote(ids[1], 2, true);
    relay.send(ids[0], ClientFrame::Leave { room: "lobby".into() });
    for id in &ids[1..] {
        let frames = relay.frames(*id);
        assert!(
            frames.contains(&ServerFrame::CommitAborted { room: "lobby".into(), epoch: 2 }),
            "{frames:?}"
        );
        assert!(!frames.iter().any(|f| matches!(f, ServerFrame::CommitConfirmed { .. })));
    }
}

#[test]
fn a_joiner_that_leaves_mid_vote_is_reported_gone_after_the_confirmation() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let carol = relay.connect("carol");
    relay.send(carol, ClientFrame::Join { room: "lobby".into() });
    relay.commit(ids[0], 1, Some("carol"));
    relay.send(carol, ClientFrame::Leave { room: "lobby".into() });
    relay.vote(ids[1], 1, true);
    let frames = relay.frames(ids[1]);
    assert_eq!(
        frames[1..],
        [
            ServerFrame::CommitConfirmed { room: "lobby".into(), epoch: 2 },
            ServerFrame::MemberLeft {
                room: "lobby".into(),
                nick: "carol".into(),
                leader: "alice".into()
            },
        ]
    );
}

#[test]
fn a_leaders_answer_to_an_earlier_attempt_does_not_reach_the_new_one() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let carol = relay.connect("carol");
    relay.send(carol, ClientFrame::Join { room: "lobby".into() });
    let first = relay.attempt("carol");
    relay.send(carol, ClientFrame::Leave { room: "lobby".into() });
    relay.send(carol, ClientFrame::Join { room: "lobby".into() });
    relay.frames(carol);
    relay.send(
        ids[0],
        ClientFrame::AdmissionReply {
            room: "lobby".into(),
            joiner: "carol".into(),
            attempt: first,
            pake_message: vec![2],
        },
    );
    assert!(relay.frames(carol).is_empty(), "the stale answer is not passed on");
    assert_eq!(
        relay.frames(ids[0]),
        [ServerFrame::Error { request: 0, reason: ErrorReason::UnknownJoiner }]
    );
}

#[test]
fn a_welcome_for_someone_not_waiting_is_rejected() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    relay.commit(ids[0], 1, Some("ghost"));
    assert_eq!(
        relay.frames(ids[0]),
        [ServerFrame::CommitRejected {
            room: "lobby".into(),
            reason: CommitRejection::UnknownRecipient
        }]
    );
    assert!(relay.frames(ids[1]).is_empty());
}

#[test]
fn oversized_chat_is_refused_and_the_room_keeps_going() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let huge =
        build_private_message(GROUP, 1, CONTENT_TYPE_APPLICATION, &vec![0; MAX_APPLICATION_LEN]);
    relay.send(ids[0], ClientFrame::Application { room: "lobby".into(), message: huge });
    assert_eq!(
        relay.frames(ids[0]),
        [ServerFrame::Error { request: 0, reason: ErrorReason::MessageTooLarge }]
    );
    let fine = build_private_message(GROUP, 1, CONTENT_TYPE_APPLICATION, b"hi");
    relay.send(ids[0], ClientFrame::Application { room: "lobby".into(), message: fine });
    assert_eq!(relay.frames(ids[1]).len(), 1);
}

#[test]
fn a_full_room_refuses_the_next_joiner() {
    let mut relay = Harness::new();
    relay.room(&["alice"]);
    for n in 1..MAX_ROOM_MEMBERS {
        let id = relay.connect(&format!("m{n}"));
        relay.send(id, ClientFrame::Join { room: "lobby".into() });
    }
    let late = relay.connect("late");
    relay.send(late, ClientFrame::Join { room: "lobby".into() });
    assert_eq!(
        relay.frames(late),
        [ServerFrame::Error { request: 0, reason: ErrorReason::RoomFull }]
    );
}

impl Harness {
    /// The session's link drops: its queue goes back to the state, parked.
    fn drop_link(&mut self, id: SessionId) {
        let inbound = self.inboxes.remove(&id).expect("a connected session");
        let replay = ReplayBuffer::new(crate::relay::replay::ReplayLimits::default());
        self.state.park(id, Parked { inbound, replay }, self.now);
    }

    /// A new connection resumes the session `token` names.
    fn resume(&mut self, token: &ResumeToken) -> Option<SessionId> {
        let (kick, _) = oneshot::channel();
        match self.state.resume(token, kick, self.now) {
            Resumption::Ready { id, parked } => {
                self.inboxes.insert(id, parked.inbound);
                Some(id)
            }
            Resumption::HandingOver { .. } => panic!("the session was not away"),
            Resumption::Unknown => None,
        }
    }

    fn token(&self, id: SessionId) -> ResumeToken {
        self.state.sessions[&id].token.clone().expect("a registered session")
    }

    fn reclaim(&mut self, id: SessionId, epoch: u64) {
        let frame = ClientFrame::Reclaim { room: "lobby".into(), group_id: GROUP.to_vec(), epoch };
        self.send(id, frame);
    }
}

fn message(epoch: u64) -> Vec<u8> {
    build_private_message(GROUP, epoch, CONTENT_TYPE_APPLICATION, b"hello")
}

#[test]
fn an_away_member_keeps_its_place_and_gets_what_it_missed_on_resume() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let token = relay.token(ids[1]);
    relay.drop_link(ids[1]);
    assert_eq!(relay.state.stats().away_sessions, 1);
    assert_eq!(
        relay.frames(ids[0]),
        [ServerFrame::MemberAway { room: "lobby".into(), nick: "bob".into(), away: true }]
    );
    relay.send(ids[0], ClientFrame::Application { room: "lobby".into(), message: message(1) });
    // Still bob's nickname: nobody else may take it while he is away.
    let mallory = relay.connect_unregistered();
    relay.send(mallory, ClientFrame::Register { nick: "bob".into() });
    assert_eq!(
        relay.frames(mallory),
        [ServerFrame::Error { request: 0, reason: ErrorReason::NickTaken }]
    );

    relay.advance(GRACE_PERIOD - Duration::from_millis(1));
    assert_eq!(relay.resume(&token), Some(ids[1]));
    let missed = relay.frames(ids[1]);
    assert!(
        matches!(&missed[..], [ServerFrame::Application { from, .. }] if from == "alice"),
        "{missed:?}"
    );
    assert_eq!(
        relay.frames(ids[0]),
        [ServerFrame::MemberAway { room: "lobby".into(), nick: "bob".into(), away: false }]
    );
    assert_eq!(relay.state.stats().away_sessions, 0);
    assert_eq!(relay.resume(&ResumeToken([0; 32])), None, "an unknown token resumes nothing");
}

#[test]
fn past_the_grace_period_an_away_member_is_gone_and_cannot_resume() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let token = relay.token(ids[1]);
    relay.drop_link(ids[1]);
    relay.frames(ids[0]);
    relay.advance(GRACE_PERIOD);
    assert_eq!(
        relay.frames(ids[0]),
        [ServerFrame::MemberLeft {
            room: "lobby".into(),
            nick: "bob".into(),
            leader: "alice".into()
        }]
    );
    assert_eq!(relay.resume(&token), None);
    assert_eq!(relay.state.stats().sessions, 1);
}

#[test]
fn an_away_member_whose_queue_overflowed_is_not_resumed() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let token = relay.token(ids[1]);
    relay.drop_link(ids[1]);
    for _ in 0..=QueueLimits::default().frames_per_session {
        let message = message(1);
        relay.send(ids[0], ClientFrame::Application { room: "lobby".into(), message });
    }
    assert_eq!(relay.resume(&token), None, "it missed frames nobody kept");
    assert_eq!(relay.state.stats().away_sessions, 0);
}

#[test]
fn away_members_do_not_hold_up_a_vote() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob", "carol"]);
    relay.drop_link(ids[2]);
    relay.commit(ids[0], 2, None);
    relay.vote(ids[1], 2, true);
    assert_eq!(
        relay.frames(ids[0]).last(),
        Some(&ServerFrame::CommitConfirmed { room: "lobby".into(), epoch: 3 }),
        "confirmed without carol's vote, and without taking her out"
    );
    assert_eq!(relay.state.stats().room_memberships, 3);
}

#[test]
fn a_member_going_away_mid_vote_is_not_waited_for() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob", "carol"]);
    relay.commit(ids[0], 2, None);
    relay.vote(ids[1], 2, true);
    relay.frames(ids[0]);
    relay.drop_link(ids[2]);
    assert_eq!(
        relay.frames(ids[0]).last(),
        Some(&ServerFrame::CommitConfirmed { room: "lobby".into(), epoch: 3 })
    );
}

#[test]
fn a_reclaim_restores_a_room_as_it_was_or_sends_the_member_through_admission() {
    let mut relay = Harness::new();
    // After a restart the relay is empty: the first member back re-forms the room.
    let alice = relay.connect("alice");
    relay.reclaim(alice, 7);
    assert_eq!(
        relay.frames(alice),
        [ServerFrame::Reclaimed { room: "lobby".into(), members: vec!["alice".into()] }]
    );
    // At the same group and epoch: a member again, with no key change.
    let bob = relay.connect("bob");
    relay.reclaim(bob, 7);
    assert_eq!(
        relay.frames(bob),
        [ServerFrame::Reclaimed {
            room: "lobby".into(),
            members: vec!["alice".into(), "bob".into()]
        }]
    );
    assert_eq!(
        relay.frames(alice),
        [ServerFrame::MemberJoined { room: "lobby".into(), nick: "bob".into() }]
    );
    // Behind: admitted by the leader like any joiner.
    let carol = relay.connect("carol");
    relay.reclaim(carol, 6);
    assert_eq!(
        relay.frames(carol),
        [ServerFrame::JoinPending { room: "lobby".into(), leader: "alice".into() }]
    );
    // Another group under the room's name: told so, nothing else.
    let dave = relay.connect("dave");
    let frame =
        ClientFrame::Reclaim { room: "lobby".into(), group_id: b"other".to_vec(), epoch: 7 };
    relay.send(dave, frame);
    assert_eq!(
        relay.frames(dave),
        [ServerFrame::Error { request: 0, reason: ErrorReason::RoomIsAnotherGroup }]
    );
    // A room created afresh, whose group the relay has not seen yet: another group as well.
    let erin = relay.connect("erin");
    relay.send(erin, ClientFrame::Join { room: "fresh".into() });
    relay.frames(erin);
    let frame = ClientFrame::Reclaim { room: "fresh".into(), group_id: GROUP.to_vec(), epoch: 7 };
    relay.send(dave, frame);
    assert_eq!(
        relay.frames(dave),
        [ServerFrame::Error { request: 0, reason: ErrorReason::RoomIsAnotherGroup }]
    );
    // A member that left since the epoch last moved is owed a removal: admission, too.
    relay.send(bob, ClientFrame::Leave { room: "lobby".into() });
    relay.frames(bob);
    relay.reclaim(bob, 7);
    assert_eq!(
        relay.frames(bob),
        [ServerFrame::JoinPending { room: "lobby".into(), leader: "alice".into() }]
    );
}

#[test]
fn away_sessions_are_capped_per_address_the_longest_away_forgotten_first() {
    let mut relay = Harness::new();
    relay.state = std::mem::take(&mut relay.state).with_away_limits(AwayLimits {
        per_address: 2,
        total: 100,
        ipv6_prefix_len: 64,
    });
    let ids: Vec<SessionId> = ["a", "b", "c"].iter().map(|nick| relay.connect(nick)).collect();
    let tokens: Vec<ResumeToken> = ids.iter().map(|id| relay.token(*id)).collect();
    for id in &ids {
        relay.drop_link(*id);
        relay.now += Duration::from_secs(1);
    }
    assert_eq!(relay.state.stats().away_sessions, 2);
    assert_eq!(relay.resume(&tokens[0]), None, "the one away longest is gone");
    assert_eq!(relay.resume(&tokens[2]), Some(ids[2]));
}
