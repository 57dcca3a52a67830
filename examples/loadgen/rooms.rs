//! Rooms of raw clients, built through the relay's real admission flow with opaque bytes and
//! fake MLS headers: the relay cannot tell them from real ones, and the load generator spends
//! no time on MLS. The first client creates the room and plays the leader; each joiner runs
//! Join (with the joiner's exchange message) → (leader) AdmissionReply → AdmissionFinish → (leader) Commit with
//! its Welcome.

use std::time::Duration;

use anyhow::{Context, bail};
use chatter::client::RawClient;
use chatter::mls_header::{CONTENT_TYPE_APPLICATION, CONTENT_TYPE_COMMIT, build_private_message};
use chatter::proto::{Addition, ClientFrame, ServerFrame, Welcome};

/// How long any one expected answer may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames skipped while waiting for one answer before giving up on it.
const MAX_SKIPPED_FRAMES: usize = 100_000;

/// Admissions after which every member is drained, so notices of joins do not fill the
/// relay's per-connection queue (1024 frames; each admission queues two per member).
const DRAIN_EVERY: usize = 200;

/// A room of raw clients, in the relay's member order (the leader first).
pub struct RawRoom {
    pub name: String,
    pub group_id: Vec<u8>,
    pub members: Vec<RawClient>,
    /// The epoch the room reached; every member may receive application messages of it.
    pub epoch: u64,
}

impl RawRoom {
    /// An application message of `length` bytes in all (header included) for this room.
    pub fn application_message(&self, length: usize) -> anyhow::Result<Vec<u8>> {
        let header =
            build_private_message(&self.group_id, self.epoch, CONTENT_TYPE_APPLICATION, b"");
        let Some(body) = length.checked_sub(header.len()) else {
            bail!("a payload must be at least {} bytes (the MLS header)", header.len());
        };
        Ok(build_private_message(
            &self.group_id,
            self.epoch,
            CONTENT_TYPE_APPLICATION,
            &vec![0x5a; body],
        ))
    }
}

/// Makes a room of `clients` (registered as `nicks`), the first one leading.
pub async fn build(
    name: &str,
    clients: Vec<RawClient>,
    nicks: &[String],
) -> anyhow::Result<RawRoom> {
    let group_id = format!("loadgen-{name}").into_bytes();
    let mut members: Vec<RawClient> = Vec::with_capacity(clients.len());
    for (index, mut client) in clients.into_iter().enumerate() {
        if index == 0 {
            let join = ClientFrame::Join { room: name.into(), pake_message: Vec::new() };
            client.send(&join).await?;
            expect(&mut client, "room created", |f| matches!(f, ServerFrame::RoomCreated { .. }))
                .await?;
        } else {
            admit(
                &mut members,
                &nicks[0],
                &mut client,
                &nicks[index],
                name,
                &group_id,
                index as u64 - 1,
            )
            .await
            .with_context(|| format!("admitting {} to {name}", nicks[index]))?;
        }
        members.push(client);
        if index % DRAIN_EVERY == DRAIN_EVERY - 1 {
            drain_all(&mut members).await?;
        }
    }
    drain_all(&mut members).await?;
    let epoch = members.len() as u64 - 1;
    Ok(RawRoom { name: name.into(), group_id, members, epoch })
}

