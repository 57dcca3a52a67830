//! Shared helpers for the integration tests: a real relay on 127.0.0.1:0, clients, and a
//! byte-level proxy that misbehaves on purpose.

pub mod capture;
pub mod mitm;
pub mod proxy;
pub mod split;

use std::net::SocketAddr;
use std::time::Duration;

use chatter::client::RawClient;
use chatter::proto::ServerFrame;
use chatter::relay::{Relay, RelayConfig};
use chatter::secret::Secret;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ACCESS_CODE: &str = "correct horse battery staple";

/// A relay running in this test's runtime.
pub struct TestRelay {
    pub address: SocketAddr,
    pub relay: Relay,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestRelay {
    pub fn addr(&self) -> String {
        self.address.to_string()
    }

    /// Stops the relay the way SIGTERM does and waits for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("relay task panicked").expect("relay failed");
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn test_config() -> RelayConfig {
    RelayConfig::new(Secret::from(ACCESS_CODE))
}

pub async fn start_relay() -> TestRelay {
    start_relay_with(test_config()).await
}

pub async fn start_relay_with(config: RelayConfig) -> TestRelay {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    let relay = Relay::new(config);
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = relay.clone();
    let task = tokio::spawn(async move {
        serving
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    TestRelay { address, relay, stop: Some(stop), task: Some(task) }
}

/// A registered frame-level client.
pub async fn raw_client(relay: &TestRelay, nick: &str) -> RawClient {
    let mut client =
        RawClient::connect(&relay.addr(), &Secret::from(ACCESS_CODE)).await.expect("connect");
    client.register(nick).await.expect("register");
    client
}

/// The next frame, or a panic naming what was awaited after five seconds.
pub async fn next_frame(client: &mut RawClient) -> ServerFrame {
    tokio::time::timeout(Duration::from_secs(5), client.recv())
        .await
        .expect("timed out waiting for a frame")
        .expect("connection failed")
}

/// Skips frames until one matches.
pub async fn expect_frame(
    client: &mut RawClient,
    mut wanted: impl FnMut(&ServerFrame) -> bool,
) -> ServerFrame {
    loop {
        let frame = next_frame(client).await;
        if wanted(&frame) {
            return frame;
        }
    }
}

pub const APPLICATION: u8 = 1;
pub const COMMIT: u8 = 3;

/// Polls a condition on virtual or real time until it holds or five seconds pass.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

/// A chat client (the full engine) connected to `server` as `nick`.
pub async fn chat_client_at(
    server: &str,
    nick: &str,
) -> (chatter::client::Client, chatter::client::Events) {
    chatter::client::connect(chatter::client::ClientOptions {
        server: server.to_owned(),
        nick: nick.to_owned(),
        access_code: Secret::from(ACCESS_CODE),
    })
    .await
    .expect("connect chat client")
}

pub async fn chat_client(
    relay: &TestRelay,
    nick: &str,
) -> (chatter::client::Client, chatter::client::Events) {
    chat_client_at(&relay.addr(), nick).await
}

/// Waits (at most five seconds) for an event that matches, returning it; other events are
/// collected into `skipped` for assertions about what else arrived.
pub async fn expect_event(
    events: &mut chatter::client::Events,
    mut wanted: impl FnMut(&chatter::client::Event) -> bool,
) -> chatter::client::Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("timed out waiting for an event")
            .expect("the engine stopped");
        if wanted(&event) {
            return event;
        }
    }
}

/// Every event that arrives within a short quiet period.
pub async fn drain_events(events: &mut chatter::client::Events) -> Vec<chatter::client::Event> {
    let mut seen = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(300), events.recv()).await
    {
        seen.push(event);
    }
    seen
}
