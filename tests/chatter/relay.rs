//! The relay and its wire protocol, driven by frame-level clients over real sockets.

use std::time::Duration;

use chatter::client::{ClientError, RawClient};
use chatter::mls_header::build_private_message;
use chatter::proto::{
    Addition, AdmissionRefusal, ClientFrame, CommitRejection, DisconnectReason, ErrorReason,
    RemovalReason, RoomSummary, ServerFrame, SignedVote, Welcome, commit_hash,
};
use chatter::relay::RateLimit;
use chatter::secret::Secret;
use tokio::io::AsyncWriteExt;

use crate::support::{self, APPLICATION, COMMIT, expect_frame, next_frame};

pub(crate) const GROUP: &[u8] = b"group-1";

/// Runs the admission message flow with opaque bytes (the relay cannot tell), has the leader
/// (`members[0]`, named `nicks[0]`) commit the add at `epoch`, as a real leader would after
/// checking the password, and every member vote for it: since protocol 5 the relay sends the
/// commit back to its committer too, who signs its own yes first.
async fn admit(
    members: &mut [RawClient],
    nicks: &[&str],
    joiner: &mut RawClient,
    joiner_nick: &str,
    room: &str,
    epoch: u64,
) {
    let (leader, voters) = members.split_first_mut().unwrap();
    joiner.send(&ClientFrame::Join { room: room.into(), pake_message: vec![1; 32] }).await.unwrap();
    assert!(matches!(next_frame(joiner).await, ServerFrame::JoinPending { .. }));
    let request = expect_frame(leader, |f| matches!(f, ServerFrame::AdmissionRequest { .. })).await;
    let ServerFrame::AdmissionRequest { joiner: asked, attempt, .. } = request else {
        unreachable!()
    };
    assert_eq!(asked, joiner_nick);
    leader
        .send(&ClientFrame::AdmissionReply {
            room: room.into(),
            joiner: asked,
            attempt,
            pake_message: vec![2; 32],
            suite: chatter::mls::RoomSuite::Classic.id(),
        })
        .await
        .unwrap();
    assert!(matches!(next_frame(joiner).await, ServerFrame::AdmissionReply { .. }));
    joiner
        .send(&ClientFrame::AdmissionFinish {
            room: room.into(),
            confirmation: vec![3; 32],
            sealed_key_package: vec![4; 200],
        })
        .await
        .unwrap();
    expect_frame(leader, |f| matches!(f, ServerFrame::AdmissionFinish { .. })).await;
    let commit = build_private_message(GROUP, epoch, COMMIT, b"add");
    leader
        .send(&ClientFrame::Commit {
            room: room.into(),
            commit,
            adds: Some(Addition { to: joiner_nick.into(), attempt }),
            electorate: u32::try_from(voters.len() + 1).unwrap(),
        })
        .await
        .unwrap();
    for voter in std::iter::once(&mut *leader).chain(voters.iter_mut()) {
        let commit = expect_frame(voter, |f| matches!(f, ServerFrame::Commit { .. })).await;
        assert!(
            matches!(&commit, ServerFrame::Commit { joiner: Some(named), .. } if named == joiner_nick),
            "{commit:?}"
        );
        vote(voter, room, epoch, true).await;
    }
    let confirmed =
        expect_frame(leader, |f| matches!(f, ServerFrame::CommitConfirmed { .. })).await;
    // A majority decides: the confirmation carries the first votes that made it one (in the
    // order they reached the relay: through several relays, the cluster's order).
    let majority = nicks.len() / 2 + 1;
    let ServerFrame::CommitConfirmed { room: confirmed_room, epoch: confirmed_epoch, votes } =
        confirmed
    else {
        panic!("expected the confirmation")
    };
    assert_eq!((confirmed_room.as_str(), confirmed_epoch), (room, epoch + 1));
    assert_eq!(votes.len(), majority, "{votes:?}");
    assert!(
        votes.iter().all(|vote| nicks.contains(&vote.from.as_str()) && vote.vote == [1]),
        "{votes:?}"
    );
    let mut voters: Vec<&str> = votes.iter().map(|vote| vote.from.as_str()).collect();
    voters.dedup();
    assert_eq!(voters.len(), majority, "one vote each");
    if voters.len() == 1 {
        assert_eq!(votes, signed_votes([(nicks[0], true)]));
    }
    // The leader merged it: now, and only now, it sends the joiner's Welcome.
    let welcome = Welcome { to: joiner_nick.into(), attempt, message: b"welcome".to_vec() };
    leader.send(&ClientFrame::Welcome { room: room.into(), welcome }).await.unwrap();
    let ServerFrame::Welcome { message, members, .. } = next_frame(joiner).await else {
        panic!("expected the welcome")
    };
    assert_eq!(message, b"welcome");
    assert_eq!(members.last().map(String::as_str), Some(joiner_nick));
}

