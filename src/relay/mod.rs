//! The relay: `chatter-server`'s whole behaviour, as a library so tests can run it.
//!
//! [`Relay::serve`] is the single entry point: it takes a bound listener and a shutdown
//! future, so tests bind `127.0.0.1:0`, spawn it, and talk to it over real sockets. Each
//! connection gets one task (`connection`), the shared routing state sits in `state`, the
//! per-address door in `gate`, binding the socket in `listener`, per-connection rate limits
//! in `rate`, failed handshakes counted by reason for the log in `failures`, and the abuse
//! report (the only file the relay ever writes) in `report`. Relay code never calls openmls: it
//! reads MLS headers through `mls_header` only.

pub mod cluster;
mod connection;
pub mod failures;
pub mod gate;
pub mod listener;
pub mod outbound;
pub mod rate;
pub mod replay;
pub mod report;
pub mod state;
mod vote;

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::secret::Secret;
pub use gate::{Gate, GateLimits};
pub use rate::RateLimit;
pub use report::ReportConfig;
pub use state::RelayStats;

/// How the relay behaves. `RelayConfig::new` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub access_code: Secret,
    /// A connection must finish the handshake within this long.
    pub handshake_timeout: Duration,
    /// A connection that sends nothing (not even a keepalive) for this long is dropped.
    pub idle_timeout: Duration,
    /// Frames and bytes queued for one client (and bytes for all clients together) before a
    /// client counts as a stalled reader and is cut off.
    pub queue_limits: outbound::QueueLimits,
    /// Rooms one client may be in (or joining) at once.
    pub max_rooms_per_client: usize,
    /// How long members have to vote on a commit, a leader to answer a joiner, and a
    /// dropped session's client to resume it.
    pub room_deadlines: state::RoomDeadlines,
    pub gate: GateLimits,
    /// Frames per second each connection may send, chat and room traffic counted apart.
    pub rate_limit: RateLimit,
    /// What each session keeps of the frames sent to its client, for a resume.
    pub replay_limits: replay::ReplayLimits,
    /// Where to write the abuse report; `None` writes nothing at all.
    pub report: Option<ReportConfig>,
}

impl RelayConfig {
    pub fn new(access_code: Secret) -> Self {
        RelayConfig {
            access_code,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            queue_limits: outbound::QueueLimits::default(),
            // As many as a client lets its user join (`client::MAX_ROOMS`), so that the
            // client's own limit, with its clearer words, is the one a user meets.
            max_rooms_per_client: 32,
            room_deadlines: state::RoomDeadlines::default(),
            gate: GateLimits::default(),
            rate_limit: RateLimit::default(),
            replay_limits: replay::ReplayLimits::default(),
            report: None,
        }
    }
}

pub(crate) struct Shared {
    config: RelayConfig,
    state: Mutex<state::State>,
    gate: Gate,
    queued: Arc<outbound::GlobalQueue>,
    failures: failures::HandshakeFailures,
    /// This relay's copy of a cluster's state, once it joined one (for `stats`; only the
    /// replica, so that a relay that never joins one carries none of the NATS client).
    cluster: std::sync::OnceLock<Arc<Mutex<cluster::Replica>>>,
}

impl Shared {
    fn state(&self) -> StateGuard<'_> {
        // The state is only mutated through methods that keep it consistent at every await-free
        // step; a poisoned lock means a bug panicked mid-frame, and the rest of the relay is
        // better served by carrying on than by dying with it.
        StateGuard(self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// The state's lock, held. Letting it go queues any chat still waiting in a batch
/// (`state::chat_batch`), so nothing relayed waits for the next frame to be handled.
struct StateGuard<'a>(MutexGuard<'a, state::State>);

impl std::ops::Deref for StateGuard<'_> {
    type Target = state::State;

