// TEMPORARY STUB
#![allow(dead_code, unused_variables, missing_docs)]
use crate::secret::Secret;
pub struct ClientOptions {
    pub server: String,
    pub nick: String,
    pub access_code: Secret,
}
#[derive(Clone)]
pub struct Client;
pub struct Events;
impl Events {
    pub async fn recv(&mut self) -> Option<Event> {
        todo!()
    }
    pub fn blocking_recv(&mut self) -> Option<Event> {
        todo!()
    }
}
pub async fn connect(options: ClientOptions) -> Result<(Client, Events), ClientError> {
    todo!()
}
impl Client {
    pub fn nick(&self) -> String {
        todo!()
    }
    pub fn current_room(&self) -> Option<String> {
        todo!()
    }
    pub fn is_connected(&self) -> bool {
        todo!()
    }
    pub async fn join(&self, room: &str, password: Secret) -> Result<(), ClientError> {
        todo!()
    }
    pub async fn leave(&self) -> Result<(), ClientError> {
        todo!()
    }
    pub async fn send_text(&self, text: &str) -> Result<(), ClientError> {
        todo!()
    }
    pub async fn send_action(&self, text: &str) -> Result<(), ClientError> {
        todo!()
    }
    pub async fn rooms(&self) -> Result<Vec<RoomSummary>, ClientError> {
        todo!()
    }
    pub async fn members(&self) -> Result<RoomMembers, ClientError> {
        todo!()
    }
    pub async fn quit(&self) -> Result<(), ClientError> {
        todo!()
    }
}
pub struct RoomSummary {
    pub name: String,
    pub members: u32,
}
pub struct RoomMembers {
    pub room: String,
    pub members: Vec<MemberView>,
}
pub struct MemberView {
    pub nick: String,
    pub fingerprint: Option<String>,
    pub is_leader: bool,
    pub is_self: bool,
}
#[derive(Debug, Clone)]
pub enum Event {
    Message { room: String, from: String, text: String, action: bool, time: std::time::SystemTime },
    Joined { room: String, nick: String },
    Left { room: String, nick: String },
    Notice { room: Option<String>, text: String },
    Warning { room: Option<String>, text: String },
    Error { text: String },
    Disconnected { reason: String },
}
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("wrong access code")]
    WrongAccessCode,
    #[error("wrong room password")]
    WrongRoomPassword,
    #[error("nickname {0:?} is taken")]
    NickTaken(String),
    #[error("{0}")]
    Other(String),
    #[error("stub")]
    Stub,
}
