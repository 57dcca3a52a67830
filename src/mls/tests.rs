//! Rooms of in-memory members passing bytes to each other, as the relay would.

use super::*;
use crate::mls_header::{
    CONTENT_TYPE_APPLICATION, CONTENT_TYPE_COMMIT, WIRE_FORMAT_KEY_PACKAGE,
    WIRE_FORMAT_PRIVATE_MESSAGE, WIRE_FORMAT_WELCOME, peek_header, peek_wire_format,
};

/// A member and its view of the one room under test.
struct Client {
    member: MlsMember,
    room: RoomGroup,
}

fn founder(nick: &str) -> Client {
    let member = MlsMember::new(nick).unwrap();
    let room = member.create_room().unwrap();
    Client { member, room }
}

/// The relay's part: the committer's commit is accepted, everyone else processes it.
fn accept_commit(clients: &mut [Client], committer: usize, commit: &OutgoingCommit) {
    clients[committer].room.merge_pending_commit().unwrap();
    for (index, client) in clients.iter_mut().enumerate() {
        if index != committer {
            apply(&mut client.room, &commit.commit).unwrap();
        }
    }
}

/// `committer` adds a new member named `nick`; returns its index.
fn add(clients: &mut Vec<Client>, committer: usize, nick: &str) -> usize {
    let member = MlsMember::new(nick).unwrap();
    let commit = clients[committer].room.commit_add(&member.key_package().unwrap(), nick).unwrap();
    accept_commit(clients, committer, &commit);
    let room = member.join_room(commit.welcome.as_deref().unwrap()).unwrap();
    clients.push(Client { member, room });
    clients.len() - 1
}

fn room_of(nicks: &[&str]) -> Vec<Client> {
    let mut clients = vec![founder(nicks[0])];
    for nick in &nicks[1..] {
        add(&mut clients, 0, nick);
    }
    clients
}

/// What a member does with a commit the room confirmed: verify and stage it, then merge it.
fn apply(room: &mut RoomGroup, commit: &[u8]) -> Result<Vec<RoomEvent>, MlsError> {
    room.stage_commit(commit)?;
    room.merge_staged_commit()
}

fn message(from: &str, payload: &[u8]) -> Vec<RoomEvent> {
    vec![RoomEvent::Message { from: from.into(), payload: payload.to_vec() }]
}

#[test]
fn create_gives_a_one_member_room_with_a_random_id() {
    let alice = founder("alice");
    let other = alice.member.create_room().unwrap();
    assert_eq!(alice.room.epoch(), 0);
    assert_ne!(alice.room.group_id(), other.group_id());
    assert!(alice.room.group_id().len() >= 16);
    let members = alice.room.members();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].nick, "alice");
    assert_eq!(members[0].fingerprint, alice.member.fingerprint());
    assert!(members[0].is_self);
    assert!(!alice.room.has_pending_commit());
}

#[test]
fn four_members_chat_in_all_directions_in_order() {
    let mut clients = room_of(&["alice", "bob", "carol", "dave"]);
    let epoch = clients[0].room.epoch();
    assert_eq!(epoch, 3);
    for client in &clients {
        assert_eq!(client.room.epoch(), epoch);
        assert_eq!(client.room.group_id(), clients[0].room.group_id());
        let nicks: Vec<_> = client.room.members().into_iter().map(|m| m.nick).collect();
        assert_eq!(nicks, ["alice", "bob", "carol", "dave"]);
    }
    for sender in 0..clients.len() {
        let nick = clients[sender].member.nick().to_owned();
        let sent: Vec<Vec<u8>> = (0..3)
            .map(|n| {
                let payload = format!("{nick} says {n}").into_bytes();
                clients[sender].room.encrypt_message(&payload).unwrap()
            })
            .collect();
        for (receiver, client) in clients.iter_mut().enumerate() {
            if receiver == sender {
                continue;
            }
            for (n, ciphertext) in sent.iter().enumerate() {
                let events = client.room.process_incoming(ciphertext).unwrap();
                assert_eq!(events, message(&nick, format!("{nick} says {n}").as_bytes()));
            }
        }
    }
}

#[test]
fn the_store_keeps_no_copy_of_the_group() {
    // The live group holds its ratchet tree and message secrets; the member's store keeps no
    // second copy of them (see `provider`), so nothing can load the group back from it. After
    // messages each way and a commit, the room carries on from the live groups alone.
    let mut clients = room_of(&["alice", "bob", "carol"]);
    for sender in 0..clients.len() {
        let ciphertext = clients[sender].room.encrypt_message(b"warm-up").unwrap();
        for receiver in (0..clients.len()).filter(|receiver| *receiver != sender) {
            clients[receiver].room.process_incoming(&ciphertext).unwrap();
        }
    }
    let commit = clients[1].room.commit_remove(&["carol"]).unwrap();
    accept_commit(&mut clients, 1, &commit);
    for client in &clients[..2] {
        assert!(!client.room.stored_copy_exists());
    }
    let from_alice = clients[0].room.encrypt_message(b"still there?").unwrap();
    assert_eq!(
        clients[1].room.process_incoming(&from_alice).unwrap(),
        message("alice", b"still there?")
    );
    assert_eq!(clients[0].room.members().len(), 2);
}

