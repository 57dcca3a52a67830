//! One room as this client sees it: joining, membership, and the commits it owes the room.
//!
//! Sans-IO like `mls`: each method takes what arrived and returns the frames to send, pushing
//! user-facing events into an [`Outbox`]. The engine does the sending.
//!
//! Commits are serialised: a member holds at most one commit in flight, and the work it owes
//! (admit a joiner, remove a departed member, repair a member) waits in a queue of
//! [`Intent`]s. When the relay rejects a commit because another won the epoch, the intent is
//! tried again on top of the winner; an intent the winner made moot is dropped.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use super::Event;
use crate::admission::{JoinerAdmission, LeaderAdmission};
use crate::mls::{MlsError, MlsMember, RoomEvent, RoomGroup};
use crate::proto::{self, AdmissionRefusal, ChatPayload, ClientFrame, CommitRejection, Welcome};
use crate::secret::Secret;

/// Where a room stands for this client.
pub enum Phase {
    /// Sent `Join`; waiting to hear whether we create the room or are admitted to it.
    Requested,
    /// Ran our half of the password exchange; waiting for the leader's.
    Admitting { leader: String, admission: Box<JoinerAdmission> },
    /// Sent our sealed KeyPackage; waiting for the Welcome (or a refusal).
    AwaitingWelcome { leader: String },
    /// In the group.
    Member(Box<RoomGroup>),
}

/// Work this member owes the room as a commit.
#[derive(Debug, Clone)]
enum Intent {
    Add { joiner: String, key_package: Vec<u8> },
    Remove { nick: String },
    Replace { nick: String, key_package: Vec<u8> },
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
}

/// One room and everything this client tracks about it.
pub struct Room {
    pub name: String,
    /// Kept while we are in the room: any member may become leader and must then check
    /// joiners' passwords. Never leaves this process.
    password: Secret,
    pub phase: Phase,
    /// Members in the relay's order; the first is the leader.
    pub relay_members: Vec<String>,
    admissions: HashMap<String, LeaderAdmission>,
    intents: VecDeque<Intent>,
    in_flight: Option<Intent>,
    /// Set while we wait to be swapped back in after missing a commit.
    repairing: bool,
}

impl Room {
    pub fn new(name: String, password: Secret) -> Self {
        Room {
            name,
            password,
            phase: Phase::Requested,
            relay_members: Vec::new(),
            admissions: HashMap::new(),
            intents: VecDeque::new(),
            in_flight: None,
            repairing: false,
        }
    }

    pub fn is_member(&self) -> bool {
        matches!(self.phase, Phase::Member(_))
    }

    pub fn leader(&self) -> Option<&str> {
        self.relay_members.first().map(String::as_str)
    }

    pub fn group(&self) -> Option<&RoomGroup> {
        match &self.phase {
            Phase::Member(group) => Some(group),
            _ => None,
        }
    }

    fn group_mut(&mut self) -> Option<&mut RoomGroup> {
        match &mut self.phase {
            Phase::Member(group) => Some(group),
            _ => None,
        }
    }

    fn is_leader(&self, me: &str) -> bool {
        self.leader() == Some(me)
    }

    /// The relay says the room was empty: we create its group and lead it.
    pub fn created(&mut self, mls: &MlsMember) -> Result<(), MlsError> {
        let group = mls.create_room()?;
        self.phase = Phase::Member(Box::new(group));
        self.relay_members = vec![mls.nick().to_owned()];
        Ok(())
    }

    /// The relay says the room exists: start the password exchange with its leader.
    pub fn admission_pending(&mut self, me: &str, leader: String) -> ClientFrame {
        let (admission, pake_message) =
            JoinerAdmission::start(&self.name, me, &leader, self.password.expose().as_bytes());
        self.phase = Phase::Admitting { leader, admission: Box::new(admission) };
        ClientFrame::AdmissionStart { room: self.name.clone(), pake_message }
    }

