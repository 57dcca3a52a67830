//! Persistent identities: the key survives restarts, `known_peers` pins members' keys and
//! warns of an impostor, `/verify` codes agree, and the relay never sees a public key. Each
//! person's identity lives in a temporary directory of its own.

use std::path::{Path, PathBuf};

use chatter::client::{Client, ClientOptions, Event, Events};
use chatter::identity::{Identity, KnownPeers, TrustMark, Verification};
use chatter::secret::Secret;

use crate::repl_support;
use crate::support::{self, ACCESS_CODE, TestRelay, capture, expect_event, split};

/// One person: a directory holding an identity and `known_peers`.
struct Person {
    dir: tempfile::TempDir,
}

impl Person {
    fn new() -> Self {
        Person { dir: tempfile::tempdir().expect("temporary directory") }
    }

    fn identity_file(&self) -> PathBuf {
        self.dir.path().join("identity")
    }

    fn identity(&self) -> Identity {
        Identity::load_or_create(&self.identity_file()).expect("identity").0
    }

    /// A full client engine at `server` as `nick`, signing with this person's identity.
    async fn connect_at(&self, server: &str, nick: &str) -> (Client, Events) {
        let known_peers =
            KnownPeers::open(&KnownPeers::path_beside(&self.identity_file())).expect("known_peers");
        let options = ClientOptions {
            server: server.to_owned(),
            nick: nick.to_owned(),
            access_code: Secret::from(ACCESS_CODE),
        };
        chatter::client::connect_as(options, self.identity(), known_peers).await.expect("connect")
    }

    async fn connect(&self, relay: &TestRelay, nick: &str) -> (Client, Events) {
        self.connect_at(&relay.addr(), nick).await
    }
}

/// Every event the engine has emitted so far, deterministically: a `/who` round trip goes
/// through the engine after every frame that arrived before its answer, so once it returns,
/// the events of those frames are all in the queue.
async fn pending_events(
    client: &chatter::client::Client,
    events: &mut chatter::client::Events,
) -> Vec<Event> {
    let _ = client.members().await;
    std::iter::from_fn(|| events.try_recv()).collect()
}

fn is_joined(nick: &str) -> impl Fn(&Event) -> bool {
    let nick = nick.to_owned();
    move |event| matches!(event, Event::Joined { nick: n, .. } if *n == nick)
}

fn is_left(nick: &str) -> impl Fn(&Event) -> bool {
    let nick = nick.to_owned();
    move |event| matches!(event, Event::Left { nick: n, .. } if *n == nick)
}

fn is_key_changed(nick: &str) -> impl Fn(&Event) -> bool {
    let nick = nick.to_owned();
    move |event| matches!(event, Event::KeyChanged { nick: n, .. } if *n == nick)
}

fn key_changes(events: &[Event]) -> Vec<&Event> {
    events.iter().filter(|event| matches!(event, Event::KeyChanged { .. })).collect()
}

async fn mark_of(client: &Client, nick: &str) -> Option<TrustMark> {
    let members = client.members().await.expect("members");
    members.members.into_iter().find(|member| member.nick == nick).and_then(|member| member.trust)
}

async fn room_code(client: &Client) -> (u64, String) {
    match client.verify(None).await.expect("verify") {
        Verification::Room { epoch, code, .. } => (epoch, code),
        other => panic!("not a room code: {other:?}"),
    }
}

async fn pairwise_code(client: &Client, nick: &str) -> String {
    match client.verify(Some(nick)).await.expect("verify nick") {
        Verification::Peer { code, .. } => code,
        other => panic!("not a pairwise code: {other:?}"),
    }
}

