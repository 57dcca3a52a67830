//! What a hostile relay (or anyone holding the relay's keys) does on top of the honest
//! state: it sits between `State` and the links, where it sees every frame in the clear, and
//! may repeat, hold back, swallow or make up frames — toward the clients, and toward the
//! state as if a session had sent them. The transport's AEAD leaves nobody else this power.
//!
//! Each behaviour is switched on by its actor (see `actors`). Once the run quiesces
//! (`active` off) no new hostility starts; a fork already under way completes, since the
//! relay would keep serving it.

use std::collections::VecDeque;

use bytes::Bytes;
use rand::Rng;
use rand::rngs::StdRng;

use super::ROOM;
use super::network::{Delivery, Provenance};
use crate::mls_header;
use crate::proto::{
    self, ClientFrame, CommitRejection, RemovalReason, ServerFrame, SignedVote, commit_hash,
};

/// Old frames kept per client for replaying.
const HISTORY: usize = 48;
/// Signed votes kept for forged confirmations.
const SIGNED_VOTES: usize = 8;

/// The forking relay's progress (issue 19, attack 5).
#[derive(Debug, Clone)]
pub enum Fork {
    Idle,
    /// The next commit that adds a joiner is taken for the fork.
    Armed,
    /// The leader's commit A (adding `joiner`) was answered `Busy` and kept; the relay waits
    /// for another commit to close the same `epoch`, and for any Welcome the leader sends
    /// that `joiner` (since protocol 6 one exists only for a commit the leader merged).
    Captured {
        leader: usize,
        joiner: usize,
        epoch: u64,
        group_id: Vec<u8>,
        /// Commit A, which the relay answers `Busy` each time the leader sends it again.
        commit: Vec<u8>,
        welcome: Option<Vec<u8>>,
    },
    /// That commit was confirmed, and the relay holds a Welcome for the joiner: it makes the
    /// joiner a member in its own state, then hands it that Welcome.
    Forking {
        joiner: usize,
        welcome: Vec<u8>,
    },
    Done,
}

pub struct Shim {
    pub active: bool,
    pub duplicate: bool,
    pub reorder: bool,
    pub fork: Fork,
    pub abort: bool,
    pub keep_history: bool,
    nicks: Vec<String>,
    held: Vec<Option<Delivery>>,
    history: Vec<VecDeque<Bytes>>,
    /// `Left`s the relay owes nobody: the answers to `Leave`s it made up.
    swallow_left: Vec<u32>,
    /// The last signed votes members sent, to dress up forged confirmations with.
    signed_votes: VecDeque<SignedVote>,
    /// Frames the relay makes up as if a session had sent them, for the state.
    pub injected: VecDeque<(usize, ClientFrame)>,
    /// Frames the relay makes up (or replays) for clients.
    pub forged: VecDeque<(usize, Delivery)>,
    /// What the relay did, for the step log.
    pub notes: Vec<String>,
}

fn forge(frame: &ServerFrame) -> Delivery {
    Delivery { bytes: Bytes::from(proto::encode(frame)), provenance: Provenance::Forged }
}

impl Shim {
    pub fn new(nicks: Vec<String>) -> Self {
        let links = nicks.len();
        Shim {
            active: true,
            duplicate: false,
            reorder: false,
            fork: Fork::Idle,
            abort: false,
            keep_history: false,
            nicks,
            held: (0..links).map(|_| None).collect(),
            history: (0..links).map(|_| VecDeque::new()).collect(),
            swallow_left: vec![0; links],
            signed_votes: VecDeque::new(),
            injected: VecDeque::new(),
            forged: VecDeque::new(),
            notes: Vec::new(),
        }
    }

    /// A frame the state wrote to client `index`: what actually goes on the link.
    pub fn downstream(&mut self, index: usize, bytes: Bytes, rng: &mut StdRng) -> Vec<Delivery> {
        let frame: ServerFrame = proto::decode(&bytes).unwrap();
        if self.fork_downstream(index, &frame) {
            return Vec::new();
        }
        if self.swallow_left[index] > 0 && matches!(frame, ServerFrame::Left { .. }) {
            self.swallow_left[index] -= 1;
            return Vec::new();
        }
        if self.keep_history {
            let history = &mut self.history[index];
            history.push_back(bytes.clone());
            if history.len() > HISTORY {
                history.pop_front();
            }
        }
        let is_chat = matches!(frame, ServerFrame::Application { .. });
        let delivery = Delivery { bytes: bytes.clone(), provenance: Provenance::Genuine };
        let mut out = Vec::new();
        match self.held[index].take() {
            // A held chat message goes after the next one; before anything else.
            Some(held) if is_chat => out.extend([delivery, held]),
            Some(held) => out.extend([held, delivery]),
            None if is_chat && self.reorder && self.active && rng.gen_bool(0.3) => {
                self.held[index] = Some(delivery);
            }
            None => out.push(delivery),
        }
        if is_chat && self.duplicate && self.active && rng.gen_bool(0.2) {
            out.push(Delivery { bytes, provenance: Provenance::Duplicated });
        }
        out
    }

