//! Coming back after the relay forgot us (a restart, or away too long): asking for our
//! place in the room with our group as it was, never a password exchange of our own.

use super::*;

/// How many ticks (the engine's 5 s keepalive) a member back in a room re-formed after a
/// relay restart waits for the others before it removes those that did not come back. The
/// first back would otherwise remove everyone else, and be outnumbered by them on return.
/// How many commits before the last one a member keeps to bring back after a restart, and
/// how many bytes of them (commits and proofs) one `Reclaim` may carry.
pub(super) const MAX_EARLIER_COMMITS: usize = 3;
const EARLIER_COMMITS_BYTES: usize = 32 * 1024;

pub(super) const RECLAIM_HOLD_TICKS: u8 = 4;

impl Room {
    /// A new session: a member asks for its place back at once (`reclaim`); a join that was
    /// under way starts over at the next tick instead, so that after a relay restart the
    /// room's members, back at once, have re-formed it before a joiner could found it anew.
    pub fn reclaim_or_defer(&mut self) -> Option<ClientFrame> {
        if matches!(self.phase, Phase::Member(_) | Phase::Reclaiming(_)) {
            return Some(self.reclaim());
        }
        let _ = self.restart_join();
        self.relay_members.clear();
        self.away.clear();
        self.join_deferred = true;
        None
    }

    /// The relay forgot our session: ask to be a member again. A member asks with its
    /// group and epoch (and keeps both while it waits); anyone still joining starts over.
    pub fn reclaim(&mut self) -> ClientFrame {
        self.relay_members.clear();
        self.away.clear();
        let phase = std::mem::replace(&mut self.phase, Phase::Requested { departed: None });
        match phase {
            Phase::Member(mut membership) | Phase::Reclaiming(mut membership) => {
                // The vote in progress died with the relay's memory of the room. A commit we
                // said yes to is kept for a while: the relay may have confirmed it to others
                // before it restarted, and one of them may bring the proof (`reclaim`).
                // So is our own commit that the relay may have put to the vote without us (our
                // link dropped before it came back): the others may have confirmed it on their
                // own yes, and nobody can hand us our own commit. We never signed a yes for it,
                // so it binds nobody: another commit for the epoch still replaces it.
                if membership
                    .own_commit
                    .as_ref()
                    .is_some_and(|own| !own.voted && !own.awaiting_answer)
                {
                    membership.group.discard_pending_commit();
                    membership.own_commit = None;
                }
                let epoch = membership.group.epoch();
                let unsigned = membership.own_commit.as_ref().filter(|own| !own.voted);
                let pledged = membership
                    .pledged_ballot()
                    .or_else(|| unsigned.map(|own| own.ballot.clone()))
                    .filter(|ballot| ballot.epoch == epoch)
                    .map(|ballot| ballot.commit);
                membership.pledge_kept_ticks =
                    if pledged.is_some() { RECLAIM_HOLD_TICKS } else { 0 };
                // Its vote ended with the relay's memory, as an abort without proof would.
                membership.pledge_aborted = pledged.map(|_| Vec::new());
                if pledged.is_none() {
                    membership.drop_pledged(true);
                    membership.drop_pledged(false);
                }
                if let Some(own) = membership.own_commit.as_mut() {
                    own.resend = false;
                    // The relay that could have answered is gone with its memory.
                    own.awaiting_answer &= !own.voted;
                }
                if let Some(staged) = membership.voted.as_mut() {
                    staged.carry = true;
                }
                membership.intents.clear();
                membership.admissions.clear();
                let proof = membership
                    .last_proof
                    .as_ref()
                    .filter(|(reached, _)| *reached == epoch)
                    .map(|(_, votes)| votes.clone())
                    .unwrap_or_default();
                let last_commit = membership.last_commit.clone().filter(|_| !proof.is_empty());
                // Only what chains down from our epoch, and only while it stays small: in a
                // large room each proof alone is big, and every member brings its own.
                let mut budget = EARLIER_COMMITS_BYTES;
                let earlier: Vec<ConfirmedCommit> = membership
                    .earlier
                    .iter()
                    .enumerate()
                    .take_while(|(back, confirmed)| {
                        let size = confirmed.commit.commit.len()
                            + confirmed.votes.iter().map(|vote| vote.vote.len()).sum::<usize>();
                        let fits = size <= budget;
                        budget = budget.saturating_sub(size);
                        last_commit.is_some()
                            && fits
                            && epoch.checked_sub(*back as u64 + 1) == Some(confirmed.reached)
                    })
                    .map(|(_, confirmed)| confirmed.clone())
                    .collect();
                let frame = ClientFrame::Reclaim {
                    room: self.name.clone(),
                    group_id: membership.group.group_id(),
                    epoch,
                    pledged,
                    proof,
                    last_commit,
                    earlier,
                };
                self.phase = Phase::Reclaiming(membership);
                frame
            }
            other => {
                self.phase = other;
                self.restart_join()
            }
        }
    }

