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
//! member verifies the commit, checks it against the room's `commit_policy`, and votes; it
//! merges only when the relay reports that every member accepted, and discards otherwise.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use super::ballot::{Ballot, Count, Pledge, commit_hash};
use super::commit_policy::{self, PolicyViolation, RoomView};
use super::gaps::SenderGaps;
use super::rejoin::{self, Departed, RejoinRefusal};
use super::{Event, RoomNotice};
use crate::admission::{AdmissionError, JoinerAdmission, LeaderAdmission};
use crate::mls::{MlsError, MlsMember, OwnKeyPackage, RoomEvent, RoomGroup};
use crate::proto::{
    self, Addition, AdmissionRefusal, ChatEnvelope, ChatPayload, ClientFrame, CommitRejection,
    Farewell, GroupMessage, MAX_APPLICATION_LEN, ReclaimRefusal, RemovalReason, ServerFrame,
    SignedVote, VoteStatement, Welcome,
};
use crate::secret::Secret;

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
    /// Set when the relay aborted the vote on the commit we pledged to without proof that
    /// it lost (from then on it wins only if the relay puts it to the vote again): the
    /// leaves whose signed no that abort carried.
    pledge_aborted: Option<Vec<u32>>,
    /// The last commit we refused, and who made it: to name it when the room aborts it.
    refused: Option<(u64, String)>,
    /// The epoch in which we last warned that the room may be split (once per epoch).
    split_warned: Option<u64>,
    /// The farewells of members who left during this epoch, by leaf: they count as votes.
    farewells: Vec<(u32, Farewell)>,
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
    /// Ticks left to keep, after a relay restart, the commit we said yes to: long enough for
    /// the proof to come if others merged it; then it goes, as the vote on it went.
    pledge_kept_ticks: u8,
}

/// How many ticks (the engine's 5 s keepalive) a member back in a room re-formed after a
/// relay restart waits for the others before it removes those that did not come back. The
/// first back would otherwise remove everyone else, and be outnumbered by them on return.
const RECLAIM_HOLD_TICKS: u8 = 4;

impl Membership {
    /// The commit we said yes to and still wait on: ours, once put to the vote, or another
    /// member's we staged; with who made it and whether it is ours.
    fn pledged(&self, me: &str) -> Option<(Ballot, String, bool)> {
        match (&self.own_commit, &self.voted) {
            (Some(own), _) if own.voted => Some((own.ballot.clone(), me.to_owned(), true)),
            (_, Some(staged)) => Some((staged.ballot.clone(), staged.committer.clone(), false)),
            _ => None,
        }
    }

    /// The ballot of the commit we said yes to and still wait on, ours or another's.
    fn pledged_ballot(&self) -> Option<Ballot> {
        self.pledged("").map(|(ballot, ..)| ballot)
    }

    /// Whether a removal of `nick` is owed or already in our commit.
    fn owes_removal_of(&self, nick: &str) -> bool {
        self.intents.iter().chain(self.own_commit.as_ref().map(|own| &own.intent)).any(
            |intent| matches!(intent, Intent::Remove { nicks } if nicks.iter().any(|n| n == nick)),
        )
    }

