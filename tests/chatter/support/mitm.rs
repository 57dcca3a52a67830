//! A malicious relay in the middle: it holds the access code (as a rogue operator, or anyone
//! who knows the code, would), so it terminates the client's encrypted transport and opens
//! its own to the real relay. It can drop or alter what the relay sends, inject frames of its
//! own at any time, rewrite what the client sends, and it records everything the client
//! sends. It still cannot read or forge MLS content, which is what the tests that use it show.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chatter::mls_header::{build_private_message, peek_header};
use chatter::proto::{ClientFrame, ServerFrame};
use chatter::secret::Secret;
use chatter::transport;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the man in the middle does to frames from the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meddling {
    /// Flips one bit in the MLS ciphertext of the first application message.
    FlipFirstApplicationByte,
    /// Drops the first commit, so the client misses a key change.
    DropFirstCommit,
    /// Changes nothing by itself; the test injects and rewrites through [`Control`].
    None,
}

/// The test's hold on a running man in the middle.
#[derive(Clone)]
pub struct Control {
    /// Frames to hand the client as if the relay had sent them.
    pub inject: mpsc::UnboundedSender<ServerFrame>,
    /// While set, every commit the client sends has its MLS body replaced with junk (its
    /// header kept, so the relay takes it): a member sending a garbage commit.
    pub corrupt_commits: Arc<AtomicBool>,
    /// Every frame the client sent, in order.
    pub sent_by_client: Arc<Mutex<Vec<ClientFrame>>>,
    /// While set, every commit the client sends is passed on, and the client is also told
    /// at once that the relay was busy: a relay that keeps a commit while refusing it, to
    /// make its leader commit something else for the same epoch (a fork).
    pub answer_commits_busy: Arc<AtomicBool>,
    /// While set, the client's answers in an admission (`AdmissionReply`, `AdmissionRefused`)
    /// are recorded but not passed on: a middle that plays the joiner itself.
    pub hold_admission_answers: Arc<AtomicBool>,
    /// Told of every frame the client sends, after it is recorded (see [`Control::sent`]).
    client_sent: Arc<tokio::sync::Notify>,
}

impl Control {
    /// Waits for the first frame the client sent, from the `from`th on, that `wanted` picks.
    pub async fn sent(&self, from: usize, wanted: impl Fn(&ClientFrame) -> bool) -> ClientFrame {
        loop {
            let found = self.sent_by_client.lock().expect("not poisoned")[from..]
                .iter()
                .find(|frame| wanted(frame))
                .cloned();
            if let Some(frame) = found {
                return frame;
            }
            // `notify_one` keeps a permit when nobody waits: no frame is missed in between.
            self.client_sent.notified().await;
        }
    }
}

pub async fn start(relay: SocketAddr, access_code: &str, meddling: Meddling) -> SocketAddr {
    start_with_control(relay, access_code, meddling).await.0
}

pub async fn start_with_control(
    relay: SocketAddr,
    access_code: &str,
    meddling: Meddling,
) -> (SocketAddr, Control) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mitm");
    let address = listener.local_addr().expect("mitm address");
    let code = Secret::from(access_code);
    let (inject, mut injected) = mpsc::unbounded_channel::<ServerFrame>();
    let control = Control {
        inject,
        corrupt_commits: Arc::new(AtomicBool::new(false)),
        sent_by_client: Arc::new(Mutex::new(Vec::new())),
        answer_commits_busy: Arc::new(AtomicBool::new(false)),
        hold_admission_answers: Arc::new(AtomicBool::new(false)),
        client_sent: Arc::new(tokio::sync::Notify::new()),
    };
    let upstream_control = control.clone();
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else { return };
        let deadline = std::time::Duration::from_secs(5);
        let Ok((mut client_reader, mut client_writer)) =
            transport::server_handshake(client, &code, deadline).await
        else {
            return;
        };
        let Ok(upstream) = TcpStream::connect(relay).await else { return };
        let Ok((mut relay_reader, mut relay_writer)) =
            transport::client_handshake(upstream, &code).await
        else {
            return;
        };
        let control = upstream_control;
        let upstream = control.clone();
        tokio::spawn(async move {
            while let Ok(Some(mut frame)) = client_reader.read_frame::<ClientFrame>().await {
                upstream.sent_by_client.lock().expect("not poisoned").push(frame.clone());
                upstream.client_sent.notify_one();
                if upstream.hold_admission_answers.load(Ordering::SeqCst)
                    && matches!(
                        frame,
                        ClientFrame::AdmissionReply { .. } | ClientFrame::AdmissionRefused { .. }
                    )
                {
                    continue;
                }
                if upstream.answer_commits_busy.load(Ordering::SeqCst)
                    && let ClientFrame::Commit { room, commit, .. } = &frame
                {
                    let reason = chatter::proto::CommitRejection::Busy;
                    let commit = chatter::proto::commit_hash(commit);
                    let busy = ServerFrame::CommitRejected { room: room.clone(), commit, reason };
                    let _ = upstream.inject.send(busy);
                }
                if upstream.corrupt_commits.load(Ordering::SeqCst)
                    && let ClientFrame::Commit { commit, .. } = &mut frame
                {
                    corrupt_body(commit);
                }
                if relay_writer.write_frame(&frame).await.is_err() {
                    break;
                }
            }
            let _ = relay_writer.shutdown().await;
        });
        let mut done = false;
        loop {
            let mut frame = tokio::select! {
                read = relay_reader.read_frame::<ServerFrame>() => match read {
                    Ok(Some(frame)) => frame,
                    _ => break,
                },
                Some(forged) = injected.recv() => forged,
            };
            if !done {
                match (&mut frame, meddling) {
                    (
                        ServerFrame::Application { message, .. },
                        Meddling::FlipFirstApplicationByte,
                    ) => {
                        let last = message.len() - 1;
                        message[last - 20] ^= 0x01;
                        done = true;
                    }
                    (ServerFrame::Commit { .. }, Meddling::DropFirstCommit) => {
                        done = true;
                        continue;
                    }
                    _ => {}
                }
            }
            if client_writer.write_frame(&frame).await.is_err() {
                break;
            }
        }
        let _ = client_writer.shutdown().await;
    });
    (address, control)
}

/// Replaces everything after an MLS PrivateMessage's header with junk: a commit that any
/// member can tell is garbage, but the relay, which reads only headers, cannot.
fn corrupt_body(message: &mut Vec<u8>) {
    if let Some(header) = peek_header(message) {
        *message = build_private_message(
            &header.group_id,
            header.epoch,
            header.content_type,
            &[0x55; 300],
        );
    }
}
