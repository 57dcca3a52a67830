//! `loadgen idle`: what an idle, authenticated, registered connection costs the relay in
//! resident memory. The relay runs as its own process (`chatter-server`, started here or by
//! you), so its RSS is its own; the clients connect from 127.0.0.2, 127.0.0.3, … to stay
//! within the per-address cap.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use chatter::secret::Secret;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::{connect_many, group_thousands, raise_fd_limit};

/// The target.
const TARGET_BYTES_PER_CONNECTION: u64 = 16 * 1024;

/// How long a started relay may take to say where it listens.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Idle connections to open.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// The relay binary to start (default: `chatter-server` beside this build's examples).
    #[arg(long, conflicts_with = "server")]
    server_bin: Option<PathBuf>,
    /// A relay already running at this address (give its --pid too).
    #[arg(long, requires = "pid")]
    server: Option<SocketAddr>,
    /// The process id of the relay given with --server.
    #[arg(long)]
    pid: Option<u32>,
    /// The relay's access code (for a relay started here, any value).
    #[arg(long, env = "CHATTER_ACCESS_CODE", default_value = "loadgen", hide_env_values = true)]
    access_code: String,
    /// Pause before each memory reading, so the relay settles.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.clients < 2 {
        bail!("--clients must be at least 2");
    }
    raise_fd_limit(args.clients as u64 + 256)?;
    let code = Secret::new(args.access_code.clone());
    let settle = Duration::from_millis(args.settle_ms);
    let (address, pid, mut child) = match (args.server, args.pid) {
        (Some(address), Some(pid)) => (address, pid, None),
        _ => {
            let binary = match &args.server_bin {
                Some(path) => path.clone(),
                None => default_server_binary()?,
            };
            let (child, address) = start_server(&binary, &code, &[]).await?;
            let pid = child.id().context("the relay exited at once")?;
            (address, pid, Some(child))
        }
    };
    println!("relay pid {pid} at {address}");

    tokio::time::sleep(settle).await;
    let baseline = resident_bytes(pid)?;
    let half = args.clients / 2;
    let mut clients = connect_many(0..half, address, &code, "idle").await?;
    tokio::time::sleep(settle).await;
    let at_half = resident_bytes(pid)?;
    clients.extend(connect_many(half..args.clients, address, &code, "idle").await?);
    tokio::time::sleep(settle).await;
    let at_full = resident_bytes(pid)?;
    let peak = peak_bytes(pid)?;

    let per_connection = at_full.saturating_sub(baseline) / args.clients as u64;
    let marginal = at_full.saturating_sub(at_half) / (args.clients - half) as u64;
    println!(
        "relay RSS: {} KiB before, {} KiB with {half} clients, {} KiB with {} (peak {} KiB)",
        group_thousands(baseline / 1024),
        group_thousands(at_half / 1024),
        group_thousands(at_full / 1024),
        clients.len(),
        group_thousands(peak / 1024)
    );
    println!(
        "bytes per idle connection: {} (whole run), {} (second half only); target ≤ {}: {}",
        group_thousands(per_connection),
        group_thousands(marginal),
        group_thousands(TARGET_BYTES_PER_CONNECTION),
        if per_connection <= TARGET_BYTES_PER_CONNECTION { "met" } else { "NOT met" }
    );

    drop(clients);
    if let Some(child) = child.as_mut() {
        stop_server(child).await;
    }
    Ok(())
}

/// `target/<profile>/chatter-server`, beside `target/<profile>/examples/loadgen`.
pub(crate) fn default_server_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(|examples| examples.parent());
    let binary = profile_dir.context("cannot locate the build directory")?.join("chatter-server");
    if !binary.exists() {
        bail!(
            "{} not found: run `cargo build --release --bins` or pass --server-bin",
            binary.display()
        );
    }
    Ok(binary)
}

/// Starts the relay on an ephemeral loopback port and reads the address it announces.
pub(crate) async fn start_server(
    binary: &PathBuf,
    code: &Secret,
    extra_args: &[&str],
) -> anyhow::Result<(Child, SocketAddr)> {
    start_server_on(binary, "127.0.0.1:0", code, extra_args).await
}

/// Starts the relay on `listen` (a restarted relay takes its predecessor's port) and reads
/// the address it announces, which it prints once it listens.
pub(crate) async fn start_server_on(
    binary: &PathBuf,
    listen: &str,
    code: &Secret,
    extra_args: &[&str],
) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = Command::new(binary)
        .args(["--listen", listen])
        .args(extra_args)
        .env("CHATTER_ACCESS_CODE", code.expose())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let announced = tokio::time::timeout(STARTUP_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(address) = line.strip_prefix("chatter-server listening on ") {
                return Ok(address.trim().parse::<SocketAddr>()?);
            }
        }
        bail!("the relay exited before listening")
    })
    .await
    .context("the relay did not start in time")??;
    // Keep reading its stderr so it never blocks on a full pipe; ends with the process.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, announced))
}

/// SIGTERM, as an operator would, then a kill if it lingers.
pub(crate) async fn stop_server(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill only sends a signal to the process we started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

fn status_field(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse()?;
    Ok(kib * 1024)
}

pub(crate) fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    status_field(pid, "VmRSS:")
}

pub fn peak_bytes(pid: u32) -> anyhow::Result<u64> {
    status_field(pid, "VmHWM:")
}