    /// The relay took us back into the room with our group as it was.
    pub fn reclaimed(&mut self, members: Vec<String>, epoch: u64) -> Result<(), RoomError> {
        let phase = std::mem::replace(&mut self.phase, Phase::Requested { departed: None });
        match phase {
            Phase::Reclaiming(mut membership) => {
                membership.hold_removals = RECLAIM_HOLD_TICKS;
                membership.catch_up_to = (epoch > membership.group.epoch()).then_some(epoch);
                self.phase = Phase::Member(membership);
                self.relay_members = members;
                Ok(())
            }
            other => {
                self.phase = other;
                Err(RoomError::OutOfTurn("a reclaimed room"))
            }
        }
    }

    /// The relay took us out of the room. We keep our group and ask to be taken back as we
    /// were (`Reclaim`); if the relay will not, we say so and wait for the user's `/join`.
    /// Never a password exchange by ourselves: a relay could use one to guess the password.
    pub fn removed(&mut self, reason: RemovalReason, out: &mut Outbox) -> Option<ClientFrame> {
        self.room_notice(out, RoomNotice::TakenOut { reason });
        match self.phase {
            Phase::Member(_) => Some(self.reclaim()),
            // Sent before the relay read our `Reclaim` (its answer is still to come): about
            // the membership we are already asking back, so nothing changes.
            Phase::Reclaiming(_) => None,
            _ => {
                self.phase = Phase::Gone;
                None
            }
        }
    }

    /// The relay took us back (`Reclaimed`): say so, and as leader settle what we kept.
    pub(super) fn back_in_room(
        &mut self,
        me: &str,
        members: Vec<String>,
        epoch: u64,
        out: &mut Outbox,
    ) {
        if let Err(error) = self.reclaimed(members, epoch) {
            return out.warn(&self.name.clone(), format!("ignored: {error}"));
        }
        if !std::mem::take(&mut self.opening) {
            out.notice(&self.name.clone(), "back in the room, with the same group and keys".into());
        }
        let leading = self.is_leader(me);
        if let Some(membership) = self.membership().filter(|_| leading) {
            // A leader cannot wait long on a kept yes (its joiners would give up
            // on it): its own removal goes to the vote again at once (the proof,
            // if the others merged it, is already on its way and wins); another
            // commit, or one adding a joiner whose admission died with the
            // relay's memory, is kept one tick only.
            // Another member's commit we said yes to is put to the vote again by us if we
            // can carry it (`carry_pledged`), and is kept while that vote runs.
            let carriable = membership.voted.as_ref().is_some_and(|staged| staged.carriable());
            match membership.own_commit.as_mut() {
                Some(own) if own.voted && matches!(own.intent, Intent::Remove { .. }) => {
                    own.resend = true;
                    membership.pledge_kept_ticks = 0;
                }
                None if carriable => {}
                _ => membership.pledge_kept_ticks = membership.pledge_kept_ticks.min(1),
            }
        }
        // Leading now, perhaps: whoever did not come back is owed a removal.
        self.drive_commits(me, out);
    }
}