    /// Drops the commit we said yes to, proven unable to win: nothing of it is merged, and
    /// our pledge is free again.
    fn drop_pledged(&mut self, ours: bool) {
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

/// Our own commit, as the leader made it.
struct OwnCommit {
    intent: Intent,
    /// The frame, to send again unchanged: a leader never makes a second, different commit
    /// for an epoch while the first may still be voted on.
    frame: ClientFrame,
    ballot: Ballot,
    /// The joiner's Welcome, sent only once the room confirmed the commit and we merged it:
    /// a Welcome of a commit that was never confirmed must not exist, or a relay could hand
    /// it to the joiner and split the room.
    welcome: Option<Welcome>,
    /// Whether the relay has yet to answer the last send: put it to the vote (it comes back
    /// to us) or refuse it (`CommitRejected` naming it). Until then the relay may still put
    /// it to the vote, so it is never remade.
    awaiting_answer: bool,
    /// Whether we signed our yes (the relay took it to a vote); from then on only proof that
    /// it lost lets us drop it.
    voted: bool,
    /// Whether to send it again at the next tick (the relay was busy, too many members were
    /// away, or it aborted the vote without proof).
    resend: bool,
}

/// Another member's commit that we accepted and staged.
struct StagedVote {
    ballot: Ballot,
    committer: String,
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
            pledge_aborted: None,
            refused: None,
            split_warned: None,
            farewells: Vec::new(),
            hold_removals: 0,
            commit_wait_ticks: 0,
            refusals_in_a_row: 0,
            last_proof: None,
            pledge_kept_ticks: 0,
        })
    }
}