/// A member's verdict. The signed vote is opaque to the relay, which only carries it back
/// with the verdict: here one byte, the verdict, as the relay's unit tests do.
pub(crate) async fn vote(voter: &mut RawClient, room: &str, epoch: u64, accept: bool) {
    let vote = vec![u8::from(accept)];
    voter.send(&ClientFrame::CommitVote { room: room.into(), epoch, accept, vote }).await.unwrap();
}

/// The signed votes a confirmation or an abort carries, in the order they were cast.
fn signed_votes<'a>(votes: impl IntoIterator<Item = (&'a str, bool)>) -> Vec<SignedVote> {
    votes
        .into_iter()
        .map(|(from, accept)| SignedVote { from: from.into(), vote: vec![u8::from(accept)] })
        .collect()
}

/// A room of `nicks.len()` members, the first its creator, all at epoch `nicks.len() - 1`.
pub(crate) async fn room_of(
    relay: &support::TestRelay,
    room: &str,
    nicks: &[&str],
) -> Vec<RawClient> {
    room_across(&[relay], room, nicks).await
}

/// The same, with member `n` on relay `n % relays.len()` (relays that share rooms).
pub(crate) async fn room_across(
    relays: &[&support::TestRelay],
    room: &str,
    nicks: &[&str],
) -> Vec<RawClient> {
    let mut clients = Vec::new();
    for (index, nick) in nicks.iter().enumerate() {
        let mut client = support::raw_client(relays[index % relays.len()], nick).await;
        if index == 0 {
            client
                .send(&ClientFrame::Join { room: room.into(), pake_message: vec![1; 32] })
                .await
                .unwrap();
            assert_eq!(
                next_frame(&mut client).await,
                ServerFrame::RoomCreated { room: room.into() }
            );
        } else {
            admit(&mut clients, &nicks[..index], &mut client, nick, room, index as u64 - 1).await;
        }
        clients.push(client);
    }
    // Drain the joined notices so each test starts from a quiet room.
    for client in &mut clients {
        client.send(&ClientFrame::Ping).await.unwrap();
        expect_frame(client, |f| *f == ServerFrame::Pong).await;
    }
    clients
}

#[tokio::test]
async fn handshake_with_the_right_code_registers_and_the_wrong_code_is_named() {
    let relay = support::start_relay().await;
    support::raw_client(&relay, "alice").await;
    let wrong = RawClient::connect(&relay.addr(), &Secret::from("guess")).await;
    let error = wrong.expect_err("a wrong code must not connect");
    assert!(matches!(error, ClientError::WrongAccessCode), "{error:?}");
    assert_eq!(error.to_string(), "wrong access code");
}

#[tokio::test]
async fn nicknames_are_unique_and_checked() {
    let relay = support::start_relay().await;
    let _alice = support::raw_client(&relay, "alice").await;
    let mut second =
        RawClient::connect(&relay.addr(), &Secret::from(support::ACCESS_CODE)).await.unwrap();
    let taken = second.register("alice").await.expect_err("taken");
    assert_eq!(taken.to_string(), "nickname \"alice\" is taken");
    for bad in ["", "two words", "bell\x07", &"x".repeat(33)] {
        let error = second.register(bad).await.expect_err("invalid");
        assert!(matches!(error, ClientError::NickInvalid(..)), "{bad:?}: {error:?}");
    }
    // The connection survives the refusals and can still register.
    second.register("alice2").await.unwrap();
    // Before registering, nothing else is allowed.
    let mut third =
        RawClient::connect(&relay.addr(), &Secret::from(support::ACCESS_CODE)).await.unwrap();
    third
        .send(&ClientFrame::Join { room: "lobby".into(), pake_message: vec![1; 32] })
        .await
        .unwrap();
    assert_eq!(
        next_frame(&mut third).await,
        ServerFrame::Error { request: 1, reason: ErrorReason::NotRegistered }
    );
}

