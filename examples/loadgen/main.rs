//! `loadgen`: the project's load generator and its yardstick.
//!
//! Nine scenarios, one subcommand each, all on loopback (127.0.0.0/8) only:
//!
//! - `relay`: fan-out throughput and latency of the relay with raw clients, then of a bare TCP
//!   fan-out (the yardstick, in `yardstick`) carrying the same traffic, and their ratio.
//! - `idle`: the relay's resident memory per idle, registered connection.
//! - `join`: how long a real client waits to send in a room of 10, 100 or 1000 members.
//! - `latency`: end-to-end latency between real clients (MLS included).
//! - `multiroom`: one real `chatter` in up to 32 rooms: joins, idle CPU and memory, latency.
//! - `stall`: the relay's memory while members stop reading (the byte budgets).
//! - `soak`: real clients in password rooms with churn, every message sequence-checked.
//! - `resume`: a room back after a relay restart, and a cut member's backlog delivered.
//! - `restart`: a thousand clients back in their rooms after the real relay is stopped
//!   (SIGTERM or SIGKILL) and started again, and how they arrive.
//!
//! Every loop is bounded in count and in time. Run release builds for figures:
//! `cargo run --release --example loadgen -- relay --help`. `docs/benchmarks.md` explains each
//! scenario and records what this machine measured.

mod common;
mod histogram;
mod idle;
mod join;
mod latency;
mod multiroom;
mod relay;
mod restart;
mod resume;
mod rooms;
mod soak;
mod stall;
mod traffic;
mod yardstick;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Load generator for the CLI Chatter relay (loopback only)")]
struct Cli {
    /// Worker threads of the load generator's runtime (and of an in-process server that
    /// does not get its own).
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Fan-out deliveries/s and latency: relay, then the plain-TCP yardstick, and the ratio.
    Relay(relay::Args),
    /// Relay memory per idle registered connection (an external chatter-server process).
    Idle(idle::Args),
    /// Time until a joiner can send in a room of N members.
    Join(join::Args),
    /// End-to-end latency between real clients in one room.
    Latency(latency::Args),
    /// One real `chatter` in N rooms: join time per room, idle CPU and memory, latency.
    Multiroom(multiroom::Args),
    /// Relay memory while members stop reading and others send them the largest messages.
    Stall(stall::Args),
    /// Engine clients in password rooms with churn; losses, duplicates, reorderings, and
    /// the relay's memory over time.
    Soak(soak::Args),
    /// How fast a room is back after a relay restart, and a cut member's backlog after its
    /// link returns.
    Resume(resume::Args),
    /// Clients back in their rooms after the relay binary is stopped and started again.
    Restart(restart::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    common::now_nanos();
    runtime.block_on(async move {
        match cli.scenario {
            Scenario::Relay(args) => relay::run(args).await,
            Scenario::Idle(args) => idle::run(args).await,
            Scenario::Join(args) => join::run(args).await,
            Scenario::Latency(args) => latency::run(args).await,
            Scenario::Multiroom(args) => multiroom::run(args).await,
            Scenario::Stall(args) => stall::run(args).await,
            Scenario::Soak(args) => soak::run(args).await,
            Scenario::Resume(args) => resume::run(args).await,
            Scenario::Restart(args) => restart::run(args).await,
        }
    })
}
