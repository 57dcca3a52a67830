//! Relays that share rooms through a real nats-server (issue 25): real relays, real
//! clients, a real JetStream.

use std::time::Duration;

use chatter::client::{ConnectionEvent, Event, Events};
use chatter::relay::cluster::{ClusterConfig, ClusterKey};
use chatter::secret::Secret;

use crate::repl_support::RelayProcess;
use crate::support::nats::TestNats;
use crate::support::{self, TestRelay};

const PASSWORD: &str = "room password";
const KEY: [u8; 32] = [42; 32];

async fn cluster_relay(nats: &TestNats) -> TestRelay {
    let cluster = ClusterConfig::new(nats.url(), ClusterKey::new(KEY));
    let address = "127.0.0.1:0".parse().expect("an address");
    support::start_relay_in(address, support::test_config(), Some(cluster)).await
}

async fn joined(events: &mut Events, who: &str) {
    let who = who.to_owned();
    support::expect_event(events, move |e| matches!(e, Event::Joined { nick, .. } if *nick == who))
        .await;
}

/// A member of `lobby` through `relay`, once every member before it saw it join.
async fn member(relay: &TestRelay, nick: &str) -> (chatter::client::Client, Events) {
    let (client, mut events) = support::chat_client(relay, nick).await;
    client.join("lobby", Secret::from(PASSWORD)).await.expect("joins lobby");
    joined(&mut events, nick).await;
    (client, events)
}

/// The messages `events` shows until it has `count` of them.
async fn messages_until(events: &mut Events, count: usize) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let (event, _) =
            support::expect_event_after(events, |e| matches!(e, Event::Message { .. })).await;
        seen.extend(support::texts(&[event]));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_two_relays_talk_in_one_room_in_one_order() {
    let Some(nats) = TestNats::start() else { return };
    let (first, second) = (cluster_relay(&nats).await, cluster_relay(&nats).await);
    let (alice, _alice_events) = member(&first, "alice").await;
    let (bob, _bob_events) = member(&second, "bob").await;
    let (_carol, mut carol_events) = member(&first, "carol").await;
    let (_dave, mut dave_events) = member(&second, "dave").await;
    // Alice on the first relay and bob on the second send at once; carol (on the first) and
    // dave (on the second) must see all of it, in one order, whatever order that is.
    let sending = async {
        for n in 0..10 {
            alice.send_text(&format!("a{n}")).await.expect("alice sends");
        }
    };
    let also_sending = async {
        for n in 0..10 {
            bob.send_text(&format!("b{n}")).await.expect("bob sends");
        }
    };
    tokio::join!(sending, also_sending);
    let carol_saw = messages_until(&mut carol_events, 20).await;
    let dave_saw = messages_until(&mut dave_events, 20).await;
    assert_eq!(carol_saw, dave_saw, "one order on both relays");
    let mut all = carol_saw.clone();
    all.sort();
    let mut expected: Vec<String> =
        (0..10).flat_map(|n| [format!("a{n}"), format!("b{n}")]).collect();
    expected.sort();
    assert_eq!(all, expected, "everything, once");
    assert_eq!(first.relay.stats().room_memberships, 4, "each relay holds the whole room");
    assert_eq!(second.relay.stats().room_memberships, 4);
}

/// A relay process, killed when the test is done with it (pass or fail).
struct Spawned(RelayProcess);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

impl std::ops::Deref for Spawned {
    type Target = RelayProcess;

    fn deref(&self) -> &RelayProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut RelayProcess {
        &mut self.0
    }
}

/// The real `chatter-server` binary as a relay of the cluster, with `access_code`.
fn cluster_relay_binary_with(nats: &TestNats, access_code: &str) -> Spawned {
    let key: String = KEY.iter().map(|byte| format!("{byte:02x}")).collect();
    let url = nats.url();
    Spawned(RelayProcess::spawn(
        "127.0.0.1:0",
        access_code,
        &["--no-report", "--nats", &url],
        &[("CHATTER_CLUSTER_KEY", &key)],
    ))
}

/// The real `chatter-server` binary as a relay of the cluster.
fn cluster_relay_binary(nats: &TestNats) -> Spawned {
    cluster_relay_binary_with(nats, support::ACCESS_CODE)
}

