//! Relays that share rooms, on NATS JetStream (`chatter-server --nats URL`).
//!
//! A cluster is a replicated state machine. The relay's state (`relay::state`) is already
//! sans-IO, with time passed in; in a cluster every relay holds a copy of it for every
//! session of every relay (`replica`), and changes it only by applying the cluster's inputs
//! (`input`): sessions opened, frames received, links lost, ticks of the clock. Each relay
//! publishes what its own connections saw to one JetStream stream and applies the stream
//! back in its one order (`stream`), so every relay makes the same decisions from the same
//! inputs: one commit wins an epoch across relays because the stream put it first, and every
//! member on every relay sees a room's messages in one order. Each relay writes only to its
//! own clients (`connection`), but logs every session's frames alike (`log`), so a client
//! whose relay died resumes on another and is sent exactly what it missed.
//!
//! Nothing is stored: the stream is in JetStream's memory, bounded in bytes. A relay that
//! cannot build the state from the stream (NATS restarted, or the stream lost its beginning)
//! starts again from nothing and tells its clients, who reclaim their rooms as after a relay
//! restart. Without `--nats`, none of this runs: a relay of its own works as it always did.

mod connection;
pub mod input;
pub mod log;
pub mod replica;
mod stream;

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use input::{ClusterKey, Envelope, Input, RelayId};
pub use log::{Delivery, SessionLog};
pub use replica::{RELAY_SILENT_LIMIT, Replica, StateTemplate};

use super::Shared;
use super::state::SessionId;

/// Where the cluster meets, and its key.
#[derive(Clone)]
pub struct ClusterConfig {
    /// The NATS server (or servers, comma-separated), e.g. `nats://127.0.0.1:4222`.
    pub nats_url: String,
    /// Seals every input; the same on every relay of the cluster.
    pub key: Arc<ClusterKey>,
    /// The JetStream stream's name; relays with the same name share rooms.
    pub stream: String,
    /// The most bytes of inputs the stream keeps in memory; past it the oldest go.
    pub max_stream_bytes: i64,
}

impl ClusterConfig {
    pub fn new(nats_url: String, key: ClusterKey) -> Self {
        ClusterConfig {
            nats_url,
            key: Arc::new(key),
            stream: "CHATTER".to_owned(),
            max_stream_bytes: 256 * 1024 * 1024,
        }
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry NATS credentials.
        f.debug_struct("ClusterConfig")
            .field("stream", &self.stream)
            .field("max_stream_bytes", &self.max_stream_bytes)
            .finish_non_exhaustive()
    }
}

/// One relay's membership of the cluster.
pub(crate) struct Cluster {
    me: RelayId,
    config: ClusterConfig,
    key: Arc<ClusterKey>,
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    subject: String,
    replica: Arc<Mutex<Replica>>,
    clock: Mutex<stream::StreamClock>,
    /// The stream sequence of the last input applied (0: none yet, in this incarnation).
    applied_through: AtomicU64,
    /// The incarnation the replica is built for (its `relay_boot`), stamped on inputs.
    incarnation: AtomicU64,
    read_any: AtomicBool,
    next_session: AtomicU32,
    shared: Arc<Shared>,
    /// Whether this relay is part of the cluster yet (its own tick came back admitted): no
    /// client is served before.
    ready: tokio::sync::watch::Sender<bool>,
    /// This relay's gate (`Input::Tick`).
    gate: [u8; 32],
    said_refused: AtomicBool,
}

