//! `loadgen soak`: real engine clients in password rooms for a while, with churn (members
//! leave and rejoin, quit and come back, or vanish without a word), every message carrying
//! its sender's sequence number, checked by every receiver. Reports messages lost,
//! duplicated and reordered among members present, join failures, and the relay's resident
//! memory over time (the relay runs as its own `chatter-server` process).
//!
//! What counts as lost: a receiver that saw message `n` of a sender and stayed in the room
//! must see `n + 1` next, since a sender only sends while in its room. A receiver's record
//! of a sender starts afresh whenever the receiver (re)joins.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use chatter::client::{Client, ClientOptions, ConnectionEvent, Event, Events};
use chatter::secret::Secret;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::common::raise_fd_limit;
use crate::idle::{default_server_binary, resident_bytes, start_server, stop_server};

const PASSWORD: &str = "loadgen soak password";
/// How long receivers wait for messages in flight once sending stops.
const DRAIN: Duration = Duration::from_secs(3);
/// How long a client whose connect or join failed waits before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long one connect or join may take before it counts as failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Engine clients (each holds one connection and one room at a time).
    #[arg(long, default_value_t = 40)]
    clients: usize,
    /// Password rooms; client i lives in room i % rooms.
    #[arg(long, default_value_t = 4)]
    rooms: usize,
    /// How long the soak runs, in seconds (then a short drain).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Milliseconds between two messages of one client (a human rate; jittered ±50%).
    #[arg(long, default_value_t = 2000)]
    message_interval_ms: u64,
    /// Milliseconds between two churn events (one random client each).
    #[arg(long, default_value_t = 1000)]
    churn_interval_ms: u64,
    /// Seconds between two readings of the relay's resident memory.
    #[arg(long, default_value_t = 60)]
    rss_every: u64,
    /// The relay binary (default: `chatter-server` beside this build's examples).
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

/// What one churn event does to a client.
#[derive(Debug, Clone, Copy)]
enum Churn {
    /// `/leave`, then `/join` again.
    Rejoin,
    /// `/quit`, then connect again under a new nickname.
    Quit,
    /// Drop the connection without a word (as a killed client would), then connect again.
    Drop,
}

/// Counters every client task adds to.
#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    received: AtomicU64,
    lost: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    join_failures: AtomicU64,
    send_failures: AtomicU64,
    churns: AtomicU64,
    /// Messages receivers were told they missed (`Event::Gap`), and lines senders were told
    /// were not sent or may not have been (`ConnectionEvent::NotSent`): a loss with either
    /// notice is not silent.
    told_missed: AtomicU64,
    told_not_sent: AtomicU64,
}

impl Totals {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.clients < 2 || args.rooms == 0 || args.rooms > args.clients {
        bail!("need at least 2 clients and 1 to --clients rooms");
    }
    if args.seconds == 0 || args.message_interval_ms == 0 || args.churn_interval_ms == 0 {
        bail!("--seconds, --message-interval-ms and --churn-interval-ms must be positive");
    }
    raise_fd_limit(args.clients as u64 * 2 + 256)?;
    let code = Secret::from("loadgen soak");
    let binary = match &args.server_bin {
        Some(path) => path.clone(),
        None => default_server_binary()?,
    };
    // Every engine client comes from 127.0.0.1, so the per-address cap and the budget of
    // handshakes in progress (all clients connect at once) are lifted.
    let cap = (args.clients * 2).to_string();
    let budget = (args.clients * 10).to_string();
    let limits = ["--max-clients-per-ip", &cap, "--preauth-budget", &budget];
    let (mut server, address) =
        start_server(&binary, &code, &[&["--no-report"], &limits[..]].concat()).await?;
    let pid = server.id().context("the relay has no pid")?;
    let totals = Arc::new(Totals::default());
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(args.seconds);

