//! The client core's identity hooks, kept apart from the room protocol: the pin check after
//! a change of membership, the `/who` marks, and the answers to `/whoami`, `/verify` and
//! `/trust` (and the `Client` methods that ask them). The core runs the pin check after every
//! Welcome, confirmed commit and reclaimed room; the date a pin records is of the time the
//! core was given.

use std::time::SystemTime;

use super::core::{Reply, Request};
use super::room::Room;
use super::{Awaited, Client, ClientError, Event, REQUEST_TIMEOUT};
use crate::identity::{PeerTrust, TrustMark, Trusted, Verification, WhoAmI, safety_code};
use crate::mls::MemberInfo;

/// The local date a new pin records, of the time passed in.
fn local_date(now: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(now).format("%Y-%m-%d").to_string()
}

/// The pin check: run after every frame that may have changed the room's members (a
/// Welcome, a commit, our own accepted commit); pushes the warnings to show.
pub(super) fn check_pins(
    trust: &mut PeerTrust,
    room: Option<&Room>,
    now: SystemTime,
    events: &mut Vec<Event>,
) {
    let Some(room) = room else { return };
    let Some(group) = room.group() else { return };
    events.extend(trust.observe(&room.name, &group.members(), &local_date(now)));
}

/// The `/who` mark of the member called `nick`, given the group's members.
pub(super) fn mark(trust: &PeerTrust, members: &[MemberInfo], nick: &str) -> Option<TrustMark> {
    let member = members.iter().find(|member| member.nick == nick && !member.is_self)?;
    Some(trust.mark(&member.nick, &member.identity_key))
}

/// `/whoami`.
pub(super) fn whoami(trust: &PeerTrust, me: &str) -> WhoAmI {
    let identity = trust.identity();
    WhoAmI {
        nick: me.to_owned(),
        fingerprint: identity.fingerprint(),
        identity_file: identity.path().map(ToOwned::to_owned),
        known_peers_file: trust.known_peers().path().map(ToOwned::to_owned),
    }
}

/// `/verify`: the room's code (`nick` `None`), or the pairwise code with `nick`.
pub(super) fn verify(
    trust: &PeerTrust,
    me: &str,
    room: Option<&Room>,
    nick: Option<&str>,
) -> Result<Verification, ClientError> {
    let Some(nick) = nick else {
        let room = room.ok_or(ClientError::NotInRoom)?;
        let group = room.group().ok_or(ClientError::NotInRoom)?;
        let code =
            safety_code::room_code(&group.epoch_authenticator()).ok_or(ClientError::NoRoomCode)?;
        return Ok(Verification::Room {
            room: room.name.clone(),
            epoch: group.epoch(),
            members: group.members().len(),
            code,
        });
    };
    let member = peer(me, room, nick)?;
    Ok(Verification::Peer {
        mark: trust.mark(&member.nick, &member.identity_key),
        code: safety_code::pairwise_code(trust.identity().public_key(), &member.identity_key),
        nick: member.nick,
        fingerprint: member.fingerprint,
    })
}

/// `/trust`: pins `nick`'s current key as verified (the pin records the date of `now`).
pub(super) fn trust(
    trust: &mut PeerTrust,
    me: &str,
    room: Option<&Room>,
    nick: &str,
    now: SystemTime,
) -> Result<Trusted, ClientError> {
    let member = peer(me, room, nick)?;
    let previous = trust
        .trust(&member.nick, &member.identity_key, &local_date(now))
        .map_err(ClientError::Identity)?;
    Ok(Trusted { nick: member.nick, fingerprint: member.fingerprint, previous })
}

/// The member of the room called `nick`, other than us.
fn peer(me: &str, room: Option<&Room>, nick: &str) -> Result<MemberInfo, ClientError> {
    let members = room.and_then(Room::group).ok_or(ClientError::NotInRoom)?.members();
    if nick == me {
        return Err(ClientError::ThatIsYou);
    }
    members
        .into_iter()
        .find(|member| member.nick == nick && !member.is_self)
        .ok_or_else(|| ClientError::NoSuchMember(nick.to_owned()))
}

impl Client {
    /// Our nickname and identity.
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        match self.ask(Request::WhoAmI, REQUEST_TIMEOUT, Awaited::Engine).await? {
            Reply::WhoAmI(whoami) => Ok(whoami),
            _ => Err(ClientError::WrongReply),
        }
    }

    /// The room's safety code (`nick` `None`) or the pairwise code with `nick`.
    pub async fn verify(&self, nick: Option<&str>) -> Result<Verification, ClientError> {
        let request = Request::Verify { nick: nick.map(ToOwned::to_owned) };
        match self.ask(request, REQUEST_TIMEOUT, Awaited::Engine).await? {
            Reply::Verification(verification) => Ok(verification),
            _ => Err(ClientError::WrongReply),
        }
    }

    /// Pins `nick`'s current key as verified (accepting it if it changed).
    pub async fn trust(&self, nick: &str) -> Result<Trusted, ClientError> {
        let request = Request::Trust { nick: nick.to_owned() };
        match self.ask(request, REQUEST_TIMEOUT, Awaited::Engine).await? {
            Reply::Trusted(trusted) => Ok(trusted),
            _ => Err(ClientError::WrongReply),
        }
    }
}
