//! The door of the relay: per-address admission at accept time and after the handshake.
//!
//! This is where the abuse controls live (pre-authentication budgets, bans, per-address
//! connection caps). The accept loop asks [`Gate::admit`] before spending anything on a
//! connection, and the connection task reports how its handshake ended.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::proto::HelloRejection;

/// Limits the gate enforces.
#[derive(Debug, Clone)]
pub struct GateLimits {
    /// Connections one address may hold at once (the Python original allowed 10).
    pub max_connections_per_ip: usize,
}

impl Default for GateLimits {
    fn default() -> Self {
        GateLimits { max_connections_per_ip: 10 }
    }
}

/// What the gate decided about a new connection.
#[derive(Debug)]
pub enum Admission {
    /// Go ahead; the permit releases the connection slot when dropped.
    Admit(ConnectionPermit),
    /// Tell the client why, then close.
    Refuse(HelloRejection),
    /// Close at once, sending nothing.
    Drop,
}

/// How a handshake ended, as the gate counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeOutcome {
    Authenticated,
    WrongAccessCode,
    /// Malformed, timed out or abandoned.
    Failed,
}

#[derive(Default)]
struct GateState {
    connections: HashMap<IpAddr, usize>,
}

/// Shared per-address bookkeeping. Holds only counters, and only while they matter.
#[derive(Clone)]
pub struct Gate {
    limits: GateLimits,
    state: Arc<Mutex<GateState>>,
}

impl Gate {
    pub fn new(limits: GateLimits) -> Self {
        Gate { limits, state: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // A panic while holding this lock would be a bug in counting code; the counters are
        // still usable, so carry on rather than take the relay down.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides about a connection from `ip` before any byte is read.
    pub fn admit(&self, ip: IpAddr) -> Admission {
        let mut state = self.lock();
        let count = state.connections.entry(ip).or_default();
        if *count >= self.limits.max_connections_per_ip {
            return Admission::Refuse(HelloRejection::TooManyConnections);
        }
        *count += 1;
        Admission::Admit(ConnectionPermit { gate: self.clone(), ip })
    }

    /// Hears how a connection's handshake ended.
    pub fn record_handshake(&self, _ip: IpAddr, _outcome: HandshakeOutcome) {}

    /// Hears that a member of a room from `ip` gave a wrong room password.
    pub fn record_wrong_room_password(&self, _ip: IpAddr) {}

    fn release(&self, ip: IpAddr) {
        let mut state = self.lock();
        if let Some(count) = state.connections.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.connections.remove(&ip);
            }
        }
    }

    /// Addresses currently tracked, for tests of "the relay forgets".
    pub fn tracked_addresses(&self) -> usize {
        self.lock().connections.len()
    }
}

/// A held connection slot for one address.
#[derive(Debug)]
pub struct ConnectionPermit {
    gate: Gate,
    ip: IpAddr,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.gate.release(self.ip);
    }
}