#[tokio::test]
async fn every_error_names_the_request_that_caused_it() {
    let relay = support::start_relay().await;
    let mut alice =
        RawClient::connect(&relay.addr(), &Secret::from(support::ACCESS_CODE)).await.unwrap();
    let numbers = alice.register("alice").await.unwrap();
    // Acknowledgements are not numbered; every other frame is, from `Register` on.
    alice.send(&ClientFrame::Ack { received: 1 }).await.unwrap();
    assert_eq!(next_frame(&mut alice).await, ServerFrame::Ack { received: 1 });
    alice
        .send(&ClientFrame::Join { room: "no spaces".into(), pake_message: vec![1; 32] })
        .await
        .unwrap();
    assert_eq!(
        next_frame(&mut alice).await,
        ServerFrame::Error { request: 2, reason: ErrorReason::RoomNameInvalid }
    );
    // A `Resume` is out of place after the first frame: it is a request like any other.
    let token = numbers.token().clone();
    alice.send(&ClientFrame::Resume { token, received: 1 }).await.unwrap();
    assert_eq!(
        next_frame(&mut alice).await,
        ServerFrame::Error { request: 3, reason: ErrorReason::ResumeNotFirst }
    );
}

#[tokio::test]
async fn rooms_are_created_joined_listed_and_handed_on() {
    let relay = support::start_relay().await;
    let mut clients = room_of(&relay, "lobby", &["alice", "bob", "carol"]).await;
    let mut dave = support::raw_client(&relay, "dave").await;
    dave.send(&ClientFrame::ListRooms).await.unwrap();
    assert_eq!(
        next_frame(&mut dave).await,
        ServerFrame::RoomList { rooms: vec![RoomSummary { name: "lobby".into(), members: 3 }] }
    );
    clients[1].send(&ClientFrame::ListMembers { room: "lobby".into() }).await.unwrap();
    assert_eq!(
        next_frame(&mut clients[1]).await,
        ServerFrame::MemberList {
            room: "lobby".into(),
            members: vec!["alice".into(), "bob".into(), "carol".into()]
        }
    );
    // A non-member may not list members. (Dave's third frame: `Register`, `ListRooms`, this.)
    dave.send(&ClientFrame::ListMembers { room: "lobby".into() }).await.unwrap();
    let not_in_room = ServerFrame::Error { request: 3, reason: ErrorReason::NotInRoom };
    assert_eq!(next_frame(&mut dave).await, not_in_room);

    // The leader leaves: the next longest-present member leads and is told so.
    clients[0].send(&ClientFrame::Leave { room: "lobby".into() }).await.unwrap();
    assert_eq!(next_frame(&mut clients[0]).await, ServerFrame::Left { room: "lobby".into() });
    for client in &mut clients[1..] {
        let notice = next_frame(client).await;
        assert_eq!(
            notice,
            ServerFrame::MemberLeft {
                room: "lobby".into(),
                nick: "alice".into(),
                leader: "bob".into(),
                epoch: 2
            }
        );
    }
    // Joiners now go to bob.
    dave.send(&ClientFrame::Join { room: "lobby".into(), pake_message: vec![1; 32] })
        .await
        .unwrap();
    assert_eq!(
        next_frame(&mut dave).await,
        ServerFrame::JoinPending { room: "lobby".into(), leader: "bob".into() }
    );

    // When everyone leaves, the room is forgotten.
    for client in clients.iter_mut().chain([&mut dave]) {
        client.send(&ClientFrame::Quit).await.unwrap();
    }
    assert!(support::eventually(|| relay.relay.stats().rooms == 0).await);
    assert_eq!(relay.relay.stats(), Default::default());
}