    fn deref(&self) -> &state::State {
        &self.0
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut state::State {
        &mut self.0
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        self.0.batch_chat(false);
    }
}

/// A relay: its configuration and in-memory state.
#[derive(Clone)]
pub struct Relay {
    shared: Arc<Shared>,
}

impl Relay {
    pub fn new(config: RelayConfig) -> Self {
        let away_limits = away_limits(&config.gate);
        let state = Mutex::new(
            state::State::new(config.max_rooms_per_client, config.room_deadlines)
                .with_away_limits(away_limits),
        );
        let gate = Gate::new(config.gate.clone());
        let queued = Arc::new(outbound::GlobalQueue::default());
        let failures = failures::HandshakeFailures::default();
        let cluster = std::sync::OnceLock::new();
        Relay { shared: Arc::new(Shared { config, state, gate, queued, failures, cluster }) }
    }

    /// Bytes queued for clients right now, across every connection.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.queued_bytes()
    }

    /// What the relay holds right now, as counts.
    pub fn stats(&self) -> RelayStats {
        match self.shared.cluster.get() {
            Some(replica) => {
                replica.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).state().stats()
            }
            None => self.shared.state().stats(),
        }
    }

    /// Failed handshakes so far, by reason.
    pub fn handshake_failures(&self) -> &failures::HandshakeFailures {
        &self.shared.failures
    }

    /// The per-address gate (for the abuse report and tests).
    pub fn gate(&self) -> &Gate {
        &self.shared.gate
    }

    /// Accepts connections until `shutdown` completes, then tells every client why it is
    /// being disconnected and waits briefly for them to be told.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let stop = CancellationToken::new();
        // If this future is dropped instead of shut down, connections and housekeeping stop too.
        let _stop_when_dropped = stop.clone().drop_guard();
        let tasks = TaskTracker::new();
        let housekeeping = tokio::spawn(report::run(
            self.shared.gate.clone(),
            self.shared.config.report.clone(),
            stop.clone(),
        ));
        let deadlines = tokio::spawn(enforce_deadlines(Arc::clone(&self.shared), stop.clone()));
        tokio::pin!(shutdown);
        while let Some((stream, ip)) = next_connection(&listener, &mut shutdown).await {
            let shared = Arc::clone(&self.shared);
            tasks.spawn(connection::serve(shared, stream, ip, stop.clone()));
        }
        tracing::info!("shutting down");
        stop.cancel();
        tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(3), tasks.wait()).await;
        // Housekeeping writes the last report when stopped; wait for it.
        let _ = housekeeping.await;
        let _ = deadlines.await;
        Ok(())
    }
}

impl Relay {
    /// Like [`Relay::serve`], as one of the relays that share rooms through `cluster`'s
    /// NATS (`cluster`). Kept apart from `serve` so that a program that never joins a cluster
    /// (the client's embedded relay) carries none of the NATS client.
    pub async fn serve_in_cluster(
        &self,
        cluster: cluster::ClusterConfig,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        cluster::serve(Arc::clone(&self.shared), cluster, listener, shutdown).await
    }
}

/// The next connection and its client's address, or `None` once `shutdown` completes.
async fn next_connection<F: Future<Output = ()>>(
    listener: &TcpListener,
    shutdown: &mut std::pin::Pin<&mut F>,
) -> Option<(tokio::net::TcpStream, std::net::IpAddr)> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.as_mut() => return None,
        };
        match accepted {
            // An IPv4 client of a dual-stack listener is counted (and reported) as IPv4.
            Ok((stream, peer)) => return Some((stream, peer.ip().to_canonical())),
            Err(error) => {
                // Out of file descriptors or a connection reset before accept: keep serving
                // the others, after a pause so a persistent error does not spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// How many away sessions to keep, per address as the gate counts addresses.
fn away_limits(gate: &GateLimits) -> state::AwayLimits {
    state::AwayLimits {
        per_address: gate.max_connections_per_ip,
        ipv6_prefix_len: gate.ipv6_prefix_len,
        ..state::AwayLimits::default()
    }
}

/// How often the room deadlines (votes, leaders owing joiners an answer) are checked. They
/// are seconds long, so a fifth of a second late is on time.
const DEADLINE_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// Enforces the rooms' deadlines until the relay stops.
async fn enforce_deadlines(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(DEADLINE_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => shared.state().expire(tokio::time::Instant::now()),
            () = stop.cancelled() => return,
        }
    }
}

/// Runs a relay with `config` on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: RelayConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    Relay::new(config).serve(listener, shutdown).await
}
