//! `loadgen join`: how long a joiner waits before it can send, in a room of N members.
//!
//! The leader is a real client engine: it creates the room, checks every joiner's password
//! and commits every add. The other members are raw clients that run the joiner's side of
//! admission themselves (a real SPAKE2 exchange and a real KeyPackage, so the leader's work
//! is real) and then act as members do (protocol 5): each processes its Welcome into an MLS
//! group, verifies every later commit (`RoomGroup::stage_commit`), answers it with a yes vote
//! signed inside the group, and merges it on `CommitConfirmed`. They do not check the votes a
//! confirmation carries (the leader, a real engine, does, and merges only on a signed
//! majority). The measured joiner is a real engine again; `Client::join` returns once the
//! Welcome is processed, when it can send.
//!
//! The relay confirms a commit once more than half of its electorate voted yes; the leader
//! then checks those signed votes, merges, and only then sends the joiner its Welcome
//! (protocol 6). So the joiner's wait includes a majority's verification of its add and the
//! leader's count and merge. Here all of them share this machine's cores; real members verify
//! in parallel, each on its own machine. The raw members run on a runtime of their own
//! (`--member-threads`), so the leader and the joiner take turns with them on the cores
//! rather than wait in one task queue behind all of their checks and merges.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chatter::admission::JoinerAdmission;
use chatter::client::ballot::commit_hash;
use chatter::client::{Client, ClientOptions, Event, Events, RawClient};
use chatter::mls::{MlsMember, RoomEvent, RoomGroup, RoomSuite};
use chatter::proto::{self, ClientFrame, GroupMessage, ServerFrame, VoteStatement};
use chatter::secret::Secret;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::common::{RelayTarget, connect_raw, raise_fd_limit};
use crate::histogram::millis;
use crate::rooms::expect;

const ROOM: &str = "bench";
const PASSWORD: &str = "loadgen room password";

/// How long one raw member may wait for its Welcome (admissions queue at the leader).
const WELCOME_TIMEOUT: Duration = Duration::from_secs(120);

/// How often a draining member pings: well within the relay's idle timeout (120 s).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How long the room may take to settle (every member merged the last commit) before a
/// measured join starts anyway.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Frames a draining member reads at most (about a commit per later member, and notices).
const MAX_DRAINED_FRAMES: u64 = 10_000_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Members of the room before the measured joiner (the leader included).
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Measured joins (a fresh joiner each time).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Raw members in admission at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Give up building the room after this long.
    #[arg(long, default_value_t = 900)]
    build_timeout_secs: u64,
    /// Worker threads of a runtime of the raw members' own; 0 runs them on the load
    /// generator's runtime, with the relay, the leader and the joiner (the method before
    /// 2026-12-06).
    #[arg(long, default_value_t = 2)]
    member_threads: usize,
    /// The leader creates the room with the post-quantum suite (X-Wing), as `chatter --pq`;
    /// every member then makes its KeyPackage for that suite.
    #[arg(long)]
    pq: bool,
    #[command(flatten)]
    target: RelayTarget,
}

/// The targets: members → milliseconds.
fn target_for(members: usize) -> Option<Duration> {
    match members {
        0..=10 => Some(Duration::from_millis(20)),
        11..=100 => Some(Duration::from_millis(50)),
        101..=1000 => Some(Duration::from_millis(500)),
        _ => None,
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.members < 1 || args.repeats < 1 || args.concurrency < 1 {
        bail!("--members, --repeats and --concurrency must be at least 1");
    }
    raise_fd_limit(2 * args.members as u64 + 256)?;
    // On a runtime of their own, the raw members' checks and merges take turns with the
    // leader's and the joiner's work on the cores as threads do; on one shared runtime the
    // leader's next step waited in the queue behind all of theirs, which a room of machines
    // never does.
    let member_runtime = match args.member_threads {
        0 => None,
        threads => Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("raw-members")
                .enable_all()
                .build()?,
        ),
    };
    let members_on = member_runtime
        .as_ref()
        .map_or_else(tokio::runtime::Handle::current, |runtime| runtime.handle().clone());
    let measured = measure(&args, &members_on).await;
    if let Some(runtime) = member_runtime {
        // Its tasks have ended (or are abandoned with a failed run); a runtime may not be
        // dropped (which blocks) inside another, which would hide the run's error in a panic.
        runtime.shutdown_background();
    }
    measured
}

