//! Lines typed while their room could not take them (offline, taking the room back,
//! rejoining it), kept in order, each with the room it was typed for, and sent once that
//! room can take them, or listed as not sent.

use std::collections::VecDeque;

use super::{Core, MAX_QUEUED_LINES};
use crate::client::{ClientError, ConnectionEvent, Event, NotSentReason, SharedError};
use crate::proto::ChatPayload;

/// The lines waiting, oldest first, each with its room: a line typed for one room while
/// another was current goes to the room it was typed for, whatever is current when the link
/// comes back.
#[derive(Debug, Default)]
pub(super) struct LineQueue {
    lines: VecDeque<(String, ChatPayload)>,
}

impl LineQueue {
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Whether lines for `room` wait: a new one then waits behind them, to keep the order.
    pub fn holds(&self, room: &str) -> bool {
        self.lines.iter().any(|(queued, _)| queued == room)
    }
}

impl Core {
    /// Keeps a line for `room` to send once the room can take it.
    pub(super) fn queue_line(
        &mut self,
        room: String,
        payload: ChatPayload,
    ) -> Result<(), ClientError> {
        if self.queue.len() >= MAX_QUEUED_LINES {
            return Err(ClientError::QueueFull { max: MAX_QUEUED_LINES });
        }
        self.queue.lines.push_back((room, payload));
        let waiting = self.queue.len();
        self.emit(Event::Connection(ConnectionEvent::Queued { waiting }));
        Ok(())
    }

    /// Sends the lines whose room can take them now, in order; the others keep waiting.
    pub(super) fn send_queued_lines(&mut self) {
        let mut sent = 0;
        let mut waiting = VecDeque::new();
        while let Some((room, payload)) = self.queue.lines.pop_front() {
            let awaits_peer = self.dms.awaits_peer(&room);
            let Some(entry) = self
                .rooms
                .get_mut(&room)
                .filter(|entry| entry.room.is_member() && !entry.room.behind() && !awaits_peer)
            else {
                waiting.push_back((room, payload));
                continue;
            };
            match entry.room.encrypt(&payload) {
                Ok(frame) => {
                    self.send_chat(frame, payload);
                    sent += 1;
                }
                Err(error) => {
                    let error = SharedError::from(ClientError::CannotEncrypt(error));
                    self.emit(Event::Connection(ConnectionEvent::NotSent {
                        texts: vec![payload_text(&payload)],
                        reason: NotSentReason::CannotEncrypt(error),
                    }));
                }
            }
        }
        self.queue.lines = waiting;
        if sent > 0 {
            self.emit(Event::Connection(ConnectionEvent::QueueSent { count: sent }));
        }
    }

    /// Lines that will never be sent: the session is over.
    pub(super) fn drop_queued_lines(&mut self, reason: NotSentReason) {
        self.drop_queued_lines_where(|_| true, reason);
    }

    /// Lines for `room` that will never be sent: we left it, or it is lost to us.
    pub(super) fn drop_queued_lines_of(&mut self, room: &str, reason: NotSentReason) {
        self.drop_queued_lines_where(|queued| queued == room, reason);
    }

    /// Lines for rooms we are no longer in (a rejoin failed, taken out for good, a room
    /// re-created by others) will not be sent.
    pub(super) fn drop_lines_of_lost_rooms(&mut self) {
        let lost: Vec<String> = self
            .queue
            .lines
            .iter()
            .map(|(room, _)| room)
            .filter(|room| !self.rooms.contains(room))
            .cloned()
            .collect();
        let reason = NotSentReason::NoLongerInRoom;
        self.drop_queued_lines_where(|room| lost.iter().any(|lost| lost == room), reason);
    }

    fn drop_queued_lines_where(&mut self, drop: impl Fn(&str) -> bool, reason: NotSentReason) {
        let (dropped, kept): (VecDeque<_>, VecDeque<_>) =
            self.queue.lines.drain(..).partition(|(room, _)| drop(room));
        self.queue.lines = kept;
        if dropped.is_empty() {
            return;
        }
        let texts = dropped.iter().map(|(_, payload)| payload_text(payload)).collect();
        self.emit(Event::Connection(ConnectionEvent::NotSent { texts, reason }));
    }
}

/// The text of a chat payload, for telling the user which line was not sent.
pub(super) fn payload_text(payload: &ChatPayload) -> String {
    match payload {
        ChatPayload::Text(text) => text.clone(),
        ChatPayload::Action(text) => format!("/me {text}"),
    }
}
