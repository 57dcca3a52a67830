//! The commit in flight: a room's key change while its members vote on it.
//!
//! The relay coordinates a room's key changes without reading them (see ARCHITECTURE.md,
//! "Trust model"): only the leader commits, one commit at a time, in the room's epoch; every
//! member that is not away, the committer included, verifies the commit and votes with a
//! vote signed inside the group; the relay settles it as `vote` rules and carries the signed
//! votes with its verdict, so members check the majority themselves. A commit the connected
//! members could not carry is refused before anything is forwarded. A member that has not
//! voted by the vote deadline is taken out of the room (it can join again), so a silent
//! member cannot hold the room's keys still. A confirmed commit that adds a joiner lets it
//! in (`admission`), and its committer owes the joiner's Welcome next; an aborted one sends
//! its joiner back to the start.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::rooms::Room;
use super::{Request, SessionId, State};
use crate::mls_header::{self, CONTENT_TYPE_COMMIT};
use crate::proto::{
    self, Addition, CommitRejection, ErrorReason, MAX_ROOM_MEMBERS, RemovalReason, ServerFrame,
    SignedVote,
};
use crate::relay::vote::{Tally, Verdict};

/// How long members have to vote on a commit, by default.
pub const VOTE_DEADLINE: Duration = Duration::from_secs(5);

/// The voters a majority did not wait for: each still owes its vote by the deadline (a
/// member that never saw the commit is taken out then, and told), and one that refuses what
/// was confirmed is taken out at once.
pub(super) struct LateVoters {
    epoch: u64,
    /// The hash of the commit they are late for: a no from one pledged elsewhere is excused.
    commit: [u8; 32],
    voters: Vec<SessionId>,
    deadline: Instant,
}

/// The leader's commit while the members vote on it.
pub(super) struct CommitInFlight {
    /// The epoch the commit ends.
    epoch: u64,
    committer: SessionId,
    adds: Option<Addition>,
    /// The `Commit` frame as members got it: kept, with its confirmation, while the room
    /// re-forms, for members who come back behind it (`reclaim`).
    frame: Bytes,
    /// The commit's hash, as members sign it in their votes.
    hash: [u8; 32],
    tally: Tally,
    deadline: Instant,
}

impl Room {
    /// The `Commit` frame of the commit being voted on, if any.
    pub(super) fn in_flight_frame(&self) -> Option<Bytes> {
        self.in_flight.as_ref().map(|in_flight| in_flight.frame.clone())
    }

    /// Stops waiting for a member's vote (it went away, or left).
    pub(super) fn excuse_voter(&mut self, session: SessionId) {
        if let Some(in_flight) = self.in_flight.as_mut() {
            in_flight.tally.forget(session);
        }
    }

    /// Why the relay refuses `session`'s commit (`header` is what it could read of it), if
    /// it does: only the leader commits, one commit at a time, in the room's group and
    /// epoch, adding only a joiner waiting in that very attempt.
    fn refuse_commit(
        &self,
        session: SessionId,
        header: Option<&mls_header::MessageHeader>,
        adds: Option<&Addition>,
    ) -> Option<CommitRejection> {
        let current = self.epoch;
        match header {
            _ if !self.is_leader(session) => Some(CommitRejection::NotLeader),
            _ if self.in_flight.is_some() => Some(CommitRejection::Busy),
            None => Some(CommitRejection::NotACommit),
            Some(header) if header.epoch < current => {
                Some(CommitRejection::EpochMovedOn { attempted: header.epoch, current })
            }
            Some(header) if header.epoch > current => {
                Some(CommitRejection::EpochAhead { attempted: header.epoch, current })
            }
            Some(_) => adds
                .filter(|adds| !self.may_add(&adds.to, adds.attempt))
                .map(|_| CommitRejection::UnknownRecipient),
        }
    }
}

