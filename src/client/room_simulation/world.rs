//! One run: a seed, the actors it enables, the steps it draws, the quiet end, the checks.
//!
//! Everything random comes from one `StdRng` seeded with the run's seed, and time is virtual
//! (advanced in slices of 100 ms, each calling `State::expire`), so a seed replays exactly.
//! Every client interaction goes through [`World::interact`], which notes in the ledger what
//! the client sent and showed, and puts its frames on its link.

use std::collections::HashSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::super::room::Room;
use super::super::{Event, Notice};
use super::actors::Actor;
use super::client::{SimClient, Up};
use super::describe;
use super::network::{Network, Provenance, Reconnection};
use super::properties::{
    self, Admission, Cause, Dropped, Ledger, Line, Merge, Property, Role, TakenOut, Tracking,
    Violation,
};
use super::relay_shim::{Fork, Shim};
use super::{PASSWORD, ROOM};
use crate::mls_header::{self, CONTENT_TYPE_COMMIT, build_private_message};
use crate::proto::{self, ClientFrame, RemovalReason, ResumeToken, ServerFrame};
use crate::relay::state::RoomDeadlines;

/// The clock's step: deadlines are checked this often.
const SLICE: Duration = Duration::from_millis(100);
/// A short grace, so that some absences outlive it within a run.
const GRACE: Duration = Duration::from_secs(10);
/// Quiet seconds that end the quiesce (more than every deadline: the 20 s `/join` timeout).
const QUIET_SECONDS: u32 = 30;
/// Seconds a quiet period may take before the network counts as never going quiet: four
/// times the quiet seconds, past every deadline (a leader sending a commit again each tick
/// never gets there).
const QUIET_LIMIT_SECONDS: u32 = 4 * QUIET_SECONDS;
/// Deliveries a settle may take before the network counts as never going quiet.
const MAX_DELIVERIES: usize = 20_000;

/// What a run found.
pub struct Outcome {
    pub seed: u64,
    pub actors: Vec<Actor>,
    pub violations: Vec<Violation>,
    pub log: Vec<String>,
}

/// One move of a run.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Deliver this many frames, each on a link and in a direction drawn at random.
    Deliver(usize),
    /// Deliver everything in flight.
    Settle,
    Join(usize),
    Leave(usize),
    Say(usize),
    /// The user asks for new keys (`/rekey`).
    Rekey(usize),
    /// Seconds pass while the network works.
    Pass(u64),
    /// Seconds pass while the network delivers nothing.
    Delay(u64),
    /// The link is cut; both ends notice; the client comes back within the grace period.
    Cut(usize),
    /// The link is cut and the client resumes at once.
    Blip(usize),
    /// The client gives up on a link the relay still holds, and reconnects at once.
    HalfOpen(usize),
    /// The link is cut and the client stays away past the grace period.
    GoAway(usize),
    Back(usize),
    Restart,
    /// Everyone reads and the network settles, then the relay restarts.
    QuietRestart,
    Stall(usize),
    Unstall(usize),
    Garbage,
    Evict,
    StaleRestart,
    OutsiderRestart,
    ArmFork,
    ForgeRemoved(usize),
    ForgeConfirmed(usize),
    Replay(usize),
}

/// What made a client act, for the ledger.
#[derive(Clone)]
enum Trigger {
    User,
    Frame {
        kind: &'static str,
        provenance: Provenance,
        commit: Option<Vec<u8>>,
        confirmed: bool,
        removed: Option<RemovalReason>,
    },
    Reconnect,
    Link,
    Tick,
}

/// What the network does to one client, besides its link.
#[derive(Debug, Clone)]
struct Condition {
    /// Frozen: reads nothing, does nothing (its frames already sent still arrive).
    stalled: bool,
    /// Away past the grace period: cannot reach the relay before then.
    away_until: Option<Instant>,
    /// Since when its link is down while the relay keeps its session.
    parked_since: Option<Instant>,
    /// A cut link: the relay is out of reach until then at the latest (within the grace
    /// period), or until a `Back` step.
    return_by: Option<Instant>,
    /// Never reaches the relay again (the checks' own tests).
    cut_off: bool,
}

/// The hostile clients of a run.
#[derive(Default)]
struct Cast {
    nay: Option<usize>,
    stale: Option<usize>,
    garbler: Option<usize>,
    outsider: Option<usize>,
}

pub struct World {
    seed: u64,
    rng: StdRng,
    actors: Vec<Actor>,
    origin: Instant,
    now: Instant,
    net: Network,
    shim: Shim,
    pub clients: Vec<SimClient>,
    pub roles: Vec<Role>,
    pub ledger: Ledger,
    cast: Cast,
    conditions: Vec<Condition>,
    /// After a quiet restart: users neither join nor leave until every member is back.
    reclaiming: bool,
    lines_said: usize,
    /// A settle never ended.
    chattering: bool,
    log: Vec<String>,
    /// Log every frame in full (`Debug`, bytes included), not only its description.
    trace_full: bool,
}