    /// A chat message held back for reordering, if any: written at the end of each step.
    pub fn release_held(&mut self, index: usize) -> Option<Delivery> {
        self.held[index].take()
    }

    pub fn holds_any(&self) -> bool {
        self.held.iter().any(Option::is_some)
    }

    /// The fork's part of the way down; `true` when the frame is swallowed.
    fn fork_downstream(&mut self, index: usize, frame: &ServerFrame) -> bool {
        match &self.fork {
            Fork::Captured { joiner, .. }
                if index == *joiner
                    && self.active
                    && matches!(frame, ServerFrame::AdmissionRefused { .. }) =>
            {
                // Keep the joiner waiting for its Welcome.
                self.notes.push(format!("relay: kept {} waiting", self.nicks[index]));
                true
            }
            Fork::Captured { welcome: None, epoch, .. } if matches!(frame, ServerFrame::CommitConfirmed { epoch: next, .. } if *next == *epoch + 1) =>
            {
                // Since protocol 6 the leader sends a Welcome only for a commit it merged:
                // the relay holds none of commit A's, and has nothing to fork with.
                self.notes.push(format!(
                    "relay: epoch {} closed by another commit, but no Welcome of the kept \
                     commit exists (its leader never merged it); no fork",
                    epoch + 1
                ));
                self.fork = Fork::Done;
                false
            }
            Fork::Captured { joiner, epoch, group_id, welcome: Some(welcome), .. } if matches!(frame, ServerFrame::CommitConfirmed { epoch: next, .. } if *next == epoch + 1) =>
            {
                // Another commit closed the epoch of commit A: the joiner becomes a member in
                // the relay's state, as if it reclaimed that epoch.
                let joiner = *joiner;
                let reclaim = ClientFrame::Reclaim {
                    room: ROOM.into(),
                    group_id: group_id.clone(),
                    epoch: epoch + 1,
                    pledged: None,
                    proof: Vec::new(),
                    last_commit: None,
                    earlier: Vec::new(),
                };
                self.injected.push_back((joiner, ClientFrame::Leave { room: ROOM.into() }));
                self.injected.push_back((joiner, reclaim));
                self.swallow_left[joiner] += 1;
                self.notes.push(format!(
                    "relay: epoch {} closed by another commit; forking {} off",
                    epoch + 1,
                    self.nicks[joiner]
                ));
                self.fork = Fork::Forking { joiner, welcome: welcome.clone() };
                false
            }
            Fork::Forking { joiner, welcome } if index == *joiner => match frame {
                ServerFrame::Reclaimed { members, .. } => {
                    let frame = ServerFrame::Welcome {
                        room: ROOM.into(),
                        message: welcome.clone(),
                        members: members.clone(),
                    };
                    self.forged.push_back((index, forge(&frame)));
                    self.notes.push(format!(
                        "relay: {} gets the refused commit's Welcome",
                        self.nicks[index]
                    ));
                    self.fork = Fork::Done;
                    true
                }
                ServerFrame::Left { .. } => false,
                _ => {
                    self.notes.push(format!(
                        "relay: the fork failed on {}",
                        super::describe::server(frame)
                    ));
                    self.fork = Fork::Done;
                    true
                }
            },
            _ => false,
        }
    }

