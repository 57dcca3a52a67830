//! Direct messages (ARCHITECTURE.md, "Direct messages"): `/msg NICK TEXT` opens an MLS group
//! of two with a member of a room we share, shown as `@NICK`.
//!
//! Which DM: the two identity keys in byte order make its key ([`dm_key`]), so `/msg bob`
//! from alice and `/msg alice` from bob mean one DM, and the side with the lower key creates
//! its group; the other only ever sends a KeyPackage. When both start at once, the lower one
//! asks for a KeyPackage and the higher one sends one unasked: the lower side creates the
//! group from the first KeyPackage it gets and the higher side's own attempt is that
//! KeyPackage, so both end in one DM.
//!
//! The key exchange (`DmSignal`) travels inside the shared room's encryption, so the relay
//! never sees a key. The group id is random and reaches the other only inside the Welcome;
//! the relay's room is named after its hash (`proto::dm_room_name`), and the relay lets in
//! only a `Reclaim` naming that very group. Locally the room is called `@NICK`: frames are
//! renamed on their way out and in ([`Dms::rename_outgoing`], [`Dms::rename_incoming`]), so
//! the rest of the core, the prompt and every event see `@NICK` only.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use sha2::Digest;

use super::Core;
use super::rooms::RoomEntry;
use crate::client::room::{HeardSignal, Room};
use crate::client::{ClientError, Event, NotSentReason};
use crate::identity::TrustMark;
use crate::mls::{MemberInfo, OwnKeyPackage, RoomSuite};
use crate::proto::{ChatPayload, ClientFrame, DmSignal, MAX_CHAT_TEXT_BYTES, ServerFrame};

/// DMs this client may start per minute. Each costs a key exchange in a shared room that
/// all its members decrypt, and a relay room; a person opens a few, a script in a loop
/// should hear "no" first.
pub const MAX_DMS_PER_MINUTE: usize = 5;

/// How long opening a DM may wait for the other side's answer.
const OPENING_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines typed for a DM that is still being opened, kept until it is.
const MAX_LINES_WHILE_OPENING: usize = 20;

/// Whose DM requests are answered (config key `dm`, flag `--dm`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DmPolicy {
    /// Anyone we share a room with.
    #[default]
    Anyone,
    /// Only keys pinned in an earlier session (seen before, or verified).
    Pinned,
    /// Only keys the user verified (`/trust`).
    Verified,
    /// Nobody.
    Nobody,
}

