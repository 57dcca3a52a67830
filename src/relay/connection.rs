//! One client connection, from accept to close, in one task.
//!
//! The task runs the handshake, registers the session with the shared state, then loops
//! over three things at once: frames from the client (handled under the state lock), frames
//! queued for the client by anyone (sealed and written in batches), and orders to close
//! (stalled reader, shutdown, idle). On the way out it erases the session from the state
//! before saying goodbye, so nothing more is queued for it and no trace of it stays behind —
//! unless the link dropped under a registered session: then the session is parked, away, for
//! the next connection that presents its resume token (`replay` has the numbering).

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep, timeout};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::failures::FailureReason;
use super::gate::{Admission, HandshakeOutcome};
use super::outbound::{self, Chunk};
use super::rate::{ConnectionLimiter, Verdict};
use super::replay::ReplayBuffer;
use super::state::{AbuseSignal, Control, Parked, Resumption, SessionChannel, SessionId, State};
use crate::proto::{self, ClientFrame, DisconnectReason, ErrorReason, HelloRejection, ServerFrame};
use crate::transport::{
    self, HandshakeError, SealedConnection, SealedReader, SealedWriter, TransportError,
};

/// Frames sealed into one write before flushing, so a busy room is not one syscall a frame
/// and a quiet one is not delayed.
const MAX_FRAMES_PER_WRITE: usize = 64;

/// How long a resuming connection waits for the one still serving its session to let go.
const HANDOVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves one accepted connection to its end: the gate's decision, the handshake, the
/// session, and the goodbye.
pub(super) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    ip: IpAddr,
    stop: CancellationToken,
) {
    let Some((_permit, (reader, writer))) = admit(&shared, stream, ip, &stop).await else {
        return;
    };
    let mut session = Session::open(shared, ip, reader, writer);
    let reason = session.run(&stop).await;
    session.close(reason).await;
}

/// The gate's decision and the handshake: the connection, and the gate's permit to hold
/// while it lasts, or `None` when it is over (refused, failed, or the relay is stopping).
pub(super) async fn admit(
    shared: &Shared,
    stream: TcpStream,
    ip: IpAddr,
    stop: &CancellationToken,
) -> Option<(super::gate::ConnectionPermit, SealedConnection)> {
    let permit = match shared.gate.admit(ip) {
        Admission::Admit(permit) => permit,
        Admission::Refuse(reason) => {
            tracing::info!(%reason, "connection refused before the handshake");
            transport::refuse(stream, reason).await;
            return None;
        }
        Admission::Blocked => {
            shared.failures.record(FailureReason::BlockedAddress);
            transport::refuse(stream, HelloRejection::Blocked).await;
            return None;
        }
    };
    let connection = handshake(shared, stream, ip, stop).await?;
    Some((permit, connection))
}

/// Runs the server's side of the handshake and tells the gate how it ended; `None` when the
/// connection is over (failed, or the relay is stopping).
async fn handshake(
    shared: &Shared,
    stream: TcpStream,
    ip: IpAddr,
    stop: &CancellationToken,
) -> Option<SealedConnection> {
    let config = &shared.config;
    let handshake = tokio::select! {
        result = transport::server_handshake(stream, &config.access_code, config.handshake_timeout) => result,
        () = stop.cancelled() => return None,
    };
    match handshake {
        Ok(connection) => {
            shared.gate.record_handshake(ip, HandshakeOutcome::Authenticated);
            tracing::info!("client authenticated");
            Some(connection)
        }
        Err(error) => {
            let outcome = match error {
                HandshakeError::WrongAccessCode => HandshakeOutcome::WrongAccessCode,
                _ => HandshakeOutcome::Failed,
            };
            shared.failures.record(FailureReason::of(&error));
            shared.gate.record_handshake(ip, outcome);
            None
        }
    }
}

/// What woke the session's loop, taken out of the `select!` so the handlers can borrow the
/// session freely.
enum Wake {
    /// A frame from the client, or why reading ended (`None`: the client closed).
    Read(Result<ClientFrame, Option<DisconnectReason>>),
    /// Frames queued for the client by anyone, the first of a write.
    Queued(Chunk),
    /// The state closed the session (a stalled reader), with the reason to give.
    Kicked(Option<DisconnectReason>),
    Stopped,
    /// The idle timer fired; the session may have been heard from since it was set.
    IdleTimer,
}