#[test]
fn fingerprints_in_member_lists_match_each_session() {
    let clients = room_of(&["alice", "bob"]);
    let seen_by_alice = clients[0].room.members();
    assert_eq!(seen_by_alice[1].fingerprint, clients[1].member.fingerprint());
    assert!(!seen_by_alice[1].is_self);
    assert_eq!(clients[1].room.members(), {
        let mut expected = seen_by_alice.clone();
        expected[0].is_self = false;
        expected[1].is_self = true;
        expected
    });
}

#[test]
fn add_and_remove_report_events_and_the_removed_member_is_locked_out() {
    let mut clients = room_of(&["alice", "bob"]);
    let carol = MlsMember::new("carol").unwrap();
    let commit = clients[0].room.commit_add(&carol.key_package().unwrap(), "carol").unwrap();
    assert!(clients[0].room.has_pending_commit());
    assert_eq!(commit.epoch, 1);
    assert_eq!(peek_header(&commit.commit).unwrap().content_type, CONTENT_TYPE_COMMIT);
    assert_eq!(
        clients[0].room.merge_pending_commit().unwrap(),
        [RoomEvent::MemberAdded { nick: "carol".into() }]
    );
    assert_eq!(
        apply(&mut clients[1].room, &commit.commit).unwrap(),
        [RoomEvent::MemberAdded { nick: "carol".into() }]
    );
    let carol_room = carol.join_room(commit.welcome.as_deref().unwrap()).unwrap();
    clients.push(Client { member: carol, room: carol_room });

    let removal = clients[0].room.commit_remove(&["bob"]).unwrap();
    assert_eq!(removal.welcome, None);
    assert_eq!(
        clients[0].room.merge_pending_commit().unwrap(),
        [RoomEvent::MemberRemoved { nick: "bob".into() }]
    );
    assert_eq!(
        apply(&mut clients[2].room, &removal.commit).unwrap(),
        [RoomEvent::MemberRemoved { nick: "bob".into() }]
    );
    assert_eq!(apply(&mut clients[1].room, &removal.commit).unwrap(), [RoomEvent::SelfRemoved]);
    assert!(!clients[1].room.is_active());

    let secret = clients[0].room.encrypt_message(b"bob is gone").unwrap();
    assert_eq!(
        clients[2].room.process_incoming(&secret).unwrap(),
        message("alice", b"bob is gone")
    );
    assert!(clients[1].room.process_incoming(&secret).is_err());
    assert_eq!(clients[1].room.encrypt_message(b"hello?").unwrap_err(), MlsError::NotAMember);
    let nicks: Vec<_> = clients[0].room.members().into_iter().map(|m| m.nick).collect();
    assert_eq!(nicks, ["alice", "carol"]);
}

#[test]
fn only_commits_that_remove_renew_the_committers_leaf_key() {
    let mut clients = room_of(&["alice", "bob"]);
    let before = clients[0].room.own_encryption_key();
    add(&mut clients, 0, "carol");
    assert_eq!(clients[0].room.own_encryption_key(), before, "an add carries no update path");
    let removal = clients[0].room.commit_remove(&["bob"]).unwrap();
    clients[0].room.merge_pending_commit().unwrap();
    apply(&mut clients[2].room, &removal.commit).unwrap();
    assert_ne!(clients[0].room.own_encryption_key(), before, "a removal renews the key");
    let secret = clients[0].room.encrypt_message(b"after").unwrap();
    assert_eq!(clients[2].room.process_incoming(&secret).unwrap(), message("alice", b"after"));
}

#[test]
fn a_joiner_cannot_read_what_was_sent_before_it_joined() {
    let mut clients = room_of(&["alice", "bob"]);
    let earlier = clients[0].room.encrypt_message(b"before carol").unwrap();
    let carol = add(&mut clients, 0, "carol");
    assert!(clients[carol].room.process_incoming(&earlier).is_err());
    assert_eq!(
        clients[1].room.process_incoming(&earlier).unwrap(),
        message("alice", b"before carol")
    );
}

