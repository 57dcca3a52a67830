//! Unit tests of the relay state, driven without sockets: sessions are queues read back
//! here, and time is passed in, so deadlines are tested exactly.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::*;
use crate::mls_header::{CONTENT_TYPE_APPLICATION, CONTENT_TYPE_COMMIT, build_private_message};
use crate::proto::{
    Addition, AdmissionRefusal, CommitRejection, MAX_APPLICATION_LEN, MAX_ROOM_MEMBERS,
    RemovalReason, ResumeToken, Welcome, commit_hash,
};
use crate::proto::{MergedCommit, ReclaimRefusal, SignedVote};
use crate::relay::outbound::{self, GlobalQueue, Inbound, QueueLimits};
use crate::relay::replay::{ReplayBuffer, ReplayLimits};

const GROUP: &[u8] = b"group-1";
const NAT: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

struct Harness {
    state: State,
    now: Instant,
    inboxes: HashMap<SessionId, Inbound>,
    /// The number of the last frame each session sent.
    numbers: HashMap<SessionId, u64>,
    tokens: HashMap<SessionId, ResumeToken>,
    global: Arc<GlobalQueue>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            state: State::new(16, RoomDeadlines::default()),
            now: Instant::now(),
            inboxes: HashMap::new(),
            numbers: HashMap::new(),
            tokens: HashMap::new(),
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
        let [ServerFrame::Registered { nick: registered, relay_boot, token }] = &frames[..] else {
            panic!("{frames:?}");
        };
        assert_eq!((registered.as_str(), *relay_boot), (nick, self.state.relay_boot()));
        self.tokens.insert(id, token.clone());
        id
    }

    fn send(&mut self, id: SessionId, frame: ClientFrame) {
        let number = self.numbers.entry(id).or_default();
        *number += 1;
        let mut signals = Vec::new();
        let control = self.state.handle(id, *number, frame, self.now, &mut signals);
        assert_eq!(control, Control::Continue);
    }

    /// The error a session's last frame caused.
    fn error(&self, id: SessionId, reason: ErrorReason) -> ServerFrame {
        ServerFrame::Error { request: self.numbers[&id], reason }
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
            self.send(id, join("lobby"));
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
        let attempt = self.admit_until_confirmed(members, joiner, nick, epoch);
        // Merged: the leader sends the joiner's Welcome.
        self.send(members[0], welcome_for(nick, attempt));
    }

    /// Runs a joiner's admission up to the confirmation of the commit that adds it (the
    /// leader has not sent the Welcome yet); returns the attempt.
    fn admit_until_confirmed(
        &mut self,
        members: &[SessionId],
        joiner: SessionId,
        nick: &str,
        epoch: u64,
    ) -> u64 {
        let attempt = self.attempt(nick);
        self.send(
            members[0],
            ClientFrame::AdmissionReply {
                room: "lobby".into(),
                joiner: nick.into(),
                attempt,
                pake_message: vec![2],
                suite: crate::mls::RoomSuite::Classic.id(),
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
        attempt
    }

    fn commit(&mut self, committer: SessionId, epoch: u64, welcome_to: Option<&str>) {
        let commit = build_private_message(GROUP, epoch, CONTENT_TYPE_COMMIT, b"commit");
        let adds = welcome_to.map(|to| Addition {
            to: to.into(),
            attempt: self.state.rooms["lobby"]
                .pending
                .iter()
                .find(|joiner| joiner.nick == to)
                .map_or(0, |joiner| joiner.attempt),
        });
        let electorate = self.state.rooms["lobby"].members.len() as u32;
        self.send(
            committer,
            ClientFrame::Commit { room: "lobby".into(), commit, adds, electorate },
        );
        // An honest committer signs its own yes once its commit comes back for the vote.
        self.vote(committer, epoch, true);
    }

    fn vote(&mut self, voter: SessionId, epoch: u64, accept: bool) {
        let vote = vec![accept as u8];
        self.send(voter, ClientFrame::CommitVote { room: "lobby".into(), epoch, accept, vote });
    }
}

/// The Welcome a leader sends once it merged the commit that adds `nick`.
fn welcome_for(nick: &str, attempt: u64) -> ClientFrame {
    let welcome = Welcome { to: nick.into(), attempt, message: b"welcome".to_vec() };
    ClientFrame::Welcome { room: "lobby".into(), welcome }
}

fn confirmed(epoch: u64, voters: &[&str]) -> ServerFrame {
    let votes =
        voters.iter().map(|voter| SignedVote { from: (*voter).into(), vote: vec![1] }).collect();
    ServerFrame::CommitConfirmed { room: "lobby".into(), epoch, votes }
}

#[test]
fn silent_voters_are_taken_out_at_the_deadline() {
    // Four members, two silent: two yes of four decide nothing until the deadline takes the
    // silent ones out; their places still count, so the commit is undecided (nobody taken out
    // for it), and the leader owes their removal next.
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob", "silent", "mute"]);
    relay.commit(ids[0], 3, None);
    relay.vote(ids[1], 3, true);
    relay.frames(ids[0]);
    relay.frames(ids[1]);
    relay.advance(VOTE_DEADLINE - Duration::from_millis(1));
    assert!(relay.frames(ids[0]).is_empty(), "nothing happens before the deadline");
    relay.advance(Duration::from_millis(1));
    for silent in &ids[2..] {
        assert_eq!(
            relay.frames(*silent).last(),
            Some(&ServerFrame::Removed { room: "lobby".into(), reason: RemovalReason::NoVote })
        );
    }
    let frames = relay.frames(ids[0]);
    assert!(
        frames.iter().any(|f| matches!(f, ServerFrame::CommitAborted { epoch: 3, .. })),
        "{frames:?}"
    );
    assert_eq!(relay.state.stats().room_memberships, 2);
}

#[test]
fn a_majority_confirms_without_the_slowest_and_a_late_refusal_is_taken_out() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob", "slow"]);
    relay.commit(ids[0], 2, None);
    relay.vote(ids[1], 2, true);
    assert!(relay.frames(ids[0]).contains(&confirmed(3, &["alice", "bob"])));
    // The slow member refuses what the majority accepted: out of step, taken out.
    relay.vote(ids[2], 2, false);
    assert_eq!(
        relay.frames(ids[2]).last(),
        Some(&ServerFrame::Removed { room: "lobby".into(), reason: RemovalReason::OutVoted })
    );
}

