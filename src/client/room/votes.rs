//! Votes: every member judges a commit put to the vote, signs its verdict inside the
//! group, and merges only on the signed yes of more than half of the commit's electorate.

use super::*;

impl Room {
    /// Signs a vote and wraps it in the frame the relay tallies.
    pub(super) fn vote_frame(
        room: &str,
        group: &mut RoomGroup,
        statement: VoteStatement,
    ) -> Result<ClientFrame, MlsError> {
        let vote = group.encrypt_message(&proto::encode(&GroupMessage::Vote(statement)))?;
        Ok(ClientFrame::CommitVote {
            room: room.to_owned(),
            epoch: statement.epoch,
            accept: statement.accept,
            vote,
        })
    }

    /// A commit the relay put to the vote: ours coming back (we sign our yes now), or another
    /// member's, for us to verify, judge and vote on.
    pub fn incoming_commit(
        &mut self,
        me: &str,
        from: &str,
        commit: &[u8],
        joiner: Option<&str>,
        out: &mut Outbox,
    ) {
        let room = self.name.clone();
        let relay_members = self.relay_members.clone();
        let Some(membership) = self.membership() else { return };
        // The relay only forwards commits whose header it could read.
        let Some(epoch) = crate::mls_header::peek_header(commit).map(|header| header.epoch) else {
            return out.warn(
                &room,
                format!("a malformed key change claimed to be from {from} was ignored"),
            );
        };
        if epoch != membership.group.epoch() {
            // Not a commit of our epoch (a replay, or we are out of step): nothing to vote on,
            // and nothing of ours changes.
            return out.warn(
                &room,
                format!("ignored a key change claimed to be from {from} for another epoch"),
            );
        }
        let hash = commit_hash(commit);
        let verdict = |membership: &mut Membership, statement: VoteStatement, out: &mut Outbox| {
            match Self::vote_frame(&room, &mut membership.group, statement) {
                Ok(frame) => {
                    if let ClientFrame::CommitVote { vote, accept: true, .. } = &frame {
                        membership.own_yes = Some((statement, vote.clone()));
                    }
                    out.frames.push(frame)
                }
                Err(error) => out.warn(&room, format!("could not sign a vote: {error}")),
            }
        };
        // Ours, back from the relay: it is up for a vote now, and we pledge our yes to it.
        if let Some(own) = membership.own_commit.as_mut()
            && own.ballot.commit == hash
        {
            own.voted = true;
            own.awaiting_answer = false;
            let statement = own.ballot.statement(true);
            membership.pledge = Some(Pledge::of(&own.ballot));
            membership.said_yes = membership.pledge;
            membership.pledge_aborted = None;
            return verdict(membership, statement, out);
        }
        // The same commit again (the relay aborted the first vote without proof): same answer.
        if let Some(staged) = &membership.voted
            && staged.ballot.commit == hash
        {
            let statement = staged.ballot.statement(true);
            membership.pledge_aborted = None;
            return verdict(membership, statement, out);
        }
        let said_yes =
            membership.said_yes.is_some_and(|yes| yes.epoch == epoch && yes.commit == hash);
        if from == me && said_yes {
            // We signed yes to it and let it go since (its vote died with a relay restart):
            // we cannot merge it now, and must never sign no to what we said yes to, or a
            // relay could count our no against those who merged it on our yes.
            return out.warn(
                &room,
                format!("a key change from {from} that you accepted earlier came back; no vote"),
            );
        }
        if from == me {
            // A commit in our name that we do not hold: one we gave up after the relay refused
            // it, brought back, or made up. We cannot merge it; our own commit stays.
            out.warn(
                &room,
                "refused a key change in your name that this client does not hold".into(),
            );
            membership.refused = Some((epoch, from.to_owned()));
            return verdict(membership, VoteStatement { epoch, commit: hash, accept: false }, out);
        }
        let ours_unvoted = membership.own_commit.as_ref().is_some_and(|own| !own.voted);
        if ours_unvoted && from != me {
            // Another's commit is up for the vote, not ours: ours binds nobody, and goes (what
            // it was for is the leader's to do now).
            membership.group.discard_pending_commit();
            membership.own_commit = None;
        }
        let pledged = membership.pledge.is_some_and(|pledge| pledge.epoch == epoch);
        if pledged || membership.own_commit.is_some() || membership.voted.is_some() {
            // We said yes to another commit of this epoch (or have one of our own): an honest
            // member accepts one, or two halves of the room could merge different commits.
            let refusal = VoteStatement { epoch, commit: hash, accept: false };
            membership.refused = Some((epoch, from.to_owned()));
            // Kept: if the room confirms it with the signed yes of most of the members ours
            // needed, ours lost, and we merge this one on that proof (`merge_proven_rival`).
            let joiner = joiner.map(str::to_owned);
            membership.refused_rival =
                Some(MergedCommit { from: from.to_owned(), commit: commit.to_vec(), joiner });
            verdict(membership, refusal, out);
            let notice = RoomNotice::AcceptedAnother { committer: from.into() };
            return out.events.push(Event::Room { room: room.clone(), notice });
        }
        let group_members = membership.group.members();
        // Behind the room after the relay took us back: this commit was decided while we
        // were away, by a leader and against a member list of then.
        let replayed = membership.catch_up_to.is_some_and(|room_epoch| epoch < room_epoch);
        let relay_members = (!replayed).then_some(relay_members.as_slice());
        let staged = membership.group.stage_commit(commit);
        let removal_of_us =
            staged.as_ref().ok().filter(|summary| summary.removes_us).map(|summary| {
                (
                    Ballot { epoch, commit: hash, electorate: summary.electorate.clone() },
                    from.to_owned(),
                )
            });
        let judged = staged.map_err(RoomError::from).and_then(|summary| {
            let view =
                RoomView { relay_members, joiner, group_members: &group_members, sender: from };
            commit_policy::check(&summary, view)
                .map(|()| (summary.electorate, summary.renews_committer, summary.committer.nick))
                .map_err(RoomError::from)
        });
        match judged {
            Ok((electorate, renews_committer, committer)) => {
                let ballot = Ballot { epoch, commit: hash, electorate };
                let statement = ballot.statement(true);
                membership.pledge = Some(Pledge::of(&ballot));
                membership.said_yes = membership.pledge;
                let merged = MergedCommit {
                    from: from.to_owned(),
                    commit: commit.to_vec(),
                    joiner: joiner.map(str::to_owned),
                };
                membership.voted = Some(StagedVote {
                    ballot,
                    committer,
                    merged,
                    renews_committer,
                    said_yes: true,
                    carry: false,
                });
                verdict(membership, statement, out);
            }
            Err(error) => {
                membership.group.discard_staged_commit();
                membership.refused = Some((epoch, from.to_owned()));
                membership.refused_removal = removal_of_us;
                out.warn(&room, format!("refused a key change claimed to be from {from}: {error}"));
                verdict(membership, VoteStatement { epoch, commit: hash, accept: false }, out);
            }
        }
    }

