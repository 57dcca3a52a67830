//! The leader's side of key changes: the commits it owes the room, made one at a time,
//! sent again unchanged until the relay answers, and backed off when the room refuses.

use super::*;

/// Our own commit, as the leader made it.
pub(super) struct OwnCommit {
    pub(super) intent: Intent,
    /// The frame, to send again unchanged: a leader never makes a second, different commit
    /// for an epoch while the first may still be voted on.
    pub(super) frame: ClientFrame,
    pub(super) ballot: Ballot,
    /// The joiner's Welcome, sent only once the room confirmed the commit and we merged it:
    /// a Welcome of a commit that was never confirmed must not exist, or a relay could hand
    /// it to the joiner and split the room.
    pub(super) welcome: Option<Welcome>,
    /// Whether the relay has yet to answer the last send: put it to the vote (it comes back
    /// to us) or refuse it (`CommitRejected` naming it). Until then the relay may still put
    /// it to the vote, so it is never remade, nor let go (it would come back to a leader
    /// that no longer holds it, cannot vote on it, and is taken out for not voting).
    pub(super) awaiting_answer: bool,
    /// Whether we signed our yes (the relay took it to a vote); from then on only proof that
    /// it lost lets us drop it.
    pub(super) voted: bool,
    /// Whether to send it again at the next tick (the relay was busy, too many members were
    /// away, or it aborted the vote without proof).
    pub(super) resend: bool,
}

/// Work the leader owes the room as a commit.
#[derive(Debug, Clone)]
pub(super) enum Intent {
    Add {
        joiner: String,
        attempt: u64,
        key_package: Vec<u8>,
    },
    /// Members the relay no longer lists, removed in one commit.
    Remove {
        nicks: Vec<String>,
    },
    /// Renew leaf keys: ours (the commit's update path) and every member's whose proposal we
    /// keep (`mls::renewal`), in one commit.
    Renew,
}

impl Room {
    /// As leader: every group member the relay no longer lists is owed a removal.
    pub(super) fn reconcile(&mut self, me: &str) {
        if !self.is_leader(me) {
            return;
        }
        let relay_members = self.relay_members.clone();
        let Some(membership) = self.membership() else { return };
        if membership.hold_removals > 0 {
            return;
        }
        let departed: Vec<String> = membership
            .group
            .members()
            .into_iter()
            .filter(|member| !member.is_self && !relay_members.contains(&member.nick))
            .map(|member| member.nick)
            .collect();
        for nick in departed {
            if !membership.owes_removal_of(&nick) {
                membership.intents.push_back(Intent::Remove { nicks: vec![nick] });
            }
        }
        // Renewals proposed to the leader before us are ours to commit now.
        let renewing = membership.intents.iter().any(|intent| matches!(intent, Intent::Renew));
        if !renewing && !membership.group.renewals_waiting().is_empty() {
            membership.intents.push_back(Intent::Renew);
        }
    }