#[tokio::test]
async fn an_impostor_under_a_known_nick_is_flagged_by_everyone_who_saw_the_real_one() {
    let relay = support::start_relay().await;
    let (alice, carol, dave, bob, mallory) =
        (Person::new(), Person::new(), Person::new(), Person::new(), Person::new());

    let (alice_client, mut alice_events) = alice.connect(&relay, "alice").await;
    alice_client.join("lobby", Secret::from("pw")).await.expect("create");
    let (bob_client, mut bob_events) = bob.connect(&relay, "bob").await;
    bob_client.join("lobby", Secret::from("pw")).await.expect("bob joins");
    expect_event(&mut alice_events, is_joined("bob")).await;
    let (carol_client, mut carol_events) = carol.connect(&relay, "carol").await;
    carol_client.join("lobby", Secret::from("pw")).await.expect("carol joins");
    expect_event(&mut alice_events, is_joined("carol")).await;
    expect_event(&mut bob_events, is_joined("carol")).await;
    assert_eq!(mark_of(&alice_client, "bob").await, Some(TrustMark::New));

    // The real bob restarts: same identity file, same key, nobody is warned.
    bob_client.quit().await.expect("bob quits");
    expect_event(&mut alice_events, is_left("bob")).await;
    expect_event(&mut carol_events, is_left("bob")).await;
    let (bob_client, _bob_events) = bob.connect(&relay, "bob").await;
    bob_client.join("lobby", Secret::from("pw")).await.expect("bob rejoins");
    expect_event(&mut alice_events, is_joined("bob")).await;
    expect_event(&mut carol_events, is_joined("bob")).await;
    bob_client.quit().await.expect("bob quits again");
    expect_event(&mut alice_events, is_left("bob")).await;
    expect_event(&mut carol_events, is_left("bob")).await;
    assert!(key_changes(&pending_events(&alice_client, &mut alice_events).await).is_empty());

    // Dave arrives while bob is away, so he has never seen the real bob.
    let (dave_client, mut dave_events) = dave.connect(&relay, "dave").await;
    dave_client.join("lobby", Secret::from("pw")).await.expect("dave joins");
    expect_event(&mut alice_events, is_joined("dave")).await;
    expect_event(&mut carol_events, is_joined("dave")).await;

    // Mallory knows the room password and takes bob's nickname, but not his key.
    let (mallory_client, mut mallory_events) = mallory.connect(&relay, "bob").await;
    mallory_client.join("lobby", Secret::from("pw")).await.expect("mallory joins as bob");
    for (name, events) in [("alice", &mut alice_events), ("carol", &mut carol_events)] {
        match expect_event(events, is_key_changed("bob")).await {
            Event::KeyChanged { room, first_seen, fingerprint, .. } => {
                assert_eq!(room, "lobby");
                assert_eq!(first_seen, chrono::Local::now().format("%Y-%m-%d").to_string());
                assert_eq!(fingerprint, mallory.identity().fingerprint(), "{name}");
            }
            _ => unreachable!(),
        }
    }
    expect_event(&mut dave_events, is_joined("bob")).await;
    assert!(
        key_changes(&pending_events(&dave_client, &mut dave_events).await).is_empty(),
        "dave never saw bob"
    );
    assert!(key_changes(&pending_events(&mallory_client, &mut mallory_events).await).is_empty());
    assert_eq!(mark_of(&alice_client, "bob").await, Some(TrustMark::Changed));
    assert_eq!(mark_of(&dave_client, "bob").await, Some(TrustMark::New));
    // One warning per key per session, not one per later commit.
    let (erin_client, _erin_events) = Person::new().connect(&relay, "erin").await;
    erin_client.join("lobby", Secret::from("pw")).await.expect("erin joins");
    expect_event(&mut alice_events, is_joined("erin")).await;
    assert!(key_changes(&pending_events(&alice_client, &mut alice_events).await).is_empty());

    // Carol restarts: her known_peers file still holds the real bob, so the impostor already
    // in the room is flagged as soon as she is welcomed.
    carol_client.quit().await.expect("carol quits");
    expect_event(&mut alice_events, is_left("carol")).await;
    let (carol_client, mut carol_events) = carol.connect(&relay, "carol").await;
    carol_client.join("lobby", Secret::from("pw")).await.expect("carol rejoins");
    expect_event(&mut carol_events, is_key_changed("bob")).await;

    // Alice compares codes with this bob and accepts the new key: the mark and the pin change.
    let trusted = alice_client.trust("bob").await.expect("trust");
    assert_eq!(trusted.previous, TrustMark::Changed);
    assert_eq!(mark_of(&alice_client, "bob").await, Some(TrustMark::Verified));
    let pins = std::fs::read_to_string(KnownPeers::path_beside(&alice.identity_file())).unwrap();
    let mallory_key = base16(mallory.identity().public_key());
    assert!(
        pins.lines().any(|line| line.contains(" bob ")
            && line.contains(&mallory_key)
            && line.ends_with(" verified")),
        "{pins}"
    );
}

