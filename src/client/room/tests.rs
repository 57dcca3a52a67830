//! Unit tests of the sans-IO room: phase transitions and refusals, driven without sockets.
//! The relay's part (forwarding frames, confirming commits) is played by hand.

use super::*;
use crate::mls_header::{CONTENT_TYPE_APPLICATION, CONTENT_TYPE_COMMIT, build_private_message};

fn password() -> Secret {
    Secret::from("pw")
}

/// A member that created `lobby` and leads it.
fn founder(nick: &str) -> (MlsMember, Room) {
    let mls = MlsMember::new(nick).unwrap();
    let mut room = Room::new("lobby".into(), password());
    room.created(&mls, &mut Outbox::default()).unwrap();
    (mls, room)
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
    let mut room = Room::new("lobby".into(), password());
    let ClientFrame::AdmissionStart { pake_message, .. } =
        room.admission_pending(joiner, me.into()).unwrap()
    else {
        panic!("start")
    };
    let mut out = Outbox::default();
    leader_room.admission_request(me, joiner.into(), 1, &pake_message, &mut out);
    let Some(ClientFrame::AdmissionReply { pake_message, .. }) = out.frames.pop() else {
        panic!("reply")
    };
    let ClientFrame::AdmissionFinish { confirmation, sealed_key_package, .. } =
        room.admission_reply(joiner_mls, &pake_message).unwrap()
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
    let Some(ClientFrame::Commit { commit, welcome: Some(welcome), .. }) = out.frames.pop() else {
        panic!("commit: {:?}", out.events)
    };
    for voter in voters {
        let mut vote = Outbox::default();
        voter.incoming_commit(me, &commit, Some(joiner), &mut vote);
        assert!(
            matches!(vote.frames[..], [ClientFrame::CommitVote { accept: true, .. }]),
            "{:?}",
            vote.events
        );
        voter.commit_confirmed("voter", SystemTime::now(), &mut vote);
    }
    leader_room.commit_confirmed(me, SystemTime::now(), &mut out);
    let mut members = leader_room.relay_members.clone();
    if !members.iter().any(|member| member == joiner) {
        members.push(joiner.into());
    }
    assert_eq!(room.welcomed(joiner_mls, &welcome.message, members).unwrap(), Welcomed::Joined);
    room
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
    let (alice_mls, mut alice) = founder("alice");
    let bob_mls = MlsMember::new("bob").unwrap();
    let mut bob = admit((&alice_mls, &mut alice), &bob_mls, &mut []);
    let group_id = bob.group().unwrap().group_id();
    let before = epoch(&bob);
    let garbage = build_private_message(&group_id, before, CONTENT_TYPE_COMMIT, &[0x55; 300]);
    let mut out = Outbox::default();
    bob.incoming_commit("alice", &garbage, None, &mut out);
    assert_eq!(
        out.frames,
        [ClientFrame::CommitVote { room: "lobby".into(), epoch: before, accept: false }]
    );
    assert!(
        matches!(&out.events[..], [Event::Warning { text, .. }] if text.contains("refused a key change"))
    );
    assert!(!bob.group().unwrap().has_staged_commit());
    assert_eq!(epoch(&bob), before);
    // A confirmation the relay might then send (it should not) makes bob merge nothing; he
    // is out of step with the relay's room, and joins again, back into this group only.
    let mut out = Outbox::default();
    bob.commit_confirmed("bob", SystemTime::now(), &mut out);
    assert_eq!(
        out.frames,
        [ClientFrame::Leave { room: "lobby".into() }, ClientFrame::Join { room: "lobby".into() }]
    );
    assert!(bob.rejoining());
}

#[test]
fn a_message_from_a_future_epoch_is_reported_and_starts_nothing() {
    let (alice_mls, mut alice) = founder("alice");
    let bob_mls = MlsMember::new("bob").unwrap();
    let mut bob = admit((&alice_mls, &mut alice), &bob_mls, &mut []);
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
    let (alice_mls, mut alice) = founder("alice");
    let bob_mls = MlsMember::new("bob").unwrap();
    let mut bob = admit((&alice_mls, &mut alice), &bob_mls, &mut []);
    let carol_mls = MlsMember::new("carol").unwrap();
    let carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    assert_eq!(epoch(&bob), epoch(&alice));
    assert_eq!(epoch(&carol), epoch(&alice));
    // Carol leaves; alice owes her removal and commits it as soon as she hears.
    let mut out = Outbox::default();
    alice.member_left("alice", "carol", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, welcome: None, .. }) = out.frames.pop() else {
        panic!("alice commits the removal")
    };
    bob.member_left("bob", "carol", "alice".into(), &mut out);
    let mut vote = Outbox::default();
    bob.incoming_commit("alice", &commit, None, &mut vote);
    assert!(matches!(vote.frames[..], [ClientFrame::CommitVote { accept: true, .. }]));
    // Aborted: both drop it and stay where they were.
    let before = epoch(&bob);
    bob.commit_aborted();
    alice.commit_aborted();
    assert_eq!((epoch(&bob), epoch(&alice)), (before, before));
    assert!(!bob.group().unwrap().has_staged_commit());
    // Alice, still leader after her commit was aborted by the relay? She dropped the work;
    // the next change of membership gives it back to her, and this time it is confirmed.
    alice.member_left("alice", "carol", "alice".into(), &mut out);
    let Some(ClientFrame::Commit { commit, .. }) = out.frames.pop() else { panic!("again") };
    bob.incoming_commit("alice", &commit, None, &mut vote);
    bob.commit_confirmed("bob", SystemTime::now(), &mut vote);
    alice.commit_confirmed("alice", SystemTime::now(), &mut out);
    assert_eq!(epoch(&bob), before + 1);
    assert_eq!(epoch(&alice), before + 1);
    assert!(vote.events.iter().any(|e| matches!(e, Event::Left { nick, .. } if nick == "carol")));
}

