//! Lines typed while the room could not take them (offline, taking the room back,
//! rejoining it), kept in order and sent once it can, or listed as not sent.

use std::collections::VecDeque;

use super::{Core, MAX_QUEUED_LINES};
use crate::client::{ClientError, ConnectionEvent, Event, NotSentReason, SharedError};
use crate::proto::ChatPayload;

/// The lines waiting, oldest first, for the current room.
#[derive(Debug, Default)]
pub(super) struct LineQueue {
    lines: VecDeque<ChatPayload>,
}

impl LineQueue {
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

impl Core {
    /// Keeps a line to send once the room can take it.
    pub(super) fn queue_line(&mut self, payload: ChatPayload) -> Result<(), ClientError> {
        if self.rooms.current().is_none() {
            return Err(ClientError::NotInRoom);
        }
        if self.queue.len() >= MAX_QUEUED_LINES {
            return Err(ClientError::QueueFull { max: MAX_QUEUED_LINES });
        }
        self.queue.lines.push_back(payload);
        let waiting = self.queue.len();
        self.emit(Event::Connection(ConnectionEvent::Queued { waiting }));
        Ok(())
    }

    /// Sends the lines typed while the room could not take them, once it can.
    pub(super) fn send_queued_lines(&mut self) {
        if !self.rooms.current().is_some_and(|entry| entry.room.is_member()) {
            return;
        }
        let mut sent = 0;
        while let Some(payload) = self.queue.lines.pop_front() {
            let Some(entry) = self.rooms.current_mut() else {
                self.queue.lines.push_front(payload);
                break;
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
        if sent > 0 {
            self.emit(Event::Connection(ConnectionEvent::QueueSent { count: sent }));
        }
    }

    /// Lines that will never be sent: the room is gone, or the session.
    pub(super) fn drop_queued_lines(&mut self, reason: NotSentReason) {
        if self.queue.is_empty() {
            return;
        }
        let texts = self.queue.lines.drain(..).map(|payload| payload_text(&payload)).collect();
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
