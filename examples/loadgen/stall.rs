//! `loadgen stall`: how much memory members that stop reading can make the relay hold.
//!
//! Pairs of a sender and a staller share a room (built through the real admission flow with
//! raw clients); each sender sends chat messages of the largest size the relay forwards, and
//! the staller never reads again. The relay runs as its own process (`chatter-server`) with
//! its rate limit raised, so the senders can push as hard as a socket allows; its RSS is read
//! before, at the peak and after. A relay that bounded queues only in frames would hold up to
//! 1024 queued frames per staller; ours holds at most its per-session byte budget (4 MiB) and
//! then cuts the staller off.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chatter::proto::{ClientFrame, MAX_APPLICATION_LEN};
use chatter::secret::Secret;

use crate::common::{connect_many, group_thousands};
use crate::idle::{default_server_binary, peak_bytes, resident_bytes, start_server, stop_server};
use crate::rooms;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sender and staller pairs, each in its own room.
    #[arg(long, default_value_t = 4)]
    pairs: usize,
    /// Messages each sender sends.
    #[arg(long, default_value_t = 400)]
    messages: usize,
    /// The relay binary to start (default: `chatter-server` beside this build's examples).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Longest the whole run may take.
    #[arg(long, default_value_t = 60)]
    limit_seconds: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.pairs == 0 || args.messages == 0 {
        bail!("--pairs and --messages must be at least 1");
    }
    let code = Secret::from("loadgen");
    let binary = match &args.server_bin {
        Some(path) => path.clone(),
        None => default_server_binary()?,
    };
    // Chat is limited to 20 messages/s by default; this scenario is about memory, not rates.
    let flags = ["--rate", "1000000", "--burst", "1000000", "--max-clients-per-ip", "1000"];
    let (mut child, address) = start_server(&binary, &code, &flags).await?;
    let pid = child.id().context("the relay exited at once")?;
    let run = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let baseline = resident_bytes(pid)?;
        let mut rooms_built = Vec::new();
        let clients = connect_many(0..2 * args.pairs, address, &code, "p").await?;
        let mut clients = clients.into_iter();
        for pair in 0..args.pairs {
            let members: Vec<_> = clients.by_ref().take(2).collect();
            let nicks = [format!("p{}", 2 * pair), format!("p{}", 2 * pair + 1)];
            rooms_built.push(rooms::build(&format!("stall{pair}"), members, &nicks).await?);
        }
        let started = Instant::now();
        let mut sent = 0u64;
        for room in &mut rooms_built {
            let message = room.application_message(MAX_APPLICATION_LEN)?;
            let frame = ClientFrame::Application { room: room.name.clone(), message };
            for _ in 0..args.messages {
                room.members[0].send(&frame).await?;
                sent += 1;
            }
            // The sender reads what comes back (nothing but notices) so only the staller stalls.
            rooms::drain(&mut room.members[0]).await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = resident_bytes(pid)?;
        let peak = peak_bytes(pid)?;
        println!(
            "{} pairs, {} messages of {} KiB each ({} MiB offered to stalled members) in {:.1?}",
            args.pairs,
            group_thousands(sent),
            MAX_APPLICATION_LEN / 1024,
            group_thousands(sent * MAX_APPLICATION_LEN as u64 / (1024 * 1024)),
            started.elapsed()
        );
        println!(
            "relay RSS: {} KiB before, {} KiB after, peak {} KiB; per staller at the peak: {} KiB",
            group_thousands(baseline / 1024),
            group_thousands(after / 1024),
            group_thousands(peak / 1024),
            group_thousands(peak.saturating_sub(baseline) / 1024 / args.pairs as u64)
        );
        Ok::<_, anyhow::Error>(())
    };
    let result = tokio::time::timeout(Duration::from_secs(args.limit_seconds), run)
        .await
        .context("the scenario ran past its time limit");
    stop_server(&mut child).await;
    result?
}
