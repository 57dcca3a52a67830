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
//!
//! A relay that said it is restarting (`ServerFrame::Restarting`) will be back, usually
//! within seconds, and a grown backoff would only keep its users away after it is: such a
//! link is retried on a short schedule instead ([`Backoff::after_restart`]), the first try
//! at a random moment in the first [`RESTART_FIRST`], then one every [`RESTART_INTERVAL`]
//! give or take half of it, for [`RESTART_WINDOW`]; then the usual backoff takes over. The
//! jitter spreads a relay's clients evenly over each interval, so the relay meets them as a
//! steady stream (a thousand clients at about four thousand tries a second, each refused by
//! the kernel while it is down) rather than all at one instant.

use std::time::{Duration, Instant};

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

/// After a relay said it is restarting, the first try comes at a random moment within this.
pub const RESTART_FIRST: Duration = Duration::from_millis(250);
/// After a relay said it is restarting, the tries after the first come this often, each
/// drawn from half of it to one and a half times it.
pub const RESTART_INTERVAL: Duration = Duration::from_millis(250);
/// How long after the relay said it is restarting the short schedule lasts. A relay being
/// upgraded is back within a minute; one that is not back after three was stopped for
/// longer, and its clients fall back to the growing backoff.
pub const RESTART_WINDOW: Duration = Duration::from_secs(180);

/// The waits between reconnection attempts.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    /// Attempts scheduled so far.
    attempt: u32,
    /// Waits of the growing backoff scheduled so far (the short schedule does not grow it).
    grown: u32,
    /// Until when the short schedule after a relay's restart notice lasts, if it does.
    restart_until: Option<Instant>,
}

impl Backoff {
    /// The waits after a relay said, at `now`, that it is restarting: the short schedule
    /// (see the module's comment) for [`RESTART_WINDOW`], then the growing backoff.
    pub fn after_restart(now: Instant) -> Backoff {
        Backoff { restart_until: Some(now + RESTART_WINDOW), ..Backoff::default() }
    }

    /// The number of the next attempt, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt + 1
    }

    /// The wait before the next attempt, scheduled at `now`; `jitter` is uniform in [0, 1).
    /// On the short schedule after a restart notice: the first wait is drawn from
    /// [0, [`RESTART_FIRST`]), the others from [I/2, 3I/2) where I is [`RESTART_INTERVAL`].
    /// Otherwise it is drawn from [d/2, d) where d grows by half from [`FIRST_DELAY`] up to
    /// [`MAX_DELAY`].
    pub fn next_delay(&mut self, jitter: f64, now: Instant) -> Duration {
        let jitter = jitter.clamp(0.0, 1.0);
        let first = self.attempt == 0;
        self.attempt = self.attempt.saturating_add(1);
        match self.restart_until {
            Some(until) if now < until && first => return RESTART_FIRST.mul_f64(jitter),
            Some(until) if now < until => return RESTART_INTERVAL.mul_f64(0.5 + jitter),
            // The relay did not come back within the window: it was stopped for longer.
            Some(_) => self.restart_until = None,
            None => {}
        }
        let growth = GROWTH.powi(self.grown.min(16) as i32);
        self.grown = self.grown.saturating_add(1);
        let ceiling = FIRST_DELAY.mul_f64(growth).min(MAX_DELAY);
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

/// The wait before the next attempt after `last_error`, scheduled at `now`: the backoff's, or
/// a minute when the relay said our address is blocked. `jitter` is uniform in [0, 1).
pub fn wait_after(
    backoff: &mut Backoff,
    last_error: Option<&ClientError>,
    jitter: f64,
    now: Instant,
) -> Duration {
    let wait = backoff.next_delay(jitter, now);
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
        let now = Instant::now();
        let mut backoff = Backoff::default();
        let first = backoff.next_delay(0.99, now);
        assert!(first < Duration::from_secs(1), "{first:?}");
        assert!(first >= Duration::from_millis(250));
        let waits: Vec<Duration> = (0..14).map(|_| backoff.next_delay(0.0, now)).collect();
        assert_eq!(waits[0], Duration::from_millis(375), "half of the grown ceiling");
        assert!(waits.windows(2).all(|pair| pair[0] <= pair[1]), "{waits:?}");
        assert_eq!(*waits.last().unwrap(), MAX_DELAY / 2, "{waits:?}");
        assert!(backoff.next_delay(0.999, now) <= MAX_DELAY);
        assert_eq!(backoff.attempt(), 17);
        // The total wait before the cap is reached is about a minute, not hours.
        let mut fresh = Backoff::default();
        let until_capped: Duration =
            (0..16).map(|_| fresh.next_delay(1.0, now)).take_while(|d| *d < MAX_DELAY).sum();
        assert!(until_capped < Duration::from_secs(90), "{until_capped:?}");
    }

    #[test]
    fn jitter_spreads_a_herd() {
        let now = Instant::now();
        let grown = Backoff { attempt: 5, grown: 5, restart_until: None };
        let low = grown.clone().next_delay(0.0, now);
        let high = grown.clone().next_delay(0.9, now);
        assert!(high > low + Duration::from_secs(1), "{low:?} {high:?}");
    }

    #[test]
    fn after_a_restart_notice_tries_come_every_quarter_second_then_the_backoff_resumes() {
        let start = Instant::now();
        let mut backoff = Backoff::after_restart(start);
        // The first try anywhere in the first quarter second, so a relay's clients arrive
        // spread over it.
        assert_eq!(backoff.next_delay(0.0, start), Duration::ZERO);
        let mut backoff_late = Backoff::after_restart(start);
        assert!(backoff_late.next_delay(0.999, start) < RESTART_FIRST);
        // Then a try every quarter second, give or take half, for the whole window: however
        // many failed, the wait does not grow.
        let mut now = start;
        let mut tries = 0;
        while now < start + RESTART_WINDOW {
            let wait = backoff.next_delay(if tries % 2 == 0 { 0.0 } else { 0.999 }, now);
            assert!(
                (RESTART_INTERVAL / 2..RESTART_INTERVAL * 3 / 2).contains(&wait),
                "try {tries}: {wait:?}"
            );
            now += wait;
            tries += 1;
        }
        assert!(tries > 600, "{tries}");
        // Past it, the relay was stopped for longer: the growing backoff from its start.
        let fallback = backoff.next_delay(0.0, now);
        assert_eq!(fallback, FIRST_DELAY / 2);
        assert_eq!(backoff.next_delay(0.0, now), FIRST_DELAY.mul_f64(GROWTH) / 2);
        assert_eq!(backoff.attempt(), tries + 4, "attempts are still counted for the user");
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