#[test]
fn a_leader_that_keeps_a_joiner_waiting_hands_over_the_lead() {
    let mut relay = Harness::new();
    let ids = relay.room(&["sleepy", "bob"]);
    let carol = relay.connect("carol");
    relay.send(carol, join("lobby"));
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
    relay.send(carol, join("lobby"));
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
    relay.send(carol, join("lobby"));
    let attempt = relay.attempt("carol");
    relay.send(
        ids[0],
        ClientFrame::AdmissionReply {
            room: "lobby".into(),
            joiner: "carol".into(),
            attempt,
            pake_message: vec![2],
            suite: crate::mls::RoomSuite::Classic.id(),
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
    relay.send(carol, join("lobby"));
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
        relay.send(guesser, join("lobby"));
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
    relay.send(guesser, join("lobby"));
    assert_eq!(relay.frames(guesser), [relay.error(guesser, ErrorReason::BannedFromRoom)]);
    // A housemate behind the same address still gets in line.
    let housemate = relay.connect("housemate");
    relay.send(housemate, join("lobby"));
    assert!(matches!(relay.frames(housemate).as_slice(), [ServerFrame::JoinPending { .. }]));
}

#[test]
fn look_alike_and_mixed_script_nicknames_are_refused() {
    let mut relay = Harness::new();
    relay.connect("alice");
    relay.connect("ae");
    relay.connect("Ian");
    let mixed = ErrorReason::NickNotAllowed(proto::NickProblem::MixedScript);
    let invisible = ErrorReason::NickNotAllowed(proto::NickProblem::Invisible('\u{FE0F}'));
    let cases = [
        ("s\u{0430}lly", mixed),
        ("sophie\u{FE0F}", invisible),
        ("\u{0430}\u{0435}", ErrorReason::NickTaken),
        // The same name in other case, and a capital I for a small l.
        ("ALICE", ErrorReason::NickTaken),
        ("AE", ErrorReason::NickTaken),
        ("lan", ErrorReason::NickTaken),
    ];
    for (nick, reason) in cases {
        let id = relay.connect_unregistered();
        relay.send(id, ClientFrame::Register { nick: nick.into() });
        assert_eq!(relay.frames(id), [relay.error(id, reason)], "{nick:?}");
    }
}

#[test]
fn a_nickname_is_free_again_under_every_form_once_its_session_is_gone() {
    let mut relay = Harness::new();
    let first = relay.connect("Ian");
    relay.state.remove_session(first, relay.now);
    relay.connect("lan");
    // A capital I passes for a small l: "Ian" is taken by "lan" too.
    let id = relay.connect_unregistered();
    relay.send(id, ClientFrame::Register { nick: "Ian".into() });
    assert_eq!(relay.frames(id), [relay.error(id, ErrorReason::NickTaken)]);
    relay.connect("ian");
}

#[test]
fn a_committer_that_leaves_mid_vote_does_not_stop_it() {
    // Its signed yes still counts, and the others may merge without it (its leaf goes next).
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob", "carol", "dave"]);
    relay.commit(ids[0], 3, None);
    relay.vote(ids[1], 3, true);
    relay.send(ids[0], ClientFrame::Leave { room: "lobby".into() });
    relay.vote(ids[2], 3, true);
    let frames = relay.frames(ids[1]);
    assert!(frames.contains(&confirmed(4, &["alice", "bob", "carol"])), "{frames:?}");
}

#[test]
fn one_objector_among_three_is_taken_out_and_a_tie_of_two_takes_nobody_out() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob", "nay"]);
    relay.commit(ids[0], 2, None);
    relay.vote(ids[2], 2, false);
    relay.vote(ids[1], 2, true);
    assert!(relay.frames(ids[1]).contains(&confirmed(3, &["alice", "bob"])));
    assert_eq!(
        relay.frames(ids[2]).last(),
        Some(&ServerFrame::Removed { room: "lobby".into(), reason: RemovalReason::OutVoted })
    );
    let mut pair = Harness::new();
    let ids = pair.room(&["alice", "nay"]);
    pair.commit(ids[0], 1, None);
    pair.vote(ids[1], 1, false);
    let no = SignedVote { from: "nay".into(), vote: vec![0] };
    assert_eq!(
        pair.frames(ids[0]).last(),
        Some(&ServerFrame::CommitAborted { room: "lobby".into(), epoch: 1, votes: vec![no] })
    );
    assert_eq!(pair.state.stats().room_memberships, 2, "nobody taken out on a tie");
}

#[test]
fn a_joiner_that_leaves_mid_vote_is_reported_gone_after_the_confirmation() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let carol = relay.connect("carol");
    relay.send(carol, join("lobby"));
    relay.commit(ids[0], 1, Some("carol"));
    relay.send(carol, ClientFrame::Leave { room: "lobby".into() });
    relay.vote(ids[1], 1, true);
    let frames = relay.frames(ids[1]);
    assert_eq!(
        frames[1..],
        [
            confirmed(2, &["alice", "bob"]),
            ServerFrame::MemberLeft {
                room: "lobby".into(),
                nick: "carol".into(),
                leader: "alice".into(),
                epoch: 2
            },
        ]
    );
}

#[test]
fn a_leaders_answer_to_an_earlier_attempt_does_not_reach_the_new_one() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let carol = relay.connect("carol");
    relay.send(carol, join("lobby"));
    let first = relay.attempt("carol");
    relay.send(carol, ClientFrame::Leave { room: "lobby".into() });
    relay.send(carol, join("lobby"));
    relay.frames(carol);
    relay.frames(ids[0]);
    relay.send(
        ids[0],
        ClientFrame::AdmissionReply {
            room: "lobby".into(),
            joiner: "carol".into(),
            attempt: first,
            pake_message: vec![2],
            suite: crate::mls::RoomSuite::Classic.id(),
        },
    );
    assert!(relay.frames(carol).is_empty(), "the stale answer is not passed on");
    assert_eq!(relay.frames(ids[0]), [relay.error(ids[0], ErrorReason::UnknownJoiner)]);
}

#[test]
fn the_joiner_gets_its_welcome_only_from_its_committer_once_confirmed() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let carol = relay.connect("carol");
    relay.send(carol, join("lobby"));
    let attempt = relay.admit_until_confirmed(&ids, carol, "carol", 1);
    // Confirmed: carol is counted in, but no Welcome exists until alice merged and sent it.
    assert!(
        !relay.frames(carol).iter().any(|frame| matches!(frame, ServerFrame::Welcome { .. })),
        "no welcome before the committer sends it"
    );
    assert_eq!(relay.state.rooms["lobby"].member_nicks(), ["alice", "bob", "carol"]);
    relay.frames(ids[0]);
    relay.frames(ids[1]);
    // Not from another member, nor for another attempt: only what the commit named.
    relay.send(ids[1], welcome_for("carol", attempt));
    assert_eq!(relay.frames(ids[1]), [relay.error(ids[1], ErrorReason::UnknownJoiner)]);
    relay.send(ids[0], welcome_for("carol", attempt + 1));
    assert_eq!(relay.frames(ids[0]), [relay.error(ids[0], ErrorReason::UnknownJoiner)]);
    assert!(relay.frames(carol).is_empty());
    relay.send(ids[0], welcome_for("carol", attempt));
    assert_eq!(
        relay.frames(carol),
        [ServerFrame::Welcome {
            room: "lobby".into(),
            message: b"welcome".to_vec(),
            members: vec!["alice".into(), "bob".into(), "carol".into()],
        }]
    );
    // Once: the same Welcome again is not passed on.
    relay.send(ids[0], welcome_for("carol", attempt));
    assert!(relay.frames(carol).is_empty());
}

