//! The relay's abuse controls, on virtual time (all but one test, which says why), with
//! clients on several loopback addresses (127.0.0.2, 127.0.0.3, … are all this host):
//! pre-authentication budgets and bans, the per-address cap, handshake and idle deadlines,
//! rate limits, room-password bans, the fail2ban report, and the relay forgetting everyone who
//! left.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use chatter::client::{ClientError, RawClient};
use chatter::mls_header::build_private_message;
use chatter::proto::{
    AdmissionRefusal, ClientFrame, DisconnectReason, ErrorReason, HelloRejection, ServerFrame,
};
use chatter::relay::gate::AcceptCounts;
use chatter::relay::report::{self, HEADER, HINT};
use chatter::relay::{RateLimit, RelayConfig, ReportConfig};
use chatter::secret::Secret;
use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::relay::room_of;
use crate::support::{
    self, ACCESS_CODE, APPLICATION, TestRelay, eventually, held, next_frame, next_frame_held,
    settled,
};

const fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

const ATTACKER: IpAddr = loopback(2);
const BYSTANDER: IpAddr = loopback(3);

/// The fail2ban filter shipped for the Python original.
const FAILREGEX: &str = r"^<HOST>\s+->\s+\d+x packets$";
const IGNOREREGEX: &str = r"^Logged IP addresses|^If needed|^$";

/// What a bare TCP connection from an address met at the relay.
#[derive(Debug)]
enum Probe {
    /// Told it is blocked, then closed: the address is banned.
    Blocked,
    /// The relay answered before the handshake (a plaintext refusal), then closed.
    Replied,
    /// The relay is waiting for a handshake.
    Admitted(TcpStream),
}

async fn connect_from(from: IpAddr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind a loopback address");
    socket.connect(server).await.expect("connect")
}

/// Connects from `from` and learns what the gate decided from the gate's own count, with
/// virtual time held still; a refusal or a block is then also checked on the socket. Silence
/// is never taken for an admission: on paused time a wait for silence ends whenever the
/// runtime is idle, which is also when a close the kernel has not delivered yet is on its way.
async fn probe(from: IpAddr, relay: &TestRelay) -> Probe {
    let gate = relay.relay.gate();
    let before = gate.accept_counts();
    let mut stream = held(connect_from(from, relay.address)).await;
    settled(|| gate.accept_counts().total() > before.total()).await;
    let after = gate.accept_counts();
    assert_eq!(after.total(), before.total() + 1, "one connection probed at a time");
    if after.admitted > before.admitted {
        return Probe::Admitted(stream);
    }
    let mut answer = Vec::new();
    // The relay closes either way; a reset instead of an orderly end is a close too.
    let _ = held(stream.read_to_end(&mut answer)).await;
    if after.refused > before.refused {
        assert!(!answer.is_empty(), "a refusal says why");
        Probe::Replied
    } else {
        assert_eq!(answer, refusal_bytes(HelloRejection::Blocked), "a block says so");
        Probe::Blocked
    }
}

fn refusal_bytes(reason: HelloRejection) -> Vec<u8> {
    let body = chatter::proto::encode(&chatter::proto::ServerHello::Reject(reason));
    let mut bytes = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    bytes.extend(body);
    bytes
}

/// A registered client from `from`, connected with virtual time held still, so that it was
/// last heard from at the instant this returns.
async fn client_from(relay: &TestRelay, from: IpAddr, nick: &str) -> RawClient {
    let code = Secret::from(ACCESS_CODE);
    held(async {
        let mut client =
            RawClient::connect_from(from, relay.address, &code).await.expect("connect");
        client.register(nick).await.expect("register");
        client
    })
    .await
}

/// Raises this process's soft limit on open files to at least `wanted` (within the hard
/// limit), for a test that holds many sockets: both ends of each, in one process that runs
/// other tests at the same time. Many systems start at 1024.
#[cfg(unix)]
fn raise_open_file_limit(wanted: libc::rlim_t) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: one valid `rlimit` we own, for a resource that exists on every Unix.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0, "getrlimit");
    if limit.rlim_cur >= wanted {
        return;
    }
    assert!(
        limit.rlim_max >= wanted,
        "the hard limit on open files ({}) is below the {wanted} this test needs",
        limit.rlim_max
    );
    limit.rlim_cur = wanted;
    // SAFETY: as above; raising the soft limit up to the hard one needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0, "setrlimit");
}

