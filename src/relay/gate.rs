//! The door of the relay: per-address admission at accept time and after the handshake.
//!
//! This is where the abuse controls that concern addresses live:
//!
//! - **Pre-authentication budget.** Every connection attempt from an address that has not
//!   completed a handshake costs one unit of its budget, and every wrong access code counts
//!   as a failure. An address past either limit is blocked: refused at accept (told so in
//!   one plaintext frame, then closed) until the relay restarts or its operator lifts every
//!   block ([`Gate::lift_blocks`], on SIGUSR1), and listed in the abuse report. A successful
//!   handshake clears the address's counters.
//! - **Forgetting.** Counters of addresses that are not banned are dropped once the address
//!   has been quiet for the forget window, so the relay keeps no history of who came by.
//! - **Connection cap.** At most so many connections from one address at once, counted
//!   before the handshake, so slow handshakes from one address cannot take every slot.
//! - **Room-password guessing.** The rooms themselves ban a guesser (see `state`); the gate
//!   only hears of each wrong password so that a guessing address shows in the report.
//! - **IPv6 networks.** One IPv6 host usually holds a whole /64 and may pick any address in
//!   it, so an IPv6 client is counted by its first [`GateLimits::ipv6_prefix_len`] bits (64
//!   unless configured): every budget, cap and ban above applies to the network, not to one
//!   of its 2^64 addresses. IPv4 addresses count one by one.
//! - **A bound on memory.** An attacker rotating through addresses (or networks) must not
//!   grow the gate's maps without end: at most [`GateLimits::max_tracked_addresses`] counters
//!   and as many bans are kept. A new address past the cap first makes the gate forget quiet
//!   counters, then the counter seen longest ago; a ban past the cap lifts the oldest ban.
//!   Evicting costs an attacker's earlier addresses their clean slate only, which rotating
//!   addresses gives him anyway, while keeping the relay's memory flat.
//!
//! Addresses are kept only as counters, only while they matter, and never logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::proto::HelloRejection;

/// Limits the gate enforces.
#[derive(Debug, Clone)]
pub struct GateLimits {
    /// Connections one address may hold at once (the Python original allowed 10).
    pub max_connections_per_ip: usize,
    /// Connection attempts an address may make without completing a handshake.
    pub preauth_budget: u32,
    /// Wrong access codes an address may give before it is banned.
    pub max_access_code_failures: u32,
    /// Counters of an address that is not banned are forgotten after it was quiet this long.
    pub preauth_forget_after: Duration,
    /// IPv6 clients are counted by this many leading bits of their address (64: one /64
    /// network counts as one address; 128: every address on its own).
    pub ipv6_prefix_len: u8,
    /// The most addresses (or IPv6 networks) the gate keeps counters for, and the most it
    /// keeps banned: a bound on its memory whatever the number of attacking addresses.
    pub max_tracked_addresses: usize,
}

impl Default for GateLimits {
    fn default() -> Self {
        GateLimits {
            max_connections_per_ip: 10,
            preauth_budget: 30,
            max_access_code_failures: 10,
            preauth_forget_after: Duration::from_secs(600),
            ipv6_prefix_len: 64,
            max_tracked_addresses: 100_000,
        }
    }
}

/// What the gate decided about a new connection.
#[derive(Debug)]
pub enum Admission {
    /// Go ahead; the permit releases the connection slot when dropped.
    Admit(ConnectionPermit),
    /// Tell the client why, then close.
    Refuse(HelloRejection),
    /// The address is blocked: tell the client so ([`HelloRejection::Blocked`]), then close.
    Blocked,
}

/// How many connections the gate admitted, refused and blocked at accept since the relay
/// started: totals only, no addresses. Tests read them to know the gate has decided about a
/// connection without guessing from a socket's silence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AcceptCounts {
    pub admitted: u64,
    pub refused: u64,
    pub blocked: u64,
}

impl AcceptCounts {
    /// Every decision made.
    pub fn total(&self) -> u64 {
        self.admitted + self.refused + self.blocked
    }
}

/// How a handshake ended, as the gate counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeOutcome {
    Authenticated,
    WrongAccessCode,
    /// Malformed, timed out or abandoned.
    Failed,
}