    /// The leader answered: finish the exchange and send our sealed KeyPackage.
    pub fn admission_reply(
        &mut self,
        mls: &MlsMember,
        pake_message: &[u8],
    ) -> Result<ClientFrame, String> {
        let Phase::Admitting { .. } = self.phase else {
            return Err("an admission reply arrived out of turn".into());
        };
        let Phase::Admitting { leader, admission } =
            std::mem::replace(&mut self.phase, Phase::Requested)
        else {
            unreachable!("checked just above")
        };
        let key_package = mls.key_package().map_err(|error| error.to_string())?;
        let finish =
            admission.finish(pake_message, &key_package).map_err(|error| error.to_string())?;
        self.phase = Phase::AwaitingWelcome { leader };
        Ok(ClientFrame::AdmissionFinish {
            room: self.name.clone(),
            confirmation: finish.confirmation.to_vec(),
            sealed_key_package: finish.sealed_key_package,
        })
    }

    /// A Welcome arrived: we are in (or, after a repair, back in) the group.
    pub fn welcomed(&mut self, mls: &MlsMember, welcome: &[u8]) -> Result<(), MlsError> {
        let group = mls.join_room(welcome)?;
        if let Phase::AwaitingWelcome { leader } = &self.phase {
            // Until the relay's full list arrives, we know the leader and ourselves.
            self.relay_members = vec![leader.clone(), mls.nick().to_owned()];
        }
        self.phase = Phase::Member(Box::new(group));
        self.repairing = false;
        Ok(())
    }

    /// As leader: a joiner opened the password exchange.
    pub fn admission_request(&mut self, me: &str, joiner: String, pake: &[u8], out: &mut Outbox) {
        if !self.is_member() {
            return;
        }
        let password = self.password.expose().as_bytes();
        match LeaderAdmission::respond(&self.name, &joiner, me, password, pake) {
            Ok((admission, pake_message)) => {
                self.admissions.insert(joiner.clone(), admission);
                out.frames.push(ClientFrame::AdmissionReply {
                    room: self.name.clone(),
                    joiner,
                    pake_message,
                });
            }
            Err(_) => out.frames.push(ClientFrame::AdmissionRefused {
                room: self.name.clone(),
                joiner,
                reason: AdmissionRefusal::Malformed,
            }),
        }
    }

    /// As leader: the joiner proved (or failed to prove) the password and sent its
    /// KeyPackage.
    pub fn admission_finish(
        &mut self,
        joiner: String,
        confirmation: &[u8],
        sealed_key_package: &[u8],
        out: &mut Outbox,
    ) {
        let Some(admission) = self.admissions.remove(&joiner) else {
            out.frames.push(ClientFrame::AdmissionRefused {
                room: self.name.clone(),
                joiner,
                reason: AdmissionRefusal::LeaderChanged,
            });
            return;
        };
        match admission.verify(confirmation, sealed_key_package) {
            Ok(key_package) => {
                self.intents.push_back(Intent::Add { joiner, key_package });
            }
            Err(crate::admission::AdmissionError::WrongPassword) => {
                out.events.push(Event::Notice {
                    room: Some(self.name.clone()),
                    text: format!("{joiner} gave a wrong room password"),
                });
                out.frames.push(ClientFrame::AdmissionRefused {
                    room: self.name.clone(),
                    joiner,
                    reason: AdmissionRefusal::WrongPassword,
                });
            }
            Err(_) => out.frames.push(ClientFrame::AdmissionRefused {
                room: self.name.clone(),
                joiner,
                reason: AdmissionRefusal::Malformed,
            }),
        }
    }

    /// The relay's member list changed; a new leader owes the removals the old one did not
    /// commit.
    pub fn member_left(&mut self, me: &str, nick: &str, leader: String) {
        self.relay_members.retain(|member| member != nick);
        if self.relay_members.first() != Some(&leader) {
            self.relay_members.retain(|member| *member != leader);
            self.relay_members.insert(0, leader);
        }
        self.admissions.remove(nick);
        if self.is_leader(me) {
            self.reconcile(me);
        }
    }

    pub fn member_joined(&mut self, nick: String) {
        if !self.relay_members.contains(&nick) {
            self.relay_members.push(nick);
        }
    }

    /// As leader: every group member the relay no longer lists is owed a removal.
    fn reconcile(&mut self, me: &str) {
        let Some(group) = self.group() else { return };
        let departed: Vec<String> = group
            .members()
            .into_iter()
            .filter(|member| member.nick != me && !self.relay_members.contains(&member.nick))
            .map(|member| member.nick)
            .collect();
        for nick in departed {
            let owed = self
                .intents
                .iter()
                .chain(&self.in_flight)
                .any(|intent| matches!(intent, Intent::Remove { nick: owed } if *owed == nick));
            if !owed {
                self.intents.push_back(Intent::Remove { nick });
            }
        }
    }