/// Builds the room on `members_on` and measures the joins.
async fn measure(args: &Args, members_on: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let (code, relay) = args.target.start().await?;
    let server = relay.address();

    let (leader, leader_events) = engine_client(server, &code, "leader").await?;
    if args.pq {
        leader.set_room_suite(RoomSuite::PostQuantum);
    }
    let (departures_sender, mut departures) = mpsc::unbounded_channel();
    let watching = tokio::spawn(watch_leader(leader_events, departures_sender));
    leader.join(ROOM, Secret::from(PASSWORD)).await.context("creating the room")?;

    let stop = CancellationToken::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.build_timeout_secs);
    let staged = Arc::new(AtomicUsize::new(0));
    let mut drains = build_room(args, members_on, server, &code, &stop, deadline, &staged).await?;
    let built = started.elapsed();
    let view = leader.members().await?;
    let members = view.members.len();
    let suite = view.suite.map_or("unknown", RoomSuite::name);
    println!("room of {members} members ({suite}) built in {:.1} s", built.as_secs_f64());
    if members != args.members {
        println!("  (asked for {}: some members were disconnected)", args.members);
    }

    let mut times = Vec::new();
    for attempt in 0..args.repeats {
        settle(&staged).await;
        let nick = format!("joiner{attempt}");
        let (joiner, joiner_events) = engine_client(server, &code, &nick).await?;
        let began = Instant::now();
        joiner
            .join(ROOM, Secret::from(PASSWORD))
            .await
            .with_context(|| format!("{nick} joining"))?;
        let took = began.elapsed();
        println!("  {nick}: can send after {}", millis(took));
        times.push(took);
        joiner.quit().await?;
        drop(joiner_events);
        // The leader commits the joiner's removal; wait for it so the next join meets a
        // room of the same size and a leader with nothing queued.
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(left) = departures.recv().await {
                if left == nick {
                    return true;
                }
            }
            false
        })
        .await;
        if !matches!(waited, Ok(true)) {
            println!("  (the leader did not report {nick}'s removal in time)");
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    let target = target_for(members);
    println!(
        "join into {members} members: median {} (min {}, max {}, {} runs){}",
        millis(median),
        millis(times[0]),
        millis(times[times.len() - 1]),
        times.len(),
        target.map_or(String::new(), |target| format!(
            "; target ≤ {}: {}",
            millis(target),
            if median <= target { "met" } else { "NOT met" }
        ))
    );

    stop.cancel();
    while drains.join_next().await.is_some() {}
    let _ = leader.quit().await;
    watching.abort();
    relay.stop().await;
    Ok(())
}

