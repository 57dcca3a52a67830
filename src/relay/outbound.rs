//! The queue of frames waiting to be written to one client, bounded in frames and in bytes.
//!
//! A member that stops reading must not pin the relay's memory: a count of frames alone does
//! not bound it (1024 queued Welcomes of 2 MiB are 2 GiB). So every queue also has a byte
//! budget of its own, and all queues together share a global one. A frame that would exceed
//! either is not queued, and its session is told to go as a slow reader (see `state`), exactly
//! as when the frame count runs out.
//!
//! A room's chat is queued in batches: the frames one sender's burst put in a room are one
//! [`Batch`], shared by every recipient, so a delivery costs one queue push (and one wake-up)
//! per recipient per burst, not per frame. The receiving side still hands out single frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

/// The byte limits of outgoing queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Frames one session may have queued.
    pub frames_per_session: usize,
    /// Bytes one session may have queued: enough for a Welcome to a full room and a burst of
    /// chat behind it.
    pub bytes_per_session: usize,
    /// Bytes all sessions together may have queued.
    pub bytes_total: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            frames_per_session: 1024,
            bytes_per_session: 4 * 1024 * 1024,
            bytes_total: 256 * 1024 * 1024,
        }
    }
}

/// The bytes queued across every session of one relay.
#[derive(Debug, Default)]
pub struct GlobalQueue {
    queued: AtomicUsize,
}

impl GlobalQueue {
    /// Bytes queued right now, across every session.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

struct Budget {
    limits: QueueLimits,
    global: Arc<GlobalQueue>,
    session: AtomicUsize,
    /// Frames queued for the session: batches hold several.
    frames: AtomicUsize,
}

impl Budget {
    /// Reserves room for `frames` frames of `len` bytes in all, or says there is none.
    fn reserve(&self, frames: usize, len: usize) -> bool {
        let queued_frames = self.frames.fetch_add(frames, Ordering::Relaxed) + frames;
        let session = self.session.fetch_add(len, Ordering::Relaxed) + len;
        let global = self.global.queued.fetch_add(len, Ordering::Relaxed) + len;
        if queued_frames > self.limits.frames_per_session
            || session > self.limits.bytes_per_session
            || global > self.limits.bytes_total
        {
            self.release(frames, len);
            return false;
        }
        true
    }