    /// As leader (or next in line): a member missed a commit and sent a fresh KeyPackage.
    pub fn repair_request(&mut self, from: String, key_package: Vec<u8>) {
        self.intents
            .retain(|intent| !matches!(intent, Intent::Replace { nick, .. } if *nick == from));
        self.intents.push_back(Intent::Replace { nick: from, key_package });
    }

    /// Sends the next owed commit if none is in flight.
    pub fn drive_commits(&mut self, out: &mut Outbox) {
        while self.in_flight.is_none() {
            let Some(intent) = self.intents.pop_front() else { return };
            let room = self.name.clone();
            let Some(group) = self.group_mut() else {
                self.intents.push_front(intent);
                return;
            };
            let result = match &intent {
                Intent::Add { joiner, key_package } => {
                    if group.members().iter().any(|member| member.nick == *joiner) {
                        continue; // already admitted by a commit that won the race
                    }
                    group.commit_add(key_package).map(|commit| (commit, Some(joiner.clone())))
                }
                Intent::Remove { nick } => match group.commit_remove(&[nick.as_str()]) {
                    Err(MlsError::NoSuchMember(_)) => continue, // someone else removed it
                    other => other.map(|commit| (commit, None)),
                },
                Intent::Replace { nick, key_package } => group
                    .commit_replace(nick, key_package)
                    .map(|commit| (commit, Some(nick.clone()))),
            };
            match result {
                Ok((commit, welcome_to)) => {
                    let welcome = match (welcome_to, commit.welcome) {
                        (Some(to), Some(message)) => Some(Welcome { to, message }),
                        _ => None,
                    };
                    out.frames.push(ClientFrame::Commit { room, commit: commit.commit, welcome });
                    self.in_flight = Some(intent);
                }
                Err(error) => {
                    out.warn(&room, format!("could not update the room's keys: {error}"));
                    if let Intent::Add { joiner, .. } = intent {
                        out.frames.push(ClientFrame::AdmissionRefused {
                            room,
                            joiner,
                            reason: AdmissionRefusal::LeaderFailed,
                        });
                    }
                }
            }
        }
    }

    /// The relay accepted our commit: it is the room's new epoch.
    pub fn commit_accepted(&mut self, now: SystemTime, out: &mut Outbox) {
        self.in_flight = None;
        let name = self.name.clone();
        if let Some(group) = self.group_mut() {
            match group.merge_pending_commit() {
                Ok(events) => self.room_events(events, now, out),
                Err(error) => {
                    out.warn(&name, format!("could not apply our own key change: {error}"))
                }
            }
        }
        self.drive_commits(out);
    }

    /// The relay rejected our commit: another won the epoch (and has already been
    /// processed, as the relay sends it first), so try again on top of it.
    pub fn commit_rejected(&mut self, mls: &MlsMember, reason: CommitRejection, out: &mut Outbox) {
        let intent = self.in_flight.take();
        if let Some(group) = self.group_mut() {
            group.discard_pending_commit();
        }
        match reason {
            CommitRejection::EpochMovedOn { .. } => {
                if let Some(intent) = intent {
                    self.intents.push_front(intent);
                }
            }
            CommitRejection::EpochAhead { .. } => {
                // We are behind the room: we missed a commit. Retry once repaired.
                if let Some(intent) = intent {
                    self.intents.push_front(intent);
                }
                self.start_repair(mls, out);
                return;
            }
            CommitRejection::NotACommit | CommitRejection::UnknownRecipient => {
                out.warn(&self.name.clone(), format!("the relay refused a key change: {reason}"));
            }
        }
        self.drive_commits(out);
    }

    /// Another member's commit, in the relay's order.
    pub fn incoming_commit(
        &mut self,
        mls: &MlsMember,
        from: &str,
        commit: &[u8],
        now: SystemTime,
        out: &mut Outbox,
    ) {
        let name = self.name.clone();
        if self.repairing {
            return; // this group is stale; the Welcome that repairs it is on its way
        }
        let Some(group) = self.group_mut() else { return };
        match group.process_incoming(commit) {
            Ok(events) => self.room_events(events, now, out),
            Err(MlsError::EpochTooNew { .. }) => self.start_repair(mls, out),
            Err(MlsError::EpochTooOld { .. }) => {}
            Err(error) => {
                out.warn(
                    &name,
                    format!("a key change claimed to be from {from} was rejected: {error}"),
                );
                self.start_repair(mls, out);
            }
        }
        self.drive_commits(out);
    }

