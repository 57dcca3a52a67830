//! The replica without NATS: inputs handed in by hand, in one order, to several replicas.

use super::*;

const FIRST: RelayId = RelayId(1);
const SECOND: RelayId = RelayId(2);

fn template() -> StateTemplate {
    StateTemplate {
        max_rooms_per_session: 8,
        deadlines: RoomDeadlines::default(),
        away_limits: AwayLimits::default(),
        replay_limits: ReplayLimits::default(),
        token_key: [3; 32],
    }
}

fn replica(me: RelayId) -> Replica {
    Replica::new(me, template(), 77)
}

fn session(relay: RelayId, count: u64) -> u64 {
    (u64::from(relay.0) << 32) | count
}

fn tick() -> Input {
    Input::Tick { gate: [1; 32] }
}

fn frame(session: u64, frame: &ClientFrame) -> Input {
    Input::Frames {
        session,
        frames: vec![ClientInput { frame: proto::encode(frame), refused: false }],
    }
}

fn opened(session: u64) -> Input {
    let ip = std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets();
    Input::Opened { session, ip }
}

/// Every frame the replica logged for `session`, decoded.
fn logged(replica: &mut Replica, session: u64) -> Vec<ServerFrame> {
    logged_after(replica, session, 0)
}

/// The frames the replica logged for `session` after the first `received`, decoded.
fn logged_after(replica: &mut Replica, session: u64, received: u64) -> Vec<ServerFrame> {
    let log = replica.logs.get(&SessionId(session)).expect("a log");
    let frames = lock(log).replay().missing(received).expect("all kept");
    frames.iter().map(|frame| proto::decode(frame).expect("a server frame")).collect()
}

/// Applies `inputs` to every replica, a tenth of a second of stream time apart.
fn apply_all(replicas: &mut [&mut Replica], inputs: &[(RelayId, Input)], start: Instant) {
    for (n, (from, input)) in inputs.iter().enumerate() {
        let now = start + Duration::from_millis(100 * n as u64);
        for replica in replicas.iter_mut() {
            let incarnation = replica.state().relay_boot();
            replica.apply(Envelope { from: *from, incarnation, input: input.clone() }, now);
        }
    }
}

/// Alice on the first relay and bob on the second register, and alice founds `lobby`.
fn alice_and_bob() -> Vec<(RelayId, Input)> {
    let (alice, bob) = (session(FIRST, 1), session(SECOND, 1));
    let register = |nick: &str| ClientFrame::Register { nick: nick.into() };
    vec![
        (FIRST, tick()),
        (SECOND, tick()),
        (FIRST, opened(alice)),
        (SECOND, opened(bob)),
        (FIRST, frame(alice, &register("alice"))),
        (SECOND, frame(bob, &register("bob"))),
        (
            FIRST,
            frame(alice, &ClientFrame::Join { room: "lobby".into(), pake_message: vec![1; 32] }),
        ),
        (
            SECOND,
            frame(bob, &ClientFrame::Join { room: "lobby".into(), pake_message: vec![2; 32] }),
        ),
        (SECOND, frame(bob, &ClientFrame::ListRooms)),
    ]
}

#[tokio::test]
async fn replicas_fed_the_same_inputs_send_every_session_the_same_frames() {
    let (mut first, mut second) = (replica(FIRST), replica(SECOND));
    apply_all(&mut [&mut first, &mut second], &alice_and_bob(), Instant::now());
    for session in [session(FIRST, 1), session(SECOND, 1)] {
        let (here, there) = (logged(&mut first, session), logged(&mut second, session));
        assert!(here.len() >= 2, "{here:?}");
        assert_eq!(here, there, "session {session:x}");
    }
    // Including the resume token, which the client may present to either relay.
    let token = |frames: &[ServerFrame]| {
        frames.iter().find_map(|frame| match frame {
            ServerFrame::Registered { token, .. } => Some(token.0),
            _ => None,
        })
    };
    let alice = session(FIRST, 1);
    assert!(token(&logged(&mut first, alice)).is_some());
    assert_eq!(first.state().stats(), second.state().stats());
    assert_eq!(first.state().stats().room_memberships, 1, "bob waits for alice to admit him");
    assert_eq!(first.state().stats().pending_joins, 1);
}

