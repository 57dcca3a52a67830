//! Direct messages with the real relay and real engines: opened from either side, or from
//! both at once, they land in one DM; their lines reach only the two; they outlive the room
//! they were opened through; a refusal is reported; nobody else can enter their relay room.

use chatter::client::{Client, ConnectionEvent, DmPolicy, Event, Events, NotSentReason};
use chatter::proto::{ClientFrame, ErrorReason, ReclaimRefusal, ServerFrame};
use chatter::secret::Secret;

use std::time::Duration;

use crate::repl_support::spawn_relay_binary;
use crate::support::{self, expect_event, expect_event_after, expect_frame};

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

/// The names of a client's DMs, as its prompt shows them.
fn dm_tabs(client: &Client) -> Vec<String> {
    client
        .room_tabs()
        .into_iter()
        .map(|tab| tab.name)
        .filter(|name| name.starts_with('@'))
        .collect()
}

/// Alice, bob and carol, all in `dev`.
async fn three_in_dev(server: &str) -> [(Client, Events); 3] {
    let mut clients = Vec::new();
    for nick in ["alice", "bob", "carol"] {
        let (client, mut events) = support::chat_client_at(server, nick).await;
        client.join("dev", Secret::default()).await.expect("joins dev");
        expect_event(&mut events, is_joined("dev", nick)).await;
        clients.push((client, events));
    }
    let [alice, mut bob, carol] = <[_; 3]>::try_from(clients).ok().unwrap();
    expect_event(&mut bob.1, is_joined("dev", "carol")).await;
    [alice, bob, carol]
}

#[tokio::test]
async fn dms_opened_from_either_side_land_in_one_dm_and_reach_only_the_two() {
    let relay = support::start_relay().await;
    let [(alice, mut alice_events), (bob, mut bob_events), (carol, mut carol_events)] =
        three_in_dev(&relay.addr()).await;

    alice.msg("bob", "hello bob").await.unwrap();
    expect_event(&mut bob_events, is_message("@alice", "alice", "hello bob")).await;
    // Bob answers with `/msg alice`: the same DM, not a second one.
    bob.msg("alice", "hello alice").await.unwrap();
    expect_event(&mut alice_events, is_message("@bob", "bob", "hello alice")).await;
    alice.msg("bob", "again").await.unwrap();
    expect_event(&mut bob_events, is_message("@alice", "alice", "again")).await;
    assert_eq!(dm_tabs(&alice), ["@bob"]);
    assert_eq!(dm_tabs(&bob), ["@alice"]);

    // Carol, in the room the DM was opened through, hears none of it: everything before
    // alice's next line in dev, which the relay orders after the DM's key exchange.
    alice.switch("dev").await.unwrap();
    alice.send_text("in dev").await.unwrap();
    let (_, before) =
        expect_event_after(&mut carol_events, is_message("dev", "alice", "in dev")).await;
    assert!(
        !before.iter().any(|event| matches!(event, Event::Message { .. })),
        "carol saw a message of the DM: {before:#?}"
    );
    assert!(dm_tabs(&carol).is_empty());

    // The relay never lists a DM.
    let listed = carol.rooms().await.unwrap();
    assert!(listed.iter().all(|room| !room.name.starts_with('@')), "{listed:?}");
}

#[tokio::test]
async fn dms_opened_from_both_sides_at_once_end_in_one_dm() {
    let relay = support::start_relay().await;
    let [(alice, mut alice_events), (bob, mut bob_events), _carol] =
        three_in_dev(&relay.addr()).await;

    let (sent_by_alice, sent_by_bob) =
        tokio::join!(alice.msg("bob", "from alice"), bob.msg("alice", "from bob"));
    sent_by_alice.unwrap();
    sent_by_bob.unwrap();
    expect_event(&mut bob_events, is_message("@alice", "alice", "from alice")).await;
    expect_event(&mut alice_events, is_message("@bob", "bob", "from bob")).await;
    // One group: each side's next line reaches the other in it.
    alice.msg("bob", "still one").await.unwrap();
    expect_event(&mut bob_events, is_message("@alice", "alice", "still one")).await;
    bob.msg("alice", "yes, one").await.unwrap();
    expect_event(&mut alice_events, is_message("@bob", "bob", "yes, one")).await;
    assert_eq!(dm_tabs(&alice), ["@bob"]);
    assert_eq!(dm_tabs(&bob), ["@alice"]);
}

#[tokio::test]
async fn a_dm_stays_open_when_the_shared_room_is_left() {
    let relay = support::start_relay().await;
    let [(alice, _alice_events), (bob, mut bob_events), _carol] = three_in_dev(&relay.addr()).await;
    alice.msg("bob", "hi").await.unwrap();
    expect_event(&mut bob_events, is_message("@alice", "alice", "hi")).await;

    bob.leave(Some("dev")).await.unwrap();
    alice.leave(Some("dev")).await.unwrap();
    alice.msg("bob", "still here").await.unwrap();
    expect_event(&mut bob_events, is_message("@alice", "alice", "still here")).await;
    assert_eq!(dm_tabs(&bob), ["@alice"]);

    // Without a shared room and without the DM, there is nobody to open one through.
    bob.leave(Some("@alice")).await.unwrap();
    let error = bob.msg("carol", "hello?").await.unwrap_err();
    assert!(error.to_string().contains("share no room"), "{error}");
}