#[tokio::test]
async fn application_messages_reach_everyone_but_the_sender_in_order() {
    let relay = support::start_relay().await;
    let mut clients = room_of(&relay, "lobby", &["alice", "bob", "carol", "dave"]).await;
    let messages: Vec<Vec<u8>> =
        (0..50u8).map(|n| build_private_message(GROUP, 3, APPLICATION, &[n; 100])).collect();
    for message in &messages {
        clients[1]
            .send(&ClientFrame::Application { room: "lobby".into(), message: message.clone() })
            .await
            .unwrap();
    }
    for index in [0, 2, 3] {
        for message in &messages {
            let frame = next_frame(&mut clients[index]).await;
            assert_eq!(
                frame,
                ServerFrame::Application {
                    room: "lobby".into(),
                    from: "bob".into(),
                    message: message.clone()
                }
            );
        }
    }
    // The sender got none of its own: the next thing it hears is the answer to a ping.
    clients[1].send(&ClientFrame::Ping).await.unwrap();
    assert_eq!(next_frame(&mut clients[1]).await, ServerFrame::Pong);
    // Plaintext pretending to be a message is refused.
    clients[1]
        .send(&ClientFrame::Application {
            room: "lobby".into(),
            message: b"hello in clear".to_vec(),
        })
        .await
        .unwrap();
    let refused = next_frame(&mut clients[1]).await;
    assert!(
        matches!(refused, ServerFrame::Error { reason: ErrorReason::NotMls, .. }),
        "{refused:?}"
    );
}

#[tokio::test]
async fn only_the_leader_commits_and_one_commit_at_a_time() {
    let relay = support::start_relay().await;
    let mut clients = room_of(&relay, "lobby", &["alice", "bob", "carol"]).await;
    let commit = |text: &[u8]| ClientFrame::Commit {
        room: "lobby".into(),
        commit: build_private_message(GROUP, 2, COMMIT, text),
        adds: None,
        electorate: 3,
    };
    clients[1].send(&commit(b"from bob")).await.unwrap();
    assert_eq!(
        next_frame(&mut clients[1]).await,
        ServerFrame::CommitRejected {
            room: "lobby".into(),
            commit: commit_hash(&build_private_message(GROUP, 2, COMMIT, b"from bob")),
            reason: CommitRejection::NotLeader
        }
    );
    clients[0].send(&commit(b"first")).await.unwrap();
    clients[0].send(&commit(b"second")).await.unwrap();
    // Everyone gets the first commit only, alice too (protocol 5: the committer votes on
    // its own commit once the relay took it, so her yes is no longer implied), and nothing
    // is applied until more than half of the three voted yes. Alice's second is refused.
    let first = build_private_message(GROUP, 2, COMMIT, b"first");
    for voter in &mut clients {
        let frame = next_frame(voter).await;
        assert!(
            matches!(&frame, ServerFrame::Commit { from, joiner: None, commit, .. }
                if from == "alice" && *commit == first),
            "{frame:?}"
        );
    }
    assert_eq!(
        next_frame(&mut clients[0]).await,
        ServerFrame::CommitRejected {
            room: "lobby".into(),
            commit: commit_hash(&build_private_message(GROUP, 2, COMMIT, b"second")),
            reason: CommitRejection::Busy
        }
    );
    vote(&mut clients[0], "lobby", 2, true).await;
    clients[0].send(&ClientFrame::Ping).await.unwrap();
    assert_eq!(next_frame(&mut clients[0]).await, ServerFrame::Pong, "not confirmed with one vote");
    // A vote about another epoch (a late one, or one about a made-up commit) counts for
    // nothing: had carol's "no" counted, the refusal would make it one yes against one no.
    vote(&mut clients[2], "lobby", 7, false).await;
    clients[0].send(&ClientFrame::Ping).await.unwrap();
    assert_eq!(next_frame(&mut clients[0]).await, ServerFrame::Pong, "one vote of three");
    // Bob's yes makes two of three: confirmed, without waiting for carol.
    vote(&mut clients[1], "lobby", 2, true).await;
    let votes = signed_votes([("alice", true), ("bob", true)]);
    for client in &mut clients {
        assert_eq!(
            next_frame(client).await,
            ServerFrame::CommitConfirmed { room: "lobby".into(), epoch: 3, votes: votes.clone() }
        );
    }
}