    fn release(&self, frames: usize, len: usize) {
        self.frames.fetch_sub(frames, Ordering::Relaxed);
        self.session.fetch_sub(len, Ordering::Relaxed);
        self.global.queued.fetch_sub(len, Ordering::Relaxed);
    }
}

/// Frames queued together for several sessions: one sender's burst in one room. Cloning it
/// is one reference count, whatever it holds.
#[derive(Debug, Clone)]
pub struct Batch {
    frames: Arc<[Bytes]>,
    bytes: usize,
}

impl Batch {
    /// The frames, in order. `None` when there are none.
    pub fn new(frames: Vec<Bytes>) -> Option<Batch> {
        if frames.is_empty() {
            return None;
        }
        let bytes = frames.iter().map(Bytes::len).sum();
        Some(Batch { frames: frames.into(), bytes })
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// What one queue push carries, and what the receiving side hands on whole: one frame, or
/// the frames of a batch from `from` on. Kept whole as far as the replay buffer, so a frame of
/// a batch costs no reference count of its own on its way to the socket.
#[derive(Debug, Clone)]
pub enum Chunk {
    One(Bytes),
    Many { batch: Batch, from: usize },
}

impl Chunk {
    /// The frames, in order.
    pub fn frames(&self) -> &[Bytes] {
        match self {
            Chunk::One(frame) => std::slice::from_ref(frame),
            Chunk::Many { batch, from } => batch.frames.get(*from..).unwrap_or_default(),
        }
    }

    /// The bytes of its frames.
    pub fn bytes(&self) -> usize {
        match self {
            Chunk::One(frame) => frame.len(),
            Chunk::Many { batch, from: 0 } => batch.bytes,
            Chunk::Many { .. } => self.frames().iter().map(Bytes::len).sum(),
        }
    }

    /// The same chunk without its first frame; `None` when that was the last.
    pub fn without_first(self) -> Option<Chunk> {
        match self {
            Chunk::One(_) => None,
            Chunk::Many { batch, from } => {
                (from + 1 < batch.len()).then_some(Chunk::Many { batch, from: from + 1 })
            }
        }
    }

    /// Drops the first `count` frames, fewer than it holds, returning their bytes.
    pub fn skip(&mut self, count: usize) -> usize {
        let bytes = self.frames().iter().take(count).map(Bytes::len).sum();
        if let Chunk::Many { from, .. } = self {
            *from += count;
        }
        bytes
    }
}

/// The sending side, held by the relay's state (and by every room the session is in).
#[derive(Clone)]
pub struct Outbound {
    sink: Sink,
}

#[derive(Clone)]
enum Sink {
    /// A queue read by the connection task serving the session.
    Queue { sender: mpsc::Sender<Chunk>, budget: Arc<Budget> },
    /// The session's log on a relay that shares rooms (`cluster::log`): every relay numbers
    /// and keeps every session's frames alike, whichever relay serves it.
    Log(Arc<std::sync::Mutex<crate::relay::cluster::SessionLog>>),
}

/// The frame could not be queued: the session has stopped reading (or is gone).
#[derive(Debug, PartialEq, Eq)]
pub struct QueueFull;

impl Outbound {
    /// Queues a frame without waiting.
    pub fn try_send(&self, frame: Bytes) -> Result<(), QueueFull> {
        self.push(Chunk::One(frame))
    }

    /// Queues a batch of frames without waiting: all of them, or none.
    pub fn try_send_batch(&self, batch: &Batch) -> Result<(), QueueFull> {
        self.push(Chunk::Many { batch: batch.clone(), from: 0 })
    }

    /// Frames for a session that a relay of a cluster logs (see [`Sink::Log`]).
    pub fn logged(log: Arc<std::sync::Mutex<crate::relay::cluster::SessionLog>>) -> Outbound {
        Outbound { sink: Sink::Log(log) }
    }

    fn push(&self, chunk: Chunk) -> Result<(), QueueFull> {
        match &self.sink {
            Sink::Queue { sender, budget } => {
                let (frames, bytes) = (chunk.frames().len(), chunk.bytes());
                if !budget.reserve(frames, bytes) {
                    return Err(QueueFull);
                }
                sender.try_send(chunk).map_err(|_| {
                    budget.release(frames, bytes);
                    QueueFull
                })
            }
            // A log never refuses: it forgets its oldest frames instead, and a connection
            // that cannot keep up is let go by the log, to resume from it.
            Sink::Log(log) => {
                log.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(chunk);
                Ok(())
            }
        }
    }
}

/// The receiving side, held by the session's connection task.
pub struct Inbound {
    receiver: mpsc::Receiver<Chunk>,
    budget: Arc<Budget>,
    /// What is left of a chunk handed out one frame at a time. It no longer counts against
    /// the budget: that was released when it was taken off the queue.
    current: Option<Chunk>,
}

impl Inbound {
    /// The next queued chunk; `None` once every sender is gone.
    pub async fn recv_chunk(&mut self) -> Option<Chunk> {
        if let Some(chunk) = self.current.take() {
            return Some(chunk);
        }
        let chunk = self.receiver.recv().await?;
        Some(self.released(chunk))
    }

    /// A queued chunk, if one is waiting.
    pub fn try_recv_chunk(&mut self) -> Option<Chunk> {
        if let Some(chunk) = self.current.take() {
            return Some(chunk);
        }
        let chunk = self.receiver.try_recv().ok()?;
        Some(self.released(chunk))
    }

    /// A queued frame, if one is waiting.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let chunk = self.try_recv_chunk()?;
        let first = chunk.frames().first().cloned();
        self.current = chunk.without_first();
        first
    }

    /// How many frames are queued.
    pub fn len(&self) -> usize {
        let current = self.current.as_ref().map_or(0, |chunk| chunk.frames().len());
        self.budget.frames.load(Ordering::Relaxed) + current
    }

    /// Whether no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn released(&self, chunk: Chunk) -> Chunk {
        self.budget.release(chunk.frames().len(), chunk.bytes());
        chunk
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        // Frames still queued when the connection ends count against nobody any more.
        self.receiver.close();
        while let Ok(chunk) = self.receiver.try_recv() {
            self.budget.release(chunk.frames().len(), chunk.bytes());
        }
    }
}

/// A new queue for one session.
pub fn queue(limits: QueueLimits, global: &Arc<GlobalQueue>) -> (Outbound, Inbound) {
    // Every push holds at least one frame, so the budget's frame count bounds the channel
    // before its capacity does.
    let (sender, receiver) = mpsc::channel(limits.frames_per_session.max(1));
    let budget = Arc::new(Budget {
        limits,
        global: Arc::clone(global),
        session: AtomicUsize::new(0),
        frames: AtomicUsize::new(0),
    });
    let outbound = Outbound { sink: Sink::Queue { sender, budget: Arc::clone(&budget) } };
    (outbound, Inbound { receiver, budget, current: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(bytes_per_session: usize, bytes_total: usize) -> QueueLimits {
        QueueLimits { frames_per_session: 100, bytes_per_session, bytes_total }
    }

    #[tokio::test]
    async fn a_session_is_bounded_in_bytes_and_released_as_it_reads() {
        let global = Arc::new(GlobalQueue::default());
        let (outbound, mut inbound) = queue(limits(1000, 10_000), &global);
        assert_eq!(outbound.try_send(Bytes::from(vec![0; 600])), Ok(()));
        assert_eq!(outbound.try_send(Bytes::from(vec![0; 600])), Err(QueueFull));
        assert_eq!(global.queued_bytes(), 600);
        assert_eq!(inbound.try_recv().map(|frame| frame.len()), Some(600));
        assert_eq!(global.queued_bytes(), 0);
        assert_eq!(outbound.try_send(Bytes::from(vec![0; 1000])), Ok(()));
    }

    #[tokio::test]
    async fn all_sessions_share_the_global_budget_and_a_closed_queue_gives_it_back() {
        let global = Arc::new(GlobalQueue::default());
        let (first, first_inbound) = queue(limits(1000, 1500), &global);
        let (second, _second_inbound) = queue(limits(1000, 1500), &global);
        assert_eq!(first.try_send(Bytes::from(vec![0; 1000])), Ok(()));
        assert_eq!(second.try_send(Bytes::from(vec![0; 600])), Err(QueueFull));
        assert_eq!(second.try_send(Bytes::from(vec![0; 500])), Ok(()));
        drop(first_inbound);
        assert_eq!(global.queued_bytes(), 500);
        assert_eq!(first.try_send(Bytes::from(vec![0; 1])), Err(QueueFull), "closed");
    }

    #[tokio::test]
    async fn a_batch_counts_every_frame_and_is_handed_out_one_frame_at_a_time() {
        let global = Arc::new(GlobalQueue::default());
        let limits =
            QueueLimits { frames_per_session: 5, bytes_per_session: 1000, bytes_total: 1000 };
        let (outbound, mut inbound) = queue(limits, &global);
        let frame = |byte: u8| Bytes::from(vec![byte; 10]);
        let batch = Batch::new(vec![frame(1), frame(2), frame(3)]).expect("three frames");
        assert_eq!(outbound.try_send_batch(&batch), Ok(()));
        assert_eq!((inbound.len(), global.queued_bytes()), (3, 30));
        // Five frames at most: a second batch of three does not fit, whole or in part.
        assert_eq!(outbound.try_send_batch(&batch), Err(QueueFull));
        assert_eq!(outbound.try_send(frame(4)), Ok(()));
        let mut heard = Vec::new();
        while let Some(frame) = inbound.try_recv() {
            heard.push(frame[0]);
        }
        assert_eq!(heard, [1, 2, 3, 4]);
        assert_eq!((inbound.len(), global.queued_bytes()), (0, 0));
        assert!(Batch::new(Vec::new()).is_none());
    }
}
