//! Taking a room back as it was: members whose session the relay lost (it restarted, or
//! forgot them after the grace period) come back with their MLS group and epoch.
//!
//! After a restart the relay knows nothing, so it believes no single claim. A room re-formed
//! by `Reclaim` stays *re-forming* for one grace period; meanwhile every claim of another
//! group or epoch waits beside it as a *rival*, keeping its group (`ReclaimPending`), and
//! the room goes to whichever claim more of its members return to. Claimants of the losing
//! side are told (`ReclaimRefused { Outnumbered }`) and keep their keys. So a lie costs only
//! the liar: an insider back first with a stale epoch, or an outsider with a made-up group,
//! holds the name only until two of the real members are back, and never makes anyone
//! drop a group or run a password exchange. A room founded by a `Join` while its members may
//! still be coming back (the relay is young, or the room emptied while it re-formed)
//! re-forms too, and a claim as large as its founders wins it, since they bring no history;
//! its founders then join the claim's group as any joiner. A newcomer's `Join` reaches the group that holds
//! the room, the one most members returned to.
//!
//! A restart between the confirmations of a commit leaves some members at epoch *e* + 1 and
//! others at *e*, holding the commit they said yes to (`pledged`). Those count on the side of
//! the claim at *e* + 1 of their group, and are taken back one epoch behind; the relay hands
//! them the signed yes votes a member at *e* + 1 brought (`proof`) as a `CommitConfirmed`,
//! so they check the majority and merge the commit themselves. A member behind without such
//! a commit, or further behind, catches up on the room's log of its last confirmed commits
//! (`LoggedCommit`: kept always, bounded, and checked by the member itself) when it reaches
//! back that far, and is refused otherwise (`StaleEpoch`). A room re-formed by one claim alone
//! stays re-forming until a second member is back. Once the window closes, a claim that does
//! not match the room is refused at once (`AnotherGroup`, `StaleEpoch`); a member the room took
//! out is refused (`TakenOut`). Nothing here ever starts an admission: joining again is the
//! user's own `/join`.

use std::collections::HashSet;

use bytes::Bytes;
use tokio::time::Instant;

use super::rooms::{Entrant, Room, RoomMember};
use super::{Request, SessionId, State};
use crate::mls_header::{self, CONTENT_TYPE_COMMIT};
use crate::proto::{self, ConfirmedCommit, MergedCommit, ReclaimRefusal, ServerFrame, SignedVote};

/// A claim on a re-forming room by members of another group, or of another epoch.
pub(super) struct Rival {
    group_id: Vec<u8>,
    epoch: u64,
    members: Vec<RoomMember>,
}

/// What a returning member claimed, while its room re-forms.
#[derive(Clone, Copy)]
pub(super) struct Claim {
    epoch: u64,
    /// Whether it holds a commit of `epoch` it said yes to.
    pledged: bool,
}

/// What a returning member brought to back its claim: the proof of the commit that led to
/// its epoch, and that commit.
struct Brought<'a> {
    room: &'a str,
    /// The commit of its epoch it still says yes to, and since when (`pledges`).
    pledged: Option<([u8; 32], Instant)>,
    proof: Vec<SignedVote>,
    last_commit: Option<MergedCommit>,
    earlier: Vec<ConfirmedCommit>,
}

/// What a `Reclaim` brings besides the room's name.
pub(super) struct Claimed {
    pub(super) group_id: Vec<u8>,
    pub(super) epoch: u64,
    pub(super) pledged: Option<[u8; 32]>,
    pub(super) proof: Vec<SignedVote>,
    pub(super) last_commit: Option<MergedCommit>,
    pub(super) earlier: Vec<ConfirmedCommit>,
}