#[test]
fn a_commit_from_anyone_but_the_leader_is_refused() {
    let (alice_mls, mut alice) = founder("alice");
    let bob_mls = MlsMember::new("bob").unwrap();
    let mut bob = admit((&alice_mls, &mut alice), &bob_mls, &mut []);
    let carol_mls = MlsMember::new("carol").unwrap();
    let mut carol = admit((&alice_mls, &mut alice), &carol_mls, &mut [&mut bob]);
    // Bob, not the leader, removes alice: carol refuses.
    let commit = bob.group_mut_for_tests().unwrap().commit_remove(&["alice"]).unwrap();
    let mut out = Outbox::default();
    carol.incoming_commit("bob", &commit.commit, None, &mut out);
    assert!(matches!(out.frames[..], [ClientFrame::CommitVote { accept: false, .. }]));
    assert!(
        matches!(&out.events[..], [Event::Warning { text, .. }] if text.contains("not the room's leader"))
    );
}

#[test]
fn removed_members_rejoin_only_the_group_they_left() {
    let (alice_mls, mut alice) = founder("alice");
    let bob_mls = MlsMember::new("bob").unwrap();
    let mut bob = admit((&alice_mls, &mut alice), &bob_mls, &mut []);
    let mut out = Outbox::default();
    let frame = bob.removed(RemovalReason::NoVote, &mut out);
    assert_eq!(frame, ClientFrame::Join { room: "lobby".into() });
    assert!(bob.rejoining());
    // An impostor "alice" with a group of her own admits bob (she knows the password).
    let fake_leader = MlsMember::new("alice").unwrap();
    let mut fake = Room::new("lobby".into(), password());
    fake.created(&fake_leader, &mut Outbox::default()).unwrap();
    let ClientFrame::AdmissionStart { pake_message, .. } =
        bob.admission_pending("bob", "alice".into()).unwrap()
    else {
        panic!("start")
    };
    fake.admission_request("alice", "bob".into(), 1, &pake_message, &mut out);
    let Some(ClientFrame::AdmissionReply { pake_message, .. }) = out.frames.pop() else { panic!() };
    let ClientFrame::AdmissionFinish { confirmation, sealed_key_package, .. } =
        bob.admission_reply(&bob_mls, &pake_message).unwrap()
    else {
        panic!()
    };
    fake.admission_finish("alice", "bob".into(), 1, &confirmation, &sealed_key_package, &mut out);
    let Some(ClientFrame::Commit { welcome: Some(welcome), .. }) = out.frames.pop() else {
        panic!()
    };
    let refused = bob.welcomed(&bob_mls, &welcome.message, vec!["alice".into(), "bob".into()]);
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
    let (alice_mls, mut alice) = founder("alice");
    let bob_mls = MlsMember::new("bob").unwrap();
    let mut bob = admit((&alice_mls, &mut alice), &bob_mls, &mut []);
    let (group_id, epoch_before) = (bob.group().unwrap().group_id(), epoch(&bob));

    // A relay that did not forget us claims it took us back: ignored, with a warning.
    let mut out = Outbox::default();
    let forged = ServerFrame::Reclaimed { room: "lobby".into(), members: vec!["mallory".into()] };
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
    let back = ServerFrame::Reclaimed { room: "lobby".into(), members: vec!["bob".into()] };
    let mut out = Outbox::default();
    bob.on_member_frame("bob", back, SystemTime::now(), &mut out);
    assert!(bob.is_member());
    assert_eq!((bob.group().unwrap().group_id(), epoch(&bob)), (group_id, epoch_before));

    // Told to go through admission instead, we remember the group to check the Welcome.
    bob.reclaim();
    assert!(bob.admission_pending("bob", "alice".into()).is_ok());
    assert!(bob.rejoining());
}
