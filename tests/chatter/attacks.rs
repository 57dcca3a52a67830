//! The attacks of the room-protocol review, each turned into a regression test with real
//! engines, a real relay and a real man in the middle (`support::mitm`), which knows the
//! access code as every user and the operator do.

use chatter::client::{ClientError, Event, Events, Notice, RoomNotice};
use chatter::mls::MlsMember;
use chatter::mls_header::{
    CONTENT_TYPE_APPLICATION, CONTENT_TYPE_COMMIT, build_private_message, peek_header,
};
use chatter::proto::{
    ClientFrame, GroupMessage, ReclaimRefusal, RemovalReason, ServerFrame, VoteStatement, encode,
};
use chatter::secret::Secret;

use crate::support::{self, chat_client, chat_client_at, expect_event};

fn is_message(from: &str, text: &str) -> impl Fn(&Event) -> bool {
    let (from, text) = (from.to_owned(), text.to_owned());
    move |event| matches!(event, Event::Message { from: f, text: t, .. } if *f == from && *t == text)
}

fn is_warning(containing: &str) -> impl Fn(&Event) -> bool {
    let containing = containing.to_owned();
    move |event| matches!(event, Event::Warning { text, .. } if text.contains(&containing))
}

/// A chat client that reaches the relay through a man in the middle holding the access code,
/// and the controls that make the man in the middle meddle.
async fn chat_client_through_a_mitm(
    relay: &support::TestRelay,
    nick: &str,
) -> (chatter::client::Client, Events, support::mitm::Control) {
    let (mitm, control) = support::mitm::start_with_control(
        relay.address,
        support::ACCESS_CODE,
        support::mitm::Meddling::None,
    )
    .await;
    let (client, events) = chat_client_at(&mitm.to_string(), nick).await;
    (client, events, control)
}

async fn joined(events: &mut Events, nick: &str) {
    expect_event(events, |e| matches!(e, Event::Joined { nick: n, .. } if n == nick)).await;
}

#[tokio::test]
async fn a_relay_in_the_middle_cannot_move_a_member_into_a_group_of_its_own() {
    let relay = support::start_relay().await;
    let (alice, mut alice_events) = chat_client(&relay, "alice").await;
    alice.join("vault", Secret::from("pw")).await.unwrap();
    let (bob, mut bob_events, control) = chat_client_through_a_mitm(&relay, "bob").await;
    bob.join("vault", Secret::from("pw")).await.unwrap();
    joined(&mut alice_events, "bob").await;
    bob.send_text("hi").await.unwrap();
    expect_event(&mut alice_events, is_message("bob", "hi")).await;
    let header = {
        let sent = control.sent_by_client.lock().unwrap();
        // The last chat frame bob sent (an `Ack` may follow it).
        let chat = sent.iter().rev().find_map(|frame| match frame {
            ClientFrame::Application { message, .. } => Some(message),
            _ => None,
        });
        let Some(message) = chat else { panic!("bob's message went through the middle") };
        peek_header(message).unwrap()
    };
    let seen_before = control.sent_by_client.lock().unwrap().len();

    // Trigger one: a garbage commit "from alice". Bob refuses it and says so.
    let garbage =
        build_private_message(&header.group_id, header.epoch, CONTENT_TYPE_COMMIT, &[0x55; 300]);
    let forged = ServerFrame::Commit {
        room: "vault".into(),
        from: "alice".into(),
        commit: garbage,
        joiner: None,
    };
    control.inject.send(forged).unwrap();
    expect_event(&mut bob_events, is_warning("refused a key change claimed to be from alice"))
        .await;
    // Trigger two: a well-formed message stamped with an epoch bob has not reached (empty
    // authenticated data, then one byte each of sender data and ciphertext).
    let ahead = build_private_message(
        &header.group_id,
        header.epoch + 1,
        CONTENT_TYPE_APPLICATION,
        &[0, 1, 7, 1, 7],
    );
    control
        .inject
        .send(ServerFrame::Application {
            room: "vault".into(),
            from: "alice".into(),
            message: ahead,
        })
        .unwrap();
    expect_event(&mut bob_events, is_warning("key change this client has not seen")).await;
    // The middle's own group, with its own "alice", and a Welcome into it.
    let fake_alice = MlsMember::new("alice").unwrap();
    let mut fake_group = fake_alice.create_room().unwrap();
    let stand_in = MlsMember::new("bob").unwrap();
    let add = fake_group.commit_add(&stand_in.key_package().unwrap(), "bob").unwrap();
    control
        .inject
        .send(ServerFrame::Welcome {
            room: "vault".into(),
            message: add.welcome.unwrap(),
            members: vec!["alice".into(), "bob".into()],
        })
        .unwrap();
    expect_event(
        &mut bob_events,
        |e| matches!(e, Event::Status(Notice::UnaskedWelcome { room }) if room == "vault"),
    )
    .await;

    // Bob asked for nothing: no key package, no repair; only his "no" votes left him.
    let sent_after: Vec<ClientFrame> =
        control.sent_by_client.lock().unwrap()[seen_before..].to_vec();
    assert!(
        sent_after.iter().all(|frame| matches!(
            frame,
            ClientFrame::CommitVote { accept: false, .. } | ClientFrame::Ping
        )),
        "{sent_after:?}"
    );
    // And he is still with the real alice, whose key his /who shows.
    alice.send_text("still us").await.unwrap();
    expect_event(&mut bob_events, is_message("alice", "still us")).await;
    bob.send_text("yes").await.unwrap();
    expect_event(&mut alice_events, is_message("bob", "yes")).await;
    let real_alice = alice.members().await.unwrap();
    let real_fingerprint =
        real_alice.members.iter().find(|m| m.is_self).unwrap().fingerprint.clone();
    let bobs_view = bob.members().await.unwrap();
    let alice_for_bob = bobs_view.members.iter().find(|m| m.nick == "alice").unwrap();
    assert_eq!(alice_for_bob.fingerprint, real_fingerprint);
    assert_ne!(alice_for_bob.fingerprint, Some(fake_alice.fingerprint()));
}

