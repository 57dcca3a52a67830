//! Who may misbehave in a run. Each [`Actor`] is a fault of an honest network or an enemy;
//! a seed enables some of those a test allows (all of them when it allows one), and the
//! enabled ones add their moves to the steps the run draws from.
//!
//! [`BENIGN`] are faults of an honest network, [`HOSTILE`] the attacks of issue 19. The
//! default test runs [`SURVIVED`], those protocol 8 survives alone over 1000 seeds; every other
//! actor has its own ignored test in `room_simulation.rs`, whose reason names the finding
//! (`docs/room-simulation-findings.md`) that still breaks it. Move an actor into
//! [`SURVIVED`] (and delete its test) once its fix lands.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    // ---- Benign: faults of an honest network ----
    /// A link cut (frames in flight lost both ways) and resumed at once, the relay sending
    /// again what the client missed; or a client that gives up on a link the relay still
    /// holds, whose session is handed over to the new one.
    BriefLinkCuts,
    /// The relay restarts while the network is quiet (every link up, nothing in flight),
    /// and every member comes back and reclaims before any user joins or leaves.
    QuietRestarts,
    /// A client stops reading for a while (it misses votes, is taken out and rejoins), and
    /// the whole network sometimes delays everything.
    Stalls,
    /// The relay sends a chat message twice; MLS refuses the copy.
    DuplicateMessages,
    /// The relay swaps two chat messages.
    ReorderedMessages,
    /// An insider that, whenever it leads, commits garbage or the eviction of a member who
    /// is still there.
    GarbageLeader,
    /// A link down for seconds (within the grace period) while the room goes on: the member
    /// is away, misses a commit, and resumes.
    LinkCuts,
    /// A client away past the relay's grace period: forgotten, it registers anew and
    /// reclaims its room.
    LongAbsences,
    /// The relay restarts at any moment, while users go on joining, leaving and talking.
    RelayRestarts,
    /// Honest members ask for new keys (`/rekey`) now and then: proposals to the leader,
    /// committed beside joins and removals.
    Renewals,
    // ---- Hostile (issue 19) ----
    /// 1. An insider that votes no on everything.
    AlwaysNoVoter,
    /// 2. An insider that comes back first after a relay restart with a stale epoch.
    StaleReclaimer,
    /// 3. An outsider (access code only) that reclaims the room's name first after a
    ///    restart, with a made-up group id.
    OutsiderReclaimer,
    /// 5. A relay that answers a commit adding a joiner `Busy`, keeps it, and gives the
    ///    joiner its Welcome once another commit closed the same epoch.
    ForkingRelay,
    /// 4. A relay that forges `Removed` and `CommitConfirmed`.
    ForgingRelay,
    /// 4. A relay that sends old frames again.
    ReplayingRelay,
    /// 6. A relay that aborts commits on its own and tells nobody.
    AbortingRelay,
}

impl Actor {
    /// The name the per-actor tests carry.
    pub fn name(self) -> &'static str {
        match self {
            Actor::BriefLinkCuts => "brief_link_cuts",
            Actor::LinkCuts => "link_cuts",
            Actor::LongAbsences => "long_absences",
            Actor::RelayRestarts => "relay_restarts",
            Actor::Renewals => "renewals",
            Actor::QuietRestarts => "quiet_restarts",
            Actor::Stalls => "stalls",
            Actor::DuplicateMessages => "duplicate_messages",
            Actor::ReorderedMessages => "reordered_messages",
            Actor::GarbageLeader => "garbage_leader",
            Actor::AlwaysNoVoter => "always_no_voter",
            Actor::StaleReclaimer => "stale_reclaimer",
            Actor::OutsiderReclaimer => "outsider_reclaimer",
            Actor::ForkingRelay => "forking_relay",
            Actor::ForgingRelay => "forging_relay",
            Actor::ReplayingRelay => "replaying_relay",
            Actor::AbortingRelay => "aborting_relay",
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Faults of an honest network (and an insider that garbles only its own commits).
pub const BENIGN: &[Actor] = &[
    Actor::BriefLinkCuts,
    Actor::QuietRestarts,
    Actor::Stalls,
    Actor::DuplicateMessages,
    Actor::ReorderedMessages,
    Actor::GarbageLeader,
    Actor::LinkCuts,
    Actor::LongAbsences,
    Actor::RelayRestarts,
    Actor::Renewals,
];

/// The known attacks.
pub const HOSTILE: &[Actor] = &[
    Actor::AlwaysNoVoter,
    Actor::StaleReclaimer,
    Actor::OutsiderReclaimer,
    Actor::ForkingRelay,
    Actor::ForgingRelay,
    Actor::ReplayingRelay,
    Actor::AbortingRelay,
];

/// What protocol 7 survives alone over 1000 seeds (`simulation_default` mixes them; each
/// seed picks some).
pub const SURVIVED: &[Actor] = &[
    Actor::BriefLinkCuts,
    Actor::QuietRestarts,
    Actor::Stalls,
    Actor::DuplicateMessages,
    Actor::ReorderedMessages,
    Actor::GarbageLeader,
    Actor::LinkCuts,
    Actor::LongAbsences,
    Actor::ForkingRelay,
    Actor::ReplayingRelay,
    Actor::AbortingRelay,
    Actor::RelayRestarts,
    Actor::StaleReclaimer,
    Actor::OutsiderReclaimer,
    Actor::AlwaysNoVoter,
];

/// Every actor.
pub fn all() -> Vec<Actor> {
    BENIGN.iter().chain(HOSTILE).copied().collect()
}

/// Actors named in `CHATTER_SIM_ACTORS` (comma-separated `Actor::name`s), if set.
pub fn from_env() -> Option<Vec<Actor>> {
    let names = std::env::var("CHATTER_SIM_ACTORS").ok().filter(|names| !names.is_empty())?;
    let all = all();
    let actors = names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            *all.iter()
                .find(|actor| actor.name() == name)
                .unwrap_or_else(|| panic!("no actor called {name:?}"))
        })
        .collect();
    Some(actors)
}
