//! One room as this client sees it: joining, membership, votes, and the commits a leader
//! owes the room.
//!
//! Sans-IO like `mls`: each method takes what arrived and returns or queues the frames to
//! send, pushing user-facing events into an [`Outbox`]. The engine does the sending.
//!
//! The room's phases are the variants of [`Phase`], and each owns what only it may use: the
//! password exchange lives in `Admitting`, the memory of a group we were taken out of rides
//! along the joining phases, and the MLS group exists only in `Member`. So a Welcome is
//! accepted only in `AwaitingWelcome` — after our own password exchange — and a commit is
//! judged only by a member; anything out of turn is refused with a warning.
//!
//! Key changes (ARCHITECTURE.md, "Trust model"): only the leader commits, one commit at a
//! time, from a queue of [`Intent`]s (admit a joiner, remove a departed member). Every other
//! member verifies the commit, checks it against the room's `commit_policy`, and votes with
//! a signature inside the group; it merges only on the signed yes of more than half of the
//! commit's electorate, carried with the relay's confirmation.
//!
//! This file holds the phases, the relay's member list and the dispatch of a member's frames;
//! each job has its own file:
//! - `admission`: the password exchange and the Welcome, as joiner and as leader;
//! - `leader`: the commits a leader owes, sent again unchanged, and its back-off;
//! - `votes`: judging a commit, signing the verdict, counting a confirmation or an abort;
//! - `pledge`: the one commit we said yes to, and when we are free of it;
//! - `reclaim`: asking for our place back after the relay forgot us;
//! - `chat`: our lines out, everyone else's in, and what could not be read.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use super::ballot::{Ballot, Count, Pledge, commit_hash};
use super::commit_policy::{self, PolicyViolation, RoomView};
use super::gaps::SenderGaps;
use super::rejoin::{self, Departed, RejoinRefusal};
use super::{Event, RoomNotice};
use crate::admission::{AdmissionError, JoinerAdmission, LeaderAdmission};
use crate::mls::{MlsError, MlsMember, OwnKeyPackage, RoomEvent, RoomGroup, RoomSuite};
use crate::proto::{
    self, Addition, AdmissionRefusal, ChatEnvelope, ChatPayload, ClientFrame, CommitRejection,
    ConfirmedCommit, Farewell, GroupMessage, MAX_APPLICATION_LEN, MergedCommit, ReclaimRefusal,
    RemovalReason, ServerFrame, SignedVote, VoteStatement, Welcome,
};
use crate::secret::Secret;

mod admission;
mod chat;
mod dm;
mod leader;
mod pledge;
mod reclaim;
mod renewal;
mod votes;

pub use dm::HeardSignal;
use leader::{Intent, OwnCommit, backoff_ticks};
use pledge::StagedVote;
use reclaim::MAX_EARLIER_COMMITS;
pub use renewal::DEFAULT_RENEW_AFTER;
use renewal::LeafAges;