#[test]
fn a_joiner_whose_welcome_never_comes_starts_over() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let carol = relay.connect("carol");
    relay.send(carol, join("lobby"));
    relay.admit_until_confirmed(&ids, carol, "carol", 1);
    relay.frames(carol);
    relay.frames(ids[1]);
    relay.advance(LEADER_DEADLINE - Duration::from_millis(1));
    assert!(relay.frames(carol).is_empty());
    relay.advance(Duration::from_millis(1));
    assert_eq!(
        relay.frames(carol),
        [ServerFrame::AdmissionRefused {
            room: "lobby".into(),
            reason: AdmissionRefusal::LeaderChanged
        }]
    );
    // Counted out again: the leader owes the removal of the leaf it added.
    assert_eq!(
        relay.frames(ids[1]),
        [ServerFrame::MemberLeft {
            room: "lobby".into(),
            nick: "carol".into(),
            leader: "alice".into(),
            epoch: 2
        }]
    );
    assert_eq!(relay.state.rooms["lobby"].member_nicks(), ["alice", "bob"]);
}

#[test]
fn a_commit_adding_a_joiner_that_gave_up_still_goes_to_the_vote() {
    // Members may have accepted the commit already (its vote was aborted, and the joiner
    // started over or left): the leader sends it again, and the room settles it.
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let carol = relay.connect("carol");
    relay.send(carol, join("lobby"));
    let attempt = relay.attempt("carol");
    relay.send(
        ids[0],
        ClientFrame::AdmissionReply {
            room: "lobby".into(),
            joiner: "carol".into(),
            attempt,
            pake_message: vec![2],
            suite: crate::mls::RoomSuite::Classic.id(),
        },
    );
    relay.send(
        carol,
        ClientFrame::AdmissionFinish {
            room: "lobby".into(),
            confirmation: vec![3],
            sealed_key_package: vec![4],
        },
    );
    relay.send(carol, ClientFrame::Leave { room: "lobby".into() });
    relay.frames(ids[0]);
    relay.frames(ids[1]);
    let commit = build_private_message(GROUP, 1, CONTENT_TYPE_COMMIT, b"commit");
    let adds = Some(Addition { to: "carol".into(), attempt });
    relay.send(ids[0], ClientFrame::Commit { room: "lobby".into(), commit, adds, electorate: 2 });
    relay.vote(ids[0], 1, true);
    relay.vote(ids[1], 1, true);
    let frames = relay.frames(ids[1]);
    assert!(
        matches!(&frames[0], ServerFrame::Commit { joiner: Some(joiner), .. } if joiner == "carol")
    );
    assert_eq!(
        frames[1..],
        [
            confirmed(2, &["alice", "bob"]),
            ServerFrame::MemberLeft {
                room: "lobby".into(),
                nick: "carol".into(),
                leader: "alice".into(),
                epoch: 2
            },
        ]
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
            commit: commit_hash(&build_private_message(GROUP, 1, CONTENT_TYPE_COMMIT, b"commit")),
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
    assert_eq!(relay.frames(ids[0]), [relay.error(ids[0], ErrorReason::MessageTooLarge)]);
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
        relay.send(id, join("lobby"));
    }
    let late = relay.connect("late");
    relay.send(late, join("lobby"));
    assert_eq!(relay.frames(late), [relay.error(late, ErrorReason::RoomFull)]);
}

impl Harness {
    /// The session's link drops: its queue goes back to the state, parked.
    fn drop_link(&mut self, id: SessionId) {
        let inbound = self.inboxes.remove(&id).expect("a connected session");
        let replay = ReplayBuffer::new(ReplayLimits::default());
        self.state.park(id, Parked { inbound, replay }, self.now);
    }

    /// A new connection resumes the session `token` names, as its first frame. When that
    /// fails, the new connection goes too (a client would register on it instead).
    fn resume(&mut self, token: &ResumeToken) -> Option<SessionId> {
        let fresh = self.connect_unregistered();
        let (kick, _) = oneshot::channel();
        match self.state.resume(fresh, token, kick, self.now) {
            Resumption::Ready { id, parked } => {
                let (_, token) = self.state.adopt(fresh, id, self.now).expect("taken back");
                self.tokens.insert(id, token);
                self.inboxes.remove(&fresh);
                self.inboxes.insert(id, parked.inbound);
                Some(id)
            }
            Resumption::HandingOver { .. } => panic!("the session was not away"),
            Resumption::Unknown | Resumption::NotFirst => {
                self.state.remove_session(fresh, self.now);
                None
            }
        }
    }

    fn token(&self, id: SessionId) -> ResumeToken {
        self.tokens[&id].clone()
    }

    fn reclaim(&mut self, id: SessionId, epoch: u64) {
        let frame = ClientFrame::Reclaim {
            room: "lobby".into(),
            group_id: GROUP.to_vec(),
            epoch,
            pledged: None,
            proof: Vec::new(),
            last_commit: None,
            earlier: Vec::new(),
        };
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
    assert_eq!(relay.frames(mallory), [relay.error(mallory, ErrorReason::NickTaken)]);

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
            leader: "alice".into(),
            epoch: 1
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
        Some(&confirmed(3, &["alice", "bob"])),
        "confirmed without carol's vote, and without taking her out"
    );
    assert_eq!(relay.state.stats().room_memberships, 3);
}

#[test]
fn a_member_going_away_mid_vote_is_not_waited_for() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob", "carol", "dave"]);
    relay.commit(ids[0], 3, None);
    relay.vote(ids[1], 3, true);
    relay.frames(ids[0]);
    // Dave goes away before voting: nobody waits for him, and carol's yes makes three of four.
    relay.drop_link(ids[3]);
    relay.vote(ids[2], 3, true);
    assert_eq!(relay.frames(ids[0]).last(), Some(&confirmed(4, &["alice", "bob", "carol"])));
}

fn refused(reason: ReclaimRefusal) -> ServerFrame {
    refused_in("lobby", reason)
}

fn refused_in(room: &str, reason: ReclaimRefusal) -> ServerFrame {
    ServerFrame::ReclaimRefused { room: room.into(), reason }
}

#[test]
fn a_reclaim_restores_a_room_as_it_was_and_never_starts_an_admission() {
    let mut relay = Harness::new();
    // After a restart the relay is empty: the first member back re-forms the room.
    let alice = relay.connect("alice");
    relay.reclaim(alice, 7);
    assert_eq!(
        relay.frames(alice),
        [ServerFrame::Reclaimed { room: "lobby".into(), members: vec!["alice".into()], epoch: 7 }]
    );
    // At the same group and epoch: a member again, with no key change.
    let bob = relay.connect("bob");
    relay.reclaim(bob, 7);
    assert_eq!(
        relay.frames(bob),
        [ServerFrame::Reclaimed {
            room: "lobby".into(),
            members: vec!["alice".into(), "bob".into()],
            epoch: 7,
        }]
    );
    assert_eq!(
        relay.frames(alice),
        [ServerFrame::MemberJoined { room: "lobby".into(), nick: "bob".into(), epoch: 7 }]
    );
    // Once the re-forming window closes, a claim that does not match is refused at once,
    // never sent through admission: behind, or another group.
    relay.advance(GRACE_PERIOD);
    let carol = relay.connect("carol");
    relay.reclaim(carol, 6);
    assert_eq!(relay.frames(carol), [refused(ReclaimRefusal::StaleEpoch)]);
    let dave = relay.connect("dave");
    let frame = ClientFrame::Reclaim {
        room: "lobby".into(),
        group_id: b"other".to_vec(),
        epoch: 7,
        pledged: None,
        proof: Vec::new(),
        last_commit: None,
        earlier: Vec::new(),
    };
    relay.send(dave, frame);
    assert_eq!(relay.frames(dave), [refused(ReclaimRefusal::AnotherGroup)]);
    // A member that left since the epoch last moved is owed a removal: taken out.
    relay.send(bob, ClientFrame::Leave { room: "lobby".into() });
    relay.frames(bob);
    relay.reclaim(bob, 7);
    assert_eq!(relay.frames(bob), [refused(ReclaimRefusal::TakenOut)]);
}