impl State {
    pub(super) fn reclaim(
        &mut self,
        request: Request,
        room_name: String,
        claimed: Claimed,
        now: Instant,
    ) {
        let Claimed { group_id, epoch, pledged, proof, last_commit, earlier } = claimed;
        let pledged_since = pledged.map(|commit| (commit, now));
        let brought =
            Brought { room: &room_name, pledged: pledged_since, proof, last_commit, earlier };
        let claim = Claim { epoch, pledged: pledged.is_some() };
        let id = request.session;
        let present = self.rooms.get(&room_name).filter(|room| {
            room.member(id).is_some()
                && room.group_id.as_deref() == Some(group_id.as_slice())
                && room.epoch == epoch
        });
        if let Some(room) = present {
            // Still a member, as it was (a relay in the middle told it otherwise): nothing
            // changes, and it hears so.
            let (members, epoch) = (room.member_nicks(), room.epoch);
            return self.send(id, &ServerFrame::Reclaimed { room: room_name, members, epoch });
        }
        if proto::is_dm_room_name(&room_name) && room_name != proto::dm_room_name(&group_id) {
            // Only who holds a direct message's group id may enter its room, so an outsider
            // who guesses who talks to whom can neither squat the name nor disturb the room.
            let refusal = ReclaimRefusal::Unavailable(proto::ErrorReason::RoomNameInvalid);
            return self.refuse_reclaim(id, &room_name, refusal);
        }
        let entrant = match self.check_entry(id, &room_name) {
            Ok(entrant) => entrant,
            Err(reason) => {
                return self.refuse_reclaim(id, &room_name, ReclaimRefusal::Unavailable(reason));
            }
        };
        let reforming_for = self.deadlines.grace;
        let Some(room) = self.rooms.get_mut(&room_name) else {
            let mut room = Room {
                group_id: Some(group_id.clone()),
                epoch,
                reforming_until: Some(now + reforming_for),
                ..Room::default()
            };
            room.note_claim(id, claim, &group_id, brought);
            self.rooms.insert(room_name.clone(), room);
            return self.take_back(id, &room_name, entrant, epoch);
        };
        let same_group = room.group_id.as_deref() == Some(group_id.as_slice());
        let reforming = room.reforming_until.is_some_and(|until| now < until);
        if same_group && room.epoch == epoch {
            if room.left_this_epoch.contains(&entrant.nick) {
                // The room took it out (its removal is owed or being voted on).
                return self.refuse_reclaim(id, &room_name, ReclaimRefusal::TakenOut);
            }
            room.note_claim(id, claim, &group_id, brought);
            // A commit of its epoch in flight goes to it too, as to an away member: it checks
            // it, and merges it on the confirmation that follows, or drops it on the abort.
            // (Refusing it the room for a vote it had no part in took honest members out.)
            let in_flight = room.in_flight_frame();
            self.take_back(id, &room_name, entrant, epoch);
            if let Some(frame) = in_flight {
                self.send_bytes(id, frame);
            }
            return self.catch_up(&room_name, now);
        }
        let behind_by_its_commit = epoch + 1 == room.epoch && claim.pledged;
        let one_ahead = epoch == room.epoch + 1 && room.in_flight.is_none();
        if same_group && room.logged_since(epoch, &entrant.nick) {
            // Behind the room by commits it logged: taken back where it was, and sent those
            // commits and their confirmations, as an away member is.
            let frames = room.log_since(epoch);
            let caught_up = Claim { epoch: room.epoch, pledged: false };
            room.note_claim(id, caught_up, &group_id, brought);
            self.take_back(id, &room_name, entrant, epoch);
            for frame in frames {
                self.send_bytes(id, frame);
            }
            return self.catch_up(&room_name, now);
        }
        if same_group && claim.pledged && room.taken_out_since(epoch, &entrant.nick) {
            // It holds a commit of its own epoch, and the room took it out at the commit that
            // won that epoch instead: there is nothing it could catch up on, and waiting
            // beside the room would change nothing. Its user's `/join` brings it back. (A
            // member merely forgotten hears below that the room moved on.)
            return self.refuse_reclaim(id, &room_name, ReclaimRefusal::TakenOut);
        }
        if same_group && epoch < room.epoch && room.founded_while_reforming {
            // The relay saw every epoch of this room since its founding: a claim behind it is
            // stale, not a rival (it cannot be a liar's made-up epoch).
            return self.refuse_reclaim(id, &room_name, ReclaimRefusal::StaleEpoch);
        }
        if same_group && reforming && (behind_by_its_commit || one_ahead) {
            // One restart apart from the holders, across the confirmation of one commit: the
            // same side, which catches up on the proof of whoever is ahead.
            if one_ahead {
                room.founded_while_reforming = false;
                room.epoch = epoch;
                room.left_this_epoch.clear();
                room.finished_attempts.clear();
            }
            room.note_claim(id, claim, &group_id, brought);
            self.take_back(id, &room_name, entrant, epoch);
            return self.catch_up(&room_name, now);
        }
        if !reforming {
            let reason =
                if same_group { ReclaimRefusal::StaleEpoch } else { ReclaimRefusal::AnotherGroup };
            return self.refuse_reclaim(id, &room_name, reason);
        }
        // Re-forming: the claim waits beside the room, and may win it.
        room.note_claim(id, claim, &group_id, brought);
        let Entrant { nick, outbound } = entrant;
        let member = RoomMember { session: id, nick, outbound, join_epoch: epoch };
        let position = room
            .rivals
            .iter()
            .position(|rival| rival.group_id == group_id && rival.epoch == epoch)
            .unwrap_or_else(|| {
                room.rivals.push(Rival { group_id, epoch, members: Vec::new() });
                room.rivals.len() - 1
            });
        room.rivals[position].members.push(member);
        if let Some(session) = self.sessions.get_mut(id) {
            session.rooms.push(room_name.clone());
        }
        self.settle_claims(&room_name);
        self.catch_up(&room_name, now);
    }

