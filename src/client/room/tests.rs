//! Unit tests of the sans-IO room: phase transitions and refusals, driven without sockets.
//! The relay's part (forwarding frames, confirming commits) is played by hand.

use std::time::Duration;

use super::reclaim::RECLAIM_HOLD_TICKS;
use super::*;
use crate::mls_header::{CONTENT_TYPE_APPLICATION, CONTENT_TYPE_COMMIT, build_private_message};

fn password() -> Secret {
    Secret::from("pw")
}

/// A member that created `lobby` and leads it.
fn founder(nick: &str) -> (MlsMember, Room) {
    let mls = MlsMember::new(nick).unwrap();
    let mut room = Room::new("lobby".into(), password());
    room.created(&mls, RoomSuite::Classic, &mut Outbox::default()).unwrap();
    (mls, room)
}

/// Alice founds the room and admits bob: each one's MLS member and room.
fn alice_and_bob() -> (MlsMember, Room, MlsMember, Room) {
    let (alice_mls, mut alice) = founder("alice");
    let bob_mls = MlsMember::new("bob").unwrap();
    let bob = admit((&alice_mls, &mut alice), &bob_mls, &mut []);
    (alice_mls, alice, bob_mls, bob)
}

/// Sends `room`'s `Join` and hears that `leader` leads: returns the password-exchange
/// message the `Join` carried to the leader.
fn start_admission(room: &mut Room, leader: &str) -> Vec<u8> {
    let ClientFrame::Join { pake_message, .. } = room.join_frame() else { panic!("join") };
    room.admission_pending(leader.into()).expect("the join was under way");
    pake_message
}

/// Runs a joiner through the whole admission with `leader`; returns the joiner's room. The
/// other `voters` vote on the commit as the relay would ask them to.
fn admit(
    leader: (&MlsMember, &mut Room),
    joiner_mls: &MlsMember,
    voters: &mut [&mut Room],
) -> Room {
    let (leader_mls, leader_room) = leader;
    let me = leader_mls.nick();
    let joiner = joiner_mls.nick();
    let mut room = Room::new("lobby".into(), password()).joining_as(joiner);
    let pake_message = start_admission(&mut room, me);
    let mut out = Outbox::default();
    leader_room.admission_request(me, joiner.into(), 1, &pake_message, &mut out);
    let Some(ClientFrame::AdmissionReply { pake_message, .. }) = out.frames.pop() else {
        panic!("reply")
    };
    let ClientFrame::AdmissionFinish { confirmation, sealed_key_package, .. } =
        room.admission_reply(joiner_mls, &pake_message, RoomSuite::Classic.id()).unwrap()
    else {
        panic!("finish")
    };
    leader_room.admission_finish(
        me,
        joiner.into(),
        1,
        &confirmation,
        &sealed_key_package,
        &mut out,
    );
    let Some(ClientFrame::Commit { commit, adds: Some(_), .. }) = out.frames.pop() else {
        panic!("commit: {:?}", out.events)
    };
    let mut own = Outbox::default();
    leader_room.incoming_commit(me, me, &commit, Some(joiner), &mut own);
    let mut votes = vec![signed(me, &own)];
    for voter in voters.iter_mut() {
        let mut vote = Outbox::default();
        voter.incoming_commit("voter", me, &commit, Some(joiner), &mut vote);
        assert!(
            matches!(vote.frames[..], [ClientFrame::CommitVote { accept: true, .. }]),
            "{:?}",
            vote.events
        );
        votes.push(signed("voter", &vote));
    }
    for voter in voters {
        voter.commit_confirmed("voter", &votes, &mut Outbox::default(), SystemTime::now());
    }
    leader_room.commit_confirmed(me, &votes, &mut out, SystemTime::now());
    let welcome = sent_welcome(&out);
    let mut members = leader_room.relay_members.clone();
    if !members.iter().any(|member| member == joiner) {
        members.push(joiner.into());
    }
    assert_eq!(room.welcomed(joiner_mls, &welcome.message, members).unwrap(), Welcomed::Joined);
    room
}

/// The Welcome a leader sent once it merged the commit that adds its joiner.
fn sent_welcome(out: &Outbox) -> Welcome {
    out.frames
        .iter()
        .find_map(|frame| match frame {
            ClientFrame::Welcome { welcome, .. } => Some(welcome.clone()),
            _ => None,
        })
        .expect("a welcome")
}

/// The relay's part for a leader alone in its group: its commit comes back, it votes, and
/// its own yes confirms it.
fn confirm_alone(leader: &mut Room, me: &str, commit: &[u8], joiner: Option<&str>) -> Outbox {
    let mut own = Outbox::default();
    leader.incoming_commit(me, me, commit, joiner, &mut own);
    let mut out = Outbox::default();
    leader.commit_confirmed(me, &[signed(me, &own)], &mut out, SystemTime::now());
    out
}

/// The signed vote in a `CommitVote` a room sent, as the relay carries it.
fn signed(from: &str, out: &Outbox) -> SignedVote {
    let vote = out
        .frames
        .iter()
        .find_map(|frame| match frame {
            ClientFrame::CommitVote { vote, .. } => Some(vote.clone()),
            _ => None,
        })
        .expect("a vote");
    SignedVote { from: from.into(), vote }
}

/// The relay's part of a vote: the commit goes to every member, the committer first; each
/// signs its verdict. Returns the signed votes, in the order cast.
fn vote_on(
    committer: (&str, &mut Room),
    voters: &mut [(&str, &mut Room)],
    commit: &[u8],
    joiner: Option<&str>,
) -> Vec<SignedVote> {
    let (me, leader) = committer;
    let mut own = Outbox::default();
    leader.incoming_commit(me, me, commit, joiner, &mut own);
    let mut votes = vec![signed(me, &own)];
    for (nick, voter) in voters.iter_mut() {
        let mut out = Outbox::default();
        voter.incoming_commit(nick, me, commit, joiner, &mut out);
        votes.push(signed(nick, &out));
    }
    votes
}

fn epoch(room: &Room) -> u64 {
    room.group().unwrap().epoch()
}

#[test]
fn a_welcome_is_accepted_only_after_our_own_admission() {
    let (alice_mls, mut alice) = founder("alice");
    let bob_mls = MlsMember::new("bob").unwrap();
    let mut stranger = founder("mallory").1;
    // A Welcome made for bob's key package, but bob never ran an admission.
    let key_package = bob_mls.key_package().unwrap();
    let welcome = stranger
        .group_mut_for_tests()
        .unwrap()
        .commit_add(&key_package, "bob")
        .unwrap()
        .welcome
        .unwrap();
    let mut bob = Room::new("lobby".into(), password());
    assert!(matches!(
        bob.welcomed(&bob_mls, &welcome, vec!["mallory".into(), "bob".into()]),
        Err(RoomError::OutOfTurn(_))
    ));
    // Nor may a member be moved by one.
    assert!(matches!(alice.welcomed(&alice_mls, &welcome, vec![]), Err(RoomError::OutOfTurn(_))));
    assert!(alice.is_member());
}

