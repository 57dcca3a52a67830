//! The members' votes on one commit, and the rule that settles it.
//!
//! The relay cannot read a commit, so it cannot tell a forged or forbidden commit from an
//! honest member that lies about one; and members do not take the relay's word either: each
//! vote comes with the voter's signature inside the group (an MLS message the relay carries
//! but cannot read or forge), and members merge only with the signed yes votes of more than
//! half of the commit's electorate (`client::ballot`). The relay's rule matches theirs, on
//! the electorate it knows (the room's members when the commit arrived, away ones included,
//! the committer too):
//!
//! - more than half accepted: the commit is applied, with their signed votes; those who
//!   refused leave the room (they may join again), so one member cannot veto the room;
//! - more than half refused: the commit is aborted, with their signed votes, and the
//!   committer leaves the room: one leader cannot push a commit the room refuses;
//! - neither (a tie, or too many away or silent): the commit is aborted and nobody leaves.
//!   In a two-member room one member who refuses everything can thus only deny joins.
//!
//! A majority either way decides at once: the room does not wait for its slowest members
//! (the caller takes out a late voter that refuses what the majority accepted). Members that
//! do not vote in time are taken out by the caller (and so stop being awaited); their place
//! in the electorate stays, as it does in the members' count. Pure: no clocks, no IO.

use super::state::SessionId;
use crate::proto::SignedVote;

/// How a commit was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// More than half accepted; `objectors` refused it and leave the room.
    Confirmed { votes: Vec<SignedVote>, objectors: Vec<SessionId> },
    /// More than half refused: the committer leaves the room.
    Refused { votes: Vec<SignedVote> },
    /// No majority either way: nobody leaves. `votes` are the signed no votes.
    Undecided { votes: Vec<SignedVote> },
}

/// The votes on one commit.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// How many members decide it, away ones included.
    electorate: usize,
    waiting: Vec<SessionId>,
    accepted: Vec<(SessionId, SignedVote)>,
    refused: Vec<(SessionId, SignedVote)>,
}

impl Tally {
    /// A vote of `electorate` members, of whom `voters` (the committer included) are
    /// connected and asked.
    pub fn new(electorate: usize, voters: Vec<SessionId>) -> Self {
        Tally { electorate, waiting: voters, ..Tally::default() }
    }

    /// Whether the connected voters could form a majority at all: if not, the relay does not
    /// start the vote. `bound` of them cannot say yes (they keep a yes to another commit of the epoch).
    pub fn can_win_without(&self, bound: usize) -> bool {
        self.waiting.len().saturating_sub(bound) * 2 > self.electorate
    }

    /// Whether more than half of the electorate refused it, leaving out the no votes of those
    /// `excused` (their no did not judge the commit).
    pub fn refused_without(&self, excused: impl Fn(SessionId) -> bool) -> bool {
        let refusers = self.refused.iter().filter(|(session, _)| !excused(*session)).count();
        refusers * 2 > self.electorate
    }

    /// Records a voter's verdict; a session that is not waiting to vote changes nothing.
    pub fn record(&mut self, voter: SessionId, accept: bool, vote: SignedVote) {
        let Some(position) = self.waiting.iter().position(|waiting| *waiting == voter) else {
            return;
        };
        self.waiting.remove(position);
        if accept {
            self.accepted.push((voter, vote));
        } else {
            self.refused.push((voter, vote));
        }
    }

    /// Stops waiting for a voter that left the room or went silent. A vote it already cast
    /// stays: it was signed, and members count it.
    pub fn forget(&mut self, voter: SessionId) {
        self.waiting.retain(|session| *session != voter);
    }

    /// The voters still to be heard.
    pub fn waiting(&self) -> Vec<SessionId> {
        self.waiting.clone()
    }

