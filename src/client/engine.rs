//! The engine task: the tokio driver of the client core (`core`), as quinn is of
//! quinn-proto. It reads frames from the socket, requests from [`Client`](super::Client)
//! handles, and the clock; feeds each to the core; and writes what the core outputs: frames
//! to the socket, events to the [`Events`](super::Events) stream, answers to the handles
//! waiting, and the view the prompt reads. It opens a new link when the core asks
//! (`dial`). It decides nothing about the protocol; the core decides everything.
//!
//! One task per session, entered through [`spawn`]. All MLS work is synchronous inside the
//! core, so no lock is held across an await and the order of frames is the order of
//! processing.

use std::collections::HashMap;
use std::future::{Future, pending};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, error::Elapsed};

use super::core::{Answer, Core, Now, Request, RequestId};
use super::dial::{self, Dialed};
use super::relays::Relays;
use super::resume::SessionNumbers;
use super::{Awaited, ClientError, Event, LinkLoss, RawClient, View};
use crate::identity::PeerTrust;
use crate::mls::MlsMember;
use crate::proto::ServerFrame;
use crate::secret::Secret;
use crate::transport::TransportError;

/// How long one reconnection attempt (connect, handshake, resume or register) may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a [`Client`](super::Client) handle sends the engine: a request, and where its
/// answer goes (`None` when nobody waits for one).
pub(super) struct Ask {
    pub request: Request,
    pub reply: Option<oneshot::Sender<Answer>>,
}

/// What the engine starts with: a session just registered on `raw`.
pub(super) struct Parts {
    pub nick: String,
    pub mls: MlsMember,
    pub trust: PeerTrust,
    /// Where new links go, in turn.
    pub relays: Relays,
    /// Kept for reconnecting, in memory only.
    pub access_code: Secret,
    pub numbers: SessionNumbers,
    pub events: mpsc::UnboundedSender<Event>,
    pub view: Arc<Mutex<View>>,
}

/// One reconnection attempt in flight, under its timeout.
type Attempt = Pin<Box<dyn Future<Output = Result<Dialing, Elapsed>> + Send>>;
type Dialing = Result<(RawClient, Dialed), ClientError>;

/// What woke the engine.
enum Wake {
    Frame(Result<Option<ServerFrame>, TransportError>),
    Ask(Option<Ask>),
    Dialed(Box<Result<Dialing, Elapsed>>),
    Timer,
}

struct Engine {
    core: Core,
    nick: String,
    relays: Relays,
    access_code: Secret,
    /// The link to the relay, while there is one.
    link: Option<RawClient>,
    attempt: Option<Attempt>,
    /// Handles waiting for answers, by the id the core knows their request by.
    replies: HashMap<RequestId, oneshot::Sender<Answer>>,
    next_request: u64,
    events: mpsc::UnboundedSender<Event>,
    view: Arc<Mutex<View>>,
}

/// Starts the engine for an authenticated, registered connection.
pub(super) fn spawn(parts: Parts, raw: RawClient, requests: mpsc::UnboundedReceiver<Ask>) {
    let Parts { nick, mls, trust, relays, access_code, numbers, events, view } = parts;
    let core = Core::new(nick.clone(), mls, trust, numbers, now(), rand::random());
    let engine = Engine {
        core,
        nick,
        relays,
        access_code,
        link: Some(raw),
        attempt: None,
        replies: HashMap::new(),
        next_request: 0,
        events,
        view,
    };
    tokio::spawn(engine.run(requests));
}