/// What the gate counts of one address while it matters.
#[derive(Debug, Clone, Copy)]
struct Tally {
    /// Connection attempts (and dropped idle connections) since the last authentication.
    attempts: u32,
    access_code_failures: u32,
    wrong_room_passwords: u32,
    last_seen: Instant,
}

impl Tally {
    fn new(now: Instant) -> Self {
        Tally { attempts: 0, access_code_failures: 0, wrong_room_passwords: 0, last_seen: now }
    }

    fn is_empty(&self) -> bool {
        self.attempts == 0 && self.access_code_failures == 0 && self.wrong_room_passwords == 0
    }
}

/// A banned address (or IPv6 network) as the report lists it.
#[derive(Debug, Clone, Copy)]
struct Ban {
    /// The attempts counted before the ban.
    attempts: u64,
    /// The address that tripped the ban: what the report names, so that fail2ban blocks a
    /// real address even when the relay refuses its whole IPv6 network.
    address: IpAddr,
    /// When it was banned, in bans: the oldest ban is lifted first when the cap is reached.
    serial: u64,
}

/// Everything the gate counts. Every map is keyed by [`address_key`].
#[derive(Default)]
struct GateState {
    connections: HashMap<IpAddr, usize>,
    tallies: HashMap<IpAddr, Tally>,
    /// Refused at accept for the life of the process (or until the cap lifts the ban).
    banned: HashMap<IpAddr, Ban>,
    next_ban_serial: u64,
    /// Listed in the report without being refused, with the count.
    flagged: HashMap<IpAddr, u64>,
    accepted: AcceptCounts,
}

impl GateState {
    /// The tally of `key`, started afresh if it was quiet for `forget_after`. A new key past
    /// `max_tracked` makes room first.
    fn tally(&mut self, key: IpAddr, now: Instant, limits: &GateLimits) -> &mut Tally {
        let forget_after = limits.preauth_forget_after;
        if !self.tallies.contains_key(&key) && self.tallies.len() >= limits.max_tracked_addresses {
            self.tallies
                .retain(|_, tally| now.saturating_duration_since(tally.last_seen) < forget_after);
            if self.tallies.len() >= limits.max_tracked_addresses {
                let stalest = self.tallies.iter().min_by_key(|(_, tally)| tally.last_seen);
                if let Some((&stalest, _)) = stalest {
                    self.tallies.remove(&stalest);
                }
            }
        }
        let tally = self.tallies.entry(key).or_insert_with(|| Tally::new(now));
        if now.saturating_duration_since(tally.last_seen) >= forget_after {
            *tally = Tally::new(now);
        }
        tally.last_seen = now;
        tally
    }

    fn ban(&mut self, key: IpAddr, address: IpAddr, limits: &GateLimits) {
        let attempts = self.tallies.remove(&key).map_or(0, |tally| tally.attempts);
        if self.banned.len() >= limits.max_tracked_addresses {
            let oldest = self.banned.iter().min_by_key(|(_, ban)| ban.serial);
            if let Some((&oldest, _)) = oldest {
                self.banned.remove(&oldest);
            }
        }
        let serial = self.next_ban_serial;
        self.next_ban_serial += 1;
        self.banned.insert(key, Ban { attempts: u64::from(attempts), address, serial });
        tracing::info!("an address went past its pre-authentication limits and is now refused");
    }
}

