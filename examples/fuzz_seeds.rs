//! Writes the seed corpora of the fuzz targets (`fuzz/`): real values made by the real code
//! (SPAKE2 messages, MLS messages, key packages, commits and Welcomes, sealed records, frames
//! as the relay and clients encode them), one file each, in `DIR/TARGET/NAME`.
//!
//! `cargo run --example fuzz_seeds -- fuzz/corpus`

use anyhow::Context as _;
use std::path::PathBuf;

use chatter::mls::MlsMember;
use chatter::pake::{self, Context, Role, SecretKey};
use chatter::proto::{
    self, AdmissionRefusal, ClientFinish, ClientFrame, ClientHello, PROTOCOL_VERSION, RoomSummary,
    ServerFrame, ServerHello, SignedVote,
};
use chatter::transport::SealedWriter;
use futures_util::FutureExt;

const CONTEXT: Context<'static> =
    Context { label: "chatter transport v1", initiator_id: b"client", responder_id: b"server" };

struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn write(&mut self, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
        self.written += 1;
        Ok(())
    }
}

/// Real MLS messages of a two-member room: key package, commit, Welcome, chat message.
struct MlsSamples {
    key_package: Vec<u8>,
    commit: Vec<u8>,
    welcome: Vec<u8>,
    application: Vec<u8>,
}

fn mls_samples() -> anyhow::Result<MlsSamples> {
    let alice = MlsMember::new("alice")?;
    let bob = MlsMember::new("bob")?;
    let mut room = alice.create_room()?;
    let key_package = bob.key_package()?;
    let outgoing = room.commit_add(&key_package, "bob")?;
    room.merge_pending_commit()?;
    let application = room.encrypt_message(b"hello, fuzzer")?;
    Ok(MlsSamples {
        key_package,
        commit: outgoing.commit,
        welcome: outgoing.welcome.unwrap_or_default(),
        application,
    })
}