impl State {
    /// The leader's commit: checked as far as a relay can, then put to the vote of the other
    /// members.
    pub(super) fn commit(
        &mut self,
        request: Request,
        room_name: &str,
        commit: Vec<u8>,
        adds: Option<Addition>,
        electorate: u32,
        now: Instant,
    ) {
        let id = request.session;
        let Some(room) = self.rooms.get_mut(room_name).filter(|room| room.member(id).is_some())
        else {
            return self.error(request, ErrorReason::NotInRoom);
        };
        let header = mls_header::peek_header(&commit)
            .filter(|header| header.content_type == CONTENT_TYPE_COMMIT)
            .filter(|header| room.group_id.as_ref().is_none_or(|id| *id == header.group_id));
        let refusal = room.refuse_commit(id, header.as_ref(), adds.as_ref());
        let Some(header) = header.filter(|_| refusal.is_none()) else {
            let reason = refusal.unwrap_or(CommitRejection::NotACommit);
            return self.reject_commit(id, room_name, &commit, reason);
        };
        room.group_id.get_or_insert(header.group_id);
        let joiner = adds.as_ref().map(|adds| adds.to.clone());
        if let Some(joiner) = &joiner {
            room.leader_answered(joiner);
        }
        // Every connected member votes, the committer too; away members count in the
        // electorate and check the commit when they are back.
        let voters: Vec<SessionId> = room
            .members
            .iter()
            .map(|member| member.session)
            .filter(|session| !self.sessions.is_away(*session))
            .collect();
        // The committer's count of the members its commit keeps: the same the members check.
        let electorate =
            usize::try_from(electorate).unwrap_or(usize::MAX).clamp(1, MAX_ROOM_MEMBERS);
        let hash = proto::commit_hash(&commit);
        let tally = Tally::new(electorate, voters.clone());
        // Members back from a restart still saying yes to another commit of this epoch
        // cannot say yes to this one (`pledges`): those free to must be able to carry it.
        let bound_elsewhere = voters
            .iter()
            .filter(|voter| room.kept_pledges.elsewhere(**voter, room.epoch, &hash, now))
            .count();
        if !tally.can_win_without(bound_elsewhere) {
            // Nothing is forwarded, so nobody is bound by it: the leader sends it again later.
            return self.reject_commit(id, room_name, &commit, CommitRejection::TooManyAway);
        }
        let frame = Bytes::from(proto::encode(&ServerFrame::Commit {
            room: room_name.to_owned(),
            from: self.sessions.nick_of(id),
            commit,
            joiner,
        }));
        room.in_flight = Some(CommitInFlight {
            epoch: room.epoch,
            committer: id,
            adds,
            frame: frame.clone(),
            hash,
            tally,
            deadline: now + self.deadlines.vote,
        });
        // Away members get it too, queued: back, they check it before the confirmation that
        // follows it, and merge only what they could verify.
        let everyone: Vec<SessionId> = self
            .rooms
            .get(room_name)
            .map(|room| room.members.iter().map(|member| member.session).collect())
            .unwrap_or(voters);
        for member in everyone {
            self.send_bytes(member, frame.clone());
        }
        self.settle(room_name, now);
    }

    /// Tells a committer that its commit was not taken, naming the commit by its hash so
    /// that the answer cannot be taken for an answer about another.
    fn reject_commit(
        &mut self,
        id: SessionId,
        room_name: &str,
        commit: &[u8],
        reason: CommitRejection,
    ) {
        let commit = proto::commit_hash(commit);
        self.send(id, &ServerFrame::CommitRejected { room: room_name.to_owned(), commit, reason });
    }

    /// A member's verdict on the commit in flight. Votes for any other epoch (late, or about
    /// a commit a man in the middle made up) change nothing.
    pub(super) fn vote(
        &mut self,
        id: SessionId,
        room_name: &str,
        epoch: u64,
        accept: bool,
        vote: Vec<u8>,
        now: Instant,
    ) {
        let from = self.sessions.nick_of(id);
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        let Some(in_flight) = room.in_flight.as_mut().filter(|in_flight| in_flight.epoch == epoch)
        else {
            // A vote on a commit the majority already settled: one refusing what was
            // confirmed is out of step with the room, as an objector in time would be.
            let late = room.late_voters.as_mut().filter(|late| late.epoch == epoch);
            let Some(LateVoters { voters, commit, .. }) = late else { return };
            let Some(position) = voters.iter().position(|voter| *voter == id) else { return };
            voters.remove(position);
            let excused = room.kept_pledges.elsewhere(id, epoch, commit, now);
            if !accept && !excused {
                self.remove_from_room(id, room_name, RemovalReason::OutVoted, now);
            }
            return;
        };
        in_flight.tally.record(id, accept, SignedVote { from, vote });
        if accept {
            // A yes to this commit: whatever it kept a yes for before, it let go.
            room.kept_pledges.forget(id);
        }
        self.settle(room_name, now);
    }