#[test]
fn a_garbage_commit_gets_a_no_vote_and_changes_nothing() {
    let (_, _, _, mut bob) = alice_and_bob();
    let group_id = bob.group().unwrap().group_id();
    let before = epoch(&bob);
    let garbage = build_private_message(&group_id, before, CONTENT_TYPE_COMMIT, &[0x55; 300]);
    let mut out = Outbox::default();
    bob.incoming_commit("bob", "alice", &garbage, None, &mut out);
    assert!(matches!(
        &out.frames[..],
        [ClientFrame::CommitVote { epoch, accept: false, .. }] if *epoch == before
    ));
    assert!(
        matches!(&out.events[..], [Event::Warning { text, .. }] if text.contains("refused a key change"))
    );
    assert!(!bob.group().unwrap().has_staged_commit());
    assert_eq!(epoch(&bob), before);
    // A confirmation the relay might then send (it should not) makes bob merge nothing and
    // start nothing: no leave, no password exchange; he is told.
    let mut out = Outbox::default();
    bob.commit_confirmed("bob", &[], &mut out, SystemTime::now());
    assert!(out.frames.is_empty(), "{:?}", out.frames);
    assert!(matches!(
        &out.events[..],
        [Event::Room { notice: RoomNotice::UnexpectedConfirmation, .. }]
    ));
    assert!(bob.is_member());
    assert_eq!(epoch(&bob), before);
}

#[test]
fn a_message_from_a_future_epoch_is_reported_and_starts_nothing() {
    let (_, _, _, mut bob) = alice_and_bob();
    let group_id = bob.group().unwrap().group_id();
    let ahead = build_private_message(
        &group_id,
        epoch(&bob) + 1,
        CONTENT_TYPE_APPLICATION,
        &[0, 1, 7, 1, 7],
    );
    let mut out = Outbox::default();
    bob.incoming_message("alice", &ahead, SystemTime::now(), &mut out);
    assert!(out.frames.is_empty(), "no repair, no key package: {:?}", out.frames);
    assert!(matches!(&out.events[..], [Event::Warning { text, .. }] if text.contains("not seen")));
}

#[test]
fn a_commit_is_merged_on_confirmation_and_dropped_on_abort() {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    let carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    assert_eq!(epoch(&bob), epoch(&alice));
    assert_eq!(epoch(&carol), epoch(&alice));
    // Carol leaves; alice owes her removal and commits it as soon as she hears.
    let mut out = Outbox::default();
    alice.member_left("alice", "carol", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, adds: None, .. }) = out.frames.pop() else {
        panic!("alice commits the removal")
    };
    bob.member_left("bob", "carol", "alice".into(), &mut out);
    let votes = vote_on(("alice", &mut alice), &mut [("bob", &mut bob)], &commit, None);
    // Aborted by the relay without proof (no signed no votes): nobody merges, both keep it,
    // and the leader sends the very same commit again, never another.
    let before = epoch(&bob);
    let mut aborted = Outbox::default();
    bob.commit_aborted("bob", &[], &mut aborted);
    let mut again = Outbox::default();
    alice.commit_aborted("alice", &[], &mut again);
    assert_eq!((epoch(&bob), epoch(&alice)), (before, before));
    assert!(aborted.events.iter().chain(&again.events).all(|event| matches!(
        event,
        Event::Room { notice: RoomNotice::CommitAborted { refuted: false, .. }, .. }
    )));
    assert_eq!(aborted.events.len() + again.events.len(), 2);
    // Not at once (a room that cannot decide is not flooded): at the next tick.
    assert!(again.frames.is_empty(), "{:?}", again.frames);
    alice.tick("alice", &mut again);
    assert!(
        matches!(&again.frames[..], [ClientFrame::Commit { commit: resent, .. }] if *resent == commit)
    );
    // The same commit put to the vote again: the same answers; now confirmed with the votes.
    let votes_again = vote_on(("alice", &mut alice), &mut [("bob", &mut bob)], &commit, None);
    assert_eq!(votes_again.len(), votes.len());
    let mut vote = Outbox::default();
    bob.commit_confirmed("bob", &votes_again, &mut vote, SystemTime::now());
    alice.commit_confirmed("alice", &votes_again, &mut out, SystemTime::now());
    assert_eq!(epoch(&bob), before + 1);
    assert_eq!(epoch(&alice), before + 1);
    assert!(vote.events.iter().any(|e| matches!(e, Event::Left { nick, .. } if nick == "carol")));
}

#[test]
fn a_commit_from_anyone_but_the_leader_is_refused() {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    let mut carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    // Bob, not the leader, removes alice: carol refuses.
    let commit = bob.group_mut_for_tests().unwrap().commit_remove(&["alice"]).unwrap();
    let mut out = Outbox::default();
    carol.incoming_commit("carol", "bob", &commit.commit, None, &mut out);
    assert!(matches!(out.frames[..], [ClientFrame::CommitVote { accept: false, .. }]));
    assert!(
        matches!(&out.events[..], [Event::Warning { text, .. }] if text.contains("not the room's leader"))
    );
}

#[test]
fn removed_members_rejoin_only_the_group_they_left() {
    let (_, _, _, mut bob) = alice_and_bob();
    let mut out = Outbox::default();
    // Taken out by the relay: bob asks for his place back as he was, never a password
    // exchange of his own accord.
    let frame = bob.removed(RemovalReason::NoVote, &mut out);
    assert!(matches!(frame, Some(ClientFrame::Reclaim { .. })), "{frame:?}");
    assert!(bob.admission_pending("alice".into()).is_err());
    // Refused: out of the room until the user joins again.
    let refused = ServerFrame::ReclaimRefused {
        room: "lobby".into(),
        reason: crate::proto::ReclaimRefusal::TakenOut,
    };
    bob.on_member_frame("bob", refused, SystemTime::now(), &mut out);
    assert!(bob.is_gone());
    // The user joins again: the departed group is not remembered here, so play it as the
    // engine's rejoin does, through `restart_join` on a member.
    let (leader_mls, mut leader) = founder("alice");
    let mut bob = admit((&leader_mls, &mut leader), &MlsMember::new("bob2").unwrap(), &mut []);
    let ClientFrame::Join { pake_message, .. } = bob.restart_join() else { panic!("join") };
    assert!(bob.rejoining());
    // An impostor "alice" with a group of her own admits bob (she knows the password).
    let fake_leader = MlsMember::new("alice").unwrap();
    let mut fake = Room::new("lobby".into(), password());
    fake.created(&fake_leader, RoomSuite::Classic, &mut Outbox::default()).unwrap();
    bob.admission_pending("alice".into()).unwrap();
    fake.admission_request("alice", "bob2".into(), 1, &pake_message, &mut out);
    let Some(ClientFrame::AdmissionReply { pake_message, .. }) = out.frames.pop() else { panic!() };
    let bob_mls = MlsMember::new("bob2").unwrap();
    let ClientFrame::AdmissionFinish { confirmation, sealed_key_package, .. } =
        bob.admission_reply(&bob_mls, &pake_message, RoomSuite::Classic.id()).unwrap()
    else {
        panic!()
    };
    fake.admission_finish("alice", "bob2".into(), 1, &confirmation, &sealed_key_package, &mut out);
    let Some(ClientFrame::Commit { commit, .. }) = out.frames.pop() else { panic!() };
    let welcome = sent_welcome(&confirm_alone(&mut fake, "alice", &commit, Some("bob2")));
    let refused = bob.welcomed(&bob_mls, &welcome.message, vec!["alice".into(), "bob2".into()]);
    assert!(matches!(refused, Err(RoomError::Rejoin(RejoinRefusal::OtherGroup))), "{refused:?}");
}

