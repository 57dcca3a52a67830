//! What every scenario shares: the clock, loopback source addresses, the file-descriptor
//! limit, where a server runs (in-process on its own runtime, or external), and connecting
//! many registered raw clients.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chatter::client::RawClient;
use chatter::relay::rate::RateLimit;
use chatter::relay::{Relay, RelayConfig};
use chatter::secret::Secret;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;

/// The relay's per-address connection cap: raw clients spread over this many per address.
pub const CLIENTS_PER_ADDRESS: usize = 10;

/// Connections opened at once while building a load: enough to overlap handshakes, few
/// enough not to look like a flood.
const CONNECT_CONCURRENCY: usize = 32;

/// How long one connection and registration may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

static CLOCK_BASE: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds on a process-wide monotonic clock: what senders stamp into messages and
/// receivers subtract from.
pub fn now_nanos() -> u64 {
    CLOCK_BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The loopback address raw client `index` connects from: 127.0.0.2, 127.0.0.3, …, ten
/// clients each, so no address exceeds the relay's cap. 127.0.0.1 is left to engine clients.
pub fn source_address(index: usize) -> IpAddr {
    let host = index / CLIENTS_PER_ADDRESS + 2;
    IpAddr::V4(Ipv4Addr::new(127, 0, (host / 256) as u8, (host % 256) as u8))
}

/// Raises the soft limit on open files to at least `wanted` (up to the hard limit), since
/// every client is a descriptor here and, with an in-process server, another one there.
pub fn raise_fd_limit(wanted: u64) -> anyhow::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        bail!("getrlimit failed: {}", std::io::Error::last_os_error());
    }
    if limit.rlim_cur >= wanted {
        return Ok(limit.rlim_cur);
    }
    limit.rlim_cur = wanted.min(limit.rlim_max);
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        bail!("setrlimit failed: {}", std::io::Error::last_os_error());
    }
    if limit.rlim_cur < wanted {
        bail!("need {wanted} open files but the hard limit is {}", limit.rlim_max);
    }
    Ok(limit.rlim_cur)
}

/// A server this process runs: the relay or the yardstick. It runs either as tasks on the
/// caller's runtime (`threads == 0`) or on a runtime of its own with `threads` workers, so
/// the server's and the clients' threads can be set apart.
pub struct LocalServer {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LocalServer {
    pub async fn start<Serve, Served>(threads: usize, serve: Serve) -> anyhow::Result<Self>
    where
        Serve: FnOnce(TcpListener, oneshot::Receiver<()>) -> Served + Send + 'static,
        Served: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        if threads == 0 {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let address = listener.local_addr()?;
            tokio::spawn(serve(listener, stopped));
            return Ok(LocalServer { address, stop: Some(stop), thread: None });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("server")
            .enable_all()
            .build()?;
        let (bound, address) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = match TcpListener::bind("127.0.0.1:0").await {
                    Ok(listener) => listener,
                    Err(error) => {
                        let _ = bound.send(Err(error));
                        return;
                    }
                };
                let _ = bound.send(listener.local_addr());
                serve(listener, stopped).await;
            });
        });
        let address = address.await.context("the server thread ended early")??;
        Ok(LocalServer { address, stop: Some(stop), thread: Some(thread) })
    }

    /// Stops accepting and waits for the server to wind down.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// A relay with the default configuration but for the per-connection rate limit, which is
/// lifted: the scenarios measure the relay's capacity, and a benchmark sender is a flood by
/// design (the limit itself is tested in `tests/chatter/abuse.rs`).
pub async fn start_relay(threads: usize, code: Secret) -> anyhow::Result<LocalServer> {
    LocalServer::start(threads, move |listener, stopped| async move {
        let mut config = RelayConfig::new(code);
        config.rate_limit = RateLimit { per_second: 1e9, burst: u32::MAX };
        let relay = Relay::new(config);
        if let Err(error) = relay
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
        {
            eprintln!("relay failed: {error}");
        }
    })
    .await
}

