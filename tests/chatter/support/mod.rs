//! Shared helpers for the integration tests: a real relay on 127.0.0.1:0, clients, and a
//! byte-level proxy that misbehaves on purpose.

pub mod capture;
pub mod cutter;
pub mod mitm;
pub mod nats;
pub mod proxy;
pub mod split;

use std::net::SocketAddr;
use std::time::Duration;

use chatter::client::RawClient;
use chatter::proto::ServerFrame;
use chatter::relay::{Relay, RelayConfig};
use chatter::secret::Secret;
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
    start_relay_on("127.0.0.1:0".parse().expect("address"), config).await
}

/// A relay on a given address: a restarted relay takes its predecessor's port.
pub async fn start_relay_on(address: std::net::SocketAddr, config: RelayConfig) -> TestRelay {
    start_relay_in(address, config, None).await
}

/// A relay on `address`, one of `cluster`'s relays if given (`cluster.rs`).
pub async fn start_relay_in(
    address: std::net::SocketAddr,
    config: RelayConfig,
    cluster: Option<chatter::relay::cluster::ClusterConfig>,
) -> TestRelay {
    let listener = chatter::relay::listener::bind(address).expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    let relay = Relay::new(config);
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = relay.clone();
    let task = tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        match cluster {
            Some(cluster) => serving.serve_in_cluster(cluster, listener, stopped).await,
            None => serving.serve(listener, stopped).await,
        }
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

/// A raw client asks to join `room` and runs the joiner's side of the password exchange by
/// hand, offering `key_package` (any bytes: a test may offer a forged one). The leader's
/// answer (a `Welcome` or a refusal) is left for the caller to wait for.
pub async fn raw_join(
    joiner: &mut RawClient,
    room: &str,
    nick: &str,
    password: &str,
    key_package: &[u8],
) {
    use chatter::proto::ClientFrame;
    let (admission, pake_message) =
        chatter::admission::JoinerAdmission::start(room, nick, password.as_bytes());
    joiner.send(&ClientFrame::Join { room: room.into(), pake_message }).await.expect("send join");
    let ServerFrame::JoinPending { leader, .. } = next_frame(joiner).await else {
        panic!("{nick} waits for the leader")
    };
    let reply = expect_frame(joiner, |f| matches!(f, ServerFrame::AdmissionReply { .. })).await;
    let ServerFrame::AdmissionReply { pake_message, .. } = reply else { unreachable!() };
    let finish = admission.finish(&leader, &pake_message, key_package).expect("the leader's reply");
    let finish = ClientFrame::AdmissionFinish {
        room: room.into(),
        confirmation: finish.confirmation.to_vec(),
        sealed_key_package: finish.sealed_key_package,
    };
    joiner.send(&finish).await.expect("send admission finish");
}

/// The attempt number the leader sees for a joiner's `Join` (which opened its admission with
/// opaque bytes), which the leader's answers must carry.
pub async fn admission_attempt(leader: &mut RawClient) -> u64 {
    match expect_frame(leader, |f| matches!(f, ServerFrame::AdmissionRequest { .. })).await {
        ServerFrame::AdmissionRequest { attempt, .. } => attempt,
        _ => unreachable!("matched above"),
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

/// The texts of the messages among `events`, in order.
pub fn texts(events: &[chatter::client::Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            chatter::client::Event::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// Waits (at most five seconds) for an event that matches and returns it; the events before
/// it are skipped, and listed if the wait fails. Where what else arrived matters, use
/// [`expect_event_after`].
pub async fn expect_event(
    events: &mut chatter::client::Events,
    wanted: impl FnMut(&chatter::client::Event) -> bool,
) -> chatter::client::Event {
    expect_event_after(events, wanted).await.0
}

/// Waits (at most five seconds) for an event that matches; returns it and every event that
/// arrived before it, in order, for assertions about what else arrived. Since the relay keeps
/// one order per room, "nothing else before a later message" is a check that can fail, where
/// "nothing else within a quiet spell" is not.
pub async fn expect_event_after(
    events: &mut chatter::client::Events,
    mut wanted: impl FnMut(&chatter::client::Event) -> bool,
) -> (chatter::client::Event, Vec<chatter::client::Event>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut skipped = Vec::new();
    loop {
        let event = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the engine stopped; before that: {skipped:#?}"),
            Err(_) => panic!("timed out waiting for an event; skipped: {skipped:#?}"),
        };
        if wanted(&event) {
            return (event, skipped);
        }
        skipped.push(event);
    }
}

/// Awaits `future`, which waits on real sockets, with virtual time held still, for at most
/// ten seconds of real time.
///
/// On paused time (`start_paused`) the runtime moves the clock to the next timer whenever no
/// task is ready, and a task waiting for the kernel to deliver bytes is not ready: a wait on
/// a socket can then see a timeout fire (the relay's or the test's) that no real time
/// justified. A blocking task keeps tokio from moving a paused clock, so one that watches the
/// real deadline holds virtual time still for as long as the wait lasts. Elsewhere it is a
/// plain real-time deadline.
pub async fn held<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    const LIMIT: Duration = Duration::from_secs(10);
    let done = Arc::new(AtomicBool::new(false));
    let watched = Arc::clone(&done);
    let mut watchdog = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        while !watched.load(Ordering::SeqCst) && started.elapsed() < LIMIT {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    tokio::pin!(future);
    tokio::select! {
        output = &mut future => {
            done.store(true, Ordering::SeqCst);
            // Let the clock move again before the caller sleeps on it.
            let _ = watchdog.await;
            output
        }
        _ = &mut watchdog => panic!("no answer within {LIMIT:?} of real time"),
    }
}

/// Waits, with virtual time held still (see [`held`]), until `condition` holds: for state
/// the relay changes when it hears from a real socket.
pub async fn settled(mut condition: impl FnMut() -> bool) {
    held(async {
        while !condition() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// The next frame, waited for with virtual time held still (see [`held`]).
pub async fn next_frame_held(client: &mut RawClient) -> ServerFrame {
    held(client.recv()).await.expect("connection failed")
}

/// Lets virtual time pass, a tenth of a second at a time, until `events` yields an event that matches
/// (or `limit` of virtual time has passed, which fails the test); returns it and the events
/// skipped before it.
///
/// Between steps the clock is held still (see [`held`]) for a few milliseconds of real time,
/// so that real sockets keep up with virtual time: a reconnecting engine's backoff and
/// timeouts run on the virtual clock, and its handshakes on the real one.
pub async fn pass_time_until(
    events: &mut chatter::client::Events,
    limit: Duration,
    wanted: impl FnMut(&chatter::client::Event) -> bool,
) -> (chatter::client::Event, Vec<chatter::client::Event>) {
    pass_time_until_by(Duration::from_millis(100), events, limit, wanted).await
}

/// [`pass_time_until`] in steps of `step`: coarser steps for long spells of virtual time
/// (a day's key renewal run in minutes), where nothing needs finer timing.
pub async fn pass_time_until_by(
    step: Duration,
    events: &mut chatter::client::Events,
    limit: Duration,
    mut wanted: impl FnMut(&chatter::client::Event) -> bool,
) -> (chatter::client::Event, Vec<chatter::client::Event>) {
    let mut skipped = Vec::new();
    let mut passed = Duration::ZERO;
    loop {
        let found = held(async {
            let until = std::time::Instant::now() + Duration::from_millis(5);
            while std::time::Instant::now() < until {
                while let Some(event) = events.try_recv() {
                    if wanted(&event) {
                        return Some(event);
                    }
                    skipped.push(event);
                }
                tokio::task::yield_now().await;
            }
            None
        })
        .await;
        if let Some(event) = found {
            return (event, skipped);
        }
        assert!(passed < limit, "no such event within {limit:?}; skipped: {skipped:#?}");
        tokio::time::advance(step).await;
        passed += step;
    }
}

/// Lets `duration` of virtual time pass in steps, real sockets keeping up (see
/// [`pass_time_until`]); events are left for later.
pub async fn pass_time(duration: Duration) {
    pass_time_by(Duration::from_millis(100), duration).await;
}

/// [`pass_time`] in steps of `step`.
pub async fn pass_time_by(step: Duration, duration: Duration) {
    let mut passed = Duration::ZERO;
    while passed < duration {
        held(async {
            let until = std::time::Instant::now() + Duration::from_millis(5);
            while std::time::Instant::now() < until {
                tokio::task::yield_now().await;
            }
        })
        .await;
        tokio::time::advance(step).await;
        passed += step;
    }
}