    /// Hands the room to the largest claim if it outnumbers the holders; tells every waiting
    /// claimant where things stand. A claim counts with the claimants one epoch behind it in
    /// its group that hold the commit between (they come along, behind).
    pub(super) fn settle_claims(&mut self, room_name: &str) {
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        let Some(largest) = (0..room.rivals.len()).max_by_key(|&i| room.side_of(i).len()) else {
            return;
        };
        let claim = room.side_of(largest).len();
        // Founders bring no history only until their room's epoch first moves.
        let fresh = room.founded_while_reforming && room.epoch == 0;
        let wins = claim > room.members.len() || (fresh && claim >= room.members.len());
        if wins && room.in_flight.is_none() {
            let behind = room.side_of(largest)[room.rivals[largest].members.len()..].to_vec();
            let mut winner = room.rivals.remove(largest);
            for rival in &mut room.rivals {
                let (coming, staying) =
                    rival.members.drain(..).partition(|member| behind.contains(&member.session));
                winner.members.extend(coming);
                rival.members = staying;
            }
            room.rivals.retain(|rival| !rival.members.is_empty());
            let displaced = std::mem::take(&mut room.members);
            let joiners: Vec<SessionId> = room.pending.drain(..).map(|j| j.session).collect();
            room.group_id = Some(winner.group_id);
            room.epoch = winner.epoch;
            // The log was the displaced group's; the winners may have brought their last commit.
            room.commit_log.clear();
            room.log_brought_commits();
            room.founded_while_reforming = false;
            room.left_this_epoch.clear();
            room.members = winner.members;
            let (members, epoch) = (room.member_nicks(), room.epoch);
            let back: Vec<SessionId> = room.members.iter().map(|member| member.session).collect();
            // Those that came along one epoch behind without the commit between (they never
            // saw it) get it from the log, which the winners' claims filled.
            let mut replays = Vec::new();
            for member in &room.members {
                let Some(claim) = room.claims.get(&member.session).copied() else { continue };
                let proven_by_its_pledge = claim.pledged && claim.epoch + 1 == epoch;
                if claim.epoch < epoch
                    && !proven_by_its_pledge
                    && room.logged_since(claim.epoch, &member.nick)
                {
                    replays.push((member.session, room.log_since(claim.epoch)));
                }
            }
            for (session, _) in &replays {
                room.claims.insert(*session, Claim { epoch, pledged: false });
            }
            for session in displaced.iter().map(|member| member.session).chain(joiners) {
                self.forget_room_of(session, room_name);
                self.refuse_reclaim(session, room_name, ReclaimRefusal::Outnumbered);
            }
            for session in back {
                let members = members.clone();
                let frame = ServerFrame::Reclaimed { room: room_name.into(), members, epoch };
                self.send(session, &frame);
            }
            for (session, frames) in replays {
                for frame in frames {
                    self.send_bytes(session, frame);
                }
            }
        }
        let Some(room) = self.rooms.get(room_name) else { return };
        let holders = u32::try_from(room.members.len()).unwrap_or(u32::MAX);
        let waiting: Vec<(SessionId, u32)> = room
            .rivals
            .iter()
            .flat_map(|rival| {
                let ours = u32::try_from(rival.members.len()).unwrap_or(u32::MAX);
                rival.members.iter().map(move |member| (member.session, ours))
            })
            .collect();
        for (session, ours) in waiting {
            let frame = ServerFrame::ReclaimPending { room: room_name.into(), ours, holders };
            self.send(session, &frame);
        }
    }