#[tokio::test]
async fn a_garbage_commit_costs_the_leader_the_room_and_the_others_nothing() {
    let relay = support::start_relay().await;
    let (mallory, mut mallory_events, control) =
        chat_client_through_a_mitm(&relay, "mallory").await;
    mallory.join("den", Secret::from("pw")).await.unwrap();
    let (alice, mut alice_events) = chat_client(&relay, "alice").await;
    alice.join("den", Secret::from("pw")).await.unwrap();
    let (bob, mut bob_events) = chat_client(&relay, "bob").await;
    bob.join("den", Secret::from("pw")).await.unwrap();
    joined(&mut alice_events, "bob").await;

    // Mallory's next commit (carol's admission) goes out as garbage.
    control.corrupt_commits.store(true, std::sync::atomic::Ordering::SeqCst);
    let (carol, mut carol_events) = chat_client(&relay, "carol").await;
    let carol_joins =
        tokio::spawn(async move { carol.join("den", Secret::from("pw")).await.map(|()| carol) });
    for events in [&mut alice_events, &mut bob_events] {
        expect_event(events, is_warning("refused a key change claimed to be from mallory")).await;
        expect_event(events, |e| matches!(e, Event::Left { nick, .. } if nick == "mallory")).await;
    }
    // Mallory is told that the room refused her key change and took her out for it (a
    // typed room notice since protocol 5, which also refused her own corrupted commit as
    // another than hers), and she is not taken back.
    let is_room_notice = |wanted: RoomNotice| move |e: &Event| matches!(e, Event::Room { notice, .. } if *notice == wanted);
    let refused = RoomNotice::CommitAborted { committer: "mallory".into(), refuted: true };
    expect_event(&mut mallory_events, is_room_notice(refused)).await;
    let taken_out = RoomNotice::TakenOut { reason: RemovalReason::KeyChangeRefused };
    expect_event(&mut mallory_events, is_room_notice(taken_out)).await;
    let not_back = RoomNotice::ReclaimRefused { reason: ReclaimRefusal::TakenOut };
    expect_event(&mut mallory_events, is_room_notice(not_back)).await;
    assert_eq!(mallory.current_room(), None);
    // Right away, the honest members talk; the room never stopped for them.
    alice.send_text("still here").await.unwrap();
    expect_event(&mut bob_events, is_message("alice", "still here")).await;
    bob.send_text("me too").await.unwrap();
    expect_event(&mut alice_events, is_message("bob", "me too")).await;
    // Carol, with the right password, still gets in (through alice, who leads now).
    let carol = carol_joins.await.unwrap().expect("carol gets in");
    joined(&mut carol_events, "carol").await;
    alice.send_text("welcome carol").await.unwrap();
    expect_event(&mut carol_events, is_message("alice", "welcome carol")).await;
    carol.send_text("thanks").await.unwrap();
    expect_event(&mut bob_events, is_message("carol", "thanks")).await;
}