#[test]
fn concurrent_commits_loser_discards_processes_winner_and_retries() {
    let mut clients = room_of(&["alice", "bob"]);
    let carol = MlsMember::new("carol").unwrap();
    let dave = MlsMember::new("dave").unwrap();
    let dave_key_package = dave.key_package().unwrap();
    let alice_commit = clients[0].room.commit_add(&carol.key_package().unwrap(), "carol").unwrap();
    let bob_commit = clients[1].room.commit_add(&dave_key_package, "dave").unwrap();
    assert_eq!(alice_commit.epoch, bob_commit.epoch);
    assert_eq!(
        clients[1].room.commit_add(&dave_key_package, "dave").unwrap_err(),
        MlsError::CommitPending
    );

    // The relay takes alice's commit and rejects bob's.
    clients[0].room.merge_pending_commit().unwrap();
    clients[1].room.discard_pending_commit();
    assert!(!clients[1].room.has_pending_commit());
    assert_eq!(
        apply(&mut clients[1].room, &alice_commit.commit).unwrap(),
        [RoomEvent::MemberAdded { nick: "carol".into() }]
    );
    let carol_room = carol.join_room(alice_commit.welcome.as_deref().unwrap()).unwrap();
    clients.push(Client { member: carol, room: carol_room });
    // Bob's losing commit reaches nobody; if it did, it would be too old.
    assert!(matches!(
        apply(&mut clients[2].room, &bob_commit.commit),
        Err(MlsError::EpochTooOld { message_epoch: 1, group_epoch: 2 })
    ));

    let retry = clients[1].room.commit_add(&dave_key_package, "dave").unwrap();
    assert_eq!(retry.epoch, 2);
    accept_commit(&mut clients, 1, &retry);
    let dave_room = dave.join_room(retry.welcome.as_deref().unwrap()).unwrap();
    clients.push(Client { member: dave, room: dave_room });
    let hello = clients[3].room.encrypt_message(b"hi all").unwrap();
    for client in &mut clients[..3] {
        assert_eq!(client.room.process_incoming(&hello).unwrap(), message("dave", b"hi all"));
    }
}

#[test]
fn a_pending_commit_is_discarded_when_another_commit_wins() {
    let mut clients = room_of(&["alice", "bob", "carol"]);
    let alice_commit = clients[0].room.commit_remove(&["carol"]).unwrap();
    let _bob_commit = clients[1].room.commit_remove(&["carol"]).unwrap();
    clients[0].room.merge_pending_commit().unwrap();
    // Bob is told nothing but receives alice's commit: it won, so his own is dropped.
    assert_eq!(
        apply(&mut clients[1].room, &alice_commit.commit).unwrap(),
        [RoomEvent::MemberRemoved { nick: "carol".into() }]
    );
    assert!(!clients[1].room.has_pending_commit());
    assert_eq!(clients[1].room.epoch(), clients[0].room.epoch());
    let ciphertext = clients[1].room.encrypt_message(b"in sync").unwrap();
    assert_eq!(clients[0].room.process_incoming(&ciphertext).unwrap(), message("bob", b"in sync"));
}

#[test]
fn own_messages_echoed_back_are_ignored() {
    let mut clients = room_of(&["alice", "bob"]);
    let ciphertext = clients[0].room.encrypt_message(b"echo").unwrap();
    assert_eq!(clients[0].room.process_incoming(&ciphertext).unwrap(), []);
    // The relay never echoes a commit; one that comes back anyway is refused, and leaves the
    // pending commit alone.
    let commit = clients[0].room.commit_remove(&["bob"]).unwrap();
    assert!(clients[0].room.stage_commit(&commit.commit).is_err());
    assert!(!clients[0].room.has_staged_commit());
    assert!(clients[0].room.has_pending_commit());
    assert_eq!(
        clients[0].room.merge_pending_commit().unwrap(),
        [RoomEvent::MemberRemoved { nick: "bob".into() }]
    );
}

#[test]
fn every_flipped_byte_is_an_error_never_a_message() {
    let mut clients = room_of(&["alice", "bob"]);
    let ciphertext = clients[0].room.encrypt_message(b"integrity").unwrap();
    for position in 0..ciphertext.len() {
        for flip in [0x01, 0x80] {
            let mut tampered = ciphertext.clone();
            tampered[position] ^= flip;
            assert!(
                clients[1].room.process_incoming(&tampered).is_err(),
                "flipping bit {flip:#x} of byte {position} went unnoticed"
            );
        }
    }
    assert_eq!(
        clients[1].room.process_incoming(&ciphertext).unwrap(),
        message("alice", b"integrity")
    );
}

#[test]
fn garbage_input_is_an_error_not_a_panic() {
    let mut clients = room_of(&["alice", "bob"]);
    let ciphertext = clients[0].room.encrypt_message(b"x").unwrap();
    for len in 0..ciphertext.len() {
        assert!(clients[1].room.process_incoming(&ciphertext[..len]).is_err());
    }
    let mut long = ciphertext.clone();
    long.push(0);
    assert_eq!(clients[1].room.process_incoming(&long).unwrap_err(), MlsError::Malformed);
    for garbage in [&b""[..], &[0u8; 1], &[0xff; 300], b"\x00\x01\x00\x02\x10"] {
        assert!(clients[1].room.process_incoming(garbage).is_err());
        assert!(clients[1].room.commit_add(garbage, "x").is_err());
    }
    let welcome_or_key_package = clients[1].member.key_package().unwrap();
    assert_eq!(
        clients[1].room.process_incoming(&welcome_or_key_package).unwrap_err(),
        MlsError::Unexpected
    );
}

#[test]
fn messages_for_another_group_are_refused() {
    let mut clients = room_of(&["alice", "bob"]);
    let mut elsewhere = room_of(&["carol", "dave"]);
    let ciphertext = elsewhere[0].room.encrypt_message(b"wrong room").unwrap();
    assert_eq!(clients[1].room.process_incoming(&ciphertext).unwrap_err(), MlsError::WrongGroup);
}