    /// Drops a waiting claimant (it left, or its session ended). Returns whether it waited.
    pub(super) fn drop_claim(&mut self, id: SessionId, room_name: &str) -> bool {
        let Some(room) = self.rooms.get_mut(room_name) else { return false };
        let before: usize = room.rivals.iter().map(|rival| rival.members.len()).sum();
        for rival in &mut room.rivals {
            rival.members.retain(|member| member.session != id);
        }
        room.rivals.retain(|rival| !rival.members.is_empty());
        let after: usize = room.rivals.iter().map(|rival| rival.members.len()).sum();
        if before != after {
            self.forget_room_of(id, room_name);
        }
        before != after
    }

    /// The room lost its last holder while claims wait: the largest takes it.
    pub(super) fn hand_to_claimants(&mut self, room_name: &str, now: Instant) -> bool {
        let has_rivals = self.rooms.get(room_name).is_some_and(|room| !room.rivals.is_empty());
        if has_rivals {
            self.settle_claims(room_name);
            self.catch_up(room_name, now);
        }
        has_rivals
    }

    /// Members taken back behind the room's epoch: those one epoch behind that hold the
    /// commit between get the proof of it, as soon as someone brought it; the others cannot
    /// catch up, and are refused.
    pub(super) fn catch_up(&mut self, room_name: &str, now: Instant) {
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        let Some(group_id) = room.group_id.clone() else { return };
        let target = room.epoch;
        let proof = room.proofs.get(&(group_id, target)).cloned();
        let mut proven = Vec::new();
        let mut stale = Vec::new();
        for member in &room.members {
            let Some(claim) = room.claims.get(&member.session) else { continue };
            if claim.epoch >= target {
                continue;
            }
            if claim.epoch + 1 == target && claim.pledged {
                if proof.is_some() {
                    proven.push(member.session);
                }
            } else {
                stale.push(member.session);
            }
        }
        for session in &proven {
            room.claims.insert(*session, Claim { epoch: target, pledged: false });
        }
        if let Some(votes) = proof {
            let frame =
                ServerFrame::CommitConfirmed { room: room_name.to_owned(), epoch: target, votes };
            for session in proven {
                self.send(session, &frame);
            }
        }
        for session in stale {
            if self.leave_room(session, room_name, now) {
                self.refuse_reclaim(session, room_name, ReclaimRefusal::StaleEpoch);
            }
        }
    }