#[test]
fn an_oversized_message_is_refused_before_it_is_sent() {
    let (_, mut alice) = founder("alice");
    let long = ChatPayload::Text("x".repeat(MAX_APPLICATION_LEN));
    assert!(matches!(alice.encrypt(&long), Err(RoomError::TooLong { .. })));
    assert!(alice.encrypt(&ChatPayload::Text("fine".into())).is_ok());
}

#[test]
fn a_reclaim_keeps_the_group_and_a_forged_reclaimed_changes_nothing() {
    let (_, _, _, mut bob) = alice_and_bob();
    let (group_id, epoch_before) = (bob.group().unwrap().group_id(), epoch(&bob));

    // A relay that did not forget us claims it took us back: ignored, with a warning.
    let mut out = Outbox::default();
    let forged =
        ServerFrame::Reclaimed { room: "lobby".into(), members: vec!["mallory".into()], epoch: 0 };
    bob.on_member_frame("bob", forged, SystemTime::now(), &mut out);
    assert!(matches!(&out.events[..], [Event::Warning { .. }]), "{:?}", out.events);
    assert_ne!(bob.relay_members, ["mallory"]);

    // A relay that did forget us: we ask for the room with our group and epoch, keep the
    // group while we wait, and are a member of the same group once taken back.
    let frame = bob.reclaim();
    assert!(matches!(
        &frame,
        ClientFrame::Reclaim { group_id: id, epoch, .. } if *id == group_id && *epoch == epoch_before
    ));
    assert!(bob.reclaiming() && !bob.is_member());
    let back =
        ServerFrame::Reclaimed { room: "lobby".into(), members: vec!["bob".into()], epoch: 0 };
    let mut out = Outbox::default();
    bob.on_member_frame("bob", back, SystemTime::now(), &mut out);
    assert!(bob.is_member());
    assert_eq!((bob.group().unwrap().group_id(), epoch(&bob)), (group_id, epoch_before));

    // Told to go through admission instead: refused, no password exchange starts.
    bob.reclaim();
    assert!(bob.admission_pending("alice".into()).is_err());
    // Told the room is another group's now: out, keys kept, waiting for the user.
    let mut out = Outbox::default();
    let refused = ServerFrame::ReclaimRefused {
        room: "lobby".into(),
        reason: crate::proto::ReclaimRefusal::AnotherGroup,
    };
    bob.on_member_frame("bob", refused, SystemTime::now(), &mut out);
    assert!(bob.is_gone());
    assert!(out.frames.is_empty());
}

#[test]
fn a_confirmation_needs_the_signed_yes_of_a_majority() {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    let mut carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    let dave_mls = MlsMember::new("dave").unwrap();
    let dave = admit((&alice_mls, &mut alice), &dave_mls, &mut [&mut bob, &mut carol]);
    // Dave leaves; alice commits his removal; the electorate is alice, bob and carol.
    let mut out = Outbox::default();
    alice.member_left("alice", "dave", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, .. }) = out.frames.pop() else { panic!() };
    for (nick, room) in [("bob", &mut bob), ("carol", &mut carol)] {
        room.member_left(nick, "dave", "alice".into(), &mut Outbox::default());
    }
    let mut own = Outbox::default();
    alice.incoming_commit("alice", "alice", &commit, None, &mut own);
    let alice_vote = signed("alice", &own);
    let mut out = Outbox::default();
    carol.incoming_commit("carol", "alice", &commit, None, &mut out);
    let before = epoch(&carol);
    // The relay confirms with no vote but carol's own: one of three, not applied.
    let mut out = Outbox::default();
    carol.commit_confirmed("carol", &[], &mut out, SystemTime::now());
    assert!(
        matches!(
            &out.events[..],
            [Event::Room { notice: RoomNotice::UnprovenConfirmation { yes: 1, of: 3 }, .. }]
        ),
        "{:?}",
        out.events
    );
    assert_eq!(epoch(&carol), before);
    // Dave's name on alice's vote changes nothing: votes count by the signing leaf. With
    // alice's signed yes, carol has two of three and merges.
    let mut renamed = alice_vote;
    renamed.from = "dave".into();
    carol.commit_confirmed("carol", &[renamed], &mut Outbox::default(), SystemTime::now());
    assert_eq!(epoch(&carol), before + 1);
    assert!(dave.group().is_some() && bob.is_member());
}

#[test]
fn an_honest_member_accepts_one_commit_per_epoch() {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    let mut carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    // Carol leaves and alice commits her removal; bob accepts it.
    let mut out = Outbox::default();
    alice.member_left("alice", "carol", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, .. }) = out.frames.pop() else { panic!() };
    bob.member_left("bob", "carol", "alice".into(), &mut Outbox::default());
    let mut first = Outbox::default();
    bob.incoming_commit("bob", "alice", &commit, None, &mut first);
    assert!(matches!(first.frames[..], [ClientFrame::CommitVote { accept: true, .. }]));
    // A relay aborts it without proof and forwards a second, different commit for the same
    // epoch (a forking relay, or a leader that made another): bob refuses it and says why.
    bob.commit_aborted("bob", &[], &mut Outbox::default());
    let other = carol.group_mut_for_tests().unwrap().commit_remove(&["alice"]).unwrap();
    let mut second = Outbox::default();
    bob.incoming_commit("bob", "alice", &other.commit, None, &mut second);
    assert!(matches!(second.frames[..], [ClientFrame::CommitVote { accept: false, .. }]));
    assert!(second.events.iter().any(|event| matches!(
        event,
        Event::Room { notice: RoomNotice::AcceptedAnother { .. }, .. }
    )));
}

#[test]
fn an_undecryptable_message_of_our_epoch_warns_once_that_the_room_may_be_split() {
    let (_, _, _, mut bob) = alice_and_bob();
    let group_id = bob.group().unwrap().group_id();
    let forged =
        build_private_message(&group_id, epoch(&bob), CONTENT_TYPE_APPLICATION, &[0x42; 120]);
    let split = |out: &Outbox| {
        out.events
            .iter()
            .filter(|event| {
                matches!(event, Event::Room { notice: RoomNotice::MaySplit { .. }, .. })
            })
            .count()
    };
    let mut out = Outbox::default();
    bob.incoming_message("alice", &forged, SystemTime::now(), &mut out);
    bob.incoming_message("alice", &forged, SystemTime::now(), &mut out);
    assert_eq!(split(&out), 1, "{:?}", out.events);
}

