//! One client connection, from accept to close, in one task.
//!
//! The task runs the handshake, registers the session with the shared state, then loops
//! over three things at once: frames from the client (handled under the state lock), frames
//! queued for the client by anyone (sealed and written in batches), and orders to close
//! (stalled reader, shutdown, idle). On the way out it erases the session from the state
//! before saying goodbye, so nothing more is queued for it and no trace of it stays behind.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::gate::{Admission, HandshakeOutcome};
use super::outbound;
use super::rate::{ConnectionLimiter, Verdict};
use super::state::{Control, SessionChannel};
use crate::proto::{self, ClientFrame, DisconnectReason, ErrorReason, ServerFrame};
use crate::transport::{self, HandshakeError, TransportError};

/// Frames sealed into one write before flushing, so a busy room is not one syscall a frame
/// and a quiet one is not delayed.
const MAX_FRAMES_PER_WRITE: usize = 64;

pub(super) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    ip: IpAddr,
    stop: CancellationToken,
) {
    let _permit = match shared.gate.admit(ip) {
        Admission::Admit(permit) => permit,
        Admission::Refuse(reason) => {
            tracing::info!(%reason, "connection refused before the handshake");
            return transport::refuse(stream, reason).await;
        }
        Admission::Drop => return,
    };
    let config = &shared.config;
    let handshake = tokio::select! {
        result = transport::server_handshake(stream, &config.access_code, config.handshake_timeout) => result,
        () = stop.cancelled() => return,
    };
    let (mut reader, mut writer) = match handshake {
        Ok(connection) => {
            shared.gate.record_handshake(ip, HandshakeOutcome::Authenticated);
            tracing::info!("client authenticated");
            connection
        }
        Err(error) => {
            let outcome = match error {
                HandshakeError::WrongAccessCode => HandshakeOutcome::WrongAccessCode,
                _ => HandshakeOutcome::Failed,
            };
            tracing::debug!(%error, "handshake failed");
            shared.gate.record_handshake(ip, outcome);
            return;
        }
    };

    let (outbound, mut queued) = outbound::queue(config.queue_limits, &shared.queued);
    let (kick, mut kicked) = oneshot::channel::<DisconnectReason>();
    let own_queue = outbound.clone();
    let mut limiter = ConnectionLimiter::new(config.rate_limit, Instant::now());
    let session = shared.state().add_session(ip, SessionChannel { outbound, kick });
    let mut signals = Vec::new();
    // The idle timer is not reset on every frame (that would touch the timer wheel each
    // time): it fires at the first deadline, and is set again from the last frame heard.
    let mut last_heard = Instant::now();
    let idle = tokio::time::sleep(config.idle_timeout);
    tokio::pin!(idle);

    let reason: Option<DisconnectReason> = loop {
        tokio::select! {
            read = reader.next_frame() => {
                let plaintext = match read {
                    Ok(Some(plaintext)) => plaintext,
                    Ok(None) => break None,
                    Err(error) => break Some(reason_for(&error)),
                };
                last_heard = Instant::now();
                let Ok(frame) = proto::decode::<ClientFrame>(plaintext) else {
                    break Some(DisconnectReason::BadFrame);
                };
                match limiter.check(&frame, last_heard) {
                    Verdict::Pass => {}
                    Verdict::Refuse => {
                        // Best effort: a client too busy sending to read loses the notice.
                        let refusal = ServerFrame::Error { reason: ErrorReason::RateLimited };
                        let _ = own_queue.try_send(Bytes::from(proto::encode(&refusal)));
                        continue;
                    }
                    Verdict::Disconnect => break Some(DisconnectReason::RateLimited),
                }
                let control = shared.state().handle(session, frame, last_heard, &mut signals);
                for signal in signals.drain(..) {
                    match signal {
                        super::state::AbuseSignal::WrongRoomPassword { ip } => {
                            shared.gate.record_wrong_room_password(ip);
                        }
                    }
                }
                if let Control::Close(reason) = control {
                    break Some(reason);
                }
            }
            Some(frame) = queued.recv() => {
                let mut sealed = writer.queue(&frame).is_ok();
                for _ in 1..MAX_FRAMES_PER_WRITE {
                    let Some(frame) = queued.try_recv() else { break };
                    sealed &= writer.queue(&frame).is_ok();
                }
                if !sealed {
                    break Some(DisconnectReason::ProtocolViolation);
                }
                tokio::select! {
                    written = writer.flush() => if written.is_err() { break None },
                    reason = &mut kicked => break reason.ok(),
                    () = stop.cancelled() => break Some(DisconnectReason::ServerShutdown),
                }
            }
            reason = &mut kicked => break reason.ok(),
            () = stop.cancelled() => break Some(DisconnectReason::ServerShutdown),
            () = &mut idle => {
                let deadline = last_heard + config.idle_timeout;
                if Instant::now() >= deadline {
                    break Some(DisconnectReason::IdleTimeout);
                }
                idle.as_mut().reset(deadline);
            }
        }
    };

    shared.state().remove_session(session, Instant::now());
    if reason == Some(DisconnectReason::IdleTimeout) {
        shared.gate.record_idle_drop(ip);
    }
    // Operational only: a reason, never who, where from, or what they said.
    tracing::info!(?reason, "client disconnected");
    if let Some(reason) = reason {
        // Best effort, and brief: a reader that stalled may never take the goodbye.
        let _ = writer.queue(&proto::encode(&ServerFrame::Goodbye { reason }));
        let _ = timeout(std::time::Duration::from_secs(1), writer.shutdown()).await;
    }
}

fn reason_for(error: &TransportError) -> DisconnectReason {
    match error {
        TransportError::FrameTooLarge => DisconnectReason::FrameTooLarge,
        TransportError::BadSeal | TransportError::BadRecord | TransportError::Decode(_) => {
            DisconnectReason::BadFrame
        }
        TransportError::Io(_) => DisconnectReason::BadFrame,
    }
}