    /// The relay says the room accepted the commit in flight: merge it (ours, or the one we
    /// staged), but only with the signed yes votes of more than half of its electorate.
    pub fn commit_confirmed(
        &mut self,
        me: &str,
        votes: &[SignedVote],
        out: &mut Outbox,
        now: SystemTime,
    ) {
        let room = self.name.clone();
        let Some(membership) = self.membership() else { return };
        // Ours kept unsigned after a restart (see `reclaim`) counts too, while we wait on its
        // proof.
        let kept = membership.pledge_kept_ticks > 0;
        // Our own yes counts only if we signed it: the room confirmed a commit of ours that
        // we never voted on only if more than half of the others said yes.
        let (ballot, signed) = match (&membership.own_commit, &membership.voted) {
            (Some(own), _) if own.voted || kept => (own.ballot.clone(), own.voted),
            (_, Some(staged)) => (staged.ballot.clone(), staged.said_yes),
            _ => {
                if let Some((ballot, committer)) = membership.refused_removal.take() {
                    let count = membership.count_votes(&ballot, votes, None);
                    if count.confirms() {
                        // More than half of the members it keeps signed the commit that
                        // removes us: the room went on without us, and staying in the old
                        // group would be a split nobody is told of.
                        out.frames.push(ClientFrame::Leave { room: room.clone() });
                        return self.give_up(out, RoomNotice::RemovedByRoom { committer });
                    }
                    membership.refused_removal = Some((ballot, committer));
                }
                // Nothing we accepted is up for confirmation: a replayed or forged frame.
                return out
                    .events
                    .push(Event::Room { room, notice: RoomNotice::UnexpectedConfirmation });
            }
        };
        let count = membership.count_votes(&ballot, votes, signed.then_some(true));
        if !count.confirms() && self.merge_proven_rival(&ballot, votes) {
            return self.commit_confirmed(me, votes, out, now);
        }
        let Some(membership) = self.membership() else { return };
        if !count.confirms() {
            let notice = RoomNotice::UnprovenConfirmation { yes: count.yes.len(), of: count.of };
            return out.events.push(Event::Room { room, notice });
        }
        // A proof brought after a relay restart (see `reclaim`): the commit is merged, but the
        // relay's member list is the re-formed room's, not the one the commit was made for.
        let catching_up = membership.pledge_kept_ticks > 0
            || membership.catch_up_to.is_some_and(|room_epoch| ballot.epoch < room_epoch);
        membership.pledge = None;
        membership.pledge_aborted = None;
        membership.pledge_kept_ticks = 0;
        membership.refusals_in_a_row = 0;
        membership.refused = None;
        membership.refused_rival = None;
        membership.refused_removal = None;
        membership.farewells.clear();
        membership.opened_votes.clear();
        let previous = membership.last_proof.take().zip(membership.last_commit.take());
        if let Some(((reached, votes), commit)) = previous {
            membership.earlier.push_front(ConfirmedCommit { reached, commit, votes });
            membership.earlier.truncate(MAX_EARLIER_COMMITS);
        }
        // Our own signed yes in place of whatever came in our name.
        let own_yes = membership
            .own_yes
            .take()
            .filter(|(statement, _)| statement.accept && ballot.is_about(statement))
            .map(|(_, vote)| SignedVote { from: me.to_owned(), vote });
        let mut proof: Vec<SignedVote> = votes.to_vec();
        if let Some(own_yes) = own_yes {
            match proof.iter_mut().find(|vote| vote.from == me) {
                Some(in_our_name) => *in_our_name = own_yes,
                None => proof.push(own_yes),
            }
        }
        membership.last_proof = Some((ballot.epoch + 1, proof));
        membership.last_commit = match (&membership.own_commit, &membership.voted) {
            (Some(own), _) => match &own.frame {
                ClientFrame::Commit { commit, adds, .. } => Some(MergedCommit {
                    from: me.to_owned(),
                    commit: commit.clone(),
                    joiner: adds.as_ref().map(|adds| adds.to.clone()),
                }),
                _ => None,
            },
            (None, Some(staged)) => Some(staged.merged.clone()),
            (None, None) => None,
        };
        // A commit with an update path renews its committer's leaf: ours carries one unless
        // it only adds (`RoomGroup::commit`).
        let committer_renewed = match (&membership.own_commit, &membership.voted) {
            (Some(own), _) => (!matches!(own.intent, Intent::Add { .. })).then(|| me.to_owned()),
            (None, Some(staged)) => staged.renews_committer.then(|| staged.committer.clone()),
            (None, None) => None,
        };
        let merged = if let Some(own) = membership.own_commit.take() {
            let joined = match own.intent {
                Intent::Add { joiner, .. } => Some(joiner),
                Intent::Remove { .. } | Intent::Renew => None,
            };
            let merged = membership.group.merge_pending_commit();
            if merged.is_ok()
                && !catching_up
                && let Some(welcome) = own.welcome
            {
                // Merged with the room's proof: only now may the joiner have its Welcome.
                out.frames.push(ClientFrame::Welcome { room: room.clone(), welcome });
            }
            merged.map(|events| (events, joined))
        } else {
            membership.voted = None;
            membership.group.discard_pending_commit();
            membership.group.merge_staged_commit().map(|events| (events, None))
        };
        match merged {
            Ok((events, joined)) => {
                if let Some(joined) = joined.filter(|_| !catching_up) {
                    // The relay made the joiner a member with this confirmation.
                    self.member_joined(joined);
                }
                for event in events.iter().filter(|_| !catching_up) {
                    if let RoomEvent::MemberAdded { nick } = event {
                        self.member_joined(nick.clone());
                        // A new leaf joined through a Welcome, and numbers its messages
                        // from 1: any it sends that never reach us are a gap we can name.
                        self.gaps.joined(nick, now);
                    }
                }
                // New leaves, leaves whose owners' renewals it covered, and the committer's.
                let renewed: Vec<String> = events
                    .iter()
                    .filter_map(|event| match event {
                        RoomEvent::MemberAdded { nick } | RoomEvent::Renewed { nick } => {
                            Some(nick.clone())
                        }
                        _ => None,
                    })
                    .chain(committer_renewed)
                    .collect();
                let renewals: Vec<String> = events
                    .iter()
                    .filter_map(|event| match event {
                        RoomEvent::Renewed { nick } => Some(nick.clone()),
                        _ => None,
                    })
                    .collect();
                self.leaves_renewed(me, &renewed, &renewals);
                room_events(&room, events, out);
            }
            Err(error) => {
                out.warn(&room, format!("could not apply a confirmed key change: {error}"))
            }
        }
        self.reconcile(me);
        self.drive_commits(me, out);
    }