#[tokio::test]
async fn a_paste_over_the_limit_is_refused_by_the_sender_and_the_connection_stays() {
    let relay = support::start_relay().await;
    let (alice, _alice_events) = chat_client(&relay, "alice").await;
    alice.join("lobby", Secret::from("")).await.unwrap();
    let (bob, mut bob_events) = chat_client(&relay, "bob").await;
    bob.join("lobby", Secret::from("")).await.unwrap();
    let paste = "x".repeat(3 * 1024 * 1024);
    let refused = alice.send_text(&paste).await.unwrap_err();
    assert!(matches!(refused, ClientError::MessageTooLong { .. }), "{refused:?}");
    assert!(refused.to_string().contains("at most"), "{refused}");
    alice.send_text("a normal line").await.unwrap();
    expect_event(&mut bob_events, is_message("alice", "a normal line")).await;
    assert!(alice.is_connected());
}

/// A leader that speaks the protocol by hand with real MLS: it admits members honestly, then
/// commits what it likes.
struct RogueLeader {
    raw: chatter::client::RawClient,
    group: chatter::mls::RoomGroup,
    epoch: u64,
}

impl RogueLeader {
    async fn create(relay: &support::TestRelay, room: &str) -> (Self, MlsMember) {
        let mls = MlsMember::new("mallory").unwrap();
        let mut raw = support::raw_client(relay, "mallory").await;
        raw.send(&ClientFrame::Join { room: room.into(), pake_message: vec![1; 32] })
            .await
            .unwrap();
        assert!(matches!(support::next_frame(&mut raw).await, ServerFrame::RoomCreated { .. }));
        let group = mls.create_room().unwrap();
        (RogueLeader { raw, group, epoch: 0 }, mls)
    }

    /// Admits whoever asks, honestly, with the room password; voters are the members so far.
    async fn admit(&mut self, joiner: &chatter::client::Client, room: &str, password: &str) {
        let joining = {
            let joiner = joiner.clone();
            let (room, password) = (room.to_owned(), password.to_owned());
            tokio::spawn(async move { joiner.join(&room, Secret::from(password.as_str())).await })
        };
        let request = support::expect_frame(&mut self.raw, |f| {
            matches!(f, ServerFrame::AdmissionRequest { .. })
        })
        .await;
        let ServerFrame::AdmissionRequest { joiner: nick, attempt, pake_message, .. } = request
        else {
            unreachable!()
        };
        let (admission, reply) = chatter::admission::LeaderAdmission::respond(
            room,
            &nick,
            "mallory",
            password.as_bytes(),
            &pake_message,
        )
        .unwrap();
        self.raw
            .send(&ClientFrame::AdmissionReply {
                room: room.into(),
                joiner: nick.clone(),
                attempt,
                pake_message: reply,
                suite: chatter::mls::RoomSuite::Classic.id(),
            })
            .await
            .unwrap();
        let finish = support::expect_frame(&mut self.raw, |f| {
            matches!(f, ServerFrame::AdmissionFinish { .. })
        })
        .await;
        let ServerFrame::AdmissionFinish { confirmation, sealed_key_package, .. } = finish else {
            unreachable!()
        };
        let key_package = admission.verify(&confirmation, &sealed_key_package).unwrap();
        let add = self.group.commit_add(&key_package, &nick).unwrap();
        let adds = chatter::proto::Addition { to: nick.clone(), attempt };
        self.commit(room, add.commit, Some(adds)).await;
        assert!(matches!(self.verdict().await, ServerFrame::CommitConfirmed { .. }));
        self.group.merge_pending_commit().unwrap();
        let welcome = chatter::proto::Welcome { to: nick, attempt, message: add.welcome.unwrap() };
        self.raw.send(&ClientFrame::Welcome { room: room.into(), welcome }).await.unwrap();
        joining.await.unwrap().unwrap();
    }

