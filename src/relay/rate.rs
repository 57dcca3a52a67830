//! Per-connection rate limits: token buckets, pure and clock-free (the caller passes `now`).
//!
//! An authenticated connection has two allowances. Chat messages (`ClientFrame::Application`;
//! a multi-line paste is one frame, so one message) draw from one bucket; everything that
//! runs a room (joins, admissions, commits, votes, listings, keepalives) draws from
//! another, so a member who exhausted its chat allowance can still join, leave and commit,
//! and a flood of chat can never starve a join. A frame over the limit is refused; a
//! connection that keeps sending far past the limit drains a third bucket of strikes and is
//! disconnected.

use tokio::time::Instant;

use crate::proto::ClientFrame;

/// How fast one connection may send. Applies to each of the two allowances separately.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained frames per second.
    pub per_second: f64,
    /// Frames that may be sent at once after a quiet spell.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { per_second: 20.0, burst: 100 }
    }
}

/// How far past the limit a connection may keep sending before it is disconnected: its
/// refused frames drain a bucket this many times the size and rate of the allowance.
pub const STRIKE_FACTOR: f64 = 10.0;

/// A classic token bucket.
#[derive(Debug, Clone)]
struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    fn new(capacity: f64, per_second: f64, now: Instant) -> Self {
        TokenBucket { capacity, per_second, tokens: capacity, refilled_at: now }
    }

    /// Takes one token if there is one.
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Refuse this frame (answer `ErrorReason::RateLimited`) and carry on.
    Refuse,
    /// The connection kept sending far past the limit: close it.
    Disconnect,
}

/// The allowances of one connection.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    messages: TokenBucket,
    control: TokenBucket,
    strikes: TokenBucket,
}

impl ConnectionLimiter {
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        let capacity = f64::from(limit.burst.max(1));
        let per_second = limit.per_second.max(0.0);
        ConnectionLimiter {
            messages: TokenBucket::new(capacity, per_second, now),
            control: TokenBucket::new(capacity, per_second, now),
            strikes: TokenBucket::new(capacity * STRIKE_FACTOR, per_second * STRIKE_FACTOR, now),
        }
    }

    /// Decides about one frame arriving at `now`.
    pub fn check(&mut self, frame: &ClientFrame, now: Instant) -> Verdict {
        let allowed = match frame {
            // Leaving is never refused: it only ever lowers the load.
            ClientFrame::Quit => true,
            ClientFrame::Application { .. } => self.messages.take(now),
            _ => self.control.take(now),
        };
        if allowed {
            Verdict::Pass
        } else if self.strikes.take(now) {
            Verdict::Refuse
        } else {
            Verdict::Disconnect
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn message() -> ClientFrame {
        ClientFrame::Application { room: "lobby".into(), message: vec![0; 8] }
    }

    #[test]
    fn burst_then_sustained_rate() {
        let start = Instant::now();
        let mut limiter = ConnectionLimiter::new(RateLimit { per_second: 20.0, burst: 100 }, start);
        let passed = (0..150).filter(|_| limiter.check(&message(), start) == Verdict::Pass).count();
        assert_eq!(passed, 100);
        // One second later, twenty more.
        let later = start + Duration::from_secs(1);
        let passed = (0..50).filter(|_| limiter.check(&message(), later) == Verdict::Pass).count();
        assert_eq!(passed, 20);
    }

    #[test]
    fn control_frames_have_their_own_allowance() {
        let now = Instant::now();
        let mut limiter = ConnectionLimiter::new(RateLimit { per_second: 1.0, burst: 3 }, now);
        for _ in 0..3 {
            assert_eq!(limiter.check(&message(), now), Verdict::Pass);
        }
        assert_eq!(limiter.check(&message(), now), Verdict::Refuse);
        let join = ClientFrame::Join { room: "lobby".into(), pake_message: vec![1; 32] };
        assert_eq!(limiter.check(&join, now), Verdict::Pass);
        assert_eq!(limiter.check(&ClientFrame::Quit, now), Verdict::Pass);
    }

    #[test]
    fn hammering_ten_times_past_the_limit_disconnects() {
        let now = Instant::now();
        let mut limiter = ConnectionLimiter::new(RateLimit { per_second: 1.0, burst: 5 }, now);
        let verdicts: Vec<Verdict> = (0..56).map(|_| limiter.check(&message(), now)).collect();
        assert!(verdicts[..5].iter().all(|v| *v == Verdict::Pass));
        assert!(verdicts[5..55].iter().all(|v| *v == Verdict::Refuse));
        assert_eq!(verdicts[55], Verdict::Disconnect);
    }

    #[test]
    fn a_client_at_the_limit_is_never_refused() {
        let start = Instant::now();
        let mut limiter = ConnectionLimiter::new(RateLimit { per_second: 20.0, burst: 100 }, start);
        for step in 0..10_000u64 {
            let now = start + Duration::from_millis(50 * step);
            assert_eq!(limiter.check(&message(), now), Verdict::Pass, "step {step}");
        }
    }
}