impl World {
    /// A world for `seed`: the actors it enables (every one of `allowed` when that is one
    /// actor, else each with even odds), two to four honest clients and the hostile ones.
    pub fn new(seed: u64, allowed: &[Actor]) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let actors: Vec<Actor> = if allowed.len() == 1 {
            allowed.to_vec()
        } else {
            allowed.iter().copied().filter(|_| rng.gen_bool(0.5)).collect()
        };
        let honest = rng.gen_range(2..=4);
        let mut nicks: Vec<String> = (0..honest).map(|index| format!("h{index}")).collect();
        let mut roles = vec![Role::Honest; honest];
        let mut cast = Cast::default();
        let mut add = |nick: &str, role: Role| {
            nicks.push(nick.to_owned());
            roles.push(role);
            Some(nicks.len() - 1)
        };
        if actors.contains(&Actor::AlwaysNoVoter) {
            cast.nay = add("nay", Role::Insider);
        }
        if actors.contains(&Actor::StaleReclaimer) {
            cast.stale = add("stale", Role::Insider);
        }
        if actors.contains(&Actor::GarbageLeader) {
            cast.garbler = add("garbler", Role::Insider);
        }
        if actors.contains(&Actor::OutsiderReclaimer) {
            cast.outsider = add("outsider", Role::Outsider);
        }
        let origin = Instant::now();
        let mut clients: Vec<SimClient> =
            nicks.iter().map(|nick| SimClient::new(nick, origin, rng.r#gen())).collect();
        if let Some(nay) = cast.nay {
            clients[nay].votes_no = true;
        }
        let deadlines = RoomDeadlines { grace: GRACE, ..RoomDeadlines::default() };
        let count = clients.len();
        let mut shim = Shim::new(nicks);
        shim.duplicate = actors.contains(&Actor::DuplicateMessages);
        shim.reorder = actors.contains(&Actor::ReorderedMessages);
        shim.abort = actors.contains(&Actor::AbortingRelay);
        shim.keep_history = actors.contains(&Actor::ReplayingRelay);
        let ledger = Ledger { tracking: vec![Tracking::default(); count], ..Ledger::default() };
        World {
            seed,
            rng,
            actors,
            origin,
            now: origin,
            net: Network::new(count, deadlines),
            shim,
            clients,
            roles,
            ledger,
            cast,
            conditions: (0..count)
                .map(|_| Condition {
                    stalled: false,
                    away_until: None,
                    parked_since: None,
                    return_by: None,
                    cut_off: false,
                })
                .collect(),
            reclaiming: false,
            lines_said: 0,
            chattering: false,
            log: Vec::new(),
            trace_full: std::env::var("CHATTER_SIM_TRACE").is_ok_and(|value| value == "full"),
        }
    }

    /// Runs `steps` steps after the start, quiesces and checks.
    pub fn run(seed: u64, allowed: &[Actor], steps: usize) -> Outcome {
        let mut world = World::new(seed, allowed);
        world.start();
        for _ in 0..steps {
            let step = world.draw();
            world.apply(step);
        }
        world.finish()
    }

    /// Quiesces, checks, and hands over what was found.
    pub fn finish(mut self) -> Outcome {
        let mut violations = self.quiesce();
        violations.extend(properties::check(&self.ledger, &self.clients, &self.roles));
        Outcome { seed: self.seed, actors: self.actors, violations, log: self.log }
    }

    fn note(&mut self, text: String) {
        let elapsed = (self.now - self.origin).as_secs_f64();
        self.log.push(format!("{elapsed:>7.1}s  {text}"));
    }

    fn nick(&self, index: usize) -> String {
        self.clients[index].nick.clone()
    }

    fn is_up(&self, index: usize) -> bool {
        self.net.links[index].is_up()
    }

    /// Whether client `index` reads a frame waiting on its link now: not stalled, and its
    /// core still takes frames from that link (it gives up on a silent one by itself).
    fn reads(&self, index: usize) -> bool {
        !self.conditions[index].stalled
            && !self.net.links[index].down.is_empty()
            && self.clients[index].is_connected()
    }

    /// Connected, by both ends' account.
    fn is_online(&self, index: usize) -> bool {
        self.is_up(index) && self.clients[index].is_connected()
    }

    /// Clients in the room's group, by their own account.
    fn members(&self) -> Vec<usize> {
        (0..self.clients.len()).filter(|&index| self.clients[index].is_member()).collect()
    }

    fn leads(&self, index: usize) -> bool {
        let client = &self.clients[index];
        self.is_online(index)
            && client
                .room()
                .is_some_and(|room| room.is_member() && room.leader() == Some(client.nick.as_str()))
    }

    /// Everyone registers; the first honest client creates the room, the insiders join it,
    /// and each other honest client joins it or not.
    pub fn start(&mut self) {
        let description: Vec<String> = self
            .clients
            .iter()
            .zip(&self.roles)
            .map(|(client, role)| format!("{} {role:?}", client.nick))
            .collect();
        let actors: Vec<&str> = self.actors.iter().map(|actor| actor.name()).collect();
        self.note(format!("seed {}: actors {actors:?}; clients {description:?}", self.seed));
        for index in 0..self.clients.len() {
            let nick = self.nick(index);
            let (token, relay_boot) = self.net.connect(index, &nick, self.now);
            self.clients[index].registered_first(token, relay_boot, self.now);
        }
        self.user_join(0);
        self.settle();
        // Against an insider that refuses everything, every honest client joins before it:
        // with half the votes it could block the room, which no rule can prevent.
        let blocker = self.cast.nay;
        let mut joiners: Vec<usize> = (1..self.clients.len())
            .filter(|&index| match self.roles[index] {
                Role::Honest => blocker.is_some() || self.rng.gen_bool(0.6),
                Role::Insider => true,
                Role::Outsider => false,
            })
            .collect();
        joiners.shuffle(&mut self.rng);
        joiners.sort_by_key(|&index| Some(index) == blocker);
        for index in joiners {
            self.user_join(index);
            self.settle();
        }
    }

    fn has(&self, actor: Actor) -> bool {
        self.actors.contains(&actor)
    }

    fn choose(&mut self, candidates: &[usize]) -> Option<usize> {
        (!candidates.is_empty()).then(|| candidates[self.rng.gen_range(0..candidates.len())])
    }

    /// Draws the next step among those possible now.
    pub fn draw(&mut self) -> Step {
        let count = self.clients.len();
        let mut menu: Vec<(u32, Step)> = Vec::new();
        menu.push((30, Step::Deliver(self.rng.gen_range(1..=6))));
        menu.push((5, Step::Settle));
        menu.push((4, Step::Pass(self.rng.gen_range(1..=3))));
        let awake: Vec<usize> = (0..count)
            .filter(|&index| !self.conditions[index].stalled && self.roles[index] != Role::Outsider)
            .collect();
        let online: Vec<usize> =
            awake.iter().copied().filter(|&index| self.is_online(index)).collect();
        if self.reclaiming && self.everyone_back() {
            self.reclaiming = false;
        }
        let users_wait = self.reclaiming;
        let joinable: Vec<usize> = online
            .iter()
            .copied()
            .filter(|&index| self.clients[index].room().is_none() && index != 0)
            .collect();
        if let Some(index) = self.choose(&joinable).filter(|_| !users_wait) {
            menu.push((4, Step::Join(index)));
        }
        // Users told that their client left the room join it again.
        let told_to_join: Vec<usize> = online
            .iter()
            .copied()
            .filter(|&index| self.clients[index].room().is_none())
            .filter(|&index| self.ledger.tracking[index].rejoin_due)
            .collect();
        if let Some(index) = self.choose(&told_to_join).filter(|_| !users_wait) {
            menu.push((8, Step::Join(index)));
        }
        // An insider that refuses everything can block a room where it has half the votes:
        // honest users do not leave it that far (the majority rule cannot do better).
        let honest_in_room = (0..count)
            .filter(|&index| self.roles[index] == Role::Honest && self.clients[index].is_member())
            .count();
        let blockers_in_room =
            self.cast.nay.filter(|&nay| self.clients[nay].is_member()).iter().count();
        let leaving_keeps_majority = honest_in_room > blockers_in_room + 1 || blockers_in_room == 0;
        let leavable: Vec<usize> = online
            .iter()
            .copied()
            .filter(|&index| {
                index != 0
                    && self.roles[index] == Role::Honest
                    && self.clients[index].room().is_some()
                    && (leaving_keeps_majority || !self.clients[index].is_member())
            })
            .collect();
        if let Some(index) = self.choose(&leavable).filter(|_| !users_wait) {
            menu.push((1, Step::Leave(index)));
        }
        let talkers: Vec<usize> =
            awake.iter().copied().filter(|&index| self.clients[index].room().is_some()).collect();
        if let Some(index) = self.choose(&talkers) {
            menu.push((8, Step::Say(index)));
        }
        if self.has(Actor::Renewals) {
            let members: Vec<usize> = awake
                .iter()
                .copied()
                .filter(|&index| self.roles[index] == Role::Honest)
                .filter(|&index| self.clients[index].is_member())
                .collect();
            if let Some(index) = self.choose(&members) {
                menu.push((2, Step::Rekey(index)));
            }
        }
        let now = self.now;
        let down: Vec<usize> = (0..count)
            .filter(|&index| self.conditions[index].return_by.is_some_and(|by| now < by))
            .filter(|&index| self.conditions[index].away_until.is_none_or(|until| now >= until))
            .collect();
        if let Some(index) = self.choose(&down) {
            menu.push((6, Step::Back(index)));
        }
        if self.has(Actor::BriefLinkCuts)
            && let Some(index) = self.choose(&online)
        {
            menu.push((3, Step::Blip(index)));
            menu.push((1, Step::HalfOpen(index)));
        }
        if self.has(Actor::LinkCuts)
            && let Some(index) = self.choose(&online)
        {
            menu.push((3, Step::Cut(index)));
        }
        if self.has(Actor::LongAbsences)
            && let Some(index) = self.choose(&online)
        {
            menu.push((1, Step::GoAway(index)));
        }
        if self.has(Actor::RelayRestarts) {
            menu.push((1, Step::Restart));
        }
        if self.has(Actor::QuietRestarts) && !self.reclaiming {
            menu.push((1, Step::QuietRestart));
        }
        if self.has(Actor::Stalls) {
            if let Some(index) = self.choose(&online) {
                menu.push((2, Step::Stall(index)));
            }
            let stalled: Vec<usize> =
                (0..count).filter(|&index| self.conditions[index].stalled).collect();
            if let Some(index) = self.choose(&stalled) {
                menu.push((3, Step::Unstall(index)));
            }
            menu.push((1, Step::Delay(self.rng.gen_range(2..=8))));
        }
        if let Some(garbler) = self.cast.garbler
            && self.leads(garbler)
            && !users_wait
        {
            menu.push((2, Step::Garbage));
            menu.push((2, Step::Evict));
        }
        // A lie after a restart can only be outvoted: it is tried while the honest members
        // outnumber the liars (with as many liars as honest members, nothing can tell them
        // apart, and the room goes to whoever came first).
        let liars = [self.cast.stale, self.cast.outsider].iter().flatten().count();
        let honest_members = (0..count)
            .filter(|&index| self.roles[index] == Role::Honest && self.clients[index].is_member())
            .count();
        let outvoted = honest_members > liars;
        if let Some(stale) = self.cast.stale
            && outvoted
            && self.clients[stale].room().and_then(Room::group).is_some_and(|g| g.epoch() > 0)
        {
            menu.push((2, Step::StaleRestart));
        }
        if self.cast.outsider.is_some() && outvoted {
            menu.push((2, Step::OutsiderRestart));
        }
        if self.has(Actor::ForkingRelay) && matches!(self.shim.fork, Fork::Idle) {
            menu.push((3, Step::ArmFork));
        }
        let honest_members: Vec<usize> = self
            .members()
            .into_iter()
            .filter(|&index| self.roles[index] == Role::Honest && self.is_online(index))
            .collect();
        if self.has(Actor::ForgingRelay)
            && let Some(index) = self.choose(&honest_members)
        {
            menu.push((2, Step::ForgeRemoved(index)));
            menu.push((2, Step::ForgeConfirmed(index)));
        }
        if self.has(Actor::ReplayingRelay)
            && let Some(index) = self.choose(&online)
        {
            menu.push((3, Step::Replay(index)));
        }
        let total: u32 = menu.iter().map(|(weight, _)| weight).sum();
        let mut pick = self.rng.gen_range(0..total);
        for (weight, step) in &menu {
            if pick < *weight {
                return *step;
            }
            pick -= weight;
        }
        unreachable!("the pick is below the total")
    }

    pub fn apply(&mut self, step: Step) {
        match step {
            Step::Deliver(count) => {
                for _ in 0..count {
                    if !self.deliver_one() {
                        break;
                    }
                }
            }
            Step::Settle => {
                self.settle();
            }
            Step::Join(index) => self.user_join(index),
            Step::Leave(index) => self.user_leave(index),
            Step::Say(index) => self.say(index),
            Step::Rekey(index) => self.user_rekey(index),
            Step::Pass(seconds) => {
                for _ in 0..seconds {
                    self.settle();
                    self.advance(Duration::from_secs(1));
                }
            }
            Step::Delay(seconds) => {
                self.note(format!("the network delays everything for {seconds} s"));
                self.advance(Duration::from_secs(seconds));
            }
            // The client dials again after its core's backoff.
            Step::Blip(index) => self.cut(index),
            Step::Cut(index) => {
                self.cut(index);
                self.conditions[index].return_by = Some(self.now + GRACE - Duration::from_secs(2));
            }
            Step::HalfOpen(index) => {
                self.note(format!(
                    "{} gives up on its link; the relay still holds it",
                    self.nick(index)
                ));
                self.interact(index, Trigger::Link, |client, now| client.link_lost(now));
            }
            Step::GoAway(index) => {
                self.cut(index);
                self.conditions[index].away_until = Some(self.now + GRACE + Duration::from_secs(1));
            }
            Step::Back(index) => {
                self.note(format!("{} can reach the relay again", self.nick(index)));
                self.conditions[index].return_by = None;
            }
            Step::Restart => self.restart(),
            Step::QuietRestart => {
                self.everyone_reconnects();
                self.settle_fully();
                self.restart();
                self.reclaiming = true;
            }
            Step::Stall(index) => {
                self.note(format!("{} stalls", self.nick(index)));
                self.conditions[index].stalled = true;
            }
            Step::Unstall(index) => {
                self.note(format!("{} reads again", self.nick(index)));
                self.conditions[index].stalled = false;
            }
            Step::Garbage => self.garbage(),
            Step::Evict => self.evict(),
            // Until the honest members are back, no user joins or leaves: one leaving could
            // leave as many honest members as liars, whom nothing tells apart.
            Step::StaleRestart => {
                self.stale_restart();
                self.reclaiming = true;
            }
            Step::OutsiderRestart => {
                self.outsider_restart();
                self.reclaiming = true;
            }
            Step::ArmFork => {
                self.note("relay: will fork the next commit that adds someone".into());
                self.shim.fork = Fork::Armed;
            }
            Step::ForgeRemoved(index) => {
                self.shim.forge_removed(index, &mut self.rng);
                self.pump();
            }
            Step::ForgeConfirmed(index) => {
                let epoch =
                    self.clients[index].room().and_then(Room::group).map_or(1, |g| g.epoch() + 1);
                self.shim.forge_confirmed(index, epoch);
                self.pump();
            }
            Step::Replay(index) => {
                self.shim.replay(index, &mut self.rng);
                self.pump();
            }
        }
        self.end_step();
    }

    /// Frames held back for reordering go out, and a slice of time passes.
    fn end_step(&mut self) {
        self.release_held();
        self.advance(SLICE);
    }

    /// Settles until nothing is in flight or held back.
    fn settle_fully(&mut self) {
        loop {
            self.release_held();
            self.settle();
            if !self.shim.holds_any() || self.chattering {
                return;
            }
        }
    }

    fn release_held(&mut self) {
        for index in 0..self.clients.len() {
            if let Some(delivery) = self.shim.release_held(index) {
                self.net.write(index, delivery);
            }
        }
    }

    // ---- Users ----

    pub fn user_join(&mut self, index: usize) {
        let tracking = &mut self.ledger.tracking[index];
        tracking.wants_room = true;
        tracking.admitted = false;
        tracking.user_serial += 1;
        tracking.instance += 1;
        tracking.join_cause = Some(Cause::User);
        tracking.rejoin_due = false;
        tracking.excused_exit = false;
        self.note(format!("{}: /join", self.nick(index)));
        self.interact(index, Trigger::User, |client, now| client.user_join(ROOM, PASSWORD, now));
    }

    pub fn user_rekey(&mut self, index: usize) {
        self.note(format!("{}: /rekey", self.nick(index)));
        self.interact(index, Trigger::User, |client, now| client.user_rekey(now));
    }

    pub fn user_leave(&mut self, index: usize) {
        let tracking = &mut self.ledger.tracking[index];
        tracking.wants_room = false;
        tracking.rejoin_due = false;
        tracking.user_serial += 1;
        self.note(format!("{}: /leave", self.nick(index)));
        self.interact(index, Trigger::User, |client, now| client.user_leave(now));
    }

    pub fn say(&mut self, index: usize) {
        self.lines_said += 1;
        let text = format!("{}:{}", self.nick(index), self.lines_said);
        self.ledger.line_by_text.insert(text.clone(), self.ledger.lines.len());
        self.ledger.lines.push(Line {
            text: text.clone(),
            sender: index,
            instance: self.ledger.tracking[index].instance,
            number: None,
            group_id: None,
            owed_to: Vec::new(),
            lost_with_session: Vec::new(),
        });
        self.note(format!("{}: says {text}", self.nick(index)));
        self.interact(index, Trigger::User, |client, now| client.user_say(&text, now));
    }

    // ---- The ledger's view of every client interaction ----

    /// Runs `act` on client `index`, then notes what it sent and showed, and puts its
    /// frames on its link.
    fn interact(
        &mut self,
        index: usize,
        trigger: Trigger,
        act: impl FnOnce(&mut SimClient, Instant),
    ) {
        let client = &self.clients[index];
        let events_before = client.events.len();
        let held_group = client.holds_group();
        let group_before = client.room().and_then(Room::group).map(|g| (g.group_id(), g.epoch()));
        let group_id = group_before.as_ref().map(|(id, _)| id.clone());
        act(&mut self.clients[index], self.now);
        self.observe(index, &trigger, events_before, held_group, group_before);
        if held_group && self.clients[index].room().is_none() && !matches!(trigger, Trigger::User) {
            self.dropped(index, group_id);
        }
        let outgoing = std::mem::take(&mut self.clients[index].outgoing);
        if self.is_up(index) {
            self.net.links[index].up.extend(outgoing);
        }
    }

    /// The client dropped the room it held, without its user's word: the user was told (or
    /// the checks say it was not), and will `/join` again.
    fn dropped(&mut self, index: usize, group_id: Option<Vec<u8>>) {
        let told = properties::last_warning(&self.clients[index]);
        // After a restart the room goes to the claim most members return to: liars that
        // outnumber (or tie) the honest members holding the group win it, and nothing can
        // tell them apart.
        let honest_holders = 1
            + (0..self.clients.len())
                .filter(|&other| other != index && self.roles[other] == Role::Honest)
                .filter(|&other| {
                    let held = self.clients[other].room().and_then(Room::group);
                    held.is_some_and(|group| Some(group.group_id()) == group_id)
                })
                .count();
        let liars = [self.cast.stale, self.cast.outsider].iter().flatten().count();
        let outnumbered = told.contains("Outnumbered") && honest_holders <= liars;
        let tracking = &mut self.ledger.tracking[index];
        let excused = std::mem::take(&mut tracking.excused_exit) || outnumbered;
        tracking.rejoin_due = tracking.wants_room;
        self.note(format!(
            "{} dropped the room{}",
            self.nick(index),
            if excused { " (the relay took it out for cause)" } else { "" }
        ));
        self.ledger.dropped.push(Dropped { client: index, told, excused });
    }

    fn observe(
        &mut self,
        index: usize,
        trigger: &Trigger,
        events_before: usize,
        held_group: bool,
        group_before: Option<(Vec<u8>, u64)>,
    ) {
        let nick = self.nick(index);
        let sent = std::mem::take(&mut self.clients[index].sent);
        let events = self.clients[index].events[events_before..].to_vec();
        let told = events.iter().any(properties::user_visible);
        for event in events.iter().filter(|event| properties::user_visible(event)) {
            self.note(format!("{nick} is shown {event:?}"));
        }
        if let Trigger::Frame {
            provenance: Provenance::Genuine,
            removed: Some(RemovalReason::KeyChangeRefused),
            ..
        } = trigger
        {
            let commit = self.ledger.tracking[index].own_commit.clone();
            self.ledger.taken_out.push(TakenOut { client: index, commit });
        }
        if let Trigger::Frame { provenance: Provenance::Genuine, .. } = trigger {
            for named in events.iter().filter_map(properties::names_lost_message) {
                *self.ledger.tracking[index].lost_warnings.entry(named).or_default() += 1;
            }
        }
        for frame in sent {
            if let ClientFrame::Ping = frame {
                continue;
            }
            let text =
                if self.trace_full { format!("{frame:?}") } else { describe::client(&frame) };
            self.note(format!("{nick} -> {text}"));
            match frame {
                ClientFrame::Join { .. } | ClientFrame::Reclaim { .. } => {
                    let cause = match trigger {
                        Trigger::User => Cause::User,
                        Trigger::Frame { kind, provenance, .. } => {
                            Cause::Frame { kind, provenance: *provenance, told }
                        }
                        Trigger::Reconnect => Cause::Reconnect { told },
                        Trigger::Link => Cause::Other("a lost link"),
                        Trigger::Tick => Cause::Other("a tick"),
                    };
                    let tracking = &mut self.ledger.tracking[index];
                    // A join that restarts (the leader changed) goes on with its cause.
                    if matches!(trigger, Trigger::User)
                        || held_group
                        || tracking.join_cause.is_none()
                    {
                        tracking.join_cause = Some(cause);
                    }
                    // A `Join` starts a password exchange (it carries the joiner's half).
                    if matches!(frame, ClientFrame::Join { .. }) {
                        let cause = tracking.join_cause.clone().unwrap_or(Cause::Other("nothing"));
                        self.ledger.admissions.push(Admission { client: index, cause });
                    }
                }
                ClientFrame::Commit { commit, electorate, .. } => {
                    self.ledger.electorates.insert(commit.clone(), electorate);
                    let tracking = &mut self.ledger.tracking[index];
                    tracking.own_commit = Some(commit.clone());
                    if let Some(header) = mls_header::peek_header(&commit) {
                        tracking.commits.push((header.epoch, commit));
                    }
                }
                ClientFrame::CommitVote { accept, epoch, .. } => {
                    // A vote on a commit a hostile relay sent again decides nothing.
                    let commit = match trigger {
                        Trigger::Frame {
                            commit: Some(commit),
                            provenance: Provenance::Genuine,
                            ..
                        } => Some(commit.clone()),
                        // A commit that came before our Welcome, voted on as it is processed.
                        Trigger::Frame {
                            kind: "Welcome",
                            commit: None,
                            provenance: Provenance::Genuine,
                            ..
                        } => self.ledger.tracking[index]
                            .delivered_commits
                            .iter()
                            .rev()
                            .find(|(delivered, _)| *delivered == epoch)
                            .map(|(_, commit)| commit.clone()),
                        _ => None,
                    };
                    if let Some(commit) = &commit {
                        self.ledger.votes.entry(commit.clone()).or_default().push((index, accept));
                        if accept && let Some(header) = mls_header::peek_header(commit) {
                            self.ledger.tracking[index]
                                .commits
                                .push((header.epoch, commit.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
        for line in std::mem::take(&mut self.clients[index].encrypted) {
            if let Some(&position) = self.ledger.line_by_text.get(&line.text) {
                let record = &mut self.ledger.lines[position];
                record.number = Some(line.number);
                record.group_id = Some(line.group_id);
                self.ledger.line_by_message.insert(line.message, position);
            }
        }
        if let Trigger::Frame { confirmed: true, .. } = trigger {
            let after =
                self.clients[index].room().and_then(Room::group).map(|g| (g.group_id(), g.epoch()));
            if let (Some((before_id, before_epoch)), Some((after_id, after_epoch))) =
                (&group_before, after)
                && *before_id == after_id
                && after_epoch == before_epoch + 1
            {
                let commit = self.ledger.tracking[index]
                    .commits
                    .iter()
                    .rev()
                    .find(|(epoch, _)| epoch == before_epoch)
                    .map(|(_, commit)| commit.clone());
                self.note(format!("{nick} merged the commit ending epoch {before_epoch}"));
                self.ledger.merges.push(Merge { client: index, epoch: *before_epoch, commit });
            }
        }
        if self.clients[index].is_member() {
            self.ledger.tracking[index].admitted = true;
        }
        // A user told that their join failed, or who gave up on it, tries again: the join
        // is theirs.
        let join_failed = std::mem::take(&mut self.clients[index].join_failed)
            || events.iter().any(|event| matches!(event, Event::Status(Notice::JoinFailed { .. })));
        if join_failed && self.clients[index].room().is_none() {
            let tracking = &mut self.ledger.tracking[index];
            tracking.rejoin_due = tracking.wants_room;
        }
        // Told it was taken out of a room it was still joining (as a forging relay may say):
        // its client drops the room until the user joins again, and a user who wants it does.
        let taken_out = events.iter().any(|event| {
            matches!(event, Event::Room { notice: crate::client::RoomNotice::TakenOut { .. }, .. })
        });
        if taken_out && self.clients[index].room().is_none() {
            let tracking = &mut self.ledger.tracking[index];
            tracking.rejoin_due = tracking.wants_room;
        }
        let group =
            self.clients[index].room().and_then(Room::group).map(|g| (g.group_id(), g.epoch()));
        let tracking = &mut self.ledger.tracking[index];
        // A new group object (created, welcomed — even back into the same group) starts
        // anew the epochs this member can read, as the relay's `RoomMember::join_epoch`.
        match group {
            Some((id, epoch))
                if !held_group
                    || tracking.member_since.as_ref().is_none_or(|(held, _)| *held != id) =>
            {
                tracking.member_since = Some((id, epoch));
            }
            Some(_) => {}
            None => tracking.member_since = None,
        }
    }

    // ---- The network ----

    /// Delivers one frame on a link and in a direction drawn at random; `false` when none
    /// is in flight.
    fn deliver_one(&mut self) -> bool {
        let mut candidates = Vec::new();
        for index in 0..self.clients.len() {
            if self.reads(index) {
                candidates.push((index, true));
            }
            if !self.net.links[index].up.is_empty() {
                candidates.push((index, false));
            }
        }
        if candidates.is_empty() {
            return false;
        }
        let (index, down) = candidates[self.rng.gen_range(0..candidates.len())];
        if down {
            self.deliver_down(index);
        } else {
            self.deliver_up(index);
        }
        true
    }

    /// Delivers everything in flight, readers that stalled aside. Returns how many frames
    /// moved, acknowledgements aside.
    fn settle(&mut self) -> usize {
        let mut moved = 0;
        let mut deliveries = 0;
        loop {
            let mut any = false;
            for index in 0..self.clients.len() {
                while self.reads(index) {
                    any = true;
                    deliveries += 1;
                    moved += usize::from(self.deliver_down(index));
                }
                while !self.net.links[index].up.is_empty() {
                    any = true;
                    deliveries += 1;
                    moved += usize::from(self.deliver_up(index));
                }
            }
            if !any {
                return moved;
            }
            if deliveries > MAX_DELIVERIES {
                self.chattering = true;
                return moved;
            }
        }
    }

    /// The client reads its next frame; `true` unless it was an acknowledgement.
    fn deliver_down(&mut self, index: usize) -> bool {
        let Some(delivery) = self.net.links[index].down.pop_front() else { return false };
        let frame: ServerFrame = proto::decode(&delivery.bytes).unwrap();
        if let ServerFrame::Ack { .. } | ServerFrame::Pong = frame {
            // The link's housekeeping: no news, and not logged.
            self.interact(index, Trigger::Tick, |client, now| client.on_frame(frame, now));
            return false;
        }
        let tag = match delivery.provenance {
            Provenance::Genuine => String::new(),
            other => format!(" [{other:?}]"),
        };
        let text = if self.trace_full { format!("{frame:?}") } else { describe::server(&frame) };
        self.note(format!("{} <- {text}{tag}", self.nick(index)));
        if delivery.provenance != Provenance::Genuine
            && matches!(
                frame,
                ServerFrame::MemberLeft { .. }
                    | ServerFrame::MemberJoined { .. }
                    | ServerFrame::LeaderChanged { .. }
            )
        {
            // Who is connected is the relay's word alone: a relay that lies about it is
            // believed, and only the list it shows can be wrong.
            self.ledger.tracking[index].misled_about_members = true;
        }
        if let (Provenance::Forged, ServerFrame::Removed { .. }) = (delivery.provenance, &frame) {
            // A hostile relay can always put a member out; it cannot hide that it did.
            self.ledger.tracking[index].excused_exit = true;
        }
        if let (Provenance::Genuine, ServerFrame::Commit { commit, .. }) =
            (delivery.provenance, &frame)
            && let Some(header) = mls_header::peek_header(commit)
        {
            let delivered = &mut self.ledger.tracking[index].delivered_commits;
            delivered.push((header.epoch, commit.clone()));
            if delivered.len() > 8 {
                delivered.remove(0);
            }
        }
        let trigger = Trigger::Frame {
            kind: describe::kind(&frame),
            provenance: delivery.provenance,
            commit: match &frame {
                ServerFrame::Commit { commit, .. } => Some(commit.clone()),
                _ => None,
            },
            confirmed: matches!(frame, ServerFrame::CommitConfirmed { .. }),
            removed: match &frame {
                ServerFrame::Removed { reason, .. } => Some(*reason),
                _ => None,
            },
        };
        self.interact(index, trigger, |client, now| client.on_frame(frame, now));
        true
    }

    /// The relay reads the next frame from a client; `true` unless it was an
    /// acknowledgement.
    fn deliver_up(&mut self, index: usize) -> bool {
        // Acknowledgements and keepalives are the link's housekeeping, not news.
        let is_frame = match self.net.links[index].up.front() {
            Some(Up::Frame(bytes)) => {
                !matches!(proto::decode::<ClientFrame>(bytes), Ok(ClientFrame::Ping))
            }
            _ => false,
        };
        if let Some((number, frame)) = self.net.read_up(index) {
            let members = self.members();
            if let Some(frame) = self.shim.upstream(index, frame, &members, &mut self.rng) {
                if let ClientFrame::Application { message, .. } = &frame {
                    self.owe_line(index, message);
                }
                self.net.handle(index, number, frame, self.now);
            }
        }
        self.pump();
        is_frame
    }

    /// The relay takes a chat line from `sender`: who is owed it is who is in the room then
    /// (the relay's room, and the sender's group by its own account).
    fn owe_line(&mut self, sender: usize, message: &[u8]) {
        let Some(&position) = self.ledger.line_by_message.get(message) else { return };
        if !self.ledger.tracking[sender].in_relay_room {
            // The relay refuses it (`NotInRoom`), and says so to the sender.
            return;
        }
        let Some(group_id) = self.ledger.lines[position].group_id.clone() else { return };
        let Some(epoch) = mls_header::peek_header(message).map(|header| header.epoch) else {
            return;
        };
        let owed_to: Vec<(usize, u32)> = (0..self.clients.len())
            .filter(|&other| other != sender && self.roles[other] == Role::Honest)
            .filter(|&other| self.ledger.tracking[other].in_relay_room)
            .filter(|&other| {
                // In the sender's group since that epoch or before (the relay forwards to a
                // member only the epochs it can read: `RoomMember::join_epoch`).
                self.clients[other].is_member()
                    && self.ledger.tracking[other]
                        .member_since
                        .as_ref()
                        .is_some_and(|(held, since)| *held == group_id && *since <= epoch)
            })
            .map(|other| (other, self.ledger.tracking[other].user_serial))
            .collect();
        self.ledger.lines[position].owed_to = owed_to;
    }

    /// What the state's own frames to a client say of its place in the room.
    fn follow_relay_room(&mut self, index: usize, bytes: &[u8]) {
        let frame = proto::decode::<ServerFrame>(bytes);
        if let Ok(ServerFrame::Removed { reason: RemovalReason::NoVote, .. }) = &frame {
            // It did not vote in time: fair, if it stalled or the network held its frames
            // up; a member that read the commit and sat on it is no fault of the network.
            let link = &self.net.links[index];
            if self.conditions[index].stalled || !link.down.is_empty() || !link.up.is_empty() {
                self.ledger.tracking[index].excused_exit = true;
            }
        }
        let in_room = match frame {
            Ok(
                ServerFrame::RoomCreated { .. }
                | ServerFrame::Welcome { .. }
                | ServerFrame::Reclaimed { .. },
            ) => true,
            Ok(
                ServerFrame::Removed { .. }
                | ServerFrame::Left { .. }
                | ServerFrame::ReclaimRefused { .. },
            ) => false,
            _ => return,
        };
        self.ledger.tracking[index].in_relay_room = in_room;
    }

    /// Moves what the relay did onto the links: frames it made up as if from a session go
    /// to the state, the state's frames go through the shim, made-up frames are written.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some((index, frame)) = self.shim.injected.pop_front() {
                moved = true;
                self.net.handle(index, 0, frame, self.now);
            }
            for index in 0..self.clients.len() {
                for bytes in self.net.drain(index) {
                    moved = true;
                    self.follow_relay_room(index, &bytes);
                    for delivery in self.shim.downstream(index, bytes, &mut self.rng) {
                        self.net.write(index, delivery);
                    }
                }
            }
            while let Some((index, delivery)) = self.shim.forged.pop_front() {
                moved = true;
                self.net.write(index, delivery);
            }
            for note in std::mem::take(&mut self.shim.notes) {
                self.note(note);
            }
            if !moved {
                return;
            }
        }
    }

    /// Time passes in slices: the relay's deadlines, then each client's timers and the
    /// reconnections its core asks for.
    fn advance(&mut self, duration: Duration) {
        let slices = duration.as_millis() / SLICE.as_millis();
        for _ in 0..slices {
            self.now += SLICE;
            self.net.relay.expire(self.now);
            for index in 0..self.clients.len() {
                // The state forgets a session away past the grace period (`State::expire`).
                if self.conditions[index]
                    .parked_since
                    .is_some_and(|since| self.now >= since + GRACE)
                {
                    self.conditions[index].parked_since = None;
                    self.session_lost(index);
                    self.ledger.tracking[index].in_relay_room = false;
                    // Forgotten by the relay, it is removed from the room: it must join again.
                    self.ledger.tracking[index].excused_exit = true;
                }
            }
            self.pump();
            for index in 0..self.clients.len() {
                if self.conditions[index].stalled {
                    continue;
                }
                if self.clients[index].due(self.now) {
                    self.interact(index, Trigger::Tick, |client, now| client.tick(now));
                }
                self.dial(index);
            }
        }
    }

    /// Whether client `index` can reach the relay now.
    fn reachable(&self, index: usize) -> bool {
        let condition = &self.conditions[index];
        !condition.cut_off
            && condition.away_until.is_none_or(|until| self.now >= until)
            && condition.return_by.is_none_or(|by| self.now >= by)
    }

    /// The reconnection attempts the client's core asks for: each gets through, or fails
    /// while the relay is out of reach.
    fn dial(&mut self, index: usize) {
        while let Some(dial) = self.clients[index].poll_dial() {
            if self.reachable(index) {
                self.reconnect(index, (dial.token.clone(), dial.received));
            } else {
                self.interact(index, Trigger::Link, |client, now| client.dial_failed(now));
            }
        }
    }

    fn cut(&mut self, index: usize) {
        self.note(format!("{}'s link is cut", self.nick(index)));
        self.net.cut(index, self.now);
        self.conditions[index].parked_since = Some(self.now);
        self.interact(index, Trigger::Link, |client, now| client.link_lost(now));
    }

    /// A new link, presenting the session's token: resumed, or registered anew (and the
    /// core takes its room back).
    fn reconnect(&mut self, index: usize, request: (ResumeToken, u64)) {
        let nick = self.nick(index);
        self.conditions[index].parked_since = None;
        self.conditions[index].return_by = None;
        match self.net.reconnect(index, &nick, request, self.now) {
            Reconnection::Resumed { handled, backlog, token } => {
                self.note(format!("{nick} resumes (the relay had {handled}; {backlog} to come)"));
                self.interact(index, Trigger::Reconnect, |client, now| {
                    client.resumed(handled, backlog, token, now)
                });
            }
            Reconnection::Registered { token, relay_boot } => {
                self.session_lost(index);
                self.ledger.tracking[index].in_relay_room = false;
                self.note(format!("{nick} is not resumed: registers anew"));
                self.interact(index, Trigger::Reconnect, |client, now| {
                    client.registered_anew(token, relay_boot, now)
                });
            }
        }
        self.pump();
    }

    /// Lets time pass until client `index` is connected again (at most `limit`).
    fn until_connected(&mut self, index: usize, limit: Duration) {
        let until = self.now + limit;
        while !self.clients[index].is_connected() && self.now < until {
            self.advance(SLICE);
        }
    }

    /// The relay no longer has client `index`'s session: whatever it had not delivered of
    /// the lines owed to it is gone with it.
    fn session_lost(&mut self, index: usize) {
        let shown: HashSet<&str> = self.clients[index]
            .events
            .iter()
            .filter_map(|event| match event {
                Event::Message { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        for line in &mut self.ledger.lines {
            if line.owed_to.iter().any(|(receiver, _)| *receiver == index)
                && !shown.contains(line.text.as_str())
                && !line.lost_with_session.contains(&index)
            {
                line.lost_with_session.push(index);
            }
        }
    }

    fn restart(&mut self) {
        self.note("the relay restarts".into());
        for index in 0..self.clients.len() {
            self.session_lost(index);
        }
        self.net.restart();
        self.shim.restarted();
        for index in 0..self.clients.len() {
            self.conditions[index].parked_since = None;
            self.ledger.tracking[index].in_relay_room = false;
        }
        for index in 0..self.clients.len() {
            self.interact(index, Trigger::Link, |client, now| client.link_lost(now));
        }
    }

    /// Whether every client holding a group is connected and has its room back.
    fn everyone_back(&self) -> bool {
        (0..self.clients.len()).all(|index| {
            let client = &self.clients[index];
            !client.holds_group()
                || (self.is_online(index) && client.room().is_some_and(|room| !room.reclaiming()))
        })
    }

    /// Delivers everything client `index` sent, now: it comes back first.
    fn flush_up(&mut self, index: usize) {
        while !self.net.links[index].up.is_empty() {
            self.deliver_up(index);
        }
    }

    // ---- Hostile moves ----

    fn garbage(&mut self) {
        let Some(garbler) = self.cast.garbler else { return };
        let Some(group) = self.clients[garbler].room().and_then(Room::group) else { return };
        let electorate = u32::try_from(group.members().len()).unwrap_or(u32::MAX);
        let commit = build_private_message(
            &group.group_id(),
            group.epoch(),
            CONTENT_TYPE_COMMIT,
            &[0x55; 64],
        );
        self.ledger.garbage.insert(commit.clone());
        self.note("garbler commits garbage".into());
        self.interact(garbler, Trigger::User, |client, _| {
            client.send_raw(ClientFrame::Commit {
                room: ROOM.into(),
                commit,
                adds: None,
                electorate,
            })
        });
    }

    fn evict(&mut self) {
        let Some(garbler) = self.cast.garbler else { return };
        let me = self.nick(garbler);
        // Only someone still in the room: removing a member that left is the leader's duty.
        let present: HashSet<String> = self
            .clients
            .iter()
            .filter(|client| client.room().is_some() && client.nick != me)
            .map(|client| client.nick.clone())
            .collect();
        let Some(room) = self.clients[garbler].room_mut() else { return };
        let Some(victim) = room.relay_members.iter().find(|nick| present.contains(*nick)).cloned()
        else {
            return;
        };
        let Some(group) = room.group_mut_for_tests() else { return };
        let Ok(commit) = group.commit_remove(&[victim.as_str()]) else { return };
        let electorate = u32::try_from(commit.electorate.len()).unwrap_or(u32::MAX);
        self.note(format!("garbler commits the eviction of {victim}"));
        self.interact(garbler, Trigger::User, |client, _| {
            client.send_raw(ClientFrame::Commit {
                room: ROOM.into(),
                commit: commit.commit,
                adds: None,
                electorate,
            })
        });
    }

    fn stale_restart(&mut self) {
        let Some(stale) = self.cast.stale else { return };
        let Some(epoch) = self.clients[stale].room().and_then(Room::group).map(|g| g.epoch())
        else {
            return;
        };
        if epoch == 0 {
            return;
        }
        let claimed = self.rng.gen_range(0..epoch);
        self.restart();
        self.note(format!(
            "stale comes back first, claiming epoch {claimed} (the room is at {epoch})"
        ));
        self.clients[stale].rewrite = Some(Box::new(move |frame| {
            if let ClientFrame::Reclaim { epoch, .. } = frame {
                *epoch = claimed;
            }
        }));
        self.first_back(stale);
        self.clients[stale].rewrite = None;
    }

    fn outsider_restart(&mut self) {
        let Some(outsider) = self.cast.outsider else { return };
        self.restart();
        self.first_back(outsider);
        let group_id: Vec<u8> = (0..16).map(|_| self.rng.r#gen()).collect();
        let epoch = self.rng.gen_range(0..3);
        self.note(format!("outsider reclaims the room first with a made-up group, epoch {epoch}"));
        self.interact(outsider, Trigger::User, |client, _| {
            client.send_raw(ClientFrame::Reclaim {
                room: ROOM.into(),
                group_id,
                epoch,
                pledged: None,
                proof: Vec::new(),
                last_commit: None,
                earlier: Vec::new(),
            })
        });
        self.flush_up(outsider);
    }

    /// After a restart, client `index` comes back before anyone else, and what it sends
    /// reaches the relay first; the others come back a second or more later.
    fn first_back(&mut self, index: usize) {
        for other in (0..self.clients.len()).filter(|&other| other != index) {
            let delay = Duration::from_millis(self.rng.gen_range(1000..4000));
            self.conditions[other].return_by = Some(self.now + delay);
        }
        self.until_connected(index, Duration::from_secs(5));
        self.flush_up(index);
    }

    /// Client `index` never reaches the relay again: its link is cut for good.
    pub fn cut_off(&mut self, index: usize) {
        if self.is_up(index) {
            self.cut(index);
        }
        self.conditions[index].cut_off = true;
    }

    /// Stalls end, links come back, and time passes until every client is connected.
    fn everyone_reconnects(&mut self) {
        for condition in &mut self.conditions {
            condition.stalled = false;
            condition.return_by = None;
        }
        for _ in 0..600 {
            let reconnecting = |index: usize| !self.conditions[index].cut_off;
            if (0..self.clients.len()).filter(|&i| reconnecting(i)).all(|i| self.is_online(i)) {
                return;
            }
            self.advance(SLICE);
        }
    }

    // ---- The quiet end ----

    /// Faults stop, everyone reads and comes back, deadlines pass, and the network goes
    /// quiet; then every honest member says one more line, which shows any gap before it,
    /// and the network goes quiet again.
    fn quiesce(&mut self) -> Vec<Violation> {
        self.note("quiesce: faults stop, everyone comes back".into());
        self.shim.active = false;
        self.release_held();
        self.conditions.iter_mut().for_each(|condition| condition.stalled = false);
        self.pump();
        while self.conditions.iter().filter_map(|c| c.away_until).any(|until| until > self.now) {
            self.settle();
            self.advance(Duration::from_secs(1));
        }
        self.everyone_reconnects();
        let mut quiet = self.quiet_period();
        for _ in 0..3 {
            let told_to_join: Vec<usize> = (0..self.clients.len())
                .filter(|&index| self.ledger.tracking[index].rejoin_due)
                .filter(|&index| self.clients[index].room().is_none())
                .collect();
            if told_to_join.is_empty() {
                break;
            }
            for index in told_to_join {
                self.user_join(index);
            }
            quiet &= self.quiet_period();
        }
        let speakers: Vec<usize> = (0..self.clients.len())
            .filter(|&index| self.roles[index] == Role::Honest && self.clients[index].is_member())
            .collect();
        for index in speakers {
            self.say(index);
        }
        quiet &= self.quiet_period();
        self.note("quiet: checking".into());
        if quiet {
            Vec::new()
        } else {
            vec![Violation {
                property: Property::Quiet,
                text: "the network never went quiet".into(),
            }]
        }
    }

    /// Settles and lets time pass until nothing but acknowledgements moved for
    /// [`QUIET_SECONDS`]; `false` if that never happens.
    fn quiet_period(&mut self) -> bool {
        let mut quiet = 0;
        for _ in 0..QUIET_LIMIT_SECONDS {
            let moved = self.settle();
            if self.chattering {
                return false;
            }
            // Claims waiting on a room being re-formed are settled by a relay deadline, not
            // by a frame: the network is not quiet until that has happened.
            let waiting = self.net.relay.claims_waiting();
            quiet = if moved == 0 && !waiting { quiet + 1 } else { 0 };
            if quiet >= QUIET_SECONDS {
                return true;
            }
            self.advance(Duration::from_secs(1));
        }
        false
    }
}