    /// Sends a commit and, once the relay sends it back for the vote (protocol 5: the
    /// committer votes too), signs her own yes inside the group, as members check.
    async fn commit(
        &mut self,
        room: &str,
        commit: Vec<u8>,
        adds: Option<chatter::proto::Addition>,
    ) {
        let hash = chatter::client::ballot::commit_hash(&commit);
        let electorate = u32::try_from(self.group.members().len()).unwrap();
        let frame = ClientFrame::Commit { room: room.into(), commit, adds, electorate };
        self.raw.send(&frame).await.unwrap();
        support::expect_frame(
            &mut self.raw,
            |f| matches!(f, ServerFrame::Commit { from, .. } if from == "mallory"),
        )
        .await;
        let statement = VoteStatement { epoch: self.epoch, commit: hash, accept: true };
        let vote = self.group.encrypt_message(&encode(&GroupMessage::Vote(statement))).unwrap();
        let frame =
            ClientFrame::CommitVote { room: room.into(), epoch: self.epoch, accept: true, vote };
        self.raw.send(&frame).await.unwrap();
        self.epoch += 1;
    }

    async fn verdict(&mut self) -> ServerFrame {
        support::expect_frame(&mut self.raw, |f| {
            matches!(
                f,
                ServerFrame::CommitConfirmed { .. }
                    | ServerFrame::CommitAborted { .. }
                    | ServerFrame::CommitRejected { .. }
            )
        })
        .await
    }
}

#[tokio::test]
async fn a_leader_cannot_remove_the_members_who_are_still_here() {
    let relay = support::start_relay().await;
    let (mut mallory, _) = RogueLeader::create(&relay, "den").await;
    let (alice, mut alice_events) = chat_client(&relay, "alice").await;
    mallory.admit(&alice, "den", "pw").await;
    let (bob, mut bob_events) = chat_client(&relay, "bob").await;
    mallory.admit(&bob, "den", "pw").await;
    joined(&mut alice_events, "bob").await;

    let remove_everyone = mallory.group.commit_remove(&["alice", "bob"]).unwrap();
    mallory.commit("den", remove_everyone.commit, None).await;
    // Protocol 5: the abort carries the signed no votes of alice and bob (mallory's own yes
    // is not enough), so every member can check that the room refused it.
    let aborted = mallory.verdict().await;
    let ServerFrame::CommitAborted { room, epoch: 2, votes } = &aborted else {
        panic!("{aborted:?}")
    };
    let mut refusers: Vec<&str> = votes.iter().map(|vote| vote.from.as_str()).collect();
    refusers.sort_unstable();
    assert_eq!((room.as_str(), refusers), ("den", vec!["alice", "bob"]));
    for events in [&mut alice_events, &mut bob_events] {
        let warned = expect_event(events, |e| matches!(e, Event::Warning { .. })).await;
        assert!(
            matches!(&warned, Event::Warning { text, .. }
                if text.contains("refused a key change claimed to be from mallory: it removes you")),
            "{warned:?}"
        );
        expect_event(events, |e| matches!(e, Event::Left { nick, .. } if nick == "mallory")).await;
    }
    // Nobody was removed: alice (leading now) and bob carry on, and mallory is out.
    alice.send_text("still both here").await.unwrap();
    expect_event(&mut bob_events, is_message("alice", "still both here")).await;
    let who = bob.members().await.unwrap();
    let nicks: Vec<&str> = who.members.iter().map(|m| m.nick.as_str()).collect();
    assert_eq!(nicks, ["alice", "bob"]);
    assert!(who.members[0].is_leader);
}

