//! Key renewal in a room: each member renews its own leaf after a while in the room, and on
//! `/rekey`; the leader commits what members propose, and keeps one member from churning the
//! room; every member knows how old each leaf is, and says so when one grows stale.
//!
//! Time here is counted in the engine's keepalive ticks (five seconds apart, while the link is
//! up), so the room stays sans-IO and a test can run a day of it in virtual time. A renewal
//! cannot happen while offline anyway.

use std::collections::HashMap;
use std::time::Duration;

use super::leader::Intent;
use super::*;

/// The engine's tick, which these counts are in.
pub const TICK: Duration = Duration::from_secs(5);

/// How long a member keeps its leaf keys before it renews them by default (RFC 9420, section
/// 3.2: hours or days apart, daily for members that send nothing).
pub const DEFAULT_RENEW_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The least time between two renewals of one member that a leader commits: a member that
/// proposes faster (a hostile one) is not followed, so nobody can make the room commit more
/// than once a minute for them.
pub const MIN_RENEWAL_GAP: Duration = Duration::from_secs(60);

/// A leaf whose keys are older than this many renewal periods is stale: `/who` marks it, and
/// its owner is told (its renewals are not being committed).
pub const STALE_AFTER_PERIODS: u32 = 3;

pub(super) fn ticks(duration: Duration) -> u32 {
    u32::try_from(duration.as_secs() / TICK.as_secs()).unwrap_or(u32::MAX).max(1)
}

/// What a member knows about the age of the room's leaves.
#[derive(Debug, Default)]
pub(super) struct LeafAges {
    /// Ticks since our own leaf's keys last changed (or since we joined).
    pub(super) ours: u32,
    /// Ticks since each other member's leaf last changed, as far as we saw (since we joined,
    /// for those already there).
    pub(super) others: HashMap<String, u32>,
    /// Ticks since each other member's last renewal that a commit covered (not since it
    /// joined): the leader's bound on how often one member may renew.
    pub(super) since_renewal: HashMap<String, u32>,
    /// Whether our user asked for a renewal (`/rekey`) that has not happened yet.
    pub(super) wanted: bool,
    /// The epoch in which we proposed our renewal, while no commit covered it.
    pub(super) proposed_in: Option<u64>,
    /// Ticks since that proposal: one that no commit covered after [`MIN_RENEWAL_GAP`] (the
    /// leader found it too soon, or never heard it) is made again.
    pub(super) proposed_ticks: u32,
    /// Whether our user was told that our keys are stale (once, until they change).
    pub(super) stale_told: bool,
}

impl LeafAges {
    pub(super) fn age_of(&self, nick: &str, me: &str) -> u32 {
        if nick == me { self.ours } else { self.others.get(nick).copied().unwrap_or(0) }
    }
}

impl Room {
    /// How long members keep their leaf keys here before renewing them.
    pub fn set_renew_after(&mut self, after: Duration) {
        self.renew_after_ticks = ticks(after);
    }

    /// `/rekey`: renew our leaf keys now. As leader, a commit with an update path does it;
    /// otherwise we propose an update of our leaf for the leader to commit.
    pub fn request_renewal(&mut self, me: &str, out: &mut Outbox) -> Result<(), RoomError> {
        let Some(membership) = self.membership() else { return Err(RoomError::NotMember) };
        membership.ages.wanted = true;
        self.renew(me, out);
        Ok(())
    }

    /// The keepalive's tick: leaves grow older; ours is renewed when due or asked for.
    pub(super) fn renewal_tick(&mut self, me: &str, out: &mut Outbox) {
        let renew_after = self.renew_after_ticks;
        let room = self.name.clone();
        let Some(membership) = self.membership() else { return };
        let ages = &mut membership.ages;
        ages.ours = ages.ours.saturating_add(1);
        ages.others.values_mut().for_each(|age| *age = age.saturating_add(1));
        ages.since_renewal.values_mut().for_each(|age| *age = age.saturating_add(1));
        ages.proposed_ticks = ages.proposed_ticks.saturating_add(1);
        if ages.ours >= renew_after.saturating_mul(STALE_AFTER_PERIODS) && !ages.stale_told {
            ages.stale_told = true;
            let hours = u64::from(ages.ours) * TICK.as_secs() / 3600;
            out.events.push(Event::Room { room, notice: RoomNotice::StaleKeys { hours } });
        }
        if ages.ours >= renew_after || ages.wanted {
            self.renew(me, out);
        }
    }