    /// The relay says the commit in flight will not be merged. Nobody merges it; whether we
    /// may accept another commit for this epoch depends on the signed no votes it carries:
    /// half of the electorate or more prove the commit can never win. Without that proof our
    /// yes stays pledged (and a commit of ours is sent again later, unchanged).
    pub fn commit_aborted(&mut self, me: &str, votes: &[SignedVote], out: &mut Outbox) {
        let room = self.name.clone();
        let Some(membership) = self.membership() else { return };
        // The relay puts one commit to the vote at a time and sends it back to its committer
        // before any verdict on it: an abort while ours has not come back is about another.
        let (committer, refuted) = if let Some((ballot, committer, ours)) = membership.pledged(me) {
            let count = membership.count_votes(&ballot, votes, Some(true));
            let refuted = count.refutes();
            if refuted {
                membership.drop_pledged(ours);
                if ours {
                    // Whatever it was for is for whoever leads next to do, on its next news;
                    // and not at once, or a room that refuses would be flooded with commits.
                    membership.intents.clear();
                    membership.admissions.clear();
                    membership.refusals_in_a_row = membership.refusals_in_a_row.saturating_add(1);
                    membership.commit_wait_ticks = backoff_ticks(membership.refusals_in_a_row);
                }
            } else {
                membership.pledge_aborted = Some(count.no.clone());
                if let Some(staged) = membership.voted.as_mut().filter(|_| !ours) {
                    // As leader we put it to the vote again ourselves (`carry_pledged`).
                    staged.carry = true;
                    membership.commit_wait_ticks = membership.commit_wait_ticks.max(1);
                }
                if let Some(own) = membership.own_commit.as_mut().filter(|_| ours) {
                    // Again, but at the next tick: a room that cannot decide is not flooded.
                    own.resend = true;
                    membership.commit_wait_ticks = membership.commit_wait_ticks.max(1);
                }
            }
            (committer, refuted)
        } else if let Some((_, committer)) = membership.refused.take() {
            (committer, true)
        } else {
            // About a commit that is not ours to settle: the relay is free again, so a commit
            // of ours it has not taken goes again at the next tick (it may have been lost).
            if let Some(own) = membership.own_commit.as_mut() {
                own.resend = true;
            }
            return self.drive_commits(me, out);
        };
        out.events
            .push(Event::Room { room, notice: RoomNotice::CommitAborted { committer, refuted } });
        self.release_abandoned_pledge(me, out);
        // The room is free for the next commit: ours again, or what we owe.
        self.drive_commits(me, out);
    }
}

