//! `loadgen resume`: how fast sessions come back.
//!
//! Two figures, each the median of `--rounds`:
//!
//! - *restart*: a room of `--members` real clients; the relay stops (as on SIGTERM: every
//!   client is told) and a new one listens on the same port. Measured from the new relay
//!   listening to the last member showing "back in the room" (its group re-formed on the
//!   empty relay, no key change).
//! - *backlog*: one member's link is cut (both ends see it close) while the others send
//!   `--backlog` messages; the link is restored after `--cut-ms`. Measured from the
//!   member's session resuming to the last missed message shown, and from the link's
//!   restoration to the same moment (this one includes the backoff's wait for the next try).
//!
//! Real time throughout: the backoff's jitter is part of what is measured.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use chatter::client::{Client, ClientOptions, ConnectionEvent, Event, Events};
use chatter::relay::{RateLimit, Relay, RelayConfig};
use chatter::secret::Secret;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::Instant;

const ROOM: &str = "resume";
const PASSWORD: &str = "loadgen resume password";
/// The target for both figures, on loopback.
const TARGET: Duration = Duration::from_secs(1);
/// Members at most: all connect from 127.0.0.1, whose connection cap this relay raises.
const MAX_MEMBERS: usize = 50;
/// How long any one wait may take before the round fails.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Members of the room (real clients, from 127.0.0.1).
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Rounds of each measurement; the medians are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Messages the others send while one member's link is cut.
    #[arg(long, default_value_t = 100)]
    backlog: usize,
    /// How long the link stays cut, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    cut_ms: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !(2..=MAX_MEMBERS).contains(&args.members) || args.rounds == 0 {
        bail!("--members must be 2 to {MAX_MEMBERS} and --rounds positive");
    }
    let code = Secret::from("loadgen");
    let mut restarts = Vec::new();
    let mut from_resume = Vec::new();
    let mut from_restore = Vec::new();
    for round in 1..=args.rounds {
        let restart =
            restart_round(&args, &code).await.with_context(|| format!("restart round {round}"))?;
        let (resumed, restored) =
            backlog_round(&args, &code).await.with_context(|| format!("backlog round {round}"))?;
        println!(
            "round {round}: restart {} ms; backlog of {} delivered {} ms after the resume, {} ms after the link came back",
            restart.as_millis(),
            args.backlog,
            resumed.as_millis(),
            restored.as_millis()
        );
        restarts.push(restart);
        from_resume.push(resumed);
        from_restore.push(restored);
    }
    let verdict = |median: Duration| if median <= TARGET { "met" } else { "NOT met" };
    let (restart, resumed, restored) =
        (median(&mut restarts), median(&mut from_resume), median(&mut from_restore));
    println!(
        "median: relay listening again → all {} members back: {} ms (target ≤ {} ms: {})",
        args.members,
        restart.as_millis(),
        TARGET.as_millis(),
        verdict(restart)
    );
    println!(
        "median: session resumed → backlog of {} delivered: {} ms (target ≤ {} ms: {})",
        args.backlog,
        resumed.as_millis(),
        TARGET.as_millis(),
        verdict(resumed)
    );
    println!(
        "median: link restored after a {} ms cut → backlog delivered: {} ms (includes the backoff's wait)",
        args.cut_ms,
        restored.as_millis()
    );
    Ok(())
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// A relay on `address` (port 0 for any), served on this runtime until `stop` fires.
async fn start_relay(
    address: SocketAddr,
    code: &Secret,
) -> anyhow::Result<(SocketAddr, oneshot::Sender<()>)> {
    let listener = chatter::relay::listener::bind(address)?;
    let bound = listener.local_addr()?;
    let mut config = RelayConfig::new(code.clone());
    config.rate_limit = RateLimit { per_second: 1e9, burst: u32::MAX };
    config.gate.max_connections_per_ip = MAX_MEMBERS * 2;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = Relay::new(config)
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok((bound, stop))
}

/// `members` clients in one room at `server`, the first through `via` if given.
async fn room(
    server: SocketAddr,
    via: Option<SocketAddr>,
    members: usize,
    code: &Secret,
) -> anyhow::Result<Vec<(Client, Events)>> {
    let mut room = Vec::new();
    for member in 0..members {
        let address = if member == 0 { via.unwrap_or(server) } else { server };
        let options = ClientOptions {
            server: address.to_string(),
            nick: format!("m{member}"),
            access_code: code.clone(),
        };
        let (client, events) = chatter::client::connect(options).await?;
        client.join(ROOM, Secret::from(PASSWORD)).await?;
        room.push((client, events));
    }
    // Let every member take in the last commit before anything is measured.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (_, events) in &mut room {
        while events.try_recv().is_some() {}
    }
    Ok(room)
}

