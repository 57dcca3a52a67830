//! What a session needs to survive its connection: the frames written to the client that it
//! has not acknowledged yet, and how many of the client's frames the relay has handled.
//!
//! A frame written to a socket is not a frame received: when a link dies, whatever sat in
//! the kernel's buffers or on the wire is gone, and neither side knows exactly what. So both
//! sides number the session's frames (every frame but `Resume`, `Ack`, `Resumed`,
//! `ResumeRefused` and `Goodbye`, which belong to one connection), acknowledge what they got
//! (`Ack`), and on `Resume` exchange their counts: each side then sends again exactly the
//! frames the other is missing, in order, so nothing is lost or repeated.
//!
//! The buffer is bounded: a client that never acknowledges (a load generator, or a client
//! that does not care to resume) costs at most [`ReplayLimits`], and the oldest frames are
//! forgotten first; a resume that needs a forgotten frame is refused. Pure: no IO, no clock.

use std::collections::VecDeque;

use bytes::Bytes;

use super::outbound::Chunk;

/// How much a session keeps for a resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayLimits {
    pub frames: usize,
    pub bytes: usize,
}

impl Default for ReplayLimits {
    fn default() -> Self {
        // A client acknowledges every 64 frames and every 5 s, so a few hundred frames is
        // what a live link holds; the rest is headroom for a burst.
        ReplayLimits { frames: 2048, bytes: 4 * 1024 * 1024 }
    }
}

/// A resume asked for frames this buffer no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten;

/// The frames sent to one client and not yet acknowledged, and the count of the client's
/// frames the relay handled.
#[derive(Debug)]
pub struct ReplayBuffer {
    limits: ReplayLimits,
    /// The number of the first frame in `unacked` (frames are numbered from 1).
    first: u64,
    /// Kept as written, in chunks: a frame of a batch shared by a room costs no reference
    /// count of its own here.
    unacked: VecDeque<Chunk>,
    /// Frames and bytes in `unacked`.
    frames: usize,
    bytes: usize,
    /// Frames of the client's the relay has handled.
    handled: u64,
    /// What the last `Ack` to the client said, so a flood of `Ack`s is not answered.
    acknowledged: u64,
}

impl ReplayBuffer {
    pub fn new(limits: ReplayLimits) -> Self {
        ReplayBuffer {
            limits,
            first: 1,
            unacked: VecDeque::new(),
            frames: 0,
            bytes: 0,
            handled: 0,
            acknowledged: 0,
        }
    }

    /// The number of frames sent so far.
    pub fn sent(&self) -> u64 {
        self.first + self.frames as u64 - 1
    }

    /// Frames of the client's handled so far.
    pub fn handled(&self) -> u64 {
        self.handled
    }

    /// Counts one frame from the client.
    pub fn handled_one(&mut self) {
        self.handled += 1;
    }

    /// Keeps a frame as it is written, forgetting the oldest past the limits.
    pub fn sent_one(&mut self, frame: Bytes) {
        self.sent_chunk(Chunk::One(frame));
    }

    /// Keeps a chunk of frames as they are written, forgetting the oldest past the limits.
    pub fn sent_chunk(&mut self, chunk: Chunk) {
        self.frames += chunk.frames().len();
        self.bytes += chunk.bytes();
        self.unacked.push_back(chunk);
        if self.frames > self.limits.frames {
            self.forget(self.frames - self.limits.frames);
        }
        while self.bytes > self.limits.bytes {
            self.forget(1);
        }
    }

    /// The client has received the first `received` frames. A claim past what was sent is
    /// capped: it acknowledges nothing that does not exist.
    pub fn acknowledge(&mut self, received: u64) {
        let received = received.min(self.sent());
        if received >= self.first {
            self.forget((received - self.first + 1) as usize);
        }
    }

    /// What to answer an `Ack` with, if the count moved since the last answer.
    pub fn ack_to_send(&mut self) -> Option<u64> {
        (self.handled > self.acknowledged).then(|| {
            self.acknowledged = self.handled;
            self.handled
        })
    }

    /// The frames a client that received the first `received` is missing, in order.
    pub fn missing(&mut self, received: u64) -> Result<Vec<Bytes>, Forgotten> {
        if received > self.sent() || received + 1 < self.first {
            return Err(Forgotten);
        }
        self.acknowledge(received);
        Ok(self.unacked.iter().flat_map(|chunk| chunk.frames().iter().cloned()).collect())
    }