impl Room {
    /// A confirmation that does not prove the commit we said yes to (`pledged`) may prove
    /// the one we refused for it: if more than half of the members ours needed signed yes to
    /// that one, ours can never win (an honest member signs yes once an epoch). Then we let
    /// ours go and stage the other, to merge it on the same proof, rather than stay behind
    /// the room; the relay does not take out a member for a no its pledge made
    /// (`relay::state::pledges`). Returns whether the other is staged now.
    fn merge_proven_rival(&mut self, pledged: &Ballot, votes: &[SignedVote]) -> bool {
        let Some(membership) = self.membership() else { return false };
        let Some(rival) = membership.refused_rival.take() else { return false };
        let epoch = crate::mls_header::peek_header(&rival.commit).map(|header| header.epoch);
        if epoch != Some(pledged.epoch) || epoch != Some(membership.group.epoch()) {
            return false;
        }
        let hash = commit_hash(&rival.commit);
        let electorate = pledged.electorate.clone();
        let probe = Ballot { epoch: pledged.epoch, commit: hash, electorate };
        if !membership.count_votes(&probe, votes, None).confirms() {
            membership.refused_rival = Some(rival);
            return false;
        }
        let ours =
            membership.own_commit.as_ref().is_some_and(|own| own.ballot.commit == pledged.commit);
        membership.drop_pledged(ours);
        membership.refused = None;
        // Judged as a commit the room decided while we looked elsewhere: who led and who was
        // present then were the signed majority's to check; what it changes is checked as
        // ever.
        let group_members = membership.group.members();
        let staged = membership.group.stage_commit(&rival.commit).map_err(RoomError::from);
        let judged = staged.and_then(|summary| {
            let joiner = rival.joiner.as_deref();
            let sender = rival.from.as_str();
            let view =
                RoomView { relay_members: None, joiner, group_members: &group_members, sender };
            commit_policy::check(&summary, view).map(|()| summary).map_err(RoomError::from)
        });
        let Ok(summary) = judged else {
            membership.group.discard_staged_commit();
            return false;
        };
        let ballot = Ballot { epoch: pledged.epoch, commit: hash, electorate: summary.electorate };
        membership.voted = Some(StagedVote {
            ballot,
            committer: summary.committer.nick,
            merged: rival,
            renews_committer: summary.renews_committer,
            said_yes: false,
            carry: false,
        });
        true
    }
}

