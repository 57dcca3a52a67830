//! One client in several rooms at once: real relays, real engines. Lines go only to the
//! room they were meant for, a room that is not current still delivers (and counts unread),
//! `/part` of one keeps the others, and a relay restart brings every room back.

use std::time::Duration;

use chatter::client::{Client, ConnectionEvent, Event, Events, MAX_ROOMS, RoomTab};
use chatter::secret::Secret;

use crate::repl_support::spawn_relay_binary;
use crate::support::{self, expect_event, expect_event_after};

fn is_message(room: &str, from: &str, text: &str) -> impl Fn(&Event) -> bool {
    let (room, from, text) = (room.to_owned(), from.to_owned(), text.to_owned());
    move |event| {
        matches!(event, Event::Message { room: r, from: f, text: t, .. }
            if *r == room && *f == from && *t == text)
    }
}

fn is_joined(room: &str, nick: &str) -> impl Fn(&Event) -> bool {
    let (room, nick) = (room.to_owned(), nick.to_owned());
    move |event| matches!(event, Event::Joined { room: r, nick: n } if *r == room && *n == nick)
}

fn tabs(client: &Client) -> Vec<(String, usize, bool)> {
    client
        .room_tabs()
        .into_iter()
        .map(|RoomTab { name, unread, current, .. }| (name, unread, current))
        .collect()
}

fn tab(name: &str, unread: usize, current: bool) -> (String, usize, bool) {
    (name.to_owned(), unread, current)
}

/// Alice in `dev` and `ops` (joined in that order, so `ops` is current); bob in `dev`,
/// carol in `ops`.
async fn alice_in_two_rooms(
    server: &str,
) -> ((Client, Events), (Client, Events), (Client, Events)) {
    let (alice, mut alice_events) = support::chat_client_at(server, "alice").await;
    let (bob, mut bob_events) = support::chat_client_at(server, "bob").await;
    let (carol, mut carol_events) = support::chat_client_at(server, "carol").await;
    alice.join("dev", Secret::default()).await.expect("alice joins dev");
    alice.join("ops", Secret::default()).await.expect("alice joins ops, keeping dev");
    bob.join("dev", Secret::default()).await.expect("bob joins dev");
    carol.join("ops", Secret::default()).await.expect("carol joins ops");
    expect_event(&mut alice_events, is_joined("dev", "bob")).await;
    expect_event(&mut alice_events, is_joined("ops", "carol")).await;
    expect_event(&mut bob_events, is_joined("dev", "bob")).await;
    expect_event(&mut carol_events, is_joined("ops", "carol")).await;
    ((alice, alice_events), (bob, bob_events), (carol, carol_events))
}

#[tokio::test]
async fn a_client_in_two_rooms_hears_both_and_each_line_goes_only_where_it_was_meant() {
    let relay = support::start_relay().await;
    let ((alice, mut alice_events), (_bob, mut bob_events), (carol, mut carol_events)) =
        alice_in_two_rooms(&relay.addr()).await;
    assert_eq!(tabs(&alice), [tab("dev", 0, false), tab("ops", 0, true)]);

    // Plain lines go to the current room, and only there. Alice's frames are handled in the
    // order she sent them, so a line that went to the wrong room would arrive there before
    // the next line meant for that room.
    alice.send_text("to ops").await.unwrap();
    alice.switch("dev").await.unwrap();
    alice.send_text("to dev").await.unwrap();
    alice.switch("ops").await.unwrap();
    alice.send_text("ops again").await.unwrap();
    let (_, bob_saw) =
        expect_event_after(&mut bob_events, is_message("dev", "alice", "to dev")).await;
    assert!(support::texts(&bob_saw).is_empty(), "a line for ops reached dev: {bob_saw:?}");
    let (_, carol_saw) =
        expect_event_after(&mut carol_events, is_message("ops", "alice", "ops again")).await;
    assert_eq!(support::texts(&carol_saw), ["to ops"], "only the lines for ops, in order");

    alice.switch("dev").await.unwrap();
    carol.send_text("carol's line").await.unwrap();
    // A line of the room that is not current arrives at once, with its room, and counts as
    // unread until alice switches there.
    expect_event(&mut alice_events, is_message("ops", "carol", "carol's line")).await;
    assert!(
        support::eventually(|| tabs(&alice) == [tab("dev", 0, true), tab("ops", 1, false)]).await,
        "{:?}",
        tabs(&alice)
    );
    assert_eq!(alice.switch("2").await.unwrap(), "ops");
    assert_eq!(tabs(&alice), [tab("dev", 0, false), tab("ops", 0, true)]);

    // `/part dev` keeps ops, current, and its traffic.
    alice.leave(Some("dev")).await.unwrap();
    expect_event(
        &mut bob_events,
        |e| matches!(e, Event::Left { room, nick } if room == "dev" && nick == "alice"),
    )
    .await;
    assert_eq!(tabs(&alice), [tab("ops", 0, true)]);
    carol.send_text("still here?").await.unwrap();
    expect_event(&mut alice_events, is_message("ops", "carol", "still here?")).await;
    alice.send_text("yes").await.unwrap();
    expect_event(&mut carol_events, is_message("ops", "alice", "yes")).await;
}

