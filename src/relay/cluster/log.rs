//! A session's log on a relay that shares rooms: every frame the shared state sent the
//! session, numbered as the client numbers them, whichever relay serves it.
//!
//! On a relay of its own, a session's frames are numbered by the connection task that
//! writes them (`relay::replay`). In a cluster, the client may come back to any relay, so
//! every relay must number every session's frames alike: each keeps a log per session, fed
//! as it applies the cluster's inputs, and the relay that serves the session forwards each
//! frame to its connection as it is logged. The log is a [`ReplayBuffer`]: bounded, trimmed by
//! the client's acknowledgements (which are inputs too), and the source of what a client
//! missed when it resumes here after its relay died.

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::relay::outbound::Chunk;
use crate::relay::replay::{ReplayBuffer, ReplayLimits};

/// What the replica hands the connection task of a session this relay serves.
#[derive(Debug)]
pub enum Delivery {
    /// Frames to write, in order.
    Frames(Chunk),
    /// The answer to the connection's `Resume`: the session it now serves, the `Resumed`
    /// frame, and the frames the client missed.
    Resumed { session: crate::relay::state::SessionId, resumed: Bytes, missing: Vec<Bytes> },
    /// The answer to a `Resume` of a session the cluster cannot give back.
    ResumeRefused(Bytes),
    /// The connection must end, telling the client why (`None`: close without a word, as
    /// when the relay itself was declared gone and its clients should resume elsewhere).
    Close(Option<crate::proto::DisconnectReason>),
}

/// One session's frames, as every relay of the cluster numbers them.
#[derive(Debug)]
pub struct SessionLog {
    replay: ReplayBuffer,
    /// The connection serving the session, when it is this relay's.
    forward: Option<mpsc::Sender<Delivery>>,
}

impl SessionLog {
    pub fn new(limits: ReplayLimits) -> Self {
        SessionLog { replay: ReplayBuffer::new(limits), forward: None }
    }

    /// Logs a chunk of frames and forwards it to the connection serving the session here.
    /// A connection too far behind to take it is let go (its channel closes): its client
    /// resumes and is sent what it missed from this log, so nothing is lost by it.
    pub fn push(&mut self, chunk: Chunk) {
        if let Some(forward) = &self.forward
            && forward.try_send(Delivery::Frames(chunk.clone())).is_err()
        {
            self.forward = None;
        }
        self.replay.sent_chunk(chunk);
    }

    /// The connection of this relay that serves the session from now on, if any.
    pub fn serve_through(&mut self, forward: Option<mpsc::Sender<Delivery>>) {
        self.forward = forward;
    }

    /// The connection of `link` no longer serves the session (another may already).
    pub fn stop_serving_through(&mut self, link: &mpsc::Sender<Delivery>) {
        if self.forward.as_ref().is_some_and(|forward| forward.same_channel(link)) {
            self.forward = None;
        }
    }

    pub fn replay(&mut self) -> &mut ReplayBuffer {
        &mut self.replay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_log_numbers_every_frame_and_lets_go_of_a_connection_that_fell_behind() {
        let mut log = SessionLog::new(ReplayLimits::default());
        let (forward, mut delivered) = mpsc::channel(2);
        log.serve_through(Some(forward));
        for n in 1..=3u8 {
            log.push(Chunk::One(Bytes::from(vec![n])));
        }
        // The third did not fit: the connection is let go, and the log still has it.
        assert!(matches!(delivered.recv().await, Some(Delivery::Frames(_))));
        assert!(matches!(delivered.recv().await, Some(Delivery::Frames(_))));
        assert!(delivered.recv().await.is_none(), "the channel closed");
        assert_eq!(log.replay().sent(), 3);
        assert_eq!(log.replay().missing(1).map(|frames| frames.len()), Ok(2));
    }
}