/// An authenticated connection's session: what its loop reads, writes and counts.
struct Session {
    shared: Arc<Shared>,
    ip: IpAddr,
    id: SessionId,
    reader: SealedReader<OwnedReadHalf>,
    writer: SealedWriter<OwnedWriteHalf>,
    /// Frames queued for this client by anyone (this task included).
    queued: outbound::Inbound,
    own_queue: outbound::Outbound,
    kicked: oneshot::Receiver<DisconnectReason>,
    limiter: ConnectionLimiter,
    /// Reused for what the state reports after each frame.
    signals: Vec<AbuseSignal>,
    last_heard: Instant,
    /// The frames sent and not acknowledged, and the count of the client's frames handled.
    replay: ReplayBuffer,
}

impl Session {
    /// Registers the session with the shared state.
    fn open(
        shared: Arc<Shared>,
        ip: IpAddr,
        reader: SealedReader<OwnedReadHalf>,
        writer: SealedWriter<OwnedWriteHalf>,
    ) -> Session {
        let config = &shared.config;
        let (outbound, queued) = outbound::queue(config.queue_limits, &shared.queued);
        let (kick, kicked) = oneshot::channel::<DisconnectReason>();
        let own_queue = outbound.clone();
        let limiter = ConnectionLimiter::new(config.rate_limit, Instant::now());
        let replay = ReplayBuffer::new(config.replay_limits);
        let id = shared.state().add_session(ip, SessionChannel { outbound, kick });
        Session {
            shared,
            ip,
            id,
            reader,
            writer,
            queued,
            own_queue,
            kicked,
            limiter,
            signals: Vec::new(),
            last_heard: Instant::now(),
            replay,
        }
    }

    /// Serves the session until it ends, returning the reason to give the client (`None`
    /// when the client went away or cannot be told).
    async fn run(&mut self, stop: &CancellationToken) -> Option<DisconnectReason> {
        // The idle timer is not reset on every frame (that would touch the timer wheel each
        // time): it fires at the first deadline, and is set again from the last frame heard.
        let idle = tokio::time::sleep(self.shared.config.idle_timeout);
        tokio::pin!(idle);
        loop {
            let wake = tokio::select! {
                read = self.reader.next_frame() => Wake::Read(decoded(read)),
                Some(chunk) = self.queued.recv_chunk() => Wake::Queued(chunk),
                reason = &mut self.kicked => Wake::Kicked(reason.ok()),
                () = stop.cancelled() => Wake::Stopped,
                () = &mut idle => Wake::IdleTimer,
            };
            let outcome = match wake {
                Wake::Read(Ok(frame)) => self.on_frame(frame).await,
                Wake::Read(Err(reason)) | Wake::Kicked(reason) => Err(reason),
                Wake::Queued(first) => self.write_queued(first, stop).await,
                Wake::Stopped => Err(Some(DisconnectReason::ServerShutdown)),
                Wake::IdleTimer => self.on_idle_timer(idle.as_mut()),
            };
            if let Err(reason) = outcome {
                return reason;
            }
        }
    }

    /// Handles a frame from the client, and with it every frame already read behind it (the
    /// rest of its record), under one hold of the state's lock, so that a burst of chat is
    /// relayed as one batch (`state::chat_batch`). A connection's first frame may instead take
    /// back an earlier session (`Resume`). `Err` ends the session with the reason to give.
    async fn on_frame(&mut self, frame: ClientFrame) -> Result<(), Option<DisconnectReason>> {
        self.last_heard = Instant::now();
        if let ClientFrame::Resume { token, received } = &frame {
            let (kick, kicked) = oneshot::channel();
            let resumption = self.shared.state().resume(self.id, token, kick, self.last_heard);
            // Out of place after the first frame: then it is numbered and refused as a request.
            if !matches!(resumption, Resumption::NotFirst) {
                return self.take_back(resumption, kicked, *received).await;
            }
        }
        let shared = Arc::clone(&self.shared);
        let mut state = shared.state();
        state.batch_chat(true);
        let mut frame = frame;
        loop {
            self.handle(&mut state, frame)?;
            frame = match self.reader.buffered_frame() {
                None => return Ok(()),
                Some(read) => decoded(read.map(Some))?,
            };
        }
    }