fn config_with(change: impl FnOnce(&mut RelayConfig)) -> RelayConfig {
    let mut config = support::test_config();
    change(&mut config);
    config
}

#[tokio::test(start_paused = true)]
async fn an_address_past_its_preauth_budget_is_told_it_is_blocked_at_accept() {
    let relay = support::start_relay_with(config_with(|c| c.gate.preauth_budget = 5)).await;
    for attempt in 0..5 {
        let probe = probe(ATTACKER, &relay).await;
        assert!(matches!(probe, Probe::Admitted(_)), "attempt {attempt}: {probe:?}");
    }
    assert!(matches!(probe(ATTACKER, &relay).await, Probe::Blocked));
    assert!(relay.relay.gate().is_banned(ATTACKER));
    assert_eq!(relay.relay.gate().flagged(), vec![(ATTACKER, 5)]);
    // Another address is untouched, and the ban outlives the forget window.
    client_from(&relay, BYSTANDER, "bystander").await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(matches!(probe(ATTACKER, &relay).await, Probe::Blocked));
    let code = Secret::from(ACCESS_CODE);
    let refused = RawClient::connect_from(ATTACKER, relay.address, &code).await;
    assert!(refused.is_err(), "even the right code is refused");
}

#[tokio::test(start_paused = true)]
async fn wrong_access_codes_ban_the_address_and_only_it() {
    let relay =
        support::start_relay_with(config_with(|c| c.gate.max_access_code_failures = 3)).await;
    for _ in 0..3 {
        let wrong = RawClient::connect_from(ATTACKER, relay.address, &Secret::from("guess")).await;
        assert!(matches!(wrong, Err(ClientError::WrongAccessCode)), "{wrong:?}");
    }
    assert!(eventually(|| relay.relay.gate().is_banned(ATTACKER)).await);
    assert!(matches!(probe(ATTACKER, &relay).await, Probe::Blocked));
    let code = Secret::from(ACCESS_CODE);
    let right = RawClient::connect_from(ATTACKER, relay.address, &code).await;
    assert!(right.is_err(), "a banned address may not log in with the right code");
    assert_eq!(relay.relay.gate().flagged(), vec![(ATTACKER, 3)]);
    client_from(&relay, BYSTANDER, "bystander").await;
}

#[tokio::test(start_paused = true)]
async fn authenticating_clears_the_preauth_counters() {
    let relay = support::start_relay_with(config_with(|c| c.gate.preauth_budget = 3)).await;
    for _ in 0..2 {
        assert!(matches!(probe(ATTACKER, &relay).await, Probe::Admitted(_)));
    }
    // The third attempt authenticates and clears the two before it.
    let mut member = client_from(&relay, ATTACKER, "member").await;
    member.send(&ClientFrame::Quit).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(probe(ATTACKER, &relay).await, Probe::Admitted(_)));
    }
    assert!(matches!(probe(ATTACKER, &relay).await, Probe::Blocked));
}

#[tokio::test(start_paused = true)]
async fn counters_of_quiet_addresses_are_forgotten_after_the_window() {
    let relay = support::start_relay_with(config_with(|c| c.gate.preauth_budget = 3)).await;
    for _ in 0..3 {
        drop(probe(ATTACKER, &relay).await);
    }
    assert!(eventually(|| relay.relay.gate().tracked_addresses() == 1).await);
    tokio::time::sleep(Duration::from_secs(599)).await;
    assert_eq!(relay.relay.gate().tracked_addresses(), 1, "not yet: the window is 10 minutes");
    // The sweep runs every minute: within one more minute the address is forgotten.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(relay.relay.gate().tracked_addresses(), 0);
    assert!(relay.relay.gate().flagged().is_empty());
    assert!(matches!(probe(ATTACKER, &relay).await, Probe::Admitted(_)), "a fresh budget");
}

