//! What must hold once the network is quiet, and the ledger of the run it is judged on.
//!
//! The ledger is the simulation's ground truth, kept beside the clients (never read by
//! them): every line a client typed and who was owed it, every password exchange a client
//! started and what started it, every vote, merge and removal. [`check`] turns it, and the
//! clients' final state, into [`Violation`]s:
//!
//! - (a) every honest member that did not leave (its user's last word was `/join`, and it got
//!   in) is still in the room, holding its group; a `/join` still pending is one too; and at
//!   least one honest member is in the room, so a run that empties the room never passes.
//!   A member's client never drops the room without its user's word, except after the relay
//!   took it out for a cause the network gave (it did not vote in time: it stalled, or its
//!   frames were held up) or by force (a hostile relay); then its user, told, joins again
//!   (protocol 5 leaves that to the user), and must get back in;
//! - (b) honest members are in one group at one epoch (one epoch authenticator), with the
//!   same members, which are exactly the clients in the room, as each member's view of the
//!   relay's list says — or every one of them was warned that the room may be split
//!   (`RoomNotice::MaySplit`);
//! - (c) no chat line is lost without a notice: each honest member owed a line shows it, or
//!   was shown a gap covering its number or a warning naming its sender (one per line), or
//!   its sender was told it may not have been delivered, or the receiver's session ended
//!   before it arrived (its client says so on reconnecting). A line is owed to the honest members
//!   in the relay's room when the relay takes it, and in the sender's group since that epoch
//!   or before (the relay's own rule), that neither left nor joined anew since;
//! - (d) no password exchange (a `Join`, which carries the joiner's half) that the user neither asked for (`/join`) nor
//!   was told about, or that a frame the honest relay never sent (forged, replayed) began;
//! - (e) no honest member merged garbage, or a commit without the yes of more than half of
//!   the electorate its committer counted (each voter's last verdict, as sent);
//! - (f) no honest leader was taken out of the room for a commit no honest member refused
//!   (ARCHITECTURE.md: a member cannot veto the room). The final state cannot show this: once
//!   the vetoing member leads, the room converges under it.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::super::room::Room;
use super::super::{Event, RoomNotice};
use super::client::SimClient;
use super::network::Provenance;
use crate::client::ConnectionEvent;

/// Which property a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Property {
    /// (a) honest members stay in the room.
    StillInRoom,
    /// (b) one group, one epoch, the same members — or a warned split.
    OneGroup,
    /// (c) no chat line lost without a notice.
    NoSilentLoss,
    /// (d) no password exchange the user did not start or hear of.
    NoUnaskedExchange,
    /// (e) no merge of a refused commit.
    NoRefusedMerge,
    /// (f) no honest leader taken out by a dishonest veto.
    NoVeto,
    /// The network never went quiet (a protocol that chatters forever).
    Quiet,
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Property::StillInRoom => "(a) still in the room",
            Property::OneGroup => "(b) one group",
            Property::NoSilentLoss => "(c) no silent loss",
            Property::NoUnaskedExchange => "(d) no unasked password exchange",
            Property::NoRefusedMerge => "(e) no refused merge",
            Property::NoVeto => "(f) no veto",
            Property::Quiet => "quiet network",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Violation {
    pub property: Property,
    pub text: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.property, self.text)
    }
}

/// What a client is, for the checks: only honest clients are owed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Honest,
    /// A member running the honest code that lies where its actor says.
    Insider,
    /// Holds the access code only.
    Outsider,
}