/// Waits until no raw member holds a staged commit (all merged the last one), so that a
/// measured join does not share the cores with the merges of the commit before it.
async fn settle(staged: &AtomicUsize) {
    let settled = tokio::time::timeout(SETTLE_TIMEOUT, async {
        while staged.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    if settled.await.is_err() {
        println!("  (members still held a commit after {SETTLE_TIMEOUT:?})");
    }
}

async fn engine_client(
    server: SocketAddr,
    code: &Secret,
    nick: &str,
) -> anyhow::Result<(Client, Events)> {
    let options =
        ClientOptions { server: server.to_string(), nick: nick.into(), access_code: code.clone() };
    chatter::client::connect(options).await.with_context(|| format!("connecting {nick}"))
}

/// Forwards the nicknames the leader sees leave (once their removal is committed).
async fn watch_leader(mut events: Events, departures: mpsc::UnboundedSender<String>) {
    while let Some(event) = events.recv().await {
        match event {
            Event::Left { nick, .. } => {
                let _ = departures.send(nick);
            }
            Event::Warning { text, .. } => eprintln!("leader: {text}"),
            Event::Status(notice) => eprintln!("leader: {notice:?}"),
            Event::Room { notice, .. } => eprintln!("leader: {notice:?}"),
            _ => {}
        }
    }
}

/// Admits `members - 1` raw members, `concurrency` at a time, on `members_on`, printing
/// progress; returns the tasks that drain them.
async fn build_room(
    args: &Args,
    members_on: &tokio::runtime::Handle,
    server: SocketAddr,
    code: &Secret,
    stop: &CancellationToken,
    deadline: Instant,
    staged: &Arc<AtomicUsize>,
) -> anyhow::Result<JoinSet<()>> {
    let permits = Arc::new(Semaphore::new(args.concurrency));
    let mut admissions = JoinSet::new();
    let mut drains = JoinSet::new();
    let total = args.members - 1;
    let mut admitted = 0;
    let mut last_report = Instant::now();
    let started = Instant::now();
    let mut next = 0;
    while admitted < total {
        if Instant::now() >= deadline {
            bail!(
                "room not built in {} s ({admitted} of {total} admitted)",
                args.build_timeout_secs
            );
        }
        while next < total && permits.available_permits() > 0 {
            let permit = Arc::clone(&permits).acquire_owned().await?;
            let (code, staged) = (code.clone(), Arc::clone(staged));
            let index = next;
            admissions.spawn_on(
                async move {
                    let member = raw_member(index, server, &code, staged).await;
                    drop(permit);
                    member.with_context(|| format!("member m{index}"))
                },
                members_on,
            );
            next += 1;
        }
        let Some(joined) = admissions.join_next().await else { break };
        let member = joined??;
        drains.spawn_on(drain(member, stop.clone(), deadline_after(deadline)), members_on);
        admitted += 1;
        if last_report.elapsed() >= Duration::from_secs(5) || admitted == total {
            println!(
                "  {admitted}/{total} members admitted ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    Ok(drains)
}

/// Drains run past the build deadline by at most this much (the measured joins).
fn deadline_after(build_deadline: Instant) -> Instant {
    build_deadline + Duration::from_secs(600)
}

/// A raw member once welcomed: its connection and its MLS group.
struct Member {
    nick: String,
    client: RawClient,
    group: RoomGroup,
    /// How many members hold a staged commit, this one included while it does.
    staged: Arc<AtomicUsize>,
}

impl Member {
    /// Drops the staged commit, if any, and says so in the shared count.
    fn discard(&mut self) {
        if self.group.has_staged_commit() {
            self.group.discard_staged_commit();
            self.staged.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// What the member answers `frame` with, as a real member would but for checking the
    /// votes of a confirmation: a signed yes to every commit it verified; a confirmed commit
    /// is merged, an aborted one dropped. An error ends the member.
    fn answer(&mut self, frame: ServerFrame) -> anyhow::Result<Option<ClientFrame>> {
        match frame {
            ServerFrame::Commit { room, commit, .. } => {
                // The relay puts one commit to the vote at a time; one still staged here was
                // settled in a frame this member never saw.
                self.discard();
                let epoch = self.group.stage_commit(&commit).context("verifying a commit")?.epoch;
                self.staged.fetch_add(1, Ordering::AcqRel);
                let statement = VoteStatement { epoch, commit: commit_hash(&commit), accept: true };
                let vote = self
                    .group
                    .encrypt_message(&proto::encode(&GroupMessage::Vote(statement)))
                    .context("signing a vote")?;
                Ok(Some(ClientFrame::CommitVote { room, epoch, accept: true, vote }))
            }
            ServerFrame::CommitConfirmed { .. } if self.group.has_staged_commit() => {
                let merged = self.group.merge_staged_commit();
                self.staged.fetch_sub(1, Ordering::AcqRel);
                let events = merged.context("merging a commit")?;
                if events.contains(&RoomEvent::SelfRemoved) {
                    bail!("removed from the room");
                }
                Ok(None)
            }
            ServerFrame::CommitAborted { .. } => {
                self.discard();
                Ok(None)
            }
            ServerFrame::Removed { reason, .. } => bail!("taken out of the room: {reason}"),
            ServerFrame::Goodbye { reason } => bail!("disconnected: {reason}"),
            _ => Ok(None),
        }
    }
}

/// Connects raw member `index`, runs the joiner's side of admission and processes the
/// Welcome; returns once the member is in the group.
async fn raw_member(
    index: usize,
    server: SocketAddr,
    code: &Secret,
    staged: Arc<AtomicUsize>,
) -> anyhow::Result<Member> {
    let nick = format!("m{index}");
    let mut client = connect_raw(index, server, code, &nick).await?;
    let (admission, pake_message) = JoinerAdmission::start(ROOM, &nick, PASSWORD.as_bytes());
    client.send(&ClientFrame::Join { room: ROOM.into(), pake_message }).await?;
    let ServerFrame::JoinPending { leader, .. } =
        expect(&mut client, "join pending", |f| matches!(f, ServerFrame::JoinPending { .. }))
            .await?
    else {
        unreachable!("expect returns only what it was asked for")
    };
    let reply = expect(&mut client, "admission reply", |f| {
        matches!(f, ServerFrame::AdmissionReply { .. } | ServerFrame::AdmissionRefused { .. })
    })
    .await?;
    let ServerFrame::AdmissionReply { pake_message, suite, .. } = reply else {
        bail!("refused: {reply:?}");
    };
    let identity = MlsMember::new(&nick)?;
    // For the room's suite, as the leader named it; its private keys live until the Welcome
    // is processed, as an engine's do.
    let key_package = identity.key_package_for_attempt(RoomSuite::from_id(suite)?)?;
    let finish = admission.finish(&leader, &pake_message, &key_package.bytes)?;
    client
        .send(&ClientFrame::AdmissionFinish {
            room: ROOM.into(),
            confirmation: finish.confirmation.to_vec(),
            sealed_key_package: finish.sealed_key_package,
        })
        .await?;
    let welcomed = tokio::time::timeout(WELCOME_TIMEOUT, async {
        loop {
            match client.recv().await? {
                ServerFrame::Welcome { message, .. } => return Ok(message),
                ServerFrame::AdmissionRefused { reason, .. } => bail!("refused: {reason}"),
                ServerFrame::Goodbye { reason } => bail!("disconnected: {reason}"),
                _ => {}
            }
        }
    });
    let welcome = welcomed.await.context("no welcome in time")??;
    let group = identity.join_room(&welcome).context("processing the welcome")?;
    drop(key_package);
    Ok(Member { nick, client, group, staged })
}

/// Answers frames as [`Member::answer`] says until stopped, so that every commit gets the
/// member's signed vote and the relay never counts the member as a stalled reader; pings now
/// and then, so it never counts it as idle.
async fn drain(mut member: Member, stop: CancellationToken, deadline: Instant) {
    answer_until(&mut member, stop, deadline).await;
    member.discard();
    // Said goodbye, as a client that exits does: a member that only dropped its link would
    // be kept away for the grace period, holding its nickname against the next scenario
    // (`examples/wan.sh` runs `latency` with the same nicknames right after).
    let _ = member.client.writer.write_frame(&ClientFrame::Quit).await;
}

/// The loop of [`drain`]: ends when stopped, at the deadline, or when the member fails.
async fn answer_until(member: &mut Member, stop: CancellationToken, deadline: Instant) {
    let deadline = tokio::time::Instant::from_std(deadline);
    let mut keepalive = tokio::time::interval(KEEPALIVE_INTERVAL);
    for _ in 0..MAX_DRAINED_FRAMES {
        tokio::select! {
            frame = member.client.reader.read_frame::<ServerFrame>() => {
                let Ok(Some(frame)) = frame else { return };
                let reply = match member.answer(frame) {
                    Ok(reply) => reply,
                    Err(error) => return eprintln!("{}: {error:#}", member.nick),
                };
                if let Some(reply) = reply
                    && member.client.writer.write_frame(&reply).await.is_err()
                {
                    return;
                }
            }
            _ = keepalive.tick() => {
                if member.client.writer.write_frame(&ClientFrame::Ping).await.is_err() {
                    return;
                }
            }
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
}