#[test]
fn after_a_restart_the_room_goes_to_the_claim_most_members_return_to() {
    let mut relay = Harness::new();
    // An insider back first with a stale epoch holds the name for now.
    let insider = relay.connect("insider");
    relay.reclaim(insider, 3);
    relay.frames(insider);
    // The real members come back at epoch 7: they wait beside it, keeping their group.
    let alice = relay.connect("alice");
    relay.reclaim(alice, 7);
    assert_eq!(
        relay.frames(alice),
        [ServerFrame::ReclaimPending { room: "lobby".into(), ours: 1, holders: 1 }]
    );
    // A second one outnumbers the insider: the room is theirs, and the insider is told.
    let bob = relay.connect("bob");
    relay.reclaim(bob, 7);
    let members = vec!["alice".to_string(), "bob".to_string()];
    assert_eq!(
        relay.frames(alice),
        [ServerFrame::Reclaimed { room: "lobby".into(), members: members.clone(), epoch: 7 }]
    );
    assert_eq!(
        relay.frames(bob),
        [ServerFrame::Reclaimed { room: "lobby".into(), members, epoch: 7 }]
    );
    assert_eq!(relay.frames(insider), [refused(ReclaimRefusal::Outnumbered)]);
    // An outsider with a made-up group cannot take it either: it waits, outnumbered, and is
    // refused when the window closes.
    let outsider = relay.connect("outsider");
    let frame = ClientFrame::Reclaim {
        room: "lobby".into(),
        group_id: b"made up".to_vec(),
        epoch: 0,
        pledged: None,
        proof: Vec::new(),
        last_commit: None,
        earlier: Vec::new(),
    };
    relay.send(outsider, frame);
    assert_eq!(
        relay.frames(outsider),
        [ServerFrame::ReclaimPending { room: "lobby".into(), ours: 1, holders: 2 }]
    );
    relay.advance(GRACE_PERIOD);
    assert_eq!(relay.frames(outsider), [refused(ReclaimRefusal::Outnumbered)]);
    // A newcomer's join reaches the group most members returned to.
    let carol = relay.connect("carol");
    relay.send(carol, join("lobby"));
    assert_eq!(
        relay.frames(carol),
        [ServerFrame::JoinPending { room: "lobby".into(), leader: "alice".into() }]
    );
}

#[test]
fn a_room_founded_by_a_join_just_after_a_restart_still_goes_to_its_returning_members() {
    let mut relay = Harness::new();
    // A joiner whose admission the restart cut short joins again, first: it founds the room.
    let joiner = relay.connect("joiner");
    relay.send(joiner, join("lobby"));
    assert_eq!(relay.frames(joiner), [ServerFrame::RoomCreated { room: "lobby".into() }]);
    // A member comes back with its group: rather than being told the room holds another
    // group, its claim wins, since the founder brings no history to a tie.
    let alice = relay.connect("alice");
    relay.reclaim(alice, 4);
    assert_eq!(
        relay.frames(alice),
        [ServerFrame::Reclaimed { room: "lobby".into(), members: vec!["alice".into()], epoch: 4 }]
    );
    assert_eq!(relay.frames(joiner), [refused(ReclaimRefusal::Outnumbered)]);
    // The founder's next join reaches the room's real leader.
    relay.send(joiner, join("lobby"));
    assert_eq!(
        relay.frames(joiner),
        [ServerFrame::JoinPending { room: "lobby".into(), leader: "alice".into() }]
    );
}

#[test]
fn a_room_founded_once_the_relay_settled_is_nobody_elses_to_claim() {
    let mut relay = Harness::new();
    let early = relay.connect("early");
    relay.send(early, ClientFrame::Ping);
    relay.advance(GRACE_PERIOD);
    let founder = relay.connect("founder");
    relay.send(founder, join("lobby"));
    relay.frames(founder);
    let alice = relay.connect("alice");
    relay.reclaim(alice, 4);
    assert_eq!(relay.frames(alice), [refused(ReclaimRefusal::AnotherGroup)]);
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

#[test]
fn every_error_names_the_frame_that_caused_it() {
    let mut relay = Harness::new();
    let alice = relay.connect("alice");
    relay.send(alice, ClientFrame::Ping);
    relay.send(alice, join("no spaces"));
    relay.send(alice, ClientFrame::ListMembers { room: "lobby".into() });
    assert_eq!(
        relay.frames(alice),
        [
            ServerFrame::Pong,
            ServerFrame::Error { request: 3, reason: ErrorReason::RoomNameInvalid },
            ServerFrame::Error { request: 4, reason: ErrorReason::NotInRoom },
        ]
    );
}

#[test]
fn only_a_connections_first_frame_may_resume() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let token = relay.token(ids[1]);
    relay.drop_link(ids[1]);
    let late = relay.connect_unregistered();
    relay.send(late, ClientFrame::Ping);
    let (kick, _) = oneshot::channel();
    let resumption = relay.state.resume(late, &token, kick, relay.now);
    assert!(matches!(resumption, Resumption::NotFirst));
    // The connection then hands it over as a request, which is refused.
    relay.send(late, ClientFrame::Resume { token: token.clone(), received: 0 });
    let refusal = relay.error(late, ErrorReason::ResumeNotFirst);
    assert_eq!(relay.frames(late), [ServerFrame::Pong, refusal]);
    assert_eq!(relay.state.stats().away_sessions, 1, "bob is still away");
    assert_eq!(relay.resume(&token), Some(ids[1]), "a first frame still may");
}

#[test]
fn a_session_still_served_is_handed_over_by_its_old_connection() {
    let mut relay = Harness::new();
    let alice = relay.room(&["alice"])[0];
    // Bob's connection, whose close channel this test watches.
    let (outbound, inbound) = outbound::queue(QueueLimits::default(), &relay.global);
    let (kick, mut old_kicked) = oneshot::channel();
    let bob = relay.state.add_session(NAT, SessionChannel { outbound, kick });
    relay.inboxes.insert(bob, inbound);
    relay.send(bob, ClientFrame::Register { nick: "bob".into() });
    let [ServerFrame::Registered { token, .. }] = &relay.frames(bob)[..] else { panic!() };
    let token = token.clone();

    let fresh = relay.connect_unregistered();
    let (kick, _) = oneshot::channel();
    let Resumption::HandingOver { id, parked: mut handed } =
        relay.state.resume(fresh, &token, kick, relay.now)
    else {
        panic!("bob's old connection still serves the session");
    };
    assert_eq!((id, old_kicked.try_recv()), (bob, Ok(DisconnectReason::ResumedElsewhere)));
    // The old connection goes, handing its queue to the new one: never away in between.
    relay.drop_link(bob);
    assert!(handed.try_recv().is_ok(), "the queue was handed over");
    assert!(relay.frames(alice).is_empty(), "the room never saw bob away");
    assert_eq!(relay.state.stats().away_sessions, 0);

    // A newer connection that gave up waiting leaves the session away for the next one.
    let third = relay.connect_unregistered();
    let (kick, _) = oneshot::channel();
    let handover = relay.state.resume(third, &token, kick, relay.now);
    drop(handover);
    let inbound = outbound::queue(QueueLimits::default(), &relay.global).1;
    let replay = ReplayBuffer::new(ReplayLimits::default());
    relay.state.park(bob, Parked { inbound, replay }, relay.now);
    assert_eq!(relay.state.stats().away_sessions, 1);
}