#[tokio::test]
async fn a_dm_the_other_closed_is_opened_anew_by_the_next_line() {
    let relay = support::start_relay().await;
    let [(alice, mut alice_events), (bob, mut bob_events), _carol] =
        three_in_dev(&relay.addr()).await;
    alice.msg("bob", "first").await.unwrap();
    expect_event(&mut bob_events, is_message("@alice", "alice", "first")).await;

    bob.leave(Some("@alice")).await.unwrap();
    // The relay handles bob's frames in order and tells alice in that order: once his next
    // line in dev is there, so is the news that he left the DM.
    bob.switch("dev").await.unwrap();
    bob.send_text("closed it").await.unwrap();
    expect_event(&mut alice_events, is_message("dev", "bob", "closed it")).await;
    // Sent into the old DM, it would reach nobody.
    alice.msg("bob", "second").await.unwrap();
    expect_event(&mut bob_events, is_message("@alice", "alice", "second")).await;
    assert_eq!(dm_tabs(&alice), ["@bob"]);
    assert_eq!(dm_tabs(&bob), ["@alice"]);
}

#[tokio::test]
async fn a_refused_dm_is_reported_to_the_sender() {
    let relay = support::start_relay().await;
    let [(alice, mut alice_events), (bob, _bob_events), _carol] = three_in_dev(&relay.addr()).await;
    bob.set_dm_policy(DmPolicy::Nobody);

    alice.msg("bob", "may I?").await.unwrap();
    expect_event(
        &mut alice_events,
        |event| matches!(event, Event::DmRefused { nick } if nick == "bob"),
    )
    .await;
    let not_sent = expect_event(&mut alice_events, |event| {
        matches!(event, Event::Connection(chatter::client::ConnectionEvent::NotSent { .. }))
    })
    .await;
    let Event::Connection(chatter::client::ConnectionEvent::NotSent { texts, reason }) = not_sent
    else {
        unreachable!()
    };
    assert_eq!(texts, ["may I?"]);
    assert!(matches!(reason, NotSentReason::DmRefused));
    assert!(dm_tabs(&alice).is_empty());
    assert!(dm_tabs(&bob).is_empty());
}

#[tokio::test]
async fn an_outsider_cannot_enter_or_name_a_dm_room() {
    let relay = support::start_relay().await;
    let [(alice, _alice_events), (_bob, mut bob_events), _carol] =
        three_in_dev(&relay.addr()).await;
    alice.msg("bob", "private").await.unwrap();
    expect_event(&mut bob_events, is_message("@alice", "alice", "private")).await;

    let mut mallory = support::raw_client(&relay, "mallory").await;
    // No `Join` of a DM's name: it would found the room, or start an admission into it.
    mallory
        .send(&ClientFrame::Join {
            room: "@0123456789abcdef0123456789abcde".into(),
            pake_message: vec![1; 32],
        })
        .await
        .unwrap();
    let refused =
        expect_frame(&mut mallory, |frame| matches!(frame, ServerFrame::Error { .. })).await;
    assert!(
        matches!(refused, ServerFrame::Error { reason: ErrorReason::RoomNameInvalid, .. }),
        "{refused:?}"
    );
    // A `Reclaim` of a DM's name is let in only with the group id the name is the hash of,
    // which only the two members hold: a made-up group is refused.
    let reclaim = ClientFrame::Reclaim {
        room: "@0123456789abcdef0123456789abcde".into(),
        group_id: vec![7; 16],
        epoch: 1,
        pledged: None,
        proof: Vec::new(),
        last_commit: None,
        earlier: Vec::new(),
    };
    mallory.send(&reclaim).await.unwrap();
    let refused =
        expect_frame(&mut mallory, |frame| matches!(frame, ServerFrame::ReclaimRefused { .. }))
            .await;
    assert!(
        matches!(
            refused,
            ServerFrame::ReclaimRefused {
                reason: ReclaimRefusal::Unavailable(ErrorReason::RoomNameInvalid),
                ..
            }
        ),
        "{refused:?}"
    );
    // And the relay's list does not name the DM for mallory to try.
    mallory.send(&ClientFrame::ListRooms).await.unwrap();
    let listed =
        expect_frame(&mut mallory, |frame| matches!(frame, ServerFrame::RoomList { .. })).await;
    let ServerFrame::RoomList { rooms } = listed else { unreachable!() };
    assert_eq!(rooms.iter().map(|room| room.name.as_str()).collect::<Vec<_>>(), ["dev"]);

    // The DM goes on undisturbed.
    alice.msg("bob", "still private").await.unwrap();
    expect_event(&mut bob_events, is_message("@alice", "alice", "still private")).await;
}

/// Waits (at most 20 s: a restart takes the reconnection backoff) for an event.
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
async fn a_dm_comes_back_after_a_relay_restart() {
    let (mut relay, address) = spawn_relay_binary("127.0.0.1:0", support::ACCESS_CODE);
    let server = address.to_string();
    let [(alice, mut alice_events), (bob, mut bob_events), _carol] = three_in_dev(&server).await;
    alice.msg("bob", "before").await.unwrap();
    expect_event(&mut bob_events, is_message("@alice", "alice", "before")).await;

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
    // (Not shown when the DM opened: the relay's first taking-in is the opening.)
    let reconnected =
        |e: &Event| matches!(e, Event::Connection(ConnectionEvent::Reconnected { .. }));
    wait_for(&mut alice_events, reconnected).await;
    wait_for(&mut bob_events, reconnected).await;
    wait_for(&mut alice_events, back("@bob")).await;
    wait_for(&mut bob_events, back("@alice")).await;

    alice.msg("bob", "after").await.unwrap();
    wait_for(&mut bob_events, is_message("@alice", "alice", "after")).await;
    bob.msg("alice", "me too").await.unwrap();
    wait_for(&mut alice_events, is_message("@bob", "bob", "me too")).await;
    let _ = relay.kill();
    let _ = relay.wait();
}
