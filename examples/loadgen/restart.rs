//! `loadgen restart`: how fast a relay's clients are back in their rooms after it restarts,
//! and how hard they hit it on the way back.
//!
//! The relay is the real `chatter-server` binary, so the signal is real: `--clients` engine
//! clients (from 127.0.0.1, whose connection cap the relay is started with raised) in rooms
//! of `--room-size`, built through the real admission flow. Then, for each downtime in
//! `--downtimes` and each signal in `--signals`: the relay is stopped (SIGTERM: it tells every
//! client it is restarting; SIGKILL: nobody is told), stays down that long, and is started
//! again on the same port. Measured from the moment it says it listens: when 95 % and 100 %
//! of the clients show "back in the room, with the same group and keys", and how the new
//! sessions arrived (the most in any 100 ms, and the failed tries after it listened).
//!
//! Every wait is bounded: building the rooms by `--build-timeout-secs`, each return by the
//! downtime plus `--return-timeout-secs`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use chatter::client::{ClientOptions, ConnectionEvent, Event, Events};
use chatter::secret::Secret;
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::common::raise_fd_limit;
use crate::idle::{default_server_binary, start_server_on};

const PASSWORD: &str = "loadgen restart password";
/// The target: 95 % of the clients back within this long of the relay listening.
const TARGET: Duration = Duration::from_millis(1500);
/// Clients at most: every one holds an MLS member and a connection in this process.
const MAX_CLIENTS: usize = 2000;
/// The width of the buckets in which returns are counted.
const BUCKET: Duration = Duration::from_millis(100);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Engine clients, all from 127.0.0.1.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Members per room.
    #[arg(long, default_value_t = 10)]
    room_size: usize,
    /// Rooms built at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Downtimes to measure, in seconds, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10")]
    downtimes: Vec<u64>,
    /// How the relay is stopped: `term` (it tells its clients), `kill` (it does not).
    #[arg(long, value_delimiter = ',', default_value = "term,kill")]
    signals: Vec<String>,
    /// The relay binary (default: `chatter-server` beside this build's examples).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Give up building the rooms after this long.
    #[arg(long, default_value_t = 600)]
    build_timeout_secs: u64,
    /// Give up waiting for the clients this long after the relay listens again.
    #[arg(long, default_value_t = 90)]
    return_timeout_secs: u64,
}

/// What a client's watcher reports, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// An attempt failed and another is scheduled.
    Retry,
    /// A new session is registered (the relay accepted and authenticated it).
    Registered,
    /// Back in its room with the same group and keys.
    Back,
    /// The session ended: the run cannot go on.
    Ended,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !(2..=MAX_CLIENTS).contains(&args.clients) || !(2..=100).contains(&args.room_size) {
        bail!("--clients must be 2 to {MAX_CLIENTS}, --room-size 2 to 100");
    }
    if args.signals.iter().any(|signal| signal != "term" && signal != "kill") {
        bail!("--signals takes term and kill");
    }
    raise_fd_limit((args.clients as u64) * 2 + 256)?;
    let binary = match &args.server_bin {
        Some(binary) => binary.clone(),
        None => default_server_binary()?,
    };
    let code = Secret::from("loadgen");
    let relay_args = relay_args(args.clients);
    let relay_args: Vec<&str> = relay_args.iter().map(String::as_str).collect();
    let (mut relay, address) = start_server_on(&binary, "127.0.0.1:0", &code, &relay_args).await?;
    let server = address.to_string();

    let started = Instant::now();
    let clients = tokio::time::timeout(
        Duration::from_secs(args.build_timeout_secs),
        build_rooms(&args, &server, &code),
    )
    .await
    .context("building the rooms took too long")??;
    println!(
        "{} clients in {} rooms of {} in {:.1} s",
        clients.len(),
        args.clients.div_ceil(args.room_size),
        args.room_size,
        started.elapsed().as_secs_f64()
    );
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut handles = Vec::new();
    let mut watchers = JoinSet::new();
    for (index, (client, events)) in clients.into_iter().enumerate() {
        handles.push(client);
        watchers.spawn(watch(index, events, seen_tx.clone()));
    }
    drop(seen_tx);
    // Let the last commits and votes settle before the first stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while seen.try_recv().is_ok() {}

    for downtime in &args.downtimes {
        for signal in &args.signals {
            let downtime = Duration::from_secs(*downtime);
            stop(&mut relay, signal).await;
            let stopped = Instant::now();
            tokio::time::sleep(downtime).await;
            let (restarted, _) = start_server_on(&binary, &server, &code, &relay_args).await?;
            relay = restarted;
            let listening = Instant::now();
            let retries_before = drain_retries(&mut seen);
            let limit = Duration::from_secs(args.return_timeout_secs);
            let round = collect(&mut seen, args.clients, listening, limit).await?;
            report(signal, downtime, stopped, listening, retries_before, &round);
            // Let the re-formed rooms settle (votes, the relay's re-forming period).
            tokio::time::sleep(Duration::from_secs(3)).await;
            while seen.try_recv().is_ok() {}
        }
    }
    for client in &handles {
        let _ = tokio::time::timeout(Duration::from_secs(1), client.quit()).await;
    }
    watchers.abort_all();
    crate::idle::stop_server(&mut relay).await;
    Ok(())
}

/// The relay's flags: every client comes from 127.0.0.1, and the measurement is of the
/// return, not of the per-address limits or the rate limit.
fn relay_args(clients: usize) -> Vec<String> {
    let cap = (clients * 2).to_string();
    ["--max-clients-per-ip", &cap, "--preauth-budget", "1000000", "--no-report"]
        .into_iter()
        .chain(["--rate", "1000000", "--burst", "1000000", "--log-level", "error"])
        .map(str::to_owned)
        .collect()
}