    /// Until when a room founded now by a `Join` stays re-forming, if it does: while the
    /// relay is young (its rooms' members may still come back to reclaim them), or when the
    /// room emptied while it re-formed. Otherwise a joiner whose admission a restart cut
    /// short would found the room anew and refuse its returning members (`AnotherGroup`).
    pub(super) fn reclaim_window(&self, room_name: &str, now: Instant) -> Option<Instant> {
        let grace = self.deadlines.grace;
        let young = self.first_frame_at.map(|first| first + grace).filter(|until| now < *until);
        let emptied = self.reforming_names.get(room_name).copied().filter(|until| now < *until);
        young.max(emptied)
    }

    /// Ends the re-forming windows that closed: claims still waiting lost.
    ///
    /// A room re-formed by one member's claim stays re-forming, one grace period at a time,
    /// until a second member is back: a lone claim is no evidence of a room (an outsider's
    /// made-up group is one claim too), so it holds the name only until more of the real
    /// members return, however late (a laptop that slept through the restart). A room
    /// founded by a `Join` is not kept open that way, or anyone could take a new room from
    /// its lone founder at any time.
    pub(super) fn close_reforming(&mut self, now: Instant) {
        self.reforming_names.retain(|_, until| now < *until);
        let grace = self.deadlines.grace;
        let closed: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, room)| room.reforming_until.is_some_and(|until| now >= until))
            .map(|(name, _)| name.clone())
            .collect();
        for room_name in closed {
            let Some(room) = self.rooms.get_mut(&room_name) else { continue };
            if room.members.len() < 2
                && !room.founded_while_reforming
                && room.lone_extensions < MAX_LONE_EXTENSIONS
            {
                // Still open to a larger claim: more members may yet return to either side.
                room.lone_extensions += 1;
                room.reforming_until = Some(now + grace);
                continue;
            }
            if room.members.len() < 2 && !room.founded_while_reforming {
                // Still open to a larger claim later; but those waiting now did not outnumber
                // it in several grace periods, and are not kept waiting for ever.
                room.reforming_until = Some(now + grace);
            } else {
                room.reforming_until = None;
                room.claims.clear();
                room.proofs.clear();
                room.brought_commits.clear();
            }
            let losers: Vec<SessionId> = room
                .rivals
                .drain(..)
                .flat_map(|rival| rival.members.into_iter().map(|member| member.session))
                .collect();
            for session in losers {
                self.forget_room_of(session, &room_name);
                self.refuse_reclaim(session, &room_name, ReclaimRefusal::Outnumbered);
            }
        }
    }

    /// Whether rival claims wait on a room being re-formed: a deadline will still settle
    /// them, however quiet the links are (the simulation's quiet end waits for it).
    #[cfg(test)]
    pub fn claims_waiting(&self) -> bool {
        self.rooms.values().any(|room| !room.rivals.is_empty())
    }

    fn take_back(&mut self, id: SessionId, room_name: &str, entrant: Entrant, epoch: u64) {
        let Some(room) = self.rooms.get_mut(room_name) else { return };
        let Entrant { nick, outbound } = entrant;
        room.members.push(RoomMember {
            session: id,
            nick: nick.clone(),
            outbound,
            join_epoch: epoch,
        });
        let (members, epoch) = (room.member_nicks(), room.epoch);
        if let Some(session) = self.sessions.get_mut(id) {
            session.rooms.push(room_name.to_owned());
        }
        self.send(id, &ServerFrame::Reclaimed { room: room_name.to_owned(), members, epoch });
        let notice = ServerFrame::MemberJoined { room: room_name.to_owned(), nick, epoch };
        self.send_to_room(room_name, Some(id), &notice);
        // A member back may outnumber nobody, but claimants waiting should know the count.
        self.settle_claims(room_name);
    }

    pub(super) fn refuse_reclaim(
        &mut self,
        id: SessionId,
        room_name: &str,
        reason: ReclaimRefusal,
    ) {
        self.send(id, &ServerFrame::ReclaimRefused { room: room_name.to_owned(), reason });
    }
}