#[tokio::test]
async fn a_commit_the_room_refuses_is_aborted_and_its_committer_is_out() {
    let relay = support::start_relay().await;
    let mut clients = room_of(&relay, "lobby", &["mallory", "alice", "bob"]).await;
    let garbage = build_private_message(GROUP, 2, COMMIT, &[0x55; 300]);
    clients[0]
        .send(&ClientFrame::Commit {
            room: "lobby".into(),
            commit: garbage,
            adds: None,
            electorate: 3,
        })
        .await
        .unwrap();
    // Protocol 5: the commit comes back to mallory too, who says yes to her own; the room's
    // two others refuse it, a majority of the three.
    expect_frame(&mut clients[0], |f| matches!(f, ServerFrame::Commit { .. })).await;
    vote(&mut clients[0], "lobby", 2, true).await;
    for voter in &mut clients[1..] {
        expect_frame(voter, |f| matches!(f, ServerFrame::Commit { .. })).await;
        vote(voter, "lobby", 2, false).await;
    }
    assert_eq!(
        expect_frame(&mut clients[0], |f| matches!(f, ServerFrame::Removed { .. })).await,
        ServerFrame::Removed { room: "lobby".into(), reason: RemovalReason::KeyChangeRefused }
    );
    // The abort carries the signed no votes: the proof, for every member, that it is dead.
    let refusals = signed_votes([("alice", false), ("bob", false)]);
    for honest in &mut clients[1..] {
        assert_eq!(
            next_frame(honest).await,
            ServerFrame::CommitAborted { room: "lobby".into(), epoch: 2, votes: refusals.clone() }
        );
        assert_eq!(
            next_frame(honest).await,
            ServerFrame::MemberLeft {
                room: "lobby".into(),
                nick: "mallory".into(),
                leader: "alice".into(),
                epoch: 2
            }
        );
    }
    // The room's epoch did not move: alice, who leads now, commits at epoch 2, and she and
    // bob (the whole room now) vote for it.
    let commit = build_private_message(GROUP, 2, COMMIT, b"remove mallory");
    clients[1]
        .send(&ClientFrame::Commit { room: "lobby".into(), commit, adds: None, electorate: 2 })
        .await
        .unwrap();
    for voter in &mut clients[1..] {
        expect_frame(voter, |f| matches!(f, ServerFrame::Commit { .. })).await;
        vote(voter, "lobby", 2, true).await;
    }
    assert_eq!(
        next_frame(&mut clients[1]).await,
        ServerFrame::CommitConfirmed {
            room: "lobby".into(),
            epoch: 3,
            votes: signed_votes([("alice", true), ("bob", true)])
        }
    );
}

#[tokio::test]
async fn a_lone_objector_is_outvoted_and_taken_out() {
    let relay = support::start_relay().await;
    let mut clients = room_of(&relay, "lobby", &["alice", "bob", "carol", "mallory"]).await;
    let commit = build_private_message(GROUP, 3, COMMIT, b"honest");
    clients[0]
        .send(&ClientFrame::Commit { room: "lobby".into(), commit, adds: None, electorate: 4 })
        .await
        .unwrap();
    // Protocol 5: alice votes on her own commit too. Mallory refuses before the majority is
    // in, so she is an objector the confirmation overrules.
    for (index, accept) in [(0, true), (3, false), (1, true), (2, true)] {
        expect_frame(&mut clients[index], |f| matches!(f, ServerFrame::Commit { .. })).await;
        vote(&mut clients[index], "lobby", 3, accept).await;
    }
    assert_eq!(
        expect_frame(&mut clients[3], |f| matches!(f, ServerFrame::Removed { .. })).await,
        ServerFrame::Removed { room: "lobby".into(), reason: RemovalReason::OutVoted }
    );
    for client in &mut clients[..3] {
        let left = next_frame(client).await;
        assert!(
            matches!(&left, ServerFrame::MemberLeft { nick, .. } if nick == "mallory"),
            "{left:?}"
        );
        // Confirmed with the three signed yes votes (more than half of four).
        let votes = signed_votes([("alice", true), ("bob", true), ("carol", true)]);
        assert_eq!(
            next_frame(client).await,
            ServerFrame::CommitConfirmed { room: "lobby".into(), epoch: 4, votes }
        );
    }
}