#[test]
fn a_member_that_missed_a_commit_is_readmitted_with_commit_replace() {
    let mut clients = room_of(&["alice", "bob", "carol"]);
    // Carol misses this commit (say her connection dropped at the wrong moment).
    let dave = MlsMember::new("dave").unwrap();
    let commit = clients[0].room.commit_add(&dave.key_package().unwrap(), "dave").unwrap();
    clients[0].room.merge_pending_commit().unwrap();
    apply(&mut clients[1].room, &commit.commit).unwrap();
    let after = clients[0].room.encrypt_message(b"you missed something").unwrap();
    assert_eq!(
        clients[2].room.process_incoming(&after).unwrap_err(),
        MlsError::EpochTooNew { message_epoch: 3, group_epoch: 2 }
    );

    // The rejoin: carol sends a fresh key package, bob replaces her old leaf.
    let fresh = clients[2].member.key_package().unwrap();
    let rejoin = clients[1].room.commit_replace("carol", &fresh).unwrap();
    assert_eq!(
        clients[1].room.merge_pending_commit().unwrap(),
        [
            RoomEvent::MemberRemoved { nick: "carol".into() },
            RoomEvent::MemberAdded { nick: "carol".into() }
        ]
    );
    apply(&mut clients[0].room, &rejoin.commit).unwrap();
    clients[2].room = clients[2].member.join_room(rejoin.welcome.as_deref().unwrap()).unwrap();
    assert_eq!(clients[2].room.epoch(), clients[0].room.epoch());
    let nicks: Vec<_> = clients[2].room.members().into_iter().map(|m| m.nick).collect();
    assert_eq!(nicks.iter().filter(|nick| *nick == "carol").count(), 1);
    let hello = clients[0].room.encrypt_message(b"welcome back").unwrap();
    assert_eq!(
        clients[2].room.process_incoming(&hello).unwrap(),
        message("alice", b"welcome back")
    );
    let reply = clients[2].room.encrypt_message(b"thanks").unwrap();
    assert_eq!(clients[1].room.process_incoming(&reply).unwrap(), message("carol", b"thanks"));
}

#[test]
fn a_message_sent_just_before_a_commit_still_decrypts_after_it() {
    let mut clients = room_of(&["alice", "bob", "carol"]);
    let in_flight = clients[2].room.encrypt_message(b"sent at epoch 2").unwrap();
    let commit = clients[0].room.commit_remove(&["carol"]).unwrap();
    accept_commit(&mut clients[..2], 0, &commit);
    assert_eq!(
        clients[1].room.process_incoming(&in_flight).unwrap(),
        message("carol", b"sent at epoch 2")
    );

    // Two more epochs later the keys of epoch 2 are gone.
    let older = clients[0].room.encrypt_message(b"sent at epoch 3").unwrap();
    for _ in 0..2 {
        let dave = MlsMember::new("dave").unwrap();
        let commit = clients[0].room.commit_add(&dave.key_package().unwrap(), "dave").unwrap();
        accept_commit(&mut clients[..2], 0, &commit);
        let removal = clients[0].room.commit_remove(&["dave"]).unwrap();
        accept_commit(&mut clients[..2], 0, &removal);
    }
    assert_eq!(clients[1].room.epoch(), 7);
    assert!(matches!(
        clients[1].room.process_incoming(&older),
        Err(MlsError::EpochTooOld { message_epoch: 3, group_epoch: 7 })
    ));
}

#[test]
fn payload_lengths_are_hidden_within_a_block() {
    let mut clients = room_of(&["alice", "bob"]);
    let short = clients[0].room.encrypt_message(&[1]).unwrap();
    let longer = clients[0].room.encrypt_message(&[2; 60]).unwrap();
    let two_blocks = clients[0].room.encrypt_message(&[3; 64]).unwrap();
    assert_eq!(short.len(), longer.len());
    assert!(two_blocks.len() > longer.len());
    let empty = clients[0].room.encrypt_message(b"").unwrap();
    assert_eq!(empty.len(), short.len());
    for (ciphertext, payload) in
        [(&short, vec![1]), (&longer, vec![2; 60]), (&two_blocks, vec![3; 64]), (&empty, vec![])]
    {
        assert_eq!(
            clients[1].room.process_incoming(ciphertext).unwrap(),
            message("alice", &payload)
        );
    }
}