/// Work the leader owes the room as a commit.
#[derive(Debug, Clone)]
enum Intent {
    Add {
        joiner: String,
        attempt: u64,
        key_package: Vec<u8>,
    },
    /// Members the relay no longer lists, removed in one commit.
    Remove {
        nicks: Vec<String>,
    },
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
        }
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
                if membership.own_commit.as_ref().is_some_and(|own| !own.voted) {
                    membership.group.discard_pending_commit();
                    membership.own_commit = None;
                }
                let epoch = membership.group.epoch();
                let pledged = membership
                    .pledged_ballot()
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
                }
                membership.intents.clear();
                membership.admissions.clear();
                let proof = membership
                    .last_proof
                    .as_ref()
                    .filter(|(reached, _)| *reached == epoch)
                    .map(|(_, votes)| votes.clone())
                    .unwrap_or_default();
                let frame = ClientFrame::Reclaim {
                    room: self.name.clone(),
                    group_id: membership.group.group_id(),
                    epoch,
                    pledged,
                    proof,
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
    pub fn reclaimed(&mut self, members: Vec<String>) -> Result<(), RoomError> {
        let phase = std::mem::replace(&mut self.phase, Phase::Requested { departed: None });
        match phase {
            Phase::Reclaiming(mut membership) => {
                membership.hold_removals = RECLAIM_HOLD_TICKS;
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

    /// The relay says the room was empty: we create its group and lead it.
    pub fn created(&mut self, mls: &MlsMember, out: &mut Outbox) -> Result<(), RoomError> {
        if !matches!(self.phase, Phase::Requested { .. }) {
            return Err(RoomError::OutOfTurn("a new room"));
        }
        let group = mls.create_room()?;
        if let Phase::Requested { departed: Some(_) } = &self.phase {
            out.notice(
                &self.name,
                "everyone else had left: you started the room afresh, as a new group".into(),
            );
        }
        self.phase = Phase::Member(Membership::new(group));
        self.relay_members = vec![mls.nick().to_owned()];
        Ok(())
    }

    /// The relay says the room exists: start the password exchange with its leader.
    pub fn admission_pending(
        &mut self,
        me: &str,
        leader: String,
    ) -> Result<ClientFrame, RoomError> {
        // A reclaim is never answered by a password exchange: only the user's own `/join`
        // starts one (a relay that could start them could guess the password online).
        let Phase::Requested { departed } = &mut self.phase else {
            return Err(RoomError::OutOfTurn("a join answer"));
        };
        let departed = departed.take();
        let (admission, pake_message) =
            JoinerAdmission::start(&self.name, me, &leader, self.password.expose().as_bytes());
        self.phase = Phase::Admitting { leader, admission: Box::new(admission), departed };
        Ok(ClientFrame::AdmissionStart { room: self.name.clone(), pake_message })
    }

    /// The leader answered: finish the exchange and send our sealed KeyPackage.
    pub fn admission_reply(
        &mut self,
        mls: &MlsMember,
        pake_message: &[u8],
    ) -> Result<ClientFrame, RoomError> {
        let Phase::Admitting { .. } = self.phase else {
            return Err(RoomError::OutOfTurn("an admission reply"));
        };
        let Phase::Admitting { leader, admission, departed } =
            std::mem::replace(&mut self.phase, Phase::Requested { departed: None })
        else {
            return Err(RoomError::OutOfTurn("an admission reply"));
        };
        let key_package = mls.key_package_for_attempt()?;
        let finish = admission.finish(pake_message, &key_package.bytes)?;
        self.phase = Phase::AwaitingWelcome { leader, departed, _attempt_keys: key_package };
        Ok(ClientFrame::AdmissionFinish {
            room: self.name.clone(),
            confirmation: finish.confirmation.to_vec(),
            sealed_key_package: finish.sealed_key_package,
        })
    }

    /// The leader changed before admitting us: start over, remembering what we remembered.
    pub fn restart_join(&mut self) -> ClientFrame {
        if self.freshly_founded() {
            // Nothing to come back to: we only founded it.
            self.phase = Phase::Requested { departed: None };
        }
        let departed = match std::mem::replace(&mut self.phase, Phase::Requested { departed: None })
        {
            Phase::Requested { departed }
            | Phase::Admitting { departed, .. }
            | Phase::AwaitingWelcome { departed, .. } => departed,
            Phase::Member(membership) | Phase::Reclaiming(membership) => {
                Some(departed_from(&membership.group))
            }
            Phase::Gone => None,
        };
        self.phase = Phase::Requested { departed };
        ClientFrame::Join { room: self.name.clone() }
    }

    /// A Welcome arrived. Accepted only after our own password exchange, and, when we are
    /// coming back, only into the group we were taken out of with the members we knew.
    pub fn welcomed(
        &mut self,
        mls: &MlsMember,
        welcome: &[u8],
        members: Vec<String>,
    ) -> Result<Welcomed, RoomError> {
        let Phase::AwaitingWelcome { departed, leader, .. } = &self.phase else {
            return Err(RoomError::OutOfTurn("a welcome"));
        };
        let group = mls.join_room(welcome)?;
        let group_members = group.members();
        commit_policy::look_alikes(&group_members).map_err(RoomError::UnsafeGroup)?;
        if !group_members.iter().any(|member| member.nick == *leader) {
            return Err(RoomError::WithoutLeader(leader.clone()));
        }
        let outcome = match departed {
            Some(departed) => Welcomed::Rejoined {
                newcomers: rejoin::check(departed, &group.group_id(), &group_members)?,
            },
            None => Welcomed::Joined,
        };
        self.relay_members = members;
        self.phase = Phase::Member(Membership::new(group));
        Ok(outcome)
    }

    /// As leader: a joiner opened the password exchange.
    pub fn admission_request(
        &mut self,
        me: &str,
        joiner: String,
        attempt: u64,
        pake: &[u8],
        out: &mut Outbox,
    ) {
        let name = self.name.clone();
        let is_leader = self.is_leader(me);
        let password = self.password.clone();
        let Some(membership) = self.membership().filter(|_| is_leader) else { return };
        match LeaderAdmission::respond(&name, &joiner, me, password.expose().as_bytes(), pake) {
            Ok((admission, pake_message)) => {
                membership.admissions.insert(joiner.clone(), (attempt, admission));
                out.frames.push(ClientFrame::AdmissionReply {
                    room: name,
                    joiner,
                    attempt,
                    pake_message,
                });
            }
            Err(_) => out.frames.push(ClientFrame::AdmissionRefused {
                room: name,
                joiner,
                attempt,
                reason: AdmissionRefusal::Malformed,
            }),
        }
    }

    /// As leader: the joiner proved (or failed to prove) the password and sent its
    /// KeyPackage.
    pub fn admission_finish(
        &mut self,
        me: &str,
        joiner: String,
        attempt: u64,
        confirmation: &[u8],
        sealed_key_package: &[u8],
        out: &mut Outbox,
    ) {
        let name = self.name.clone();
        let refuse = |out: &mut Outbox, joiner: String, reason| {
            let room = name.clone();
            out.frames.push(ClientFrame::AdmissionRefused { room, joiner, attempt, reason });
        };
        // An exchange for another attempt (the joiner gave up and started again) is not this
        // one's: its keys would only make the password look wrong.
        let Some((_, admission)) = self
            .membership()
            .and_then(|membership| membership.admissions.remove(&joiner))
            .filter(|(started, _)| *started == attempt)
        else {
            return refuse(out, joiner, AdmissionRefusal::LeaderChanged);
        };
        match admission.verify(confirmation, sealed_key_package) {
            Ok(key_package) => {
                if let Some(membership) = self.membership() {
                    membership.intents.push_back(Intent::Add { joiner, attempt, key_package });
                }
                self.drive_commits(me, out);
            }
            Err(AdmissionError::WrongPassword) => {
                out.notice(&name, format!("{joiner} gave a wrong room password"));
                refuse(out, joiner, AdmissionRefusal::WrongPassword);
            }
            Err(_) => refuse(out, joiner, AdmissionRefusal::Malformed),
        }
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

    /// The commit we said yes to can no longer win, though nobody proved it: its vote was
    /// aborted, and the members of its electorate that the relay still lists are too few to
    /// make a majority of it (the others vanished without a farewell: crashed, forgotten
    /// after the grace period, or taken out for not voting). Waiting for proof would freeze
    /// the room for good, so the pledge goes. The risk is bounded: a relay that lied about
    /// who is gone could still confirm the commit to those it said were gone, who are then a
    /// minority on their own, told by every undecryptable message that the room may be split
    /// (ARCHITECTURE.md, "Trust model"); and a joiner never gets the Welcome of a commit its
    /// leader did not merge.
    fn release_abandoned_pledge(&mut self, me: &str, out: &mut Outbox) {
        let room = self.name.clone();
        let relay_members = self.relay_members.clone();
        let Some(membership) = self.membership() else { return };
        let Some(refusers) = membership.pledge_aborted.clone() else { return };
        let Some((ballot, committer, ours)) = membership.pledged(me) else { return };
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
    fn release_dead_pledge(&mut self, me: &str, out: &mut Outbox) {
        let room = self.name.clone();
        let Some(membership) = self.membership() else { return };
        let Some((ballot, committer, ours)) = membership.pledged(me) else { return };
        let count = Self::count_votes(
            &mut membership.group,
            &membership.farewells,
            &ballot,
            &[],
            Some(true),
        );
        if !count.refutes() {
            return;
        }
        membership.drop_pledged(ours);
        let notice = RoomNotice::CommitAborted { committer, refuted: true };
        out.events.push(Event::Room { room, notice });
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
        self.reconcile(me);
        self.drive_commits(me, out);
    }

    /// As leader: every group member the relay no longer lists is owed a removal.
    fn reconcile(&mut self, me: &str) {
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
                own.awaiting_answer = !own.voted;
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
            // We said yes to another member's commit of this epoch, which may still win.
            return;
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
                Intent::Add { .. } => true,
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
                },
            }
        }
    }

    /// Time passed (the engine's keepalive tick): a commit of ours that the relay could not
    /// take to a vote yet is sent again, unchanged. At most once a tick, so a relay that
    /// keeps answering "busy" costs one frame per tick.
    pub fn tick(&mut self, me: &str, out: &mut Outbox) {
        if std::mem::take(&mut self.join_deferred) && self.join_requested() {
            out.frames.push(ClientFrame::Join { room: self.name.clone() });
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
        self.drive_commits(me, out);
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
            ServerFrame::CommitConfirmed { votes, .. } => self.commit_confirmed(me, &votes, out),
            ServerFrame::CommitAborted { votes, .. } => self.commit_aborted(me, &votes, out),
            ServerFrame::CommitRejected { commit, reason, .. } => {
                self.commit_rejected(me, commit, reason, out)
            }
            ServerFrame::Application { from, message, .. } => {
                self.incoming_message(&from, &message, now, out)
            }
            ServerFrame::MemberJoined { nick, .. } => {
                let returning = !self.relay_members.contains(&nick)
                    && self.group().is_some_and(|group| {
                        group.members().iter().any(|member| member.nick == nick && !member.is_self)
                    });
                if returning {
                    // Already holds the room's keys: back after the relay forgot it.
                    out.notice(&self.name.clone(), format!("{nick} is back"));
                }
                self.member_joined(nick)
            }
            ServerFrame::Reclaimed { members, .. } => match self.reclaimed(members) {
                Ok(()) => {
                    out.notice(
                        &self.name.clone(),
                        "back in the room, with the same group and keys".into(),
                    );
                    let leading = self.is_leader(me);
                    if let Some(membership) = self.membership().filter(|_| leading) {
                        // A leader cannot wait long on a kept yes (its joiners would give up
                        // on it): its own removal goes to the vote again at once (the proof,
                        // if the others merged it, is already on its way and wins); another
                        // commit, or one adding a joiner whose admission died with the
                        // relay's memory, is kept one tick only.
                        match membership.own_commit.as_mut() {
                            Some(own)
                                if own.voted && matches!(own.intent, Intent::Remove { .. }) =>
                            {
                                own.resend = true;
                                membership.pledge_kept_ticks = 0;
                            }
                            _ => membership.pledge_kept_ticks = membership.pledge_kept_ticks.min(1),
                        }
                    }
                    // Leading now, perhaps: whoever did not come back is owed a removal.
                    self.drive_commits(me, out);
                }
                Err(error) => out.warn(&self.name.clone(), format!("ignored: {error}")),
            },
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
    fn resync(&mut self, out: &mut Outbox) {
        out.frames.push(ClientFrame::Leave { room: self.name.clone() });
        self.give_up(out, RoomNotice::OutOfStep);
    }

    /// Signs a vote and wraps it in the frame the relay tallies.
    fn vote_frame(
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
                Ok(frame) => out.frames.push(frame),
                Err(error) => out.warn(&room, format!("could not sign a vote: {error}")),
            }
        };
        // Ours, back from the relay: it is up for a vote now, and we pledge our yes to it.
        if let Some(own) = membership.own_commit.as_mut()
            && own.ballot.commit == hash
        {
            own.voted = true;
            let statement = own.ballot.statement(true);
            membership.pledge = Some(Pledge::of(&own.ballot));
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
            verdict(membership, refusal, out);
            let notice = RoomNotice::AcceptedAnother { committer: from.into() };
            return out.events.push(Event::Room { room: room.clone(), notice });
        }
        let group_members = membership.group.members();
        let staged = membership.group.stage_commit(commit);
        let judged = staged.map_err(RoomError::from).and_then(|summary| {
            let view =
                RoomView { relay_members: &relay_members, joiner, group_members: &group_members };
            commit_policy::check(&summary, view)
                .map(|()| summary.electorate)
                .map_err(RoomError::from)
        });
        match judged {
            Ok(electorate) => {
                let ballot = Ballot { epoch, commit: hash, electorate };
                let statement = ballot.statement(true);
                membership.pledge = Some(Pledge::of(&ballot));
                membership.voted = Some(StagedVote { ballot, committer: from.to_owned() });
                verdict(membership, statement, out);
            }
            Err(error) => {
                membership.group.discard_staged_commit();
                membership.refused = Some((epoch, from.to_owned()));
                out.warn(&room, format!("refused a key change claimed to be from {from}: {error}"));
                verdict(membership, VoteStatement { epoch, commit: hash, accept: false }, out);
            }
        }
    }

    /// The signed votes a confirmation or an abort carries, counted on `ballot`; our own
    /// verdict (`own`) counts without the relay's help.
    fn count_votes(
        group: &mut RoomGroup,
        farewells: &[(u32, Farewell)],
        ballot: &Ballot,
        votes: &[SignedVote],
        own: Option<bool>,
    ) -> Count {
        let said_farewell =
            farewells.iter().filter_map(|(leaf, farewell)| Some((*leaf, farewell.on(ballot)?)));
        let mut statements: Vec<(u32, VoteStatement)> = votes
            .iter()
            .filter_map(|signed| {
                let opened = group.open_application(&signed.vote).ok()?;
                match proto::decode::<GroupMessage>(&opened.payload?) {
                    Ok(GroupMessage::Vote(statement)) => Some((opened.leaf, statement)),
                    _ => None,
                }
            })
            .collect();
        if let Some(accept) = own {
            statements.insert(0, (group.own_leaf(), ballot.statement(accept)));
        }
        statements.extend(said_farewell);
        Count::of(ballot, statements)
    }

    /// The relay says the room accepted the commit in flight: merge it (ours, or the one we
    /// staged), but only with the signed yes votes of more than half of its electorate.
    pub fn commit_confirmed(&mut self, me: &str, votes: &[SignedVote], out: &mut Outbox) {
        let room = self.name.clone();
        let Some(membership) = self.membership() else { return };
        let ballot = match (&membership.own_commit, &membership.voted) {
            (Some(own), _) if own.voted => own.ballot.clone(),
            (_, Some(staged)) => staged.ballot.clone(),
            _ => {
                // Nothing we accepted is up for confirmation: a replayed or forged frame.
                return out
                    .events
                    .push(Event::Room { room, notice: RoomNotice::UnexpectedConfirmation });
            }
        };
        let count = Self::count_votes(
            &mut membership.group,
            &membership.farewells,
            &ballot,
            votes,
            Some(true),
        );
        if !count.confirms() {
            let notice = RoomNotice::UnprovenConfirmation { yes: count.yes.len(), of: count.of };
            return out.events.push(Event::Room { room, notice });
        }
        // A proof brought after a relay restart (see `reclaim`): the commit is merged, but the
        // relay's member list is the re-formed room's, not the one the commit was made for.
        let catching_up = membership.pledge_kept_ticks > 0;
        membership.pledge = None;
        membership.pledge_aborted = None;
        membership.pledge_kept_ticks = 0;
        membership.refusals_in_a_row = 0;
        membership.refused = None;
        membership.farewells.clear();
        membership.last_proof = Some((ballot.epoch + 1, votes.to_vec()));
        let merged = if let Some(own) = membership.own_commit.take() {
            let joined = match own.intent {
                Intent::Add { joiner, .. } => Some(joiner),
                Intent::Remove { .. } => None,
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
                    }
                }
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
            let count = Self::count_votes(
                &mut membership.group,
                &membership.farewells,
                &ballot,
                votes,
                Some(true),
            );
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

    /// An application message from another member.
    pub fn incoming_message(
        &mut self,
        from: &str,
        message: &[u8],
        now: SystemTime,
        out: &mut Outbox,
    ) {
        let room = self.name.clone();
        let Some(membership) = self.membership() else { return };
        match membership.group.open_application(message) {
            Ok(opened) => {
                let Some(payload) = opened.payload.clone() else { return };
                let signer = opened.from.clone();
                if signer != from {
                    out.warn(
                        &room,
                        format!("the relay said a message came from {from}, but {signer} signed it"),
                    );
                }
                match proto::decode::<GroupMessage>(&payload) {
                    Ok(GroupMessage::Chat(envelope)) => {
                        if let Some(gap) = self.gaps.observe(&signer, envelope.number, now) {
                            out.events.push(Event::Gap {
                                room: room.clone(),
                                from: gap.from,
                                missed: gap.missed,
                                since: gap.since,
                            });
                        }
                        chat_event(&room, signer, envelope.payload, now, out);
                    }
                    Ok(GroupMessage::Farewell(farewell)) => {
                        // Counted when the relay says the member left (`member_left`).
                        membership.farewells.retain(|(leaf, _)| *leaf != opened.leaf);
                        membership.farewells.push((opened.leaf, farewell));
                    }
                    // Votes count only inside a confirmation or an abort.
                    Ok(GroupMessage::Vote(_)) => out.warn(
                        &room,
                        format!("a vote of {signer} arrived as a chat message; ignored"),
                    ),
                    Err(_) => {
                        out.warn(&room, format!("{signer} sent a message this version cannot show"))
                    }
                }
            }
            Err(MlsError::EpochTooNew { .. }) => out.warn(
                &room,
                format!("a message claimed to be from {from} is from a key change this client has not seen; it was not shown"),
            ),
            Err(error) => {
                // A message of our group and epoch that we cannot read: someone holds other
                // keys for this epoch, so the room may have been split into two groups.
                let epoch = membership.group.epoch();
                let ours = crate::mls_header::peek_header(message).is_some_and(|header| {
                    header.group_id == membership.group.group_id() && header.epoch == epoch
                });
                out.warn(
                    &room,
                    format!("could not decrypt a message claimed to be from {from} ({error}); it was not shown"),
                );
                if ours && membership.split_warned != Some(epoch) {
                    membership.split_warned = Some(epoch);
                    out.events.push(Event::Room {
                        room,
                        notice: RoomNotice::MaySplit { from: from.to_owned() },
                    });
                }
            }
        }
    }

    /// Encrypts a chat payload for the room.
    pub fn encrypt(&mut self, payload: &ChatPayload) -> Result<ClientFrame, RoomError> {
        let name = self.name.clone();
        let number = self.sent_messages + 1;
        let membership = self.membership().ok_or(RoomError::NotMember)?;
        let envelope = GroupMessage::Chat(ChatEnvelope { number, payload: payload.clone() });
        let message = membership.group.encrypt_message(&proto::encode(&envelope))?;
        if message.len() > MAX_APPLICATION_LEN {
            return Err(RoomError::TooLong { len: message.len(), max: MAX_APPLICATION_LEN });
        }
        self.sent_messages = number;
        Ok(ClientFrame::Application { room: name, message })
    }
}

/// The most ticks a leader waits between commits the room keeps refusing (about 5 minutes
/// at the engine's 5 s tick).
const MAX_COMMIT_WAIT_TICKS: u8 = 64;

/// Ticks to wait after the `refusals`-th refusal in a row: 1, 2, 4, … up to the most.
fn backoff_ticks(refusals: u8) -> u8 {
    let doubled = 1u32 << u32::from(refusals.saturating_sub(1).min(7));
    u8::try_from(doubled).unwrap_or(u8::MAX).min(MAX_COMMIT_WAIT_TICKS)
}

/// The electorate's size as the relay is told it.
fn electorate_size(ballot: &Ballot) -> u32 {
    u32::try_from(ballot.electorate.len()).unwrap_or(u32::MAX)
}

/// What we remember of a group we are leaving, to check the one we come back into.
fn departed_from(group: &RoomGroup) -> Departed {
    Departed {
        group_id: group.group_id(),
        members: group.members().into_iter().filter(|member| !member.is_self).collect(),
    }
}

/// A chat message to show.
fn chat_event(room: &str, from: String, payload: ChatPayload, now: SystemTime, out: &mut Outbox) {
    let (text, action) = match payload {
        ChatPayload::Text(text) => (text, false),
        ChatPayload::Action(text) => (text, true),
    };
    out.events.push(Event::Message {
        room: room.to_owned(),
        from,
        text,
        action,
        time: now,
        late: false,
    });
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
        }
    }
}

#[cfg(test)]
mod tests;