impl std::str::FromStr for DmPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "anyone" => Ok(DmPolicy::Anyone),
            "pinned" => Ok(DmPolicy::Pinned),
            "verified" => Ok(DmPolicy::Verified),
            "nobody" => Ok(DmPolicy::Nobody),
            other => Err(format!(
                "dm must be anyone, pinned, verified or nobody, not {:?}",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

impl DmPolicy {
    /// Whether a request from a key with this mark is answered.
    fn accepts(self, mark: TrustMark) -> bool {
        match self {
            DmPolicy::Anyone => true,
            DmPolicy::Pinned => matches!(mark, TrustMark::SeenBefore | TrustMark::Verified),
            DmPolicy::Verified => mark == TrustMark::Verified,
            DmPolicy::Nobody => false,
        }
    }
}

/// What opening one DM waits for.
enum Opening {
    /// We create the group and asked the other for a KeyPackage.
    KeyPackage,
    /// We sent our KeyPackage: only a Welcome for it can be taken (its private keys live
    /// as long as this value).
    Welcome { _keys: OwnKeyPackage },
}

/// A DM being opened.
struct Pending {
    opening: Opening,
    /// When it started: an opening that gets no answer is given up after
    /// [`OPENING_TIMEOUT`] (the other left the room, or its answer was lost with a
    /// restart), and its lines are listed as not sent. An answer to the other's request
    /// starts counting at the next tick.
    started: Option<Instant>,
    /// Lines the user typed for it meanwhile.
    lines: Vec<ChatPayload>,
}

/// The DMs: those being opened, by their key, and the open ones' relay names.
#[derive(Default)]
pub(super) struct Dms {
    pending: HashMap<[u8; 32], Pending>,
    /// Open DMs: `@NICK` to the relay's name of its room.
    relay_names: HashMap<String, String>,
    /// The relay's name back to `@NICK`. Never forgotten in a session (at most a few
    /// entries a minute): a `Left` for a DM we closed still has to find its room.
    local_names: HashMap<String, String>,
    /// DMs whose other member has not entered the relay's room yet: their lines wait, since
    /// the relay passes a line only to those in the room when it comes.
    awaiting_peer: HashSet<String>,
    /// When we started our last DMs, for [`MAX_DMS_PER_MINUTE`].
    started: VecDeque<Instant>,
    pub policy: DmPolicy,
}

impl Dms {
    /// A frame on its way to the relay, with a DM's room renamed to the relay's name.
    pub fn rename_outgoing(&self, frame: &ClientFrame) -> Option<ClientFrame> {
        let mut frame = frame.clone();
        let room = client_frame_room(&mut frame)?;
        *room = self.relay_names.get(room.as_str())?.clone();
        Some(frame)
    }

    /// A frame from the relay, with a DM's room renamed to `@NICK`.
    pub fn rename_incoming(&self, frame: &mut ServerFrame) {
        if let Some(room) = frame.room_mut()
            && let Some(local) = self.local_names.get(room.as_str())
        {
            *room = local.clone();
        }
    }
}

impl Dms {
    /// Whether lines for `room` must wait for the DM's other member.
    pub fn awaits_peer(&self, room: &str) -> bool {
        self.awaiting_peer.contains(room)
    }
}

/// The DM's key: SHA-256 of a label and the two identity keys in byte order.
pub fn dm_key(one: &[u8], other: &[u8]) -> [u8; 32] {
    let (low, high) = if one <= other { (one, other) } else { (other, one) };
    let mut hash = sha2::Sha256::new();
    hash.update(b"chatter dm\0");
    hash.update((low.len() as u64).to_be_bytes());
    hash.update(low);
    hash.update(high);
    hash.finalize().into()
}

impl Core {
    /// Openings that got no answer in time are given up; their lines are listed as not
    /// sent (at the keepalive's tick).
    pub(super) fn expire_dm_openings(&mut self, now: Instant) {
        let expired: Vec<[u8; 32]> = self
            .dms
            .pending
            .iter_mut()
            .filter_map(|(key, pending)| {
                let started = *pending.started.get_or_insert(now);
                (now.duration_since(started) > OPENING_TIMEOUT).then_some(*key)
            })
            .collect();
        for key in expired {
            let Some(pending) = self.dms.pending.remove(&key) else { continue };
            if !pending.lines.is_empty() {
                let texts = pending.lines.iter().map(super::queue::payload_text).collect();
                let reason = NotSentReason::DmNotOpened;
                self.emit(Event::Connection(crate::client::ConnectionEvent::NotSent {
                    texts,
                    reason,
                }));
            }
        }
    }

    /// `/dm` setting.
    pub(super) fn set_dm_policy(&mut self, policy: DmPolicy) {
        self.dms.policy = policy;
    }

    /// `/msg NICK TEXT`: to the open DM with `nick`, or opening one with a member of a room
    /// we share.
    pub(super) fn msg(
        &mut self,
        nick: &str,
        payload: ChatPayload,
        now: Instant,
    ) -> Result<(), ClientError> {
        let len = match &payload {
            ChatPayload::Text(text) | ChatPayload::Action(text) => text.len(),
        };
        if len > MAX_CHAT_TEXT_BYTES {
            return Err(ClientError::MessageTooLong { len, max: MAX_CHAT_TEXT_BYTES });
        }
        let local = format!("@{nick}");
        if self.rooms.contains(&local) {
            // Once the other member has left the DM's relay room (`/part @NICK`), a line
            // there would reach nobody: the DM is opened anew instead.
            let peer_left = !self.dms.awaits_peer(&local)
                && self.rooms.get(&local).is_some_and(|entry| {
                    entry.room.is_member() && !entry.room.relay_members.iter().any(|m| m == nick)
                });
            if !peer_left {
                return self.say_in(&local, payload);
            }
            let _ = self.leave(Some(&local));
        }
        if !self.is_connected() {
            return Err(ClientError::Offline);
        }
        // A DM is one more room, of the client and of its relay session.
        if self.rooms.len() >= super::MAX_ROOMS {
            return Err(ClientError::TooManyRooms { max: super::MAX_ROOMS });
        }
        let (shared, mine, theirs) = self.shared_room_with(nick)?;
        if mine == theirs {
            return Err(ClientError::DmToOwnIdentity(nick.to_owned()));
        }
        let key = dm_key(&mine, &theirs);
        if let Some(pending) = self.dms.pending.get_mut(&key) {
            if pending.lines.len() >= MAX_LINES_WHILE_OPENING {
                return Err(ClientError::QueueFull { max: MAX_LINES_WHILE_OPENING });
            }
            pending.lines.push(payload);
            return Ok(());
        }
        while self.dms.started.front().is_some_and(|at| now.duration_since(*at) > MINUTE) {
            self.dms.started.pop_front();
        }
        if self.dms.started.len() >= MAX_DMS_PER_MINUTE {
            return Err(ClientError::TooManyDms { max: MAX_DMS_PER_MINUTE });
        }
        let (signal, opening) = if mine < theirs {
            (DmSignal::Invite { to: nick.to_owned() }, Opening::KeyPackage)
        } else {
            // A DM's group is always of the classic suite (see `create_dm`).
            let own =
                self.mls.key_package_for_attempt(RoomSuite::Classic).map_err(ClientError::Mls)?;
            let key_package = own.bytes.clone();
            (
                DmSignal::KeyPackage { to: nick.to_owned(), key_package },
                Opening::Welcome { _keys: own },
            )
        };
        self.signal(&shared, signal)?;
        self.dms.started.push_back(now);
        let pending = Pending { opening, started: Some(now), lines: vec![payload] };
        self.dms.pending.insert(key, pending);
        let text = format!("opening a direct message with {nick} (through {shared})");
        self.emit(Event::Notice { room: Some(local), text });
        Ok(())
    }

    /// A room we share with `nick` (not a DM), our identity key and theirs.
    fn shared_room_with(&self, nick: &str) -> Result<(String, Vec<u8>, Vec<u8>), ClientError> {
        for tab in self.rooms.tabs() {
            if tab.name.starts_with('@') {
                continue;
            }
            let Some(entry) = self.rooms.get(&tab.name) else { continue };
            let Some(group) = entry.room.group().filter(|_| entry.room.is_member()) else {
                continue;
            };
            let members = group.members();
            let theirs = members.iter().find(|member| member.nick == nick && !member.is_self);
            let mine = members.iter().find(|member| member.is_self);
            if let (Some(theirs), Some(mine)) = (theirs, mine) {
                return Ok((tab.name, mine.identity_key.clone(), theirs.identity_key.clone()));
            }
        }
        Err(ClientError::NoSharedRoom(nick.to_owned()))
    }

    /// DMs whose other member is now in the relay's room take lines from now on.
    pub(super) fn note_dm_peers(&mut self) {
        let rooms = &self.rooms;
        self.dms
            .awaiting_peer
            .retain(|name| rooms.get(name).is_some_and(|entry| entry.room.relay_members.len() < 2));
    }

    /// A chat line for a room of ours that is not necessarily current.
    fn say_in(&mut self, room: &str, payload: ChatPayload) -> Result<(), ClientError> {
        let online = self.is_connected();
        let queued = self.queue.holds(room);
        let Some(entry) = self.rooms.get_mut(room) else {
            return Err(ClientError::NoSuchRoom(room.to_owned()));
        };
        if !online || queued || !entry.room.is_member() || self.dms.awaits_peer(room) {
            return self.queue_line(room.to_owned(), payload);
        }
        let frame = entry.room.encrypt(&payload).map_err(ClientError::CannotEncrypt)?;
        self.send_chat(frame, payload);
        Ok(())
    }

    /// Says a DM signal in `room`.
    fn signal(&mut self, room: &str, signal: DmSignal) -> Result<(), ClientError> {
        let entry = self.rooms.get_mut(room).ok_or(ClientError::NotInRoom)?;
        let frame = entry.room.encrypt_signal(signal).map_err(ClientError::CannotEncrypt)?;
        self.send(frame);
        Ok(())
    }

    /// DM signals heard in our rooms: those addressed to us are acted on.
    pub(super) fn on_signals(&mut self, signals: Vec<HeardSignal>) {
        for heard in signals {
            if heard.signal.to() == self.nick {
                self.on_signal(heard);
            }
        }
    }

    fn on_signal(&mut self, heard: HeardSignal) {
        let HeardSignal { room, from, signal } = heard;
        let members = self
            .rooms
            .get(&room)
            .and_then(|entry| entry.room.group())
            .map(|group| group.members())
            .unwrap_or_default();
        let Some(theirs) = members.iter().find(|member| member.nick == from && !member.is_self)
        else {
            return;
        };
        let Some(mine) = members.iter().find(|member| member.is_self) else { return };
        let theirs = theirs.identity_key.clone();
        let key = dm_key(&mine.identity_key, &theirs);
        let we_create = mine.identity_key < theirs;
        let warn = |text: String| Event::Warning { room: Some(room.clone()), text };
        match signal {
            DmSignal::Invite { .. } if we_create => {
                self.emit(warn(format!(
                    "ignored a direct-message invitation from {from} out of turn"
                )));
            }
            DmSignal::Invite { .. } => {
                // Our own KeyPackage is on its way already (both started at once).
                if matches!(
                    self.dms.pending.get(&key),
                    Some(Pending { opening: Opening::Welcome { .. }, .. })
                ) {
                    return;
                }
                if !self.dm_allowed(&room, &from, &theirs) {
                    return;
                }
                let own = match self.mls.key_package_for_attempt(RoomSuite::Classic) {
                    Ok(own) => own,
                    Err(error) => {
                        return self.emit(warn(format!(
                            "could not answer {from}'s direct message: {error}"
                        )));
                    }
                };
                let key_package = own.bytes.clone();
                let signal = DmSignal::KeyPackage { to: from.clone(), key_package };
                if self.signal(&room, signal).is_ok() {
                    let pending = Pending {
                        opening: Opening::Welcome { _keys: own },
                        started: None,
                        lines: Vec::new(),
                    };
                    self.dms.pending.insert(key, pending);
                }
            }
            DmSignal::KeyPackage { .. } if !we_create => {
                self.emit(warn(format!("ignored a direct-message key from {from} out of turn")));
            }
            DmSignal::KeyPackage { key_package, .. } => {
                // Asked for by us, or sent unasked: then it is a request we may refuse.
                let asked = self.dms.pending.contains_key(&key);
                if !asked && !self.dm_allowed(&room, &from, &theirs) {
                    return;
                }
                self.create_dm(&room, &from, &theirs, key, &key_package);
            }
            DmSignal::Welcome { welcome, .. } => {
                let Some(Pending { opening: Opening::Welcome { .. }, .. }) =
                    self.dms.pending.get(&key)
                else {
                    return self.emit(warn(format!(
                        "ignored a direct-message welcome from {from} that nobody asked for"
                    )));
                };
                let group = match self.mls.join_room(&welcome) {
                    Ok(group) => group,
                    Err(error) => {
                        return self.emit(warn(format!(
                            "could not open the direct message with {from}: {error}"
                        )));
                    }
                };
                if !is_pair(&group.members(), &from, &theirs) {
                    return self.emit(warn(format!(
                        "refused a direct message from {from}: its group is not the two of you"
                    )));
                }
                let lines =
                    self.dms.pending.remove(&key).map(|pending| pending.lines).unwrap_or_default();
                self.install_dm(&from, group, lines);
            }
            DmSignal::Refused { .. } => {
                let Some(pending) = self.dms.pending.remove(&key) else { return };
                self.emit(Event::DmRefused { nick: from });
                if !pending.lines.is_empty() {
                    let texts = pending.lines.iter().map(super::queue::payload_text).collect();
                    let reason = NotSentReason::DmRefused;
                    self.emit(Event::Connection(crate::client::ConnectionEvent::NotSent {
                        texts,
                        reason,
                    }));
                }
            }
        }
    }

    /// Whether our setting answers a DM request from `from`; if not, `from` is told so (in
    /// the shared room) and so is our user.
    fn dm_allowed(&mut self, room: &str, from: &str, key: &[u8]) -> bool {
        if self.rooms.len() >= super::MAX_ROOMS {
            let text =
                format!("could not open a direct message with {from}: you are in too many rooms");
            self.emit(Event::Warning { room: Some(room.to_owned()), text });
            // Said to the sender as a refusal, so that their lines are not left waiting.
            let _ = self.signal(room, DmSignal::Refused { to: from.to_owned() });
            return false;
        }
        let policy = self.dms.policy;
        if policy.accepts(self.trust.mark(from, key)) {
            return true;
        }
        let _ = self.signal(room, DmSignal::Refused { to: from.to_owned() });
        let text = format!("refused a direct message from {from} (your dm setting)");
        self.emit(Event::Notice { room: Some(room.to_owned()), text });
        false
    }

    /// As the DM's creator: a group of the two from `from`'s KeyPackage, its Welcome sent
    /// through the shared room. A DM's group is of the classic suite whatever `--pq` says:
    /// the other side sends its KeyPackage unasked (see `client::core::dm`), before it could
    /// learn a suite, so both sides must know it in advance.
    fn create_dm(&mut self, room: &str, from: &str, theirs: &[u8], key: [u8; 32], kp: &[u8]) {
        let warn = |text: String| Event::Warning { room: Some(room.to_owned()), text };
        let made = self.mls.create_room().and_then(|mut group| {
            // Checks the KeyPackage's certification and that it names `from`.
            let commit = group.commit_add(kp, from)?;
            group.merge_pending_commit()?;
            Ok((group, commit.welcome))
        });
        let (group, welcome) = match made {
            Ok((group, Some(welcome))) => (group, welcome),
            Ok((_, None)) => return,
            Err(error) => {
                return self
                    .emit(warn(format!("could not open a direct message with {from}: {error}")));
            }
        };
        if !is_pair(&group.members(), from, theirs) {
            return self.emit(warn(format!(
                "refused {from}'s direct-message key: another identity certified it"
            )));
        }
        if self.signal(room, DmSignal::Welcome { to: from.to_owned(), welcome }).is_err() {
            return;
        }
        let lines = self.dms.pending.remove(&key).map(|pending| pending.lines).unwrap_or_default();
        self.install_dm(from, group, lines);
    }

    /// The DM's room, asked for from the relay; lines typed meanwhile wait for it.
    fn install_dm(&mut self, nick: &str, group: crate::mls::RoomGroup, lines: Vec<ChatPayload>) {
        let local = format!("@{nick}");
        if self.rooms.contains(&local) {
            // An earlier DM with this nickname (another key, or one the other closed and
            // opened anew): the new one replaces it.
            let _ = self.leave(Some(&local));
        }
        let relay = crate::proto::dm_room_name(&group.group_id());
        self.dms.relay_names.insert(local.clone(), relay.clone());
        self.dms.local_names.insert(relay, local.clone());
        self.dms.awaiting_peer.insert(local.clone());
        let (room, frame) = Room::direct(local.clone(), group);
        self.rooms.insert_behind(local.clone(), RoomEntry::direct(room));
        self.send(frame);
        self.emit(Event::DmOpened { room: local.clone(), nick: nick.to_owned() });
        for line in lines {
            if let Err(error) = self.queue_line(local.clone(), line.clone()) {
                let texts = vec![super::queue::payload_text(&line)];
                let _ = error;
                let reason = NotSentReason::TooManyWaiting { max: super::MAX_QUEUED_LINES };
                self.emit(Event::Connection(crate::client::ConnectionEvent::NotSent {
                    texts,
                    reason,
                }));
            }
        }
    }
}

const MINUTE: Duration = Duration::from_secs(60);

/// Whether a DM's group is exactly us and `nick` under the identity key we know for them.
fn is_pair(members: &[MemberInfo], nick: &str, key: &[u8]) -> bool {
    members.len() == 2
        && members.iter().any(|member| member.is_self)
        && members
            .iter()
            .any(|member| !member.is_self && member.nick == nick && member.identity_key == key)
}

/// The room a client frame names, to rename.
fn client_frame_room(frame: &mut ClientFrame) -> Option<&mut String> {
    match frame {
        ClientFrame::ListMembers { room }
        | ClientFrame::Join { room, .. }
        | ClientFrame::AdmissionReply { room, .. }
        | ClientFrame::AdmissionFinish { room, .. }
        | ClientFrame::AdmissionRefused { room, .. }
        | ClientFrame::Commit { room, .. }
        | ClientFrame::Application { room, .. }
        | ClientFrame::CommitVote { room, .. }
        | ClientFrame::Leave { room }
        | ClientFrame::Reclaim { room, .. }
        | ClientFrame::Welcome { room, .. } => Some(room),
        ClientFrame::Register { .. }
        | ClientFrame::ListRooms
        | ClientFrame::Ping
        | ClientFrame::Quit
        | ClientFrame::Resume { .. }
        | ClientFrame::Ack { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_name_one_dm() {
        assert_eq!(dm_key(b"alice-key", b"bob-key"), dm_key(b"bob-key", b"alice-key"));
        assert_ne!(dm_key(b"alice-key", b"bob-key"), dm_key(b"alice-key", b"carol-key"));
    }

    #[test]
    fn the_setting_parses_and_decides() {
        assert_eq!("pinned".parse::<DmPolicy>(), Ok(DmPolicy::Pinned));
        assert!("everyone".parse::<DmPolicy>().is_err());
        assert!(DmPolicy::Anyone.accepts(TrustMark::New));
        assert!(!DmPolicy::Pinned.accepts(TrustMark::New));
        assert!(DmPolicy::Pinned.accepts(TrustMark::SeenBefore));
        assert!(!DmPolicy::Verified.accepts(TrustMark::SeenBefore));
        assert!(!DmPolicy::Nobody.accepts(TrustMark::Verified));
    }
}
