//! Post-quantum rooms: a room created with `--pq` (`Client::set_room_suite`) runs on the
//! X-Wing suite, its joiners follow it, and a joiner that cannot use a room's suite is told
//! which, against a real relay.

use chatter::admission::LeaderAdmission;
use chatter::client::{ClientError, Event, RoomError};
use chatter::mls::{MlsError, RoomSuite, UnsupportedSuite};
use chatter::proto::{ClientFrame, ServerFrame};
use chatter::secret::Secret;

use crate::support::{self, chat_client, expect_event, expect_frame, raw_client};

fn is_message(from: &str, text: &str) -> impl Fn(&Event) -> bool {
    let (from, text) = (from.to_owned(), text.to_owned());
    move |event| matches!(event, Event::Message { from: f, text: t, .. } if *f == from && *t == text)
}

#[tokio::test]
async fn a_post_quantum_room_carries_chat_and_every_member_sees_its_suite() {
    let relay = support::start_relay().await;
    let (alice, mut alice_events) = chat_client(&relay, "alice").await;
    alice.set_room_suite(RoomSuite::PostQuantum);
    alice.join("vault", Secret::from("s3cret")).await.unwrap();
    // Bob asked for nothing: he learns the room's suite from alice's answer.
    let (bob, mut bob_events) = chat_client(&relay, "bob").await;
    bob.join("vault", Secret::from("s3cret")).await.unwrap();
    expect_event(&mut alice_events, |e| matches!(e, Event::Joined { nick, .. } if nick == "bob"))
        .await;
    for client in [&alice, &bob] {
        let view = client.members().await.unwrap();
        assert_eq!(view.members.len(), 2);
        assert_eq!(view.suite, Some(RoomSuite::PostQuantum));
    }
    alice.send_text("hello from the hybrid room").await.unwrap();
    expect_event(&mut bob_events, is_message("alice", "hello from the hybrid room")).await;
    bob.send_text("and back").await.unwrap();
    expect_event(&mut alice_events, is_message("bob", "and back")).await;
    // A room alice did not create keeps its creator's suite.
    let (carol, _carol_events) = chat_client(&relay, "carol").await;
    carol.join("lobby", Secret::from("")).await.unwrap();
    alice.join("lobby", Secret::from("")).await.unwrap();
    assert_eq!(alice.members().await.unwrap().suite, Some(RoomSuite::Classic));
}

/// The leader is a frame-level client that answers the password exchange as a leader whose
/// room uses a suite this build does not implement would (X-Wing draft-01, which openmls
/// names and RustCrypto has no code for): the real joiner refuses it by name, makes no
/// KeyPackage, and leaves the room.
#[tokio::test]
async fn a_joiner_that_cannot_use_the_rooms_suite_is_refused_with_the_suite_named() {
    let relay = support::start_relay().await;
    let mut leader = raw_client(&relay, "alice").await;
    leader
        .send(&ClientFrame::Join { room: "future".into(), pake_message: vec![1; 32] })
        .await
        .unwrap();
    expect_frame(&mut leader, |f| matches!(f, ServerFrame::RoomCreated { .. })).await;
    let (bob, _bob_events) = chat_client(&relay, "bob").await;
    let joining = tokio::spawn({
        let bob = bob.clone();
        async move { bob.join("future", Secret::from("pw")).await }
    });
    let request =
        expect_frame(&mut leader, |f| matches!(f, ServerFrame::AdmissionRequest { .. })).await;
    let ServerFrame::AdmissionRequest { joiner, attempt, pake_message, .. } = request else {
        unreachable!()
    };
    let (_admission, reply) =
        LeaderAdmission::respond("future", &joiner, "alice", b"pw", &pake_message).unwrap();
    let unsupported = 0x004d;
    leader
        .send(&ClientFrame::AdmissionReply {
            room: "future".into(),
            joiner,
            attempt,
            pake_message: reply,
            suite: unsupported,
        })
        .await
        .unwrap();
    let error = joining.await.unwrap().expect_err("a suite this client cannot use");
    assert!(
        matches!(
            error,
            ClientError::Admission(RoomError::Mls(MlsError::UnsupportedSuite(UnsupportedSuite {
                id: 0x004d
            })))
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the room uses MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519 (0x004d), a ciphersuite \
         this client cannot use"
    );
    assert_eq!(bob.current_room(), None);
    // Bob made no KeyPackage for the suite: nothing follows the leader's answer.
    let finish = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        expect_frame(&mut leader, |f| matches!(f, ServerFrame::AdmissionFinish { .. })),
    )
    .await;
    assert!(finish.is_err(), "{finish:?}");
}