#[tokio::test(start_paused = true)]
async fn the_client_past_the_per_address_cap_is_told_why() {
    let relay = support::start_relay_with(config_with(|c| c.gate.max_connections_per_ip = 3)).await;
    let mut clients = Vec::new();
    for index in 0..3 {
        clients.push(client_from(&relay, ATTACKER, &format!("user{index}")).await);
    }
    let fourth = RawClient::connect_from(ATTACKER, relay.address, &Secret::from(ACCESS_CODE)).await;
    let error = fourth.expect_err("a fourth connection is refused");
    assert!(matches!(error, ClientError::Refused(HelloRejection::TooManyConnections)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the server refused the connection: too many connections from your address"
    );
    let _bystander = client_from(&relay, BYSTANDER, "bystander").await;
    // A slot freed is a slot to take.
    clients[0].send(&ClientFrame::Quit).await.unwrap();
    assert!(eventually(|| relay.relay.stats().sessions == 3).await);
    client_from(&relay, ATTACKER, "user3").await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_or_slow_handshake_is_dropped_at_the_deadline() {
    let relay = support::start_relay().await;
    let Probe::Admitted(mut silent) = probe(ATTACKER, &relay).await else { panic!("admitted") };
    let Probe::Admitted(mut slow) = probe(ATTACKER, &relay).await else { panic!("admitted") };
    let opened = Instant::now();
    // The slow one trickles a hello of 100 claimed bytes, one byte a second.
    slow.write_all(&100u32.to_be_bytes()).await.unwrap();
    let mut buffer = [0; 64];
    for _ in 0..30 {
        if slow.write_all(&[0]).await.is_err() {
            break;
        }
        let read = tokio::time::timeout(Duration::from_secs(1), slow.read(&mut buffer)).await;
        if matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
            break;
        }
    }
    let slow_lasted = opened.elapsed();
    let read = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut buffer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the silent connection was closed");
    let silent_lasted = opened.elapsed();
    for lasted in [slow_lasted, silent_lasted] {
        assert!(
            lasted >= Duration::from_secs(8) && lasted <= Duration::from_secs(11),
            "{lasted:?}"
        );
    }
    assert_eq!(relay.relay.stats().sessions, 0);
}

// Real time, unlike the tests around it: a thousand connections, with no duration measured.
// Nothing is decided by waiting: the gate's counts say what it decided, and every socket
// but the admitted ones is read to its end.
#[tokio::test]
async fn a_thousand_half_open_connections_do_not_lock_out_another_address() {
    #[cfg(unix)]
    raise_open_file_limit(4096);
    // A handshake deadline beyond the test, so no held slot frees itself on a slow machine.
    let long_handshakes = config_with(|c| c.handshake_timeout = Duration::from_secs(3600));
    let relay = support::start_relay_with(long_handshakes).await;
    let mut streams = Vec::new();
    for _ in 0..1000 {
        streams.push(connect_from(ATTACKER, relay.address).await);
    }
    // The attacker holds ten slots (the cap), is told "too many" up to its budget of 30
    // attempts, and is banned after that.
    let gate = relay.relay.gate();
    settled(|| gate.accept_counts().total() == 1000).await;
    let expected = AcceptCounts { admitted: 10, refused: 20, blocked: 970 };
    assert_eq!(gate.accept_counts(), expected);
    assert!(gate.is_banned(ATTACKER));
    // Another address logs in at once, while all of them are still open.
    let mut bystander = client_from(&relay, BYSTANDER, "bystander").await;
    bystander.send(&ClientFrame::Ping).await.unwrap();
    assert_eq!(next_frame_held(&mut bystander).await, ServerFrame::Pong);
    assert!(!gate.is_banned(BYSTANDER));
    // The sockets say the same: twenty hear "too many", 970 that they are blocked, and the
    // ten left are still open, waiting for a handshake.
    let too_many = refusal_bytes(HelloRejection::TooManyConnections);
    let blocked = refusal_bytes(HelloRejection::Blocked);
    let mut reads = tokio::task::JoinSet::new();
    for mut stream in streams {
        reads.spawn(async move {
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            answer
        });
    }
    let (mut refused, mut refused_blocked) = (0, 0);
    while refused + refused_blocked < 990 {
        let answer = held(reads.join_next()).await.expect("a read left").unwrap();
        if answer == blocked {
            refused_blocked += 1;
        } else {
            assert_eq!(answer, too_many);
            refused += 1;
        }
    }
    assert_eq!((refused, refused_blocked), (20, 970));
    assert_eq!(reads.len(), 10, "the admitted ten are still open");
    reads.abort_all();
}

#[tokio::test(start_paused = true)]
async fn keepalives_keep_a_member_and_silence_drops_it_at_the_timeout_and_counts() {
    let relay = support::start_relay().await;
    let idle_timeout = support::test_config().idle_timeout;
    let second = Duration::from_secs(1);
    let mut talker = client_from(&relay, BYSTANDER, "talker").await;
    // Both were last heard now: virtual time stands still while they connect.
    let mut silent = client_from(&relay, ATTACKER, "silent").await;
    let ping = async |talker: &mut RawClient| {
        talker.send(&ClientFrame::Ping).await.unwrap();
        assert_eq!(next_frame_held(talker).await, ServerFrame::Pong);
    };
    let interval = Duration::from_secs(30);
    for _ in 0..3 {
        tokio::time::sleep(interval).await;
        ping(&mut talker).await;
    }
    // Every wait on a socket holds virtual time still, so these are exact instants.
    tokio::time::sleep(idle_timeout - interval * 3 - second).await;
    let connected = || {
        let stats = relay.relay.stats();
        stats.sessions - stats.away_sessions
    };
    assert_eq!(connected(), 2, "the silent one lives just under the timeout");
    tokio::time::sleep(second * 2).await;
    assert_eq!(connected(), 1, "and is cut off just after it");
    assert_eq!(relay.relay.stats().away_sessions, 1, "its session waits for a resume");
    let goodbye = ServerFrame::Goodbye { reason: DisconnectReason::IdleTimeout };
    assert_eq!(next_frame_held(&mut silent).await, goodbye);
    // The talker outlives two timeouts.
    for _ in 0..5 {
        tokio::time::sleep(interval).await;
        ping(&mut talker).await;
    }
    assert_eq!(relay.relay.stats().sessions, 1, "the pinging member is still there");
    // The dropped connection cost its address an attempt, forgotten in time like any other.
    assert_eq!(relay.relay.gate().tracked_addresses(), 2);
    talker.send(&ClientFrame::Quit).await.unwrap();
    settled(|| relay.relay.stats().sessions == 0).await;
    tokio::time::sleep(Duration::from_secs(11 * 60)).await;
    assert_eq!(relay.relay.gate().tracked_addresses(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_flood_is_refused_message_by_message_and_joins_still_go_through() {
    let limit = RateLimit { per_second: 1.0, burst: 10 };
    let relay = support::start_relay_with(config_with(|c| c.rate_limit = limit)).await;
    let mut clients = room_of(&relay, "lobby", &["alice", "bob"]).await;
    let (alice, bob) = clients.split_at_mut(1);
    let (alice, bob) = (&mut alice[0], &mut bob[0]);
    let message = build_private_message(b"group-1", 1, APPLICATION, b"paste\nof\nlines");
    for _ in 0..15 {
        let frame = ClientFrame::Application { room: "lobby".into(), message: message.clone() };
        alice.send(&frame).await.unwrap();
    }
    alice.send(&ClientFrame::Ping).await.unwrap();
    let mut refused = 0;
    for _ in 0..20 {
        match next_frame(alice).await {
            ServerFrame::Error { reason: ErrorReason::RateLimited, .. } => refused += 1,
            ServerFrame::Pong => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(refused, 5);
    bob.send(&ClientFrame::Ping).await.unwrap();
    let mut delivered = 0;
    for _ in 0..20 {
        match next_frame(bob).await {
            ServerFrame::Application { .. } => delivered += 1,
            ServerFrame::Pong => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(delivered, 10);
    // Room traffic has its own allowance: a newcomer can still be admitted by alice.
    let mut carol = support::raw_client(&relay, "carol").await;
    carol
        .send(&ClientFrame::Join { room: "lobby".into(), pake_message: vec![1; 32] })
        .await
        .unwrap();
    assert!(matches!(next_frame(&mut carol).await, ServerFrame::JoinPending { .. }));
    assert!(matches!(next_frame(alice).await, ServerFrame::AdmissionRequest { .. }));
    alice.send(&ClientFrame::ListMembers { room: "lobby".into() }).await.unwrap();
    assert!(matches!(next_frame(alice).await, ServerFrame::MemberList { .. }));
    // A second later, one more message is allowed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let frame = ClientFrame::Application { room: "lobby".into(), message };
    alice.send(&frame).await.unwrap();
    assert!(matches!(next_frame(bob).await, ServerFrame::Application { .. }));
}

/// A session in several rooms has one message budget, not one per room: a client cannot
/// multiply its allowance by joining rooms.
#[tokio::test(start_paused = true)]
async fn the_message_budget_is_the_sessions_whatever_its_rooms() {
    let limit = RateLimit { per_second: 1.0, burst: 10 };
    let relay = support::start_relay_with(config_with(|c| c.rate_limit = limit)).await;
    let mut alice = room_of(&relay, "dev", &["alice"]).await.remove(0);
    alice.send(&ClientFrame::Join { room: "ops".into(), pake_message: vec![1; 32] }).await.unwrap();
    assert_eq!(next_frame_held(&mut alice).await, ServerFrame::RoomCreated { room: "ops".into() });
    // Virtual time stands still (every wait is on the socket, held): no bucket refills.
    for (room, group) in [("dev", b"group-1"), ("ops", b"group-2")] {
        let message = build_private_message(group, 0, APPLICATION, b"six of these");
        for _ in 0..6 {
            let frame = ClientFrame::Application { room: room.into(), message: message.clone() };
            alice.send(&frame).await.unwrap();
        }
    }
    alice.send(&ClientFrame::Ping).await.unwrap();
    let mut refused = 0;
    loop {
        match next_frame_held(&mut alice).await {
            ServerFrame::Error { reason: ErrorReason::RateLimited, .. } => refused += 1,
            ServerFrame::Pong => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(refused, 2, "twelve messages over two rooms against one burst of ten");
}

#[tokio::test(start_paused = true)]
async fn sending_ten_times_past_the_limit_is_refused_frame_by_frame_then_disconnected() {
    let limit = RateLimit { per_second: 1.0, burst: 10 };
    let relay = support::start_relay_with(config_with(|c| c.rate_limit = limit)).await;
    let mut clients = room_of(&relay, "lobby", &["alice"]).await;
    let alice = &mut clients[0];
    let message = build_private_message(b"group-1", 0, APPLICATION, b"spam");
    let frame = ClientFrame::Application { room: "lobby".into(), message };
    // Virtual time stands still throughout (every wait is on the socket, held), so no bucket
    // refills and the counts are exactly what the limits imply: the burst of ten passes, ten
    // times the burst are refused one by one, and the next one ends the connection.
    for _ in 0..10 {
        alice.send(&frame).await.unwrap();
    }
    alice.send(&ClientFrame::Ping).await.unwrap();
    assert_eq!(next_frame_held(alice).await, ServerFrame::Pong, "the burst passed unrefused");
    // Alice's frames so far: `Register`, `Join`, a `Ping`, the burst and a `Ping`; each
    // refusal names the frame it refuses.
    for refused in 0..100 {
        alice.send(&frame).await.unwrap();
        let refusal =
            ServerFrame::Error { request: 15 + refused, reason: ErrorReason::RateLimited };
        assert_eq!(next_frame_held(alice).await, refusal, "after {refused} refusals");
    }
    alice.send(&frame).await.unwrap();
    let goodbye = ServerFrame::Goodbye { reason: DisconnectReason::RateLimited };
    assert_eq!(next_frame_held(alice).await, goodbye);
    assert!(held(alice.recv()).await.is_err(), "and the connection ends");
    settled(|| relay.relay.stats() == Default::default()).await;
}

#[tokio::test(start_paused = true)]
async fn room_password_guessing_bans_the_nickname_not_the_address_for_the_life_of_the_room() {
    let relay = support::start_relay().await;
    let mut leader = room_of(&relay, "lobby", &["alice"]).await.remove(0);
    let refuse = async |leader: &mut RawClient, joiner: &mut RawClient, nick: &str| {
        joiner
            .send(&ClientFrame::Join { room: "lobby".into(), pake_message: vec![1; 32] })
            .await
            .unwrap();
        assert!(matches!(next_frame(joiner).await, ServerFrame::JoinPending { .. }));
        let attempt = support::admission_attempt(leader).await;
        let refusal = ClientFrame::AdmissionRefused {
            room: "lobby".into(),
            joiner: nick.into(),
            attempt,
            reason: AdmissionRefusal::WrongPassword,
        };
        leader.send(&refusal).await.unwrap();
        match next_frame(joiner).await {
            ServerFrame::AdmissionRefused { reason, .. } => reason,
            other => panic!("unexpected {other:?}"),
        }
    };

    // Three guesses from one address: the nickname is banned, not the address, which may be a
    // whole household behind one NAT.
    let mut mallory = client_from(&relay, ATTACKER, "mallory").await;
    for attempt in 1..=3 {
        let expected =
            if attempt < 3 { AdmissionRefusal::WrongPassword } else { AdmissionRefusal::Banned };
        assert_eq!(refuse(&mut leader, &mut mallory, "mallory").await, expected);
    }
    let mut housemate = client_from(&relay, ATTACKER, "housemate").await;
    housemate
        .send(&ClientFrame::Join { room: "lobby".into(), pake_message: vec![1; 32] })
        .await
        .unwrap();
    assert!(
        matches!(next_frame(&mut housemate).await, ServerFrame::JoinPending { .. }),
        "same address, another nick: still gets in line"
    );
    // Its join reached the leader too.
    support::admission_attempt(&mut leader).await;
    housemate.send(&ClientFrame::Leave { room: "lobby".into() }).await.unwrap();

    // Three guesses under one nickname from three addresses: the nickname is banned.
    for (index, last) in [4u8, 5, 6].into_iter().enumerate() {
        let mut eve = client_from(&relay, loopback(last), "eve").await;
        let expected =
            if index < 2 { AdmissionRefusal::WrongPassword } else { AdmissionRefusal::Banned };
        assert_eq!(refuse(&mut leader, &mut eve, "eve").await, expected);
        eve.send(&ClientFrame::Quit).await.unwrap();
        assert!(eventually(|| relay.relay.stats().nicknames == 3).await);
    }
    let mut eve = client_from(&relay, loopback(7), "eve").await;
    eve.send(&ClientFrame::Join { room: "lobby".into(), pake_message: vec![1; 32] }).await.unwrap();
    // The refusal names eve's second frame (after `Register`).
    let banned_from_room = ServerFrame::Error { request: 2, reason: ErrorReason::BannedFromRoom };
    assert_eq!(next_frame(&mut eve).await, banned_from_room, "same nick, new address");

    // Only the room bans: the relay has just the leader's word for a wrong password, and a
    // leader's word must not list anyone in the server-wide fail2ban report.
    assert_eq!(relay.relay.gate().flagged(), vec![]);
    assert!(!relay.relay.gate().is_banned(ATTACKER), "not refused at accept");

    // The bans live as long as the room: once it is empty and gone, it is a new room.
    leader.send(&ClientFrame::Quit).await.unwrap();
    assert!(eventually(|| relay.relay.stats().rooms == 0).await);
    mallory
        .send(&ClientFrame::Join { room: "lobby".into(), pake_message: vec![1; 32] })
        .await
        .unwrap();
    assert_eq!(next_frame(&mut mallory).await, ServerFrame::RoomCreated { room: "lobby".into() });
}

fn check_report_format(text: &str) -> Vec<String> {
    // fail2ban's <HOST> matches an IPv4 or IPv6 address; this stands in for it.
    let host = r"(?P<host>[0-9A-Fa-f:.]+)";
    let failregex = Regex::new(&FAILREGEX.replace("<HOST>", host)).unwrap();
    let ignoreregex = Regex::new(IGNOREREGEX).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..3], [HEADER, HINT, ""]);
    assert!(text.ends_with('\n'));
    let mut hosts = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if index < 3 {
            assert!(ignoreregex.is_match(line), "{line:?} is ignored");
            assert!(!failregex.is_match(line), "{line:?} is not a hit");
        } else {
            assert!(!ignoreregex.is_match(line), "{line:?} is not ignored");
            let hit = failregex.captures(line).unwrap_or_else(|| panic!("{line:?} is a hit"));
            let host = hit["host"].to_owned();
            host.parse::<IpAddr>().expect("the host is an address");
            hosts.push(host);
        }
    }
    hosts
}

#[tokio::test(start_paused = true)]
async fn the_report_lists_flagged_addresses_in_the_fail2ban_format() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("report.txt");
    let report = ReportConfig { path: path.clone(), interval: Duration::from_secs(60) };
    let relay = support::start_relay_with(config_with(|c| {
        c.gate.preauth_budget = 2;
        c.gate.max_access_code_failures = 1;
        c.report = Some(report);
    }))
    .await;
    // Written at start, so fail2ban has a file to watch.
    assert!(eventually(|| path.exists()).await);
    assert!(check_report_format(&std::fs::read_to_string(&path).unwrap()).is_empty());

    for _ in 0..3 {
        drop(probe(ATTACKER, &relay).await);
    }
    tokio::time::sleep(Duration::from_secs(61)).await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(check_report_format(&text), ["127.0.0.2"]);
    assert!(text.ends_with("\n127.0.0.2 -> 2x packets\n"), "{text}");

    // Flagged just before shutdown: in the report written at shutdown.
    let wrong = RawClient::connect_from(BYSTANDER, relay.address, &Secret::from("guess")).await;
    assert!(matches!(wrong, Err(ClientError::WrongAccessCode)));
    assert!(eventually(|| relay.relay.gate().is_banned(BYSTANDER)).await);
    relay.shutdown().await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(check_report_format(&text), ["127.0.0.2", "127.0.0.3"]);
    let names: Vec<_> = std::fs::read_dir(directory.path()).unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    assert!(!report::temporary_path(&path).exists());
}

#[test]
fn the_report_format_matches_the_filter_for_ipv4_and_ipv6() {
    let flagged =
        [(loopback(2), 31), ("2001:db8::5".parse().unwrap(), 10), ("::1".parse().unwrap(), 1)];
    let hosts = check_report_format(&report::render(&flagged));
    assert_eq!(hosts, ["127.0.0.2", "2001:db8::5", "::1"]);
}

#[tokio::test(start_paused = true)]
async fn nothing_of_a_client_remains_after_it_quits_or_drops() {
    let relay = support::start_relay().await;
    let mut clients = room_of(&relay, "lobby", &["alice", "bob"]).await;
    let mut carol = client_from(&relay, BYSTANDER, "carol").await;
    carol
        .send(&ClientFrame::Join { room: "elsewhere".into(), pake_message: vec![1; 32] })
        .await
        .unwrap();
    assert!(matches!(next_frame(&mut carol).await, ServerFrame::RoomCreated { .. }));
    let message = build_private_message(b"group-1", 1, APPLICATION, b"hello");
    clients[0].send(&ClientFrame::Application { room: "lobby".into(), message }).await.unwrap();
    assert!(matches!(next_frame(&mut clients[1]).await, ServerFrame::Application { .. }));
    let stats = relay.relay.stats();
    assert_eq!((stats.sessions, stats.nicknames, stats.rooms), (3, 3, 2));

    // One quits, one just goes away, one half-opens a connection and never finishes.
    clients[0].send(&ClientFrame::Quit).await.unwrap();
    clients.truncate(0);
    carol.send(&ClientFrame::Quit).await.unwrap();
    let half_open = probe(ATTACKER, &relay).await;
    // The one that went away is kept, away, for the grace period, then forgotten too.
    assert!(eventually(|| relay.relay.stats().away_sessions == 1).await);
    assert_eq!(relay.relay.stats().sessions, 1);
    tokio::time::sleep(support::test_config().room_deadlines.grace).await;
    assert!(eventually(|| relay.relay.stats() == Default::default()).await);
    drop(half_open);

    // The gate forgets too: the addresses that logged in at once, the other within the window.
    assert!(eventually(|| relay.relay.gate().tracked_addresses() == 1).await);
    tokio::time::sleep(Duration::from_secs(11 * 60)).await;
    assert_eq!(relay.relay.gate().tracked_addresses(), 0);
    assert!(relay.relay.gate().flagged().is_empty());
}
