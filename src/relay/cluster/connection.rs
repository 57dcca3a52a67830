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
use super::input::Input;
use super::log::Delivery;
use crate::proto::{self, ClientFrame, DisconnectReason, ServerFrame};
use crate::relay::connection::{admit, decoded};
use crate::relay::rate::{ConnectionLimiter, Verdict};
use crate::relay::state::SessionId;
use crate::transport::{SealedReader, SealedWriter};

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
    cluster.replica().attach(session, link);
    let address = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    cluster.publish(Input::Opened { session: session.0, ip: address }).await;
    let limiter = ConnectionLimiter::new(shared.config.rate_limit, Instant::now());
    let mut connection = Connection {
        cluster,
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
    /// The link dropped or went quiet: the session waits for its client.
    LinkLost,
    /// For good, telling the client why.
    Closed(DisconnectReason),
    /// The cluster already ended the session and told the connection (`Delivery::Close`).
    ByTheCluster(Option<DisconnectReason>),
}

struct Connection {
    cluster: Arc<Cluster>,
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
                    let frame = match read {
                        Ok(Some(plaintext)) => plaintext.to_vec(),
                        other => {
                            return match decoded(other.map(|_| None)) {
                                Err(Some(reason)) => Ended::Closed(reason),
                                _ => Ended::LinkLost,
                            };
                        }
                    };
                    if let Err(ended) = self.on_frame(frame).await {
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
                        return Ended::LinkLost;
                    }
                    idle.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Publishes a frame from the client. `Err` ends the connection.
    async fn on_frame(&mut self, plaintext: Vec<u8>) -> Result<(), Ended> {
        self.last_heard = Instant::now();
        let first = !std::mem::replace(&mut self.heard_any, true);
        let frame = proto::decode::<ClientFrame>(&plaintext)
            .map_err(|_| Ended::Closed(DisconnectReason::BadFrame))?;
        let session = self.session.0;
        let input = match frame {
            ClientFrame::Resume { token, received } if first => {
                Input::Resume { fresh: session, token: token.0, received }
            }
            ClientFrame::Ack { received } => Input::Ack { session, received },
            frame => match self.limiter.check(&frame, self.last_heard) {
                Verdict::Pass => Input::Frame { session, frame: plaintext, refused: false },
                Verdict::Refuse => Input::Frame { session, frame: Vec::new(), refused: true },
                Verdict::Disconnect => return Err(Ended::Closed(DisconnectReason::RateLimited)),
            },
        };
        self.cluster.publish(input).await;
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
        self.cluster.replica().detach(self.session);
        let reason = match ended {
            Ended::LinkLost => {
                let input = Input::Closed { session: self.session.0, link_lost: true };
                self.cluster.publish(input).await;
                None
            }
            Ended::Closed(reason) => {
                // A relay stopping is one being restarted or replaced: its session waits
                // for its client, who comes back here or to another relay of the cluster.
                let link_lost = reason == DisconnectReason::ServerShutdown;
                self.cluster.publish(Input::Closed { session: self.session.0, link_lost }).await;
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
