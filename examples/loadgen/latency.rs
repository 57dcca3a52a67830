//! `loadgen latency`: end-to-end latency between real clients: from `send_text` at one
//! member to `Event::Message` (decrypted and verified by MLS) at each of the others. Messages
//! are paced, so this measures latency, not queueing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use chatter::client::{Client, ClientOptions, Event, Events};
use chatter::secret::Secret;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::common::{CLIENTS_PER_ADDRESS, RelayTarget, now_nanos};
use crate::histogram::{Histogram, millis};

const ROOM: &str = "latency";
const PASSWORD: &str = "loadgen latency password";
/// The target.
const TARGET_P99: Duration = Duration::from_millis(2);
/// How long receivers wait for stragglers once the last message is sent.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// A stamp slot not yet written.
const NOT_SENT: u64 = u64::MAX;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Members of the room (real clients, from 127.0.0.1: at most the per-address cap).
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Messages in all; member k % members sends message k.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Microseconds between two messages.
    #[arg(long, default_value_t = 2000)]
    interval_us: u64,
    /// Only the first member sends (instead of taking turns).
    #[arg(long)]
    one_sender: bool,
    /// Rounds, each with a fresh relay and room; with more than one the verdict uses the
    /// median p99, since a shared machine's capacity drifts.
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    #[command(flatten)]
    target: RelayTarget,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !(2..=CLIENTS_PER_ADDRESS).contains(&args.members) {
        bail!("--members must be 2 to {CLIENTS_PER_ADDRESS} (the relay's per-address cap)");
    }
    if args.messages == 0 || args.interval_us == 0 || args.repeats == 0 {
        bail!("--messages, --interval-us and --repeats must be positive");
    }
    let expected: u64 = (args.members as u64 - 1) * args.messages as u64;
    let mut p99s = Vec::new();
    let mut all_delivered = true;
    for round in 1..=args.repeats {
        if args.repeats > 1 {
            print!("round {round} of {}: ", args.repeats);
        }
        let latencies = run_round(&args).await?;
        p99s.push(latencies.quantile(0.99));
        all_delivered &= latencies.count() == expected;
    }
    p99s.sort();
    let p99 = p99s[p99s.len() / 2];
    println!(
        "{}p99 {} (target ≤ {}: {})",
        if args.repeats > 1 { "median " } else { "" },
        millis(p99),
        millis(TARGET_P99),
        if p99 <= TARGET_P99 && all_delivered { "met" } else { "NOT met" }
    );
    Ok(())
}

/// One round: a relay, a room of `--members` engines, the messages; returns the latencies.
async fn run_round(args: &Args) -> anyhow::Result<Histogram> {
    let (code, relay) = args.target.start().await?;
    let servers = args.target.servers(&relay);

    let mut clients = Vec::new();
    let mut all_events = Vec::new();
    for member in 0..args.members {
        let nick = format!("m{member}");
        let server = servers[member % servers.len()].to_string();
        let options = ClientOptions { server, nick: nick.clone(), access_code: code.clone() };
        let (client, events) = chatter::client::connect(options)
            .await
            .with_context(|| format!("connecting {nick}"))?;
        client
            .join(ROOM, Secret::from(PASSWORD))
            .await
            .with_context(|| format!("{nick} joining"))?;
        clients.push(client);
        all_events.push(events);
    }
    // Let every member process the last commit before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for events in &mut all_events {
        while events.try_recv().is_some() {}
    }

    let sent_at: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.messages).map(|_| AtomicU64::new(NOT_SENT)).collect());
    let interval = Duration::from_micros(args.interval_us);
    let sending_time = interval * args.messages as u32;
    let deadline = Instant::now() + sending_time + DRAIN_GRACE + Duration::from_secs(5);
    let mut receivers = JoinSet::new();
    for (member, events) in all_events.into_iter().enumerate() {
        let expected = (0..args.messages)
            .filter(|k| sender_of(*k, args.members, args.one_sender) != member)
            .count();
        receivers.spawn(receive(events, Arc::clone(&sent_at), expected, deadline));
    }

    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failures = 0;
    for message in 0..args.messages {
        ticks.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        let client: &Client = &clients[sender_of(message, args.members, args.one_sender)];
        sent_at[message].store(now_nanos(), Ordering::Release);
        if client.send_text(&format!("lat {message}")).await.is_err() {
            failures += 1;
        }
    }

    let mut latencies = Histogram::default();
    let mut problems = 0;
    while let Some(joined) = receivers.join_next().await {
        let (histogram, warnings) = joined?;
        latencies.merge(&histogram);
        problems += warnings;
    }
    let expected: u64 = (args.members as u64 - 1) * args.messages as u64;
    println!(
        "{} members, {} messages every {} µs: {} of {expected} deliveries; latency {}",
        args.members,
        args.messages,
        args.interval_us,
        latencies.count(),
        latencies.summary()
    );
    if failures > 0 || problems > 0 {
        println!("  ({failures} sends failed, {problems} warnings or errors at receivers)");
    }
    for client in &clients {
        let _ = client.quit().await;
    }
    relay.stop().await;
    Ok(latencies)
}

fn sender_of(message: usize, members: usize, one_sender: bool) -> usize {
    if one_sender { 0 } else { message % members }
}

/// Records the latency of every message a member shows, until it has them all or time is up.
async fn receive(
    mut events: Events,
    sent_at: Arc<Vec<AtomicU64>>,
    expected: usize,
    deadline: Instant,
) -> (Histogram, u64) {
    let mut latencies = Histogram::default();
    let mut problems = 0;
    let give_up = tokio::time::sleep_until(deadline);
    tokio::pin!(give_up);
    while (latencies.count() as usize) < expected {
        let event = tokio::select! {
            event = events.recv() => event,
            () = &mut give_up => break,
        };
        let now = now_nanos();
        match event {
            Some(Event::Message { text, .. }) => {
                let stamp = text
                    .strip_prefix("lat ")
                    .and_then(|number| number.parse::<usize>().ok())
                    .and_then(|number| sent_at.get(number))
                    .map(|slot| slot.load(Ordering::Acquire));
                if let Some(stamp) = stamp.filter(|stamp| *stamp != NOT_SENT) {
                    latencies.record(now.saturating_sub(stamp));
                }
            }
            Some(Event::Warning { text, .. }) => {
                eprintln!("receiver: {text}");
                problems += 1;
            }
            Some(Event::Status(notice)) => {
                eprintln!("receiver: {notice:?}");
                problems += 1;
            }
            Some(_) => {}
            None => break,
        }
    }
    (latencies, problems)
}
