//! Chat relayed in batches: the application messages one sender puts in one room, back to
//! back in one burst (the frames its connection task finds already read), go to each member
//! as one [`Batch`] — one queue push and at most one wake-up per recipient for the burst,
//! where a push per frame and recipient was most of the relay's time per delivery.
//!
//! Order is kept: a batch holds one sender's frames for one room and one epoch, in order, and
//! is queued before anything else the state sends (every other send, and every frame that is
//! not chat, flushes it first), and before the state's lock is let go (`StateGuard`). So
//! every member still sees a room's frames in the one order the lock gives.

use bytes::Bytes;

use super::{SessionId, State};
use crate::relay::outbound::Batch;

/// At most this many frames go in one batch: about what the connection task writes at once.
const MAX_FRAMES_PER_BATCH: usize = 64;

/// Chat relayed but not queued yet.
pub(super) struct PendingChat {
    room: String,
    sender: SessionId,
    epoch: u64,
    frames: Vec<Bytes>,
}

impl State {
    /// Relays one application message of `sender`'s to `room_name`'s other members who can
    /// read `epoch`: queued with the rest of the sender's burst, or now if it starts a new one.
    pub(super) fn relay_chat(
        &mut self,
        room_name: &str,
        sender: SessionId,
        epoch: u64,
        frame: Bytes,
    ) {
        let continues = self.pending_chat.as_ref().is_some_and(|pending| {
            pending.sender == sender
                && pending.epoch == epoch
                && pending.room == room_name
                && pending.frames.len() < MAX_FRAMES_PER_BATCH
        });
        if !continues {
            self.flush_chat();
        }
        let pending = self.pending_chat.get_or_insert_with(|| PendingChat {
            room: room_name.to_owned(),
            sender,
            epoch,
            frames: Vec::new(),
        });
        pending.frames.push(frame);
        if !self.batching_chat {
            self.flush_chat();
        }
    }

    /// Queues the chat relayed so far for its recipients. A recipient whose queue is full has
    /// stopped reading and is told to go, as for any frame.
    pub fn flush_chat(&mut self) {
        let Some(pending) = self.pending_chat.take() else { return };
        let Some(room) = self.rooms.get(&pending.room) else { return };
        let Some(batch) = Batch::new(pending.frames) else { return };
        let mut stalled = Vec::new();
        for member in &room.members {
            if member.session != pending.sender
                && member.join_epoch <= pending.epoch
                && member.outbound.try_send_batch(&batch).is_err()
            {
                stalled.push(member.session);
            }
        }
        for session in stalled {
            self.sessions.missed_a_frame(session);
        }
    }

    /// Lets chat wait in a batch until [`State::flush_chat`] (the connection task's burst:
    /// `StateGuard` flushes when the lock is let go), or queues each message at once.
    pub fn batch_chat(&mut self, batching: bool) {
        self.batching_chat = batching;
        if !batching {
            self.flush_chat();
        }
    }
}
