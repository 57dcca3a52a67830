//! `loadgen multiroom`: one real `chatter` process (the binary, in line mode with `--json`)
//! in N rooms at once: how long each `--join` takes as the rooms add up, what the client
//! costs while it sits idle in all of them (resident memory, CPU time from `/proc`), and the
//! latency of messages to it in every room. Run it with `--rooms 1` (or 2) and `--rooms 32`
//! to compare.
//!
//! An engine client of this process ("peer") founds every room first, so the subject joins
//! each one through the full admission (password exchange, commit, signed votes, Welcome),
//! and then sends it messages stamped with this process's clock, round-robin over the rooms.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use chatter::client::{ClientOptions, Event, MAX_ROOMS};
use chatter::secret::Secret;
use tokio::sync::mpsc;

use crate::common::now_nanos;
use crate::histogram::{Histogram, millis};

/// How long the subject may take to join all its rooms.
const JOIN_DEADLINE: Duration = Duration::from_secs(120);
/// How long a message may take to reach the subject before it counts as lost.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rooms the subject joins.
    #[arg(long, default_value_t = MAX_ROOMS)]
    rooms: usize,
    /// Seconds the subject sits idle in its rooms while its CPU time and memory are read.
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// Messages sent to the subject in each room (one every 5 ms, round-robin).
    #[arg(long, default_value_t = 20)]
    messages_per_room: usize,
    /// The `chatter` binary (default: beside the `examples` directory of this one).
    #[arg(long)]
    chatter: Option<PathBuf>,
    #[command(flatten)]
    target: crate::common::RelayTarget,
}

/// A line the subject printed, and when this process read it.
struct Line {
    text: String,
    at: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !(1..=MAX_ROOMS).contains(&args.rooms) {
        bail!("--rooms must be 1 to {MAX_ROOMS}");
    }
    let chatter = match &args.chatter {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(|examples| examples.parent())
            .context("no directory above this executable")?
            .join("chatter"),
    };
    let (code, relay) = args.target.start().await?;
    let server = relay.address().to_string();
    let rooms: Vec<String> = (0..args.rooms).map(|k| format!("room-{k}")).collect();

    let options =
        ClientOptions { server: server.clone(), nick: "peer".into(), access_code: code.clone() };
    let (peer, mut peer_events) = chatter::client::connect(options).await.context("peer")?;
    for room in &rooms {
        peer.join(room, Secret::default()).await.with_context(|| format!("peer founds {room}"))?;
    }

    let home = tempfile::tempdir()?;
    let mut command = Command::new(&chatter);
    command
        .env_clear()
        .env("HOME", home.path())
        .env("CHATTER_ACCESS_CODE", code.expose())
        .args([&server, "--nick", "subject", "--json", "--identity"])
        .arg(home.path().join("identity"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for room in &rooms {
        command.args(["--join", room]);
    }
    let started = now_nanos();
    let mut child = command.spawn().with_context(|| format!("starting {}", chatter.display()))?;
    let pid = child.id();
    let mut lines = read_lines(&mut child)?;

    // Join times: from the start (the first room, with the process's start-up and
    // connection) and then from one "you joined" to the next.
    let mut joined_at = vec![started];
    let deadline = tokio::time::Instant::now() + JOIN_DEADLINE;
    while joined_at.len() <= args.rooms {
        let line = tokio::time::timeout_at(deadline, lines.recv())
            .await
            .context("the subject did not join every room in time")?
            .context("the subject exited while joining")?;
        if line.text.contains("\"type\":\"joined\"") && line.text.contains("\"from\":null") {
            joined_at.push(line.at);
        }
    }
    for _ in &rooms {
        let subject_joined =
            |e: &Event| matches!(e, Event::Joined { nick, .. } if nick == "subject");
        tokio::time::timeout(JOIN_DEADLINE, async {
            while let Some(event) = peer_events.recv().await {
                if subject_joined(&event) {
                    return;
                }
            }
        })
        .await
        .context("the peer did not see the subject join")?;
    }
    let joins: Vec<Duration> =
        joined_at.windows(2).map(|pair| Duration::from_nanos(pair[1] - pair[0])).collect();
    print!("joins: room 1 {} (with start-up)", millis(joins[0]));
    if joins.len() > 1 {
        let later = &joins[1..];
        let mut sorted = later.to_vec();
        sorted.sort();
        print!(", room 2 {}", millis(later[0]));
        if args.rooms > 2 {
            print!(
                ", room {} {}, median of rooms 2..{} {}",
                args.rooms,
                millis(later[later.len() - 1]),
                args.rooms,
                millis(sorted[sorted.len() / 2])
            );
        }
    }
    println!();

    // Idle: let the last commits settle, then read the process's CPU time and memory
    // before and after the idle spell (keepalives and ticks go on in every room).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_before, _) = cpu_and_rss(pid)?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let (cpu_after, rss) = cpu_and_rss(pid)?;
    let cpu = cpu_after.saturating_sub(cpu_before);
    let mut printed_while_idle = 0;
    while lines.try_recv().is_ok() {
        printed_while_idle += 1;
    }
    println!(
        "idle {} s in {} rooms: CPU {:.2} s ({:.2} % of one core), resident memory {} KiB, \
         {printed_while_idle} lines printed",
        args.idle_secs,
        args.rooms,
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / args.idle_secs as f64,
        rss / 1024
    );

    // Latency: the peer sends in each room in turn; the subject prints each message.
    let total = args.rooms * args.messages_per_room;
    let mut latencies = Histogram::default();
    let mut ticks = tokio::time::interval(Duration::from_millis(5));
    for k in 0..total {
        ticks.tick().await;
        peer.switch(&rooms[k % args.rooms]).await?;
        peer.send_text(&format!("lat {k} {}", now_nanos())).await?;
        while let Ok(line) = lines.try_recv() {
            record(&line, &mut latencies);
        }
    }
    let deadline = tokio::time::Instant::now() + DELIVERY_DEADLINE;
    while latencies.count() < total as u64 {
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(line)) => record(&line, &mut latencies),
            _ => break,
        }
    }
    println!(
        "latency to the subject over {} rooms: {} of {total} delivered, {}",
        args.rooms,
        latencies.count(),
        latencies.summary()
    );

    drop(child.stdin.take());
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let _ = peer.quit().await;
    relay.stop().await;
    Ok(())
}

/// Reads the subject's stdout on a thread of its own, stamping each line as it is read.
fn read_lines(child: &mut Child) -> anyhow::Result<mpsc::UnboundedReceiver<Line>> {
    let stdout = child.stdout.take().context("the subject's stdout")?;
    let (sender, receiver) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for text in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(Line { text, at: now_nanos() }).is_err() {
                return;
            }
        }
    });
    Ok(receiver)
}

/// A message line "lat K SENT": its latency, from SENT to when it was read.
fn record(line: &Line, latencies: &mut Histogram) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&line.text) else { return };
    let Some(text) = value["text"].as_str() else { return };
    let Some(sent) = text.strip_prefix("lat ").and_then(|rest| rest.split(' ').nth(1)) else {
        return;
    };
    if let Ok(sent) = sent.parse::<u64>() {
        latencies.record(line.at.saturating_sub(sent));
    }
}

/// The process's CPU time (user and system) and resident memory in bytes, from `/proc`.
fn cpu_and_rss(pid: u32) -> anyhow::Result<(Duration, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: count fields after it.
    let after_name = stat.rsplit_once(')').context("a /proc stat line")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .context("utime and stime")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    // SAFETY: sysconf reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .context("VmRSS")?;
    Ok((Duration::from_millis(ticks * 1000 / per_second), rss_kib * 1024))
}