fn is_message(text: &str) -> impl Fn(&Event) -> bool {
    let text = text.to_owned();
    move |event| matches!(event, Event::Message { text: t, .. } if *t == text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_relay_is_killed_resumes_on_another_within_two_seconds_and_loses_nothing() {
    let Some(nats) = TestNats::start() else { return };
    let mut doomed = cluster_relay_binary(&nats);
    let survivor = cluster_relay_binary(&nats);
    let relays = format!("{},{}", doomed.address, survivor.address);
    let (alice, mut alice_events) = support::chat_client_at(&relays, "alice").await;
    alice.join("lobby", Secret::from(PASSWORD)).await.expect("alice founds lobby");
    let (bob, mut bob_events) = support::chat_client_at(&survivor.address.to_string(), "bob").await;
    bob.join("lobby", Secret::from(PASSWORD)).await.expect("bob joins through the other relay");
    joined(&mut alice_events, "bob").await;
    joined(&mut bob_events, "bob").await;
    bob.send_text("before").await.expect("bob sends");
    support::expect_event(&mut alice_events, is_message("before")).await;

    // kill -9 alice's relay; bob talks on while she is cut off.
    let killed_at = std::time::Instant::now();
    doomed.child.kill().expect("kill -9");
    let _ = doomed.child.wait();
    for n in 0..5 {
        bob.send_text(&format!("while away {n}")).await.expect("bob sends");
    }
    let (resumed, _) = support::expect_event_after(&mut alice_events, |event| {
        matches!(event, Event::Connection(ConnectionEvent::Resumed { .. }))
    })
    .await;
    let failover = killed_at.elapsed();
    assert!(failover < Duration::from_secs(2), "resumed after {failover:?}");
    assert!(matches!(resumed, Event::Connection(ConnectionEvent::Resumed { .. })));
    let (_, before) =
        support::expect_event_after(&mut alice_events, is_message("while away 4")).await;
    let mut got = support::texts(&before);
    got.push("while away 4".to_owned());
    let expected: Vec<String> = (0..5).map(|n| format!("while away {n}")).collect();
    assert_eq!(got, expected, "each once, in order");
    // And she is heard, through the relay she is on now.
    alice.send_text("back").await.expect("alice sends");
    support::expect_event(&mut bob_events, is_message("back")).await;
    eprintln!("failover took {failover:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_commits_for_one_epoch_through_two_relays_exactly_one_wins_for_every_member() {
    use chatter::mls_header::build_private_message;
    use chatter::proto::{ClientFrame, CommitRejection, ServerFrame, commit_hash};

    use crate::relay::{GROUP, room_across, vote};
    use crate::support::{COMMIT, expect_frame, next_frame};

    let Some(nats) = TestNats::start() else { return };
    let (first, second) = (cluster_relay(&nats).await, cluster_relay(&nats).await);
    // Alice (the leader) and carol on the first relay, bob and dave on the second.
    let nicks = ["alice", "bob", "carol", "dave"];
    let mut clients = room_across(&[&first, &second], "lobby", &nicks).await;
    let commit = |text: &[u8]| build_private_message(GROUP, 3, COMMIT, text);
    let frame = |text: &[u8]| ClientFrame::Commit {
        room: "lobby".into(),
        commit: commit(text),
        adds: None,
        electorate: 4,
    };
    // Three commits for epoch 3 at once: alice's two through the first relay, bob's through
    // the second. The stream puts them in one order; the relay state takes the leader's
    // first and no other, on both relays alike.
    let (alice, rest) = clients.split_first_mut().expect("alice");
    let (bob, _) = rest.split_first_mut().expect("bob");
    tokio::join!(
        async {
            alice.send(&frame(b"alice's first")).await.expect("send");
            alice.send(&frame(b"alice's second")).await.expect("send");
        },
        async { bob.send(&frame(b"bob's")).await.expect("send") },
    );
    let rejected = |text: &[u8], reason| ServerFrame::CommitRejected {
        room: "lobby".into(),
        commit: commit_hash(&commit(text)),
        reason,
    };
    let winner = |frame: &ServerFrame| {
        matches!(frame, ServerFrame::Commit { from, commit: c, .. }
            if from == "alice" && *c == commit(b"alice's first"))
    };
    // Each member is sent the winner and nothing else of the three; bob is told his was
    // refused, before or after it, as the stream ordered them.
    let bobs_refusal = rejected(b"bob's", CommitRejection::NotLeader);
    for (index, member) in clients.iter_mut().enumerate() {
        let first = next_frame(member).await;
        if index == 1 && first == bobs_refusal {
            let second = next_frame(member).await;
            assert!(winner(&second), "{second:?}");
        } else {
            assert!(winner(&first), "{first:?}");
            if index == 1 {
                assert_eq!(next_frame(member).await, bobs_refusal);
            }
        }
    }
    // Alice's own two went through one relay in her order: the second was one too many.
    let alices_refusal = rejected(b"alice's second", CommitRejection::Busy);
    assert_eq!(next_frame(&mut clients[0]).await, alices_refusal);
    // Votes through both relays confirm it for everyone, with the same votes.
    for member in &mut clients {
        vote(member, "lobby", 3, true).await;
    }
    let mut confirmations = Vec::new();
    for member in &mut clients {
        confirmations
            .push(expect_frame(member, |f| matches!(f, ServerFrame::CommitConfirmed { .. })).await);
    }
    assert!(confirmations.windows(2).all(|pair| pair[0] == pair[1]), "{confirmations:?}");
    assert!(matches!(&confirmations[0], ServerFrame::CommitConfirmed { epoch: 4, .. }));
    // The epoch moved on for every relay: a commit for epoch 3 now is one too late.
    clients[0].send(&frame(b"too late")).await.expect("send");
    assert_eq!(
        next_frame(&mut clients[0]).await,
        rejected(b"too late", CommitRejection::EpochMovedOn { attempted: 3, current: 4 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_nats_restarts_the_relays_say_so_and_their_rooms_come_back() {
    let Some(mut nats) = TestNats::start() else { return };
    let first = cluster_relay_binary(&nats);
    let second = cluster_relay_binary(&nats);
    let (alice, mut alice_events) =
        support::chat_client_at(&first.address.to_string(), "alice").await;
    alice.join("lobby", Secret::from(PASSWORD)).await.expect("alice founds lobby");
    let (bob, mut bob_events) = support::chat_client_at(&second.address.to_string(), "bob").await;
    bob.join("lobby", Secret::from(PASSWORD)).await.expect("bob joins through the other relay");
    joined(&mut alice_events, "bob").await;
    joined(&mut bob_events, "bob").await;

    // NATS restarts: JetStream kept the stream in memory only, so it is gone.
    nats.restart();
    for relay in [&first, &second] {
        let said = wait_for_line(relay, "the cluster's stream was lost", Duration::from_secs(10));
        assert!(said, "a relay says it lost the cluster's state");
    }
    for (who, events) in [("alice", &mut alice_events), ("bob", &mut bob_events)] {
        let wanted = |event: &Event| {
            matches!(
                event,
                Event::Connection(ConnectionEvent::Reconnected { relay_restarted: true, .. })
            )
        };
        let mut seen = Vec::new();
        let reconnected = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(event) = events.recv().await {
                if wanted(&event) {
                    return;
                }
                seen.push(event);
            }
        })
        .await;
        if reconnected.is_err() {
            for line in first.log.try_iter() {
                eprintln!("first: {line}");
            }
            for line in second.log.try_iter() {
                eprintln!("second: {line}");
            }
            panic!("{who} did not reconnect; saw {seen:#?}");
        }
    }
    // The room is back, on both relays, with both in it: each hears the other.
    let mut heard = false;
    for attempt in 0..20 {
        let text = format!("after {attempt}");
        alice.send_text(&text).await.expect("alice sends");
        let wait = tokio::time::timeout(
            Duration::from_millis(500),
            support::expect_event(&mut bob_events, is_message(&text)),
        );
        if wait.await.is_ok() {
            heard = true;
            break;
        }
    }
    assert!(heard, "bob hears alice again");
    bob.send_text("and back").await.expect("bob sends");
    support::expect_event(&mut alice_events, is_message("and back")).await;
}

/// Whether the relay's log shows a line containing `needle` within `limit`.
fn wait_for_line(relay: &Spawned, needle: &str, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match relay.log.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_another_access_code_serves_no_one_in_the_cluster() {
    let Some(nats) = TestNats::start() else { return };
    let _member = cluster_relay(&nats).await;
    let stranger = cluster_relay_binary_with(&nats, "another access code");
    let said =
        wait_for_line(&stranger, "access code is not the cluster's", Duration::from_secs(10));
    assert!(said, "the relay says why it serves no one");
    // Its clients, who know its code, get nowhere near the cluster's rooms.
    let attempt = tokio::time::timeout(
        Duration::from_secs(2),
        chatter::client::RawClient::connect(
            &stranger.address.to_string(),
            &Secret::from("another access code"),
        ),
    )
    .await;
    assert!(!matches!(attempt, Ok(Ok(_))), "a handshake with a relay outside the cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_started_later_learns_the_rooms_from_the_stream() {
    let Some(nats) = TestNats::start() else { return };
    let first = cluster_relay(&nats).await;
    let (alice, mut alice_events) = member(&first, "alice").await;
    alice.send_text("before the second relay").await.expect("alice sends");
    // The second relay starts after the room was made, and rebuilds it from the stream.
    let second = cluster_relay(&nats).await;
    let (bob, mut bob_events) = member(&second, "bob").await;
    joined(&mut alice_events, "bob").await;
    bob.send_text("hello from the late relay").await.expect("bob sends");
    support::expect_event(&mut alice_events, is_message("hello from the late relay")).await;
    alice.send_text("welcome").await.expect("alice sends");
    support::expect_event(&mut bob_events, is_message("welcome")).await;
    assert_eq!(first.relay.stats(), second.relay.stats(), "one state on both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_nats_cannot_carry_is_refused_in_words_not_dropped() {
    use chatter::proto::{ClientFrame, DisconnectReason, ServerFrame};

    let Some(nats) = TestNats::start_with_max_payload("64KB") else { return };
    let relay = cluster_relay(&nats).await;
    let mut client = support::raw_client(&relay, "alice").await;
    client
        .send(&ClientFrame::Application { room: "lobby".into(), message: vec![7; 100_000] })
        .await
        .expect("send");
    let told = support::expect_frame(&mut client, |f| matches!(f, ServerFrame::Goodbye { .. }));
    assert_eq!(told.await, ServerFrame::Goodbye { reason: DisconnectReason::FrameTooLarge });
}