    /// Applies or aborts the commit in flight once every vote is in.
    pub(super) fn settle(&mut self, room_name: &str, now: Instant) {
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        let Some(verdict) = room.in_flight.as_ref().and_then(|in_flight| in_flight.tally.verdict())
        else {
            return;
        };
        let Some(in_flight) = room.in_flight.take() else { return };
        let (epoch, hash) = (in_flight.epoch, in_flight.hash);
        let excused: Vec<SessionId> = room
            .members
            .iter()
            .map(|member| member.session)
            .filter(|session| room.kept_pledges.elsewhere(*session, epoch, &hash, now))
            .collect();
        room.late_voters = match &verdict {
            Verdict::Confirmed { .. } => Some(LateVoters {
                epoch: in_flight.epoch,
                commit: in_flight.hash,
                voters: in_flight.tally.waiting(),
                deadline: in_flight.deadline,
            }),
            _ => None,
        };
        match verdict {
            Verdict::Confirmed { votes, objectors } => {
                // A minority refused what the rest verified: they are out of step with the
                // room (or lying about it), and leave it; they may join again. Those who
                // keep a yes to another commit of the epoch stay, and merge this one on its
                // proof (`pledges`).
                for objector in objectors.into_iter().filter(|o| !excused.contains(o)) {
                    self.remove_from_room(objector, room_name, RemovalReason::OutVoted, now);
                }
                self.confirm(room_name, in_flight, votes, now);
            }
            Verdict::Refused { votes } => {
                self.abort(room_name, &in_flight, votes);
                // Refused by the noes of members pledged elsewhere, it is aborted as a tie
                // is: they did not judge it, so its committer stays.
                if in_flight.tally.refused_without(|session| excused.contains(&session)) {
                    let committer = in_flight.committer;
                    let reason = RemovalReason::KeyChangeRefused;
                    self.remove_from_room(committer, room_name, reason, now);
                }
            }
            Verdict::Undecided { votes } => self.abort(room_name, &in_flight, votes),
        }
    }

    /// Every member merges the commit; its joiner, if still waiting, is a member now, and
    /// waits for the Welcome its committer owes it.
    fn confirm(
        &mut self,
        room_name: &str,
        in_flight: CommitInFlight,
        votes: Vec<SignedVote>,
        now: Instant,
    ) {
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        room.epoch = in_flight.epoch + 1;
        let left = std::mem::take(&mut room.left_this_epoch);
        // The other finished attempts stay (the oldest go past a bound): a leader whose
        // commit for one of them was aborted sends that same commit again in the next epoch
        // it may, since it said yes to it, and its joiner may have started over meanwhile.
        if let Some(adds) = &in_flight.adds {
            room.finished_attempts
                .retain(|(nick, attempt)| *nick != adds.to || *attempt != adds.attempt);
        }
        room.advance_claims(in_flight.epoch);
        room.kept_pledges.advance(room.epoch);
        let epoch = room.epoch;
        let confirmed = ServerFrame::CommitConfirmed { room: room_name.to_owned(), epoch, votes };
        let confirmed = Bytes::from(proto::encode(&confirmed));
        room.log_commit(in_flight.epoch, in_flight.frame, confirmed.clone(), left);
        self.send_bytes_to_room(room_name, None, confirmed);
        if let Some(adds) = in_flight.adds {
            self.admit_joiner(room_name, adds, in_flight.committer, epoch, now);
        }
    }

    /// Every member discards the commit; its joiner starts its admission again.
    fn abort(&mut self, room_name: &str, in_flight: &CommitInFlight, votes: Vec<SignedVote>) {
        let epoch = in_flight.epoch;
        let aborted = ServerFrame::CommitAborted { room: room_name.to_owned(), epoch, votes };
        self.send_to_room(room_name, None, &aborted);
        if let Some(adds) = &in_flight.adds {
            self.restart_admission(room_name, &adds.to);
        }
    }

    /// Aborts the commit in flight, if there is one (its leader is losing the lead). No
    /// signed no votes go with it: members who accepted it stay bound to it, and its
    /// committer sends it again if it leads again.
    pub(super) fn abort_in_flight(&mut self, room_name: &str) {
        let in_flight = self.rooms.get_mut(room_name).and_then(|room| room.in_flight.take());
        if let Some(in_flight) = in_flight {
            self.abort(room_name, &in_flight, Vec::new());
        }
    }

    /// A member left the room mid-vote: the vote goes on without it, its committer's
    /// included (a vote already cast was signed and still counts, and the others may merge
    /// the commit without the committer: its leaf is removed next).
    pub(super) fn leave_vote(&mut self, room_name: &str, id: SessionId) {
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        room.excuse_voter(id);
    }

    /// Takes the members that did not vote in time out of their rooms, and settles the
    /// commits without them.
    pub(super) fn take_out_silent_voters(&mut self, now: Instant) {
        let late: Vec<(String, Vec<SessionId>)> = self
            .rooms
            .iter()
            .filter_map(|(name, room)| {
                let in_flight = room.in_flight.as_ref()?;
                (now >= in_flight.deadline).then(|| (name.clone(), in_flight.tally.waiting()))
            })
            .collect();
        for (room_name, silent) in late {
            for session in silent {
                self.remove_from_room(session, &room_name, RemovalReason::NoVote, now);
            }
            self.settle(&room_name, now);
        }
        let overdue: Vec<(String, Vec<SessionId>)> = self
            .rooms
            .iter_mut()
            .filter_map(|(name, room)| {
                let late = room.late_voters.take_if(|late| now >= late.deadline)?;
                Some((name.clone(), late.voters))
            })
            .collect();
        for (room_name, silent) in overdue {
            for session in silent {
                self.remove_from_room(session, &room_name, RemovalReason::NoVote, now);
            }
        }
    }
}