#[test]
fn peek_header_reads_real_openmls_messages() {
    let mut clients = room_of(&["alice", "bob"]);
    let group_id = clients[0].room.group_id();
    let application = clients[0].room.encrypt_message(b"hi").unwrap();
    let header = peek_header(&application).unwrap();
    assert_eq!(header.wire_format, WIRE_FORMAT_PRIVATE_MESSAGE);
    assert_eq!(header.group_id, group_id);
    assert_eq!(header.epoch, 1);
    assert_eq!(header.content_type, CONTENT_TYPE_APPLICATION);

    let carol = MlsMember::new("carol").unwrap();
    let key_package = carol.key_package().unwrap();
    assert_eq!(peek_header(&key_package), None);
    assert_eq!(peek_wire_format(&key_package), Some(WIRE_FORMAT_KEY_PACKAGE));
    let commit = clients[1].room.commit_add(&key_package, "carol").unwrap();
    let header = peek_header(&commit.commit).unwrap();
    assert_eq!(
        (header.group_id, header.epoch, header.content_type),
        (group_id, 1, CONTENT_TYPE_COMMIT)
    );
    let welcome = commit.welcome.unwrap();
    assert_eq!(peek_header(&welcome), None);
    assert_eq!(peek_wire_format(&welcome), Some(WIRE_FORMAT_WELCOME));
}

#[test]
fn invalid_key_packages_and_names_are_refused() {
    let mut clients = room_of(&["alice", "bob"]);
    let carol = MlsMember::new("carol").unwrap();
    let mut tampered = carol.key_package().unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(
        clients[0].room.commit_add(&tampered, "carol"),
        Err(MlsError::InvalidKeyPackage(_))
    ));
    // A joiner who knows the password but offers a key package under another member's name.
    assert!(matches!(
        clients[0].room.commit_add(&carol.key_package().unwrap(), "dave"),
        Err(MlsError::InvalidKeyPackage(reason)) if reason.contains("not \"dave\"")
    ));
    assert!(!clients[0].room.has_pending_commit());
    for nick in ["bob", "BOB"] {
        let second_bob = MlsMember::new(nick).unwrap();
        let refused = clients[0].room.commit_add(&second_bob.key_package().unwrap(), nick);
        assert_eq!(refused.unwrap_err(), MlsError::NickInRoom(nick.into()));
    }
    assert!(matches!(
        clients[0].room.commit_replace("bob", &carol.key_package().unwrap()),
        Err(MlsError::InvalidKeyPackage(_))
    ));
    assert_eq!(
        clients[0].room.commit_remove(&["mallory"]).unwrap_err(),
        MlsError::NoSuchMember("mallory".into())
    );
    assert_eq!(clients[0].room.commit_remove(&["alice"]).unwrap_err(), MlsError::CannotRemoveSelf);
    assert_eq!(clients[0].room.merge_pending_commit().unwrap_err(), MlsError::NoPendingCommit);
    assert!(!clients[0].room.has_pending_commit());
}

#[test]
fn a_welcome_is_only_for_its_key_package() {
    let mut clients = room_of(&["alice"]);
    let bob = MlsMember::new("bob").unwrap();
    let eve = MlsMember::new("eve").unwrap();
    let commit = clients[0].room.commit_add(&bob.key_package().unwrap(), "bob").unwrap();
    assert!(matches!(
        eve.join_room(commit.welcome.as_deref().unwrap()),
        Err(MlsError::InvalidWelcome(_))
    ));
}

#[test]
fn member_and_room_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<MlsMember>();
    send::<RoomGroup>();
}

/// Informal per-operation timings: `cargo test --lib mls::tests::timings -- --ignored --nocapture`.
#[test]
#[ignore = "prints timings; run by hand"]
fn timings() {
    use std::time::Instant;
    fn time<T>(label: &str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let value = f();
        println!("{label:<32} {:>8.2?}", start.elapsed());
        value
    }
    let mut clients = vec![founder("m0")];
    for n in 1..8 {
        add(&mut clients, 0, &format!("m{n}"));
    }
    let newcomer = time("MlsMember::new", || MlsMember::new("new").unwrap());
    let key_package = time("key_package", || newcomer.key_package().unwrap());
    time("create_room", || newcomer.create_room().unwrap());
    let commit =
        time("commit_add (8 members)", || clients[0].room.commit_add(&key_package, "new").unwrap());
    time("merge_pending_commit", || clients[0].room.merge_pending_commit().unwrap());
    time("process_incoming commit", || apply(&mut clients[1].room, &commit.commit).unwrap());
    time("join_room (9 members)", || {
        newcomer.join_room(commit.welcome.as_deref().unwrap()).unwrap()
    });
    let ciphertext =
        time("encrypt_message 100 B", || clients[0].room.encrypt_message(&[7; 100]).unwrap());
    time("process_incoming message", || clients[1].room.process_incoming(&ciphertext).unwrap());
    time("commit_remove", || clients[0].room.commit_remove(&["new"]).unwrap());
}

/// An identity key of its own, as `crate::identity::Identity::key_pair` gives one.
fn identity_key() -> openmls_basic_credential::SignatureKeyPair {
    openmls_basic_credential::SignatureKeyPair::new(openmls_traits::types::SignatureScheme::ED25519)
        .unwrap()
}

/// `committer` adds `member`, named `nick`; returns its index.
fn add_member(clients: &mut Vec<Client>, committer: usize, member: MlsMember) -> usize {
    let nick = member.nick().to_owned();
    let commit = clients[committer].room.commit_add(&member.key_package().unwrap(), &nick).unwrap();
    accept_commit(clients, committer, &commit);
    let room = member.join_room(commit.welcome.as_deref().unwrap()).unwrap();
    clients.push(Client { member, room });
    clients.len() - 1
}