#[tokio::test]
async fn a_client_resuming_on_another_relay_is_sent_exactly_what_it_missed() {
    let (mut first, mut second) = (replica(FIRST), replica(SECOND));
    let alice = session(FIRST, 1);
    let (alice_link, mut alice_connection) = mpsc::channel(64);
    first.attach(SessionId(alice), alice_link);
    let start = Instant::now();
    apply_all(&mut [&mut first, &mut second], &alice_and_bob(), start);
    let start = start + Duration::from_secs(1);
    let sent = logged(&mut second, alice);
    let token = match &sent[0] {
        ServerFrame::Registered { token, .. } => token.0,
        other => panic!("first frame {other:?}"),
    };
    // Alice's relay dies after she got the first frame only; she comes back on the second.
    let fresh = session(SECOND, 2);
    let (fresh_link, mut fresh_connection) = mpsc::channel(64);
    second.attach(SessionId(fresh), fresh_link);
    let inputs = [
        (SECOND, opened(fresh)),
        (SECOND, Input::Resume { fresh, token, received: 1 }),
        // Sent by the first relay before it died, and ordered after the resume: stale.
        (FIRST, frame(alice, &ClientFrame::ListRooms)),
    ];
    apply_all(&mut [&mut first, &mut second], &inputs, start);
    let Some(Delivery::Resumed { session: resumed, resumed: answer, missing }) =
        fresh_connection.recv().await
    else {
        panic!("no answer to the resume")
    };
    assert_eq!(resumed, SessionId(alice));
    let answer: ServerFrame = proto::decode(&answer).expect("a frame");
    assert!(
        matches!(answer, ServerFrame::Resumed { received: 2, backlog, .. } if backlog == sent.len() as u64 - 1),
        "{answer:?}"
    );
    let missing: Vec<ServerFrame> =
        missing.iter().map(|frame| proto::decode(frame).expect("a frame")).collect();
    assert_eq!(missing, sent[1..], "exactly what she missed, in order");
    // The first relay, were it alive, lets its connection go; the stale frame was not handled.
    let mut closed = false;
    while let Ok(delivery) = alice_connection.try_recv() {
        closed |= matches!(delivery, Delivery::Close(Some(DisconnectReason::ResumedElsewhere)));
    }
    assert!(closed);
    assert_eq!(logged_after(&mut first, alice, 1), logged_after(&mut second, alice, 1));
    assert_eq!(first.owners.get(&SessionId(alice)), Some(&SECOND));
    let handled = |replica: &Replica| {
        let log = replica.logs.get(&SessionId(alice)).expect("a log");
        lock(log).replay().handled()
    };
    assert_eq!((handled(&first), handled(&second)), (2, 2), "the stale frame changed nothing");
    assert!(!first.logs.contains_key(&SessionId(fresh)), "the fresh session went");
}

#[tokio::test]
async fn a_relay_that_stopped_ticking_is_gone_and_its_members_away_on_every_relay() {
    let (mut first, mut second) = (replica(FIRST), replica(SECOND));
    let start = Instant::now();
    let inputs = alice_and_bob();
    apply_all(&mut [&mut first, &mut second], &inputs, start);
    assert_eq!(second.state().stats().away_sessions, 0);
    let later = start + Duration::from_secs(1);
    // Only the second relay ticks from now on.
    let ticks = [(SECOND, tick())];
    apply_all(&mut [&mut first, &mut second], &ticks, later);
    assert_eq!(second.state().stats().away_sessions, 0, "not silent for long enough yet");
    apply_all(&mut [&mut first, &mut second], &ticks, later + RELAY_SILENT_LIMIT);
    assert_eq!(second.state().stats().away_sessions, 1, "alice is away");
    assert_eq!(first.state().stats(), second.state().stats());
    assert!(second.gone.contains(&FIRST));
}

