//! `wan_proxy`: a TCP proxy that makes a link look like a wide-area one, for
//! `examples/wan.sh` (which runs it between the relay and the clients in network namespaces,
//! since `tc netem` is not available everywhere).
//!
//! Each direction of each connection gets its own schedule: every chunk read is delivered
//! after the one-way latency plus a uniform jitter, never before the chunk ahead of it (TCP
//! keeps order, so jitter cannot reorder), and no faster than the bandwidth allows. A lost
//! segment on a real TCP link shows as a stall until the retransmission, so "loss" here
//! holds a chunk back by a retransmission timeout (200 ms, Linux's minimum, plus one RTT)
//! with the given probability; everything behind it waits too.
//!
//! `cargo run --example wan_proxy -- --listen 127.0.0.1:9002 --upstream 10.77.0.1:9001 \
//!     --latency-ms 50 --jitter-ms 10 --loss 0.01 --bandwidth-kbit 10000`

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Linux's minimum retransmission timeout: what one lost segment costs at least.
const MIN_RTO: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Parser)]
#[command(
    name = "wan_proxy",
    about = "A TCP proxy with latency, jitter, loss stalls and a bandwidth cap"
)]
struct Args {
    /// Where clients connect.
    #[arg(long)]
    listen: SocketAddr,
    /// Where the relay is.
    #[arg(long)]
    upstream: SocketAddr,
    /// One-way delay in each direction, in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Uniform jitter added to the one-way delay, 0 to this many milliseconds.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Probability that a chunk is "lost" and stalls the direction for a retransmission.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Bandwidth of each direction in kbit/s (0: unlimited).
    #[arg(long, default_value_t = 0)]
    bandwidth_kbit: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(0.0..1.0).contains(&args.loss) {
        anyhow::bail!("--loss must be in [0, 1)");
    }
    let listener = TcpListener::bind(args.listen).await?;
    eprintln!("wan_proxy listening on {}", listener.local_addr()?);
    loop {
        let (client, _) = listener.accept().await?;
        let args = args.clone();
        tokio::spawn(async move {
            let Ok(upstream) = TcpStream::connect(args.upstream).await else { return };
            let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
            let (client_read, client_write) = client.into_split();
            let (upstream_read, upstream_write) = upstream.into_split();
            tokio::spawn(direction(client_read, upstream_write, args.clone()));
            tokio::spawn(direction(upstream_read, client_write, args));
        });
    }
}

/// Carries one direction: a reader that schedules, a writer that waits for each deadline.
async fn direction(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, args: Args) {
    let (schedule, mut scheduled) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((deliver_at, chunk)) = scheduled.recv().await {
            tokio::time::sleep_until(deliver_at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let latency = Duration::from_millis(args.latency_ms);
    let retransmission = MIN_RTO + 2 * latency;
    let mut previous = Instant::now();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = Instant::now();
        let mut delay = latency;
        {
            let mut rng = rand::thread_rng();
            if args.jitter_ms > 0 {
                delay += Duration::from_micros(rng.gen_range(0..args.jitter_ms * 1000));
            }
            if args.loss > 0.0 && rng.gen_bool(args.loss) {
                delay += retransmission;
            }
        }
        let transmit = if args.bandwidth_kbit > 0 {
            Duration::from_secs_f64(n as f64 * 8.0 / (args.bandwidth_kbit as f64 * 1000.0))
        } else {
            Duration::ZERO
        };
        let deliver_at = (now + delay).max(previous) + transmit;
        previous = deliver_at;
        if schedule.send((deliver_at, buffer[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(schedule);
    let _ = writer.await;
}
