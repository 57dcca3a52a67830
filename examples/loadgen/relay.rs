//! `loadgen relay`: fan-out throughput and latency of the relay, then of the yardstick with
//! the same traffic, and the ratio of the two.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use chatter::client::RawClient;
use chatter::proto::{self, ClientFrame, ServerFrame};
use chatter::secret::Secret;
use chatter::transport::{SealedReader, SealedWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::common::{
    LocalServer, RelayTarget, connect_many_across, group_thousands, raise_fd_limit, rate,
};
use crate::histogram::millis;
use crate::traffic::{self, FrameSink, FrameSource, Member, Outcome, Plan, Received, stamp_of};
use crate::{rooms, yardstick};

/// The targets for a 10-member room with one sender and 100-byte payloads.
const TARGET_DELIVERIES_PER_SECOND: f64 = 200_000.0;
const TARGET_RATIO: f64 = 0.5;

/// Longest run: receivers never send, and the relay's idle timeout is 120 s.
const MAX_DURATION_SECS: u64 = 100;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Raw clients in all.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Rooms; the clients are split evenly among them.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Senders per room (the first members); every member receives.
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Bytes of each MLS message (fake header, filler, send stamp).
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Messages each sender sends.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Sending stops after this long, whatever the count.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Frames a receiver may lag behind its room's senders before they wait.
    #[arg(long, default_value_t = 512)]
    window: u64,
    /// Frames a sender queues before one write.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[command(flatten)]
    target: RelayTarget,
    /// Skip the yardstick run.
    #[arg(long)]
    no_yardstick: bool,
    /// Rounds of relay then yardstick; with more than one the verdicts use the medians
    /// (of rates and of each round's ratio), since a shared machine's capacity drifts.
    #[arg(long, default_value_t = 1)]
    repeats: usize,
}