    /// Forgets the oldest `count` frames (all of them, if there are fewer): whole chunks
    /// while they fit, then the first frames of the next.
    fn forget(&mut self, mut count: usize) {
        while count > 0 {
            let Some(oldest) = self.unacked.front_mut() else { return };
            let frames = oldest.frames().len();
            let (forgotten, bytes) = if frames <= count {
                let bytes = oldest.bytes();
                self.unacked.pop_front();
                (frames, bytes)
            } else {
                (count, oldest.skip(count))
            };
            self.frames -= forgotten;
            self.bytes -= bytes;
            self.first += forgotten as u64;
            count -= forgotten;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> Bytes {
        Bytes::from(vec![n; 10])
    }

    #[test]
    fn a_resume_gets_exactly_the_unacknowledged_frames_in_order() {
        let mut buffer = ReplayBuffer::new(ReplayLimits::default());
        for n in 1..=5 {
            buffer.sent_one(frame(n));
        }
        buffer.acknowledge(2);
        assert_eq!(buffer.sent(), 5);
        assert_eq!(buffer.missing(3), Ok(vec![frame(4), frame(5)]));
        assert_eq!(buffer.missing(5), Ok(vec![]));
        // Numbering goes on after a resume.
        buffer.sent_one(frame(6));
        assert_eq!(buffer.missing(5), Ok(vec![frame(6)]));
    }

    #[test]
    fn a_resume_needing_a_forgotten_frame_or_one_never_sent_is_refused() {
        let mut buffer = ReplayBuffer::new(ReplayLimits { frames: 3, bytes: 1000 });
        for n in 1..=5 {
            buffer.sent_one(frame(n));
        }
        assert_eq!(buffer.missing(1), Err(Forgotten), "frame 2 was forgotten");
        assert_eq!(buffer.missing(6), Err(Forgotten), "frame 6 was never sent");
        assert_eq!(buffer.missing(2), Ok(vec![frame(3), frame(4), frame(5)]));
    }

    #[test]
    fn bytes_are_bounded_too() {
        let mut buffer = ReplayBuffer::new(ReplayLimits { frames: 100, bytes: 25 });
        for n in 1..=3 {
            buffer.sent_one(frame(n));
        }
        assert_eq!(buffer.missing(0), Err(Forgotten));
        assert_eq!(buffer.missing(1), Ok(vec![frame(2), frame(3)]));
    }

    #[test]
    fn acks_are_answered_only_when_the_count_moved() {
        let mut buffer = ReplayBuffer::new(ReplayLimits::default());
        assert_eq!(buffer.ack_to_send(), None);
        buffer.handled_one();
        buffer.handled_one();
        assert_eq!(buffer.ack_to_send(), Some(2));
        assert_eq!(buffer.ack_to_send(), None);
        // A claim to have received more than was sent acknowledges only what was.
        buffer.sent_one(frame(1));
        buffer.acknowledge(99);
        assert_eq!(buffer.sent(), 1);
        buffer.sent_one(frame(2));
        assert_eq!(buffer.missing(1), Ok(vec![frame(2)]));
    }

    #[test]
    fn frames_of_a_batch_are_numbered_acknowledged_and_forgotten_one_by_one() {
        use crate::relay::outbound::Batch;
        let mut buffer = ReplayBuffer::new(ReplayLimits { frames: 4, bytes: 1000 });
        buffer.sent_one(frame(1));
        let batch = Batch::new((2..=4).map(frame).collect()).expect("three frames");
        buffer.sent_chunk(Chunk::Many { batch, from: 0 });
        assert_eq!(buffer.sent(), 4);
        buffer.acknowledge(2);
        assert_eq!(buffer.missing(2), Ok(vec![frame(3), frame(4)]));
        // Past the limit of four, the oldest frames go, even from the middle of a batch.
        let batch = Batch::new((5..=7).map(frame).collect()).expect("three frames");
        buffer.sent_chunk(Chunk::Many { batch, from: 1 });
        assert_eq!(buffer.sent(), 6, "the chunk held frames 6 and 7 of its batch");
        assert_eq!(buffer.missing(2), Ok(vec![frame(3), frame(4), frame(6), frame(7)]));
        buffer.sent_one(frame(8));
        assert_eq!(buffer.missing(2), Err(Forgotten));
        assert_eq!(buffer.missing(3), Ok(vec![frame(4), frame(6), frame(7), frame(8)]));
    }
}