#[tokio::test]
async fn a_cluster_started_again_issues_no_token_of_its_last_life_and_ignores_its_inputs() {
    let registered = |replica: &mut Replica| match logged(replica, session(FIRST, 1)).first() {
        Some(ServerFrame::Registered { token, .. }) => token.0,
        other => panic!("{other:?}"),
    };
    let mut before = replica(FIRST);
    let mut after = Replica::new(FIRST, template(), 78);
    apply_all(&mut [&mut before], &alice_and_bob(), Instant::now());
    apply_all(&mut [&mut after], &alice_and_bob(), Instant::now());
    assert_ne!(registered(&mut before), registered(&mut after), "alice's old token is not bob's");
    // An input published for the last life changes nothing in this one.
    let stale = Envelope { from: SECOND, incarnation: 77, input: opened(session(SECOND, 9)) };
    after.apply(stale, Instant::now());
    assert!(!after.state().has_session(SessionId(session(SECOND, 9))));
}

#[tokio::test]
async fn a_relay_with_another_access_code_is_not_part_of_the_cluster() {
    let (mut first, mut second) = (replica(FIRST), replica(SECOND));
    let stranger = RelayId(3);
    let mut inputs = alice_and_bob();
    let carol = session(stranger, 1);
    inputs.extend([
        (stranger, Input::Tick { gate: [9; 32] }),
        (stranger, opened(carol)),
        (stranger, frame(carol, &ClientFrame::Register { nick: "carol".into() })),
    ]);
    apply_all(&mut [&mut first, &mut second], &inputs, Instant::now());
    for replica in [&first, &second] {
        assert!(replica.admitted());
        assert!(!replica.state().has_session(SessionId(carol)), "carol came in by a side door");
    }
    let mut refused = Replica::new(stranger, template(), 77);
    apply_all(&mut [&mut refused], &inputs, Instant::now());
    assert!(!refused.admitted(), "the stranger knows it is out");
}

#[tokio::test]
async fn a_client_back_on_the_same_relay_keeps_its_new_link_when_the_old_one_ends() {
    let mut first = replica(FIRST);
    let alice = session(FIRST, 1);
    let (old_link, mut old_connection) = mpsc::channel(64);
    first.attach(SessionId(alice), old_link.clone());
    apply_all(&mut [&mut first], &alice_and_bob(), Instant::now());
    let token = match logged(&mut first, alice).first() {
        Some(ServerFrame::Registered { token, .. }) => token.0,
        other => panic!("{other:?}"),
    };
    // Alice's client comes back to the same relay while her old link still looks alive.
    let fresh = session(FIRST, 2);
    let (new_link, mut new_connection) = mpsc::channel(64);
    first.attach(SessionId(fresh), new_link);
    let later = Instant::now() + Duration::from_secs(1);
    let back = [(FIRST, opened(fresh)), (FIRST, Input::Resume { fresh, token, received: 1 })];
    apply_all(&mut [&mut first], &back, later);
    assert!(matches!(new_connection.recv().await, Some(Delivery::Resumed { .. })));
    let mut told_to_go = false;
    while let Ok(delivery) = old_connection.try_recv() {
        told_to_go |= matches!(delivery, Delivery::Close(Some(DisconnectReason::ResumedElsewhere)));
    }
    assert!(told_to_go);
    // The old connection ends: the new one still gets what is sent to the session.
    first.detach(SessionId(alice), &old_link);
    let ack = [(FIRST, Input::Ack { session: alice, received: 1 })];
    apply_all(&mut [&mut first], &ack, later + Duration::from_secs(1));
    assert!(
        matches!(new_connection.try_recv(), Ok(Delivery::Frames(_))),
        "the new link was let go with the old"
    );
}
