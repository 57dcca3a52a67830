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
