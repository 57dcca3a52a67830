//! Failed handshakes, counted by reason since the relay started, for the verbose log.
//!
//! An operator asks "are people failing to get in, and why?": a wrong access code (a
//! friend with an old code, or someone guessing), a client of another protocol version (an
//! old `chatter` after an upgrade), a scanner that sends junk or nothing. The log line
//! names the reason and how many times it happened so far, never an address: the report
//! lists the addresses that matter, and the logs promise to hold none.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::transport::HandshakeError;

/// Why a handshake did not complete, as the log counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    WrongAccessCode,
    UnsupportedVersion,
    Malformed,
    /// The peer hung up before the handshake was over.
    Abandoned,
    TimedOut,
    NetworkError,
    /// A connection from a blocked address, closed at accept.
    BlockedAddress,
}

impl FailureReason {
    const ALL: [FailureReason; 7] = [
        FailureReason::WrongAccessCode,
        FailureReason::UnsupportedVersion,
        FailureReason::Malformed,
        FailureReason::Abandoned,
        FailureReason::TimedOut,
        FailureReason::NetworkError,
        FailureReason::BlockedAddress,
    ];

    /// The reason a server-side handshake error stands for.
    pub fn of(error: &HandshakeError) -> FailureReason {
        match error {
            HandshakeError::WrongAccessCode => FailureReason::WrongAccessCode,
            HandshakeError::UnsupportedVersion(_) => FailureReason::UnsupportedVersion,
            HandshakeError::Malformed | HandshakeError::Rejected(_) => FailureReason::Malformed,
            HandshakeError::Closed => FailureReason::Abandoned,
            HandshakeError::TimedOut => FailureReason::TimedOut,
            HandshakeError::Io(_) => FailureReason::NetworkError,
        }
    }

    /// The words the log uses, greppable: snake_case.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::WrongAccessCode => "wrong_access_code",
            FailureReason::UnsupportedVersion => "unsupported_version",
            FailureReason::Malformed => "malformed",
            FailureReason::Abandoned => "abandoned",
            FailureReason::TimedOut => "timed_out",
            FailureReason::NetworkError => "network_error",
            FailureReason::BlockedAddress => "blocked_address",
        }
    }

    fn index(self) -> usize {
        // `ALL` lists every variant once, so this always finds one.
        FailureReason::ALL.iter().position(|&reason| reason == self).unwrap_or(0)
    }
}

/// The counts, one per reason; lock-free, since every connection task adds to them.
#[derive(Debug, Default)]
pub struct HandshakeFailures {
    counts: [AtomicU64; FailureReason::ALL.len()],
}

impl HandshakeFailures {
    /// Counts one failure and logs it (at `info`, so only with `--verbose`) with the count
    /// of its reason so far.
    pub fn record(&self, reason: FailureReason) {
        let count = self.counts[reason.index()].fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(reason = reason.as_str(), count, "handshake failed");
    }

    /// How many failures of `reason` so far.
    pub fn count(&self, reason: FailureReason) -> u64 {
        self.counts[reason.index()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_is_counted_apart() {
        let failures = HandshakeFailures::default();
        failures.record(FailureReason::WrongAccessCode);
        failures.record(FailureReason::WrongAccessCode);
        failures.record(FailureReason::TimedOut);
        assert_eq!(failures.count(FailureReason::WrongAccessCode), 2);
        assert_eq!(failures.count(FailureReason::TimedOut), 1);
        assert_eq!(failures.count(FailureReason::BlockedAddress), 0);
        let names: std::collections::HashSet<_> =
            FailureReason::ALL.iter().map(|reason| reason.as_str()).collect();
        assert_eq!(names.len(), FailureReason::ALL.len());
    }
}