#[test]
fn the_welcome_exists_only_once_the_room_confirmed_its_commit() {
    // A relay that keeps back a commit's Welcome (answering the leader "busy") and hands it
    // to the joiner later would split the room if that commit was never confirmed: so the
    // leader sends no Welcome until it merged the commit with the room's signed yes.
    let (_, mut alice) = founder("alice");
    let bob_mls = MlsMember::new("bob").unwrap();
    let mut bob = Room::new("lobby".into(), password()).joining_as("bob");
    let attempt = |bob: &mut Room, alice: &mut Room, number: u64| {
        let pake_message = start_admission(bob, "alice");
        let mut out = Outbox::default();
        alice.admission_request("alice", "bob".into(), number, &pake_message, &mut out);
        let Some(ClientFrame::AdmissionReply { pake_message, .. }) = out.frames.pop() else {
            panic!("reply")
        };
        let ClientFrame::AdmissionFinish { confirmation, sealed_key_package, .. } =
            bob.admission_reply(&bob_mls, &pake_message, RoomSuite::Classic.id()).unwrap()
        else {
            panic!("finish")
        };
        alice.admission_finish(
            "alice",
            "bob".into(),
            number,
            &confirmation,
            &sealed_key_package,
            &mut out,
        );
        let [ClientFrame::Commit { commit, adds: Some(adds), .. }] = &out.frames[..] else {
            panic!("only the commit, no welcome: {:?}", out.frames)
        };
        assert_eq!((adds.to.as_str(), adds.attempt), ("bob", number));
        commit.clone()
    };
    let first = attempt(&mut bob, &mut alice, 1);
    // The relay did not take the first commit to a vote: alice drops it, and no Welcome
    // of it ever leaves her.
    let mut out = Outbox::default();
    alice.commit_rejected(
        "alice",
        commit_hash(&first),
        CommitRejection::UnknownRecipient,
        &mut out,
    );
    assert!(!out.frames.iter().any(|frame| matches!(frame, ClientFrame::Welcome { .. })));
    let _ = bob.restart_join();
    let second = attempt(&mut bob, &mut alice, 2);
    let out = confirm_alone(&mut alice, "alice", &second, Some("bob"));
    let welcome = sent_welcome(&out);
    assert_eq!((welcome.to.as_str(), welcome.attempt), ("bob", 2));
    let members = vec!["alice".to_string(), "bob".to_string()];
    assert_eq!(bob.welcomed(&bob_mls, &welcome.message, members).unwrap(), Welcomed::Joined);
}

#[test]
fn a_pledge_whose_voters_vanished_is_abandoned_once_its_vote_was_aborted() {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    let mut carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    let dave_mls = MlsMember::new("dave").unwrap();
    admit((&alice_mls, &mut alice), &dave_mls, &mut [&mut bob, &mut carol]);
    // Dave leaves: alice commits his removal, for an electorate of alice, bob and carol, and
    // signs her yes when it comes back.
    let mut out = Outbox::default();
    alice.member_left("alice", "dave", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, .. }) = out.frames.pop() else { panic!() };
    alice.incoming_commit("alice", "alice", &commit, None, &mut Outbox::default());
    // Bob leaves while the vote runs: carol and alice could still carry it, so an abort
    // without proof keeps alice's pledge, and she sends the same commit again.
    alice.member_left("alice", "bob", "alice".into(), &mut Outbox::default());
    let mut aborted = Outbox::default();
    alice.commit_aborted("alice", &[], &mut aborted);
    alice.tick("alice", &mut aborted);
    assert!(
        !aborted.events.iter().any(|event| matches!(
            event,
            Event::Room { notice: RoomNotice::CommitAbandoned { .. }, .. }
        )),
        "{:?}",
        aborted.events
    );
    assert!(
        matches!(&aborted.frames[..], [ClientFrame::Commit { commit: again, .. }] if *again == commit)
    );
    // Carol vanishes too (taken out for not voting, no farewell): of the three, only alice
    // is left, so the commit can never win. But the relay has not answered the send: it may
    // be putting the commit to the vote, which would come back to an alice that no longer
    // holds it, cannot vote, and is taken out for that. She keeps it until the answer.
    let mut out = Outbox::default();
    alice.member_left("alice", "carol", "alice".into(), &mut out);
    assert!(out.frames.is_empty(), "{:?}", out.frames);
    // The relay answers (busy): now alice stops waiting on it, says so, and commits the
    // removals now owed instead of freezing the room.
    let mut out = Outbox::default();
    alice.commit_rejected("alice", commit_hash(&commit), CommitRejection::Busy, &mut out);
    alice.tick("alice", &mut out);
    assert!(out.events.iter().any(|event| matches!(
        event,
        Event::Room { notice: RoomNotice::CommitAbandoned { committer }, .. } if committer == "alice"
    )));
    let [ClientFrame::Commit { commit: next, electorate: 1, .. }] = &out.frames[..] else {
        panic!("a new commit for alice alone: {:?}", out.frames)
    };
    assert_ne!(*next, commit);
}

/// Alice leads bob, carol and dave; dave leaves, alice commits his removal, and she and bob
/// say yes to it (carol does not see it). Returns alice, bob, carol and the commit.
fn dave_leaves_and_alice_and_bob_say_yes() -> (Room, Room, Room, Vec<u8>) {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    let mut carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    let dave_mls = MlsMember::new("dave").unwrap();
    admit((&alice_mls, &mut alice), &dave_mls, &mut [&mut bob, &mut carol]);
    let mut out = Outbox::default();
    alice.member_left("alice", "dave", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, .. }) = out.frames.pop() else { panic!() };
    bob.member_left("bob", "dave", "alice".into(), &mut Outbox::default());
    vote_on(("alice", &mut alice), &mut [("bob", &mut bob)], &commit, None);
    (alice, bob, carol, commit)
}

#[test]
fn a_pledge_is_abandoned_once_its_committer_is_gone_after_an_abort_without_proof() {
    let (_alice, mut bob, _carol, commit) = dave_leaves_and_alice_and_bob_say_yes();
    // The relay aborts the vote without proof (a voter's link dropped), and alice is gone
    // for good before she sends it again. Bob and carol could still carry it, but only its
    // committer can put it to the vote: bob stops waiting, says so, and as the new leader
    // commits the removals owed instead of freezing the room.
    let mut aborted = Outbox::default();
    bob.commit_aborted("bob", &[], &mut aborted);
    assert!(!aborted.events.iter().any(|event| matches!(
        event,
        Event::Room { notice: RoomNotice::CommitAbandoned { .. }, .. }
    )));
    let mut out = Outbox::default();
    bob.member_left("bob", "alice", "bob".into(), &mut out);
    assert!(
        out.events.iter().any(|event| matches!(
            event,
            Event::Room { notice: RoomNotice::CommitAbandoned { committer }, .. } if committer == "alice"
        )),
        "{:?}",
        out.events
    );
    let [ClientFrame::Commit { commit: next, .. }] = &out.frames[..] else {
        panic!("a commit of bob's own: {:?}", out.frames)
    };
    assert_ne!(*next, commit);
}

/// Alice leads bob, carol and dave; dave leaves, and alice's commit removing him is in
/// flight when her link drops: bob and carol say yes to it, the relay confirms it on their
/// votes, then restarts. Alice claims the room back. Returns alice (taken back, her commit
/// kept), bob's and carol's signed votes, the commit and her epoch.
fn a_leader_back_with_her_commit_in_flight() -> (Room, Room, Vec<SignedVote>, Vec<u8>, u64) {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    let mut carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    let dave_mls = MlsMember::new("dave").unwrap();
    admit((&alice_mls, &mut alice), &dave_mls, &mut [&mut bob, &mut carol]);
    let mut out = Outbox::default();
    alice.member_left("alice", "dave", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, .. }) = out.frames.pop() else { panic!() };
    let mut votes = Vec::new();
    for (nick, voter) in [("bob", &mut bob), ("carol", &mut carol)] {
        voter.member_left(nick, "dave", "alice".into(), &mut Outbox::default());
        let mut vote = Outbox::default();
        voter.incoming_commit(nick, "alice", &commit, None, &mut vote);
        votes.push(signed(nick, &vote));
    }
    let before = epoch(&alice);
    let ClientFrame::Reclaim { pledged, .. } = alice.reclaim() else { panic!() };
    assert_eq!(pledged, Some(commit_hash(&commit)), "she names the commit in her claim");
    let back = ServerFrame::Reclaimed {
        room: "lobby".into(),
        members: vec!["alice".into()],
        epoch: before,
    };
    alice.on_member_frame("alice", back, SystemTime::now(), &mut Outbox::default());
    (alice, bob, votes, commit, before)
}