fn base16(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test]
async fn room_codes_agree_change_after_a_join_and_pairwise_codes_are_symmetric() {
    let relay = support::start_relay().await;
    let (alice, bob, carol) = (Person::new(), Person::new(), Person::new());
    let (alice_client, mut alice_events) = alice.connect(&relay, "alice").await;
    alice_client.join("lobby", Secret::from("pw")).await.expect("create");
    let (bob_client, mut bob_events) = bob.connect(&relay, "bob").await;
    bob_client.join("lobby", Secret::from("pw")).await.expect("bob joins");
    expect_event(&mut alice_events, is_joined("bob")).await;

    let (epoch, before) = room_code(&alice_client).await;
    assert_eq!(room_code(&bob_client).await, (epoch, before.clone()));
    assert_eq!(before.len(), 35, "six groups of five digits: {before}");

    let alice_bob = pairwise_code(&alice_client, "bob").await;
    assert_eq!(pairwise_code(&bob_client, "alice").await, alice_bob);

    let (carol_client, mut carol_events) = carol.connect(&relay, "carol").await;
    carol_client.join("lobby", Secret::from("pw")).await.expect("carol joins");
    expect_event(&mut carol_events, is_joined("carol")).await;
    expect_event(&mut alice_events, is_joined("carol")).await;
    expect_event(&mut bob_events, is_joined("carol")).await;
    let (later_epoch, after) = room_code(&alice_client).await;
    assert_eq!(later_epoch, epoch + 1);
    assert_ne!(after, before, "a join changes the room code");
    assert_eq!(room_code(&bob_client).await, (later_epoch, after.clone()));
    assert_eq!(room_code(&carol_client).await, (later_epoch, after));

    // The pairwise code ignores epochs and sessions, and differs between pairs.
    assert_eq!(pairwise_code(&alice_client, "bob").await, alice_bob);
    assert_ne!(pairwise_code(&alice_client, "carol").await, alice_bob);
    assert_eq!(
        pairwise_code(&carol_client, "alice").await,
        pairwise_code(&alice_client, "carol").await
    );
    bob_client.quit().await.expect("bob quits");
    expect_event(&mut alice_events, is_left("bob")).await;
    let (bob_client, _) = bob.connect(&relay, "bob").await;
    bob_client.join("lobby", Secret::from("pw")).await.expect("bob rejoins");
    expect_event(&mut alice_events, is_joined("bob")).await;
    assert_eq!(pairwise_code(&bob_client, "alice").await, alice_bob);
    assert!(bob_client.verify(Some("bob")).await.is_err(), "no code with oneself");
    assert!(bob_client.verify(Some("zed")).await.is_err());
}

#[tokio::test]
async fn a_relay_that_splits_a_room_cannot_make_the_halves_codes_agree() {
    let (first, second) = (support::start_relay().await, support::start_relay().await);
    let server = split::start(vec![first.address, second.address], vec![0, 0, 1, 1]).await;
    let server = server.to_string();
    let mut clients = Vec::new();
    for nick in ["alice", "bob", "carol", "dave"] {
        let (client, mut events) = Person::new().connect_at(&server, nick).await;
        client.join("lobby", Secret::from("pw")).await.expect("join");
        expect_event(&mut events, is_joined(nick)).await;
        clients.push((client, events));
    }
    // Each half is a room called lobby on the same server, two members, at the same epoch.
    expect_event(&mut clients[0].1, is_joined("bob")).await;
    expect_event(&mut clients[2].1, is_joined("dave")).await;
    let mut codes = Vec::new();
    for (client, _) in &clients {
        codes.push(room_code(client).await);
    }
    assert_eq!(codes[0], codes[1], "alice and bob share a group");
    assert_eq!(codes[2], codes[3], "carol and dave share a group");
    assert_eq!(codes[0].0, codes[2].0, "both halves are at the same epoch");
    assert_ne!(codes[0].1, codes[2].1, "the halves' codes differ");
}