    /// Renews our leaf: the leader commits, a member proposes (once per epoch: a proposal
    /// the epoch moved past is void, and made again).
    fn renew(&mut self, me: &str, out: &mut Outbox) {
        let leader = self.is_leader(me);
        let room = self.name.clone();
        let Some(membership) = self.membership() else { return };
        if leader {
            if !membership.intents.iter().any(|intent| matches!(intent, Intent::Renew)) {
                membership.intents.push_back(Intent::Renew);
            }
            return self.drive_commits(me, out);
        }
        let epoch = membership.group.epoch();
        let waiting = membership.ages.proposed_ticks < ticks(MIN_RENEWAL_GAP);
        if membership.ages.proposed_in == Some(epoch)
            && membership.group.renewal_proposed()
            && waiting
        {
            return;
        }
        // Not in the middle of a vote: the proposal would be for an epoch about to end.
        if membership.group.has_staged_commit() || membership.group.has_pending_commit() {
            return;
        }
        match membership.group.propose_renewal() {
            Ok(message) => {
                membership.ages.proposed_in = Some(epoch);
                membership.ages.proposed_ticks = 0;
                out.frames.push(ClientFrame::Application { room, message });
            }
            Err(error) => out.warn(&room, format!("could not propose new keys: {error}")),
        }
    }

    /// Another member's proposal to renew its leaf: every member keeps it for the commit
    /// that covers it; the leader commits it, unless that member renewed less than
    /// [`MIN_RENEWAL_GAP`] ago.
    pub(super) fn incoming_renewal(
        &mut self,
        me: &str,
        from: &str,
        message: &[u8],
        out: &mut Outbox,
    ) {
        let leader = self.is_leader(me);
        let room = self.name.clone();
        let Some(membership) = self.membership() else { return };
        let nick = match membership.group.receive_renewal(message) {
            Ok(nick) => nick,
            Err(error) => {
                return out
                    .warn(&room, format!("refused new keys claimed to be from {from}: {error}"));
            }
        };
        if !leader {
            return;
        }
        let since = membership.ages.since_renewal.get(&nick).copied().unwrap_or(u32::MAX);
        if since < ticks(MIN_RENEWAL_GAP) {
            membership.group.drop_renewal_of(&nick);
            return out.warn(
                &room,
                format!("{nick} asked for new keys again within a minute; not committed"),
            );
        }
        if !membership.intents.iter().any(|intent| matches!(intent, Intent::Renew)) {
            membership.intents.push_back(Intent::Renew);
        }
        self.drive_commits(me, out);
    }

    /// A commit was merged: the leaves it changed (`fresh`: added, renewed at their owner's
    /// request, or the committer's by its update path) start their age anew; `renewals` are
    /// those renewed at their owner's request.
    pub(super) fn leaves_renewed(&mut self, me: &str, fresh: &[String], renewals: &[String]) {
        let Some(membership) = self.membership() else { return };
        for nick in renewals {
            membership.ages.since_renewal.insert(nick.clone(), 0);
        }
        for nick in fresh {
            if nick == me {
                let ages = &mut membership.ages;
                ages.ours = 0;
                ages.wanted = false;
                ages.proposed_in = None;
                ages.stale_told = false;
            } else {
                membership.ages.others.insert(nick.clone(), 0);
            }
        }
    }

    /// How many ticks old a member's leaf keys are, as far as we know.
    pub fn leaf_age(&self, me: &str, nick: &str) -> Option<Duration> {
        let membership = match &self.phase {
            Phase::Member(membership) => membership,
            _ => return None,
        };
        let ticks = membership.ages.age_of(nick, me);
        Some(TICK * ticks)
    }

    /// Whether a member's leaf keys are stale: older than [`STALE_AFTER_PERIODS`] renewals.
    pub fn leaf_is_stale(&self, me: &str, nick: &str) -> bool {
        let limit = self.renew_after_ticks.saturating_mul(STALE_AFTER_PERIODS);
        match &self.phase {
            Phase::Member(membership) => membership.ages.age_of(nick, me) >= limit,
            _ => false,
        }
    }
}