#[test]
fn a_leaders_commit_in_flight_at_a_restart_is_kept_and_merged_on_the_proof_of_the_others() {
    // She never signed a yes for it, but nobody else can hand her her own commit: she keeps
    // it and merges it on the others' proof.
    let (mut alice, bob, votes, _, before) = a_leader_back_with_her_commit_in_flight();
    let mut out = Outbox::default();
    alice.commit_confirmed("alice", &votes, &mut out, SystemTime::now());
    assert_eq!(epoch(&alice), before + 1, "{:?}", out.events);
    assert_eq!(alice.group().unwrap().group_id(), bob.group().unwrap().group_id());
}

#[test]
fn a_kept_commit_we_never_signed_does_not_count_our_own_yes() {
    // Bob's yes alone is one of three: with a yes of her own she never signed it would
    // make two, and a forged confirmation could make her merge.
    let (mut alice, _, votes, _, before) = a_leader_back_with_her_commit_in_flight();
    let mut out = Outbox::default();
    alice.commit_confirmed("alice", &votes[..1], &mut out, SystemTime::now());
    assert_eq!(epoch(&alice), before, "merged without a signed majority");
}

#[test]
fn a_notice_that_someone_left_from_another_epoch_is_a_replay_and_changes_nothing() {
    let (_, mut alice, _, _bob) = alice_and_bob();
    let left = |epoch| ServerFrame::MemberLeft {
        room: "lobby".into(),
        nick: "bob".into(),
        leader: "alice".into(),
        epoch,
    };
    // Bob is back since he last left (at epoch 0): a replay of that notice is not news.
    let mut out = Outbox::default();
    alice.on_member_frame("alice", left(0), SystemTime::now(), &mut out);
    assert!(out.frames.is_empty(), "no removal committed: {:?}", out.frames);
    assert!(matches!(&out.events[..], [Event::Warning { text, .. }] if text.contains("ignored")));
    assert!(alice.relay_members.contains(&"bob".to_string()));
    // Said at the room's epoch: he left, and his removal is owed at once.
    let mut out = Outbox::default();
    alice.on_member_frame("alice", left(epoch(&alice)), SystemTime::now(), &mut out);
    assert!(matches!(&out.frames[..], [ClientFrame::Commit { .. }]), "{:?}", out.frames);
}

#[test]
fn a_notice_that_someone_joined_from_an_epoch_we_are_past_is_a_replay_and_changes_nothing() {
    let (_, mut alice, _, _bob) = alice_and_bob();
    let now = epoch(&alice);
    let left = ServerFrame::MemberLeft {
        room: "lobby".into(),
        nick: "bob".into(),
        leader: "alice".into(),
        epoch: now,
    };
    alice.on_member_frame("alice", left, SystemTime::now(), &mut Outbox::default());
    assert!(!alice.relay_members.contains(&"bob".to_string()));
    let joined =
        |epoch| ServerFrame::MemberJoined { room: "lobby".into(), nick: "bob".into(), epoch };
    // Bob joined at epoch 0 once: a replay of that notice must not list him as back, or
    // this member would refuse the removal the room owes.
    let mut out = Outbox::default();
    alice.on_member_frame("alice", joined(now - 1), SystemTime::now(), &mut out);
    assert!(matches!(&out.events[..], [Event::Warning { text, .. }] if text.contains("ignored")));
    assert!(!alice.relay_members.contains(&"bob".to_string()));
    // Said at the room's epoch: he is back.
    let mut out = Outbox::default();
    alice.on_member_frame("alice", joined(now), SystemTime::now(), &mut out);
    assert!(alice.relay_members.contains(&"bob".to_string()), "{:?}", out.events);
}

#[test]
fn a_pledge_is_abandoned_when_the_listed_members_that_did_not_refuse_are_too_few() {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    let mut carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    let dave_mls = MlsMember::new("dave").unwrap();
    admit((&alice_mls, &mut alice), &dave_mls, &mut [&mut bob, &mut carol]);
    let mut out = Outbox::default();
    alice.member_left("alice", "dave", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, .. }) = out.frames.pop() else { panic!() };
    carol.member_left("carol", "dave", "alice".into(), &mut Outbox::default());
    alice.incoming_commit("alice", "alice", &commit, None, &mut Outbox::default());
    // Carol refuses it (she always does), and bob vanishes without a farewell: alice is the
    // only one left who could say yes, one of three.
    let carol_group = carol.group_mut_for_tests().unwrap();
    let refusal =
        VoteStatement { epoch: carol_group.epoch(), commit: commit_hash(&commit), accept: false };
    let vote = carol_group.encrypt_message(&proto::encode(&GroupMessage::Vote(refusal))).unwrap();
    alice.member_left("alice", "bob", "alice".into(), &mut Outbox::default());
    let mut out = Outbox::default();
    alice.commit_aborted("alice", &[SignedVote { from: "carol".into(), vote }], &mut out);
    assert!(
        out.events.iter().any(|event| matches!(
            event,
            Event::Room { notice: RoomNotice::CommitAbandoned { .. }, .. }
        )),
        "{:?}",
        out.events
    );
}

#[test]
fn a_member_behind_after_a_restart_merges_its_commit_on_the_proof_a_member_ahead_brings() {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    let mut carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    // Carol leaves; alice commits her removal; both say yes; alice merges, and the relay
    // restarts before bob hears the confirmation.
    let mut out = Outbox::default();
    alice.member_left("alice", "carol", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, .. }) = out.frames.pop() else { panic!() };
    bob.member_left("bob", "carol", "alice".into(), &mut Outbox::default());
    let votes = vote_on(("alice", &mut alice), &mut [("bob", &mut bob)], &commit, None);
    alice.commit_confirmed("alice", &votes, &mut Outbox::default(), SystemTime::now());
    let behind = epoch(&bob);
    assert_eq!(epoch(&alice), behind + 1);
    // Each asks back: bob names the commit he holds, alice brings the proof of hers.
    let ClientFrame::Reclaim { pledged, epoch: bob_epoch, .. } = bob.reclaim() else { panic!() };
    assert_eq!((pledged, bob_epoch), (Some(commit_hash(&commit)), behind));
    let ClientFrame::Reclaim { proof, pledged: None, .. } = alice.reclaim() else { panic!() };
    assert_eq!(proof, votes);
    // The relay takes bob back behind, and hands him that proof: he checks it and merges.
    let members = vec!["alice".to_string(), "bob".to_string()];
    let back = ServerFrame::Reclaimed { room: "lobby".into(), members, epoch: 0 };
    bob.on_member_frame("bob", back, SystemTime::now(), &mut Outbox::default());
    let proof =
        ServerFrame::CommitConfirmed { room: "lobby".into(), epoch: behind + 1, votes: proof };
    let mut out = Outbox::default();
    bob.on_member_frame("bob", proof, SystemTime::now(), &mut out);
    assert_eq!(epoch(&bob), behind + 1, "{:?}", out.events);
    assert_eq!(
        bob.group().unwrap().epoch_authenticator(),
        alice.group().unwrap().epoch_authenticator()
    );
    let _ = carol.reclaim();
}