fn main() -> anyhow::Result<()> {
    let root =
        std::env::args_os().nth(1).map_or_else(|| PathBuf::from("fuzz/corpus"), PathBuf::from);
    let mut corpus = Corpus { root, written: 0 };
    let mls = mls_samples()?;
    let (client_pending, client_pake) = pake::start(Role::Initiator, b"code", &CONTEXT);
    let (server_pending, server_pake) = pake::start(Role::Responder, b"code", &CONTEXT);
    let server_keys = server_pending.finish(&client_pake)?;
    let client_keys = client_pending.finish(&server_pake)?;

    // Handshake messages.
    let hello = ClientHello { version: PROTOCOL_VERSION, pake_message: client_pake.clone() };
    let accept = ServerHello::Accept {
        pake_message: server_pake.clone(),
        confirmation: server_keys.own_confirmation().to_vec(),
    };
    let finish = ClientFinish { confirmation: client_keys.own_confirmation().to_vec() };
    corpus.write("handshake", "client_hello", &proto::encode(&hello))?;
    corpus.write("handshake", "server_accept", &proto::encode(&accept))?;
    corpus.write("handshake", "client_finish", &proto::encode(&finish))?;
    corpus.write("handshake", "pake_message", &client_pake)?;

    // Frames both ways, with real payloads inside.
    let room = || "lobby".to_owned();
    let client_frames = [
        ClientFrame::Register { nick: "alice".into() },
        ClientFrame::Join { room: room(), pake_message: client_pake.clone() },
        ClientFrame::Commit { room: room(), commit: mls.commit.clone(), adds: None, electorate: 2 },
        ClientFrame::Application { room: room(), message: mls.application.clone() },
        ClientFrame::CommitVote {
            room: room(),
            epoch: 1,
            accept: true,
            vote: mls.application.clone(),
        },
        ClientFrame::AdmissionRefused {
            room: room(),
            joiner: "bob".into(),
            attempt: 1,
            reason: AdmissionRefusal::WrongPassword,
        },
        ClientFrame::Ping,
        ClientFrame::Quit,
        ClientFrame::Resume { token: proto::ResumeToken([9; 32]), received: 40 },
        ClientFrame::Ack { received: 64 },
        ClientFrame::Reclaim {
            room: room(),
            group_id: vec![3; 16],
            epoch: 7,
            pledged: Some([5; 32]),
            proof: vec![SignedVote { from: "bob".into(), vote: mls.application.clone() }],
            last_commit: Some(proto::MergedCommit {
                from: "alice".into(),
                commit: mls.commit.clone(),
                joiner: Some("carol".into()),
            }),
            earlier: vec![proto::ConfirmedCommit {
                reached: 6,
                commit: proto::MergedCommit {
                    from: "alice".into(),
                    commit: mls.commit.clone(),
                    joiner: None,
                },
                votes: vec![SignedVote { from: "carol".into(), vote: mls.application.clone() }],
            }],
        },
    ];
    for (n, frame) in client_frames.iter().enumerate() {
        corpus.write("client_frame", &format!("frame{n}"), &proto::encode(frame))?;
    }
    let server_frames = [
        ServerFrame::Registered {
            nick: "alice".into(),
            token: proto::ResumeToken([9; 32]),
            relay_boot: 0x5eed,
        },
        ServerFrame::Resumed { received: 12, backlog: 20, token: proto::ResumeToken([9; 32]) },
        ServerFrame::ReclaimPending { room: room(), ours: 2, holders: 1 },
        ServerFrame::ReclaimRefused {
            room: room(),
            reason: proto::ReclaimRefusal::Unavailable(proto::ErrorReason::RoomFull),
        },
        ServerFrame::ResumeRefused { relay_boot: 0x5eed },
        ServerFrame::Ack { received: 64 },
        ServerFrame::Reclaimed {
            room: room(),
            members: vec!["alice".into(), "bob".into()],
            epoch: 3,
        },
        ServerFrame::MemberAway { room: room(), nick: "bob".into(), away: true },
        ServerFrame::RoomList { rooms: vec![RoomSummary { name: room(), members: 3 }] },
        ServerFrame::Welcome {
            room: room(),
            message: mls.welcome.clone(),
            members: vec!["alice".into(), "bob".into()],
        },
        ServerFrame::Commit {
            room: room(),
            from: "alice".into(),
            commit: mls.commit.clone(),
            joiner: Some("bob".into()),
        },
        ServerFrame::CommitConfirmed {
            room: room(),
            epoch: 2,
            votes: vec![SignedVote { from: "alice".into(), vote: mls.application.clone() }],
        },
        ServerFrame::Application {
            room: room(),
            from: "alice".into(),
            message: mls.application.clone(),
        },
        ServerFrame::MemberLeft {
            room: room(),
            nick: "bob".into(),
            leader: "alice".into(),
            epoch: 1,
        },
        ServerFrame::Pong,
    ];
    for (n, frame) in server_frames.iter().enumerate() {
        corpus.write("server_frame", &format!("frame{n}"), &proto::encode(frame))?;
    }

    // Sealed records as a connection carries them (the target takes structured input; real
    // records still give it useful bytes to start from).
    let mut writer = SealedWriter::new(Vec::new(), &SecretKey::from_bytes([7; 32]));
    for frame in &client_frames {
        writer.queue(&proto::encode(frame))?;
    }
    writer.flush().now_or_never().context("a Vec never blocks, yet the flush did")??;
    corpus.write("sealed_records", "records", writer.get_mut())?;

    // MLS: what the relay reads headers of, and what members process.
    for (name, bytes) in [
        ("application", &mls.application),
        ("commit", &mls.commit),
        ("welcome", &mls.welcome),
        ("key_package", &mls.key_package),
    ] {
        corpus.write("mls_header", name, bytes)?;
        corpus.write("mls_incoming", name, bytes)?;
    }

    // Admission: real SPAKE2 messages.
    corpus.write("admission", "pake_message", &client_pake)?;
    corpus.write("admission", "reply", &server_pake)?;

    // Configuration files and text from peers.
    corpus.write(
        "config",
        "full",
        b"server = \"chat.example.org:9001\"\nnick = \"alice\"\ncolor = false\n",
    )?;
    corpus.write("config", "typo", b"sever = \"x\"\n")?;
    corpus.write("config", "empty", b"")?;
    corpus.write("sanitize", "escapes", "\x1b[2J\x1b]0;title\x07\u{9b}31m\r\x08\x7f".as_bytes())?;
    corpus.write("sanitize", "bidi", "abc\u{202e}fed\u{2066}x\u{200f}\t\n".as_bytes())?;
    corpus.write("sanitize", "plain", "příliš žluťoučký kůň 🐎".as_bytes())?;
    corpus.write(
        "sanitize",
        "invisible",
        "sophie\u{fe0f} \u{2764}\u{fe0f} a\u{200d}b".as_bytes(),
    )?;

    // A genuine certification, as a client's credential carries it.
    let identity = chatter::identity::Identity::generate();
    let device = chatter::identity::Identity::generate();
    let certificate =
        chatter::mls::device::certify(&identity.key_pair(), device.public_key(), "alice", 1)?;
    corpus.write("device_certificate", "genuine", &proto::encode(&certificate))?;

    eprintln!("wrote {} seeds into {}", corpus.written, corpus.root.display());
    Ok(())
}