#[tokio::test]
async fn a_joiner_with_the_password_cannot_join_under_another_members_name() {
    let relay = support::start_relay().await;
    let (alice, mut alice_events) = chat_client(&relay, "alice").await;
    alice.join("den", Secret::from("pw")).await.unwrap();
    let (bob, mut bob_events) = chat_client(&relay, "bob").await;
    bob.join("den", Secret::from("pw")).await.unwrap();
    joined(&mut alice_events, "bob").await;
    let epoch_before = bob.members().await.unwrap().members.len();

    // Mallory registers as "mallory", knows the password, and offers a key package that
    // says "bob": she would sit in the group under bob's name.
    let mut mallory = support::raw_client(&relay, "mallory").await;
    let posing_as_bob = MlsMember::new("bob").unwrap().key_package().unwrap();
    support::raw_join(&mut mallory, "den", "mallory", "pw", &posing_as_bob).await;
    // The leader refuses and says why; mallory is told; nobody's group changed.
    let refused =
        support::expect_frame(&mut mallory, |f| matches!(f, ServerFrame::AdmissionRefused { .. }))
            .await;
    assert!(
        matches!(
            refused,
            ServerFrame::AdmissionRefused {
                reason: chatter::proto::AdmissionRefusal::InvalidKeyPackage,
                ..
            }
        ),
        "{refused:?}"
    );
    expect_event(&mut alice_events, is_warning("the key package is for \"bob\", not \"mallory\""))
        .await;
    alice.send_text("still two of us").await.unwrap();
    expect_event(&mut bob_events, is_message("alice", "still two of us")).await;
    let who = bob.members().await.unwrap();
    assert_eq!(who.members.len(), epoch_before);
    assert!(who.members.iter().all(|m| m.nick != "mallory"));
    assert_eq!(who.members.iter().filter(|m| m.nick == "bob").count(), 1);
}

/// The room `vault`: alice founds it, bob joins through a man in the middle, carol joins
/// after him (the room is at epoch 2).
struct Vault {
    _relay: support::TestRelay,
    alice: chatter::client::Client,
    alice_events: Events,
    bob: chatter::client::Client,
    bob_events: Events,
    control: support::mitm::Control,
    carol: chatter::client::Client,
    _carol_events: Events,
}

async fn vault_with_bob_through_a_mitm_and_carol() -> Vault {
    let relay = support::start_relay().await;
    let (alice, mut alice_events) = chat_client(&relay, "alice").await;
    alice.join("vault", Secret::from("pw")).await.unwrap();
    let (bob, mut bob_events, control) = chat_client_through_a_mitm(&relay, "bob").await;
    bob.join("vault", Secret::from("pw")).await.unwrap();
    joined(&mut alice_events, "bob").await;
    let (carol, carol_events) = chat_client(&relay, "carol").await;
    carol.join("vault", Secret::from("pw")).await.unwrap();
    joined(&mut bob_events, "carol").await;
    Vault {
        _relay: relay,
        alice,
        alice_events,
        bob,
        bob_events,
        control,
        carol,
        _carol_events: carol_events,
    }
}

