//! Pledges: the one commit a member said yes to in an epoch, and when it is free to say
//! yes to another (proof that it lost, farewells that doom it, or too few left to win it).

use super::*;

impl Membership {
    /// The commit we said yes to and still wait on: ours, once put to the vote, or another
    /// member's we staged; with who made it and whether it is ours.
    pub(super) fn pledged(&self, me: &str) -> Option<(Ballot, String, bool)> {
        match (&self.own_commit, &self.voted) {
            (Some(own), _) if own.voted => Some((own.ballot.clone(), me.to_owned(), true)),
            (_, Some(staged)) => Some((staged.ballot.clone(), staged.committer.clone(), false)),
            _ => None,
        }
    }

    /// The ballot of the commit we said yes to and still wait on, ours or another's.
    pub(super) fn pledged_ballot(&self) -> Option<Ballot> {
        self.pledged("").map(|(ballot, ..)| ballot)
    }

    /// Whether a removal of `nick` is owed or already in our commit.
    pub(super) fn owes_removal_of(&self, nick: &str) -> bool {
        self.intents.iter().chain(self.own_commit.as_ref().map(|own| &own.intent)).any(
            |intent| matches!(intent, Intent::Remove { nicks } if nicks.iter().any(|n| n == nick)),
        )
    }

    /// Drops the commit we said yes to, proven unable to win: nothing of it is merged, and
    /// our pledge is free again.
    pub(super) fn drop_pledged(&mut self, ours: bool) {
        self.pledge = None;
        self.pledge_aborted = None;
        if ours {
            self.group.discard_pending_commit();
            self.own_commit = None;
        } else {
            self.group.discard_staged_commit();
            self.voted = None;
        }
    }
}

/// Another member's commit that we accepted and staged.
pub(super) struct StagedVote {
    pub(super) ballot: Ballot,
    pub(super) committer: String,
    /// The commit as the relay carried it, kept to hand to members behind after a restart.
    pub(super) merged: MergedCommit,
    /// Whether it carries an update path: merged, it renews its committer's leaf keys.
    pub(super) renews_committer: bool,
    /// Whether we signed yes to it; not for a commit we refused for our pledge and stage
    /// once the room proved it (`Room::merge_proven_rival`).
    pub(super) said_yes: bool,
    /// Whether its vote ended without a verdict (an abort that proves nothing, or the
    /// relay's restart): as leader, we put it to the vote again ourselves (`carry_pledged`).
    pub(super) carry: bool,
}

impl StagedVote {
    /// Whether a leader may put this commit to the vote in its committer's stead: it adds
    /// nobody (only its committer holds the joiner's Welcome).
    pub(super) fn carriable(&self) -> bool {
        self.merged.joiner.is_none()
    }
}

impl Room {
    /// As leader, pledged to another member's commit of this epoch whose vote ended
    /// without a verdict (the relay restarted, or aborted it without proof): we put that
    /// very commit to the vote again, since the relay takes commits from the leader alone.
    /// Making one of our own instead would have those who said yes to it refuse ours, and
    /// take us out for it. Its committer must still be listed (it holds the commit as its
    /// own and merges it); members check it as a carried commit (`commit_policy::check`).
    pub(super) fn carry_pledged(&mut self, out: &mut Outbox) {
        let room = self.name.clone();
        let relay_members = self.relay_members.clone();
        let Some(membership) = self.membership() else { return };
        let epoch = membership.group.epoch();
        let Some(staged) = membership.voted.as_mut() else { return };
        let due = staged.carry
            && staged.carriable()
            && staged.ballot.epoch == epoch
            && relay_members.contains(&staged.committer);
        if !due {
            return;
        }
        staged.carry = false;
        out.frames.push(ClientFrame::Commit {
            room,
            commit: staged.merged.commit.clone(),
            adds: None,
            electorate: u32::try_from(staged.ballot.electorate.len()).unwrap_or(u32::MAX),
        });
    }

    /// The commit we said yes to can no longer win, though nobody proved it: its vote was
    /// aborted, and the members of its electorate that the relay still lists are too few to
    /// make a majority of it (the others vanished without a farewell: crashed, forgotten
    /// after the grace period, or taken out for not voting). Waiting for proof would freeze
    /// the room for good, so the pledge goes. The risk is bounded: a relay that lied about
    /// who is gone could still confirm the commit to those it said were gone, who are then a
    /// minority on their own, told by every undecryptable message that the room may be split
    /// (ARCHITECTURE.md, "Trust model"); and a joiner never gets the Welcome of a commit its
    /// leader did not merge.
    ///
    /// The same holds when its committer is gone: the relay puts a commit to the vote only
    /// when its committer sends it, so once the relay no longer lists the committer the
    /// commit can never be voted on again, however many could say yes. (Just after a relay
    /// restart the committer may still be on its way back: the kept pledge's own ticks
    /// decide then.)
    pub(super) fn release_abandoned_pledge(&mut self, me: &str, out: &mut Outbox) {
        let room = self.name.clone();
        let relay_members = self.relay_members.clone();
        let Some(membership) = self.membership() else { return };
        let Some(refusers) = membership.pledge_aborted.clone() else { return };
        let Some((ballot, committer, ours)) = membership.pledged(me) else { return };
        if ours && membership.own_commit.as_ref().is_some_and(|own| own.awaiting_answer) {
            // Sent again and not answered yet: the relay may be putting it to the vote.
            return;
        }
        let committer_gone =
            !ours && membership.pledge_kept_ticks == 0 && !relay_members.contains(&committer);
        if committer_gone {
            membership.drop_pledged(ours);
            let notice = RoomNotice::CommitAbandoned { committer };
            return out.events.push(Event::Room { room, notice });
        }
        // Who could still say yes: members of its electorate the relay lists and that have
        // not signed no.
        let could_say_yes = ballot
            .electorate
            .iter()
            .filter(|leaf| !refusers.contains(leaf))
            .filter(|leaf| {
                let nicks = membership.group.nicks_at(&[**leaf]);
                nicks.iter().any(|nick| relay_members.contains(nick))
            })
            .count();
        if could_say_yes * 2 > ballot.electorate.len() {
            return;
        }
        membership.drop_pledged(ours);
        let notice = RoomNotice::CommitAbandoned { committer };
        out.events.push(Event::Room { room, notice });
    }

    /// The commit we said yes to may have lost for good with the farewells of those who
    /// left: if half of its electorate or more now stand against it, it can never be
    /// confirmed, and we are free to accept (or, as leader, make) another.
    pub(super) fn release_dead_pledge(&mut self, me: &str, out: &mut Outbox) {
        let room = self.name.clone();
        let Some(membership) = self.membership() else { return };
        let Some((ballot, committer, ours)) = membership.pledged(me) else { return };
        let count = membership.count_votes(&ballot, &[], Some(true));
        if !count.refutes() {
            return;
        }
        membership.drop_pledged(ours);
        let notice = RoomNotice::CommitAborted { committer, refuted: true };
        out.events.push(Event::Room { room, notice });
    }
}