#[tokio::test]
async fn joining_a_room_again_only_makes_it_current_and_the_limit_is_said() {
    let relay = support::start_relay().await;
    let (alice, mut events) = support::chat_client(&relay, "alice").await;
    for n in 0..MAX_ROOMS {
        alice.join(&format!("room-{n}"), Secret::default()).await.expect("within the limit");
    }
    let error = alice.join("one-too-many", Secret::default()).await.unwrap_err();
    assert!(error.to_string().contains(&format!("{MAX_ROOMS} rooms")), "{error}");
    let again = alice.join("room-3", Secret::default()).await.unwrap_err();
    assert!(again.to_string().contains("already in room-3"), "{again}");
    assert_eq!(alice.current_room().as_deref(), Some("room-3"));
    assert!(
        !std::iter::from_fn(|| events.try_recv()).any(|e| matches!(e, Event::Left { .. })),
        "no room was left on the way"
    );
    assert!(alice.join("@bob", Secret::default()).await.is_err(), "@ marks direct messages");
}

/// Waits on real time (the relay is another process) for an event that matches.
async fn wait_for(events: &mut Events, wanted: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = events.recv().await {
            let done = wanted(&event);
            seen.push(event);
            if done {
                return;
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "no such event in time; saw {seen:#?}");
    seen
}

#[tokio::test]
async fn a_relay_restart_brings_every_room_back() {
    let (mut relay, address) = spawn_relay_binary("127.0.0.1:0", support::ACCESS_CODE);
    let server = address.to_string();
    let ((alice, mut alice_events), (bob, mut bob_events), (carol, mut carol_events)) =
        alice_in_two_rooms(&server).await;

    let pid = relay.id().to_string();
    let killed = std::process::Command::new("kill").args(["-KILL", &pid]).status();
    assert!(killed.is_ok_and(|status| status.success()));
    let _ = relay.wait();
    (relay, _) = spawn_relay_binary(&server, support::ACCESS_CODE);
    let back = |room: &'static str| {
        move |e: &Event| {
            matches!(e, Event::Notice { room: Some(r), text }
                if r == room && text.starts_with("back in the room, with the same group"))
        }
    };
    let seen = wait_for(&mut alice_events, back("dev")).await;
    assert!(
        seen.iter().any(|e| matches!(e, Event::Connection(ConnectionEvent::Reconnected { .. }))),
        "{seen:#?}"
    );
    let seen_ops = wait_for(&mut alice_events, back("ops")).await;
    let _ = seen_ops;
    wait_for(&mut bob_events, back("dev")).await;
    wait_for(&mut carol_events, back("ops")).await;
    assert_eq!(
        tabs(&alice),
        [tab("dev", 0, false), tab("ops", 0, true)],
        "both rooms, ops current"
    );

    // Both rooms carry lines again, each to its own members.
    alice.send_text("ops is back").await.unwrap();
    wait_for(&mut carol_events, is_message("ops", "alice", "ops is back")).await;
    bob.send_text("dev is back").await.unwrap();
    wait_for(&mut alice_events, is_message("dev", "bob", "dev is back")).await;
    carol.send_text("bye").await.unwrap();
    wait_for(&mut alice_events, is_message("ops", "carol", "bye")).await;
    let _ = relay.kill();
    let _ = relay.wait();
}
