//! One traffic pattern, run the same way against the relay and against the yardstick: rooms
//! of members, some of them senders, each sending a fixed number of stamped frames, and every
//! other member of the room counting deliveries and their latency.
//!
//! Senders are held to a window: no receiver may fall more than `window` frames behind, so
//! neither server's per-connection queue overflows and the measurement is of throughput, not
//! of who drops first. Every loop here stops at its count or at the deadline, whichever
//! comes first.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::common::now_nanos;
use crate::histogram::Histogram;

/// Bytes at the end of every frame that carry the send time.
pub const STAMP_LEN: usize = 8;

/// Rounds a sender waits for its window at most, whatever the deadline.
const MAX_WAIT_ROUNDS: u32 = 10_000_000;

/// How long receivers keep waiting after the send deadline for frames still in flight.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The shape of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rooms: usize,
    pub members: usize,
    pub senders: usize,
    pub messages: u64,
    pub window: u64,
    pub batch: usize,
    pub duration: Duration,
}

impl Plan {
    /// Frames member `member` of a room should receive: everything its room's senders send,
    /// less its own.
    pub fn expected_for(&self, member: usize) -> u64 {
        let own = if member < self.senders { self.messages } else { 0 };
        self.senders as u64 * self.messages - own
    }

    pub fn expected_total(&self) -> u64 {
        self.rooms as u64 * (0..self.members).map(|member| self.expected_for(member)).sum::<u64>()
    }
}

/// One room's flow control: what each member has sent and received.
pub struct RoomProgress {
    sent_total: AtomicU64,
    sent_by: Vec<AtomicU64>,
    received: Vec<AtomicU64>,
    sender_waiting: AtomicBool,
    progressed: Notify,
}

impl RoomProgress {
    pub fn new(members: usize) -> Self {
        RoomProgress {
            sent_total: AtomicU64::new(0),
            sent_by: (0..members).map(|_| AtomicU64::new(0)).collect(),
            received: (0..members).map(|_| AtomicU64::new(0)).collect(),
            sender_waiting: AtomicBool::new(false),
            progressed: Notify::new(),
        }
    }

    /// How far the slowest receiver is behind what the room has sent.
    fn lag(&self) -> u64 {
        let sent_total = self.sent_total.load(Ordering::Acquire);
        (0..self.received.len())
            .map(|member| {
                let expected = sent_total - self.sent_by[member].load(Ordering::Relaxed);
                expected.saturating_sub(self.received[member].load(Ordering::Relaxed))
            })
            .max()
            .unwrap_or(0)
    }

    /// Waits until `batch` more frames fit in the window; false when the deadline passed.
    async fn wait_for_room(&self, window: u64, batch: u64, deadline: Instant) -> bool {
        // Each round waits for a receiver's progress or 10 ms, so the deadline ends it first;
        // the count is a backstop.
        for _ in 0..MAX_WAIT_ROUNDS {
            if self.lag() + batch <= window {
                return true;
            }
            let progressed = self.progressed.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            self.sender_waiting.store(true, Ordering::Release);
            if self.lag() + batch <= window {
                return true;
            }
            let wake = (Instant::now() + Duration::from_millis(10)).min(deadline);
            if tokio::time::timeout_at(wake, progressed).await.is_err()
                && Instant::now() >= deadline
            {
                return false;
            }
        }
        false
    }

    fn sent(&self, member: usize, count: u64) {
        self.sent_by[member].fetch_add(count, Ordering::Relaxed);
        self.sent_total.fetch_add(count, Ordering::Release);
    }

    fn received(&self, member: usize) {
        self.received[member].fetch_add(1, Ordering::Relaxed);
        if self.sender_waiting.load(Ordering::Relaxed)
            && self.sender_waiting.swap(false, Ordering::AcqRel)
        {
            self.progressed.notify_waiters();
        }
    }
}

/// Where a sender's frames go: queued, then written together.
pub trait FrameSink: Send + 'static {
    fn queue(&mut self, frame: &[u8]) -> io::Result<()>;
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// What a receiver read.
pub enum Received {
    /// A traffic frame with its send stamp.
    Delivery(u64),
    /// Something else (a notice from the server); not counted.
    Other,
    Closed,
}

/// Where a receiver's frames come from.
pub trait FrameSource: Send + 'static {
    fn next(&mut self) -> impl Future<Output = io::Result<Received>> + Send;
}

/// Writes the send time into the last [`STAMP_LEN`] bytes of a frame.
pub fn stamp(frame: &mut [u8], nanos: u64) {
    let at = frame.len() - STAMP_LEN;
    frame[at..].copy_from_slice(&nanos.to_le_bytes());
}

/// The send time in a frame's last [`STAMP_LEN`] bytes, if it is long enough to have one.
pub fn stamp_of(frame: &[u8]) -> Option<u64> {
    let at = frame.len().checked_sub(STAMP_LEN)?;
    Some(u64::from_le_bytes(frame[at..].try_into().ok()?))
}

/// What one receiver saw.
#[derive(Default)]
struct ReceiverOutcome {
    latencies: Histogram,
    last_nanos: u64,
}

