//! The pace of line mode's chat lines: a token bucket under the relay's own limit, so that a
//! bot that pipes a burst has every line delivered instead of half of them refused with
//! "slow down". Pure: the caller passes the time, and sleeps for the wait it is told.
//!
//! The relay allows [`RateLimit::default`] chat messages per connection: a burst of 100,
//! then 20 a second. Line mode sends at that rate with half that burst, so the relay's bucket
//! never runs dry even when the network delays some lines and delivers them together (up to
//! 2.5 s of such bunching is absorbed). A relay started with a lower `--rate` or `--burst`
//! still refuses what is over its limit, and says so for each line.

use std::time::{Duration, Instant};

use crate::relay::RateLimit;

/// A token bucket for chat lines.
#[derive(Debug, Clone)]
pub struct Pacer {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl Pacer {
    /// A full bucket at the pace of the relay's default limit, with half its burst.
    pub fn for_default_relay(now: Instant) -> Pacer {
        let limit = RateLimit::default();
        Pacer::new(f64::from(limit.burst / 2).max(1.0), limit.per_second, now)
    }

    /// A full bucket of `capacity` lines, refilled at `per_second`.
    pub fn new(capacity: f64, per_second: f64, now: Instant) -> Pacer {
        Pacer { capacity, per_second, tokens: capacity, refilled_at: now }
    }

    /// Takes the next line's token if there is one (`Duration::ZERO`: send now); otherwise
    /// how long to wait before asking again.
    pub fn wait_before_send(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `lines` as fast as the pacer allows, from `start`; the send times.
    fn send_all(pacer: &mut Pacer, start: Instant, lines: usize) -> Vec<Instant> {
        let mut now = start;
        let mut sent = Vec::new();
        while sent.len() < lines {
            let wait = pacer.wait_before_send(now);
            if wait.is_zero() {
                sent.push(now);
            } else {
                now += wait;
            }
        }
        sent
    }

    #[test]
    fn a_burst_goes_at_once_then_at_the_relays_rate() {
        let start = Instant::now();
        let mut pacer = Pacer::for_default_relay(start);
        let sent = send_all(&mut pacer, start, 200);
        assert!(sent[..50].iter().all(|at| *at == start), "half the relay's burst at once");
        let last = sent[199].duration_since(start);
        assert!(last >= Duration::from_millis(7_450) && last <= Duration::from_millis(7_550));
    }

    /// The relay's own bucket, fed the pacer's send times delayed by up to 2.5 s of jitter
    /// (the worst case: everything from a stretch arrives at once), never refuses a line.
    #[test]
    fn the_relay_never_refuses_a_paced_line_even_bunched_by_the_network() {
        let start = Instant::now();
        let mut pacer = Pacer::for_default_relay(start);
        let sent = send_all(&mut pacer, start, 1_000);
        let limit = RateLimit::default();
        let bunch = Duration::from_millis(2_500);
        let mut relay = Pacer::new(f64::from(limit.burst), limit.per_second, start);
        // Each line arrives at the end of the 2.5 s window it was sent in.
        let arrivals = sent.iter().map(|at| {
            let windows = at.duration_since(start).as_millis() / bunch.as_millis();
            start + bunch * (u32::try_from(windows).unwrap() + 1)
        });
        for (index, arrival) in arrivals.enumerate() {
            assert_eq!(relay.wait_before_send(arrival), Duration::ZERO, "line {index} refused");
        }
    }
}
