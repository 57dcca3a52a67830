//! Sessions that survive the network: links cut and restored, relays restarted, lines typed
//! offline. Real relays, real engines, a real proxy that cuts links; the engines' backoff
//! and deadlines run on virtual time where the relay runs in the test, and on real time
//! where it is the real binary, stopped and started again.

use std::time::Duration;

use chatter::client::{
    Client, ClientError, ConnectionEvent, Event, Events, LinkLoss, Presence, RoomNotice, SessionEnd,
};
use chatter::proto::ReclaimRefusal;
use chatter::secret::Secret;

use crate::repl_support::spawn_relay_binary;
use crate::support::cutter::{Cut, LinkCutter};
use crate::support::{self, held, pass_time, pass_time_until};

const PASSWORD: &str = "room password";

fn is_message(from: &str, text: &str) -> impl Fn(&Event) -> bool {
    let (from, text) = (from.to_owned(), text.to_owned());
    move |event| matches!(event, Event::Message { from: f, text: t, .. } if *f == from && *t == text)
}

fn is_connection(wanted: fn(&ConnectionEvent) -> bool) -> impl Fn(&Event) -> bool {
    move |event| matches!(event, Event::Connection(change) if wanted(change))
}

/// Lets virtual time pass until `events` shows a change of the link that matches.
async fn link_change(
    events: &mut Events,
    limit: Duration,
    wanted: fn(&ConnectionEvent) -> bool,
) -> (Event, Vec<Event>) {
    pass_time_until(events, limit, is_connection(wanted)).await
}

/// Alice (straight to the relay) and bob (through `cutter`), in one room, with time held.
async fn alice_and_bob(
    relay: &support::TestRelay,
    cutter: &LinkCutter,
) -> ((Client, Events), (Client, Events)) {
    let (alice, mut alice_events) = held(support::chat_client(relay, "alice")).await;
    let (bob, mut bob_events) =
        held(support::chat_client_at(&cutter.address.to_string(), "bob")).await;
    held(alice.join("lobby", Secret::from(PASSWORD))).await.expect("alice joins");
    held(bob.join("lobby", Secret::from(PASSWORD))).await.expect("bob joins");
    held(support::expect_event(
        &mut alice_events,
        |e| matches!(e, Event::Joined { nick, .. } if nick == "bob"),
    ))
    .await;
    held(support::expect_event(
        &mut bob_events,
        |e| matches!(e, Event::Joined { nick, .. } if nick == "bob"),
    ))
    .await;
    ((alice, alice_events), (bob, bob_events))
}

/// The room's code and epoch as `/verify` shows them: equal codes mean the same group at the
/// same epoch.
async fn room_code(client: &Client) -> (u64, String) {
    let verification = held(client.verify(None)).await.expect("verify");
    match verification {
        chatter::identity::Verification::Room { epoch, code, .. } => (epoch, code),
        other => panic!("expected a room code, got {other:?}"),
    }
}