    let mut tasks = JoinSet::new();
    let mut churn_senders = Vec::new();
    for slot in 0..args.clients {
        let (churn_sender, churns) = mpsc::unbounded_channel();
        churn_senders.push(churn_sender);
        let member = Member {
            slot,
            room: format!("soak{}", slot % args.rooms),
            server: address.to_string(),
            code: code.clone(),
            interval: Duration::from_millis(args.message_interval_ms),
            totals: Arc::clone(&totals),
        };
        tasks.spawn(member.run(churns, stop_at));
    }

    let mut rss = vec![(0, resident_bytes(pid)?)];
    let mut churn_ticks = tokio::time::interval(Duration::from_millis(args.churn_interval_ms));
    let mut rss_ticks = tokio::time::interval(Duration::from_secs(args.rss_every));
    rss_ticks.tick().await;
    // Let everyone join before the churn starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while Instant::now() < stop_at {
        tokio::select! {
            _ = churn_ticks.tick() => {
                let (slot, kind) = {
                    let mut rng = rand::thread_rng();
                    let kind = match rng.gen_range(0..3) {
                        0 => Churn::Rejoin,
                        1 => Churn::Quit,
                        _ => Churn::Drop,
                    };
                    (rng.gen_range(0..args.clients), kind)
                };
                let _ = churn_senders[slot].send(kind);
            }
            _ = rss_ticks.tick() => {
                rss.push((started.elapsed().as_secs(), resident_bytes(pid)?));
            }
            () = tokio::time::sleep_until(stop_at) => {}
        }
    }
    drop(churn_senders);
    while let Some(joined) = tasks.join_next().await {
        joined?;
    }
    rss.push((started.elapsed().as_secs(), resident_bytes(pid)?));
    let client_rss = own_resident_bytes().unwrap_or(0);
    stop_server(&mut server).await;

    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    println!(
        "{} clients in {} password rooms for {} s, a message every {} ms each, a churn every {} ms",
        args.clients, args.rooms, args.seconds, args.message_interval_ms, args.churn_interval_ms
    );
    println!(
        "sent {}, received {}; lost {}, duplicated {}, reordered {}; join failures {}, send \
         failures {}, churn events {}",
        load(&totals.sent),
        load(&totals.received),
        load(&totals.lost),
        load(&totals.duplicated),
        load(&totals.reordered),
        load(&totals.join_failures),
        load(&totals.send_failures),
        load(&totals.churns),
    );
    println!(
        "told: receivers of {} missed messages, senders of {} lines not sent",
        load(&totals.told_missed),
        load(&totals.told_not_sent),
    );
    let readings: Vec<String> =
        rss.iter().map(|(at, bytes)| format!("{at} s: {} KiB", bytes / 1024)).collect();
    println!("relay RSS: {}", readings.join(", "));
    println!(
        "load generator RSS (all clients): {} KiB, {} KiB a client",
        client_rss / 1024,
        client_rss / 1024 / args.clients as u64
    );
    Ok(())
}

fn own_resident_bytes() -> anyhow::Result<u64> {
    resident_bytes(std::process::id())
}

/// One client slot: connects, joins its room, sends at a human rate, checks what it
/// receives, and obeys churn commands until the end.
struct Member {
    slot: usize,
    room: String,
    server: String,
    code: Secret,
    interval: Duration,
    totals: Arc<Totals>,
}

/// What a client does next.
enum Step {
    Event(Option<Event>),
    Send,
    Churn(Option<Churn>),
    End,
}

/// A connected client and what it has seen of each sender since it (re)joined.
struct Session {
    client: Client,
    events: Events,
    nick: String,
    next_seq: u64,
    last_seen: HashMap<String, u64>,
}