    /// An application message from another member.
    pub fn incoming_message(
        &mut self,
        mls: &MlsMember,
        from: &str,
        message: &[u8],
        now: SystemTime,
        out: &mut Outbox,
    ) {
        let name = self.name.clone();
        let Some(group) = self.group_mut() else { return };
        match group.process_incoming(message) {
            Ok(events) => {
                for event in &events {
                    if let RoomEvent::Message { from: signer, .. } = event
                        && signer != from
                    {
                        out.warn(
                            &name,
                            format!("the relay said a message came from {from}, but {signer} signed it"),
                        );
                    }
                }
                self.room_events(events, now, out);
            }
            Err(MlsError::EpochTooNew { .. }) => {
                out.warn(&name, format!("missed a key change: a message from {from} could not be read; rejoining the room's keys"));
                self.start_repair(mls, out);
            }
            Err(error) => out.warn(
                &name,
                format!("could not decrypt a message claimed to be from {from} ({error}); it was not shown"),
            ),
        }
    }

    fn start_repair(&mut self, mls: &MlsMember, out: &mut Outbox) {
        if self.repairing {
            return;
        }
        match mls.key_package() {
            Ok(key_package) => {
                self.repairing = true;
                out.frames
                    .push(ClientFrame::RepairRequest { room: self.name.clone(), key_package });
            }
            Err(error) => out.warn(&self.name.clone(), format!("cannot repair room keys: {error}")),
        }
    }

    /// Encrypts a chat payload for the room.
    pub fn encrypt(&mut self, payload: &ChatPayload) -> Result<ClientFrame, String> {
        let name = self.name.clone();
        if self.repairing {
            return Err("the room's keys are being repaired; try again in a moment".into());
        }
        let group = self.group_mut().ok_or("not in the room yet")?;
        let message =
            group.encrypt_message(&proto::encode(payload)).map_err(|error| error.to_string())?;
        Ok(ClientFrame::Application { room: name, message })
    }

    fn room_events(&mut self, events: Vec<RoomEvent>, now: SystemTime, out: &mut Outbox) {
        let room = self.name.clone();
        // A repair removes and re-adds the same member in one commit: not news to anyone.
        let removed: Vec<&String> = events
            .iter()
            .filter_map(|event| match event {
                RoomEvent::MemberRemoved { nick } => Some(nick),
                _ => None,
            })
            .collect();
        let added: Vec<&String> = events
            .iter()
            .filter_map(|event| match event {
                RoomEvent::MemberAdded { nick } => Some(nick),
                _ => None,
            })
            .collect();
        let repaired: Vec<String> = removed
            .iter()
            .filter(|nick| added.contains(nick))
            .map(|nick| (*nick).clone())
            .collect();
        for event in events {
            match event {
                RoomEvent::Message { from, payload } => {
                    match proto::decode::<ChatPayload>(&payload) {
                        Ok(ChatPayload::Text(text)) => out.events.push(Event::Message {
                            room: room.clone(),
                            from,
                            text,
                            action: false,
                            time: now,
                        }),
                        Ok(ChatPayload::Action(text)) => out.events.push(Event::Message {
                            room: room.clone(),
                            from,
                            text,
                            action: true,
                            time: now,
                        }),
                        Err(_) => out
                            .warn(&room, format!("{from} sent a message this version cannot show")),
                    }
                }
                RoomEvent::MemberAdded { nick } if !repaired.contains(&nick) => {
                    out.events.push(Event::Joined { room: room.clone(), nick });
                }
                RoomEvent::MemberRemoved { nick } if !repaired.contains(&nick) => {
                    out.events.push(Event::Left { room: room.clone(), nick });
                }
                RoomEvent::MemberAdded { .. } | RoomEvent::MemberRemoved { .. } => {}
                RoomEvent::SelfRemoved => {
                    out.warn(&room, "you were removed from the room's keys".into());
                }
            }
        }
    }
}
