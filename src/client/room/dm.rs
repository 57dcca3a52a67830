//! What a room does for direct messages: it carries their key exchange (`DmSignal`s, said
//! inside its own encryption), and a DM is itself a room of two, entered as its members come
//! back to a room (`Reclaim`) rather than by a password exchange.

use super::*;
use crate::proto::DmSignal;

/// A DM signal heard in a room, from the member MLS authenticated as `from`.
#[derive(Debug)]
pub struct HeardSignal {
    pub room: String,
    pub from: String,
    pub signal: DmSignal,
}

impl Room {
    /// A DM of two whose group was just made (by its creator) or joined (by the other):
    /// shown as `name` (`@nick`), and asking the relay for its room with `Reclaim`, which
    /// names the group and its epoch.
    pub fn direct(name: String, group: RoomGroup) -> (Self, ClientFrame) {
        let mut room = Room::new(name, Secret::default());
        room.phase = Phase::Member(Membership::new(group));
        room.opening = true;
        let frame = room.reclaim();
        (room, frame)
    }

    /// Encrypts a DM signal for this room's members (only `to` acts on it).
    pub fn encrypt_signal(&mut self, signal: DmSignal) -> Result<ClientFrame, RoomError> {
        let name = self.name.clone();
        let membership = self.membership().ok_or(RoomError::NotMember)?;
        let message =
            membership.group.encrypt_message(&proto::encode(&GroupMessage::Dm(signal)))?;
        if message.len() > MAX_APPLICATION_LEN {
            return Err(RoomError::TooLong { len: message.len(), max: MAX_APPLICATION_LEN });
        }
        Ok(ClientFrame::Application { room: name, message })
    }
}