#[test]
fn just_back_after_a_restart_the_leader_holds_even_a_removal_it_was_told_of() {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    let _carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    let _ = alice.reclaim();
    let members = vec!["alice".to_string(), "bob".to_string()];
    let back = ServerFrame::Reclaimed { room: "lobby".into(), members, epoch: 0 };
    alice.on_member_frame("alice", back, SystemTime::now(), &mut Outbox::default());
    // Bob leaves for good while carol may still be on her way back: a commit now would move
    // the room past her epoch, so alice waits out the hold before removing either.
    let left = ServerFrame::MemberLeft {
        room: "lobby".into(),
        nick: "bob".into(),
        leader: "alice".into(),
        epoch: epoch(&alice),
    };
    let mut out = Outbox::default();
    alice.on_member_frame("alice", left, SystemTime::now(), &mut out);
    assert!(out.frames.is_empty(), "{:?}", out.frames);
    let mut out = Outbox::default();
    for _ in 0..RECLAIM_HOLD_TICKS {
        alice.tick("alice", &mut out);
    }
    let [ClientFrame::Commit { electorate: 1, .. }] = &out.frames[..] else {
        panic!("both removed in one commit once the hold is over: {:?}", out.frames)
    };
}

#[test]
fn a_leader_whose_commits_the_room_keeps_refusing_waits_longer_each_time() {
    assert_eq!((1..=9).map(backoff_ticks).collect::<Vec<_>>(), [1, 2, 4, 8, 16, 32, 64, 64, 64]);
    // Bob refuses everything in a room of two: each of alice's commits is refuted by his
    // signed no, and she waits one tick, then two, then four before the next.
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    let mut out = Outbox::default();
    alice.member_left("alice", "carol", "alice".into(), &mut out);
    bob.member_left("bob", "carol", "alice".into(), &mut Outbox::default());
    for wait in [1, 2, 4] {
        let Some(ClientFrame::Commit { commit, .. }) = out.frames.pop() else {
            panic!("a commit: {:?}", out.frames)
        };
        alice.incoming_commit("alice", "alice", &commit, None, &mut Outbox::default());
        let group = bob.group_mut_for_tests().unwrap();
        let no =
            VoteStatement { epoch: group.epoch(), commit: commit_hash(&commit), accept: false };
        let vote = group.encrypt_message(&proto::encode(&GroupMessage::Vote(no))).unwrap();
        alice.commit_aborted("alice", &[SignedVote { from: "bob".into(), vote }], &mut out);
        assert!(out.frames.is_empty(), "not at once: {:?}", out.frames);
        let mut ticks = 0;
        while out.frames.is_empty() && ticks < 10 {
            alice.tick("alice", &mut out);
            ticks += 1;
        }
        assert_eq!(ticks, wait);
    }
}

#[test]
fn a_leader_back_after_a_restart_puts_its_own_kept_commit_to_the_vote_again() {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    let mut out = Outbox::default();
    alice.member_left("alice", "carol", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, .. }) = out.frames.pop() else { panic!() };
    alice.incoming_commit("alice", "alice", &commit, None, &mut Outbox::default());
    // The relay restarts mid-vote. Alice keeps her yes and names it; back first, and
    // leading, she sends that very commit again rather than waiting on a proof.
    let ClientFrame::Reclaim { pledged, .. } = alice.reclaim() else { panic!() };
    assert_eq!(pledged, Some(commit_hash(&commit)));
    let back =
        ServerFrame::Reclaimed { room: "lobby".into(), members: vec!["alice".into()], epoch: 0 };
    let mut out = Outbox::default();
    alice.on_member_frame("alice", back, SystemTime::now(), &mut out);
    assert!(
        matches!(&out.frames[..], [ClientFrame::Commit { commit: again, .. }] if *again == commit),
        "{:?}",
        out.frames
    );
}

#[test]
fn a_new_leader_after_a_restart_carries_the_commit_it_said_yes_to() {
    // Carol's link is down while alice and bob say yes; the relay restarts before it
    // confirms.
    let (mut alice, mut bob, mut carol, commit) = dave_leaves_and_alice_and_bob_say_yes();
    let before = epoch(&bob);
    let reclaimed = |members: &[&str]| ServerFrame::Reclaimed {
        room: "lobby".into(),
        members: members.iter().map(|nick| nick.to_string()).collect(),
        epoch: before,
    };
    // Bob is back first and leads. Alice's commit cannot be voted on until she is back: he
    // makes no commit of his own, which those who said yes to hers would refuse.
    let _ = bob.reclaim();
    let mut out = Outbox::default();
    bob.on_member_frame("bob", reclaimed(&["bob"]), SystemTime::now(), &mut out);
    assert!(commit_in(&out).is_none(), "{:?}", out.frames);
    // Alice is back: bob puts her very commit to the vote, adding nobody.
    let _ = alice.reclaim();
    alice.on_member_frame("alice", reclaimed(&["bob", "alice"]), SystemTime::now(), &mut out);
    let back =
        ServerFrame::MemberJoined { room: "lobby".into(), nick: "alice".into(), epoch: before };
    let mut out = Outbox::default();
    bob.on_member_frame("bob", back, SystemTime::now(), &mut out);
    assert!(
        matches!(&out.frames[..], [ClientFrame::Commit { commit: carried, adds: None, electorate: 3, .. }] if *carried == commit),
        "{:?}",
        out.frames
    );
    // Every member votes yes: alice on her own commit, carol (who never saw it) on a commit
    // of a present member that the leader carries; all merge the one commit.
    let _ = carol.reclaim();
    let mut out = Outbox::default();
    carol.on_member_frame(
        "carol",
        reclaimed(&["bob", "alice", "carol"]),
        SystemTime::now(),
        &mut out,
    );
    let votes = vote_on(
        ("bob", &mut bob),
        &mut [("alice", &mut alice), ("carol", &mut carol)],
        &commit,
        None,
    );
    for (nick, room) in [("alice", &mut alice), ("bob", &mut bob), ("carol", &mut carol)] {
        room.commit_confirmed(nick, &votes, &mut Outbox::default(), SystemTime::now());
        assert_eq!(epoch(room), before + 1);
    }
    assert_eq!(
        alice.group().unwrap().epoch_authenticator(),
        carol.group().unwrap().epoch_authenticator()
    );
}