/// A member signing with a key of its own that shows `certificate` as it is.
fn showing(certificate: crate::proto::DeviceCertificate) -> MlsMember {
    MlsMember::with_certificate(identity_key(), certificate).unwrap()
}

#[test]
fn two_clients_of_one_identity_are_two_leaves_of_one_identity() {
    let alice_identity = identity_key();
    let mut clients = room_of(&["bob"]);
    let first = MlsMember::certified("alice", &alice_identity, 10).unwrap();
    let second = MlsMember::certified("alice-2", &alice_identity, 20).unwrap();
    assert_ne!(first.device_key(), second.device_key());
    assert_eq!(first.fingerprint(), second.fingerprint());
    let first = add_member(&mut clients, 0, first);
    let second = add_member(&mut clients, 0, second);
    // Both talk, and every member sees one identity behind the two nicknames.
    let sealed = clients[second].room.encrypt_message(b"from the laptop").unwrap();
    assert_eq!(
        clients[first].room.process_incoming(&sealed).unwrap(),
        message("alice-2", b"from the laptop")
    );
    let members = clients[0].room.members();
    let alice: Vec<&MemberInfo> =
        members.iter().filter(|member| member.nick.starts_with("alice")).collect();
    assert_eq!(alice.len(), 2);
    assert_eq!(alice[0].identity_key, alice_identity.public());
    assert_eq!(alice[0].identity_key, alice[1].identity_key);
    assert_eq!(alice[0].fingerprint, alice[1].fingerprint);
    assert_ne!(alice[0].device_key, alice[1].device_key);
}

#[test]
fn a_leader_refuses_key_packages_with_forged_or_borrowed_certifications() {
    let mut clients = room_of(&["bob"]);
    let alice_identity = identity_key();
    let alice = MlsMember::certified("alice", &alice_identity, 1).unwrap();
    // Mallory signs a certification that names alice's identity key.
    let mut forged = device::certify(&identity_key(), &[7; 32], "carol", 1).unwrap();
    forged.claims.identity_key = alice_identity.public().to_vec();
    // Mallory shows a genuine certification of alice's, with her own device key.
    let borrowed = device::certify(&alice_identity, alice.device_key(), "carol", 1).unwrap();
    let cases = [
        (forged, CertificationError::BadSignature),
        (borrowed, CertificationError::OtherDeviceKey),
    ];
    for (certificate, reason) in cases {
        let mallory = showing(certificate);
        let error =
            clients[0].room.commit_add(&mallory.key_package().unwrap(), "carol").unwrap_err();
        assert_eq!(error, MlsError::Uncertified { nick: "carol".into(), reason });
        assert_eq!(error.admission_refusal(), crate::proto::AdmissionRefusal::Uncertified);
    }
    assert!(!clients[0].room.has_pending_commit());
}

#[test]
fn members_refuse_a_commit_that_adds_an_uncertified_leaf() {
    let mut clients = room_of(&["mallory", "bob"]);
    let alice_identity = identity_key();
    let mut forged = device::certify(&identity_key(), &[7; 32], "alice", 1).unwrap();
    forged.claims.identity_key = alice_identity.public().to_vec();
    let impostor = showing(forged);
    let commit = clients[0].room.commit_add_unchecked(&impostor.key_package().unwrap()).unwrap();
    let refused = clients[1].room.stage_commit(&commit.commit).unwrap_err();
    assert_eq!(
        refused,
        MlsError::Uncertified { nick: "alice".into(), reason: CertificationError::BadSignature }
    );
    assert!(!clients[1].room.has_staged_commit());
}

#[test]
fn a_welcome_into_a_group_with_an_uncertified_leaf_is_refused() {
    // The group's creator shows alice's certification with a device key of its own.
    let alice_identity = identity_key();
    let alice = MlsMember::certified("alice", &alice_identity, 1).unwrap();
    let borrowed = device::certify(&alice_identity, alice.device_key(), "alice", 1).unwrap();
    let impostor = showing(borrowed);
    let mut group = impostor.create_room().unwrap();
    let bob = MlsMember::new("bob").unwrap();
    let commit = group.commit_add(&bob.key_package().unwrap(), "bob").unwrap();
    let refused = bob.join_room(commit.welcome.as_deref().unwrap()).unwrap_err();
    assert_eq!(
        refused,
        MlsError::Uncertified { nick: "alice".into(), reason: CertificationError::OtherDeviceKey }
    );
}

#[test]
fn one_identity_has_at_most_eight_clients_in_a_room() {
    let identity = identity_key();
    let mut clients = room_of(&["bob"]);
    for number in 1..=MAX_CLIENTS_PER_IDENTITY {
        let nick = format!("alice-{number}");
        add_member(&mut clients, 0, MlsMember::certified(&nick, &identity, 1).unwrap());
    }
    let ninth = MlsMember::certified("alice-9", &identity, 1).unwrap();
    assert_eq!(
        clients[0].room.commit_add(&ninth.key_package().unwrap(), "alice-9"),
        Err(MlsError::TooManyClients("alice-9".into()))
    );
    // Replacing one of them (a client that comes back) is no ninth.
    let again = MlsMember::certified("alice-3", &identity, 2).unwrap();
    assert!(clients[0].room.commit_replace("alice-3", &again.key_package().unwrap()).is_ok());
}

