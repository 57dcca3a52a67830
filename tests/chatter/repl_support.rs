//! Helpers for the terminal client's tests: a relay on a background runtime, and `chatter`
//! commands with a private home.

use chatter::relay::{self, RelayConfig};
use chatter::secret::Secret;
use std::path::Path;
use std::process::Command;

/// The access code of every test relay.
pub const ACCESS_CODE: &str = "test-access-code";

/// A relay running until dropped.
pub struct Relay {
    /// `127.0.0.1:PORT`.
    pub address: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _thread: std::thread::JoinHandle<()>,
}

/// Starts a relay on 127.0.0.1:0 with [`ACCESS_CODE`].
pub fn start_relay() -> Relay {
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            address_tx.send(listener.local_addr().expect("address").to_string()).expect("send");
            let shutdown = async {
                let _ = stopped.await;
            };
            relay::run(listener, RelayConfig::new(Secret::from(ACCESS_CODE)), shutdown)
                .await
                .expect("relay runs");
        });
    });
    let address = address_rx.recv().expect("relay address");
    Relay { address, _stop: stop, _thread: thread }
}

/// A `chatter` command with a private home (config, data) and no colour.
pub fn chatter(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatter"));
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("TERM", "dumb")
        .env("NO_COLOR", "1")
        .env_remove("CHATTER_ACCESS_CODE")
        .env_remove("CHATTER_ROOM_PASSWORD")
        .env_remove("CHATTER_NICK")
        .env_remove("CHATTER_IDENTITY")
        .env_remove("CARGO_MANIFEST_DIR");
    command
}

/// A TCP proxy in front of a relay, for one connection, that counts the bytes the relay
/// sends back: whether the relay said anything after some moment (a Goodbye answers only a
/// client's Quit here) shows without reading the sealed frames.
pub struct CountingProxy {
    /// `127.0.0.1:PORT`, for the client.
    pub address: String,
    from_server: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    server_closed: std::sync::mpsc::Receiver<()>,
}

impl CountingProxy {
    pub fn start(server: &str) -> CountingProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let address = listener.local_addr().expect("proxy address").to_string();
        let server = server.to_owned();
        let from_server = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = from_server.clone();
        let (closed, server_closed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else { return };
            let Ok(upstream) = std::net::TcpStream::connect(&server) else { return };
            let (mut client_in, mut upstream_out) =
                (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_in, &mut upstream_out);
                let _ = upstream_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut upstream_in, mut client_out) = (upstream, client);
            let mut buffer = [0u8; 4096];
            while let Ok(read) = upstream_in.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                counter.fetch_add(read, Ordering::SeqCst);
                if client_out.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
            let _ = client_out.shutdown(std::net::Shutdown::Write);
            let _ = closed.send(());
        });
        CountingProxy { address, from_server, server_closed }
    }

    /// Bytes the relay has sent so far.
    pub fn bytes_from_server(&self) -> usize {
        self.from_server.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits (at most ten seconds) for the relay to close the connection.
    pub fn wait_for_server_close(&self) {
        self.server_closed
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the relay closed the connection");
    }
}

/// The real relay binary on `listen` with `access_code`, and the address it reports.
pub fn spawn_relay_binary(
    listen: &str,
    access_code: &str,
) -> (std::process::Child, std::net::SocketAddr) {
    let relay = RelayProcess::spawn(listen, access_code, &["--no-report"], &[]);
    (relay.child, relay.address)
}

/// The real relay binary with its log (stderr) read line by line.
pub struct RelayProcess {
    pub child: std::process::Child,
    pub address: std::net::SocketAddr,
    /// Every line the relay wrote to stderr, as it comes.
    pub log: std::sync::mpsc::Receiver<String>,
}

impl RelayProcess {
    /// Starts `chatter-server --listen LISTEN ARGS...` with `CHATTER_ACCESS_CODE` and `envs`
    /// (and no `NO_COLOR` or `CHATTER_LOG_LEVEL` but those given), stderr a pipe.
    pub fn spawn(listen: &str, access_code: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chatter-server"))
            .args(["--listen", listen])
            .args(args)
            .env("CHATTER_ACCESS_CODE", access_code)
            .env_remove("NO_COLOR")
            .env_remove("CHATTER_LOG_LEVEL")
            .envs(envs.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn chatter-server");
        let stderr = child.stderr.take().expect("stderr");
        let (found, listening) = std::sync::mpsc::channel();
        let (lines, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("chatter-server listening on ") {
                    let _ = found.send(address.trim().to_owned());
                }
                let _ = lines.send(line);
            }
        });
        let address =
            listening.recv_timeout(std::time::Duration::from_secs(30)).expect("the relay starts");
        RelayProcess { child, address: address.parse().expect("a socket address"), log }
    }

    /// Waits (at most ten seconds) for a log line containing `needle`, and returns it with
    /// every line read on the way.
    pub fn expect_log(&self, needle: &str) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut read = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    read.push(line);
                    if found {
                        return read;
                    }
                }
                Err(_) => panic!("no log line with {needle:?} in 10 s; read: {read:#?}"),
            }
        }
    }

    /// Sends the relay a signal by name (`TERM`, `USR1`...).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill").args([&format!("-{name}"), &pid]).status();
        assert!(sent.expect("run kill").success(), "kill -{name} {pid}");
    }

    /// Stops the relay with SIGTERM and returns the rest of its log.
    pub fn stop(mut self) -> Vec<String> {
        self.signal("TERM");
        let _ = self.child.wait();
        // The reading thread ends, and with it this iterator, at the end of stderr.
        self.log.iter().collect()
    }
}

/// One handshake with `code` against the relay at `address`, on a runtime of its own: `Ok`,
/// or the error in words.
pub fn handshake(address: std::net::SocketAddr, code: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(address).await.map_err(|e| e.to_string())?;
        chatter::transport::client_handshake(stream, &Secret::from(code))
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    })
}