#[tokio::test]
async fn the_relay_never_sees_a_public_key() {
    let relay = support::start_relay().await;
    let capture = capture::Capture::default();
    let people = [Person::new(), Person::new(), Person::new()];
    let keys: Vec<Vec<u8>> =
        people.iter().map(|person| person.identity().public_key().to_vec()).collect();
    let mut clients = Vec::new();
    for (person, nick) in people.iter().zip(["alice", "bob", "carol"]) {
        let proxy = capture::start(relay.address, ACCESS_CODE, capture.clone()).await;
        let (client, mut events) = person.connect_at(&proxy.to_string(), nick).await;
        client.join("lobby", Secret::from("pw")).await.expect("join");
        expect_event(&mut events, is_joined(nick)).await;
        client.send_text(&format!("hello from {nick}")).await.expect("send");
        clients.push((client, events));
    }
    // Every member has seen every other join, then everyone leaves: key packages (sealed),
    // Welcomes, commits, messages, and removals all went through the capture.
    expect_event(&mut clients[0].1, is_joined("carol")).await;
    clients[2].0.quit().await.expect("carol quits");
    expect_event(&mut clients[0].1, is_left("carol")).await;
    assert!(capture.len() > 20, "the capture saw the traffic ({} frames)", capture.len());
    assert!(capture.contains(b"alice"), "the capture sees what the relay sees");
    // The search would find a key where one travels in the clear, as in a bare KeyPackage
    // (whose credential carries the identity key that certified its device key).
    let bare = chatter::mls::MlsMember::certified("alice", &people[0].identity().key_pair(), 0)
        .unwrap()
        .key_package()
        .unwrap();
    assert!(bare.windows(32).any(|window| window == keys[0].as_slice()));
    for key in &keys {
        assert!(!capture.contains(key), "a public key crossed the relay in the clear");
        assert!(!capture.contains(&key[..8]), "part of a public key crossed the relay");
    }
}

/// `chatter` with a private home, in `home`.
fn chatter_at(home: &Path) -> std::process::Command {
    repl_support::chatter(home)
}

fn run(command: &mut std::process::Command) -> (bool, String, String) {
    let output = command.output().expect("run chatter");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("utf-8");
    (output.status.success(), text(output.stdout), text(output.stderr))
}

#[test]
fn the_fingerprint_survives_a_restart_and_bad_files_are_refused() {
    let home = tempfile::tempdir().unwrap();
    // The default place: the per-user data directory.
    let (ok, first, _) = run(chatter_at(home.path()).arg("--fingerprint"));
    assert!(ok);
    let (ok, second, _) = run(chatter_at(home.path()).arg("--fingerprint"));
    assert!(ok);
    assert_eq!(first, second);
    assert_eq!(first.trim().len(), 19, "{first}");
    let default_file = home.path().join("data").join("chatter").join("identity");
    assert!(default_file.exists());

    // Another identity by flag.
    let other = home.path().join("work").join("identity");
    let (ok, third, _) =
        run(chatter_at(home.path()).arg("--identity").arg(&other).arg("--fingerprint"));
    assert!(ok);
    assert_ne!(third, first);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&other).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (ok, out, err) =
            run(chatter_at(home.path()).arg("--identity").arg(&other).arg("--fingerprint"));
        assert!(!ok && out.is_empty(), "{out}");
        assert!(err.contains("can be read by other users"), "{err}");
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let before = std::fs::read_to_string(&default_file).unwrap();
    let damaged = before.replacen("ed25519-public ", "ed25519-public 00", 1);
    std::fs::write(&default_file, &damaged).unwrap();
    let (ok, out, err) = run(chatter_at(home.path()).arg("--fingerprint"));
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("is not a valid chatter identity") && err.contains("refusing"), "{err}");
    assert_eq!(std::fs::read_to_string(&default_file).unwrap(), damaged, "never replaced");
}