#[test]
fn join_and_reclaim_pass_the_same_entry_check() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    // Already in at another epoch, and a name that is not one: refused alike.
    relay.reclaim(ids[1], 0);
    assert_eq!(
        relay.frames(ids[1]),
        [refused(ReclaimRefusal::Unavailable(ErrorReason::AlreadyInRoom))]
    );
    // Already in as it was (someone told it otherwise): nothing changes.
    relay.reclaim(ids[1], 1);
    let members = vec!["alice".to_string(), "bob".to_string()];
    assert_eq!(
        relay.frames(ids[1]),
        [ServerFrame::Reclaimed { room: "lobby".into(), members, epoch: 1 }]
    );
    let frame = ClientFrame::Reclaim {
        room: "no spaces".into(),
        group_id: GROUP.to_vec(),
        epoch: 1,
        pledged: None,
        proof: Vec::new(),
        last_commit: None,
        earlier: Vec::new(),
    };
    relay.send(ids[1], frame);
    assert_eq!(
        relay.frames(ids[1]),
        [refused_in("no spaces", ReclaimRefusal::Unavailable(ErrorReason::RoomNameInvalid))]
    );
    // Banned by wrong passwords: no way back in "as it was" either.
    let guesser = relay.connect("guesser");
    for _ in 0..WRONG_PASSWORDS_BEFORE_BAN {
        relay.send(guesser, join("lobby"));
        let attempt = relay.attempt("guesser");
        let refusal = ClientFrame::AdmissionRefused {
            room: "lobby".into(),
            joiner: "guesser".into(),
            attempt,
            reason: AdmissionRefusal::WrongPassword,
        };
        relay.send(ids[0], refusal);
    }
    relay.frames(guesser);
    relay.reclaim(guesser, 1);
    assert_eq!(
        relay.frames(guesser),
        [refused(ReclaimRefusal::Unavailable(ErrorReason::BannedFromRoom))]
    );
    // A full room is full for both doors.
    for n in 2..MAX_ROOM_MEMBERS {
        let id = relay.connect(&format!("m{n}"));
        relay.send(id, join("lobby"));
    }
    let late = relay.connect("late");
    relay.reclaim(late, 1);
    assert_eq!(relay.frames(late), [refused(ReclaimRefusal::Unavailable(ErrorReason::RoomFull))]);
}

impl Harness {
    /// Alice's chat until one frame more than fits in a queue has been sent.
    fn overflow_queues(&mut self, alice: SessionId) {
        for _ in 0..=QueueLimits::default().frames_per_session {
            let message = message(1);
            self.send(alice, ClientFrame::Application { room: "lobby".into(), message });
        }
    }
}

#[test]
fn a_stalled_reader_whose_link_drops_before_it_goes_is_not_kept() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let token = relay.token(ids[1]);
    relay.overflow_queues(ids[0]);
    // Bob's connection was told to go, but its link dropped before it saw the order.
    relay.drop_link(ids[1]);
    assert_eq!(relay.state.stats().sessions, 1, "bob missed a frame: nothing to resume");
    assert_eq!(relay.resume(&token), None);
}

#[test]
fn a_queue_that_lost_a_frame_during_a_handover_is_not_handed_over() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let token = relay.token(ids[1]);
    let fresh = relay.connect_unregistered();
    let (kick, _) = oneshot::channel();
    let Resumption::HandingOver { parked: mut handed, .. } =
        relay.state.resume(fresh, &token, kick, relay.now)
    else {
        panic!("bob's old connection still serves the session");
    };
    relay.overflow_queues(ids[0]);
    relay.drop_link(ids[1]);
    assert!(handed.try_recv().is_err(), "the new connection is refused");
    assert_eq!(relay.state.stats().sessions, 2, "alice, and the new connection's own session");
    assert_eq!(relay.state.stats().nicknames, 1, "bob's nickname is free again");
}

#[test]
fn the_resume_token_changes_at_every_resume() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let first = relay.token(ids[1]);
    relay.drop_link(ids[1]);
    assert_eq!(relay.resume(&first), Some(ids[1]));
    let second = relay.token(ids[1]);
    assert_ne!(first, second, "a new token with every resume");
    // The used token is void: whoever copied it cannot take the session again.
    relay.drop_link(ids[1]);
    assert_eq!(relay.resume(&first), None);
    assert_eq!(relay.resume(&second), Some(ids[1]));
}

#[test]
fn a_restart_between_confirmations_is_caught_up_on_the_proof_of_the_members_ahead() {
    let proof = vec![SignedVote { from: "alice".into(), vote: vec![7] }];
    let claim = |epoch, pledged: Option<[u8; 32]>, proof: Vec<SignedVote>| ClientFrame::Reclaim {
        room: "lobby".into(),
        group_id: GROUP.to_vec(),
        epoch,
        pledged,
        proof,
        last_commit: None,
        earlier: Vec::new(),
    };
    let catch_up =
        ServerFrame::CommitConfirmed { room: "lobby".into(), epoch: 3, votes: proof.clone() };
    // Bob is back first, one epoch behind, holding the commit he said yes to.
    let mut relay = Harness::new();
    let bob = relay.connect("bob");
    relay.send(bob, claim(2, Some([9; 32]), Vec::new()));
    relay.frames(bob);
    // Alice merged that commit before the restart: she brings its proof. One room, at her
    // epoch; bob gets the proof to check and merge himself.
    let alice = relay.connect("alice");
    relay.send(alice, claim(3, None, proof.clone()));
    assert!(
        matches!(&relay.frames(alice)[..], [ServerFrame::Reclaimed { members, .. }] if members.len() == 2)
    );
    assert_eq!(
        relay.frames(bob),
        [
            ServerFrame::MemberJoined { room: "lobby".into(), nick: "alice".into(), epoch: 3 },
            catch_up.clone()
        ]
    );
    assert_eq!(relay.state.rooms["lobby"].epoch, 3);
    // Dave, behind with the commit, comes after the proof: he gets it at once.
    let dave = relay.connect("dave");
    relay.send(dave, claim(2, Some([9; 32]), Vec::new()));
    let frames = relay.frames(dave);
    assert!(
        matches!(&frames[..], [ServerFrame::Reclaimed { .. }, confirmed] if *confirmed == catch_up),
        "{frames:?}"
    );
    // Carol is behind too but never said yes to that commit: she cannot catch up. Her claim
    // waits as any other would, and loses.
    let carol = relay.connect("carol");
    relay.send(carol, claim(2, None, Vec::new()));
    assert_eq!(
        relay.frames(carol),
        [ServerFrame::ReclaimPending { room: "lobby".into(), ours: 1, holders: 3 }]
    );
    relay.advance(GRACE_PERIOD);
    assert_eq!(relay.frames(carol), [refused(ReclaimRefusal::Outnumbered)]);
}