    /// The verdict as soon as a majority either way is in (the room need not wait for its
    /// slowest members: a commit more than half accepted cannot lose), or once nobody is
    /// waiting; `None` before. Voters still waiting then are [`Tally::waiting`].
    pub fn verdict(&self) -> Option<Verdict> {
        let signed = |votes: &[(SessionId, SignedVote)]| {
            votes.iter().map(|(_, vote)| vote.clone()).collect::<Vec<_>>()
        };
        if self.accepted.len() * 2 > self.electorate {
            Some(Verdict::Confirmed {
                votes: signed(&self.accepted),
                objectors: self.refused.iter().map(|(session, _)| *session).collect(),
            })
        } else if self.refused.len() * 2 > self.electorate {
            Some(Verdict::Refused { votes: signed(&self.refused) })
        } else if self.waiting.is_empty() {
            Some(Verdict::Undecided { votes: signed(&self.refused) })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(ids: &[u64]) -> Vec<SessionId> {
        ids.iter().copied().map(SessionId).collect()
    }

    fn vote(id: u64) -> SignedVote {
        SignedVote { from: format!("m{id}"), vote: vec![id as u8] }
    }

    fn cast(tally: &mut Tally, id: u64, accept: bool) {
        tally.record(SessionId(id), accept, vote(id));
    }

    #[test]
    fn no_verdict_until_every_voter_is_heard() {
        let mut tally = Tally::new(2, sessions(&[1, 2]));
        assert_eq!(tally.verdict(), None);
        cast(&mut tally, 1, true);
        assert_eq!(tally.verdict(), None);
        cast(&mut tally, 2, true);
        let votes = vec![vote(1), vote(2)];
        assert_eq!(tally.verdict(), Some(Verdict::Confirmed { votes, objectors: vec![] }));
    }

    #[test]
    fn a_majority_decides_without_the_slowest_voters() {
        let mut tally = Tally::new(5, sessions(&[1, 2, 3, 4, 5]));
        cast(&mut tally, 1, true);
        cast(&mut tally, 2, true);
        assert_eq!(tally.verdict(), None);
        cast(&mut tally, 3, true);
        assert!(matches!(tally.verdict(), Some(Verdict::Confirmed { .. })));
        assert_eq!(tally.waiting(), sessions(&[4, 5]));
        let mut refused = Tally::new(3, sessions(&[1, 2, 3]));
        cast(&mut refused, 2, false);
        cast(&mut refused, 3, false);
        assert!(matches!(refused.verdict(), Some(Verdict::Refused { .. })));
    }

    #[test]
    fn a_lone_committer_confirms_its_own_commit() {
        let mut tally = Tally::new(1, sessions(&[1]));
        cast(&mut tally, 1, true);
        assert!(matches!(tally.verdict(), Some(Verdict::Confirmed { .. })));
    }

    #[test]
    fn one_objector_in_three_is_overruled_and_named() {
        // The committer (1) and one honest member (2) against an objector (3).
        let mut tally = Tally::new(3, sessions(&[1, 2, 3]));
        cast(&mut tally, 1, true);
        cast(&mut tally, 3, false);
        cast(&mut tally, 2, true);
        assert_eq!(
            tally.verdict(),
            Some(Verdict::Confirmed { votes: vec![vote(1), vote(2)], objectors: sessions(&[3]) })
        );
    }

    #[test]
    fn a_tie_aborts_and_takes_nobody_out_a_majority_refusing_takes_the_committer_out() {
        let mut pair = Tally::new(2, sessions(&[1, 2]));
        cast(&mut pair, 1, true);
        cast(&mut pair, 2, false);
        assert_eq!(pair.verdict(), Some(Verdict::Undecided { votes: vec![vote(2)] }));
        let mut three = Tally::new(3, sessions(&[1, 2, 3]));
        cast(&mut three, 1, true);
        cast(&mut three, 2, false);
        cast(&mut three, 3, false);
        assert_eq!(three.verdict(), Some(Verdict::Refused { votes: vec![vote(2), vote(3)] }));
    }

    #[test]
    fn voters_bound_elsewhere_cannot_carry_a_commit_and_their_noes_judge_nothing() {
        // Five members: three connected, two of them still pledged to another commit.
        let tally = Tally::new(5, sessions(&[1, 2, 3]));
        assert!(tally.can_win_without(0));
        assert!(!tally.can_win_without(1));
        let mut three = Tally::new(3, sessions(&[1, 2, 3]));
        cast(&mut three, 1, true);
        cast(&mut three, 2, false);
        cast(&mut three, 3, false);
        assert!(three.refused_without(|_| false));
        assert!(!three.refused_without(|session| session == SessionId(3)));
    }

    #[test]
    fn away_members_count_in_the_electorate() {
        // Four members, two away: the two connected cannot make a majority.
        assert!(!Tally::new(4, sessions(&[1, 2])).can_win_without(0));
        assert!(Tally::new(4, sessions(&[1, 2, 3])).can_win_without(0));
        // A silent voter forgotten: its place still counts, so two yes of four decide nothing.
        let mut tally = Tally::new(4, sessions(&[1, 2, 3]));
        cast(&mut tally, 1, true);
        cast(&mut tally, 2, true);
        tally.forget(SessionId(3));
        assert_eq!(tally.verdict(), Some(Verdict::Undecided { votes: vec![] }));
    }

    #[test]
    fn strangers_and_second_votes_change_nothing_and_cast_votes_outlive_their_voter() {
        let mut tally = Tally::new(3, sessions(&[1, 2]));
        cast(&mut tally, 9, false);
        cast(&mut tally, 1, true);
        cast(&mut tally, 1, false);
        assert_eq!(tally.waiting(), sessions(&[2]));
        cast(&mut tally, 2, true);
        tally.forget(SessionId(2));
        assert!(matches!(tally.verdict(), Some(Verdict::Confirmed { .. })));
    }
}