    /// Checks one frame against the rate limits and hands it to the state, whose lock the
    /// caller holds. A later `Resume` is numbered and refused there, as any misplaced request.
    fn handle(
        &mut self,
        state: &mut State,
        frame: ClientFrame,
    ) -> Result<(), Option<DisconnectReason>> {
        if let ClientFrame::Ack { received } = frame {
            // Acknowledgements are not numbered, not rate limited (they cost next to
            // nothing) and answered only when there is news, so a flood of them is idle.
            self.replay.acknowledge(received);
            if let Some(handled) = self.replay.ack_to_send() {
                let ack = ServerFrame::Ack { received: handled };
                let _ = self.own_queue.try_send(Bytes::from(proto::encode(&ack)));
            }
            return Ok(());
        }
        self.replay.handled_one();
        let number = self.replay.handled();
        match self.limiter.check(&frame, self.last_heard) {
            Verdict::Pass => {}
            Verdict::Refuse => {
                // Best effort: a client too busy sending to read loses the notice.
                let refusal =
                    ServerFrame::Error { request: number, reason: ErrorReason::RateLimited };
                let _ = self.own_queue.try_send(Bytes::from(proto::encode(&refusal)));
                return Ok(());
            }
            Verdict::Disconnect => return Err(Some(DisconnectReason::RateLimited)),
        }
        let control = state.handle(self.id, number, frame, self.last_heard, &mut self.signals);
        for signal in self.signals.drain(..) {
            match signal {
                AbuseSignal::WrongRoomPassword { ip } => {
                    self.shared.gate.record_wrong_room_password(ip);
                }
            }
        }
        match control {
            Control::Close(reason) => Err(Some(reason)),
            Control::Continue => Ok(()),
        }
    }

    /// Seals `first` and whatever else is queued (up to a batch) and writes it, still
    /// listening for a kick or a stop while the write waits on a slow reader.
    async fn write_queued(
        &mut self,
        first: Chunk,
        stop: &CancellationToken,
    ) -> Result<(), Option<DisconnectReason>> {
        let mut sealed = true;
        let mut frames = 0;
        let mut next = Some(first);
        while let Some(chunk) = next {
            for frame in chunk.frames() {
                sealed &= self.writer.queue(frame).is_ok();
            }
            frames += chunk.frames().len();
            self.replay.sent_chunk(chunk);
            next = if frames < MAX_FRAMES_PER_WRITE { self.queued.try_recv_chunk() } else { None };
        }
        if !sealed {
            return Err(Some(DisconnectReason::ProtocolViolation));
        }
        tokio::select! {
            written = self.writer.flush() => written.map_err(|_| None),
            reason = &mut self.kicked => Err(reason.ok()),
            () = stop.cancelled() => Err(Some(DisconnectReason::ServerShutdown)),
        }
    }

    /// Takes back the session a `Resume` named, as the state decided: adopts its queue and
    /// replay buffer, tells the client how far the relay got, and sends again what the client
    /// missed. A session the relay does not have (or cannot replay honestly) is refused; the
    /// client registers anew.
    async fn take_back(
        &mut self,
        resumption: Resumption,
        kicked: oneshot::Receiver<DisconnectReason>,
        received: u64,
    ) -> Result<(), Option<DisconnectReason>> {
        let (id, parked) = match resumption {
            Resumption::Ready { id, parked } => (id, parked),
            Resumption::HandingOver { id, parked } => {
                match timeout(HANDOVER_TIMEOUT, parked).await {
                    Ok(Ok(parked)) => (id, parked),
                    _ => return self.refuse_resume(None).await,
                }
            }
            Resumption::Unknown | Resumption::NotFirst => return self.refuse_resume(None).await,
        };
        let Parked { inbound, mut replay } = parked;
        let Ok(missing) = replay.missing(received) else {
            return self.refuse_resume(Some(id)).await;
        };
        let Some((own_queue, token)) = self.shared.state().adopt(self.id, id, Instant::now())
        else {
            return self.refuse_resume(None).await;
        };
        self.id = id;
        self.kicked = kicked;
        self.queued = inbound;
        self.own_queue = own_queue;
        let backlog = (missing.len() + self.queued.len()) as u64;
        let resumed = ServerFrame::Resumed { received: replay.handled(), backlog, token };
        self.replay = replay;
        let mut sealed = self.writer.queue(&proto::encode(&resumed)).is_ok();
        for frame in &missing {
            sealed &= self.writer.queue(frame).is_ok();
        }
        if !sealed {
            return Err(Some(DisconnectReason::ProtocolViolation));
        }
        tracing::info!(missed = missing.len(), "session resumed");
        self.writer.flush().await.map_err(|_| None)
    }