/// Protocol 5: nothing the relay sends makes a member run the password exchange, which would
/// hand the relay one online guess at the room password per forced rejoin.
#[tokio::test]
async fn a_forged_removal_or_a_replayed_confirmation_starts_no_password_exchange() {
    use chatter::client::RoomNotice;
    // Carol's join gives bob a real confirmation to replay.
    let Vault {
        _relay,
        alice,
        mut alice_events,
        bob,
        mut bob_events,
        control,
        carol: _carol,
        _carol_events,
    } = vault_with_bob_through_a_mitm_and_carol().await;
    let seen_before = control.sent_by_client.lock().unwrap().len();

    // A forged removal: bob asks for his place back as it was, and has it.
    let removal = chatter::proto::RemovalReason::NoVote;
    control.inject.send(ServerFrame::Removed { room: "vault".into(), reason: removal }).unwrap();
    expect_event(&mut bob_events, |e| {
        matches!(e, Event::Room { notice: RoomNotice::TakenOut { .. }, .. })
    })
    .await;
    expect_event(
        &mut bob_events,
        |e| matches!(e, Event::Notice { text, .. } if text.contains("same group and keys")),
    )
    .await;
    // A replayed confirmation: bob merges nothing and says so.
    let replayed = ServerFrame::CommitConfirmed { room: "vault".into(), epoch: 2, votes: vec![] };
    control.inject.send(replayed).unwrap();
    expect_event(&mut bob_events, |e| {
        matches!(e, Event::Room { notice: RoomNotice::UnexpectedConfirmation, .. })
    })
    .await;
    bob.send_text("still here").await.unwrap();
    expect_event(&mut alice_events, is_message("bob", "still here")).await;
    alice.send_text("and so am i").await.unwrap();
    expect_event(&mut bob_events, is_message("alice", "and so am i")).await;
    let sent_after: Vec<ClientFrame> =
        control.sent_by_client.lock().unwrap()[seen_before..].to_vec();
    assert!(
        sent_after.iter().any(|frame| matches!(frame, ClientFrame::Reclaim { .. })),
        "{sent_after:?}"
    );
    assert!(
        !sent_after
            .iter()
            .any(|frame| matches!(frame, ClientFrame::Join { .. } | ClientFrame::Leave { .. })),
        "no password exchange, no leaving: {sent_after:?}"
    );
}

/// Protocol 10: a relay (or anyone in the middle) that replays an old `MemberJoined` cannot
/// make a member list someone as back who has gone: the notice names its epoch, and a member
/// past it ignores it, saying so. Believed, it would make the member refuse the removal the
/// room owes, and be taken out for it (simulation seed 519).
#[tokio::test]
async fn a_replayed_notice_that_someone_joined_is_not_believed() {
    // Carol joins (the room goes to epoch 2) and leaves (her removal takes it to 3).
    let Vault {
        _relay,
        alice,
        mut alice_events,
        bob,
        mut bob_events,
        control,
        carol,
        _carol_events,
    } = vault_with_bob_through_a_mitm_and_carol().await;
    carol.leave(None).await.unwrap();
    expect_event(&mut bob_events, |e| matches!(e, Event::Left { nick, .. } if nick == "carol"))
        .await;
    alice.send_text("carol is gone").await.unwrap();
    expect_event(&mut bob_events, is_message("alice", "carol is gone")).await;

    let replayed =
        ServerFrame::MemberJoined { room: "vault".into(), nick: "carol".into(), epoch: 2 };
    control.inject.send(replayed).unwrap();
    expect_event(&mut bob_events, is_warning("ignored a notice that carol joined")).await;
    bob.send_text("still here").await.unwrap();
    expect_event(&mut alice_events, is_message("bob", "still here")).await;
}

/// Protocol 5: a relay that answers a leader's commit "busy" while keeping it gets the very
/// same commit again, never a second one for the epoch (attack 5 needed two), and the joiner
/// gets in once the relay takes it.
#[tokio::test]
async fn a_leader_told_busy_sends_the_same_commit_again() {
    let relay = support::start_relay().await;
    let (alice, mut alice_events, control) = chat_client_through_a_mitm(&relay, "alice").await;
    alice.join("vault", Secret::from("pw")).await.unwrap();
    control.answer_commits_busy.store(true, std::sync::atomic::Ordering::SeqCst);
    let (bob, mut bob_events) = chat_client(&relay, "bob").await;
    bob.join("vault", Secret::from("pw")).await.unwrap();
    joined(&mut alice_events, "bob").await;
    control.answer_commits_busy.store(false, std::sync::atomic::Ordering::SeqCst);
    let commits: Vec<Vec<u8>> = control
        .sent_by_client
        .lock()
        .unwrap()
        .iter()
        .filter_map(|frame| match frame {
            ClientFrame::Commit { commit, .. } => Some(commit.clone()),
            _ => None,
        })
        .collect();
    assert!(!commits.is_empty());
    assert!(commits.iter().all(|commit| *commit == commits[0]), "one commit for the epoch");
    alice.send_text("welcome").await.unwrap();
    expect_event(&mut bob_events, is_message("alice", "welcome")).await;
}

