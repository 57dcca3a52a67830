//! Gaps in what each member sent, as this client saw it.
//!
//! Every chat message carries its sender's running number for the room (inside the MLS
//! encryption, so only members see it and nobody can alter it). A number that skips ahead
//! means messages from that sender never reached us — sent while we were out of the room,
//! or dropped by the relay — and the user is told who, how many, and since when. A number
//! that goes back means the sender started afresh (a new `chatter`), and is not a gap. The
//! first message we see from someone sets the baseline: what came before we joined is not
//! ours to miss. Someone who joins after us numbers from 1 (each new leaf starts afresh), so
//! its baseline is set when we see it join, and even its first messages cannot go missing
//! unnoticed. Pure: the caller passes the time.

use std::collections::HashMap;
use std::time::SystemTime;

/// Messages from one sender that never arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub from: String,
    pub missed: u64,
    /// When the last message before the gap arrived.
    pub since: SystemTime,
}

/// The last number seen from each sender, and when.
#[derive(Debug, Default)]
pub struct SenderGaps {
    last: HashMap<String, (u64, SystemTime)>,
}

impl SenderGaps {
    /// `nick` joined the room while we were in it (a new leaf, through a Welcome): its
    /// messages are numbered from 1, so the first one we see tells how many we missed.
    pub fn joined(&mut self, nick: &str, now: SystemTime) {
        self.last.insert(nick.to_owned(), (0, now));
    }

    /// Records message `number` from `from`, arriving `now`; a gap before it, if any.
    pub fn observe(&mut self, from: &str, number: u64, now: SystemTime) -> Option<Gap> {
        let previous = self.last.insert(from.to_owned(), (number, now));
        let (last, since) = previous?;
        (number > last + 1).then(|| Gap { from: from.to_owned(), missed: number - last - 1, since })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_skip_is_a_gap_a_restart_is_not() {
        let mut gaps = SenderGaps::default();
        let t0 = SystemTime::UNIX_EPOCH;
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(gaps.observe("bob", 7, t0), None, "the first sets the baseline");
        assert_eq!(gaps.observe("bob", 8, t0), None);
        assert_eq!(
            gaps.observe("bob", 12, t1),
            Some(Gap { from: "bob".into(), missed: 3, since: t0 })
        );
        assert_eq!(gaps.observe("bob", 1, t1), None, "bob restarted");
        assert_eq!(gaps.observe("carol", 5, t1), None, "senders are apart");
    }

    #[test]
    fn the_first_messages_of_someone_who_joined_while_we_were_there_can_be_missed() {
        let mut gaps = SenderGaps::default();
        let t0 = SystemTime::UNIX_EPOCH;
        gaps.joined("dave", t0);
        assert_eq!(
            gaps.observe("dave", 3, t0 + Duration::from_secs(5)),
            Some(Gap { from: "dave".into(), missed: 2, since: t0 })
        );
    }
}