/// Builds the rooms, `--concurrency` at a time; each room's members join one after another.
async fn build_rooms(
    args: &Args,
    server: &str,
    code: &Secret,
) -> anyhow::Result<Vec<(chatter::client::Client, Events)>> {
    let rooms = args.clients.div_ceil(args.room_size);
    let mut clients = Vec::with_capacity(args.clients);
    let mut building = JoinSet::new();
    let mut next_room = 0;
    while next_room < rooms || !building.is_empty() {
        while next_room < rooms && building.len() < args.concurrency {
            let members = args.room_size.min(args.clients - next_room * args.room_size);
            let (server, code, room) = (server.to_owned(), code.clone(), next_room);
            building.spawn(async move { build_room(&server, &code, room, members).await });
            next_room += 1;
        }
        if let Some(built) = building.join_next().await {
            clients.extend(built??);
        }
    }
    Ok(clients)
}

async fn build_room(
    server: &str,
    code: &Secret,
    room: usize,
    members: usize,
) -> anyhow::Result<Vec<(chatter::client::Client, Events)>> {
    let mut built = Vec::with_capacity(members);
    for member in 0..members {
        let options = ClientOptions {
            server: server.to_owned(),
            nick: format!("r{room}m{member}"),
            access_code: code.clone(),
        };
        let (client, events) = chatter::client::connect(options).await?;
        client
            .join(&format!("room{room}"), Secret::from(PASSWORD))
            .await
            .with_context(|| format!("joining room {room}"))?;
        built.push((client, events));
    }
    Ok(built)
}

/// Forwards what one client shows that the measurement needs, with the time it came.
async fn watch(
    index: usize,
    mut events: Events,
    seen: mpsc::UnboundedSender<(usize, Seen, Instant)>,
) {
    while let Some(event) = events.recv().await {
        let kind = match event {
            Event::Connection(ConnectionEvent::Reconnecting { .. }) => Seen::Retry,
            Event::Connection(ConnectionEvent::Reconnected { .. }) => Seen::Registered,
            Event::Notice { text, .. }
                if text.starts_with("back in the room, with the same group") =>
            {
                Seen::Back
            }
            Event::Disconnected(_) => Seen::Ended,
            _ => continue,
        };
        if seen.send((index, kind, Instant::now())).is_err() {
            return;
        }
    }
}

/// Stops the relay: SIGTERM (it tells its clients) or SIGKILL; waits for it to exit.
async fn stop(relay: &mut Child, signal: &str) {
    if signal == "kill" {
        let _ = relay.kill().await;
        return;
    }
    crate::idle::stop_server(relay).await;
}

/// Failed tries reported while the relay was down.
fn drain_retries(seen: &mut mpsc::UnboundedReceiver<(usize, Seen, Instant)>) -> usize {
    std::iter::from_fn(|| seen.try_recv().ok()).filter(|(_, kind, _)| *kind == Seen::Retry).count()
}

/// One return: when each client was registered and back, and the failed tries after the
/// relay listened.
struct Round {
    registered: Vec<Duration>,
    back: Vec<Duration>,
    retries_after: usize,
}

async fn collect(
    seen: &mut mpsc::UnboundedReceiver<(usize, Seen, Instant)>,
    clients: usize,
    listening: Instant,
    limit: Duration,
) -> anyhow::Result<Round> {
    let mut is_back = vec![false; clients];
    let mut round = Round { registered: Vec::new(), back: Vec::new(), retries_after: 0 };
    let deadline = listening + limit;
    while round.back.len() < clients {
        let Ok(next) = tokio::time::timeout_at(deadline, seen.recv()).await else {
            bail!("only {} of {clients} back within {limit:?}", round.back.len());
        };
        let Some((index, kind, at)) = next else { bail!("every watcher stopped") };
        let since = at.saturating_duration_since(listening);
        match kind {
            Seen::Retry => round.retries_after += 1,
            Seen::Registered => round.registered.push(since),
            Seen::Back if !is_back[index] => {
                is_back[index] = true;
                round.back.push(since);
            }
            Seen::Back => {}
            Seen::Ended => bail!("client {index}'s session ended"),
        }
    }
    Ok(round)
}

fn report(
    signal: &str,
    downtime: Duration,
    stopped: Instant,
    listening: Instant,
    retries_before: usize,
    round: &Round,
) {
    let mut back = round.back.clone();
    back.sort();
    let at = |fraction: f64| {
        let index = ((back.len() as f64 * fraction).ceil() as usize).saturating_sub(1);
        back.get(index).copied().unwrap_or_default()
    };
    let (p95, last) = (at(0.95), at(1.0));
    let mut buckets = vec![0usize; 1];
    for since in &round.registered {
        let bucket = (since.as_millis() / BUCKET.as_millis()) as usize;
        if buckets.len() <= bucket {
            buckets.resize(bucket + 1, 0);
        }
        buckets[bucket] += 1;
    }
    let peak = buckets.iter().copied().max().unwrap_or(0);
    let down = listening - stopped;
    println!(
        "SIG{} down {:.1} s (asked {} s): 95 % back {} ms, all {} back {} ms after it listened \
         (target 95 % ≤ {} ms: {}); sessions per 100 ms: peak {peak}, first 10: {:?}; \
         failed tries: {retries_before} while down, {} after it listened",
        signal.to_uppercase(),
        down.as_secs_f64(),
        downtime.as_secs(),
        p95.as_millis(),
        back.len(),
        last.as_millis(),
        TARGET.as_millis(),
        if p95 <= TARGET { "met" } else { "NOT met" },
        &buckets[..buckets.len().min(10)],
        round.retries_after
    );
}