impl Cluster {
    /// Connects to NATS (trying again until it answers) and builds an empty replica.
    async fn connect(shared: Arc<Shared>, config: ClusterConfig) -> io::Result<Arc<Cluster>> {
        let gate = config.key.gate(&shared.config.access_code);
        let me = RelayId(rand::random::<u32>().max(1));
        let client = async_nats::ConnectOptions::new()
            .name("chatter-server")
            .retry_on_initial_connect()
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Disconnected => {
                        tracing::error!("lost NATS: rooms shared with other relays are paused")
                    }
                    async_nats::Event::Connected => tracing::warn!("connected to NATS"),
                    other => tracing::info!(event = %other, "NATS"),
                }
            })
            .connect(config.nats_url.as_str())
            .await
            .map_err(io::Error::other)?;
        let jetstream = async_nats::jetstream::new(client.clone());
        let relay = &shared.config;
        let template = StateTemplate {
            max_rooms_per_session: relay.max_rooms_per_client,
            deadlines: relay.room_deadlines,
            away_limits: super::away_limits(&relay.gate),
            replay_limits: relay.replay_limits,
            token_key: config.key.derived(b"chatter resume tokens"),
        };
        let subject = stream::subject(&config.stream);
        let key = Arc::clone(&config.key);
        Ok(Arc::new(Cluster {
            me,
            key,
            client,
            jetstream,
            subject,
            replica: Arc::new(Mutex::new(Replica::new(me, template, 0))),
            clock: Mutex::new(stream::StreamClock::default()),
            applied_through: AtomicU64::new(0),
            incarnation: AtomicU64::new(0),
            read_any: AtomicBool::new(false),
            next_session: AtomicU32::new(0),
            config,
            shared,
            ready: tokio::sync::watch::Sender::new(false),
            gate,
            said_refused: AtomicBool::new(false),
        }))
    }

    /// Waits until this relay is part of the cluster's current incarnation.
    async fn until_ready(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|ready| *ready).await;
    }

    pub(crate) fn replica(&self) -> MutexGuard<'_, Replica> {
        // The replica changes whole under its lock; carrying on is better than dying.
        self.replica.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn applied_through(&self) -> u64 {
        self.applied_through.load(Ordering::Acquire)
    }

    fn started_reading(&self) -> bool {
        self.read_any.load(Ordering::Acquire)
    }

    /// A number for a new session of this relay's: its relay's number, then a count.
    fn new_session(&self) -> SessionId {
        let count = self.next_session.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        SessionId((u64::from(self.me.0) << 32) | u64::from(count))
    }

    /// Publishes one input to the stream. While NATS is away the client holds it until it
    /// is back (and if the stream was lost meanwhile, the replica starts again with it). An
    /// input NATS refuses outright (past its `max_payload`) is an error the caller reports.
    async fn publish(&self, input: Input) -> Result<(), ()> {
        let sealed = stream::sealed(self, input);
        // The NATS client checks the size against the server's `max_payload` itself.
        if let Err(error) = self.client.publish(self.subject.clone(), sealed.into()).await {
            tracing::error!(
                %error,
                "an input could not be published (past NATS's max_payload? dist/cluster/nats.conf raises it)"
            );
            return Err(());
        }
        Ok(())
    }

    /// Applies the input the stream numbered `sequence` (`None`: one that did not open).
    fn apply(&self, sequence: u64, envelope: Option<Envelope>, published: i128) {
        if let Some(envelope) = envelope {
            tracing::trace!(sequence, input = ?envelope.input, "applying");
            let own_tick = envelope.from == self.me && matches!(envelope.input, Input::Tick { .. });
            let (applied, admitted) = {
                let mut replica = self.replica();
                let clock =
                    &mut *self.clock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let applied = replica.apply(envelope, clock.at(published));
                (applied, replica.admitted())
            };
            // The gate has a lock of its own, never taken under the replica's.
            for ip in applied.wrong_room_passwords {
                self.shared.gate.record_wrong_room_password(ip);
            }
            if own_tick {
                self.heard_own_tick(admitted);
            }
        }
        self.applied_through.store(sequence, Ordering::Release);
        self.read_any.store(true, Ordering::Release);
    }

    /// This relay's tick came back: it serves clients if the cluster admitted it, and says
    /// so, once, if not.
    fn heard_own_tick(&self, admitted: bool) {
        self.ready.send_if_modified(|ready| std::mem::replace(ready, admitted) != admitted);
        let said = self.said_refused.swap(!admitted, Ordering::AcqRel);
        if !admitted && !said {
            tracing::error!(
                "this relay's access code is not the cluster's: it serves no client until it is (every relay of a cluster needs the same access code)"
            );
        }
    }

    /// Starts the replica again from nothing, for a stream whose incarnation is `relay_boot`.
    fn reset(&self, relay_boot: u64) {
        let mut replica = self.replica();
        replica.reset(relay_boot);
        // Until this relay's tick is heard in the new incarnation, the cluster would drop
        // its inputs: new connections wait (`connection::serve`).
        self.ready.send_replace(false);
        self.applied_through.store(0, Ordering::Release);
        self.incarnation.store(relay_boot, Ordering::Release);
    }
}

/// Serves `listener` as a relay of the cluster until `shutdown`.
pub(super) async fn serve(
    shared: Arc<Shared>,
    config: ClusterConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let cluster = Cluster::connect(Arc::clone(&shared), config).await?;
    let _ = shared.cluster.set(Arc::clone(&cluster.replica));
    let stop = CancellationToken::new();
    let _stop_when_dropped = stop.clone().drop_guard();
    tokio::pin!(shutdown);
    let tasks = TaskTracker::new();
    tasks.spawn(stream::run(Arc::clone(&cluster), stop.clone()));
    tasks.spawn(stream::tick(Arc::clone(&cluster), stop.clone()));
    tokio::select! {
        () = cluster.until_ready() => {}
        () = &mut shutdown => return Ok(()),
    }
    let housekeeping = tokio::spawn(super::report::run(
        shared.gate.clone(),
        shared.config.report.clone(),
        stop.clone(),
    ));
    while let Some((socket, ip)) = super::next_connection(&listener, &mut shutdown).await {
        tasks.spawn(connection::serve(Arc::clone(&cluster), socket, ip, stop.clone()));
    }
    tracing::info!("shutting down");
    stop.cancel();
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(3), tasks.wait()).await;
    // What is still on its way to NATS goes, unless NATS is gone: then stopping must not wait
    // for it to come back.
    let _ = tokio::time::timeout(Duration::from_secs(1), cluster.client.flush()).await;
    let _ = housekeeping.await;
    Ok(())
}