#[test]
fn a_member_renews_its_own_leaf_through_the_leaders_commit() {
    let mut clients = room_of(&["alice", "bob", "carol"]);
    let before = clients[1].room.own_encryption_key();
    let epoch = clients[0].room.epoch();
    let proposal = clients[1].room.propose_renewal().unwrap();
    assert!(clients[1].room.renewal_proposed());
    assert_eq!(clients[0].room.receive_renewal(&proposal).unwrap(), "bob");
    assert_eq!(clients[2].room.receive_renewal(&proposal).unwrap(), "bob");
    // Proposals kept aside do not stop anyone from chatting (or voting) meanwhile.
    let line = clients[1].room.encrypt_message(b"still here").unwrap();
    assert_eq!(clients[2].room.process_incoming(&line).unwrap(), message("bob", b"still here"));
    assert_eq!(clients[0].room.renewals_waiting(), ["bob"]);
    let commit = clients[0].room.commit_renewal().unwrap();
    for index in [1, 2] {
        let summary = clients[index].room.stage_commit(&commit.commit).unwrap();
        assert_eq!(summary.renewed.iter().map(|m| m.nick.as_str()).collect::<Vec<_>>(), ["bob"]);
        assert!(summary.renews_committer);
        let vote = clients[index].room.encrypt_message(b"a vote").unwrap();
        assert!(!vote.is_empty());
    }
    assert_eq!(
        clients[0].room.merge_pending_commit().unwrap(),
        [RoomEvent::Renewed { nick: "bob".into() }]
    );
    for index in [1, 2] {
        assert_eq!(
            clients[index].room.merge_staged_commit().unwrap(),
            [RoomEvent::Renewed { nick: "bob".into() }]
        );
        assert_eq!(clients[index].room.epoch(), epoch + 1);
    }
    assert_ne!(clients[1].room.own_encryption_key(), before, "bob's leaf has new keys");
    assert!(!clients[1].room.renewal_proposed());
    assert_eq!(clients[0].room.epoch_authenticator(), clients[1].room.epoch_authenticator());
    let line = clients[1].room.encrypt_message(b"renewed").unwrap();
    assert_eq!(clients[0].room.process_incoming(&line).unwrap(), message("bob", b"renewed"));
}

#[test]
fn a_renewal_that_takes_another_members_credential_is_refused() {
    let mut clients = room_of(&["alice", "bob", "carol"]);
    let forged = clients[1].room.propose_renewal_claiming("carol").unwrap();
    assert_eq!(
        clients[0].room.receive_renewal(&forged),
        Err(MlsError::RenewalChangesIdentity("bob".into()))
    );
    assert!(clients[0].room.renewals_waiting().is_empty());
    // Nothing to commit for it: the leader's renewal covers nobody else.
    let commit = clients[0].room.commit_renewal().unwrap();
    let summary = clients[2].room.stage_commit(&commit.commit).unwrap();
    assert!(summary.renewed.is_empty());
}

/// A leader's view of a room of `suite` and `members` members, built in one commit (only
/// the leader holds the group: enough to measure what it sends), then with one member
/// removed and a newcomer added, so that the leader's path is filled as after real churn.
/// Returns the group and the sizes met on the way.
struct SuiteSizes {
    key_package: usize,
    welcome: usize,
    add_commit: usize,
    remove_commit: usize,
}

fn room_sizes(suite: RoomSuite, members: usize) -> (RoomGroup, SuiteSizes) {
    let leader = MlsMember::new("leader").unwrap();
    let mut room = leader.create_room_of(suite).unwrap();
    let others: Vec<Vec<u8>> = (1..members)
        .map(|n| MlsMember::new(&format!("m{n}")).unwrap().key_package_of(suite).unwrap())
        .collect();
    if !others.is_empty() {
        room.commit_add_many(&others).unwrap();
        room.merge_pending_commit().unwrap();
    }
    assert_eq!(room.members().len(), members);
    let remove_commit = if members > 1 {
        let removal = room.commit_remove(&["m1"]).unwrap();
        room.merge_pending_commit().unwrap();
        removal.commit.len()
    } else {
        0
    };
    let newcomer = MlsMember::new("newcomer").unwrap();
    let attempt = newcomer.key_package_for_attempt(suite).unwrap();
    let add = room.commit_add(&attempt.bytes, "newcomer").unwrap();
    room.merge_pending_commit().unwrap();
    let welcome = add.welcome.unwrap();
    // The newcomer can really join from it, and finds the room's suite.
    let joined = newcomer.join_room(&welcome).unwrap();
    assert_eq!(joined.suite(), suite);
    let sizes = SuiteSizes {
        key_package: attempt.bytes.len(),
        welcome: welcome.len(),
        add_commit: add.commit.len(),
        remove_commit,
    };
    (room, sizes)
}

