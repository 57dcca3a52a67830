//! Reconnect supervision, the sans-IO half: when to try again, and which failures end the
//! session for good.
//!
//! A lost link is retried forever, until the user quits, with jittered exponential backoff:
//! the first try comes within a second (a Wi-Fi blip or a relay restart is usually over by
//! then), each wait after that grows by half (as SimpleX's do), capped at [`MAX_DELAY`], and
//! each is drawn at random from its upper half so that a relay's clients, all cut at once by
//! its restart, do not come back in one thundering herd. Growing by half rather than doubling
//! keeps the next try close after a short outage (within 2 s of a 5 s one) and still reaches
//! the cap within a minute or so of trying. The client core (`core/link.rs`) schedules the
//! waits with the time passed in, and the engine does the connecting; this module only
//! decides.

use std::time::Duration;

use super::ClientError;
use crate::proto::{DisconnectReason, HelloRejection};

/// The first wait, before jitter.
const FIRST_DELAY: Duration = Duration::from_millis(500);
/// How much each wait grows over the one before.
const GROWTH: f64 = 1.5;
/// The longest wait between tries.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// The wait after a relay said our address is blocked. The refusal comes before the
/// handshake, so anyone in the path could forge it: a client pauses instead of giving up,
/// and a minute keeps it from adding to the failures that got the address blocked.
pub const BLOCKED_PAUSE: Duration = Duration::from_secs(60);

/// The waits between reconnection attempts.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The number of the next attempt, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt + 1
    }

    /// The wait before the next attempt; `jitter` is uniform in [0, 1). The wait is drawn
    /// from [d/2, d) where d grows by half from [`FIRST_DELAY`] up to [`MAX_DELAY`].
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let growth = GROWTH.powi(self.attempt.min(16) as i32);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = FIRST_DELAY.mul_f64(growth).min(MAX_DELAY);
        let jitter = jitter.clamp(0.0, 1.0);
        ceiling.mul_f64(0.5 + 0.5 * jitter)
    }
}

/// Whether a failed connection attempt is worth repeating. Wrong credentials, a protocol
/// this client does not speak, or a nickname it may never have will not get better by
/// waiting; an unreachable relay, a refused or broken connection, or a relay restarting
/// will.
pub fn is_final(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::WrongAccessCode
            | ClientError::NickInvalid(..)
            | ClientError::Refused(HelloRejection::UnsupportedVersion { .. })
    )
}

/// The wait before the next attempt after `last_error`: the backoff's, or a minute when the
/// relay said our address is blocked. `jitter` is uniform in [0, 1).
pub fn wait_after(
    backoff: &mut Backoff,
    last_error: Option<&ClientError>,
    jitter: f64,
) -> Duration {
    let wait = backoff.next_delay(jitter);
    match last_error {
        Some(error) if is_blocked(error) => wait.max(BLOCKED_PAUSE),
        _ => wait,
    }
}

/// Whether the relay said our address is blocked (see [`BLOCKED_PAUSE`]).
pub fn is_blocked(error: &ClientError) -> bool {
    matches!(error, ClientError::Refused(HelloRejection::Blocked))
}

/// Whether the relay's goodbye ends the session for good, or only the link.
pub fn goodbye_is_final(reason: DisconnectReason) -> bool {
    match reason {
        // The relay is restarting, or the link was too slow or quiet: come back.
        DisconnectReason::ServerShutdown
        | DisconnectReason::SlowReader
        | DisconnectReason::IdleTimeout => false,
        // Our own quit, a session taken over by another connection, or a relay that found
        // this client misbehaving: coming back would only repeat it.
        DisconnectReason::Quit
        | DisconnectReason::ResumedElsewhere
        | DisconnectReason::BadFrame
        | DisconnectReason::FrameTooLarge
        | DisconnectReason::ProtocolViolation
        | DisconnectReason::RateLimited => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_try_is_within_a_second_and_waits_double_up_to_the_cap() {
        let mut backoff = Backoff::default();
        let first = backoff.next_delay(0.99);
        assert!(first < Duration::from_secs(1), "{first:?}");
        assert!(first >= Duration::from_millis(250));
        let waits: Vec<Duration> = (0..14).map(|_| backoff.next_delay(0.0)).collect();
        assert_eq!(waits[0], Duration::from_millis(375), "half of the grown ceiling");
        assert!(waits.windows(2).all(|pair| pair[0] <= pair[1]), "{waits:?}");
        assert_eq!(*waits.last().unwrap(), MAX_DELAY / 2, "{waits:?}");
        assert!(backoff.next_delay(0.999) <= MAX_DELAY);
        assert_eq!(backoff.attempt(), 17);
        // The total wait before the cap is reached is about a minute, not hours.
        let mut fresh = Backoff::default();
        let until_capped: Duration =
            (0..16).map(|_| fresh.next_delay(1.0)).take_while(|d| *d < MAX_DELAY).sum();
        assert!(until_capped < Duration::from_secs(90), "{until_capped:?}");
    }

    #[test]
    fn jitter_spreads_a_herd() {
        let low = Backoff { attempt: 5 }.next_delay(0.0);
        let high = Backoff { attempt: 5 }.next_delay(0.9);
        assert!(high > low + Duration::from_secs(1), "{low:?} {high:?}");
    }

    #[test]
    fn only_what_waiting_cannot_fix_is_final() {
        assert!(is_final(&ClientError::WrongAccessCode));
        assert!(is_final(&ClientError::Refused(HelloRejection::UnsupportedVersion {
            supported: 9
        })));
        assert!(!is_final(&ClientError::Refused(HelloRejection::ShuttingDown)));
        assert!(!is_final(&ClientError::Refused(HelloRejection::Blocked)));
        assert!(is_blocked(&ClientError::Refused(HelloRejection::Blocked)));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_final(&ClientError::Unreachable { server: "x".into(), error: refused }));
        assert!(!is_final(&ClientError::NickTaken("bob".into())));
        assert!(!goodbye_is_final(DisconnectReason::ServerShutdown));
        assert!(goodbye_is_final(DisconnectReason::Quit));
    }
}
