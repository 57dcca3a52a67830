//! One client connection of a relay in a cluster, from accept to close, in one task.
//!
//! The gate and the handshake are the relay's own (`relay::connection`). After them, this
//! task changes nothing itself: every frame from the client is published as an input and
//! takes effect when the stream hands it back (`replica`), and what the client is sent comes
//! from the session's log (`log::Delivery`). The rate limit stays this relay's: a refused
//! frame is published as refused, so every relay answers it alike.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Cluster;
use super::input::{ClientInput, Input};
use super::log::Delivery;
use crate::proto::{self, ClientFrame, DisconnectReason, ServerFrame};
use crate::relay::connection::{admit, decoded};
use crate::relay::rate::{ConnectionLimiter, Verdict};
use crate::relay::state::SessionId;
use crate::transport::{SealedReader, SealedWriter};

/// The most bytes of frames one input carries, unless one frame alone is larger: well under
/// NATS's default `max_payload` (1 MiB), which a frame may still exceed (a Welcome to a
/// large room; `dist/cluster/nats.conf` raises it).
const RUN_BYTES: usize = 256 * 1024;

/// Frames written to the socket before flushing, as a relay of its own does.
const MAX_FRAMES_PER_WRITE: usize = 64;

/// Serves one accepted connection to its end.
pub(super) async fn serve(
    cluster: Arc<Cluster>,
    socket: TcpStream,
    ip: IpAddr,
    stop: CancellationToken,
) {
    let shared = Arc::clone(&cluster.shared);
    let Some((_permit, (reader, writer))) = admit(&shared, socket, ip, &stop).await else {
        return;
    };
    // A connection that arrives while the cluster starts again waits for it.
    tokio::select! {
        () = cluster.until_ready() => {}
        () = stop.cancelled() => return,
    }
    let frames = shared.config.queue_limits.frames_per_session.max(1);
    let (link, deliveries) = mpsc::channel(frames);
    let session = cluster.new_session();
    cluster.replica().attach(session, link.clone());
    let address = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    let _ = cluster.publish(Input::Opened { session: session.0, ip: address }).await;
    let limiter = ConnectionLimiter::new(shared.config.rate_limit, Instant::now());
    let mut connection = Connection {
        cluster,
        link,
        ip,
        session,
        reader,
        writer,
        deliveries,
        limiter,
        heard_any: false,
        last_heard: Instant::now(),
    };
    let ended = connection.run(&stop).await;
    connection.close(ended).await;
}

/// How a connection ended.
enum Ended {
    /// The link dropped: the session waits for its client.
    LinkLost,
    /// Nothing was heard for the idle timeout: the session waits for its client, who is
    /// told, if it still listens.
    Idle,
    /// For good, telling the client why.
    Closed(DisconnectReason),
    /// The cluster already ended the session and told the connection (`Delivery::Close`).
    ByTheCluster(Option<DisconnectReason>),
}

struct Connection {
    cluster: Arc<Cluster>,
    /// What this connection is attached to the replica with (`Replica::attach`).
    link: mpsc::Sender<Delivery>,
    ip: IpAddr,
    session: SessionId,
    reader: SealedReader<OwnedReadHalf>,
    writer: SealedWriter<OwnedWriteHalf>,
    deliveries: mpsc::Receiver<Delivery>,
    limiter: ConnectionLimiter,
    heard_any: bool,
    last_heard: Instant,
}

