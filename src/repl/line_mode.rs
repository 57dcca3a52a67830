//! Line mode, for when stdin is not a terminal: scripts, pipes, tests.
//!
//! Plain lines in (commands and chat told apart by [`commands::classify`], the REPL's rule:
//! `/` after any leading blanks starts a command, `//` sends a literal slash), one event per
//! line out, without colour, or as JSON objects with `--json`. Nothing is ever asked
//! for interactively: the access code comes from `CHATTER_ACCESS_CODE` or
//! `--access-code-file`, room passwords from `CHATTER_ROOM_PASSWORD` or
//! `--room-password-file` (none means an open room).
//!
//! Chat lines go out at the pace the relay allows (`pacing`), so a piped burst arrives
//! whole, once and in order. A thread reads stdin into a queue of at most
//! [`MAX_WAITING_LINES`] while they wait their turn; a line that finds the queue full is not
//! sent, and a `not_sent` event names it.

use crate::client::{ConnectionEvent, Event, NotSentReason};
use crate::commands::{self, Context, Engine, Input, Outcome, Output, SecretSource};
use crate::repl::pacing::Pacer;
use crate::repl::render::Renderer;
use crate::repl::session::Session;
use crate::secret::Secret;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Instant;

/// Lines read from stdin and not handled yet, at most: 25 s of chat at the relay's pace.
pub const MAX_WAITING_LINES: usize = 500;

/// Where `/join` gets room passwords in line mode.
#[derive(Debug, Clone, Default)]
pub struct RoomPasswordSource {
    /// `CHATTER_ROOM_PASSWORD`, taken out of the environment at start.
    pub from_env: Option<Secret>,
    /// `--room-password-file`.
    pub file: Option<PathBuf>,
}

impl SecretSource for RoomPasswordSource {
    fn room_password(&mut self, _room: &str) -> std::io::Result<Secret> {
        if let Some(password) = &self.from_env {
            return Ok(password.clone());
        }
        match &self.file {
            // `Secret` wipes the whole buffer it takes over, so the file's text leaves no copy.
            Some(path) => std::fs::read_to_string(path).map(Secret::new),
            None => Ok(Secret::default()),
        }
    }
}

/// Lines from stdin, read on a thread of their own into a queue of [`MAX_WAITING_LINES`];
/// the queue ends with the input. A line that finds the queue full is named in a
/// `not_sent` event, never dropped silently.
fn read_stdin(renderer: Renderer) -> Receiver<String> {
    let (queue, lines) = std::sync::mpsc::sync_channel(MAX_WAITING_LINES);
    std::thread::spawn(move || queue_lines(std::io::stdin().lock(), &queue, &renderer));
    lines
}

fn queue_lines(input: impl BufRead, queue: &SyncSender<String>, renderer: &Renderer) {
    for line in input.lines() {
        let Ok(line) = line else { return };
        match queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(line)) => {
                let reason = NotSentReason::TooManyWaiting { max: MAX_WAITING_LINES };
                let event =
                    Event::Connection(ConnectionEvent::NotSent { texts: vec![line], reason });
                if let Some(rendered) = renderer.event(&event) {
                    emit(&rendered.text);
                }
            }
            // Line mode is over (`/quit`): the rest of the input is not read.
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

/// Waits until the pacer lets the next chat line go.
fn wait_for_turn(pacer: &mut Pacer) {
    loop {
        let wait = pacer.wait_before_send(Instant::now());
        if wait.is_zero() {
            return;
        }
        std::thread::sleep(wait);
    }
}

/// Prints one line to stdout, flushed, so a reader on a pipe sees it at once.
pub fn emit(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

struct LineOutput<'a> {
    renderer: &'a Renderer,
    engine: &'a dyn Engine,
}

impl Output for LineOutput<'_> {
    fn notice(&mut self, text: &str) {
        emit(&self.renderer.notice(text));
    }
    fn error(&mut self, text: &str) {
        emit(&self.renderer.error(text));
    }
    fn own_message(&mut self, text: &str, action: bool) {
        let room = self.engine.current_room();
        emit(&self.renderer.own_message(room.as_deref(), text, action));
    }
    fn record(&mut self, kind: &str, text: &str, fields: &serde_json::Value) {
        match self.renderer.record(kind, text, fields) {
            Some(line) => emit(&line),
            None => text.lines().for_each(|line| self.notice(line)),
        }
    }
}

/// Runs `startup_lines` (the `/join`s of `--join` and `autojoin`), then reads lines from
/// stdin until end of input or `/quit`; the engine has been told to quit when this returns.
pub fn run(
    session: &Session,
    renderer: &Renderer,
    mut passwords: RoomPasswordSource,
    startup_lines: Vec<String>,
) {
    let mut out = LineOutput { renderer, engine: session };
    for line in &startup_lines {
        let mut ctx = Context { engine: session, out: &mut out, secrets: &mut passwords };
        commands::dispatch(&mut ctx, line);
    }
    let lines = read_stdin(renderer.clone());
    let mut pacer = Pacer::for_default_relay(Instant::now());
    for line in lines {
        match commands::classify(line.trim_end_matches('\r')) {
            Input::Blank => {}
            Input::Command(command) => {
                let mut ctx = Context { engine: session, out: &mut out, secrets: &mut passwords };
                if commands::dispatch(&mut ctx, command) == Outcome::Quit {
                    return;
                }
            }
            Input::Chat(text) => {
                wait_for_turn(&mut pacer);
                match session.send_text(text) {
                    Ok(()) => out.own_message(text, false),
                    Err(error) => out.error(&format!("not sent: {error}: {text:?}")),
                }
            }
        }
    }
    if let Err(error) = session.quit() {
        out.error(&format!("quitting: {error}"));
    }
}