impl Engine {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Ask>) {
        loop {
            self.write().await;
            self.publish();
            if self.core.is_closed() {
                return;
            }
            if !self.core.is_connected() {
                self.link = None;
            }
            if let Some(dial) = self.core.poll_dial() {
                let attempt = dial::dial(
                    self.relays.take_turn().to_owned(),
                    self.access_code.clone(),
                    self.nick.clone(),
                    dial,
                );
                self.attempt = Some(Box::pin(tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)));
            }
            let deadline = self.core.poll_timeout().map(Instant::from_std);
            let wake = tokio::select! {
                frame = read(&mut self.link) => Wake::Frame(frame),
                ask = requests.recv() => Wake::Ask(ask),
                dialed = finish(&mut self.attempt) => Wake::Dialed(Box::new(dialed)),
                () = sleep_until(deadline) => Wake::Timer,
            };
            self.on_wake(wake);
        }
    }

    /// Feeds what happened to the core.
    fn on_wake(&mut self, wake: Wake) {
        let now = now();
        match wake {
            Wake::Frame(Ok(Some(frame))) => self.core.handle_frame(frame, now),
            Wake::Frame(Ok(None)) => self.core.link_lost(LinkLoss::Closed, now),
            Wake::Frame(Err(error)) => {
                let error = ClientError::Transport(error).into();
                self.core.link_lost(LinkLoss::Broken(error), now);
            }
            Wake::Ask(Some(Ask { request, reply })) => {
                let id = RequestId(self.next_request);
                self.next_request += 1;
                if let Some(reply) = reply {
                    self.replies.insert(id, reply);
                }
                self.core.handle_request(id, request, now);
            }
            // Every handle is gone: leave cleanly, so the relay forgets us now.
            Wake::Ask(None) => self.core.abandon(),
            Wake::Dialed(dialed) => match *dialed {
                Ok(Ok((raw, dialed))) => {
                    self.link = Some(raw);
                    match dialed {
                        Dialed::Resumed { handled, backlog, token } => {
                            self.core.link_resumed(handled, backlog, token, now)
                        }
                        Dialed::Registered(numbers) => self.core.link_registered(numbers, now),
                    }
                }
                Ok(Err(error)) => self.core.dial_failed(error, now),
                Err(_) => self.core.dial_failed(ClientError::Timeout(Awaited::Server), now),
            },
            Wake::Timer => self.core.handle_timeout(now),
        }
    }

    /// Writes the frames the core put out, in one flush; a failed write loses the link.
    async fn write(&mut self) {
        let Some(raw) = self.link.as_mut() else {
            while self.core.poll_transmit().is_some() {}
            return;
        };
        let mut written = Ok(false);
        while let Some(frame) = self.core.poll_transmit() {
            if written.is_ok() {
                written = raw.writer.queue(&frame).map(|()| true);
            }
        }
        if let Ok(true) = written {
            written = raw.writer.flush().await.map(|()| true);
        }
        if let Err(error) = written {
            let error = ClientError::Io(error).into();
            self.core.link_lost(LinkLoss::Broken(error), now());
        }
    }

    /// Hands out the core's events and answers, and shows its state to the handles.
    fn publish(&mut self) {
        // The view first: whoever an answer wakes (a `/switch`, a `/join`) reads it next.
        {
            let mut view = self.view.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            view.room = self.core.shown_room();
            view.member_of = self.core.member_rooms();
            view.tabs = self.core.room_tabs();
            view.link = self.core.link_state();
        }
        while let Some(event) = self.core.poll_event() {
            let _ = self.events.send(event);
        }
        while let Some((id, answer)) = self.core.poll_answer() {
            if let Some(reply) = self.replies.remove(&id) {
                let _ = reply.send(answer);
            }
        }
    }
}

/// The time as the core takes it.
fn now() -> Now {
    Now { instant: Instant::now().into_std(), wall: SystemTime::now() }
}

/// The next frame on the link; never, without one.
async fn read(link: &mut Option<RawClient>) -> Result<Option<ServerFrame>, TransportError> {
    match link {
        Some(raw) => raw.reader.read_frame().await,
        None => pending().await,
    }
}

/// The outcome of the attempt in flight; never, without one.
async fn finish(attempt: &mut Option<Attempt>) -> Result<Dialing, Elapsed> {
    let Some(running) = attempt.as_mut() else { return pending().await };
    let outcome = running.await;
    *attempt = None;
    outcome
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => pending().await,
    }
}