/// How many grace periods claims may wait beside a room held by one claim alone before
/// they are refused (the room itself stays open to a larger claim).
const MAX_LONE_EXTENSIONS: u8 = 3;

/// How many confirmed commits a room keeps for members coming back behind them, and how
/// many bytes they may take at most (a confirmation carries the signed votes of more than
/// half of the room: about 100 KB for a room of 1000).
const MAX_COMMIT_LOG: usize = 16;
const MAX_COMMIT_LOG_BYTES: usize = 2 << 20;

/// A commit the room confirmed: the epoch it ended, the `Commit` frame and its
/// `CommitConfirmed` as members got them, and who left during that epoch (whose removal it
/// may have been: they are not taken back behind it).
pub(super) struct LoggedCommit {
    epoch: u64,
    commit: Bytes,
    confirmed: Bytes,
    left: HashSet<String>,
}

impl LoggedCommit {
    fn bytes(&self) -> usize {
        self.commit.len() + self.confirmed.len()
    }
}

impl Room {
    /// Keeps a confirmed commit, dropping the oldest past the bounds.
    pub(super) fn log_commit(
        &mut self,
        epoch: u64,
        commit: Bytes,
        confirmed: Bytes,
        left: HashSet<String>,
    ) {
        self.commit_log.push(LoggedCommit { epoch, commit, confirmed, left });
        let mut bytes: usize = self.commit_log.iter().map(LoggedCommit::bytes).sum();
        while self.commit_log.len() > MAX_COMMIT_LOG || bytes > MAX_COMMIT_LOG_BYTES {
            let oldest = self.commit_log.remove(0);
            bytes -= oldest.bytes();
        }
    }

    /// Whether the log holds every commit from `epoch` to the room's, none of them made
    /// while `nick` was leaving.
    fn logged_since(&self, epoch: u64, nick: &str) -> bool {
        let logged = |wanted| self.commit_log.iter().find(|entry| entry.epoch == wanted);
        epoch < self.epoch
            && !self.left_this_epoch.contains(nick)
            && (epoch..self.epoch)
                .all(|wanted| logged(wanted).is_some_and(|entry| !entry.left.contains(nick)))
    }

    /// Whether `nick` left the room, or was taken out of it, at a commit logged since `epoch`.
    fn taken_out_since(&self, epoch: u64, nick: &str) -> bool {
        epoch < self.epoch
            && self.commit_log.iter().any(|entry| entry.epoch >= epoch && entry.left.contains(nick))
    }

    /// The frames that bring a member from `epoch` to the room's, in order.
    fn log_since(&self, epoch: u64) -> Vec<Bytes> {
        let mut entries: Vec<&LoggedCommit> =
            self.commit_log.iter().filter(|entry| entry.epoch >= epoch).collect();
        entries.sort_by_key(|entry| entry.epoch);
        entries
            .into_iter()
            .flat_map(|entry| [entry.commit.clone(), entry.confirmed.clone()])
            .collect()
    }

    /// The room confirmed the commit that ends `epoch`: members that were at it are at the
    /// next one (those behind it fall further behind, and cannot catch up any more).
    pub(super) fn advance_claims(&mut self, epoch: u64) {
        for member in &self.members {
            if let Some(claim) = self.claims.get_mut(&member.session)
                && claim.epoch == epoch
            {
                *claim = Claim { epoch: epoch + 1, pledged: false };
            }
        }
    }

