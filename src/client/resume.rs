//! The client's half of a session that outlives its connection (the relay's half is
//! `relay::replay`): the resume token, the count of frames received, and the frames sent
//! that the relay has not acknowledged, to send again after a resume.
//!
//! Both sides number every frame of the session except `Resume`, `Ack`, `Resumed`,
//! `ResumeRefused` and `Goodbye`, which belong to one connection. Pure: no IO, no clock.

use std::collections::VecDeque;

use crate::proto::{ChatPayload, ResumeToken};

/// Frames received between two acknowledgements, at most.
pub const ACK_EVERY: u64 = 64;

/// Frames kept for sending again; past it the oldest are forgotten (and reported if a
/// resume needed them).
const MAX_UNACKED: usize = 4096;

/// A frame sent and not yet acknowledged.
struct Sent {
    frame: Vec<u8>,
    /// The chat it carries, so that a message in doubt can be named to the user.
    chat: Option<ChatPayload>,
}

/// What a resume asks the client core to do.
pub struct Resend {
    pub frames: Vec<Vec<u8>>,
    /// Frames the relay never got that were forgotten here (more than `MAX_UNACKED` sent
    /// without an acknowledgement).
    pub lost: u64,
}

/// The session's numbering, as the client keeps it.
pub struct SessionNumbers {
    token: ResumeToken,
    relay_boot: u64,
    received: u64,
    last_ack: u64,
    /// The number of the first frame in `unacked`.
    first_unacked: u64,
    unacked: VecDeque<Sent>,
}

impl std::fmt::Debug for SessionNumbers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts only: the token is a secret, and the frames are the user's.
        f.debug_struct("SessionNumbers")
            .field("relay_boot", &self.relay_boot)
            .field("received", &self.received)
            .field("unacked", &self.unacked.len())
            .finish_non_exhaustive()
    }
}

impl SessionNumbers {
    /// A session just registered: the `Register` frame was sent and `Registered` received.
    pub fn registered(token: ResumeToken, relay_boot: u64) -> Self {
        SessionNumbers {
            token,
            relay_boot,
            received: 1,
            last_ack: 1,
            first_unacked: 2,
            unacked: VecDeque::new(),
        }
    }

    pub fn token(&self) -> &ResumeToken {
        &self.token
    }

    pub fn relay_boot(&self) -> u64 {
        self.relay_boot
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// Counts a frame from the relay; `true` when it is time to acknowledge.
    pub fn on_received(&mut self) -> bool {
        self.received += 1;
        self.received - self.last_ack >= ACK_EVERY
    }

    /// The count to acknowledge, now being sent.
    pub fn ack(&mut self) -> u64 {
        self.last_ack = self.received;
        self.received
    }

    /// Keeps a frame being sent until the relay acknowledges it; returns its number, which
    /// the relay's `Error` about it names.
    pub fn on_sent(&mut self, frame: Vec<u8>, chat: Option<ChatPayload>) -> u64 {
        self.unacked.push_back(Sent { frame, chat });
        if self.unacked.len() > MAX_UNACKED {
            self.unacked.pop_front();
            self.first_unacked += 1;
        }
        self.sent()
    }

    /// Frames sent so far (after registration, `Register` included).
    fn sent(&self) -> u64 {
        self.first_unacked + self.unacked.len() as u64 - 1
    }

    /// The relay handled the first `handled` frames.
    pub fn relay_acknowledged(&mut self, handled: u64) {
        let handled = handled.min(self.sent());
        while self.first_unacked <= handled && self.unacked.pop_front().is_some() {
            self.first_unacked += 1;
        }
    }

    /// The session was resumed; the relay had handled `handled` frames and gave the session
    /// its next `token` (the last one is void): what to send again.
    pub fn resumed(&mut self, handled: u64, token: ResumeToken) -> Resend {
        self.token = token;
        self.relay_acknowledged(handled);
        let lost = self.first_unacked.saturating_sub(handled.saturating_add(1));
        Resend { frames: self.unacked.iter().map(|sent| sent.frame.clone()).collect(), lost }
    }

    /// The chat among the frames the relay never acknowledged: when the session is lost
    /// rather than resumed, nobody can tell whether these reached the room.
    pub fn chat_in_doubt(&self) -> Vec<ChatPayload> {
        self.unacked.iter().filter_map(|sent| sent.chat.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers() -> SessionNumbers {
        SessionNumbers::registered(ResumeToken([7; 32]), 1)
    }

    #[test]
    fn a_resume_sends_again_exactly_what_the_relay_did_not_handle() {
        let mut numbers = numbers();
        for n in 2..=6u8 {
            assert_eq!(numbers.on_sent(vec![n], None), u64::from(n), "after Register, 1");
        }
        numbers.relay_acknowledged(3);
        let resend = numbers.resumed(4, ResumeToken([8; 32]));
        assert_eq!(resend.frames, vec![vec![5], vec![6]]);
        assert_eq!(resend.lost, 0);
        // Frame numbers go on after a resume.
        numbers.on_sent(vec![7], None);
        assert_eq!(numbers.resumed(6, ResumeToken([8; 32])).frames, vec![vec![7]]);
    }

    #[test]
    fn chat_in_doubt_is_what_was_not_acknowledged() {
        let mut numbers = numbers();
        numbers.on_sent(vec![2], Some(ChatPayload::Text("one".into())));
        numbers.on_sent(vec![3], None);
        numbers.on_sent(vec![4], Some(ChatPayload::Text("two".into())));
        numbers.relay_acknowledged(2);
        assert_eq!(numbers.chat_in_doubt(), vec![ChatPayload::Text("two".into())]);
    }

    #[test]
    fn acknowledgements_come_every_so_many_frames() {
        let mut numbers = numbers();
        let due: Vec<bool> = (0..ACK_EVERY).map(|_| numbers.on_received()).collect();
        assert_eq!(due.iter().filter(|due| **due).count(), 1);
        assert!(due[ACK_EVERY as usize - 1]);
        assert_eq!(numbers.ack(), ACK_EVERY + 1);
        assert!(!numbers.on_received());
    }

    #[test]
    fn forgotten_frames_a_resume_needed_are_counted() {
        let mut numbers = numbers();
        for n in 0..(MAX_UNACKED + 3) {
            numbers.on_sent(vec![n as u8], None);
        }
        let resend = numbers.resumed(1, ResumeToken([8; 32]));
        assert_eq!(resend.lost, 3);
        assert_eq!(resend.frames.len(), MAX_UNACKED);
    }
}
