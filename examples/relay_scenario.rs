//! A scripted session against a running relay, for `.ci/strace-check.sh`: two members
//! create and join a room, chat and quit, a third connects and drops, and a last client
//! gives a wrong access code. Exits non-zero if the relay does not answer as expected.
//!
//! Usage: `relay_scenario <host:port>` with the relay's access code in CHATTER_ACCESS_CODE.

use std::time::Duration;

use anyhow::{Context, bail};
use chatter::client::{ClientError, RawClient};
use chatter::proto::{Addition, ClientFrame, ServerFrame, Welcome};
use chatter::secret::Secret;

const ROOM: &str = "lobby";
const GROUP: &[u8] = b"scenario-group";

/// An MLS PrivateMessage header and opaque bytes: all the relay reads of a real message.
fn private_message(epoch: u64, content_type: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 1, 0, 2, GROUP.len() as u8];
    bytes.extend_from_slice(GROUP);
    bytes.extend_from_slice(&epoch.to_be_bytes());
    bytes.push(content_type);
    bytes.extend_from_slice(body);
    bytes
}

async fn recv(client: &mut RawClient) -> anyhow::Result<ServerFrame> {
    Ok(tokio::time::timeout(Duration::from_secs(10), client.recv())
        .await
        .context("no answer")??)
}

async fn recv_until(
    client: &mut RawClient,
    wanted: impl Fn(&ServerFrame) -> bool,
) -> anyhow::Result<ServerFrame> {
    for _ in 0..100 {
        let frame = recv(client).await?;
        if wanted(&frame) {
            return Ok(frame);
        }
    }
    bail!("the expected frame never came")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let server = std::env::args().nth(1).context("usage: relay_scenario <host:port>")?;
    let code = Secret::new(std::env::var("CHATTER_ACCESS_CODE").context("CHATTER_ACCESS_CODE")?);

    let mut alice = RawClient::connect(&server, &code).await?;
    alice.register("alice").await?;
    alice.send(&ClientFrame::Join { room: ROOM.into(), pake_message: vec![1; 32] }).await?;
    recv_until(&mut alice, |f| matches!(f, ServerFrame::RoomCreated { .. })).await?;

    let mut bob = RawClient::connect(&server, &code).await?;
    bob.register("bob").await?;
    bob.send(&ClientFrame::Join { room: ROOM.into(), pake_message: vec![1; 32] }).await?;
    recv_until(&mut bob, |f| matches!(f, ServerFrame::JoinPending { .. })).await?;
    let request =
        recv_until(&mut alice, |f| matches!(f, ServerFrame::AdmissionRequest { .. })).await?;
    let ServerFrame::AdmissionRequest { attempt, .. } = request else {
        bail!("expected an admission request")
    };
    let reply = ClientFrame::AdmissionReply {
        room: ROOM.into(),
        joiner: "bob".into(),
        attempt,
        pake_message: vec![2; 32],
        suite: chatter::mls::RoomSuite::Classic.id(),
    };
    alice.send(&reply).await?;
    recv_until(&mut bob, |f| matches!(f, ServerFrame::AdmissionReply { .. })).await?;
    let finish = ClientFrame::AdmissionFinish {
        room: ROOM.into(),
        confirmation: vec![3; 32],
        sealed_key_package: vec![4; 200],
    };
    bob.send(&finish).await?;
    recv_until(&mut alice, |f| matches!(f, ServerFrame::AdmissionFinish { .. })).await?;
    let commit = ClientFrame::Commit {
        room: ROOM.into(),
        commit: private_message(0, 3, b"add bob"),
        adds: Some(Addition { to: "bob".into(), attempt }),
        electorate: 1,
    };
    alice.send(&commit).await?;
    // Alice votes on her own commit when the relay sends it back for the vote.
    recv_until(&mut alice, |f| matches!(f, ServerFrame::Commit { .. })).await?;
    let vote = ClientFrame::CommitVote { room: ROOM.into(), epoch: 0, accept: true, vote: vec![] };
    alice.send(&vote).await?;
    recv_until(&mut alice, |f| matches!(f, ServerFrame::CommitConfirmed { .. })).await?;
    let welcome = Welcome { to: "bob".into(), attempt, message: b"welcome".to_vec() };
    alice.send(&ClientFrame::Welcome { room: ROOM.into(), welcome }).await?;
    recv_until(&mut bob, |f| matches!(f, ServerFrame::Welcome { .. })).await?;

    for line in 0..10u8 {
        let message = private_message(1, 1, &[line; 64]);
        alice.send(&ClientFrame::Application { room: ROOM.into(), message }).await?;
        recv_until(&mut bob, |f| matches!(f, ServerFrame::Application { .. })).await?;
        let message = private_message(1, 1, &[line; 32]);
        bob.send(&ClientFrame::Application { room: ROOM.into(), message }).await?;
        recv_until(&mut alice, |f| matches!(f, ServerFrame::Application { .. })).await?;
    }

    let mut carol = RawClient::connect(&server, &code).await?;
    carol.register("carol").await?;
    drop(carol);

    bob.send(&ClientFrame::Quit).await?;
    recv_until(&mut alice, |f| matches!(f, ServerFrame::MemberLeft { .. })).await?;
    alice.send(&ClientFrame::Quit).await?;
    recv_until(&mut alice, |f| matches!(f, ServerFrame::Goodbye { .. })).await?;

    match RawClient::connect(&server, &Secret::from("not the access code")).await {
        Err(ClientError::WrongAccessCode) => {}
        other => bail!("a wrong access code was not refused: {other:?}"),
    }
    println!("scenario complete");
    Ok(())
}