    /// As leader: sends the next owed commit if none is being voted on, or sends our
    /// unsettled commit again (unchanged) when it is due.
    pub fn drive_commits(&mut self, me: &str, out: &mut Outbox) {
        // Whatever else is owed, members the relay no longer lists go first.
        self.reconcile(me);
        let room = self.name.clone();
        let relay_members = self.relay_members.clone();
        if !self.is_leader(me) {
            return;
        }
        let Some(membership) = self.membership() else { return };
        let owes_removal =
            membership.intents.iter().any(|intent| matches!(intent, Intent::Remove { .. }));
        let refused =
            membership.own_commit.as_ref().is_some_and(|own| !own.voted && !own.awaiting_answer);
        if refused && owes_removal {
            // Members left since we made our commit, and the relay refused to take it to a
            // vote, so nobody holds a yes of ours for it: make it again after their removal,
            // which must come first. (While the relay may still put it to the vote, it stays:
            // a second commit for the epoch could meet the first in the room.)
            membership.group.discard_pending_commit();
            if let Some(own) = membership.own_commit.take() {
                membership.intents.push_back(own.intent);
            }
        }
        if membership.commit_wait_ticks > 0 {
            return;
        }
        if let Some(own) = membership.own_commit.as_mut() {
            if own.resend {
                own.resend = false;
                own.awaiting_answer = true;
                out.frames.push(own.frame.clone());
            }
            return;
        }
        if membership.group.has_pending_commit() {
            // A commit made outside this room's bookkeeping (only tests playing a dishonest
            // leader do that): it was never pledged, so it may go.
            membership.group.discard_pending_commit();
        }
        let epoch = membership.group.epoch();
        if membership.voted.is_some() || membership.pledge.is_some_and(|p| p.epoch == epoch) {
            // We said yes to another member's commit of this epoch, which may still win: if
            // its vote ended without a verdict, we put it to the vote again.
            return self.carry_pledged(out);
        }
        while membership.own_commit.is_none() {
            // Departed members go first, all in one commit: until their leaves are gone, the
            // group's electorate and the relay's disagree and no other commit could pass.
            let mut departed: Vec<String> = Vec::new();
            membership.intents.retain(|intent| match intent {
                Intent::Remove { nicks } => {
                    departed.extend(nicks.iter().cloned());
                    false
                }
                Intent::Add { .. } | Intent::Renew => true,
            });
            departed.sort();
            departed.dedup();
            if !departed.is_empty() {
                membership.intents.push_front(Intent::Remove { nicks: departed });
            }
            let position = 0;
            let Some(intent) = membership.intents.remove(position) else { return };
            let group = &mut membership.group;
            let result = match &intent {
                Intent::Add { joiner, attempt, key_package } => {
                    let stale_leaf = group.members().iter().any(|member| member.nick == *joiner);
                    if stale_leaf && relay_members.contains(joiner) {
                        // A connected member of that name is in the group: never two.
                        out.frames.push(ClientFrame::AdmissionRefused {
                            room: room.clone(),
                            joiner: joiner.clone(),
                            attempt: *attempt,
                            reason: AdmissionRefusal::LeaderFailed,
                        });
                        continue;
                    }
                    let commit = if stale_leaf {
                        // It was taken out of the room and comes back: its old leaf goes in
                        // the same commit that adds the new one.
                        group.commit_replace(joiner, key_package)
                    } else {
                        group.commit_add(key_package, joiner)
                    };
                    commit.map(|commit| {
                        (commit, Some(Addition { to: joiner.clone(), attempt: *attempt }))
                    })
                }
                // Back in the relay's list (it returned before we committed): not ours to
                // remove, and the room would refuse it.
                Intent::Remove { nicks } => {
                    let gone: Vec<&str> = nicks
                        .iter()
                        .filter(|nick| !relay_members.contains(nick))
                        .filter(|nick| group.members().iter().any(|m| m.nick == **nick))
                        .map(String::as_str)
                        .collect();
                    if gone.is_empty() {
                        continue;
                    }
                    match group.commit_remove(&gone) {
                        Err(MlsError::NoSuchMember(_)) => continue, // already gone
                        other => other.map(|commit| (commit, None)),
                    }
                }
                Intent::Renew => group.commit_renewal().map(|commit| (commit, None)),
            };
            match result {
                Ok((commit, adds)) => {
                    let ballot = Ballot::new(commit.epoch, &commit.commit, commit.electorate);
                    let welcome = match (&adds, commit.welcome) {
                        (Some(adds), Some(message)) => {
                            Some(Welcome { to: adds.to.clone(), attempt: adds.attempt, message })
                        }
                        _ => None,
                    };
                    let electorate = electorate_size(&ballot);
                    let frame = ClientFrame::Commit {
                        room: room.clone(),
                        commit: commit.commit,
                        adds,
                        electorate,
                    };
                    out.frames.push(frame.clone());
                    membership.own_commit = Some(OwnCommit {
                        intent,
                        frame,
                        ballot,
                        welcome,
                        awaiting_answer: true,
                        voted: false,
                        resend: false,
                    });
                }
                Err(error) => match intent {
                    Intent::Add { joiner, attempt, .. } => {
                        out.warn(&room, format!("could not admit {joiner}: {error}"));
                        let reason = error.admission_refusal();
                        out.frames.push(ClientFrame::AdmissionRefused {
                            room: room.clone(),
                            joiner,
                            attempt,
                            reason,
                        });
                    }
                    Intent::Remove { nicks } => out.warn(
                        &room,
                        format!(
                            "could not remove {} from the room's keys: {error}",
                            nicks.join(", ")
                        ),
                    ),
                    Intent::Renew => out.warn(&room, format!("could not renew keys: {error}")),
                },
            }
        }
    }

