//! The cluster's one ordered stream of inputs, on NATS JetStream: creating it (in memory
//! only), publishing to it, reading it back in order, and noticing when it was lost.
//!
//! Every relay publishes its inputs to one subject and reads the whole stream back from its
//! first message, applying each to its replica in the stream's order, with the stream's
//! clock. The stream is the cluster's incarnation: its creation time names it, and the
//! state's `relay_boot` is derived from that, so a client can tell a cluster that lost its
//! state from one that merely lost its link. JetStream's memory storage keeps nothing on
//! disk, so when NATS restarts the stream is gone: every relay notices (a new creation time,
//! or a gap in the sequence), starts its replica again from nothing, and tells its clients,
//! who reclaim their rooms as after a relay restart.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Cluster;
use super::input::{Envelope, Input};

/// How often a relay says it is alive (and moves the cluster's clock): as often as a relay
/// of its own checks its deadlines.
pub const TICK_INTERVAL: Duration = Duration::from_millis(200);

/// How often a relay checks that the stream it reads is still the cluster's.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The subject every input is published on.
pub fn subject(stream_name: &str) -> String {
    format!("chatter.{stream_name}.inputs")
}

/// The stream, as this relay reads it.
struct Incarnation {
    stream: stream::Stream,
    created: i128,
}

/// Reads the stream into the replica until `stop`, starting again whenever the stream is
/// lost or replaced.
pub(super) async fn run(cluster: Arc<Cluster>, stop: CancellationToken) {
    let mut said_lost = false;
    loop {
        let incarnation = tokio::select! {
            incarnation = ensure_stream(&cluster) => incarnation,
            () = stop.cancelled() => return,
        };
        let incarnation = match incarnation {
            Ok(incarnation) => incarnation,
            Err(error) => {
                if !said_lost {
                    tracing::error!(%error, "NATS unreachable: rooms shared with other relays are paused until it is back");
                    said_lost = true;
                }
                tokio::select! {
                    () = tokio::time::sleep(WATCH_INTERVAL) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        if said_lost {
            tracing::warn!("NATS is back");
            said_lost = false;
        }
        let relay_boot = relay_boot_of(incarnation.created);
        let known = cluster.replica().state().relay_boot();
        if known != relay_boot {
            if cluster.started_reading() {
                tracing::warn!(
                    "the cluster's stream was lost (NATS restarted?): starting again from nothing; clients reclaim their rooms"
                );
            }
            cluster.reset(relay_boot);
        }
        let ended = tokio::select! {
            ended = read(&cluster, &incarnation) => ended,
            () = stop.cancelled() => return,
        };
        if let Err(error) = ended {
            tracing::warn!(%error, "reading the cluster's stream stopped; starting again");
        }
    }
}

/// The stream, created if it is not there yet. Memory storage only, bounded in bytes: the
/// oldest inputs go first.
async fn ensure_stream(cluster: &Cluster) -> Result<Incarnation, async_nats::Error> {
    let config = stream::Config {
        name: cluster.config.stream.clone(),
        subjects: vec![subject(&cluster.config.stream)],
        storage: stream::StorageType::Memory,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_bytes: cluster.config.max_stream_bytes,
        num_replicas: 1,
        ..Default::default()
    };
    let mut stream = cluster.jetstream.get_or_create_stream(config.clone()).await?;
    let info = stream.info().await?;
    // A relay that finds the stream's beginning gone cannot build the state from it: the
    // cluster starts again (every relay resets, every client reclaims its rooms).
    if info.state.first_sequence > 1 && !cluster.started_reading() {
        tracing::warn!(
            "the cluster's stream no longer holds its beginning: replacing it, so that every relay starts again"
        );
        cluster.jetstream.delete_stream(&cluster.config.stream).await?;
        stream = cluster.jetstream.get_or_create_stream(config).await?;
    }
    let created = stream.info().await?.created.unix_timestamp_nanos();
    Ok(Incarnation { stream, created })
}

/// What the cluster's `relay_boot` is for a stream created at `created`.
fn relay_boot_of(created: i128) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(created.to_be_bytes());
    let mut boot = [0u8; 8];
    boot.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(boot)
}

/// Applies the stream's inputs in order until it ends, falls out of order, or is replaced.
async fn read(cluster: &Cluster, incarnation: &Incarnation) -> Result<(), async_nats::Error> {
    let mut next = cluster.applied_through() + 1;
    let consumer = incarnation
        .stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: cluster.client.new_inbox(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: next },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut watch = tokio::time::interval(WATCH_INTERVAL);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            _ = watch.tick() => {
                // The stream we read may have been replaced while the consumer waits.
                let mut stream = incarnation.stream.clone();
                match stream.info().await {
                    Ok(info) if info.created.unix_timestamp_nanos() == incarnation.created => continue,
                    Ok(_) => return Ok(()),
                    Err(error) => return Err(error.into()),
                }
            }
        };
        let Some(message) = message else { return Ok(()) };
        let message = message?;
        let info = message.info()?;
        if info.stream_sequence != next {
            // A gap, or a sequence that went back: not the stream this replica was built
            // from. Start again.
            return Err(format!("expected input {next}, got {}", info.stream_sequence).into());
        }
        let published = info.published.unix_timestamp_nanos();
        next += 1;
        let envelope = match cluster.key.open(&message.payload) {
            Ok(envelope) => Some(envelope),
            Err(error) => {
                tracing::warn!(%error, "an input on the cluster's stream was dropped");
                None
            }
        };
        cluster.apply(info.stream_sequence, envelope, published);
    }
}

/// Says this relay is alive, every tick, until `stop`.
pub(super) async fn tick(cluster: Arc<Cluster>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(TICK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = cluster.publish(Input::Tick { gate: cluster.gate }).await;
            }
            () = stop.cancelled() => return,
        }
    }
}

/// Maps the stream's clock (nanoseconds since 1970, as NATS stamps each input) to this
/// process's `Instant`s: every relay sees the same differences, so every deadline falls at
/// the same input everywhere. It never goes back.
#[derive(Debug, Default)]
pub(super) struct StreamClock {
    origin: Option<(i128, Instant)>,
    last: Option<Instant>,
}

impl StreamClock {
    pub(super) fn at(&mut self, published: i128) -> Instant {
        let (origin_nanos, origin) = *self.origin.get_or_insert((published, Instant::now()));
        let since = u64::try_from(published.saturating_sub(origin_nanos)).unwrap_or(0);
        let now = origin + Duration::from_nanos(since);
        let now = self.last.map_or(now, |last| now.max(last));
        self.last = Some(now);
        now
    }
}

/// An input as published: who sent it, sealed.
pub(super) fn sealed(cluster: &Cluster, input: Input) -> Vec<u8> {
    let incarnation = cluster.incarnation.load(std::sync::atomic::Ordering::Acquire);
    cluster.key.seal(&Envelope { from: cluster.me, incarnation, input })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_stream_clock_keeps_the_streams_differences_and_never_goes_back() {
        let mut clock = StreamClock::default();
        let start = clock.at(1_000_000_000);
        assert_eq!(clock.at(1_500_000_000) - start, Duration::from_millis(500));
        assert_eq!(clock.at(1_200_000_000) - start, Duration::from_millis(500), "not back");
        assert_eq!(clock.at(4_000_000_000) - start, Duration::from_secs(3));
        assert_ne!(relay_boot_of(1), relay_boot_of(2));
    }
}