#[test]
fn a_post_quantum_room_carries_chat_and_takes_only_key_packages_of_its_suite() {
    let leader = MlsMember::new("alice").unwrap();
    let mut alice = leader.create_room_of(RoomSuite::PostQuantum).unwrap();
    assert_eq!(alice.suite(), RoomSuite::PostQuantum);
    // A classic KeyPackage cannot enter a post-quantum room (nor the other way round).
    let bob = MlsMember::new("bob").unwrap();
    let classic = bob.key_package_for_attempt(RoomSuite::Classic).unwrap();
    // Refused by name before openmls builds anything (openmls would refuse it later too).
    assert_eq!(
        alice.commit_add(&classic.bytes, "bob").unwrap_err(),
        MlsError::InvalidKeyPackage("the key package is not for the room's ciphersuite".into())
    );
    let mut classic_room = leader.create_room().unwrap();
    let post_quantum = bob.key_package_for_attempt(RoomSuite::PostQuantum).unwrap();
    assert!(matches!(
        classic_room.commit_add(&post_quantum.bytes, "bob"),
        Err(MlsError::InvalidKeyPackage(_))
    ));
    let add = alice.commit_add(&post_quantum.bytes, "bob").unwrap();
    alice.merge_pending_commit().unwrap();
    let mut bob_room = bob.join_room(add.welcome.as_deref().unwrap()).unwrap();
    assert_eq!(bob_room.suite(), RoomSuite::PostQuantum);
    assert_eq!(bob_room.epoch_authenticator(), alice.epoch_authenticator());
    let sent = alice.encrypt_message(b"after the quantum computer").unwrap();
    assert_eq!(
        bob_room.process_incoming(&sent).unwrap(),
        message("alice", b"after the quantum computer")
    );
    // Key renewal works in the post-quantum suite too: bob's leaf gets new X-Wing keys.
    let proposal = bob_room.propose_renewal().unwrap();
    assert_eq!(alice.receive_renewal(&proposal).unwrap(), "bob");
    let renewal = alice.commit_renewal().unwrap();
    bob_room.stage_commit(&renewal.commit).unwrap();
    alice.merge_pending_commit().unwrap();
    assert_eq!(
        bob_room.merge_staged_commit().unwrap(),
        [RoomEvent::Renewed { nick: "bob".into() }]
    );
    assert_eq!(bob_room.epoch_authenticator(), alice.epoch_authenticator());
}

/// The cap of a post-quantum room, at the cap: its Welcome, in the relay's `Welcome` frame
/// with the member list (nicknames of up to 32 bytes), fits `proto::MAX_FRAME_LEN`; the
/// commit of a removal, which carries an X-Wing ciphertext for every other member, fits a
/// frame too, and queued for every member at once takes at most half of the relay's default
/// queue budget; one more joiner is refused as the room being full.
#[test]
fn a_post_quantum_room_at_its_cap_fits_its_welcome_and_commits_in_a_frame() {
    let cap = MAX_PQ_ROOM_MEMBERS;
    let (mut room, sizes) = room_sizes(RoomSuite::PostQuantum, cap);
    assert_eq!(room.members().len(), cap);
    let member_list = cap * (1 + crate::proto::MAX_NAME_CHARS);
    let frame_overhead = 1024;
    assert!(
        sizes.welcome + member_list + frame_overhead <= crate::proto::MAX_FRAME_LEN,
        "welcome of {} bytes at {cap} members",
        sizes.welcome
    );
    assert!(sizes.remove_commit + frame_overhead <= crate::proto::MAX_FRAME_LEN);
    let budget = crate::relay::outbound::QueueLimits::default().bytes_total;
    assert!(
        (sizes.remove_commit + frame_overhead) * cap <= budget / 2,
        "a removal of {} bytes to {cap} members",
        sizes.remove_commit
    );
    let one_more = MlsMember::new("late").unwrap().key_package_of(RoomSuite::PostQuantum).unwrap();
    assert_eq!(room.commit_add(&one_more, "late").unwrap_err(), MlsError::RoomFull { max: cap });
    assert_eq!(
        MlsError::RoomFull { max: cap }.admission_refusal(),
        crate::proto::AdmissionRefusal::RoomFull
    );
}

/// The sizes `docs/benchmarks.md` gives for each suite:
/// `cargo test --lib mls::tests::suite_sizes -- --ignored --nocapture`.
#[test]
#[ignore = "prints sizes; run by hand"]
fn suite_sizes() {
    for suite in RoomSuite::ALL {
        for members in [10, 100, MAX_PQ_ROOM_MEMBERS, crate::proto::MAX_ROOM_MEMBERS] {
            if members > suite.max_members() {
                continue;
            }
            let (_, sizes) = room_sizes(suite, members);
            println!(
                "{suite} {members:>5} members: key package {:>6} B, welcome {:>8} B, add commit \
                 {:>6} B, removal commit {:>8} B",
                sizes.key_package, sizes.welcome, sizes.add_commit, sizes.remove_commit
            );
        }
    }
}