/// What made a client send a `Join` or `Reclaim`: the start of the membership a password
/// exchange belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The user's `/join`.
    User,
    /// A frame from the relay; `told` when the user saw an event about it.
    Frame { kind: &'static str, provenance: Provenance, told: bool },
    /// A new session after the relay forgot the old one.
    Reconnect { told: bool },
    /// Something else (a tick): never expected.
    Other(&'static str),
}

/// One chat line an honest or hostile client typed.
#[derive(Debug, Clone)]
pub struct Line {
    pub text: String,
    pub sender: usize,
    /// The sender's `/join` count when it typed it: numbers restart with each `Room`.
    pub instance: u32,
    /// Set when it was encrypted: its number and group.
    pub number: Option<u64>,
    pub group_id: Option<Vec<u8>>,
    /// Honest clients in the room (the relay's) and in the sender's group when the relay
    /// took the line, with their user serial (a `/leave` or `/join` of their own afterwards
    /// releases them).
    pub owed_to: Vec<(usize, u32)>,
    /// Receivers whose session ended (the relay restarted or forgot it) before they got
    /// the line: each is told so (`ConnectionEvent::Reconnected`), which is the notice.
    pub lost_with_session: Vec<usize>,
}

/// Per client: what the user wants and what the checks need to remember.
#[derive(Debug, Clone, Default)]
pub struct Tracking {
    /// The user's last word was `/join`.
    pub wants_room: bool,
    /// Genuine commits the relay delivered, with their epochs: a joiner holds those that
    /// come before its Welcome and votes on them as the Welcome is processed.
    pub delivered_commits: Vec<(u64, Vec<u8>)>,
    /// In the room since that `/join`.
    pub admitted: bool,
    /// Counts the user's `/join`s and `/leave`s.
    pub user_serial: u32,
    /// Counts the user's `/join`s (a new `Room`, numbers from 1).
    pub instance: u32,
    /// A member of the room in the relay's state, as the state's own frames to it say
    /// (`RoomCreated`, `Welcome`, `Reclaimed` in; `Removed`, `Left`, a forgotten session
    /// out).
    pub in_relay_room: bool,
    /// The group this client holds and the epoch it entered it at (created, welcomed).
    pub member_since: Option<(Vec<u8>, u64)>,
    /// Warnings about undecryptable messages, per sender named, from frames the relay
    /// wrote once (a duplicate's or replay's warning excuses no loss).
    pub lost_warnings: HashMap<String, usize>,
    pub join_cause: Option<Cause>,
    /// Commits this client sent or accepted, by the epoch they end.
    pub commits: Vec<(u64, Vec<u8>)>,
    /// The last commit this client sent.
    pub own_commit: Option<Vec<u8>>,
    /// The relay took this member out for a cause the network gave it (it did not vote in
    /// time because it stalled or its frames were held up) or by force (a hostile relay):
    /// losing the room after that is no fault of the protocol, if the user is told.
    pub excused_exit: bool,
    /// It was sent a membership frame (`MemberLeft`, `MemberJoined`, `LeaderChanged`) the
    /// honest relay never sent: its view of the relay's list may be wrong.
    pub misled_about_members: bool,
    /// Its client dropped the room without the user's word, and the user, told, will
    /// `/join` again.
    pub rejoin_due: bool,
}

/// A member whose client dropped the room without its user's word.
#[derive(Debug, Clone)]
pub struct Dropped {
    pub client: usize,
    /// What the user was last told.
    pub told: String,
    pub excused: bool,
}

#[derive(Debug, Clone)]
pub struct Admission {
    pub client: usize,
    pub cause: Cause,
}

#[derive(Debug, Clone)]
pub struct Merge {
    pub client: usize,
    pub epoch: u64,
    pub commit: Option<Vec<u8>>,
}

/// The relay took an honest committer out because the room refused its commit.
#[derive(Debug, Clone)]
pub struct TakenOut {
    pub client: usize,
    pub commit: Option<Vec<u8>>,
}

#[derive(Default)]
pub struct Ledger {
    pub lines: Vec<Line>,
    pub line_by_text: HashMap<String, usize>,
    pub line_by_message: HashMap<Vec<u8>, usize>,
    pub admissions: Vec<Admission>,
    /// Votes per commit, as the voters sent them.
    pub votes: HashMap<Vec<u8>, Vec<(usize, bool)>>,
    /// The electorate each commit's sender counted (`ClientFrame::Commit::electorate`).
    pub electorates: HashMap<Vec<u8>, u32>,
    pub merges: Vec<Merge>,
    pub taken_out: Vec<TakenOut>,
    pub garbage: HashSet<Vec<u8>>,
    pub tracking: Vec<Tracking>,
    pub dropped: Vec<Dropped>,
}

/// Whether an event is something the user sees as news about the session or the room.
pub fn user_visible(event: &Event) -> bool {
    matches!(
        event,
        Event::Warning { .. }
            | Event::Notice { .. }
            | Event::Status(_)
            | Event::Disconnected(_)
            | Event::Connection(_)
            | Event::Room { .. }
    )
}

/// Whether an event warns that the room may be split into groups (`RoomNotice::MaySplit`).
pub fn warns_of_split(event: &Event) -> bool {
    matches!(event, Event::Room { notice: RoomNotice::MaySplit { .. }, .. })
}

fn group_of(client: &SimClient) -> Option<&crate::mls::RoomGroup> {
    // A member by its own account, and connected: one that never came back is not in the room.
    client.room().filter(|room| room.is_member() && client.is_connected()).and_then(Room::group)
}

/// Every violation of the properties, given the ledger and the clients once quiet.
pub fn check(ledger: &Ledger, clients: &[SimClient], roles: &[Role]) -> Vec<Violation> {
    let mut violations = Vec::new();
    still_in_room(ledger, clients, roles, &mut violations);
    one_group(ledger, clients, roles, &mut violations);
    no_silent_loss(ledger, clients, roles, &mut violations);
    no_unasked_exchange(ledger, clients, roles, &mut violations);
    no_refused_merge(ledger, clients, roles, &mut violations);
    no_veto(ledger, clients, roles, &mut violations);
    violations
}

/// The last warning, error or room notice the client showed.
pub fn last_warning(client: &SimClient) -> String {
    client
        .events
        .iter()
        .rev()
        .find_map(|event| match event {
            Event::Warning { text, .. } => Some(text.clone()),
            Event::Status(notice) => Some(format!("{notice:?}")),
            Event::Room { notice, .. } => Some(format!("{notice:?}")),
            _ => None,
        })
        .unwrap_or_else(|| "no warning".into())
}

fn still_in_room(ledger: &Ledger, clients: &[SimClient], roles: &[Role], out: &mut Vec<Violation>) {
    for dropped in ledger.dropped.iter().filter(|dropped| !dropped.excused) {
        if roles[dropped.client] != Role::Honest {
            continue;
        }
        out.push(Violation {
            property: Property::StillInRoom,
            text: format!(
                "{} lost the room without cause (told: {})",
                clients[dropped.client].nick, dropped.told
            ),
        });
    }
    let mut honest_members = 0;
    for (index, client) in clients.iter().enumerate() {
        if roles[index] != Role::Honest {
            continue;
        }
        let tracking = &ledger.tracking[index];
        let member = group_of(client).is_some();
        if member {
            honest_members += 1;
        }
        if tracking.wants_room && tracking.admitted && !member {
            out.push(Violation {
                property: Property::StillInRoom,
                text: format!(
                    "{} did not leave but is out of the room (last told: {})",
                    client.nick,
                    last_warning(client)
                ),
            });
        }
        if tracking.wants_room && !tracking.admitted && client.room().is_some() {
            out.push(Violation {
                property: Property::StillInRoom,
                text: format!("{} is still joining once the network is quiet", client.nick),
            });
        }
    }
    if honest_members == 0 {
        out.push(Violation {
            property: Property::StillInRoom,
            text: "no honest member is left in the room".into(),
        });
    }
}

fn one_group(ledger: &Ledger, clients: &[SimClient], roles: &[Role], out: &mut Vec<Violation>) {
    let participants: Vec<usize> =
        (0..clients.len()).filter(|&index| group_of(&clients[index]).is_some()).collect();
    let honest: Vec<usize> =
        participants.iter().copied().filter(|&index| roles[index] == Role::Honest).collect();
    let Some(&first) = honest.first() else { return };
    let mut in_room: Vec<String> =
        participants.iter().map(|&index| clients[index].nick.clone()).collect();
    in_room.sort();
    let describe = |index: usize| {
        let group = group_of(&clients[index]).unwrap();
        let mut members: Vec<String> = group.members().into_iter().map(|m| m.nick).collect();
        members.sort();
        (group.group_id(), group.epoch(), group.epoch_authenticator(), members)
    };
    let reference = describe(first);
    let split = honest.iter().any(|&index| describe(index) != reference);
    let warned = |index: usize| clients[index].events.iter().any(warns_of_split);
    if split && !honest.iter().all(|&index| warned(index)) {
        let views: Vec<String> = honest
            .iter()
            .map(|&index| {
                let (_, epoch, authenticator, members) = describe(index);
                format!(
                    "{} at epoch {epoch} code {:02x}{:02x} with {members:?}",
                    clients[index].nick, authenticator[0], authenticator[1]
                )
            })
            .collect();
        out.push(Violation {
            property: Property::OneGroup,
            text: format!("a silent split: {}", views.join("; ")),
        });
        return;
    }
    if split {
        return;
    }
    // Members who vote no on everything and make up half or more of those left refuse the
    // removal of the departed too, as they refuse everything (a tie is refused): the trust
    // model allows it, since an insider who could read the room can leak it anyway. The
    // departed keep their leaves until a majority of those left says yes.
    let objectors = participants.iter().filter(|&&index| clients[index].votes_no).count();
    let removals_refused = objectors > 0 && objectors * 2 >= in_room.len();
    if reference.3 != in_room && !removals_refused {
        out.push(Violation {
            property: Property::OneGroup,
            text: format!(
                "the group holds {:?} but the clients in the room are {in_room:?}",
                reference.3
            ),
        });
    }
    for &index in honest.iter().filter(|&&index| !ledger.tracking[index].misled_about_members) {
        let mut listed = clients[index].room().unwrap().relay_members.clone();
        listed.sort();
        if listed != in_room {
            out.push(Violation {
                property: Property::OneGroup,
                text: format!(
                    "{} sees the relay list {listed:?}, the room is {in_room:?}",
                    clients[index].nick
                ),
            });
        }
    }
}

/// The sender an "undecryptable message" warning names, if it is one: "could not decrypt a
/// message claimed to be from X (…)", "a message claimed to be from X is from a key change
/// …". Each stands for one lost message, without its number.
pub fn names_lost_message(event: &Event) -> Option<String> {
    let Event::Warning { text, .. } = event else { return None };
    let rest = text.split("message claimed to be from ").nth(1)?;
    Some(rest.split([' ', ',', ';', ':', ')', '(']).next().unwrap_or("").to_owned())
}

/// What one receiver accounted for of one sender's lines: shown, or covered by a gap.
#[derive(Default)]
struct Accounted {
    shown: HashSet<String>,
    /// Numbers covered by gaps, per sender instance.
    gaps: HashSet<(usize, u32, u64)>,
}

fn accounted(ledger: &Ledger, receiver: &SimClient) -> Accounted {
    let mut accounted = Accounted::default();
    let mut pending_gap: HashMap<String, u64> = HashMap::new();
    for event in &receiver.events {
        match event {
            Event::Gap { from, missed, .. } => {
                pending_gap.insert(from.clone(), *missed);
            }
            Event::Message { from, text, .. } => {
                accounted.shown.insert(text.clone());
                let missed = pending_gap.remove(from);
                let line = ledger.line_by_text.get(text).map(|&index| &ledger.lines[index]);
                if let (Some(missed), Some(line)) = (missed, line)
                    && let Some(number) = line.number
                {
                    for skipped in number.saturating_sub(missed)..number {
                        accounted.gaps.insert((line.sender, line.instance, skipped));
                    }
                }
            }
            _ => {}
        }
    }
    accounted
}

fn told_not_sent(sender: &SimClient, text: &str) -> bool {
    sender.events.iter().any(|event| {
        matches!(event, Event::Connection(ConnectionEvent::NotSent { texts, .. }) if texts.iter().any(|t| t == text))
    })
}

fn no_silent_loss(
    ledger: &Ledger,
    clients: &[SimClient],
    roles: &[Role],
    out: &mut Vec<Violation>,
) {
    let accounts: Vec<Accounted> = clients.iter().map(|client| accounted(ledger, client)).collect();
    // Missing lines per (receiver, sender), to weigh against the warnings naming the sender.
    let mut missing: HashMap<(usize, usize), Vec<&Line>> = HashMap::new();
    for line in &ledger.lines {
        if roles[line.sender] != Role::Honest || line.number.is_none() {
            continue;
        }
        if told_not_sent(&clients[line.sender], &line.text) {
            continue;
        }
        for &(receiver, serial) in &line.owed_to {
            if ledger.tracking[receiver].user_serial != serial
                || group_of(&clients[receiver]).is_none()
            {
                // Left by choice (its user did), or out of the room: (a) speaks for that.
                continue;
            }
            let account = &accounts[receiver];
            if line.lost_with_session.contains(&receiver) {
                continue;
            }
            if account.shown.contains(&line.text)
                || account.gaps.contains(&(line.sender, line.instance, line.number.unwrap()))
            {
                continue;
            }
            missing.entry((receiver, line.sender)).or_default().push(line);
        }
    }
    let mut missing: Vec<_> = missing.into_iter().collect();
    missing.sort_by_key(|(key, _)| *key);
    for ((receiver, sender), lines) in missing {
        let warnings = &ledger.tracking[receiver].lost_warnings;
        let warned = warnings.get(&clients[sender].nick).copied().unwrap_or(0);
        if lines.len() > warned {
            let texts: Vec<&str> = lines.iter().map(|line| line.text.as_str()).collect();
            out.push(Violation {
                property: Property::NoSilentLoss,
                text: format!(
                    "{} never saw {texts:?} from {} and was told of {warned} lost message(s) from them",
                    clients[receiver].nick, clients[sender].nick
                ),
            });
        }
    }
}

fn no_unasked_exchange(
    ledger: &Ledger,
    clients: &[SimClient],
    roles: &[Role],
    out: &mut Vec<Violation>,
) {
    for admission in &ledger.admissions {
        if roles[admission.client] != Role::Honest {
            continue;
        }
        let nick = &clients[admission.client].nick;
        let problem = match &admission.cause {
            Cause::User | Cause::Reconnect { told: true } => None,
            Cause::Frame { provenance: Provenance::Genuine, told: true, .. } => None,
            Cause::Frame { kind, provenance: Provenance::Genuine, told: false } => {
                Some(format!("after a {kind} from the relay, without telling the user"))
            }
            Cause::Frame { kind, provenance, .. } => {
                Some(format!("after a {provenance:?} {kind} the honest relay never sent"))
            }
            Cause::Reconnect { told: false } => {
                Some("after a new session, without telling the user".into())
            }
            Cause::Other(what) => Some(format!("after {what}")),
        };
        if let Some(problem) = problem {
            out.push(Violation {
                property: Property::NoUnaskedExchange,
                text: format!("{nick} started a password exchange {problem}"),
            });
        }
    }
}

fn no_refused_merge(
    ledger: &Ledger,
    clients: &[SimClient],
    roles: &[Role],
    out: &mut Vec<Violation>,
) {
    for merge in &ledger.merges {
        if roles[merge.client] != Role::Honest {
            continue;
        }
        let nick = &clients[merge.client].nick;
        let Some(commit) = &merge.commit else {
            out.push(Violation {
                property: Property::NoRefusedMerge,
                text: format!("{nick} merged a commit ending epoch {} it never saw", merge.epoch),
            });
            continue;
        };
        if ledger.garbage.contains(commit) {
            out.push(Violation {
                property: Property::NoRefusedMerge,
                text: format!("{nick} merged garbage"),
            });
        }
        let votes = final_votes(ledger, commit);
        let yes = votes.iter().filter(|(_, accept)| *accept).count();
        // The electorate the committer counted; without it, everyone who voted.
        let electorate =
            ledger.electorates.get(commit).map_or(votes.len(), |&count| count as usize);
        if yes * 2 <= electorate {
            let refusers: Vec<&str> = votes
                .iter()
                .filter(|(_, accept)| !accept)
                .map(|(voter, _)| clients[*voter].nick.as_str())
                .collect();
            out.push(Violation {
                property: Property::NoRefusedMerge,
                text: format!(
                    "{nick} merged the commit ending epoch {} with {yes} yes of {electorate} (refused by {refusers:?})",
                    merge.epoch
                ),
            });
        }
    }
}

/// Each voter's last verdict on a commit (a commit voted on again after an abort that
/// proved nothing gets the same verdict twice).
fn final_votes(ledger: &Ledger, commit: &[u8]) -> Vec<(usize, bool)> {
    let mut last: Vec<(usize, bool)> = Vec::new();
    for &(voter, accept) in ledger.votes.get(commit).map(Vec::as_slice).unwrap_or_default() {
        last.retain(|(other, _)| *other != voter);
        last.push((voter, accept));
    }
    last
}

fn no_veto(ledger: &Ledger, clients: &[SimClient], roles: &[Role], out: &mut Vec<Violation>) {
    for taken_out in &ledger.taken_out {
        if roles[taken_out.client] != Role::Honest {
            continue;
        }
        let Some(commit) = &taken_out.commit else { continue };
        let votes = final_votes(ledger, commit);
        if votes.iter().any(|(voter, accept)| roles[*voter] == Role::Honest && !accept) {
            continue;
        }
        let refusers: Vec<&str> = votes
            .iter()
            .filter(|(_, accept)| !accept)
            .map(|(voter, _)| clients[*voter].nick.as_str())
            .collect();
        if refusers.len() * 2 > votes.len() {
            // Hostile insiders who are most of the room outvote an honest leader: that is
            // the majority rule, not a veto (one member cannot do it alone).
            continue;
        }
        out.push(Violation {
            property: Property::NoVeto,
            text: format!(
                "{} was taken out of the room for a commit no honest member refused (refused by {refusers:?})",
                clients[taken_out.client].nick
            ),
        });
    }
}