impl Args {
    fn plan(&self) -> anyhow::Result<Plan> {
        if self.rooms == 0
            || !self.clients.is_multiple_of(self.rooms)
            || self.clients / self.rooms < 2
        {
            bail!("--clients must be a multiple of --rooms, with at least two clients a room");
        }
        let members = self.clients / self.rooms;
        if self.senders == 0 || self.senders > members {
            bail!("--senders must be between 1 and the members of a room ({members})");
        }
        if self.batch == 0 || self.batch as u64 > self.window {
            bail!("--batch must be between 1 and --window");
        }
        if self.duration_secs == 0 || self.duration_secs > MAX_DURATION_SECS {
            bail!(
                "--duration-secs must be 1 to {MAX_DURATION_SECS}: receivers send nothing, and \
                 the relay drops connections silent for 120 s"
            );
        }
        Ok(Plan {
            rooms: self.rooms,
            members,
            senders: self.senders,
            messages: self.messages,
            window: self.window,
            batch: self.batch,
            duration: Duration::from_secs(self.duration_secs),
        })
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let plan = args.plan()?;
    raise_fd_limit(2 * args.clients as u64 + 256)?;
    println!(
        "traffic: {} rooms × {} members, {} sender(s) a room × {} messages of {} bytes; \
         {} deliveries expected",
        plan.rooms,
        plan.members,
        plan.senders,
        plan.messages,
        args.payload,
        group_thousands(plan.expected_total())
    );

    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let (mut relay_rates, mut ratios) = (Vec::new(), Vec::new());
    // A round that did not deliver everything (a relay's rate limit, a stall) meets nothing.
    let mut complete = true;
    for round in 1..=args.repeats {
        if args.repeats > 1 {
            println!("round {round} of {}:", args.repeats);
        }
        let (code, relay) = args.target.start().await?;
        let servers = args.target.servers(&relay);
        let (relay_outcome, messages) = run_relay(&args, &plan, &servers, &code).await?;
        relay.stop().await;
        report("relay", &relay_outcome);
        complete &= relay_outcome.deliveries >= relay_outcome.expected;
        relay_rates.push(relay_outcome.deliveries_per_second());
        if args.no_yardstick {
            continue;
        }
        let server = LocalServer::start(args.target.server_threads, yardstick::serve).await?;
        let yardstick_outcome = run_yardstick(&plan, server.address, &messages).await?;
        server.stop().await;
        report("yardstick", &yardstick_outcome);
        let ratio = relay_outcome.deliveries_per_second()
            / yardstick_outcome.deliveries_per_second().max(1e-9);
        println!("ratio relay/yardstick: {ratio:.2}");
        ratios.push(ratio);
    }

    let summary = if args.repeats > 1 { "median " } else { "" };
    if !ratios.is_empty() {
        let ratio = median(&mut ratios);
        println!(
            "{summary}ratio relay/yardstick: {ratio:.2} (target ≥ {TARGET_RATIO:.2}: {})",
            verdict(complete && ratio >= TARGET_RATIO)
        );
    }
    if plan.members == 10 && plan.senders == 1 && args.payload == 100 {
        let rate = median(&mut relay_rates);
        println!(
            "{summary}relay deliveries/s: {} (target ≥ {}: {})",
            group_thousands(rate as u64),
            group_thousands(TARGET_DELIVERIES_PER_SECOND as u64),
            verdict(complete && rate >= TARGET_DELIVERIES_PER_SECOND)
        );
    }
    Ok(())
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) && middle > 0 {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values.get(middle).copied().unwrap_or(0.0)
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn report(name: &str, outcome: &Outcome) {
    if outcome.deliveries < outcome.expected {
        println!(
            "{name:>9}: only {} of {} messages sent and {} of {} deliveries made in time",
            group_thousands(outcome.sent),
            group_thousands(outcome.expected_sent),
            group_thousands(outcome.deliveries),
            group_thousands(outcome.expected)
        );
    }
    println!(
        "{name:>9}: {} deliveries in {} = {} deliveries/s; latency {}",
        group_thousands(outcome.deliveries),
        millis(outcome.elapsed),
        rate(outcome.deliveries, outcome.elapsed),
        outcome.latencies.summary()
    );
}

/// Builds the relay rooms, runs the traffic, and returns the outcome and each room's
/// message (so the yardstick carries the same bytes).
async fn run_relay(
    args: &Args,
    plan: &Plan,
    servers: &[SocketAddr],
    code: &Secret,
) -> anyhow::Result<(Outcome, Vec<Vec<u8>>)> {
    let started = std::time::Instant::now();
    let mut clients = connect_many_across(0..args.clients, servers, code, "lg").await?;
    println!("relay: {} clients connected in {}", clients.len(), millis(started.elapsed()));
    let started = std::time::Instant::now();
    let mut rooms = Vec::new();
    for room in 0..plan.rooms {
        let members: Vec<RawClient> = clients.drain(..plan.members).collect();
        let first = room * plan.members;
        let nicks: Vec<String> = (first..first + plan.members).map(|i| format!("lg{i}")).collect();
        let name = format!("load{room}");
        let built = rooms::build(&name, members, &nicks).await.with_context(|| name.clone())?;
        rooms.push(built);
    }
    println!("relay: {} rooms built in {}", rooms.len(), millis(started.elapsed()));

    let application_tag = proto::encode(&ServerFrame::Application {
        room: String::new(),
        from: String::new(),
        message: Vec::new(),
    })[0];
    let mut messages = Vec::new();
    let mut templates = Vec::new();
    let mut members = Vec::new();
    for room in rooms {
        let message = room.application_message(args.payload)?;
        let frame = proto::encode(&ClientFrame::Application {
            room: room.name.clone(),
            message: message.clone(),
        });
        debug_assert!(frame.ends_with(&message), "the message is the frame's last field");
        messages.push(message);
        templates.push(frame);
        let room_members = room
            .members
            .into_iter()
            .map(|client| Member {
                sink: RelaySink { writer: client.writer },
                source: RelaySource { reader: client.reader, application_tag },
            })
            .collect();
        members.push(room_members);
    }
    let outcome = traffic::run(plan, members, templates).await;
    Ok((outcome, messages))
}

async fn run_yardstick(
    plan: &Plan,
    server: SocketAddr,
    messages: &[Vec<u8>],
) -> anyhow::Result<Outcome> {
    let mut members = Vec::new();
    for room in 0..plan.rooms {
        let mut room_members = Vec::new();
        for member in 0..plan.members {
            let index = room * plan.members + member;
            let (sink, source) = yardstick::connect(index, server, room as u32)
                .await
                .context("connecting to the yardstick")?;
            room_members.push(Member { sink, source });
        }
        members.push(room_members);
    }
    let templates = messages.iter().map(|message| yardstick::frame_of(message)).collect();
    Ok(traffic::run(plan, members, templates).await)
}

/// A raw client's sending half: frames are sealed into its buffer and written together.
struct RelaySink {
    writer: SealedWriter<OwnedWriteHalf>,
}

impl FrameSink for RelaySink {
    fn queue(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.writer.queue(frame)
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush().await
    }
}

/// A raw client's receiving half. It reads in bulk (the codec buffers whatever the socket
/// has) and, rather than decoding every frame, checks the variant tag and takes the stamp
/// from the end: the message is an application frame's last field.
struct RelaySource {
    reader: SealedReader<OwnedReadHalf>,
    application_tag: u8,
}

impl FrameSource for RelaySource {
    async fn next(&mut self) -> std::io::Result<Received> {
        match self.reader.next_frame().await {
            Ok(Some(plaintext)) if plaintext.first() == Some(&self.application_tag) => {
                Ok(stamp_of(plaintext).map_or(Received::Other, Received::Delivery))
            }
            Ok(Some(_)) => Ok(Received::Other),
            Ok(None) => Ok(Received::Closed),
            Err(error) => Err(std::io::Error::other(error.to_string())),
        }
    }
}