/// Admits a joiner as the real protocol does, with made-up cryptography: the password
/// exchange through the leader (`members[0]`), the leader's commit, every other member's
/// vote for it, and the Welcome.
async fn admit(
    members: &mut [RawClient],
    leader_nick: &str,
    joiner: &mut RawClient,
    joiner_nick: &str,
    room: &str,
    group_id: &[u8],
    epoch: u64,
) -> anyhow::Result<()> {
    let (leader, voters) = members.split_first_mut().context("a room has a leader")?;
    // Opaque bytes: the raw leader does not run the exchange.
    let pake_message = vec![1; 33];
    joiner.send(&ClientFrame::Join { room: room.into(), pake_message }).await?;
    let pending =
        expect(joiner, "join pending", |f| matches!(f, ServerFrame::JoinPending { .. })).await?;
    if !matches!(&pending, ServerFrame::JoinPending { leader, .. } if leader == leader_nick) {
        bail!("unexpected leader: {pending:?}");
    }
    let request = expect(
        leader,
        "admission request",
        |f| matches!(f, ServerFrame::AdmissionRequest { joiner, .. } if joiner == joiner_nick),
    )
    .await?;
    let ServerFrame::AdmissionRequest { attempt, .. } = request else {
        bail!("expected an admission request, got {request:?}")
    };
    let reply = ClientFrame::AdmissionReply {
        room: room.into(),
        joiner: joiner_nick.into(),
        attempt,
        pake_message: vec![2; 33],
        suite: chatter::mls::RoomSuite::Classic.id(),
    };
    leader.send(&reply).await?;
    expect(joiner, "admission reply", |f| matches!(f, ServerFrame::AdmissionReply { .. })).await?;
    let finish = ClientFrame::AdmissionFinish {
        room: room.into(),
        confirmation: vec![3; 32],
        sealed_key_package: vec![4; 300],
    };
    joiner.send(&finish).await?;
    expect(leader, "admission finish", |f| matches!(f, ServerFrame::AdmissionFinish { .. }))
        .await?;
    let commit = build_private_message(group_id, epoch, CONTENT_TYPE_COMMIT, b"add");
    let electorate = u32::try_from(voters.len() + 1).unwrap_or(u32::MAX);
    let adds = Some(Addition { to: joiner_nick.into(), attempt });
    let frame = ClientFrame::Commit { room: room.into(), commit, adds, electorate };
    leader.send(&frame).await?;
    // The committer votes on its own commit once the relay sends it back, as members do.
    expect(leader, "own commit", |f| matches!(f, ServerFrame::Commit { .. })).await?;
    leader
        .send(&ClientFrame::CommitVote { room: room.into(), epoch, accept: true, vote: Vec::new() })
        .await?;
    for voter in voters {
        // A vote that reaches the relay before the commit does counts for nothing: wait for
        // the commit, as a member does.
        expect(voter, "commit", |f| matches!(f, ServerFrame::Commit { .. })).await?;
        let vote =
            ClientFrame::CommitVote { room: room.into(), epoch, accept: true, vote: Vec::new() };
        voter.send(&vote).await?;
    }
    let accepted = expect(leader, "commit verdict", |f| {
        matches!(f, ServerFrame::CommitConfirmed { .. } | ServerFrame::CommitRejected { .. })
    })
    .await?;
    if let ServerFrame::CommitRejected { reason, .. } = accepted {
        bail!("the relay rejected the add: {reason}");
    }
    // Merged: the leader sends the joiner's Welcome, as a real leader does only now.
    let welcome = Welcome { to: joiner_nick.into(), attempt, message: b"welcome".to_vec() };
    leader.send(&ClientFrame::Welcome { room: room.into(), welcome }).await?;
    expect(joiner, "welcome", |f| matches!(f, ServerFrame::Welcome { .. })).await?;
    Ok(())
}

/// Skips frames until one matches, within [`ANSWER_TIMEOUT`].
pub async fn expect(
    client: &mut RawClient,
    what: &str,
    mut wanted: impl FnMut(&ServerFrame) -> bool,
) -> anyhow::Result<ServerFrame> {
    let wait = async {
        for _ in 0..MAX_SKIPPED_FRAMES {
            let frame = client.recv().await?;
            if let ServerFrame::Goodbye { reason } = frame {
                bail!("the relay disconnected us: {reason}");
            }
            if wanted(&frame) {
                return Ok(frame);
            }
        }
        bail!("{MAX_SKIPPED_FRAMES} frames without {what}")
    };
    tokio::time::timeout(ANSWER_TIMEOUT, wait)
        .await
        .with_context(|| format!("no {what} within {ANSWER_TIMEOUT:?}"))?
}

/// Reads everything queued for a client, up to the answer to a ping.
pub async fn drain(client: &mut RawClient) -> anyhow::Result<()> {
    client.send(&ClientFrame::Ping).await?;
    expect(client, "pong", |f| *f == ServerFrame::Pong).await?;
    Ok(())
}

async fn drain_all(members: &mut [RawClient]) -> anyhow::Result<()> {
    for member in members {
        drain(member).await?;
    }
    Ok(())
}