impl Connection {
    async fn run(&mut self, stop: &CancellationToken) -> Ended {
        let idle_timeout = self.cluster.shared.config.idle_timeout;
        let idle = tokio::time::sleep(idle_timeout);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                read = self.reader.next_frame() => {
                    let first = match read {
                        Ok(Some(plaintext)) => plaintext.to_vec(),
                        other => {
                            return match decoded(other.map(|_| None)) {
                                Err(Some(reason)) => Ended::Closed(reason),
                                _ => Ended::LinkLost,
                            };
                        }
                    };
                    if let Err(ended) = self.on_record(first).await {
                        return ended;
                    }
                }
                delivery = self.deliveries.recv() => {
                    let Some(delivery) = delivery else {
                        // The log let this connection go: it fell behind. The client
                        // resumes and is sent what it missed.
                        return Ended::LinkLost;
                    };
                    if let Err(ended) = self.on_delivery(delivery).await {
                        return ended;
                    }
                }
                () = stop.cancelled() => return Ended::Closed(DisconnectReason::ServerShutdown),
                () = &mut idle => {
                    let deadline = self.last_heard + idle_timeout;
                    if Instant::now() >= deadline {
                        return Ended::Idle;
                    }
                    idle.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Publishes a frame from the client and every frame already read behind it (the rest
    /// of its record), consecutive frames as one input. `Err` ends the connection.
    async fn on_record(&mut self, first: Vec<u8>) -> Result<(), Ended> {
        self.last_heard = Instant::now();
        let mut inputs = Vec::new();
        let mut frames = Vec::new();
        let mut next = Some(first);
        while let Some(plaintext) = next {
            self.sort(plaintext, &mut frames, &mut inputs)?;
            next = match self.reader.buffered_frame() {
                None => None,
                Some(Ok(plaintext)) => Some(plaintext.to_vec()),
                Some(Err(_)) => return Err(Ended::Closed(DisconnectReason::BadFrame)),
            };
        }
        if !frames.is_empty() {
            inputs.push(Input::Frames { session: self.session.0, frames });
        }
        for input in inputs {
            // NATS refuses a message past its `max_payload`: the frame cannot be relayed, and
            // the client is told so rather than left waiting for an answer.
            if self.cluster.publish(input).await.is_err() {
                return Err(Ended::Closed(DisconnectReason::FrameTooLarge));
            }
        }
        Ok(())
    }

    /// Adds one frame to the run of frames, or, for a `Resume` or an `Ack`, ends the run and
    /// makes an input of its own.
    fn sort(
        &mut self,
        plaintext: Vec<u8>,
        frames: &mut Vec<ClientInput>,
        inputs: &mut Vec<Input>,
    ) -> Result<(), Ended> {
        let first = !std::mem::replace(&mut self.heard_any, true);
        let frame = proto::decode::<ClientFrame>(&plaintext)
            .map_err(|_| Ended::Closed(DisconnectReason::BadFrame))?;
        let session = self.session.0;
        let own = match frame {
            ClientFrame::Resume { token, received } if first => {
                Input::Resume { fresh: session, token: token.0, received }
            }
            ClientFrame::Ack { received } => Input::Ack { session, received },
            frame => {
                let refused = match self.limiter.check(&frame, self.last_heard) {
                    Verdict::Pass => false,
                    Verdict::Refuse => true,
                    Verdict::Disconnect => {
                        return Err(Ended::Closed(DisconnectReason::RateLimited));
                    }
                };
                let frame = if refused { Vec::new() } else { plaintext };
                // A run is cut before it outgrows what one NATS message should carry.
                let run: usize = frames.iter().map(|input| input.frame.len()).sum();
                if run + frame.len() > RUN_BYTES && !frames.is_empty() {
                    inputs.push(Input::Frames { session, frames: std::mem::take(frames) });
                }
                frames.push(ClientInput { frame, refused });
                return Ok(());
            }
        };
        if !frames.is_empty() {
            inputs.push(Input::Frames { session, frames: std::mem::take(frames) });
        }
        inputs.push(own);
        Ok(())
    }

    /// Writes what the cluster sent this session (and what else is waiting, up to a batch).
    async fn on_delivery(&mut self, first: Delivery) -> Result<(), Ended> {
        let mut next = Some(first);
        let mut frames = 0;
        while let Some(delivery) = next {
            match delivery {
                Delivery::Frames(chunk) => {
                    for frame in chunk.frames() {
                        self.queue(frame)?;
                    }
                    frames += chunk.frames().len();
                }
                Delivery::Resumed { session, resumed, missing } => {
                    self.session = session;
                    self.queue(&resumed)?;
                    for frame in &missing {
                        self.queue(frame)?;
                    }
                    tracing::info!(missed = missing.len(), "session resumed");
                }
                Delivery::ResumeRefused(refused) => self.queue(&refused)?,
                Delivery::Close(reason) => {
                    self.flush().await?;
                    return Err(Ended::ByTheCluster(reason));
                }
            }
            next =
                if frames < MAX_FRAMES_PER_WRITE { self.deliveries.try_recv().ok() } else { None };
        }
        self.flush().await
    }

    fn queue(&mut self, frame: &[u8]) -> Result<(), Ended> {
        self.writer.queue(frame).map_err(|_| Ended::Closed(DisconnectReason::ProtocolViolation))
    }

    async fn flush(&mut self) -> Result<(), Ended> {
        self.writer.flush().await.map_err(|_| Ended::LinkLost)
    }

    /// Tells the cluster the connection ended, then the client why.
    async fn close(mut self, ended: Ended) {
        self.cluster.replica().detach(self.session, &self.link);
        let reason = match ended {
            Ended::LinkLost => {
                let input = Input::Closed { session: self.session.0, link_lost: true };
                let _ = self.cluster.publish(input).await;
                None
            }
            Ended::Idle => {
                let input = Input::Closed { session: self.session.0, link_lost: true };
                let _ = self.cluster.publish(input).await;
                self.cluster.shared.gate.record_idle_drop(self.ip);
                Some(DisconnectReason::IdleTimeout)
            }
            Ended::Closed(reason) => {
                // A relay stopping is one being restarted or replaced: its session waits
                // for its client, who comes back here or to another relay of the cluster.
                let link_lost = reason == DisconnectReason::ServerShutdown;
                let input = Input::Closed { session: self.session.0, link_lost };
                let _ = self.cluster.publish(input).await;
                Some(reason)
            }
            Ended::ByTheCluster(reason) => reason,
        };
        tracing::info!(?reason, "client disconnected");
        let Some(reason) = reason else { return };
        if reason == DisconnectReason::ServerShutdown {
            let _ = self.writer.queue(&proto::encode(&ServerFrame::Restarting));
        }
        let _ = self.writer.queue(&proto::encode(&ServerFrame::Goodbye { reason }));
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(1), self.writer.shutdown()).await;
    }
}