/// A middle that knows the access code and the room password plays a joiner at the leader
/// and offers key packages whose certifications are forged: one signed by another key than
/// the identity it names (a victim's), one genuine but certifying a client for another
/// nickname. The leader refuses both, says why, and tells the joiner the true reason.
#[tokio::test]
async fn a_forged_certification_is_refused_with_a_warning_and_its_reason() {
    use chatter::admission::JoinerAdmission;
    use chatter::proto::AdmissionRefusal;
    use std::sync::atomic::Ordering;

    let relay = support::start_relay().await;
    let (bob, mut bob_events, control) = chat_client_through_a_mitm(&relay, "bob").await;
    bob.join("vault", Secret::from("pw")).await.unwrap();
    let (alice, mut alice_events) = chat_client(&relay, "alice").await;
    alice.join("vault", Secret::from("pw")).await.unwrap();
    joined(&mut bob_events, "alice").await;
    control.hold_admission_answers.store(true, Ordering::SeqCst);

    let key_pair = || {
        openmls_basic_credential::SignatureKeyPair::new(openmls::prelude::SignatureScheme::ED25519)
            .unwrap()
    };
    // Signed by mallory's key, naming the identity key of a victim.
    let (victim, forged_device) = (key_pair(), key_pair());
    let mut forged =
        chatter::mls::device::certify(&key_pair(), forged_device.public(), "carol", 1).unwrap();
    forged.claims.identity_key = victim.public().to_vec();
    // Genuine, but for a client called "alice-2": the certification binds the nickname.
    let identity = key_pair();
    let other_device = key_pair();
    let for_another_nick =
        chatter::mls::device::certify(&identity, other_device.public(), "alice-2", 1).unwrap();
    let cases = [
        (
            forged_device,
            forged,
            "carol's credential is refused: its certification is not signed by the identity key it names",
            AdmissionRefusal::Uncertified,
        ),
        (
            other_device,
            for_another_nick,
            "the key package is for \"alice-2\", not \"carol\"",
            AdmissionRefusal::InvalidKeyPackage,
        ),
    ];
    for (attempt, (device, certificate, warning, reason)) in (1u64..).zip(cases) {
        let mallory = MlsMember::with_certificate(device, certificate).unwrap();
        let seen = control.sent_by_client.lock().unwrap().len();
        let (admission, start) = JoinerAdmission::start("vault", "carol", b"pw");
        let request = ServerFrame::AdmissionRequest {
            room: "vault".into(),
            joiner: "carol".into(),
            attempt,
            pake_message: start,
        };
        control.inject.send(request).unwrap();
        let reply = control.sent(seen, |f| matches!(f, ClientFrame::AdmissionReply { .. })).await;
        let ClientFrame::AdmissionReply { pake_message, .. } = reply else { unreachable!() };
        let finish =
            admission.finish("bob", &pake_message, &mallory.key_package().unwrap()).unwrap();
        control
            .inject
            .send(ServerFrame::AdmissionFinish {
                room: "vault".into(),
                joiner: "carol".into(),
                attempt,
                confirmation: finish.confirmation.to_vec(),
                sealed_key_package: finish.sealed_key_package,
            })
            .unwrap();
        expect_event(&mut bob_events, is_warning(warning)).await;
        let refused =
            control.sent(seen, |f| matches!(f, ClientFrame::AdmissionRefused { .. })).await;
        assert!(
            matches!(&refused, ClientFrame::AdmissionRefused { joiner, reason: r, .. }
                if joiner == "carol" && *r == reason),
            "{refused:?}"
        );
    }
    // Nobody was added, and the room goes on.
    bob.send_text("still two of us").await.unwrap();
    expect_event(&mut alice_events, is_message("bob", "still two of us")).await;
    let who = alice.members().await.unwrap();
    let nicks: Vec<&str> = who.members.iter().map(|m| m.nick.as_str()).collect();
    assert_eq!(nicks, ["bob", "alice"]);
}