#[test]
fn members_who_refused_for_their_pledge_merge_the_commit_the_room_proved() {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let mut others: Vec<Room> = Vec::new();
    for nick in ["carol", "dave", "frank", "eve"] {
        let mls = MlsMember::new(nick).unwrap();
        let mut voters: Vec<&mut Room> =
            std::iter::once(&mut bob).chain(others.iter_mut()).collect();
        let room = admit((&alice_mls, &mut alice), &mls, &mut voters);
        others.push(room);
    }
    let [mut carol, mut dave, mut frank, _eve] = <[Room; 4]>::try_from(others).ok().unwrap();
    // Eve leaves. Alice commits her removal and only bob sees it and says yes before the
    // relay restarts; carol leads the room back and commits the same removal her own way.
    let mut out = Outbox::default();
    alice.member_left("alice", "eve", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit: first, .. }) = out.frames.pop() else { panic!() };
    bob.member_left("bob", "eve", "alice".into(), &mut Outbox::default());
    vote_on(("alice", &mut alice), &mut [("bob", &mut bob)], &first, None);
    let mut out = Outbox::default();
    for (nick, room) in [("dave", &mut dave), ("frank", &mut frank), ("carol", &mut carol)] {
        room.member_left(nick, "eve", "alice".into(), &mut Outbox::default());
        out = Outbox::default();
        room.leader_changed(nick, "carol", &mut out);
    }
    let second = commit_in(&out).expect("carol commits the removal");
    assert_ne!(second, first);
    let votes = vote_on(
        ("carol", &mut carol),
        &mut [("dave", &mut dave), ("frank", &mut frank)],
        &second,
        None,
    );
    // Alice and bob said yes to the first: they refuse the second, as honest members must.
    for (nick, room) in [("alice", &mut alice), ("bob", &mut bob)] {
        let mut out = Outbox::default();
        room.incoming_commit(nick, "carol", &second, None, &mut out);
        assert!(matches!(out.frames[..], [ClientFrame::CommitVote { accept: false, .. }]));
    }
    // Three of the five members the first needed signed yes to the second: the first can
    // never win. Alice (her own commit) and bob (another's) merge the second on that proof,
    // with everyone else: one group, not a minority left behind.
    let before = epoch(&bob);
    for (nick, room) in [
        ("carol", &mut carol),
        ("dave", &mut dave),
        ("frank", &mut frank),
        ("alice", &mut alice),
        ("bob", &mut bob),
    ] {
        room.commit_confirmed(nick, &votes, &mut Outbox::default(), SystemTime::now());
        assert_eq!(epoch(room), before + 1, "{nick}");
    }
    let authenticator = carol.group().unwrap().epoch_authenticator();
    assert_eq!(alice.group().unwrap().epoch_authenticator(), authenticator);
    assert_eq!(bob.group().unwrap().epoch_authenticator(), authenticator);
}

#[test]
fn a_leader_admits_a_member_back_although_a_replayed_notice_lists_it_as_present() {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    // Back after a restart, alice holds her removals for a while; carol leaves meanwhile,
    // and a replaying relay then hands alice the old notice that carol joined, of the same
    // epoch.
    let _ = alice.reclaim();
    let now = epoch(&alice);
    let members = vec!["alice".to_string(), "bob".into(), "carol".into()];
    let back = ServerFrame::Reclaimed { room: "lobby".into(), members, epoch: now };
    alice.on_member_frame("alice", back, SystemTime::now(), &mut Outbox::default());
    alice.member_left("alice", "carol", "alice".into(), &mut Outbox::default());
    bob.member_left("bob", "carol", "alice".into(), &mut Outbox::default());
    let replayed =
        ServerFrame::MemberJoined { room: "lobby".into(), nick: "carol".into(), epoch: now };
    alice.on_member_frame("alice", replayed, SystemTime::now(), &mut Outbox::default());
    // Carol joins again and proves the password: she is no member, and alice admits her in
    // place of her old leaf rather than refusing her for good.
    let carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    assert!(carol.is_member());
    assert_eq!(alice.group().unwrap().members().len(), 3);
}

#[test]
fn a_member_never_signs_no_to_a_commit_it_said_yes_to() {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    // Carol leaves; alice commits her removal and signs her yes when it comes back.
    let mut out = Outbox::default();
    alice.member_left("alice", "carol", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, .. }) = out.frames.pop() else { panic!() };
    alice.incoming_commit("alice", "alice", &commit, None, &mut Outbox::default());
    // The relay restarts and bob leads the re-formed room; no proof comes, and alice lets
    // her kept yes go after the hold, commit and all.
    let _ = alice.reclaim();
    let back = ServerFrame::Reclaimed {
        room: "lobby".into(),
        members: vec!["bob".into(), "alice".into()],
        epoch: epoch(&alice),
    };
    alice.on_member_frame("alice", back, SystemTime::now(), &mut Outbox::default());
    for _ in 0..RECLAIM_HOLD_TICKS {
        alice.tick("alice", &mut Outbox::default());
    }
    // Her commit comes back: she no longer holds it, and says nothing against it.
    let mut out = Outbox::default();
    alice.incoming_commit("alice", "alice", &commit, None, &mut out);
    assert!(
        !out.frames
            .iter()
            .any(|frame| matches!(frame, ClientFrame::CommitVote { accept: false, .. })),
        "{:?}",
        out.frames
    );
}

#[test]
fn a_member_whose_removal_a_majority_signed_leaves_and_says_so() {
    let (alice_mls, mut alice, _, mut bob) = alice_and_bob();
    let carol_mls = MlsMember::new("carol").unwrap();
    let mut carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    // The relay told alice that carol left; carol is back in time to see the commit.
    let mut out = Outbox::default();
    alice.member_left("alice", "carol", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, adds: None, .. }) = out.frames.pop() else {
        panic!("alice commits the removal")
    };
    bob.member_left("bob", "carol", "alice".into(), &mut out);
    let votes = vote_on(("alice", &mut alice), &mut [("bob", &mut bob)], &commit, None);
    let mut refused = Outbox::default();
    carol.incoming_commit("carol", "alice", &commit, None, &mut refused);
    assert!(matches!(refused.frames[..], [ClientFrame::CommitVote { accept: false, .. }]));
    // One yes of the two members the commit keeps proves nothing: carol stays as she was.
    let mut unproven = Outbox::default();
    carol.commit_confirmed("carol", &votes[..1], &mut unproven, SystemTime::now());
    assert!(matches!(
        &unproven.events[..],
        [Event::Room { notice: RoomNotice::UnexpectedConfirmation, .. }]
    ));
    assert!(carol.is_member() && unproven.frames.is_empty());
    // Both signed yes: the room went on without her. She leaves and is told, rather than
    // stay alone in the old group.
    let mut proven = Outbox::default();
    carol.commit_confirmed("carol", &votes, &mut proven, SystemTime::now());
    assert!(matches!(
        &proven.events[..],
        [Event::Room { notice: RoomNotice::RemovedByRoom { committer }, .. }] if committer == "alice"
    ));
    assert!(matches!(proven.frames[..], [ClientFrame::Leave { .. }]));
    assert!(carol.is_gone());
}

#[test]
fn the_proof_a_leader_keeps_holds_its_own_yes_not_what_the_relay_sent_in_its_name() {
    let (_, mut alice, _, _bob) = alice_and_bob();
    let mut out = Outbox::default();
    alice.member_left("alice", "bob", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, adds: None, .. }) = out.frames.pop() else {
        panic!("alice commits the removal")
    };
    let mut own = Outbox::default();
    alice.incoming_commit("alice", "alice", &commit, None, &mut own);
    let own_vote = signed("alice", &own);
    // A relay confirms it with a vote in alice's name that is not hers; her own signed yes is
    // the majority of the one member the commit keeps, so she merges.
    let forged = SignedVote { from: "alice".into(), vote: vec![0x55; 120] };
    let before = epoch(&alice);
    alice.commit_confirmed("alice", &[forged], &mut Outbox::default(), SystemTime::now());
    assert_eq!(epoch(&alice), before + 1);
    let ClientFrame::Reclaim { proof, .. } = alice.reclaim() else { panic!("a reclaim") };
    assert_eq!(proof, [own_vote], "members behind could not check anything else");
}

/// The proposal a member's `/rekey` sent, as the relay carries it to the others.
fn proposal_of(from: &str, out: &Outbox) -> ServerFrame {
    let message = out
        .frames
        .iter()
        .find_map(|frame| match frame {
            ClientFrame::Application { message, .. } => Some(message.clone()),
            _ => None,
        })
        .expect("a proposal");
    ServerFrame::Application { room: "lobby".into(), from: from.into(), message }
}

