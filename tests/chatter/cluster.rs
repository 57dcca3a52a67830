//! Relays that share rooms through a real nats-server (issue 25): real relays, real
//! clients, a real JetStream.

use std::time::Duration;

use chatter::client::{ConnectionEvent, Event, Events};
use chatter::relay::RelayConfig;
use chatter::relay::cluster::{ClusterConfig, ClusterKey};
use chatter::secret::Secret;

use crate::repl_support::RelayProcess;
use crate::support::nats::TestNats;
use crate::support::{self, TestRelay};

const PASSWORD: &str = "room password";
const KEY: [u8; 32] = [42; 32];

fn cluster_config(nats: &TestNats) -> RelayConfig {
    let mut config = support::test_config();
    config.cluster = Some(ClusterConfig::new(nats.url(), ClusterKey::new(KEY)));
    config
}

async fn cluster_relay(nats: &TestNats) -> TestRelay {
    support::start_relay_with(cluster_config(nats)).await
}

/// The texts of the messages in `events`, in order.
fn messages(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
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
        seen.extend(messages(&[event]));
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

/// The real `chatter-server` binary as a relay of the cluster.
fn cluster_relay_binary(nats: &TestNats) -> RelayProcess {
    let key: String = KEY.iter().map(|byte| format!("{byte:02x}")).collect();
    let url = nats.url();
    RelayProcess::spawn(
        "127.0.0.1:0",
        support::ACCESS_CODE,
        &["--no-report", "--nats", &url],
        &[("CHATTER_CLUSTER_KEY", &key)],
    )
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
    let mut got = messages(&before);
    got.push("while away 4".to_owned());
    let expected: Vec<String> = (0..5).map(|n| format!("while away {n}")).collect();
    assert_eq!(got, expected, "each once, in order");
    // And she is heard, through the relay she is on now.
    alice.send_text("back").await.expect("alice sends");
    support::expect_event(&mut bob_events, is_message("back")).await;
    eprintln!("failover took {failover:?}");
}
