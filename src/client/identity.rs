//! The engine's identity hooks, kept apart from the room protocol: the pin check after a
//! change of membership, the `/who` marks, and the answers to `/whoami`, `/verify` and
//! `/trust`. The engine calls these after every Welcome and every confirmed commit.

use super::engine::{Reply, Request};
use super::room::Room;
use super::{Client, ClientError, Event, REQUEST_TIMEOUT};
use crate::identity::{PeerTrust, TrustMark, Trusted, Verification, WhoAmI, safety_code};
use crate::mls::MemberInfo;

/// An identity question for the engine.
pub(super) enum IdentityRequest {
    WhoAmI { reply: Reply<WhoAmI> },
    Verify { nick: Option<String>, reply: Reply<Verification> },
    Trust { nick: String, reply: Reply<Trusted> },
}

/// The local date a new pin records.
fn today() -> String {
    chrono::Local::now().format("%Y-%m-%d").to_string()
}

/// The pin check: run after every frame that may have changed the room's members (a
/// Welcome, a commit, our own accepted commit); pushes the warnings to show.
pub(super) fn check_pins(trust: &mut PeerTrust, room: Option<&Room>, events: &mut Vec<Event>) {
    let Some(room) = room else { return };
    let Some(group) = room.group() else { return };
    events.extend(trust.observe(&room.name, &group.members(), &today()));
}

/// The `/who` mark of the member called `nick`, given the group's members.
pub(super) fn mark(trust: &PeerTrust, members: &[MemberInfo], nick: &str) -> Option<TrustMark> {
    let member = members.iter().find(|member| member.nick == nick && !member.is_self)?;
    Some(trust.mark(&member.nick, &member.signature_key))
}

/// Answers an identity question from what the engine holds.
pub(super) fn answer(
    request: IdentityRequest,
    trust: &mut PeerTrust,
    me: &str,
    room: Option<&Room>,
) {
    let members = || {
        let group = room.and_then(Room::group).ok_or(ClientError::NotInRoom)?;
        Ok::<_, ClientError>(group.members())
    };
    let peer = |nick: &str| {
        let members = members()?;
        if nick == me {
            return Err(ClientError::Other(
                "that is you; /verify NICK compares with someone else".into(),
            ));
        }
        members
            .into_iter()
            .find(|member| member.nick == nick && !member.is_self)
            .ok_or_else(|| ClientError::Other(format!("{nick} is not in this room")))
    };
    match request {
        IdentityRequest::WhoAmI { reply } => {
            let identity = trust.identity();
            let _ = reply.send(Ok(WhoAmI {
                nick: me.to_owned(),
                fingerprint: identity.fingerprint(),
                identity_file: identity.path().map(ToOwned::to_owned),
                known_peers_file: trust.known_peers().path().map(ToOwned::to_owned),
            }));
        }
        IdentityRequest::Verify { nick: None, reply } => {
            let answer = room
                .and_then(|room| Some((room, room.group()?)))
                .ok_or(ClientError::NotInRoom)
                .and_then(|(room, group)| {
                    let code =
                        safety_code::room_code(&group.epoch_authenticator()).ok_or_else(|| {
                            ClientError::Other("the epoch authenticator is too short".into())
                        })?;
                    Ok(Verification::Room {
                        room: room.name.clone(),
                        epoch: group.epoch(),
                        members: group.members().len(),
                        code,
                    })
                });
            let _ = reply.send(answer);
        }
        IdentityRequest::Verify { nick: Some(nick), reply } => {
            let answer = peer(&nick).map(|member| Verification::Peer {
                mark: trust.mark(&member.nick, &member.signature_key),
                code: safety_code::pairwise_code(
                    trust.identity().public_key(),
                    &member.signature_key,
                ),
                nick: member.nick,
                fingerprint: member.fingerprint,
            });
            let _ = reply.send(answer);
        }
        IdentityRequest::Trust { nick, reply } => {
            let answer = peer(&nick).and_then(|member| {
                let previous = trust
                    .trust(&member.nick, &member.signature_key, &today())
                    .map_err(|error| ClientError::Other(error.to_string()))?;
                Ok(Trusted { nick: member.nick, fingerprint: member.fingerprint, previous })
            });
            let _ = reply.send(answer);
        }
    }
}

impl Client {
    /// Our nickname and identity.
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        let make = |reply| Request::Identity(IdentityRequest::WhoAmI { reply });
        self.ask(make, REQUEST_TIMEOUT, "the client engine").await
    }

    /// The room's safety code (`nick` `None`) or the pairwise code with `nick`.
    pub async fn verify(&self, nick: Option<&str>) -> Result<Verification, ClientError> {
        let nick = nick.map(ToOwned::to_owned);
        let make = |reply| Request::Identity(IdentityRequest::Verify { nick, reply });
        self.ask(make, REQUEST_TIMEOUT, "the client engine").await
    }

    /// Pins `nick`'s current key as verified (accepting it if it changed).
    pub async fn trust(&self, nick: &str) -> Result<Trusted, ClientError> {
        let nick = nick.to_owned();
        let make = |reply| Request::Identity(IdentityRequest::Trust { nick, reply });
        self.ask(make, REQUEST_TIMEOUT, "the client engine").await
    }
}
