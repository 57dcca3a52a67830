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

    fn connect(&mut self, nick: &str) -> SessionId {
        let (outbound, inbound) = outbound::queue(QueueLimits::default(), &self.global);
        let (kick, _) = oneshot::channel();
        let id = self.state.add_session(NAT, SessionChannel { outbound, kick });
        self.inboxes.insert(id, inbound);
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
        assert_eq!(self.state.handle(id, frame, self.now, &mut signals), Control::Continue);
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
    assert_eq!(relay.frames(guesser), [ServerFrame::Error { reason: ErrorReason::BannedFromRoom }]);
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
        assert_eq!(relay.frames(id), [ServerFrame::Error { reason }], "{nick:?}");
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
    assert_eq!(relay.frames(ids[0]), [ServerFrame::Error { reason: ErrorReason::UnknownJoiner }]);
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
    assert_eq!(relay.frames(ids[0]), [ServerFrame::Error { reason: ErrorReason::MessageTooLarge }]);
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
    assert_eq!(relay.frames(late), [ServerFrame::Error { reason: ErrorReason::RoomFull }]);
}
