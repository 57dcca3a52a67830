//! The queue of frames waiting to be written to one client, bounded in frames and in bytes.
//!
//! A member that stops reading must not pin the relay's memory: a count of frames alone does
//! not bound it (1024 queued Welcomes of 2 MiB are 2 GiB). So every queue also has a byte
//! budget of its own, and all queues together share a global one. A frame that would exceed
//! either is not queued, and its session is told to go as a slow reader (see `state`), exactly
//! as when the frame count runs out.

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
}

impl Budget {
    /// Reserves room for `len` bytes, or says there is none.
    fn reserve(&self, len: usize) -> bool {
        let session = self.session.fetch_add(len, Ordering::Relaxed) + len;
        let global = self.global.queued.fetch_add(len, Ordering::Relaxed) + len;
        if session > self.limits.bytes_per_session || global > self.limits.bytes_total {
            self.release(len);
            return false;
        }
        true
    }

    fn release(&self, len: usize) {
        self.session.fetch_sub(len, Ordering::Relaxed);
        self.global.queued.fetch_sub(len, Ordering::Relaxed);
    }
}

/// The sending side, held by the relay's state (and by every room the session is in).
#[derive(Clone)]
pub struct Outbound {
    sender: mpsc::Sender<Bytes>,
    budget: Arc<Budget>,
}

/// The frame could not be queued: the session has stopped reading (or is gone).
#[derive(Debug, PartialEq, Eq)]
pub struct QueueFull;

impl Outbound {
    /// Queues a frame without waiting.
    pub fn try_send(&self, frame: Bytes) -> Result<(), QueueFull> {
        let len = frame.len();
        if !self.budget.reserve(len) {
            return Err(QueueFull);
        }
        self.sender.try_send(frame).map_err(|_| {
            self.budget.release(len);
            QueueFull
        })
    }
}

/// The receiving side, held by the session's connection task.
pub struct Inbound {
    receiver: mpsc::Receiver<Bytes>,
    budget: Arc<Budget>,
}

impl Inbound {
    /// The next queued frame; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let frame = self.receiver.recv().await?;
        self.budget.release(frame.len());
        Some(frame)
    }

    /// How many frames are queued.
    pub fn len(&self) -> usize {
        self.receiver.len()
    }

    /// Whether no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }

    /// A queued frame, if one is waiting.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let frame = self.receiver.try_recv().ok()?;
        self.budget.release(frame.len());
        Some(frame)
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        // Frames still queued when the connection ends count against nobody any more.
        self.receiver.close();
        while let Ok(frame) = self.receiver.try_recv() {
            self.budget.release(frame.len());
        }
    }
}

/// A new queue for one session.
pub fn queue(limits: QueueLimits, global: &Arc<GlobalQueue>) -> (Outbound, Inbound) {
    let (sender, receiver) = mpsc::channel(limits.frames_per_session.max(1));
    let budget =
        Arc::new(Budget { limits, global: Arc::clone(global), session: AtomicUsize::new(0) });
    (Outbound { sender, budget: Arc::clone(&budget) }, Inbound { receiver, budget })
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
        assert_eq!(inbound.recv().await.map(|frame| frame.len()), Some(600));
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
}