fn commit_in(out: &Outbox) -> Option<Vec<u8>> {
    out.frames.iter().find_map(|frame| match frame {
        ClientFrame::Commit { commit, .. } => Some(commit.clone()),
        _ => None,
    })
}

#[test]
fn a_leader_commits_one_members_renewals_at_most_once_a_minute() {
    let (_, mut alice, _, mut bob) = alice_and_bob();
    let mut asked = Outbox::default();
    bob.request_renewal("bob", &mut asked).unwrap();
    let mut out = Outbox::default();
    alice.on_member_frame("alice", proposal_of("bob", &asked), SystemTime::now(), &mut out);
    let commit = commit_in(&out).expect("alice commits bob's renewal");
    let votes = vote_on(("alice", &mut alice), &mut [("bob", &mut bob)], &commit, None);
    let mut renewed = Outbox::default();
    bob.commit_confirmed("bob", &votes, &mut renewed, SystemTime::now());
    alice.commit_confirmed("alice", &votes, &mut Outbox::default(), SystemTime::now());
    assert!(renewed.events.iter().any(|event| matches!(
        event,
        Event::Room { notice: RoomNotice::KeysRenewed { nick }, .. } if nick == "bob"
    )));
    assert_eq!(epoch(&alice), epoch(&bob));
    // Again at once: a member cannot make the room commit for it faster than that.
    let mut again = Outbox::default();
    bob.request_renewal("bob", &mut again).unwrap();
    let mut out = Outbox::default();
    alice.on_member_frame("alice", proposal_of("bob", &again), SystemTime::now(), &mut out);
    assert_eq!(commit_in(&out), None);
    assert!(
        matches!(&out.events[..], [Event::Warning { text, .. }] if text.contains("within a minute"))
    );
    // Bob's client asks again a minute (twelve ticks) later, and then it is committed.
    let mut later = Outbox::default();
    let mut waited = 0;
    while later.frames.is_empty() {
        alice.tick("alice", &mut Outbox::default());
        bob.tick("bob", &mut later);
        waited += 1;
        assert!(waited <= 12, "bob never asked again");
    }
    assert_eq!(waited, 12);
    let mut out = Outbox::default();
    alice.on_member_frame("alice", proposal_of("bob", &later), SystemTime::now(), &mut out);
    assert!(commit_in(&out).is_some(), "{:?}", out.events);
}

#[test]
fn a_renewal_in_another_members_name_is_refused_and_never_committed() {
    let (_, mut alice, _, mut bob) = alice_and_bob();
    let forged = bob.group_mut_for_tests().unwrap().propose_renewal_claiming("alice").unwrap();
    let frame =
        ServerFrame::Application { room: "lobby".into(), from: "bob".into(), message: forged };
    let mut out = Outbox::default();
    alice.on_member_frame("alice", frame, SystemTime::now(), &mut out);
    assert_eq!(commit_in(&out), None);
    assert!(
        matches!(&out.events[..], [Event::Warning { text, .. }] if text.contains("refused new keys"))
    );
}

#[test]
fn keys_not_renewed_for_three_periods_are_stale_and_their_owner_is_told_once() {
    let (_, _, _, mut bob) = alice_and_bob();
    // Ten seconds is two ticks; bob's proposals go nowhere (no leader hears them).
    bob.set_renew_after(Duration::from_secs(10));
    let mut told = Vec::new();
    for _ in 0..10 {
        let mut out = Outbox::default();
        bob.tick("bob", &mut out);
        told.extend(out.events);
    }
    let stale: Vec<_> = told
        .iter()
        .filter(|event| matches!(event, Event::Room { notice: RoomNotice::StaleKeys { .. }, .. }))
        .collect();
    assert_eq!(stale.len(), 1, "{told:?}");
    assert!(bob.leaf_is_stale("bob", "bob"));
    assert_eq!(bob.leaf_age("bob", "bob"), Some(Duration::from_secs(50)));
}

#[test]
fn a_post_quantum_leader_names_its_suite_and_refuses_a_joiner_once_the_room_is_full() {
    let mls = MlsMember::new("alice").unwrap();
    let mut leader = Room::new("lobby".into(), password());
    leader.created(&mls, RoomSuite::PostQuantum, &mut Outbox::default()).unwrap();
    let ask = |leader: &mut Room, joiner: &str| {
        let mut room = Room::new("lobby".into(), password()).joining_as(joiner);
        let pake_message = start_admission(&mut room, "alice");
        let mut out = Outbox::default();
        leader.admission_request("alice", joiner.into(), 1, &pake_message, &mut out);
        out.frames
    };
    // The leader's answer names the room's suite, for the joiner's KeyPackage.
    let frames = ask(&mut leader, "bob");
    assert!(
        matches!(frames.as_slice(), [ClientFrame::AdmissionReply { suite: 0x004f, .. }]),
        "{frames:?}"
    );
    // At the cap, a joiner is refused before any password exchange.
    let others: Vec<Vec<u8>> = (1..crate::mls::MAX_PQ_ROOM_MEMBERS)
        .map(|n| {
            MlsMember::new(&format!("m{n}"))
                .unwrap()
                .key_package_of(RoomSuite::PostQuantum)
                .unwrap()
        })
        .collect();
    let group = leader.group_mut_for_tests().unwrap();
    group.commit_add_many(&others).unwrap();
    group.merge_pending_commit().unwrap();
    let frames = ask(&mut leader, "carol");
    assert!(
        matches!(
            frames.as_slice(),
            [ClientFrame::AdmissionRefused { reason: AdmissionRefusal::RoomFull, .. }]
        ),
        "{frames:?}"
    );
}

#[test]
fn a_member_taken_back_behind_the_room_that_never_catches_up_says_so_and_leaves() {
    let (_, _, _, mut bob) = alice_and_bob();
    let ClientFrame::Reclaim { .. } = bob.reclaim() else { panic!("a reclaim") };
    // The room is an epoch ahead, and the commit bob missed never comes.
    bob.reclaimed(vec!["alice".into(), "bob".into()], epoch(&bob) + 1).unwrap();
    assert!(bob.behind());
    let mut told = Outbox::default();
    for _ in 0..6 {
        bob.tick("bob", &mut told);
    }
    assert!(bob.is_member() && told.events.is_empty(), "a few ticks are the relay's to use");
    bob.tick("bob", &mut told);
    assert!(matches!(&told.events[..], [Event::Room { notice: RoomNotice::OutOfStep, .. }]));
    assert!(matches!(told.frames[..], [ClientFrame::Leave { .. }]));
    assert!(bob.is_gone());
}

#[test]
fn a_direct_message_opening_is_not_announced_as_a_return() {
    let alice_mls = MlsMember::new("alice").unwrap();
    let group = alice_mls.create_room().unwrap();
    let (mut dm, frame) = Room::direct("@bob".into(), group);
    assert!(matches!(frame, ClientFrame::Reclaim { .. }));
    let mut out = Outbox::default();
    dm.back_in_room("alice", vec!["alice".into()], 0, &mut out);
    assert!(out.events.is_empty(), "{:?}", out.events);
    // Taken back later (a relay restart), it is a return, and says so.
    let ClientFrame::Reclaim { .. } = dm.reclaim() else { panic!("a reclaim") };
    let mut out = Outbox::default();
    dm.back_in_room("alice", vec!["alice".into()], 0, &mut out);
    assert!(
        matches!(&out.events[..], [Event::Notice { text, .. }] if text.starts_with("back in the room"))
    );
}