#[test]
fn a_member_back_behind_commits_the_re_forming_room_confirmed_gets_them() {
    let claim = |epoch| ClientFrame::Reclaim {
        room: "lobby".into(),
        group_id: GROUP.to_vec(),
        epoch,
        pledged: None,
        proof: Vec::new(),
        last_commit: None,
        earlier: Vec::new(),
    };
    let mut relay = Harness::new();
    let ids: Vec<SessionId> =
        ["alice", "bob", "carol"].iter().map(|nick| relay.connect(nick)).collect();
    for id in &ids {
        relay.send(*id, claim(4));
    }
    // Carol leaves; alice, leading the re-formed room, commits her removal before dave is
    // back, and bob votes for it.
    relay.send(ids[2], ClientFrame::Leave { room: "lobby".into() });
    relay.commit(ids[0], 4, None);
    relay.vote(ids[1], 4, true);
    assert_eq!(relay.state.rooms["lobby"].epoch, 5);
    // Dave comes back at 4: taken back where he was, and sent the commit and its
    // confirmation, in order, as an away member would be.
    let dave = relay.connect("dave");
    relay.send(dave, claim(4));
    let frames = relay.frames(dave);
    assert!(
        matches!(
            &frames[..],
            [
                ServerFrame::Reclaimed { .. },
                ServerFrame::Commit { .. },
                ServerFrame::CommitConfirmed { epoch: 5, .. }
            ]
        ),
        "{frames:?}"
    );
    // Carol left during that epoch (the commit removed her): she is not taken back behind it.
    // Holding a commit of her own for that epoch (one that lost), she is told at once that
    // she was taken out; without one, she is not taken back either.
    relay.frames(ids[2]);
    let mut pledged = claim(4);
    if let ClientFrame::Reclaim { pledged: kept, .. } = &mut pledged {
        *kept = Some([9; 32]);
    }
    relay.send(ids[2], pledged);
    assert_eq!(relay.frames(ids[2]), [refused(ReclaimRefusal::TakenOut)]);
    relay.send(ids[2], claim(4));
    let frames = relay.frames(ids[2]);
    assert!(
        !frames.iter().any(|frame| matches!(frame, ServerFrame::Reclaimed { .. })),
        "{frames:?}"
    );
}

#[test]
fn a_member_back_behind_after_a_restart_gets_the_commit_it_missed_from_one_ahead() {
    let proof = vec![SignedVote { from: "alice".into(), vote: vec![7] }];
    let missed = MergedCommit {
        from: "alice".into(),
        commit: build_private_message(GROUP, 2, CONTENT_TYPE_COMMIT, b"missed"),
        joiner: None,
    };
    // Alice is back first after a restart, at epoch 3, with the commit that led there and
    // its proof: the relay keeps both, though its own log died with the restart.
    let mut relay = Harness::new();
    let alice = relay.connect("alice");
    relay.send(
        alice,
        ClientFrame::Reclaim {
            room: "lobby".into(),
            group_id: GROUP.to_vec(),
            epoch: 3,
            pledged: None,
            proof: proof.clone(),
            last_commit: Some(missed.clone()),
            earlier: Vec::new(),
        },
    );
    relay.frames(alice);
    // Bob missed that commit while he was away (he never saw it, so he holds no yes for
    // it). Back later, one epoch behind, he is taken back and handed the commit and its
    // proof, to check and merge himself, rather than losing the room.
    let bob = relay.connect("bob");
    relay.reclaim(bob, 2);
    let members = vec!["alice".to_string(), "bob".to_string()];
    assert_eq!(
        relay.frames(bob),
        [
            ServerFrame::Reclaimed { room: "lobby".into(), members, epoch: 3 },
            ServerFrame::Commit {
                room: "lobby".into(),
                from: missed.from,
                commit: missed.commit,
                joiner: None
            },
            ServerFrame::CommitConfirmed { room: "lobby".into(), epoch: 3, votes: proof },
        ]
    );
}

#[test]
fn a_room_held_by_one_claim_alone_stays_open_to_the_members_coming_back_late() {
    // After a restart an outsider is back first and claims the room with a made-up group.
    let mut relay = Harness::new();
    let outsider = relay.connect("outsider");
    relay.send(
        outsider,
        ClientFrame::Reclaim {
            room: "lobby".into(),
            group_id: b"made up".to_vec(),
            epoch: 1,
            pledged: None,
            proof: Vec::new(),
            last_commit: None,
            earlier: Vec::new(),
        },
    );
    relay.frames(outsider);
    // The real members slept through more than a grace period. One claim alone is no
    // evidence of a room, so it still holds the name only until more members are back.
    relay.advance(GRACE_PERIOD * 3);
    let alice = relay.connect("alice");
    relay.reclaim(alice, 5);
    assert_eq!(
        relay.frames(alice),
        [ServerFrame::ReclaimPending { room: "lobby".into(), ours: 1, holders: 1 }]
    );
    let bob = relay.connect("bob");
    relay.reclaim(bob, 5);
    let members = vec!["alice".to_string(), "bob".to_string()];
    assert_eq!(
        relay.frames(bob),
        [ServerFrame::Reclaimed { room: "lobby".into(), members, epoch: 5 }]
    );
    assert_eq!(relay.frames(outsider), [refused(ReclaimRefusal::Outnumbered)]);
    // Held by two now: the window closes as any other, and a late claim of another group is
    // refused at once.
    relay.advance(GRACE_PERIOD * 2);
    let carol = relay.connect("carol");
    relay.send(
        carol,
        ClientFrame::Reclaim {
            room: "lobby".into(),
            group_id: b"other".to_vec(),
            epoch: 9,
            pledged: None,
            proof: Vec::new(),
            last_commit: None,
            earlier: Vec::new(),
        },
    );
    assert_eq!(relay.frames(carol), [refused(ReclaimRefusal::AnotherGroup)]);
}

#[test]
fn a_member_behind_comes_along_when_the_claim_ahead_wins_and_gets_the_commit_it_missed() {
    let proof = vec![SignedVote { from: "alice".into(), vote: vec![7] }];
    let missed = MergedCommit {
        from: "alice".into(),
        commit: build_private_message(GROUP, 2, CONTENT_TYPE_COMMIT, b"missed"),
        joiner: None,
    };
    let reclaim =
        |group_id: &[u8], epoch, proof: Vec<SignedVote>, last_commit| ClientFrame::Reclaim {
            room: "lobby".into(),
            group_id: group_id.to_vec(),
            epoch,
            pledged: None,
            proof,
            last_commit,
            earlier: Vec::new(),
        };
    // An outsider holds the name first; alice waits beside it at epoch 3 with the commit
    // that led there; bob, who never saw that commit, claims epoch 2.
    let mut relay = Harness::new();
    let outsider = relay.connect("outsider");
    relay.send(outsider, reclaim(b"made up", 1, Vec::new(), None));
    let alice = relay.connect("alice");
    relay.send(alice, reclaim(GROUP, 3, proof.clone(), Some(missed.clone())));
    relay.frames(alice);
    // Bob counts on alice's side (she brought what he lacks): two against one, the room is
    // theirs, and bob is handed the commit and its proof to check himself.
    let bob = relay.connect("bob");
    relay.send(bob, reclaim(GROUP, 2, Vec::new(), None));
    let members = vec!["alice".to_string(), "bob".to_string()];
    assert_eq!(
        relay.frames(bob),
        [
            ServerFrame::Reclaimed { room: "lobby".into(), members, epoch: 3 },
            ServerFrame::Commit {
                room: "lobby".into(),
                from: missed.from,
                commit: missed.commit,
                joiner: None
            },
            ServerFrame::CommitConfirmed { room: "lobby".into(), epoch: 3, votes: proof },
        ]
    );
    relay.frames(outsider);
}

