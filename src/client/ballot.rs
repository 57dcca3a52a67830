//! Votes members can check: the ballot of one commit, our pledge, and the count of signed
//! votes that a confirmation or an abort carries.
//!
//! The relay tallies the votes it is told in the clear, but no member takes its word: a
//! member merges a commit only when the confirmation carries signed yes votes (MLS messages
//! of the group, [`VoteStatement`]) from more than half of the members the commit keeps, the
//! committer's included. An honest member says yes to at most one commit per epoch (its
//! [`Pledge`]), so two different commits for one epoch can never both hold a majority of
//! honest votes: a relay cannot make two halves of a room merge different commits (a fork),
//! nor make anyone merge a commit the room did not accept. The pledge is released only by
//! proof that the commit it named can never win: signed no votes from half of its
//! electorate or more.
//!
//! Pure: no clock, no IO.

pub use crate::proto::commit_hash;
use crate::proto::{Farewell, VoteStatement};

/// One commit up for a vote: the epoch it ends, the hash of its bytes, and the leaves whose
/// votes decide it (the members it keeps, the committer included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ballot {
    pub epoch: u64,
    pub commit: [u8; 32],
    pub electorate: Vec<u32>,
}

impl Ballot {
    pub fn new(epoch: u64, commit: &[u8], electorate: Vec<u32>) -> Self {
        Ballot { epoch, commit: commit_hash(commit), electorate }
    }

    /// What we sign to say yes or no to this commit.
    pub fn statement(&self, accept: bool) -> VoteStatement {
        VoteStatement { epoch: self.epoch, commit: self.commit, accept }
    }

    /// Whether `statement` is about this commit.
    pub fn is_about(&self, statement: &VoteStatement) -> bool {
        statement.epoch == self.epoch && statement.commit == self.commit
    }
}

impl Farewell {
    /// What this farewell says about `ballot`: yes if it is the commit its sender had
    /// accepted, no for any other commit of the epoch it left in, nothing otherwise.
    pub fn on(&self, ballot: &Ballot) -> Option<VoteStatement> {
        (self.epoch == ballot.epoch).then(|| ballot.statement(self.pledged == Some(ballot.commit)))
    }
}

/// The one commit we said yes to in an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pledge {
    pub epoch: u64,
    pub commit: [u8; 32],
}

impl Pledge {
    pub fn of(ballot: &Ballot) -> Self {
        Pledge { epoch: ballot.epoch, commit: ballot.commit }
    }

    /// Whether this pledge forbids a yes to `ballot`: we said yes to another commit of the
    /// same epoch, which may still win.
    pub fn forbids(&self, ballot: &Ballot) -> bool {
        self.epoch == ballot.epoch && self.commit != ballot.commit
    }
}

/// The signed votes on one ballot, counted once per leaf of its electorate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Count {
    pub yes: Vec<u32>,
    pub no: Vec<u32>,
    /// The size of the electorate.
    pub of: usize,
    /// Votes that were not about this commit, or from leaves outside the electorate, or a
    /// second vote of a leaf.
    pub ignored: usize,
}

impl Count {
    /// Counts `votes` (each the sender's leaf and what it signed) on `ballot`.
    pub fn of(ballot: &Ballot, votes: impl IntoIterator<Item = (u32, VoteStatement)>) -> Self {
        let mut count = Count { of: ballot.electorate.len(), ..Count::default() };
        for (leaf, statement) in votes {
            let counted = count.yes.contains(&leaf) || count.no.contains(&leaf);
            if counted || !ballot.electorate.contains(&leaf) || !ballot.is_about(&statement) {
                count.ignored += 1;
            } else if statement.accept {
                count.yes.push(leaf);
            } else {
                count.no.push(leaf);
            }
        }
        count
    }

    /// More than half of the electorate signed yes: the commit may be merged.
    pub fn confirms(&self) -> bool {
        self.yes.len() * 2 > self.of
    }

    /// Half of the electorate or more signed no: the commit can never be confirmed.
    pub fn refutes(&self) -> bool {
        self.no.len() * 2 >= self.of && self.of > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ballot(electorate: &[u32]) -> Ballot {
        Ballot::new(7, b"the commit", electorate.to_vec())
    }

    #[test]
    fn a_majority_of_the_electorate_confirms_and_a_half_refutes() {
        let ballot = ballot(&[0, 1, 2]);
        let yes = |leaf| (leaf, ballot.statement(true));
        let no = |leaf| (leaf, ballot.statement(false));
        assert!(!Count::of(&ballot, [yes(0)]).confirms());
        assert!(Count::of(&ballot, [yes(0), yes(2)]).confirms());
        assert!(!Count::of(&ballot, [yes(0), no(1)]).refutes());
        assert!(Count::of(&ballot, [no(1), no(2)]).refutes());
        // Two members: a tie refutes (neither side can ever reach a majority).
        let pair = super::tests::ballot(&[0, 1]);
        let count = Count::of(&pair, [(0, pair.statement(true)), (1, pair.statement(false))]);
        assert!(!count.confirms() && count.refutes());
    }

    #[test]
    fn votes_about_other_commits_strangers_and_second_votes_do_not_count() {
        let ballot = ballot(&[0, 1, 2]);
        let other = Ballot::new(7, b"another commit", vec![0, 1, 2]);
        let earlier = Ballot::new(6, b"the commit", vec![0, 1, 2]);
        let count = Count::of(
            &ballot,
            [
                (0, ballot.statement(true)),
                (0, ballot.statement(true)),
                (1, other.statement(true)),
                (2, earlier.statement(true)),
                (9, ballot.statement(true)),
            ],
        );
        assert_eq!(count.yes, vec![0]);
        assert_eq!(count.ignored, 4);
        assert!(!count.confirms());
    }

    #[test]
    fn a_farewell_is_a_yes_only_to_the_commit_its_sender_accepted() {
        let ballot = ballot(&[0, 1]);
        let other = Ballot::new(7, b"another commit", vec![0, 1]);
        let accepted = Farewell { epoch: 7, pledged: Some(ballot.commit) };
        assert_eq!(accepted.on(&ballot), Some(ballot.statement(true)));
        assert_eq!(accepted.on(&other), Some(other.statement(false)));
        let none = Farewell { epoch: 7, pledged: None };
        assert_eq!(none.on(&ballot), Some(ballot.statement(false)));
        assert_eq!(Farewell { epoch: 6, pledged: None }.on(&ballot), None);
        // A leaver that accepted nothing and the member left behind refute a commit of two.
        let count =
            Count::of(&ballot, [(0, ballot.statement(true)), (1, none.on(&ballot).unwrap())]);
        assert!(count.refutes());
    }

    #[test]
    fn a_pledge_forbids_only_another_commit_of_its_epoch() {
        let first = ballot(&[0, 1]);
        let pledge = Pledge::of(&first);
        assert!(!pledge.forbids(&first));
        assert!(pledge.forbids(&Ballot::new(7, b"another commit", vec![0, 1])));
        assert!(!pledge.forbids(&Ballot::new(8, b"another commit", vec![0, 1])));
    }
}
