//! One reconnection attempt, the IO the core asks for ([`super::core::Dial`]): connect,
//! handshake, and resume the session, or, when the relay does not have it, register anew
//! under the same nickname. The engine runs it under a timeout and tells the core how it
//! went.

use super::core::Dial;
use super::resume::SessionNumbers;
use super::{Asked, ClientError, RawClient};
use crate::proto::{ClientFrame, DisconnectReason, ResumeToken, ServerFrame};
use crate::secret::Secret;

/// What an attempt brought.
pub(super) enum Dialed {
    /// The same session; the relay had handled `handled` of our frames and will send
    /// `backlog` frames we missed, under the session's next `token`.
    Resumed { handled: u64, backlog: u64, token: ResumeToken },
    /// A new session.
    Registered(SessionNumbers),
}

/// Connects to `server` and resumes the session `dial` names, or registers `nick` anew.
pub(super) async fn dial(
    server: String,
    access_code: Secret,
    nick: String,
    dial: Dial,
) -> Result<(RawClient, Dialed), ClientError> {
    let mut raw = RawClient::connect(&server, &access_code).await?;
    let Dial { token, received } = dial;
    raw.send(&ClientFrame::Resume { token, received }).await?;
    match raw.recv().await? {
        ServerFrame::Resumed { received: handled, backlog, token } => {
            Ok((raw, Dialed::Resumed { handled, backlog, token }))
        }
        ServerFrame::ResumeRefused { .. } => {
            let numbers = raw.register(&nick).await?;
            Ok((raw, Dialed::Registered(numbers)))
        }
        ServerFrame::Goodbye { reason } => Err(reason.into()),
        // The relay is stopping as we arrive: a failed attempt like any other.
        ServerFrame::Restarting => Err(DisconnectReason::ServerShutdown.into()),
        _ => Err(ClientError::UnexpectedAnswer(Asked::Resume)),
    }
}