    /// A frame client `index` sent: what reaches the state (`None`: swallowed). `members`
    /// are the room's members, whom a made-up abort goes to.
    pub fn upstream(
        &mut self,
        index: usize,
        frame: ClientFrame,
        members: &[usize],
        rng: &mut StdRng,
    ) -> Option<ClientFrame> {
        if let ClientFrame::CommitVote { vote, .. } = &frame {
            self.signed_votes
                .push_back(SignedVote { from: self.nicks[index].clone(), vote: vote.clone() });
            if self.signed_votes.len() > SIGNED_VOTES {
                self.signed_votes.pop_front();
            }
        }
        if !self.active {
            if let (Fork::Captured { commit: kept, .. }, ClientFrame::Commit { commit, .. }) =
                (&self.fork, &frame)
                && commit == kept
            {
                // Commit A reaches the state after all: no other commit can close its epoch.
                self.notes.push("relay: lets the kept commit through; no fork".into());
                self.fork = Fork::Done;
            }
            return Some(frame);
        }
        if let (Fork::Captured { leader, commit: kept, .. }, ClientFrame::Commit { commit, .. }) =
            (&self.fork, &frame)
            && *leader == index
            && commit == kept
        {
            // The leader sends commit A again: busy, still.
            let busy = ServerFrame::CommitRejected {
                room: ROOM.into(),
                commit: commit_hash(commit),
                reason: CommitRejection::Busy,
            };
            self.forged.push_back((index, forge(&busy)));
            return None;
        }
        if let (
            Fork::Captured { leader, joiner, welcome: kept @ None, .. },
            ClientFrame::Welcome { welcome, .. },
        ) = (&mut self.fork, &frame)
            && *leader == index
            && self.nicks[*joiner] == welcome.to
        {
            *kept = Some(welcome.message.clone());
            self.notes.push(format!("relay: holds a Welcome for {}", welcome.to));
        }
        let commit_epoch = match &frame {
            ClientFrame::Commit { commit, .. } => mls_header::peek_header(commit),
            _ => None,
        };
        match (&self.fork, &frame) {
            (Fork::Armed, ClientFrame::Commit { commit, adds: Some(adds), .. }) => {
                let Some(joiner) = self.nicks.iter().position(|nick| *nick == adds.to) else {
                    return Some(frame);
                };
                let Some(header) = commit_epoch else { return Some(frame) };
                self.fork = Fork::Captured {
                    leader: index,
                    joiner,
                    epoch: header.epoch,
                    group_id: header.group_id,
                    commit: commit.clone(),
                    welcome: None,
                };
                let busy = ServerFrame::CommitRejected {
                    room: ROOM.into(),
                    commit: commit_hash(commit),
                    reason: CommitRejection::Busy,
                };
                self.forged.push_back((index, forge(&busy)));
                self.notes.push(format!(
                    "relay: kept {}'s commit adding {} and answered Busy",
                    self.nicks[index], adds.to
                ));
                return None;
            }
            (
                Fork::Captured { leader, joiner, .. },
                ClientFrame::AdmissionRefused { joiner: refused, .. },
            ) if *leader == index && self.nicks[*joiner] == *refused => {
                self.notes.push(format!("relay: swallowed the refusal of {refused}"));
                return None;
            }
            _ => {}
        }
        if let Some(header) = commit_epoch
            && self.abort
            && rng.gen_bool(0.4)
        {
            let aborted = ServerFrame::CommitAborted {
                room: ROOM.into(),
                epoch: header.epoch,
                votes: Vec::new(),
            };
            for &member in members {
                self.forged.push_back((member, forge(&aborted)));
            }
            self.notes.push(format!(
                "relay: aborted {}'s commit for epoch {} on its own",
                self.nicks[index], header.epoch
            ));
            return None;
        }
        Some(frame)
    }

    /// The relay takes a member out of the room in its state, without cause, and says so.
    pub fn forge_removed(&mut self, index: usize, rng: &mut StdRng) {
        let reasons =
            [RemovalReason::NoVote, RemovalReason::OutVoted, RemovalReason::KeyChangeRefused];
        let reason = reasons[rng.gen_range(0..reasons.len())];
        self.injected.push_back((index, ClientFrame::Leave { room: ROOM.into() }));
        self.swallow_left[index] += 1;
        let removed = ServerFrame::Removed { room: ROOM.into(), reason };
        self.forged.push_back((index, forge(&removed)));
        self.notes.push(format!("relay: forged Removed {reason:?} to {}", self.nicks[index]));
    }

    /// A confirmation of a commit nobody sent, dressed up with the last signed votes the
    /// relay carried (about other commits, or none).
    pub fn forge_confirmed(&mut self, index: usize, epoch: u64) {
        let votes: Vec<SignedVote> = self.signed_votes.iter().cloned().collect();
        let confirmed = ServerFrame::CommitConfirmed { room: ROOM.into(), epoch, votes };
        self.forged.push_back((index, forge(&confirmed)));
        self.notes
            .push(format!("relay: forged CommitConfirmed -> {epoch} to {}", self.nicks[index]));
    }

    /// Sends client `index` one of the frames it already had, again.
    pub fn replay(&mut self, index: usize, rng: &mut StdRng) {
        let history = &self.history[index];
        if history.is_empty() {
            return;
        }
        let bytes = history[rng.gen_range(0..history.len())].clone();
        let frame: ServerFrame = proto::decode(&bytes).unwrap();
        self.notes.push(format!(
            "relay: replayed {} to {}",
            super::describe::server(&frame),
            self.nicks[index]
        ));
        self.forged.push_back((index, Delivery { bytes, provenance: Provenance::Replayed }));
    }

    /// The relay restarted: what it held for the old sessions is gone.
    pub fn restarted(&mut self) {
        for held in &mut self.held {
            *held = None;
        }
        self.swallow_left.iter_mut().for_each(|count| *count = 0);
        self.injected.clear();
        self.forged.clear();
        if !matches!(self.fork, Fork::Idle | Fork::Armed) {
            self.fork = Fork::Done;
        }
    }
}
