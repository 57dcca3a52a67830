//! The members' votes on one commit, and the rule that settles it.
//!
//! The relay cannot read a commit, so it cannot tell a forged or forbidden commit from an
//! honest member that lies about one. The rule below bounds what either can do:
//!
//! - every voter accepted: the commit is applied;
//! - some refused, fewer than half of those who voted: the commit is applied and the
//!   objectors leave the room (they may join again) — one member cannot veto the room;
//! - half or more refused: the commit is aborted and the committer leaves the room — one
//!   leader cannot push a commit the room refuses, and nobody merges it.
//!
//! Members that do not vote in time are dropped from the tally by the caller (and from the
//! room); members that leave are forgotten. Pure: no clocks, no IO.

use super::state::SessionId;

/// How a commit was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Confirmed,
    /// Confirmed, but these voters refused it.
    ConfirmedOverObjections(Vec<SessionId>),
    /// Refused by half or more of the voters.
    Refused,
}

/// The votes on one commit.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    waiting: Vec<SessionId>,
    accepted: Vec<SessionId>,
    refused: Vec<SessionId>,
}

impl Tally {
    /// A vote among `voters`: every member but the committer.
    pub fn new(voters: Vec<SessionId>) -> Self {
        Tally { waiting: voters, ..Tally::default() }
    }

    /// Records a voter's verdict; a session that is not waiting to vote changes nothing.
    pub fn record(&mut self, voter: SessionId, accept: bool) {
        let Some(position) = self.waiting.iter().position(|waiting| *waiting == voter) else {
            return;
        };
        self.waiting.remove(position);
        if accept { self.accepted.push(voter) } else { self.refused.push(voter) }
    }

    /// Drops a voter that left the room, whether or not it voted.
    pub fn forget(&mut self, voter: SessionId) {
        self.waiting.retain(|session| *session != voter);
        self.accepted.retain(|session| *session != voter);
        self.refused.retain(|session| *session != voter);
    }

    /// The voters still to be heard.
    pub fn waiting(&self) -> Vec<SessionId> {
        self.waiting.clone()
    }

    /// The verdict once nobody is waiting; `None` before.
    pub fn verdict(&self) -> Option<Verdict> {
        if !self.waiting.is_empty() {
            return None;
        }
        let voted = self.accepted.len() + self.refused.len();
        Some(if self.refused.is_empty() {
            Verdict::Confirmed
        } else if self.refused.len() * 2 >= voted {
            Verdict::Refused
        } else {
            Verdict::ConfirmedOverObjections(self.refused.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(ids: &[u64]) -> Vec<SessionId> {
        ids.iter().copied().map(SessionId).collect()
    }

    #[test]
    fn no_verdict_until_every_voter_is_heard() {
        let mut tally = Tally::new(sessions(&[1, 2]));
        assert_eq!(tally.verdict(), None);
        tally.record(SessionId(1), true);
        assert_eq!(tally.verdict(), None);
        tally.record(SessionId(2), true);
        assert_eq!(tally.verdict(), Some(Verdict::Confirmed));
    }

    #[test]
    fn a_lone_committer_needs_no_votes() {
        assert_eq!(Tally::new(Vec::new()).verdict(), Some(Verdict::Confirmed));
    }

    #[test]
    fn a_minority_of_objectors_is_overruled_and_named() {
        let mut tally = Tally::new(sessions(&[1, 2, 3]));
        tally.record(SessionId(1), true);
        tally.record(SessionId(2), false);
        tally.record(SessionId(3), true);
        assert_eq!(tally.verdict(), Some(Verdict::ConfirmedOverObjections(sessions(&[2]))));
    }

    #[test]
    fn half_or_more_refusing_aborts() {
        let mut tally = Tally::new(sessions(&[1, 2]));
        tally.record(SessionId(1), true);
        tally.record(SessionId(2), false);
        assert_eq!(tally.verdict(), Some(Verdict::Refused));
        let mut alone = Tally::new(sessions(&[1]));
        alone.record(SessionId(1), false);
        assert_eq!(alone.verdict(), Some(Verdict::Refused));
    }

    #[test]
    fn strangers_and_second_votes_change_nothing_and_leavers_are_forgotten() {
        let mut tally = Tally::new(sessions(&[1, 2]));
        tally.record(SessionId(9), false);
        tally.record(SessionId(1), true);
        tally.record(SessionId(1), false);
        assert_eq!(tally.waiting(), sessions(&[2]));
        tally.forget(SessionId(2));
        assert_eq!(tally.verdict(), Some(Verdict::Confirmed));
    }
}