/// A member sends something broken; only its own connection closes, with a reason, and the
/// room carries on.
async fn only_the_offender_is_closed(
    mischief: impl AsyncFnOnce(&support::TestRelay) -> Option<DisconnectReason>,
) {
    let relay = support::start_relay().await;
    let mut clients = room_of(&relay, "lobby", &["alice", "bob"]).await;
    let reason = mischief(&relay).await;
    assert!(reason.is_some(), "the offender should be told why it was closed");
    let message = build_private_message(GROUP, 1, APPLICATION, b"still here");
    clients[0]
        .send(&ClientFrame::Application { room: "lobby".into(), message: message.clone() })
        .await
        .unwrap();
    assert_eq!(
        next_frame(&mut clients[1]).await,
        ServerFrame::Application { room: "lobby".into(), from: "alice".into(), message }
    );
}

async fn goodbye_reason(client: &mut RawClient) -> Option<DisconnectReason> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), client.recv()).await.ok()? {
            Ok(ServerFrame::Goodbye { reason }) => return Some(reason),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn malformed_frame_closes_only_that_connection() {
    only_the_offender_is_closed(async |relay| {
        let mut mallory = support::raw_client(relay, "mallory").await;
        mallory.writer.queue(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]).unwrap();
        mallory.writer.flush().await.unwrap();
        let reason = goodbye_reason(&mut mallory).await;
        assert_eq!(reason, Some(DisconnectReason::BadFrame));
        reason
    })
    .await;
}

#[tokio::test]
async fn oversized_frame_closes_only_that_connection() {
    only_the_offender_is_closed(async |relay| {
        let mut mallory = support::raw_client(relay, "mallory").await;
        // A length prefix claiming 4 GiB: refused from the header alone, nothing allocated.
        mallory.writer.get_mut().write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await.unwrap();
        let reason = goodbye_reason(&mut mallory).await;
        assert_eq!(reason, Some(DisconnectReason::FrameTooLarge));
        reason
    })
    .await;
}

#[tokio::test]
async fn truncated_frame_closes_only_that_connection() {
    only_the_offender_is_closed(async |relay| {
        let mut mallory = support::raw_client(relay, "mallory").await;
        let writer = mallory.writer.get_mut();
        writer.write_all(&[0, 0, 0, 100, 1, 2, 3]).await.unwrap();
        writer.shutdown().await.unwrap();
        let reason = goodbye_reason(&mut mallory).await;
        assert_eq!(reason, Some(DisconnectReason::BadFrame));
        reason
    })
    .await;
}

#[tokio::test]
async fn replayed_and_altered_frames_close_only_that_connection() {
    for mischief in [
        support::proxy::Mischief::Replay { index: 2 },
        support::proxy::Mischief::FlipByte { index: 2 },
    ] {
        only_the_offender_is_closed(async |relay| {
            // Frame 0 is the hello, 1 the sealed finish, 2 the sealed Register.
            let proxy = support::proxy::start(relay.address, mischief).await;
            let mut mallory =
                RawClient::connect(&proxy.to_string(), &Secret::from(support::ACCESS_CODE))
                    .await
                    .unwrap();
            mallory.send(&ClientFrame::Register { nick: "mallory".into() }).await.unwrap();
            let reason = goodbye_reason(&mut mallory).await;
            assert_eq!(reason, Some(DisconnectReason::BadFrame), "{mischief:?}");
            reason
        })
        .await;
    }
}