/// The messages in `events`, in order, with whether each came late.
fn messages(events: &[Event]) -> Vec<(String, bool)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Message { text, late, .. } => Some((text.clone(), *late)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_link_cut_for_five_seconds_loses_nothing_and_lines_typed_meanwhile_go_out() {
    let relay = support::start_relay().await;
    let cutter = LinkCutter::start(relay.address).await;
    let ((alice, mut alice_events), (bob, mut bob_events)) = alice_and_bob(&relay, &cutter).await;
    let before = room_code(&bob).await;

    cutter.cut(Cut::Close);
    link_change(&mut bob_events, Duration::from_secs(1), |c| {
        matches!(c, ConnectionEvent::Lost { .. })
    })
    .await;
    pass_time_until(
        &mut alice_events,
        Duration::from_secs(1),
        |e| matches!(e, Event::Notice { text, .. } if text.starts_with("bob lost the connection")),
    )
    .await;
    let who = held(alice.members()).await.expect("/who");
    let bob_seen = who.members.iter().find(|member| member.nick == "bob").map(|m| m.presence);
    assert_eq!(bob_seen, Some(Presence::Away), "{who:?}");
    for n in 0..20 {
        held(alice.send_text(&format!("while bob is away {n}"))).await.unwrap();
    }
    held(bob.send_text("typed offline")).await.expect("kept, not refused");
    let (queued, _) = link_change(&mut bob_events, Duration::from_secs(1), |c| {
        matches!(c, ConnectionEvent::Queued { .. })
    })
    .await;
    assert_eq!(queued, Event::Connection(ConnectionEvent::Queued { waiting: 1 }));
    pass_time(Duration::from_secs(5)).await;
    cutter.restore();

    // Back within the backoff's cap, as the same session: the twenty arrive once each, in
    // order, marked late, and nothing else claims to be a message.
    let (_, skipped) = link_change(&mut bob_events, Duration::from_secs(35), |c| {
        matches!(c, ConnectionEvent::Resumed { .. })
    })
    .await;
    assert!(
        skipped
            .iter()
            .all(|e| !matches!(e, Event::Connection(ConnectionEvent::Reconnected { .. }))),
        "{skipped:#?}"
    );
    let (_, delivered) = pass_time_until(
        &mut bob_events,
        Duration::from_secs(1),
        is_connection(|c| matches!(c, ConnectionEvent::QueueSent { count: 1 })),
    )
    .await;
    let expected: Vec<(String, bool)> =
        (0..20).map(|n| (format!("while bob is away {n}"), true)).collect();
    assert_eq!(messages(&delivered), expected, "{delivered:#?}");
    assert!(
        !delivered
            .iter()
            .any(|e| matches!(e, Event::Gap { .. } | Event::Warning { .. } | Event::Status(_))),
        "{delivered:#?}"
    );
    pass_time_until(&mut alice_events, Duration::from_secs(1), is_message("bob", "typed offline"))
        .await;

    // The same group at the same epoch (no key change), and chat flows both ways.
    assert_eq!(room_code(&bob).await, before);
    held(alice.send_text("welcome back")).await.unwrap();
    let (message, _) = pass_time_until(
        &mut bob_events,
        Duration::from_secs(1),
        is_message("alice", "welcome back"),
    )
    .await;
    assert!(matches!(message, Event::Message { late: false, .. }));
    held(bob.send_text("thanks")).await.unwrap();
    pass_time_until(&mut alice_events, Duration::from_secs(1), is_message("bob", "thanks")).await;
    assert_eq!(cutter.accepted(), 2, "one link before the cut, one after");
}

#[tokio::test(start_paused = true)]
async fn a_silent_link_is_noticed_in_seconds_and_the_session_taken_over() {
    let relay = support::start_relay().await;
    let cutter = LinkCutter::start(relay.address).await;
    let ((alice, mut alice_events), (bob, mut bob_events)) = alice_and_bob(&relay, &cutter).await;

    // Nothing closes: bob's engine must notice the silence by itself, well before the
    // relay's idle timeout, and take its session back from the relay's dead connection.
    cutter.cut(Cut::Silence);
    held(alice.send_text("into the void")).await.unwrap();
    // Bob does not know yet: his line goes into the dead link, and must not be lost in it.
    held(bob.send_text("said into the silence")).await.unwrap();
    let (lost, _) = link_change(&mut bob_events, Duration::from_secs(20), |c| {
        matches!(c, ConnectionEvent::Lost { .. })
    })
    .await;
    assert!(
        matches!(
            &lost,
            Event::Connection(ConnectionEvent::Lost { reason: LinkLoss::Silent { .. } })
        ),
        "{lost:?}"
    );
    cutter.restore();
    link_change(&mut bob_events, Duration::from_secs(35), |c| {
        matches!(c, ConnectionEvent::Resumed { .. })
    })
    .await;
    pass_time_until(&mut bob_events, Duration::from_secs(1), is_message("alice", "into the void"))
        .await;
    held(bob.send_text("still here")).await.unwrap();
    let (_, before) =
        pass_time_until(&mut alice_events, Duration::from_secs(1), is_message("bob", "still here"))
            .await;
    let texts: Vec<String> = messages(&before).into_iter().map(|(text, _)| text).collect();
    assert_eq!(texts, ["said into the silence"], "sent again once, in order: {before:#?}");
    assert_eq!(relay.relay.stats().away_sessions, 0);
}

/// Past the grace period the relay forgets bob, and alice takes his keys out of the group.
/// Bob comes back as a new session, is told that what was said meanwhile did not reach him,
/// asks for his place back and is told the keys moved on: he is out until his user joins
/// again. Changed with protocol 5: he used to be readmitted by himself with the password he
/// kept (and shown his missed messages as a gap); nothing a relay sends may start a password
/// exchange now, so the user's own `/join` does, and starts a fresh membership.
#[tokio::test(start_paused = true)]
async fn past_the_grace_period_the_member_is_told_it_is_out_and_comes_back_by_its_users_join() {
    let relay = support::start_relay().await;
    let grace = support::test_config().room_deadlines.grace;
    let cutter = LinkCutter::start(relay.address).await;
    let ((alice, mut alice_events), (bob, mut bob_events)) = alice_and_bob(&relay, &cutter).await;
    held(alice.send_text("before")).await.unwrap();
    pass_time_until(&mut bob_events, Duration::from_secs(1), is_message("alice", "before")).await;

    cutter.cut(Cut::Close);
    link_change(&mut bob_events, Duration::from_secs(1), |c| {
        matches!(c, ConnectionEvent::Lost { .. })
    })
    .await;
    for n in 0..3 {
        held(alice.send_text(&format!("missed {n}"))).await.unwrap();
    }
    // The relay forgets bob; alice, leading, takes bob's keys out of the group.
    pass_time_until(
        &mut alice_events,
        grace + Duration::from_secs(2),
        |e| matches!(e, Event::Left { nick, .. } if nick == "bob"),
    )
    .await;
    cutter.restore();

    // Bob comes back as a new session, told what was said since he left did not reach him.
    let (reconnected, _) = link_change(&mut bob_events, Duration::from_secs(35), |c| {
        matches!(c, ConnectionEvent::Reconnected { .. })
    })
    .await;
    assert!(matches!(
        reconnected,
        Event::Connection(ConnectionEvent::Reconnected { relay_restarted: false, .. })
    ));
    let (refused, skipped) = pass_time_until(&mut bob_events, Duration::from_secs(10), |e| {
        matches!(e, Event::Room { notice: RoomNotice::ReclaimRefused { .. }, .. })
    })
    .await;
    let stale = RoomNotice::ReclaimRefused { reason: ReclaimRefusal::StaleEpoch };
    assert_eq!(refused, Event::Room { room: "lobby".into(), notice: stale });
    assert_eq!(bob.current_room(), None, "out, and not pretending");
    held(bob.join("lobby", Secret::from(PASSWORD))).await.expect("bob's user joins again");
    held(alice.send_text("after")).await.unwrap();
    let (_, before_after) =
        pass_time_until(&mut bob_events, Duration::from_secs(2), is_message("alice", "after"))
            .await;
    let seen: Vec<Event> = skipped.into_iter().chain(before_after).collect();
    assert!(messages(&seen).is_empty(), "nothing missed is shown as if it arrived: {seen:#?}");
    held(bob.send_text("back")).await.unwrap();
    pass_time_until(&mut alice_events, Duration::from_secs(1), is_message("bob", "back")).await;
}

#[tokio::test(start_paused = true)]
async fn a_new_access_code_after_a_restart_stops_the_retries_with_a_clear_message() {
    let relay = support::start_relay().await;
    let address = relay.address;
    let (client, mut events) = held(support::chat_client(&relay, "alice")).await;
    held(relay.shutdown()).await;
    let mut config = support::test_config();
    config.access_code = Secret::from("a new code");
    let _restarted = support::start_relay_on(address, config).await;
    let (end, skipped) = pass_time_until(&mut events, Duration::from_secs(35), |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    assert!(
        matches!(&end, Event::Disconnected(SessionEnd::CannotReconnect(error))
            if matches!(error.get(), ClientError::WrongAccessCode)),
        "{end:?}"
    );
    let attempts = skipped
        .iter()
        .filter(|e| matches!(e, Event::Connection(ConnectionEvent::Reconnecting { .. })))
        .count();
    assert_eq!(attempts, 1, "a wrong code is not retried: {skipped:#?}");
    assert!(!client.is_connected());
    pass_time(Duration::from_secs(60)).await;
    assert_eq!(events.try_recv(), None, "and nothing is tried after it");
}

/// The waits the engine announced before each reconnection attempt, in order.
fn retry_waits(events: &[Event]) -> Vec<Duration> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Connection(ConnectionEvent::Reconnecting { retry_in, .. }) => Some(*retry_in),
            _ => None,
        })
        .collect()
}