#[test]
fn a_member_two_commits_behind_after_a_restart_gets_both_from_the_commits_members_brought() {
    let proof = |n: u8| vec![SignedVote { from: "alice".into(), vote: vec![n] }];
    let commit = |n: u8| MergedCommit {
        from: "alice".into(),
        commit: build_private_message(GROUP, u64::from(n) - 1, CONTENT_TYPE_COMMIT, &[n]),
        joiner: None,
    };
    // Alice is back first at epoch 3 with the commit that led there and the one before.
    let mut relay = Harness::new();
    let alice = relay.connect("alice");
    relay.send(
        alice,
        ClientFrame::Reclaim {
            room: "lobby".into(),
            group_id: GROUP.to_vec(),
            epoch: 3,
            pledged: None,
            proof: proof(3),
            last_commit: Some(commit(3)),
            earlier: vec![proto::ConfirmedCommit {
                reached: 2,
                commit: commit(2),
                votes: proof(2),
            }],
        },
    );
    relay.frames(alice);
    // Bob missed both while away: back at epoch 1, he is handed them in order.
    let bob = relay.connect("bob");
    relay.reclaim(bob, 1);
    let members = vec!["alice".to_string(), "bob".to_string()];
    let replayed = |n: u8| {
        let MergedCommit { from, commit, joiner } = commit(n);
        [
            ServerFrame::Commit { room: "lobby".into(), from, commit, joiner },
            ServerFrame::CommitConfirmed { room: "lobby".into(), epoch: n.into(), votes: proof(n) },
        ]
    };
    let mut expected = vec![ServerFrame::Reclaimed { room: "lobby".into(), members, epoch: 3 }];
    expected.extend(replayed(2));
    expected.extend(replayed(3));
    assert_eq!(relay.frames(bob), expected);
}

#[test]
fn a_claimant_refused_and_then_admitted_is_not_taken_out_by_its_old_claim() {
    // After a restart alice re-forms the room at epoch 3; a stale claim of epoch 1 waits.
    let mut relay = Harness::new();
    let alice = relay.connect("alice");
    relay.reclaim(alice, 3);
    let stale = relay.connect("stale");
    relay.reclaim(stale, 1);
    relay.frames(stale);
    // It gives up on its claim and joins as anyone does: admitted by alice, a member at 4.
    relay.send(stale, ClientFrame::Leave { room: "lobby".into() });
    relay.send(stale, join("lobby"));
    relay.admit(&[alice], stale, "stale", 3);
    relay.frames(stale);
    // Bob comes back at the room's epoch: nobody who is a member by now is refused as stale
    // for what it claimed before it joined.
    let bob = relay.connect("bob");
    relay.reclaim(bob, 4);
    assert!(
        !relay.frames(stale).contains(&refused(ReclaimRefusal::StaleEpoch)),
        "the member admitted since was taken out for its old claim"
    );
    let members = relay.state.rooms["lobby"].member_nicks();
    assert!(members.contains(&"stale".to_string()), "{members:?}");
}

#[test]
fn a_commit_brought_under_another_epoch_is_not_logged() {
    // A claimant files the commit of epoch 5 as the one that led to epoch 3: its header
    // says otherwise, so the relay keeps nothing of it for members behind.
    let mut relay = Harness::new();
    let liar = relay.connect("liar");
    relay.send(
        liar,
        ClientFrame::Reclaim {
            room: "lobby".into(),
            group_id: GROUP.to_vec(),
            epoch: 3,
            pledged: None,
            proof: vec![SignedVote { from: "liar".into(), vote: vec![7] }],
            last_commit: Some(MergedCommit {
                from: "liar".into(),
                commit: build_private_message(GROUP, 5, CONTENT_TYPE_COMMIT, b"later"),
                joiner: None,
            }),
            earlier: Vec::new(),
        },
    );
    relay.frames(liar);
    let bob = relay.connect("bob");
    relay.reclaim(bob, 2);
    let frames = relay.frames(bob);
    assert!(!frames.iter().any(|frame| matches!(frame, ServerFrame::Commit { .. })), "{frames:?}");
}

#[test]
fn chat_waiting_in_a_batch_goes_out_first_and_in_order() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob", "carol"]);
    let (alice, bob, carol) = (ids[0], ids[1], ids[2]);
    relay.state.batch_chat(true);
    let chat = |relay: &mut Harness, id| {
        relay.send(id, ClientFrame::Application { room: "lobby".into(), message: message(2) });
    };
    chat(&mut relay, alice);
    chat(&mut relay, alice);
    assert!(relay.frames(bob).is_empty(), "a burst waits in its batch");
    // Another sender's chat starts a batch of its own, after alice's.
    chat(&mut relay, carol);
    chat(&mut relay, alice);
    // Whatever is not chat goes after the chat relayed before it.
    relay.send(carol, ClientFrame::Leave { room: "lobby".into() });
    relay.state.batch_chat(false);
    let senders: Vec<String> = relay
        .frames(bob)
        .into_iter()
        .map(|frame| match frame {
            ServerFrame::Application { from, .. } => from,
            other => format!("{other:?}").split_whitespace().next().unwrap_or_default().to_owned(),
        })
        .collect();
    assert_eq!(senders[..4], ["alice", "alice", "carol", "alice"]);
    assert!(senders.len() > 4 && senders[4..].iter().all(|name| name != "alice"), "{senders:?}");
    let carol_heard = relay.frames(carol);
    assert_eq!(
        carol_heard.iter().filter(|frame| matches!(frame, ServerFrame::Application { .. })).count(),
        3,
        "carol heard alice's three before she left: {carol_heard:?}"
    );
}

/// A `Join` of `room`, with the joiner's half of a password exchange (opaque to the relay).
fn join(room: &str) -> ClientFrame {
    ClientFrame::Join { room: room.into(), pake_message: vec![1] }
}

#[test]
fn a_join_brings_the_leader_the_joiners_half_of_the_exchange_at_once() {
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let carol = relay.connect("carol");
    relay.send(carol, ClientFrame::Join { room: "lobby".into(), pake_message: vec![7; 32] });
    assert_eq!(
        relay.frames(carol),
        [ServerFrame::JoinPending { room: "lobby".into(), leader: "alice".into() }]
    );
    let attempt = relay.attempt("carol");
    assert_eq!(
        relay.frames(ids[0]),
        [ServerFrame::AdmissionRequest {
            room: "lobby".into(),
            joiner: "carol".into(),
            attempt,
            pake_message: vec![7; 32],
        }]
    );
    // Founding a room, the exchange goes nowhere.
    let dave = relay.connect("dave");
    relay.send(dave, ClientFrame::Join { room: "new".into(), pake_message: vec![7; 32] });
    assert_eq!(relay.frames(dave), [ServerFrame::RoomCreated { room: "new".into() }]);
}