#[tokio::test]
async fn a_stalled_reader_is_cut_off_without_slowing_the_room() {
    let mut config = support::test_config();
    config.queue_limits.frames_per_session = 64;
    // Alice sends far faster than a person types; this test is about the reader.
    config.rate_limit = RateLimit { per_second: 1e9, burst: u32::MAX };
    let relay = support::start_relay_with(config).await;
    let mut clients = room_of(&relay, "lobby", &["alice", "bob", "stalled"]).await;
    let _stalled = clients.pop().unwrap(); // never read from again
    let message = build_private_message(GROUP, 2, APPLICATION, &[7; 1000]);
    let total = 20_000; // 20 MB: more than the queue plus any loopback socket buffers
    let (alice, bob) = clients.split_at_mut(1);
    let (alice, bob) = (&mut alice[0], &mut bob[0]);
    // Alice sends in batches that bob, an attentive reader, keeps up with (a rate-limited
    // sender); the stalled member falls behind by the whole stream.
    let mut received = 0;
    let mut saw_left = false;
    let batch = 32; // below the 64-frame queue: an attentive reader is never cut off
    let moving = async {
        for _ in 0..total / batch {
            for _ in 0..batch {
                let frame =
                    ClientFrame::Application { room: "lobby".into(), message: message.clone() };
                alice.send(&frame).await.unwrap();
            }
            let mut batch_received = 0;
            while batch_received < batch {
                match next_frame(bob).await {
                    ServerFrame::Application { .. } => batch_received += 1,
                    ServerFrame::MemberLeft { nick, .. } => {
                        assert_eq!(nick, "stalled");
                        saw_left = true;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            received += batch_received;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), moving).await.expect("the room kept moving");
    assert!(saw_left, "the stalled reader was cut off and the room told");
    assert_eq!(received, total);
    assert_eq!(relay.relay.stats().sessions, 2);
}

#[tokio::test]
async fn three_wrong_room_passwords_ban_the_nickname_from_the_room() {
    let relay = support::start_relay().await;
    let mut clients = room_of(&relay, "lobby", &["alice"]).await;
    let mut mallory = support::raw_client(&relay, "mallory").await;
    for attempt in 1..=3 {
        mallory
            .send(&ClientFrame::Join { room: "lobby".into(), pake_message: vec![1; 32] })
            .await
            .unwrap();
        assert!(matches!(next_frame(&mut mallory).await, ServerFrame::JoinPending { .. }));
        let joiner_attempt = support::admission_attempt(&mut clients[0]).await;
        clients[0]
            .send(&ClientFrame::AdmissionRefused {
                room: "lobby".into(),
                joiner: "mallory".into(),
                attempt: joiner_attempt,
                reason: AdmissionRefusal::WrongPassword,
            })
            .await
            .unwrap();
        let expected =
            if attempt < 3 { AdmissionRefusal::WrongPassword } else { AdmissionRefusal::Banned };
        assert_eq!(
            next_frame(&mut mallory).await,
            ServerFrame::AdmissionRefused { room: "lobby".into(), reason: expected }
        );
    }
    mallory
        .send(&ClientFrame::Join { room: "lobby".into(), pake_message: vec![1; 32] })
        .await
        .unwrap();
    let refused = next_frame(&mut mallory).await;
    assert!(
        matches!(refused, ServerFrame::Error { reason: ErrorReason::BannedFromRoom, .. }),
        "{refused:?}"
    );
    // Another room is still open to mallory.
    mallory
        .send(&ClientFrame::Join { room: "elsewhere".into(), pake_message: vec![1; 32] })
        .await
        .unwrap();
    assert_eq!(
        next_frame(&mut mallory).await,
        ServerFrame::RoomCreated { room: "elsewhere".into() }
    );
}

#[tokio::test]
async fn quit_leaves_no_trace_and_the_nick_is_free_again() {
    let relay = support::start_relay().await;
    let mut clients = room_of(&relay, "lobby", &["alice", "bob"]).await;
    clients[1].send(&ClientFrame::Quit).await.unwrap();
    assert_eq!(goodbye_reason(&mut clients[1]).await, Some(DisconnectReason::Quit));
    assert_eq!(
        next_frame(&mut clients[0]).await,
        ServerFrame::MemberLeft {
            room: "lobby".into(),
            nick: "bob".into(),
            leader: "alice".into(),
            epoch: 1
        }
    );
    let stats = relay.relay.stats();
    assert_eq!((stats.sessions, stats.nicknames, stats.room_memberships), (1, 1, 1));
    let _bob_again = support::raw_client(&relay, "bob").await;
}

#[tokio::test]
async fn shutdown_tells_every_client_why() {
    let relay = support::start_relay().await;
    let mut alice = support::raw_client(&relay, "alice").await;
    let mut bob = support::raw_client(&relay, "bob").await;
    relay.shutdown().await;
    for client in [&mut alice, &mut bob] {
        // First that it is restarting, so the client comes back on the short schedule.
        assert_eq!(next_frame(client).await, ServerFrame::Restarting);
        assert_eq!(goodbye_reason(client).await, Some(DisconnectReason::ServerShutdown));
    }
}
