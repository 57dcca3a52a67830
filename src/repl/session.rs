//! The engine as the commands see it: `chatter::client::Client` behind blocking calls.
//!
//! The REPL runs on the main thread, outside the tokio runtime, so each call is one
//! `Handle::block_on`. The client may still be connecting when the prompt appears (nothing
//! on the network happens before it), so it sits in a `OnceLock` the event task fills.

use crate::client::{Awaited, Client, ClientError, LinkState, RoomMembers, RoomSummary};
use crate::commands::Engine;
use crate::identity::{Trusted, Verification, WhoAmI};
use crate::repl::prompt::{ConnectionState, PromptStatus};
use crate::secret::Secret;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::runtime::Handle;

/// Queries (rooms, members) answer fast or not at all; tab completion must not hang on them.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Quitting waits this long for the relay to confirm before closing anyway.
const QUIT_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection to the relay, possibly still being established.
pub struct Session {
    client: OnceLock<Client>,
    failed: AtomicBool,
    /// The start-up connection attempt under way, from 1.
    attempt: AtomicU32,
    runtime: Handle,
    nick: String,
}

impl Session {
    /// A session for `nick` that is not connected yet.
    pub fn new(nick: String, runtime: Handle) -> Arc<Self> {
        Arc::new(Session {
            client: OnceLock::new(),
            failed: AtomicBool::new(false),
            attempt: AtomicU32::new(1),
            runtime,
            nick,
        })
    }

    /// Installs the connected client.
    pub fn connected(&self, client: Client) {
        let _ = self.client.set(client);
    }

    /// Records that start-up connection attempt `attempt` is next (the prompt shows it).
    pub fn connecting(&self, attempt: u32) {
        self.attempt.store(attempt, Ordering::Relaxed);
    }

    /// Records that connecting failed.
    pub fn connect_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// The connected client, if any.
    pub fn client(&self) -> Result<&Client, ClientError> {
        self.client.get().ok_or_else(|| {
            if self.failed.load(Ordering::Relaxed) {
                ClientError::NotConnected
            } else {
                ClientError::StillConnecting
            }
        })
    }

    /// What the prompt shows.
    pub fn status(&self) -> PromptStatus {
        let (room, state) = match self.client.get() {
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
        PromptStatus { nick: self.nick.clone(), room, state }
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
        self.client.get().and_then(Client::current_room)
    }
    fn is_member_of(&self, room: &str) -> bool {
        self.client.get().is_some_and(|client| client.is_member_of(room))
    }
    fn join(&self, room: &str, password: Secret) -> Result<(), ClientError> {
        let client = self.client()?;
        self.runtime.block_on(client.join(room, password))
    }
    fn leave(&self) -> Result<(), ClientError> {
        let client = self.client()?;
        self.runtime.block_on(client.leave())
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
    fn quit(&self) -> Result<(), ClientError> {
        match self.client.get() {
            Some(client) => self.with_timeout(QUIT_TIMEOUT, client.quit()),
            None => Ok(()),
        }
    }
}
