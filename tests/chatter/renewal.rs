//! Key renewal (issue 24): a member renews its own leaf keys through the leader's commit, on
//! `/rekey` and by itself after a while in the room. Real relay, real engines.

use std::time::Duration;

use chatter::client::{Client, Event, Events, RoomNotice};
use chatter::identity::Verification;
use chatter::secret::Secret;

use crate::support::{self, held};

const PASSWORD: &str = "room password";

fn renewed(who: &str) -> impl Fn(&Event) -> bool {
    let who = who.to_owned();
    move |event| matches!(event, Event::Room { notice: RoomNotice::KeysRenewed { nick }, .. } if *nick == who)
}

fn joined(who: &str) -> impl Fn(&Event) -> bool {
    let who = who.to_owned();
    move |event| matches!(event, Event::Joined { nick, .. } if *nick == who)
}

async fn room_code(client: &Client) -> (u64, String) {
    match held(client.verify(None)).await.expect("verify") {
        Verification::Room { epoch, code, .. } => (epoch, code),
        other => panic!("expected a room code, got {other:?}"),
    }
}

/// Alice creates the room and leads it; the others join, in order, and everyone has seen
/// everyone join.
async fn room_of(
    relay: &support::TestRelay,
    nicks: &[&str],
    renew_after: Option<Duration>,
) -> Vec<(Client, Events)> {
    let mut clients: Vec<(Client, Events)> = Vec::new();
    for nick in nicks {
        let (client, events) = held(support::chat_client(relay, nick)).await;
        if let Some(after) = renew_after {
            client.set_renew_after(after);
        }
        held(client.join("lobby", Secret::from(PASSWORD))).await.expect("join");
        clients.push((client, events));
        for (_, events) in &mut clients {
            held(support::expect_event(events, joined(nick))).await;
        }
    }
    clients
}

#[tokio::test]
async fn a_members_rekey_moves_the_room_to_a_new_epoch_with_one_code_for_all() {
    let relay = support::start_relay().await;
    let mut clients = room_of(&relay, &["alice", "bob", "carol"], None).await;
    let before = room_code(&clients[0].0).await;
    for (client, _) in &clients[1..] {
        assert_eq!(room_code(client).await, before);
    }

    // Bob is not the leader: he proposes, alice commits, everyone verifies and votes.
    clients[1].0.rekey().await.expect("rekey");
    for (_, events) in &mut clients {
        support::expect_event(events, renewed("bob")).await;
    }
    let after = room_code(&clients[0].0).await;
    assert_eq!(after.0, before.0 + 1, "one commit");
    assert_ne!(after.1, before.1, "the room's code changed");
    for (client, _) in &clients[1..] {
        assert_eq!(room_code(client).await, after, "every member sees the same new code");
    }
    // Chat goes on, under the new keys.
    clients[1].0.send_text("new keys").await.unwrap();
    for index in [0, 2] {
        let events = &mut clients[index].1;
        support::expect_event(events, |e| {
            matches!(e, Event::Message { from, text, .. } if from == "bob" && text == "new keys")
        })
        .await;
    }
    // /details (the member list) shows bob's keys as just renewed to every member.
    let members = clients[2].0.members().await.expect("members");
    let bob = members.members.iter().find(|m| m.nick == "bob").expect("bob");
    assert_eq!(bob.keys_age, Some(Duration::ZERO), "{members:?}");
    assert!(!bob.stale_keys);
}

/// A second: steps of virtual time coarse enough to run minutes of it quickly.
const SECOND: Duration = Duration::from_secs(1);

/// Lets `duration` of virtual time pass; returns the events of that time.
async fn pass_seconds(events: &mut Events, duration: Duration) -> Vec<Event> {
    support::pass_time_by(SECOND, duration).await;
    std::iter::from_fn(|| events.try_recv()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_member_renews_its_keys_by_itself_once_its_time_is_up() {
    let relay = support::start_relay().await;
    // Two minutes instead of a day: the same clock, run faster.
    let renew_after = Duration::from_secs(120);
    let mut clients = room_of(&relay, &["alice", "bob"], Some(renew_after)).await;
    let before = room_code(&clients[1].0).await;

    // Nothing before the time is up ...
    let early = pass_seconds(&mut clients[1].1, Duration::from_secs(100)).await;
    assert!(!early.iter().any(renewed("bob")), "{early:#?}");
    assert_eq!(room_code(&clients[1].0).await, before, "no renewal within 100 s");
    // ... and then bob's own, committed by alice, without anyone asking.
    support::pass_time_until_by(SECOND, &mut clients[1].1, Duration::from_secs(60), renewed("bob"))
        .await;
    support::pass_time_until_by(SECOND, &mut clients[0].1, Duration::from_secs(5), renewed("bob"))
        .await;
    let after = room_code(&clients[1].0).await;
    assert!(after.0 > before.0, "{before:?} {after:?}");
    assert_eq!(room_code(&clients[0].0).await, after);
}

#[tokio::test]
async fn a_members_renewal_that_takes_another_members_identity_is_refused_by_everyone() {
    use chatter::mls::MlsMember;
    use chatter::proto::{ClientFrame, ServerFrame};

    let relay = support::start_relay().await;
    let mut clients = room_of(&relay, &["alice", "bob"], None).await;
    // Mallory joins honestly, with the password and her own key package ...
    let mls = MlsMember::new("mallory").unwrap();
    let mut mallory = support::raw_client(&relay, "mallory").await;
    let key_package = mls.key_package().unwrap();
    support::raw_join(&mut mallory, "lobby", "mallory", PASSWORD, &key_package).await;
    let welcome =
        support::expect_frame(&mut mallory, |f| matches!(f, ServerFrame::Welcome { .. })).await;
    let ServerFrame::Welcome { message, .. } = welcome else { unreachable!() };
    let mut group = mls.join_room(&message).unwrap();
    for (_, events) in &mut clients {
        support::expect_event(events, joined("mallory")).await;
    }
    let before = room_code(&clients[0].0).await;

    // ... then proposes new keys for her leaf that carry alice's credential.
    let forged = group.propose_renewal_claiming("alice").unwrap();
    mallory
        .send(&ClientFrame::Application { room: "lobby".into(), message: forged })
        .await
        .unwrap();
    for (_, events) in &mut clients {
        support::expect_event(events, |e| {
            matches!(e, Event::Warning { text, .. }
                if text.starts_with("refused new keys claimed to be from mallory"))
        })
        .await;
    }
    // The leader commits nothing for it: after a round of chat, the room is where it was.
    clients[1].0.send_text("after the forgery").await.unwrap();
    support::expect_event(
        &mut clients[0].1,
        |e| matches!(e, Event::Message { text, .. } if text == "after the forgery"),
    )
    .await;
    assert_eq!(room_code(&clients[0].0).await, before);
    assert_eq!(room_code(&clients[1].0).await, before);
}