    /// The relay did not take our commit (the one `commit` names) to a vote. A leader never
    /// makes another commit for the epoch while this one may still be voted on, so it is
    /// kept and sent again at the next tick, unless the room has moved past its epoch (then
    /// we are out of step). An answer about any other commit (one we sent before, or one a
    /// relay made up) changes nothing.
    pub fn commit_rejected(
        &mut self,
        me: &str,
        commit: [u8; 32],
        reason: CommitRejection,
        out: &mut Outbox,
    ) {
        let room = self.name.clone();
        let Some(membership) = self.membership() else { return };
        if let Some(staged) = membership.voted.as_mut().filter(|s| s.ballot.commit == commit) {
            // The commit we carry for its committer (`carry_pledged`): busy, try again later;
            // refused otherwise, our yes stays with it and it waits for its proof or its end.
            staged.carry = matches!(reason, CommitRejection::Busy | CommitRejection::TooManyAway);
            membership.commit_wait_ticks = membership.commit_wait_ticks.max(1);
            return;
        }
        let Some(own) = membership.own_commit.as_mut().filter(|own| own.ballot.commit == commit)
        else {
            return;
        };
        own.awaiting_answer = false;
        match reason {
            CommitRejection::EpochMovedOn { .. } | CommitRejection::EpochAhead { .. } => {
                out.warn(&room, format!("the relay refused a key change: {reason}"));
                self.resync(out);
            }
            CommitRejection::Busy | CommitRejection::TooManyAway => own.resend = true,
            CommitRejection::NotLeader
            | CommitRejection::NotACommit
            | CommitRejection::UnknownRecipient => {
                if own.voted {
                    // We signed our yes: it stays our one commit of this epoch.
                    own.resend = true;
                } else {
                    // Nobody can hold a yes of ours for it: it may go.
                    membership.group.discard_pending_commit();
                    if let Some(own) = membership.own_commit.take()
                        && let Intent::Add { joiner, attempt, .. } = own.intent
                    {
                        out.frames.push(ClientFrame::AdmissionRefused {
                            room: room.clone(),
                            joiner,
                            attempt,
                            reason: AdmissionRefusal::LeaderFailed,
                        });
                    }
                    out.warn(&room, format!("the relay refused a key change: {reason}"));
                }
            }
        }
        self.release_abandoned_pledge(me, out);
    }

    /// Our group and the relay's room disagree on the epoch: we leave the room and say so.
    /// Joining again is the user's to start (it runs the password exchange).
    pub(super) fn resync(&mut self, out: &mut Outbox) {
        out.frames.push(ClientFrame::Leave { room: self.name.clone() });
        self.give_up(out, RoomNotice::OutOfStep);
    }
}

/// The most ticks a leader waits between commits the room keeps refusing (about 5 minutes
/// at the engine's 5 s tick).
const MAX_COMMIT_WAIT_TICKS: u8 = 64;

/// Ticks to wait after the `refusals`-th refusal in a row: 1, 2, 4, … up to the most.
pub(super) fn backoff_ticks(refusals: u8) -> u8 {
    let doubled = 1u32 << u32::from(refusals.saturating_sub(1).min(7));
    u8::try_from(doubled).unwrap_or(u8::MAX).min(MAX_COMMIT_WAIT_TICKS)
}

/// The electorate's size as the relay is told it.
pub(super) fn electorate_size(ballot: &Ballot) -> u32 {
    u32::try_from(ballot.electorate.len()).unwrap_or(u32::MAX)
}