/// What a run measured.
pub struct Outcome {
    pub expected: u64,
    pub deliveries: u64,
    pub expected_sent: u64,
    pub sent: u64,
    pub elapsed: Duration,
    pub latencies: Histogram,
}

impl Outcome {
    pub fn deliveries_per_second(&self) -> f64 {
        self.deliveries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One member's two halves, ready to run.
pub struct Member<Sink, Source> {
    pub sink: Sink,
    pub source: Source,
}

/// Runs `plan` over `rooms` (each `plan.members` long, the first `plan.senders` of each
/// sending), where `template` is the exact frame a sender writes, stamp last.
pub async fn run<Sink: FrameSink, Source: FrameSource>(
    plan: &Plan,
    rooms: Vec<Vec<Member<Sink, Source>>>,
    templates: Vec<Vec<u8>>,
) -> Outcome {
    let start_nanos = now_nanos();
    let started = Instant::now();
    let send_deadline = started + plan.duration;
    let receive_deadline = send_deadline + DRAIN_GRACE;
    let mut receivers = JoinSet::new();
    let mut senders = JoinSet::new();
    for (members, template) in rooms.into_iter().zip(templates) {
        let progress = Arc::new(RoomProgress::new(members.len()));
        for (member, Member { sink, source }) in members.into_iter().enumerate() {
            let expected = plan.expected_for(member);
            let receiving =
                receive(source, Arc::clone(&progress), member, expected, receive_deadline);
            if member < plan.senders {
                let sender = send(
                    sink,
                    Arc::clone(&progress),
                    member,
                    template.clone(),
                    plan.clone(),
                    send_deadline,
                );
                senders.spawn(sender);
                receivers.spawn(receiving);
            } else {
                // A receiver keeps its sending half open: closing it would hang up.
                receivers.spawn(async move {
                    let outcome = receiving.await;
                    drop(sink);
                    outcome
                });
            }
        }
    }
    let mut sent = 0;
    // Senders hand back their sending halves, kept open until every receiver is done: a
    // closed sending half is a hang-up.
    let mut open_sinks = Vec::new();
    while let Some(result) = senders.join_next().await {
        match result {
            Ok((Ok(count), sink)) => {
                sent += count;
                open_sinks.push(sink);
            }
            Ok((Err(error), sink)) => {
                eprintln!("a sender failed: {error}");
                open_sinks.push(sink);
            }
            Err(error) => eprintln!("a sender task failed: {error}"),
        }
    }
    let mut latencies = Histogram::default();
    let mut last_nanos = start_nanos;
    while let Some(result) = receivers.join_next().await {
        if let Ok(outcome) = result {
            latencies.merge(&outcome.latencies);
            last_nanos = last_nanos.max(outcome.last_nanos);
        }
    }
    drop(open_sinks);
    Outcome {
        expected: plan.expected_total(),
        deliveries: latencies.count(),
        expected_sent: (plan.rooms * plan.senders) as u64 * plan.messages,
        sent,
        elapsed: Duration::from_nanos(last_nanos - start_nanos),
        latencies,
    }
}

/// Sends the member's share; returns how many it sent, and its sending half.
async fn send<Sink: FrameSink>(
    mut sink: Sink,
    progress: Arc<RoomProgress>,
    member: usize,
    frame: Vec<u8>,
    plan: Plan,
    deadline: Instant,
) -> (io::Result<u64>, Sink) {
    let sent = send_until_done(&mut sink, &progress, member, frame, &plan, deadline).await;
    (sent, sink)
}

async fn send_until_done<Sink: FrameSink>(
    sink: &mut Sink,
    progress: &RoomProgress,
    member: usize,
    mut frame: Vec<u8>,
    plan: &Plan,
    deadline: Instant,
) -> io::Result<u64> {
    let mut sent = 0;
    while sent < plan.messages && Instant::now() < deadline {
        let batch = (plan.messages - sent).min(plan.batch as u64);
        if !progress.wait_for_room(plan.window, batch, deadline).await {
            break;
        }
        for _ in 0..batch {
            stamp(&mut frame, now_nanos());
            sink.queue(&frame)?;
        }
        sink.flush().await?;
        progress.sent(member, batch);
        sent += batch;
    }
    Ok(sent)
}

async fn receive<Source: FrameSource>(
    mut source: Source,
    progress: Arc<RoomProgress>,
    member: usize,
    expected: u64,
    deadline: Instant,
) -> ReceiverOutcome {
    let mut outcome = ReceiverOutcome::default();
    let give_up = tokio::time::sleep_until(deadline);
    tokio::pin!(give_up);
    while outcome.latencies.count() < expected {
        let received = tokio::select! {
            biased;
            received = source.next() => received,
            () = &mut give_up => break,
        };
        match received {
            Ok(Received::Delivery(stamp)) => {
                let now = now_nanos();
                outcome.latencies.record(now.saturating_sub(stamp));
                outcome.last_nanos = now;
                progress.received(member);
            }
            Ok(Received::Other) => {}
            Ok(Received::Closed) | Err(_) => break,
        }
    }
    outcome
}