#[test]
fn a_commit_for_an_attempt_finished_an_epoch_earlier_still_goes_to_the_vote() {
    // The leader said yes to its commit adding carol's first attempt, whose vote was aborted;
    // an epoch later (another commit was confirmed meanwhile) it sends that same commit again
    // while carol starts over. The relay must take it, or the leader, pledged to it, is stuck.
    let mut relay = Harness::new();
    let ids = relay.room(&["alice", "bob"]);
    let (alice, bob) = (ids[0], ids[1]);
    let carol = relay.connect("carol");
    relay.send(carol, join("lobby"));
    let first = relay.attempt("carol");
    let reply = ClientFrame::AdmissionReply {
        room: "lobby".into(),
        joiner: "carol".into(),
        attempt: first,
        pake_message: vec![2],
        suite: crate::mls::RoomSuite::Classic.id(),
    };
    relay.send(alice, reply);
    let finish = ClientFrame::AdmissionFinish {
        room: "lobby".into(),
        confirmation: vec![3],
        sealed_key_package: vec![4],
    };
    relay.send(carol, finish);
    relay.commit(alice, 1, None);
    relay.vote(bob, 1, true);
    relay.send(carol, ClientFrame::Leave { room: "lobby".into() });
    relay.send(carol, join("lobby"));
    relay.frames(alice);
    relay.frames(bob);
    let commit = build_private_message(GROUP, 2, CONTENT_TYPE_COMMIT, b"commit again");
    let adds = Some(Addition { to: "carol".into(), attempt: first });
    relay.send(alice, ClientFrame::Commit { room: "lobby".into(), commit, adds, electorate: 2 });
    assert!(
        relay
            .frames(alice)
            .iter()
            .all(|frame| !matches!(frame, ServerFrame::CommitRejected { .. })),
        "the commit was taken"
    );
    assert!(relay.frames(bob).iter().any(|frame| matches!(frame, ServerFrame::Commit { .. })));
}

#[test]
fn a_no_a_kept_pledge_made_takes_nobody_out_and_a_commit_it_would_block_waits() {
    let claim = |pledged| reclaim_at(4, pledged);
    let removed = |frames: Vec<ServerFrame>| {
        frames.iter().any(|frame| matches!(frame, ServerFrame::Removed { .. }))
    };
    // After a restart alice is back first and leads; bob and carol still say yes to another
    // commit of epoch 4, which alice never saw.
    let mut relay = Harness::new();
    let ids: Vec<SessionId> =
        ["alice", "bob", "carol"].iter().map(|nick| relay.connect(nick)).collect();
    relay.send(ids[0], claim(None));
    relay.send(ids[1], claim(Some([9; 32])));
    relay.send(ids[2], claim(Some([9; 32])));
    for id in &ids {
        relay.frames(*id);
    }
    // Alice's own commit cannot win while they keep that yes: it is not put to the vote.
    relay.commit(ids[0], 4, None);
    assert!(matches!(
        &relay.frames(ids[0])[..],
        [ServerFrame::CommitRejected { reason: CommitRejection::TooManyAway, .. }]
    ));
    assert!(relay.frames(ids[1]).is_empty());
    // Carol lets hers go and says yes to the next: it goes to the vote; bob's no, made by his
    // pledge, does not take him out, and the commit is confirmed on the others' yes.
    relay.state.rooms.get_mut("lobby").unwrap().kept_pledges.forget(ids[2]);
    relay.commit(ids[0], 4, None);
    relay.vote(ids[0], 4, true);
    relay.vote(ids[1], 4, false);
    relay.vote(ids[2], 4, true);
    assert_eq!(relay.state.rooms["lobby"].epoch, 5);
    assert!(!removed(relay.frames(ids[1])), "bob stays, to merge it on its proof");
    // At the next epoch bob's pledge excuses nothing: refusing what the others confirm, he
    // is an objector again.
    relay.commit(ids[0], 5, None);
    relay.vote(ids[0], 5, true);
    relay.vote(ids[1], 5, false);
    relay.vote(ids[2], 5, true);
    assert!(removed(relay.frames(ids[1])));
}

#[test]
fn a_majority_of_noes_made_by_kept_pledges_does_not_take_the_committer_out() {
    let claim = |pledged| reclaim_at(4, pledged);
    let mut relay = Harness::new();
    let ids: Vec<SessionId> =
        ["alice", "bob", "carol"].iter().map(|nick| relay.connect(nick)).collect();
    relay.send(ids[0], claim(None));
    relay.send(ids[1], claim(Some([9; 32])));
    relay.send(ids[2], claim(None));
    relay.commit(ids[0], 4, None);
    relay.vote(ids[0], 4, true);
    relay.vote(ids[1], 4, false);
    relay.vote(ids[2], 4, false);
    let frames = relay.frames(ids[0]);
    assert!(frames.iter().any(|frame| matches!(frame, ServerFrame::CommitAborted { .. })));
    assert!(
        !frames.iter().any(|frame| matches!(frame, ServerFrame::Removed { .. })),
        "one honest no and one made by a pledge are not the room refusing alice: {frames:?}"
    );
    // Once bob's pledge is let go, the same refusal takes her out.
    relay.advance(super::pledges::PLEDGE_KEPT_FOR);
    relay.commit(ids[0], 4, None);
    relay.vote(ids[0], 4, true);
    relay.vote(ids[1], 4, false);
    relay.vote(ids[2], 4, false);
    let frames = relay.frames(ids[0]);
    assert!(frames.iter().any(|frame| matches!(frame, ServerFrame::Removed { .. })), "{frames:?}");
}

#[test]
fn a_member_back_while_a_commit_of_its_epoch_is_voted_on_is_taken_back_and_sent_it() {
    let claim = reclaim_at(4, None);
    let mut relay = Harness::new();
    let ids: Vec<SessionId> =
        ["alice", "bob", "carol"].iter().map(|nick| relay.connect(nick)).collect();
    relay.send(ids[0], claim.clone());
    relay.send(ids[1], claim.clone());
    relay.commit(ids[0], 4, None);
    // Carol is back mid-vote: the room is hers as it was, and the commit comes to her to
    // check, as it would to an away member; she merges it on the confirmation.
    relay.send(ids[2], claim);
    let frames = relay.frames(ids[2]);
    assert!(
        matches!(&frames[..], [ServerFrame::Reclaimed { .. }, ServerFrame::Commit { .. }]),
        "{frames:?}"
    );
    relay.vote(ids[0], 4, true);
    relay.vote(ids[1], 4, true);
    assert_eq!(relay.frames(ids[2]), [confirmed(5, &["alice", "bob"])]);
}

/// A `Reclaim` of `lobby` in `GROUP` at `epoch`, naming the commit it still says yes to.
fn reclaim_at(epoch: u64, pledged: Option<[u8; 32]>) -> ClientFrame {
    ClientFrame::Reclaim {
        room: "lobby".into(),
        group_id: GROUP.to_vec(),
        epoch,
        pledged,
        proof: Vec::new(),
        last_commit: None,
        earlier: Vec::new(),
    }
}