#[test]
fn json_line_mode_reports_the_identity() {
    use std::io::Write as _;
    let relay = repl_support::start_relay();
    let home = tempfile::tempdir().unwrap();
    let (_, fingerprint, _) = run(chatter_at(home.path()).arg("--fingerprint"));
    let mut child = chatter_at(home.path())
        .env("CHATTER_ACCESS_CODE", repl_support::ACCESS_CODE)
        .args([relay.address.as_str(), "--nick", "bot", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn chatter");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "/whoami").unwrap();
    writeln!(stdin, "/join lobby").unwrap();
    writeln!(stdin, "/verify").unwrap();
    drop(stdin);
    let output = child.wait_with_output().expect("chatter ends at end of input");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<serde_json::Value> =
        stdout.lines().map(|line| serde_json::from_str(line).expect("json")).collect();
    let whoami = lines.iter().find(|line| line["type"] == "whoami").expect("whoami line");
    assert_eq!(whoami["fingerprint"], fingerprint.trim());
    assert_eq!(whoami["nick"], "bot");
    let code = lines.iter().find(|line| line["type"] == "room_code").expect("room code line");
    assert_eq!(code["room"], "lobby");
    assert_eq!(code["code"].as_str().map(str::len), Some(35), "{code}");
}

#[test]
fn the_repl_shows_the_identity_at_start_and_in_whoami() {
    use expectrl::{Expect, Session};
    let relay = repl_support::start_relay();
    let home = tempfile::tempdir().unwrap();
    let start = || {
        let mut command = chatter_at(home.path());
        command.env("CHATTER_ACCESS_CODE", repl_support::ACCESS_CODE).args([
            relay.address.as_str(),
            "--nick",
            "alice",
        ]);
        let mut pty = Session::spawn(command).expect("spawn chatter in a pty");
        pty.set_expect_timeout(Some(std::time::Duration::from_secs(15)));
        pty
    };
    let mut pty = start();
    pty.expect("created your identity").expect("says a new identity was made");
    pty.expect("connected to").expect("connects");
    pty.send_line("/quit").unwrap();
    pty.expect(expectrl::Eof).expect("quits");
    let (_, fingerprint, _) = run(chatter_at(home.path()).arg("--fingerprint"));
    let fingerprint = fingerprint.trim();
    let mut pty = start();
    pty.expect(format!("you are alice, identity {fingerprint}").as_str()).expect("start line");
    pty.expect("connected to").expect("connects");
    pty.send_line("/whoami").unwrap();
    pty.expect(format!("identity {fingerprint}").as_str()).expect("/whoami");
    pty.send_line("/quit").unwrap();
    pty.expect(expectrl::Eof).expect("quits");
}

/// The first case: one person, two clients (two terminals sharing the identity file),
/// one room. Each has its own nickname and device key; both talk; the others see one
/// identity behind both names; "ALICE" is refused while "alice" is online.
#[tokio::test]
async fn one_identity_on_two_clients_is_in_one_room_twice_and_shown_as_one_identity() {
    let relay = support::start_relay().await;
    let (alice_person, bob_person) = (Person::new(), Person::new());
    let (alice, mut alice_events) = alice_person.connect(&relay, "alice").await;
    alice.join("lobby", Secret::from("pw")).await.expect("alice joins");
    let (bob, mut bob_events) = bob_person.connect(&relay, "bob").await;
    bob.join("lobby", Secret::from("pw")).await.expect("bob joins");
    expect_event(&mut alice_events, is_joined("bob")).await;

    // The same name in capitals is the same name to the relay.
    let options = ClientOptions {
        server: relay.addr(),
        nick: "ALICE".into(),
        access_code: Secret::from(ACCESS_CODE),
    };
    let taken =
        chatter::client::connect_as(options, alice_person.identity(), KnownPeers::in_memory())
            .await
            .expect_err("ALICE is taken while alice is online");
    assert!(matches!(taken, chatter::client::ClientError::NickTaken(_)), "{taken:?}");

    let (laptop, mut laptop_events) = alice_person.connect(&relay, "alice-2").await;
    laptop.join("lobby", Secret::from("pw")).await.expect("alice-2 joins");
    expect_event(&mut bob_events, is_joined("alice-2")).await;
    expect_event(&mut alice_events, is_joined("alice-2")).await;
    laptop.send_text("from the laptop").await.unwrap();
    let from_laptop = |e: &Event| matches!(e, Event::Message { from, text, .. } if from == "alice-2" && text == "from the laptop");
    expect_event(&mut alice_events, from_laptop).await;
    expect_event(&mut bob_events, from_laptop).await;
    alice.send_text("from the desktop").await.unwrap();
    let from_desktop = |e: &Event| matches!(e, Event::Message { from, text, .. } if from == "alice" && text == "from the desktop");
    expect_event(&mut laptop_events, from_desktop).await;

    let who = bob.members().await.expect("members");
    let view = |nick: &str| who.members.iter().find(|m| m.nick == nick).expect("listed").clone();
    let (first, second) = (view("alice"), view("alice-2"));
    assert_eq!(first.fingerprint, Some(alice_person.identity().fingerprint()));
    assert_eq!(second.fingerprint, first.fingerprint);
    assert_eq!(second.same_identity_as.as_deref(), Some("alice"));
    assert_eq!(first.same_identity_as, None);
    assert_eq!(view("bob").same_identity_as, None);
    // No key-change warning anywhere: one identity, pinned under each of its names.
    assert!(key_changes(&pending_events(&bob, &mut bob_events).await).is_empty());
}

/// The look-alikes: after "sophie" left, "SOPHIE" and an all-Cyrillic "ѕорһіе" with
/// keys of their own each bring a warning naming sophie's key, and `/who` marks them; a
/// name with an invisible variation selector is refused by the relay, saying why.
#[tokio::test]
async fn look_alikes_of_a_pinned_name_are_warned_and_marked() {
    let relay = support::start_relay().await;
    let (alice_person, sophie_person) = (Person::new(), Person::new());
    let (alice, mut alice_events) = alice_person.connect(&relay, "alice").await;
    alice.join("lobby", Secret::from("pw")).await.expect("alice joins");
    let (sophie, _sophie_events) = sophie_person.connect(&relay, "sophie").await;
    sophie.join("lobby", Secret::from("pw")).await.expect("sophie joins");
    expect_event(&mut alice_events, is_joined("sophie")).await;
    sophie.quit().await.expect("sophie quits");
    expect_event(&mut alice_events, is_left("sophie")).await;
    let sophie_fingerprint = sophie_person.identity().fingerprint();

    let invisible = ClientOptions {
        server: relay.addr(),
        nick: "sophie\u{FE0F}".into(),
        access_code: Secret::from(ACCESS_CODE),
    };
    let refused = chatter::client::connect(invisible).await.expect_err("refused");
    assert!(refused.to_string().contains("variation selector"), "{refused}");

    for nick in ["SOPHIE", "\u{0455}\u{043E}\u{0440}\u{04BB}\u{0456}\u{0435}"] {
        let impostor = Person::new();
        let (client, _events) = impostor.connect(&relay, nick).await;
        client.join("lobby", Secret::from("pw")).await.expect("the impostor joins");
        let warned = expect_event(
            &mut alice_events,
            |e| matches!(e, Event::LookAlike { nick: n, .. } if n == nick),
        )
        .await;
        let Event::LookAlike { looks_like, pinned_fingerprint, .. } = warned else {
            unreachable!()
        };
        assert_eq!((looks_like.as_str(), &pinned_fingerprint), ("sophie", &sophie_fingerprint));
        let who = alice.members().await.expect("members");
        let marked = who.members.iter().find(|m| m.nick == nick).expect("listed");
        assert_eq!(marked.looks_like.as_deref(), Some("sophie"), "{nick}");
        client.quit().await.expect("the impostor quits");
        expect_event(&mut alice_events, is_left(nick)).await;
    }
}

/// At most eight clients of one identity share a room: the ninth is refused by the leader,
/// and the joiner is told that reason, not "malformed".
#[tokio::test]
async fn a_ninth_client_of_one_identity_is_refused_and_told_why() {
    let relay = support::start_relay().await;
    let (bob_person, alice_person) = (Person::new(), Person::new());
    let (bob, _bob_events) = bob_person.connect(&relay, "bob").await;
    bob.join("lobby", Secret::from("pw")).await.expect("bob founds the room");
    let mut clients = Vec::new();
    for number in 1..=chatter::mls::MAX_CLIENTS_PER_IDENTITY {
        let (client, events) = alice_person.connect(&relay, &format!("alice-{number}")).await;
        client.join("lobby", Secret::from("pw")).await.expect("one of the eight joins");
        clients.push((client, events));
    }
    let (ninth, _events) = alice_person.connect(&relay, "alice-9").await;
    let refused = ninth.join("lobby", Secret::from("pw")).await.expect_err("the ninth is refused");
    assert!(
        matches!(
            refused,
            chatter::client::ClientError::AdmissionRefused(
                chatter::proto::AdmissionRefusal::TooManyDevices
            )
        ),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("the most clients this room allows"), "{refused}");
    let who = bob.members().await.expect("members");
    assert_eq!(who.members.len(), 1 + chatter::mls::MAX_CLIENTS_PER_IDENTITY);
}
