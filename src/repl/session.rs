//! The engine as the commands see it: `chatter::client::Client` behind blocking calls.
//!
//! The REPL runs on the main thread, outside the tokio runtime, so each call is one
//! `Handle::block_on`. The client may still be connecting when the prompt appears (nothing
//! on the network happens before it), so it sits in a slot the event task fills; `/nick`
//! empties it and has the binary's connector fill it again under the new nickname.

use crate::client::{
    Awaited, Client, ClientError, DmPolicy, LinkState, RoomMembers, RoomSummary, RoomTab,
};
use crate::commands::Engine;
use crate::identity::{Trusted, Verification, WhoAmI};
use crate::mls::RoomSuite;
use crate::repl::prompt::{ConnectionState, PromptStatus};
use crate::secret::Secret;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use tokio::runtime::Handle;

/// Queries (rooms, members) answer fast or not at all; tab completion must not hang on them.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Quitting waits this long for the relay to confirm before closing anyway.
const QUIT_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts connecting under a nickname (the binary's `connect_in_background`).
pub type Connector = Box<dyn Fn(String) + Send + Sync>;

/// A connection to the relay, possibly still being established.
pub struct Session {
    client: RwLock<Option<Client>>,
    failed: AtomicBool,
    /// The start-up connection attempt under way, from 1.
    attempt: AtomicU32,
    runtime: Handle,
    nick: Mutex<String>,
    connector: OnceLock<Connector>,
    /// Whose DM requests are answered, for every client this session connects (`/nick`
    /// makes a new one).
    dm_policy: Mutex<DmPolicy>,
    renew_after: Mutex<Option<std::time::Duration>>,
    /// The ciphersuite of the rooms this session creates (`--pq`), for every client it
    /// connects.
    room_suite: Mutex<RoomSuite>,
}

impl Session {
    /// A session for `nick` that is not connected yet.
    pub fn new(nick: String, runtime: Handle) -> Arc<Self> {
        Arc::new(Session {
            client: RwLock::new(None),
            failed: AtomicBool::new(false),
            attempt: AtomicU32::new(1),
            runtime,
            nick: Mutex::new(nick),
            connector: OnceLock::new(),
            dm_policy: Mutex::new(DmPolicy::default()),
            renew_after: Mutex::new(None),
            room_suite: Mutex::new(RoomSuite::default()),
        })
    }

    /// How `/nick` connects again under another nickname.
    pub fn set_connector(&self, connector: Connector) {
        let _ = self.connector.set(connector);
    }

    /// Sets whose DM requests are answered, before the client connects.
    pub fn set_dm_policy(&self, policy: DmPolicy) {
        *self.dm_policy.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = policy;
    }

    /// Sets how long keys are kept in a room before they renew, before the client connects.
    pub fn set_renew_after(&self, after: std::time::Duration) {
        *self.renew_after.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(after);
    }

    /// Sets the ciphersuite of the rooms this session creates, before the client connects.
    pub fn set_room_suite(&self, suite: RoomSuite) {
        *self.room_suite.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = suite;
    }

    /// Installs the connected client (with the DM and renewal settings and the suite of the
    /// rooms it creates, before any of its rooms).
    pub fn connected(&self, client: Client) {
        client
            .set_dm_policy(*self.dm_policy.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        if let Some(after) =
            *self.renew_after.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
        {
            client.set_renew_after(after);
        }
        client.set_room_suite(
            *self.room_suite.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        *self.client.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(client);
    }

    /// Records that start-up connection attempt `attempt` is next (the prompt shows it).
    pub fn connecting(&self, attempt: u32) {
        self.attempt.store(attempt, Ordering::Relaxed);
    }

    /// Records that connecting failed.
    pub fn connect_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    fn current(&self) -> Option<Client> {
        self.client.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The connected client, if any.
    pub fn client(&self) -> Result<Client, ClientError> {
        self.current().ok_or_else(|| {
            if self.failed.load(Ordering::Relaxed) {
                ClientError::NotConnected
            } else {
                ClientError::StillConnecting
            }
        })
    }

    fn current_nick(&self) -> String {
        self.nick.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// What the prompt shows.
    pub fn status(&self) -> PromptStatus {
        let (room, state) = match self.current() {
            Some(client) => match client.link_state() {
                LinkState::Connected => (client.current_room(), ConnectionState::Connected),
                LinkState::Reconnecting { attempt, waiting } => {
                    (client.current_room(), ConnectionState::Reconnecting { attempt, waiting })
                }
                LinkState::Closed => (None, ConnectionState::Offline),
            },
            None if self.failed.load(Ordering::Relaxed) => (None, ConnectionState::Offline),
            None => (
                None,
                ConnectionState::Connecting { attempt: self.attempt.load(Ordering::Relaxed) },
            ),
        };
        // The other rooms we are in (not those still being joined), in the order joined.
        let others = match (&room, self.current()) {
            (Some(_), Some(client)) => client
                .room_tabs()
                .into_iter()
                .filter(|tab| !tab.current && tab.entered)
                .map(|tab| (tab.name, tab.unread))
                .collect(),
            _ => Vec::new(),
        };
        PromptStatus { nick: self.current_nick(), room, others, state }
    }

    /// Sends a chat line to the current room.
    pub fn send_text(&self, text: &str) -> Result<(), ClientError> {
        let client = self.client()?;
        self.runtime.block_on(client.send_text(text))
    }

    fn with_timeout<T>(
        &self,
        limit: Duration,
        work: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        self.runtime.block_on(async {
            tokio::time::timeout(limit, work)
                .await
                .unwrap_or_else(|_| Err(ClientError::Timeout(Awaited::Server)))
        })
    }
}

impl Engine for Session {
    fn current_room(&self) -> Option<String> {
        self.current().and_then(|client| client.current_room())
    }
    fn is_member_of(&self, room: &str) -> bool {
        self.current().is_some_and(|client| client.is_member_of(room))
    }
    fn join(&self, room: &str, password: Secret) -> Result<(), ClientError> {
        let client = self.client()?;
        self.runtime.block_on(client.join(room, password))
    }
    fn leave(&self, room: Option<&str>) -> Result<(), ClientError> {
        let client = self.client()?;
        self.runtime.block_on(client.leave(room))
    }
    fn switch(&self, target: &str) -> Result<String, ClientError> {
        let client = self.client()?;
        self.with_timeout(QUERY_TIMEOUT, client.switch(target))
    }
    fn my_rooms(&self) -> Vec<RoomTab> {
        self.current().map(|client| client.room_tabs()).unwrap_or_default()
    }
    fn msg(&self, nick: &str, text: &str) -> Result<(), ClientError> {
        let client = self.client()?;
        self.runtime.block_on(client.msg(nick, text))
    }
    fn send_action(&self, text: &str) -> Result<(), ClientError> {
        let client = self.client()?;
        self.runtime.block_on(client.send_action(text))
    }
    fn rooms(&self) -> Result<Vec<RoomSummary>, ClientError> {
        let client = self.client()?;
        self.with_timeout(QUERY_TIMEOUT, client.rooms())
    }
    fn members(&self) -> Result<RoomMembers, ClientError> {
        let client = self.client()?;
        self.with_timeout(QUERY_TIMEOUT, client.members())
    }
    fn whoami(&self) -> Result<WhoAmI, ClientError> {
        let client = self.client()?;
        self.with_timeout(QUERY_TIMEOUT, client.whoami())
    }
    fn verify(&self, nick: Option<&str>) -> Result<Verification, ClientError> {
        let client = self.client()?;
        self.with_timeout(QUERY_TIMEOUT, client.verify(nick))
    }
    fn trust(&self, nick: &str) -> Result<Trusted, ClientError> {
        let client = self.client()?;
        self.with_timeout(QUERY_TIMEOUT, client.trust(nick))
    }
    fn rekey(&self) -> Result<(), ClientError> {
        let client = self.client()?;
        self.with_timeout(QUERY_TIMEOUT, client.rekey())
    }
    fn quit(&self) -> Result<(), ClientError> {
        match self.current() {
            Some(client) => self.with_timeout(QUIT_TIMEOUT, client.quit()),
            None => Ok(()),
        }
    }
    fn change_nick(&self, nick: &str) -> Result<(), ClientError> {
        if let Err(problem) = crate::proto::check_nick(nick) {
            return Err(ClientError::NickInvalid(nick.to_owned(), problem));
        }
        let connector = self.connector.get().ok_or(ClientError::NotConnected)?;
        match self.current() {
            Some(client) if client.current_room().is_some() => {
                return Err(ClientError::NickChangeInRoom);
            }
            // A session's nickname is the relay's key for it, and the MLS credential's: the
            // new name is a new session, so the old one says goodbye first.
            Some(client) => {
                let _ = self.with_timeout(QUIT_TIMEOUT, client.quit());
                *self.client.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
            }
            None if !self.failed.load(Ordering::Relaxed) => {
                return Err(ClientError::StillConnecting);
            }
            None => {}
        }
        self.failed.store(false, Ordering::Relaxed);
        self.attempt.store(1, Ordering::Relaxed);
        *self.nick.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = nick.to_owned();
        connector(nick.to_owned());
        Ok(())
    }
    fn nick(&self) -> Option<String> {
        Some(self.current_nick())
    }
}
