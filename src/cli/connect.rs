//! Connecting at start-up as a lost link reconnects: a relay that is not up yet, or not
//! reachable for a moment, is tried again with the same backoff (`client::reconnect`), and a
//! relay that says our address is blocked is told once and waited for a minute. What waiting
//! cannot fix ends the attempts: a wrong access code (the caller may ask for another), a
//! taken or invalid nickname, a protocol this client does not speak.

use crate::client::reconnect::{self, Backoff};
use crate::client::{
    self, Client, ClientError, ClientOptions, ConnectionEvent, Event, Events, FailedConnect,
    Notice, SharedError,
};

use super::Me;

/// How start-up connecting ended.
pub(super) enum Startup {
    Connected(Client, Events),
    /// The relay refused the access code; `Me` is handed back for a try with another.
    WrongAccessCode(Me),
    /// Waiting cannot fix this.
    Failed(ClientError),
}

/// Tries to connect until it works or waiting cannot help. `tell` hears of each failed
/// attempt (why, and when the next one comes), and once of a relay that blocked our address;
/// `attempting` hears the number of each attempt as it starts.
pub(super) async fn connect(
    options: &ClientOptions,
    mut me: Me,
    tell: &(dyn Fn(Event) + Send + Sync),
    attempting: &(dyn Fn(u32) + Send + Sync),
) -> Startup {
    let mut backoff = Backoff::default();
    let mut attempt = 1;
    let mut told_blocked = false;
    loop {
        attempting(attempt);
        let failed =
            match client::try_connect_as(options.clone(), me.identity, me.known_peers).await {
                Ok((client, events)) => return Startup::Connected(client, events),
                Err(failed) => failed,
            };
        let FailedConnect { error, identity, known_peers } = *failed;
        me = Me { identity, known_peers };
        if matches!(error, ClientError::WrongAccessCode) {
            return Startup::WrongAccessCode(me);
        }
        if gives_up_at_start(&error) {
            return Startup::Failed(error);
        }
        let retry_in = reconnect::wait_after(
            &mut backoff,
            Some(&error),
            rand::random(),
            std::time::Instant::now(),
        );
        let blocked = reconnect::is_blocked(&error);
        if blocked && !told_blocked {
            tell(Event::Status(Notice::AddressBlocked { retry_in }));
        }
        told_blocked = blocked;
        attempt += 1;
        let last_error = SharedError::from(error);
        tell(Event::Connection(ConnectionEvent::Connecting { attempt, retry_in, last_error }));
        tokio::time::sleep(retry_in).await;
    }
}

/// What ends start-up at once: what ends a session's reconnecting, and a taken nickname
/// (a session that reconnects may find its nickname freed by the relay's grace period; at
/// start-up someone else simply has it).
fn gives_up_at_start(error: &ClientError) -> bool {
    reconnect::is_final(error) || matches!(error, ClientError::NickTaken(_))
}