/// Connects from raw client `index`'s loopback address, handshakes and registers `nick`.
pub async fn connect_raw(
    index: usize,
    server: SocketAddr,
    code: &Secret,
    nick: &str,
) -> anyhow::Result<RawClient> {
    let setup = async {
        let mut client = RawClient::connect_from(source_address(index), server, code).await?;
        client.register(nick).await?;
        Ok::<_, chatter::client::ClientError>(client)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, setup)
        .await
        .with_context(|| format!("{nick}: no connection within {CONNECT_TIMEOUT:?}"))?
        .with_context(|| format!("{nick}: connecting to {server}"))
}

/// Connects registered raw clients `indices`, named `{prefix}{index}`, a few at a time;
/// returns them in index order.
pub async fn connect_many(
    indices: std::ops::Range<usize>,
    server: SocketAddr,
    code: &Secret,
    prefix: &str,
) -> anyhow::Result<Vec<RawClient>> {
    connect_many_across(indices, &[server], code, prefix).await
}

/// The same, client `index` to relay `index % servers.len()` (relays that share rooms).
pub async fn connect_many_across(
    indices: std::ops::Range<usize>,
    servers: &[SocketAddr],
    code: &Secret,
    prefix: &str,
) -> anyhow::Result<Vec<RawClient>> {
    let (first, count) = (indices.start, indices.len());
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for index in indices {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let (code, nick) = (code.clone(), format!("{prefix}{index}"));
        let server = servers[index % servers.len()];
        tasks.spawn(async move {
            let client = connect_raw(index, server, &code, &nick).await;
            drop(permit);
            client.map(|client| (index, client))
        });
    }
    let mut clients: Vec<Option<RawClient>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, client) = joined??;
        clients[index - first] = Some(client);
    }
    Ok(clients.into_iter().flatten().collect())
}

/// Where the relay is: started here, or an external `chatter-server`.
pub enum RelayPlace {
    Local(LocalServer),
    External(SocketAddr),
}

/// Where a scenario's relay runs: the flags `relay`, `join` and `latency` share.
#[derive(Debug, clap::Args)]
pub struct RelayTarget {
    /// An external `chatter-server` instead of one started in this process.
    #[arg(long)]
    pub server: Option<SocketAddr>,
    /// The relay's access code (for an in-process relay, any value).
    #[arg(long, env = "CHATTER_ACCESS_CODE", default_value = "loadgen", hide_env_values = true)]
    pub access_code: String,
    /// Worker threads for the in-process relay (and yardstick); 0 shares the load generator's.
    #[arg(long, default_value_t = 0)]
    pub server_threads: usize,
    /// Further external relays sharing rooms with `--server` (a cluster on NATS): client k
    /// connects to relay k modulo their number.
    #[arg(long, requires = "server")]
    pub also_server: Vec<SocketAddr>,
}

impl RelayTarget {
    /// Every relay the clients use: the one started or named, then `--also-server`.
    pub fn servers(&self, relay: &RelayPlace) -> Vec<SocketAddr> {
        std::iter::once(relay.address()).chain(self.also_server.iter().copied()).collect()
    }

    /// The access code and the relay, started here unless `--server` names one.
    pub async fn start(&self) -> anyhow::Result<(Secret, RelayPlace)> {
        let code = Secret::new(self.access_code.clone());
        let relay = RelayPlace::start(self.server, self.server_threads, &code).await?;
        Ok((code, relay))
    }
}

impl RelayPlace {
    pub async fn start(
        external: Option<SocketAddr>,
        threads: usize,
        code: &Secret,
    ) -> anyhow::Result<Self> {
        Ok(match external {
            Some(address) => RelayPlace::External(address),
            None => RelayPlace::Local(start_relay(threads, code.clone()).await?),
        })
    }

    pub fn address(&self) -> SocketAddr {
        match self {
            RelayPlace::Local(server) => server.address,
            RelayPlace::External(address) => *address,
        }
    }

    pub async fn stop(self) {
        if let RelayPlace::Local(server) = self {
            server.stop().await;
        }
    }
}

/// Deliveries per second, with thousands separators.
pub fn rate(count: u64, elapsed: Duration) -> String {
    let per_second = count as f64 / elapsed.as_secs_f64().max(1e-9);
    group_thousands(per_second.round() as u64)
}

pub fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::new();
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}