/// The most votes a member remembers having opened in one epoch: more than a full room's
/// worth of several rounds, so that only a flood from a hostile member or relay resets it.
const MAX_OPENED_VOTES: usize = 4096;

impl Membership {
    /// The signed votes a confirmation or an abort carries, counted on `ballot`; our own
    /// verdict (`own`) counts without the relay's help.
    pub(super) fn count_votes(
        &mut self,
        ballot: &Ballot,
        votes: &[SignedVote],
        own: Option<bool>,
    ) -> Count {
        let mut statements: Vec<(u32, VoteStatement)> = Vec::new();
        for signed in votes {
            let key = commit_hash(&signed.vote);
            if let Some(known) = self.opened_votes.get(&key) {
                statements.push(*known);
                continue;
            }
            let Ok(opened) = self.group.open_application(&signed.vote) else { continue };
            let Some(Ok(GroupMessage::Vote(statement))) =
                opened.payload.map(|payload| proto::decode::<GroupMessage>(&payload))
            else {
                continue;
            };
            if self.opened_votes.len() >= MAX_OPENED_VOTES {
                self.opened_votes.clear();
            }
            self.opened_votes.insert(key, (opened.leaf, statement));
            statements.push((opened.leaf, statement));
        }
        if let Some(accept) = own {
            statements.insert(0, (self.group.own_leaf(), ballot.statement(accept)));
        }
        let said_farewell = self
            .farewells
            .iter()
            .filter_map(|(leaf, farewell)| Some((*leaf, farewell.on(ballot)?)));
        statements.extend(said_farewell);
        Count::of(ballot, statements)
    }
}

fn room_events(room: &str, events: Vec<RoomEvent>, out: &mut Outbox) {
    // A rejoin removes and re-adds the same member in one commit: not news to anyone.
    let removed: Vec<String> = events
        .iter()
        .filter_map(|event| match event {
            RoomEvent::MemberRemoved { nick } => Some(nick.clone()),
            _ => None,
        })
        .collect();
    let added: Vec<String> = events
        .iter()
        .filter_map(|event| match event {
            RoomEvent::MemberAdded { nick } => Some(nick.clone()),
            _ => None,
        })
        .collect();
    let rejoined = |nick: &String| removed.contains(nick) && added.contains(nick);
    for event in events {
        match event {
            // Chat is opened by `incoming_message`; commits carry none.
            RoomEvent::Message { .. } => {}
            RoomEvent::MemberAdded { nick } if rejoined(&nick) => {
                out.notice(room, format!("{nick} is back"));
            }
            RoomEvent::MemberAdded { nick } => {
                out.events.push(Event::Joined { room: room.to_owned(), nick });
            }
            RoomEvent::MemberRemoved { nick } if !rejoined(&nick) => {
                out.events.push(Event::Left { room: room.to_owned(), nick });
            }
            RoomEvent::MemberRemoved { .. } => {}
            RoomEvent::SelfRemoved => {
                out.warn(room, "you were removed from the room's keys".into());
            }
            RoomEvent::Renewed { nick } => out.events.push(Event::Room {
                room: room.to_owned(),
                notice: RoomNotice::KeysRenewed { nick },
            }),
        }
    }
}