/// The key an address is counted under: an IPv4 address itself (also when it reaches a
/// dual-stack listener as `::ffff:a.b.c.d`), an IPv6 address its first `ipv6_prefix_len` bits
/// with the rest zero.
pub fn address_key(ip: IpAddr, ipv6_prefix_len: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let kept = u32::from(ipv6_prefix_len.min(128));
            let mask = u128::MAX.checked_shl(128 - kept).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
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

    pub fn limits(&self) -> &GateLimits {
        &self.limits
    }

    /// The key `ip` is counted under.
    fn key(&self, ip: IpAddr) -> IpAddr {
        address_key(ip, self.limits.ipv6_prefix_len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // A panic while holding this lock would be a bug in counting code; the counters are
        // still usable, so carry on rather than take the relay down.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides about a connection from `ip` before any byte is read.
    pub fn admit(&self, ip: IpAddr) -> Admission {
        let mut state = self.lock();
        let admission = self.decide(&mut state, ip);
        let counts = &mut state.accepted;
        match admission {
            Admission::Admit(_) => counts.admitted += 1,
            Admission::Refuse(_) => counts.refused += 1,
            Admission::Blocked => counts.blocked += 1,
        }
        admission
    }

    fn decide(&self, state: &mut GateState, ip: IpAddr) -> Admission {
        let now = Instant::now();
        let limits = &self.limits;
        let key = self.key(ip);
        if state.banned.contains_key(&key) {
            return Admission::Blocked;
        }
        let tally = state.tally(key, now, limits);
        if tally.attempts >= limits.preauth_budget
            || tally.access_code_failures >= limits.max_access_code_failures
        {
            state.ban(key, ip, limits);
            return Admission::Blocked;
        }
        tally.attempts += 1;
        let count = state.connections.entry(key).or_default();
        if *count >= limits.max_connections_per_ip {
            return Admission::Refuse(HelloRejection::TooManyConnections);
        }
        *count += 1;
        Admission::Admit(ConnectionPermit { gate: self.clone(), key })
    }

    /// The decisions made at accept so far.
    pub fn accept_counts(&self) -> AcceptCounts {
        self.lock().accepted
    }

    /// Hears how a connection's handshake ended. A failed handshake has already cost its
    /// attempt at accept; a wrong access code also counts as a failure.
    pub fn record_handshake(&self, ip: IpAddr, outcome: HandshakeOutcome) {
        let now = Instant::now();
        let limits = &self.limits;
        let key = self.key(ip);
        let mut state = self.lock();
        if state.banned.contains_key(&key) {
            return;
        }
        let tally = state.tally(key, now, limits);
        match outcome {
            HandshakeOutcome::Authenticated => {
                tally.attempts = 0;
                tally.access_code_failures = 0;
                if tally.is_empty() {
                    state.tallies.remove(&key);
                }
            }
            HandshakeOutcome::WrongAccessCode => {
                tally.access_code_failures += 1;
                if tally.access_code_failures >= limits.max_access_code_failures {
                    state.ban(key, ip, limits);
                }
            }
            HandshakeOutcome::Failed => {}
        }
    }

    /// Hears that an authenticated connection from `ip` was dropped for sending nothing
    /// (not even a keepalive): a half-open or abandoned connection costs its address one
    /// attempt.
    pub fn record_idle_drop(&self, ip: IpAddr) {
        let now = Instant::now();
        let key = self.key(ip);
        let mut state = self.lock();
        if !state.banned.contains_key(&key) {
            state.tally(key, now, &self.limits).attempts += 1;
        }
    }

    /// Hears that a member of a room from `ip` gave a wrong room password. The room itself
    /// bans the guesser (see `state`); the address is counted but deliberately NOT listed in
    /// the report: the relay cannot check room passwords and only has the room leader's
    /// word, and a leader's word must not get someone firewalled off the whole server.
    pub fn record_wrong_room_password(&self, ip: IpAddr) {
        let now = Instant::now();
        let key = self.key(ip);
        let mut state = self.lock();
        state.tally(key, now, &self.limits).wrong_room_passwords += 1;
    }

    /// Drops the counters of addresses that were quiet for the forget window. Banned and
    /// flagged addresses stay listed.
    pub fn forget_idle(&self) {
        let now = Instant::now();
        let forget_after = self.limits.preauth_forget_after;
        self.lock()
            .tallies
            .retain(|_, tally| now.saturating_duration_since(tally.last_seen) < forget_after);
    }

    /// Lifts every block at once (the operator's SIGUSR1), with the counters of the blocked
    /// addresses, so that each starts afresh; returns how many were lifted. The report drops
    /// them at its next writing. Addresses flagged without a block stay listed.
    pub fn lift_blocks(&self) -> usize {
        let mut state = self.lock();
        let lifted = state.banned.len();
        let banned: Vec<IpAddr> = state.banned.drain().map(|(key, _)| key).collect();
        for key in banned {
            state.tallies.remove(&key);
        }
        lifted
    }

    /// Whether `ip` is refused at accept (itself, or its IPv6 network).
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        self.lock().banned.contains_key(&self.key(ip))
    }

    /// Every address the report lists, with its count, in address order. A banned IPv6
    /// network is listed as the address that tripped its ban.
    pub fn flagged(&self) -> Vec<(IpAddr, u64)> {
        let state = self.lock();
        let mut listed: HashMap<IpAddr, u64> = state.flagged.clone();
        for ban in state.banned.values() {
            let entry = listed.entry(ban.address).or_default();
            *entry = (*entry).max(ban.attempts);
        }
        let mut listed: Vec<(IpAddr, u64)> = listed.into_iter().collect();
        listed.sort();
        listed
    }

    fn release(&self, key: IpAddr) {
        let mut state = self.lock();
        if let Some(count) = state.connections.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.connections.remove(&key);
            }
        }
    }

    /// How many addresses (or IPv6 networks) are banned.
    pub fn banned_addresses(&self) -> usize {
        self.lock().banned.len()
    }

    /// Addresses (IPv6: networks) the gate currently remembers anything of (open connections
    /// or counters), banned and flagged addresses aside: for tests of "the relay forgets".
    pub fn tracked_addresses(&self) -> usize {
        let state = self.lock();
        let mut addresses: Vec<&IpAddr> =
            state.connections.keys().chain(state.tallies.keys()).collect();
        addresses.sort();
        addresses.dedup();
        addresses.len()
    }
}