/// Why a room operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("not in the room yet")]
    NotMember,
    #[error("{0} arrived out of turn")]
    OutOfTurn(&'static str),
    #[error("message too long once encrypted: {len} bytes, at most {max}")]
    TooLong { len: usize, max: usize },
    #[error(transparent)]
    Mls(#[from] MlsError),
    #[error("admission failed: {0}")]
    Admission(#[from] AdmissionError),
    #[error("not rejoining: {0}")]
    Rejoin(#[from] RejoinRefusal),
    #[error("the welcome's group breaks the room's rules: {0}")]
    UnsafeGroup(PolicyViolation),
    #[error("{0}")]
    Policy(#[from] PolicyViolation),
    #[error("the welcome is for a group without {0}, the leader who admitted you")]
    WithoutLeader(String),
}

/// Where a room stands for this client.
pub enum Phase {
    /// Sent `Join`; waiting to hear whether we create the room or are admitted to it.
    Requested { departed: Option<Departed> },
    /// Ran our half of the password exchange; waiting for the leader's.
    Admitting { leader: String, admission: Box<JoinerAdmission>, departed: Option<Departed> },
    /// Sent our sealed KeyPackage; waiting for the Welcome (or a refusal). Only this
    /// attempt's KeyPackage has private keys (dropping it deletes them), so only a Welcome
    /// made for this attempt can be taken.
    AwaitingWelcome { leader: String, departed: Option<Departed>, _attempt_keys: OwnKeyPackage },
    /// In the group.
    Member(Box<Membership>),
    /// In the group, asking a relay that forgot our session (it restarted, or we were away
    /// too long) to take us back into the room as we were (`Reclaim`).
    Reclaiming(Box<Membership>),
    /// Out of the room, and staying out until the user joins again: the room could not be
    /// taken back as it was, and nothing a relay sends starts a password exchange by itself.
    Gone,
}

/// Ticks (five seconds each) a member taken back behind the room waits for the commits it
/// missed: the relay hands them over with the `Reclaimed`, so a few ticks cover a slow link.
const MAX_BEHIND_TICKS: u8 = 6;

/// What only a member has: the group, and the key changes in progress.
pub struct Membership {
    group: RoomGroup,
    /// As leader: work owed to the room as commits, in order.
    intents: VecDeque<Intent>,
    /// As leader: our commit, sent to the relay, and what it was for.
    own_commit: Option<OwnCommit>,
    /// As leader: joiners in the middle of the password exchange, with the relay's number
    /// for their attempt.
    admissions: HashMap<String, (u64, LeaderAdmission)>,
    /// Another member's commit we accepted and staged, until the room settles it (kept
    /// across an abort that proves nothing, so that the same commit can be voted on again).
    voted: Option<StagedVote>,
    /// The one commit we said yes to in the current epoch (see `ballot`).
    pledge: Option<Pledge>,
    /// The commit we signed yes to in this epoch, even once the pledge was let go (after a
    /// relay restart): we never sign no to it.
    said_yes: Option<Pledge>,
    /// Set when the relay aborted the vote on the commit we pledged to without proof that
    /// it lost (from then on it wins only if the relay puts it to the vote again): the
    /// leaves whose signed no that abort carried.
    pledge_aborted: Option<Vec<u32>>,
    /// The last commit we refused, and who made it: to name it when the room aborts it.
    refused: Option<(u64, String)>,
    /// A valid commit that removes us, which we refused, and who made it. If the room
    /// confirms it with the signed yes of a majority of the members it keeps, we are out of
    /// the group and say so, rather than stay in a group nobody else is in.
    refused_removal: Option<(Ballot, String)>,
    /// The commit we last refused because we said yes to another of the epoch: merged if
    /// the room proves it won (`Room::merge_proven_rival`).
    refused_rival: Option<MergedCommit>,
    /// The epoch in which we last warned that the room may be split (once per epoch).
    split_warned: Option<u64>,
    /// The farewells of members who left during this epoch, by leaf: they count as votes.
    farewells: Vec<(u32, Farewell)>,
    /// Votes we opened, by the hash of their bytes, with their sender's leaf and what it
    /// signed: opening one uses up its message key, so a vote carried again (by a later
    /// confirmation, after an abort or a forged partial confirmation) is read from here.
    opened_votes: HashMap<[u8; 32], (u32, VoteStatement)>,
    /// How old each leaf's keys are, and our own renewal in progress (`renewal`).
    ages: LeafAges,
    /// Ticks to wait, after taking the room back on a relay that lost it, before removing
    /// members it does not list: they may be on their way back too.
    hold_removals: u8,
    /// As leader, ticks to wait before the next commit (or the same one again) after the
    /// room refused ours or could not decide it: one at first, doubling with each refusal in
    /// a row up to [`MAX_COMMIT_WAIT_TICKS`], so a room that keeps refusing (one member
    /// refusing everything in a room of two) is neither flooded nor churned.
    commit_wait_ticks: u8,
    /// Our commits the room refused in a row since the epoch or the membership last moved.
    refusals_in_a_row: u8,
    /// The signed yes votes of the last commit we merged, and the epoch it brought us to:
    /// after a relay restart, members still one epoch behind check and merge that commit on
    /// them (`ClientFrame::Reclaim::proof`).
    last_proof: Option<(u64, Vec<SignedVote>)>,
    /// Our own signed yes, and the ballot it is about: it goes into `last_proof` in place of
    /// whatever the relay's confirmation carried in our name, which nobody else could check
    /// if the relay forged it (a room of two that merged on our yes alone would then hand
    /// a member back behind a proof that proves nothing).
    own_yes: Option<(VoteStatement, Vec<u8>)>,
    /// The commit that `last_proof` confirms, as the room got it (`ClientFrame::Reclaim`).
    last_commit: Option<MergedCommit>,
    /// The commits merged before that one, newest first, with their proofs (at most
    /// [`MAX_EARLIER_COMMITS`]): brought on a `Reclaim` for members further behind.
    earlier: VecDeque<ConfirmedCommit>,
    /// Ticks left to keep, after a relay restart, the commit we said yes to: long enough for
    /// the proof to come if others merged it; then it goes, as the vote on it went.
    pledge_kept_ticks: u8,
    /// Ticks spent behind the room the relay took us back into (`Room::behind`), waiting for
    /// the commits we missed. Past [`MAX_BEHIND_TICKS`] they are not coming: we say so and
    /// leave, rather than sit in an epoch nobody else is in.
    behind_ticks: u8,
    /// The room's epoch when the relay took us back behind it (`Reclaimed`): the commits
    /// before it that the relay replays from its log were decided while we were away.
    catch_up_to: Option<u64>,
}

impl Membership {
    fn new(group: RoomGroup) -> Box<Self> {
        Box::new(Membership {
            group,
            intents: VecDeque::new(),
            own_commit: None,
            admissions: HashMap::new(),
            voted: None,
            pledge: None,
            said_yes: None,
            pledge_aborted: None,
            refused: None,
            refused_removal: None,
            refused_rival: None,
            split_warned: None,
            farewells: Vec::new(),
            opened_votes: HashMap::new(),
            ages: LeafAges::default(),
            hold_removals: 0,
            commit_wait_ticks: 0,
            refusals_in_a_row: 0,
            last_proof: None,
            own_yes: None,
            last_commit: None,
            earlier: VecDeque::new(),
            pledge_kept_ticks: 0,
            behind_ticks: 0,
            catch_up_to: None,
        })
    }
}

/// How a Welcome went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Welcomed {
    /// We are in the room for the first time.
    Joined,
    /// We are back in the group we were taken out of; these joined while we were out.
    Rejoined { newcomers: Vec<String> },
}

/// Events and frames produced while handling one input.
#[derive(Default)]
pub struct Outbox {
    pub events: Vec<Event>,
    pub frames: Vec<ClientFrame>,
    /// Direct-message signals heard, for the client core (`client::core::dm`).
    pub signals: Vec<HeardSignal>,
}

impl Outbox {
    fn warn(&mut self, room: &str, text: String) {
        self.events.push(Event::Warning { room: Some(room.to_owned()), text });
    }

    fn notice(&mut self, room: &str, text: String) {
        self.events.push(Event::Notice { room: Some(room.to_owned()), text });
    }
}

/// One room and everything this client tracks about it.
pub struct Room {
    pub name: String,
    /// Kept while we are in the room: any member may become leader and must then check
    /// joiners' passwords, and a member taken out of the room joins again with it. Never
    /// leaves this process.
    password: Secret,
    pub phase: Phase,
    /// Members in the relay's order; the first is the leader.
    pub relay_members: Vec<String>,
    /// Our running number of chat messages sent to this room.
    sent_messages: u64,
    /// The running numbers of everyone else's, to see gaps.
    gaps: SenderGaps,
    /// Members whose connection dropped, as the relay last said.
    pub away: std::collections::HashSet<String>,
    /// Whether our join goes out at the next tick rather than now (see `reclaim_or_defer`).
    join_deferred: bool,
    /// How many ticks members keep their leaf keys before renewing them (`renewal`).
    renew_after_ticks: u32,
    /// A direct message whose room the relay has not opened yet: its first `Reclaimed` is
    /// its opening (the core says so), not a return.
    opening: bool,
    /// Our nickname, as a joiner names itself in the password exchange (`join_frame`).
    joiner_nick: String,
    /// Our half of the password exchange sent with our last `Join`, until the relay says who
    /// leads (`Phase::Admitting` then holds it) or that we founded the room (it goes).
    sent_admission: Option<Box<JoinerAdmission>>,
}

impl Room {
    pub fn new(name: String, password: Secret) -> Self {
        Room {
            name,
            password,
            phase: Phase::Requested { departed: None },
            relay_members: Vec::new(),
            sent_messages: 0,
            gaps: SenderGaps::default(),
            away: std::collections::HashSet::new(),
            join_deferred: false,
            renew_after_ticks: renewal::ticks(DEFAULT_RENEW_AFTER),
            opening: false,
            joiner_nick: String::new(),
            sent_admission: None,
        }
    }

    /// The same room, joined as `nick` (the name our password exchange gives).
    pub fn joining_as(mut self, nick: &str) -> Self {
        self.joiner_nick = nick.to_owned();
        self
    }

    pub fn is_member(&self) -> bool {
        matches!(self.phase, Phase::Member(_))
    }

    /// Whether we are joining: asked to, in the password exchange, or waiting for the
    /// Welcome. Only then may an admission be refused.
    pub fn joining(&self) -> bool {
        matches!(
            self.phase,
            Phase::Requested { .. } | Phase::Admitting { .. } | Phase::AwaitingWelcome { .. }
        )
    }

    /// Whether we founded the room's group in this very join and nothing happened in it
    /// yet: alone, at its first epoch. Such a room has nothing to lose.
    pub fn freshly_founded(&self) -> bool {
        match &self.phase {
            Phase::Member(membership) => {
                membership.group.epoch() == 0 && membership.group.members().len() == 1
            }
            _ => false,
        }
    }

    /// Whether we asked to join and wait for the relay's answer.
    pub fn join_requested(&self) -> bool {
        matches!(self.phase, Phase::Requested { .. })
    }

    /// Whether we run our half of the password exchange and wait for the leader's.
    pub fn admitting(&self) -> bool {
        matches!(self.phase, Phase::Admitting { .. })
    }

    /// Whether our own password exchange is done and only the Welcome is missing.
    pub fn awaiting_welcome(&self) -> bool {
        matches!(self.phase, Phase::AwaitingWelcome { .. })
    }

    /// Whether we are joining a group we were taken out of.
    /// Whether the relay took us back into a room that is epochs ahead of our group, whose
    /// commits we are still catching up on: a line encrypted now would be for an epoch the
    /// others have left, and the relay passes it to none of them.
    pub fn behind(&self) -> bool {
        matches!(&self.phase, Phase::Member(membership)
            if membership.catch_up_to.is_some_and(|room| room > membership.group.epoch()))
    }

    pub fn rejoining(&self) -> bool {
        matches!(
            &self.phase,
            Phase::Requested { departed: Some(_) }
                | Phase::Admitting { departed: Some(_), .. }
                | Phase::AwaitingWelcome { departed: Some(_), .. }
                | Phase::Reclaiming(_)
        )
    }

    /// Whether we are asking to be taken back into the room with our group as it was.
    pub fn reclaiming(&self) -> bool {
        matches!(self.phase, Phase::Reclaiming(_))
    }

    pub fn leader(&self) -> Option<&str> {
        self.relay_members.first().map(String::as_str)
    }

    pub fn group(&self) -> Option<&RoomGroup> {
        match &self.phase {
            Phase::Member(membership) | Phase::Reclaiming(membership) => Some(&membership.group),
            _ => None,
        }
    }

    /// The group, for tests that play a dishonest member.
    #[cfg(test)]
    pub(crate) fn group_mut_for_tests(&mut self) -> Option<&mut RoomGroup> {
        self.membership().map(|membership| &mut membership.group)
    }

    fn membership(&mut self) -> Option<&mut Membership> {
        match &mut self.phase {
            Phase::Member(membership) => Some(membership),
            _ => None,
        }
    }

    fn is_leader(&self, me: &str) -> bool {
        self.leader() == Some(me)
    }

    /// The relay's member list changed; the leader owes the removals.
    pub fn member_left(&mut self, me: &str, nick: &str, leader: String, out: &mut Outbox) {
        self.relay_members.retain(|member| member != nick);
        self.away.remove(nick);
        if self.relay_members.first() != Some(&leader) {
            self.relay_members.retain(|member| *member != leader);
            self.relay_members.insert(0, leader);
        }
        let leading = self.is_leader(me);
        if let Some(membership) = self.membership() {
            membership.admissions.remove(nick);
            // The room changed: what it refused before may pass now.
            membership.refusals_in_a_row = 0;
            membership.commit_wait_ticks = 0;
            let in_group = membership.group.members().iter().any(|m| m.nick == nick && !m.is_self);
            // A replayed `MemberLeft` must not queue a removal our commit already makes. Just
            // after a restart, even one who left waits for the hold (`reconcile` owes it
            // then): a commit now would leave behind the members still on their way back.
            let holding = membership.hold_removals > 0;
            if leading && in_group && !holding && !membership.owes_removal_of(nick) {
                // It left for good (not merely missing after a restart): owed at once.
                membership.intents.push_back(Intent::Remove { nicks: vec![nick.to_owned()] });
            }
        }
        self.release_dead_pledge(me, out);
        self.release_abandoned_pledge(me, out);
        self.reconcile(me);
        self.drive_commits(me, out);
    }

    /// Our last word before leaving (see [`Farewell`]): sent just before `Leave`, so that
    /// those who stay can count it.
    pub fn farewell(&mut self) -> Option<ClientFrame> {
        let name = self.name.clone();
        let membership = self.membership()?;
        let epoch = membership.group.epoch();
        let pledged = membership.pledge.filter(|pledge| pledge.epoch == epoch).map(|p| p.commit);
        let farewell = GroupMessage::Farewell(Farewell { epoch, pledged });
        let message = membership.group.encrypt_message(&proto::encode(&farewell)).ok()?;
        Some(ClientFrame::Application { room: name, message })
    }

    pub fn member_joined(&mut self, nick: String) {
        if !self.relay_members.contains(&nick) {
            self.relay_members.push(nick);
        }
    }

    /// The leader kept a joiner waiting and the relay moved it to the back of the line.
    pub fn leader_changed(&mut self, me: &str, leader: &str, out: &mut Outbox) {
        if let Some(position) = self.relay_members.iter().position(|member| member == leader) {
            self.relay_members.rotate_left(position);
        }
        if !self.is_leader(me)
            && let Some(membership) = self.membership()
        {
            // The joiners start over with the new leader; what we owed is the new leader's,
            // and a commit of ours that nobody voted on binds nobody.
            membership.admissions.clear();
            membership.intents.clear();
            if membership.own_commit.as_ref().is_some_and(|own| !own.voted) {
                membership.group.discard_pending_commit();
                membership.own_commit = None;
            }
        }
        if self.is_leader(me)
            && let Some(membership) = self.membership()
        {
            // Leading now: the commit we said yes to, ours or another's, goes to the vote
            // again (the relay's vote on it, if any, ended with the leader it had).
            if let Some(own) = membership.own_commit.as_mut().filter(|own| own.voted) {
                own.resend = true;
            }
            if let Some(staged) = membership.voted.as_mut() {
                staged.carry = true;
            }
        }
        self.reconcile(me);
        self.drive_commits(me, out);
    }

    /// Time passed (the engine's keepalive tick): a commit of ours that the relay could not
    /// take to a vote yet is sent again, unchanged. At most once a tick, so a relay that
    /// keeps answering "busy" costs one frame per tick.
    pub fn tick(&mut self, me: &str, out: &mut Outbox) {
        if std::mem::take(&mut self.join_deferred) && self.join_requested() {
            out.frames.push(self.join_frame());
        }
        if let Some(membership) = self.membership() {
            membership.hold_removals = membership.hold_removals.saturating_sub(1);
            membership.commit_wait_ticks = membership.commit_wait_ticks.saturating_sub(1);
            if membership.pledge_kept_ticks > 0 {
                membership.pledge_kept_ticks -= 1;
                if membership.pledge_kept_ticks == 0 {
                    // No proof came: the vote it was in died with the relay's memory.
                    membership.drop_pledged(true);
                    membership.drop_pledged(false);
                }
            }
        }
        self.release_abandoned_pledge(me, out);
        if self.behind_for_good() {
            return self.resync(out);
        }
        self.renewal_tick(me, out);
        self.drive_commits(me, out);
    }

    /// Counts a tick behind the room; true once the commits we missed are not coming.
    fn behind_for_good(&mut self) -> bool {
        let behind = self.behind();
        let Some(membership) = self.membership() else { return false };
        membership.behind_ticks =
            if behind { membership.behind_ticks.saturating_add(1) } else { 0 };
        membership.behind_ticks > MAX_BEHIND_TICKS
    }

    /// A frame about the room once we are in it (or leading it): admissions we run, key
    /// changes, chat and the relay's member list. The engine and the simulation tests both
    /// enter here, so they cannot disagree on what a frame does.
    pub fn on_member_frame(
        &mut self,
        me: &str,
        frame: ServerFrame,
        now: SystemTime,
        out: &mut Outbox,
    ) {
        match frame {
            ServerFrame::AdmissionRequest { joiner, attempt, pake_message, .. } => {
                self.admission_request(me, joiner, attempt, &pake_message, out)
            }
            ServerFrame::AdmissionFinish {
                joiner,
                attempt,
                confirmation,
                sealed_key_package,
                ..
            } => {
                self.admission_finish(me, joiner, attempt, &confirmation, &sealed_key_package, out)
            }
            ServerFrame::Commit { from, commit, joiner, .. } => {
                self.incoming_commit(me, &from, &commit, joiner.as_deref(), out)
            }
            ServerFrame::CommitConfirmed { votes, .. } => {
                self.commit_confirmed(me, &votes, out, now)
            }
            ServerFrame::CommitAborted { votes, .. } => self.commit_aborted(me, &votes, out),
            ServerFrame::CommitRejected { commit, reason, .. } => {
                self.commit_rejected(me, commit, reason, out)
            }
            ServerFrame::Application { from, message, .. } => {
                let proposal = crate::mls_header::peek_header(&message).is_some_and(|header| {
                    header.content_type == crate::mls_header::CONTENT_TYPE_PROPOSAL
                });
                if proposal {
                    self.incoming_renewal(me, &from, &message, out)
                } else {
                    self.incoming_message(&from, &message, now, out)
                }
            }
            ServerFrame::MemberJoined { nick, epoch, .. } => {
                if self.group().is_some_and(|group| group.epoch() > epoch) {
                    // Said of an epoch our group is past: a replay of an old notice (the
                    // member may have gone since), not news. Believed, it would make us
                    // refuse the removal of a member who is gone.
                    return out.warn(
                        &self.name.clone(),
                        format!("ignored a notice that {nick} joined, from epoch {epoch}"),
                    );
                }
                let returning = !self.relay_members.contains(&nick)
                    && self.group().is_some_and(|group| {
                        group.members().iter().any(|member| member.nick == nick && !member.is_self)
                    });
                if returning {
                    // Already holds the room's keys: back after the relay forgot it.
                    out.notice(&self.name.clone(), format!("{nick} is back"));
                }
                self.member_joined(nick);
                // As leader, a commit we carry for its committer waits for it to be back.
                if returning {
                    self.drive_commits(me, out);
                }
            }
            ServerFrame::Reclaimed { members, epoch, .. } => {
                self.back_in_room(me, members, epoch, out)
            }
            ServerFrame::ReclaimPending { ours, holders, .. } if self.reclaiming() => {
                self.room_notice(out, RoomNotice::ReclaimWaiting { ours, holders });
            }
            ServerFrame::ReclaimRefused { reason, .. } if self.reclaiming() => {
                self.give_up(out, RoomNotice::ReclaimRefused { reason });
            }
            // After a restart, more of the room's members came back to another claim than to
            // ours: the room is theirs now (a relay could say so falsely, and so deny us the
            // room, as it could by dropping our frames; it cannot move us into another group).
            // (Or, taken back one epoch behind, we hold no commit to catch up with.)
            ServerFrame::ReclaimRefused {
                reason: reason @ (ReclaimRefusal::Outnumbered | ReclaimRefusal::StaleEpoch),
                ..
            } if self.is_member() => {
                self.give_up(out, RoomNotice::ReclaimRefused { reason });
            }
            ServerFrame::MemberAway { nick, away, .. } => {
                if away {
                    self.away.insert(nick.clone());
                } else {
                    self.away.remove(&nick);
                }
                let text = if away {
                    format!("{nick} lost the connection; the relay keeps their place for a while")
                } else {
                    format!("{nick} is back")
                };
                out.notice(&self.name.clone(), text);
            }
            ServerFrame::MemberLeft { nick, leader, epoch, .. } => {
                let ours = self.group().map(RoomGroup::epoch);
                if ours.is_some_and(|ours| ours != epoch) {
                    // The room was at another epoch when this was said: a replay of an old
                    // notice (the member may be back since), not news.
                    return out.warn(
                        &self.name.clone(),
                        format!("ignored a notice that {nick} left, from epoch {epoch}"),
                    );
                }
                self.member_left(me, &nick, leader, out)
            }
            ServerFrame::LeaderChanged { leader, .. } => self.leader_changed(me, &leader, out),
            _ => {}
        }
    }

    fn room_notice(&self, out: &mut Outbox, notice: RoomNotice) {
        out.events.push(Event::Room { room: self.name.clone(), notice });
    }

    /// We are out of the room until the user joins again, and say why.
    fn give_up(&mut self, out: &mut Outbox, notice: RoomNotice) {
        self.room_notice(out, notice);
        self.relay_members.clear();
        self.away.clear();
        self.phase = Phase::Gone;
    }

    /// Whether the room is lost to us until the user joins again (the engine drops it).
    pub fn is_gone(&self) -> bool {
        matches!(self.phase, Phase::Gone)
    }
}

#[cfg(test)]
mod tests;