/// Lets `duration` of virtual time pass and returns the events meanwhile.
async fn events_over(events: &mut Events, duration: Duration) -> Vec<Event> {
    pass_time(duration).await;
    std::iter::from_fn(|| events.try_recv()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_client_told_the_relay_is_restarting_comes_back_within_moments_one_cut_off_backs_off() {
    let relay = support::start_relay().await;
    let address = relay.address;
    let cutter = LinkCutter::start(address).await;
    let ((_alice, mut alice_events), (_bob, mut bob_events)) = alice_and_bob(&relay, &cutter).await;
    // Bob's link dies without a word (a router reset), then the relay stops: only alice
    // is told it is restarting.
    cutter.cut(Cut::Close);
    link_change(&mut bob_events, Duration::from_secs(1), |c| {
        matches!(c, ConnectionEvent::Lost { .. })
    })
    .await;
    held(relay.shutdown()).await;
    let (_, _) = link_change(&mut alice_events, Duration::from_secs(1), |c| {
        matches!(c, ConnectionEvent::Lost { .. })
    })
    .await;
    cutter.restore();
    // Ten seconds down. Alice tries about every quarter second and her waits never grow;
    // bob's grow by half each time, as for any lost link.
    let alice_seen = events_over(&mut alice_events, Duration::from_secs(10)).await;
    let bob_seen = events_over(&mut bob_events, Duration::from_secs(10)).await;
    let (alice_waits, bob_waits) = (retry_waits(&alice_seen), retry_waits(&bob_seen));
    assert!(alice_waits.len() >= 25, "{alice_waits:?}");
    assert!(alice_waits[0] < Duration::from_millis(250), "{alice_waits:?}");
    assert!(alice_waits.iter().all(|wait| *wait < Duration::from_millis(375)), "{alice_waits:?}");
    assert!(bob_waits.len() <= 9, "{bob_waits:?}");
    assert!(bob_waits[0] >= Duration::from_millis(250), "{bob_waits:?}");
    assert!(*bob_waits.last().unwrap() >= Duration::from_secs(1), "{bob_waits:?}");
    // The relay listens again: alice is back within half a second of it.
    let _restarted = support::start_relay_on(address, support::test_config()).await;
    link_change(&mut alice_events, Duration::from_millis(500), |c| {
        matches!(c, ConnectionEvent::Reconnected { relay_restarted: true, .. })
    })
    .await;
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
async fn a_relay_stopped_by_sigterm_or_sigkill_and_started_again_gets_its_rooms_back() {
    let (mut relay, address) = spawn_relay_binary("127.0.0.1:0", support::ACCESS_CODE);
    let server = address.to_string();
    let (alice, mut alice_events) = support::chat_client_at(&server, "alice").await;
    let (bob, mut bob_events) = support::chat_client_at(&server, "bob").await;
    alice.join("lobby", Secret::from(PASSWORD)).await.expect("alice joins");
    bob.join("lobby", Secret::from(PASSWORD)).await.expect("bob joins");
    wait_for(&mut alice_events, |e| matches!(e, Event::Joined { nick, .. } if nick == "bob")).await;
    let before = room_code(&alice).await;
    assert_eq!(room_code(&bob).await, before);

    for signal in ["-TERM", "-KILL"] {
        let pid = relay.id().to_string();
        let killed = std::process::Command::new("kill").args([signal, &pid]).status();
        assert!(killed.is_ok_and(|status| status.success()));
        let _ = relay.wait();
        // Started again on the same port, empty: it learns the room back from its members.
        (relay, _) = spawn_relay_binary(&server, support::ACCESS_CODE);
        for (index, events) in [&mut alice_events, &mut bob_events].into_iter().enumerate() {
            let seen = wait_for(events, |e| {
                matches!(e, Event::Notice { text, .. } if text.starts_with("back in the room, with the same group"))
            })
            .await;
            assert!(
                seen.iter().any(|e| matches!(
                    e,
                    Event::Connection(ConnectionEvent::Reconnected { relay_restarted: true, .. })
                )),
                "{signal}: {seen:#?}"
            );
            assert!(!seen.iter().any(|e| matches!(e, Event::Disconnected { .. })), "{seen:#?}");
            if index == 0 {
                // Alice's last line was delivered (bob's answer came after the relay's
                // acknowledgement of it): it is not listed as in doubt.
                let in_doubt = seen
                    .iter()
                    .any(|e| matches!(e, Event::Connection(ConnectionEvent::NotSent { .. })));
                assert!(!in_doubt, "{signal}: {seen:#?}");
            }
        }
        // No user action, no key change: the same group at the same epoch.
        assert_eq!(room_code(&alice).await, before, "{signal}");
        assert_eq!(room_code(&bob).await, before, "{signal}");
        let (to_bob, to_alice) =
            (format!("after {signal}, to bob"), format!("after {signal}, to alice"));
        alice.send_text(&to_bob).await.unwrap();
        wait_for(&mut bob_events, is_message("alice", &to_bob)).await;
        bob.send_text(&to_alice).await.unwrap();
        wait_for(&mut alice_events, is_message("bob", &to_alice)).await;
    }
    let _ = relay.kill();
    let _ = relay.wait();
}

#[tokio::test(start_paused = true)]
async fn a_room_started_afresh_just_after_a_restart_goes_back_to_its_returning_members() {
    let relay = support::start_relay().await;
    let address = relay.address;
    let (alice, mut alice_events) = held(support::chat_client(&relay, "alice")).await;
    held(alice.join("lobby", Secret::from(PASSWORD))).await.expect("alice joins");
    held(relay.shutdown()).await;

    // The relay comes back empty, and before alice does, a stranger starts "lobby" anew:
    // another group, another password.
    let relay = support::start_relay_on(address, support::test_config()).await;
    let (carol, mut carol_events) = held(support::chat_client(&relay, "carol")).await;
    held(carol.join("lobby", Secret::from("carol's own"))).await.expect("carol starts lobby");
    held(carol.send_text("mine now")).await.unwrap();

    // Alice comes back with the room's history; carol's room has none yet: the room is
    // alice's again (protocol 6), with her group, and nobody could take it by being first.
    pass_time_until(
        &mut alice_events,
        Duration::from_secs(35),
        |e| matches!(e, Event::Notice { text, .. } if text.contains("back in the room")),
    )
    .await;
    assert_eq!(alice.current_room().as_deref(), Some("lobby"));
    // Carol is told, and her join goes on to alice's group, which her password does not open.
    pass_time_until(&mut carol_events, Duration::from_secs(5), |e| {
        matches!(e, Event::Room { notice: RoomNotice::FoundingOutnumbered, .. })
    })
    .await;
    pass_time_until(&mut carol_events, Duration::from_secs(35), |e| {
        matches!(e, Event::Status(chatter::client::Notice::JoinFailed { error, .. })
            if error.to_string().contains("password"))
    })
    .await;
    assert_eq!(carol.current_room(), None);
    while let Some(event) = alice_events.try_recv() {
        assert!(!matches!(&event, Event::Joined { nick, .. } if nick == "carol"), "{event:?}");
    }
    assert_eq!(relay.relay.stats().room_memberships, 1);
}