    /// Tells the client its session cannot be resumed (removing `session` if the relay still
    /// had it, but not all it missed).
    async fn refuse_resume(
        &mut self,
        session: Option<SessionId>,
    ) -> Result<(), Option<DisconnectReason>> {
        let relay_boot = {
            let mut state = self.shared.state();
            if let Some(session) = session {
                state.remove_session(session, Instant::now());
            }
            state.relay_boot()
        };
        let refused = ServerFrame::ResumeRefused { relay_boot };
        if self.writer.queue(&proto::encode(&refused)).is_err() {
            return Err(Some(DisconnectReason::ProtocolViolation));
        }
        self.writer.flush().await.map_err(|_| None)
    }

    /// Ends the session if nothing was heard for the idle timeout, or sets the timer again
    /// from the last frame heard.
    fn on_idle_timer(&self, idle: Pin<&mut Sleep>) -> Result<(), Option<DisconnectReason>> {
        let deadline = self.last_heard + self.shared.config.idle_timeout;
        if Instant::now() >= deadline {
            return Err(Some(DisconnectReason::IdleTimeout));
        }
        idle.reset(deadline);
        Ok(())
    }

    /// Erases the session from the state before saying goodbye, so nothing more is queued
    /// for it and no trace of it stays behind; then tells the client why, briefly.
    async fn close(self, reason: Option<DisconnectReason>) {
        let Session { shared, ip, id, mut writer, queued, replay, .. } = self;
        // A link that died or went quiet may come back: the session waits for its client.
        // Anything the relay or the client decided ends it for good.
        let link_lost = matches!(
            reason,
            None | Some(DisconnectReason::IdleTimeout | DisconnectReason::ResumedElsewhere)
        );
        if link_lost {
            shared.state().park(id, Parked { inbound: queued, replay }, Instant::now());
        } else {
            shared.state().remove_session(id, Instant::now());
        }
        if reason == Some(DisconnectReason::IdleTimeout) {
            shared.gate.record_idle_drop(ip);
        }
        // Operational only: a reason, never who, where from, or what they said.
        tracing::info!(?reason, "client disconnected");
        if let Some(reason) = reason {
            // A relay stopping is almost always one being restarted (an upgrade, a new
            // access code): saying so lets clients retry on a short schedule instead of a
            // backoff grown through the downtime.
            if reason == DisconnectReason::ServerShutdown {
                let _ = writer.queue(&proto::encode(&ServerFrame::Restarting));
            }
            // Best effort, and brief: a reader that stalled may never take the goodbye.
            let _ = writer.queue(&proto::encode(&ServerFrame::Goodbye { reason }));
            let _ = timeout(std::time::Duration::from_secs(1), writer.shutdown()).await;
        }
    }
}

/// A frame read from the client, decoded; or why reading ended (`None`: a clean close).
pub(super) fn decoded(
    read: Result<Option<&[u8]>, TransportError>,
) -> Result<ClientFrame, Option<DisconnectReason>> {
    match read {
        Ok(Some(plaintext)) => {
            proto::decode::<ClientFrame>(plaintext).map_err(|_| Some(DisconnectReason::BadFrame))
        }
        Ok(None) => Err(None),
        // A reset or broken link: nobody to tell, and the session may be resumed. (A peer
        // that closes halfway through a frame sent a bad frame, and hears so.)
        Err(TransportError::Io(error)) if link_broke(&error) => Err(None),
        Err(error) => Err(Some(reason_for(&error))),
    }
}

/// Whether a read error means the link itself failed.
fn link_broke(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::TimedOut
            | ErrorKind::NotConnected
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::NetworkDown
    )
}

fn reason_for(error: &TransportError) -> DisconnectReason {
    match error {
        TransportError::FrameTooLarge => DisconnectReason::FrameTooLarge,
        TransportError::BadSeal
        | TransportError::BadRecord
        | TransportError::Decode(_)
        | TransportError::Io(_) => DisconnectReason::BadFrame,
    }
}
