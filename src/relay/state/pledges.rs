//! Pledges kept through a restart. A member back after the relay restarted names, in its
//! `Reclaim`, the commit of its epoch it said yes to (`pledged`), and keeps that yes for a
//! few of its ticks in case the commit's proof comes (`client::room::reclaim`). Until then
//! it refuses any other commit of that epoch, as an honest member must: its no is not the
//! verdict of an objector, nor a judgement of the committer.
//!
//! So while such pledges are kept, the relay does not start a vote that the members free to
//! say yes could not win (the leader hears `TooManyAway` and sends its commit again later,
//! bound to nothing), and such a no takes nobody out: neither the member (as an objector
//! to a commit the others confirmed; it merges that commit on its proof instead) nor the
//! committer (if only such noes made the majority against it). A claimant that lies about a
//! pledge gains only this excuse for one epoch and a few seconds: the honest members it
//! delays are not taken out either.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::SessionId;

/// How long a member keeps the yes it brought back: the client's hold (four ticks of its
/// five-second keepalive, from its reclaim), and one tick more for the ticks' phase.
pub const PLEDGE_KEPT_FOR: Duration = Duration::from_secs(25);

/// The most pledges a room keeps: one per member a room may hold is plenty.
const MAX_KEPT_PLEDGES: usize = crate::proto::MAX_ROOM_MEMBERS;

/// One returning member's yes to a commit of `epoch`, kept until `until`.
#[derive(Debug, Clone, Copy)]
struct KeptPledge {
    epoch: u64,
    commit: [u8; 32],
    until: Instant,
}

/// The pledges a room's returning members brought, by session.
#[derive(Debug, Default)]
pub(super) struct KeptPledges {
    by_session: HashMap<SessionId, KeptPledge>,
}

impl KeptPledges {
    /// `session` came back holding its yes to `commit`, of `epoch`.
    pub(super) fn keep(&mut self, session: SessionId, epoch: u64, commit: [u8; 32], now: Instant) {
        self.by_session.retain(|_, pledge| now < pledge.until);
        if self.by_session.len() >= MAX_KEPT_PLEDGES && !self.by_session.contains_key(&session) {
            return;
        }
        let until = now + PLEDGE_KEPT_FOR;
        self.by_session.insert(session, KeptPledge { epoch, commit, until });
    }

    /// Whether `session` still keeps a yes to another commit of `epoch` than `commit`: it
    /// cannot say yes to this one, and its no is excused.
    pub(super) fn elsewhere(
        &self,
        session: SessionId,
        epoch: u64,
        commit: &[u8; 32],
        now: Instant,
    ) -> bool {
        self.by_session.get(&session).is_some_and(|pledge| {
            pledge.epoch == epoch && pledge.commit != *commit && now < pledge.until
        })
    }

    /// The session left the room, or said yes to a commit since: nothing of it is kept.
    pub(super) fn forget(&mut self, session: SessionId) {
        self.by_session.remove(&session);
    }

    /// The room's epoch moved on: pledges of the epochs before it excuse nothing any more.
    pub(super) fn advance(&mut self, epoch: u64) {
        self.by_session.retain(|_, pledge| pledge.epoch >= epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pledge_excuses_only_noes_to_other_commits_of_its_epoch_while_kept() {
        let now = Instant::now();
        let mut pledges = KeptPledges::default();
        let (member, other) = (SessionId(1), SessionId(2));
        pledges.keep(member, 4, [1; 32], now);
        assert!(pledges.elsewhere(member, 4, &[2; 32], now));
        assert!(!pledges.elsewhere(member, 4, &[1; 32], now), "its own commit");
        assert!(!pledges.elsewhere(member, 5, &[2; 32], now), "another epoch");
        assert!(!pledges.elsewhere(other, 4, &[2; 32], now), "another member");
        assert!(!pledges.elsewhere(member, 4, &[2; 32], now + PLEDGE_KEPT_FOR), "let go");
        pledges.advance(5);
        assert!(!pledges.elsewhere(member, 4, &[2; 32], now));
        pledges.keep(member, 5, [1; 32], now);
        pledges.forget(member);
        assert!(!pledges.elsewhere(member, 5, &[2; 32], now));
    }
}