/// A held connection slot for one address (or IPv6 network).
#[derive(Debug)]
pub struct ConnectionPermit {
    gate: Gate,
    key: IpAddr,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.gate.release(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn gate(budget: u32, failures: u32) -> Gate {
        Gate::new(GateLimits {
            max_connections_per_ip: 100,
            preauth_budget: budget,
            max_access_code_failures: failures,
            ..GateLimits::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_attempt_past_the_budget_is_blocked_until_lifted() {
        let gate = gate(3, 10);
        for _ in 0..3 {
            assert!(matches!(gate.admit(IP), Admission::Admit(_)));
        }
        assert!(matches!(gate.admit(IP), Admission::Blocked));
        assert_eq!(gate.flagged(), vec![(IP, 3)]);
        tokio::time::advance(Duration::from_secs(24 * 3600)).await;
        gate.forget_idle();
        assert!(matches!(gate.admit(IP), Admission::Blocked));
    }

    #[tokio::test(start_paused = true)]
    async fn lifting_the_blocks_lets_every_blocked_address_start_afresh() {
        let gate = gate(2, 10);
        let other = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 8));
        for address in [IP, other] {
            for _ in 0..2 {
                assert!(matches!(gate.admit(address), Admission::Admit(_)));
            }
            assert!(matches!(gate.admit(address), Admission::Blocked));
        }
        assert_eq!(gate.lift_blocks(), 2);
        assert_eq!(gate.banned_addresses(), 0);
        assert!(gate.flagged().is_empty());
        // A whole budget again, not the one attempt left before the block.
        for _ in 0..2 {
            assert!(matches!(gate.admit(IP), Admission::Admit(_)));
        }
        assert!(matches!(gate.admit(IP), Admission::Blocked));
        assert_eq!(gate.lift_blocks(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn every_decision_at_accept_is_counted_once() {
        let gate = Gate::new(GateLimits {
            max_connections_per_ip: 1,
            preauth_budget: 2,
            ..GateLimits::default()
        });
        let held = gate.admit(IP);
        assert!(matches!(held, Admission::Admit(_)));
        assert!(matches!(gate.admit(IP), Admission::Refuse(_)));
        assert!(matches!(gate.admit(IP), Admission::Blocked));
        assert!(matches!(gate.admit(IP), Admission::Blocked));
        let counts = AcceptCounts { admitted: 1, refused: 1, blocked: 2 };
        assert_eq!(gate.accept_counts(), counts);
        assert_eq!(counts.total(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn wrong_access_codes_ban_at_the_limit() {
        let gate = gate(100, 2);
        gate.record_handshake(IP, HandshakeOutcome::WrongAccessCode);
        assert!(!gate.is_banned(IP));
        gate.record_handshake(IP, HandshakeOutcome::WrongAccessCode);
        assert!(gate.is_banned(IP));
    }

    #[tokio::test(start_paused = true)]
    async fn authentication_clears_and_quiet_addresses_are_forgotten() {
        let gate = gate(3, 10);
        for _ in 0..3 {
            drop(gate.admit(IP));
        }
        gate.record_handshake(IP, HandshakeOutcome::Authenticated);
        assert_eq!(gate.tracked_addresses(), 0);
        for _ in 0..3 {
            drop(gate.admit(IP));
        }
        assert_eq!(gate.tracked_addresses(), 1);
        tokio::time::advance(Duration::from_secs(599)).await;
        gate.forget_idle();
        assert_eq!(gate.tracked_addresses(), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        gate.forget_idle();
        assert_eq!(gate.tracked_addresses(), 0);
        assert!(matches!(gate.admit(IP), Admission::Admit(_)));
    }

    fn v6(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_are_keyed_by_their_network() {
        assert_eq!(address_key(v6("2001:db8:1:2:aaaa::1"), 64), v6("2001:db8:1:2::"));
        assert_eq!(address_key(v6("2001:db8:1:2:aaaa::1"), 48), v6("2001:db8:1::"));
        assert_eq!(address_key(v6("2001:db8:1:2:aaaa::1"), 128), v6("2001:db8:1:2:aaaa::1"));
        assert_eq!(address_key(v6("2001:db8::1"), 0), v6("::"));
        assert_eq!(address_key(v6("::ffff:192.0.2.1"), 64), IP, "IPv4 on a dual-stack socket");
        assert_eq!(address_key(IP, 64), IP);
    }

    #[tokio::test(start_paused = true)]
    async fn one_ipv6_network_shares_a_budget_a_ban_and_a_connection_cap() {
        let gate = gate(3, 10);
        for host in 1..=3 {
            let address = v6(&format!("2001:db8:1:2::{host}"));
            assert!(matches!(gate.admit(address), Admission::Admit(_)));
        }
        // A fresh address of the same /64 is past the network's budget.
        assert!(matches!(gate.admit(v6("2001:db8:1:2:ffff::9")), Admission::Blocked));
        assert!(gate.is_banned(v6("2001:db8:1:2::1234")));
        assert!(!gate.is_banned(v6("2001:db8:1:3::1")), "the next /64 is someone else");
        assert!(matches!(gate.admit(v6("2001:db8:1:3::1")), Admission::Admit(_)));
        assert_eq!(gate.flagged(), vec![(v6("2001:db8:1:2:ffff::9"), 3)], "a real address");

        let capped = Gate::new(GateLimits { max_connections_per_ip: 2, ..GateLimits::default() });
        let _first = capped.admit(v6("2001:db8::1"));
        let _second = capped.admit(v6("2001:db8::2"));
        assert!(matches!(
            capped.admit(v6("2001:db8::3")),
            Admission::Refuse(HelloRejection::TooManyConnections)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_prefix_of_128_counts_every_ipv6_address_alone() {
        let gate = Gate::new(GateLimits {
            preauth_budget: 1,
            ipv6_prefix_len: 128,
            ..GateLimits::default()
        });
        assert!(matches!(gate.admit(v6("2001:db8::1")), Admission::Admit(_)));
        assert!(matches!(gate.admit(v6("2001:db8::2")), Admission::Admit(_)));
        assert!(matches!(gate.admit(v6("2001:db8::1")), Admission::Blocked));
    }

    #[tokio::test(start_paused = true)]
    async fn rotating_addresses_cannot_grow_the_maps_past_the_cap() {
        let gate = Gate::new(GateLimits {
            preauth_budget: 1,
            max_tracked_addresses: 8,
            ..GateLimits::default()
        });
        for n in 0..2000u32 {
            let address = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            drop(gate.admit(address));
            // Each address's second attempt is past its budget: a ban.
            tokio::time::advance(Duration::from_millis(1)).await;
            assert!(matches!(gate.admit(address), Admission::Blocked));
            // A different /64 each time.
            drop(gate.admit(IpAddr::V6((0x2001_0db8_u128 << 96 | u128::from(n) << 64).into())));
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(gate.tracked_addresses() <= 8, "{}", gate.tracked_addresses());
        assert!(gate.banned_addresses() <= 8, "{}", gate.banned_addresses());
        assert!(gate.flagged().len() <= 8);
        // The newest are the ones kept.
        let newest = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + 1999));
        assert!(gate.is_banned(newest));
    }

    #[tokio::test(start_paused = true)]
    async fn room_password_guessers_are_neither_listed_nor_refused() {
        let gate = gate(30, 10);
        for _ in 0..super::super::state::WRONG_PASSWORDS_BEFORE_BAN {
            gate.record_wrong_room_password(IP);
        }
        assert_eq!(gate.flagged(), vec![]);
        assert!(matches!(gate.admit(IP), Admission::Admit(_)));
    }
}