impl Member {
    async fn run(self, mut churns: mpsc::UnboundedReceiver<Churn>, stop_at: Instant) {
        let mut generation = 0;
        let mut session = None;
        let drain_until = stop_at + DRAIN;
        let mut next_send = Instant::now() + self.jitter();
        loop {
            if session.is_none() && Instant::now() < stop_at {
                session = self.connect(generation).await;
                generation += 1;
            }
            let Some(current) = session.as_mut() else {
                if Instant::now() >= stop_at {
                    return;
                }
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            };
            let sending = Instant::now() < stop_at;
            let step = tokio::select! {
                event = current.events.recv() => Step::Event(event),
                () = tokio::time::sleep_until(next_send), if sending => Step::Send,
                churn = churns.recv(), if sending => Step::Churn(churn),
                () = tokio::time::sleep_until(drain_until) => Step::End,
            };
            match step {
                Step::Event(Some(event)) => self.check(current, event),
                Step::Event(None) => session = None,
                Step::Send => {
                    let text = format!("soak {} {}", current.nick, current.next_seq);
                    match current.client.send_text(&text).await {
                        Ok(()) => {
                            current.next_seq += 1;
                            Totals::add(&self.totals.sent, 1);
                        }
                        Err(_) => Totals::add(&self.totals.send_failures, 1),
                    }
                    next_send = Instant::now() + self.jitter();
                }
                Step::Churn(None) => {}
                Step::Churn(Some(churn)) => {
                    Totals::add(&self.totals.churns, 1);
                    match churn {
                        Churn::Rejoin => {
                            let _ = current.client.leave(None).await;
                            // What arrived before we left (the engine had it when the relay
                            // said we left) is checked against what we saw then; the record
                            // starts afresh only for what comes after the rejoin. Clearing
                            // it first counted the lines sent while we were out as lost.
                            while let Some(event) = current.events.try_recv() {
                                self.check(current, event);
                            }
                            current.last_seen.clear();
                            if !self.join(&current.client).await {
                                session = None;
                            }
                        }
                        Churn::Quit => {
                            let _ = current.client.quit().await;
                            session = None;
                        }
                        Churn::Drop => session = None,
                    }
                }
                Step::End => {
                    let _ = current.client.quit().await;
                    return;
                }
            }
        }
    }

    fn jitter(&self) -> Duration {
        self.interval.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
    }

    async fn connect(&self, generation: usize) -> Option<Session> {
        let nick = format!("c{}g{}", self.slot, generation);
        let options = ClientOptions {
            server: self.server.clone(),
            nick: nick.clone(),
            access_code: self.code.clone(),
        };
        let connected = tokio::time::timeout(STEP_TIMEOUT, chatter::client::connect(options)).await;
        let Ok(Ok((client, events))) = connected else {
            Totals::add(&self.totals.join_failures, 1);
            return None;
        };
        if !self.join(&client).await {
            return None;
        }
        Some(Session { client, events, nick, next_seq: 0, last_seen: HashMap::new() })
    }

    async fn join(&self, client: &Client) -> bool {
        let joined =
            tokio::time::timeout(STEP_TIMEOUT, client.join(&self.room, Secret::from(PASSWORD)))
                .await;
        let ok = matches!(joined, Ok(Ok(())));
        if !ok {
            Totals::add(&self.totals.join_failures, 1);
        }
        ok
    }

    /// Checks one event against the sender's sequence.
    fn check(&self, session: &mut Session, event: Event) {
        let text = match event {
            Event::Message { text, .. } => text,
            Event::Gap { missed, .. } => return Totals::add(&self.totals.told_missed, missed),
            Event::Connection(ConnectionEvent::NotSent { texts, .. }) => {
                return Totals::add(&self.totals.told_not_sent, texts.len() as u64);
            }
            _ => return,
        };
        let Some((sender, seq)) = text
            .strip_prefix("soak ")
            .and_then(|rest| rest.split_once(' '))
            .and_then(|(sender, seq)| Some((sender.to_owned(), seq.parse::<u64>().ok()?)))
        else {
            return;
        };
        Totals::add(&self.totals.received, 1);
        match session.last_seen.get(&sender).copied() {
            Some(last) if seq == last => Totals::add(&self.totals.duplicated, 1),
            Some(last) if seq < last => Totals::add(&self.totals.reordered, 1),
            Some(last) => {
                Totals::add(&self.totals.lost, seq - last - 1);
                session.last_seen.insert(sender, seq);
            }
            None => {
                session.last_seen.insert(sender, seq);
            }
        }
    }
}