    /// Remembers what a returning member claimed, and the proof it brought, while the room
    /// re-forms. A member of the room's group at the room's epoch may bring the commit that
    /// led there with its proof: the room logs it (unless its log has it), so that a member
    /// back later, one epoch behind, catches up on it although the relay restarted since.
    fn note_claim(&mut self, id: SessionId, claim: Claim, group_id: &[u8], brought: Brought<'_>) {
        self.claims.insert(id, claim);
        let Brought { room, pledged, proof, last_commit, earlier } = brought;
        if let Some((commit, since)) = pledged.filter(|_| claim.pledged) {
            self.kept_pledges.keep(id, claim.epoch, commit, since);
        }
        if proof.is_empty() {
            return;
        }
        let last = last_commit.map(|commit| ConfirmedCommit {
            reached: claim.epoch,
            commit,
            votes: proof.clone(),
        });
        // Only a chain that ends at the claim's epoch: each commit led to the next.
        let chain = last.into_iter().chain(earlier).enumerate().take_while(|(back, confirmed)| {
            claim.epoch.checked_sub(*back as u64) == Some(confirmed.reached)
        });
        for (_, confirmed) in chain.filter(|(_, confirmed)| confirmed.reached > 0) {
            let ConfirmedCommit { reached, commit: MergedCommit { from, commit, joiner }, votes } =
                confirmed;
            // A commit of this group that ends the epoch before `reached`, as its header says:
            // a claimant cannot file one commit under another epoch (members would be handed
            // a commit they cannot use, and be taken out for it).
            let fits = mls_header::peek_header(&commit).is_some_and(|header| {
                header.group_id == group_id
                    && header.epoch + 1 == reached
                    && header.content_type == CONTENT_TYPE_COMMIT
            });
            if !fits {
                continue;
            }
            let commit = ServerFrame::Commit { room: room.to_owned(), from, commit, joiner };
            let confirmed =
                ServerFrame::CommitConfirmed { room: room.to_owned(), epoch: reached, votes };
            let frames =
                (Bytes::from(proto::encode(&commit)), Bytes::from(proto::encode(&confirmed)));
            self.brought_commits.entry((group_id.to_vec(), reached)).or_insert(frames);
        }
        self.proofs.entry((group_id.to_vec(), claim.epoch)).or_insert(proof);
        self.log_brought_commits();
    }

    /// Logs the commits that led to the room's epoch, as far back as members of its group
    /// brought them without a gap, where the log lacks them.
    fn log_brought_commits(&mut self) {
        let Some(group_id) = self.group_id.clone() else { return };
        let mut reached = self.epoch;
        while reached > 0 {
            let Some((commit, confirmed)) = self.brought_commits.get(&(group_id.clone(), reached))
            else {
                return;
            };
            let ended = reached - 1;
            if !self.commit_log.iter().any(|entry| entry.epoch == ended) {
                let (commit, confirmed) = (commit.clone(), confirmed.clone());
                self.log_commit(ended, commit, confirmed, HashSet::new());
            }
            reached = ended;
        }
    }

    /// The sessions on the side of rival claim `index`: its own, then those of other claims
    /// of its group behind it that can catch up with it: one epoch behind holding the commit
    /// between, or behind by commits a claimant brought, all of them.
    fn side_of(&self, index: usize) -> Vec<SessionId> {
        let rival = &self.rivals[index];
        let mut side: Vec<SessionId> = rival.members.iter().map(|member| member.session).collect();
        let brought_from = |epoch: u64| {
            (epoch + 1..=rival.epoch).all(|reached| {
                self.brought_commits.contains_key(&(rival.group_id.clone(), reached))
            })
        };
        for other in &self.rivals {
            if other.group_id != rival.group_id || other.epoch >= rival.epoch {
                continue;
            }
            let all_brought = brought_from(other.epoch);
            let one_behind = other.epoch + 1 == rival.epoch;
            side.extend(other.members.iter().map(|member| member.session).filter(|session| {
                all_brought || (one_behind && self.claims.get(session).is_some_and(|c| c.pledged))
            }));
        }
        side
    }
}