/// Waits for an event that matches; when it came.
async fn wait_for(events: &mut Events, wanted: impl Fn(&Event) -> bool) -> anyhow::Result<Instant> {
    tokio::time::timeout(WAIT_LIMIT, async {
        while let Some(event) = events.recv().await {
            if wanted(&event) {
                return Ok(Instant::now());
            }
            if let Event::Disconnected(end) = event {
                bail!("a client gave up: {end}");
            }
        }
        bail!("a client stopped")
    })
    .await
    .context("no such event in time")?
}

async fn restart_round(args: &Args, code: &Secret) -> anyhow::Result<Duration> {
    let (address, stop) = start_relay("127.0.0.1:0".parse()?, code).await?;
    let mut room = room(address, None, args.members, code).await?;
    let _ = stop.send(());
    // The old relay says goodbye and lets go of the port; the new one takes it.
    let (_, stop) = loop {
        match start_relay(address, code).await {
            Ok(started) => break started,
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    };
    let listening = Instant::now();
    let mut waiting = JoinSet::new();
    for (client, mut events) in room.drain(..) {
        waiting.spawn(async move {
            let back = wait_for(&mut events, |event| {
                matches!(event, Event::Notice { text, .. } if text.starts_with("back in the room, with the same group"))
            })
            .await;
            let _ = client.quit().await;
            back
        });
    }
    let mut last = listening;
    while let Some(back) = waiting.join_next().await {
        last = last.max(back??);
    }
    let _ = stop.send(());
    Ok(last - listening)
}

async fn backlog_round(args: &Args, code: &Secret) -> anyhow::Result<(Duration, Duration)> {
    let (address, stop) = start_relay("127.0.0.1:0".parse()?, code).await?;
    let cutter = Cutter::start(address).await?;
    let mut room = room(address, Some(cutter.address), args.members, code).await?;
    let (away, mut away_events) = room.remove(0);
    cutter.cut();
    wait_for(&mut away_events, |event| {
        matches!(event, Event::Connection(ConnectionEvent::Lost { .. }))
    })
    .await?;
    for n in 0..args.backlog {
        let (sender, _) = &room[n % room.len()];
        sender.send_text(&format!("backlog {n}")).await?;
    }
    tokio::time::sleep(Duration::from_millis(args.cut_ms)).await;
    cutter.restore();
    let restored = Instant::now();
    let resumed = wait_for(&mut away_events, |event| {
        matches!(event, Event::Connection(ConnectionEvent::Resumed { .. }))
    })
    .await?;
    let mut delivered = 0;
    let last = tokio::time::timeout(WAIT_LIMIT, async {
        while let Some(event) = away_events.recv().await {
            if let Event::Message { late: true, .. } = event {
                delivered += 1;
                if delivered == args.backlog {
                    return Ok(Instant::now());
                }
            }
        }
        bail!("the member stopped after {delivered} of {} messages", args.backlog)
    })
    .await
    .context("the backlog did not arrive in time")??;
    let _ = away.quit().await;
    for (client, _) in &room {
        let _ = client.quit().await;
    }
    let _ = stop.send(());
    Ok((last - resumed, last - restored))
}

/// A TCP forwarder whose links can be cut (closed at both ends) and restored.
struct Cutter {
    address: SocketAddr,
    state: Arc<Mutex<(bool, JoinSet<()>)>>,
}

impl Cutter {
    async fn start(server: SocketAddr) -> anyhow::Result<Cutter> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = Arc::new(Mutex::new((false, JoinSet::new())));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if shared.lock().map(|state| state.0).unwrap_or(true) {
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(server).await else { continue };
                if let Ok(mut state) = shared.lock() {
                    state.1.spawn(async move {
                        let (mut client, mut upstream) = (client, upstream);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    });
                }
            }
        });
        Ok(Cutter { address, state })
    }

    fn cut(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.0 = true;
            state.1.abort_all();
        }
    }

    fn restore(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.0 = false;
        }
    }
}
